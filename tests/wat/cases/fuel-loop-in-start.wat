;; An infinite loop in the start function: it runs at instantiation, under the same fuel.
;;! expect: limit_exceeded fuel
;;! message: 200000000
(module (memory (export "memory") 1)
  (func $spin (loop br 0)) (start $spin)
  (func (export "enclave_run") (result i32) i32.const 0))
