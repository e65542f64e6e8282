//! The plan checker: column rules enforced on DataFusion's logical plan, before anything runs.
//!
//! Owns the lineage analysis: for every output column (and for every predicate, sort key, join
//! key and window partition) it tracks which source columns flowed in and how — as row values,
//! group keys, aggregate arguments, comparisons, join keys or pseudonyms — through projections,
//! joins, unions, subqueries (scalar ones in SELECT too), CTEs, windows, CASE, casts and scalar
//! functions. A query that would put a column to a use its rule does not allow is refused with
//! the column, its level and the use. It also reports which aggregates touch restricted
//! columns, so the host can enforce the group threshold on them. It must never allow what it
//! does not understand: unknown plan nodes and expression kinds are refused, a node whose
//! lineage does not account for every output column is refused, functions keep row values raw.

use std::collections::BTreeSet;

use datafusion::common::DFSchema;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Distinct, Expr, JoinType, LogicalPlan, Operator};

use enclave_policy::{ColumnRule, Policy, Use};

mod expr;

/// How a source column's values reach a point of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum How {
    /// Row-level values (or functions of them).
    Raw,
    /// As group keys of an aggregate.
    Group,
    /// Inside a statistical aggregate.
    Agg,
    /// Only through a comparison (a predicate, a CASE condition, a sort key…).
    Cmp,
    /// As an equi-join key.
    Join,
    /// As its keyed pseudonym.
    Pseudo,
}

impl How {
    fn required(self) -> Use {
        match self {
            How::Raw => Use::Plaintext,
            How::Group => Use::GroupBy,
            How::Agg => Use::Aggregate,
            How::Cmp => Use::Compare,
            How::Join => Use::Join,
            How::Pseudo => Use::Pseudonym,
        }
    }
}

/// A source column: (dataset, column).
pub type Source = (String, String);

/// What flowed into one value.
pub type Lineage = BTreeSet<(Source, How)>;

/// A refused query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// A column would be put to a use its rule does not allow.
    #[error(
        "policy violation: column `{dataset}.{column}` (level {level}) may not be used as {used_as} {context}; its rule allows {allowed}"
    )]
    Violation {
        /// The dataset.
        dataset: String,
        /// The column.
        column: String,
        /// Its classification level.
        level: String,
        /// The use refused.
        used_as: Use,
        /// Where in the query.
        context: String,
        /// What its rule allows.
        allowed: String,
    },
    /// A table without rules in the policy.
    #[error(
        "policy violation: dataset `{0}` is not classified by the policy, so none of its columns may be used"
    )]
    Unclassified(String),
    /// A construct the checker does not analyse.
    #[error("not supported under a policy: {0}")]
    Unsupported(String),
}

/// Result of a successful check.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    /// Lineage of each output column.
    pub outputs: Vec<Lineage>,
}

/// Statistical aggregates: their value summarises a group. Anything else (MIN, MAX, ARRAY_AGG,
/// STRING_AGG, FIRST_VALUE, MEDIAN, percentiles…) can return a row's value and counts as raw.
const STATISTICAL: &[&str] = &[
    "count",
    "sum",
    "avg",
    "mean",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "var",
    "var_pop",
    "var_samp",
    "variance",
    "var_population",
    "var_sample",
    "covar",
    "covar_pop",
    "covar_samp",
    "corr",
    "regr_slope",
    "regr_intercept",
    "regr_count",
    "regr_r2",
    "regr_avgx",
    "regr_avgy",
    "regr_sxx",
    "regr_syy",
    "regr_sxy",
    "approx_distinct",
];

fn map(l: &Lineage, f: impl Fn(How) -> How) -> Lineage {
    l.iter().map(|(s, h)| (s.clone(), f(*h))).collect()
}

/// Values seen only through a comparison, a sort or a partition. Pseudonyms count as compared
/// too: comparing with a known pseudonym would single out one subject.
fn compared(l: &Lineage) -> Lineage {
    map(l, |h| {
        if matches!(h, How::Raw | How::Pseudo) {
            How::Cmp
        } else {
            h
        }
    })
}

fn union(items: impl IntoIterator<Item = Lineage>) -> Lineage {
    items.into_iter().flatten().collect()
}

/// Lineage of one plan's output, with the schema to resolve columns against.
struct Scope<'p> {
    schema: &'p DFSchema,
    lineage: Vec<Lineage>,
}

/// The checker's walk over one plan.
struct Walk<'a> {
    policy: &'a Policy,
    /// (lineage, where) of values that influence the result without being in it.
    effects: Vec<(Lineage, String)>,
}

/// Checks `plan` against `policy`.
pub fn check(policy: &Policy, plan: &LogicalPlan) -> Result<Checked, CheckError> {
    let mut w = Walk {
        policy,
        effects: Vec::new(),
    };
    let outputs = w.plan(plan, &[])?;
    let names: Vec<String> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    for (i, l) in outputs.iter().enumerate() {
        // Name the column when it is a plain name; an expression's text could quote the SQL.
        let place = match names.get(i) {
            Some(n) if n.len() <= 64 && n.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                format!("in output column `{n}`")
            }
            _ => format!("in output column {}", i + 1),
        };
        w.enforce(l, &place)?;
    }
    for (l, place) in std::mem::take(&mut w.effects) {
        w.enforce(&l, &place)?;
    }
    Ok(Checked { outputs })
}

/// What reaches an aggregate over `input` through `exprs` (its keys and arguments, unmapped),
/// and everything that influenced the rows of `input` (predicates, join keys, sort keys).
pub fn input_lineage(
    policy: &Policy,
    input: &LogicalPlan,
    exprs: &[&[Expr]],
) -> Result<(Lineage, Lineage), CheckError> {
    let mut w = Walk {
        policy,
        effects: Vec::new(),
    };
    let fields = w.plan(input, &[])?;
    let schema = input.schema();
    let mut l = Lineage::new();
    for e in exprs.iter().flat_map(|x| x.iter()) {
        for c in e.column_refs() {
            let i = schema
                .index_of_column(c)
                .map_err(|_| CheckError::Unsupported(format!("cannot resolve column `{c}`")))?;
            l.extend(fields.get(i).into_iter().flatten().cloned());
        }
    }
    let effects = w.effects.into_iter().flat_map(|(l, _)| l).collect();
    Ok((l, effects))
}

impl<'a> Walk<'a> {
    fn rule(&self, (dataset, column): &Source) -> Result<&'a ColumnRule, CheckError> {
        let rules = self
            .policy
            .dataset(dataset)
            .ok_or_else(|| CheckError::Unclassified(dataset.clone()))?;
        rules
            .columns
            .get(column)
            .ok_or_else(|| CheckError::Violation {
                dataset: dataset.clone(),
                column: column.clone(),
                level: "unclassified".into(),
                used_as: Use::Plaintext,
                context: "at all".into(),
                allowed: "no use (the policy does not list the column)".into(),
            })
    }

    fn enforce(&self, l: &Lineage, context: &str) -> Result<(), CheckError> {
        for (src, how) in l {
            let rule = self.rule(src)?;
            let used_as = how.required();
            if !rule.allows(used_as) {
                let allowed = if rule.uses.is_empty() {
                    "no use (denied)".to_owned()
                } else {
                    rule.uses
                        .iter()
                        .map(|u| u.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(CheckError::Violation {
                    dataset: src.0.clone(),
                    column: src.1.clone(),
                    level: rule.level.clone(),
                    used_as,
                    context: context.to_owned(),
                    allowed,
                });
            }
        }
        Ok(())
    }

    fn effect(&mut self, l: Lineage, place: &str) {
        if !l.is_empty() {
            self.effects.push((l, place.to_owned()));
        }
    }

    /// Lineage of each output field of `plan`; `outer` are the scopes of enclosing queries
    /// (for correlated subqueries).
    fn plan(
        &mut self,
        plan: &LogicalPlan,
        outer: &[Scope<'_>],
    ) -> Result<Vec<Lineage>, CheckError> {
        let width = plan.schema().fields().len();
        let out = match plan {
            LogicalPlan::TableScan(scan) => {
                let dataset = scan.table_name.table().to_owned();
                let rules = self
                    .policy
                    .dataset(&dataset)
                    .ok_or_else(|| CheckError::Unclassified(dataset.clone()))?;
                for f in &scan.filters {
                    let l = self.expr(f, plan.schema(), &vec![Lineage::new(); width], outer)?;
                    self.effect(compared(&l), "in a pushed-down filter");
                }
                scan.projected_schema
                    .fields()
                    .iter()
                    .map(|f| {
                        let how = match rules.columns.get(f.name()) {
                            Some(r) if r.is_pseudonymized() => How::Pseudo,
                            _ => How::Raw,
                        };
                        BTreeSet::from([((dataset.clone(), f.name().clone()), how)])
                    })
                    .collect()
            }
            LogicalPlan::Projection(p) => {
                let input = self.plan(&p.input, outer)?;
                let scope = Scope {
                    schema: p.input.schema(),
                    lineage: input,
                };
                p.expr
                    .iter()
                    .map(|e| self.expr_in(e, &scope, outer))
                    .collect::<Result<_, _>>()?
            }
            LogicalPlan::Filter(f) => {
                let input = self.plan(&f.input, outer)?;
                let scope = Scope {
                    schema: f.input.schema(),
                    lineage: input,
                };
                // The host's own group-threshold filter reveals nothing beyond its aggregate.
                if !is_threshold_filter(&f.predicate) {
                    let l = self.expr_in(&f.predicate, &scope, outer)?;
                    self.effect(compared(&l), "in a WHERE/HAVING predicate");
                }
                scope.lineage
            }
            LogicalPlan::Sort(s) => {
                let input = self.plan(&s.input, outer)?;
                let scope = Scope {
                    schema: s.input.schema(),
                    lineage: input,
                };
                for e in &s.expr {
                    let l = self.expr_in(&e.expr, &scope, outer)?;
                    self.effect(compared(&l), "as an ORDER BY key");
                }
                scope.lineage
            }
            LogicalPlan::Limit(l) => self.plan(&l.input, outer)?,
            LogicalPlan::SubqueryAlias(a) => self.plan(&a.input, outer)?,
            LogicalPlan::Subquery(s) => self.plan(&s.subquery, outer)?,
            LogicalPlan::Repartition(r) => self.plan(&r.input, outer)?,
            LogicalPlan::EmptyRelation(_) => vec![Lineage::new(); width],
            LogicalPlan::Values(v) => {
                // Literal rows; any expression in them (a scalar subquery…) is checked too.
                let empty = DFSchema::empty();
                let mut out = vec![Lineage::new(); width];
                for row in &v.values {
                    if row.len() != width {
                        return Err(CheckError::Unsupported(
                            "a VALUES row of the wrong width".into(),
                        ));
                    }
                    for (slot, e) in out.iter_mut().zip(row) {
                        slot.extend(self.expr(e, &empty, &[], outer)?);
                    }
                }
                out
            }
            LogicalPlan::Union(u) => {
                let mut out = vec![Lineage::new(); width];
                for input in &u.inputs {
                    for (i, l) in self.plan(input, outer)?.into_iter().enumerate() {
                        if let Some(slot) = out.get_mut(i) {
                            slot.extend(l);
                        }
                    }
                }
                out
            }
            LogicalPlan::Distinct(Distinct::All(input)) => self.plan(input, outer)?,
            LogicalPlan::Distinct(Distinct::On(d)) => {
                let input = self.plan(&d.input, outer)?;
                let scope = Scope {
                    schema: d.input.schema(),
                    lineage: input,
                };
                for e in &d.on_expr {
                    let l = self.expr_in(e, &scope, outer)?;
                    self.effect(compared(&l), "as a DISTINCT ON key");
                }
                for e in d.sort_expr.iter().flatten() {
                    let l = self.expr_in(&e.expr, &scope, outer)?;
                    self.effect(compared(&l), "as an ORDER BY key");
                }
                d.select_expr
                    .iter()
                    .map(|e| self.expr_in(e, &scope, outer))
                    .collect::<Result<_, _>>()?
            }
            LogicalPlan::Aggregate(a) => {
                let input = self.plan(&a.input, outer)?;
                let scope = Scope {
                    schema: a.input.schema(),
                    lineage: input,
                };
                let mut out = Vec::with_capacity(width);
                let mut grouping_sets = false;
                for g in &a.group_expr {
                    let keys: Vec<&Expr> = match g {
                        Expr::GroupingSet(set) => {
                            grouping_sets = true;
                            set.distinct_expr()
                        }
                        other => vec![other],
                    };
                    for k in keys {
                        out.push(map(&self.expr_in(k, &scope, outer)?, |h| {
                            if h == How::Raw { How::Group } else { h }
                        }));
                    }
                }
                if grouping_sets {
                    // The internal grouping id follows the keys: it tells which keys a row
                    // groups by, so it carries all of them, as comparisons.
                    out.push(compared(&union(out.iter().cloned())));
                }
                for e in &a.aggr_expr {
                    out.push(self.expr_in(e, &scope, outer)?);
                }
                out
            }
            LogicalPlan::Window(w) => {
                let input = self.plan(&w.input, outer)?;
                let scope = Scope {
                    schema: w.input.schema(),
                    lineage: input,
                };
                let mut out = scope.lineage.clone();
                for e in &w.window_expr {
                    out.push(self.expr_in(e, &scope, outer)?);
                }
                out
            }
            LogicalPlan::Join(j) => {
                let left = self.plan(&j.left, outer)?;
                let right = self.plan(&j.right, outer)?;
                let both = j
                    .left
                    .schema()
                    .join(j.right.schema())
                    .map_err(|e| CheckError::Unsupported(e.to_string()))?;
                let scope = Scope {
                    schema: &both,
                    lineage: left.iter().chain(&right).cloned().collect(),
                };
                let mut keys = Lineage::new();
                for (l, r) in &j.on {
                    let ll = self.expr_in(l, &scope, outer)?;
                    let rl = self.expr_in(r, &scope, outer)?;
                    keys.extend(map(&union([ll, rl]), |h| {
                        if matches!(h, How::Raw | How::Pseudo) {
                            How::Join
                        } else {
                            h
                        }
                    }));
                }
                if let Some(f) = &j.filter {
                    // `ON a.x = b.y` arrives as a filter before optimization: equalities between
                    // the two sides are join keys, everything else is a comparison.
                    for conjunct in split_conjunction(f) {
                        match is_equijoin(conjunct, j.left.schema(), j.right.schema()) {
                            Some((a, b)) => {
                                let l = union([
                                    self.expr_in(a, &scope, outer)?,
                                    self.expr_in(b, &scope, outer)?,
                                ]);
                                keys.extend(map(&l, |h| {
                                    if matches!(h, How::Raw | How::Pseudo) {
                                        How::Join
                                    } else {
                                        h
                                    }
                                }));
                            }
                            None => {
                                let l = self.expr_in(conjunct, &scope, outer)?;
                                self.effect(compared(&l), "in a join condition");
                            }
                        }
                    }
                }
                self.effect(keys.clone(), "as a join key");
                match j.join_type {
                    JoinType::LeftSemi | JoinType::LeftAnti => left,
                    JoinType::RightSemi | JoinType::RightAnti => right,
                    JoinType::LeftMark => {
                        let mut l = left;
                        l.push(keys);
                        l
                    }
                    JoinType::RightMark => {
                        let mut r = right;
                        r.push(keys);
                        r
                    }
                    _ => scope.lineage,
                }
            }
            LogicalPlan::Unnest(u) => {
                // Each output may come from any input column: over-approximate.
                let all = union(self.plan(&u.input, outer)?);
                vec![all; width]
            }
            LogicalPlan::RecursiveQuery(_) => {
                return Err(CheckError::Unsupported(
                    "recursive queries (WITH RECURSIVE)".into(),
                ));
            }
            other => {
                return Err(CheckError::Unsupported(format!(
                    "plan node `{}`",
                    other.display()
                )));
            }
        };
        if out.len() != width {
            return Err(CheckError::Unsupported(format!(
                "plan node `{}` has {} columns, lineage found {}",
                plan.display(),
                width,
                out.len()
            )));
        }
        Ok(out)
    }
}

/// `a = b` with `a` only from one side of a join and `b` only from the other: `(a, b)`.
fn is_equijoin<'e>(e: &'e Expr, left: &DFSchema, right: &DFSchema) -> Option<(&'e Expr, &'e Expr)> {
    let Expr::BinaryExpr(b) = e else { return None };
    if b.op != Operator::Eq {
        return None;
    }
    let side = |x: &Expr| {
        let refs = x.column_refs();
        if refs.is_empty() {
            None
        } else if refs.iter().all(|c| left.has_column(c)) {
            Some(0)
        } else if refs.iter().all(|c| right.has_column(c)) {
            Some(1)
        } else {
            None
        }
    };
    match (side(&b.left), side(&b.right)) {
        (Some(l), Some(r)) if l != r => Some((&b.left, &b.right)),
        _ => None,
    }
}

fn is_threshold_filter(e: &Expr) -> bool {
    matches!(e, Expr::ScalarFunction(f) if f.func.name() == crate::functions::THRESHOLD_NAME)
}

fn is_comparison(op: Operator) -> bool {
    matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
            | Operator::RegexMatch
            | Operator::RegexIMatch
            | Operator::RegexNotMatch
            | Operator::RegexNotIMatch
            | Operator::LikeMatch
            | Operator::ILikeMatch
            | Operator::NotLikeMatch
            | Operator::NotILikeMatch
    )
}
