;; Grows memory 1 MiB at a time forever.
;;! expect: limit_exceeded memory
;;! message: 67108864
(module (memory (export "memory") 1)
  (func (export "enclave_run") (result i32)
    (loop (drop (memory.grow (i32.const 16))) (br 0)) i32.const 0))
