//! Cost of the difference check on a 10M-row GROUP BY: the same `sql-report` job (exact counts,
//! sums and means by district and age band, under the default policy without noise, so that
//! every cell is checked) run against different sets of cells released to its entity before,
//! and, in the same run, the same SQL in native DataFusion:
//!
//! - none released;
//! - 10 000 released cells, none within k subjects of a cell of the query (the common case:
//!   counts are compared, nothing more is read);
//! - the query's own cells released (same definitions: the same cells, nothing more is read);
//! - the query's own cells released under other definitions (the worst case: every cell is
//!   within k of a released one, so the subjects of every cell are computed and compared);
//! - computing the cells a job was shown, with their subjects, at its first release
//!   (`release_cells`: the job re-derived, then one pass over the subjects per query);
//! - the same GROUP BY with a WHERE on a restricted column (`age >= 0`, every row), whose cells'
//!   complements within the population before that condition are counted in one more pass.
//!
//! ```sh
//! cargo bench -p enclave-benches --bench difference_cost
//! # ENCLAVE_BENCH_ROWS (10000000), ENCLAVE_BENCH_RUNS (5)
//! ```

use std::sync::Arc;
use std::time::Duration;

use datafusion::prelude::{ParquetReadOptions, SessionContext};
use enclave_benches::{bench_residents, median, time_runs};
use enclave_egress::difference::{Cell, CellDef, Cells, Count, SubjectSet};
use enclave_runtime::{Domain, PolicySource};
use enclave_tests::{Job, default_policy_path, engine, example_bytes, target_dir};

const SQL: &str = "SELECT district, age_band, COUNT(*) AS n, SUM(income) AS total, \
                   AVG(income) AS mean FROM residents GROUP BY district, age_band \
                   ORDER BY district, age_band";
const SQL_WHERE: &str = "SELECT district, age_band, COUNT(*) AS n, SUM(income) AS total, \
                         AVG(income) AS mean FROM residents WHERE age >= 0 \
                         GROUP BY district, age_band ORDER BY district, age_band";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows = enclave_benches::env_or("ENCLAVE_BENCH_ROWS", 10_000_000);
    let runs = enclave_benches::env_or("ENCLAVE_BENCH_RUNS", 5) as usize;
    let data = bench_residents(rows);
    let dir = tempfile::tempdir_in(target_dir()).unwrap();
    let d = Domain::open(dir.path(), "developer:bench".into()).unwrap();
    let mut job = Job::new(example_bytes("sql-report"))
        .table("residents", &data)
        .param("sql", SQL);
    job.policy = PolicySource::Text {
        name: "default policy, no DP".into(),
        text: std::fs::read_to_string(default_policy_path())
            .unwrap()
            .replace("require = [\"L3\"]", "require = []"),
    };
    let run = |released: &Arc<Cells>| {
        let mut s = job.submission();
        s.released = Arc::clone(released);
        let r = d
            .authorize(d.submit(s).unwrap())
            .and_then(|a| d.run(a, engine()))
            .unwrap();
        assert!(r.result.is_ok(), "{:?}", r.result);
        r
    };

    // The query's cells, as a first release computes them.
    let first = run(&Arc::new(Cells::new()));
    let shown = first.queries[0].rows;
    let mut own = Cells::new();
    let release = time_runs(runs.min(3), || {
        let (c, rep) =
            enclave_runtime::replay::release_cells(&d, engine(), first.manifest.job).unwrap();
        assert!(rep.identical);
        own = c;
    });
    let own_bytes = own.encode().len();

    let none = Arc::new(Cells::new());
    let mut far = Cells::new();
    for i in 0..10_000u64 {
        let mut set = SubjectSet::new();
        set.insert(i as u32);
        far.push(Cell {
            def: CellDef(*blake3::hash(&i.to_le_bytes()).as_bytes()),
            family: None,
            count: Count::exact(1_000_000_000 + i * 100),
            set,
        });
    }
    let far = Arc::new(far);
    let same = Arc::new(own.clone());
    let mut renamed = Cells::new();
    for (i, c) in own.cells().iter().enumerate() {
        renamed.push(Cell {
            def: CellDef(*blake3::hash(format!("other {i}").as_bytes()).as_bytes()),
            family: None,
            count: c.count,
            set: c.set.clone(),
        });
    }
    let renamed = Arc::new(renamed);

    let mut results = Vec::new();
    for (what, released) in [
        ("none released", &none),
        ("10 000 released cells, none within k", &far),
        ("its own cells released (same definitions)", &same),
        (
            "its own cells released under other definitions (every cell's subjects computed)",
            &renamed,
        ),
    ] {
        let t = time_runs(runs, || {
            let r = run(released);
            assert_eq!(r.queries[0].rows, shown, "{what}: nothing is suppressed");
        });
        results.push((what, median(&t)));
    }

    // A restricted condition: one more pass counts each cell's open total.
    let mut with_where = job.clone();
    with_where.params = vec![("sql".into(), SQL_WHERE.into())];
    let where_runs = time_runs(runs, || {
        let r = with_where.run_in(&d).unwrap();
        assert!(r.result.is_ok(), "{:?}", r.result);
        assert_eq!(r.queries[0].rows, shown);
    });
    results.push((
        "with `WHERE age >= 0` (restricted: each cell's complement counted), none released",
        median(&where_runs),
    ));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let native = time_runs(runs, || {
        rt.block_on(async {
            let ctx = SessionContext::new();
            ctx.register_parquet(
                "residents",
                data.to_str().unwrap(),
                ParquetReadOptions::default(),
            )
            .await
            .unwrap();
            let b = ctx.sql(SQL).await.unwrap().collect().await.unwrap();
            assert!(!b.is_empty());
        })
    });
    let native = median(&native);

    println!(
        "rows: {rows}, runs: {runs} (median), cores: {}, cells shown: {shown}, their kept \
         encoding: {own_bytes} bytes",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let base = results[0].1;
    println!(
        "| job (sql-report GROUP BY, exact cells) | ms | vs none released | vs native DataFusion |"
    );
    println!("|---|---:|---:|---:|");
    for (what, t) in &results {
        println!(
            "| {what} | {:.1} | {:.3} | {:.3} |",
            ms(*t),
            t.as_secs_f64() / base.as_secs_f64(),
            t.as_secs_f64() / native.as_secs_f64()
        );
    }
    println!(
        "| native DataFusion, the same SQL | {:.1} | | 1.000 |",
        ms(native)
    );
    let r = median(&release);
    println!(
        "| computing its cells at the first release (re-derivation and subjects) | {:.1} | {:.3} | {:.3} |",
        ms(r),
        r.as_secs_f64() / base.as_secs_f64(),
        r.as_secs_f64() / native.as_secs_f64()
    );
}
