;; A job written straight against the enclave_v1 ABI, without the SDK (see docs/abi.md).
;; It reads parameter `sql`, runs it, copies every IPC message the host streams in into one
;; buffer, and emits that buffer — a complete Arrow IPC stream — as aggregate output `result`.
(module
  (import "enclave_v1" "param" (func $param (param i32 i32 i32 i32) (result i64)))
  (import "enclave_v1" "query_open" (func $query_open (param i32 i32) (result i64)))
  (import "enclave_v1" "query_next" (func $query_next (param i32) (result i64)))
  (import "enclave_v1" "query_read" (func $query_read (param i32 i32 i32) (result i32)))
  (import "enclave_v1" "query_close" (func $query_close (param i32) (result i32)))
  (import "enclave_v1" "output" (func $output (param i32 i32 i32 i32 i32) (result i32)))
  (import "enclave_v1" "log" (func $log (param i32 i32)))
  (import "enclave_v1" "fail" (func $fail (param i32 i32)))
  (import "enclave_v1" "clock" (func $clock (result i64)))
  (import "enclave_v1" "random" (func $random (param i32 i32)))
  (import "enclave_v1" "last_error" (func $last_error (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "sql")
  (data (i32.const 16) "result")
  (data (i32.const 32) "missing parameter `sql`")
  (data (i32.const 64) "passthrough: done")
  ;; 1024..5120: the SQL text; 5120..6144: host error text; 8192..8200: random bytes;
  ;; 65536..: the output stream.
  (func $ensure (param $end i32)
    (local $have i32)
    (local.set $have (i32.shl (memory.size) (i32.const 16)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.lt_s
              (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (local.get $have)) (i32.const 16)) (i32.const 1)))
              (i32.const 0))
          (then unreachable)))))
  (func (export "enclave_run") (result i32)
    (local $len i64) (local $n i64) (local $h i32) (local $pos i32) (local $elen i32)
    (drop (call $clock))
    (call $random (i32.const 8192) (i32.const 8))
    (local.set $len (call $param (i32.const 0) (i32.const 3) (i32.const 1024) (i32.const 4096)))
    (if (i64.lt_s (local.get $len) (i64.const 0))
      (then (call $fail (i32.const 32) (i32.const 23)) (return (i32.const 1))))
    (if (i64.gt_s (local.get $len) (i64.const 4096)) (then (return (i32.const 2))))
    (local.set $n (call $query_open (i32.const 1024) (i32.wrap_i64 (local.get $len))))
    (if (i64.lt_s (local.get $n) (i64.const 0))
      (then
        ;; Pass the host's explanation on as the failure message.
        (local.set $elen (call $last_error (i32.const 5120) (i32.const 1024)))
        (if (i32.gt_u (local.get $elen) (i32.const 1024)) (then (local.set $elen (i32.const 1024))))
        (call $fail (i32.const 5120) (local.get $elen))
        (return (i32.const 1))))
    (local.set $h (i32.wrap_i64 (local.get $n)))
    (local.set $pos (i32.const 65536))
    (block $done
      (loop $more
        (local.set $n (call $query_next (local.get $h)))
        (br_if $done (i64.eqz (local.get $n)))
        (if (i64.lt_s (local.get $n) (i64.const 0)) (then (return (i32.const 3))))
        (call $ensure (i32.add (local.get $pos) (i32.wrap_i64 (local.get $n))))
        (if (i32.ne (call $query_read (local.get $h) (local.get $pos) (i32.wrap_i64 (local.get $n))) (i32.const 0))
          (then (return (i32.const 4))))
        (local.set $pos (i32.add (local.get $pos) (i32.wrap_i64 (local.get $n))))
        (br $more)))
    (drop (call $query_close (local.get $h)))
    (call $log (i32.const 64) (i32.const 17))
    (call $output (i32.const 16) (i32.const 6) (i32.const 0)
                  (i32.const 65536) (i32.sub (local.get $pos) (i32.const 65536)))))
