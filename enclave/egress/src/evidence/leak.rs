//! The leak index: keyed fingerprints of a domain's identifying values (the L3/L4 columns of its
//! datasets) and the scan of output cells against them.
//!
//! Owns the normalization of text before it is fingerprinted (case, whitespace, punctuation,
//! full-width forms, dashes and zero-width characters are folded away, so `110101-1990 0307 123X`
//! and `110101199003071 23x` are the same value), the index (an open-addressing table of 64-bit
//! SipHash-1-3 fingerprints keyed by a key derived from the domain secret: the file is no
//! dictionary of hashes an outsider could invert by enumerating ID numbers), its file form, and
//! the scan: every text cell exactly and every window of it at a character boundary whose length
//! an indexed value has (values embedded in longer strings), numeric cells exactly. It never
//! holds or reports a value: a hit names the source column and the output cell, nothing else.
//! It must never let a scan run unbounded: work is counted and a scan over its budget fails
//! (closed).

use std::path::Path;

use arrow_array::{Array, ArrayRef};
use siphasher::sip::SipHasher13;

pub use super::scan::{ColumnHits, LeakScanner};
pub use super::text::normalize;
use super::text::{cell_text, is_numeric};

/// Shortest normalized value (in bytes) the index holds: shorter ones match too much.
pub const MIN_VALUE_BYTES: usize = 4;
/// Shortest indexed value looked for inside longer strings.
pub const MIN_EMBEDDED_BYTES: usize = 8;
/// Largest number of values one index holds.
pub const MAX_VALUES: usize = 64 << 20;
/// A column is indexed only when at least this share of its values is distinct: identifying
/// values (IDs, phones, names, exact amounts), not categories a whole table shares (a date or a
/// sex would match every output). Low-cardinality columns are the threshold's to protect.
pub const MIN_DISTINCT_SHARE: f64 = 0.5;

/// The key of a domain's leak index (derived from the domain secret; never leaves the domain).
#[derive(Clone)]
pub struct LeakKey([u8; 16]);

impl std::fmt::Debug for LeakKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeakKey(..)")
    }
}

impl LeakKey {
    /// The leak-index key of a domain.
    pub fn derive(domain_secret: &[u8; 32]) -> LeakKey {
        let k = blake3::derive_key("enclave v1 leak index", domain_secret);
        let mut out = [0u8; 16];
        out.copy_from_slice(&k[..16]);
        LeakKey(out)
    }

    /// A check value naming the key in index files (not the key itself).
    fn check(&self) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[..16].copy_from_slice(&self.0);
        *blake3::keyed_hash(&k, b"enclave v1 leak index check").as_bytes()
    }

    pub(crate) fn hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_key(&self.0)
    }
}

/// Why an index could not be built, read or used.
#[derive(Debug, thiserror::Error)]
pub enum LeakError {
    /// More values than an index holds, or a scan over its work budget.
    #[error("{0}")]
    TooLarge(String),
    /// An index file that is not one, or not of this domain's key.
    #[error("leak index {path}: {why}")]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Reading or writing an index file.
    #[error("leak index {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// One source column of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `dataset.column`.
    pub name: String,
    /// Whether its values are numbers (a numeric cell of an output equal to one may be a
    /// coincidence: flagged, not blocked).
    pub numeric: bool,
}

/// What adding one column to an index did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnStats {
    /// Non-null values seen.
    pub values: u64,
    /// Distinct normalized values of at least [`MIN_VALUE_BYTES`].
    pub distinct: u64,
    /// Whether the column was indexed ([`MIN_DISTINCT_SHARE`]).
    pub indexed: bool,
}

/// The values of one column being collected for an index: their fingerprints and lengths.
pub struct ColumnValues {
    name: String,
    hasher: SipHasher13,
    numeric: Option<bool>,
    values: u64,
    found: Vec<(u64, u32)>,
    text: String,
    norm: String,
}

impl ColumnValues {
    /// Adds the values of one array of the column.
    pub fn add(&mut self, a: &dyn Array) -> Result<(), LeakError> {
        self.numeric.get_or_insert(is_numeric(a.data_type()));
        for i in 0..a.len() {
            self.text.clear();
            if !cell_text(a, i, &mut self.text) {
                continue;
            }
            self.values += 1;
            self.norm.clear();
            normalize(&self.text, &mut self.norm);
            if self.norm.len() < MIN_VALUE_BYTES {
                continue;
            }
            let len = u32::try_from(self.norm.len()).unwrap_or(u32::MAX);
            self.found
                .push((fingerprint(&self.hasher, self.norm.as_bytes()), len));
            if self.found.len() > MAX_VALUES {
                return Err(LeakError::TooLarge(format!(
                    "a leak index holds at most {MAX_VALUES} values"
                )));
            }
        }
        Ok(())
    }
}

/// Builds an index column by column.
pub struct LeakIndexBuilder {
    key: LeakKey,
    sources: Vec<Source>,
    entries: Vec<(u64, u16)>,
    lengths: Vec<u32>,
}

pub(crate) fn fingerprint(h: &SipHasher13, bytes: &[u8]) -> u64 {
    h.hash(bytes).max(1)
}

impl LeakIndexBuilder {
    /// An empty builder under `key`.
    pub fn new(key: &LeakKey) -> LeakIndexBuilder {
        LeakIndexBuilder {
            key: key.clone(),
            sources: Vec::new(),
            entries: Vec::new(),
            lengths: Vec::new(),
        }
    }

    /// Starts collecting the values of column `name` (`dataset.column`), array by array (a
    /// dataset's batches are read one at a time; only fingerprints are kept).
    pub fn column(&self, name: &str) -> ColumnValues {
        ColumnValues {
            name: name.to_owned(),
            hasher: self.key.hasher(),
            numeric: None,
            values: 0,
            found: Vec::new(),
            text: String::new(),
            norm: String::new(),
        }
    }

    /// Adds the values of column `name` (`dataset.column`), given as its arrays; indexes them if
    /// enough are distinct.
    pub fn add_column(
        &mut self,
        name: &str,
        arrays: &[ArrayRef],
    ) -> Result<ColumnStats, LeakError> {
        let mut c = self.column(name);
        for a in arrays {
            c.add(a.as_ref())?;
        }
        self.add_values(c)
    }

    /// Adds a column's collected values; indexes them if enough are distinct.
    pub fn add_values(&mut self, c: ColumnValues) -> Result<ColumnStats, LeakError> {
        let tag = u16::try_from(self.sources.len())
            .map_err(|_| LeakError::TooLarge("more than 65,535 indexed columns".into()))?;
        let ColumnValues {
            name,
            numeric,
            values,
            mut found,
            ..
        } = c;
        found.sort_unstable();
        found.dedup_by_key(|e| e.0);
        let distinct = found.len() as u64;
        let indexed = distinct > 0 && distinct as f64 >= MIN_DISTINCT_SHARE * values as f64;
        if indexed {
            if self.entries.len() + found.len() > MAX_VALUES {
                return Err(LeakError::TooLarge(format!(
                    "a leak index holds at most {MAX_VALUES} values"
                )));
            }
            self.sources.push(Source {
                name,
                numeric: numeric.unwrap_or(false),
            });
            for (fp, len) in found {
                self.entries.push((fp, tag));
                if !self.lengths.contains(&len) {
                    self.lengths.push(len);
                }
            }
        }
        Ok(ColumnStats {
            values,
            distinct,
            indexed,
        })
    }

    /// The index.
    pub fn finish(mut self) -> LeakIndex {
        self.entries.sort_unstable();
        self.entries.dedup_by_key(|e| e.0);
        self.lengths.sort_unstable();
        let capacity = (self.entries.len() * 10 / 7 + 1)
            .next_power_of_two()
            .max(16);
        let mut slots = vec![0u64; capacity];
        let mut tags = vec![0u16; capacity];
        let mask = capacity - 1;
        for (fp, tag) in &self.entries {
            let mut i = (*fp as usize) & mask;
            while slots[i] != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = *fp;
            tags[i] = *tag;
        }
        let (filter, filter_mask) = prefilter(&slots, self.entries.len());
        LeakIndex {
            key: self.key,
            sources: self.sources,
            lengths: self.lengths,
            values: self.entries.len(),
            slots,
            tags,
            filter,
            filter_mask,
        }
    }
}

/// A built index: fingerprints of normalized values, each tagged with its source column.
pub struct LeakIndex {
    pub(crate) key: LeakKey,
    pub(crate) sources: Vec<Source>,
    pub(crate) lengths: Vec<u32>,
    values: usize,
    slots: Vec<u64>,
    tags: Vec<u16>,
    /// One bit per 12 values' worth of the fingerprints' high bits (made from the slots, never
    /// stored): most lookups of absent values end here, in a table small enough for the cache.
    filter: Vec<u64>,
    filter_mask: u64,
}

/// The prefilter of `slots`: a bit set of at least 12 bits per value, indexed by the high 32 bits
/// of each fingerprint (the table is indexed by the low ones).
fn prefilter(slots: &[u64], values: usize) -> (Vec<u64>, u64) {
    let bits = (values.saturating_mul(12)).next_power_of_two().max(64);
    let mut filter = vec![0u64; bits / 64];
    let mask = (bits - 1) as u64;
    for &s in slots.iter().filter(|s| **s != 0) {
        let b = (s >> 32) & mask;
        filter[(b >> 6) as usize] |= 1 << (b & 63);
    }
    (filter, mask)
}

impl std::fmt::Debug for LeakIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeakIndex")
            .field("sources", &self.sources)
            .field("values", &self.values)
            .finish_non_exhaustive()
    }
}

const MAGIC: &[u8; 8] = b"ENCLEAK1";

impl LeakIndex {
    /// The source columns.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.values
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.values == 0
    }

    /// The source tag of fingerprint `fp`, if indexed.
    pub(crate) fn lookup(&self, fp: u64) -> Option<u16> {
        let b = (fp >> 32) & self.filter_mask;
        if self.filter[(b >> 6) as usize] & (1 << (b & 63)) == 0 {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = (fp as usize) & mask;
        loop {
            match self.slots[i] {
                0 => return None,
                s if s == fp => return Some(self.tags[i]),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Whether `value` (any text) is in the index, and from which source.
    pub fn find(&self, value: &str) -> Option<&Source> {
        let mut norm = String::new();
        normalize(value, &mut norm);
        let fp = fingerprint(&self.key.hasher(), norm.as_bytes());
        self.lookup(fp)
            .and_then(|t| self.sources.get(usize::from(t)))
    }

    /// The file form: magic, key check, sources, lengths, slots and tags, then a blake3 of all
    /// of it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.slots.len() * 10 + 256);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.key.check());
        b.extend_from_slice(&(self.sources.len() as u32).to_le_bytes());
        for s in &self.sources {
            b.extend_from_slice(&(s.name.len() as u32).to_le_bytes());
            b.extend_from_slice(s.name.as_bytes());
            b.push(u8::from(s.numeric));
        }
        b.extend_from_slice(&(self.lengths.len() as u32).to_le_bytes());
        for l in &self.lengths {
            b.extend_from_slice(&l.to_le_bytes());
        }
        b.extend_from_slice(&(self.values as u64).to_le_bytes());
        b.extend_from_slice(&(self.slots.len() as u64).to_le_bytes());
        for s in &self.slots {
            b.extend_from_slice(&s.to_le_bytes());
        }
        for t in &self.tags {
            b.extend_from_slice(&t.to_le_bytes());
        }
        let sum = blake3::hash(&b);
        b.extend_from_slice(sum.as_bytes());
        b
    }

    /// Reads the file form back under `key`; `path` names it in errors.
    pub fn from_bytes(key: &LeakKey, bytes: &[u8], path: &str) -> Result<LeakIndex, LeakError> {
        let bad = |why| LeakError::Damaged {
            path: path.to_owned(),
            why,
        };
        let (body, sum) = bytes
            .split_last_chunk::<32>()
            .ok_or_else(|| bad("truncated"))?;
        if blake3::hash(body).as_bytes() != sum {
            return Err(bad("checksum mismatch"));
        }
        let mut r = Reader { b: body, at: 0 };
        if r.take(8).ok_or_else(|| bad("truncated"))? != MAGIC {
            return Err(bad("not a leak index"));
        }
        if r.take(32).ok_or_else(|| bad("truncated"))? != key.check() {
            return Err(bad("made under another domain key"));
        }
        let n = r.u32().ok_or_else(|| bad("truncated"))? as usize;
        let mut sources = Vec::new();
        for _ in 0..n {
            let len = r.u32().ok_or_else(|| bad("truncated"))? as usize;
            let name = r.take(len).ok_or_else(|| bad("truncated"))?;
            let name = std::str::from_utf8(name).map_err(|_| bad("a source name is not UTF-8"))?;
            let numeric = r.take(1).ok_or_else(|| bad("truncated"))?[0] != 0;
            sources.push(Source {
                name: name.to_owned(),
                numeric,
            });
        }
        let n = r.u32().ok_or_else(|| bad("truncated"))? as usize;
        let mut lengths = Vec::new();
        for _ in 0..n {
            lengths.push(r.u32().ok_or_else(|| bad("truncated"))?);
        }
        let values = usize::try_from(r.u64().ok_or_else(|| bad("truncated"))?)
            .map_err(|_| bad("too many values"))?;
        let capacity = usize::try_from(r.u64().ok_or_else(|| bad("truncated"))?)
            .map_err(|_| bad("too many slots"))?;
        if !capacity.is_power_of_two() || values >= capacity || values > MAX_VALUES {
            return Err(bad("inconsistent sizes"));
        }
        let need = capacity
            .checked_mul(10)
            .ok_or_else(|| bad("inconsistent sizes"))?;
        if r.b.len() - r.at != need {
            return Err(bad("inconsistent sizes"));
        }
        let raw = r.take(capacity * 8).ok_or_else(|| bad("truncated"))?;
        let slots: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let raw = r.take(capacity * 2).ok_or_else(|| bad("truncated"))?;
        let tags: Vec<u16> = raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        if slots.iter().filter(|s| **s != 0).count() != values {
            return Err(bad("inconsistent sizes"));
        }
        if tags.iter().any(|t| usize::from(*t) >= sources.len().max(1)) {
            return Err(bad("a slot names no source"));
        }
        let (filter, filter_mask) = prefilter(&slots, values);
        Ok(LeakIndex {
            key: key.clone(),
            sources,
            lengths,
            values,
            slots,
            tags,
            filter,
            filter_mask,
        })
    }

    /// Writes the file form to `path` (atomically).
    pub fn save(&self, path: &Path) -> Result<(), LeakError> {
        let io = |source| LeakError::Io {
            path: path.display().to_string(),
            source,
        };
        // A temporary of its own (two jobs may build the same index at once).
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
        std::fs::write(&tmp, self.to_bytes()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads the index at `path` (at most `max_bytes`).
    pub fn load(key: &LeakKey, path: &Path, max_bytes: u64) -> Result<LeakIndex, LeakError> {
        let name = path.display().to_string();
        let io = |source| LeakError::Io {
            path: name.clone(),
            source,
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > max_bytes {
            return Err(LeakError::Damaged {
                path: name,
                why: "larger than any index this domain makes",
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        LeakIndex::from_bytes(key, &bytes, &name)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Some(u64::from_le_bytes(a))
    }
}

#[cfg(test)]
#[path = "leak_tests.rs"]
mod tests;
