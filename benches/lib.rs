//! Helpers of the benchmarks: medians and the shared bench data.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Times `f` `runs` times after one warm-up; returns the sorted durations.
pub fn time_runs(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    f();
    let mut v: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    v
}

/// The median of sorted durations.
pub fn median(v: &[Duration]) -> Duration {
    v[v.len() / 2]
}

/// A residents table of `rows` rows for benchmarks (generated once, kept in the target dir).
pub fn bench_residents(rows: u64) -> PathBuf {
    enclave_tests::residents(rows)
}
