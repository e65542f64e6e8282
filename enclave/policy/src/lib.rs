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
mod dp;
mod egress;

pub use authorize::{Authorization, PseudonymKey, Refusal, approval_text, open_policy_text};
pub use dp::{DEFAULT_BUDGET, DEFAULT_QUERY_DELTA, DEFAULT_QUERY_EPSILON, DpRules};
pub use egress::EgressRules;
pub use enclave_dp::{Budget, Cost, Mechanism};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use enclave_core::TableName;
use serde::Deserialize;
use toml::Spanned;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: Spanned<u32>,
    #[serde(default)]
    kind: Option<Spanned<String>>,
    #[serde(default)]
    threshold: Option<RawThreshold>,
    levels: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    datasets: BTreeMap<String, Spanned<RawDataset>>,
    #[serde(default)]
    grant: Option<RawGrant>,
    #[serde(default)]
    dp: Option<Spanned<dp::RawDp>>,
    #[serde(default)]
    egress: Option<egress::RawEgress>,
    /// The approved application's datasets and columns ([`approval_text`]): the policy is
    /// [`Policy::narrowed`] to them.
    #[serde(default)]
    approval: Option<Spanned<BTreeMap<String, Vec<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    #[serde(default)]
    min_group_size: Option<Spanned<i64>>,
    #[serde(default)]
    max_unique_share: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    #[serde(default)]
    datasets: Vec<Spanned<String>>,
    #[serde(default)]
    row_level: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    #[serde(default)]
    subject: Option<Spanned<String>>,
    columns: BTreeMap<String, Spanned<RawColumn>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawColumn {
    Level(String),
    Full {
        level: String,
        #[serde(default)]
        uses: Option<Vec<String>>,
        #[serde(default)]
        format: Option<String>,
        #[serde(default)]
        bounds: Option<Vec<f64>>,
        #[serde(default)]
        dp: Option<bool>,
    },
}

/// Largest policy text accepted.
pub const MAX_POLICY_BYTES: usize = 4 << 20;

/// Default minimum group size when the policy sets none.
pub const DEFAULT_MIN_GROUP: u64 = 10;

/// Default largest share of subjects unique on the row-level columns.
pub const DEFAULT_UNIQUE_SHARE: f64 = 0.01;

impl Policy {
    /// Loads and validates a policy file (at most [`MAX_POLICY_BYTES`]); returns the policy and
    /// its text (the text is what a job's transcript seals and its digest what the log names).
    pub fn load(path: &Path) -> Result<(Policy, String), PolicyError> {
        let file = path.display().to_string();
        let cannot = |message: String| PolicyError {
            file: file.clone(),
            line: 0,
            message,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| cannot(format!("cannot read: {e}")))?
            .len();
        if len > MAX_POLICY_BYTES as u64 {
            return Err(cannot(format!("larger than {MAX_POLICY_BYTES} bytes")));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| cannot(format!("cannot read: {e}")))?;
        let policy = Policy::parse(&file, &text)?;
        Ok((policy, text))
    }

    /// Parses and validates policy text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Policy, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError {
                file: file.to_owned(),
                line: 0,
                message: format!("larger than {MAX_POLICY_BYTES} bytes"),
            });
        }
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let err = |offset: usize, message: String| PolicyError {
            file: file.to_owned(),
            line: line_of(offset),
            message,
        };
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            err(offset, e.message().trim().to_owned())
        })?;
        if *raw.version.get_ref() != 1 {
            return Err(err(
                raw.version.span().start,
                "unsupported policy version (expected 1)".into(),
            ));
        }
        let open = match &raw.kind {
            None => false,
            Some(k) => match k.get_ref().as_str() {
                "domain" => false,
                "open" => true,
                other => {
                    return Err(err(
                        k.span().start,
                        format!("unknown policy kind `{other}` (domain, open)"),
                    ));
                }
            },
        };
        let (mut min_group_size, mut max_unique_share) = (DEFAULT_MIN_GROUP, DEFAULT_UNIQUE_SHARE);
        if let Some(t) = raw.threshold {
            if let Some(k) = t.min_group_size {
                min_group_size = match u64::try_from(*k.get_ref()) {
                    Ok(k) if k >= 1 => k,
                    _ => {
                        return Err(err(
                            k.span().start,
                            "min_group_size must be at least 1".into(),
                        ));
                    }
                };
            }
            if let Some(u) = t.max_unique_share {
                let v = *u.get_ref();
                if !(0.0..=1.0).contains(&v) {
                    return Err(err(
                        u.span().start,
                        "max_unique_share must be in [0, 1]".into(),
                    ));
                }
                max_unique_share = v;
            }
        }
        let mut levels = BTreeMap::new();
        for (name, uses) in raw.levels {
            let at = uses.span().start;
            let set = parse_uses(
                uses.get_ref()
                    .iter()
                    .map(|u| (u.get_ref().as_str(), u.span().start)),
                &err,
            )?;
            if !valid_ident(&name) {
                return Err(err(at, format!("level name `{name}` is not an identifier")));
            }
            levels.insert(name, set);
        }
        let mut datasets = BTreeMap::new();
        for (name, ds) in raw.datasets {
            let at = ds.span().start;
            if !valid_ident(&name) {
                return Err(err(
                    at,
                    format!("dataset name `{name}` is not a lower-case identifier"),
                ));
            }
            let ds = ds.into_inner();
            let mut columns = BTreeMap::new();
            for (col, rule) in ds.columns {
                let at = rule.span().start;
                let (level, uses, format, bounds, dp) = match rule.into_inner() {
                    RawColumn::Level(l) => (l, None, None, None, None),
                    RawColumn::Full {
                        level,
                        uses,
                        format,
                        bounds,
                        dp,
                    } => (level, uses, format, bounds, dp),
                };
                let bounds = match bounds.as_deref() {
                    None => None,
                    Some([lo, hi]) if lo.is_finite() && hi.is_finite() && lo <= hi => {
                        Some((*lo, *hi))
                    }
                    Some(_) => {
                        return Err(err(
                            at,
                            format!(
                                "column `{name}.{col}`: bounds must be [lo, hi] with finite lo <= hi"
                            ),
                        ));
                    }
                };
                let format = match format.as_deref() {
                    None => None,
                    Some("resident_id") => Some(Format::ResidentId),
                    Some("phone") => Some(Format::Phone),
                    Some("name") => Some(Format::Name),
                    Some("plate") => Some(Format::Plate),
                    Some(other) => {
                        return Err(err(
                            at,
                            format!(
                                "column `{name}.{col}`: unknown format `{other}` (resident_id, phone, name, plate)"
                            ),
                        ));
                    }
                };
                let Some(level_uses) = levels.get(&level) else {
                    return Err(err(
                        at,
                        format!("column `{name}.{col}`: unknown level `{level}`"),
                    ));
                };
                let uses = match uses {
                    None => level_uses.clone(),
                    Some(list) => parse_uses(list.iter().map(|u| (u.as_str(), at)), &err)?,
                };
                columns.insert(
                    col,
                    ColumnRule {
                        level,
                        uses,
                        format,
                        bounds,
                        dp,
                    },
                );
            }
            let subject = match ds.subject {
                None => None,
                Some(s) => {
                    if !columns.contains_key(s.get_ref()) {
                        return Err(err(
                            s.span().start,
                            format!(
                                "dataset `{name}`: subject column `{}` is not classified",
                                s.get_ref()
                            ),
                        ));
                    }
                    Some(s.into_inner())
                }
            };
            datasets.insert(name, DatasetRules { subject, columns });
        }
        let mut grants = BTreeSet::new();
        let mut row_level = BTreeSet::new();
        if let Some(g) = raw.grant {
            for c in g.row_level {
                let (d, col) = c.get_ref().split_once('.').unwrap_or(("", ""));
                if datasets
                    .get(d)
                    .is_none_or(|ds: &DatasetRules| !ds.columns.contains_key(col))
                {
                    return Err(err(
                        c.span().start,
                        format!(
                            "row_level names `{}`, which is not a classified `dataset.column`",
                            c.get_ref()
                        ),
                    ));
                }
                row_level.insert((d.to_owned(), col.to_owned()));
            }
            for d in g.datasets {
                if !datasets.contains_key(d.get_ref()) {
                    return Err(err(
                        d.span().start,
                        format!(
                            "grant names dataset `{}`, which the policy does not classify",
                            d.get_ref()
                        ),
                    ));
                }
                grants.insert(d.into_inner());
            }
        }
        if open
            && let Some((name, col)) = datasets.iter().find_map(|(n, d)| {
                d.columns
                    .iter()
                    .find(|(_, r)| !r.is_open())
                    .map(|(c, _)| (n.clone(), c.clone()))
            })
        {
            return Err(err(
                0,
                format!(
                    "an open policy classifies every column as plaintext; `{name}.{col}` is not"
                ),
            ));
        }
        let dp = match raw.dp {
            None => DpRules::default(),
            Some(d) => dp::parse(d, &levels, &datasets, &err)?,
        };
        let egress = match raw.egress {
            None => EgressRules::defaults(&levels),
            Some(e) => egress::parse(e, &levels, &err)?,
        };
        let policy = Policy {
            open,
            min_group_size,
            levels,
            datasets,
            grants,
            row_level,
            dp,
            egress,
            max_unique_share,
        };
        match raw.approval {
            None => Ok(policy),
            Some(a) => {
                let at = a.span().start;
                let mut approved = Vec::new();
                for (d, cols) in a.into_inner() {
                    let d = TableName::new(&d).map_err(|e| err(at, e.to_string()))?;
                    approved.push((d, cols));
                }
                policy
                    .narrowed(&approved)
                    .map_err(|e| err(at, format!("approval: {e}")))
            }
        }
    }

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

fn valid_ident(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_uses<'a>(
    items: impl Iterator<Item = (&'a str, usize)>,
    err: &impl Fn(usize, String) -> PolicyError,
) -> Result<BTreeSet<Use>, PolicyError> {
    let mut set = BTreeSet::new();
    let mut denied = None;
    for (name, at) in items {
        match Use::parse(name) {
            None => {
                return Err(err(
                    at,
                    format!(
                        "unknown use `{name}` (plaintext, group_by, aggregate, compare, join, pseudonym, denied)"
                    ),
                ));
            }
            Some(None) => denied = Some(at),
            Some(Some(u)) => {
                set.insert(u);
            }
        }
    }
    if let (Some(at), false) = (denied, set.is_empty()) {
        return Err(err(
            at,
            "`denied` cannot be combined with other uses".into(),
        ));
    }
    Ok(set)
}

#[cfg(test)]
mod tests;
