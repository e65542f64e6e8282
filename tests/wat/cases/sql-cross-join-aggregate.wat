;; A 4-way cross join under an aggregate: ends at a limit (time), in bounded memory.
;;! expect: limit_exceeded
;;! include: lib/passthrough.wat
;;! table: residents 2000
;;! limits: wall_ms=5000
;;! param: sql=SELECT COUNT(*) AS n, MAX(a.name || b.name || c.name || d.name) AS m FROM residents a, residents b, residents c, residents d
