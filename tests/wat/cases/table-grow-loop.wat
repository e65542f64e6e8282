;; Grows its table forever.
;;! expect: limit_exceeded table_elements
(module
  (memory (export "memory") 1)
  (table 1 funcref)
  (func (export "enclave_run") (result i32)
    (loop (drop (table.grow (ref.null func) (i32.const 1000))) (br 0))
    i32.const 0))
