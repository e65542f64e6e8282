//! The last check of a plan the host built for a restricted query: nothing in it can fail
//! because of a hidden value.
//!
//! Owns the rule that, after optimization (type coercion included), every expression of the
//! plan is total on its inputs: casts of non-literal values only where every input converts
//! (integers to wider numbers or text, floats to DOUBLE, anything to text, dates to
//! timestamps), integer division and remainder nowhere, scalar functions only from the host's
//! own set and the total post-aggregate functions. A query whose success or failure could
//! depend on data it may not see is refused before it runs.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::expr::Cast;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, Operator};

use super::refuse;
use crate::check::CheckError;

/// Functions a built plan may call: the host's own and total ones.
const TOTAL_FUNCTIONS: &[&str] = &[
    "enclave_pseudonym",
    "enclave_threshold",
    "enclave_dp",
    "enclave_rank",
    "enclave_clamp",
    "round",
    "abs",
    "floor",
    "ceil",
    "trunc",
    "coalesce",
];

fn total_cast(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if from == to {
        return true;
    }
    let width = |t: &DataType| match t {
        Int8 | UInt8 => Some(1),
        Int16 | UInt16 => Some(2),
        Int32 | UInt32 => Some(4),
        Int64 | UInt64 => Some(8),
        _ => None,
    };
    match (from, to) {
        (_, Utf8 | LargeUtf8 | Utf8View) => true,
        (f, Float64) if f.is_integer() || f.is_floating() => true,
        (f, Float32) if f.is_floating() => true,
        (f, t) if f.is_signed_integer() && t.is_signed_integer() => width(f) <= width(t),
        (f, t) if f.is_unsigned_integer() && t.is_integer() => {
            width(f) < width(t) || (t.is_unsigned_integer() && width(f) <= width(t))
        }
        (f, Decimal128(p, 0)) if f.is_integer() => *p >= 20,
        (Date32, Date64 | Timestamp(_, _)) => true,
        (Dictionary(_, v), t) => total_cast(v, t),
        _ => false,
    }
}

/// Refuses `plan` (optimized) if any of its expressions could fail on some input.
pub fn check_total(plan: &LogicalPlan) -> Result<(), CheckError> {
    let mut error = None;
    let _ = plan.apply_with_subqueries(|node| {
        let inputs = node.inputs();
        let schema = match inputs.as_slice() {
            [] => DFSchema::empty(),
            [one] => one.schema().as_ref().clone(),
            [l, r] => match l.schema().join(r.schema()) {
                Ok(s) => s,
                Err(e) => {
                    error = Some(refuse(format!("a join schema: {e}")));
                    return Ok(TreeNodeRecursion::Stop);
                }
            },
            _ => {
                error = Some(refuse("a node with more than two inputs"));
                return Ok(TreeNodeRecursion::Stop);
            }
        };
        for e in node.expressions() {
            if let Err(x) = check_expr(&e, &schema) {
                error = Some(x);
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    error.map_or(Ok(()), Err)
}

fn check_expr(e: &Expr, schema: &DFSchema) -> Result<(), CheckError> {
    let mut error = None;
    let _ = e.apply(|x| {
        let bad = match x {
            Expr::Cast(Cast { expr, field }) if !matches!(expr.as_ref(), Expr::Literal(..)) => {
                let data_type = field.data_type();
                match expr.get_type(schema) {
                    Ok(from) if total_cast(&from, data_type) => None,
                    Ok(from) => Some(format!(
                        "a conversion from {from} to {data_type} that can fail on hidden values; compare with a literal of the column's type"
                    )),
                    Err(_) => Some("a value of unknown type".to_owned()),
                }
            }
            Expr::BinaryExpr(b) if matches!(b.op, Operator::Divide | Operator::Modulo) => {
                match b.left.get_type(schema) {
                    Ok(t) if t.is_floating() => None,
                    _ => Some("integer division (it fails on zero): divide DOUBLE values".to_owned()),
                }
            }
            Expr::ScalarFunction(f)
                if !TOTAL_FUNCTIONS.contains(&f.func.name().to_ascii_lowercase().as_str()) =>
            {
                Some(format!("the function `{}`", f.func.name()))
            }
            _ => None,
        };
        if let Some(m) = bad {
            error = Some(refuse(m));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_that_can_fail_are_not_total() {
        use DataType::*;
        assert!(total_cast(&Int32, &Int64));
        assert!(total_cast(&Int64, &Float64));
        assert!(total_cast(&Int64, &Utf8));
        assert!(total_cast(&Int64, &Decimal128(38, 0)));
        assert!(!total_cast(&Int64, &Int32));
        assert!(!total_cast(&Utf8, &Int64));
        assert!(!total_cast(&Utf8, &Date32));
        assert!(!total_cast(&Float64, &Int64));
        assert!(!total_cast(&UInt64, &Int64));
        assert!(total_cast(&UInt32, &Int64));
    }
}
