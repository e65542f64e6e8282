;; A 4-way cross join of 2,000 rows (1.6·10¹³ rows): it must end at a limit, not exhaust memory.
;;! expect: limit_exceeded
;;! include: lib/passthrough.wat
;;! table: residents 2000
;;! limits: wall_ms=10000
;;! param: sql=SELECT a.name, b.name, c.name, d.name FROM residents a, residents b, residents c, residents d
