//! `enclave_subjects(s, …)`: the set of subjects of a cell, as the difference check keeps it.
//!
//! Owns the host-only aggregate that turns the raw subject values of a cell's rows (of every
//! class) into the encoding of an [`enclave_egress::difference::SubjectSet`], each value indexed
//! under the domain's subject key. Jobs cannot call it; it runs only in the plans the difference
//! check builds. It must never return anything but the encoded set of indices.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use enclave_egress::difference::{SubjectKey, SubjectSet};

/// `enclave_subjects(s, …)` under one subject key, for subject classes `names` (one argument
/// each).
#[derive(Debug)]
pub struct Subjects {
    key: SubjectKey,
    /// Tells two keys apart without holding them in the clear twice.
    id: [u8; 32],
    names: Vec<String>,
    signature: Signature,
}

impl PartialEq for Subjects {
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id && self.names == o.names
    }
}
impl Eq for Subjects {}
impl std::hash::Hash for Subjects {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
        self.names.hash(state);
    }
}

impl Subjects {
    /// The aggregate under `key` (`id` names the key: a digest of it) for subject classes
    /// `names`.
    pub fn udaf(key: SubjectKey, id: [u8; 32], names: Vec<String>) -> AggregateUDF {
        AggregateUDF::new_from_impl(Subjects {
            key,
            id,
            names,
            signature: Signature::variadic_any(Volatility::Immutable),
        })
    }
}

impl AggregateUDFImpl for Subjects {
    fn name(&self) -> &str {
        "enclave_subjects"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Acc {
            key: self.key.clone(),
            names: self.names.clone(),
            indices: Vec::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "set"),
            DataType::Binary,
            true,
        ))])
    }
}

#[derive(Debug)]
/// A cell's subject indices as they come (the set is built once, in order, when asked for).
struct Acc {
    key: SubjectKey,
    names: Vec<String>,
    indices: Vec<u32>,
}

impl Acc {
    /// The set so far; the indices kept deduplicated and in order.
    fn set(&mut self) -> SubjectSet {
        let set = SubjectSet::from_indices(std::mem::take(&mut self.indices));
        self.indices = set.indices().collect();
        set
    }
}

impl Accumulator for Acc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for (class, v) in values.iter().enumerate() {
            // Every subject column is indexed by its text, so that one identifier read as a
            // number in one dataset and as text in another is one subject; subjects of
            // different classes (a join's other kind of subject) are told apart by their class's
            // name.
            let name = self.names.get(class).map_or(&[][..], |n| n.as_bytes());
            let text = cast(v, &DataType::Utf8)?;
            let mut buf = Vec::with_capacity(64);
            for s in text.as_string::<i32>().iter().flatten() {
                buf.clear();
                buf.extend_from_slice(name);
                buf.push(0xff);
                buf.extend_from_slice(s.as_bytes());
                self.indices.push(self.key.index(&buf));
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [s] = states else {
            return Err(DataFusionError::Internal(
                "enclave_subjects: a partial state of the wrong width".into(),
            ));
        };
        let s = s.as_binary::<i32>();
        for i in 0..s.len() {
            if s.is_valid(i) {
                let part = SubjectSet::decode(s.value(i))
                    .map_err(|e| DataFusionError::Internal(e.to_string()))?;
                self.indices.extend(part.indices());
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.set().encode()))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Binary(Some(self.set().encode())))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.indices.capacity() * std::mem::size_of::<u32>()
    }
}
