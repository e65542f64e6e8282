//! Domain policy: classification levels (分类分级) and the column rules derived from them.
//!
//! Owns the policy file format (`policies/*.toml`), its validation (errors name file and line),
//! the lookup "which uses may column C of dataset D be put to", the explicit open policy of a
//! developer's own files, and job authorization: a job reaches data only through an
//! [`Authorization`] this crate issues after checking its datasets against the grants. Uses are
//! modelled on SecretFlow SCQL's column control list. The query host enforces these rules on
//! plans (`enclave-query`); this crate needs no query engine and no sandbox. It must never
//! default to permissive: a column the policy does not classify is denied, a dataset it does not
//! grant is refused, a job without a policy does not run.

mod authorize;
mod disclosure;
mod dp;
mod egress;
mod parse;

pub use authorize::{Authorization, PseudonymKey, Refusal, approval_text, open_policy_text};
pub use disclosure::{DisclosureRules, MAX_DOMINANCE_N};
pub use dp::{DEFAULT_BUDGET, DEFAULT_QUERY_DELTA, DEFAULT_QUERY_EPSILON, DpRules};
pub use egress::EgressRules;
pub use enclave_dp::{Budget, Cost, Mechanism};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One way a query may use a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Use {
    /// Row-level values may reach the guest and appear in outputs.
    Plaintext,
    /// May be a GROUP BY key (groups subject to the threshold).
    GroupBy,
    /// Only inside statistical aggregate functions.
    Aggregate,
    /// In predicates, sort keys and comparisons; values never reach the guest.
    Compare,
    /// As an equi-join key; values never reach the guest.
    Join,
    /// Reaches the guest only as a keyed pseudonym (HMAC), stable within one application.
    Pseudonym,
}

impl Use {
    /// Name as written in policy files.
    pub fn name(self) -> &'static str {
        match self {
            Use::Plaintext => "plaintext",
            Use::GroupBy => "group_by",
            Use::Aggregate => "aggregate",
            Use::Compare => "compare",
            Use::Join => "join",
            Use::Pseudonym => "pseudonym",
        }
    }

    fn parse(s: &str) -> Option<Option<Use>> {
        Some(Some(match s {
            "plaintext" => Use::Plaintext,
            "group_by" => Use::GroupBy,
            "aggregate" => Use::Aggregate,
            "compare" => Use::Compare,
            "join" => Use::Join,
            "pseudonym" => Use::Pseudonym,
            "denied" => return Some(None),
            _ => return None,
        }))
    }
}

impl fmt::Display for Use {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The format of a column's values, for format-valid fakes in samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// 18-digit resident ID with a check digit (GB 11643).
    ResidentId,
    /// 11-digit mobile number.
    Phone,
    /// Personal name.
    Name,
    /// Vehicle plate.
    Plate,
}

/// The rule for one column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnRule {
    /// Classification level (e.g. `L3`).
    pub level: String,
    /// Uses allowed; empty means denied.
    pub uses: BTreeSet<Use>,
    /// Value format, if declared.
    pub format: Option<Format>,
    /// Declared bounds `[lo, hi]`: values are clamped to them before a noised aggregate.
    pub bounds: Option<(f64, f64)>,
    /// An explicit `dp = true|false`: whether this column's aggregates are noised, whatever its
    /// level says.
    pub dp: Option<bool>,
}

impl ColumnRule {
    /// Whether `u` is allowed. `plaintext` implies every other use except `pseudonym`
    /// (which only matters when plaintext is not allowed); `group_by` implies `compare`.
    pub fn allows(&self, u: Use) -> bool {
        let has = |x| self.uses.contains(&x);
        match u {
            Use::Plaintext => has(Use::Plaintext),
            Use::Pseudonym => has(Use::Pseudonym),
            Use::Compare => has(Use::Compare) || has(Use::GroupBy) || has(Use::Plaintext),
            other => has(other) || has(Use::Plaintext),
        }
    }

    /// What the rule allows, as a policy file writes it (for messages).
    pub fn allowed_text(&self) -> String {
        if self.uses.is_empty() {
            "no use (denied)".to_owned()
        } else {
            self.uses
                .iter()
                .map(|u| u.name())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    /// Whether the column needs no protection at all.
    pub fn is_open(&self) -> bool {
        self.uses.contains(&Use::Plaintext)
    }

    /// Whether the column reaches jobs only as a pseudonym.
    pub fn is_pseudonymized(&self) -> bool {
        !self.is_open() && self.uses.contains(&Use::Pseudonym)
    }
}

/// Rules of one dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRules {
    /// Column whose rows belong to one data subject (e.g. resident ID), if any.
    pub subject: Option<String>,
    /// Rules per column.
    pub columns: BTreeMap<String, ColumnRule>,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Whether this is the explicit open policy of a developer's own files (`kind = "open"`).
    pub open: bool,
    /// Smallest group an aggregate over restricted columns may show.
    pub min_group_size: u64,
    /// Uses allowed per level.
    pub levels: BTreeMap<String, BTreeSet<Use>>,
    /// Rules per dataset.
    pub datasets: BTreeMap<String, DatasetRules>,
    /// Datasets a local run is granted when `--table` names them (empty: all classified).
    pub grants: BTreeSet<String>,
    /// Columns (dataset, column) granted for row-level use to jobs under this policy (model
    /// training): such a job's outputs are derived and leave only through review.
    pub row_level: BTreeSet<(String, String)>,
    /// Differential privacy.
    pub dp: DpRules,
    /// What outputs may look like, and which values the leak scan looks for.
    pub egress: EgressRules,
    /// Dominance rules for the cells of restricted SUM and AVG aggregates.
    pub disclosure: DisclosureRules,
    /// Largest share of subjects that may be unique on the columns exposed at row level
    /// (`enclave policy check`).
    pub max_unique_share: f64,
}

/// A policy that could not be loaded: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct PolicyError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Largest policy text accepted.
pub const MAX_POLICY_BYTES: usize = 4 << 20;

/// Default minimum group size when the policy sets none.
pub const DEFAULT_MIN_GROUP: u64 = 10;

/// Default largest share of subjects unique on the row-level columns.
pub const DEFAULT_UNIQUE_SHARE: f64 = 0.01;

impl Policy {
    /// The rules of `dataset`, if classified.
    pub fn dataset(&self, dataset: &str) -> Option<&DatasetRules> {
        self.datasets.get(dataset)
    }

    /// Whether aggregates of `dataset.column` must be noised.
    pub fn requires_dp(&self, dataset: &str, column: &str) -> bool {
        let Some(rule) = self.dataset(dataset).and_then(|d| d.columns.get(column)) else {
            return true;
        };
        if rule.is_open() {
            return false;
        }
        if let Some(explicit) = rule.dp {
            return explicit;
        }
        self.dp
            .require_columns
            .contains(&(dataset.to_owned(), column.to_owned()))
            || self.dp.require_levels.contains(&rule.level)
    }

    /// Whether jobs under this policy may use `dataset.column` row by row (plaintext, or a
    /// row-level grant).
    pub fn row_level(&self, dataset: &str, column: &str) -> bool {
        self.dataset(dataset)
            .and_then(|d| d.columns.get(column))
            .is_some_and(|r| r.is_open())
            || self
                .row_level
                .contains(&(dataset.to_owned(), column.to_owned()))
    }

    /// Whether a local run may use `dataset`.
    pub fn grants(&self, dataset: &str) -> bool {
        self.datasets.contains_key(dataset)
            && (self.grants.is_empty() || self.grants.contains(dataset))
    }
}

#[cfg(test)]
mod tests;
