//! The host side of the `enclave_v1` ABI: the per-job state every import works on.
//!
//! Owns what the host keeps for one running job — parameters, the guest's query handles and their
//! pending messages, output and log accounting, the seeded random stream, the logical clock, the
//! last error — and the rules each import follows: check the deadline, treat every pointer and
//! length as hostile (see `guest_mem`), charge fuel for the work done, bound what is allocated,
//! turn limit breaches into traps that name the limit. Queries go to a [`QueryHost`] and outputs to
//! an [`OutputSink`]; this module never sees a query engine. It must never give the guest anything
//! outside the ABI, and never panic on guest input. `docs/abi.md` is the contract.

use std::collections::BTreeSet;
use std::time::Instant;

use enclave_abi::{ErrorCode, LOG_LINE_OVERHEAD, OutputKind};
use enclave_core::{
    CallCtx, ErrorKind, HostError, JobError, Limit, Limits, Message, OutputSink, Params, QueryHost,
};
use wasmtime::ResourceLimiter;

use super::guest_mem::bad_call;

mod imports;
pub use imports::add_to_linker;

/// Fuel each host call costs before any work (≈ the Wasm instructions of a small function).
pub const CALL_FUEL: u64 = 1_000;
/// Fuel a `query_open` costs on top: parsing, checking and planning a statement.
pub const OPEN_FUEL: u64 = 1_000_000;
/// Fuel per byte a host call copies in or out of guest memory.
pub const BYTE_FUEL: u64 = 1;
/// Fuel per byte of `random` output.
pub const RANDOM_BYTE_FUEL: u64 = 8;
/// Fuel per byte of an output (decoded, checked and re-encoded by the host).
pub const OUTPUT_BYTE_FUEL: u64 = 16;

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

/// A guest query handle.
struct Slot {
    /// The message announced by `query_next`, waiting for `query_read`.
    pending: Option<Message>,
    /// The stream has ended or failed.
    done: bool,
}

/// Everything the host keeps for one running job.
pub struct HostState {
    pub(crate) limiter: JobLimiter,
    limits: Limits,
    params: Params,
    pub(crate) queries: Box<dyn QueryHost>,
    pub(crate) outputs: Box<dyn OutputSink>,
    slots: Vec<Option<Slot>>,
    opened: u64,
    output_count: u64,
    output_bytes: u64,
    output_names: BTreeSet<String>,
    /// Log lines written so far.
    pub(crate) logs: Vec<String>,
    log_bytes: u64,
    rng: blake3::OutputReader,
    clock_ms: i64,
    last_error: String,
    /// First error a host call returned to the guest (classifies a later failure).
    pub(crate) first_host_error: Option<JobError>,
    /// Failure message reported by the guest.
    pub(crate) guest_failure: Option<String>,
    /// Host calls made.
    pub(crate) host_calls: u64,
    pub(crate) ctx: CallCtx,
}

/// What a job starts with.
pub(crate) struct Start {
    pub limits: Limits,
    pub params: Params,
    pub seed: [u8; 32],
    pub clock_ms: i64,
    pub queries: Box<dyn QueryHost>,
    pub outputs: Box<dyn OutputSink>,
}

impl HostState {
    pub(crate) fn new(s: Start) -> Self {
        let ctx = CallCtx::new(Instant::now(), s.limits.wall_clock_ms);
        HostState {
            limiter: JobLimiter {
                memory_cap: s.limits.memory_bytes,
                table_cap: s.limits.table_elements,
                memory_peak: 0,
            },
            params: s.params,
            queries: s.queries,
            outputs: s.outputs,
            slots: Vec::new(),
            opened: 0,
            output_count: 0,
            output_bytes: 0,
            output_names: BTreeSet::new(),
            logs: Vec::new(),
            log_bytes: 0,
            rng: blake3::Hasher::new_keyed(&s.seed).finalize_xof(),
            clock_ms: s.clock_ms,
            last_error: String::new(),
            first_host_error: None,
            guest_failure: None,
            host_calls: 0,
            ctx,
            limits: s.limits,
        }
    }

    /// Milliseconds since the job started.
    pub(crate) fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.ctx.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The wall-clock trap, if the deadline has passed.
    fn check_deadline(&self) -> wasmtime::Result<()> {
        if Instant::now() >= self.ctx.deadline {
            return Err(wasmtime::Error::new(self.ctx.wall_clock_error()));
        }
        Ok(())
    }

    /// Records an error for the guest and returns its code.
    fn refuse(&mut self, code: ErrorCode, err: JobError) -> i64 {
        self.last_error = err.message.clone();
        if self.first_host_error.is_none() {
            self.first_host_error = Some(err);
        }
        code.value()
    }

    /// A host error: a refusal becomes the guest's error code, anything else ends the job.
    fn host_error(&mut self, e: HostError) -> wasmtime::Result<i64> {
        match e {
            HostError::Refused { code, error } => Ok(self.refuse(code, error)),
            HostError::Fatal(error) => Err(wasmtime::Error::new(error)),
        }
    }

    fn slot(&mut self, call: &str, h: i32) -> wasmtime::Result<&mut Slot> {
        usize::try_from(h)
            .ok()
            .and_then(|i| self.slots.get_mut(i))
            .and_then(Option::as_mut)
            .ok_or_else(|| bad_call(call, &format!("unknown or closed query handle {h}")))
    }

    fn open_query(&mut self, sql: &str) -> wasmtime::Result<i64> {
        let open = self.slots.iter().filter(|q| q.is_some()).count() as u64;
        if open >= self.limits.open_queries {
            let e = JobError::limit(Limit::OpenQueries, open + 1, self.limits.open_queries);
            return Ok(self.refuse(ErrorCode::TooMany, e));
        }
        // Every query opened, refused or not, is logged: their number ends the job at the limit.
        self.opened += 1;
        if self.opened > self.limits.queries {
            return Err(wasmtime::Error::new(JobError::limit(
                Limit::Queries,
                self.opened,
                self.limits.queries,
            )));
        }
        let slot = self
            .slots
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.slots.len());
        let handle = i32::try_from(slot)
            .map_err(|_| wasmtime::Error::new(JobError::internal("too many query slots")))?;
        let ctx = self.ctx;
        match self.queries.open(&ctx, handle, sql) {
            Ok(()) => {
                let s = Slot {
                    pending: None,
                    done: false,
                };
                if slot == self.slots.len() {
                    self.slots.push(Some(s));
                } else {
                    self.slots[slot] = Some(s);
                }
                Ok(i64::from(handle))
            }
            Err(e) => self.host_error(e),
        }
    }

    /// `query_next`: the size of the next message (0 at the end), or an error code.
    fn next_message(&mut self, h: i32) -> wasmtime::Result<i64> {
        let slot = self.slot("query_next", h)?;
        if slot.done {
            slot.pending = None;
            return Ok(0);
        }
        let ctx = self.ctx;
        match self.queries.next(&ctx, h) {
            Ok(msg) => {
                let slot = self.slot("query_next", h)?;
                let n = msg.len() as i64;
                if msg.is_empty() {
                    slot.done = true;
                    slot.pending = None;
                } else {
                    slot.pending = Some(msg);
                }
                Ok(n)
            }
            Err(e) => {
                let slot = self.slot("query_next", h)?;
                slot.done = true;
                slot.pending = None;
                self.host_error(e)
            }
        }
    }

    fn suppressed(&mut self, h: i32) -> wasmtime::Result<i64> {
        self.slot("query_suppressed", h)?;
        let ctx = self.ctx;
        match self.queries.suppressed(&ctx, h) {
            Ok(n) => Ok(n),
            Err(e) => self.host_error(e),
        }
    }

    fn close_query(&mut self, h: i32) -> i32 {
        match usize::try_from(h).ok().and_then(|i| self.slots.get_mut(i)) {
            Some(slot @ Some(_)) => {
                *slot = None;
                self.queries.close(h);
                0
            }
            _ => ErrorCode::BadHandle.value() as i32,
        }
    }

    /// Checks an output's size against the limits; the bytes are read only after this.
    fn charge_output(&mut self, len: u64) -> wasmtime::Result<()> {
        let count = self.output_count + 1;
        if count > self.limits.outputs {
            return Err(wasmtime::Error::new(JobError::limit(
                Limit::Outputs,
                count,
                self.limits.outputs,
            )));
        }
        let used = self.output_bytes.saturating_add(len);
        if used > self.limits.output_bytes {
            return Err(wasmtime::Error::new(JobError::limit(
                Limit::OutputBytes,
                used,
                self.limits.output_bytes,
            )));
        }
        self.output_count = count;
        self.output_bytes = used;
        Ok(())
    }

    fn add_output(&mut self, name: &[u8], kind: i32, bytes: &[u8]) -> wasmtime::Result<i32> {
        let bad = |state: &mut Self, why: String| {
            let e = JobError::new(ErrorKind::InvalidOutput, why);
            Ok(state.refuse(ErrorCode::BadArgument, e) as i32)
        };
        if let Err(why) = enclave_abi::check_output_name(name) {
            return bad(self, why.to_owned());
        }
        // Checked ASCII above.
        let name = String::from_utf8_lossy(name).into_owned();
        let Some(kind) = OutputKind::from_code(kind) else {
            return bad(
                self,
                format!("output `{name}`: unknown output kind code {kind}"),
            );
        };
        if self.output_names.contains(&name) {
            return bad(self, format!("output `{name}` was already emitted"));
        }
        match self.outputs.output(&name, kind, bytes) {
            Ok(()) => {
                self.output_names.insert(name);
                Ok(0)
            }
            Err(HostError::Refused { code, error }) => Ok(self.refuse(code, error) as i32),
            Err(HostError::Fatal(e)) => Err(wasmtime::Error::new(e)),
        }
    }

    /// Charges a log line: its bytes plus a fixed overhead, so empty lines are not free.
    fn charge_log(&mut self, len: u64) -> wasmtime::Result<()> {
        let used = self
            .log_bytes
            .saturating_add(len)
            .saturating_add(LOG_LINE_OVERHEAD);
        if used > self.limits.log_bytes {
            return Err(wasmtime::Error::new(JobError::limit(
                Limit::LogBytes,
                used,
                self.limits.log_bytes,
            )));
        }
        self.log_bytes = used;
        Ok(())
    }
}
