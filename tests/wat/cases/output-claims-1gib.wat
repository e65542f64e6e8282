;; Claims a 1 GiB output from a 64 KiB memory: the cap is checked before anything is read.
;;! expect: limit_exceeded output_bytes
(module
  (import "enclave_v1" "output" (func $out (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "big")
  (func (export "enclave_run") (result i32)
    (call $out (i32.const 0) (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 0x40000000))))
