//! Hostile modules: each ends with a clear error and the host stays healthy.

use enclave::{ErrorKind, Limit, Sandbox};
use enclave_tests::*;

/// After any hostile job, a following job in the same sandbox must run fine.
fn still_healthy(sb: &Sandbox) {
    let ok = wat_file("ok.wat");
    let r = sb.run(&ok, spec(&ok, &[], vec![]));
    assert!(
        r.result.is_ok(),
        "the host is unhealthy after a hostile job: {:?}",
        r.result
    );
}

fn run_hostile(sb: &Sandbox, text: &str) -> enclave::JobReport {
    let m = wat(text);
    let r = sb.run(&m, tight(spec(&m, &[], vec![])));
    still_healthy(sb);
    r
}

fn expect_limit(r: &enclave::JobReport, limit: Limit) {
    let e = err(r);
    assert_eq!(
        (e.kind, e.limit),
        (ErrorKind::LimitExceeded, Some(limit)),
        "{e:?}"
    );
    assert!(
        e.message.contains(limit.name()),
        "message must name the limit: {}",
        e.message
    );
}

#[test]
fn infinite_loop_in_start_function_runs_out_of_fuel() {
    let sb = sandbox();
    let r = run_hostile(
        &sb,
        r#"(module (memory (export "memory") 1)
             (func $spin (loop br 0)) (start $spin)
             (func (export "enclave_run") (result i32) i32.const 0))"#,
    );
    expect_limit(&r, Limit::Fuel);
    assert!(err(&r).message.contains("200000000"), "{}", err(&r).message);
    assert!(r.fuel_used >= 200_000_000);
}

#[test]
fn infinite_loop_in_job_runs_out_of_fuel() {
    let sb = sandbox();
    let r = run_hostile(
        &sb,
        r#"(module (memory (export "memory") 1)
             (func (export "enclave_run") (result i32) (loop br 0) i32.const 0))"#,
    );
    expect_limit(&r, Limit::Fuel);
}

#[test]
fn wall_clock_watchdog_stops_a_job_with_fuel_to_spare() {
    let sb = sandbox();
    let m = wat(r#"(module (memory (export "memory") 1)
             (func (export "enclave_run") (result i32) (loop br 0) i32.const 0))"#);
    let mut s = spec(&m, &[], vec![]);
    s.limits.fuel = u64::MAX / 2;
    s.limits.wall_clock_ms = 300;
    let r = sb.run(&m, s);
    expect_limit(&r, Limit::WallClock);
    assert!(
        r.wall_ms < 5_000,
        "the watchdog fired late: {} ms",
        r.wall_ms
    );
    still_healthy(&sb);
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    let sb = sandbox();
    // Grows one page at a time forever.
    let r = run_hostile(
        &sb,
        r#"(module (memory (export "memory") 1)
             (func (export "enclave_run") (result i32)
               (loop (drop (memory.grow (i32.const 16))) (br 0)) i32.const 0))"#,
    );
    expect_limit(&r, Limit::Memory);
    assert!(
        err(&r).message.contains(&(64u64 << 20).to_string()),
        "{}",
        err(&r).message
    );
    // Declares 2 GiB up front: refused at instantiation.
    let r = run_hostile(
        &sb,
        r#"(module (memory (export "memory") 32768)
             (func (export "enclave_run") (result i32) i32.const 0))"#,
    );
    expect_limit(&r, Limit::Memory);
}

#[test]
fn deep_recursion_hits_the_stack_limit() {
    let sb = sandbox();
    let r = run_hostile(
        &sb,
        r#"(module (memory (export "memory") 1)
             (func $down (param i64) (result i64)
               (i64.add (call $down (i64.add (local.get 0) (i64.const 1))) (i64.const 1)))
             (func (export "enclave_run") (result i32) (drop (call $down (i64.const 0))) i32.const 0))"#,
    );
    expect_limit(&r, Limit::Stack);
}

#[test]
fn out_of_bounds_pointers_to_host_functions_trap_clearly() {
    let sb = sandbox();
    let cases = [
        // log with a pointer past the end of memory
        r#"(call $log (i32.const 0xFFFFFF00) (i32.const 100))"#,
        // log with a length that wraps around
        r#"(call $log (i32.const 16) (i32.const -1))"#,
        // param writing its value out of bounds
        r#"(drop (call $param (i32.const 0) (i32.const 3) (i32.const 65530) (i32.const 64)))"#,
        // param with a key past the end
        r#"(drop (call $param (i32.const 70000) (i32.const 3) (i32.const 0) (i32.const 0)))"#,
        // query_open with SQL out of bounds
        r#"(drop (call $query_open (i32.const 65500) (i32.const 100)))"#,
        // query_next on a handle never opened
        r#"(drop (call $query_next (i32.const 7)))"#,
        // random into memory that does not exist
        r#"(call $random (i32.const 65535) (i32.const 2))"#,
    ];
    for body in cases {
        let text = format!(
            r#"(module
                 (import "enclave_v1" "log" (func $log (param i32 i32)))
                 (import "enclave_v1" "param" (func $param (param i32 i32 i32 i32) (result i64)))
                 (import "enclave_v1" "query_open" (func $query_open (param i32 i32) (result i64)))
                 (import "enclave_v1" "query_next" (func $query_next (param i32) (result i64)))
                 (import "enclave_v1" "random" (func $random (param i32 i32)))
                 (memory (export "memory") 1)
                 (data (i32.const 0) "key")
                 (func (export "enclave_run") (result i32) {body} i32.const 0))"#
        );
        let m = wat(&text);
        let r = sb.run(&m, tight(spec(&m, &[("key", "ten chars!")], vec![])));
        let e = err(&r);
        assert_eq!(e.kind, ErrorKind::BadHostCall, "{body}: {e:?}");
        assert!(e.message.contains("enclave_v1."), "{body}: {}", e.message);
        still_healthy(&sb);
    }
}

#[test]
fn oversized_output_hits_the_output_cap() {
    let sb = sandbox();
    // Claims a 1 GiB output from a 64 KiB memory: the cap is checked before anything is read.
    let r = run_hostile(
        &sb,
        r#"(module
             (import "enclave_v1" "output" (func $out (param i32 i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (data (i32.const 0) "big")
             (func (export "enclave_run") (result i32)
               (call $out (i32.const 0) (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 0x40000000))))"#,
    );
    expect_limit(&r, Limit::OutputBytes);
    // A real 20 MiB buffer, over the 16 MiB default cap.
    let r = run_hostile(
        &sb,
        r#"(module
             (import "enclave_v1" "output" (func $out (param i32 i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 400)
             (data (i32.const 0) "big")
             (func (export "enclave_run") (result i32)
               (call $out (i32.const 0) (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 20971520))))"#,
    );
    expect_limit(&r, Limit::OutputBytes);
    assert!(r.outputs.is_empty());
}

#[test]
fn log_flood_hits_the_log_cap() {
    let sb = sandbox();
    let r = run_hostile(
        &sb,
        r#"(module
             (import "enclave_v1" "log" (func $log (param i32 i32)))
             (memory (export "memory") 1)
             (func (export "enclave_run") (result i32)
               (loop (call $log (i32.const 0) (i32.const 4096)) (br 0)) i32.const 0))"#,
    );
    expect_limit(&r, Limit::LogBytes);
}

#[test]
fn wasi_import_is_refused_before_instantiation() {
    let sb = sandbox();
    let r = run_hostile(
        &sb,
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (func $start unreachable) (start $start)
             (func (export "enclave_run") (result i32) i32.const 0))"#,
    );
    let e = err(&r);
    assert_eq!(e.kind, ErrorKind::ForbiddenImport);
    assert!(
        e.message.contains("wasi_snapshot_preview1.fd_write"),
        "{}",
        e.message
    );
    assert_eq!(
        r.fuel_used, 0,
        "nothing may run before the imports are checked"
    );
}

#[test]
fn unknown_and_mistyped_imports_are_refused() {
    let sb = sandbox();
    for (import, needle) in [
        (
            r#"(import "enclave_v1" "open_file" (func (param i32 i32) (result i32)))"#,
            "enclave_v1.open_file",
        ),
        (
            r#"(import "env" "system" (func (param i32) (result i32)))"#,
            "env.system",
        ),
        (
            r#"(import "enclave_v1" "log" (func (param i64 i64)))"#,
            "signature",
        ),
        (
            r#"(import "enclave_v1" "table" (table 1 funcref))"#,
            "non-function",
        ),
        (r#"(import "env" "g" (global i32))"#, "env.g"),
    ] {
        let r = run_hostile(
            &sb,
            &format!(
                r#"(module {import} (memory (export "memory") 1) (func (export "enclave_run") (result i32) i32.const 0))"#
            ),
        );
        let e = err(&r);
        assert_eq!(e.kind, ErrorKind::ForbiddenImport, "{import}");
        assert!(e.message.contains(needle), "{import}: {}", e.message);
    }
}

#[test]
fn disallowed_features_and_bad_shapes_are_refused() {
    let sb = sandbox();
    for (text, kind) in [
        (
            r#"(module (memory (export "memory") 1 1 shared) (func (export "enclave_run") (result i32) i32.const 0))"#,
            ErrorKind::InvalidModule,
        ),
        (
            r#"(module (memory (export "memory") i64 1) (func (export "enclave_run") (result i32) i32.const 0))"#,
            ErrorKind::InvalidModule,
        ),
        (
            r#"(module (memory (export "memory") 1) (memory 1) (func (export "enclave_run") (result i32) i32.const 0))"#,
            ErrorKind::InvalidModule,
        ),
        (
            r#"(module (func (export "enclave_run") (result i32) i32.const 0))"#,
            ErrorKind::MissingExport,
        ),
        (
            r#"(module (memory (export "memory") 1))"#,
            ErrorKind::MissingExport,
        ),
        (
            r#"(module (memory (export "memory") 1) (func (export "enclave_run") (param i32) (result i32) i32.const 0))"#,
            ErrorKind::MissingExport,
        ),
    ] {
        let r = run_hostile(&sb, text);
        assert_eq!(err(&r).kind, kind, "{text}: {:?}", err(&r));
    }
    for bytes in [
        &b"not wasm"[..],
        &[],
        b"\0asm\x0d\0\x01\0",
        b"\0asm\x01\0\0\0\xff\xff",
    ] {
        let r = sb.run(bytes, spec(bytes, &[], vec![]));
        assert_eq!(err(&r).kind, ErrorKind::InvalidModule, "{bytes:?}");
    }
    still_healthy(&sb);
}

#[test]
fn traps_and_guest_failures_are_reported() {
    let sb = sandbox();
    let r = run_hostile(
        &sb,
        r#"(module (memory (export "memory") 1) (func (export "enclave_run") (result i32) unreachable))"#,
    );
    assert_eq!(err(&r).kind, ErrorKind::Trap);
    let r = run_hostile(
        &sb,
        r#"(module (memory (export "memory") 1) (func (export "enclave_run") (result i32) (i32.load (i32.const 70000))))"#,
    );
    assert_eq!(err(&r).kind, ErrorKind::Trap);
    assert!(
        err(&r).message.contains("out of bounds"),
        "{}",
        err(&r).message
    );
    let r = run_hostile(
        &sb,
        r#"(module (import "enclave_v1" "fail" (func $fail (param i32 i32)))
             (memory (export "memory") 1) (data (i32.const 0) "bad input")
             (func (export "enclave_run") (result i32) (call $fail (i32.const 0) (i32.const 9)) i32.const 1))"#,
    );
    assert_eq!(err(&r).kind, ErrorKind::GuestFailed);
    assert!(err(&r).message.contains("bad input"));
}

#[test]
fn abi_module_in_wat_runs_a_query_and_emits_its_result() {
    let sb = sandbox();
    let m = wat_file("abi_passthrough.wat");
    let sql = "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY district";
    let r = sb.run(&m, spec(&m, &[("sql", sql)], vec![residents_ds(2000)]));
    assert!(r.result.is_ok(), "{:?}", r.result);
    assert_eq!(r.outputs.len(), 1);
    let out = &r.outputs[0];
    assert_eq!(out.name, "result");
    assert_eq!(out.rows, 9, "one row per Yancheng district");
    let rows = out.rows_json().unwrap();
    let total: i64 = rows.iter().map(|v| v["n"].as_i64().unwrap()).sum();
    assert_eq!(total, 2000);
    assert_eq!(r.logs, vec!["passthrough: done".to_string()]);
    // Refused SQL: the guest passes the host's message on; the job is classified by the host.
    for (sql, kind) in [
        ("COPY residents TO '/tmp/x.csv'", ErrorKind::SqlRefused),
        ("SELECT * FROM other_table", ErrorKind::SqlRefused),
        ("SELEC nonsense", ErrorKind::SqlError),
    ] {
        let r = sb.run(&m, spec(&m, &[("sql", sql)], vec![residents_ds(2000)]));
        assert_eq!(err(&r).kind, kind, "{sql}: {:?}", r.result);
        assert!(r.outputs.is_empty());
    }
}

#[test]
fn cached_modules_start_again_without_recompiling() {
    let dir = tempfile::tempdir().unwrap();
    let m = wat_file("ok.wat");
    let sb = Sandbox::new(
        enclave::EngineLimits::default(),
        Some(dir.path().to_path_buf()),
    )
    .unwrap();
    assert!(sb.run(&m, spec(&m, &[], vec![])).result.is_ok());
    let artifacts: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(artifacts.len(), 2, "artifact and checksum: {artifacts:?}");
    // A new sandbox loads the artifact; a corrupted artifact is ignored, not run.
    drop(sb);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "cwasm") {
            let mut bytes = std::fs::read(&p).unwrap();
            let n = bytes.len();
            bytes[n / 2] ^= 0xff;
            std::fs::write(&p, bytes).unwrap();
        }
    }
    let sb = Sandbox::new(
        enclave::EngineLimits::default(),
        Some(dir.path().to_path_buf()),
    )
    .unwrap();
    assert!(sb.run(&m, spec(&m, &[], vec![])).result.is_ok());
}
