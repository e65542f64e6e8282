;; Declares 2 GiB up front: refused at instantiation.
;;! expect: limit_exceeded memory
(module (memory (export "memory") 32768)
  (func (export "enclave_run") (result i32) i32.const 0))
