;; memory64 is off.
;;! expect: invalid_module
(module (memory (export "memory") i64 1) (func (export "enclave_run") (result i32) i32.const 0))
