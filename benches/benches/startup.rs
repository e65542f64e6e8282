//! Start-up latency of a job whose module is already compiled and cached: the sandbox alone (job
//! thread, store, instance from the pool, `enclave_run` called, report back), and a whole job in
//! a domain (manifest, authorization, session, recording, log entries synced).

use criterion::{Criterion, criterion_group, criterion_main};
use enclave_benches::NoQueries;
use enclave_core::{JobId, Limits, Params, Seed};
use enclave_egress::Collector;
use enclave_sandbox::JobInputs;
use enclave_tests::{Job, engine, example_bytes, temp_domain, wat_file};

fn inputs() -> JobInputs {
    JobInputs {
        job: JobId([1; 8]),
        params: Params::default(),
        seed: Seed([0; 32]),
        clock_ms: 0,
        limits: Limits::default(),
    }
}

fn startup(c: &mut Criterion) {
    let sb = &engine().sandbox;
    let ok = wat_file("lib/ok.wat");
    let prepared = sb.prepare(&ok).unwrap();
    c.bench_function("start cached module (minimal job, sandbox only)", |b| {
        b.iter(|| {
            let f = sb
                .run(&prepared, inputs(), NoQueries, Collector::new(1 << 20))
                .unwrap_or_else(|r| panic!("{:?}", r.result));
            assert!(f.report.result.is_ok());
        })
    });
    // An SDK-built module (≈ the size of a real job): the cache lookup includes hashing it.
    let m = example_bytes("sql-report");
    sb.prepare(&m).unwrap();
    c.bench_function("prepare cached SDK module (blake3 + cache hit)", |b| {
        b.iter(|| sb.prepare(&m).unwrap())
    });
    let (_dir, d) = temp_domain();
    c.bench_function("whole minimal job in a domain (recorded, logged)", |b| {
        b.iter(|| {
            let r = Job::new(ok.clone()).run_in(&d).unwrap();
            assert!(r.result.is_ok());
        })
    });
}

criterion_group!(benches, startup);
criterion_main!(benches);
