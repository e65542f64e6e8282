//! The policy parser: any text is a policy or an error naming a line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = enclave_policy::Policy::parse("fuzz.toml", text);
    }
});
