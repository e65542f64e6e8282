//! Cost of the egress checks on a 10M-row GROUP BY: a `sql-report` job under the default policy
//! (its output certified, its district labels scanned against the leak index of the residents'
//! IDs, phones and names), the whole job against the evidence step alone, in one process.
//!
//! ```sh
//! cargo bench -p enclave-benches --bench egress_cost
//! # ENCLAVE_BENCH_ROWS (10000000), ENCLAVE_BENCH_RUNS (5)
//! ```
//!
//! The first job builds the snapshot's leak index (what registration does in a governed domain)
//! and is timed on its own; later jobs read it from the engine's cache.

use std::time::{Duration, Instant};

use enclave_benches::{bench_residents, median};
use enclave_egress::evidence::examine;
use enclave_policy::Policy;
use enclave_runtime::Domain;
use enclave_tests::{Job, default_policy_path, engine, example_bytes, target_dir};

const SQL: &str = "SELECT district, age, COUNT(*) AS n FROM residents \
                   GROUP BY district, age ORDER BY district, age";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows = enclave_benches::env_or("ENCLAVE_BENCH_ROWS", 10_000_000);
    let runs = enclave_benches::env_or("ENCLAVE_BENCH_RUNS", 5) as usize;
    let data = bench_residents(rows);
    let dir = tempfile::tempdir_in(target_dir()).unwrap();
    let d = Domain::open(dir.path(), "developer:bench".into()).unwrap();
    let job = Job::new(example_bytes("sql-report"))
        .table("residents", &data)
        .param("sql", SQL)
        .default_policy();
    let t = Instant::now();
    let first = job.run_in(&d).unwrap();
    assert!(first.result.is_ok(), "{:?}", first.result);
    let first_time = t.elapsed();
    let mut jobs: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let r = job.run_in(&d).unwrap();
            assert!(r.result.is_ok(), "{:?}", r.result);
            t.elapsed()
        })
        .collect();
    jobs.sort();

    let (policy, _) = Policy::load(&default_policy_path()).unwrap();
    let snap = &first.manifest.datasets[0];
    let ix = enclave_runtime::evidence::leak_index(
        &d.home,
        &policy,
        "residents",
        &snap.snapshot,
        &std::fs::canonicalize(&data).unwrap(),
        Some(&engine().leaks),
    )
    .unwrap()
    .expect("residents has identifying columns");
    let caps = enclave_runtime::evidence::caps(&policy);
    let mut checks: Vec<Duration> = (0..runs.max(5))
        .map(|_| {
            let t = Instant::now();
            let ev = examine(&first.outputs, &first.queries, &caps, &[ix.as_ref()]);
            let e = t.elapsed();
            assert_eq!(ev[0].verdict.name(), "pass", "{:?}", ev[0].findings);
            e
        })
        .collect();
    checks.sort();
    let (j, c) = (median(&jobs), median(&checks));
    println!(
        "rows: {rows}, output rows: {}, index: {} values, cores: {}",
        first.outputs[0].rows,
        ix.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| step | median |");
    println!("|---|---:|");
    println!(
        "| first job (builds the leak index) | {:.1} ms |",
        first_time.as_secs_f64() * 1e3
    );
    println!("| job, index cached | {:.1} ms |", j.as_secs_f64() * 1e3);
    println!(
        "| evidence alone (examine) | {:.3} ms |",
        c.as_secs_f64() * 1e3
    );
    println!(
        "job ÷ job without its evidence step: {:.4} (goal ≤ 1.1)",
        j.as_secs_f64() / (j.as_secs_f64() - c.as_secs_f64())
    );
}
