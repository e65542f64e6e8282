//! Dataset snapshots: a dataset file is identified by its content digest, hashed once.
//!
//! Owns the domain's registry `datasets/snapshots.jsonl`: one line per (digest, canonical path,
//! file identity), appended when a file is first seen or has changed. A job names its datasets by
//! snapshot digest; the registry turns a path into a digest without re-reading the file when its
//! identity (device, inode, size, modification and change times) is unchanged, and a digest back
//! into a path for replay, wherever the replay runs. Re-derivation re-hashes the file in full
//! before trusting it. It must never return a digest for a file whose identity changed since it
//! was hashed.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use enclave_core::Digest;
use serde::{Deserialize, Serialize};

use crate::{StoreError, file_blake3};

/// A dataset file and its content digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// blake3 of the file.
    pub digest: Digest,
    /// Size in bytes.
    pub bytes: u64,
    /// Canonical path.
    pub path: PathBuf,
    /// What the runtime learned of the file once (its schema), so that later jobs need not read
    /// it again; opaque to the store.
    pub meta: Option<String>,
}

/// What identifies a file's content cheaply: if all of it is unchanged, so is the content (the
/// change time cannot be set back by an unprivileged writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

#[cfg(unix)]
fn identity(m: &std::fs::Metadata) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt;
    Some(Identity {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
    })
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> Option<Identity> {
    // Without change times a file's identity proves nothing: always hash.
    None
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    digest: Digest,
    path: PathBuf,
    identity: Identity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    meta: Option<String>,
}

/// Largest registry read.
const MAX_REGISTRY: u64 = 64 << 20;

/// The domain's snapshot registry.
#[derive(Debug)]
pub struct Snapshots {
    file: PathBuf,
    lines: Vec<Line>,
}

impl Snapshots {
    /// Opens the registry at `file` (absent means empty). A torn last line (a crash during an
    /// append) is ignored; any other malformed line is an error.
    pub fn open(file: &Path) -> Result<Snapshots, StoreError> {
        let text = match std::fs::metadata(file) {
            Ok(m) if m.len() > MAX_REGISTRY => {
                return Err(StoreError::Invalid(format!(
                    "{} is larger than {MAX_REGISTRY} bytes",
                    file.display()
                )));
            }
            Ok(_) => std::fs::read(file).map_err(|source| StoreError::Io {
                what: "reading",
                path: file.to_owned(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(StoreError::Io {
                    what: "reading",
                    path: file.to_owned(),
                    source,
                });
            }
        };
        let mut lines = Vec::new();
        let complete = text.ends_with(b"\n");
        let parts: Vec<&[u8]> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        for (i, l) in parts.iter().enumerate() {
            match serde_json::from_slice::<Line>(l) {
                Ok(line) => lines.push(line),
                Err(_) if i + 1 == parts.len() && !complete => {}
                Err(_) => {
                    return Err(StoreError::Invalid(format!(
                        "{}: line {} is not a snapshot record",
                        file.display(),
                        i + 1
                    )));
                }
            }
        }
        Ok(Snapshots {
            file: file.to_owned(),
            lines,
        })
    }

    /// The snapshot of the file at `path`: from the registry when the file's identity is
    /// unchanged since it was hashed, else hashed now (streamed) and recorded.
    pub fn snapshot(&mut self, path: &Path) -> Result<Snapshot, StoreError> {
        let io = |what| {
            move |source| StoreError::Io {
                what,
                path: path.to_owned(),
                source,
            }
        };
        let canonical = std::fs::canonicalize(path).map_err(io("reading"))?;
        let meta = std::fs::metadata(&canonical).map_err(io("reading"))?;
        if !meta.is_file() {
            return Err(StoreError::Invalid(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let id = identity(&meta);
        if let Some(id) = id
            && let Some(l) = self
                .lines
                .iter()
                .rev()
                .find(|l| l.path == canonical && l.identity == id)
        {
            return Ok(Snapshot {
                digest: l.digest,
                bytes: id.size,
                path: canonical,
                meta: l.meta.clone(),
            });
        }
        let digest = file_blake3(&canonical)?;
        // The file must not have changed while it was hashed.
        let after = std::fs::metadata(&canonical).map_err(io("reading"))?;
        if identity(&after) != id {
            return Err(StoreError::Invalid(format!(
                "{} changed while it was being hashed",
                path.display()
            )));
        }
        if let Some(identity) = id {
            let line = Line {
                digest,
                path: canonical.clone(),
                identity,
                meta: None,
            };
            self.append(&line)?;
            self.lines.push(line);
        }
        Ok(Snapshot {
            digest,
            bytes: meta.len(),
            path: canonical,
            meta: None,
        })
    }

    /// Records what was learned of `snapshot`'s file (e.g. its schema), for later lookups.
    pub fn set_meta(&mut self, snapshot: &Snapshot, meta: String) -> Result<(), StoreError> {
        let Some(l) = self
            .lines
            .iter()
            .rev()
            .find(|l| l.path == snapshot.path && l.digest == snapshot.digest)
        else {
            return Ok(());
        };
        if l.meta.as_deref() == Some(meta.as_str()) {
            return Ok(());
        }
        let line = Line {
            meta: Some(meta),
            ..l.clone()
        };
        self.append(&line)?;
        self.lines.push(line);
        Ok(())
    }

    fn append(&self, line: &Line) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            what: "writing",
            path: self.file.clone(),
            source,
        };
        let mut text = serde_json::to_vec(line).map_err(|e| StoreError::Invalid(e.to_string()))?;
        text.push(b'\n');
        let mut opts = OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&self.file).map_err(io)?;
        // One write: appends of concurrent processes do not interleave within a line.
        f.write_all(&text).map_err(io)?;
        f.sync_data().map_err(io)
    }

    /// A file holding snapshot `digest` now (its identity unchanged since it was hashed).
    pub fn resolve(&self, digest: &Digest) -> Result<Snapshot, StoreError> {
        for l in self.lines.iter().rev().filter(|l| l.digest == *digest) {
            if let Ok(m) = std::fs::metadata(&l.path)
                && identity(&m) == Some(l.identity)
            {
                return Ok(Snapshot {
                    digest: *digest,
                    bytes: l.identity.size,
                    path: l.path.clone(),
                    meta: l.meta.clone(),
                });
            }
        }
        Err(StoreError::NoSnapshot(*digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_hashed_once_and_resolved_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path().join("snapshots.jsonl");
        let data = dir.path().join("d.parquet");
        std::fs::write(&data, b"version one").unwrap();
        let mut s = Snapshots::open(&reg).unwrap();
        let a = s.snapshot(&data).unwrap();
        assert_eq!(a.digest, Digest::of(b"version one"));
        // Recorded: a new registry finds it without hashing, and resolves the digest.
        let s2 = Snapshots::open(&reg).unwrap();
        assert_eq!(s2.resolve(&a.digest).unwrap().path, a.path);
        let mut s2 = s2;
        assert_eq!(s2.snapshot(&data).unwrap(), a);
        assert_eq!(std::fs::read_to_string(&reg).unwrap().lines().count(), 1);
        // What the runtime learns of the file is kept with it.
        s2.set_meta(&a, "schema".into()).unwrap();
        assert_eq!(
            Snapshots::open(&reg)
                .unwrap()
                .resolve(&a.digest)
                .unwrap()
                .meta
                .as_deref(),
            Some("schema")
        );
        // A changed file is hashed again; the old digest no longer resolves to it.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&data, b"version two").unwrap();
        let b = s2.snapshot(&data).unwrap();
        assert_eq!(b.digest, Digest::of(b"version two"));
        assert!(matches!(
            s2.resolve(&a.digest),
            Err(StoreError::NoSnapshot(_))
        ));
        // A torn last line is ignored; a damaged middle line is an error.
        let mut text = std::fs::read(&reg).unwrap();
        text.extend_from_slice(b"{\"digest\":");
        std::fs::write(&reg, &text).unwrap();
        assert!(Snapshots::open(&reg).is_ok());
        std::fs::write(&reg, b"nonsense\n{}\n").unwrap();
        assert!(Snapshots::open(&reg).is_err());
    }
}
