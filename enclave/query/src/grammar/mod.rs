//! The allow-list for queries over restricted columns: parse, then build the plan ourselves.
//!
//! Owns the two paths a query can take. A plan that, once optimized, reads only columns the job
//! may see row by row (plaintext, or granted row-level) runs as DataFusion planned it: nothing it
//! does not read can reach its result. Every other query must have the shape of the aggregation
//! grammar (`docs/policy.md`, after AWS Clean Rooms' aggregation analysis rule) — [`parse`] turns
//! DataFusion's unoptimized plan of it into a [`Restricted`] query or refuses it with the
//! reason — and then runs only in the plan the host builds from that ([`build`]): scans of the
//! granted datasets, inner equi-joins on `join` columns, a WHERE over `compare` columns, GROUP
//! BY on `group_by` columns, the allowed aggregates over `aggregate` columns, exact subject
//! accounting and the threshold on every output row, differential privacy where the policy asks
//! for it, and the user's post-aggregate steps over total functions only. [`safety`] checks the
//! final plan once more: no fallible cast or arithmetic on hidden rows. It must never run a
//! restricted query in the user's own plan.

mod build;
mod cells;
mod parse;
mod plain;
mod plan;
mod population;
mod post;
mod safety;

use datafusion::common::{DFSchemaRef, TableReference};
use datafusion::logical_expr::{Expr, LogicalPlan};
use enclave_policy::Policy;

pub use build::build;
pub use parse::parse;
pub use plan::{BuildContext, Built, DpSpend, SUBJECTS, apply_post};
pub use population::Population;
pub use safety::check_total;

use crate::check::CheckError;

/// One scan of a granted dataset in a restricted query.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The dataset.
    pub dataset: String,
    /// The name its columns are qualified with (its alias, or its table name).
    pub qualifier: TableReference,
}

/// A column of one instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ColRef {
    /// Index into [`Restricted::instances`].
    pub instance: usize,
    /// The column.
    pub column: String,
}

/// An aggregate of the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    /// `COUNT(*)`.
    CountStar,
    /// `COUNT(x)`, `COUNT(DISTINCT x)`.
    Count,
    /// `SUM(x)`.
    Sum,
    /// `AVG(x)`.
    Avg,
    /// Another statistical aggregate (STDDEV, VAR, CORR, COVAR, REGR_*): never under DP.
    Other,
}

/// One aggregate of the query, as the user wrote it (arguments validated and made total).
#[derive(Debug, Clone)]
pub struct Agg {
    /// What it computes.
    pub kind: AggKind,
    /// The user's aggregate, arguments rewritten (total casts, real arithmetic).
    pub expr: Expr,
    /// The arguments, rewritten.
    pub args: Vec<Expr>,
    /// DISTINCT.
    pub distinct: bool,
    /// Columns its arguments read.
    pub columns: Vec<ColRef>,
    /// Its output name in the aggregate's schema.
    pub name: String,
}

/// A query over restricted columns, in the grammar.
#[derive(Debug, Clone)]
pub struct Restricted {
    /// The scans, in FROM order.
    pub instances: Vec<Instance>,
    /// Equi-join pairs (left, right): columns of two different instances.
    pub joins: Vec<(ColRef, ColRef)>,
    /// WHERE, validated and made total.
    pub predicate: Option<Expr>,
    /// Columns the WHERE reads.
    pub predicate_columns: Vec<ColRef>,
    /// GROUP BY keys (columns).
    pub keys: Vec<ColRef>,
    /// The aggregates, in the user's order.
    pub aggs: Vec<Agg>,
    /// The user's aggregate output schema (keys then aggregates).
    pub schema: DFSchemaRef,
    /// The user's nodes above the aggregate, nearest first, expressions validated and made
    /// total.
    pub post: Vec<LogicalPlan>,
}

/// Union-find over instances: instances joined on their subject columns are one class.
pub(super) fn classes(q: &Restricted, policy: &Policy) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..q.instances.len()).collect();
    fn find(p: &mut [usize], i: usize) -> usize {
        let mut r = i;
        while p[r] != r {
            r = p[r];
        }
        p[i] = r;
        r
    }
    let subject = |c: &ColRef| {
        policy
            .dataset(&q.instances[c.instance].dataset)
            .and_then(|d| d.subject.as_deref())
            == Some(c.column.as_str())
    };
    for (a, b) in &q.joins {
        if subject(a) && subject(b) {
            let (ra, rb) = (find(&mut parent, a.instance), find(&mut parent, b.instance));
            parent[ra] = rb;
        }
    }
    (0..q.instances.len())
        .map(|i| find(&mut parent, i))
        .collect()
}

/// Whether `plan` (optimized) reads only columns that `policy` lets a job see row by row.
pub fn reads_only_row_level(policy: &Policy, plan: &LogicalPlan) -> bool {
    let mut ok = true;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let dataset = scan.table_name.table();
            if policy.dataset(dataset).is_none() {
                ok = false;
            }
            for f in scan.projected_schema.fields() {
                if !policy.row_level(dataset, f.name()) {
                    ok = false;
                }
            }
            for filter in &scan.filters {
                for c in filter.column_refs() {
                    if !policy.row_level(dataset, &c.name) {
                        ok = false;
                    }
                }
            }
        }
        Ok(if ok {
            datafusion::common::tree_node::TreeNodeRecursion::Continue
        } else {
            datafusion::common::tree_node::TreeNodeRecursion::Stop
        })
    });
    ok
}

/// The first column `plan` (optimized) reads that a job may not see row by row.
pub fn first_restricted(policy: &Policy, plan: &LogicalPlan) -> Option<(String, String)> {
    let mut found = None;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let dataset = scan.table_name.table();
            let cols = scan
                .projected_schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .chain(
                    scan.filters
                        .iter()
                        .flat_map(|f| f.column_refs().into_iter().map(|c| c.name.clone()))
                        .collect::<Vec<_>>(),
                );
            for c in cols {
                if !policy.row_level(dataset, &c) {
                    found = Some((dataset.to_owned(), c));
                    return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    found
}

/// The message of the refusal of a query that reads a restricted column row by row.
pub const ROW_BY_ROW: &str = "restricted columns are used row by row";

/// A refusal of the grammar.
fn refuse(what: impl Into<String>) -> CheckError {
    CheckError::Unsupported(format!(
        "{} (a query that uses columns without `plaintext` must have the aggregation shape: \
         SELECT keys and aggregates FROM tables [JOIN … ON equal join columns] [WHERE …] \
         [GROUP BY keys] [HAVING …] [ORDER BY …] [LIMIT n]; see docs/policy.md)",
        what.into()
    ))
}

/// Whether `plan` (optimized, row-level only) reads a column that only a row-level grant opened.
pub fn reads_granted_rows(policy: &Policy, plan: &LogicalPlan) -> bool {
    let mut granted = false;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let dataset = scan.table_name.table();
            let open = |c: &str| {
                policy
                    .dataset(dataset)
                    .and_then(|d| d.columns.get(c))
                    .is_some_and(|r| r.is_open())
            };
            granted |= scan
                .projected_schema
                .fields()
                .iter()
                .any(|f| !open(f.name()));
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    granted
}
