//! What the policy says about differential privacy: which aggregates are noised, how, and the
//! budget each application may spend on each dataset.
//!
//! Owns [`DpRules`] (the `[dp]` section: the levels and columns whose aggregates must be noised —
//! by default every `L3` column —, the mechanism, the (ε, δ) one query spends, the contribution
//! bounds per data subject, and the budget per application and dataset) and the per-column
//! `bounds` that clamp values before they are summed. The mechanisms themselves live in
//! `enclave-dp`; enforcement in the query host. It must never let a noised aggregate run without
//! bounds: a column that needs DP and declares none is refused at query time, with the reason.

use std::collections::{BTreeMap, BTreeSet};

use enclave_dp::{Budget, Cost, Mechanism};
use serde::Deserialize;
use toml::Spanned;

use crate::{DatasetRules, PolicyError, Use};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDp {
    #[serde(default)]
    require: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    mechanism: Option<Spanned<String>>,
    #[serde(default)]
    epsilon: Option<Spanned<f64>>,
    #[serde(default)]
    delta: Option<Spanned<f64>>,
    #[serde(default)]
    max_groups_per_subject: Option<Spanned<i64>>,
    #[serde(default)]
    max_rows_per_subject: Option<Spanned<i64>>,
    #[serde(default)]
    budget: Option<RawBudget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBudget {
    epsilon: Spanned<f64>,
    #[serde(default)]
    delta: Option<Spanned<f64>>,
}

/// The `[dp]` section, validated against the policy's levels and datasets.
pub(crate) fn parse(
    raw: Spanned<RawDp>,
    levels: &BTreeMap<String, BTreeSet<Use>>,
    datasets: &BTreeMap<String, DatasetRules>,
    err: &impl Fn(usize, String) -> PolicyError,
) -> Result<DpRules, PolicyError> {
    let at = raw.span().start;
    let raw = raw.into_inner();
    let mut rules = DpRules::default();
    if let Some(req) = raw.require {
        rules.require_levels.clear();
        for r in req {
            let name = r.get_ref();
            match name.split_once('.') {
                None if levels.contains_key(name) => {
                    rules.require_levels.insert(name.clone());
                }
                Some((d, c)) if datasets.get(d).is_some_and(|ds| ds.columns.contains_key(c)) => {
                    rules.require_columns.insert((d.to_owned(), c.to_owned()));
                }
                _ => {
                    return Err(err(
                        r.span().start,
                        format!(
                            "dp.require names `{name}`, which is neither a level nor a classified `dataset.column`"
                        ),
                    ));
                }
            }
        }
    }
    if let Some(m) = raw.mechanism {
        rules.mechanism = match m.get_ref().as_str() {
            "laplace" => Mechanism::Laplace,
            "gaussian" => Mechanism::Gaussian,
            other => {
                return Err(err(
                    m.span().start,
                    format!("unknown dp.mechanism `{other}` (laplace, gaussian)"),
                ));
            }
        };
    }
    let epsilon = raw
        .epsilon
        .map_or(rules.per_query.epsilon, |e| *e.get_ref());
    let delta = raw.delta.map_or(rules.per_query.delta, |d| *d.get_ref());
    rules.per_query = Cost::new(epsilon, delta).map_err(|e| err(at, e.to_string()))?;
    if rules.mechanism == Mechanism::Gaussian && delta <= 0.0 {
        return Err(err(at, "dp: the Gaussian mechanism needs delta > 0".into()));
    }
    for (field, slot) in [
        (
            raw.max_groups_per_subject,
            &mut rules.max_groups_per_subject,
        ),
        (raw.max_rows_per_subject, &mut rules.max_rows_per_subject),
    ] {
        if let Some(v) = field {
            *slot = match u64::try_from(*v.get_ref()) {
                Ok(n) if (1..=1_000_000).contains(&n) => n,
                _ => {
                    return Err(err(
                        v.span().start,
                        "dp contribution bounds must be between 1 and 1000000".into(),
                    ));
                }
            };
        }
    }
    if let Some(b) = raw.budget {
        let delta = b.delta.map_or(0.0, |d| *d.get_ref());
        rules.budget = Cost::new(*b.epsilon.get_ref(), delta)
            .map_err(|e| err(b.epsilon.span().start, e.to_string()))?;
    }
    Ok(rules)
}
