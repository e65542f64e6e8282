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
    /// The entry could not be encoded (never expected: every field is a plain string).
    #[error("the entry could not be encoded")]
    Encoding,
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
        check_fields(
            &self.actor,
            &self.action,
            &self.subject,
            self.digests.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }
}

/// The shape rules of an entry's caller-supplied fields.
fn check_fields<'a>(
    actor: &str,
    action: &str,
    subject: &str,
    digests: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
) -> Result<(), EntryError> {
    ident("actor", actor, &ACTOR)?;
    ident("action", action, &ACTION)?;
    ident("subject", subject, &SUBJECT)?;
    if digests.len() > MAX_DIGESTS {
        return Err(field("digests", "too many digests"));
    }
    for (name, value) in digests {
        if name.is_empty() || name.len() > 64 || !in_class(name, &DIGEST_NAME) {
            return Err(field("digests", "digest names are [a-z0-9._-], at most 64"));
        }
        if !is_hex32(value) {
            return Err(field("digests", "digests are 64 lowercase hex digits"));
        }
    }
    Ok(())
}

fn in_class(v: &str, class: &[bool; 256]) -> bool {
    v.bytes().all(|b| class[b as usize])
}

fn ident(name: &'static str, v: &str, class: &[bool; 256]) -> Result<(), EntryError> {
    if v.is_empty() || v.len() > MAX_IDENT {
        return Err(field(name, "must hold 1 to 200 characters"));
    }
    if !in_class(v, class) {
        return Err(field(
            name,
            "only ASCII letters, digits and a few separators are allowed",
        ));
    }
    Ok(())
}

fn is_hex32(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| HEX[b as usize] != 0xff)
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
    pub fn canonical(&self) -> Result<String, EntryError> {
        serde_json::to_string(self).map_err(|_| EntryError::Encoding)
    }

    /// RFC 9162 leaf hash of the canonical encoding.
    pub fn leaf_hash(&self) -> Result<Hash, EntryError> {
        Ok(leaf_hash(self.canonical()?.as_bytes()))
    }

    /// Checks every field's shape.
    pub fn validate(&self) -> Result<(), EntryError> {
        if !is_hex32(&self.prev) {
            return Err(field("prev", "must be 64 lowercase hex digits"));
        }
        check_fields(
            &self.actor,
            &self.action,
            &self.subject,
            self.digests.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    /// The encoded log line (with newline) and the leaf hash, from one serialization.
    pub fn encode_line(&self) -> Result<(String, Hash), EntryError> {
        let canonical = self.canonical()?;
        let leaf = leaf_hash(canonical.as_bytes());
        Ok((format!("{{\"entry\":{canonical}}}\n"), leaf))
    }
}

/// An entry borrowed from a line, for verifying without copying.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryRef<'a> {
    seq: u64,
    time_ms: i64,
    prev: &'a str,
    actor: &'a str,
    action: &'a str,
    subject: &'a str,
    #[serde(borrow)]
    digests: BTreeMap<&'a str, &'a str>,
}

/// What a verifier needs from one entry line, checked for shape and canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryFacts {
    /// Sequence number.
    pub seq: u64,
    /// Time in ms.
    pub time_ms: i64,
    /// The previous entry's leaf hash as recorded.
    pub prev: Hash,
    /// This entry's leaf hash.
    pub leaf: Hash,
}

const ENTRY_PREFIX: &[u8] = b"{\"entry\":";

/// Checks an entry line (without newline) and returns its facts; `None` if it is not an entry
/// line at all. `scratch` is reused between calls.
///
/// The fast path scans the exact canonical serialization (fields in order, digests in strictly
/// increasing key order, no escapes, canonical integers), which is equivalent to parsing and
/// re-encoding because every field's alphabet needs no escaping; anything it refuses goes
/// through the slow serde path, which names the problem.
pub fn entry_facts(text: &[u8], scratch: &mut Vec<u8>) -> Option<Result<EntryFacts, String>> {
    let body = text.strip_prefix(ENTRY_PREFIX)?.strip_suffix(b"}")?;
    if text.len() > MAX_LINE {
        return Some(Err("line too long".to_owned()));
    }
    if let Some(facts) = scan_canonical(body) {
        return Some(Ok(facts));
    }
    Some((|| {
        let e: EntryRef<'_> =
            serde_json::from_slice(body).map_err(|_| "not a log line".to_owned())?;
        scratch.clear();
        serde_json::to_writer(&mut *scratch, &e).map_err(|_| "not a log line".to_owned())?;
        if scratch.as_slice() != body {
            return Err("line is not in canonical form".to_owned());
        }
        let mut prev = [0u8; 32];
        if !is_hex32(e.prev) || hex::decode_to_slice(e.prev, &mut prev).is_err() {
            return Err("field `prev`: must be 64 lowercase hex digits".to_owned());
        }
        check_fields(
            e.actor,
            e.action,
            e.subject,
            e.digests.iter().map(|(k, v)| (*k, *v)),
        )
        .map_err(|e| e.to_string())?;
        // Valid and canonical, yet refused by the scanner: a bug in one of the two paths.
        Err("entry could not be checked (verifier inconsistency)".to_owned())
    })())
}

/// Byte classes of the fields, as lookup tables: the one definition of each field's alphabet,
/// used by `check_fields` and by the scanner.
const fn class(lower_only: bool, extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] =
            c.is_ascii_lowercase() || c.is_ascii_digit() || (!lower_only && c.is_ascii_uppercase());
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}
static ACTOR: [bool; 256] = class(false, b":._-@/");
static ACTION: [bool; 256] = class(false, b"._-");
static SUBJECT: [bool; 256] = class(false, b":._-/@");
static DIGEST_NAME: [bool; 256] = class(true, b"._-");
/// Lowercase hex digit values; 0xff for anything else.
static HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// A cursor over canonical JSON bytes.
struct Scan<'a>(&'a [u8]);

impl<'a> Scan<'a> {
    fn lit(&mut self, l: &[u8]) -> Option<()> {
        self.0 = self.0.strip_prefix(l)?;
        Some(())
    }
    fn uint(&mut self) -> Option<u64> {
        let n = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        let digits = &self.0[..n];
        if n == 0 || (n > 1 && digits[0] == b'0') {
            return None;
        }
        let mut v: u64 = 0;
        for d in digits {
            v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.0 = &self.0[n..];
        Some(v)
    }
    fn int(&mut self) -> Option<i64> {
        if self.0.first() == Some(&b'-') {
            self.0 = &self.0[1..];
            let v = self.uint()?;
            if v == 0 {
                return None;
            }
            return 0i64.checked_sub_unsigned(v);
        }
        i64::try_from(self.uint()?).ok()
    }
    /// A quoted string of 1..=`max` bytes, all in `class` (which never holds `"` or `\`).
    fn token(&mut self, class: &[bool; 256], max: usize) -> Option<&'a [u8]> {
        self.lit(b"\"")?;
        let n = self.0.iter().position(|&b| !class[b as usize])?;
        if self.0[n] != b'"' || n == 0 || n > max {
            return None;
        }
        let t = &self.0[..n];
        self.0 = &self.0[n + 1..];
        Some(t)
    }
    /// A quoted string of exactly 64 lowercase hex digits, decoded.
    fn hex32(&mut self) -> Option<[u8; 32]> {
        self.lit(b"\"")?;
        let (digits, rest) = self.0.split_at_checked(64)?;
        self.0 = rest;
        self.lit(b"\"")?;
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let (hi, lo) = (HEX[pair[0] as usize], HEX[pair[1] as usize]);
            if hi | lo == 0xff {
                return None;
            }
            *o = hi << 4 | lo;
        }
        Some(out)
    }
}

fn scan_canonical(body: &[u8]) -> Option<EntryFacts> {
    let mut c = Scan(body);
    c.lit(b"{\"seq\":")?;
    let seq = c.uint()?;
    c.lit(b",\"time_ms\":")?;
    let time_ms = c.int()?;
    c.lit(b",\"prev\":")?;
    let prev = c.hex32()?;
    c.lit(b",\"actor\":")?;
    c.token(&ACTOR, MAX_IDENT)?;
    c.lit(b",\"action\":")?;
    c.token(&ACTION, MAX_IDENT)?;
    c.lit(b",\"subject\":")?;
    c.token(&SUBJECT, MAX_IDENT)?;
    c.lit(b",\"digests\":{")?;
    if c.lit(b"}").is_none() {
        let mut last: &[u8] = &[];
        let mut n = 0;
        loop {
            let k = c.token(&DIGEST_NAME, 64)?;
            c.lit(b":")?;
            c.hex32()?;
            // Keys strictly increasing: canonical order, no duplicates.
            if n == MAX_DIGESTS || (n > 0 && last >= k) {
                return None;
            }
            last = k;
            n += 1;
            if c.lit(b",").is_none() {
                c.lit(b"}")?;
                break;
            }
        }
    }
    c.lit(b"}")?;
    if !c.0.is_empty() {
        return None;
    }
    Some(EntryFacts {
        seq,
        time_ms,
        prev,
        leaf: leaf_hash(body),
    })
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
    pub fn encode(&self) -> Result<String, EntryError> {
        let mut s = serde_json::to_string(self).map_err(|_| EntryError::Encoding)?;
        s.push('\n');
        Ok(s)
    }

    /// Decodes one line (without its newline); it must be canonical.
    pub fn decode(text: &[u8]) -> Result<Line, &'static str> {
        if text.len() > MAX_LINE {
            return Err("line too long");
        }
        let line: Line = serde_json::from_slice(text).map_err(|_| "not a log line")?;
        let again = line.encode().map_err(|_| "not a log line")?;
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
    fn fast_path_agrees_with_the_owned_encoding() {
        let d = Draft::new("system", "domain.init", "domain:x").digest("a", &[9; 32]);
        let e = Entry::from_draft(d, 7, 5, &[3; 32]);
        let (line, leaf) = e.encode_line().unwrap();
        assert_eq!(line, Line::Entry(e.clone()).encode().unwrap());
        assert_eq!(leaf, e.leaf_hash().unwrap());
        let bare = line.trim_end().as_bytes();
        let mut scratch = Vec::new();
        let f = entry_facts(bare, &mut scratch).unwrap().unwrap();
        assert_eq!((f.seq, f.time_ms, f.prev, f.leaf), (7, 5, [3; 32], leaf));
        let spaced = line.replacen(":", ": ", 2);
        assert!(
            entry_facts(spaced.trim_end().as_bytes(), &mut scratch)
                .unwrap()
                .is_err()
        );
        let bad = line.replace("domain.init", "domain init");
        assert!(
            entry_facts(bad.trim_end().as_bytes(), &mut scratch)
                .unwrap()
                .is_err()
        );
        assert!(entry_facts(b"{\"checkpoint\":\"x\"}", &mut scratch).is_none());
    }

    /// The scanner accepts exactly what parse-and-re-encode accepts, on mutations of real lines.
    #[test]
    fn scanner_agrees_with_serde_on_mutated_lines() {
        let d = Draft::new("developer:a", "job.run", "job:1/output:x")
            .digest("b", &[1; 32])
            .digest("a", &[2; 32]);
        let (line, _) = Entry::from_draft(d, 12, -5, &[4; 32])
            .encode_line()
            .unwrap();
        let body = line
            .trim_end()
            .strip_prefix("{\"entry\":")
            .unwrap()
            .strip_suffix('}')
            .unwrap();
        let slow = |b: &[u8]| -> bool {
            let Ok(e) = serde_json::from_slice::<EntryRef<'_>>(b) else {
                return false;
            };
            serde_json::to_vec(&e).unwrap() == b
                && is_hex32(e.prev)
                && check_fields(
                    e.actor,
                    e.action,
                    e.subject,
                    e.digests.iter().map(|(k, v)| (*k, *v)),
                )
                .is_ok()
        };
        assert!(scan_canonical(body.as_bytes()).is_some());
        let mut variants = vec![
            body.replace("\"seq\":12", "\"seq\":012"),
            body.replace("\"time_ms\":-5", "\"time_ms\":-0"),
            body.replace("\"time_ms\":-5", "\"time_ms\":5"),
            body.replace("\"a\":", "\"c\":"),
            body.replace("job.run", "job\\u002erun"),
            body.replace(",\"subject\"", " ,\"subject\""),
            body.replace("}}", "},\"x\":1}"),
            body.replace("\"seq\":12", "\"seq\":18446744073709551616"),
        ];
        // Every single-byte deletion and a few substitutions.
        for i in 0..body.len() {
            let mut b = body.as_bytes().to_vec();
            b.remove(i);
            variants.push(String::from_utf8_lossy(&b).into_owned());
            let mut b = body.as_bytes().to_vec();
            b[i] = b'1';
            variants.push(String::from_utf8_lossy(&b).into_owned());
        }
        for v in variants {
            assert_eq!(
                scan_canonical(v.as_bytes()).is_some(),
                slow(v.as_bytes()),
                "{v}"
            );
        }
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
        let line = Line::Entry(e.clone()).encode().unwrap();
        let bare = line.trim_end().as_bytes();
        assert_eq!(Line::decode(bare).unwrap(), Line::Entry(e));
        let spaced = line.replacen(":", ": ", 1);
        assert!(Line::decode(spaced.trim_end().as_bytes()).is_err());
        assert!(Line::decode(br#"{"entry":{"seq":0}}"#).is_err());
        assert!(Line::decode(b"garbage").is_err());
    }
}
