//! The grammar's post-aggregate steps: what may happen to aggregate results and keys.
//!
//! Owns the rule for the nodes above the aggregate (projections, HAVING, ORDER BY, LIMIT,
//! aliases, DISTINCT): their expressions are made total — casts become TRY_CAST, arithmetic is
//! done in DOUBLE, functions come from a short list of total ones — and anything else
//! (subqueries, windows, other functions) is refused. They see only what the aggregate shows.

use datafusion::logical_expr::expr::{Alias, Cast, TryCast};
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};

use super::parse::{is_comparison, to_double};
use super::refuse;
use crate::check::CheckError;

/// Scalar functions allowed on aggregate results and keys (all total on their inputs, which
/// are cast to DOUBLE first where a numeric function could overflow).
const POST_FUNCTIONS: &[&str] = &["round", "abs", "floor", "ceil", "trunc", "coalesce"];

/// A post-aggregate node with its expressions made total: casts become TRY_CAST, arithmetic is
/// done in DOUBLE; subqueries, windows and unknown functions are refused.
pub(super) fn post_node(node: &LogicalPlan) -> Result<LogicalPlan, CheckError> {
    let exprs = node.expressions();
    let mut out = Vec::with_capacity(exprs.len());
    for e in &exprs {
        out.push(post_expr(e, 0)?);
    }
    if let LogicalPlan::Limit(l) = node {
        for x in [&l.skip, &l.fetch].into_iter().flatten() {
            if !matches!(x.as_ref(), Expr::Literal(..)) {
                return Err(refuse("a LIMIT or OFFSET that is not a number"));
            }
        }
    }
    // Keep each projected column's name: a sort or filter above may refer to it.
    if let LogicalPlan::Projection(p) = node {
        out = out
            .into_iter()
            .zip(p.schema.iter())
            .map(|(e, (q, f))| match e {
                Expr::Alias(_) => e,
                e => e.alias_qualified(q.cloned(), f.name()),
            })
            .collect();
    }
    let inputs: Vec<LogicalPlan> = node.inputs().into_iter().cloned().collect();
    node.with_new_exprs(out, inputs)
        .map_err(|e| refuse(format!("a post-aggregate step: {e}")))
}

fn post_expr(e: &Expr, depth: usize) -> Result<Expr, CheckError> {
    if depth > 64 {
        return Err(refuse("an expression nested too deeply"));
    }
    let sub = |x: &Expr| post_expr(x, depth + 1).map(Box::new);
    Ok(match e {
        Expr::Column(_) | Expr::Literal(..) => e.clone(),
        Expr::Alias(a) => Expr::Alias(Alias::new(
            post_expr(&a.expr, depth + 1)?,
            a.relation.clone(),
            a.name.clone(),
        )),
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            Expr::TryCast(TryCast::new(sub(expr)?, field.data_type().clone()))
        }
        Expr::BinaryExpr(b) => match b.op {
            Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Divide => {
                Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(to_double(post_expr(&b.left, depth + 1)?)),
                    b.op,
                    Box::new(to_double(post_expr(&b.right, depth + 1)?)),
                ))
            }
            op if is_comparison(op) || matches!(op, Operator::And | Operator::Or) => {
                Expr::BinaryExpr(BinaryExpr::new(sub(&b.left)?, op, sub(&b.right)?))
            }
            op => return Err(refuse(format!("the operator `{op}` after aggregation"))),
        },
        Expr::Not(x) => Expr::Not(sub(x)?),
        Expr::Negative(x) => Expr::Negative(Box::new(to_double(post_expr(x, depth + 1)?))),
        Expr::IsNull(x) => Expr::IsNull(sub(x)?),
        Expr::IsNotNull(x) => Expr::IsNotNull(sub(x)?),
        Expr::Between(b) => {
            let mut b = b.clone();
            b.expr = sub(&b.expr)?;
            b.low = sub(&b.low)?;
            b.high = sub(&b.high)?;
            Expr::Between(b)
        }
        Expr::InList(i) => {
            let mut i = i.clone();
            i.expr = sub(&i.expr)?;
            i.list = i
                .list
                .iter()
                .map(|x| post_expr(x, depth + 1))
                .collect::<Result<_, _>>()?;
            Expr::InList(i)
        }
        Expr::ScalarFunction(f)
            if POST_FUNCTIONS.contains(&f.func.name().to_ascii_lowercase().as_str()) =>
        {
            let numeric = f.func.name() != "coalesce";
            let mut f = f.clone();
            // The value is computed in DOUBLE (abs of the smallest integer overflows); further
            // arguments (ROUND's digits) keep their type.
            f.args = f
                .args
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    post_expr(a, depth + 1)
                        .map(|x| if numeric && i == 0 { to_double(x) } else { x })
                })
                .collect::<Result<_, _>>()?;
            Expr::ScalarFunction(f)
        }
        Expr::ScalarFunction(f) => {
            return Err(refuse(format!(
                "the function `{}` after aggregation (allowed: {})",
                f.func.name(),
                POST_FUNCTIONS.join(", ")
            )));
        }
        other => {
            return Err(refuse(format!(
                "`{}` after aggregation",
                other.variant_name()
            )));
        }
    })
}
