;; The guest reports its own failure.
;;! expect: guest_failed
;;! message: bad input
(module (import "enclave_v1" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 1) (data (i32.const 0) "bad input")
  (func (export "enclave_run") (result i32) (call $fail (i32.const 0) (i32.const 9)) i32.const 1))
