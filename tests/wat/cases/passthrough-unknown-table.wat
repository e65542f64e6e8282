;;! expect: sql_refused
;;! message: not granted
;;! include: lib/passthrough.wat
;;! table: residents 2000
;;! param: sql=SELECT * FROM other_table
