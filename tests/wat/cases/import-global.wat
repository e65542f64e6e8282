;; An import outside the ABI, or with the wrong shape.
;;! expect: forbidden_import
;;! message: env.g
(module (import "env" "g" (global i32)) (memory (export "memory") 1) (func (export "enclave_run") (result i32) i32.const 0))
