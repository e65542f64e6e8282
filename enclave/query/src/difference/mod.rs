//! The difference check of a job's session: no cell a restricted query shows may differ from a
//! cell the development entity was released before, or from one this job was shown already, by
//! fewer than k subjects (and by some) — the same aggregate with and without one person.
//! The union of a grouped query's shown cells is checked as a cell too (a total minus the
//! visible groups); where it conflicts, the smallest shown cell is suppressed as well, until it
//! does not. And the groups a query hides (under the threshold, dominated, or suppressed here)
//! must hold no one or at least k subjects, since the population's total may be open: else the
//! smallest shown cell is suppressed too.
//!
//! Owns the cells a job was shown (their definition, subject count and, once computed, subject
//! set), the decisions (which cells of which query it suppressed, kept for the transcript so that
//! re-derivation suppresses the same) and the job's cells at its end, with their sets. Subject
//! sets are computed lazily: |A Δ B| ≥ ||A| − |B||, so only a cell whose count lies within k of a
//! compared cell of another definition needs its set now, and nothing more is read for the
//! others. It must never show a cell it could not compare, and never compare without the
//! subjects' counts.

mod passes;
mod session;
mod subjects;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::prelude::SessionContext;
use enclave_egress::difference::{
    CellDef, Cells, Count, NearIndex, SubjectKey, SubjectSet, disjoint, distance, may_be_close,
    same_cell, too_close,
};

pub use subjects::Subjects;

use crate::QueryError;
use crate::grammar::Population;

/// Most cells a job may be shown under the difference check (every one is kept).
pub const MAX_CELLS: usize = 1 << 20;

/// How a session decides what the difference check suppresses.
pub enum Differences {
    /// Compare with the development entity's released cells and the job's own.
    Live {
        /// The cells released to the entity so far.
        released: Arc<Cells>,
        /// The domain's subject key.
        key: SubjectKey,
    },
    /// Suppress what was suppressed when the job ran (re-derivation from its transcript): per
    /// checked query (in order), the definitions of the cells suppressed. The cells shown are
    /// kept as in a live check, so that their subjects can be computed.
    Replay {
        /// Per checked query, the definitions suppressed.
        decisions: BTreeMap<u64, BTreeSet<CellDef>>,
        /// The domain's subject key.
        key: SubjectKey,
    },
}

impl Differences {
    /// A check with nothing released before and a fresh random subject key (a session whose
    /// cells nobody keeps: tests, local runs).
    pub fn local() -> Result<Differences, QueryError> {
        let mut key = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
            .map_err(|_| QueryError::Internal("no system randomness".into()))?;
        Ok(Differences::Live {
            released: Arc::new(Cells::new()),
            key: SubjectKey::new(key),
        })
    }
}

/// One cell shown.
struct Shown {
    key: Vec<ScalarValue>,
    count: u64,
    def: CellDef,
}

/// A query's shown cells.
struct Seen {
    population: Population,
    /// Its population's digest where its groups are disjoint (see [`Cell::family`]).
    ///
    /// [`Cell::family`]: enclave_egress::difference::Cell::family
    family: Option<CellDef>,
    cells: Vec<Shown>,
    /// The union of its cells (a grouped query's).
    margin: Option<(CellDef, Count)>,
    /// Each cell's subjects, once computed.
    sets: Option<Vec<SubjectSet>>,
    /// Their union, once computed.
    union: Option<SubjectSet>,
}

impl Seen {
    /// The family of its cell `cell` (a union has none).
    fn family_of(&self, cell: Option<usize>) -> Option<CellDef> {
        cell.and(self.family)
    }

    fn count_of(&self, cell: Option<usize>) -> (CellDef, Count) {
        match cell {
            Some(i) => self
                .cells
                .get(i)
                .map_or((CellDef([0; 32]), Count::exact(0)), |c| {
                    (c.def, Count::exact(c.count))
                }),
            None => self.margin.unwrap_or((CellDef([0; 32]), Count::exact(0))),
        }
    }
}

/// A cell compared with: released (index into the released cells), or shown in this job
/// (query, cell; `None` for its margin).
#[derive(Debug, Clone, Copy)]
enum Ref {
    Released(usize),
    Seen(usize, Option<usize>),
}

/// The difference check's state for one job.
pub(crate) struct Guard {
    mode: Differences,
    /// The job's end: the check's own passes stop with its queries.
    cancel: crate::cancel::Cancel,
    /// The memory limit, for errors.
    memory: u64,
    /// The domain's subject key, and its name.
    key: SubjectKey,
    key_id: [u8; 32],
    seen: Vec<Seen>,
    refs: Vec<(usize, Option<usize>)>,
    index: NearIndex,
    decisions: BTreeMap<u64, Vec<CellDef>>,
    shown: usize,
    /// Queries checked so far: what decisions are keyed by.
    checks: u64,
}

/// The cells a query shows once checked.
pub(crate) struct Checked {
    /// Its batches, without the subject count column.
    pub batches: Vec<RecordBatch>,
    /// Cells suppressed by the difference check.
    pub suppressed: u64,
}

/// The digest of a cell: its population's and its key values'.
fn cell_def(prefix: &[u8; 32], key: &[ScalarValue]) -> CellDef {
    let mut h = blake3::Hasher::new_derive_key("enclave v1 cell definition");
    h.update(prefix);
    for k in key {
        let text = format!("{k:?}");
        h.update(&(text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    CellDef(*h.finalize().as_bytes())
}

/// The digest of the union of some cells of a population.
fn margin_def(prefix: &[u8; 32], cells: &[CellDef]) -> CellDef {
    let mut sorted = cells.to_vec();
    sorted.sort();
    let mut h = blake3::Hasher::new_derive_key("enclave v1 cell union");
    h.update(prefix);
    for c in sorted {
        h.update(&c.0);
    }
    CellDef(*h.finalize().as_bytes())
}

fn internal(e: impl std::fmt::Display) -> QueryError {
    QueryError::Internal(format!("difference check: {e}"))
}

impl Guard {
    pub(crate) fn new(mode: Differences, cancel: crate::cancel::Cancel, memory: u64) -> Guard {
        let key = match &mode {
            Differences::Live { key, .. } | Differences::Replay { key, .. } => key.clone(),
        };
        let id = key.id();
        Guard {
            mode,
            cancel,
            memory,
            key,
            key_id: id,
            seen: Vec::new(),
            refs: Vec::new(),
            index: NearIndex::default(),
            decisions: BTreeMap::new(),
            shown: 0,
            checks: 0,
        }
    }

    /// Per checked query (0-based, in the order they were checked), the definitions of the cells
    /// the check suppressed.
    pub(crate) fn decisions(&self) -> BTreeMap<u64, Vec<CellDef>> {
        self.decisions.clone()
    }

    /// Checks the cells of a query (`batches`: the user's aggregate columns, then the subject
    /// count; `hidden`: the subjects of the groups its plan suppressed) against everything
    /// compared with, and keeps those it shows.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn check(
        &mut self,
        ctx: &SessionContext,
        k: u64,
        hidden: u64,
        population: Population,
        prefix: [u8; 32],
        batches: Vec<RecordBatch>,
    ) -> Result<Checked, QueryError> {
        let query = self.checks;
        // Where each subject has one row, this population's groups hold different people.
        let family = population.partition.then_some(CellDef(prefix));
        self.checks = self.checks.saturating_add(1);
        let nkeys = population.keys.len();
        // Every cell: where it is, its key values, subjects and definition.
        let mut rows: Vec<(usize, usize, Shown)> = Vec::new();
        for (b, batch) in batches.iter().enumerate() {
            let last = batch
                .num_columns()
                .checked_sub(1)
                .ok_or_else(|| internal("a result without its count"))?;
            let n = cast(batch.column(last), &DataType::Int64).map_err(internal)?;
            let n = n.as_primitive::<Int64Type>();
            for r in 0..batch.num_rows() {
                let key = (0..nkeys)
                    .map(|c| ScalarValue::try_from_array(batch.column(c), r))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(internal)?;
                let count = if n.is_valid(r) {
                    u64::try_from(n.value(r)).unwrap_or(0)
                } else {
                    0
                };
                let def = cell_def(&prefix, &key);
                rows.push((b, r, Shown { key, count, def }));
            }
        }
        if self.shown.saturating_add(rows.len()) > MAX_CELLS {
            return Err(QueryError::Refused(format!(
                "the difference check keeps at most {MAX_CELLS} cells per job: this query would \
                 show more"
            )));
        }
        let mut keep = vec![true; rows.len()];
        let mut suppressed: Vec<CellDef> = Vec::new();
        // Subject sets of this query's cells, where the check needed them.
        let mut sets: Option<Vec<SubjectSet>> = None;
        match &self.mode {
            Differences::Replay { decisions, .. } => {
                if let Some(defs) = decisions.get(&query) {
                    for (i, (_, _, c)) in rows.iter().enumerate() {
                        if defs.contains(&c.def) {
                            keep[i] = false;
                            suppressed.push(c.def);
                        }
                    }
                }
            }
            Differences::Live { released, .. } => {
                let released = Arc::clone(released);
                let k = k.max(1);
                // 0. A cell's complement within its population before the WHERE's restricted
                // conditions (a count open columns may give, minus the cell) must hold no one
                // or at least k subjects: else the cell and that count are a differencing pair.
                let keys: Vec<&[ScalarValue]> = rows.iter().map(|r| r.2.key.as_slice()).collect();
                let open = self.open_counts(ctx, &population, &keys).await?;
                if let Some(open) = &open {
                    for (i, (_, _, c)) in rows.iter().enumerate() {
                        let close = match open.cells.get(i).copied().flatten() {
                            Some(o) => too_close(o.saturating_sub(c.count), k),
                            // Not found: it cannot be judged, so it is not shown.
                            None => true,
                        };
                        if close {
                            keep[i] = false;
                            suppressed.push(c.def);
                        }
                    }
                }
                // 1. Each cell against every cell of another definition within reach.
                for i in 0..rows.len() {
                    if !keep[i] {
                        continue;
                    }
                    let (def, count) = (rows[i].2.def, Count::exact(rows[i].2.count));
                    let near = self.near(&released, (def, family), count, k);
                    if near.is_empty() {
                        continue;
                    }
                    if sets.is_none() {
                        let keys: Vec<&[ScalarValue]> =
                            rows.iter().map(|r| r.2.key.as_slice()).collect();
                        sets = Some(self.sets_of(ctx, &population, &keys).await?);
                    }
                    let mine = sets
                        .as_ref()
                        .and_then(|s| s.get(i))
                        .cloned()
                        .ok_or_else(|| internal("a cell's subjects vanished"))?;
                    for r in near {
                        let (c, set) = self.subjects_of(ctx, &released, r).await?;
                        if too_close(distance(count, &mine, c, &set), k) {
                            keep[i] = false;
                            suppressed.push(def);
                            break;
                        }
                    }
                }
                // 2. The groups a grouped query hides must hold no one or at least k subjects:
                // its population's total (which open columns may give) minus its shown cells is
                // them. Else its smallest shown cell goes too (secondary suppression), which
                // holds at least k. (Exact where each subject has one row; where subjects have
                // several, `hidden` bounds the subjects only hidden groups hold from above.)
                // What the query hides: the groups its filter dropped and the cells suppressed
                // here; and, before restricted conditions, its open population minus its shown
                // cells (groups the WHERE removed whole included). Either too small gives
                // somebody away; one more shown cell (at least k) makes both large enough.
                let shown = (0..rows.len())
                    .filter(|&i| keep[i])
                    .fold(0u64, |a, i| a.saturating_add(rows[i].2.count));
                let dropped = rows
                    .iter()
                    .zip(&keep)
                    .filter(|(_, kept)| !**kept)
                    .fold(hidden, |a, ((_, _, c), _)| a.saturating_add(c.count));
                let open_hidden = open.as_ref().map_or(0, |o| o.total.saturating_sub(shown));
                if nkeys > 0 && (too_close(dropped, k) || too_close(open_hidden, k)) {
                    let smallest = (0..rows.len())
                        .filter(|&i| keep[i])
                        .min_by_key(|&i| (rows[i].2.count, rows[i].2.def));
                    if let Some(s) = smallest {
                        keep[s] = false;
                        suppressed.push(rows[s].2.def);
                    }
                }
                // 3. The union of a grouped query's shown cells; where it comes too close, its
                // smallest cell goes too (secondary suppression), until it does not.
                loop {
                    if nkeys == 0 {
                        break;
                    }
                    let kept: Vec<usize> = (0..rows.len()).filter(|&i| keep[i]).collect();
                    if kept.is_empty() {
                        break;
                    }
                    let (def, count) = union_of(&prefix, &population, &rows, &kept);
                    let near = self.near(&released, (def, None), count, k);
                    if near.is_empty() {
                        break;
                    }
                    if sets.is_none() {
                        let keys: Vec<&[ScalarValue]> =
                            rows.iter().map(|r| r.2.key.as_slice()).collect();
                        sets = Some(self.sets_of(ctx, &population, &keys).await?);
                    }
                    let union = match &sets {
                        Some(s) => SubjectSet::union_all(kept.iter().filter_map(|&i| s.get(i))),
                        None => return Err(internal("a query's subjects vanished")),
                    };
                    let mut close = false;
                    for r in near {
                        let (c, set) = self.subjects_of(ctx, &released, r).await?;
                        if too_close(distance(count, &union, c, &set), k) {
                            close = true;
                            break;
                        }
                    }
                    if !close {
                        break;
                    }
                    let smallest = kept
                        .iter()
                        .copied()
                        .min_by_key(|&i| (rows[i].2.count, rows[i].2.def));
                    if let Some(s) = smallest {
                        keep[s] = false;
                        suppressed.push(rows[s].2.def);
                    }
                }
            }
        }
        // 4. What is shown is compared with from now on.
        let kept: Vec<usize> = (0..rows.len()).filter(|&i| keep[i]).collect();
        self.shown = self.shown.saturating_add(kept.len());
        let margin =
            (nkeys > 0 && !kept.is_empty()).then(|| union_of(&prefix, &population, &rows, &kept));
        let kept_sets = sets.map(|s| {
            kept.iter()
                .map(|&i| s.get(i).cloned().unwrap_or_default())
                .collect::<Vec<_>>()
        });
        let q = self.seen.len();
        let mut cells = Vec::with_capacity(kept.len());
        for (j, &i) in kept.iter().enumerate() {
            let c = &rows[i].2;
            self.index.insert(Count::exact(c.count), self.refs.len());
            self.refs.push((q, Some(j)));
            cells.push(Shown {
                key: c.key.clone(),
                count: c.count,
                def: c.def,
            });
        }
        if let Some((_, count)) = margin {
            self.index.insert(count, self.refs.len());
            self.refs.push((q, None));
        }
        self.seen.push(Seen {
            population,
            family,
            cells,
            margin,
            sets: kept_sets,
            union: None,
        });
        let n_suppressed = suppressed.len() as u64;
        if !suppressed.is_empty() {
            self.decisions.entry(query).or_default().extend(suppressed);
        }
        // The kept rows, without the count column.
        let mut out = Vec::with_capacity(batches.len());
        for (b, batch) in batches.iter().enumerate() {
            let mask: datafusion::arrow::array::BooleanArray = rows
                .iter()
                .zip(&keep)
                .filter(|((bb, _, _), _)| *bb == b)
                .map(|(_, k)| Some(*k))
                .collect();
            let width = batch.num_columns().saturating_sub(1);
            let projected = batch
                .project(&(0..width).collect::<Vec<_>>())
                .map_err(internal)?;
            out.push(
                datafusion::arrow::compute::filter_record_batch(&projected, &mask)
                    .map_err(internal)?,
            );
        }
        Ok(Checked {
            batches: out,
            suppressed: n_suppressed,
        })
    }

    /// The cells within reach of (`def`, `family`, `count`): released ones and those this job
    /// was shown.
    fn near(
        &self,
        released: &Cells,
        (def, family): (CellDef, Option<CellDef>),
        count: Count,
        k: u64,
    ) -> Vec<Ref> {
        let mut out: Vec<Ref> = released
            .near_indices(def, family, count, k)
            .map(Ref::Released)
            .collect();
        for item in self.index.near(count, k) {
            if let Some(&(q, cell)) = self.refs.get(item)
                && let Some(s) = self.seen.get(q)
            {
                let (d, c) = s.count_of(cell);
                if !same_cell(d, c, def, count)
                    && !disjoint(d, s.family_of(cell), def, family)
                    && may_be_close(c, count, k)
                {
                    out.push(Ref::Seen(q, cell));
                }
            }
        }
        out
    }
}

/// The definition and count bounds of the union of cells `kept`.
fn union_of(
    prefix: &[u8; 32],
    population: &Population,
    rows: &[(usize, usize, Shown)],
    kept: &[usize],
) -> (CellDef, Count) {
    let defs: Vec<CellDef> = kept.iter().map(|&i| rows[i].2.def).collect();
    let sum = kept
        .iter()
        .fold(0u64, |a, &i| a.saturating_add(rows[i].2.count));
    let max = kept.iter().map(|&i| rows[i].2.count).max().unwrap_or(0);
    let count = if population.partition {
        Count::exact(sum)
    } else {
        Count { lo: max, hi: sum }
    };
    (margin_def(prefix, &defs), count)
}
