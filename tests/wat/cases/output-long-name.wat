;; A 200-byte output name: refused as a bad name, not read beyond what the check needs.
;;! expect: invalid_output
;;! message: output names
(module
  (import "enclave_v1" "output" (func $out (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "enclave_run") (result i32)
    (memory.fill (i32.const 0) (i32.const 97) (i32.const 200))
    (if (i32.eqz (call $out (i32.const 0) (i32.const 200) (i32.const 0) (i32.const 1024) (i32.const 0)))
      (then (return (i32.const 0))))
    (i32.const 1)))
