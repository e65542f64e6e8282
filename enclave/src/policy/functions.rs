//! Host-only SQL functions that carry out column rules at execution time.
//!
//! Owns `enclave_pseudonym` (keyed HMAC-SHA-256 pseudonyms, stable within one application,
//! different across applications) and `enclave_threshold` (the group-size filter that also
//! counts suppressed groups). Neither is registered in a job's function registry: jobs cannot
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

/// The pseudonym key of one application: derived from the domain secret and the application id.
pub fn pseudonym_key(domain_secret: &[u8; 32], application: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("enclave v1 pseudonym key");
    h.update(domain_secret);
    h.update(application.as_bytes());
    *h.finalize().as_bytes()
}

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
    pub fn udf(key: &[u8; 32]) -> ScalarUDF {
        ScalarUDF::new_from_impl(Pseudonym {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
            // Identifies the key without revealing it.
            key_id: *blake3::hash(key).as_bytes(),
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

/// `enclave_threshold(n)`: true when a group of `n` subjects may be shown (n ≥ k); counts
/// the groups it suppresses.
#[derive(Debug)]
pub struct Threshold {
    k: i64,
    suppressed: Arc<AtomicU64>,
    signature: Signature,
}

impl PartialEq for Threshold {
    fn eq(&self, other: &Self) -> bool {
        self.k == other.k && Arc::ptr_eq(&self.suppressed, &other.suppressed)
    }
}
impl Eq for Threshold {}
impl Hash for Threshold {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.k.hash(state);
        (Arc::as_ptr(&self.suppressed) as usize).hash(state);
    }
}

impl Threshold {
    /// The filter for minimum group size `k`, counting into `suppressed`.
    pub fn udf(k: u64, suppressed: Arc<AtomicU64>) -> ScalarUDF {
        ScalarUDF::new_from_impl(Threshold {
            k: i64::try_from(k).unwrap_or(i64::MAX),
            suppressed,
            // Volatile: never folded, pushed or evaluated more than once per row.
            signature: Signature::exact(vec![DataType::Int64], Volatility::Volatile),
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
        let [arg] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "enclave_threshold takes one argument".into(),
            ));
        };
        let array = arg.to_array(args.number_rows)?;
        let counts = array
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .ok_or_else(|| DataFusionError::Internal("enclave_threshold expects Int64".into()))?;
        let keep: BooleanArray = counts
            .iter()
            .map(|n| Some(n.is_some_and(|n| n >= self.k)))
            .collect();
        let dropped = keep.len() - keep.true_count();
        self.suppressed.fetch_add(dropped as u64, Ordering::Relaxed);
        Ok(ColumnarValue::Array(Arc::new(keep)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_stable_and_opaque() {
        let secret = [7u8; 32];
        let a = pseudonym_key(&secret, "app-a");
        let b = pseudonym_key(&secret, "app-b");
        assert_ne!(a, b);
        let pa = Pseudonym {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &a),
            key_id: a,
            signature: Signature::any(1, Volatility::Immutable),
        };
        let pb = Pseudonym {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &b),
            key_id: b,
            signature: Signature::any(1, Volatility::Immutable),
        };
        let id = "32090219800101001X";
        assert_eq!(pa.of(id), pa.of(id), "stable within an application");
        assert_ne!(pa.of(id), pb.of(id), "different across applications");
        assert_eq!(pa.of(id).len(), 32);
        assert!(!pa.of(id).contains("1980"));
    }

    #[test]
    fn hmac_sha256_known_answer() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        let tag = ring::hmac::sign(&key, b"what do ya want for nothing?");
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
