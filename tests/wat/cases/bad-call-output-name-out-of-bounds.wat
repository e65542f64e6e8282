;; A hostile pointer, length or handle: the call traps and names the function.
;;! expect: bad_host_call
;;! message: enclave_v1.
;;! param: key=ten chars!
(module
  (import "enclave_v1" "log" (func $log (param i32 i32)))
  (import "enclave_v1" "param" (func $param (param i32 i32 i32 i32) (result i64)))
  (import "enclave_v1" "query_open" (func $query_open (param i32 i32) (result i64)))
  (import "enclave_v1" "query_next" (func $query_next (param i32) (result i64)))
  (import "enclave_v1" "query_read" (func $query_read (param i32 i32 i32) (result i32)))
  (import "enclave_v1" "query_suppressed" (func $query_suppressed (param i32) (result i64)))
  (import "enclave_v1" "output" (func $output (param i32 i32 i32 i32 i32) (result i32)))
  (import "enclave_v1" "random" (func $random (param i32 i32)))
  (import "enclave_v1" "last_error" (func $last_error (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "key")
  (func (export "enclave_run") (result i32) (drop (call $output (i32.const 65535) (i32.const 10) (i32.const 0) (i32.const 0) (i32.const 0))) i32.const 0))
