//! Start-up latency of a job whose module is already compiled and cached: from `run_prepared`
//! (job thread, store, instance from the pool, `enclave_run` called) to the report back.

use criterion::{Criterion, criterion_group, criterion_main};
use enclave_tests::{example, sandbox, spec, wat_file};

fn startup(c: &mut Criterion) {
    let sb = sandbox();
    let ok = wat_file("ok.wat");
    let prepared = sb.prepare(&ok).unwrap();
    c.bench_function("start cached module (minimal job, run_prepared)", |b| {
        b.iter(|| {
            let r = sb.run_prepared(&prepared, spec(&ok, &[], vec![]));
            assert!(r.result.is_ok());
        })
    });
    // An SDK-built module (≈ the size of a real job): the cache lookup includes hashing it.
    let m = std::fs::read(example("sql-report")).unwrap();
    sb.prepare(&m).unwrap();
    c.bench_function("prepare cached SDK module (blake3 + cache hit)", |b| {
        b.iter(|| sb.prepare(&m).unwrap())
    });
    let engine_only = sb.prepare(&m).unwrap();
    c.bench_function("instantiate SDK module (run_prepared, no query)", |b| {
        b.iter(|| {
            // No `sql` parameter: the job starts, reads its parameters and fails fast.
            let r = sb.run_prepared(&engine_only, spec(&m, &[], vec![]));
            assert!(r.result.is_err());
        })
    });
}

criterion_group!(benches, startup);
criterion_main!(benches);
