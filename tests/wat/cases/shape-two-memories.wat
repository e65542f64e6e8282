;; Multiple memories are off.
;;! expect: invalid_module
(module (memory (export "memory") 1) (memory 1) (func (export "enclave_run") (result i32) i32.const 0))
