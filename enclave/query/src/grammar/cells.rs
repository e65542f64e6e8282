//! The cells of a host-built plan: the filter that shows a group only if every subject count
//! reaches the threshold and no dominance code fails, and the dominance aggregate of a
//! restricted sum's or mean's cell.
//!
//! Owns how those two host-only functions enter a plan, and which aggregates get a code. It must
//! never let a group pass that a count or a code refuses.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::logical_expr::{Expr, ExprSchemable, Operator};

use super::plan::BuildContext;
use super::{Agg, Restricted, refuse};
use crate::check::CheckError;
use crate::disclosure::Dominance;
use crate::functions::Threshold;

impl BuildContext<'_> {
    /// The filter of a group's cells: every subject count reaches k, no dominance code fails.
    /// `subjects`: the positions among `counts` of the group's subject counts (one per class),
    /// whose least, over the groups suppressed, adds up in `hidden_subjects`.
    pub(super) fn cell_filter(
        &self,
        counts: Vec<Expr>,
        codes: Vec<Expr>,
        subjects: Vec<usize>,
    ) -> Expr {
        let n = counts.len();
        let mut args = counts;
        args.extend(codes);
        Arc::new(Threshold::cells(
            self.min_group_size,
            n,
            Arc::clone(&self.suppressed),
            [
                Arc::clone(&self.dominated[0]),
                Arc::clone(&self.dominated[1]),
            ],
            Arc::clone(&self.hidden_subjects),
            subjects,
        ))
        .call(args)
    }

    /// The dominance code of a cell whose contributions are `x` (64-bit integers and floats as
    /// they are, anything else `TRY_CAST` to a float).
    pub(super) fn dominance(&self, x: Expr, schema: &DFSchema) -> Expr {
        let x = match x.get_type(schema) {
            Ok(DataType::Int64 | DataType::Float64) => x,
            _ => datafusion::logical_expr::try_cast(x, DataType::Float64),
        };
        Arc::new(Dominance::udaf(&self.policy.disclosure)).call(vec![x])
    }
}

/// The dominance codes of one plan's cells: one hidden aggregate per distinct argument (`SUM(x)`
/// and `AVG(x)` share theirs), named `__enclave_dom<n>`.
#[derive(Default)]
pub(super) struct Codes {
    args: Vec<Expr>,
}

impl Codes {
    /// The code of the cells of `x`: a new aggregate pushed onto `aggs`, or the one `x` already
    /// has.
    pub(super) fn of(
        &mut self,
        cx: &BuildContext<'_>,
        x: Expr,
        schema: &DFSchema,
        aggs: &mut Vec<Expr>,
    ) {
        if !self.args.contains(&x) {
            aggs.push(
                cx.dominance(x.clone(), schema)
                    .alias(Codes::name(self.args.len())),
            );
            self.args.push(x);
        }
    }

    fn name(n: usize) -> String {
        format!("__enclave_dom{n}")
    }

    /// The code columns, for the cell filter.
    pub(super) fn columns(&self) -> Vec<Expr> {
        (0..self.args.len())
            .map(|n| Expr::Column(datafusion::common::Column::from_name(Codes::name(n))))
            .collect()
    }
}

/// Whether aggregate `a` of `q` reads a column the job may not see row by row.
pub(super) fn restricted(q: &Restricted, cx: &BuildContext<'_>, a: &Agg) -> bool {
    a.columns.iter().any(|c| {
        !cx.policy
            .row_level(&q.instances[c.instance].dataset, &c.column)
    })
}

/// Refuses `+` and `-` inside the arguments of a restricted aggregate whose cells are checked
/// for dominance: shifted by a constant or another column, every contribution looks alike, and
/// the shift is undone after the aggregate (`SUM(x + c) - c·COUNT(x)`; a variance ignores it).
/// Scaling (`*`) and negation change no share, so they stay.
pub(super) fn unshifted(a: &Agg) -> Result<(), CheckError> {
    fn shifts(e: &Expr) -> bool {
        match e {
            Expr::BinaryExpr(b) => {
                matches!(b.op, Operator::Plus | Operator::Minus)
                    || shifts(&b.left)
                    || shifts(&b.right)
            }
            Expr::Negative(x) => shifts(x),
            Expr::Cast(c) => shifts(&c.expr),
            Expr::TryCast(c) => shifts(&c.expr),
            _ => false,
        }
    }
    if a.args.iter().any(shifts) {
        return Err(refuse(format!(
            "`+` or `-` inside `{}` over a restricted column (a shifted argument would hide a \
             dominant contributor from the disclosure rules; scale with `*` instead)",
            a.name
        )));
    }
    Ok(())
}
