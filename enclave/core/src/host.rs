//! The interfaces between the sandbox and the world: [`QueryHost`] (where a job's SQL goes) and
//! [`OutputSink`] (where its outputs go).
//!
//! Owns the contract that lets the sandbox run a job without knowing what answers it: the live
//! query host (DataFusion, in `enclave-query`), the recording host that seals every answer into
//! a transcript and the replaying host that plays them back (`enclave-record`) all implement
//! [`QueryHost`]; the egress collector implements [`OutputSink`]. Everything crossing here is
//! bytes and typed errors. It must never carry a type of the query engine or of wasmtime.

use std::sync::Arc;
use std::time::Instant;

use enclave_abi::{ErrorCode, OutputKind};
use serde::Serialize;

use crate::digest::Digest;
use crate::error::JobError;

/// One Arrow IPC message of a query result, shared (not copied) between the host, the recording
/// and the guest's pending read. Empty means the result has ended.
pub type Message = Arc<Vec<u8>>;

/// What a host call may return instead of a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Returned to the guest as a negative code (the job may go on); `error` is what
    /// `last_error` reports and how the job is classified if it then fails.
    #[error("{error}")]
    Refused {
        /// The code returned to the guest.
        code: ErrorCode,
        /// Why.
        error: JobError,
    },
    /// Ends the job: a limit, the wall clock, a recording failure, a replay divergence.
    #[error("{0}")]
    Fatal(JobError),
}

impl HostError {
    /// A refusal with `code`.
    pub fn refused(code: ErrorCode, error: JobError) -> HostError {
        HostError::Refused { code, error }
    }
}

/// The context of one host call.
#[derive(Debug, Clone, Copy)]
pub struct CallCtx {
    /// When the job started.
    pub started: Instant,
    /// The job's wall-clock limit in milliseconds; blocking work must stop by `deadline`.
    pub wall_clock_ms: u64,
    /// `started` + the wall-clock limit.
    pub deadline: Instant,
}

impl CallCtx {
    /// The context of a job that started at `started` with `wall_clock_ms` to run.
    pub fn new(started: Instant, wall_clock_ms: u64) -> CallCtx {
        CallCtx {
            started,
            wall_clock_ms,
            deadline: started + std::time::Duration::from_millis(wall_clock_ms),
        }
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> std::time::Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The error that ends a job past its deadline.
    pub fn wall_clock_error(&self) -> JobError {
        let used = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        JobError::limit(crate::error::Limit::WallClock, used, self.wall_clock_ms)
    }
}

/// Where a job's SQL goes. Handles are chosen by the sandbox (small integers, reused after
/// close) and are the same in a replay as in the recorded run.
pub trait QueryHost: Send + std::any::Any {
    /// Starts `sql` under `handle`.
    fn open(&mut self, ctx: &CallCtx, handle: i32, sql: &str) -> Result<(), HostError>;
    /// The next message of query `handle` (schema, batches, end-of-stream marker), or an empty
    /// message once the stream has ended.
    fn next(&mut self, ctx: &CallCtx, handle: i32) -> Result<Message, HostError>;
    /// Groups the threshold suppressed in query `handle` so far.
    fn suppressed(&mut self, ctx: &CallCtx, handle: i32) -> Result<i64, HostError>;
    /// Closes query `handle` (its execution stops).
    fn close(&mut self, handle: i32);
    /// What each query opened so far did, in open order.
    fn records(&self) -> Vec<QueryRecord>;
}

/// Where a job's outputs go once the sandbox has checked their name and charged their size.
pub trait OutputSink: Send + std::any::Any {
    /// Takes output `name` of `kind`; a refusal goes back to the guest, a fatal error ends the
    /// job (an output over a limit).
    fn output(&mut self, name: &str, kind: OutputKind, bytes: &[u8]) -> Result<(), HostError>;
}

/// What one query did, for the job report and the log. Never the SQL text itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryRecord {
    /// blake3 of the SQL text (the log keys it with the domain key before writing it).
    pub sql: Digest,
    /// Length of the SQL text in bytes.
    pub sql_bytes: u64,
    /// Batches streamed to the guest.
    pub batches: u64,
    /// Rows streamed to the guest.
    pub rows: u64,
    /// IPC bytes streamed to the guest.
    pub bytes: u64,
    /// Groups the threshold suppressed.
    pub suppressed_groups: u64,
    /// Groups suppressed because a restricted sum's or mean's cell was dominated (the policy's
    /// `[disclosure]` rules), shown like `suppressed_groups`.
    pub dominated_groups: u64,
    /// Cells suppressed by the difference check: each differed from a cell released to the
    /// development entity, or shown to this job before, by fewer than k subjects (or was the
    /// smallest of a grouped query whose shown cells' union did).
    #[serde(skip_serializing_if = "is_zero")]
    pub differenced_groups: u64,
    /// Whether the cells of some restricted SUM or AVG were checked for dominance.
    pub dominance_checked: bool,
    /// Whether some cell kept had negative contributions, where dominance is undefined (ACRO
    /// asks for a review): its output is flagged.
    pub dominance_undefined: bool,
    /// The refusal or failure returned to the guest, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// blake3 of the executed (rewritten) plan; absent when planning failed or in replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Digest>,
    /// What the query spent of the privacy budget, when it was noised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dp: Option<QueryDp>,
    /// Whether it read columns that only a row-level grant opened: what the job computes from
    /// them is derived and leaves only through review.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub row_level_grant: bool,
    /// Whether the host built it from the aggregation grammar (threshold- and DP-checked): its
    /// result is an aggregate the host certifies.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub aggregate: bool,
    /// Whether its result rows are groups of an aggregation rather than rows of data.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub grouped: bool,
    /// The table digest (`enclave_egress::table_digest`) of the whole result of an aggregate
    /// query or of one over open columns only, once it has ended (absent for other queries and
    /// for results too large to keep).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Digest>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The privacy spending of one noised query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryDp {
    /// `laplace` or `gaussian`.
    pub mechanism: String,
    /// ε of the query.
    pub epsilon: f64,
    /// δ of the query.
    pub delta: f64,
    /// Statistics noised.
    pub statistics: u64,
    /// Per dataset charged: spent (this query included) and left.
    pub budget: Vec<DatasetBudget>,
    /// Per noised statistic: its noise.
    pub noise: Vec<NoiseNote>,
}

/// A dataset's privacy budget after a charge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetBudget {
    /// The dataset.
    pub dataset: String,
    /// ε spent.
    pub spent_epsilon: f64,
    /// δ spent.
    pub spent_delta: f64,
    /// ε left.
    pub left_epsilon: f64,
    /// δ left.
    pub left_delta: f64,
}

/// The noise of one statistic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoiseNote {
    /// The statistic (its output column).
    pub statistic: String,
    /// Laplace scale or Gaussian σ.
    pub scale: f64,
    /// Half-width of the interval that holds the noise with probability 95 %.
    pub error95: f64,
}

impl QueryRecord {
    /// A record for `sql` that has streamed nothing yet.
    pub fn new(sql: &str) -> QueryRecord {
        QueryRecord {
            sql: Digest::of(sql.as_bytes()),
            sql_bytes: sql.len() as u64,
            batches: 0,
            rows: 0,
            bytes: 0,
            suppressed_groups: 0,
            dominated_groups: 0,
            differenced_groups: 0,
            dominance_checked: false,
            dominance_undefined: false,
            error: None,
            plan: None,
            dp: None,
            row_level_grant: false,
            aggregate: false,
            grouped: false,
            result: None,
        }
    }
}
