//! Whether a dataset's file holds one row per subject: an exact fact of its snapshot, counted
//! once per session where the domain does not know it yet, and kept by the domain.
//!
//! Owns the count (`COUNT(*) = COUNT(DISTINCT subject)` over the raw file) and the facts a
//! session learned. It must never answer `true` without an exact count: a failed count answers
//! `false`, the safe side.

use std::sync::Arc;

use datafusion::common::TableReference;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};

use crate::QueryError;
use crate::guard::{classify_exec_error, classify_plan_error};
use crate::session::JobSession;

impl JobSession {
    /// What this session counted of its datasets' subject columns: (table, whether each subject
    /// has at most one row). The facts hold for the files' snapshots, so a domain keeps them.
    pub fn learned_uniqueness(&self) -> Vec<(String, bool)> {
        self.learned.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Whether table `name`'s file holds at most one row per subject: as known, or counted now
    /// (once per session) with an exact distinct count over the raw file. A count that fails
    /// (e.g. the memory limit) answers `false`, the safe side: subjects are then counted
    /// distinctly and a noised statistic assumes several rows per subject.
    pub(crate) async fn subject_unique(&self, name: &str) -> bool {
        if let Some(u) = self
            .uniqueness
            .lock()
            .ok()
            .and_then(|m| m.get(name).copied())
        {
            return u;
        }
        let counted = match self.count_uniqueness(name).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(table = name, error = %e, "subject uniqueness not counted");
                None
            }
        };
        if let Ok(mut m) = self.uniqueness.lock() {
            m.insert(name.to_owned(), counted.unwrap_or(false));
        }
        if let (Some(u), Ok(mut l)) = (counted, self.learned.lock()) {
            l.push((name.to_owned(), u));
        }
        counted.unwrap_or(false)
    }

    /// `COUNT(*) = COUNT(DISTINCT subject)` over table `name`'s raw file; `None` if the dataset
    /// has no subject column.
    pub(crate) async fn count_uniqueness(&self, name: &str) -> Result<Option<bool>, QueryError> {
        use datafusion::arrow::array::{Array, Int64Array};
        use datafusion::functions_aggregate::expr_fn::{count, count_distinct};
        let Some(subject) = self
            .auth
            .policy()
            .dataset(name)
            .and_then(|d| d.subject.clone())
        else {
            return Ok(None);
        };
        let table = self
            .raw
            .get(name)
            .ok_or_else(|| QueryError::Internal(format!("no raw table `{name}`")))?;
        let column = Expr::Column(datafusion::common::Column::new(
            Some(TableReference::bare(name)),
            subject,
        ));
        let memory = self.limits.memory_bytes;
        let plan = LogicalPlanBuilder::scan(name, provider_as_source(Arc::clone(table)), None)
            .and_then(|b| {
                b.aggregate(
                    Vec::<Expr>::new(),
                    vec![
                        count(datafusion::prelude::lit(1i64)).alias("n"),
                        count_distinct(column).alias("d"),
                    ],
                )
            })
            .and_then(|b| b.build())
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        let batches = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(classify_plan_error(memory))?
            .collect()
            .await
            .map_err(classify_exec_error(memory))?;
        let counts = batches.iter().find(|b| b.num_rows() == 1).and_then(|b| {
            let get = |i: usize| {
                b.column(i)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .filter(|a| a.is_valid(0))
                    .map(|a| a.value(0))
            };
            Some((get(0)?, get(1)?))
        });
        match counts {
            Some((n, d)) => Ok(Some(n == d)),
            None => Err(QueryError::Internal(
                "the subject count returned no counts".into(),
            )),
        }
    }
}
