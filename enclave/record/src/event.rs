//! The events of a job's recording: the results of every host call whose answer depends on the
//! world (the datasets, the query engine), and their binary encoding.
//!
//! Owns [`Event`] and its encoding in a transcript: a tag byte, then little-endian fields and
//! length-prefixed bytes. Everything else a guest sees is fixed by the job's manifest (parameters,
//! seed, clock) and needs no recording. Decoding treats its input as hostile: every length is
//! checked. It must never decode a length beyond the bytes it has.

use enclave_abi::ErrorCode;
use enclave_core::{HostError, JobError, Message};

/// An error result a host call returned to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostErr {
    /// The code returned.
    pub code: ErrorCode,
    /// The error recorded for `last_error` and the job's classification.
    pub error: JobError,
}

impl HostErr {
    /// As the host error the guest was given.
    pub fn to_host_error(&self) -> HostError {
        HostError::refused(self.code, self.error.clone())
    }
}

/// One recorded host-call result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `query_open(sql)` under `handle`: accepted or refused.
    Open {
        /// The handle the sandbox chose.
        handle: i32,
        /// The SQL text the guest passed.
        sql: String,
        /// Accepted or refused.
        result: Result<(), HostErr>,
    },
    /// `query_next(handle)`: a message (empty at the end) or a failure.
    Next {
        /// The handle.
        handle: i32,
        /// IPC message bytes, or the error.
        result: Result<Message, HostErr>,
    },
    /// `query_suppressed(handle)`: a count.
    Suppressed {
        /// The handle.
        handle: i32,
        /// The count, or the error.
        result: Result<i64, HostErr>,
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

    /// The handle the event is about.
    pub fn handle(&self) -> i32 {
        match self {
            Event::Open { handle, .. }
            | Event::Next { handle, .. }
            | Event::Suppressed { handle, .. } => *handle,
        }
    }

    /// Appends the encoding of this event to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), &'static str> {
        match self {
            Event::Open {
                handle,
                sql,
                result,
            } => {
                out.push(1);
                out.extend_from_slice(&handle.to_le_bytes());
                put_bytes(out, sql.as_bytes())?;
                match result {
                    Ok(()) => out.push(0),
                    Err(he) => put_err(out, he)?,
                }
            }
            Event::Next { handle, result } => {
                out.push(2);
                out.extend_from_slice(&handle.to_le_bytes());
                match result {
                    Ok(msg) => {
                        out.push(0);
                        put_bytes(out, msg)?;
                    }
                    Err(he) => put_err(out, he)?,
                }
            }
            Event::Suppressed { handle, result } => {
                out.push(3);
                out.extend_from_slice(&handle.to_le_bytes());
                match result {
                    Ok(v) => {
                        out.push(0);
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                    Err(he) => put_err(out, he)?,
                }
            }
        }
        Ok(())
    }

    /// Decodes one event whose tag byte `tag` was already read.
    pub(crate) fn decode(tag: u8, r: &mut Reader<'_>) -> Result<Event, &'static str> {
        Ok(match tag {
            1 => {
                let handle = r.i32()?;
                let sql = String::from_utf8(r.bytes()?.to_vec()).map_err(|_| "SQL text")?;
                let result = match r.u8()? {
                    0 => Ok(()),
                    1 => Err(r.err()?),
                    _ => return Err("result tag"),
                };
                Event::Open {
                    handle,
                    sql,
                    result,
                }
            }
            2 => {
                let handle = r.i32()?;
                let result = match r.u8()? {
                    0 => Ok(std::sync::Arc::new(r.bytes()?.to_vec())),
                    1 => Err(r.err()?),
                    _ => return Err("result tag"),
                };
                Event::Next { handle, result }
            }
            3 => {
                let handle = r.i32()?;
                let result = match r.u8()? {
                    0 => Ok(r.i64()?),
                    1 => Err(r.err()?),
                    _ => return Err("result tag"),
                };
                Event::Suppressed { handle, result }
            }
            _ => return Err("unknown event tag"),
        })
    }
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<(), &'static str> {
    let len = u32::try_from(b.len()).map_err(|_| "item larger than 4 GiB")?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(b);
    Ok(())
}

fn put_err(out: &mut Vec<u8>, he: &HostErr) -> Result<(), &'static str> {
    out.push(1);
    out.extend_from_slice(&he.code.value().to_le_bytes());
    put_bytes(
        out,
        &serde_json::to_vec(&he.error).map_err(|_| "error encoding")?,
    )
}

/// A bounds-checked reader over decrypted transcript bytes.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let (a, b) = self.0.split_at_checked(n).ok_or("truncated")?;
        self.0 = b;
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        self.take(N)?.try_into().map_err(|_| "truncated")
    }
    fn i64(&mut self) -> Result<i64, &'static str> {
        Ok(i64::from_le_bytes(self.arr()?))
    }
    fn i32(&mut self) -> Result<i32, &'static str> {
        Ok(i32::from_le_bytes(self.arr()?))
    }
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], &'static str> {
        let n = u32::from_le_bytes(self.arr()?) as usize;
        self.take(n)
    }
    fn err(&mut self) -> Result<HostErr, &'static str> {
        let code = ErrorCode::from_value(self.i64()?).ok_or("error code")?;
        let error = serde_json::from_slice(self.bytes()?).map_err(|_| "error record")?;
        Ok(HostErr { code, error })
    }
}
