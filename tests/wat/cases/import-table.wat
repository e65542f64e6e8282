;; An import outside the ABI, or with the wrong shape.
;;! expect: forbidden_import
;;! message: non-function
(module (import "enclave_v1" "table" (table 1 funcref)) (memory (export "memory") 1) (func (export "enclave_run") (result i32) i32.const 0))
