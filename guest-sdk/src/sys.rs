//! The `enclave_v1` host ABI as safe functions over slices (see `docs/abi.md`).
//!
//! This module owns the only `unsafe` of the SDK: the FFI declarations of the imports and the
//! calls into them, each passing a pointer and length taken from a live Rust slice, so the host
//! only ever sees valid ranges. Everything else of the SDK is safe code over these functions.
//! Error codes and output kinds are the `enclave-abi` crate's. Off wasm32 there is no host, and
//! every call reports [`ERR_NO_HOST`].
#![allow(unsafe_code)]

use enclave_abi::ErrorCode;

/// The value (or error) was not found.
pub const ERR_NOT_FOUND: i64 = ErrorCode::NotFound.value();
/// The host refused the request (bad SQL, a policy rule, a refused statement).
pub const ERR_REFUSED: i64 = ErrorCode::Refused.value();
/// The request was accepted but failed while running.
pub const ERR_FAILED: i64 = ErrorCode::Failed.value();
/// The handle is unknown or already closed.
pub const ERR_BAD_HANDLE: i64 = ErrorCode::BadHandle.value();
/// An argument was malformed (bad name, kind, invalid Arrow IPC).
pub const ERR_BAD_ARGUMENT: i64 = ErrorCode::BadArgument.value();
/// Too many handles are open at once.
pub const ERR_TOO_MANY: i64 = ErrorCode::TooMany.value();
/// Not running inside an Enclave host (only returned by the off-wasm32 fallback).
pub const ERR_NO_HOST: i64 = -100;

#[cfg(target_arch = "wasm32")]
mod raw {
    #[link(wasm_import_module = "enclave_v1")]
    unsafe extern "C" {
        pub fn param(key_ptr: *const u8, key_len: usize, buf_ptr: *mut u8, buf_cap: usize) -> i64;
        pub fn query_open(sql_ptr: *const u8, sql_len: usize) -> i64;
        pub fn query_next(handle: i32) -> i64;
        pub fn query_read(handle: i32, buf_ptr: *mut u8, buf_len: usize) -> i32;
        pub fn query_close(handle: i32) -> i32;
        pub fn query_suppressed(handle: i32) -> i64;
        pub fn output(
            name_ptr: *const u8,
            name_len: usize,
            kind: i32,
            data_ptr: *const u8,
            data_len: usize,
        ) -> i32;
        pub fn log(ptr: *const u8, len: usize);
        pub fn random(buf_ptr: *mut u8, buf_len: usize);
        pub fn clock() -> i64;
        pub fn fail(ptr: *const u8, len: usize);
        pub fn last_error(buf_ptr: *mut u8, buf_cap: usize) -> i32;
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod raw {
    //! Off wasm32 there is no Enclave host: every call fails with `ERR_NO_HOST`.
    #![allow(clippy::missing_safety_doc)]
    use super::ERR_NO_HOST;

    pub unsafe fn param(_: *const u8, _: usize, _: *mut u8, _: usize) -> i64 {
        ERR_NO_HOST
    }
    pub unsafe fn query_open(_: *const u8, _: usize) -> i64 {
        ERR_NO_HOST
    }
    pub unsafe fn query_next(_: i32) -> i64 {
        ERR_NO_HOST
    }
    pub unsafe fn query_read(_: i32, _: *mut u8, _: usize) -> i32 {
        ERR_NO_HOST as i32
    }
    pub unsafe fn query_close(_: i32) -> i32 {
        ERR_NO_HOST as i32
    }
    pub unsafe fn query_suppressed(_: i32) -> i64 {
        ERR_NO_HOST
    }
    pub unsafe fn output(_: *const u8, _: usize, _: i32, _: *const u8, _: usize) -> i32 {
        ERR_NO_HOST as i32
    }
    pub unsafe fn log(_: *const u8, _: usize) {}
    pub unsafe fn random(buf_ptr: *mut u8, buf_len: usize) {
        // SAFETY: the caller passes a valid, writable buffer of `buf_len` bytes.
        unsafe { core::ptr::write_bytes(buf_ptr, 0, buf_len) }
    }
    pub unsafe fn clock() -> i64 {
        0
    }
    pub unsafe fn fail(_: *const u8, _: usize) {}
    pub unsafe fn last_error(_: *mut u8, _: usize) -> i32 {
        0
    }
}

// SAFETY (every function below): the pointers and lengths passed come from live slices of
// exactly those lengths, so they are valid for reads (inputs) or writes (buffers) for the whole
// call; the host reads or writes only within them (docs/abi.md) and keeps no pointer after it
// returns.

/// `param`: the value's length (written to `buf` if it fits), or `ERR_NOT_FOUND`.
pub fn param(key: &str, buf: &mut [u8]) -> i64 {
    unsafe { raw::param(key.as_ptr(), key.len(), buf.as_mut_ptr(), buf.len()) }
}

/// `query_open`: a handle ≥ 0 or an error code.
pub fn query_open(sql: &str) -> i64 {
    unsafe { raw::query_open(sql.as_ptr(), sql.len()) }
}

/// `query_next`: the size of the next message, 0 at the end, or an error code.
pub fn query_next(handle: i32) -> i64 {
    unsafe { raw::query_next(handle) }
}

/// `query_read`: copies the announced message into `buf` (exactly its length).
pub fn query_read(handle: i32, buf: &mut [u8]) -> i32 {
    unsafe { raw::query_read(handle, buf.as_mut_ptr(), buf.len()) }
}

/// `query_close`.
pub fn query_close(handle: i32) -> i32 {
    unsafe { raw::query_close(handle) }
}

/// `query_suppressed`: groups the threshold suppressed so far.
pub fn query_suppressed(handle: i32) -> i64 {
    unsafe { raw::query_suppressed(handle) }
}

/// `output`: 0 or an error code.
pub fn output(name: &str, kind: i32, data: &[u8]) -> i32 {
    unsafe { raw::output(name.as_ptr(), name.len(), kind, data.as_ptr(), data.len()) }
}

/// `log`.
pub fn log(line: &str) {
    unsafe { raw::log(line.as_ptr(), line.len()) }
}

/// `random`: fills `buf`.
pub fn random(buf: &mut [u8]) {
    unsafe { raw::random(buf.as_mut_ptr(), buf.len()) }
}

/// `clock`.
pub fn clock() -> i64 {
    unsafe { raw::clock() }
}

/// `fail`.
pub fn fail(message: &str) {
    unsafe { raw::fail(message.as_ptr(), message.len()) }
}

/// `last_error`: writes at most `buf.len()` bytes; returns the message's full length.
pub fn last_error(buf: &mut [u8]) -> i32 {
    unsafe { raw::last_error(buf.as_mut_ptr(), buf.len()) }
}
