;; Polls a finished query forever: each call is charged, so fuel ends it (not the wall clock).
;;! expect: limit_exceeded fuel
;;! table: residents 200
;;! limits: fuel=100000000 wall_ms=20000
(module
  (import "enclave_v1" "query_open" (func $open (param i32 i32) (result i64)))
  (import "enclave_v1" "query_next" (func $next (param i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "SELECT 1 AS one")
  (func (export "enclave_run") (result i32)
    (local $h i32)
    (local.set $h (i32.wrap_i64 (call $open (i32.const 0) (i32.const 15))))
    (loop (drop (call $next (local.get $h))) (br 0))
    i32.const 0))
