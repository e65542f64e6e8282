;; A job written against the raw ABI runs a query and emits its result (9 Yancheng districts).
;;! expect: ok
;;! include: lib/passthrough.wat
;;! table: residents 2000
;;! param: sql=SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY district
;;! output: result rows=9
