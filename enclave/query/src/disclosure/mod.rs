//! Dominance of aggregate cells, exactly: the host sees every contribution to a restricted SUM
//! or AVG, so the N-K and p % rules of statistical disclosure control (the policy's
//! `[disclosure]`, ACRO's defaults) are computed from the contributions themselves, not guessed
//! from the published table.
//!
//! Owns `enclave_dominance(x)`, an aggregate over one cell's contributions (a subject's, where
//! the plan has them per subject; a row's otherwise, as ACRO does) that returns a code: [`SAFE`],
//! [`FAILS_NK`] (the N largest make up at least K of the total), [`FAILS_P`] (the total minus
//! the two largest is less than p of the largest) or [`UNDEFINED`] (some contributions are
//! negative, where ACRO calls dominance undefined and asks for a review: the cell is kept only
//! if the rules hold on the contributions' magnitudes, and the output is flagged). The rules are
//! always weighed on magnitudes, so negating a column cannot hide a dominant contributor; a
//! total that is not finite fails. The cell filter of the plan suppresses the cells that fail.
//! Like the threshold it is host-only: jobs cannot call it. It must never return a contribution
//! or any figure derived from one besides the code.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, Signature, TypeSignature,
    Volatility,
};
use enclave_policy::DisclosureRules;

mod groups;

use groups::Cells;

/// The cell may be shown.
pub const SAFE: i64 = 0;
/// The N largest contributions make up at least K of the total.
pub const FAILS_NK: i64 = 1;
/// The total minus the two largest contributions is less than p of the largest.
pub const FAILS_P: i64 = 2;
/// Some contribution is negative: dominance is not defined (the cell is kept).
pub const UNDEFINED: i64 = 3;

/// Name of the dominance aggregate (never registered for jobs).
pub const DOMINANCE_NAME: &str = "enclave_dominance";

/// `enclave_dominance(x)`: the dominance code of one cell's contributions `x`.
#[derive(Debug)]
pub struct Dominance {
    n: usize,
    k: f64,
    p: f64,
    signature: Signature,
}

impl PartialEq for Dominance {
    fn eq(&self, o: &Self) -> bool {
        self.n == o.n && self.k.to_bits() == o.k.to_bits() && self.p.to_bits() == o.p.to_bits()
    }
}
impl Eq for Dominance {}
impl std::hash::Hash for Dominance {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.n.hash(state);
        self.k.to_bits().hash(state);
        self.p.to_bits().hash(state);
    }
}

impl Dominance {
    /// The aggregate for `rules`.
    pub fn udaf(rules: &DisclosureRules) -> AggregateUDF {
        AggregateUDF::new_from_impl(Dominance {
            n: rules.dominance_n as usize,
            k: rules.dominance_k,
            p: rules.p_percent,
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Int64]),
                    TypeSignature::Exact(vec![DataType::Float64]),
                ],
                Volatility::Immutable,
            ),
        })
    }

    /// How many of the largest contributions a cell keeps: N, and at least two (the p % rule).
    fn kept(&self) -> usize {
        self.n.max(2)
    }
}

impl AggregateUDFImpl for Dominance {
    fn name(&self) -> &str {
        DOMINANCE_NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn groups_accumulator_supported(&self, _: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Cells {
            rules: (self.n, self.k, self.p),
            kept: self.kept(),
            sums: Vec::new(),
            negatives: Vec::new(),
            tops: Vec::new(),
            filled: Vec::new(),
            floor: Vec::new(),
        }))
    }

    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Cell {
            rules: (self.n, self.k, self.p),
            kept: self.kept(),
            sum: 0.0,
            negatives: 0,
            top: Vec::with_capacity(self.kept() + 1),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let mut f = vec![
            Arc::new(Field::new(
                format_state_name(args.name, "sum"),
                DataType::Float64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "negatives"),
                DataType::Int64,
                true,
            )),
        ];
        for i in 0..self.kept() {
            f.push(Arc::new(Field::new(
                format_state_name(args.name, &format!("top{i}")),
                DataType::Float64,
                true,
            )));
        }
        Ok(f)
    }
}

/// One cell's contributions, as much of them as the rules need: the total, whether any is
/// negative, and the largest few.
#[derive(Debug)]
struct Cell {
    rules: (usize, f64, f64),
    kept: usize,
    sum: f64,
    negatives: i64,
    /// Largest first, at most `kept`.
    top: Vec<f64>,
}

impl Cell {
    fn add(&mut self, x: f64) {
        if x.is_nan() {
            return;
        }
        if x < 0.0 {
            self.negatives = self.negatives.saturating_add(1);
        }
        self.sum += x.abs();
        self.insert(x.abs());
    }

    fn insert(&mut self, x: f64) {
        if self.top.len() == self.kept && self.top.last().is_some_and(|m| *m >= x) {
            return;
        }
        let at = self.top.partition_point(|v| *v >= x);
        self.top.insert(at, x);
        self.top.truncate(self.kept);
    }

    fn code(&self) -> i64 {
        code_of(self.rules, self.sum, self.negatives, &self.top)
    }
}

/// The rules as ACRO's checker states them, on magnitudes: N-K fails when the N largest make up
/// at least K of the total (`>=`, as ACRO's `check_nk_dominance`); p % fails when (total − the
/// two largest) / the largest is below p (with the largest zero, the remainder itself is
/// compared); a total that is not finite fails; a cell that holds and had negative contributions
/// is undefined. `sum` and `top` (largest first) are of magnitudes.
fn code_of(rules: (usize, f64, f64), sum: f64, negatives: i64, top: &[f64]) -> i64 {
    let (n, k, p) = rules;
    let Some(&top1) = top.first() else {
        return SAFE;
    };
    if !sum.is_finite() {
        return FAILS_NK;
    }
    let top_n: f64 = top.iter().take(n).sum();
    if sum > 0.0 && top_n / sum >= k {
        return FAILS_NK;
    }
    let top2: f64 = top.iter().take(2).sum();
    let rest = sum - top2;
    let ratio = if top1 == 0.0 { rest } else { rest / top1 };
    if p > 0.0 && ratio < p {
        return FAILS_P;
    }
    if negatives > 0 { UNDEFINED } else { SAFE }
}

/// Inserts `x` into `top` (largest first, `filled` of `top.len()` slots in use).
fn insert_top(top: &mut [f64], filled: &mut usize, x: f64) {
    let len = top.len();
    if *filled == len && top[len - 1] >= x {
        return;
    }
    let at = top[..*filled].partition_point(|v| *v >= x);
    let end = (*filled + 1).min(len);
    top.copy_within(at..end - 1, at + 1);
    top[at] = x;
    *filled = end;
}

fn float64(a: &ArrayRef) -> Result<Float64Array> {
    Ok(cast(a, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

impl Accumulator for Cell {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [v] = values else {
            return Err(DataFusionError::Internal(
                "enclave_dominance takes one argument".into(),
            ));
        };
        for x in float64(v)?.iter().flatten() {
            self.add(x);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        if states.len() != 2 + self.kept {
            return Err(DataFusionError::Internal(
                "enclave_dominance: a partial state of the wrong width".into(),
            ));
        }
        let sums = float64(&states[0])?;
        let negs = cast(&states[1], &DataType::Int64)?;
        let negs: &Int64Array = negs.as_primitive::<Int64Type>();
        let tops = states[2..]
            .iter()
            .map(float64)
            .collect::<Result<Vec<_>>>()?;
        for i in 0..sums.len() {
            if sums.is_valid(i) {
                self.sum += sums.value(i);
            }
            if negs.is_valid(i) {
                self.negatives = self.negatives.saturating_add(negs.value(i));
            }
            for t in &tops {
                if t.is_valid(i) {
                    self.insert(t.value(i));
                }
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut s = vec![
            ScalarValue::Float64(Some(self.sum)),
            ScalarValue::Int64(Some(self.negatives)),
        ];
        for i in 0..self.kept {
            s.push(ScalarValue::Float64(self.top.get(i).copied()));
        }
        Ok(s)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(self.code())))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.top.capacity() * std::mem::size_of::<f64>()
    }
}

#[cfg(test)]
mod tests;
