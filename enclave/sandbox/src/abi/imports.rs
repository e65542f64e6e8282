//! The host side of each `enclave_v1` import, registered in a linker.
//!
//! Owns argument handling of every import: deadline first, fuel charged for the call and the
//! bytes it moves, hostile pointers checked, limits charged, then the call into `HostState`. It
//! must never index guest memory without a check, nor do work the call has not paid for.

use enclave_abi::{
    ErrorCode, MAX_FAIL, MAX_LOG_LINE, MAX_OUTPUT_NAME, MAX_PARAM_KEY, MAX_RANDOM, MODULE,
};
use enclave_core::{JobError, Limit};
use wasmtime::{Caller, Linker};

use super::super::guest_mem::{bad_call, read_bytes, read_prefix, read_str, write_bytes};
use super::{BYTE_FUEL, CALL_FUEL, HostState, OPEN_FUEL, OUTPUT_BYTE_FUEL, RANDOM_BYTE_FUEL};

/// Length argument as the unsigned 32-bit value it is.
fn len(l: i32) -> u64 {
    u64::from(l as u32)
}

/// Enters a host call: checks the deadline and charges `units` of fuel (on top of the call's
/// base cost). Running out of fuel inside a host call ends the job like running out in Wasm.
fn enter(c: &mut Caller<'_, HostState>, units: u64) -> wasmtime::Result<()> {
    c.data().check_deadline()?;
    c.data_mut().host_calls += 1;
    let cost = CALL_FUEL.saturating_add(units);
    let fuel = c.get_fuel()?;
    if fuel < cost {
        c.set_fuel(0)?;
        let cap = c.data().limits.fuel;
        return Err(wasmtime::Error::new(JobError::limit(
            Limit::Fuel,
            cap.saturating_add(cost - fuel),
            cap,
        )));
    }
    c.set_fuel(fuel - cost)
}

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
            enter(&mut c, len(kl).saturating_mul(BYTE_FUEL))?;
            let key = read_str(&mut c, "param", kp, kl, MAX_PARAM_KEY as usize)?;
            let Some(value) = c.data().params.get(&key).map(str::to_owned) else {
                return Ok(ErrorCode::NotFound.value());
            };
            if value.len() <= bc as u32 as usize {
                enter(&mut c, value.len() as u64 * BYTE_FUEL)?;
                write_bytes(&mut c, "param", bp, bc, value.as_bytes())?;
            }
            Ok(value.len() as i64)
        },
    )?;

    linker.func_wrap(
        MODULE,
        "query_open",
        |mut c: Caller<'_, HostState>, sp: i32, sl: i32| -> wasmtime::Result<i64> {
            enter(&mut c, OPEN_FUEL.saturating_add(len(sl) * BYTE_FUEL))?;
            let cap = c.data().limits.sql_bytes;
            if len(sl) > cap {
                let e = JobError::limit(Limit::SqlBytes, len(sl), cap);
                // Counted like any other query: a loop of refused opens ends at the query limit.
                c.data_mut().opened += 1;
                if c.data().opened > c.data().limits.queries {
                    let (n, cap) = (c.data().opened, c.data().limits.queries);
                    return Err(wasmtime::Error::new(JobError::limit(
                        Limit::Queries,
                        n,
                        cap,
                    )));
                }
                return Ok(c.data_mut().refuse(ErrorCode::Refused, e));
            }
            let sql = read_str(&mut c, "query_open", sp, sl, cap as usize)?;
            c.data_mut().open_query(&sql)
        },
    )?;

    linker.func_wrap(
        MODULE,
        "query_next",
        |mut c: Caller<'_, HostState>, h: i32| -> wasmtime::Result<i64> {
            enter(&mut c, 0)?;
            let n = c.data_mut().next_message(h)?;
            // The message's production is paid for when it is announced.
            if n > 0 {
                enter(&mut c, (n as u64).saturating_mul(BYTE_FUEL))?;
            }
            Ok(n)
        },
    )?;

    linker.func_wrap(
        MODULE,
        "query_read",
        |mut c: Caller<'_, HostState>, h: i32, bp: i32, bl: i32| -> wasmtime::Result<i32> {
            enter(&mut c, len(bl) * BYTE_FUEL)?;
            let msg = c
                .data_mut()
                .slot("query_read", h)?
                .pending
                .take()
                .ok_or_else(|| {
                    bad_call(
                        "query_read",
                        "no message is pending (call query_next first)",
                    )
                })?;
            if msg.len() as u64 != len(bl) {
                return Err(bad_call(
                    "query_read",
                    &format!(
                        "buffer length {} differs from the announced {}",
                        len(bl),
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
            enter(&mut c, 0)?;
            Ok(c.data_mut().close_query(h))
        },
    )?;

    linker.func_wrap(
        MODULE,
        "query_suppressed",
        |mut c: Caller<'_, HostState>, h: i32| -> wasmtime::Result<i64> {
            enter(&mut c, 0)?;
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
            // The caps are checked before anything is read or paid for.
            c.data_mut().charge_output(len(dl))?;
            enter(&mut c, len(dl).saturating_mul(OUTPUT_BYTE_FUEL))?;
            // The whole name range must be in bounds; a name longer than the maximum is refused
            // by the name check (its first bytes are enough to tell).
            let name = read_prefix(&mut c, "output", np, nl, MAX_OUTPUT_NAME as usize + 1)?;
            let bytes = read_bytes(&mut c, "output", dp, dl, usize::MAX)?;
            c.data_mut().add_output(&name, kind, &bytes)
        },
    )?;

    linker.func_wrap(
        MODULE,
        "log",
        |mut c: Caller<'_, HostState>, p: i32, l: i32| -> wasmtime::Result<()> {
            enter(&mut c, len(l).min(u64::from(MAX_LOG_LINE)) * BYTE_FUEL)?;
            let bytes = read_prefix(&mut c, "log", p, l, MAX_LOG_LINE as usize)?;
            let state = c.data_mut();
            state.charge_log(len(l))?;
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
            let n = len(l);
            if n > u64::from(MAX_RANDOM) {
                return Err(bad_call(
                    "random",
                    &format!("at most {MAX_RANDOM} bytes per call"),
                ));
            }
            enter(&mut c, n * RANDOM_BYTE_FUEL)?;
            let mut buf = vec![0u8; n as usize];
            c.data_mut().rng.fill(&mut buf);
            write_bytes(&mut c, "random", p, l, &buf)
        },
    )?;

    linker.func_wrap(
        MODULE,
        "clock",
        |mut c: Caller<'_, HostState>| -> wasmtime::Result<i64> {
            enter(&mut c, 0)?;
            Ok(c.data().clock_ms)
        },
    )?;

    linker.func_wrap(
        MODULE,
        "fail",
        |mut c: Caller<'_, HostState>, p: i32, l: i32| -> wasmtime::Result<()> {
            enter(&mut c, len(l).min(u64::from(MAX_FAIL)) * BYTE_FUEL)?;
            let bytes = read_prefix(&mut c, "fail", p, l, MAX_FAIL as usize)?;
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
            enter(&mut c, n as u64 * BYTE_FUEL)?;
            write_bytes(&mut c, "last_error", bp, n as i32, &msg.as_bytes()[..n])?;
            Ok(i32::try_from(msg.len()).unwrap_or(i32::MAX))
        },
    )?;
    Ok(())
}
