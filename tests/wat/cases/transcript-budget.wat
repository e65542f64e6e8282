;; Streams a whole table past the job's disk budget for its transcript.
;;! expect: limit_exceeded transcript_bytes
;;! include: lib/passthrough.wat
;;! table: residents 20000
;;! limits: transcript_bytes=65536
;;! param: sql=SELECT * FROM residents
