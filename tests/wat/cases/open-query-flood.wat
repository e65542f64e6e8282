;; Opens queries and never closes them: past 8 open the host refuses (TOO_MANY), and every
;; refused call is still charged, so fuel ends the loop.
;;! expect: limit_exceeded fuel
;;! table: residents 200
(module
  (import "enclave_v1" "query_open" (func $open (param i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "SELECT 1 AS one FROM residents")
  (func (export "enclave_run") (result i32)
    (loop (drop (call $open (i32.const 0) (i32.const 30))) (br 0))
    i32.const 0))
