;; WASI is not there: refused before anything runs (the start function would trap).
;;! expect: forbidden_import
;;! message: wasi_snapshot_preview1.fd_write
;;! fuel-used: 0
(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $start unreachable) (start $start)
  (func (export "enclave_run") (result i32) i32.const 0))
