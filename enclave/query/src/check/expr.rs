//! Lineage of expressions: how each source column reaches the value of an expression.
//!
//! Owns the per-expression rules of the plan checker (comparisons, CASE, aggregates, windows,
//! subqueries). It must never drop a column it cannot classify: an expression kind it does not
//! know is refused.

use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::{Expr, LogicalPlan};

use super::{
    CheckError, How, Lineage, STATISTICAL, Scope, Walk, compared, is_comparison, map, union,
};

impl Walk<'_> {
    pub(super) fn expr_in(
        &mut self,
        e: &Expr,
        scope: &Scope<'_>,
        outer: &[Scope<'_>],
    ) -> Result<Lineage, CheckError> {
        self.expr(e, scope.schema, &scope.lineage, outer)
    }

    fn column(
        &self,
        c: &Column,
        schema: &DFSchema,
        input: &[Lineage],
        outer: &[Scope<'_>],
    ) -> Result<Lineage, CheckError> {
        if let Ok(i) = schema.index_of_column(c) {
            return Ok(input.get(i).cloned().unwrap_or_default());
        }
        for s in outer.iter().rev() {
            if let Ok(i) = s.schema.index_of_column(c) {
                return Ok(s.lineage.get(i).cloned().unwrap_or_default());
            }
        }
        Err(CheckError::Unsupported(format!(
            "cannot resolve column `{c}`"
        )))
    }

    fn subquery(
        &mut self,
        plan: &LogicalPlan,
        schema: &DFSchema,
        input: &[Lineage],
        outer: &[Scope<'_>],
    ) -> Result<Lineage, CheckError> {
        // The enclosing query's row is in scope for correlated references.
        let here = Scope {
            schema,
            lineage: input.to_vec(),
        };
        let mut scopes: Vec<&Scope<'_>> = outer.iter().collect();
        scopes.push(&here);
        let owned: Vec<Scope<'_>> = scopes
            .into_iter()
            .map(|s| Scope {
                schema: s.schema,
                lineage: s.lineage.clone(),
            })
            .collect();
        Ok(union(self.plan(plan, &owned)?))
    }

    fn exprs(
        &mut self,
        es: &[Expr],
        schema: &DFSchema,
        input: &[Lineage],
        outer: &[Scope<'_>],
    ) -> Result<Lineage, CheckError> {
        let mut l = Lineage::new();
        for e in es {
            l.extend(self.expr(e, schema, input, outer)?);
        }
        Ok(l)
    }

    /// Lineage of the value of `e` evaluated over rows of `schema` whose columns have `input`.
    pub(super) fn expr(
        &mut self,
        e: &Expr,
        schema: &DFSchema,
        input: &[Lineage],
        outer: &[Scope<'_>],
    ) -> Result<Lineage, CheckError> {
        let sub = |x: &Expr, w: &mut Self| w.expr(x, schema, input, outer);
        Ok(match e {
            Expr::Column(c) => self.column(c, schema, input, outer)?,
            Expr::OuterReferenceColumn(_, c) => self.column(c, schema, input, outer)?,
            Expr::Literal(..) | Expr::Placeholder(_) | Expr::ScalarVariable(..) => Lineage::new(),
            Expr::Alias(a) => sub(&a.expr, self)?,
            Expr::BinaryExpr(b) => {
                let l = union([sub(&b.left, self)?, sub(&b.right, self)?]);
                if is_comparison(b.op) { compared(&l) } else { l }
            }
            Expr::Like(l) | Expr::SimilarTo(l) => {
                compared(&union([sub(&l.expr, self)?, sub(&l.pattern, self)?]))
            }
            Expr::IsNull(x)
            | Expr::IsNotNull(x)
            | Expr::IsTrue(x)
            | Expr::IsFalse(x)
            | Expr::IsUnknown(x)
            | Expr::IsNotTrue(x)
            | Expr::IsNotFalse(x)
            | Expr::IsNotUnknown(x) => compared(&sub(x, self)?),
            Expr::Not(x) | Expr::Negative(x) => sub(x, self)?,
            Expr::Between(b) => compared(&union([
                sub(&b.expr, self)?,
                sub(&b.low, self)?,
                sub(&b.high, self)?,
            ])),
            Expr::InList(i) => {
                let mut l = sub(&i.expr, self)?;
                l.extend(self.exprs(&i.list, schema, input, outer)?);
                compared(&l)
            }
            Expr::Cast(c) => sub(&c.expr, self)?,
            Expr::TryCast(c) => sub(&c.expr, self)?,
            Expr::Case(c) => {
                let mut l = Lineage::new();
                if let Some(base) = &c.expr {
                    l.extend(compared(&sub(base, self)?));
                }
                for (when, then) in &c.when_then_expr {
                    l.extend(compared(&sub(when, self)?));
                    l.extend(sub(then, self)?);
                }
                if let Some(x) = &c.else_expr {
                    l.extend(sub(x, self)?);
                }
                l
            }
            Expr::ScalarFunction(f) => self.exprs(&f.args, schema, input, outer)?,
            Expr::AggregateFunction(a) => {
                let args = self.exprs(&a.params.args, schema, input, outer)?;
                let name = a.func.name().to_ascii_lowercase();
                let mut l = if STATISTICAL.contains(&name.as_str()) {
                    map(&args, |h| if h == How::Raw { How::Agg } else { h })
                } else {
                    args
                };
                if let Some(f) = &a.params.filter {
                    l.extend(compared(&sub(f, self)?));
                }
                for s in &a.params.order_by {
                    l.extend(compared(&sub(&s.expr, self)?));
                }
                l
            }
            Expr::WindowFunction(w) => {
                // Window results are per row: arguments stay row-level.
                let mut l = self.exprs(&w.params.args, schema, input, outer)?;
                for p in &w.params.partition_by {
                    l.extend(compared(&sub(p, self)?));
                }
                for s in &w.params.order_by {
                    l.extend(compared(&sub(&s.expr, self)?));
                }
                if let Some(f) = &w.params.filter {
                    l.extend(compared(&sub(f, self)?));
                }
                l
            }
            Expr::ScalarSubquery(s) => self.subquery(&s.subquery, schema, input, outer)?,
            Expr::Exists(x) => {
                compared(&self.subquery(&x.subquery.subquery, schema, input, outer)?)
            }
            Expr::InSubquery(x) => {
                let mut l = sub(&x.expr, self)?;
                l.extend(self.subquery(&x.subquery.subquery, schema, input, outer)?);
                compared(&l)
            }
            Expr::SetComparison(x) => {
                let mut l = sub(&x.expr, self)?;
                l.extend(self.subquery(&x.subquery.subquery, schema, input, outer)?);
                compared(&l)
            }
            Expr::Unnest(u) => sub(&u.expr, self)?,
            other => {
                // Wildcards are expanded and grouping sets handled by the aggregate before this;
                // anything else is a kind this checker does not know: refused, never guessed.
                return Err(CheckError::Unsupported(format!(
                    "expression kind `{}`",
                    other.variant_name()
                )));
            }
        })
    }
}
