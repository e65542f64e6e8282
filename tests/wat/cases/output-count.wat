;; Emits outputs until the count limit (each is refused as invalid, but each is counted).
;;! expect: limit_exceeded outputs
(module
  (import "enclave_v1" "output" (func $out (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "x")
  (func (export "enclave_run") (result i32)
    (loop (drop (call $out (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 16) (i32.const 8))) (br 0))
    i32.const 0))
