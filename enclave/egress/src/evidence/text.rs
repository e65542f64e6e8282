//! The text of a cell as the leak index sees it: a canonical form per type (numbers written
//! one way, dates as their display text) and a normalization that folds formatting away.
//!
//! Owns [`normalize`] and [`cell_text`]. It must never fold away a character that tells two
//! identifiers apart (letters and digits are kept, only their case and width change).

use std::fmt::Write as _;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type, Float16Type, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use arrow_schema::DataType;

/// Whether `c` is folded away by normalization.
fn ignored(c: char) -> bool {
    c.is_whitespace()
        || c.is_ascii_punctuation()
        || matches!(c,
            '\u{00B7}'                   // middle dot
            | '\u{2000}'..='\u{206F}'    // general punctuation: dashes, zero-width, quotes
            | '\u{2212}'                 // minus sign
            | '\u{3000}'..='\u{303F}'    // CJK symbols and punctuation
            | '\u{30FB}'                 // katakana middle dot
            | '\u{FE00}'..='\u{FE0F}'    // variation selectors
            | '\u{FE30}'..='\u{FE4F}'    // CJK compatibility forms
            | '\u{FEFF}'                 // zero-width no-break space
        )
}

/// Appends the normalized form of `s` to `out`: ASCII letters lower-cased, full-width ASCII
/// forms (U+FF01–U+FF5E) mapped to ASCII, whitespace, punctuation, dashes and zero-width
/// characters dropped; every other character kept as it is.
pub fn normalize(s: &str, out: &mut String) {
    if s.is_ascii() {
        for &b in s.as_bytes() {
            if b.is_ascii_alphanumeric() {
                out.push(char::from(b.to_ascii_lowercase()));
            } else if b >= 0x80 || !(b.is_ascii_punctuation() || b.is_ascii_whitespace()) {
                // Control characters are kept (they are not separators anyone reads past).
                out.push(char::from(b));
            }
        }
        return;
    }
    for c in s.chars() {
        let c = match u32::from(c) {
            cp @ 0xFF01..=0xFF5E => char::from_u32(cp - 0xFEE0).unwrap_or(c),
            _ => c,
        };
        if ignored(c) {
            continue;
        }
        out.push(c.to_ascii_lowercase());
    }
}

/// The canonical text of a float: integral values as integers, others in the shortest form that
/// reads back to the same value. `None` for NaN and infinities.
fn float_text(v: f64, out: &mut String) -> bool {
    if !v.is_finite() {
        return false;
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
    true
}

/// Decimal display text without trailing fractional zeros.
fn trim_decimal(out: &mut String, start: usize) {
    if out[start..].contains('.') {
        while out.ends_with('0') {
            out.pop();
        }
        if out.ends_with('.') {
            out.pop();
        }
    }
}

/// Whether values of type `dt` are numbers.
pub(crate) fn is_numeric(dt: &DataType) -> bool {
    dt.is_numeric()
}

/// Appends the canonical text of cell `i` of `a` (a scalar column) to `out`; `false` for a null
/// or a value with no text form (NaN, binary).
pub(crate) fn cell_text(a: &dyn Array, i: usize, out: &mut String) -> bool {
    if a.is_null(i) {
        return false;
    }
    macro_rules! int {
        ($t:ty) => {{
            let _ = write!(out, "{}", a.as_primitive::<$t>().value(i));
            true
        }};
    }
    macro_rules! dec {
        ($t:ty) => {{
            let d = a.as_primitive::<$t>();
            let start = out.len();
            let _ = write!(out, "{}", d.value_as_string(i));
            trim_decimal(out, start);
            true
        }};
    }
    match a.data_type() {
        DataType::Utf8 => {
            out.push_str(a.as_string::<i32>().value(i));
            true
        }
        DataType::LargeUtf8 => {
            out.push_str(a.as_string::<i64>().value(i));
            true
        }
        DataType::Utf8View => {
            out.push_str(a.as_string_view().value(i));
            true
        }
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float16 => float_text(f64::from(a.as_primitive::<Float16Type>().value(i)), out),
        DataType::Float32 => float_text(f64::from(a.as_primitive::<Float32Type>().value(i)), out),
        DataType::Float64 => float_text(a.as_primitive::<Float64Type>().value(i), out),
        DataType::Decimal32(..) => dec!(Decimal32Type),
        DataType::Decimal64(..) => dec!(Decimal64Type),
        DataType::Decimal128(..) => dec!(Decimal128Type),
        DataType::Decimal256(..) => dec!(Decimal256Type),
        // Bytes are read as text (invalid sequences replaced): an ID carried as bytes is an ID.
        DataType::Binary => {
            out.push_str(&String::from_utf8_lossy(a.as_binary::<i32>().value(i)));
            true
        }
        DataType::LargeBinary => {
            out.push_str(&String::from_utf8_lossy(a.as_binary::<i64>().value(i)));
            true
        }
        DataType::FixedSizeBinary(_) => {
            out.push_str(&String::from_utf8_lossy(a.as_fixed_size_binary().value(i)));
            true
        }
        DataType::BinaryView => {
            out.push_str(&String::from_utf8_lossy(a.as_binary_view().value(i)));
            true
        }
        DataType::Null => false,
        _ => {
            // Dates, times, durations, intervals, booleans: their display text.
            let opts = arrow_cast::display::FormatOptions::default();
            match arrow_cast::display::ArrayFormatter::try_new(a, &opts) {
                Ok(f) => write!(out, "{}", f.value(i)).is_ok(),
                Err(_) => false,
            }
        }
    }
}
