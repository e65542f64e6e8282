//! The dominance aggregate on the hash aggregate's vectorized path: every group's cell at once.
//!
//! Owns [`Cells`], the `GroupsAccumulator` of `enclave_dominance`: flat per-group totals,
//! negative counts and largest contributions, partial states and their merge, rows passed on as
//! states. It must compute exactly the code one cell at a time computes ([`super::Cell`]).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};

use super::{code_of, float64, insert_top};

/// Every group's cell at once (the hash aggregate's vectorized path): flat vectors indexed by
/// group.
#[derive(Debug)]
pub(super) struct Cells {
    pub(super) rules: (usize, f64, f64),
    pub(super) kept: usize,
    pub(super) sums: Vec<f64>,
    pub(super) negatives: Vec<i64>,
    /// `kept` slots per group, largest first.
    pub(super) tops: Vec<f64>,
    /// Slots in use per group.
    pub(super) filled: Vec<usize>,
    /// Per group, the magnitude a contribution must exceed to enter its largest: the smallest
    /// kept once all slots are in use, −∞ before (most rows stop at this one comparison).
    pub(super) floor: Vec<f64>,
}

impl Cells {
    fn grow(&mut self, groups: usize) {
        if self.sums.len() < groups {
            self.sums.resize(groups, 0.0);
            self.negatives.resize(groups, 0);
            self.tops.resize(groups * self.kept, 0.0);
            self.filled.resize(groups, 0);
            self.floor.resize(groups, f64::NEG_INFINITY);
        }
    }

    fn add(&mut self, g: usize, x: f64) {
        if x.is_nan() {
            return;
        }
        if x < 0.0 {
            self.negatives[g] = self.negatives[g].saturating_add(1);
        }
        let a = x.abs();
        self.sums[g] += a;
        if a > self.floor[g] {
            self.enter(g, a);
        }
    }

    /// Puts magnitude `a` among group `g`'s largest and moves its floor.
    fn enter(&mut self, g: usize, a: f64) {
        let k = self.kept;
        let top = &mut self.tops[g * k..(g + 1) * k];
        insert_top(top, &mut self.filled[g], a);
        if self.filled[g] == k {
            self.floor[g] = top[k - 1];
        }
    }

    /// Adds every value of `values` to its group, the rows `opt_filter` keeps.
    fn add_all<T: Copy>(
        &mut self,
        values: &[T],
        nulls: Option<&datafusion::arrow::buffer::NullBuffer>,
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        to_f64: impl Fn(T) -> f64,
    ) {
        match (nulls, opt_filter) {
            (None, None) => {
                for (&g, &x) in group_indices.iter().zip(values) {
                    self.add(g, to_f64(x));
                }
            }
            _ => {
                for (i, (&g, &x)) in group_indices.iter().zip(values).enumerate() {
                    if nulls.is_some_and(|n| n.is_null(i))
                        || opt_filter.is_some_and(|f| !f.is_valid(i) || !f.value(i))
                    {
                        continue;
                    }
                    self.add(g, to_f64(x));
                }
            }
        }
    }

    /// Takes the groups `emit_to` asks for, leaving the rest (shifted to the front).
    fn take(&mut self, emit_to: EmitTo) -> (Vec<f64>, Vec<i64>, Vec<f64>, Vec<usize>) {
        let sums = emit_to.take_needed(&mut self.sums);
        let negatives = emit_to.take_needed(&mut self.negatives);
        let filled = emit_to.take_needed(&mut self.filled);
        let _ = emit_to.take_needed(&mut self.floor);
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
        // Integers and floats are read in place; anything else is cast first.
        match v.data_type() {
            DataType::Int64 => {
                let a = v.as_primitive::<Int64Type>();
                self.add_all(a.values(), a.nulls(), group_indices, opt_filter, |x| {
                    x as f64
                });
            }
            DataType::Float64 => {
                let a = v.as_primitive::<Float64Type>();
                self.add_all(a.values(), a.nulls(), group_indices, opt_filter, |x| x);
            }
            _ => {
                let a = float64(v)?;
                self.add_all(a.values(), a.nulls(), group_indices, opt_filter, |x| x);
            }
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
        for (i, &g) in group_indices.iter().enumerate() {
            if sums.is_valid(i) {
                self.sums[g] += sums.value(i);
            }
            if negs.is_valid(i) {
                self.negatives[g] = self.negatives[g].saturating_add(negs.value(i));
            }
            for t in &tops {
                if t.is_valid(i) && t.value(i) > self.floor[g] {
                    self.enter(g, t.value(i));
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
        // Each row its own cell: its magnitude (if counted) as the total and the largest.
        let counted = |i: usize| {
            v.is_valid(i)
                && !v.value(i).is_nan()
                && !opt_filter.is_some_and(|f| !f.is_valid(i) || !f.value(i))
        };
        let rows = 0..v.len();
        let mut out: Vec<ArrayRef> = vec![
            Arc::new(
                rows.clone()
                    .map(|i| Some(if counted(i) { v.value(i).abs() } else { 0.0 }))
                    .collect::<Float64Array>(),
            ),
            Arc::new(
                rows.clone()
                    .map(|i| Some(i64::from(counted(i) && v.value(i) < 0.0)))
                    .collect::<Int64Array>(),
            ),
            Arc::new(
                rows.clone()
                    .map(|i| counted(i).then(|| v.value(i).abs()))
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
