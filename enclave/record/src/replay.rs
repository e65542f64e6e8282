//! Replaying a recorded job: [`Replaying`] is a query host that answers from a transcript.
//!
//! Owns playback: each call must be the next recorded one — same function, same handle, same
//! SQL text — and gets the recorded answer; the first call that differs ends the run and is kept
//! as the [`Divergence`] (which call, which function, what differs). It must never invent an
//! answer that was not recorded.

use enclave_core::{CallCtx, HostError, JobError, Message, QueryHost, QueryRecord};
use serde::Serialize;

use crate::event::Event;

/// The first point where a replayed guest did something the transcript does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("replay diverged at host call #{call} ({function}): {what}")]
pub struct Divergence {
    /// 0-based index of the recorded call.
    pub call: usize,
    /// The import the guest called.
    pub function: &'static str,
    /// What differs.
    pub what: String,
}

/// The query host of a replay.
pub struct Replaying {
    events: Vec<Event>,
    pos: usize,
    divergence: Option<Divergence>,
    records: Vec<QueryRecord>,
    by_handle: std::collections::BTreeMap<i32, usize>,
}

impl Replaying {
    /// A host answering from `events`.
    pub fn new(events: Vec<Event>) -> Replaying {
        Replaying {
            events,
            pos: 0,
            divergence: None,
            records: Vec::new(),
            by_handle: Default::default(),
        }
    }

    /// Plays the next event, which must be for `function` and pass `matches`.
    fn play(
        &mut self,
        function: &'static str,
        matches: impl FnOnce(&Event) -> Result<(), String>,
    ) -> Result<Event, HostError> {
        let call = self.pos;
        let what = match self.events.get(call) {
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
            let err = JobError::internal(d.to_string());
            self.divergence = Some(d);
            return Err(HostError::Fatal(err));
        }
        self.pos += 1;
        Ok(self.events[call].clone())
    }

    /// The divergence of this replay, or the recorded calls it left unplayed.
    pub fn outcome(&self) -> Option<Divergence> {
        self.divergence.clone().or_else(|| {
            self.events.get(self.pos).map(|e| Divergence {
                call: self.pos,
                function: e.function(),
                what: "the guest finished without making this recorded call".into(),
            })
        })
    }

    /// Recorded calls played back.
    pub fn played(&self) -> usize {
        self.pos
    }
}

fn same_handle(h: i32) -> impl FnOnce(&Event) -> Result<(), String> {
    move |e| {
        if e.handle() == h {
            Ok(())
        } else {
            Err(format!(
                "handle {h} where the transcript has {}",
                e.handle()
            ))
        }
    }
}

impl QueryHost for Replaying {
    fn open(&mut self, _ctx: &CallCtx, handle: i32, sql: &str) -> Result<(), HostError> {
        let event = self.play("query_open", |e| match e {
            Event::Open { sql: recorded, .. } if recorded != sql => Err(format!(
                "the guest's SQL (blake3 {}) differs from the recorded SQL (blake3 {})",
                blake3::hash(sql.as_bytes()).to_hex(),
                blake3::hash(recorded.as_bytes()).to_hex()
            )),
            e => same_handle(handle)(e),
        })?;
        let mut record = QueryRecord::new(sql);
        let Event::Open { result, .. } = event else {
            return Err(HostError::Fatal(JobError::internal("tape event mismatch")));
        };
        match result {
            Ok(()) => {
                self.records.push(record);
                self.by_handle.insert(handle, self.records.len() - 1);
                Ok(())
            }
            Err(he) => {
                record.error = Some(he.error.clone());
                self.records.push(record);
                Err(he.to_host_error())
            }
        }
    }

    fn next(&mut self, _ctx: &CallCtx, handle: i32) -> Result<Message, HostError> {
        let event = self.play("query_next", same_handle(handle))?;
        let Event::Next { result, .. } = event else {
            return Err(HostError::Fatal(JobError::internal("tape event mismatch")));
        };
        let record = self
            .by_handle
            .get(&handle)
            .and_then(|&i| self.records.get_mut(i));
        match result {
            Ok(m) => {
                if let Some(r) = record {
                    r.bytes += m.len() as u64;
                }
                Ok(m)
            }
            Err(he) => {
                if let Some(r) = record {
                    r.error = Some(he.error.clone());
                }
                Err(he.to_host_error())
            }
        }
    }

    fn suppressed(&mut self, _ctx: &CallCtx, handle: i32) -> Result<i64, HostError> {
        let event = self.play("query_suppressed", same_handle(handle))?;
        match event {
            Event::Suppressed { result, .. } => result.map_err(|he| he.to_host_error()),
            _ => Err(HostError::Fatal(JobError::internal("tape event mismatch"))),
        }
    }

    fn close(&mut self, handle: i32) {
        self.by_handle.remove(&handle);
    }

    fn records(&self) -> Vec<QueryRecord> {
        self.records.clone()
    }
}
