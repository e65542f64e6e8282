//! The tape of a job's host calls whose results come from outside the guest.
//!
//! Owns recording and playing back the results of `query_open`, `query_next` and
//! `query_suppressed` — the only imports whose results depend on the world (datasets, the query
//! engine). Everything else a guest sees is fixed by the job spec (parameters, seed, clock) and so
//! needs no recording. Recording is bounded by the `transcript_bytes` limit. Playback refuses the
//! first call that differs from the tape and says which call and how; it must never invent a
//! result that was not recorded.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, JobError, Limit};

/// An error result a host call returned to the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostErr {
    /// The negative code returned.
    pub code: i64,
    /// The error recorded for `last_error` and the job's classification.
    pub error: JobError,
}

/// One recorded host-call result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `query_open(sql)` returned a handle or an error.
    Open {
        /// The SQL text the guest passed.
        sql: String,
        /// Handle or error.
        result: Result<i64, HostErr>,
    },
    /// `query_next(handle)` announced a message (empty at the end) or failed.
    Next {
        /// The handle the guest passed.
        handle: i32,
        /// IPC message bytes (shared with the guest's pending read), or the error.
        result: Result<std::sync::Arc<Vec<u8>>, HostErr>,
    },
    /// `query_suppressed(handle)` returned a count.
    Suppressed {
        /// The handle the guest passed.
        handle: i32,
        /// The count returned.
        value: i64,
    },
}

impl Event {
    /// The import this event records.
    pub fn function(&self) -> &'static str {
        match self {
            Event::Open { .. } => "query_open",
            Event::Next { .. } => "query_next",
            Event::Suppressed { .. } => "query_suppressed",
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            Event::Open { sql, .. } => sql.len() as u64 + 64,
            Event::Next { result, .. } => result.as_ref().map_or(64, |m| m.len() as u64 + 16),
            Event::Suppressed { .. } => 16,
        }
    }
}

/// The first point where a replayed guest did something the tape does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("replay diverged at host call #{call} ({function}): {what}")]
pub struct Divergence {
    /// 0-based index of the recorded call (among recorded calls).
    pub call: usize,
    /// The import the guest called.
    pub function: &'static str,
    /// What differs.
    pub what: String,
}

/// Where a recording tape sends events as they happen (the sealed transcript writer), so that
/// a streaming job's results need not stay in memory.
pub trait TapeSink: Send + std::fmt::Debug {
    /// Records one event; an error ends the job (a job that cannot be recorded cannot run).
    fn record(&mut self, event: &Event) -> Result<(), String>;
}

/// A sink shared between the caller (who finishes it) and the running job.
pub type SharedSink = std::sync::Arc<std::sync::Mutex<dyn TapeSink>>;

/// Recording or playing back.
#[derive(Debug)]
pub enum Tape {
    /// Live execution: results are recorded.
    Record {
        /// Where events go; without a sink they are kept in `events`.
        sink: Option<SharedSink>,
        /// Events so far (only without a sink).
        events: Vec<Event>,
        /// Bytes recorded so far.
        bytes: u64,
        /// Cap on `bytes`.
        cap: u64,
    },
    /// Replay: results come from `events`.
    Replay {
        /// The recorded events.
        events: Vec<Event>,
        /// Next event to play.
        pos: usize,
        /// The first divergence, if any.
        divergence: Option<Divergence>,
    },
}

impl Tape {
    /// A recording tape capped at `cap` bytes, streaming into `sink` if given.
    pub fn record(cap: u64, sink: Option<SharedSink>) -> Self {
        Tape::Record {
            sink,
            events: Vec::new(),
            bytes: 0,
            cap,
        }
    }

    /// A playback tape.
    pub fn replay(events: Vec<Event>) -> Self {
        Tape::Replay {
            events,
            pos: 0,
            divergence: None,
        }
    }

    /// True when playing back.
    pub fn is_replay(&self) -> bool {
        matches!(self, Tape::Replay { .. })
    }

    /// Records a live event; the transcript limit ends the job when exceeded.
    pub fn push(&mut self, event: Event) -> wasmtime::Result<()> {
        if let Tape::Record {
            sink,
            events,
            bytes,
            cap,
        } = self
        {
            let used = bytes.saturating_add(event.bytes());
            if used > *cap {
                return Err(wasmtime::Error::new(JobError::limit(
                    Limit::TranscriptBytes,
                    used,
                    *cap,
                )));
            }
            *bytes = used;
            match sink {
                Some(sink) => {
                    let mut sink = sink.lock().unwrap_or_else(|p| p.into_inner());
                    sink.record(&event).map_err(|why| {
                        wasmtime::Error::new(JobError::internal(format!(
                            "recording the transcript failed: {why}"
                        )))
                    })?;
                }
                None => events.push(event),
            }
        }
        Ok(())
    }

    /// Plays the next event, which must be for `function` and pass `matches`; otherwise the
    /// divergence is recorded and the job ends.
    pub fn play(
        &mut self,
        function: &'static str,
        matches: impl FnOnce(&Event) -> Result<(), String>,
    ) -> wasmtime::Result<Event> {
        let Tape::Replay {
            events,
            pos,
            divergence,
        } = self
        else {
            return Err(wasmtime::Error::new(JobError::internal(
                "tape played while recording",
            )));
        };
        let call = *pos;
        let what = match events.get(call) {
            None => Some("the guest made more host calls than the transcript holds".to_owned()),
            Some(e) if e.function() != function => Some(format!(
                "the guest called {function} where the transcript has {}",
                e.function()
            )),
            Some(e) => matches(e).err(),
        };
        if let Some(what) = what {
            let d = Divergence {
                call,
                function,
                what,
            };
            let err = JobError::new(ErrorKind::Internal, d.to_string());
            *divergence = Some(d);
            return Err(wasmtime::Error::new(err));
        }
        *pos += 1;
        Ok(events[call].clone())
    }

    /// Lets go of the sink (the job has ended; its recorder can finish).
    pub fn close_sink(&mut self) {
        if let Tape::Record { sink, .. } = self {
            *sink = None;
        }
    }

    /// The events kept in memory (recording without a sink) or, in replay, those left unplayed.
    pub fn into_events(self) -> Vec<Event> {
        match self {
            Tape::Record { events, .. } => events,
            Tape::Replay { events, pos, .. } => events.into_iter().skip(pos).collect(),
        }
    }

    /// The divergence of a replay, or the calls it left unplayed.
    pub fn replay_outcome(&self) -> Option<Divergence> {
        match self {
            Tape::Replay {
                events,
                pos,
                divergence,
            } => divergence.clone().or_else(|| {
                events.get(*pos).map(|e| Divergence {
                    call: *pos,
                    function: e.function(),
                    what: "the guest finished without making this recorded call".into(),
                })
            }),
            Tape::Record { .. } => None,
        }
    }
}
