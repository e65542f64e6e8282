;;! expect: trap
;;! message: out of bounds
(module (memory (export "memory") 1) (func (export "enclave_run") (result i32) (i32.load (i32.const 70000))))
