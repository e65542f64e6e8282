;; 4 KiB log lines forever.
;;! expect: limit_exceeded log_bytes
(module
  (import "enclave_v1" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "enclave_run") (result i32)
    (loop (call $log (i32.const 0) (i32.const 4096)) (br 0)) i32.const 0))
