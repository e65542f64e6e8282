;; A recursive CTE (unbounded rows from nothing) is refused under every policy.
;;! expect: policy_violation
;;! include: lib/passthrough.wat
;;! table: residents 200
;;! param: sql=WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT COUNT(*) FROM r
