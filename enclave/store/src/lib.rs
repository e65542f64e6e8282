//! The domain directory (`--home`): where a domain keeps its secrets, log, modules, dataset
//! snapshots and sealed transcripts.
//!
//! Layout: `domain.key` (32-byte secret), `log.key` / `log.pub` (the log's Ed25519 signer and
//! verifier keys, C2SP note format), `audit/log.jsonl` (+ `audit/log.state`), `modules/<blake3>.wasm`,
//! `datasets/snapshots.jsonl` (snapshot digest ↔ file, see [`snapshot`]), `cache/` (compiled
//! modules), `transcripts/<job>.sealed`, `budget/ledger.jsonl` (privacy spending, see [`ledger`]), `quarantine/` (job outputs sealed
//! under per-output keys, see [`quarantine`]). Owns creating that layout with private permissions and
//! reading it back with size and digest checks. It must never overwrite a secret or a stored
//! module, and never hand out a module whose bytes do not match the digest it is asked for.

pub mod entity;
pub mod ledger;
pub mod quarantine;
pub mod sealed;
pub mod snapshot;

use std::io::Write;
use std::path::{Path, PathBuf};

use enclave_core::{Digest, DigestKey, JobId};
use enclave_tlog::Signer;

pub use entity::Scratch;
pub use ledger::DurableLedger;
pub use quarantine::{Held, Owner};
pub use sealed::{EntityKey, KeyState};
pub use snapshot::{Snapshot, Snapshots};

/// Why the domain directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being accessed.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A stored file is not what it must be.
    #[error("{0}")]
    Invalid(String),
    /// A stored module is missing.
    #[error("module {0} is not stored in this domain")]
    NoModule(Digest),
    /// No file of this snapshot is known to the domain.
    #[error("dataset snapshot {0} is not known to this domain")]
    NoSnapshot(Digest),
    /// The file belonged to a terminated entity whose key was destroyed (crypto-shredded).
    #[error("{0}")]
    Shredded(String),
}

/// The default domain directory: `$ENCLAVE_HOME`, else `$XDG_DATA_HOME/enclave`, else
/// `~/.local/share/enclave`.
pub fn default_home() -> PathBuf {
    if let Some(h) = std::env::var_os("ENCLAVE_HOME") {
        return PathBuf::from(h);
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("enclave")
}

/// Largest module kept or read back.
const MAX_MODULE: u64 = 256 << 20;

/// An opened domain directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to a new file `path` with owner-only permissions; fails if it exists.
fn write_private_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // Written whole under a name of its own, then linked into place: a process killed midway
    // leaves no partial file under `path` (a later writer would take a torn key for the one
    // that won), and the link fails if `path` exists, as `create_new` does.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = format!(
        ".{}.{}.{}.new",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let tmp = path.with_file_name(unique);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let written = opts.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    linked
}

/// Writes `bytes` to `path` atomically (temporary file, sync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    write_private_new(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

impl Home {
    /// Opens `root`, creating the layout (owner-only) if needed.
    pub fn open(root: &Path) -> Result<Home, StoreError> {
        for dir in ["", "audit", "modules", "transcripts", "datasets", "cache"] {
            let d = root.join(dir);
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(&d).map_err(io_err("creating", &d))?;
        }
        Ok(Home {
            root: root.to_owned(),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The domain secret (`domain.key`), created from system randomness on first use.
    pub fn domain_secret(&self) -> Result<[u8; 32], StoreError> {
        let path = self.root.join("domain.key");
        let bytes = self.secret_file(&path, 32, |key| Ok(key.to_vec()))?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| StoreError::Invalid(format!("{} is not 32 bytes", path.display())))
    }

    /// Reads a private file, or creates it from `make(32 random bytes)`.
    fn secret_file(
        &self,
        path: &Path,
        max: u64,
        make: impl FnOnce(&[u8; 32]) -> Result<Vec<u8>, StoreError>,
    ) -> Result<Vec<u8>, StoreError> {
        match std::fs::metadata(path) {
            Ok(m) if m.len() > max.max(4096) => Err(StoreError::Invalid(format!(
                "{} is too large",
                path.display()
            ))),
            Ok(_) => std::fs::read(path).map_err(io_err("reading", path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
                    .map_err(|_| StoreError::Invalid("no system randomness".into()))?;
                let bytes = make(&seed)?;
                write_private_new(path, &bytes).map_err(io_err("creating", path))?;
                Ok(bytes)
            }
            Err(e) => Err(io_err("reading", path)(e)),
        }
    }

    /// The log's signing key (`log.key`), created on first use; `log.pub` holds its verifier key.
    pub fn log_signer(&self) -> Result<Signer, StoreError> {
        let path = self.root.join("log.key");
        let secret = self.domain_secret()?;
        let name = format!("enclave-domain/{}", &blake3::hash(&secret).to_hex()[..12]);
        let bytes = self.secret_file(&path, 4096, |seed| {
            Signer::from_seed(&name, *seed)
                .map(|s| s.encode().into_bytes())
                .map_err(|e| StoreError::Invalid(format!("making the log key: {e}")))
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| StoreError::Invalid(format!("{} is not text", path.display())))?;
        let signer = Signer::parse(&text)
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", path.display())))?;
        let public = self.root.join("log.pub");
        let vkey = format!("{}\n", signer.verifier().encode());
        if std::fs::read_to_string(&public).ok().as_deref() != Some(vkey.as_str()) {
            write_atomic(&public, vkey.as_bytes()).map_err(io_err("writing", &public))?;
        }
        Ok(signer)
    }

    /// The log file.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("audit").join("log.jsonl")
    }

    /// The public log key file.
    pub fn log_public_key_path(&self) -> PathBuf {
        self.root.join("log.pub")
    }

    fn module_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("modules").join(format!("{digest}.wasm"))
    }

    /// Keeps a copy of a submitted module under its blake3 (once).
    pub fn store_module(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        let path = self.module_path(&digest);
        if !path.exists() {
            write_atomic(&path, bytes).map_err(io_err("storing module", &path))?;
        }
        Ok(digest)
    }

    /// The stored module with this blake3; its bytes are checked against the digest.
    pub fn module(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.module_path(digest);
        let bytes = match read_bounded(&path, MAX_MODULE) {
            Ok(b) => b,
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                // An entity's module is kept sealed under its key.
                return self.entity_module(digest);
            }
            Err(e) => return Err(e),
        };
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(StoreError::Invalid(format!(
                "stored module {} was changed: its blake3 is now {actual}",
                path.display()
            )));
        }
        Ok(bytes)
    }

    /// The governance database (entities, agreements, applications; `enclave-governance`).
    pub fn governance_path(&self) -> PathBuf {
        self.root.join("governance.db")
    }

    /// The domain's policy file, written by `enclave init` from the embedded default.
    pub fn policy_path(&self) -> PathBuf {
        self.root.join("policy.toml")
    }

    /// The privacy ledger (see [`ledger`]).
    pub fn ledger_path(&self) -> PathBuf {
        self.root.join("budget").join("ledger.jsonl")
    }

    /// Where job `job`'s sealed transcript is kept.
    pub fn transcript_path(&self, job: &JobId) -> PathBuf {
        self.root.join("transcripts").join(format!("{job}.sealed"))
    }

    /// The dataset snapshot registry of this domain.
    pub fn snapshots(&self) -> Result<Snapshots, StoreError> {
        Snapshots::open(&self.root.join("datasets").join("snapshots.jsonl"))
    }

    /// The key of the domain's keyed log digests.
    pub fn digest_key(&self) -> Result<DigestKey, StoreError> {
        Ok(DigestKey::derive(&self.domain_secret()?))
    }

    /// Where compiled modules are cached, and the key that authenticates them (derived from the
    /// domain secret: only this domain's hosts can write artifacts it will load).
    pub fn module_cache(&self) -> Result<(PathBuf, [u8; 32]), StoreError> {
        let mut h = blake3::Hasher::new_derive_key("enclave v1 module cache key");
        h.update(&self.domain_secret()?);
        Ok((self.root.join("cache"), *h.finalize().as_bytes()))
    }

    /// A new job id, unique in this domain (random; no transcript of it exists).
    pub fn new_job_id(&self) -> Result<JobId, StoreError> {
        loop {
            let mut id = [0u8; 8];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
                .map_err(|_| StoreError::Invalid("no system randomness".into()))?;
            let job = JobId(id);
            if !self.transcript_path(&job).exists() {
                return Ok(job);
            }
        }
    }
}

/// Reads a file of at most `max` bytes.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, StoreError> {
    let meta = std::fs::metadata(path).map_err(io_err("reading", path))?;
    if meta.len() > max {
        return Err(StoreError::Invalid(format!(
            "{} is larger than {max} bytes",
            path.display()
        )));
    }
    std::fs::read(path).map_err(io_err("reading", path))
}

/// blake3 of a file, streamed.
pub fn file_blake3(path: &Path) -> Result<Digest, StoreError> {
    let mut h = blake3::Hasher::new();
    let f = std::fs::File::open(path).map_err(io_err("reading", path))?;
    h.update_reader(f).map_err(io_err("reading", path))?;
    Ok(Digest(*h.finalize().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_keys_and_modules() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::open(dir.path()).unwrap();
        let s1 = home.domain_secret().unwrap();
        assert_eq!(home.domain_secret().unwrap(), s1);
        let signer = home.log_signer().unwrap();
        assert_eq!(home.log_signer().unwrap().verifier(), signer.verifier());
        let public = std::fs::read_to_string(home.log_public_key_path()).unwrap();
        assert_eq!(
            enclave_tlog::VerifierKey::parse(&public).unwrap(),
            signer.verifier()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("log.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0);
        }
        let d = home.store_module(b"\0asm module").unwrap();
        assert_eq!(home.module(&d).unwrap(), b"\0asm module");
        std::fs::write(home.module_path(&d), b"\0asm altered").unwrap();
        assert!(home.module(&d).unwrap_err().to_string().contains("changed"));
        assert!(matches!(
            home.module(&Digest([0; 32])),
            Err(StoreError::NoModule(_))
        ));
        let a = home.new_job_id().unwrap();
        assert_ne!(a, home.new_job_id().unwrap());
    }
}
