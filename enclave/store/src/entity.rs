//! An entity's files in the domain: the modules of its jobs, their transcripts, its social data
//! — all kept under `entities/org-<n>/`, sealed under the entity's key ([`crate::sealed`]) — and
//! the scratch directories a job opens social data into.
//!
//! Owns where these files live and which key opens them. It must never write an entity's file
//! in the clear outside a job's scratch directory, and never keep a scratch directory past the
//! job (or re-derivation) that opened it.

use std::path::{Path, PathBuf};

use enclave_core::{Digest, JobId};

use crate::sealed::{EntityKey, KeyState, open_file, seal_file};
use crate::{Home, MAX_MODULE, StoreError, io_err, write_private_new};

/// The organization number of an `entities/org-<n>` directory.
fn entity_of(dir: &Path) -> Option<i64> {
    dir.file_name()?
        .to_str()?
        .strip_prefix("org-")?
        .parse()
        .ok()
}

impl Home {
    fn private_dir(&self, dir: &Path) -> Result<(), StoreError> {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir).map_err(io_err("creating", dir))
    }

    /// Keeps an entity's module sealed under its key (once); its blake3.
    pub fn store_entity_module(&self, key: &EntityKey, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        let dir = self.entity_dir(key.entity()).join("modules");
        self.private_dir(&dir)?;
        let path = dir.join(format!("{digest}.sealed"));
        if !path.exists() {
            let tmp = dir.join(format!(".{digest}.plain"));
            // The plaintext exists only while it is sealed, inside the domain.
            let _ = std::fs::remove_file(&tmp);
            write_private_new(&tmp, bytes).map_err(io_err("writing", &tmp))?;
            let sealed = seal_file(key, &format!("module:{digest}"), &tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            sealed?;
        }
        Ok(digest)
    }

    /// A module kept sealed by some entity: opened if its key lives, refused as shredded if not.
    pub(crate) fn entity_module(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        // Several entities may keep the same module: any live key opens it.
        let mut shredded = None;
        for (entity, path) in self.entity_files("modules", &format!("{digest}.sealed")) {
            let KeyState::Live(key) = self.entity_key(entity)? else {
                shredded = Some(entity);
                continue;
            };
            let mut bytes = Vec::new();
            open_file(
                &key,
                &format!("module:{digest}"),
                &path,
                &mut bytes,
                MAX_MODULE,
            )?;
            if Digest::of(&bytes) != *digest {
                return Err(StoreError::Invalid(format!(
                    "sealed module {} is not module {digest}",
                    path.display()
                )));
            }
            return Ok(bytes);
        }
        if let Some(entity) = shredded {
            return Err(StoreError::Shredded(format!(
                "module {digest} belonged to org-{entity}, whose key was destroyed when it was \
                 terminated: it is unreadable"
            )));
        }
        Err(StoreError::NoModule(*digest))
    }

    /// `entities/org-<n>/<kind>/<name>` files that exist, by entity.
    fn entity_files(&self, kind: &str, name: &str) -> Vec<(i64, PathBuf)> {
        let Ok(dirs) = std::fs::read_dir(self.root.join("entities")) else {
            return vec![];
        };
        let mut out: Vec<(i64, PathBuf)> = dirs
            .filter_map(Result::ok)
            .filter_map(|d| {
                let entity = entity_of(&d.path())?;
                let f = d.path().join(kind).join(name);
                f.exists().then_some((entity, f))
            })
            .collect();
        out.sort();
        out
    }

    /// Where an entity's job keeps its sealed transcript (sealed under the entity's key).
    pub fn entity_transcript_path(&self, entity: i64, job: &JobId) -> Result<PathBuf, StoreError> {
        let dir = self.entity_dir(entity).join("transcripts");
        self.private_dir(&dir)?;
        Ok(dir.join(format!("{job}.sealed")))
    }

    /// Job `job`'s transcript and the key that seals it: the domain secret's, or an entity's
    /// (refused as shredded once that key is destroyed). `None` if there is none.
    pub fn find_transcript(&self, job: &JobId) -> Result<Option<(PathBuf, [u8; 32])>, StoreError> {
        let plain = self.transcript_path(job);
        if plain.exists() {
            return Ok(Some((plain, self.domain_secret()?)));
        }
        let Some((entity, path)) = self
            .entity_files("transcripts", &format!("{job}.sealed"))
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        match self.entity_key(entity)? {
            KeyState::Live(key) => Ok(Some((path, *key.bytes()))),
            KeyState::Destroyed | KeyState::Absent => Err(StoreError::Shredded(format!(
                "the transcript of job {job} belonged to org-{entity}, whose key was destroyed \
                 when it was terminated: it is unreadable"
            ))),
        }
    }

    /// Seals an entity's file (social data) into `entities/org-<n>/social/<blake3>.sealed`;
    /// the sealed path.
    pub fn seal_social(
        &self,
        key: &EntityKey,
        blake3: &Digest,
        src: &Path,
    ) -> Result<PathBuf, StoreError> {
        let dir = self.entity_dir(key.entity()).join("social");
        self.private_dir(&dir)?;
        let path = dir.join(format!("{blake3}.sealed"));
        if !path.exists() {
            seal_file(key, &format!("social:{blake3}"), src, &path)?;
        }
        Ok(path)
    }

    /// Opens an entity's sealed social data into `dst` (a private scratch file), checking its
    /// blake3.
    pub fn open_social(
        &self,
        key: &EntityKey,
        blake3: &Digest,
        sealed: &Path,
        dst: &Path,
    ) -> Result<(), StoreError> {
        if let Some(parent) = dst.parent() {
            self.private_dir(parent)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut out = opts.open(dst).map_err(io_err("writing", dst))?;
        let opened = open_file(key, &format!("social:{blake3}"), sealed, &mut out, u64::MAX);
        drop(out);
        if let Err(e) = opened {
            let _ = std::fs::remove_file(dst);
            return Err(e);
        }
        Ok(())
    }

    /// A private scratch directory for one job's opened files, emptied now and removed when the
    /// returned guard drops.
    pub fn scratch(&self, name: &str) -> Scratch {
        let dir = self.root.join("scratch").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }

    /// The sealed social file of blake3 `digest` and the live key that opens it; `None` if no
    /// entity holds one, [`StoreError::Shredded`] if its entity's key was destroyed.
    pub fn find_social(&self, digest: &Digest) -> Result<Option<(EntityKey, PathBuf)>, StoreError> {
        let Some((entity, path)) = self
            .entity_files("social", &format!("{digest}.sealed"))
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        match self.entity_key(entity)? {
            KeyState::Live(key) => Ok(Some((key, path))),
            KeyState::Destroyed | KeyState::Absent => Err(StoreError::Shredded(format!(
                "social data {digest} belonged to org-{entity}, whose key was destroyed when it \
                 was terminated: it is unreadable"
            ))),
        }
    }
}

/// A scratch directory of opened (plaintext) files, removed when dropped.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// The directory (created on first use by [`Home::open_social`]).
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
