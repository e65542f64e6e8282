//! Job records: what a developer submitted under an application, where it stands in the queue,
//! and how it ended (status, timings, usage, error, its log entries and transcript).
//!
//! Owns the record's shape and its statuses as a state machine: `queued → running →
//! succeeded | failed`, `running → interrupted` (a restart found its worker gone) and
//! `queued → failed` (refused when a worker took it, or its entity was terminated). It must never
//! hold a value of the domain's data: the specification is the developer's own request (dataset
//! names, parameters, limits), the rest is counts and digests.

use std::fmt;

use enclave_core::{ApplicationId, TableName};
use serde::{Deserialize, Serialize};

use crate::model::{OrgId, UserId};

/// A job's number in the domain's records, shown as `job-N`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct JobNo(pub i64);

impl fmt::Display for JobNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job-{}", self.0)
    }
}

impl JobNo {
    /// Parses `job-N` (N ≥ 1).
    pub fn parse(s: &str) -> Option<JobNo> {
        let n = s.strip_prefix("job-")?;
        if n.is_empty() || n.len() > 18 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n.parse().ok().filter(|n| *n >= 1).map(JobNo)
    }
}

/// Where a job stands.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Accepted, waiting for a worker.
    Queued,
    /// A worker runs it.
    Running,
    /// Ended without error.
    Succeeded,
    /// Ended with an error, or refused when a worker took it.
    Failed,
    /// Its worker stopped while it ran (found on restart); nothing it computed is kept.
    Interrupted,
}

impl JobStatus {
    /// The name in the store and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Interrupted => "interrupted",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(s: &str) -> Option<JobStatus> {
        [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Succeeded,
            JobStatus::Failed,
            JobStatus::Interrupted,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether the job has ended (no later status).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Interrupted
        )
    }

    /// Whether `self → next` is a transition of the state machine.
    pub fn may_become(self, next: JobStatus) -> bool {
        matches!(
            (self, next),
            (JobStatus::Queued, JobStatus::Running | JobStatus::Failed)
                | (
                    JobStatus::Running,
                    JobStatus::Succeeded | JobStatus::Failed | JobStatus::Interrupted
                )
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a job used (counts only).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct JobUsage {
    /// Fuel consumed.
    pub fuel: u64,
    /// Wall-clock time of the sandbox run, ms.
    pub wall_ms: u64,
    /// Peak guest linear memory, bytes.
    pub memory_peak_bytes: u64,
    /// Queries asked.
    pub queries: u64,
    /// Bytes of the dataset snapshots the job was given (what its scans could read at most).
    pub dataset_bytes: u64,
    /// Rows the host returned to the guest.
    pub rows_returned: u64,
    /// Bytes (Arrow IPC) the host returned to the guest.
    pub bytes_returned: u64,
    /// Bytes of the outputs the job emitted.
    pub bytes_emitted: u64,
}

/// How a job ended, as the worker reports it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct JobEnd {
    /// [`JobStatus::Succeeded`], [`JobStatus::Failed`] or [`JobStatus::Interrupted`].
    pub status: JobStatus,
    /// Usage (zero if it never ran).
    pub usage: JobUsage,
    /// `kind: message` of the error that ended it.
    pub error: Option<String>,
    /// First and last sequence number of its log entries.
    pub entries: Option<(u64, u64)>,
    /// Its sealed transcript, as the domain stores it.
    pub transcript: Option<String>,
}

impl JobEnd {
    /// An end with only a status and an error (refused, interrupted).
    pub fn without_run(status: JobStatus, error: String) -> JobEnd {
        JobEnd {
            status,
            usage: JobUsage::default(),
            error: Some(error),
            entries: None,
            transcript: None,
        }
    }
}

/// Largest stored specification of a job (its parameters, at most 1 MiB, and limits), bytes.
pub const MAX_SPEC: usize = 2 << 20;

/// A job record.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct JobRecord {
    /// Its number.
    pub no: JobNo,
    /// The development entity.
    pub org: OrgId,
    /// Who submitted it.
    pub submitter: UserId,
    /// The application it runs under.
    pub application: ApplicationId,
    /// blake3 of its module (stored by that digest in the domain).
    pub module: [u8; 32],
    /// The datasets it reads.
    pub datasets: Vec<TableName>,
    /// The rest of the request (parameters, limits, seed), as the binary wrote it (JSON).
    pub spec: String,
    /// Where it stands.
    pub status: JobStatus,
    /// Unix times.
    pub submitted_at: i64,
    /// When a worker took it.
    pub started_at: Option<i64>,
    /// When it ended.
    pub finished_at: Option<i64>,
    /// The worker that took it.
    pub worker: Option<String>,
    /// The runtime's job id (16 hex digits, the subject `job:<id>` of its log entries and the
    /// name of its transcript), once the worker fixed its manifest.
    pub run: Option<String>,
    /// How it ended (absent while queued or running).
    pub end: Option<JobEnd>,
}
