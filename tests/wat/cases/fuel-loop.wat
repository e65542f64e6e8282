;; An infinite loop in the job.
;;! expect: limit_exceeded fuel
(module (memory (export "memory") 1)
  (func (export "enclave_run") (result i32) (loop br 0) i32.const 0))
