;;! expect: trap
(module (memory (export "memory") 1) (func (export "enclave_run") (result i32) unreachable))
