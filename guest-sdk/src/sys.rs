//! Raw bindings to the `enclave_v1` host ABI (see `docs/abi.md`).
//!
//! This module owns the exact import signatures and nothing else: no buffering, no decoding.
//! Everything here is a thin `unsafe` FFI declaration; the safe API lives in the crate root.
//! Off wasm32 there is no host, and every call reports [`ERR_NO_HOST`].

/// The value (or error) was not found.
pub const ERR_NOT_FOUND: i64 = -1;
/// The host refused the request (bad SQL, a policy rule, a refused statement).
pub const ERR_REFUSED: i64 = -2;
/// The request was accepted but failed while running.
pub const ERR_FAILED: i64 = -3;
/// The handle is unknown or already closed.
pub const ERR_BAD_HANDLE: i64 = -4;
/// An argument was malformed (bad UTF-8, wrong length, invalid Arrow IPC, bad name or kind).
pub const ERR_BAD_ARGUMENT: i64 = -5;
/// Too many handles are open at once.
pub const ERR_TOO_MANY: i64 = -6;
/// Not running inside an Enclave host (only returned by the off-wasm32 fallback).
pub const ERR_NO_HOST: i64 = -100;

#[cfg(target_arch = "wasm32")]
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

#[cfg(not(target_arch = "wasm32"))]
mod fallback {
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
#[cfg(not(target_arch = "wasm32"))]
pub use fallback::*;
