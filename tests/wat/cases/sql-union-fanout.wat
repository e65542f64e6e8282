;; A UNION ALL of 1,900 branches (63 KiB of SQL): each partition would buffer ahead.
;;! expect: limit_exceeded sql_complexity
;;! include: lib/sql_builder.wat
;;! table: residents 200
;;! param: unit=SELECT * FROM residents UNION ALL 
;;! param: count=1900
;;! param: tail=SELECT * FROM residents
