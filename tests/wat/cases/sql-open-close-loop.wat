;; 100,000 open/close pairs of a valid query.
;;! expect: limit_exceeded queries
;;! include: lib/sql_builder.wat
;;! table: residents 200
;;! limits: fuel=50000000000 wall_ms=30000
;;! param: head=SELECT 1 AS one FROM residents
;;! param: count=0
;;! param: opens=100000
