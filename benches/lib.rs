//! Helpers of the benchmarks: medians, the shared bench data, a query host for jobs that run no
//! queries.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use enclave_core::{CallCtx, HostError, JobError, Message, QueryHost, QueryRecord};

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

/// The number in environment variable `name`, or `default` when unset or not a number.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of sorted durations.
pub fn median(v: &[Duration]) -> Duration {
    v[v.len() / 2]
}

/// A residents table of `rows` rows for benchmarks (generated once, kept in the target dir).
pub fn bench_residents(rows: u64) -> PathBuf {
    enclave_tests::residents(rows)
}

/// The query host of a job that runs no queries.
pub struct NoQueries;

impl QueryHost for NoQueries {
    fn open(&mut self, _: &CallCtx, _: i32, _: &str) -> Result<(), HostError> {
        Err(HostError::Fatal(JobError::internal("no queries here")))
    }
    fn next(&mut self, _: &CallCtx, _: i32) -> Result<Message, HostError> {
        Err(HostError::Fatal(JobError::internal("no queries here")))
    }
    fn suppressed(&mut self, _: &CallCtx, _: i32) -> Result<i64, HostError> {
        Err(HostError::Fatal(JobError::internal("no queries here")))
    }
    fn close(&mut self, _: i32) {}
    fn records(&self) -> Vec<QueryRecord> {
        vec![]
    }
}
