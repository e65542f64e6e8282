//! The `enclave_v1` host ABI: the only functions a guest can call.
//!
//! Owns the per-job host state (parameters, open queries, outputs, logs, the seeded random
//! stream, the logical clock) and the host side of every import. Each function checks the
//! wall-clock deadline, treats every pointer and length as hostile (see `guest_mem`), bounds what
//! it allocates, and turns limit breaches into traps that name the limit. It must never give the
//! guest anything outside this list, and never panic on guest input. `docs/abi.md` is the
//! contract; keep the two in step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use wasmtime::ResourceLimiter;

use super::guest_mem::bad_call;
use crate::error::{JobError, Limit};
use crate::limits::Limits;
use crate::outputs::Output;
use crate::query::{JobSession, QueryError, classify_exec_error};

mod imports;
pub mod tape;
pub use imports::add_to_linker;
use tape::{Event, HostErr, Tape};

/// Namespace of every import.
pub const MODULE: &str = "enclave_v1";

/// Error codes returned (as negative values) to the guest.
pub mod code {
    /// Not found.
    pub const NOT_FOUND: i64 = -1;
    /// Refused (policy, statement kind, table not granted, bad SQL).
    pub const REFUSED: i64 = -2;
    /// Failed while running.
    pub const FAILED: i64 = -3;
    /// Unknown or closed handle.
    pub const BAD_HANDLE: i64 = -4;
    /// Malformed argument (bad name, kind, length or IPC).
    pub const BAD_ARGUMENT: i64 = -5;
    /// Too many handles open.
    pub const TOO_MANY: i64 = -6;
}

/// Largest parameter key accepted.
const MAX_KEY: usize = 256;
/// Largest output name read (names are checked further by `outputs::check_name`).
const MAX_NAME: usize = 256;
/// Largest single log line kept; longer lines are truncated (and still charged in full).
const MAX_LOG_LINE: usize = 16 << 10;
/// Largest guest failure message kept.
const MAX_FAIL: usize = 4 << 10;
/// Largest random request in one call.
const MAX_RANDOM: usize = 1 << 20;

/// The signature of each import: (name, params, results) in Wasm value types.
pub const IMPORTS: &[(&str, &[wasmtime::ValType], &[wasmtime::ValType])] = {
    use wasmtime::ValType::{I32, I64};
    &[
        ("param", &[I32, I32, I32, I32], &[I64]),
        ("query_open", &[I32, I32], &[I64]),
        ("query_next", &[I32], &[I64]),
        ("query_read", &[I32, I32, I32], &[I32]),
        ("query_close", &[I32], &[I32]),
        ("query_suppressed", &[I32], &[I64]),
        ("output", &[I32, I32, I32, I32, I32], &[I32]),
        ("log", &[I32, I32], &[]),
        ("random", &[I32, I32], &[]),
        ("clock", &[], &[I64]),
        ("fail", &[I32, I32], &[]),
        ("last_error", &[I32, I32], &[I32]),
    ]
};

/// Memory and table growth limiter that records the peak and names the limit when reached.
#[derive(Debug)]
pub struct JobLimiter {
    memory_cap: u64,
    table_cap: u64,
    /// Largest linear memory size granted, in bytes.
    pub memory_peak: u64,
}

/// `desired` if it is within `cap`, else the trap naming `limit`.
fn within(limit: Limit, desired: usize, cap: u64) -> wasmtime::Result<u64> {
    let desired = desired as u64;
    if desired > cap {
        return Err(wasmtime::Error::new(JobError::limit(limit, desired, cap)));
    }
    Ok(desired)
}

impl ResourceLimiter for JobLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let desired = within(Limit::Memory, desired, self.memory_cap)?;
        self.memory_peak = self.memory_peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        within(Limit::TableElements, desired, self.table_cap)?;
        Ok(true)
    }

    fn instances(&self) -> usize {
        1
    }
    fn tables(&self) -> usize {
        1
    }
    fn memories(&self) -> usize {
        1
    }
}

/// One open query. Live, it holds the engine's stream and the IPC writer producing the guest's
/// messages; in replay its messages come from the tape.
struct OpenQuery {
    live: Option<LiveQuery>,
    /// Index of this query's record in `query_log`.
    record: usize,
    /// The message announced by `query_next`, waiting for `query_read`.
    pending: Option<Arc<Vec<u8>>>,
    done: bool,
}

struct LiveQuery {
    stream: SendableRecordBatchStream,
    suppressed: Arc<AtomicU64>,
    writer: Option<StreamWriter<Vec<u8>>>,
}

/// A recorded host-call result, for the job report (and, later, the replay transcript).
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryRecord {
    /// The SQL text.
    pub sql: String,
    /// Batches streamed to the guest.
    pub batches: u64,
    /// Rows streamed to the guest.
    pub rows: u64,
    /// IPC bytes streamed to the guest.
    pub bytes: u64,
    /// Groups the threshold suppressed.
    pub suppressed_groups: u64,
    /// Error returned to the guest, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// blake3 of the executed (rewritten) plan, hex; absent when planning failed or in replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_blake3: Option<String>,
}

impl QueryRecord {
    fn new(sql: String, error: Option<String>) -> Self {
        QueryRecord {
            sql,
            batches: 0,
            rows: 0,
            bytes: 0,
            suppressed_groups: 0,
            error,
            plan_blake3: None,
        }
    }
}

/// Everything the host keeps for one running job.
pub struct HostState {
    pub(super) limiter: JobLimiter,
    limits: Limits,
    params: BTreeMap<String, String>,
    session: Option<Arc<JobSession>>,
    runtime: tokio::runtime::Handle,
    queries: Vec<Option<OpenQuery>>,
    /// Outputs emitted so far.
    pub outputs: Vec<Output>,
    output_bytes: u64,
    /// Log lines written so far.
    pub logs: Vec<String>,
    log_bytes: u64,
    rng: blake3::OutputReader,
    clock_ms: i64,
    last_error: String,
    /// First error a host call returned to the guest (used to classify a later failure).
    pub first_host_error: Option<JobError>,
    /// Failure message reported by the guest.
    pub guest_failure: Option<String>,
    /// Queries run, in order.
    pub query_log: Vec<QueryRecord>,
    /// Recorded (live) or played-back (replay) results of world-dependent host calls.
    pub tape: Tape,
    deadline: Instant,
    started: Instant,
}

impl HostState {
    /// State for a job with these limits, parameters, query session, seed, clock and tape.
    pub fn new(
        limits: Limits,
        params: BTreeMap<String, String>,
        session: Option<Arc<JobSession>>,
        runtime: tokio::runtime::Handle,
        seed: [u8; 32],
        clock_ms: i64,
        tape: Tape,
    ) -> Self {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(limits.wall_clock_ms);
        HostState {
            limiter: JobLimiter {
                memory_cap: limits.memory_bytes,
                table_cap: limits.table_elements,
                memory_peak: 0,
            },
            limits,
            params,
            session,
            runtime,
            queries: Vec::new(),
            outputs: Vec::new(),
            output_bytes: 0,
            logs: Vec::new(),
            log_bytes: 0,
            rng: blake3::Hasher::new_keyed(&seed).finalize_xof(),
            clock_ms,
            last_error: String::new(),
            first_host_error: None,
            guest_failure: None,
            query_log: Vec::new(),
            tape,
            deadline,
            started,
        }
    }

    /// Milliseconds since the job started.
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The wall-clock trap, if the deadline has passed.
    fn check_deadline(&self) -> wasmtime::Result<()> {
        if Instant::now() >= self.deadline {
            return Err(wall_clock_error(self.started, self.limits.wall_clock_ms));
        }
        Ok(())
    }

    /// Records an error for the guest and returns its code.
    fn refuse(&mut self, code: i64, err: JobError) -> i64 {
        self.last_error = err.message.clone();
        if self.first_host_error.is_none() {
            self.first_host_error = Some(err);
        }
        code
    }

    fn handle(&mut self, call: &str, h: i32) -> wasmtime::Result<&mut OpenQuery> {
        usize::try_from(h)
            .ok()
            .and_then(|i| self.queries.get_mut(i))
            .and_then(Option::as_mut)
            .ok_or_else(|| bad_call(call, &format!("unknown or closed query handle {h}")))
    }

    fn free_slot(&self) -> usize {
        self.queries
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.queries.len())
    }

    fn install(&mut self, slot: usize, q: OpenQuery) {
        if slot == self.queries.len() {
            self.queries.push(Some(q));
        } else {
            self.queries[slot] = Some(q);
        }
    }

    /// Records (live) an error result of `query_open` and returns its code to the guest.
    fn open_failed(&mut self, sql: String, code: i64, err: JobError) -> wasmtime::Result<i64> {
        self.tape.push(Event::Open {
            sql: sql.clone(),
            result: Err(HostErr {
                code,
                error: err.clone(),
            }),
        })?;
        self.query_log
            .push(QueryRecord::new(sql, Some(err.message.clone())));
        Ok(self.refuse(code, err))
    }

    fn open_query(&mut self, sql: String) -> wasmtime::Result<i64> {
        let open = self.queries.iter().filter(|q| q.is_some()).count() as u64;
        if open >= self.limits.open_queries {
            let e = JobError::limit(Limit::OpenQueries, open + 1, self.limits.open_queries);
            return Ok(self.refuse(code::TOO_MANY, e));
        }
        let slot = self.free_slot();
        if self.tape.is_replay() {
            return self.replay_open(sql, slot);
        }
        let Some(session) = self.session.clone() else {
            let e =
                QueryError::Refused("this job has no datasets: queries are not available".into());
            return self.open_failed(sql, code::REFUSED, e.to_job_error());
        };
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let opened = self
            .runtime
            .block_on(async { tokio::time::timeout(remaining, session.open(&sql)).await });
        let started = match opened {
            Err(_) => return Err(wall_clock_error(self.started, self.limits.wall_clock_ms)),
            Ok(Err(e)) => {
                let code = match e {
                    QueryError::Refused(_)
                    | QueryError::Policy(_)
                    | QueryError::Sql(_)
                    | QueryError::TooLong { .. } => code::REFUSED,
                    _ => code::FAILED,
                };
                return self.open_failed(sql, code, e.to_job_error());
            }
            Ok(Ok(s)) => s,
        };
        let schema = started.stream.schema();
        let writer = match StreamWriter::try_new(Vec::new(), &schema) {
            Ok(w) => w,
            Err(e) => {
                return Err(wasmtime::Error::new(JobError::internal(format!(
                    "IPC writer: {e}"
                ))));
            }
        };
        self.tape.push(Event::Open {
            sql: sql.clone(),
            result: Ok(slot as i64),
        })?;
        let mut record = QueryRecord::new(sql, None);
        record.plan_blake3 = Some(blake3::Hash::from(started.plan_blake3).to_hex().to_string());
        self.query_log.push(record);
        let q = OpenQuery {
            live: Some(LiveQuery {
                stream: started.stream,
                suppressed: started.suppressed,
                writer: Some(writer),
            }),
            record: self.query_log.len() - 1,
            pending: None,
            done: false,
        };
        self.install(slot, q);
        Ok(slot as i64)
    }

    fn replay_open(&mut self, sql: String, slot: usize) -> wasmtime::Result<i64> {
        let event = self.tape.play("query_open", |e| match e {
            Event::Open { sql: recorded, .. } if *recorded != sql => Err(format!(
                "the guest's SQL (blake3 {}) differs from the recorded SQL (blake3 {})",
                blake3::hash(sql.as_bytes()).to_hex(),
                blake3::hash(recorded.as_bytes()).to_hex()
            )),
            Event::Open { result: Ok(h), .. } if *h != slot as i64 => {
                Err(format!("handle {slot} where the transcript has {h}"))
            }
            _ => Ok(()),
        })?;
        let Event::Open { result, .. } = event else {
            return Err(wasmtime::Error::new(JobError::internal(
                "tape event mismatch",
            )));
        };
        match result {
            Err(he) => {
                self.query_log
                    .push(QueryRecord::new(sql, Some(he.error.message.clone())));
                Ok(self.refuse(he.code, he.error))
            }
            Ok(_) => {
                self.query_log.push(QueryRecord::new(sql, None));
                let q = OpenQuery {
                    live: None,
                    record: self.query_log.len() - 1,
                    pending: None,
                    done: false,
                };
                self.install(slot, q);
                Ok(slot as i64)
            }
        }
    }

    /// `query_suppressed`: the count the threshold suppressed, live or from the tape.
    fn suppressed(&mut self, h: i32) -> wasmtime::Result<i64> {
        let q = self.handle("query_suppressed", h)?;
        if let Some(live) = &q.live {
            let value = i64::try_from(live.suppressed.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
            self.tape.push(Event::Suppressed { handle: h, value })?;
            return Ok(value);
        }
        let event = self.tape.play("query_suppressed", |e| match e {
            Event::Suppressed { handle, .. } if *handle != h => {
                Err(format!("handle {h} where the transcript has {handle}"))
            }
            _ => Ok(()),
        })?;
        match event {
            Event::Suppressed { value, .. } => Ok(value),
            _ => Err(wasmtime::Error::new(JobError::internal(
                "tape event mismatch",
            ))),
        }
    }

    /// Produces the next IPC message of query `h`: schema first, then one per batch, then EOS.
    /// Every outcome is recorded on the tape (live) or taken from it (replay).
    fn next_message(&mut self, h: i32) -> wasmtime::Result<i64> {
        let step = if self.handle("query_next", h)?.live.is_some() {
            let step = self.live_next(h)?;
            self.tape.push(Event::Next {
                handle: h,
                result: step.clone(),
            })?;
            step
        } else {
            let event = self.tape.play("query_next", |e| match e {
                Event::Next { handle, .. } if *handle != h => {
                    Err(format!("handle {h} where the transcript has {handle}"))
                }
                _ => Ok(()),
            })?;
            match event {
                Event::Next { result, .. } => result,
                _ => {
                    return Err(wasmtime::Error::new(JobError::internal(
                        "tape event mismatch",
                    )));
                }
            }
        };
        let q = self.handle("query_next", h)?;
        let record = q.record;
        match step {
            Ok(msg) => {
                let n = msg.len() as i64;
                q.pending = if msg.is_empty() { None } else { Some(msg) };
                let suppressed = q
                    .live
                    .as_ref()
                    .map(|l| l.suppressed.load(Ordering::Relaxed));
                if let Some(rec) = self.query_log.get_mut(record) {
                    rec.bytes += n as u64;
                    if let Some(s) = suppressed {
                        rec.suppressed_groups = s;
                    }
                }
                Ok(n)
            }
            Err(he) => {
                q.done = true;
                q.pending = None;
                if let Some(rec) = self.query_log.get_mut(record) {
                    rec.error = Some(he.error.message.clone());
                }
                Ok(self.refuse(he.code, he.error))
            }
        }
    }

    /// The next message of a live query (empty once the stream has ended).
    fn live_next(&mut self, h: i32) -> wasmtime::Result<Result<Arc<Vec<u8>>, HostErr>> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let memory_limit = self.limits.query_memory_bytes;
        let runtime = self.runtime.clone();
        let (started, wall_cap) = (self.started, self.limits.wall_clock_ms);
        let q = self.handle("query_next", h)?;
        let record = q.record;
        let done = q.done;
        let Some(live) = q.live.as_mut() else {
            return Err(wasmtime::Error::new(JobError::internal(
                "live query missing",
            )));
        };
        if let Some(w) = live.writer.as_mut() {
            let buffered = std::mem::take(w.get_mut());
            if !buffered.is_empty() {
                return Ok(Ok(Arc::new(buffered)));
            }
        }
        if done {
            return Ok(Ok(Arc::new(Vec::new())));
        }
        let next =
            runtime.block_on(async { tokio::time::timeout(remaining, live.stream.next()).await });
        let step = match next {
            Err(_) => return Err(wall_clock_error(started, wall_cap)),
            Ok(step) => step,
        };
        let Some(w) = live.writer.as_mut() else {
            return Err(wasmtime::Error::new(JobError::internal(
                "query writer missing",
            )));
        };
        let ipc = |e: datafusion::arrow::error::ArrowError| {
            wasmtime::Error::new(JobError::internal(format!("IPC encoding: {e}")))
        };
        let rows = match step {
            Some(Ok(batch)) => {
                w.write(&batch).map_err(ipc)?;
                batch.num_rows() as u64
            }
            Some(Err(e)) => {
                q.done = true;
                let e = classify_exec_error(memory_limit)(e).to_job_error();
                return Ok(Err(HostErr {
                    code: code::FAILED,
                    error: e,
                }));
            }
            None => {
                w.finish().map_err(ipc)?;
                q.done = true;
                0
            }
        };
        let msg = std::mem::take(w.get_mut());
        if let Some(rec) = self.query_log.get_mut(record) {
            rec.rows += rows;
            rec.batches += u64::from(rows > 0);
        }
        Ok(Ok(Arc::new(msg)))
    }

    fn add_output(&mut self, name: String, kind: i32, bytes: Vec<u8>) -> wasmtime::Result<i32> {
        let count = self.outputs.len() as u64 + 1;
        if count > self.limits.outputs {
            return Err(wasmtime::Error::new(JobError::limit(
                Limit::Outputs,
                count,
                self.limits.outputs,
            )));
        }
        if self.outputs.iter().any(|o| o.name == name) {
            let e = JobError::new(
                crate::error::ErrorKind::InvalidOutput,
                format!("output `{name}` was already emitted"),
            );
            return Ok(self.refuse(code::BAD_ARGUMENT, e) as i32);
        }
        match Output::from_guest(&name, kind, &bytes) {
            Ok(out) => {
                self.outputs.push(out);
                Ok(0)
            }
            Err(why) => {
                let e = JobError::new(
                    crate::error::ErrorKind::InvalidOutput,
                    format!("output `{}`: {why}", name.escape_debug()),
                );
                Ok(self.refuse(code::BAD_ARGUMENT, e) as i32)
            }
        }
    }
}

/// The trap for a job past its wall-clock deadline.
fn wall_clock_error(started: Instant, cap_ms: u64) -> wasmtime::Error {
    let used = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    wasmtime::Error::new(JobError::limit(Limit::WallClock, used, cap_ms))
}
