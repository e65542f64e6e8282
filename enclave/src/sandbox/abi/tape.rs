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

/// Recording or playing back.
#[derive(Debug)]
pub enum Tape {
    /// Live execution: results are recorded.
    Record {
        /// Events so far.
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
    /// A recording tape capped at `cap` bytes.
    pub fn record(cap: u64) -> Self {
        Tape::Record {
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
        if let Tape::Record { events, bytes, cap } = self {
            let used = bytes.saturating_add(event.bytes());
            if used > *cap {
                return Err(wasmtime::Error::new(JobError::limit(
                    Limit::TranscriptBytes,
                    used,
                    *cap,
                )));
            }
            *bytes = used;
            events.push(event);
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

    /// The recorded events (for sealing) or, in replay, those left unplayed.
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
