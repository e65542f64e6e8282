//! A job's DataFusion session: only the granted datasets exist in it.
//!
//! Owns building the locked-down session (functions yes; table factories, table functions, file
//! formats, information schema, URL tables, default object stores and disk spill no; a bounded
//! memory pool) for an [`Authorization`], and the path of one statement through it: length and
//! complexity bounds, parse, refuse non-queries, resolve tables against the grant, plan, check the
//! plan against the policy, apply the group threshold, execute. It must never register a table
//! that was not granted nor run a plan the checker did not pass.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use enclave_policy::Authorization;

use crate::functions::Pseudonym;
use crate::grammar::{self, BuildContext, DpSpend};
use crate::guard::{
    check_regex_literals, classify_exec_error, classify_plan_error, refuse_non_query,
    refuse_non_query_plan, root_message, sql_complexity,
};
use crate::stream::in_partition_order;
use crate::tables::{open_parquet, pseudonymized};
use crate::{Dataset, QueryError, registry};

/// Settings of a job's query session.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Memory pool size in bytes: the engine's operators and every amplifying function draw on it.
    pub memory_bytes: u64,
    /// Longest SQL accepted, in bytes.
    pub sql_bytes: u64,
    /// Largest expression and plan size accepted (see [`sql_complexity`]).
    pub sql_complexity: u64,
    /// Parallelism of execution (DataFusion target partitions).
    pub target_partitions: usize,
    /// Rows per record batch.
    pub batch_size: usize,
    /// The job's logical time (ms since the Unix epoch): what `now()` and `current_date` return.
    pub clock_ms: i64,
}

impl Default for SessionLimits {
    fn default() -> Self {
        let l = enclave_core::Limits::default();
        SessionLimits {
            memory_bytes: l.query_memory_bytes,
            sql_bytes: l.sql_bytes,
            sql_complexity: l.sql_complexity,
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            batch_size: 8192,
            clock_ms: 0,
        }
    }
}

/// What a session needs for differential privacy and subject accounting.
pub struct Privacy {
    /// The job's noise key: only the domain and the job's sealed transcript hold it.
    pub noise_key: [u8; 32],
    /// Where noised queries are charged.
    pub ledger: Arc<dyn enclave_dp::Ledger>,
    /// What the difference check compares a query's cells with.
    pub differences: crate::difference::Differences,
}

impl Privacy {
    /// A fresh random noise key and an in-memory ledger with the policy's budget (a session
    /// whose spending nobody keeps: tests, local runs on a developer's own files).
    pub fn ephemeral(policy: &enclave_policy::Policy) -> Result<Privacy, QueryError> {
        let mut noise_key = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut noise_key)
            .map_err(|_| QueryError::Internal("no system randomness".into()))?;
        Ok(Privacy {
            noise_key,
            ledger: Arc::new(enclave_dp::MemoryLedger::new(policy.dp.budget)),
            differences: crate::difference::Differences::local()?,
        })
    }
}

/// What a noised query spent, for its report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DpReport {
    /// The mechanism.
    pub mechanism: &'static str,
    /// ε of the query.
    pub epsilon: f64,
    /// δ of the query.
    pub delta: f64,
    /// Statistics noised.
    pub statistics: usize,
    /// Per dataset charged: spent so far (this query included) and what is left.
    pub datasets: Vec<(String, enclave_dp::Balance)>,
    /// Per noised statistic: the noise scale and the half-width holding the noise with
    /// probability 95 %.
    pub noise: Vec<(String, f64, f64)>,
}

/// A job's query session.
pub struct JobSession {
    pub(crate) ctx: SessionContext,
    pub(crate) tables: BTreeMap<String, Dataset>,
    /// The datasets' files, without the pseudonym views: only plans the host builds scan them.
    pub(crate) raw: BTreeMap<String, Arc<dyn TableProvider>>,
    privacy: Privacy,
    /// Queries opened so far (the index is part of every noise draw's context).
    opened: std::sync::atomic::AtomicU64,
    /// The schema of each table's file (as inferred or as given).
    schemas: BTreeMap<String, datafusion::arrow::datatypes::SchemaRef>,
    pub(crate) limits: SessionLimits,
    pub(crate) auth: Authorization,
    /// Whether each dataset's file holds at most one row per subject, where known.
    pub(crate) uniqueness: std::sync::Mutex<BTreeMap<String, bool>>,
    /// The facts of `uniqueness` this session counted (for the domain to keep with the
    /// snapshots).
    pub(crate) learned: std::sync::Mutex<Vec<(String, bool)>>,
    /// Set when the job ends: its queries stop at the next batch boundary.
    pub(crate) cancel: crate::cancel::Cancel,
    /// The difference check: the cells this job was shown, and what it suppressed.
    pub(crate) guard: tokio::sync::Mutex<crate::difference::Guard>,
}

/// A query that was started.
pub struct Started {
    /// Result batches, in partition order.
    pub stream: SendableRecordBatchStream,
    /// Groups suppressed so far (final once the stream has ended).
    pub suppressed: Arc<AtomicU64>,
    /// Groups suppressed for the dominance of a cell so far, and groups kept whose dominance is
    /// undefined (final once the stream has ended).
    pub dominated: [Arc<AtomicU64>; 2],
    /// Whether the cells of some SUM or AVG were checked for dominance.
    pub dominance: bool,
    /// Cells the difference check suppressed (final when started: the check runs first).
    pub differenced: u64,
    /// blake3 of the executed logical plan's text (after policy rewrites).
    pub plan_blake3: [u8; 32],
    /// What the query spent, if it was noised.
    pub dp: Option<DpReport>,
    /// Whether it read columns that only a row-level grant opened (its results are derived).
    pub row_level_grant: bool,
    /// Whether the host built it from the aggregation grammar (threshold- and DP-checked): its
    /// results are aggregates the host certifies.
    pub aggregate: bool,
    /// Whether its result rows are groups (an aggregation at the top of the plan), not rows of
    /// data: always for the grammar's queries, and for queries over open columns only that
    /// group (one reading pseudonyms could group by a subject).
    pub grouped: bool,
}

/// Whether the rows of `plan`'s result are groups of an aggregation: below the projections,
/// sorts, limits, aliases and HAVING filters on top of it sits an aggregate.
fn grouped(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Aggregate(_) => true,
        LogicalPlan::Projection(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Filter(_) => plan.inputs().first().is_some_and(|p| grouped(p)),
        _ => false,
    }
}

/// The locked-down session state.
fn locked_down_state(limits: &SessionLimits) -> Result<SessionState, QueryError> {
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(crate::RestrictedStores::default()))
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
    let pool: Arc<dyn MemoryPool> = Arc::clone(&runtime.memory_pool);
    use datafusion::execution::SessionStateDefaults as D;
    Ok(SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_expr_planners(D::default_expr_planners())
        .with_scalar_functions(registry::scalar_functions(limits.clock_ms, pool))
        .with_aggregate_functions(D::default_aggregate_functions())
        .with_window_functions(D::default_window_functions())
        .build())
}

impl JobSession {
    /// A session in which exactly the `datasets` of `auth` exist as tables; every query is
    /// checked against its policy, pseudonymized columns are replaced by their pseudonyms at the
    /// source, and restricted aggregates get the group threshold.
    pub async fn new(
        datasets: &[Dataset],
        limits: SessionLimits,
        auth: Authorization,
    ) -> Result<Self, QueryError> {
        let privacy = Privacy::ephemeral(auth.policy())?;
        Self::with_privacy(datasets, limits, auth, privacy).await
    }

    /// [`JobSession::new`] with the job's noise key and ledger.
    pub async fn with_privacy(
        datasets: &[Dataset],
        limits: SessionLimits,
        auth: Authorization,
        mut privacy: Privacy,
    ) -> Result<Self, QueryError> {
        let state = locked_down_state(&limits)?;
        let ctx = SessionContext::new_with_state(state);
        let mut tables = BTreeMap::new();
        let mut schemas = BTreeMap::new();
        let mut raw = BTreeMap::new();
        let mut uniqueness = BTreeMap::new();
        for (i, ds) in datasets.iter().enumerate() {
            let name = ds.name.as_str();
            if tables.contains_key(name) {
                return Err(QueryError::Input(format!(
                    "dataset `{name}` is given twice"
                )));
            }
            if !auth.grants(name) {
                return Err(QueryError::Input(format!(
                    "dataset `{name}` is not granted to this job"
                )));
            }
            let rules = auth.policy().dataset(name).ok_or_else(|| {
                QueryError::Input(format!("dataset `{name}` is not classified by the policy"))
            })?;
            let table = open_parquet(&ctx, i, ds).await?;
            schemas.insert(name.to_owned(), table.schema());
            raw.insert(name.to_owned(), Arc::clone(&table));
            let table = pseudonymized(name, table, rules, &auth)?;
            ctx.register_table(name, table)
                .map_err(|e| QueryError::Internal(e.to_string()))?;
            if let Some(u) = ds.subject_unique {
                uniqueness.insert(name.to_owned(), u);
            }
            tables.insert(name.to_owned(), ds.clone());
        }
        let cancel = crate::cancel::Cancel::default();
        let guard = tokio::sync::Mutex::new(crate::difference::Guard::new(
            std::mem::replace(
                &mut privacy.differences,
                crate::difference::Differences::Replay {
                    decisions: Default::default(),
                    key: enclave_egress::difference::SubjectKey::new([0; 32]),
                },
            ),
            cancel.clone(),
            limits.memory_bytes,
        ));
        Ok(JobSession {
            guard,
            ctx,
            tables,
            raw,
            privacy,
            opened: std::sync::atomic::AtomicU64::new(0),
            schemas,
            limits,
            auth,
            uniqueness: std::sync::Mutex::new(uniqueness),
            learned: std::sync::Mutex::new(Vec::new()),
            cancel,
        })
    }

    /// The schema of table `name`'s file, as the session uses it (to keep with its snapshot).
    pub fn file_schema(&self, name: &str) -> Option<&datafusion::arrow::datatypes::SchemaRef> {
        self.schemas.get(name)
    }

    /// Names of the tables in this session.
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }

    /// The session's limits.
    pub fn limits(&self) -> &SessionLimits {
        &self.limits
    }

    /// Ends the job's queries: each stops at its next batch boundary, and no new one starts.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Checks `sql` and starts it. A plan that reads only row-level columns runs as planned;
    /// any other runs only as the host builds it from the aggregation grammar (`grammar`).
    pub async fn open(&self, sql: &str) -> Result<Started, QueryError> {
        let index = self
            .opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let plan = self.plan(sql).await?;
        let policy = self.auth.policy();
        let state = self.ctx.state();
        let optimize = |p: &LogicalPlan| {
            state
                .optimize(p)
                .map_err(classify_plan_error(self.limits.memory_bytes))
        };
        let suppressed = Arc::new(AtomicU64::new(0));
        let dominated = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
        let hidden_subjects = Arc::new(AtomicU64::new(0));
        let optimized = optimize(&plan)?;
        let (plan, spend, row_level_grant, aggregate, dominance, cells) =
            if grammar::reads_only_row_level(policy, &optimized) {
                let granted = grammar::reads_granted_rows(policy, &optimized);
                (optimized, None, granted, false, false, None)
            } else {
                let policy_error = |e: crate::check::CheckError| QueryError::Policy(e.to_string());
                let restricted = grammar::parse(policy, &plan).map_err(|e| {
                    // A query that reads a restricted column without aggregating it: name the column.
                    match (&e, grammar::first_restricted(policy, &optimized)) {
                        (crate::check::CheckError::Unsupported(m), Some((dataset, column)))
                            if m.contains(grammar::ROW_BY_ROW) =>
                        {
                            let rule = policy
                                .dataset(&dataset)
                                .and_then(|d| d.columns.get(&column));
                            QueryError::Policy(
                                crate::check::CheckError::Violation {
                                    dataset,
                                    column,
                                    level: rule.map_or("unclassified".into(), |r| r.level.clone()),
                                    used_as: enclave_policy::Use::Plaintext,
                                    context: "row by row (only inside aggregates)".into(),
                                    allowed: rule.map_or("no use".into(), |r| r.allowed_text()),
                                }
                                .to_string(),
                            )
                        }
                        _ => policy_error(e),
                    }
                })?;
                // Only a query over one dataset instance may count its subjects' rows directly.
                let mut unique = BTreeMap::new();
                if let [only] = restricted.instances.as_slice() {
                    let u = self.subject_unique(&only.dataset).await;
                    unique.insert(only.dataset.clone(), u);
                }
                let unique_of = |d: &str| unique.get(d).copied().unwrap_or(false);
                let cx = BuildContext {
                    policy,
                    raw: &self.raw,
                    pseudonym: Arc::new(Pseudonym::udf(self.auth.pseudonym_key())),
                    min_group_size: policy.min_group_size,
                    suppressed: Arc::clone(&suppressed),
                    dominated: [Arc::clone(&dominated[0]), Arc::clone(&dominated[1])],
                    hidden_subjects: Arc::clone(&hidden_subjects),
                    noise_key: self.privacy.noise_key,
                    query_index: index,
                    subject_unique: &unique_of,
                };
                let built = grammar::build(&restricted, &cx).map_err(policy_error)?;
                let optimized = optimize(&built.plan)?;
                grammar::check_total(&optimized).map_err(policy_error)?;
                (
                    optimized,
                    built.dp,
                    false,
                    true,
                    built.dominance,
                    Some((built.post, built.population)),
                )
            };
        let dp = match spend {
            None => None,
            Some(s) => Some(self.charge(s)?),
        };
        let mut text = plan.display_indent().to_string();
        // A restricted query's cells are computed, checked against the cells compared with, and
        // only those shown go on to the user's post-aggregate steps.
        let (plan, differenced) = match cells {
            None => (plan, 0),
            Some((post, population)) => {
                let policy_error = |e: crate::check::CheckError| QueryError::Policy(e.to_string());
                let (shown, differenced) =
                    self.show_cells(plan, population, &hidden_subjects).await?;
                let finished = optimize(&grammar::apply_post(&post, shown).map_err(policy_error)?)?;
                grammar::check_total(&finished).map_err(policy_error)?;
                text.push('\n');
                text.push_str(&finished.display_indent().to_string());
                (finished, differenced)
            }
        };
        let plan_blake3 = *blake3::hash(text.as_bytes()).as_bytes();
        // A query over open columns only that groups shows groups; one that reads pseudonyms or
        // granted columns may group by a subject (groups of one): its rows count as data.
        let grouped = aggregate || (!row_level_grant && grouped(&plan));
        let df = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(classify_plan_error(self.limits.memory_bytes))?;
        let schema = Arc::clone(df.schema().inner());
        let task = Arc::new(df.task_ctx());
        let physical = df
            .create_physical_plan()
            .await
            .and_then(|p| crate::cancel::cancellable(p, &self.cancel))
            .map_err(classify_plan_error(self.limits.memory_bytes))?;
        let partitions = datafusion::physical_plan::execute_stream_partitioned(physical, task)
            .map_err(classify_exec_error(self.limits.memory_bytes))?;
        Ok(Started {
            stream: in_partition_order(schema, partitions, self.limits.target_partitions),
            suppressed,
            dominated,
            dominance,
            differenced,
            plan_blake3,
            dp,
            row_level_grant,
            aggregate,
            grouped,
        })
    }

    /// Charges a noised query to the ledger before it runs.
    fn charge(&self, s: DpSpend) -> Result<DpReport, QueryError> {
        let balances = self
            .privacy
            .ledger
            .charge(&s.datasets, s.cost)
            .map_err(|e| match e {
                enclave_dp::LedgerError::OverBudget { .. } => QueryError::Budget(e.to_string()),
                enclave_dp::LedgerError::Storage(_) => QueryError::Internal(e.to_string()),
            })?;
        Ok(DpReport {
            mechanism: s.mechanism.name(),
            epsilon: s.cost.epsilon,
            delta: s.cost.delta,
            statistics: s.statistics,
            datasets: balances,
            noise: s
                .noise
                .iter()
                .map(|(n, x)| (n.clone(), x.scale, x.error_bound(0.05)))
                .collect(),
        })
    }

    /// Parses, guards and plans `sql` without running it (the policy applies in
    /// [`JobSession::open`]).
    pub async fn plan(&self, sql: &str) -> Result<LogicalPlan, QueryError> {
        let len = sql.len() as u64;
        if len > self.limits.sql_bytes {
            return Err(QueryError::TooLong {
                len,
                limit: self.limits.sql_bytes,
            });
        }
        // Bounded before the parser builds a tree every later stage walks recursively.
        let complexity = sql_complexity(sql)?;
        if complexity > self.limits.sql_complexity {
            return Err(QueryError::TooComplex {
                used: complexity,
                limit: self.limits.sql_complexity,
            });
        }
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state
            .sql_to_statement(sql, &dialect)
            .map_err(classify_plan_error(self.limits.memory_bytes))?;
        refuse_non_query(&statement)?;
        let refs = state
            .resolve_table_references(&statement)
            .map_err(classify_plan_error(self.limits.memory_bytes))?;
        for r in &refs {
            self.check_table(r)?;
        }
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(classify_plan_error(self.limits.memory_bytes))?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        options
            .verify_plan(&plan)
            .map_err(|e| QueryError::Refused(root_message(&e)))?;
        refuse_non_query_plan(&plan)?;
        check_regex_literals(&plan)?;
        let nodes = plan_size(&plan);
        if complexity.saturating_add(nodes) > self.limits.sql_complexity {
            return Err(QueryError::TooComplex {
                used: complexity.saturating_add(nodes),
                limit: self.limits.sql_complexity,
            });
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

/// Nodes of a logical plan, subqueries included (a UNION of a thousand branches is large even
/// when its text is short).
fn plan_size(plan: &LogicalPlan) -> u64 {
    let mut n = 0u64;
    let _ = plan.apply_with_subqueries(|_| {
        n += 1;
        Ok(TreeNodeRecursion::Continue)
    });
    n
}
