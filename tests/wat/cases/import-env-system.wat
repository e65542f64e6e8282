;; An import outside the ABI, or with the wrong shape.
;;! expect: forbidden_import
;;! message: env.system
(module (import "env" "system" (func (param i32) (result i32))) (memory (export "memory") 1) (func (export "enclave_run") (result i32) i32.const 0))
