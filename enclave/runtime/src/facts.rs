//! What the domain learns of a dataset snapshot once and keeps beside it in the registry: the
//! file's schema (so later jobs do not read the file before a query scans it) and, per subject
//! column, whether each subject has at most one row (so single-table queries count subjects
//! without a distinct count and noise at one row's sensitivity).
//!
//! Owns the text kept in the registry's opaque `meta` field. Facts hold for a snapshot's content
//! (its digest), never for a path. It must never record a fact it did not compute exactly: a
//! wrong "unique" would undercount subjects.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::SchemaRef;
use enclave_policy::Policy;
use enclave_query::{decode_schema, encode_schema};
use serde::{Deserialize, Serialize};

/// Facts of one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Facts {
    /// The file's schema ([`encode_schema`] text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema: Option<String>,
    /// Per column: whether no value occurs on two rows (and none is null).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    unique: BTreeMap<String, bool>,
}

impl Facts {
    /// The facts in a registry's `meta` text (older registries kept the bare schema text).
    pub(crate) fn parse(meta: Option<&str>) -> Facts {
        match meta {
            None => Facts::default(),
            Some(t) if t.starts_with('{') => serde_json::from_str(t).unwrap_or_default(),
            Some(t) => Facts {
                schema: Some(t.to_owned()),
                unique: BTreeMap::new(),
            },
        }
    }

    /// The text to keep.
    pub(crate) fn text(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }

    pub(crate) fn schema(&self) -> Option<SchemaRef> {
        self.schema.as_deref().and_then(decode_schema)
    }

    pub(crate) fn set_schema(&mut self, schema: &SchemaRef) {
        if self.schema.is_none() {
            self.schema = encode_schema(schema).ok();
        }
    }

    /// Whether table `table`'s subject column (as `policy` names it) is known to be unique.
    pub(crate) fn subject_unique(&self, policy: &Policy, table: &str) -> Option<bool> {
        let subject = policy.dataset(table)?.subject.as_ref()?;
        self.unique.get(subject).copied()
    }

    /// Records what a session counted of table `table`'s subject column.
    pub(crate) fn set_subject_unique(&mut self, policy: &Policy, table: &str, unique: bool) {
        if let Some(subject) = policy.dataset(table).and_then(|d| d.subject.as_ref()) {
            self.unique.insert(subject.clone(), unique);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_round_trip_and_read_older_registries() {
        let policy =
            Policy::parse("default", include_str!("../../../policies/default.toml")).unwrap();
        let mut f = Facts::parse(Some("00ff"));
        assert_eq!(f.schema.as_deref(), Some("00ff"));
        assert_eq!(f.subject_unique(&policy, "residents"), None);
        f.set_subject_unique(&policy, "residents", true);
        let again = Facts::parse(f.text().as_deref());
        assert_eq!(again, f);
        assert_eq!(again.subject_unique(&policy, "residents"), Some(true));
        // Damaged text is no fact at all.
        assert_eq!(Facts::parse(Some("{nonsense")), Facts::default());
    }
}
