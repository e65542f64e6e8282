//! Format-valid fakes and noise for desensitized samples.
//!
//! Owns the values that replace restricted ones in samples: resident IDs with valid check
//! digits, plausible phone numbers, names and plates, type-preserving random values, and
//! multiplicative noise for numbers and dates. It must never derive a fake from the value it
//! replaces beyond its type and rough magnitude, and never draws from a generator whose seed the
//! sample's recipient could know: the caller passes the [`Random`] source.

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, StringArray,
};
use arrow_schema::DataType;

pub use super::rng::{Random, Rng};
use super::yancheng::{DISTRICTS, GIVEN, PHONE_PREFIXES, SURNAMES};
use super::{REFERENCE_DAY, civil_from_days, resident_id_check_digit};

/// The format of a column's values, for format-valid fakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeFormat {
    /// 18-digit resident ID with a check digit (GB 11643).
    ResidentId,
    /// 11-digit mobile number.
    Phone,
    /// Personal name.
    Name,
    /// Vehicle plate.
    Plate,
}

/// A source of fakes drawing from `R`.
pub struct Faker<R: Random> {
    rng: R,
}

impl<R: Random> Faker<R> {
    /// A faker drawing from `rng`.
    pub fn new(rng: R) -> Self {
        Faker { rng }
    }

    /// The random source (for the caller's own draws, e.g. shuffles).
    pub fn rng(&mut self) -> &mut R {
        &mut self.rng
    }

    /// An 18-digit resident ID with a valid check digit.
    pub fn resident_id(&mut self) -> String {
        let code = self.rng.pick(DISTRICTS).code;
        let (y, m, d) = civil_from_days(REFERENCE_DAY - self.rng.below(95 * 365) as i32);
        let body = format!("{code}{y:04}{m:02}{d:02}{:03}", self.rng.below(1000));
        let check = resident_id_check_digit(&body).unwrap_or('0');
        format!("{body}{check}")
    }

    /// A plausible mobile number.
    pub fn phone(&mut self) -> String {
        format!(
            "{}{:08}",
            self.rng.pick(PHONE_PREFIXES),
            self.rng.below(100_000_000)
        )
    }

    /// A plausible Chinese name.
    pub fn name(&mut self) -> String {
        let mut s = String::from(*self.rng.pick(SURNAMES));
        s.push_str(self.rng.pick::<&str>(GIVEN));
        if self.rng.below(2) == 0 {
            s.push_str(self.rng.pick::<&str>(GIVEN));
        }
        s
    }

    /// A plausible Yancheng plate.
    pub fn plate(&mut self) -> String {
        const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
        let mut p = String::from("苏J");
        for _ in 0..5 {
            p.push(char::from(*self.rng.pick(CHARS)));
        }
        p
    }

    fn token(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..len.max(1))
            .map(|_| char::from(*self.rng.pick(CHARS)))
            .collect()
    }

    /// A fake value of type `dt` (and `format`, if given) for the one-value array `original`.
    pub fn fake(
        &mut self,
        dt: &DataType,
        format: Option<FakeFormat>,
        original: &ArrayRef,
    ) -> Option<ArrayRef> {
        if let Some(f) = format {
            let s = match f {
                FakeFormat::ResidentId => self.resident_id(),
                FakeFormat::Phone => self.phone(),
                FakeFormat::Name => self.name(),
                FakeFormat::Plate => self.plate(),
            };
            return (dt == &DataType::Utf8)
                .then(|| Arc::new(StringArray::from(vec![s])) as ArrayRef);
        }
        let r = &mut self.rng;
        Some(match dt {
            DataType::Utf8 => {
                let len = original
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .map(|a| a.value(0).chars().count())
                    .unwrap_or(8);
                let t = self.token(len);
                Arc::new(StringArray::from(vec![t]))
            }
            DataType::Int64 => Arc::new(Int64Array::from(vec![r.below(1_000_000) as i64])),
            DataType::Int32 => Arc::new(Int32Array::from(vec![r.below(100_000) as i32])),
            DataType::Float64 => Arc::new(Float64Array::from(vec![
                (r.unit() * 1e5 * 100.0).round() / 100.0,
            ])),
            DataType::Date32 => Arc::new(Date32Array::from(vec![
                REFERENCE_DAY - r.below(80 * 365) as i32,
            ])),
            DataType::Boolean => Arc::new(BooleanArray::from(vec![r.below(2) == 0])),
            _ => return None,
        })
    }

    /// `original` with multiplicative noise (σ ≈ 10 %) for numbers, a shift of up to ±60 days
    /// for dates; other types get a fake. `attempt` widens the noise on retries.
    pub fn noise(&mut self, original: &ArrayRef, attempt: u32) -> Option<ArrayRef> {
        let scale = 0.1 * f64::from(1 + attempt / 8);
        let r = &mut self.rng;
        let factor = 1.0 + scale * r.normal();
        let any = original.as_any();
        if let Some(a) = any.downcast_ref::<Int64Array>() {
            let v = a.value(0) as f64 * factor + (r.below(19) as f64 - 9.0);
            return Some(Arc::new(Int64Array::from(vec![v.round() as i64])));
        }
        if let Some(a) = any.downcast_ref::<Int32Array>() {
            let v = f64::from(a.value(0)) * factor + (r.below(5) as f64 - 2.0);
            return Some(Arc::new(Int32Array::from(vec![v.round() as i32])));
        }
        if let Some(a) = any.downcast_ref::<Float64Array>() {
            let v = a.value(0) * factor;
            return Some(Arc::new(Float64Array::from(vec![
                (v * 100.0).round() / 100.0 + 0.01 * r.below(3) as f64,
            ])));
        }
        if let Some(a) = any.downcast_ref::<Date32Array>() {
            let shift = 1 + r.below(60) as i32;
            let v = if r.below(2) == 0 {
                a.value(0) + shift
            } else {
                a.value(0) - shift
            };
            return Some(Arc::new(Date32Array::from(vec![v])));
        }
        let dt = original.data_type().clone();
        self.fake(&dt, None, original)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::is_valid_resident_id;

    #[test]
    fn fakes_are_format_valid() {
        let mut f = Faker::new(Rng::for_row(3, 0xfa4e, 0));
        for _ in 0..200 {
            assert!(is_valid_resident_id(&f.resident_id()));
            let p = f.phone();
            assert!(p.len() == 11 && p.starts_with('1') && p.chars().all(|c| c.is_ascii_digit()));
            assert!(f.name().chars().count() >= 2);
            assert!(f.plate().starts_with("苏J"));
        }
    }

    #[test]
    fn noise_changes_values_but_keeps_type() {
        let mut f = Faker::new(Rng::for_row(1, 0xfa4e, 0));
        let orig: ArrayRef = Arc::new(Int64Array::from(vec![50_000]));
        let mut changed = 0;
        for a in 0..100 {
            let n = f.noise(&orig, a).unwrap();
            assert_eq!(n.data_type(), &DataType::Int64);
            changed +=
                usize::from(n.as_any().downcast_ref::<Int64Array>().unwrap().value(0) != 50_000);
        }
        assert!(changed > 95);
    }
}
