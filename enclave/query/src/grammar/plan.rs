//! What the host's plan builder takes and gives: the session's context (policy, files,
//! pseudonym function, threshold, the counters its cell filter adds to, the noise key), the plan
//! of a restricted query's cells with the user's post-aggregate steps apart, and what a noised
//! query spends.
//!
//! Owns these types and re-planning the user's steps over the shown cells. It must never carry a
//! secret beyond the noise key the session already holds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use datafusion::catalog::TableProvider;
use datafusion::common::DFSchema;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, ScalarUDF};
use enclave_dp::Mechanism;
use enclave_policy::Policy;

use super::Population;
use super::build::df;
use crate::check::CheckError;

/// What the builder needs from the session.
pub struct BuildContext<'a> {
    /// The policy.
    pub policy: &'a Policy,
    /// The datasets' files (not the pseudonym views), by dataset name.
    pub raw: &'a BTreeMap<String, Arc<dyn TableProvider>>,
    /// The application's pseudonym function.
    pub pseudonym: Arc<ScalarUDF>,
    /// The group threshold k.
    pub min_group_size: u64,
    /// Where this query's cell filter counts the groups it suppresses for size…
    pub suppressed: Arc<AtomicU64>,
    /// … and for dominance; and where it counts the groups it keeps whose dominance is
    /// undefined (negative contributions).
    pub dominated: [Arc<AtomicU64>; 2],
    /// Where it adds up the subject counts of the groups it suppresses (for the check that the
    /// groups a query hides hold no one or at least k subjects).
    pub hidden_subjects: Arc<AtomicU64>,
    /// The job's noise key.
    pub noise_key: [u8; 32],
    /// This query's index in the job (part of every noise draw's context).
    pub query_index: u64,
    /// Whether a dataset's subject column is known to hold one row per subject.
    pub subject_unique: &'a dyn Fn(&str) -> bool,
}

/// What a noised query spends.
#[derive(Debug, Clone, PartialEq)]
pub struct DpSpend {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// (ε, δ) of the query.
    pub cost: enclave_dp::Cost,
    /// Statistics noised.
    pub statistics: usize,
    /// Datasets charged.
    pub datasets: Vec<String>,
    /// The noise of each statistic, with its error bound at 95 %.
    pub noise: Vec<(String, enclave_dp::Noise)>,
}

/// The plan to run.
pub struct Built {
    /// The logical plan of the cells (not yet optimized): the user's aggregate schema and, last,
    /// [`SUBJECTS`], each cell's subject count. The user's post-aggregate steps are `post`.
    pub plan: LogicalPlan,
    /// The user's nodes above the aggregate, nearest first: [`apply_post`] puts them over the
    /// cells that are shown.
    pub post: Vec<LogicalPlan>,
    /// Whose subjects the cells count, for the difference check; `None` for a dataset without
    /// a subject column.
    pub population: Option<Population>,
    /// Its privacy cost, if it noises anything.
    pub dp: Option<DpSpend>,
    /// Whether the cells of some SUM or AVG were checked for dominance.
    pub dominance: bool,
}

/// The hidden last column of [`Built::plan`]: each cell's count of subjects (of every class).
pub const SUBJECTS: &str = "__enclave_n";

pub(super) fn nullable(args: &[Expr], schema: &DFSchema) -> bool {
    args.iter().any(|a| a.nullable(schema).unwrap_or(true))
}

/// The user's post-aggregate nodes, re-planned over `plan`.
pub fn apply_post(post: &[LogicalPlan], mut plan: LogicalPlan) -> Result<LogicalPlan, CheckError> {
    for node in post {
        plan = node
            .with_new_exprs(node.expressions(), vec![plan])
            .map_err(df)?;
    }
    Ok(plan)
}
