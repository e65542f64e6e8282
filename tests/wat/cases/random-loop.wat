;; 1 MiB of random bytes per call, forever: host work is charged in fuel.
;;! expect: limit_exceeded fuel
;;! limits: fuel=1000000000 memory_mib=64 wall_ms=20000
(module
  (import "enclave_v1" "random" (func $random (param i32 i32)))
  (memory (export "memory") 17)
  (func (export "enclave_run") (result i32)
    (loop (call $random (i32.const 0) (i32.const 1048576)) (br 0)) i32.const 0))
