//! The streaming verifier of a log file: every entry, the tree and every checkpoint.
//!
//! Owns the rules an exported log must satisfy — canonical lines, consecutive sequence numbers,
//! an unbroken hash chain, non-decreasing time, and signed checkpoints whose size and root match
//! the entries before them — and the precise report of the first line that breaks one. The log
//! writer replays its own file through the same code at start. It must never report success for
//! a log it did not fully read, and never stop at anything but the first failure.

use std::io::{BufRead, Read};

use serde::Serialize;

use crate::entry::{EntryFacts, Line, MAX_LINE, entry_facts};
use crate::merkle::{CompactRange, Hash, Tree};
use crate::note::{Checkpoint, NoteError, VerifierKey};

/// What is wrong at the first failing point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The file could not be read.
    Io,
    /// A line is not a canonical log line or an entry field is invalid.
    Malformed,
    /// The last line is incomplete (a crash during a write, or a cut file).
    TornTail,
    /// An entry is out of sequence: entries deleted, reordered or inserted.
    Sequence,
    /// An entry does not match the hash its successor records for it.
    Chain,
    /// An entry's time is earlier than its predecessor's.
    Time,
    /// A checkpoint is not signed by the log key.
    ForgedCheckpoint,
    /// A validly signed checkpoint does not match the entries before it.
    CheckpointMismatch,
    /// Entries at the end are not covered by any checkpoint.
    Uncommitted,
    /// The log is shorter than a trusted checkpoint says it was.
    Truncated,
    /// The log's history differs from a trusted checkpoint (rewrite or rollback).
    Inconsistent,
}

/// The first failing point of a log, named precisely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("line {line}{}: {message}", entry.map(|e| format!(" (entry {e})")).unwrap_or_default())]
pub struct Failure {
    /// 1-based line number of the file (0 when the failure is about the whole log).
    pub line: u64,
    /// The first bad entry, when it can be named.
    pub entry: Option<u64>,
    /// What kind of failure.
    pub kind: FailureKind,
    /// Explanation for a human.
    pub message: String,
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Entries read.
    pub entries: u64,
    /// Checkpoints read (all verified).
    pub checkpoints: u64,
    /// Hex Merkle root of all entries.
    pub root: String,
    /// The last checkpoint note.
    pub latest_checkpoint: Option<String>,
    /// Entries after the last checkpoint.
    pub uncommitted: u64,
    /// Size of the trusted checkpoint the log was checked against, if one was given.
    pub trusted_size: Option<u64>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok: {} entries and {} signed checkpoints verified, root {}",
            self.entries, self.checkpoints, self.root
        )?;
        if let Some(n) = self.trusted_size {
            write!(f, "; extends the trusted checkpoint of size {n}")?;
        }
        Ok(())
    }
}

/// The JSON report of a verification: `{"ok": true, "summary": …}` or
/// `{"ok": false, "failure": …}`.
pub fn outcome_json(result: &Result<Summary, Failure>) -> serde_json::Value {
    match result {
        Ok(s) => serde_json::json!({"ok": true, "summary": s}),
        Err(f) => serde_json::json!({"ok": false, "failure": f}),
    }
}

/// A tree being built while verifying: either just its right edge or the whole tree.
pub trait Accumulator {
    /// Appends a leaf.
    fn push(&mut self, leaf: Hash);
    /// Leaves so far.
    fn size(&self) -> u64;
    /// Root of the leaves so far.
    fn root(&self) -> Hash;
}

impl Accumulator for CompactRange {
    fn push(&mut self, leaf: Hash) {
        CompactRange::push(self, leaf);
    }
    fn size(&self) -> u64 {
        CompactRange::size(self)
    }
    fn root(&self) -> Hash {
        CompactRange::root(self)
    }
}

impl Accumulator for Tree {
    fn push(&mut self, leaf: Hash) {
        Tree::push(self, leaf);
    }
    fn size(&self) -> u64 {
        Tree::size(self)
    }
    fn root(&self) -> Hash {
        let size = Tree::size(self);
        Tree::root(self, size).unwrap_or_default()
    }
}

/// What a verified line was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// Entry with this sequence number.
    Entry(u64),
    /// Checkpoint of this size.
    Checkpoint(u64),
}

/// A line checked on its own (the part of verification that can run in parallel).
#[derive(Debug)]
pub enum Prepared {
    /// An entry line: its facts, or why it is malformed.
    Entry(Result<EntryFacts, String>),
    /// A checkpoint line: the opened checkpoint (or why not) and the note.
    Checkpoint(Result<Checkpoint, NoteError>, String),
    /// Neither.
    Bad(String),
}

/// Checks one line on its own: canonical form, field shapes, leaf hash, checkpoint signature.
pub fn prepare(key: &VerifierKey, text: &[u8], scratch: &mut Vec<u8>) -> Prepared {
    if let Some(r) = entry_facts(text, scratch) {
        return Prepared::Entry(r);
    }
    match Line::decode(text) {
        Ok(Line::Checkpoint(note)) => Prepared::Checkpoint(Checkpoint::open(&note, key), note),
        Ok(Line::Entry(_)) => Prepared::Bad("line is not in canonical form".into()),
        Err(why) => Prepared::Bad(why.into()),
    }
}

/// Line-by-line verifier state.
pub struct Verifier<'k, A> {
    key: &'k VerifierKey,
    acc: A,
    line: u64,
    prev_leaf: Option<Hash>,
    last_time: i64,
    committed: u64,
    checkpoints: u64,
    latest: Option<String>,
    trusted: Option<Checkpoint>,
}

impl<'k, A: Accumulator> Verifier<'k, A> {
    /// A verifier for logs signed by `key`, building into `acc` (which must be empty).
    pub fn new(key: &'k VerifierKey, acc: A) -> Self {
        Verifier {
            key,
            acc,
            line: 0,
            prev_leaf: None,
            last_time: i64::MIN,
            committed: 0,
            checkpoints: 0,
            latest: None,
            trusted: None,
        }
    }

    /// A verifier that continues after a verified prefix: `acc` holds its leaves, `prev_leaf`
    /// and `last_time` are those of its last entry, `latest` its last checkpoint (which covers
    /// all of it), `line` the lines it spans.
    pub fn resume(
        key: &'k VerifierKey,
        acc: A,
        line: u64,
        prev_leaf: Option<Hash>,
        last_time: i64,
        checkpoints: u64,
        latest: String,
    ) -> Self {
        let committed = acc.size();
        Verifier {
            key,
            acc,
            line,
            prev_leaf,
            last_time,
            committed,
            checkpoints,
            latest: Some(latest),
            trusted: None,
        }
    }

    /// Entries applied so far.
    pub fn size(&self) -> u64 {
        self.acc.size()
    }

    /// Lines applied so far.
    pub fn lines(&self) -> u64 {
        self.line
    }

    /// Leaf hash of the last entry applied.
    pub fn prev_leaf(&self) -> Option<Hash> {
        self.prev_leaf
    }

    /// Also checks the log against a checkpoint the auditor kept from an earlier look.
    pub fn with_trusted(mut self, note: &str) -> Result<Self, NoteError> {
        self.trusted = Some(Checkpoint::open(note, self.key)?);
        Ok(self)
    }

    fn fail(&self, entry: Option<u64>, kind: FailureKind, message: String) -> Failure {
        Failure {
            line: self.line,
            entry,
            kind,
            message,
        }
    }

    /// Time of the last entry read (`i64::MIN` before any).
    pub fn last_time(&self) -> i64 {
        self.last_time
    }

    /// Applies the next prepared line: the checks that depend on what came before.
    pub fn apply(&mut self, p: Prepared) -> Result<LineKind, Failure> {
        self.line += 1;
        let at = self.acc.size();
        match p {
            Prepared::Bad(why) => Err(self.fail(
                Some(at),
                FailureKind::Malformed,
                format!("{why} (where entry {at} or a checkpoint belongs)"),
            )),
            Prepared::Entry(Err(why)) => Err(self.fail(Some(at), FailureKind::Malformed, why)),
            Prepared::Entry(Ok(facts)) => self.entry(facts),
            Prepared::Checkpoint(cp, note) => self.checkpoint(cp, note),
        }
    }

    fn entry(&mut self, e: EntryFacts) -> Result<LineKind, Failure> {
        let at = self.acc.size();
        if e.seq != at {
            return Err(self.fail(
                Some(at),
                FailureKind::Sequence,
                format!(
                    "expected entry {at}, found entry {}: entries were deleted, reordered or inserted",
                    e.seq
                ),
            ));
        }
        if e.prev != self.prev_leaf.unwrap_or([0u8; 32]) {
            let bad = at.saturating_sub(1);
            let msg = if at == 0 {
                "the first entry must link to the genesis hash".to_owned()
            } else {
                format!("entry {bad} was altered: entry {at} records a different hash for it")
            };
            return Err(self.fail(Some(bad), FailureKind::Chain, msg));
        }
        if e.time_ms < self.last_time {
            return Err(self.fail(
                Some(at),
                FailureKind::Time,
                format!("entry {at} is dated before entry {}", at.saturating_sub(1)),
            ));
        }
        self.last_time = e.time_ms;
        self.acc.push(e.leaf);
        self.prev_leaf = Some(e.leaf);
        if let Some(t) = &self.trusted
            && t.size == self.acc.size()
            && t.root != self.acc.root()
        {
            return Err(self.fail(
                None,
                FailureKind::Inconsistent,
                format!(
                    "the first {} entries do not match the trusted checkpoint: history was rewritten or rolled back",
                    t.size
                ),
            ));
        }
        Ok(LineKind::Entry(at))
    }

    fn checkpoint(
        &mut self,
        cp: Result<Checkpoint, NoteError>,
        note: String,
    ) -> Result<LineKind, Failure> {
        let size = self.acc.size();
        let cp = cp.map_err(|e| {
            let kind = match e {
                NoteError::BadSignature(_) | NoteError::Unsigned(_) => {
                    FailureKind::ForgedCheckpoint
                }
                _ => FailureKind::Malformed,
            };
            self.fail(
                None,
                kind,
                format!("checkpoint after entry {}: {e}", size.saturating_sub(1)),
            )
        })?;
        if cp.size != size {
            return Err(self.fail(
                Some(cp.size.min(size)),
                FailureKind::CheckpointMismatch,
                format!(
                    "signed checkpoint commits to {} entries but {size} precede it",
                    cp.size
                ),
            ));
        }
        if cp.root != self.acc.root() {
            let first = self.committed;
            let range = if first + 1 == size {
                format!("entry {first}")
            } else {
                format!("entries {first}..{}", size.saturating_sub(1))
            };
            return Err(self.fail(
                Some(first),
                FailureKind::CheckpointMismatch,
                format!(
                    "signed checkpoint of size {size} does not match {range}: the first altered entry is {first} or later"
                ),
            ));
        }
        self.committed = size;
        self.checkpoints += 1;
        self.latest = Some(note);
        Ok(LineKind::Checkpoint(size))
    }

    /// Ends verification after the last line.
    pub fn finish(self) -> Result<(Summary, A), Failure> {
        let size = self.acc.size();
        if let Some(t) = &self.trusted
            && t.size > size
        {
            return Err(Failure {
                line: self.line,
                entry: Some(size),
                kind: FailureKind::Truncated,
                message: format!(
                    "the log ends after {size} entries but the trusted checkpoint commits to {}: entries {size}.. were removed",
                    t.size
                ),
            });
        }
        let summary = Summary {
            entries: size,
            checkpoints: self.checkpoints,
            root: hex::encode(self.acc.root()),
            latest_checkpoint: self.latest,
            uncommitted: size - self.committed,
            trusted_size: self.trusted.map(|t| t.size),
        };
        Ok((summary, self.acc))
    }
}

/// Reads the next line (without newline) into `buf`. `Ok(false)` at a clean end of file;
/// a torn last line or an over-long line is a failure.
pub fn read_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>, line_no: u64) -> Result<bool, Failure> {
    buf.clear();
    let n = std::io::Read::take(&mut *r, MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(|e| Failure {
            line: line_no + 1,
            entry: None,
            kind: FailureKind::Io,
            message: format!("read failed: {}", e.kind()),
        })?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(true);
    }
    let (kind, message) = if buf.len() > MAX_LINE {
        (FailureKind::Malformed, "line too long".to_owned())
    } else {
        (
            FailureKind::TornTail,
            format!("the last {} bytes are an incomplete line", buf.len()),
        )
    };
    Err(Failure {
        line: line_no + 1,
        entry: None,
        kind,
        message,
    })
}

/// Bytes read per block of the parallel verifier.
const BLOCK: usize = 4 << 20;

/// Fills `buf` from `r` up to `want` bytes; true at end of file.
fn fill<R: Read>(r: &mut R, buf: &mut Vec<u8>, want: usize, line: u64) -> Result<bool, Failure> {
    let mut chunk = [0u8; 64 << 10];
    while buf.len() < want {
        match r.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Failure {
                    line: line + 1,
                    entry: None,
                    kind: FailureKind::Io,
                    message: format!("read failed: {}", e.kind()),
                });
            }
        }
    }
    Ok(false)
}

/// Checks every line of `block` (whole lines, each ending in a newline) on its own, on up to
/// `workers` threads; results in line order.
fn prepare_block(key: &VerifierKey, block: &[u8], workers: usize) -> Vec<Prepared> {
    let mut lines: Vec<&[u8]> = Vec::with_capacity(block.len() / 256);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', block) {
        lines.push(&block[start..end]);
        start = end + 1;
    }
    let lines = &lines[..];
    let per = lines.len().div_ceil(workers).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = lines
            .chunks(per)
            .map(|part| {
                s.spawn(move || {
                    let mut scratch = Vec::with_capacity(1024);
                    part.iter()
                        .map(|l| prepare(key, l, &mut scratch))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Prepared::Bad("verifier worker failed".into())])
            })
            .collect()
    })
}

/// Verifies a whole exported log read from `r`; every entry must be covered by a checkpoint.
/// Lines are checked on their own in parallel (one worker per core), then in order.
pub fn verify_log<R: Read>(
    mut r: R,
    key: &VerifierKey,
    trusted: Option<&str>,
) -> Result<Summary, Failure> {
    let mut v = Verifier::new(key, CompactRange::new());
    if let Some(note) = trusted {
        v = v.with_trusted(note).map_err(|e| Failure {
            line: 0,
            entry: None,
            kind: FailureKind::ForgedCheckpoint,
            message: format!("trusted checkpoint: {e}"),
        })?;
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    // Pipeline: while block k is checked line by line on worker threads, the lines of block
    // k-1 are applied in order here.
    std::thread::scope(|s| -> Result<(), Failure> {
        let mut carry: Vec<u8> = Vec::with_capacity(BLOCK + MAX_LINE);
        let mut pending: Option<std::thread::ScopedJoinHandle<'_, Vec<Prepared>>> = None;
        let apply = |v: &mut Verifier<'_, CompactRange>,
                     h: std::thread::ScopedJoinHandle<'_, Vec<Prepared>>| {
            let prepared = h
                .join()
                .unwrap_or_else(|_| vec![Prepared::Bad("verifier worker failed".into())]);
            prepared
                .into_iter()
                .try_for_each(|p| v.apply(p).map(|_| ()))
        };
        loop {
            let eof = fill(&mut r, &mut carry, BLOCK, v.line)?;
            let cut = memchr::memrchr(b'\n', &carry).map_or(0, |i| i + 1);
            let block: Vec<u8> = carry.drain(..cut).collect();
            let next = s.spawn(move || prepare_block(key, &block, workers));
            if let Some(h) = pending.take() {
                apply(&mut v, h)?;
            }
            pending = Some(next);
            if carry.len() > MAX_LINE || eof {
                if let Some(h) = pending.take() {
                    apply(&mut v, h)?;
                }
                let failure = |kind, message: String| Failure {
                    line: v.line + 1,
                    entry: None,
                    kind,
                    message,
                };
                if carry.len() > MAX_LINE {
                    return Err(failure(FailureKind::Malformed, "line too long".into()));
                }
                if !carry.is_empty() {
                    return Err(failure(
                        FailureKind::TornTail,
                        format!("the last {} bytes are an incomplete line", carry.len()),
                    ));
                }
                return Ok(());
            }
        }
    })?;
    let lines = v.line;
    let (summary, _) = v.finish()?;
    if summary.entries == 0 {
        return Err(Failure {
            line: 0,
            entry: None,
            kind: FailureKind::Malformed,
            message: "the log holds no entries".into(),
        });
    }
    if summary.uncommitted > 0 {
        let first = summary.entries - summary.uncommitted;
        return Err(Failure {
            line: lines,
            entry: Some(first),
            kind: FailureKind::Uncommitted,
            message: format!(
                "entries {first}..{} are not covered by a signed checkpoint",
                summary.entries - 1
            ),
        });
    }
    Ok(summary)
}
