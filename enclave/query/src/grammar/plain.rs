//! The plan of a restricted query without noise: the user's aggregates, the subject counts
//! of every class per group and per fed aggregate, the dominance of restricted sums and means,
//! the cell filter on all of them.

use datafusion::common::{Column, DFSchema};
use datafusion::functions_aggregate::expr_fn::{count, count_distinct};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, lit, when};

use super::Population;
use super::build::df;
use super::cells::{Codes, restricted, unshifted};
use super::plan::{BuildContext, Built, SUBJECTS, nullable};
use super::{AggKind, Restricted};
use crate::check::CheckError;

/// The plain (un-noised) aggregate: the user's aggregates, subject counts per class and per
/// fed aggregate, the threshold.
#[allow(clippy::too_many_arguments)]
pub(super) fn finish_plain(
    q: &Restricted,
    cx: &BuildContext<'_>,
    input: LogicalPlan,
    (population_input, open_input): (LogicalPlan, Option<LogicalPlan>),
    in_schema: &DFSchema,
    reps: &[usize],
    single: bool,
    keys: Vec<Expr>,
    subject_col: impl Fn(usize) -> Expr,
) -> Result<Built, CheckError> {
    let mut aggs: Vec<Expr> = q
        .aggs
        .iter()
        .map(|a| a.expr.clone().alias(a.name.clone()))
        .collect();
    let mut hidden = Vec::new();
    let unique = |r: usize| single && (cx.subject_unique)(&q.instances[r].dataset);
    let has_subject = |r: usize| {
        cx.policy
            .dataset(&q.instances[r].dataset)
            .and_then(|d| d.subject.as_ref())
            .is_some()
    };
    for (n, &r) in reps.iter().enumerate() {
        let name = format!("__enclave_subjects{n}");
        // One row per subject (an exact fact of the snapshot, which also rules out null
        // subjects): a group's rows are its subjects, and the subject column need not be read.
        let e = if !has_subject(r) || unique(r) {
            count(lit(1))
        } else {
            count_distinct(subject_col(r))
        };
        aggs.push(e.alias(name.clone()));
        hidden.push(name);
        for (j, a) in q.aggs.iter().enumerate() {
            if a.kind == AggKind::CountStar || !nullable(&a.args, in_schema) {
                continue;
            }
            let mut fed = a.args[0].clone().is_not_null();
            for x in &a.args[1..] {
                fed = fed.and(x.clone().is_not_null());
            }
            let who = if has_subject(r) && !unique(r) {
                subject_col(r)
            } else {
                lit(1i64)
            };
            let only = when(fed, who).end().map_err(df)?;
            let name = format!("__enclave_fed{n}_{j}");
            let e = if unique(r) || !has_subject(r) {
                count(only)
            } else {
                count_distinct(only)
            };
            aggs.push(e.alias(name.clone()));
            hidden.push(name);
        }
    }
    // Dominance of the cells of every restricted sum, mean and other statistic (a variance gives
    // a dominant value away too), over its rows' values (as ACRO weighs records).
    let mut codes = Codes::default();
    for a in &q.aggs {
        if restricted(q, cx, a) && matches!(a.kind, AggKind::Sum | AggKind::Avg | AggKind::Other) {
            unshifted(a)?;
            for arg in &a.args {
                codes.of(cx, arg.clone(), in_schema, &mut aggs);
            }
        }
    }
    let codes = codes.columns();
    let dominance = !codes.is_empty();
    let counts: Vec<Expr> = hidden
        .iter()
        .map(|h| Expr::Column(Column::from_name(h.clone())))
        .collect();
    // Each class's subject count, for the sum of what the filter hides.
    let subject_counts: Vec<usize> = hidden
        .iter()
        .enumerate()
        .filter(|(_, h)| h.starts_with("__enclave_subjects"))
        .map(|(i, _)| i)
        .collect();
    let mut out: Vec<Expr> = q
        .schema
        .iter()
        .map(|(qual, f)| Expr::Column(Column::new(qual.cloned(), f.name())))
        .collect();
    // A cell's subjects: the sum over classes (subjects of different classes are different).
    let total = (0..reps.len())
        .map(|n| Expr::Column(Column::from_name(format!("__enclave_subjects{n}"))))
        .reduce(|a, b| a + b)
        .unwrap_or_else(|| lit(0i64));
    out.push(
        datafusion::logical_expr::cast(total, datafusion::arrow::datatypes::DataType::Int64)
            .alias(SUBJECTS),
    );
    let population = reps.iter().all(|&r| has_subject(r)).then(|| Population {
        input: population_input,
        keys: keys.clone(),
        open_subjects: reps.iter().map(|&r| subject_col(r)).collect(),
        subjects: reps
            .iter()
            .map(|&r| {
                let name = cx
                    .policy
                    .dataset(&q.instances[r].dataset)
                    .and_then(|d| d.subject.clone())
                    .unwrap_or_default();
                (name, subject_col(r))
            })
            .collect(),
        partition: reps.len() == 1 && reps.iter().all(|&r| unique(r)),
        variant: "exact".to_owned(),
        open_input,
        predicate: q.predicate.clone(),
        datasets: {
            let mut d: Vec<String> = q.instances.iter().map(|i| i.dataset.clone()).collect();
            d.sort();
            d.dedup();
            d
        },
    });
    let plan = LogicalPlanBuilder::from(input)
        .aggregate(keys, aggs)
        .and_then(|b| b.filter(cx.cell_filter(counts, codes, subject_counts)))
        .and_then(|b| b.project(out))
        .and_then(|b| b.build())
        .map_err(df)?;
    Ok(Built {
        plan,
        post: q.post.clone(),
        population,
        dp: None,
        dominance,
    })
}
