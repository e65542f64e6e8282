//! Job start-up does not grow with data or history: a whole `enclave run` process (release
//! build, module cached) running a `SELECT 1` job over the eight TPC-H SF10 tables in a domain
//! that has already run 10,000 jobs, against the same job on a fresh domain with one small table.
//!
//! ```sh
//! pip install tpchgen-cli==4.0.0  # or: cargo install tpchgen-cli
//! tpchgen-cli parquet -s 10 --output-dir target/tpch-sf10
//! cargo build --release -p enclave-cli
//! cargo bench -p enclave-benches --bench job_start
//! # ENCLAVE_TPCH_DIR (target/tpch-sf10), ENCLAVE_BENCH_HISTORY (10000), ENCLAVE_BENCH_RUNS (21)
//! ```
//!
//! The history is made in-process through the runtime (the same path `enclave run` takes), each
//! job reading every TPC-H table's snapshot; the measured runs are separate processes, the two
//! domains' runs alternating after the history has been synced to disk.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use enclave_benches::median;
use enclave_runtime::Domain;
use enclave_tests::{Job, example, example_bytes, residents, target_dir};

/// One `enclave run` process: its wall time.
fn cli_run(enclave: &Path, home: &Path, tables: &[(String, PathBuf)]) -> Duration {
    let mut c = Command::new(enclave);
    c.arg("run")
        .arg("--home")
        .arg(home)
        .arg("--module")
        .arg(example("sql-report"))
        .args(["--param", "sql=SELECT 1 AS one", "--json"]);
    for (name, path) in tables {
        c.arg("--table").arg(format!("{name}={}", path.display()));
    }
    let t = Instant::now();
    let out = c.output().expect("enclave runs");
    let elapsed = t.elapsed();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

/// Runs of the two domains, alternating (drift of the machine — writeback of what the history
/// wrote, other load — falls on both alike), after one first run of each (the module compiled
/// into the domain's cache, new files hashed).
fn measure_both(
    enclave: &Path,
    a: (&Path, &[(String, PathBuf)]),
    b: (&Path, &[(String, PathBuf)]),
    runs: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    for (name, (home, tables)) in [("fresh", a), ("with history", b)] {
        let first = cli_run(enclave, home, tables);
        eprintln!("  first run of the {name} domain (module compiled, files hashed): {first:?}");
    }
    let (mut va, mut vb) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        va.push(cli_run(enclave, a.0, a.1));
        vb.push(cli_run(enclave, b.0, b.1));
    }
    va.sort();
    vb.sort();
    (va, vb)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let enclave = target_dir().join("release/enclave");
    if !enclave.exists() {
        eprintln!(
            "{} missing: cargo build --release -p enclave-cli",
            enclave.display()
        );
        std::process::exit(2);
    }
    let tpch = std::env::var_os("ENCLAVE_TPCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| enclave_tests::root().join("target/tpch-sf10"));
    let mut tables: Vec<(String, PathBuf)> = std::fs::read_dir(&tpch)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (see the header for how to make it)",
                tpch.display()
            )
        })
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| {
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("t")
                .to_owned();
            (name, p)
        })
        .collect();
    tables.sort();
    let bytes: u64 = tables
        .iter()
        .map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let history = enclave_benches::env_or("ENCLAVE_BENCH_HISTORY", 10_000);
    let runs = enclave_benches::env_or("ENCLAVE_BENCH_RUNS", 21) as usize;

    let fresh = tempfile::tempdir_in(target_dir()).unwrap();
    let small = vec![("residents".to_owned(), residents(1000))];

    eprintln!(
        "domain with {history} earlier jobs over {} TPC-H tables ({:.1} GiB):",
        tables.len(),
        bytes as f64 / (1u64 << 30) as f64
    );
    let old = tempfile::tempdir_in(target_dir()).unwrap();
    {
        let d = Domain::open(old.path(), "developer:bench".into()).unwrap();
        let mut job = Job::new(example_bytes("sql-report")).param("sql", "SELECT 1 AS one");
        for (n, p) in &tables {
            job = job.table(n, p);
        }
        let t = Instant::now();
        for i in 0..history {
            let r = job.run_in(&d).unwrap();
            assert!(r.result.is_ok(), "{:?}", r.result);
            if (i + 1) % 1000 == 0 {
                eprintln!("  {} jobs in {:?}", i + 1, t.elapsed());
            }
        }
        eprintln!("  log: {} entries", d.log.size());
    }
    // What the history wrote reaches the disk before anything is timed.
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_secs(2));
    eprintln!("timing both domains, alternating:");
    let (a, b) = measure_both(
        &enclave,
        (fresh.path(), &small),
        (old.path(), &tables),
        runs,
    );

    let (ma, mb) = (median(&a), median(&b));
    println!(
        "runs: {runs} (median), history: {history} jobs, cores: {}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| `enclave run` of a cached SELECT 1 job | median (ms) | min (ms) | max (ms) |");
    println!("|---|---:|---:|---:|");
    println!(
        "| fresh domain, one 1,000-row table | {:.1} | {:.1} | {:.1} |",
        ms(ma),
        ms(a[0]),
        ms(a[a.len() - 1])
    );
    println!(
        "| {history} earlier jobs, {} TPC-H SF10 tables ({:.1} GiB) | {:.1} | {:.1} | {:.1} |",
        tables.len(),
        bytes as f64 / (1u64 << 30) as f64,
        ms(mb),
        ms(b[0]),
        ms(b[b.len() - 1])
    );
    println!(
        "ratio: {:.3} (goal ≤ 1.2)",
        mb.as_secs_f64() / ma.as_secs_f64()
    );
}
