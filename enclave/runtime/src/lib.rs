//! The runtime of an authorized operation domain: the job lifecycle and the domain's record.
//!
//! Owns the data path as one straight line — submission → manifest → authorization by the policy
//! → sandbox (queries to the query host, through the recorder) → egress collector → sealed
//! transcript → log — in [`job`]; what the domain logs ([`actions`]); an opened domain
//! ([`domain`]); the process-wide execution resources ([`engine`]); replay and re-derivation of
//! logged jobs ([`replay`], [`rederive`]); desensitized samples ([`sample`]); and job reports
//! ([`report`]). Each stage lives in its own crate; this one only connects them, in order, with no
//! stage calling back into an earlier one. It must never start a job it cannot record, nor run one
//! no policy authorized.

pub mod actions;
pub mod domain;
pub mod engine;
pub mod evidence;
mod facts;
pub mod job;
pub mod rederive;
pub mod replay;
pub mod report;
pub mod sample;

use enclave_core::{CallCtx, ErrorKind, HostError, JobError, Message, QueryHost, QueryRecord};

pub use actions::Action;
pub use domain::{Domain, local_actor};
pub use engine::Engine;
pub use job::{Authorized, JobReport, PolicySource, Submission, Submitted};

/// Why a domain operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The job could not be set up or was refused: the user's to fix (the kind says which).
    #[error("{}", .0.message)]
    Job(JobError),
    /// The log refused or failed.
    #[error(transparent)]
    Log(#[from] enclave_tlog::LogError),
    /// The domain directory failed.
    #[error(transparent)]
    Store(#[from] enclave_store::StoreError),
    /// A transcript could not be sealed or opened.
    #[error(transparent)]
    Transcript(#[from] enclave_record::TranscriptError),
    /// A sample could not be made.
    #[error(transparent)]
    Sample(sample::SampleError),
    /// The named job or entry is not in the log.
    #[error("{0}")]
    NotFound(String),
}

/// The query host of a job that has no working session (its datasets could not be opened, or its
/// module was not admitted): nothing runs, so nothing is asked.
pub(crate) struct Unavailable;

impl QueryHost for Unavailable {
    fn open(&mut self, _: &CallCtx, _: i32, _: &str) -> Result<(), HostError> {
        Err(HostError::Fatal(JobError::new(
            ErrorKind::Internal,
            "no query session",
        )))
    }
    fn next(&mut self, _: &CallCtx, _: i32) -> Result<Message, HostError> {
        Err(HostError::Fatal(JobError::internal("no query session")))
    }
    fn suppressed(&mut self, _: &CallCtx, _: i32) -> Result<i64, HostError> {
        Err(HostError::Fatal(JobError::internal("no query session")))
    }
    fn close(&mut self, _: i32) {}
    fn records(&self) -> Vec<QueryRecord> {
        vec![]
    }
}
