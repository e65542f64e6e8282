;; An unknown output kind.
;;! expect: invalid_output
;;! message: unknown output kind
(module
  (import "enclave_v1" "output" (func $out (param i32 i32 i32 i32 i32) (result i32)))
  (import "enclave_v1" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "x")
  (func (export "enclave_run") (result i32)
    (if (i32.eqz (call $out (i32.const 0) (i32.const 1) (i32.const -1) (i32.const 16) (i32.const 0)))
      (then (return (i32.const 0))))
    (call $fail (i32.const 0) (i32.const 1))
    (i32.const 1)))
