//! The transcript decoder (the content of a sealed transcript after authentication): any bytes
//! decode or give an error, never a panic or an allocation beyond the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = enclave_record::Transcript::decode(data);
});
