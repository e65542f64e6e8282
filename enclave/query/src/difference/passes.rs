//! The difference check's own passes over a population: each shown cell's subject set, each
//! cell's count before the WHERE's restricted conditions, and the cells a job was shown with
//! their subjects.
//!
//! Owns the plans the check runs besides the user's (grouped by the user's keys, within the
//! session's memory pool, stopping when the job ends) and matching their rows to the cells by
//! key values. It must never return a cell without its subjects.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::prelude::SessionContext;
use enclave_egress::difference::{Cell, Cells, Count, SubjectSet};

use super::{Guard, Ref, Subjects, internal};
use crate::QueryError;
use crate::grammar::Population;

/// Subject counts of a population before the WHERE's restricted conditions.
pub(super) struct OpenCounts {
    /// Per cell (by position), its group's; `None` where the group was not found.
    pub(super) cells: Vec<Option<u64>>,
    /// Over every group, shown or not (groups the WHERE removed whole included).
    pub(super) total: u64,
}

impl Guard {
    /// The count and subjects of a compared cell (computing a shown query's sets if need be).
    pub(super) async fn subjects_of(
        &mut self,
        ctx: &SessionContext,
        released: &Cells,
        r: Ref,
    ) -> Result<(Count, SubjectSet), QueryError> {
        match r {
            Ref::Released(i) => released
                .cells()
                .get(i)
                .map(|c| (c.count, c.set.clone()))
                .ok_or_else(|| internal("a released cell vanished")),
            Ref::Seen(q, cell) => {
                self.ensure_sets(ctx, q).await?;
                let s = self
                    .seen
                    .get_mut(q)
                    .ok_or_else(|| internal("a query vanished"))?;
                let (_, count) = s.count_of(cell);
                let sets = s
                    .sets
                    .as_deref()
                    .ok_or_else(|| internal("a query's subjects vanished"))?;
                let set = match cell {
                    Some(i) => sets
                        .get(i)
                        .cloned()
                        .ok_or_else(|| internal("a cell's subjects vanished"))?,
                    None => {
                        if s.union.is_none() {
                            s.union = Some(SubjectSet::union_all(sets));
                        }
                        s.union.clone().unwrap_or_default()
                    }
                };
                Ok((count, set))
            }
        }
    }

    pub(super) async fn ensure_sets(
        &mut self,
        ctx: &SessionContext,
        q: usize,
    ) -> Result<(), QueryError> {
        let Some(s) = self.seen.get(q) else {
            return Err(internal("a query vanished"));
        };
        if s.sets.is_some() {
            return Ok(());
        }
        let keys: Vec<&[ScalarValue]> = s.cells.iter().map(|c| c.key.as_slice()).collect();
        let sets = self.sets_of(ctx, &s.population, &keys).await?;
        if let Some(s) = self.seen.get_mut(q) {
            s.sets = Some(sets);
        }
        Ok(())
    }

    /// The subject sets of the cells of `population` with key values `keys`: one pass over
    /// its rows, grouped by its keys.
    pub(super) async fn sets_of(
        &self,
        ctx: &SessionContext,
        population: &Population,
        keys: &[&[ScalarValue]],
    ) -> Result<Vec<SubjectSet>, QueryError> {
        let plan = LogicalPlanBuilder::from(population.input.clone())
            .aggregate(
                population.keys.clone(),
                vec![
                    Subjects::udaf(
                        self.key.clone(),
                        self.key_id,
                        population.subjects.iter().map(|(n, _)| n.clone()).collect(),
                    )
                    .call(population.subjects.iter().map(|(_, e)| e.clone()).collect())
                    .alias("__enclave_set"),
                ],
            )
            .and_then(|b| b.build())
            .map_err(internal)?;
        let batches = self.run(ctx, plan).await?;
        let at: HashMap<&[ScalarValue], usize> =
            keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        let mut out: Vec<Option<SubjectSet>> = vec![None; keys.len()];
        let nkeys = population.keys.len();
        for batch in &batches {
            let sets = batch
                .column(nkeys)
                .as_binary_opt::<i32>()
                .ok_or_else(|| internal("subject sets of another type"))?;
            for r in 0..batch.num_rows() {
                let key = (0..nkeys)
                    .map(|c| ScalarValue::try_from_array(batch.column(c), r))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(internal)?;
                if let Some(&i) = at.get(key.as_slice())
                    && sets.is_valid(r)
                {
                    out[i] = Some(SubjectSet::decode(sets.value(r)).map_err(internal)?);
                }
            }
        }
        // A cell whose subjects were not found cannot be compared: the query fails rather than
        // take it for one far from every other (an empty set would be).
        out.into_iter()
            .map(|s| s.ok_or_else(|| internal("a shown cell's subjects were not found")))
            .collect()
    }

    /// Runs one of the check's own plans to the end (stopping when the job ends, within the
    /// session's memory pool).
    pub(super) async fn run(
        &self,
        ctx: &SessionContext,
        plan: datafusion::logical_expr::LogicalPlan,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let df = ctx
            .execute_logical_plan(plan)
            .await
            .map_err(crate::guard::classify_plan_error(self.memory))?;
        let task = Arc::new(df.task_ctx());
        let physical = df
            .create_physical_plan()
            .await
            .and_then(|p| crate::cancel::cancellable(p, &self.cancel))
            .map_err(crate::guard::classify_plan_error(self.memory))?;
        datafusion::physical_plan::collect(physical, task)
            .await
            .map_err(crate::guard::classify_exec_error(self.memory))
    }

    /// Each cell's count of subjects in its population before the WHERE's restricted
    /// conditions (`None` where the population has none).
    pub(super) async fn open_counts(
        &self,
        ctx: &SessionContext,
        population: &Population,
        keys: &[&[ScalarValue]],
    ) -> Result<Option<OpenCounts>, QueryError> {
        use datafusion::functions_aggregate::expr_fn::{count, count_distinct};
        let Some(open) = &population.open_input else {
            return Ok(None);
        };
        // Subjects per group, of every class (as the cells count them).
        let counts: Vec<datafusion::logical_expr::Expr> = if population.partition {
            vec![count(datafusion::logical_expr::lit(1i64)).alias("__enclave_open0")]
        } else {
            population
                .open_subjects
                .iter()
                .enumerate()
                .map(|(i, s)| count_distinct(s.clone()).alias(format!("__enclave_open{i}")))
                .collect()
        };
        let width = counts.len();
        let plan = LogicalPlanBuilder::from(open.clone())
            .aggregate(population.keys.clone(), counts)
            .and_then(|b| b.build())
            .map_err(internal)?;
        let batches = self.run(ctx, plan).await?;
        let at: HashMap<&[ScalarValue], usize> =
            keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        let nkeys = population.keys.len();
        let mut out = OpenCounts {
            cells: vec![None; keys.len()],
            total: 0,
        };
        for batch in &batches {
            let mut columns = Vec::with_capacity(width);
            for c in nkeys..nkeys + width {
                columns.push(cast(batch.column(c), &DataType::Int64).map_err(internal)?);
            }
            for r in 0..batch.num_rows() {
                let n = columns.iter().fold(0u64, |a, c| {
                    let c = c.as_primitive::<Int64Type>();
                    let v = if c.is_valid(r) { c.value(r) } else { 0 };
                    a.saturating_add(u64::try_from(v).unwrap_or(0))
                });
                out.total = out.total.saturating_add(n);
                let key = (0..nkeys)
                    .map(|c| ScalarValue::try_from_array(batch.column(c), r))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(internal)?;
                if let Some(&i) = at.get(key.as_slice()) {
                    out.cells[i] = Some(n);
                }
            }
        }
        Ok(Some(out))
    }

    /// Every cell this job was shown, with its subjects (computed now where they were not):
    /// what the entity is released when one of the job's outputs is.
    pub(crate) async fn cells(&mut self, ctx: &SessionContext) -> Result<Cells, QueryError> {
        let mut out = Cells::new();
        for q in 0..self.seen.len() {
            self.ensure_sets(ctx, q).await?;
            let s = &self.seen[q];
            let sets = s
                .sets
                .as_deref()
                .ok_or_else(|| internal("a query's subjects vanished"))?;
            let union = SubjectSet::union_all(sets);
            for (c, set) in s.cells.iter().zip(sets) {
                out.push(Cell {
                    def: c.def,
                    family: s.family,
                    count: Count::exact(c.count),
                    set: set.clone(),
                });
            }
            if let Some((def, count)) = s.margin {
                out.push(Cell {
                    def,
                    family: None,
                    count,
                    set: union,
                });
            }
        }
        Ok(out)
    }
}
