//! Recording a running job's tape: the job thread hands each recorded host-call result to a
//! recorder thread, which seals it into the transcript and digests each query's results for the
//! log. The queue between them is bounded, so a slow disk slows the job instead of filling
//! memory. It must never let a job finish "recorded" while an event is still unwritten.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::transcript::{Header, SealedWriter, TranscriptError};
use crate::sandbox::{Event, SharedSink, TapeSink};

/// Per query (in `Open` order), blake3 over the result messages handed to the guest.
#[derive(Debug, Default)]
struct ResultDigests {
    hashers: Vec<blake3::Hasher>,
    by_handle: BTreeMap<i32, usize>,
}

impl ResultDigests {
    fn add(&mut self, e: &Event) {
        match e {
            Event::Open { result, .. } => {
                self.hashers.push(blake3::Hasher::new());
                if let Ok(h) = result
                    && let Ok(h) = i32::try_from(*h)
                {
                    self.by_handle.insert(h, self.hashers.len() - 1);
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

    fn finish(&self) -> Vec<[u8; 32]> {
        self.hashers
            .iter()
            .map(|h| *h.finalize().as_bytes())
            .collect()
    }
}

/// Events in flight between a running job and its recorder thread.
const RECORDER_QUEUE: usize = 16;

/// Records a job's tape on a thread of its own: the job thread only hands over shared event
/// values; sealing, writing and digesting happen beside it, with a bounded queue between.
pub struct Recorder {
    tx: Option<std::sync::mpsc::SyncSender<Event>>,
    worker: Option<std::thread::JoinHandle<Result<(SealedWriter, ResultDigests), TranscriptError>>>,
}

#[derive(Debug)]
struct QueueSink(std::sync::mpsc::SyncSender<Event>);

impl TapeSink for QueueSink {
    fn record(&mut self, event: &Event) -> Result<(), String> {
        self.0
            .send(event.clone())
            .map_err(|_| "the transcript writer stopped".to_owned())
    }
}

impl Recorder {
    /// Starts recording into `writer`; returns the sink for the job spec and the recorder.
    pub fn start(writer: SealedWriter) -> Result<(SharedSink, Recorder), TranscriptError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Event>(RECORDER_QUEUE);
        let job = writer.job.clone();
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
        let sink: SharedSink = Arc::new(Mutex::new(QueueSink(tx.clone())));
        Ok((
            sink,
            Recorder {
                tx: Some(tx),
                worker: Some(worker),
            },
        ))
    }

    /// Waits for every event to be written, then seals the transcript with `header`; returns
    /// the sealed file's blake3 and each query's result digest.
    pub fn finish(mut self, header: &Header) -> Result<([u8; 32], Vec<[u8; 32]>), TranscriptError> {
        self.tx = None;
        let Some(worker) = self.worker.take() else {
            return Err(TranscriptError::Malformed {
                job: header.job_id.clone(),
                why: "transcript already finished",
            });
        };
        let (mut writer, digests) = worker.join().map_err(|_| TranscriptError::Malformed {
            job: header.job_id.clone(),
            why: "the transcript writer panicked",
        })??;
        let sealed = writer.finish(header)?;
        Ok((sealed, digests.finish()))
    }
}
