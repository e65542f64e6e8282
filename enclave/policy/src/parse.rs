//! Reading a policy file: its TOML form, validated section by section into a [`Policy`].
//!
//! Owns the raw file format (unknown keys refused), the checks that name file and line, and the
//! order of validation (levels, datasets and their columns, threshold, grants, DP, egress,
//! disclosure, the approval). It must never accept a policy that leaves a column of a classified dataset without
//! a level, nor fill a missing section with anything but the documented bounded defaults.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use enclave_core::TableName;
use serde::Deserialize;
use toml::Spanned;

use crate::*;

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
    #[serde(default)]
    disclosure: Option<disclosure::RawDisclosure>,
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
        let disclosure = match raw.disclosure {
            None => DisclosureRules::default(),
            Some(d) => disclosure::parse(d, &err)?,
        };
        let policy = Policy {
            disclosure,
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
