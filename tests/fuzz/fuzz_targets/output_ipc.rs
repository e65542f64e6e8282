//! The output IPC reader and the evidence checks: whatever a guest hands over is bounded,
//! refused or decoded — never a panic, an abort or an allocation beyond the bounds — and whatever
//! it decodes to is examined (names, normalization, the leak scan with its windows, covert
//! channels) to a verdict, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use arrow_array::{ArrayRef, StringArray};
use enclave_abi::OutputKind;
use enclave_egress::evidence::leak::{LeakIndex, LeakIndexBuilder, LeakKey};
use enclave_egress::evidence::{Caps, examine};
use libfuzzer_sys::fuzz_target;

fn index() -> &'static LeakIndex {
    static IX: OnceLock<LeakIndex> = OnceLock::new();
    IX.get_or_init(|| {
        let mut b = LeakIndexBuilder::new(&LeakKey::derive(&[3; 32]));
        let ids: ArrayRef = Arc::new(StringArray::from(vec![
            "110101199003071234",
            "13800138000",
            "张三丰",
            "ｆｕｌｌ－ｗｉｄｔｈ",
        ]));
        let _ = b.add_column("d.c", &[ids]);
        b.finish()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else {
        return;
    };
    let kind = if kind & 1 == 1 {
        OutputKind::Model
    } else {
        OutputKind::Aggregate
    };
    if let Ok(out) = enclave_egress::Output::from_guest("fuzz", kind, bytes, 1 << 16) {
        let caps = Caps {
            max_rows: 1000,
            max_columns: 64,
            max_bytes: 1 << 20,
            model_rows_per_parameter: 10,
            max_label_bytes: 64,
            min_group_size: 10,
            leak_work: 1 << 20,
        };
        let _ = examine(&[out], &[], &caps, &[index()]);
    }
});
