//! Enclave's transparency log, apart from the runtime: what an auditor builds and runs.
//!
//! Owns the tamper-evident log of every action of a domain: RFC 9162 Merkle hashing and proofs
//! (`merkle`), C2SP signed notes and checkpoints (`note`), the entry and line format (`entry`),
//! the durable writer (`log`, resuming from its authenticated `state`) and the verifier
//! (`verify`), plus proof bundles an auditor checks offline (`proof`), the receipts the domain
//! signs when a reviewed output leaves it (`receipt`) and the data authority's
//! witness that cosigns checkpoints only after checking they extend what it cosigned (`witness`). It must never depend on
//! wasmtime, DataFusion, Arrow or any runtime crate, so that auditors can build and trust it alone.

pub mod entry;
pub mod log;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod receipt;
mod state;
pub mod verify;
pub mod witness;

pub use entry::{Draft, Entry};
pub use log::{Appended, Log, LogError, OpenReport};
pub use merkle::Hash;
pub use note::{Checkpoint, Signer, VerifierKey};
pub use proof::{Consistency, ProofBundle, ProofCheck};
pub use receipt::Receipt;
pub use verify::{Failure, FailureKind, Summary, verify_log};
pub use witness::{AddCheckpoint, Cosigner, CosignerKey, Witness, WitnessError};
