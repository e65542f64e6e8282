//! Job records: what a job saw, sealed, so that it can be re-run exactly.
//!
//! Owns the events of a recording ([`event`]), the sealed transcript file ([`transcript`]:
//! AES-256-GCM, keyed from the domain secret, chunked, bound to the job), recording a live run
//! ([`recorder`]: a query host wrapping the live one, with a writer thread and the transcript
//! limit) and replaying one ([`replay`]: a query host answering from the transcript). Replay is
//! just another query host to the sandbox. It must never write a transcript in plaintext, nor
//! return one that did not authenticate.

pub mod event;
pub mod recorder;
pub mod replay;
pub mod transcript;

pub use event::{Event, HostErr};
pub use recorder::{Recorder, Recording, record};
pub use replay::{Divergence, Replaying};
pub use transcript::{
    Header, OutputRef, SealedWriter, TRANSCRIPT_VERSION, Transcript, TranscriptError,
};
