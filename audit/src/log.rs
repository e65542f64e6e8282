//! The durable append-only log file and its writer.
//!
//! Owns the file: one canonical JSON line per entry, and after every group commit a line holding
//! the signed checkpoint of the whole log. An append returns only after its entry and a checkpoint
//! covering it are on disk (`fdatasync`); appends that arrive while a commit is running are written
//! together by the next one (group commit). At open the file is replayed through the verifier: a
//! torn last line is cut off, complete entries left without a checkpoint are committed, and any
//! other damage stops the open. The writer holds an exclusive lock on the file. It must never
//! acknowledge an entry that is not durable, and never rewrite a committed byte.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::entry::{Draft, Entry, EntryError, Line};
use crate::merkle::{Hash, ProofError, Tree};
use crate::note::{Checkpoint, NoteError, Signer};
use crate::verify::{Failure, FailureKind, LineKind, Verifier, prepare, read_line};

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
    tree: Tree,
    offsets: Vec<u64>,
    /// File length once every write handed to a commit has landed.
    tail: u64,
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
        let mut v = Verifier::new(&key, Tree::new());
        let mut offsets = Vec::new();
        let mut report = OpenReport::default();
        let (mut pos, mut line_no) = (0u64, 0u64);
        {
            let mut r = BufReader::with_capacity(1 << 20, &mut file);
            r.seek(SeekFrom::Start(0)).map_err(io(path))?;
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
                if let LineKind::Entry(_) = v.apply(p).map_err(LogError::Damaged)? {
                    offsets.push(pos);
                }
                pos += buf.len() as u64 + 1;
            }
        }
        if report.torn_bytes_removed > 0 {
            file.set_len(pos).map_err(io(path))?;
            file.sync_data().map_err(io(path))?;
        }
        let last_time = v.last_time();
        let (summary, tree) = v.finish().map_err(LogError::Damaged)?;
        report.entries = summary.entries;
        let prev_leaf = match tree.size() {
            0 => [0u8; 32],
            n => tree.leaf(n - 1).unwrap_or_default(),
        };
        let inner = Arc::new(Inner {
            path: path.to_owned(),
            signer,
            state: Mutex::new(State {
                file: Some(file),
                tree,
                offsets,
                tail: pos,
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
        } else if summary.entries == 0
            && pos == 0
            && let Some(dir) = path.parent()
            && let Ok(d) = File::open(dir)
        {
            // Make the new file's directory entry durable too (best effort on odd filesystems).
            let _ = d.sync_all();
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
            let seq = st.tree.size();
            let time = now_ms().max(st.last_time);
            let entry = Entry::from_draft(d, seq, time, &st.prev_leaf);
            let (line, leaf) = entry.encode_line();
            let offset = st.tail + st.pending.len() as u64;
            st.pending.extend_from_slice(line.as_bytes());
            st.offsets.push(offset);
            st.tree.push(leaf);
            st.prev_leaf = leaf;
            st.last_time = time;
            out.push(Appended { seq, leaf });
        }
        let need = st.tree.size();
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
        let size = st.tree.size();
        let root = match st.tree.root(size) {
            Ok(r) => r,
            Err(e) => return (st, Err(e.into())),
        };
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
        let mut buf = std::mem::take(&mut st.pending);
        buf.extend_from_slice(Line::Checkpoint(note.clone()).encode().as_bytes());
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
        (st, result)
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

    /// Root of the first `size` entries.
    pub fn root(&self, size: u64) -> Result<Hash, LogError> {
        Ok(self.lock().tree.root(size)?)
    }

    /// Reads committed entry `seq` back from the file.
    pub fn entry(&self, seq: u64) -> Result<Entry, LogError> {
        let st = self.lock();
        if seq >= st.committed {
            return Err(LogError::NotFound(format!(
                "entry {seq} does not exist; the log holds {} entries",
                st.committed
            )));
        }
        let offset = st.offsets[seq as usize];
        drop(st);
        let path = &self.inner.path;
        let mut f = File::open(path).map_err(io(path))?;
        f.seek(SeekFrom::Start(offset)).map_err(io(path))?;
        let mut r = BufReader::new(f.take(crate::entry::MAX_LINE as u64 + 1));
        let mut buf = Vec::new();
        let damaged = |f: Failure| LogError::Damaged(f);
        read_line(&mut r, &mut buf, seq).map_err(damaged)?;
        match Line::decode(&buf) {
            Ok(Line::Entry(e)) if e.seq == seq => Ok(e),
            _ => Err(LogError::Damaged(Failure {
                line: 0,
                entry: Some(seq),
                kind: FailureKind::Malformed,
                message: "entry changed on disk since the log was opened".into(),
            })),
        }
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
        let st = self.lock();
        if size > st.committed {
            return Err(LogError::NotFound(format!(
                "the log holds only {} entries",
                st.committed
            )));
        }
        Ok(st.tree.inclusion_proof(seq, size)?)
    }

    /// Consistency proof from `size1` to `size2` entries.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, LogError> {
        let st = self.lock();
        if size2 > st.committed {
            return Err(LogError::NotFound(format!(
                "the log holds only {} entries",
                st.committed
            )));
        }
        Ok(st.tree.consistency_proof(size1, size2)?)
    }
}
