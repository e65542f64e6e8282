//! Difference checks across releases: the subjects behind every aggregate cell a development
//! entity has seen, and the rule that no new cell may differ from one of them by fewer than k
//! subjects (Google Ads Data Hub's difference check, which none of the open systems has).
//!
//! Owns the subject index (a subject's value, hashed with a key only the domain holds, to 32
//! bits), the set of a cell's subjects (a compressed bitmap, `roaring`), a cell's definition
//! digest (two cells with one definition over the same snapshots have the same subjects), the
//! bounds of a cell's subject count, the distance between two cells, a searchable list of cells
//! and its encoding (decoded as hostile input: bounded, validated). Which cells a query shows and
//! which it suppresses is the query host's; whether a release may go ahead is review's. It must
//! never call two cells identical whose counts differ, and never take a cell whose subjects it
//! does not know for one far from another.

use std::collections::BTreeMap;
use std::hash::Hasher;
use std::io::Cursor;

use roaring::RoaringBitmap;

/// The key of the subject index: derived from the domain's secret, the same for every job (so
/// that cells of different jobs compare), never seen by a developer (so that nobody can choose
/// two subjects with one index).
#[derive(Clone)]
pub struct SubjectKey([u8; 32]);

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKey(..)")
    }
}

impl SubjectKey {
    /// A key from 32 secret bytes.
    pub fn new(bytes: [u8; 32]) -> SubjectKey {
        SubjectKey(bytes)
    }

    /// A name of the key that gives nothing of it away.
    pub fn id(&self) -> [u8; 32] {
        blake3::derive_key("enclave v1 subject key id", &self.0)
    }

    /// The index of the subject whose value (as text) is `value`: SipHash-1-3 under the key,
    /// folded to 32 bits. Two subjects share an index with probability 2⁻³²; [`distance`] never
    /// lets that make two cells of different counts look identical.
    pub fn index(&self, value: &[u8]) -> u32 {
        let (mut k0, mut k1) = ([0u8; 8], [0u8; 8]);
        k0.copy_from_slice(&self.0[..8]);
        k1.copy_from_slice(&self.0[8..16]);
        let (k0, k1) = (u64::from_le_bytes(k0), u64::from_le_bytes(k1));
        let mut h = siphasher::sip::SipHasher13::new_with_keys(k0, k1);
        h.write(value);
        let x = h.finish();
        (x ^ (x >> 32)) as u32
    }
}

/// The subjects of a cell, by index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubjectSet(RoaringBitmap);

impl SubjectSet {
    /// The empty set.
    pub fn new() -> SubjectSet {
        SubjectSet::default()
    }

    /// Adds subject `index` (one at a time: for many, [`SubjectSet::from_indices`]).
    pub fn insert(&mut self, index: u32) {
        self.0.insert(index);
    }

    /// The set of `indices` (in any order, repeats allowed). Built in order: indices are keyed
    /// hashes, spread over the whole 32-bit range, and a bitmap grown at random places would
    /// move its containers on every new one.
    pub fn from_indices(mut indices: Vec<u32>) -> SubjectSet {
        indices.sort_unstable();
        indices.dedup();
        match RoaringBitmap::from_sorted_iter(indices.iter().copied()) {
            Ok(b) => SubjectSet(b),
            // Unreachable (sorted, deduplicated); built one by one all the same.
            Err(_) => SubjectSet(indices.into_iter().collect()),
        }
    }

    /// The union of `sets`, built in one ordered pass.
    pub fn union_all<'a>(sets: impl IntoIterator<Item = &'a SubjectSet>) -> SubjectSet {
        let mut all: Vec<u32> = Vec::new();
        for s in sets {
            all.extend(s.0.iter());
        }
        SubjectSet::from_indices(all)
    }

    /// Adds every subject of `other`.
    pub fn union_with(&mut self, other: &SubjectSet) {
        *self = SubjectSet::union_all([&*self, other]);
    }

    /// The indices, in order.
    pub fn indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter()
    }

    /// Subjects held (indices, so at most the subject count).
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Subjects in exactly one of the two sets.
    pub fn symmetric_difference_len(&self, other: &SubjectSet) -> u64 {
        let both = self.0.intersection_len(&other.0);
        (self.0.len() - both) + (other.0.len() - both)
    }

    /// The portable roaring encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.serialized_size());
        // Writing to a Vec cannot fail.
        let _ = self.0.serialize_into(&mut out);
        out
    }

    /// A set from its encoding: validated (sorted, in-range containers), exactly `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<SubjectSet, DifferenceError> {
        let mut r = Cursor::new(bytes);
        let set = RoaringBitmap::deserialize_from(&mut r)
            .map_err(|_| DifferenceError::Invalid("a subject set does not decode".into()))?;
        if r.position() != bytes.len() as u64 {
            return Err(DifferenceError::Invalid("bytes after a subject set".into()));
        }
        Ok(SubjectSet(set))
    }
}

/// What defines a cell's subjects: the digest of its population (snapshots, joins, filter, the
/// grouping columns) and its key values. Two cells with one definition have the same subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellDef(pub [u8; 32]);

/// Bounds of a cell's subject count: exact for a cell (`lo == hi`); for the union of a query's
/// groups over subjects with several rows, from its largest group to the sum of its groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// At least.
    pub lo: u64,
    /// At most.
    pub hi: u64,
}

impl Count {
    /// An exact count.
    pub fn exact(n: u64) -> Count {
        Count { lo: n, hi: n }
    }

    /// The least number of subjects two cells with these counts can differ by.
    pub fn gap(self, other: Count) -> u64 {
        if self.hi < other.lo {
            other.lo - self.hi
        } else {
            self.lo.saturating_sub(other.hi)
        }
    }
}

/// A cell whose subjects are known.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Its definition.
    pub def: CellDef,
    /// Its population's digest where that population's groups are disjoint (each subject has
    /// one row, so in one group): two cells of one family and different definitions hold
    /// different people, at least k each, and are never close.
    pub family: Option<CellDef>,
    /// Its subject count.
    pub count: Count,
    /// Its subjects.
    pub set: SubjectSet,
}

/// How many subjects two cells differ by, as far as can be known: the size of the symmetric
/// difference of their index sets, but never less than their counts allow (two subjects sharing
/// an index do not make a one-person difference vanish).
pub fn distance(a: Count, a_set: &SubjectSet, b: Count, b_set: &SubjectSet) -> u64 {
    a_set.symmetric_difference_len(b_set).max(a.gap(b))
}

/// Whether two cells are one: the same definition and count.
pub fn same_cell(a: CellDef, a_count: Count, b: CellDef, b_count: Count) -> bool {
    a == b && a_count == b_count
}

/// Whether two cells are different groups of one population whose groups are disjoint.
pub fn disjoint(
    a: CellDef,
    a_family: Option<CellDef>,
    b: CellDef,
    b_family: Option<CellDef>,
) -> bool {
    a != b && a_family.is_some() && a_family == b_family
}

/// Whether a distance of `d` subjects gives somebody away under threshold `k`: two different
/// cells closer than `k` (identical cells give nothing new).
pub fn too_close(d: u64, k: u64) -> bool {
    d > 0 && d < k
}

/// Whether two cells with these counts may be closer than `k`.
pub fn may_be_close(a: Count, b: Count, k: u64) -> bool {
    a.gap(b) < k
}

/// Items searchable by subject count: those that may be closer than k to a given count.
/// Exact counts are searched in order; bounded ones (a union's, one per grouped query) are few
/// and each is checked.
#[derive(Debug, Clone, Default)]
pub struct NearIndex {
    exact: BTreeMap<u64, Vec<usize>>,
    bounded: Vec<(Count, usize)>,
}

impl NearIndex {
    /// Adds item `i` with count `c`.
    pub fn insert(&mut self, c: Count, i: usize) {
        if c.lo == c.hi {
            self.exact.entry(c.lo).or_default().push(i);
        } else {
            self.bounded.push((c, i));
        }
    }

    /// The items whose counts may be closer than `k` to `c`.
    pub fn near(&self, c: Count, k: u64) -> impl Iterator<Item = usize> + '_ {
        let reach = k.saturating_sub(1);
        let from = c.lo.saturating_sub(reach);
        let to = c.hi.saturating_add(reach);
        self.exact
            .range(from..=to)
            .flat_map(|(_, v)| v.iter().copied())
            .chain(
                self.bounded
                    .iter()
                    .filter(move |(b, _)| may_be_close(*b, c, k))
                    .map(|(_, i)| *i),
            )
    }
}

/// Two cells closer than k.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// The new cell (index into the list checked).
    pub cell: usize,
    /// Subjects they differ by (fewer than k, more than none).
    pub distance: u64,
}

/// The cells a development entity has seen, searchable by count.
#[derive(Debug, Clone, Default)]
pub struct Cells {
    cells: Vec<Cell>,
    index: NearIndex,
}

/// Magic of the encoding.
const MAGIC: &[u8; 16] = b"enclave cells v1";

impl Cells {
    /// No cells.
    pub fn new() -> Cells {
        Cells::default()
    }

    /// Adds `cell`.
    pub fn push(&mut self, cell: Cell) {
        self.index.insert(cell.count, self.cells.len());
        self.cells.push(cell);
    }

    /// Adds every cell of `other`.
    pub fn extend(&mut self, other: Cells) {
        for c in other.cells {
            self.push(c);
        }
    }

    /// The cells.
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The cells that may be closer than `k` to a cell with count `c`, definition `def` and
    /// family `family` (a cell of the same definition and count is the same cell; one of the
    /// same family, a disjoint group).
    pub fn near(
        &self,
        def: CellDef,
        family: Option<CellDef>,
        c: Count,
        k: u64,
    ) -> impl Iterator<Item = &Cell> + '_ {
        self.near_indices(def, family, c, k)
            .filter_map(|i| self.cells.get(i))
    }

    /// [`Cells::near`], as indices into [`Cells::cells`].
    pub fn near_indices(
        &self,
        def: CellDef,
        family: Option<CellDef>,
        c: Count,
        k: u64,
    ) -> impl Iterator<Item = usize> + '_ {
        self.index.near(c, k).filter(move |&i| {
            self.cells.get(i).is_some_and(|x| {
                !same_cell(x.def, x.count, def, c)
                    && !disjoint(x.def, x.family, def, family)
                    && may_be_close(x.count, c, k)
            })
        })
    }

    /// The first cell of `new` that differs from a cell of `self` by fewer than `k` subjects
    /// (and by some).
    pub fn conflict(&self, new: &Cells, k: u64) -> Option<Conflict> {
        for (i, a) in new.cells.iter().enumerate() {
            for b in self.near(a.def, a.family, a.count, k) {
                let d = distance(a.count, &a.set, b.count, &b.set);
                if too_close(d, k) {
                    return Some(Conflict {
                        cell: i,
                        distance: d,
                    });
                }
            }
        }
        None
    }

    /// The encoding: magic, cell count, then per cell its definition, count bounds and set.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.cells.len() as u64).to_le_bytes());
        for c in &self.cells {
            out.extend_from_slice(&c.def.0);
            out.extend_from_slice(&c.count.lo.to_le_bytes());
            out.extend_from_slice(&c.count.hi.to_le_bytes());
            match c.family {
                Some(f) => {
                    out.push(1);
                    out.extend_from_slice(&f.0);
                }
                None => out.push(0),
            }
            let set = c.set.encode();
            out.extend_from_slice(&(set.len() as u64).to_le_bytes());
            out.extend_from_slice(&set);
        }
        out
    }

    /// Cells from their encoding: every length checked against what is there (nothing is
    /// allocated for what is not), every set validated, every count's bounds ordered.
    pub fn decode(bytes: &[u8]) -> Result<Cells, DifferenceError> {
        let mut r = Reader {
            rest: bytes
                .strip_prefix(MAGIC.as_slice())
                .ok_or_else(|| bad("not a list of cells"))?,
        };
        let n = r.u64()?;
        let mut cells = Cells::new();
        for _ in 0..n {
            let mut def = [0u8; 32];
            def.copy_from_slice(r.take(32)?);
            let (lo, hi) = (r.u64()?, r.u64()?);
            if lo > hi {
                return Err(bad("a cell's count bounds are out of order"));
            }
            let family = match r.take(1)? {
                [0] => None,
                [1] => {
                    let mut f = [0u8; 32];
                    f.copy_from_slice(r.take(32)?);
                    Some(CellDef(f))
                }
                _ => return Err(bad("a cell's family flag is neither 0 nor 1")),
            };
            let len = usize::try_from(r.u64()?).map_err(|_| bad("a set too long"))?;
            let set = SubjectSet::decode(r.take(len)?)?;
            cells.push(Cell {
                def: CellDef(def),
                family,
                count: Count { lo, hi },
                set,
            });
        }
        if !r.rest.is_empty() {
            return Err(bad("bytes after the last cell"));
        }
        Ok(cells)
    }
}

fn bad(s: &str) -> DifferenceError {
    DifferenceError::Invalid(s.to_owned())
}

/// Reads an encoding front to back; never past its end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DifferenceError> {
        if self.rest.len() < n {
            return Err(bad("a list of cells cut short"));
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Ok(a)
    }

    fn u64(&mut self) -> Result<u64, DifferenceError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
}

/// Why a list of cells was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DifferenceError {
    /// The bytes are not a list of cells (says what is wrong with the encoding, never a value).
    #[error("difference check: {0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests;
