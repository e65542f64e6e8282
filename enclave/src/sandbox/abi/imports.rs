//! The host side of each `enclave_v1` import, registered in a linker.
//!
//! Owns argument handling of every import: deadline first, hostile pointers checked, limits
//! charged, then the call into `HostState`. It must never index guest memory without a check.

use wasmtime::{Caller, Linker};

use super::super::guest_mem::{bad_call, read_bytes, read_prefix, read_str, write_bytes};
use super::{HostState, MAX_FAIL, MAX_KEY, MAX_LOG_LINE, MAX_NAME, MAX_RANDOM, MODULE, code};
use crate::error::{JobError, Limit};
use crate::query::QueryError;

/// Registers every `enclave_v1` function in `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        MODULE,
        "param",
        |mut c: Caller<'_, HostState>,
         kp: i32,
         kl: i32,
         bp: i32,
         bc: i32|
         -> wasmtime::Result<i64> {
            c.data().check_deadline()?;
            let key = read_str(&mut c, "param", kp, kl, MAX_KEY)?;
            let Some(value) = c.data().params.get(&key).cloned() else {
                return Ok(code::NOT_FOUND);
            };
            if value.len() <= bc as u32 as usize {
                write_bytes(&mut c, "param", bp, bc, value.as_bytes())?;
            }
            Ok(value.len() as i64)
        },
    )?;

    linker.func_wrap(
        MODULE,
        "query_open",
        |mut c: Caller<'_, HostState>, sp: i32, sl: i32| -> wasmtime::Result<i64> {
            c.data().check_deadline()?;
            let cap = c.data().limits.sql_bytes;
            let len = sl as u32 as u64;
            if len > cap {
                let e = QueryError::TooLong { len, limit: cap };
                return Ok(c.data_mut().refuse(code::REFUSED, e.to_job_error()));
            }
            let sql = read_str(&mut c, "query_open", sp, sl, cap as usize)?;
            c.data_mut().open_query(sql)
        },
    )?;

    linker.func_wrap(
        MODULE,
        "query_next",
        |mut c: Caller<'_, HostState>, h: i32| -> wasmtime::Result<i64> {
            c.data().check_deadline()?;
            c.data_mut().next_message(h)
        },
    )?;

    linker.func_wrap(
        MODULE,
        "query_read",
        |mut c: Caller<'_, HostState>, h: i32, bp: i32, bl: i32| -> wasmtime::Result<i32> {
            c.data().check_deadline()?;
            let msg = c
                .data_mut()
                .handle("query_read", h)?
                .pending
                .take()
                .ok_or_else(|| {
                    bad_call(
                        "query_read",
                        "no message is pending (call query_next first)",
                    )
                })?;
            if msg.len() != bl as u32 as usize {
                return Err(bad_call(
                    "query_read",
                    &format!(
                        "buffer length {} differs from the announced {}",
                        bl as u32,
                        msg.len()
                    ),
                ));
            }
            write_bytes(&mut c, "query_read", bp, bl, &msg)?;
            Ok(0)
        },
    )?;

    linker.func_wrap(
        MODULE,
        "query_close",
        |mut c: Caller<'_, HostState>, h: i32| -> wasmtime::Result<i32> {
            let state = c.data_mut();
            match usize::try_from(h)
                .ok()
                .and_then(|i| state.queries.get_mut(i))
            {
                Some(slot @ Some(_)) => {
                    *slot = None;
                    Ok(0)
                }
                _ => Ok(code::BAD_HANDLE as i32),
            }
        },
    )?;

    linker.func_wrap(
        MODULE,
        "query_suppressed",
        |mut c: Caller<'_, HostState>, h: i32| -> wasmtime::Result<i64> {
            c.data_mut().suppressed(h)
        },
    )?;

    linker.func_wrap(
        MODULE,
        "output",
        |mut c: Caller<'_, HostState>,
         np: i32,
         nl: i32,
         kind: i32,
         dp: i32,
         dl: i32|
         -> wasmtime::Result<i32> {
            c.data().check_deadline()?;
            let state = c.data();
            let used = state.output_bytes.saturating_add(dl as u32 as u64);
            if used > state.limits.output_bytes {
                return Err(wasmtime::Error::new(JobError::limit(
                    Limit::OutputBytes,
                    used,
                    state.limits.output_bytes,
                )));
            }
            let name = String::from_utf8_lossy(&read_bytes(&mut c, "output", np, nl, MAX_NAME)?)
                .into_owned();
            let bytes = read_bytes(&mut c, "output", dp, dl, usize::MAX)?;
            c.data_mut().output_bytes = used;
            c.data_mut().add_output(name, kind, bytes)
        },
    )?;

    linker.func_wrap(
        MODULE,
        "log",
        |mut c: Caller<'_, HostState>, p: i32, l: i32| -> wasmtime::Result<()> {
            c.data().check_deadline()?;
            let bytes = read_prefix(&mut c, "log", p, l, MAX_LOG_LINE)?;
            let state = c.data_mut();
            let used = state.log_bytes.saturating_add(u64::from(l as u32));
            if used > state.limits.log_bytes {
                return Err(wasmtime::Error::new(JobError::limit(
                    Limit::LogBytes,
                    used,
                    state.limits.log_bytes,
                )));
            }
            state.log_bytes = used;
            state
                .logs
                .push(String::from_utf8_lossy(&bytes).into_owned());
            Ok(())
        },
    )?;

    linker.func_wrap(
        MODULE,
        "random",
        |mut c: Caller<'_, HostState>, p: i32, l: i32| -> wasmtime::Result<()> {
            c.data().check_deadline()?;
            let n = l as u32 as usize;
            if n > MAX_RANDOM {
                return Err(bad_call(
                    "random",
                    &format!("at most {MAX_RANDOM} bytes per call"),
                ));
            }
            let mut buf = vec![0u8; n];
            c.data_mut().rng.fill(&mut buf);
            write_bytes(&mut c, "random", p, l, &buf)
        },
    )?;

    linker.func_wrap(
        MODULE,
        "clock",
        |c: Caller<'_, HostState>| -> wasmtime::Result<i64> {
            c.data().check_deadline()?;
            Ok(c.data().clock_ms)
        },
    )?;

    linker.func_wrap(
        MODULE,
        "fail",
        |mut c: Caller<'_, HostState>, p: i32, l: i32| -> wasmtime::Result<()> {
            let bytes = read_prefix(&mut c, "fail", p, l, MAX_FAIL)?;
            c.data_mut().guest_failure = Some(String::from_utf8_lossy(&bytes).into_owned());
            Ok(())
        },
    )?;

    linker.func_wrap(
        MODULE,
        "last_error",
        |mut c: Caller<'_, HostState>, bp: i32, bc: i32| -> wasmtime::Result<i32> {
            let msg = c.data().last_error.clone();
            let n = msg.len().min(bc as u32 as usize);
            write_bytes(&mut c, "last_error", bp, n as i32, &msg.as_bytes()[..n])?;
            Ok(msg.len() as i32)
        },
    )?;
    Ok(())
}
