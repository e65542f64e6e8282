//! The leak scan: output cells against a set of leak indexes, within a work budget.
//!
//! Owns the order of lookups (the whole normalized cell, then every window at a character
//! boundary whose length an indexed value of at least [`MIN_EMBEDDED_BYTES`] has, longest
//! first) and the per-column summary of hits. It never keeps or reports a cell's value, and
//! fails (closed) once its budget of lookups is spent.

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_schema::DataType;
use siphasher::sip::SipHasher13;

use super::leak::{LeakError, LeakIndex, MIN_EMBEDDED_BYTES, MIN_VALUE_BYTES, Source, fingerprint};
use super::text::{cell_text, normalize};

/// Hits of one output column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnHits {
    /// The output column (index into its schema).
    pub column: usize,
    /// Cells that hit.
    pub cells: u64,
    /// The first row that hit.
    pub first_row: u64,
    /// The source column of the first hit (`dataset.column`).
    pub source: String,
    /// Whether the first hit was a value embedded in a longer string.
    pub embedded: bool,
    /// Whether every hit was a numeric cell equal to a numeric source value (may be a
    /// coincidence).
    pub numeric_only: bool,
}

/// Scans cells against a set of indexes, within a work budget.
pub struct LeakScanner<'a> {
    indexes: Vec<(&'a LeakIndex, SipHasher13)>,
    /// Window lengths to try inside longer strings (union over the indexes, ≥
    /// [`MIN_EMBEDDED_BYTES`]).
    windows: Vec<usize>,
    /// Lookups left.
    work_left: u64,
    /// Cells scanned.
    pub cells: u64,
    /// Lookups made.
    pub lookups: u64,
    norm: String,
    text: String,
    /// A batch of cells: their normalized texts, one after the other…
    batch_text: String,
    /// …each cell's row and range in `batch_text`…
    batch: Vec<(usize, usize, usize)>,
    /// …and its fingerprint under each index (0: too short to look up).
    fps: Vec<u64>,
    /// The fingerprints of one cell's windows.
    window_fps: Vec<u64>,
}

/// Cells fingerprinted before any is looked up: the lookups of a batch are independent, so the
/// processor overlaps their cache misses (an index of 10M values is far larger than any cache).
const BATCH: usize = 64;

impl<'a> LeakScanner<'a> {
    /// A scanner over `indexes`, allowed `work` lookups in all.
    pub fn new(indexes: &[&'a LeakIndex], work: u64) -> LeakScanner<'a> {
        let mut windows: Vec<usize> = indexes
            .iter()
            .flat_map(|i| i.lengths.iter().map(|l| *l as usize))
            .filter(|l| *l >= MIN_EMBEDDED_BYTES)
            .collect();
        windows.sort_unstable();
        windows.dedup();
        LeakScanner {
            indexes: indexes.iter().map(|i| (*i, i.key.hasher())).collect(),
            windows,
            work_left: work,
            cells: 0,
            lookups: 0,
            norm: String::new(),
            text: String::new(),
            batch_text: String::new(),
            batch: Vec::with_capacity(BATCH),
            fps: Vec::with_capacity(BATCH * indexes.len().max(1)),
            window_fps: Vec::new(),
        }
    }

    fn spend(&mut self) -> Result<(), LeakError> {
        if self.work_left == 0 {
            return Err(LeakError::TooLarge(
                "the leak scan's work budget is spent (the outputs hold too much text)".into(),
            ));
        }
        self.work_left -= 1;
        self.lookups += 1;
        Ok(())
    }

    fn probe(&mut self, bytes: &[u8]) -> Result<Option<&'a Source>, LeakError> {
        self.spend()?;
        for &(ix, ref h) in &self.indexes {
            if let Some(t) = ix.lookup(fingerprint(h, bytes)) {
                return Ok(ix.sources.get(usize::from(t)));
            }
        }
        Ok(None)
    }

    /// Looks for indexed values in the normalized `self.norm`: the whole, then windows.
    fn check_norm(&mut self, text_cell: bool) -> Result<Option<(&'a Source, bool)>, LeakError> {
        let norm = std::mem::take(&mut self.norm);
        let out = self.check_bytes(&norm, text_cell);
        self.norm = norm;
        out
    }

    fn check_bytes(
        &mut self,
        norm: &str,
        text_cell: bool,
    ) -> Result<Option<(&'a Source, bool)>, LeakError> {
        let b = norm.as_bytes();
        if b.len() >= MIN_VALUE_BYTES
            && let Some(s) = self.probe(b)?
        {
            return Ok(Some((s, false)));
        }
        if !text_cell {
            return Ok(None);
        }
        self.windows_of(norm)
    }

    /// Looks for indexed values embedded in the normalized `norm`: every window at character
    /// boundaries of an indexed length, longest first (the most specific value names the
    /// source: an ID holds a birth date).
    fn windows_of(&mut self, norm: &str) -> Result<Option<(&'a Source, bool)>, LeakError> {
        let b = norm.as_bytes();
        let n = self.indexes.len();
        // Every window's fingerprints first (in the order they are tried), then the lookups:
        // independent of each other, their cache misses overlap.
        let mut fps = std::mem::take(&mut self.window_fps);
        fps.clear();
        for wi in (0..self.windows.len()).rev() {
            let w = self.windows[wi];
            if w >= b.len() {
                continue;
            }
            for start in 0..=(b.len() - w) {
                if !norm.is_char_boundary(start) || !norm.is_char_boundary(start + w) {
                    continue;
                }
                if let Err(e) = self.spend() {
                    self.window_fps = fps;
                    return Err(e);
                }
                for (_, h) in &self.indexes {
                    fps.push(fingerprint(h, &b[start..start + w]));
                }
            }
        }
        let mut found = None;
        'windows: for k in 0..fps.len() / n.max(1) {
            for x in 0..n {
                let ix = self.indexes[x].0;
                if let Some(t) = ix.lookup(fps[k * n + x]) {
                    found = ix.sources.get(usize::from(t)).map(|s| (s, true));
                    break 'windows;
                }
            }
        }
        self.window_fps = fps;
        Ok(found)
    }

    /// Whether any of `names` (an output's or a column's name) holds an indexed value, exactly
    /// or embedded.
    pub fn scan_names<'n>(
        &mut self,
        names: impl Iterator<Item = &'n str>,
    ) -> Result<bool, LeakError> {
        for n in names {
            self.norm.clear();
            normalize(n, &mut self.norm);
            if self.check_norm(true)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Scans column `column` of an output (its arrays, in row order): text cells exactly and for
    /// embedded values, numeric cells (when `numbers`) exactly. Nested columns are scanned
    /// through their children.
    pub fn scan_column(
        &mut self,
        column: usize,
        arrays: &[&dyn Array],
        numbers: bool,
    ) -> Result<Option<ColumnHits>, LeakError> {
        let mut hits: Option<ColumnHits> = None;
        let mut row_base = 0u64;
        for a in arrays {
            self.scan_array(column, *a, numbers, row_base, &mut hits)?;
            row_base += a.len() as u64;
        }
        Ok(hits)
    }

    fn scan_array(
        &mut self,
        column: usize,
        a: &dyn Array,
        numbers: bool,
        row_base: u64,
        hits: &mut Option<ColumnHits>,
    ) -> Result<(), LeakError> {
        match a.data_type() {
            DataType::List(_) => {
                let l = a.as_list::<i32>();
                return self.scan_array(column, l.values().as_ref(), numbers, row_base, hits);
            }
            DataType::LargeList(_) => {
                let l = a.as_list::<i64>();
                return self.scan_array(column, l.values().as_ref(), numbers, row_base, hits);
            }
            DataType::FixedSizeList(..) => {
                let l = a.as_fixed_size_list();
                return self.scan_array(column, l.values().as_ref(), numbers, row_base, hits);
            }
            DataType::Struct(_) => {
                for c in a.as_struct().columns() {
                    self.scan_array(column, c.as_ref(), numbers, row_base, hits)?;
                }
                return Ok(());
            }
            _ => {}
        }
        let text_cell = matches!(
            a.data_type(),
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::FixedSizeBinary(_)
                | DataType::BinaryView
        );
        if !text_cell && !numbers {
            return Ok(());
        }
        // A date, time or duration is a number in disguise: its integer is looked up too (an
        // ID stored as a timestamp prints as a date).
        if numbers
            && a.data_type().is_temporal()
            && let Ok(ints) = arrow_cast::cast(a, &DataType::Int64)
        {
            self.scan_array(column, ints.as_ref(), numbers, row_base, hits)?;
        }
        let n = self.indexes.len();
        let shortest_window = self.windows.first().copied().unwrap_or(usize::MAX);
        let mut at = 0;
        while at < a.len() {
            let end = (at + BATCH).min(a.len());
            // Fingerprints of the batch first…
            self.batch_text.clear();
            self.batch.clear();
            self.fps.clear();
            for i in at..end {
                self.text.clear();
                if !cell_text(a, i, &mut self.text) {
                    continue;
                }
                self.cells += 1;
                let start = self.batch_text.len();
                normalize(&self.text, &mut self.batch_text);
                let stop = self.batch_text.len();
                self.batch.push((i, start, stop));
                let bytes = &self.batch_text.as_bytes()[start..stop];
                for (_, h) in &self.indexes {
                    self.fps.push(if bytes.len() >= MIN_VALUE_BYTES {
                        fingerprint(h, bytes)
                    } else {
                        0
                    });
                }
            }
            // …then their lookups, then the windows of the text cells that did not hit.
            for k in 0..self.batch.len() {
                let (i, start, stop) = self.batch[k];
                let mut found = None;
                if stop - start >= MIN_VALUE_BYTES {
                    self.spend()?;
                    for x in 0..n {
                        let ix = self.indexes[x].0;
                        if let Some(t) = ix.lookup(self.fps[k * n + x]) {
                            found = ix.sources.get(usize::from(t)).map(|s| (s, false));
                            break;
                        }
                    }
                }
                if found.is_none() && text_cell && stop - start > shortest_window {
                    let texts = std::mem::take(&mut self.batch_text);
                    let w = self.windows_of(&texts[start..stop]);
                    self.batch_text = texts;
                    found = w?;
                }
                let Some((source, embedded)) = found else {
                    continue;
                };
                let numeric_hit = !text_cell && source.numeric;
                match hits {
                    Some(h) => {
                        h.cells += 1;
                        h.numeric_only &= numeric_hit;
                    }
                    None => {
                        *hits = Some(ColumnHits {
                            column,
                            cells: 1,
                            first_row: row_base + i as u64,
                            source: source.name.clone(),
                            embedded,
                            numeric_only: numeric_hit,
                        });
                    }
                }
            }
            at = end;
        }
        Ok(())
    }
}
