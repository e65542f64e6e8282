;; A tight loop of the cheapest host call: each call is charged.
;;! expect: limit_exceeded fuel
(module
  (import "enclave_v1" "clock" (func $clock (result i64)))
  (memory (export "memory") 1)
  (func (export "enclave_run") (result i32)
    (loop (drop (call $clock)) (br 0)) i32.const 0))
