;; A sort of a 20,000-row table under 1 MiB of query memory.
;;! expect: limit_exceeded query_memory
;;! include: lib/passthrough.wat
;;! table: residents 20000
;;! limits: query_memory_mib=1
;;! param: sql=SELECT resident_id, name, income FROM residents ORDER BY name, income
