;; Zero-length log lines forever: each line is charged, so they end at the log limit quickly.
;;! expect: limit_exceeded log_bytes
;;! limits: wall_ms=10000
(module
  (import "enclave_v1" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "enclave_run") (result i32)
    (loop (call $log (i32.const 0) (i32.const 0)) (br 0)) i32.const 0))
