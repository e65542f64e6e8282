//! The query host: runs a job's SQL over its granted datasets with DataFusion.
//!
//! Owns the per-job DataFusion session and the guard in front of it. Untrusted SQL reaches only
//! plain queries over the tables granted to the job: no DDL, DML, COPY, SET/PREPARE or EXPLAIN, no
//! table factories, no table functions, no URL tables, no object store beyond the granted files,
//! a bounded memory pool and no spilling to disk. It must never hand a guest a way to the
//! filesystem or the runtime configuration, and its errors must never carry data values.

mod guard;
mod store;
mod stream;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, TableReference};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::object_store::local::LocalFileSystem;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};

pub use guard::classify_exec_error;
pub use store::RestrictedStores;

use guard::{classify_plan_error, refuse_non_query, refuse_non_query_plan, root_message};
use stream::in_partition_order;

use std::sync::atomic::AtomicU64;

use datafusion::catalog::TableProvider;
use datafusion::datasource::{ViewTable, provider_as_source};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};

use crate::error::{ErrorKind, JobError, Limit};
use crate::policy::functions::Pseudonym;
use crate::policy::{DatasetRules, Policy, check, threshold};

/// A dataset granted to a job: the table name the job's SQL uses and the Parquet file behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Table name (lower-case identifier).
    pub name: String,
    /// Path of the Parquet file.
    pub path: PathBuf,
}

impl Dataset {
    /// Checks the name is a plain identifier and the file is a regular file.
    pub fn new(name: &str, path: impl Into<PathBuf>) -> Result<Self, QueryError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(QueryError::Input(format!(
                "dataset name `{}` is not a lower-case identifier ([a-z_][a-z0-9_]*, at most 64 bytes)",
                name.escape_debug()
            )));
        }
        let path = path.into();
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Dataset {
                name: name.to_owned(),
                path,
            }),
            Ok(_) => Err(QueryError::Input(format!(
                "dataset `{name}`: {} is not a regular file",
                path.display()
            ))),
            Err(e) => Err(QueryError::Input(format!(
                "dataset `{name}`: cannot read {}: {e}",
                path.display()
            ))),
        }
    }
}

/// Why a query was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The statement kind, a table or a construct is not allowed.
    #[error("{0}")]
    Refused(String),
    /// The query would use a column beyond its rule, or the policy cannot be enforced on it.
    #[error("{0}")]
    Policy(String),
    /// The SQL could not be parsed or planned.
    #[error("{0}")]
    Sql(String),
    /// The SQL text is longer than allowed.
    #[error("SQL text is {len} bytes; the limit is {limit} bytes")]
    TooLong { len: u64, limit: u64 },
    /// The query engine's memory pool is exhausted.
    #[error("query memory limit reached: the query needs more than the {limit} bytes allowed")]
    Memory { limit: u64 },
    /// Execution failed; the message is sanitized (no data values).
    #[error("{0}")]
    Execution(String),
    /// A dataset could not be opened.
    #[error("{0}")]
    Input(String),
    /// A host bug.
    #[error("internal query error: {0}")]
    Internal(String),
}

impl QueryError {
    /// The job-level classification of this error.
    pub fn to_job_error(&self) -> JobError {
        match self {
            QueryError::Refused(m) => JobError::new(ErrorKind::SqlRefused, m.clone()),
            QueryError::Policy(m) => JobError::new(ErrorKind::PolicyViolation, m.clone()),
            QueryError::Sql(m) => JobError::new(ErrorKind::SqlError, m.clone()),
            QueryError::TooLong { len, limit } => JobError::limit(Limit::SqlBytes, *len, *limit),
            QueryError::Memory { .. } => JobError {
                kind: ErrorKind::LimitExceeded,
                limit: Some(Limit::QueryMemory),
                message: self.to_string(),
            },
            QueryError::Execution(m) => JobError::new(ErrorKind::QueryFailed, m.clone()),
            QueryError::Input(m) => JobError::new(ErrorKind::InvalidInput, m.clone()),
            QueryError::Internal(_) => JobError::internal(self.to_string()),
        }
    }
}

/// Settings of a job's query session.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Memory pool size in bytes.
    pub memory_bytes: u64,
    /// Longest SQL accepted, in bytes.
    pub sql_bytes: u64,
    /// Parallelism of execution (DataFusion target partitions).
    pub target_partitions: usize,
    /// Rows per record batch.
    pub batch_size: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        let l = crate::limits::Limits::default();
        SessionLimits {
            memory_bytes: l.query_memory_bytes,
            sql_bytes: l.sql_bytes,
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            batch_size: 8192,
        }
    }
}

/// The column rules a session enforces, and the key of the application's pseudonyms.
#[derive(Clone)]
pub struct Governance {
    /// The domain policy.
    pub policy: Arc<Policy>,
    /// Key of `enclave_pseudonym` for this application.
    pub pseudonym_key: [u8; 32],
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Governance")
            .field("datasets", &self.policy.datasets.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A job's query session: only the granted tables exist in it.
pub struct JobSession {
    ctx: SessionContext,
    tables: BTreeMap<String, PathBuf>,
    limits: SessionLimits,
    policy: Option<Arc<Policy>>,
}

/// A query that was started: its batches and the number of groups the threshold suppressed.
pub struct Started {
    /// Result batches, in partition order.
    pub stream: SendableRecordBatchStream,
    /// Groups suppressed so far (final once the stream has ended).
    pub suppressed: Arc<AtomicU64>,
    /// blake3 of the executed logical plan's text (after policy rewrites).
    pub plan_blake3: [u8; 32],
}

/// Builds the locked-down session state: functions yes; table factories, table functions,
/// file formats, information schema, URL tables, default object stores and disk spill no.
fn locked_down_state(limits: &SessionLimits) -> Result<SessionState, QueryError> {
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(RestrictedStores::default()))
        .with_memory_limit(
            usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
            1.0,
        )
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .map_err(|e| QueryError::Internal(e.to_string()))?;
    let config = SessionConfig::new()
        .with_target_partitions(limits.target_partitions.max(1))
        .with_batch_size(limits.batch_size.max(1))
        .with_information_schema(false);
    use datafusion::execution::SessionStateDefaults as D;
    Ok(SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_expr_planners(D::default_expr_planners())
        .with_scalar_functions(D::default_scalar_functions())
        .with_aggregate_functions(D::default_aggregate_functions())
        .with_window_functions(D::default_window_functions())
        .build())
}

impl JobSession {
    /// A session in which exactly `datasets` exist as tables; with `governance`, every query is
    /// checked against the policy, pseudonymized columns are replaced by their pseudonyms at the
    /// source, and restricted aggregates get the group threshold.
    pub async fn new(
        datasets: &[Dataset],
        limits: SessionLimits,
        governance: Option<Governance>,
    ) -> Result<Self, QueryError> {
        let state = locked_down_state(&limits)?;
        let ctx = SessionContext::new_with_state(state);
        let mut tables = BTreeMap::new();
        for (i, ds) in datasets.iter().enumerate() {
            if tables.contains_key(&ds.name) {
                return Err(QueryError::Input(format!(
                    "dataset `{}` is given twice",
                    ds.name
                )));
            }
            let table = open_parquet(&ctx, i, ds).await?;
            let table = match &governance {
                Some(g) => {
                    let rules = g.policy.dataset(&ds.name).ok_or_else(|| {
                        QueryError::Input(format!(
                            "dataset `{}` is not classified by the policy",
                            ds.name
                        ))
                    })?;
                    pseudonymized(&ds.name, table, rules, &g.pseudonym_key)?
                }
                None => table,
            };
            ctx.register_table(ds.name.as_str(), table)
                .map_err(|e| QueryError::Internal(e.to_string()))?;
            tables.insert(ds.name.clone(), ds.path.clone());
        }
        Ok(JobSession {
            ctx,
            tables,
            limits,
            policy: governance.map(|g| g.policy),
        })
    }

    /// Names of the tables in this session.
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }

    /// Checks `sql` and starts it.
    pub async fn open(&self, sql: &str) -> Result<Started, QueryError> {
        let plan = self.plan(sql).await?;
        let (plan, suppressed) = match &self.policy {
            Some(p) => {
                threshold::enforce(p, plan).map_err(|e| QueryError::Policy(e.to_string()))?
            }
            None => (plan, Arc::new(AtomicU64::new(0))),
        };
        let plan_blake3 = *blake3::hash(plan.display_indent().to_string().as_bytes()).as_bytes();
        let df = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(classify_plan_error)?;
        let schema = Arc::clone(df.schema().inner());
        let partitions = df
            .execute_stream_partitioned()
            .await
            .map_err(classify_exec_error(self.limits.memory_bytes))?;
        Ok(Started {
            stream: in_partition_order(schema, partitions),
            suppressed,
            plan_blake3,
        })
    }

    /// Parses, guards and plans `sql` without running it.
    pub async fn plan(&self, sql: &str) -> Result<LogicalPlan, QueryError> {
        let len = sql.len() as u64;
        if len > self.limits.sql_bytes {
            return Err(QueryError::TooLong {
                len,
                limit: self.limits.sql_bytes,
            });
        }
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state
            .sql_to_statement(sql, &dialect)
            .map_err(classify_plan_error)?;
        refuse_non_query(&statement)?;
        let refs = state
            .resolve_table_references(&statement)
            .map_err(classify_plan_error)?;
        for r in &refs {
            self.check_table(r)?;
        }
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(classify_plan_error)?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        options
            .verify_plan(&plan)
            .map_err(|e| QueryError::Refused(root_message(&e)))?;
        refuse_non_query_plan(&plan)?;
        if let Some(p) = &self.policy {
            check::check(p, &plan).map_err(|e| QueryError::Policy(e.to_string()))?;
        }
        Ok(plan)
    }

    /// The output schema `sql` would have (checked like [`JobSession::open`]).
    pub async fn schema(&self, sql: &str) -> Result<SchemaRef, QueryError> {
        let plan = self.plan(sql).await?;
        Ok(Arc::clone(plan.schema().inner()))
    }

    fn check_table(&self, r: &TableReference) -> Result<(), QueryError> {
        let table = r.table();
        let qualified_ok = match r {
            TableReference::Bare { .. } => true,
            TableReference::Partial { schema, .. } => schema.as_ref() == "public",
            TableReference::Full {
                catalog, schema, ..
            } => catalog.as_ref() == "datafusion" && schema.as_ref() == "public",
        };
        if qualified_ok && self.tables.contains_key(table) {
            return Ok(());
        }
        if table.contains(['/', '\\', ':']) || table.contains('.') {
            return Err(QueryError::Refused(format!(
                "`{}` looks like a file path or URL; jobs may only query their granted tables ({})",
                table.escape_debug(),
                self.granted_list()
            )));
        }
        Err(QueryError::Refused(format!(
            "table `{}` is not granted to this job (granted: {})",
            r.to_string().escape_debug(),
            self.granted_list()
        )))
    }

    fn granted_list(&self) -> String {
        if self.tables.is_empty() {
            "none".to_owned()
        } else {
            self.tables.keys().cloned().collect::<Vec<_>>().join(", ")
        }
    }
}

/// Replaces pseudonymized columns of `table` by their keyed pseudonyms, as a view.
fn pseudonymized(
    name: &str,
    table: Arc<dyn TableProvider>,
    rules: &DatasetRules,
    key: &[u8; 32],
) -> Result<Arc<dyn TableProvider>, QueryError> {
    let schema = table.schema();
    if !schema.fields().iter().any(|f| {
        rules
            .columns
            .get(f.name())
            .is_some_and(|r| r.is_pseudonymized())
    }) {
        return Ok(table);
    }
    let udf = Arc::new(Pseudonym::udf(key));
    let exprs: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|f| {
            let c = datafusion::logical_expr::col(datafusion::common::Column::new(
                Some(name),
                f.name(),
            ));
            if rules
                .columns
                .get(f.name())
                .is_some_and(|r| r.is_pseudonymized())
            {
                udf.call(vec![c]).alias(f.name())
            } else {
                c
            }
        })
        .collect();
    let internal = |e: DataFusionError| QueryError::Internal(e.to_string());
    let plan = LogicalPlanBuilder::scan(name, provider_as_source(table), None)
        .and_then(|b| b.project(exprs))
        .and_then(|b| b.build())
        .map_err(internal)?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

async fn open_parquet(
    ctx: &SessionContext,
    index: usize,
    ds: &Dataset,
) -> Result<Arc<dyn TableProvider>, QueryError> {
    let bad = |e: &dyn std::fmt::Display| {
        QueryError::Input(format!(
            "dataset `{}` cannot be opened as Parquet: {e}",
            ds.name
        ))
    };
    let canonical = std::fs::canonicalize(&ds.path).map_err(|e| bad(&e))?;
    let dir = canonical
        .parent()
        .ok_or_else(|| bad(&"no parent directory"))?;
    let file = canonical
        .file_name()
        .and_then(|f| f.to_str())
        .ok_or_else(|| bad(&"file name is not UTF-8"))?;
    // One store per dataset, rooted at the file's directory, under a scheme only this session knows.
    let base = format!("enclave-data://d{index}/");
    let base_url = url::Url::parse(&base).map_err(|e| QueryError::Internal(e.to_string()))?;
    let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| bad(&e))?;
    ctx.runtime_env()
        .register_object_store(&base_url, Arc::new(store));
    let encoded: String = url::form_urlencoded::byte_serialize(file.as_bytes()).collect();
    let table_url = ListingTableUrl::parse(format!("{base}{encoded}")).map_err(|e| bad(&e))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension("");
    let schema = options
        .infer_schema(&ctx.state(), &table_url)
        .await
        .map_err(|e| bad(&root_message(&e)))?;
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(|e| bad(&e))?;
    Ok(Arc::new(table))
}

#[cfg(test)]
mod tests;
