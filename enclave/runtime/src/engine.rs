//! The execution resources of a host process: the sandbox, the query runtime and the leak
//! indexes read so far.
//!
//! Owns creating them once per process (a CLI run, a server) and handing them to every job.
//! It must never hold anything of one job.

use enclave_core::EngineLimits;
use enclave_query::host::QueryRuntime;
use enclave_sandbox::{DiskCache, Sandbox};

use crate::RuntimeError;
use crate::evidence::LeakCache;

/// The sandbox and the query runtime jobs share.
pub struct Engine {
    /// The wasmtime sandbox.
    pub sandbox: Sandbox,
    /// Where queries execute.
    pub queries: QueryRuntime,
    /// The leak indexes read so far (of the domain's datasets, not of any job).
    pub leaks: LeakCache,
}

impl Engine {
    /// An engine with `limits`; with `cache`, compiled modules persist on disk, authenticated.
    pub fn new(limits: EngineLimits, cache: Option<DiskCache>) -> Result<Engine, RuntimeError> {
        Ok(Engine {
            sandbox: Sandbox::new(limits, cache).map_err(RuntimeError::Job)?,
            queries: QueryRuntime::new().map_err(|e| RuntimeError::Job(e.to_job_error()))?,
            leaks: LeakCache::default(),
        })
    }
}
