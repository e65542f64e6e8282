;; 3,000 chained `+` in 19 KiB of SQL: a 3,000-deep expression tree that planning, checking and
;; execution would all recurse over. Refused by the complexity bound, before parsing.
;;! expect: limit_exceeded sql_complexity
;;! include: lib/sql_builder.wat
;;! table: residents 200
;;! param: head=SELECT 
;;! param: unit=age + 
;;! param: count=3000
;;! param: tail=age FROM residents
