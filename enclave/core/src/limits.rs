//! Per-job resource limits and their defaults.
//!
//! Owns the numbers only; the sandbox and the query host enforce them. Defaults are the domain
//! policy's; a job may ask for different values within what the operator allows.

use serde::{Deserialize, Serialize};

/// Limits for one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Deterministic CPU budget in wasmtime fuel units (≈ one per Wasm instruction).
    pub fuel: u64,
    /// Guest linear memory cap in bytes.
    pub memory_bytes: u64,
    /// Guest table elements cap.
    pub table_elements: u64,
    /// Wall-clock backstop in milliseconds (not deterministic; fuel is the real CPU limit).
    pub wall_clock_ms: u64,
    /// Total bytes of outputs the job may emit.
    pub output_bytes: u64,
    /// Number of outputs the job may emit.
    pub outputs: u64,
    /// Total bytes of log lines the job may write.
    pub log_bytes: u64,
    /// Memory the query engine may use for this job, in bytes.
    pub query_memory_bytes: u64,
    /// Queries the job may hold open at once.
    pub open_queries: u64,
    /// Longest SQL statement accepted, in bytes.
    pub sql_bytes: u64,
    /// Bytes the job's sealed transcript (every query result it read) may write to the domain.
    pub transcript_bytes: u64,
    /// Queries the job may open in all, refused ones included (each is logged).
    pub queries: u64,
    /// Largest expression tree of one SQL statement: operators, function calls and nesting.
    pub sql_complexity: u64,
    /// Most cells (rows × columns) of one output.
    pub output_cells: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 50_000_000_000,
            memory_bytes: 512 << 20,
            table_elements: 100_000,
            wall_clock_ms: 10 * 60 * 1000,
            output_bytes: 16 << 20,
            outputs: 64,
            log_bytes: 1 << 20,
            query_memory_bytes: 1 << 30,
            open_queries: 8,
            sql_bytes: 64 << 10,
            transcript_bytes: 1 << 30,
            queries: 1_000,
            sql_complexity: 1_000,
            output_cells: 1 << 24,
        }
    }
}

/// Limits fixed for the whole sandbox (engine-wide settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineLimits {
    /// Largest module accepted, in bytes (bounds compile time).
    pub module_bytes: u64,
    /// Maximum Wasm stack in bytes.
    pub wasm_stack_bytes: usize,
    /// Largest linear memory any job may be granted (pool slot size), in bytes.
    pub max_memory_bytes: u64,
    /// Jobs that may run at once (pool size).
    pub concurrent_jobs: u32,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            module_bytes: 64 << 20,
            wasm_stack_bytes: 1 << 20,
            max_memory_bytes: 4 << 30,
            concurrent_jobs: 16,
        }
    }
}
