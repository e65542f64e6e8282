//! The governance command-line parsers: a column list (`dataset:col,col;…`) and a date
//! (`YYYY-MM-DD`) are values or errors, never a panic; a date that parses prints as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cols) = enclave_governance::parse_columns(text) {
            assert!(cols.iter().all(|c| !c.columns.is_empty()));
        }
        if let Ok(d) = text.parse::<enclave_governance::Day>() {
            assert_eq!(d.to_string(), text);
            let _ = d.plus_years(3);
        }
    }
});
