//! The plan the host builds for a restricted query: accounting, threshold and noise by
//! construction.
//!
//! Owns turning a [`Restricted`] query into the logical plan that runs: each instance is a scan
//! of the dataset's file with its pseudonymized columns replaced by their pseudonyms and its
//! subject (and raw join keys) carried under hidden names; instances are joined on their join
//! pairs (raw values where both sides are pseudonymized, which is the same equality); the WHERE
//! filters; then either one aggregate — the user's aggregates plus, for every class of subjects
//! (instances joined on their subject columns are one class), the count of distinct subjects
//! of each group and of the rows that feed each aggregate — or, for a noised query whose
//! subjects may have several rows, a first aggregate per (keys, subject) whose values are clamped
//! per subject, a keyed choice of at most `max_groups_per_subject` groups per subject, and a
//! second aggregate per keys. The threshold keeps a group only if every count reaches k; noise is
//! added to the statistics the policy protects; the user's post-aggregate steps come last.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::common::{Column, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, ExprSchemable, LogicalPlan, LogicalPlanBuilder, lit, when,
};
use enclave_dp::{Mechanism, Share};

use super::cells::{Codes, restricted, unshifted};
use super::plan::{BuildContext, Built, DpSpend, SUBJECTS, nullable};
use super::{AggKind, ColRef, Population, Restricted, refuse};
use crate::check::CheckError;
use crate::noise::{Clamp, DpNoise, Rank, Statistic};

const SUBJECT: &str = "__enclave_subject";
const RAW: &str = "__enclave_raw_";

pub(super) fn df(e: datafusion::error::DataFusionError) -> CheckError {
    CheckError::Unsupported(format!("building the restricted plan: {e}"))
}

fn qcol(q: &TableReference, name: &str) -> Expr {
    Expr::Column(Column::new(Some(q.clone()), name))
}

/// Builds the plan of `q`.
pub fn build(q: &Restricted, cx: &BuildContext<'_>) -> Result<Built, CheckError> {
    let policy = cx.policy;
    let rules = |i: usize| policy.dataset(&q.instances[i].dataset);
    let subject_of = |i: usize| rules(i).and_then(|d| d.subject.clone());
    let pseudo = |i: usize, c: &str| {
        !policy.row_level(&q.instances[i].dataset, c)
            && rules(i)
                .and_then(|d| d.columns.get(c))
                .is_some_and(|r| r.is_pseudonymized())
    };
    // Join pairs on raw values where both sides are pseudonymized.
    let raw_join =
        |a: &ColRef, b: &ColRef| pseudo(a.instance, &a.column) && pseudo(b.instance, &b.column);

    // 1. One aliased projection per instance.
    let mut scans = Vec::with_capacity(q.instances.len());
    for (i, inst) in q.instances.iter().enumerate() {
        let provider = cx.raw.get(&inst.dataset).ok_or_else(|| {
            CheckError::Unsupported(format!(
                "dataset `{}` is not open in this session",
                inst.dataset
            ))
        })?;
        let schema = provider.schema();
        let table = TableReference::bare(inst.dataset.clone());
        let mut exprs: Vec<Expr> = schema
            .fields()
            .iter()
            .map(|f| {
                let c = qcol(&table, f.name());
                if pseudo(i, f.name()) {
                    cx.pseudonym.call(vec![c]).alias(f.name())
                } else {
                    c
                }
            })
            .collect();
        if let Some(s) = subject_of(i) {
            exprs.push(qcol(&table, &s).alias(SUBJECT));
        }
        for (a, b) in &q.joins {
            if raw_join(a, b) {
                for c in [a, b] {
                    let name = format!("{RAW}{}", c.column);
                    if c.instance == i && !exprs.iter().any(|e| e.schema_name().to_string() == name)
                    {
                        exprs.push(qcol(&table, &c.column).alias(name));
                    }
                }
            }
        }
        let plan = LogicalPlanBuilder::scan(table, provider_as_source(Arc::clone(provider)), None)
            .and_then(|b| b.project(exprs))
            .and_then(|b| b.alias(inst.qualifier.clone()))
            .map_err(df)?;
        scans.push(plan);
    }

    // 2. Left-deep joins in FROM order.
    let mut it = scans.into_iter();
    let mut plan = it.next().ok_or_else(|| refuse("a query without a table"))?;
    for (i, right) in it.enumerate() {
        let i = i + 1;
        let (mut lk, mut rk) = (Vec::new(), Vec::new());
        for (a, b) in &q.joins {
            let (l, r) = if b.instance == i && a.instance < i {
                (a, b)
            } else if a.instance == i && b.instance < i {
                (b, a)
            } else {
                continue;
            };
            let name = |c: &ColRef| {
                if raw_join(a, b) {
                    format!("{RAW}{}", c.column)
                } else {
                    c.column.clone()
                }
            };
            lk.push(Column::new(
                Some(q.instances[l.instance].qualifier.clone()),
                name(l),
            ));
            rk.push(Column::new(
                Some(q.instances[r.instance].qualifier.clone()),
                name(r),
            ));
        }
        if lk.is_empty() {
            return Err(refuse(
                "a table joined without an equality to the tables before it",
            ));
        }
        plan = plan
            .join(
                right.build().map_err(df)?,
                datafusion::logical_expr::JoinType::Inner,
                (lk, rk),
                None,
            )
            .map_err(df)?;
    }
    let open_input = super::population::open_input(q, policy, &plan)?;
    if let Some(p) = &q.predicate {
        plan = plan.filter(p.clone()).map_err(df)?;
    }
    let input = plan.build().map_err(df)?;
    let in_schema = input.schema().clone();
    let population_input = input.clone();

    // 3. Subject classes and what needs noise.
    let class = super::classes(q, policy);
    let mut reps: Vec<usize> = class.clone();
    reps.sort_unstable();
    reps.dedup();
    let single = q.instances.len() == 1;
    for &r in &reps {
        if subject_of(r).is_none() && !single {
            return Err(refuse(format!(
                "dataset `{}` has no subject column, so the subjects of a join with it cannot be counted",
                q.instances[r].dataset
            )));
        }
    }
    let needs_dp = |a: &super::Agg| {
        a.columns.iter().any(|c| {
            let ds = &q.instances[c.instance].dataset;
            !policy.row_level(ds, &c.column) && policy.requires_dp(ds, &c.column)
        })
    };
    let dp_aggs: Vec<bool> = q.aggs.iter().map(needs_dp).collect();
    let any_dp = dp_aggs.iter().any(|d| *d);
    let keys: Vec<Expr> = q
        .keys
        .iter()
        .map(|k| qcol(&q.instances[k.instance].qualifier, &k.column))
        .collect();
    let subject_col = |i: usize| qcol(&q.instances[i].qualifier, SUBJECT);

    if !any_dp {
        return super::plain::finish_plain(
            q,
            cx,
            input,
            (population_input, open_input),
            &in_schema,
            &reps,
            single,
            keys,
            subject_col,
        );
    }

    // 4. Differential privacy.
    let dp = &policy.dp;
    for (a, is_dp) in q.aggs.iter().zip(&dp_aggs) {
        if *is_dp && (a.distinct || !matches!(a.kind, AggKind::Count | AggKind::Sum | AggKind::Avg))
        {
            return Err(refuse(format!(
                "`{}` over a column under differential privacy (noised aggregates: COUNT, SUM, AVG)",
                a.name
            )));
        }
        if !matches!(
            a.kind,
            AggKind::CountStar | AggKind::Count | AggKind::Sum | AggKind::Avg
        ) || a.distinct
        {
            return Err(refuse(format!(
                "`{}` in a query with noised aggregates (COUNT, SUM, AVG only)",
                a.name
            )));
        }
    }
    if reps.len() != 1 {
        return Err(refuse(
            "differential privacy over a join needs every table joined on its subject column (one kind of subject)",
        ));
    }
    let unit = reps[0];
    if subject_of(unit).is_none() {
        return Err(refuse(format!(
            "dataset `{}` has no subject column: its aggregates cannot be noised per subject",
            q.instances[unit].dataset
        )));
    }
    // Bounds of each noised argument: the declared bounds of its one column.
    let mut bounds = Vec::with_capacity(q.aggs.len());
    for (a, is_dp) in q.aggs.iter().zip(&dp_aggs) {
        if !*is_dp || a.kind == AggKind::Count {
            bounds.push(None);
            continue;
        }
        let ([c], [arg]) = (a.columns.as_slice(), a.args.as_slice()) else {
            return Err(refuse(format!(
                "`{}`: a noised SUM or AVG takes one column (its declared bounds clamp it)",
                a.name
            )));
        };
        if !matches!(arg, Expr::Column(_) | Expr::TryCast(_)) {
            return Err(refuse(format!(
                "`{}`: arithmetic inside a noised aggregate",
                a.name
            )));
        }
        let ds = &q.instances[c.instance].dataset;
        let b = policy
            .dataset(ds)
            .and_then(|d| d.columns.get(&c.column))
            .and_then(|r| r.bounds)
            .ok_or_else(|| {
                refuse(format!(
                    "column `{ds}.{}` needs differential privacy but the policy declares no `bounds` for it",
                    c.column
                ))
            })?;
        let integer = arg.get_type(&in_schema).map_err(df)?.is_integer()
            && b.0.fract() == 0.0
            && b.1.fract() == 0.0;
        bounds.push(Some((b.0, b.1, integer)));
    }
    let fast = single && (cx.subject_unique)(&q.instances[unit].dataset);
    let (g, r) = if fast {
        (1.0, 1.0)
    } else {
        (
            dp.max_groups_per_subject as f64,
            dp.max_rows_per_subject as f64,
        )
    };
    let statistics: usize = q
        .aggs
        .iter()
        .zip(&dp_aggs)
        .map(|(a, d)| {
            if !*d {
                0
            } else if a.kind == AggKind::Avg {
                2
            } else {
                1
            }
        })
        .sum();
    let share = Share::new(dp.mechanism, dp.per_query, statistics)
        .map_err(|e| CheckError::Unsupported(e.to_string()))?;
    let noise = |m: f64| {
        share
            .noise(g * r * m, g.sqrt() * r * m)
            .map_err(|e| CheckError::Unsupported(e.to_string()))
    };

    // Per-subject (or per-row, on the fast path) values of each aggregate.
    let clamp = |e: Expr, b: (f64, f64, bool), rows: f64| -> Expr {
        Arc::new(Clamp::udf(b.0 * rows, b.1 * rows, b.2)).call(vec![e])
    };
    let mut stage_aggs: Vec<Expr> = Vec::new();
    let mut hidden: Vec<String> = Vec::new();
    let cname = |j: usize| format!("__enclave_c{j}");
    let sname = |j: usize| format!("__enclave_s{j}");
    for (j, a) in q.aggs.iter().enumerate() {
        let arg = a.args.first().cloned();
        match (a.kind, arg) {
            (AggKind::CountStar, _) => stage_aggs.push(count(lit(1)).alias(cname(j))),
            (AggKind::Count, Some(x)) => stage_aggs.push(count(x).alias(cname(j))),
            (AggKind::Sum | AggKind::Avg, Some(x)) => {
                let x = match bounds[j] {
                    Some(b) => clamp(x.clone(), b, 1.0),
                    None => x.clone(),
                };
                stage_aggs.push(sum(x).alias(sname(j)));
                stage_aggs.push(count(a.args[0].clone()).alias(cname(j)));
            }
            _ => return Err(refuse(format!("`{}`", a.name))),
        }
    }
    let mut plan = LogicalPlanBuilder::from(input);
    // Where each subject keeps a keyed choice of groups: (keys, subject) rows after the choice.
    let mut capped: Option<LogicalPlan> = None;
    let total_subjects = "__enclave_subjects".to_owned();
    let mut final_values: BTreeMap<String, Expr> = BTreeMap::new();
    let mut codes = Codes::default();
    if fast {
        // One row per subject: no per-subject stage. The count of non-null rows of an aggregate
        // is the count of the subjects that feed it, and a group's rows are its subjects: the
        // uniqueness fact (`COUNT(*) = COUNT(DISTINCT subject)`) also means no subject is null,
        // so the subject column need not even be read.
        let mut a = stage_aggs.clone();
        // Exact (un-noised) restricted sums and means get their cells' dominance checked; noised
        // ones are protected by differential privacy (each subject's contribution clamped to
        // the declared bounds, the noise calibrated to it).
        for (j, ag) in q.aggs.iter().enumerate() {
            if !dp_aggs[j]
                && restricted(q, cx, ag)
                && matches!(ag.kind, AggKind::Sum | AggKind::Avg)
            {
                unshifted(ag)?;
                let x = match bounds[j] {
                    Some(b) => clamp(ag.args[0].clone(), b, 1.0),
                    None => ag.args[0].clone(),
                };
                codes.of(cx, x, &in_schema, &mut a);
            }
        }
        a.push(count(lit(1)).alias(total_subjects.clone()));
        hidden.push(total_subjects.clone());
        for (j, ag) in q.aggs.iter().enumerate() {
            if ag.kind != AggKind::CountStar && nullable(&ag.args, &in_schema) {
                hidden.push(cname(j));
            }
        }
        plan = plan.aggregate(keys.clone(), a).map_err(df)?;
        for (j, _) in q.aggs.iter().enumerate() {
            final_values.insert(cname(j), Expr::Column(Column::from_name(cname(j))));
            final_values.insert(sname(j), Expr::Column(Column::from_name(sname(j))));
        }
    } else {
        // Stage 1: per (keys, subject).
        let mut group1 = keys.clone();
        group1.push(subject_col(unit).alias(SUBJECT));
        plan = plan.aggregate(group1, stage_aggs).map_err(df)?;
        // At most `g` groups per subject, chosen by a keyed hash of the group's keys.
        if !keys.is_empty() {
            let rank = Arc::new(Rank::udf(cx.noise_key));
            let key_cols: Vec<Expr> = q
                .keys
                .iter()
                .map(|k| qcol(&q.instances[k.instance].qualifier, &k.column))
                .collect();
            let rn = row_number()
                .partition_by(vec![Expr::Column(Column::from_name(SUBJECT))])
                .order_by(vec![rank.call(key_cols).sort(true, false)])
                .build()
                .map_err(df)?
                .alias("__enclave_rn");
            plan = plan
                .window(vec![rn])
                .and_then(|b| {
                    b.filter(
                        Expr::Column(Column::from_name("__enclave_rn"))
                            .lt_eq(lit(dp.max_groups_per_subject)),
                    )
                })
                .map_err(df)?;
        }
        // The cells' subjects are the ones chosen: their sets come from here.
        capped = Some(plan.clone().build().map_err(df)?);
        // Stage 2: per keys; each subject's values clamped as a whole.
        let mut a2 = Vec::new();
        for (j, ag) in q.aggs.iter().enumerate() {
            let c = Expr::Column(Column::from_name(cname(j)));
            let rows_capped = if dp_aggs[j] {
                Arc::new(Clamp::udf(0.0, r, true)).call(vec![c.clone()])
            } else {
                c.clone()
            };
            a2.push(sum(rows_capped).alias(cname(j)));
            if matches!(ag.kind, AggKind::Sum | AggKind::Avg) {
                let s = Expr::Column(Column::from_name(sname(j)));
                let s = match bounds[j] {
                    Some(b) => clamp(s, b, r),
                    None => s,
                };
                if !dp_aggs[j] && restricted(q, cx, ag) {
                    unshifted(ag)?;
                    codes.of(cx, s.clone(), plan.schema(), &mut a2);
                }
                a2.push(sum(s).alias(sname(j)));
            }
            if ag.kind != AggKind::CountStar && nullable(&ag.args, &in_schema) {
                let feed = format!("__enclave_feed{j}");
                a2.push(
                    sum(when(c.gt(lit(0i64)), lit(1i64))
                        .otherwise(lit(0i64))
                        .map_err(df)?)
                    .alias(feed.clone()),
                );
                hidden.push(feed);
            }
            final_values.insert(cname(j), Expr::Column(Column::from_name(cname(j))));
            final_values.insert(sname(j), Expr::Column(Column::from_name(sname(j))));
        }
        a2.push(count(lit(1)).alias(total_subjects.clone()));
        hidden.push(total_subjects);
        plan = plan.aggregate(keys.clone(), a2).map_err(df)?;
    }
    // Threshold on every count.
    let counts: Vec<Expr> = hidden
        .iter()
        .map(|h| {
            datafusion::logical_expr::cast(
                Expr::Column(Column::from_name(h.clone())),
                datafusion::arrow::datatypes::DataType::Int64,
            )
        })
        .collect();
    let codes = codes.columns();
    let dominance = !codes.is_empty();
    // The cell's subject count, for the sum of what the filter hides.
    let at = hidden
        .iter()
        .position(|h| h == "__enclave_subjects")
        .unwrap_or(0);
    plan = plan
        .filter(cx.cell_filter(counts, codes, vec![at]))
        .map_err(df)?;
    // Noise and the user's aggregate schema.
    let key_refs: Vec<Expr> = keys.clone();
    let mut out: Vec<Expr> = keys.clone();
    let mut noises = Vec::new();
    let mut index = 0usize;
    for (j, a) in q.aggs.iter().enumerate() {
        let c = final_values[&cname(j)].clone();
        let s = final_values[&sname(j)].clone();
        let value = if !dp_aggs[j] {
            match a.kind {
                AggKind::CountStar | AggKind::Count => c,
                AggKind::Sum => s,
                _ => {
                    datafusion::logical_expr::try_cast(
                        s,
                        datafusion::arrow::datatypes::DataType::Float64,
                    ) / datafusion::logical_expr::try_cast(
                        c,
                        datafusion::arrow::datatypes::DataType::Float64,
                    )
                }
            }
        } else {
            let udf = |stat: Statistic, args: Vec<Expr>, idx: usize| {
                let mut all = args;
                all.extend(key_refs.iter().cloned());
                Arc::new(DpNoise::udf(cx.noise_key, cx.query_index, idx, stat)).call(all)
            };
            match (a.kind, bounds[j]) {
                (AggKind::Count, _) => {
                    let n = noise(1.0)?;
                    noises.push((a.name.clone(), n));
                    index += 1;
                    udf(Statistic::Int(n), vec![c], index)
                }
                (AggKind::Sum, Some((lo, hi, integer))) => {
                    let n = noise(lo.abs().max(hi.abs()))?;
                    noises.push((a.name.clone(), n));
                    index += 1;
                    let stat = if integer {
                        Statistic::Int(n)
                    } else {
                        Statistic::Float(n)
                    };
                    udf(stat, vec![s], index)
                }
                (AggKind::Avg, Some((lo, hi, _))) => {
                    let ns = noise(lo.abs().max(hi.abs()))?;
                    let nc = noise(1.0)?;
                    noises.push((format!("{} (sum)", a.name), ns));
                    noises.push((format!("{} (count)", a.name), nc));
                    index += 1;
                    udf(
                        Statistic::Mean {
                            sum: ns,
                            count: nc,
                            lo,
                            hi,
                        },
                        vec![s, c],
                        index,
                    )
                }
                _ => return Err(refuse(format!("`{}`", a.name))),
            }
        };
        out.push(value.alias(a.name.clone()));
    }
    out.push(
        datafusion::logical_expr::cast(
            Expr::Column(Column::from_name("__enclave_subjects")),
            datafusion::arrow::datatypes::DataType::Int64,
        )
        .alias(SUBJECTS),
    );
    plan = plan.project(out).map_err(df)?;
    let plan = plan.build().map_err(df)?;
    let mut datasets: Vec<String> = q.instances.iter().map(|i| i.dataset.clone()).collect();
    datasets.sort();
    datasets.dedup();
    Ok(Built {
        plan,
        post: q.post.clone(),
        population: Some(Population {
            // The rows of the chosen (keys, subject) pairs where subjects keep a keyed choice of
            // groups: a cell counts those subjects, and its set must hold only them.
            subjects: vec![(
                subject_of(unit).unwrap_or_default(),
                if capped.is_some() {
                    Expr::Column(Column::from_name(SUBJECT))
                } else {
                    subject_col(unit)
                },
            )],
            open_subjects: vec![subject_col(unit)],
            input: capped.unwrap_or(population_input),
            keys,
            partition: fast,
            datasets: datasets.clone(),
            variant: if fast {
                "noised, one row per subject".to_owned()
            } else {
                format!(
                    "noised, at most {} groups and {} rows per subject, chosen under {}",
                    dp.max_groups_per_subject,
                    dp.max_rows_per_subject,
                    blake3::derive_key("enclave v1 cell choice", &cx.noise_key)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                )
            },
            open_input,
            predicate: q.predicate.clone(),
        }),
        dp: Some(DpSpend {
            mechanism: dp.mechanism,
            // Laplace is pure ε-DP: it spends no δ.
            cost: match dp.mechanism {
                Mechanism::Laplace => enclave_dp::Cost {
                    epsilon: dp.per_query.epsilon,
                    delta: 0.0,
                },
                Mechanism::Gaussian => dp.per_query,
            },
            statistics,
            datasets,
            noise: noises,
        }),
        dominance,
    })
}
