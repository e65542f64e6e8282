;; A refused statement: the job is classified by the host's refusal, not by the guest's message.
;;! expect: sql_refused
;;! message: COPY
;;! include: lib/passthrough.wat
;;! table: residents 2000
;;! param: sql=COPY residents TO '/tmp/x.csv'
