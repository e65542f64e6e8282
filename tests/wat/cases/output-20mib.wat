;; A real 20 MiB buffer, over the 16 MiB default cap.
;;! expect: limit_exceeded output_bytes
(module
  (import "enclave_v1" "output" (func $out (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 400)
  (data (i32.const 0) "big")
  (func (export "enclave_run") (result i32)
    (call $out (i32.const 0) (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 20971520))))
