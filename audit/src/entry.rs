//! Log entries and the line format of an exported log.
//!
//! Owns what an entry may hold — sequence number, time, actor, action, subject, the hash of the
//! previous entry, and named blake3/SHA-256 digests — and its one canonical JSON encoding, which is
//! the Merkle leaf. Identifiers are short printable tokens and digests are lowercase hex of 32
//! bytes, so an entry can never carry a data value of the domain. It must never accept a line
//! that does not re-encode to the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::merkle::{Hash, leaf_hash};

/// Longest line of an exported log.
pub const MAX_LINE: usize = 32 << 10;
/// Longest actor, action or subject.
const MAX_IDENT: usize = 200;
/// Most digests on one entry.
const MAX_DIGESTS: usize = 32;

/// Why an entry is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// A field is not of the allowed shape.
    #[error("field `{field}`: {why}")]
    Field {
        /// Field name.
        field: &'static str,
        /// What is wrong.
        why: &'static str,
    },
}

fn field(field: &'static str, why: &'static str) -> EntryError {
    EntryError::Field { field, why }
}

/// An action as the caller describes it; the log adds sequence number, time and chain hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Who acted (`developer:alice`, `operator:bob`, `system`).
    pub actor: String,
    /// What was done (`job.run`, `dataset.register`, …).
    pub action: String,
    /// What it was done to (`job:<id>`, `dataset:<name>`, …).
    pub subject: String,
    /// Named digests of the payloads (hex of 32 bytes).
    pub digests: BTreeMap<String, String>,
}

impl Draft {
    /// A draft with no digests.
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        subject: impl Into<String>,
    ) -> Self {
        Draft {
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            digests: BTreeMap::new(),
        }
    }

    /// Adds a named 32-byte digest.
    pub fn digest(mut self, name: impl Into<String>, value: &[u8; 32]) -> Self {
        self.digests.insert(name.into(), hex::encode(value));
        self
    }

    /// Checks every field's shape.
    pub fn validate(&self) -> Result<(), EntryError> {
        ident("actor", &self.actor, ":._-@/")?;
        ident("action", &self.action, "._-")?;
        ident("subject", &self.subject, ":._-/@")?;
        if self.digests.len() > MAX_DIGESTS {
            return Err(field("digests", "too many digests"));
        }
        for (name, value) in &self.digests {
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            {
                return Err(field("digests", "digest names are [a-z0-9._-], at most 64"));
            }
            if !is_hex32(value) {
                return Err(field("digests", "digests are 64 lowercase hex digits"));
            }
        }
        Ok(())
    }
}

fn ident(name: &'static str, v: &str, extra: &str) -> Result<(), EntryError> {
    if v.is_empty() || v.len() > MAX_IDENT {
        return Err(field(name, "must hold 1 to 200 characters"));
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || extra.as_bytes().contains(&b))
    {
        return Err(field(
            name,
            "only ASCII letters, digits and a few separators are allowed",
        ));
    }
    Ok(())
}

fn is_hex32(v: &str) -> bool {
    v.len() == 64
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One committed log entry. Its canonical JSON is the Merkle leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// Unix time in milliseconds; never decreases along the log.
    pub time_ms: i64,
    /// Hex leaf hash of the previous entry (64 zeros for the first).
    pub prev: String,
    /// Who acted.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// What it was done to.
    pub subject: String,
    /// Named digests of payloads.
    pub digests: BTreeMap<String, String>,
}

/// `prev` of the first entry.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl Entry {
    /// Builds entry `seq` from a validated draft.
    pub fn from_draft(draft: Draft, seq: u64, time_ms: i64, prev: &Hash) -> Self {
        Entry {
            seq,
            time_ms,
            prev: hex::encode(prev),
            actor: draft.actor,
            action: draft.action,
            subject: draft.subject,
            digests: draft.digests,
        }
    }

    /// The canonical encoding (the leaf data).
    pub fn canonical(&self) -> String {
        // Serializing plain strings, integers and a BTreeMap cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// RFC 9162 leaf hash of the canonical encoding.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(self.canonical().as_bytes())
    }

    /// Checks every field's shape.
    pub fn validate(&self) -> Result<(), EntryError> {
        if !is_hex32(&self.prev) {
            return Err(field("prev", "must be 64 lowercase hex digits"));
        }
        Draft {
            actor: self.actor.clone(),
            action: self.action.clone(),
            subject: self.subject.clone(),
            digests: self.digests.clone(),
        }
        .validate()
    }
}

/// One line of a log file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Line {
    /// An entry.
    Entry(Entry),
    /// A signed checkpoint note committing to every entry before it.
    Checkpoint(String),
}

impl Line {
    /// The canonical line, with its newline.
    pub fn encode(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Decodes one line (without its newline); it must be canonical.
    pub fn decode(text: &[u8]) -> Result<Line, &'static str> {
        if text.len() > MAX_LINE {
            return Err("line too long");
        }
        let line: Line = serde_json::from_slice(text).map_err(|_| "not a log line")?;
        let again = line.encode();
        if again.as_bytes()[..again.len() - 1] != *text {
            return Err("line is not in canonical form");
        }
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drafts_refuse_values_that_are_not_identifiers_or_digests() {
        let ok = Draft::new("developer:alice", "job.run", "job:j-1").digest("module", &[1; 32]);
        ok.validate().unwrap();
        for bad in [
            Draft::new("", "job.run", "job:1"),
            Draft::new("developer:张三", "job.run", "job:1"),
            Draft::new("a", "job run", "job:1"),
            Draft::new("a", "job.run", "name=Li Lei"),
            Draft::new("a", "job.run", "x".repeat(201)),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let mut d = ok.clone();
        d.digests.insert("income".into(), "123456".into());
        assert!(d.validate().is_err());
        let mut d = ok;
        d.digests.insert("Bad Name".into(), hex::encode([0; 32]));
        assert!(d.validate().is_err());
    }

    #[test]
    fn lines_must_be_canonical() {
        let e = Entry::from_draft(
            Draft::new("system", "domain.init", "domain:x"),
            0,
            5,
            &[0; 32],
        );
        assert_eq!(e.prev, GENESIS_PREV);
        let line = Line::Entry(e.clone()).encode();
        let bare = line.trim_end().as_bytes();
        assert_eq!(Line::decode(bare).unwrap(), Line::Entry(e));
        let spaced = line.replacen(":", ": ", 1);
        assert!(Line::decode(spaced.trim_end().as_bytes()).is_err());
        assert!(Line::decode(br#"{"entry":{"seq":0}}"#).is_err());
        assert!(Line::decode(b"garbage").is_err());
    }
}
