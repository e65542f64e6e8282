//! Covert channels an output's values could carry past a reviewer who reads its figures: NaN
//! payloads, float low bits of derived values, long or random-looking strings in label columns,
//! and row order that no sort explains.
//!
//! Owns these checks. A NaN with a payload blocks (no computation a reviewer could want makes
//! one); the rest flag: they are where a reviewer must look, not proof of a leak. It must never
//! repeat a value in a finding.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, Float32Type, Float64Type};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;

use super::text::is_numeric;
use super::{Caps, Check, Finding, Names, Verdict};
use crate::Output;

/// Shortest string (in characters) whose randomness is judged.
const ENTROPY_MIN_CHARS: usize = 16;
/// Characters' entropy (bits per character) from which a string without spaces looks random.
const ENTROPY_BITS: f64 = 3.5;

/// The canonical quiet NaNs (either sign): what arithmetic makes.
fn canonical_nan64(bits: u64) -> bool {
    bits & !(1 << 63) == 0x7ff8_0000_0000_0000
}

fn canonical_nan32(bits: u32) -> bool {
    bits & !(1 << 31) == 0x7fc0_0000
}

/// Leaf arrays of a column (list and struct children), for checks on values.
fn leaves(a: &dyn Array, out: &mut Vec<ArrayRef>) {
    match a.data_type() {
        DataType::List(_) => leaves(a.as_list::<i32>().values().as_ref(), out),
        DataType::LargeList(_) => leaves(a.as_list::<i64>().values().as_ref(), out),
        DataType::FixedSizeList(..) => leaves(a.as_fixed_size_list().values().as_ref(), out),
        DataType::Struct(_) => {
            for c in a.as_struct().columns() {
                leaves(c.as_ref(), out);
            }
        }
        _ => out.push(arrow_array::make_array(a.to_data())),
    }
}

fn column_leaves(out: &Output, i: usize) -> Vec<ArrayRef> {
    let mut v = Vec::new();
    for b in &out.batches {
        leaves(b.column(i).as_ref(), &mut v);
    }
    v
}

/// Numeric values of an output (a model's parameters).
pub fn numeric_cells(out: &Output) -> u64 {
    (0..out.schema.fields().len())
        .flat_map(|i| column_leaves(out, i))
        .filter(|a| is_numeric(a.data_type()))
        .map(|a| (a.len() - a.null_count()) as u64)
        .sum()
}

/// Cells that are NaNs with a payload.
fn nan_payloads(a: &dyn Array) -> u64 {
    match a.data_type() {
        DataType::Float64 => a
            .as_primitive::<Float64Type>()
            .iter()
            .flatten()
            .filter(|v| v.is_nan() && !canonical_nan64(v.to_bits()))
            .count() as u64,
        DataType::Float32 => a
            .as_primitive::<Float32Type>()
            .iter()
            .flatten()
            .filter(|v| v.is_nan() && !canonical_nan32(v.to_bits()))
            .count() as u64,
        DataType::Float16 => a
            .as_primitive::<Float16Type>()
            .iter()
            .flatten()
            .filter(|v| v.is_nan() && v.to_bits() & 0x7fff != 0x7e00)
            .count() as u64,
        _ => 0,
    }
}

/// Shannon entropy of the characters of `s`, in bits per character.
fn entropy(s: &str) -> f64 {
    let mut counts: std::collections::HashMap<char, u32> = std::collections::HashMap::new();
    let mut n = 0u32;
    for c in s.chars() {
        *counts.entry(c).or_default() += 1;
        n += 1;
    }
    let n = f64::from(n.max(1));
    counts
        .values()
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Long strings and random-looking strings of a text leaf.
fn label_issues(a: &dyn Array, max_bytes: u64) -> (u64, u64) {
    let mut long = 0u64;
    let mut random = 0u64;
    let mut judge = |s: &str| {
        if s.len() as u64 > max_bytes {
            long += 1;
        }
        if s.chars().count() >= ENTROPY_MIN_CHARS
            && !s.chars().any(char::is_whitespace)
            && entropy(s) >= ENTROPY_BITS
        {
            random += 1;
        }
    };
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().iter().flatten().for_each(&mut judge),
        DataType::LargeUtf8 => a.as_string::<i64>().iter().flatten().for_each(&mut judge),
        _ => {}
    }
    (long, random)
}

/// Whether the values of a column are in an order (ascending or descending, nulls aside).
fn monotone(arrays: &[ArrayRef]) -> bool {
    fn ordered<T: PartialOrd>(v: &[T]) -> bool {
        v.windows(2).all(|w| w[0] <= w[1]) || v.windows(2).all(|w| w[0] >= w[1])
    }
    let mut nums: Vec<f64> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    for a in arrays {
        if let Ok(c) = arrow_cast::cast(a, &DataType::Float64)
            && is_numeric(a.data_type())
        {
            nums.extend(c.as_primitive::<Float64Type>().iter().flatten());
        } else if let Ok(c) = arrow_cast::cast(a, &DataType::Utf8) {
            texts.extend(c.as_string::<i32>().iter().flatten().map(str::to_owned));
        } else {
            return false;
        }
    }
    if !nums.is_empty() && !texts.is_empty() {
        return false;
    }
    if nums.iter().any(|v| v.is_nan()) {
        return false;
    }
    ordered(&nums) && ordered(&texts)
}

/// Covert-channel findings of `out` (`hosts`: equal to a result the host computed, so its values
/// and their order are not the job's).
pub(crate) fn check(out: &Output, hosts: bool, caps: &Caps, names: &Names) -> Vec<Finding> {
    let mut findings = Vec::new();
    let ncols = out.schema.fields().len();
    for i in 0..ncols {
        let leaves = column_leaves(out, i);
        let nan: u64 = leaves.iter().map(|a| nan_payloads(a.as_ref())).sum();
        if nan > 0 {
            findings.push(Finding::new(
                Check::NanPayload,
                Verdict::Block,
                format!(
                    "column {}: {nan} NaN value(s) carrying a payload (bits no arithmetic makes)",
                    names.column(i)
                ),
            ));
        }
        let binary = leaves.iter().any(|a| {
            matches!(
                a.data_type(),
                DataType::Binary | DataType::LargeBinary | DataType::FixedSizeBinary(_)
            )
        });
        if binary {
            findings.push(Finding::new(
                Check::LabelText,
                Verdict::Flag,
                format!(
                    "column {}: binary values, opaque to a reviewer (scanned as text for leaks)",
                    names.column(i)
                ),
            ));
        }
        let floats = leaves.iter().any(|a| {
            matches!(
                a.data_type(),
                DataType::Float16 | DataType::Float32 | DataType::Float64
            )
        });
        if floats && !hosts {
            findings.push(Finding::new(
                Check::FloatBits,
                Verdict::Flag,
                format!(
                    "column {}: floating-point values computed by the job; their low bits can \
                     carry data no reviewer sees in the printed figures",
                    names.column(i)
                ),
            ));
        }
        let (long, random) = leaves
            .iter()
            .map(|a| label_issues(a.as_ref(), caps.max_label_bytes))
            .fold((0, 0), |(l, r), (a, b)| (l + a, r + b));
        if long > 0 {
            findings.push(Finding::new(
                Check::LabelText,
                Verdict::Flag,
                format!(
                    "column {}: {long} string(s) longer than {} bytes",
                    names.column(i),
                    caps.max_label_bytes
                ),
            ));
        }
        if random > 0 {
            findings.push(Finding::new(
                Check::LabelText,
                Verdict::Flag,
                format!(
                    "column {}: {random} string(s) that look random (at least \
                     {ENTROPY_MIN_CHARS} characters, no spaces, {ENTROPY_BITS} bits of \
                     entropy per character or more): encoded data?",
                    names.column(i)
                ),
            ));
        }
    }
    if !hosts && out.rows >= 3 && ncols > 0 {
        let sorted = (0..ncols).any(|i| {
            let arrays: Vec<ArrayRef> = out.batches.iter().map(|b| b.column(i).clone()).collect();
            monotone(&arrays)
        });
        if !sorted {
            findings.push(Finding::new(
                Check::RowOrder,
                Verdict::Flag,
                "the order of the rows is not a sort on any column: the order itself can carry \
                 data",
            ));
        }
    }
    findings
}
