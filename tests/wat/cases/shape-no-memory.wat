;; No exported memory.
;;! expect: missing_export
(module (func (export "enclave_run") (result i32) i32.const 0))
