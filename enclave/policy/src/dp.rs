//! What the policy says about differential privacy: which aggregates are noised, how, and the
//! budget each application may spend on each dataset.
//!
//! Owns [`DpRules`] (the `[dp]` section: the levels and columns whose aggregates must be noised —
//! by default every `L3` column —, the mechanism, the (ε, δ) one query spends, the contribution
//! bounds per data subject, and the budget per application and dataset) and the per-column
//! `bounds` that clamp values before they are summed. The mechanisms themselves live in
//! `enclave-dp`; enforcement in the query host. It must never let a noised aggregate run without
//! bounds: a column that needs DP and declares none is refused at query time, with the reason.

use std::collections::BTreeSet;

use enclave_dp::{Budget, Cost, Mechanism};

/// The `[dp]` section of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct DpRules {
    /// Levels whose columns' aggregates are noised.
    pub require_levels: BTreeSet<String>,
    /// Columns (dataset, column) whose aggregates are noised, whatever their level.
    pub require_columns: BTreeSet<(String, String)>,
    /// The mechanism.
    pub mechanism: Mechanism,
    /// What one query spends, shared among the statistics it noises.
    pub per_query: Cost,
    /// Groups one subject may contribute to in one query (more are dropped, by a keyed choice).
    pub max_groups_per_subject: u64,
    /// Rows one subject may contribute to one group (its values are clamped as a whole).
    pub max_rows_per_subject: u64,
    /// What one application may spend on one dataset, over all its jobs.
    pub budget: Budget,
}

/// Default ε one query spends.
pub const DEFAULT_QUERY_EPSILON: f64 = 1.0;
/// Default δ one query spends (used by the Gaussian mechanism).
pub const DEFAULT_QUERY_DELTA: f64 = 1e-7;
/// Default budget per application and dataset.
pub const DEFAULT_BUDGET: Budget = Cost {
    epsilon: 20.0,
    delta: 1e-5,
};

impl Default for DpRules {
    fn default() -> Self {
        DpRules {
            require_levels: BTreeSet::from(["L3".to_owned()]),
            require_columns: BTreeSet::new(),
            mechanism: Mechanism::Laplace,
            per_query: Cost {
                epsilon: DEFAULT_QUERY_EPSILON,
                delta: DEFAULT_QUERY_DELTA,
            },
            max_groups_per_subject: 1,
            max_rows_per_subject: 1,
            budget: DEFAULT_BUDGET,
        }
    }
}
