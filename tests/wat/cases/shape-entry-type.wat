;; An entry point of the wrong type.
;;! expect: missing_export
(module (memory (export "memory") 1) (func (export "enclave_run") (param i32) (result i32) i32.const 0))
