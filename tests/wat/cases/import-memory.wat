;; An import outside the ABI, or with the wrong shape.
;;! expect: forbidden_import
;;! message: non-function
(module (import "enclave_v1" "memory" (memory 1)) (export "memory" (memory 0)) (func (export "enclave_run") (result i32) i32.const 0))
