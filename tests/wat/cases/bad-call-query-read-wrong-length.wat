;; query_read with a length other than the one announced traps.
;;! expect: bad_host_call
;;! message: differs from the announced
;;! table: residents 200
(module
  (import "enclave_v1" "query_open" (func $open (param i32 i32) (result i64)))
  (import "enclave_v1" "query_next" (func $next (param i32) (result i64)))
  (import "enclave_v1" "query_read" (func $read (param i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "SELECT 1 AS one FROM residents")
  (func (export "enclave_run") (result i32)
    (local $h i32) (local $n i64)
    (local.set $h (i32.wrap_i64 (call $open (i32.const 0) (i32.const 30))))
    (local.set $n (call $next (local.get $h)))
    (drop (call $read (local.get $h) (i32.const 1024) (i32.add (i32.wrap_i64 (local.get $n)) (i32.const 1))))
    i32.const 0))
