;; Threads are off: a shared memory does not validate.
;;! expect: invalid_module
(module (memory (export "memory") 1 1 shared) (func (export "enclave_run") (result i32) i32.const 0))
