;; 70 KiB of SQL: over the 64 KiB statement limit.
;;! expect: limit_exceeded sql_bytes
;;! include: lib/sql_builder.wat
;;! table: residents 200
;;! param: head=SELECT 1
;;! param: unit=          
;;! param: count=7000
;;! param: tail= FROM residents
