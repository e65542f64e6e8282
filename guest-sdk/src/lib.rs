//! Enclave guest SDK: write a job as a plain Rust function, compile it to
//! `wasm32-unknown-unknown`, and submit the module.
//!
//! This crate owns the guest side of the `enclave_v1` ABI (documented in `docs/abi.md`): running
//! SQL over the job's granted tables and iterating the Arrow [`RecordBatch`]es the host streams
//! in, reading typed job parameters, emitting named outputs, and writing log lines. It must never
//! try to reach anything but the host ABI: a module built with it has no other imports.
//!
//! ```ignore
//! use enclave_guest::{emit, query, OutputKind};
//!
//! fn run() -> enclave_guest::Result<()> {
//!     let batches = query("SELECT district, COUNT(*) AS n FROM residents GROUP BY district")?
//!         .collect::<enclave_guest::Result<Vec<_>>>()?;
//!     emit("counts", OutputKind::Aggregate, &batches)
//! }
//! enclave_guest::job!(run);
//! ```

pub mod sys;

use std::fmt;
use std::str::FromStr;

pub use arrow_array;
pub use arrow_buffer;
pub use arrow_ipc;
pub use arrow_schema;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, SchemaRef};

/// What an output is; the host's egress rules depend on it.
pub use enclave_abi::OutputKind;

/// Errors a job sees.
#[derive(Debug)]
pub enum Error {
    /// The host refused or failed a request; `code` is one of the `sys::ERR_*` values.
    Host {
        /// The code (negative; see `sys`).
        code: i64,
        /// The host's explanation (`last_error`).
        message: String,
    },
    /// Arrow could not decode or encode data.
    Arrow(ArrowError),
    /// A parameter is missing or malformed.
    Param {
        /// The parameter.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// An error raised by the job itself.
    Job(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Host { code, message } => write!(f, "host error {code}: {message}"),
            Error::Arrow(e) => write!(f, "arrow: {e}"),
            Error::Param { key, reason } => write!(f, "parameter `{key}`: {reason}"),
            Error::Job(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<ArrowError> for Error {
    fn from(e: ArrowError) -> Self {
        Error::Arrow(e)
    }
}

impl From<String> for Error {
    fn from(m: String) -> Self {
        Error::Job(m)
    }
}

impl From<&str> for Error {
    fn from(m: &str) -> Self {
        Error::Job(m.to_owned())
    }
}

/// Result type of the SDK.
pub type Result<T> = std::result::Result<T, Error>;

/// Fetches the host's message for the last failed call.
fn host_error(code: i64) -> Error {
    let mut buf = vec![0u8; 1024];
    let n = sys::last_error(&mut buf);
    let n = usize::try_from(n).unwrap_or(0).min(buf.len());
    buf.truncate(n);
    let message = String::from_utf8_lossy(&buf).into_owned();
    Error::Host { code, message }
}

/// Reads the raw value of job parameter `key`, or `None` if it was not given.
pub fn param(key: &str) -> Option<String> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = sys::param(key, &mut buf);
        let n = usize::try_from(n).ok()?;
        if n <= buf.len() {
            buf.truncate(n);
            return String::from_utf8(buf).ok();
        }
        buf.resize(n, 0);
    }
}

/// Reads job parameter `key` parsed as `T`; a missing or unparsable value is an error.
pub fn param_as<T: FromStr>(key: &str) -> Result<T>
where
    T::Err: fmt::Display,
{
    let raw = param(key).ok_or_else(|| Error::Param {
        key: key.to_owned(),
        reason: "missing".to_owned(),
    })?;
    raw.trim().parse().map_err(|e: T::Err| Error::Param {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// Reads job parameter `key` parsed as `T`, or `default` when it was not given.
pub fn param_or<T: FromStr>(key: &str, default: T) -> Result<T>
where
    T::Err: fmt::Display,
{
    match param(key) {
        None => Ok(default),
        Some(_) => param_as(key),
    }
}

/// A running query: an iterator of Arrow record batches streamed in from the host.
pub struct Query {
    handle: i32,
    decoder: StreamDecoder,
    buf: Vec<u8>,
    /// A batch decoded while looking for the schema.
    first: Option<RecordBatch>,
    done: bool,
}

/// Runs `sql` over the job's granted tables.
pub fn query(sql: &str) -> Result<Query> {
    let h = sys::query_open(sql);
    if h < 0 {
        return Err(host_error(h));
    }
    let handle = i32::try_from(h).map_err(|_| Error::Job("host returned a bad handle".into()))?;
    let mut q = Query {
        handle,
        decoder: StreamDecoder::new(),
        buf: Vec::new(),
        first: None,
        done: false,
    };
    // The first message carries the schema; the decoder completes it when the next bytes
    // arrive, so pull until the schema is known (keeping a batch that came with it).
    while q.decoder.schema().is_none() && !q.done {
        if let Some(b) = q.pump()? {
            q.first = Some(b);
            break;
        }
    }
    Ok(q)
}

impl Query {
    /// The schema of the result.
    pub fn schema(&self) -> Option<SchemaRef> {
        self.decoder.schema()
    }

    /// How many groups the host's group threshold suppressed (complete once iteration ended).
    /// The job learns how many, never which.
    pub fn suppressed_groups(&self) -> u64 {
        let n = sys::query_suppressed(self.handle);
        u64::try_from(n).unwrap_or(0)
    }

    /// Pulls one message from the host; returns a batch if that message completed one.
    fn pump(&mut self) -> Result<Option<RecordBatch>> {
        let n = sys::query_next(self.handle);
        if n < 0 {
            self.done = true;
            return Err(host_error(n));
        }
        if n == 0 {
            self.done = true;
            self.decoder.finish()?;
            return Ok(None);
        }
        let len = usize::try_from(n).map_err(|_| Error::Job("message too large".into()))?;
        self.buf.clear();
        self.buf.resize(len, 0);
        let rc = sys::query_read(self.handle, &mut self.buf);
        if rc < 0 {
            self.done = true;
            return Err(host_error(i64::from(rc)));
        }
        let mut buffer = Buffer::from_vec(std::mem::take(&mut self.buf));
        let mut out = None;
        while !buffer.is_empty() {
            if let Some(b) = self.decoder.decode(&mut buffer)? {
                out = Some(b);
            }
        }
        Ok(out)
    }
}

impl Iterator for Query {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(b) = self.first.take() {
            return Some(Ok(b));
        }
        while !self.done {
            match self.pump() {
                Ok(Some(batch)) => return Some(Ok(batch)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }
}

impl Drop for Query {
    fn drop(&mut self) {
        sys::query_close(self.handle);
    }
}

/// Runs `sql` and collects every batch.
pub fn query_all(sql: &str) -> Result<Vec<RecordBatch>> {
    query(sql)?.collect()
}

/// Emits output `name` of `kind` holding `batches` (all with the same schema).
pub fn emit(name: &str, kind: OutputKind, batches: &[RecordBatch]) -> Result<()> {
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => {
            return Err(Error::Job(
                "emit needs at least one batch (it carries the schema)".into(),
            ));
        }
    };
    emit_with_schema(name, kind, &schema, batches)
}

/// Emits output `name` of `kind` with an explicit schema (allows zero batches).
pub fn emit_with_schema(
    name: &str,
    kind: OutputKind,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    let mut w = StreamWriter::try_new(Vec::new(), schema)?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()?;
    let bytes = w.into_inner()?;
    let rc = sys::output(name, kind as i32, &bytes);
    if rc < 0 {
        return Err(host_error(i64::from(rc)));
    }
    Ok(())
}

/// Writes one log line. Logs stay inside the domain and are size-capped by the host.
pub fn log(line: &str) {
    sys::log(line)
}

/// `format!`-style logging: `enclave_guest::log!("{} rows", n)`.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::log(&::std::format!($($arg)*)) };
}

/// Fills `buf` with the job's deterministic random bytes (seeded per job and recorded).
pub fn random_bytes(buf: &mut [u8]) {
    sys::random(buf)
}

/// A deterministic random `u64` from the job's seeded stream.
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    random_bytes(&mut b);
    u64::from_le_bytes(b)
}

/// The job's logical time in milliseconds since the Unix epoch (fixed when the job was submitted).
pub fn now_ms() -> i64 {
    sys::clock()
}

/// Reports the job's failure message to the host (the job then ends with an error).
pub fn fail(message: &str) {
    sys::fail(message)
}

/// Runs a job body: installs a panic hook that reports panics to the host, then maps the result
/// to the ABI's status code. Used by [`job!`]; call it directly only from a hand-written export.
pub fn run_job<E: fmt::Display>(body: impl FnOnce() -> std::result::Result<(), E>) -> i32 {
    std::panic::set_hook(Box::new(|info| fail(&format!("guest panicked: {info}"))));
    match body() {
        Ok(()) => 0,
        Err(e) => {
            fail(&e.to_string());
            1
        }
    }
}

/// Marks `f` (a `fn() -> Result<(), E>` with `E: Display`) as the job's entry point by exporting
/// `enclave_run` for it.
#[macro_export]
macro_rules! job {
    ($f:path) => {
        // The export the host calls; `no_mangle` is the one attribute `unsafe_code` flags.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub extern "C" fn enclave_run() -> i32 {
            $crate::run_job($f)
        }
    };
}
