;; 5,000 nested parentheses.
;;! expect: limit_exceeded sql_complexity
;;! include: lib/sql_builder.wat
;;! table: residents 200
;;! param: head=SELECT 
;;! param: unit=(
;;! param: count=5000
;;! param: tail=1 FROM residents
