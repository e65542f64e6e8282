//! From DataFusion's unoptimized plan of a query to the grammar's [`Restricted`] form.
//!
//! Owns the shape rules: post-aggregate nodes (Limit, Sort, Projection, Filter as HAVING,
//! SubqueryAlias, DISTINCT) above exactly one Aggregate, whose input is an optional WHERE Filter
//! over scans and inner equi-joins; group keys that are columns; aggregates from the allowed
//! list without FILTER, ORDER BY or DISTINCT on restricted arguments except COUNT; row-level
//! expressions (WHERE, aggregate arguments) of total functions only; and the column rules for
//! each use (compare, join, group_by, aggregate). Whatever is not listed is refused, naming the
//! construct, never a data value.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::expr::{AggregateFunction, Alias, Cast, TryCast};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Distinct, Expr, JoinType, LogicalPlan, Operator, TableScan,
};
use enclave_policy::{Policy, Use};

use super::post::post_node;
use super::{Agg, AggKind, ColRef, Instance, Restricted, refuse};
use crate::check::CheckError;

/// Aggregates of the grammar (lower-case names).
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
];

struct Parser<'a> {
    policy: &'a Policy,
    instances: Vec<Instance>,
    joins: Vec<(ColRef, ColRef)>,
}

/// Parses `plan` (DataFusion's unoptimized plan of the user's SQL) into the grammar, checking
/// each column's use against `policy`.
pub fn parse(policy: &Policy, plan: &LogicalPlan) -> Result<Restricted, CheckError> {
    let mut above = Vec::new();
    let mut node = plan;
    let agg = loop {
        match node {
            LogicalPlan::Aggregate(a) => break a,
            _ if granted_scan(node).is_some() => {
                return Err(refuse(format!(
                    "{}: aggregate them (and GROUP BY only `group_by` columns)",
                    super::ROW_BY_ROW
                )));
            }
            LogicalPlan::Limit(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Distinct(Distinct::All(_)) => {
                above.push(node);
                node = node
                    .inputs()
                    .first()
                    .copied()
                    .ok_or_else(|| refuse("a node without input"))?;
            }
            LogicalPlan::TableScan(_) | LogicalPlan::Join(_) => {
                return Err(refuse(format!(
                    "{}: aggregate them (and GROUP BY only `group_by` columns)",
                    super::ROW_BY_ROW
                )));
            }
            other => return Err(refuse(format!("`{}`", node_name(other)))),
        }
    };
    // Only now that the aggregate is found: the nodes above it are post-aggregate steps.
    let mut post = above
        .into_iter()
        .map(post_node)
        .collect::<Result<Vec<_>, _>>()?;
    post.reverse();
    let mut p = Parser {
        policy,
        instances: Vec::new(),
        joins: Vec::new(),
    };
    let (source, predicate) = match agg.input.as_ref() {
        LogicalPlan::Filter(f) => (f.input.as_ref(), Some(f.predicate.clone())),
        other => (other, None),
    };
    p.source(source)?;
    let mut predicate_columns = Vec::new();
    let predicate = match predicate {
        None => None,
        Some(e) => {
            let e = p.row_pred(&e, &mut predicate_columns)?;
            for c in &predicate_columns {
                p.require(c, Use::Compare, "in WHERE")?;
            }
            Some(e)
        }
    };
    let mut keys = Vec::new();
    for g in &agg.group_expr {
        match g {
            Expr::Column(c) => {
                let r = p.resolve(c)?;
                p.require(&r, Use::GroupBy, "as a GROUP BY key")?;
                keys.push(r);
            }
            Expr::GroupingSet(_) => {
                return Err(refuse("GROUPING SETS, ROLLUP and CUBE"));
            }
            _ => {
                return Err(refuse(
                    "a GROUP BY key that is an expression (group by columns)",
                ));
            }
        }
    }
    let fields = agg.schema.fields();
    let mut aggs = Vec::new();
    for (i, e) in agg.aggr_expr.iter().enumerate() {
        let name = fields
            .get(agg.group_expr.len() + i)
            .map(|f| f.name().clone())
            .ok_or_else(|| refuse("an aggregate without output column"))?;
        aggs.push(p.aggregate(e, name)?);
    }
    Ok(Restricted {
        instances: p.instances,
        joins: p.joins,
        predicate,
        predicate_columns,
        keys,
        aggs,
        schema: agg.schema.clone(),
        post,
    })
}

fn node_name(p: &LogicalPlan) -> String {
    match p {
        LogicalPlan::Window(_) => "window functions".into(),
        LogicalPlan::Union(_) => "UNION".into(),
        LogicalPlan::Values(_) => "VALUES".into(),
        LogicalPlan::Subquery(_) => "subqueries".into(),
        LogicalPlan::Unnest(_) => "UNNEST".into(),
        LogicalPlan::RecursiveQuery(_) => "recursive queries".into(),
        LogicalPlan::Distinct(Distinct::On(_)) => "DISTINCT ON".into(),
        other => format!("plan node {}", other.display()),
    }
}

impl Parser<'_> {
    fn source(&mut self, plan: &LogicalPlan) -> Result<(), CheckError> {
        match plan {
            LogicalPlan::TableScan(scan) => self.scan(scan, scan.table_name.clone()),
            LogicalPlan::SubqueryAlias(a) => match granted_scan(&a.input) {
                Some(scan) => self.scan(scan, a.alias.clone()),
                None => Err(refuse("a subquery in FROM")),
            },
            LogicalPlan::Join(j) => {
                if j.join_type != JoinType::Inner {
                    return Err(refuse(format!("{} joins (only INNER JOIN)", j.join_type)));
                }
                let first_right = {
                    self.source(&j.left)?;
                    self.instances.len()
                };
                self.source(&j.right)?;
                let mut pairs = Vec::new();
                for (l, r) in &j.on {
                    pairs.push((l.clone(), r.clone()));
                }
                if let Some(f) = &j.filter {
                    for c in split_conjunction(f) {
                        match c {
                            Expr::BinaryExpr(BinaryExpr {
                                left,
                                op: Operator::Eq,
                                right,
                            }) => pairs.push((left.as_ref().clone(), right.as_ref().clone())),
                            _ => {
                                return Err(refuse(
                                    "a join condition other than equalities of join columns",
                                ));
                            }
                        }
                    }
                }
                if pairs.is_empty() {
                    return Err(refuse("a cross join (join with ON equal join columns)"));
                }
                for (l, r) in pairs {
                    let (Some(l), Some(r)) = (plain_column(&l), plain_column(&r)) else {
                        return Err(refuse("a join key that is not a column"));
                    };
                    let (mut l, mut r) = (self.resolve(l)?, self.resolve(r)?);
                    if l.instance >= first_right && r.instance < first_right {
                        std::mem::swap(&mut l, &mut r);
                    }
                    if !(l.instance < first_right && r.instance >= first_right) {
                        return Err(refuse("a join condition within one side of the join"));
                    }
                    self.require(&l, Use::Join, "as a join key")?;
                    self.require(&r, Use::Join, "as a join key")?;
                    self.joins.push((l, r));
                }
                Ok(())
            }
            _ => Err(refuse(format!("`{}` in FROM", node_name(plan)))),
        }
    }

    fn scan(
        &mut self,
        scan: &TableScan,
        qualifier: datafusion::common::TableReference,
    ) -> Result<(), CheckError> {
        if !scan.filters.is_empty() || scan.fetch.is_some() {
            return Err(refuse("a pre-filtered scan"));
        }
        let dataset = scan.table_name.table().to_owned();
        if self.policy.dataset(&dataset).is_none() {
            return Err(CheckError::Unclassified(dataset));
        }
        if self.instances.iter().any(|i| i.qualifier == qualifier) {
            return Err(refuse("two tables with the same name (give each an alias)"));
        }
        self.instances.push(Instance { dataset, qualifier });
        Ok(())
    }

    fn resolve(&self, c: &Column) -> Result<ColRef, CheckError> {
        let found: Vec<usize> = self
            .instances
            .iter()
            .enumerate()
            .filter(|(_, i)| c.relation.as_ref().is_none_or(|r| r == &i.qualifier))
            .map(|(n, _)| n)
            .collect();
        match found.as_slice() {
            [i] => Ok(ColRef {
                instance: *i,
                column: c.name.clone(),
            }),
            _ => Err(refuse(format!("the column reference `{}`", c.name))),
        }
    }

    fn require(&self, c: &ColRef, u: Use, place: &str) -> Result<(), CheckError> {
        let dataset = &self.instances[c.instance].dataset;
        if self.policy.row_level(dataset, &c.column) {
            return Ok(());
        }
        let rule = self
            .policy
            .dataset(dataset)
            .and_then(|d| d.columns.get(&c.column))
            .ok_or_else(|| CheckError::Violation {
                dataset: dataset.clone(),
                column: c.column.clone(),
                level: "unclassified".into(),
                used_as: u,
                context: place.into(),
                allowed: "no use (the policy does not list the column)".into(),
            })?;
        if rule.allows(u) {
            return Ok(());
        }
        Err(CheckError::Violation {
            dataset: dataset.clone(),
            column: c.column.clone(),
            level: rule.level.clone(),
            used_as: u,
            context: place.into(),
            allowed: rule.allowed_text(),
        })
    }

    fn is_pseudonymized(&self, c: &ColRef) -> bool {
        let dataset = &self.instances[c.instance].dataset;
        !self.policy.row_level(dataset, &c.column)
            && self
                .policy
                .dataset(dataset)
                .and_then(|d| d.columns.get(&c.column))
                .is_some_and(|r| r.is_pseudonymized())
    }

    /// A WHERE predicate: comparisons of columns with literals or columns, IN lists, BETWEEN,
    /// IS [NOT] NULL, LIKE, under AND/OR/NOT; casts become TRY_CAST.
    fn row_pred(&self, e: &Expr, cols: &mut Vec<ColRef>) -> Result<Expr, CheckError> {
        Ok(match e {
            Expr::BinaryExpr(b) if matches!(b.op, Operator::And | Operator::Or) => {
                Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(self.row_pred(&b.left, cols)?),
                    b.op,
                    Box::new(self.row_pred(&b.right, cols)?),
                ))
            }
            Expr::BinaryExpr(b) if is_comparison(b.op) => Expr::BinaryExpr(BinaryExpr::new(
                Box::new(self.operand(&b.left, cols)?),
                b.op,
                Box::new(self.operand(&b.right, cols)?),
            )),
            Expr::Not(x) => Expr::Not(Box::new(self.row_pred(x, cols)?)),
            Expr::IsNull(x) => Expr::IsNull(Box::new(self.operand(x, cols)?)),
            Expr::IsNotNull(x) => Expr::IsNotNull(Box::new(self.operand(x, cols)?)),
            Expr::Between(b) => {
                let mut b = b.clone();
                b.expr = Box::new(self.operand(&b.expr, cols)?);
                b.low = Box::new(literal_only(&b.low)?);
                b.high = Box::new(literal_only(&b.high)?);
                Expr::Between(b)
            }
            Expr::InList(i) => {
                let mut i = i.clone();
                i.expr = Box::new(self.operand(&i.expr, cols)?);
                if i.list.len() > 1000 {
                    return Err(refuse("an IN list of more than 1000 values"));
                }
                i.list = i.list.iter().map(literal_only).collect::<Result<_, _>>()?;
                Expr::InList(i)
            }
            Expr::Like(l) => {
                let mut l = l.clone();
                l.expr = Box::new(self.operand(&l.expr, cols)?);
                l.pattern = Box::new(literal_only(&l.pattern)?);
                Expr::Like(l)
            }
            Expr::Literal(ScalarValue::Boolean(_), _) => e.clone(),
            other => {
                return Err(refuse(format!(
                    "`{}` in WHERE (only comparisons, IN, BETWEEN, IS NULL and LIKE of columns, under AND/OR/NOT)",
                    other.variant_name()
                )));
            }
        })
    }

    /// A comparison operand: a column (possibly cast, made TRY_CAST) or a literal.
    fn operand(&self, e: &Expr, cols: &mut Vec<ColRef>) -> Result<Expr, CheckError> {
        Ok(match e {
            Expr::Column(c) => {
                cols.push(self.resolve(c)?);
                e.clone()
            }
            Expr::Literal(..) => e.clone(),
            Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
                Expr::TryCast(TryCast::new(
                    Box::new(self.operand(expr, cols)?),
                    field.data_type().clone(),
                ))
            }
            Expr::Negative(x) if matches!(x.as_ref(), Expr::Literal(..)) => e.clone(),
            other => {
                return Err(refuse(format!(
                    "`{}` as a comparison operand on restricted rows (compare columns with literals or columns)",
                    other.variant_name()
                )));
            }
        })
    }

    /// An aggregate: allowed function, no FILTER/ORDER BY, arguments of the argument grammar.
    fn aggregate(&self, e: &Expr, name: String) -> Result<Agg, CheckError> {
        let inner = match e {
            Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(AggregateFunction { func, params }) = inner else {
            return Err(refuse(
                "an aggregate expression that is not a plain aggregate call",
            ));
        };
        let fname = func.name().to_ascii_lowercase();
        if !STATISTICAL.contains(&fname.as_str()) {
            return Err(refuse(format!(
                "the aggregate `{fname}` (allowed: COUNT, SUM, AVG, STDDEV, VAR, CORR, COVAR, REGR_*; MIN, MAX and the like return one row's value)"
            )));
        }
        if params.filter.is_some() {
            return Err(refuse("FILTER (WHERE …) on an aggregate"));
        }
        if !params.order_by.is_empty() || params.null_treatment.is_some() {
            return Err(refuse("ORDER BY or IGNORE NULLS inside an aggregate"));
        }
        let count_star = fname == "count"
            && matches!(params.args.as_slice(), [Expr::Literal(..)])
            && !params.distinct;
        let kind = match fname.as_str() {
            _ if count_star => AggKind::CountStar,
            "count" => AggKind::Count,
            "sum" => AggKind::Sum,
            "avg" | "mean" => AggKind::Avg,
            _ => AggKind::Other,
        };
        let mut columns = Vec::new();
        let args = if count_star {
            params.args.clone()
        } else {
            let mut out = Vec::new();
            for a in &params.args {
                out.push(self.arg(a, &mut columns, 0)?);
            }
            out
        };
        if params.distinct && kind != AggKind::Count {
            return Err(refuse(format!(
                "{fname}(DISTINCT …) (only COUNT(DISTINCT column))"
            )));
        }
        for c in &columns {
            if matches!(kind, AggKind::Count) && self.is_pseudonymized(c) {
                // Counting pseudonyms counts subjects: the pseudonym use allows it.
                self.require(c, Use::Pseudonym, "inside COUNT")?;
            } else {
                self.require(
                    c,
                    Use::Aggregate,
                    &format!("inside {}", fname.to_uppercase()),
                )?;
            }
        }
        let mut f = AggregateFunction {
            func: func.clone(),
            params: params.clone(),
        };
        f.params.args = args.clone();
        Ok(Agg {
            kind,
            expr: Expr::AggregateFunction(f),
            args,
            distinct: params.distinct,
            columns,
            name,
        })
    }

    /// An aggregate argument: a column, a numeric literal, a cast (made TRY_CAST), or `+ - *`
    /// of those (computed in DOUBLE, so nothing overflows or fails).
    fn arg(&self, e: &Expr, cols: &mut Vec<ColRef>, depth: usize) -> Result<Expr, CheckError> {
        if depth > 32 {
            return Err(refuse("an aggregate argument nested too deeply"));
        }
        Ok(match e {
            Expr::Column(c) => {
                cols.push(self.resolve(c)?);
                e.clone()
            }
            Expr::Literal(v, _) if v.data_type().is_numeric() => e.clone(),
            Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field })
                if field.data_type().is_numeric() =>
            {
                Expr::TryCast(TryCast::new(
                    Box::new(self.arg(expr, cols, depth + 1)?),
                    field.data_type().clone(),
                ))
            }
            Expr::BinaryExpr(b)
                if matches!(b.op, Operator::Plus | Operator::Minus | Operator::Multiply) =>
            {
                let l = self.arg(&b.left, cols, depth + 1)?;
                let r = self.arg(&b.right, cols, depth + 1)?;
                Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(to_double(l)),
                    b.op,
                    Box::new(to_double(r)),
                ))
            }
            other => {
                return Err(refuse(format!(
                    "`{}` inside an aggregate (arguments are columns, numbers, casts and + - *)",
                    other.variant_name()
                )));
            }
        })
    }
}

/// The scan under a table reference: the table itself, or the host's pseudonym view of it (a
/// projection of its columns, pseudonymized ones through `enclave_pseudonym`), possibly under
/// the view's own alias.
fn granted_scan(plan: &LogicalPlan) -> Option<&TableScan> {
    match plan {
        LogicalPlan::TableScan(scan) => Some(scan),
        LogicalPlan::SubqueryAlias(a) => granted_scan(&a.input),
        LogicalPlan::Projection(p) => {
            let LogicalPlan::TableScan(scan) = p.input.as_ref() else {
                return None;
            };
            let view_expr = |e: &Expr| match e {
                Expr::Column(_) => true,
                Expr::Alias(Alias { expr, .. }) => matches!(
                    expr.as_ref(),
                    Expr::ScalarFunction(f)
                        if f.func.name() == "enclave_pseudonym"
                            && matches!(f.args.as_slice(), [Expr::Column(_)])
                ),
                _ => false,
            };
            p.expr.iter().all(view_expr).then_some(scan)
        }
        _ => None,
    }
}

pub(super) fn to_double(e: Expr) -> Expr {
    Expr::TryCast(TryCast::new(Box::new(e), DataType::Float64))
}

fn plain_column(e: &Expr) -> Option<&Column> {
    match e {
        Expr::Column(c) => Some(c),
        _ => None,
    }
}

fn literal_only(e: &Expr) -> Result<Expr, CheckError> {
    match e {
        Expr::Literal(..) => Ok(e.clone()),
        Expr::Negative(x) if matches!(x.as_ref(), Expr::Literal(..)) => Ok(e.clone()),
        _ => Err(refuse("a list or range bound that is not a literal")),
    }
}

pub(super) fn is_comparison(op: Operator) -> bool {
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
    )
}
