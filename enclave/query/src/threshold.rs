//! The group threshold, enforced by the host on the plan.
//!
//! Owns the rewrite: every aggregate into which a restricted column flows row by row (as a key,
//! an argument, a comparison, or through a predicate below it) gets a hidden count of distinct
//! data subjects (the dataset's subject column; rows when it has none) and a filter that
//! suppresses groups below k and counts them. The job sees only the surviving groups and the
//! number suppressed, never which. It must never let such an aggregate through unfiltered: if
//! the subject cannot be tracked to the aggregate, the query is refused.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DataFusionError};
use datafusion::functions_aggregate::expr_fn::{count, count_distinct};
use datafusion::logical_expr::{
    Aggregate, Expr, Filter, LogicalPlan, Projection, SubqueryAlias, lit,
};

use enclave_policy::Policy;

use crate::check::{CheckError, How, input_lineage};
use crate::functions::Threshold;

const HIDDEN_COUNT: &str = "__enclave_group_subjects";
const HIDDEN_SUBJECT: &str = "__enclave_subject";

/// Rewrites `plan` so every restricted aggregate shows only groups of at least k subjects.
/// Returns the plan and the counter of suppressed groups.
pub fn enforce(
    policy: &Policy,
    plan: LogicalPlan,
) -> Result<(LogicalPlan, Arc<AtomicU64>), CheckError> {
    let suppressed = Arc::new(AtomicU64::new(0));
    let udf = Arc::new(Threshold::udf(
        policy.min_group_size,
        Arc::clone(&suppressed),
    ));
    let mut refused: Option<CheckError> = None;
    let rewritten = plan
        .transform_up_with_subqueries(|node| {
            let LogicalPlan::Aggregate(agg) = &node else {
                return Ok(Transformed::no(node));
            };
            match restricted_datasets(policy, agg) {
                Ok(ds) if ds.is_empty() => Ok(Transformed::no(node)),
                Ok(ds) => match guard(policy, agg, &ds, &udf) {
                    Ok(p) => Ok(Transformed::yes(p)),
                    Err(e) => {
                        refused = Some(e);
                        Err(DataFusionError::Plan("refused".into()))
                    }
                },
                Err(e) => {
                    refused = Some(e);
                    Err(DataFusionError::Plan("refused".into()))
                }
            }
        })
        .map_err(|e| {
            refused
                .take()
                .unwrap_or_else(|| CheckError::Unsupported(format!("threshold rewrite: {e}")))
        })?;
    Ok((rewritten.data, suppressed))
}

/// Datasets whose restricted columns reach `agg` at row level.
fn restricted_datasets(policy: &Policy, agg: &Aggregate) -> Result<BTreeSet<String>, CheckError> {
    let (lineage, effects) =
        match input_lineage(policy, &agg.input, &[&agg.group_expr, &agg.aggr_expr]) {
            Ok(x) => x,
            // Correlated references we cannot resolve here: treat everything below as restricted.
            Err(CheckError::Unsupported(_)) => return Ok(all_datasets(&agg.input)),
            Err(e) => return Err(e),
        };
    let row_level = |h: How| !matches!(h, How::Agg | How::Group);
    let restricted = |(ds, col): &(String, String)| {
        policy
            .dataset(ds)
            .and_then(|r| r.columns.get(col))
            .is_none_or(|r| !r.is_open())
    };
    let mut out = BTreeSet::new();
    for (src, _) in lineage
        .iter()
        .filter(|(_, h)| row_level(*h))
        .chain(effects.iter())
    {
        if restricted(src) {
            out.insert(src.0.clone());
        }
    }
    Ok(out)
}

fn all_datasets(plan: &LogicalPlan) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let _ = plan.apply(|p| {
        if let LogicalPlan::TableScan(s) = p {
            out.insert(s.table_name.table().to_owned());
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    out
}

/// The aggregate with a hidden subject count, filtered by the threshold, hidden column dropped.
fn guard(
    policy: &Policy,
    agg: &Aggregate,
    datasets: &BTreeSet<String>,
    udf: &Arc<datafusion::logical_expr::ScalarUDF>,
) -> Result<LogicalPlan, CheckError> {
    let subject = datasets.iter().find_map(|d| {
        policy
            .dataset(d)
            .and_then(|r| r.subject.clone())
            .map(|s| (d.clone(), s))
    });
    let df = |e: DataFusionError| CheckError::Unsupported(format!("threshold rewrite: {e}"));
    let (input, counter) = match &subject {
        None => ((*agg.input).clone(), count(lit(1))),
        Some((ds, col)) => match carry(&agg.input, ds, col).map_err(df)? {
            Some((plan, c)) => (plan, count_distinct(Expr::Column(c))),
            None => {
                return Err(CheckError::Unsupported(format!(
                    "the group threshold counts distinct `{ds}.{col}` per group, but this aggregate's input does not \
                     carry that column; aggregate directly over the table or keep `{col}` in the subquery"
                )));
            }
        },
    };
    let mut aggr = agg.aggr_expr.clone();
    aggr.push(counter.alias(HIDDEN_COUNT));
    let guarded = Aggregate::try_new(Arc::new(input), agg.group_expr.clone(), aggr).map_err(df)?;
    let guarded = LogicalPlan::Aggregate(guarded);
    let predicate = udf.call(vec![Expr::Column(Column::from_name(HIDDEN_COUNT))]);
    let filtered = LogicalPlan::Filter(Filter::try_new(predicate, Arc::new(guarded)).map_err(df)?);
    // Keep exactly the original output columns.
    let keep: Vec<Expr> = agg.schema.columns().into_iter().map(Expr::Column).collect();
    Ok(LogicalPlan::Projection(
        Projection::try_new(keep, Arc::new(filtered)).map_err(df)?,
    ))
}

/// Threads source column `dataset.column` up through `plan` to its output; returns the new plan
/// and the column naming it there, or `None` if a node in between cannot carry it.
fn carry(
    plan: &LogicalPlan,
    dataset: &str,
    column: &str,
) -> Result<Option<(LogicalPlan, Column)>, DataFusionError> {
    Ok(match plan {
        LogicalPlan::TableScan(scan) => {
            if scan.table_name.table() == dataset
                && scan
                    .projected_schema
                    .has_column_with_unqualified_name(column)
            {
                Some((
                    plan.clone(),
                    Column::new(Some(scan.table_name.clone()), column),
                ))
            } else {
                None
            }
        }
        LogicalPlan::Projection(p) => match carry(&p.input, dataset, column)? {
            None => None,
            Some((input, c)) => {
                let mut exprs = p.expr.clone();
                exprs.push(Expr::Column(c).alias(HIDDEN_SUBJECT));
                let proj = Projection::try_new(exprs, Arc::new(input))?;
                Some((
                    LogicalPlan::Projection(proj),
                    Column::from_name(HIDDEN_SUBJECT),
                ))
            }
        },
        LogicalPlan::SubqueryAlias(a) => match carry(&a.input, dataset, column)? {
            None => None,
            Some((input, c)) => {
                let alias = SubqueryAlias::try_new(Arc::new(input), a.alias.clone())?;
                Some((
                    LogicalPlan::SubqueryAlias(alias),
                    Column::new(Some(a.alias.clone()), c.name),
                ))
            }
        },
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Repartition(_) => {
            let Some(input) = plan.inputs().first().copied() else {
                return Ok(None);
            };
            match carry(input, dataset, column)? {
                None => None,
                Some((new_input, c)) => {
                    Some((plan.with_new_exprs(plan.expressions(), vec![new_input])?, c))
                }
            }
        }
        LogicalPlan::Join(j) => {
            let (left, right) = (j.left.as_ref(), j.right.as_ref());
            let joined = if let Some((l, c)) = carry(left, dataset, column)? {
                Some((
                    plan.with_new_exprs(plan.expressions(), vec![l, right.clone()])?,
                    c,
                ))
            } else if let Some((r, c)) = carry(right, dataset, column)? {
                Some((
                    plan.with_new_exprs(plan.expressions(), vec![left.clone(), r])?,
                    c,
                ))
            } else {
                None
            };
            // Semi and anti joins drop one side: the column must survive the join.
            joined.filter(|(p, c)| p.schema().has_column(c))
        }
        _ => None,
    })
}
