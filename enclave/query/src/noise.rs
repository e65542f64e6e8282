//! Host-only SQL functions of differential privacy: the noise added to a statistic, and the
//! keyed order in which a subject's groups are kept.
//!
//! Owns `enclave_dp(value, keys…)` (a noised count, sum or mean per output group; the draw
//! comes from a [`NoiseRng`] keyed by the job's noise key and seeded by the query, the statistic
//! and the group's key values, so the noise of a group does not depend on the order in which
//! groups are computed and a replay with the recorded key reproduces it) and
//! `enclave_rank(keys…)` (a keyed hash of a group's keys: which groups a subject keeps when it
//! contributes to more than the policy allows, unpredictable without the key). Neither is
//! registered in a job's function registry. They must never return the value they noise.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Float64Builder, Int64Array, Int64Builder, UInt64Builder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use enclave_dp::{Noise, NoiseRng};

/// What one `enclave_dp` call computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    /// A count or a sum of integers: `value + noise`, Int64.
    Int(Noise),
    /// A sum of reals: `value + noise` on the grid, Float64.
    Float(Noise),
    /// A mean from a sum and a count, each noised, clamped to `[lo, hi]`, Float64.
    Mean {
        /// The sum's noise.
        sum: Noise,
        /// The count's noise.
        count: Noise,
        /// The bounds.
        lo: f64,
        /// The bounds.
        hi: f64,
    },
}

/// `enclave_dp(value[, count], keys…)`.
#[derive(Debug)]
pub struct DpNoise {
    key: [u8; 32],
    /// Query and statistic: part of every draw's context.
    context: Vec<u8>,
    stat: Statistic,
    signature: Signature,
}

impl PartialEq for DpNoise {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key && self.context == o.context && self.stat == o.stat
    }
}
impl Eq for DpNoise {}
impl Hash for DpNoise {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.context.hash(state);
    }
}

impl DpNoise {
    /// The function noising statistic `stat` of query `query` (its `index`-th), keyed by `key`.
    pub fn udf(key: [u8; 32], query: u64, index: usize, stat: Statistic) -> ScalarUDF {
        let mut context = b"enclave v1 dp".to_vec();
        context.extend_from_slice(&query.to_le_bytes());
        context.extend_from_slice(&(index as u64).to_le_bytes());
        ScalarUDF::new_from_impl(DpNoise {
            key,
            context,
            stat,
            // Volatile: never folded or moved.
            signature: Signature::new(TypeSignature::VariadicAny, Volatility::Volatile),
        })
    }

    fn values(&self) -> usize {
        match self.stat {
            Statistic::Mean { .. } => 2,
            _ => 1,
        }
    }
}

/// The length-prefixed text of row `i`'s key values: part of the draw's context.
fn group_context(base: &[u8], keys: &[ArrayRef], i: usize) -> Result<Vec<u8>> {
    let mut c = base.to_vec();
    for k in keys {
        let v = ScalarValue::try_from_array(k, i)?;
        let text = format!("{}:{v}", v.data_type());
        c.extend_from_slice(&(text.len() as u64).to_le_bytes());
        c.extend_from_slice(text.as_bytes());
    }
    Ok(c)
}

fn as_i64(a: &ArrayRef) -> Result<Int64Array> {
    Ok(cast(a, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

fn as_f64(a: &ArrayRef) -> Result<Float64Array> {
    Ok(cast(a, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

impl ScalarUDFImpl for DpNoise {
    fn name(&self) -> &str {
        "enclave_dp"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(match self.stat {
            Statistic::Int(_) => DataType::Int64,
            _ => DataType::Float64,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(n))
            .collect::<Result<Vec<_>>>()?;
        if arrays.len() < self.values() {
            return Err(DataFusionError::Internal(
                "enclave_dp: missing arguments".into(),
            ));
        }
        let (values, keys) = arrays.split_at(self.values());
        let out: ArrayRef = match self.stat {
            Statistic::Int(noise) => {
                let v = as_i64(&values[0])?;
                let mut b = Int64Builder::with_capacity(n);
                for i in 0..n {
                    let mut rng = NoiseRng::new(&self.key, &group_context(&self.context, keys, i)?);
                    // A null (no rows fed the statistic) is noised as 0: the output never tells.
                    let x = if v.is_valid(i) { v.value(i) } else { 0 };
                    b.append_value(noise.add_int(&mut rng, x));
                }
                Arc::new(b.finish())
            }
            Statistic::Float(noise) => {
                let v = as_f64(&values[0])?;
                let mut b = Float64Builder::with_capacity(n);
                for i in 0..n {
                    let mut rng = NoiseRng::new(&self.key, &group_context(&self.context, keys, i)?);
                    let x = if v.is_valid(i) { v.value(i) } else { 0.0 };
                    b.append_value(noise.add_float(&mut rng, x));
                }
                Arc::new(b.finish())
            }
            Statistic::Mean { sum, count, lo, hi } => {
                let s = as_f64(&values[0])?;
                let c = as_i64(&values[1])?;
                let mut b = Float64Builder::with_capacity(n);
                for i in 0..n {
                    let mut rng = NoiseRng::new(&self.key, &group_context(&self.context, keys, i)?);
                    let x = if s.is_valid(i) { s.value(i) } else { 0.0 };
                    let m = if c.is_valid(i) { c.value(i) } else { 0 };
                    let ns = sum.add_float(&mut rng, x);
                    let nc = count.add_int(&mut rng, m).max(1);
                    b.append_value((ns / nc as f64).clamp(lo, hi));
                }
                Arc::new(b.finish())
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// `enclave_rank(keys…)`: a keyed 63-bit hash of a row's key values.
#[derive(Debug)]
pub struct Rank {
    key: [u8; 32],
    signature: Signature,
}

impl PartialEq for Rank {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Rank {}
impl Hash for Rank {
    fn hash<H: Hasher>(&self, state: &mut H) {
        "enclave_rank".hash(state);
    }
}

impl Rank {
    /// The rank function keyed by `key`.
    pub fn udf(key: [u8; 32]) -> ScalarUDF {
        ScalarUDF::new_from_impl(Rank {
            key,
            signature: Signature::new(TypeSignature::VariadicAny, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for Rank {
    fn name(&self) -> &str {
        "enclave_rank"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let keys = args
            .args
            .iter()
            .map(|a| a.to_array(n))
            .collect::<Result<Vec<_>>>()?;
        let mut b = UInt64Builder::with_capacity(n);
        for i in 0..n {
            let mut rng = NoiseRng::new(&self.key, &group_context(b"enclave v1 rank", &keys, i)?);
            b.append_value(rng.next_u64() >> 1);
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

/// `enclave_clamp(x)`: `x` clamped to `[lo, hi]`; NaN becomes `lo`, NULL stays NULL. Int64 when
/// the bounds are integers and `x` is, Float64 otherwise.
#[derive(Debug)]
pub struct Clamp {
    lo: f64,
    hi: f64,
    integer: bool,
    signature: Signature,
}

impl PartialEq for Clamp {
    fn eq(&self, o: &Self) -> bool {
        self.lo.to_bits() == o.lo.to_bits()
            && self.hi.to_bits() == o.hi.to_bits()
            && self.integer == o.integer
    }
}
impl Eq for Clamp {}
impl Hash for Clamp {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.lo.to_bits().hash(state);
        self.hi.to_bits().hash(state);
    }
}

impl Clamp {
    /// Clamps to `[lo, hi]`; `integer`: the result is Int64 (bounds rounded inwards).
    pub fn udf(lo: f64, hi: f64, integer: bool) -> ScalarUDF {
        ScalarUDF::new_from_impl(Clamp {
            lo,
            hi,
            integer,
            signature: Signature::new(TypeSignature::Any(1), Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for Clamp {
    fn name(&self) -> &str {
        "enclave_clamp"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(if self.integer {
            DataType::Int64
        } else {
            DataType::Float64
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let [a] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "enclave_clamp takes one argument".into(),
            ));
        };
        let a = a.to_array(n)?;
        let out: ArrayRef = if self.integer {
            let (lo, hi) = (self.lo.ceil() as i64, self.hi.floor() as i64);
            let v = as_i64(&a)?;
            Arc::new(v.unary::<_, Int64Type>(|x| x.clamp(lo, hi.max(lo))))
        } else {
            let (lo, hi) = (self.lo, self.hi);
            let v = as_f64(&a)?;
            Arc::new(v.unary::<_, Float64Type>(|x| if x.is_nan() { lo } else { x.clamp(lo, hi) }))
        };
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::Field;
    use datafusion::config::ConfigOptions;

    fn call(udf: &ScalarUDF, args: Vec<ArrayRef>) -> ArrayRef {
        let n = args[0].len();
        let fields = args
            .iter()
            .map(|a| Arc::new(Field::new("a", a.data_type().clone(), true)))
            .collect();
        let ret = Arc::new(Field::new(
            "r",
            udf.return_type(
                &args
                    .iter()
                    .map(|a| a.data_type().clone())
                    .collect::<Vec<_>>(),
            )
            .unwrap(),
            true,
        ));
        let out = udf
            .invoke_with_args(ScalarFunctionArgs {
                args: args.into_iter().map(ColumnarValue::Array).collect(),
                arg_fields: fields,
                number_rows: n,
                return_field: ret,
                config_options: Arc::new(ConfigOptions::default()),
            })
            .unwrap();
        out.to_array(n).unwrap()
    }

    #[test]
    fn noise_depends_on_the_group_not_on_the_order() {
        let noise = Noise::laplace(1.0, 0.5).unwrap();
        let udf = DpNoise::udf([9; 32], 0, 0, Statistic::Int(noise));
        let keys: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "c"]));
        let vals: ArrayRef = Arc::new(Int64Array::from(vec![100, 100, 100]));
        let one = call(&udf, vec![vals.clone(), keys.clone()]);
        let rev_keys: ArrayRef = Arc::new(StringArray::from(vec!["c", "b", "a"]));
        let two = call(&udf, vec![vals, rev_keys]);
        let (one, two) = (
            one.as_primitive::<Int64Type>(),
            two.as_primitive::<Int64Type>(),
        );
        assert_eq!(one.value(0), two.value(2));
        assert_eq!(one.value(2), two.value(0));
        // Another key, other noise (three groups all equal by chance has probability ≈ 0).
        let other = DpNoise::udf([10; 32], 0, 0, Statistic::Int(noise));
        let three = call(
            &other,
            vec![Arc::new(Int64Array::from(vec![100, 100, 100])), keys],
        );
        assert_ne!(one, three.as_primitive::<Int64Type>());
    }
}
