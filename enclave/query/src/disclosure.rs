//! Dominance of aggregate cells, exactly: the host sees every contribution to a restricted SUM
//! or AVG, so the N-K and p % rules of statistical disclosure control (the policy's
//! `[disclosure]`, ACRO's defaults) are computed from the contributions themselves, not guessed
//! from the published table.
//!
//! Owns `enclave_dominance(x)`, an aggregate over one cell's contributions (a subject's, where
//! the plan has them per subject; a row's otherwise, as ACRO does) that returns a code: [`SAFE`],
//! [`FAILS_NK`] (the N largest make up at least K of the total), [`FAILS_P`] (the total minus
//! the two largest is less than p of the largest) or [`UNDEFINED`] (negative contributions:
//! dominance is not defined, and the cell is kept). The cell filter of the plan suppresses the
//! cells that fail. Like the threshold it is host-only: jobs cannot call it. It must never
//! return a contribution or any figure derived from one besides the code.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use enclave_policy::DisclosureRules;

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
            signature: Signature::exact(vec![DataType::Float64], Volatility::Immutable),
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
        self.sum += x;
        if x < 0.0 {
            self.negatives = self.negatives.saturating_add(1);
        }
        self.insert(x);
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

/// The rules as ACRO states them: N-K fails when the N largest make up at least K of the total;
/// p % fails when (total − the two largest) / the largest is below p (with the largest zero, the
/// remainder itself is compared); negatives leave dominance undefined. `top` is largest first.
fn code_of(rules: (usize, f64, f64), sum: f64, negatives: i64, top: &[f64]) -> i64 {
    let (n, k, p) = rules;
    if negatives > 0 {
        return UNDEFINED;
    }
    let Some(&top1) = top.first() else {
        return SAFE;
    };
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
    SAFE
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

/// Every group's cell at once (the hash aggregate's vectorized path): flat vectors indexed by
/// group.
#[derive(Debug)]
struct Cells {
    rules: (usize, f64, f64),
    kept: usize,
    sums: Vec<f64>,
    negatives: Vec<i64>,
    /// `kept` slots per group, largest first.
    tops: Vec<f64>,
    /// Slots in use per group.
    filled: Vec<usize>,
}

impl Cells {
    fn grow(&mut self, groups: usize) {
        if self.sums.len() < groups {
            self.sums.resize(groups, 0.0);
            self.negatives.resize(groups, 0);
            self.tops.resize(groups * self.kept, 0.0);
            self.filled.resize(groups, 0);
        }
    }

    fn add(&mut self, g: usize, x: f64) {
        if x.is_nan() {
            return;
        }
        self.sums[g] += x;
        if x < 0.0 {
            self.negatives[g] = self.negatives[g].saturating_add(1);
        }
        let k = self.kept;
        insert_top(&mut self.tops[g * k..(g + 1) * k], &mut self.filled[g], x);
    }

    /// Takes the groups `emit_to` asks for, leaving the rest (shifted to the front).
    fn take(&mut self, emit_to: EmitTo) -> (Vec<f64>, Vec<i64>, Vec<f64>, Vec<usize>) {
        let sums = emit_to.take_needed(&mut self.sums);
        let negatives = emit_to.take_needed(&mut self.negatives);
        let filled = emit_to.take_needed(&mut self.filled);
        let tops = match emit_to {
            EmitTo::All => std::mem::take(&mut self.tops),
            EmitTo::First(n) => {
                let rest = self.tops.split_off((n * self.kept).min(self.tops.len()));
                std::mem::replace(&mut self.tops, rest)
            }
        };
        (sums, negatives, tops, filled)
    }
}

impl GroupsAccumulator for Cells {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let [v] = values else {
            return Err(DataFusionError::Internal(
                "enclave_dominance takes one argument".into(),
            ));
        };
        self.grow(total_num_groups);
        let v = float64(v)?;
        for (i, &g) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !f.is_valid(i) || !f.value(i)) || v.is_null(i) {
                continue;
            }
            self.add(g, v.value(i));
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (sums, negatives, tops, filled) = self.take(emit_to);
        let k = self.kept;
        let codes: Int64Array = (0..sums.len())
            .map(|g| {
                Some(code_of(
                    self.rules,
                    sums[g],
                    negatives[g],
                    &tops[g * k..g * k + filled[g]],
                ))
            })
            .collect();
        Ok(Arc::new(codes))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (sums, negatives, tops, filled) = self.take(emit_to);
        let k = self.kept;
        let mut out: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(sums)),
            Arc::new(Int64Array::from(negatives)),
        ];
        for slot in 0..k {
            out.push(Arc::new(
                (0..filled.len())
                    .map(|g| (slot < filled[g]).then(|| tops[g * k + slot]))
                    .collect::<Float64Array>(),
            ));
        }
        Ok(out)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        if values.len() != 2 + self.kept {
            return Err(DataFusionError::Internal(
                "enclave_dominance: a partial state of the wrong width".into(),
            ));
        }
        self.grow(total_num_groups);
        let sums = float64(&values[0])?;
        let negs = cast(&values[1], &DataType::Int64)?;
        let negs: &Int64Array = negs.as_primitive::<Int64Type>();
        let tops = values[2..]
            .iter()
            .map(float64)
            .collect::<Result<Vec<_>>>()?;
        let k = self.kept;
        for (i, &g) in group_indices.iter().enumerate() {
            if sums.is_valid(i) {
                self.sums[g] += sums.value(i);
            }
            if negs.is_valid(i) {
                self.negatives[g] = self.negatives[g].saturating_add(negs.value(i));
            }
            for t in &tops {
                if t.is_valid(i) {
                    insert_top(
                        &mut self.tops[g * k..(g + 1) * k],
                        &mut self.filled[g],
                        t.value(i),
                    );
                }
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let [v] = values else {
            return Err(DataFusionError::Internal(
                "enclave_dominance takes one argument".into(),
            ));
        };
        let v = float64(v)?;
        // Each row its own cell: its value (if counted) as the total and the largest.
        let counted = |i: usize| {
            v.is_valid(i)
                && !v.value(i).is_nan()
                && !opt_filter.is_some_and(|f| !f.is_valid(i) || !f.value(i))
        };
        let rows = 0..v.len();
        let mut out: Vec<ArrayRef> = vec![
            Arc::new(
                rows.clone()
                    .map(|i| Some(if counted(i) { v.value(i) } else { 0.0 }))
                    .collect::<Float64Array>(),
            ),
            Arc::new(
                rows.clone()
                    .map(|i| Some(i64::from(counted(i) && v.value(i) < 0.0)))
                    .collect::<Int64Array>(),
            ),
            Arc::new(
                rows.clone()
                    .map(|i| counted(i).then(|| v.value(i)))
                    .collect::<Float64Array>(),
            ),
        ];
        for _ in 1..self.kept {
            out.push(Arc::new(Float64Array::new_null(v.len())));
        }
        Ok(out)
    }

    fn size(&self) -> usize {
        self.sums.capacity() * 8
            + self.negatives.capacity() * 8
            + self.tops.capacity() * 8
            + self.filled.capacity() * std::mem::size_of::<usize>()
    }
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
mod tests {
    use super::*;

    fn cell(n: usize, k: f64, p: f64) -> Cell {
        Cell {
            rules: (n, k, p),
            kept: n.max(2),
            sum: 0.0,
            negatives: 0,
            top: Vec::new(),
        }
    }

    fn code_with(rules: (usize, f64, f64), values: &[f64]) -> i64 {
        let mut c = cell(rules.0, rules.1, rules.2);
        for v in values {
            c.add(*v);
        }
        c.code()
    }

    fn code(values: &[f64]) -> i64 {
        code_with((2, 0.9, 0.1), values)
    }

    #[test]
    fn the_rules_as_acro_states_them() {
        // Ten equal contributions: safe.
        assert_eq!(code(&[10.0; 10]), SAFE);
        // Two contributors make 95 % of the total: N-K fails.
        let mut v = vec![1.0; 10];
        v.extend([100.0, 90.0]);
        assert_eq!(code(&v), FAILS_NK);
        // Exactly K fails too (ACRO compares with >=).
        assert_eq!(code(&[45.0, 45.0, 5.0, 5.0]), FAILS_NK);
        // With N = 1 the largest alone is weighed; what is left after the two largest is under
        // 10 % of the largest: p % fails while N-K holds.
        assert_eq!(code_with((1, 0.9, 0.1), &[100.0, 80.0, 10.0]), SAFE);
        assert_eq!(code_with((1, 0.9, 0.1), &[100.0, 80.0, 5.0]), FAILS_P);
        assert_eq!(code_with((1, 0.9, 0.0), &[100.0, 80.0, 5.0]), SAFE);
        // Negative contributions: undefined.
        assert_eq!(code(&[10.0, -1.0, 10.0]), UNDEFINED);
        // All zeros: the largest is zero and nothing remains, which fails p % (as in ACRO).
        assert_eq!(code(&[0.0; 12]), FAILS_P);
        assert_eq!(code(&[]), SAFE);
        // NaN contributions are not counted.
        assert_eq!(code(&[10.0, f64::NAN, 10.0, 10.0, 10.0]), SAFE);
    }

    #[test]
    fn the_vectorized_cells_agree_with_one_cell_at_a_time() {
        let mut m = 7u64;
        let mut next = || {
            m = m
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            m >> 33
        };
        for n in [1usize, 2, 4] {
            let rules = (n, 0.9, 0.1);
            let mut cells = Cells {
                rules,
                kept: n.max(2),
                sums: Vec::new(),
                negatives: Vec::new(),
                tops: Vec::new(),
                filled: Vec::new(),
            };
            let mut one: Vec<Cell> = (0..50).map(|_| cell(n, 0.9, 0.1)).collect();
            let mut partial = Cells {
                rules,
                kept: n.max(2),
                sums: Vec::new(),
                negatives: Vec::new(),
                tops: Vec::new(),
                filled: Vec::new(),
            };
            for batch in 0..6 {
                let len = 500;
                let groups: Vec<usize> = (0..len).map(|_| (next() % 50) as usize).collect();
                // Some groups get a dominant contributor, some a negative one, some only zeros.
                let values: Vec<Option<f64>> = groups
                    .iter()
                    .map(|g| match (g % 5, next() % 40) {
                        (0, 0) => Some(1e7),
                        (1, 0) => Some(-3.0),
                        (2, _) => Some(0.0),
                        (_, 1) => None,
                        _ => Some((next() % 1000) as f64),
                    })
                    .collect();
                let array: ArrayRef = Arc::new(Float64Array::from(values.clone()));
                let target = if batch % 2 == 0 {
                    &mut cells
                } else {
                    &mut partial
                };
                target
                    .update_batch(&[Arc::clone(&array)], &groups, None, 50)
                    .unwrap();
                for (g, v) in groups.iter().zip(&values) {
                    if let Some(v) = v {
                        one[*g].add(*v);
                    }
                }
            }
            // Rows passed on as states one by one merge like rows.
            let extra: ArrayRef = Arc::new(Float64Array::from(vec![Some(5.0), None, Some(-1.0)]));
            let converted = cells.convert_to_state(&[Arc::clone(&extra)], None).unwrap();
            cells.merge_batch(&converted, &[3, 3, 4], 50).unwrap();
            one[3].add(5.0);
            one[4].add(-1.0);
            // Half the rows went to a partial accumulator, merged as its state.
            let state = partial.state(EmitTo::All).unwrap();
            let all: Vec<usize> = (0..50).collect();
            cells.merge_batch(&state, &all, 50).unwrap();
            let codes = cells.evaluate(EmitTo::First(20)).unwrap();
            let rest = cells.evaluate(EmitTo::All).unwrap();
            let codes: Vec<i64> = codes
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .chain(rest.as_primitive::<Int64Type>().values().iter())
                .copied()
                .collect();
            let expected: Vec<i64> = one.iter().map(Cell::code).collect();
            assert_eq!(codes, expected, "n = {n}");
            for c in [SAFE, FAILS_NK, UNDEFINED] {
                assert!(codes.contains(&c), "n = {n}: {codes:?} lacks {c}");
            }
        }
    }

    #[test]
    fn partial_states_merge_to_the_same_code() {
        for n in [1usize, 2, 3, 10] {
            let (mut whole, mut a, mut b) =
                (cell(n, 0.9, 0.1), cell(n, 0.9, 0.1), cell(n, 0.9, 0.1));
            let xs: Vec<f64> = (0..40).map(|i| f64::from(i * 7 % 13)).collect();
            for (i, x) in xs.iter().enumerate() {
                whole.add(*x);
                if i % 2 == 0 { a.add(*x) } else { b.add(*x) }
            }
            let state: Vec<ArrayRef> = b
                .state()
                .unwrap()
                .into_iter()
                .map(|s| s.to_array().unwrap())
                .collect();
            a.merge_batch(&state).unwrap();
            assert_eq!(a.top, whole.top, "n = {n}");
            assert!((a.sum - whole.sum).abs() < 1e-9);
            assert_eq!(a.code(), whole.code());
            assert!(
                a.merge_batch(&state[..1]).is_err(),
                "a state of the wrong width"
            );
        }
    }
}
