;;! expect: sql_error
;;! include: lib/passthrough.wat
;;! table: residents 2000
;;! param: sql=SELEC nonsense
