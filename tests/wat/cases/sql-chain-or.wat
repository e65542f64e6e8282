;; 3,000 chained `OR` in a predicate.
;;! expect: limit_exceeded sql_complexity
;;! include: lib/sql_builder.wat
;;! table: residents 200
;;! param: head=SELECT COUNT(*) AS n FROM residents WHERE 
;;! param: unit=age = 1 OR 
;;! param: count=3000
;;! param: tail=age = 2
