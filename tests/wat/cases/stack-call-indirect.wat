;; Recursion through call_indirect.
;;! expect: limit_exceeded stack
(module
  (memory (export "memory") 1)
  (type $t (func (result i32)))
  (table 1 funcref)
  (elem (i32.const 0) $down)
  (func $down (type $t) (i32.add (call_indirect (type $t) (i32.const 0)) (i32.const 1)))
  (func (export "enclave_run") (result i32) (drop (call $down)) i32.const 0))
