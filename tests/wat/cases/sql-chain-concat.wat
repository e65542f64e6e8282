;; 3,000 chained `||`.
;;! expect: limit_exceeded sql_complexity
;;! include: lib/sql_builder.wat
;;! table: residents 200
;;! param: head=SELECT 
;;! param: unit=district || 
;;! param: count=3000
;;! param: tail=district FROM residents
