//! The output IPC reader: whatever a guest hands over is bounded, refused or decoded — never a
//! panic, an abort or an allocation beyond the bounds.
#![no_main]

use enclave_abi::OutputKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = enclave_egress::Output::from_guest("fuzz", OutputKind::Aggregate, data, 1 << 16);
});
