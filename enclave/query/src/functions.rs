//! Host-only SQL functions that carry out column rules at execution time.
//!
//! Owns `enclave_pseudonym` (keyed HMAC-SHA-256 pseudonyms, stable within one application,
//! different across applications) and `enclave_threshold` (the filter of a group's cells: size
//! and dominance, counting the groups it suppresses). Neither is registered in a job's function registry: jobs cannot
//! call them by name, only the host's plan rewrites insert them. Neither may ever return a
//! source value.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use enclave_policy::PseudonymKey;

/// `enclave_pseudonym(x)`: hex of the first 16 bytes of HMAC-SHA-256(key, x as text).
#[derive(Debug)]
pub struct Pseudonym {
    key: ring::hmac::Key,
    key_id: [u8; 32],
    signature: Signature,
}

impl PartialEq for Pseudonym {
    fn eq(&self, other: &Self) -> bool {
        self.key_id == other.key_id
    }
}
impl Eq for Pseudonym {}
impl Hash for Pseudonym {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key_id.hash(state);
    }
}

impl Pseudonym {
    /// The function for `key`.
    pub fn udf(key: &PseudonymKey) -> ScalarUDF {
        ScalarUDF::new_from_impl(Pseudonym {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.bytes()),
            // Identifies the key without revealing it.
            key_id: *blake3::hash(key.bytes()).as_bytes(),
            signature: Signature::new(TypeSignature::Any(1), Volatility::Immutable),
        })
    }

    /// The pseudonym of one value.
    pub fn of(&self, value: &str) -> String {
        let tag = ring::hmac::sign(&self.key, value.as_bytes());
        tag.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl ScalarUDFImpl for Pseudonym {
    fn name(&self) -> &str {
        "enclave_pseudonym"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "enclave_pseudonym takes one argument".into(),
            ));
        };
        let array = arg.to_array(args.number_rows)?;
        let text = cast(&array, &DataType::Utf8)?;
        let text = text
            .as_any()
            .downcast_ref::<datafusion::arrow::array::StringArray>()
            .ok_or_else(|| DataFusionError::Internal("cast to Utf8 failed".into()))?;
        let mut out = StringBuilder::with_capacity(text.len(), text.len() * 32);
        for i in 0..text.len() {
            if text.is_null(i) {
                out.append_null();
            } else {
                out.append_value(self.of(text.value(i)));
            }
        }
        let out: ArrayRef = Arc::new(out.finish());
        Ok(match arg {
            ColumnarValue::Scalar(_) => {
                ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
            }
            ColumnarValue::Array(_) => ColumnarValue::Array(out),
        })
    }
}

/// Name of the threshold filter function (never registered for jobs).
pub const THRESHOLD_NAME: &str = "enclave_threshold";

/// `enclave_threshold(n…, d…)`: true when a group may be shown — each of its subject counts `n`
/// reaches k, and none of its dominance codes `d` (`crate::disclosure`) fails; counts the groups
/// it suppresses, by reason.
#[derive(Debug)]
pub struct Threshold {
    k: i64,
    /// How many leading arguments are counts (the rest are dominance codes).
    counts: usize,
    suppressed: Arc<AtomicU64>,
    dominated: Arc<AtomicU64>,
    undefined: Arc<AtomicU64>,
    /// The sum, over the groups suppressed, of the least of their subject counts (the counts
    /// at `subjects`).
    hidden: Arc<AtomicU64>,
    subjects: Vec<usize>,
    signature: Signature,
}

impl PartialEq for Threshold {
    fn eq(&self, other: &Self) -> bool {
        self.k == other.k
            && self.counts == other.counts
            && Arc::ptr_eq(&self.suppressed, &other.suppressed)
            && Arc::ptr_eq(&self.dominated, &other.dominated)
            && Arc::ptr_eq(&self.undefined, &other.undefined)
            && Arc::ptr_eq(&self.hidden, &other.hidden)
            && self.subjects == other.subjects
    }
}
impl Eq for Threshold {}
impl Hash for Threshold {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.k.hash(state);
        self.counts.hash(state);
        (Arc::as_ptr(&self.suppressed) as usize).hash(state);
        (Arc::as_ptr(&self.dominated) as usize).hash(state);
        (Arc::as_ptr(&self.undefined) as usize).hash(state);
        (Arc::as_ptr(&self.hidden) as usize).hash(state);
        self.subjects.hash(state);
    }
}

impl Threshold {
    /// The filter for minimum group size `k` over counts only, counting into `suppressed`.
    pub fn udf(k: u64, suppressed: Arc<AtomicU64>) -> ScalarUDF {
        let unused = || Arc::new(AtomicU64::new(0));
        Threshold::cells(
            k,
            usize::MAX,
            suppressed,
            [unused(), unused()],
            unused(),
            vec![],
        )
    }

    /// The filter of a group's cells: its first `counts` arguments are subject counts (all must
    /// reach k; groups dropped for them count into `suppressed`), the others dominance codes
    /// (none may fail; groups dropped only for them count into `dominated`; groups kept with an
    /// undefined code count into `undefined`); over the groups dropped, the least of their
    /// subject counts (the counts at `subjects`) adds up in `hidden`.
    pub fn cells(
        k: u64,
        counts: usize,
        suppressed: Arc<AtomicU64>,
        [dominated, undefined]: [Arc<AtomicU64>; 2],
        hidden: Arc<AtomicU64>,
        subjects: Vec<usize>,
    ) -> ScalarUDF {
        ScalarUDF::new_from_impl(Threshold {
            k: i64::try_from(k).unwrap_or(i64::MAX),
            counts,
            suppressed,
            dominated,
            undefined,
            hidden,
            subjects,
            // Volatile: never folded, pushed or evaluated more than once per row.
            signature: Signature::variadic(vec![DataType::Int64], Volatility::Volatile),
        })
    }
}

impl ScalarUDFImpl for Threshold {
    fn name(&self) -> &str {
        THRESHOLD_NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args.is_empty() {
            return Err(DataFusionError::Internal(
                "enclave_threshold takes at least one count".into(),
            ));
        }
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(args.number_rows))
            .collect::<Result<Vec<_>>>()?;
        let mut columns = Vec::with_capacity(arrays.len());
        for a in &arrays {
            columns.push(
                a.as_any()
                    .downcast_ref::<datafusion::arrow::array::Int64Array>()
                    .ok_or_else(|| {
                        DataFusionError::Internal("enclave_threshold expects Int64".into())
                    })?,
            );
        }
        let split = self.counts.min(columns.len());
        let (counts, codes) = columns.split_at(split);
        let (mut small, mut dominated, mut undefined, mut hidden) = (0u64, 0u64, 0u64, 0u64);
        let keep: BooleanArray = (0..args.number_rows)
            .map(|i| {
                let big = counts.iter().all(|c| c.is_valid(i) && c.value(i) >= self.k);
                // A missing code (no contribution at all) is no dominance.
                let safe = codes.iter().all(|c| {
                    !c.is_valid(i)
                        || !matches!(
                            c.value(i),
                            crate::disclosure::FAILS_NK | crate::disclosure::FAILS_P
                        )
                });
                if !(big && safe) {
                    let least = self
                        .subjects
                        .iter()
                        .filter_map(|&s| counts.get(s))
                        .filter(|c| c.is_valid(i))
                        .map(|c| u64::try_from(c.value(i)).unwrap_or(0))
                        .min()
                        .unwrap_or(0);
                    hidden = hidden.saturating_add(least);
                }
                if !big {
                    small += 1;
                } else if !safe {
                    dominated += 1;
                } else if codes
                    .iter()
                    .any(|c| c.is_valid(i) && c.value(i) == crate::disclosure::UNDEFINED)
                {
                    undefined += 1;
                }
                Some(big && safe)
            })
            .collect();
        self.suppressed.fetch_add(small, Ordering::Relaxed);
        self.dominated.fetch_add(dominated, Ordering::Relaxed);
        self.undefined.fetch_add(undefined, Ordering::Relaxed);
        self.hidden.fetch_add(hidden, Ordering::Relaxed);
        Ok(ColumnarValue::Array(Arc::new(keep)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use enclave_core::ApplicationId;

    #[test]
    fn the_udf_computes_the_policy_crates_pseudonym() {
        let key = PseudonymKey::derive(&[7; 32], &ApplicationId::new("app").unwrap());
        let udf = Pseudonym::udf(&key);
        let any: &dyn std::any::Any = udf.inner().as_ref();
        let p = any.downcast_ref::<Pseudonym>().unwrap();
        let id = "32090219800101001X";
        assert_eq!(p.of(id), key.pseudonym(id));
        assert!(!p.of(id).contains("1980"));
    }
}
