//! The difference check's step in a job's session: a restricted query's cells computed to the
//! end, checked by the [`Guard`](super::Guard), and only those shown handed to the user's
//! post-aggregate steps (an in-memory table under the cells' qualified names); what the check
//! decided, and the cells a job was shown with their subjects.
//!
//! Owns the plumbing between [`JobSession::open`] and the guard. It must never hand the user's
//! steps a cell the guard did not show, nor the subject count column.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::TableReference;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};

use crate::guard::{classify_exec_error, classify_plan_error};
use crate::session::JobSession;
use crate::{Dataset, QueryError};

impl JobSession {
    /// The cells of a restricted query's plan (`plan`: the user's aggregate columns, then the
    /// subject count; `hidden`: where its filter adds up the subjects of the groups it
    /// suppresses, read once the plan has run) that the
    /// difference check shows, as the input of the user's post-aggregate steps; and how many it
    /// suppressed. A dataset without subjects (`population` absent) has nothing to check.
    pub(crate) async fn show_cells(
        &self,
        plan: LogicalPlan,
        population: Option<crate::grammar::Population>,
        hidden: &std::sync::atomic::AtomicU64,
    ) -> Result<(LogicalPlan, u64), QueryError> {
        let Some(population) = population else {
            return Ok((without_count(plan)?, 0));
        };
        let schema = Arc::clone(plan.schema());
        let batches = self.collect(plan).await?;
        let hidden = hidden.load(std::sync::atomic::Ordering::Relaxed);
        let prefix = self.population_prefix(&population);
        let checked = self
            .guard
            .lock()
            .await
            .check(
                &self.ctx,
                self.auth.policy().min_group_size,
                hidden,
                population,
                prefix,
                batches,
            )
            .await?;
        Ok((shown_cells(&schema, checked.batches)?, checked.suppressed))
    }

    /// Runs `plan` to the end (a restricted query's cells: one row per group), stopping when the
    /// job ends.
    async fn collect(&self, plan: LogicalPlan) -> Result<Vec<RecordBatch>, QueryError> {
        let memory = self.limits.memory_bytes;
        let df = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(classify_plan_error(memory))?;
        let task = Arc::new(df.task_ctx());
        let physical = df
            .create_physical_plan()
            .await
            .and_then(|p| crate::cancel::cancellable(p, &self.cancel))
            .map_err(classify_plan_error(memory))?;
        datafusion::physical_plan::collect(physical, task)
            .await
            .map_err(classify_exec_error(memory))
    }

    /// The digest of what defines a population's rows: its plan, keys and subjects, and the
    /// contents of each dataset it reads (its snapshot digest, or its path where none is known).
    fn population_prefix(&self, p: &crate::grammar::Population) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("enclave v1 cell population");
        h.update(p.input.display_indent().to_string().as_bytes());
        h.update(&[0]);
        h.update(p.variant.as_bytes());
        // The display prints string literals unescaped (`'a") OR x = Utf8("b'` reads like two
        // literals): the WHERE and keys are named by their `Debug` form too.
        h.update(format!("{:?}\0{:?}", p.predicate, p.keys).as_bytes());
        // Pseudonyms are the application's: a literal pseudonym in the WHERE selects other
        // people under another application's key.
        h.update(&blake3::derive_key(
            "enclave v1 pseudonym key id",
            self.auth.pseudonym_key().bytes(),
        ));
        for e in p.keys.iter().chain(p.subjects.iter().map(|(_, e)| e)) {
            h.update(&[0]);
            h.update(e.to_string().as_bytes());
        }
        for d in &p.datasets {
            h.update(&[1]);
            h.update(d.as_bytes());
            match self.tables.get(d) {
                Some(Dataset {
                    snapshot: Some(s), ..
                }) => h.update(s),
                Some(ds) => h.update(ds.path.as_os_str().as_encoded_bytes()),
                None => h.update(b"?"),
            };
        }
        *h.finalize().as_bytes()
    }

    /// Per checked query (in order), the definitions of the cells the difference check
    /// suppressed (for the job's transcript; re-derivation suppresses the same).
    pub async fn difference_decisions(
        &self,
    ) -> BTreeMap<u64, Vec<enclave_egress::difference::CellDef>> {
        self.guard.lock().await.decisions()
    }

    /// Every cell this session's queries showed, with its subjects (computed now where the
    /// check did not need them): what a development entity is released with a job's outputs.
    /// Computed when a job's first output is released, in the re-derivation of its queries
    /// (the domain's work, not the job's).
    pub async fn shown_cells(&self) -> Result<enclave_egress::difference::Cells, QueryError> {
        self.guard.lock().await.cells(&self.ctx).await
    }
}

/// The cells shown, as the input of the user's post-aggregate steps: an in-memory table with
/// the columns of `schema` but its last (the subject count), each under its qualified name.
fn shown_cells(
    schema: &datafusion::common::DFSchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<LogicalPlan, QueryError> {
    use datafusion::arrow::datatypes::{Field, Schema};
    let internal = |e: &dyn std::fmt::Display| QueryError::Internal(format!("shown cells: {e}"));
    let width = schema.fields().len().saturating_sub(1);
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .take(width)
        .enumerate()
        .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), f.is_nullable()))
        .collect();
    let plain = Arc::new(Schema::new(fields));
    let batches = batches
        .into_iter()
        .map(|b| RecordBatch::try_new(Arc::clone(&plain), b.columns().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| internal(&e))?;
    let table = datafusion::datasource::MemTable::try_new(Arc::clone(&plain), vec![batches])
        .map_err(|e| internal(&e))?;
    let exprs: Vec<Expr> = (0..width)
        .map(|i| {
            let (qualifier, field) = schema.qualified_field(i);
            Expr::Column(datafusion::common::Column::new(
                Some(TableReference::bare(CELLS)),
                format!("c{i}"),
            ))
            .alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    LogicalPlanBuilder::scan(CELLS, provider_as_source(Arc::new(table)), None)
        .and_then(|b| b.project(exprs))
        .and_then(|b| b.build())
        .map_err(|e| internal(&e))
}

/// The table name of the shown cells.
const CELLS: &str = "__enclave_cells";

/// `plan` without its last column (the subject count).
fn without_count(plan: LogicalPlan) -> Result<LogicalPlan, QueryError> {
    let schema = Arc::clone(plan.schema());
    let width = schema.fields().len().saturating_sub(1);
    let exprs: Vec<Expr> = (0..width)
        .map(|i| {
            let (qualifier, field) = schema.qualified_field(i);
            Expr::Column(datafusion::common::Column::new(
                qualifier.cloned(),
                field.name(),
            ))
        })
        .collect();
    LogicalPlanBuilder::from(plan)
        .project(exprs)
        .and_then(|b| b.build())
        .map_err(|e| QueryError::Internal(format!("the cells' columns: {e}")))
}
