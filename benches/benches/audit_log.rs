//! Audit log benchmarks: durable appends per second (single appender, concurrent appenders,
//! batches), full verification of an exported log (entries/s), and inclusion-proof time on a
//! 10M-entry tree. A harness binary: each figure is a median of `ENCLAVE_BENCH_RUNS` runs.
//!
//! `ENCLAVE_BENCH_VERIFY_ENTRIES` (default 1,000,000) and `ENCLAVE_BENCH_TREE_LEAVES`
//! (default 10,000,000) set the sizes; `ENCLAVE_BENCH_DIR` the directory for the log files
//! (default: a temporary directory under `target/`). Lives in this crate so that it builds
//! without wasmtime or DataFusion: `cargo bench -p enclave-audit --bench audit_log`.

use std::io::BufReader;
use std::time::{Duration, Instant};

use enclave_tlog::merkle::{Tree, leaf_hash, verify_inclusion};
use enclave_tlog::{Draft, Log, Signer, verify_log};

fn draft(i: u64) -> Draft {
    Draft::new(
        "developer:bench",
        "query.run",
        format!("job:{:016x}/query:{}", i / 8, i % 8),
    )
    .digest("sql", &leaf_hash(&i.to_le_bytes()))
    .digest("results", &leaf_hash(&(!i).to_le_bytes()))
}

fn signer() -> Signer {
    Signer::from_seed("enclave-domain/bench", [42; 32]).expect("signer")
}

fn fresh_log(dir: &std::path::Path, name: &str) -> Log {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    Log::open(&path, signer()).expect("log").0
}

/// Appends/s with `threads` appenders each appending `per_thread` entries one by one.
fn concurrent(dir: &std::path::Path, threads: u64, per_thread: u64) -> f64 {
    let log = fresh_log(dir, &format!("concurrent-{threads}.jsonl"));
    let t = Instant::now();
    std::thread::scope(|s| {
        for k in 0..threads {
            let log = &log;
            s.spawn(move || {
                for i in 0..per_thread {
                    log.append(draft(k * per_thread + i)).expect("append");
                }
            });
        }
    });
    (threads * per_thread) as f64 / t.elapsed().as_secs_f64()
}

/// Appends/s with `append_all` batches of `batch`.
fn batched(dir: &std::path::Path, total: u64, batch: u64) -> f64 {
    let log = fresh_log(dir, &format!("batched-{batch}.jsonl"));
    let t = Instant::now();
    let mut i = 0;
    while i < total {
        log.append_all((i..i + batch).map(draft).collect())
            .expect("append");
        i += batch;
    }
    total as f64 / t.elapsed().as_secs_f64()
}

/// Median of `runs` measurements.
fn median_of(runs: usize, mut f: impl FnMut() -> f64) -> f64 {
    let mut v: Vec<f64> = (0..runs).map(|_| f()).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runs = enclave_benches::env_or("ENCLAVE_BENCH_RUNS", 3) as usize;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    std::fs::create_dir_all(&target).expect("target dir");
    let tmp = tempfile::tempdir_in(&target).expect("temp dir");
    let dir = std::env::var_os("ENCLAVE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir).expect("bench dir");

    // One fdatasync per commit: measure how long one takes here.
    let single = median_of(runs, || concurrent(&dir, 1, 300));
    println!("durable appends, 1 appender (one commit each):   {single:>10.0} /s");
    for threads in [16u64, 64, 256] {
        let r = median_of(runs, || concurrent(&dir, threads, 20_000 / threads));
        println!("durable appends, {threads:>3} concurrent appenders:       {r:>10.0} /s");
    }
    for batch in [64u64, 1024] {
        let r = median_of(runs, || batched(&dir, 200_000, batch));
        println!("durable appends, batches of {batch:>4}:                {r:>10.0} /s");
    }

    // Full verification of an exported log.
    let n = enclave_benches::env_or("ENCLAVE_BENCH_VERIFY_ENTRIES", 1_000_000);
    let path = dir.join("verify.jsonl");
    {
        let _ = std::fs::remove_file(&path);
        let (log, _) = Log::open(&path, signer()).expect("log");
        let mut i = 0;
        while i < n {
            let k = 4096.min(n - i);
            log.append_all((i..i + k).map(draft).collect())
                .expect("append");
            i += k;
        }
    }
    let bytes = std::fs::metadata(&path).expect("log file").len();
    let key = signer().verifier();
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let f = std::fs::File::open(&path).expect("open");
        let s = verify_log(BufReader::with_capacity(1 << 20, f), &key, None).expect("verifies");
        assert_eq!(s.entries, n);
        times.push(t.elapsed());
    }
    times.sort();
    let t = times[times.len() / 2];
    println!(
        "full verification of {n} entries ({:.0} MiB): {:.2} s = {:.0} entries/s ({:.0} MiB/s)",
        bytes as f64 / (1 << 20) as f64,
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64(),
        bytes as f64 / (1 << 20) as f64 / t.as_secs_f64()
    );
    // Re-opening the log (the writer replays its file into the full tree at start).
    let t = Instant::now();
    let (log, _) = Log::open(&path, signer()).expect("reopen");
    println!(
        "writer start on that log (replay into the tree):  {:.2} s",
        t.elapsed().as_secs_f64()
    );
    drop(log);
    if std::env::var_os("ENCLAVE_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_file(&path);
    }

    // Inclusion proofs on a 10M-leaf tree.
    let leaves = enclave_benches::env_or("ENCLAVE_BENCH_TREE_LEAVES", 10_000_000);
    let t = Instant::now();
    let mut tree = Tree::new();
    for i in 0..leaves {
        tree.push(leaf_hash(&i.to_le_bytes()));
    }
    let built = t.elapsed();
    let root = tree.root(leaves).expect("root");
    let samples = 10_000u64;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut idx = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        idx.push(x % leaves);
    }
    let t = Instant::now();
    let proofs: Vec<_> = idx
        .iter()
        .map(|&i| tree.inclusion_proof(i, leaves).expect("proof"))
        .collect();
    let per_proof = t.elapsed() / samples as u32;
    let t = Instant::now();
    for (&i, p) in idx.iter().zip(&proofs) {
        verify_inclusion(i, leaves, &tree.leaf(i).expect("leaf"), p, &root).expect("verifies");
    }
    let per_verify = t.elapsed() / samples as u32;
    println!(
        "tree of {leaves} leaves built in {:.2} s; inclusion proof: {} per proof ({} hashes), {} per verification",
        built.as_secs_f64(),
        fmt(per_proof),
        proofs[0].len(),
        fmt(per_verify)
    );
}

fn fmt(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}
