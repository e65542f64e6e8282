//! Recording a running job: [`Recording`] is the query host the sandbox talks to; it asks the
//! live host, and hands every answer to a recorder thread that seals it into the transcript and
//! digests each query's results for the log.
//!
//! The queue between them is bounded, so a slow disk slows the job instead of filling memory;
//! the transcript limit (`transcript_bytes`, the job's disk budget) ends a job that would write
//! more. It must never let a job finish "recorded" while an event is still unwritten, nor give the
//! guest an answer it did not record.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender};

use enclave_core::{CallCtx, Digest, HostError, JobError, Limit, Message, QueryHost, QueryRecord};

use crate::event::{Event, HostErr};
use crate::transcript::{Header, SealedWriter, TranscriptError};

/// Events in flight between a running job and its recorder thread.
const QUEUE: usize = 16;

/// Per query (in open order), blake3 over the result messages handed to the guest.
#[derive(Debug, Default)]
struct ResultDigests {
    hashers: Vec<blake3::Hasher>,
    by_handle: BTreeMap<i32, usize>,
}

impl ResultDigests {
    fn add(&mut self, e: &Event) {
        match e {
            Event::Open { handle, result, .. } => {
                self.hashers.push(blake3::Hasher::new());
                if result.is_ok() {
                    self.by_handle.insert(*handle, self.hashers.len() - 1);
                } else {
                    self.by_handle.remove(handle);
                }
            }
            Event::Next {
                handle,
                result: Ok(msg),
            } => {
                if let Some(&i) = self.by_handle.get(handle) {
                    self.hashers[i].update(&(msg.len() as u64).to_le_bytes());
                    self.hashers[i].update(msg);
                }
            }
            _ => {}
        }
    }

    fn finish(&self) -> Vec<Digest> {
        self.hashers
            .iter()
            .map(|h| Digest(*h.finalize().as_bytes()))
            .collect()
    }
}

/// The recorder thread of one job.
pub struct Recorder {
    worker: Option<std::thread::JoinHandle<Result<(SealedWriter, ResultDigests), TranscriptError>>>,
}

/// The query host that records: every answer of `inner` goes into the transcript before the
/// guest sees it.
pub struct Recording<Q> {
    inner: Q,
    tx: Option<SyncSender<Event>>,
    bytes: u64,
    cap: u64,
}

fn to_err(e: &HostError) -> Option<HostErr> {
    match e {
        HostError::Refused { code, error } => Some(HostErr {
            code: *code,
            error: error.clone(),
        }),
        HostError::Fatal(_) => None,
    }
}

/// Starts recording `inner`'s answers into `writer`, at most `cap` bytes.
pub fn record<Q: QueryHost>(
    writer: SealedWriter,
    inner: Q,
    cap: u64,
) -> Result<(Recording<Q>, Recorder), TranscriptError> {
    let (tx, rx): (SyncSender<Event>, Receiver<Event>) = std::sync::mpsc::sync_channel(QUEUE);
    let job = writer.job.to_string();
    let worker = std::thread::Builder::new()
        .name("enclave-transcript".into())
        .spawn(move || {
            let mut writer = writer;
            let mut digests = ResultDigests::default();
            for e in rx {
                digests.add(&e);
                writer.event(&e)?;
            }
            Ok((writer, digests))
        })
        .map_err(|_| TranscriptError::Malformed {
            job,
            why: "cannot start the transcript writer",
        })?;
    Ok((
        Recording {
            inner,
            tx: Some(tx),
            bytes: 0,
            cap,
        },
        Recorder {
            worker: Some(worker),
        },
    ))
}

impl<Q> Recording<Q> {
    /// Records one event; the transcript limit and a failed writer end the job.
    fn push(&mut self, e: Event) -> Result<(), HostError> {
        let mut size = Vec::new();
        let encoded = e.encode(&mut size).map(|()| size.len() as u64);
        let n = encoded.map_err(|why| {
            HostError::Fatal(JobError::internal(format!(
                "recording the transcript failed: {why}"
            )))
        })?;
        let used = self.bytes.saturating_add(n);
        if used > self.cap {
            return Err(HostError::Fatal(JobError::limit(
                Limit::TranscriptBytes,
                used,
                self.cap,
            )));
        }
        self.bytes = used;
        let sent = self.tx.as_ref().map(|tx| tx.send(e));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(HostError::Fatal(JobError::internal(
                "recording the transcript failed: the transcript writer stopped",
            ))),
        }
    }

    /// The host being recorded.
    pub fn inner(&self) -> &Q {
        &self.inner
    }

    /// Bytes recorded so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl<Q: QueryHost> QueryHost for Recording<Q> {
    fn open(&mut self, ctx: &CallCtx, handle: i32, sql: &str) -> Result<(), HostError> {
        let r = self.inner.open(ctx, handle, sql);
        let result = match &r {
            Ok(()) => Ok(()),
            Err(e) => Err(to_err(e).ok_or_else(|| e.clone())?),
        };
        self.push(Event::Open {
            handle,
            sql: sql.to_owned(),
            result,
        })?;
        r
    }

    fn next(&mut self, ctx: &CallCtx, handle: i32) -> Result<Message, HostError> {
        let r = self.inner.next(ctx, handle);
        let result = match &r {
            Ok(m) => Ok(std::sync::Arc::clone(m)),
            Err(e) => Err(to_err(e).ok_or_else(|| e.clone())?),
        };
        self.push(Event::Next { handle, result })?;
        r
    }

    fn suppressed(&mut self, ctx: &CallCtx, handle: i32) -> Result<i64, HostError> {
        let r = self.inner.suppressed(ctx, handle);
        let result = match &r {
            Ok(v) => Ok(*v),
            Err(e) => Err(to_err(e).ok_or_else(|| e.clone())?),
        };
        self.push(Event::Suppressed { handle, result })?;
        r
    }

    fn close(&mut self, handle: i32) {
        self.inner.close(handle);
    }

    fn records(&self) -> Vec<QueryRecord> {
        self.inner.records()
    }
}

impl Recorder {
    /// Waits until every event is written — the [`Recording`] must be dropped first: its end
    /// closes the queue — then seals the transcript with `header`; returns the sealed file's
    /// blake3 and each query's result digest (in open order).
    pub fn finish(mut self, header: &Header) -> Result<(Digest, Vec<Digest>), TranscriptError> {
        let job = header.manifest.job.to_string();
        let Some(worker) = self.worker.take() else {
            return Err(TranscriptError::Malformed {
                job,
                why: "transcript already finished",
            });
        };
        let (mut writer, digests) = worker.join().map_err(|_| TranscriptError::Malformed {
            job,
            why: "the transcript writer panicked",
        })??;
        let sealed = writer.finish(header)?;
        Ok((sealed, digests.finish()))
    }
}
