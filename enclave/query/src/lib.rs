//! The query host: runs a job's SQL over its granted datasets with DataFusion, under the policy.
//!
//! Owns the per-job DataFusion session ([`session`]) and everything in front of and behind it:
//! the SQL guard ([`guard`]: plain queries only, bounded size and complexity), the plan checker
//! that enforces the policy's column rules ([`check`]), the group threshold ([`threshold`]),
//! the host-only functions (pseudonyms, the threshold filter) and the job's function registry
//! ([`functions`], [`registry`]: no wall clock, no real randomness, no host facts, amplifying
//! functions bounded by the query memory), the result stream (`stream`: deterministic order,
//! bounded run-ahead; batches put in wire form by `enclave_egress::wire`) and the [`QueryHost`](enclave_core::QueryHost) the
//! sandbox talks to ([`host`]). A session exists only for an [`Authorization`]. It must never hand
//! a guest a way to the filesystem, the runtime configuration or the host, and its errors must
//! never carry data values.

pub mod cancel;
pub mod check;
pub mod difference;
pub mod disclosure;
pub mod functions;
pub mod grammar;
mod guard;
pub mod host;
pub mod noise;
pub mod profile;
mod registry;
pub mod session;
mod store;
mod stream;
mod tables;
mod uniqueness;

use std::path::PathBuf;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use enclave_core::{ErrorKind, JobError, Limit, TableName};

pub use enclave_policy::Authorization;
pub use guard::{classify_exec_error, sql_complexity};
pub use host::LiveHost;
pub use session::{DpReport, JobSession, Privacy, SessionLimits, Started};
pub use store::RestrictedStores;

/// A dataset granted to a job: the table name its SQL uses and the Parquet file behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Table name.
    pub name: TableName,
    /// Path of the Parquet file (resolved by the domain store from the snapshot digest).
    pub path: PathBuf,
    /// The file's schema as the session infers it, when known already (then the file is not
    /// read until a query scans it).
    pub schema: Option<SchemaRef>,
    /// What is known of the file's subject column: `Some(true)` if it holds at most one row per
    /// subject (then a group's subjects are counted without a distinct count and a noised
    /// statistic's sensitivity is one row), `Some(false)` if not, `None` if not known yet (the
    /// session then counts it once, exactly, on the first query that would use it; see
    /// [`JobSession::learned_uniqueness`]).
    pub subject_unique: Option<bool>,
    /// blake3 of the file, where known (a snapshot of the domain): what names its contents in a
    /// cell's definition; otherwise its path does.
    pub snapshot: Option<[u8; 32]>,
}

/// A schema as text (hex of its Arrow IPC encoding), to keep beside a snapshot.
pub fn encode_schema(schema: &SchemaRef) -> Result<String, QueryError> {
    let mut w = StreamWriter::try_new(Vec::new(), schema)
        .map_err(|e| QueryError::Internal(e.to_string()))?;
    w.finish()
        .map_err(|e| QueryError::Internal(e.to_string()))?;
    let bytes = w
        .into_inner()
        .map_err(|e| QueryError::Internal(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A schema from [`encode_schema`]'s text; `None` if it is not one.
pub fn decode_schema(text: &str) -> Option<SchemaRef> {
    if !text.len().is_multiple_of(2) || text.len() > 8 << 20 {
        return None;
    }
    let bytes: Vec<u8> = (0..text.len() / 2)
        .map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None).ok()?;
    Some(reader.schema())
}

impl Dataset {
    /// A dataset named `name` backed by the regular file `path`.
    pub fn new(name: &str, path: impl Into<PathBuf>) -> Result<Self, QueryError> {
        let name = TableName::new(name).map_err(|e| QueryError::Input(e.to_string()))?;
        let path = path.into();
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Dataset {
                name,
                path,
                schema: None,
                subject_unique: None,
                snapshot: None,
            }),
            Ok(_) => Err(QueryError::Input(format!(
                "dataset `{name}`: {} is not a regular file",
                path.display()
            ))),
            Err(e) => Err(QueryError::Input(format!(
                "dataset `{name}`: cannot read {}: {e}",
                path.display()
            ))),
        }
    }
}

/// Why a query was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The statement kind, a table or a construct is not allowed.
    #[error("{0}")]
    Refused(String),
    /// The query would use a column beyond its rule, or the policy cannot be enforced on it.
    #[error("{0}")]
    Policy(String),
    /// The SQL could not be parsed or planned.
    #[error("{0}")]
    Sql(String),
    /// The SQL text is longer than allowed.
    #[error("SQL text is {len} bytes; the limit is {limit} bytes")]
    TooLong {
        /// Bytes of SQL.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The SQL's expressions or plan are larger than allowed.
    #[error(
        "SQL complexity limit reached: used {used} nodes of {limit} nodes allowed (operators, calls, nesting and plan nodes)"
    )]
    TooComplex {
        /// Nodes counted.
        used: u64,
        /// The limit.
        limit: u64,
    },
    /// A noised query would spend more privacy budget than is left.
    #[error("{0}")]
    Budget(String),
    /// The query engine's memory pool is exhausted.
    #[error("query memory limit reached: the query needs more than the {limit} bytes allowed")]
    Memory {
        /// The pool size.
        limit: u64,
    },
    /// Execution failed; the message is sanitized (no data values).
    #[error("{0}")]
    Execution(String),
    /// A dataset could not be opened.
    #[error("{0}")]
    Input(String),
    /// A host bug.
    #[error("internal query error: {0}")]
    Internal(String),
}

impl QueryError {
    /// The job-level classification of this error.
    pub fn to_job_error(&self) -> JobError {
        match self {
            QueryError::Refused(m) => JobError::new(ErrorKind::SqlRefused, m.clone()),
            QueryError::Policy(m) => JobError::new(ErrorKind::PolicyViolation, m.clone()),
            QueryError::Budget(m) => JobError::new(ErrorKind::PolicyViolation, m.clone()),
            QueryError::Sql(m) => JobError::new(ErrorKind::SqlError, m.clone()),
            QueryError::TooLong { len, limit } => JobError::limit(Limit::SqlBytes, *len, *limit),
            QueryError::TooComplex { used, limit } => {
                JobError::limit(Limit::SqlComplexity, *used, *limit)
            }
            QueryError::Memory { .. } => JobError {
                kind: ErrorKind::LimitExceeded,
                limit: Some(Limit::QueryMemory),
                message: self.to_string(),
            },
            QueryError::Execution(m) => JobError::new(ErrorKind::QueryFailed, m.clone()),
            QueryError::Input(m) => JobError::new(ErrorKind::InvalidInput, m.clone()),
            QueryError::Internal(_) => JobError::internal(self.to_string()),
        }
    }

    /// Whether the guest gets this as a refusal (`REFUSED`) rather than a failure (`FAILED`).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            QueryError::Refused(_)
                | QueryError::Policy(_)
                | QueryError::Budget(_)
                | QueryError::Sql(_)
                | QueryError::TooLong { .. }
                | QueryError::TooComplex { .. }
        )
    }

    /// A stable short name of the class, for reports and test expectations.
    pub fn class(&self) -> &'static str {
        match self {
            QueryError::Refused(_) => "sql_refused",
            QueryError::Policy(_) => "policy_violation",
            QueryError::Budget(_) => "budget_exhausted",
            QueryError::Sql(_) => "sql_error",
            QueryError::TooLong { .. } => "limit_exceeded(sql_bytes)",
            QueryError::TooComplex { .. } => "limit_exceeded(sql_complexity)",
            QueryError::Memory { .. } => "limit_exceeded(query_memory)",
            QueryError::Execution(_) => "query_failed",
            QueryError::Input(_) => "invalid_input",
            QueryError::Internal(_) => "internal",
        }
    }
}

#[cfg(test)]
mod tests;
