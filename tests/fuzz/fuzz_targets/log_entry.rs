//! The log-line scanner and decoder: any line is an entry, a checkpoint or an error, never a
//! panic; the fast scanner and the serde decoder agree on what is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut scratch = Vec::new();
    let fast = enclave_tlog::entry::entry_facts(data, &mut scratch);
    let slow = enclave_tlog::entry::Line::decode(data);
    if let Some(Ok(facts)) = fast {
        match slow {
            Ok(enclave_tlog::entry::Line::Entry(e)) => {
                assert_eq!(e.seq, facts.seq);
                assert_eq!(e.leaf_hash().ok(), Some(facts.leaf));
            }
            other => panic!("the scanner accepted a line the decoder refuses: {other:?}"),
        }
    }
});
