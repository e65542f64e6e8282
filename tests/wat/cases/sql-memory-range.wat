;; A function whose result is far larger than its arguments: bounded by the query memory.
;;! expect: limit_exceeded query_memory
;;! include: lib/passthrough.wat
;;! table: residents 2000
;;! limits: wall_ms=30000
;;! param: sql=SELECT range(0, 2000000000) AS x FROM residents
