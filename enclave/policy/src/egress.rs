//! What the policy says about outputs leaving: the caps of their size and shape, which values the
//! leak scan looks for, and how much a model may say about its training rows.
//!
//! Owns [`EgressRules`] (the `[egress]` section). The checks themselves live in `enclave-egress`;
//! this crate only validates the numbers and names. It must never make a check optional by
//! default: every rule has a bounded default, and `leak_levels` defaults to every level that
//! allows neither `plaintext` nor `group_by` (the values no output should show).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use toml::Spanned;

use crate::{PolicyError, Use};

/// The `[egress]` section of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct EgressRules {
    /// Most rows one output may have.
    pub max_rows: u64,
    /// Most columns one output may have.
    pub max_columns: u64,
    /// Most bytes (canonical Arrow IPC) one output may have.
    pub max_bytes: u64,
    /// Rows of training data per parameter a `model` output must have had at least.
    pub model_rows_per_parameter: u64,
    /// Levels whose columns' values the leak scan looks for in every output.
    pub leak_levels: BTreeSet<String>,
    /// Longest string a label column of an output may hold before it is flagged.
    pub max_label_bytes: u64,
}

/// Default [`EgressRules::max_rows`].
pub const DEFAULT_MAX_ROWS: u64 = 100_000;
/// Default [`EgressRules::max_columns`].
pub const DEFAULT_MAX_COLUMNS: u64 = 256;
/// Default [`EgressRules::max_bytes`].
pub const DEFAULT_MAX_BYTES: u64 = 16 << 20;
/// Default [`EgressRules::model_rows_per_parameter`].
pub const DEFAULT_MODEL_ROWS_PER_PARAMETER: u64 = 10;
/// Default [`EgressRules::max_label_bytes`].
pub const DEFAULT_MAX_LABEL_BYTES: u64 = 64;

impl EgressRules {
    /// The defaults for a policy with `levels`.
    pub(crate) fn defaults(levels: &BTreeMap<String, BTreeSet<Use>>) -> EgressRules {
        EgressRules {
            max_rows: DEFAULT_MAX_ROWS,
            max_columns: DEFAULT_MAX_COLUMNS,
            max_bytes: DEFAULT_MAX_BYTES,
            model_rows_per_parameter: DEFAULT_MODEL_ROWS_PER_PARAMETER,
            leak_levels: levels
                .iter()
                .filter(|(_, uses)| {
                    !uses.contains(&Use::Plaintext) && !uses.contains(&Use::GroupBy)
                })
                .map(|(l, _)| l.clone())
                .collect(),
            max_label_bytes: DEFAULT_MAX_LABEL_BYTES,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEgress {
    #[serde(default)]
    max_rows: Option<Spanned<i64>>,
    #[serde(default)]
    max_columns: Option<Spanned<i64>>,
    #[serde(default)]
    max_bytes: Option<Spanned<i64>>,
    #[serde(default)]
    model_rows_per_parameter: Option<Spanned<i64>>,
    #[serde(default)]
    leak_levels: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    max_label_bytes: Option<Spanned<i64>>,
}

/// The `[egress]` section, validated against the policy's levels.
pub(crate) fn parse(
    raw: RawEgress,
    levels: &BTreeMap<String, BTreeSet<Use>>,
    err: &impl Fn(usize, String) -> PolicyError,
) -> Result<EgressRules, PolicyError> {
    let mut rules = EgressRules::defaults(levels);
    for (name, field, slot, max) in [
        ("max_rows", raw.max_rows, &mut rules.max_rows, 1u64 << 40),
        (
            "max_columns",
            raw.max_columns,
            &mut rules.max_columns,
            1 << 16,
        ),
        ("max_bytes", raw.max_bytes, &mut rules.max_bytes, 1 << 40),
        (
            "model_rows_per_parameter",
            raw.model_rows_per_parameter,
            &mut rules.model_rows_per_parameter,
            1 << 20,
        ),
        (
            "max_label_bytes",
            raw.max_label_bytes,
            &mut rules.max_label_bytes,
            1 << 20,
        ),
    ] {
        if let Some(v) = field {
            *slot = match u64::try_from(*v.get_ref()) {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => {
                    return Err(err(
                        v.span().start,
                        format!("egress.{name} must be between 1 and {max}"),
                    ));
                }
            };
        }
    }
    if let Some(ls) = raw.leak_levels {
        rules.leak_levels.clear();
        for l in ls {
            if !levels.contains_key(l.get_ref()) {
                return Err(err(
                    l.span().start,
                    format!(
                        "egress.leak_levels names `{}`, which is not a level",
                        l.get_ref()
                    ),
                ));
            }
            rules.leak_levels.insert(l.into_inner());
        }
    }
    Ok(rules)
}
