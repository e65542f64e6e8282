//! Enclave against native execution, same data, same run:
//! - `sql-report` with a GROUP BY aggregate vs the same SQL in native DataFusion;
//! - the same job under the default policy (allow-listed grammar, a host-built plan with subject
//!   accounting and thresholds, noised SUM/AVG of `income`) vs under the open policy, and under
//!   the default policy without DP (exact SUM/AVG, each cell's dominance checked);
//! - `linear-model` (rows streamed into the guest, OLS in Wasm) vs the same OLS code compiled
//!   natively over the same DataFusion stream; also rows/s streamed into the guest.
//!
//! Enclave runs are whole jobs in a domain: manifest, authorization, the query session, every
//! host-call result streamed into a sealed (AES-256-GCM) transcript on disk, finished and synced,
//! and the log entries committed before the run counts as done.
//!
//! The GROUP BY is also timed in DuckDB (the Python package, `pip install duckdb`; skipped
//! when it is missing) on the same file, in the same run, each run a fresh connection that
//! reads the Parquet file as the native DataFusion side does.
//!
//! `cargo bench -p enclave-benches --bench vs_native` (ENCLAVE_BENCH_ROWS, ENCLAVE_BENCH_RUNS).

use std::time::Duration;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Float64Type;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use enclave_benches::{bench_residents, median, time_runs};
use enclave_runtime::report::rows_json;
use enclave_tests::{Job, example_bytes, temp_domain};
use futures::StreamExt;

const GROUP_BY: &str = "SELECT district, age_band, COUNT(*) AS n, SUM(income) AS total, AVG(income) AS mean \
                        FROM residents GROUP BY district, age_band ORDER BY district, age_band";
const OLS_SQL: &str = "SELECT CAST(age AS DOUBLE) AS age, CAST(age * age AS DOUBLE) AS age_sq, \
                       CAST(income AS DOUBLE) AS income FROM residents";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The same SQL in DuckDB (Python), `runs` times: the median, or `None` without DuckDB.
fn duckdb_median(path: &std::path::Path, sql: &str, runs: usize) -> Option<Duration> {
    const SCRIPT: &str = "import duckdb, statistics, sys, time\n\
        path, sql, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])\n\
        times = []\n\
        for _ in range(runs):\n\
        \x20   t = time.perf_counter()\n\
        \x20   c = duckdb.connect()\n\
        \x20   c.execute(\"CREATE VIEW residents AS SELECT * FROM read_parquet('\" + path + \"')\")\n\
        \x20   assert c.sql(sql).fetchall()\n\
        \x20   times.append(time.perf_counter() - t)\n\
        print(statistics.median(times))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(path)
        .arg(sql)
        .arg(runs.to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "DuckDB skipped: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

fn main() {
    // `cargo test --benches` passes `--bench`-less args; only run when benchmarking.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows = enclave_benches::env_or("ENCLAVE_BENCH_ROWS", 10_000_000);
    let runs = enclave_benches::env_or("ENCLAVE_BENCH_RUNS", 5) as usize;
    eprintln!("preparing {rows} residents rows…");
    let path = bench_residents(rows);
    let (_dir, domain) = temp_domain();
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
    let report = Job::new(example_bytes("sql-report"))
        .table("residents", &path)
        .param("sql", GROUP_BY);
    let enclave_agg = time_runs(runs, || {
        let r = report.run_in(&domain).unwrap();
        assert!(r.result.is_ok(), "{:?}", r.result);
    });
    // The same job under the domain's default policy (its budget raised: every run spends ε).
    let policy = std::fs::read_to_string(enclave_tests::default_policy_path())
        .unwrap()
        .replace("epsilon = 20.0", "epsilon = 1e9");
    let mut governed = report.clone();
    governed.policy = enclave_runtime::PolicySource::Text {
        name: "default policy, large budget".into(),
        text: policy,
    };
    let governed_agg = time_runs(runs, || {
        let r = governed.run_in(&domain).unwrap();
        assert!(r.result.is_ok(), "{:?}", r.result);
        assert!(r.queries[0].dp.is_some(), "the governed query is noised");
    });
    // The same policy without differential privacy: income's sums and means are exact, so each
    // cell also gets its dominance code (N-K and p %) from the host.
    let mut exact = governed.clone();
    exact.policy = enclave_runtime::PolicySource::Text {
        name: "default policy, no DP".into(),
        text: std::fs::read_to_string(enclave_tests::default_policy_path())
            .unwrap()
            .replace("require = [\"L3\"]", "require = []"),
    };
    let exact_agg = time_runs(runs, || {
        let r = exact.run_in(&domain).unwrap();
        assert!(r.result.is_ok(), "{:?}", r.result);
        assert!(r.queries[0].dp.is_none() && r.queries[0].dominance_checked);
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

    let duck_agg = duckdb_median(&path, GROUP_BY, runs);

    // 2. OLS: rows streamed into the guest vs native code on the native stream.
    let lm = Job::new(example_bytes("linear-model")).table("residents", &path);
    let mut guest_coef = String::new();
    let enclave_ols = time_runs(runs, || {
        let r = lm.run_in(&domain).unwrap();
        assert!(r.result.is_ok(), "{:?}", r.result);
        assert_eq!(r.queries[0].rows, rows);
        guest_coef = format!("{:?}", rows_json(&r.outputs[0]).unwrap());
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

    let (ea, ga, na, eo, no) = (
        median(&enclave_agg),
        median(&governed_agg),
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
    if let Some(d) = duck_agg {
        println!(
            "| sql-report GROUP BY vs DuckDB (Python package) | {:.1} | {:.1} | {:.3} |",
            ms(ea),
            ms(d),
            ea.as_secs_f64() / d.as_secs_f64()
        );
        println!(
            "| native DataFusion vs DuckDB, the same GROUP BY | {:.1} | {:.1} | {:.3} |",
            ms(na),
            ms(d),
            na.as_secs_f64() / d.as_secs_f64()
        );
    }
    println!(
        "| sql-report GROUP BY under the default policy (grammar, accounting, DP) vs the open policy | {:.1} | {:.1} | {:.3} |",
        ms(ga),
        ms(ea),
        ga.as_secs_f64() / ea.as_secs_f64()
    );
    let xa = median(&exact_agg);
    println!(
        "| the same under the default policy without DP (grammar, accounting, exact SUM/AVG with their cells' dominance) vs the open policy | {:.1} | {:.1} | {:.3} |",
        ms(xa),
        ms(ea),
        xa.as_secs_f64() / ea.as_secs_f64()
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
