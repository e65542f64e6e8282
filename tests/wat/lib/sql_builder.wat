;; A hostile job that builds its SQL text itself, the way an attacker would: parameter `head`,
;; then `unit` repeated `count` times, then `tail`. It opens the statement `opens` times
;; (closing each, whatever the host answers), then runs it once more and emits its result like
;; passthrough.wat. Parameters are read with enclave_v1.param; counts are decimal.
(module
  (import "enclave_v1" "param" (func $param (param i32 i32 i32 i32) (result i64)))
  (import "enclave_v1" "query_open" (func $query_open (param i32 i32) (result i64)))
  (import "enclave_v1" "query_next" (func $query_next (param i32) (result i64)))
  (import "enclave_v1" "query_read" (func $query_read (param i32 i32 i32) (result i32)))
  (import "enclave_v1" "query_close" (func $query_close (param i32) (result i32)))
  (import "enclave_v1" "output" (func $output (param i32 i32 i32 i32 i32) (result i32)))
  (import "enclave_v1" "fail" (func $fail (param i32 i32)))
  (import "enclave_v1" "last_error" (func $last_error (param i32 i32) (result i32)))
  (memory (export "memory") 4)
  (data (i32.const 0) "head")
  (data (i32.const 8) "unit")
  (data (i32.const 16) "count")
  (data (i32.const 24) "tail")
  (data (i32.const 32) "opens")
  (data (i32.const 40) "result")
  ;; 1024..5120: a parameter value; 5120..6144: host error text;
  ;; 65536..196608: the SQL text (at most 128 KiB); 196608..: the output stream.
  (func $grow (param $end i32)
    (local $have i32)
    (local.set $have (i32.shl (memory.size) (i32.const 16)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.lt_s
              (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (local.get $have)) (i32.const 16)) (i32.const 1)))
              (i32.const 0))
          (then unreachable)))))
  ;; Copies parameter (key at $k, length $kl) to $dst; returns its length (0 when absent).
  (func $get (param $k i32) (param $kl i32) (param $dst i32) (result i32)
    (local $n i64)
    (local.set $n (call $param (local.get $k) (local.get $kl) (local.get $dst) (i32.const 4096)))
    (if (i64.lt_s (local.get $n) (i64.const 0)) (then (return (i32.const 0))))
    (if (i64.gt_s (local.get $n) (i64.const 4096)) (then unreachable))
    (i32.wrap_i64 (local.get $n)))
  ;; A decimal parameter (default $default).
  (func $number (param $k i32) (param $kl i32) (param $default i32) (result i32)
    (local $len i32) (local $i i32) (local $v i32)
    (local.set $len (call $get (local.get $k) (local.get $kl) (i32.const 1024)))
    (if (i32.eqz (local.get $len)) (then (return (local.get $default))))
    (block $end
      (loop $digit
        (br_if $end (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $v (i32.add (i32.mul (local.get $v) (i32.const 10))
          (i32.sub (i32.load8_u (i32.add (i32.const 1024) (local.get $i))) (i32.const 48))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $digit)))
    (local.get $v))
  (func $fail_with_host_error (result i32)
    (local $elen i32)
    (local.set $elen (call $last_error (i32.const 5120) (i32.const 1024)))
    (if (i32.gt_u (local.get $elen) (i32.const 1024)) (then (local.set $elen (i32.const 1024))))
    (call $fail (i32.const 5120) (local.get $elen))
    (i32.const 1))
  (func (export "enclave_run") (result i32)
    (local $pos i32) (local $ulen i32) (local $count i32) (local $opens i32)
    (local $n i64) (local $h i32) (local $out i32)
    (local.set $count (call $number (i32.const 16) (i32.const 5) (i32.const 1)))
    (local.set $opens (call $number (i32.const 32) (i32.const 5) (i32.const 0)))
    ;; head
    (local.set $pos (i32.add (i32.const 65536) (call $get (i32.const 0) (i32.const 4) (i32.const 65536))))
    ;; unit, count times
    (local.set $ulen (call $get (i32.const 8) (i32.const 4) (i32.const 1024)))
    (block $done
      (loop $again
        (br_if $done (i32.eqz (local.get $count)))
        (if (i32.gt_u (i32.add (local.get $pos) (local.get $ulen)) (i32.const 192512)) (then (br $done)))
        (memory.copy (local.get $pos) (i32.const 1024) (local.get $ulen))
        (local.set $pos (i32.add (local.get $pos) (local.get $ulen)))
        (local.set $count (i32.sub (local.get $count) (i32.const 1)))
        (br $again)))
    ;; tail
    (local.set $pos (i32.add (local.get $pos) (call $get (i32.const 24) (i32.const 4) (local.get $pos))))
    ;; Open it `opens` times, closing each, whatever the answer.
    (block $opened
      (loop $open
        (br_if $opened (i32.eqz (local.get $opens)))
        (local.set $n (call $query_open (i32.const 65536) (i32.sub (local.get $pos) (i32.const 65536))))
        (if (i64.ge_s (local.get $n) (i64.const 0))
          (then (drop (call $query_close (i32.wrap_i64 (local.get $n))))))
        (local.set $opens (i32.sub (local.get $opens) (i32.const 1)))
        (br $open)))
    ;; Run it and emit the result.
    (local.set $n (call $query_open (i32.const 65536) (i32.sub (local.get $pos) (i32.const 65536))))
    (if (i64.lt_s (local.get $n) (i64.const 0)) (then (return (call $fail_with_host_error))))
    (local.set $h (i32.wrap_i64 (local.get $n)))
    (local.set $out (i32.const 196608))
    (block $end
      (loop $more
        (local.set $n (call $query_next (local.get $h)))
        (br_if $end (i64.eqz (local.get $n)))
        (if (i64.lt_s (local.get $n) (i64.const 0)) (then (return (call $fail_with_host_error))))
        (call $grow (i32.add (local.get $out) (i32.wrap_i64 (local.get $n))))
        (drop (call $query_read (local.get $h) (local.get $out) (i32.wrap_i64 (local.get $n))))
        (local.set $out (i32.add (local.get $out) (i32.wrap_i64 (local.get $n))))
        (br $more)))
    (if (i32.ne (call $output (i32.const 40) (i32.const 6) (i32.const 0)
                  (i32.const 196608) (i32.sub (local.get $out) (i32.const 196608))) (i32.const 0))
      (then (return (call $fail_with_host_error))))
    (i32.const 0)))
