;; A parameter key over 256 bytes traps.
;;! expect: bad_host_call
;;! message: enclave_v1.param
(module
  (import "enclave_v1" "param" (func $param (param i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (func (export "enclave_run") (result i32)
    (drop (call $param (i32.const 0) (i32.const 300) (i32.const 1024) (i32.const 16)))
    i32.const 0))
