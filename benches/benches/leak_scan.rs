//! Leak-scan throughput: output cells scanned per second against an index of 10M identifying
//! values (goal ≥ 10M cells/s), for short labels, values the size of an ID, long labels (every
//! window of an indexed length looked up) and numbers; and the time to build the index.
//!
//! ```sh
//! cargo bench -p enclave-benches --bench leak_scan
//! # ENCLAVE_BENCH_INDEX (10000000 values), ENCLAVE_BENCH_CELLS (10000000 cells)
//! ```

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use enclave_egress::evidence::leak::{LeakIndexBuilder, LeakKey, LeakScanner};

/// A resident-ID-like 18-character value from `i` (distinct for distinct `i`).
fn id(i: u64) -> String {
    format!("{:06}{:011}{}", 110_000 + i % 900_000 / 1000, i, i % 10)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = enclave_benches::env_or("ENCLAVE_BENCH_INDEX", 10_000_000) as usize;
    let cells = enclave_benches::env_or("ENCLAVE_BENCH_CELLS", 10_000_000) as usize;
    let key = LeakKey::derive(&[9u8; 32]);

    let t = Instant::now();
    let mut b = LeakIndexBuilder::new(&key);
    let chunk = 1 << 20;
    let ids: Vec<ArrayRef> = (0..n)
        .step_by(chunk)
        .map(|s| {
            Arc::new(StringArray::from_iter_values(
                (s..(s + chunk).min(n)).map(|i| id(i as u64)),
            )) as ArrayRef
        })
        .collect();
    // A second identifying column: phone-like numbers (11 digits).
    let phones: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(
        (0..(n as i64 / 10)).map(|i| 13_000_000_000 + i * 7),
    ))];
    b.add_column("residents.resident_id", &ids).unwrap();
    b.add_column("residents.phone", &phones).unwrap();
    let ix = b.finish();
    let build = t.elapsed();
    drop(ids);
    println!(
        "index: {} values from 2 columns, built in {:.2} s ({:.1} M values/s)",
        ix.len(),
        build.as_secs_f64(),
        ix.len() as f64 / build.as_secs_f64() / 1e6
    );

    // Outputs: none of these cells is in the index (the common case: every lookup misses).
    let short: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..cells).map(|i| format!("district-{}", i % 97)),
    ));
    // ID-sized, but letters: no window of them can be a phone number or an ID by chance.
    let id_sized: ArrayRef = Arc::new(StringArray::from_iter_values((0..cells).map(|i| {
        id(i as u64)
            .bytes()
            .map(|b| char::from(b - b'0' + b'a'))
            .collect::<String>()
    })));
    let long_cells = cells / 10;
    let long: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..long_cells).map(|i| format!("report line {i:08} of the district summary")),
    ));
    let numbers: ArrayRef = Arc::new(Int64Array::from_iter_values(
        (0..cells as i64).map(|i| i * 31 + 5),
    ));
    println!("| cells (none in the index) | cells | lookups | seconds | M cells/s |");
    println!("|---|---:|---:|---:|---:|");
    for (what, a, numbers) in [
        ("short labels (`district-17`)", &short, false),
        (
            "ID-sized strings (18 letters: 8 windows each)",
            &id_sized,
            false,
        ),
        ("long labels (44 chars: every window)", &long, false),
        ("integers (derived output)", &numbers, true),
    ] {
        let mut s = LeakScanner::new(&[&ix], u64::MAX);
        let arrays: Vec<&dyn Array> = vec![a.as_ref()];
        let t = Instant::now();
        let hits = s.scan_column(0, &arrays, numbers).unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert!(hits.is_none(), "{what}: unexpected hit");
        println!(
            "| {what} | {} | {} | {secs:.3} | {:.1} |",
            s.cells,
            s.lookups,
            s.cells as f64 / secs / 1e6
        );
    }
    // And the hits are real: a reformatted ID inside a label is found.
    let planted: ArrayRef = Arc::new(StringArray::from(vec![format!(
        "east {}",
        id(12345)
            .chars()
            .collect::<Vec<_>>()
            .chunks(6)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join("-")
    )]));
    let mut s = LeakScanner::new(&[&ix], u64::MAX);
    assert!(
        s.scan_column(0, &[planted.as_ref()], false)
            .unwrap()
            .is_some()
    );
}
