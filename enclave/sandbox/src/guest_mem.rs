//! Checked access to a guest's linear memory from host functions.
//!
//! Owns the rule that every pointer and length a guest hands the host is hostile: each access is
//! bounds- and overflow-checked and a bad one becomes a trap naming the host call. It must never
//! index guest memory without a check, nor read more than the caller's limit.

use wasmtime::{Caller, Extern, Memory};

use super::abi::HostState;
use enclave_core::{ErrorKind, JobError};

/// The guest's exported memory, or a trap.
pub fn memory(caller: &mut Caller<'_, HostState>, call: &str) -> wasmtime::Result<Memory> {
    match caller.get_export(enclave_abi::MEMORY) {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(bad_call(
            call,
            "the module exports no memory named `memory`",
        )),
    }
}

/// A trap for a malformed host call.
pub fn bad_call(call: &str, what: &str) -> wasmtime::Error {
    wasmtime::Error::new(JobError::new(
        ErrorKind::BadHostCall,
        format!("bad call to enclave_v1.{call}: {what}"),
    ))
}

/// Range `[ptr, ptr+len)` checked against `mem_len`, as guest-supplied i32 values.
pub fn checked_range(
    call: &str,
    ptr: i32,
    len: i32,
    mem_len: usize,
) -> wasmtime::Result<std::ops::Range<usize>> {
    // Guest pointers and lengths are unsigned 32-bit values passed as i32.
    let start = ptr as u32 as usize;
    let n = len as u32 as usize;
    match start.checked_add(n) {
        Some(end) if end <= mem_len => Ok(start..end),
        _ => Err(bad_call(
            call,
            &format!("buffer out of bounds (ptr={start}, len={n}, memory is {mem_len} bytes)"),
        )),
    }
}

/// Copies `len` bytes at `ptr` out of guest memory, refusing more than `max` bytes.
pub fn read_bytes(
    caller: &mut Caller<'_, HostState>,
    call: &str,
    ptr: i32,
    len: i32,
    max: usize,
) -> wasmtime::Result<Vec<u8>> {
    let n = len as u32 as usize;
    if n > max {
        return Err(bad_call(
            call,
            &format!("length {n} exceeds the {max}-byte maximum for this argument"),
        ));
    }
    let mem = memory(caller, call)?;
    let data = mem.data(&*caller);
    let r = checked_range(call, ptr, len, data.len())?;
    Ok(data[r].to_vec())
}

/// Checks the whole range `[ptr, ptr+len)` and copies at most its first `keep` bytes.
pub fn read_prefix(
    caller: &mut Caller<'_, HostState>,
    call: &str,
    ptr: i32,
    len: i32,
    keep: usize,
) -> wasmtime::Result<Vec<u8>> {
    let mem = memory(caller, call)?;
    let data = mem.data(&*caller);
    let r = checked_range(call, ptr, len, data.len())?;
    let end = r.start + r.len().min(keep);
    Ok(data[r.start..end].to_vec())
}

/// Reads a UTF-8 string argument of at most `max` bytes.
pub fn read_str(
    caller: &mut Caller<'_, HostState>,
    call: &str,
    ptr: i32,
    len: i32,
    max: usize,
) -> wasmtime::Result<String> {
    let bytes = read_bytes(caller, call, ptr, len, max)?;
    String::from_utf8(bytes).map_err(|_| bad_call(call, "string argument is not valid UTF-8"))
}

/// Writes `src` into guest memory at `ptr`; the guest buffer must be exactly as long as `src`
/// or longer (`cap`).
pub fn write_bytes(
    caller: &mut Caller<'_, HostState>,
    call: &str,
    ptr: i32,
    cap: i32,
    src: &[u8],
) -> wasmtime::Result<()> {
    let mem = memory(caller, call)?;
    let data = mem.data_mut(&mut *caller);
    let r = checked_range(call, ptr, cap, data.len())?;
    let dst = &mut data[r];
    if dst.len() < src.len() {
        return Err(bad_call(call, "buffer is smaller than the data"));
    }
    dst[..src.len()].copy_from_slice(src);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_for_overflow_and_bounds() {
        assert_eq!(checked_range("t", 0, 10, 10).unwrap(), 0..10);
        assert_eq!(checked_range("t", 10, 0, 10).unwrap(), 10..10);
        assert!(checked_range("t", 1, 10, 10).is_err());
        assert!(checked_range("t", 11, 0, 10).is_err());
        // -1 as u32 is 4 GiB - 1: out of bounds, not negative indexing.
        assert!(checked_range("t", -1, 1, 65536).is_err());
        assert!(checked_range("t", 65535, -1, 65536).is_err());
        let e = checked_range("query_read", 70000, 4, 65536).unwrap_err();
        let j = e.downcast_ref::<JobError>().unwrap();
        assert_eq!(j.kind, ErrorKind::BadHostCall);
        assert!(j.message.contains("enclave_v1.query_read"), "{}", j.message);
    }
}
