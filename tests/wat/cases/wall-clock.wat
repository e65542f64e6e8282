;; Fuel to spare: the wall-clock watchdog ends it.
;;! expect: limit_exceeded wall_clock
;;! limits: fuel=4611686018427387903 wall_ms=300
(module (memory (export "memory") 1)
  (func (export "enclave_run") (result i32) (loop br 0) i32.const 0))
