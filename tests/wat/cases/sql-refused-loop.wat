;; A 60 KiB refused statement opened again and again: every open is counted (and logged), so
;; the job ends at the query limit instead of keeping the texts.
;;! expect: limit_exceeded queries
;;! include: lib/sql_builder.wat
;;! table: residents 200
;;! limits: fuel=50000000000 wall_ms=30000
;;! param: head=SELECT * FROM nosuch_table
;;! param: unit=          
;;! param: count=6000
;;! param: opens=100000
