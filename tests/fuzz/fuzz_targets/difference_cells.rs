//! The decoder of a job's kept cells (the difference check's subject sets, read back from the
//! entity's quarantine): any bytes decode or give an error, never a panic or an allocation beyond
//! the input; what decodes decodes again, from its encoding, to the same cells.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cells) = enclave_egress::difference::Cells::decode(data) {
        let again = enclave_egress::difference::Cells::decode(&cells.encode())
            .expect("an encoding decodes");
        assert_eq!(again.cells(), cells.cells());
    }
});
