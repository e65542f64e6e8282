//! Enclave's core types: what every other crate speaks.
//!
//! Owns job errors and limits ([`error`], [`limits`]), digests as 32-byte types ([`digest`]),
//! the one typed description of a job ([`manifest`]) and the interfaces between the sandbox, the
//! query host and the output sink ([`host`]). It must never depend on wasmtime, DataFusion, Arrow
//! or the filesystem: the sandbox, the query host and the verifier all build on it.

pub mod contain;
pub mod digest;
pub mod error;
pub mod host;
pub mod limits;
pub mod manifest;

pub use contain::{Contained, contain};
pub use digest::{Digest, DigestKey, KeyedDigest};
pub use error::{ErrorKind, JobError, Limit};
pub use host::{
    CallCtx, DatasetBudget, HostError, Message, NoiseNote, OutputSink, QueryDp, QueryHost,
    QueryRecord,
};
pub use limits::{EngineLimits, Limits};
pub use manifest::{
    ApplicationId, DatasetRef, JobId, JobManifest, ManifestError, NoiseKey, Params, PolicyKind,
    PolicyRef, Seed, TableName,
};
