//! Enclave against native execution, same data, same run:
//! - `sql-report` with a GROUP BY aggregate vs the same SQL in native DataFusion;
//! - `linear-model` (rows streamed into the guest, OLS in Wasm) vs the same OLS code compiled
//!   natively over the same DataFusion stream; also rows/s streamed into the guest.
//!
//! Enclave runs are recorded as in a domain: every host-call result streams into a sealed
//! (AES-256-GCM) transcript on disk, finished and synced before the run counts as done.
//!
//! `cargo bench -p enclave-benches --bench vs_native` (ENCLAVE_BENCH_ROWS, ENCLAVE_BENCH_RUNS).

use std::time::Duration;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Float64Type;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use enclave::query::Dataset;
use enclave_benches::{bench_residents, median, time_runs};
use enclave_tests::{example, sandbox, spec};
use futures::StreamExt;

const GROUP_BY: &str = "SELECT district, age_band, COUNT(*) AS n, SUM(income) AS total, AVG(income) AS mean \
                        FROM residents GROUP BY district, age_band ORDER BY district, age_band";
const OLS_SQL: &str = "SELECT CAST(age AS DOUBLE) AS age, CAST(age * age AS DOUBLE) AS age_sq, \
                       CAST(income AS DOUBLE) AS income FROM residents";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `spec` with its host-call results streaming into a sealed transcript in `dir`, as a
/// domain run does, and finishes (seals, syncs) the transcript.
fn recorded(
    sb: &enclave::Sandbox,
    prepared: &std::sync::Arc<enclave::sandbox::Prepared>,
    mut spec: enclave::JobSpec,
    dir: &std::path::Path,
) -> enclave::JobReport {
    use enclave::audit::recorder::Recorder;
    use enclave::audit::transcript::{Header, SealedWriter};
    let path = dir.join(format!("{}.sealed", spec.job_id));
    let writer = SealedWriter::create(&[7; 32], &path, &spec.job_id).unwrap();
    let (sink, recorder) = Recorder::start(writer).unwrap();
    spec.tape_sink = Some(sink);
    let header = Header {
        version: 1,
        job_id: spec.job_id.clone(),
        module_blake3: String::new(),
        params: spec.params.clone(),
        seed: String::new(),
        clock_ms: 0,
        limits: spec.limits.clone(),
        target_partitions: spec.target_partitions,
        datasets: vec![],
        policy: None,
        application: String::new(),
        outputs: vec![],
        result: Ok(()),
    };
    let t = std::time::Instant::now();
    let r = sb.run_prepared(prepared, spec);
    let t1 = t.elapsed();
    recorder.finish(&header).unwrap();
    if std::env::var_os("ENCLAVE_BENCH_VERBOSE").is_some() {
        eprintln!(
            "run {:?}, finish {:?}, transcript {} MiB",
            t1,
            t.elapsed() - t1,
            std::fs::metadata(&path).map(|m| m.len() >> 20).unwrap_or(0)
        );
    }
    r
}

fn main() {
    // `cargo test --benches` passes `--bench`-less args; only run when benchmarking.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows = env("ENCLAVE_BENCH_ROWS", 10_000_000);
    let runs = env("ENCLAVE_BENCH_RUNS", 5) as usize;
    eprintln!("preparing {rows} residents rows…");
    let path = bench_residents(rows);
    let ds = || vec![Dataset::new("residents", &path).unwrap()];
    let sb = sandbox();
    let transcripts = tempfile::tempdir_in(enclave_tests::target_dir()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let native_ctx = || async {
        let ctx = SessionContext::new();
        ctx.register_parquet(
            "residents",
            path.to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
        ctx
    };

    // 1. GROUP BY aggregate.
    let report = std::fs::read(example("sql-report")).unwrap();
    let prepared = sb.prepare(&report).unwrap();
    let enclave_agg = time_runs(runs, || {
        let r = recorded(
            &sb,
            &prepared,
            spec(&report, &[("sql", GROUP_BY)], ds()),
            transcripts.path(),
        );
        assert!(r.result.is_ok(), "{:?}", r.result);
    });
    let native_agg = time_runs(runs, || {
        rt.block_on(async {
            let batches = native_ctx()
                .await
                .sql(GROUP_BY)
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            assert!(!batches.is_empty());
        })
    });

    // 2. OLS: rows streamed into the guest vs native code on the native stream.
    let lm = std::fs::read(example("linear-model")).unwrap();
    let prepared = sb.prepare(&lm).unwrap();
    let mut guest_coef = String::new();
    let enclave_ols = time_runs(runs, || {
        let r = recorded(&sb, &prepared, spec(&lm, &[], ds()), transcripts.path());
        assert!(r.result.is_ok(), "{:?}", r.result);
        assert_eq!(r.queries[0].rows, rows);
        guest_coef = format!("{:?}", r.outputs[0].rows_json().unwrap());
    });
    let mut native_coef = Vec::new();
    let native_ols = time_runs(runs, || {
        native_coef = rt.block_on(async {
            let mut stream = native_ctx()
                .await
                .sql(OLS_SQL)
                .await
                .unwrap()
                .execute_stream()
                .await
                .unwrap();
            let mut model = ols::Ols::new(2);
            while let Some(b) = stream.next().await {
                let b = b.unwrap();
                let cols: Vec<&[f64]> = b
                    .columns()
                    .iter()
                    .map(|c| c.as_primitive::<Float64Type>().values().as_ref())
                    .collect();
                model.add_columns(&cols[..2], cols[2]).unwrap();
            }
            model.solve().unwrap()
        });
    });

    let (ea, na, eo, no) = (
        median(&enclave_agg),
        median(&native_agg),
        median(&enclave_ols),
        median(&native_ols),
    );
    println!(
        "rows: {rows}, runs: {runs} (median), cores: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| benchmark | Enclave (ms) | native (ms) | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| sql-report GROUP BY vs DataFusion | {:.1} | {:.1} | {:.3} |",
        ms(ea),
        ms(na),
        ea.as_secs_f64() / na.as_secs_f64()
    );
    println!(
        "| linear-model OLS vs native OLS | {:.1} | {:.1} | {:.3} |",
        ms(eo),
        ms(no),
        eo.as_secs_f64() / no.as_secs_f64()
    );
    println!(
        "rows/s streamed into the guest (linear-model): {:.2} M",
        rows as f64 / eo.as_secs_f64() / 1e6
    );
    println!("guest coefficients: {guest_coef}");
    println!("native coefficients: {native_coef:?}");
}
