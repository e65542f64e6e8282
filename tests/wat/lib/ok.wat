;; The smallest valid job: no imports, succeeds.
(module
  (memory (export "memory") 1)
  (func (export "enclave_run") (result i32) (i32.const 0)))
