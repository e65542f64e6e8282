;; An import outside the ABI, or with the wrong shape.
;;! expect: forbidden_import
;;! message: signature
(module (import "enclave_v1" "log" (func (param i64 i64))) (memory (export "memory") 1) (func (export "enclave_run") (result i32) i32.const 0))
