//! The durable append-only log file and its writer.
//!
//! Owns the file: one canonical JSON line per entry, and after every group commit a line holding
//! the signed checkpoint of the whole log. An append returns only after its entry and a checkpoint
//! covering it are on disk (`fdatasync`); appends that arrive while a commit is running are written
//! together by the next one (group commit). The writer keeps only the tree's right edge (a compact
//! range), so memory does not grow with the log. At open the file is replayed through the
//! verifier from the last authenticated writer state (see `state`), or from the start: a torn last
//! line is cut off, complete entries left without a checkpoint are committed, and any other damage
//! stops the open. Proofs read the file on demand. The writer holds an exclusive lock on the file.
//! It must never acknowledge an entry that is not durable, and never rewrite a committed byte.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::entry::{Draft, Entry, EntryError, Line};
use crate::merkle::{CompactRange, Hash, ProofError, Tree};
use crate::note::{Checkpoint, NoteError, Signer};
use crate::state;
use crate::verify::{Failure, FailureKind, Verifier, prepare, read_line};

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The caller's entry is invalid.
    #[error("invalid entry: {0}")]
    Entry(#[from] EntryError),
    /// The file is damaged beyond a torn tail.
    #[error("log file is damaged: {0}")]
    Damaged(Failure),
    /// Another process holds the log.
    #[error("the log {0} is in use by another process")]
    Locked(PathBuf),
    /// No such entry or size.
    #[error("{0}")]
    NotFound(String),
    /// A proof could not be made.
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(#[from] NoteError),
    /// Disk I/O failed. After a failed commit the log refuses further appends.
    #[error("log I/O on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An earlier commit failed; nothing more is accepted until the log is reopened.
    #[error("the log stopped accepting entries after a failed commit: {0}")]
    Poisoned(String),
}

/// What opening the log found and fixed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OpenReport {
    /// Entries in the log.
    pub entries: u64,
    /// Entries verified at open (those after the writer's last authenticated state).
    pub verified: u64,
    /// Bytes of a torn last line that were cut off.
    pub torn_bytes_removed: u64,
    /// Complete entries found after the last checkpoint and committed now.
    pub recommitted: u64,
}

/// An acknowledged, durable entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its sequence number.
    pub seq: u64,
    /// Its leaf hash.
    pub leaf: Hash,
}

struct State {
    file: Option<File>,
    range: CompactRange,
    /// File length once every write handed to a commit has landed.
    tail: u64,
    /// Lines and checkpoints in the file (for the writer state).
    lines: u64,
    checkpoints: u64,
    prev_leaf: Hash,
    last_time: i64,
    /// Encoded lines of entries not yet handed to a commit.
    pending: Vec<u8>,
    /// Entries that are durable.
    committed: u64,
    poisoned: Option<String>,
    latest: Option<String>,
    shutdown: bool,
    /// Appenders parked until the log holds `need` durable entries.
    waiters: Vec<(u64, std::thread::Thread)>,
}

/// What the appenders and the committer share.
struct Inner {
    path: PathBuf,
    signer: Signer,
    state: Mutex<State>,
    /// Signalled when entries are pending or the log closes (the committer waits on it).
    work: Condvar,
}

/// The domain's append-only log. A committer thread writes whatever is pending, then a signed
/// checkpoint, then syncs; appenders wait until their entries are durable (group commit).
pub struct Log {
    inner: Arc<Inner>,
    committer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Log {
    fn drop(&mut self) {
        self.inner.lock().shutdown = true;
        self.inner.work.notify_all();
        if let Some(t) = self.committer.take() {
            let _ = t.join();
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_owned(),
        source,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Log {
    /// Opens (or creates) the log at `path`, signing checkpoints with `signer`; fails at once
    /// if another process holds it.
    pub fn open(path: &Path, signer: Signer) -> Result<(Log, OpenReport), LogError> {
        Log::open_waiting(path, signer, Duration::ZERO)
    }

    /// Like [`Log::open`], but waits up to `wait` for another holder to let go.
    pub fn open_waiting(
        path: &Path,
        signer: Signer,
        wait: Duration,
    ) -> Result<(Log, OpenReport), LogError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io(path))?;
        let deadline = Instant::now() + wait;
        while file.try_lock().is_err() {
            if Instant::now() >= deadline {
                return Err(LogError::Locked(path.to_owned()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let key = signer.verifier();
        let resumed = state::load(path, &signer, &mut file);
        let mut report = OpenReport::default();
        let (mut v, mut pos, mut line_no) = match resumed {
            Some(r) => (
                Verifier::resume(
                    &key,
                    r.range,
                    r.body.lines,
                    r.prev_leaf,
                    r.body.last_time,
                    r.body.checkpoints,
                    r.body.latest,
                ),
                r.body.offset,
                r.body.lines,
            ),
            None => (Verifier::new(&key, CompactRange::new()), 0, 0),
        };
        let start_size = v.size();
        {
            let mut r = BufReader::with_capacity(1 << 20, &mut file);
            r.seek(SeekFrom::Start(pos)).map_err(io(path))?;
            let mut buf = Vec::with_capacity(1024);
            let mut scratch = Vec::with_capacity(1024);
            loop {
                match read_line(&mut r, &mut buf, line_no) {
                    Ok(false) => break,
                    Ok(true) => {}
                    Err(f) if f.kind == FailureKind::TornTail => {
                        report.torn_bytes_removed = buf.len() as u64;
                        break;
                    }
                    Err(f) => return Err(LogError::Damaged(f)),
                }
                line_no += 1;
                let p = prepare(&key, &buf, &mut scratch);
                v.apply(p).map_err(LogError::Damaged)?;
                pos += buf.len() as u64 + 1;
            }
        }
        if report.torn_bytes_removed > 0 {
            file.set_len(pos).map_err(io(path))?;
            file.sync_data().map_err(io(path))?;
        }
        let last_time = v.last_time();
        let prev_leaf = v.prev_leaf().unwrap_or([0u8; 32]);
        let lines = v.lines();
        let (summary, range) = v.finish().map_err(LogError::Damaged)?;
        report.entries = summary.entries;
        report.verified = summary.entries - start_size;
        let inner = Arc::new(Inner {
            path: path.to_owned(),
            signer,
            state: Mutex::new(State {
                file: Some(file),
                range,
                tail: pos,
                lines,
                checkpoints: summary.checkpoints,
                prev_leaf,
                last_time,
                pending: Vec::new(),
                committed: summary.entries - summary.uncommitted,
                poisoned: None,
                latest: summary.latest_checkpoint,
                shutdown: false,
                waiters: Vec::new(),
            }),
            work: Condvar::new(),
        });
        if summary.uncommitted > 0 {
            report.recommitted = summary.uncommitted;
            let (st, result) = inner.commit(inner.lock());
            drop(st);
            result?;
        } else {
            if summary.entries == 0
                && pos == 0
                && let Some(dir) = path.parent()
                && let Ok(d) = File::open(dir)
            {
                // Make the new file's directory entry durable too (best effort on odd filesystems).
                let _ = d.sync_all();
            }
            if report.verified > 0 {
                inner.save_state(&inner.lock());
            }
        }
        let worker = Arc::clone(&inner);
        let committer = std::thread::Builder::new()
            .name("enclave-log-commit".into())
            .spawn(move || worker.commit_loop())
            .map_err(io(path))?;
        let log = Log {
            inner,
            committer: Some(committer),
        };
        Ok((log, report))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock()
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The signing key's name (the checkpoint origin).
    pub fn origin(&self) -> &str {
        self.inner.signer.name()
    }

    /// Appends one entry; returns once it is durable and covered by a signed checkpoint.
    pub fn append(&self, draft: Draft) -> Result<Appended, LogError> {
        let mut v = self.append_all(vec![draft])?;
        v.pop()
            .ok_or_else(|| LogError::NotFound("nothing appended".into()))
    }

    /// Appends entries in order, contiguously; returns once all are durable.
    pub fn append_all(&self, drafts: Vec<Draft>) -> Result<Vec<Appended>, LogError> {
        for d in &drafts {
            d.validate()?;
        }
        let mut st = self.lock();
        if let Some(why) = &st.poisoned {
            return Err(LogError::Poisoned(why.clone()));
        }
        let mut out = Vec::with_capacity(drafts.len());
        for d in drafts {
            let seq = st.range.size();
            let time = now_ms().max(st.last_time);
            let entry = Entry::from_draft(d, seq, time, &st.prev_leaf);
            let (line, leaf) = entry.encode_line()?;
            st.pending.extend_from_slice(line.as_bytes());
            st.lines += 1;
            st.range.push(leaf);
            st.prev_leaf = leaf;
            st.last_time = time;
            out.push(Appended { seq, leaf });
        }
        let need = st.range.size();
        st.waiters.push((need, std::thread::current()));
        drop(st);
        self.inner.work.notify_one();
        // Parked rather than waiting on a condition variable: the committer wakes exactly the
        // appenders its commit covers, and they do not queue on the lock to find out.
        loop {
            std::thread::park();
            let st = self.lock();
            if let Some(why) = &st.poisoned {
                return Err(LogError::Poisoned(why.clone()));
            }
            if st.committed >= need {
                return Ok(out);
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the file half-written (writes happen
        // outside it), so a poisoned mutex still holds consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The committer: commits whatever is pending, as long as the log is open. Entries that
    /// arrive during a commit's write and sync form the next group.
    fn commit_loop(&self) {
        let mut st = self.lock();
        loop {
            if st.poisoned.is_some() || (st.pending.is_empty() && st.shutdown) {
                return;
            }
            if st.pending.is_empty() {
                st = self.work.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // A failed commit poisons the log and wakes the appenders with the error.
            st = self.commit(st).0;
        }
    }

    /// Writes everything pending plus a checkpoint and syncs. Called with the lock held; drops
    /// it while writing so that new appends can queue for the next commit.
    fn commit<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
    ) -> (MutexGuard<'a, State>, Result<(), LogError>) {
        let size = st.range.size();
        let root = st.range.root();
        // Signing (~20 µs) happens under the lock so the file tail is known before writing.
        let cp = Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root,
        };
        let note = match self.signer.sign(&cp.body()) {
            Ok(n) => n,
            Err(e) => return (st, Err(e.into())),
        };
        let cp_line = match Line::Checkpoint(note.clone()).encode() {
            Ok(l) => l,
            Err(e) => return (st, Err(e.into())),
        };
        let mut buf = std::mem::take(&mut st.pending);
        buf.extend_from_slice(cp_line.as_bytes());
        let Some(mut file) = st.file.take() else {
            return (st, Err(LogError::Poisoned("log file missing".into())));
        };
        st.tail += buf.len() as u64;
        drop(st);
        let result = file
            .write_all(&buf)
            .and_then(|()| file.sync_data())
            .map_err(io(&self.path));
        let mut st = self.lock();
        st.file = Some(file);
        let result = match result {
            Ok(()) => {
                st.committed = size;
                st.lines += 1;
                st.checkpoints += 1;
                st.latest = Some(note);
                Ok(())
            }
            Err(e) => {
                st.poisoned = Some(e.to_string());
                Err(e)
            }
        };
        let failed = st.poisoned.is_some();
        let (wake, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut st.waiters)
            .into_iter()
            .partition(|(need, _)| failed || *need <= size);
        st.waiters = keep;
        for (_, t) in wake {
            t.unpark();
        }
        if result.is_ok() {
            self.save_state(&st);
        }
        (st, result)
    }

    /// Records where the next open may resume (only when no entry is pending: the state
    /// describes the file up to its tail).
    fn save_state(&self, st: &State) {
        let Some(latest) = &st.latest else { return };
        if !st.pending.is_empty() || st.committed != st.range.size() {
            return;
        }
        let prev = (st.range.size() > 0).then_some(st.prev_leaf);
        let body = state::body(
            &st.range,
            st.tail,
            st.lines,
            st.checkpoints,
            prev,
            st.last_time,
            latest,
        );
        if let Err(e) = state::save(&self.path, &self.signer, &body) {
            // Only an optimisation: the next open verifies more.
            let _ = e;
        }
    }
}

impl Log {
    /// Number of durable entries.
    pub fn size(&self) -> u64 {
        self.lock().committed
    }

    /// The latest signed checkpoint note.
    pub fn latest_checkpoint(&self) -> Option<String> {
        self.lock().latest.clone()
    }

    /// The tree of the committed log, read from the file (for proofs; costs a
    /// pass over the file).
    fn tree(&self) -> Result<Tree, LogError> {
        let committed = self.size();
        let path = &self.inner.path;
        let file = File::open(path).map_err(io(path))?;
        let mut r = BufReader::with_capacity(1 << 20, file);
        let mut buf = Vec::with_capacity(1024);
        let mut scratch = Vec::with_capacity(1024);
        let mut tree = Tree::new();
        let mut line_no = 0u64;
        while tree.size() < committed
            && read_line(&mut r, &mut buf, line_no).map_err(LogError::Damaged)?
        {
            line_no += 1;
            if let Some(facts) = crate::entry::entry_facts(&buf, &mut scratch) {
                let facts = facts.map_err(|why| {
                    LogError::Damaged(Failure {
                        line: line_no,
                        entry: Some(tree.size()),
                        kind: FailureKind::Malformed,
                        message: why,
                    })
                })?;
                tree.push(facts.leaf);
            }
        }
        Ok(tree)
    }

    /// Root of the first `size` entries.
    pub fn root(&self, size: u64) -> Result<Hash, LogError> {
        Ok(self.tree()?.root(size)?)
    }

    /// Reads committed entry `seq` back from the file.
    pub fn entry(&self, seq: u64) -> Result<Entry, LogError> {
        let committed = self.size();
        if seq >= committed {
            return Err(LogError::NotFound(format!(
                "entry {seq} does not exist; the log holds {committed} entries"
            )));
        }
        let mut found = None;
        self.scan(|e| {
            if e.seq == seq {
                found = Some(e.clone());
            }
        })?;
        found.ok_or_else(|| {
            LogError::Damaged(Failure {
                line: 0,
                entry: Some(seq),
                kind: FailureKind::Malformed,
                message: "entry changed on disk since the log was opened".into(),
            })
        })
    }

    /// Calls `f` on every committed entry, in order, reading the file sequentially.
    pub fn scan(&self, mut f: impl FnMut(&Entry)) -> Result<(), LogError> {
        let committed = self.size();
        let path = &self.inner.path;
        let file = File::open(path).map_err(io(path))?;
        let mut r = BufReader::with_capacity(1 << 20, file);
        let mut buf = Vec::with_capacity(1024);
        let mut line_no = 0;
        while read_line(&mut r, &mut buf, line_no).map_err(LogError::Damaged)? {
            line_no += 1;
            match Line::decode(&buf) {
                Ok(Line::Entry(e)) if e.seq < committed => f(&e),
                Ok(Line::Entry(_)) => break,
                Ok(Line::Checkpoint(_)) => {}
                Err(why) => {
                    return Err(LogError::Damaged(Failure {
                        line: line_no,
                        entry: None,
                        kind: FailureKind::Malformed,
                        message: why.into(),
                    }));
                }
            }
        }
        Ok(())
    }

    /// Inclusion proof of entry `seq` in the tree of `size` entries.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        let committed = self.size();
        if size > committed {
            return Err(LogError::NotFound(format!(
                "the log holds only {committed} entries"
            )));
        }
        Ok(self.tree()?.inclusion_proof(seq, size)?)
    }

    /// Consistency proof from `size1` to `size2` entries.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, LogError> {
        let committed = self.size();
        if size2 > committed {
            return Err(LogError::NotFound(format!(
                "the log holds only {committed} entries"
            )));
        }
        Ok(self.tree()?.consistency_proof(size1, size2)?)
    }
}
