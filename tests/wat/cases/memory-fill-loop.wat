;; Bulk memory operations cost one unit of fuel however many bytes they touch: the wall clock
;; is the backstop.
;;! expect: limit_exceeded wall_clock
;;! limits: fuel=4611686018427387903 wall_ms=500
(module
  (memory (export "memory") 1000)
  (func (export "enclave_run") (result i32)
    (loop (memory.fill (i32.const 0) (i32.const 7) (i32.const 65536000)) (br 0))
    i32.const 0))
