//! Job errors as users see them.
//!
//! Owns the classification of everything that can end a job: the user's mistakes (a bad module,
//! bad SQL, a refused statement, a limit reached) are kept apart from internal bugs. Messages
//! name limits, columns, tables and host calls; they must never carry a data value from the domain.

use serde::{Deserialize, Serialize};

/// What kind of failure ended a job. Serialized in snake case for `--json` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Not a Wasm binary, invalid, too large, or uses a disallowed feature.
    InvalidModule,
    /// The module imports something outside the `enclave_v1` ABI.
    ForbiddenImport,
    /// The module lacks a required export (`memory`, `enclave_run`) or has it with a wrong type.
    MissingExport,
    /// A resource limit was reached (see `limit`).
    LimitExceeded,
    /// The guest trapped (unreachable, out-of-bounds access, division by zero…).
    Trap,
    /// The guest passed a bad pointer, length or handle to a host function.
    BadHostCall,
    /// The guest reported failure (`enclave_run` returned non-zero).
    GuestFailed,
    /// The host refused a SQL statement (DDL, DML, statements, URL tables, unknown tables…).
    SqlRefused,
    /// A query would use a column beyond its rule (or the rule cannot be enforced on it).
    PolicyViolation,
    /// The SQL text could not be parsed or planned.
    SqlError,
    /// A query failed while executing.
    QueryFailed,
    /// An output was malformed (bad name, kind, duplicate, invalid Arrow IPC).
    InvalidOutput,
    /// The job's inputs were unusable (a dataset file, a parameter).
    InvalidInput,
    /// A bug or environment failure inside the host.
    Internal,
}

impl ErrorKind {
    /// Stable snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidModule => "invalid_module",
            ErrorKind::ForbiddenImport => "forbidden_import",
            ErrorKind::MissingExport => "missing_export",
            ErrorKind::LimitExceeded => "limit_exceeded",
            ErrorKind::Trap => "trap",
            ErrorKind::BadHostCall => "bad_host_call",
            ErrorKind::GuestFailed => "guest_failed",
            ErrorKind::SqlRefused => "sql_refused",
            ErrorKind::PolicyViolation => "policy_violation",
            ErrorKind::SqlError => "sql_error",
            ErrorKind::QueryFailed => "query_failed",
            ErrorKind::InvalidOutput => "invalid_output",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Internal => "internal",
        }
    }

    /// Every kind.
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::InvalidModule,
        ErrorKind::ForbiddenImport,
        ErrorKind::MissingExport,
        ErrorKind::LimitExceeded,
        ErrorKind::Trap,
        ErrorKind::BadHostCall,
        ErrorKind::GuestFailed,
        ErrorKind::SqlRefused,
        ErrorKind::PolicyViolation,
        ErrorKind::SqlError,
        ErrorKind::QueryFailed,
        ErrorKind::InvalidOutput,
        ErrorKind::InvalidInput,
        ErrorKind::Internal,
    ];

    /// The kind with this snake-case name.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// True when the failure is the job's or its author's doing, not the host's.
    pub fn is_user_error(self) -> bool {
        !matches!(self, ErrorKind::Internal)
    }
}

/// A per-job resource limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// Deterministic CPU budget (wasmtime fuel units).
    Fuel,
    /// Guest linear memory in bytes.
    Memory,
    /// Guest table elements.
    TableElements,
    /// Wasm call-stack depth (bytes of native stack).
    Stack,
    /// Wall-clock time in milliseconds (backstop).
    WallClock,
    /// Total bytes of emitted outputs.
    OutputBytes,
    /// Number of outputs.
    Outputs,
    /// Total bytes of log lines.
    LogBytes,
    /// Memory the query engine may use for one job, in bytes.
    QueryMemory,
    /// Size of the Wasm module in bytes.
    ModuleBytes,
    /// Length of one SQL statement in bytes.
    SqlBytes,
    /// Queries open at once.
    OpenQueries,
    /// Bytes the job's transcript may write to the domain's disk.
    TranscriptBytes,
    /// Queries a job may open in all (each leaves a log entry).
    Queries,
    /// Size of one SQL statement's expression trees (operators and nesting).
    SqlComplexity,
    /// Cells (rows × columns) of one output.
    OutputCells,
}

impl Limit {
    /// Every limit.
    pub const ALL: [Limit; 16] = [
        Limit::Fuel,
        Limit::Memory,
        Limit::TableElements,
        Limit::Stack,
        Limit::WallClock,
        Limit::OutputBytes,
        Limit::Outputs,
        Limit::LogBytes,
        Limit::QueryMemory,
        Limit::ModuleBytes,
        Limit::SqlBytes,
        Limit::OpenQueries,
        Limit::TranscriptBytes,
        Limit::Queries,
        Limit::SqlComplexity,
        Limit::OutputCells,
    ];

    /// Stable snake-case name (as serialized).
    pub fn key(self) -> &'static str {
        match self {
            Limit::Fuel => "fuel",
            Limit::Memory => "memory",
            Limit::TableElements => "table_elements",
            Limit::Stack => "stack",
            Limit::WallClock => "wall_clock",
            Limit::OutputBytes => "output_bytes",
            Limit::Outputs => "outputs",
            Limit::LogBytes => "log_bytes",
            Limit::QueryMemory => "query_memory",
            Limit::ModuleBytes => "module_bytes",
            Limit::SqlBytes => "sql_bytes",
            Limit::OpenQueries => "open_queries",
            Limit::TranscriptBytes => "transcript_bytes",
            Limit::Queries => "queries",
            Limit::SqlComplexity => "sql_complexity",
            Limit::OutputCells => "output_cells",
        }
    }

    /// The limit with this snake-case name.
    pub fn from_key(key: &str) -> Option<Limit> {
        Limit::ALL.into_iter().find(|l| l.key() == key)
    }

    /// Human name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Fuel => "fuel",
            Limit::Memory => "memory",
            Limit::TableElements => "table elements",
            Limit::Stack => "wasm stack",
            Limit::WallClock => "wall-clock time",
            Limit::OutputBytes => "output bytes",
            Limit::Outputs => "output count",
            Limit::LogBytes => "log bytes",
            Limit::QueryMemory => "query memory",
            Limit::ModuleBytes => "module size",
            Limit::SqlBytes => "SQL length",
            Limit::OpenQueries => "open queries",
            Limit::TranscriptBytes => "transcript bytes",
            Limit::Queries => "query count",
            Limit::SqlComplexity => "SQL complexity",
            Limit::OutputCells => "output cells",
        }
    }

    /// Unit used in messages.
    pub fn unit(self) -> &'static str {
        match self {
            Limit::Fuel => "units",
            Limit::WallClock => "ms",
            Limit::TableElements => "elements",
            Limit::Outputs | Limit::OpenQueries | Limit::Queries => "",
            Limit::SqlComplexity => "nodes",
            Limit::OutputCells => "cells",
            _ => "bytes",
        }
    }
}

/// Why a job ended without success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct JobError {
    /// Classification.
    pub kind: ErrorKind,
    /// The limit reached, for `LimitExceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Limit>,
    /// What happened, without data values.
    pub message: String,
}

impl JobError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        JobError {
            kind,
            limit: None,
            message: message.into(),
        }
    }

    /// A limit reached: `used` of `cap`.
    pub fn limit(limit: Limit, used: u64, cap: u64) -> Self {
        let unit = limit.unit();
        let sep = if unit.is_empty() { "" } else { " " };
        JobError {
            kind: ErrorKind::LimitExceeded,
            limit: Some(limit),
            message: format!(
                "{} limit reached: used {used}{sep}{unit} of {cap}{sep}{unit} allowed",
                limit.name()
            ),
        }
    }

    /// An internal (host) failure.
    pub fn internal(message: impl Into<String>) -> Self {
        JobError::new(ErrorKind::Internal, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_message_names_limit_and_usage() {
        let e = JobError::limit(Limit::Fuel, 1000, 1000);
        assert_eq!(e.kind, ErrorKind::LimitExceeded);
        assert_eq!(
            e.message,
            "fuel limit reached: used 1000 units of 1000 units allowed"
        );
        let e = JobError::limit(Limit::Outputs, 65, 64);
        assert_eq!(
            e.message,
            "output count limit reached: used 65 of 64 allowed"
        );
    }

    #[test]
    fn kinds_serialize_snake_case() {
        let v = serde_json::to_value(ErrorKind::ForbiddenImport).unwrap();
        assert_eq!(v, "forbidden_import");
        assert_eq!(ErrorKind::SqlRefused.as_str(), "sql_refused");
        assert!(!ErrorKind::Internal.is_user_error());
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for l in Limit::ALL {
            assert_eq!(Limit::from_key(l.key()), Some(l));
            assert_eq!(serde_json::to_value(l).unwrap(), l.key());
        }
    }
}
