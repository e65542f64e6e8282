//! Quarantine: every output of a job, kept inside the domain encrypted at rest until it is
//! reviewed, released or destroyed.
//!
//! Owns the quarantines: the domain's (`quarantine/`, local runs) and each development entity's
//! (`entities/org-<n>/quarantine/`, its governed jobs). Per output (addressed by the blake3 of
//! its canonical bytes) a random 256-bit key, wrapped with AES-256-GCM (`<blake3>.key`, bound to
//! the owner and the digest) under a key derived from the domain secret — or, in an entity's
//! quarantine, from the entity's key, so that destroying the entity's key destroys every output
//! it ever kept, in every backup, and no output is kept for it afterwards — and the output
//! sealed under it in the chunked format of [`crate::sealed`] (`<blake3>.sealed`, context
//! `output:<blake3>`). Destroying one output overwrites and removes its key. Reading one back
//! checks that the plaintext hashes to the digest asked for. It must never write an output in
//! the clear, never hand out bytes that did not authenticate or do not match their digest, and
//! never bring back a destroyed key. Who may read an output is not its concern: the review and
//! release steps decide that, and only they call [`Home::quarantine_get`].

use std::path::PathBuf;

use enclave_core::Digest;
use ring::aead::LessSafeKey;

use crate::sealed::{
    KeyState, aead, destroy_key_file, open_from, random, seal_to, sync_dir, unwrap_key, wrap_key,
};
use crate::{Home, StoreError, io_err, write_private_new};

/// Whose quarantine an output is kept in: the domain's (local runs) or a development entity's
/// (jobs under its applications). Each owner's copy of an output has a key of its own, so
/// destroying one entity's outputs never touches another's copy of the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The domain itself.
    Domain,
    /// Development entity `org-N`.
    Entity(i64),
}

impl Owner {
    fn scope(self) -> String {
        match self {
            Owner::Domain => String::new(),
            Owner::Entity(n) => format!("org-{n}:"),
        }
    }
}

/// Where a quarantined output stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Its key and sealed bytes are there.
    Kept,
    /// Its key was destroyed: the output is gone.
    Destroyed,
    /// Never quarantined here.
    Absent,
}

impl Home {
    fn quarantine_dir(&self, owner: Owner) -> PathBuf {
        match owner {
            Owner::Domain => self.root.join("quarantine"),
            Owner::Entity(n) => self.entity_dir(n).join("quarantine"),
        }
    }

    fn quarantine_paths(&self, owner: Owner, digest: &Digest) -> (PathBuf, PathBuf, PathBuf) {
        let d = self.quarantine_dir(owner);
        (
            d.join(format!("{digest}.key")),
            d.join(format!("{digest}.sealed")),
            d.join(format!("{digest}.destroyed")),
        )
    }

    /// The key that wraps `owner`'s output keys: derived from the domain secret, or from the
    /// entity's key (made on first use when `create`; refused once destroyed).
    fn quarantine_wrapping(&self, owner: Owner, create: bool) -> Result<LessSafeKey, StoreError> {
        match owner {
            Owner::Domain => {
                let secret = self.domain_secret()?;
                aead(&blake3::derive_key(
                    "enclave v1 quarantine key wrap",
                    &secret,
                ))
            }
            Owner::Entity(n) => {
                let key = match self.entity_key(n)? {
                    KeyState::Live(k) => k,
                    KeyState::Absent if create => self.entity_key_or_create(n)?,
                    KeyState::Absent => {
                        return Err(StoreError::Invalid(format!("org-{n} never kept an output")));
                    }
                    KeyState::Destroyed => {
                        return Err(StoreError::Shredded(format!(
                            "the key of org-{n} was destroyed: its outputs are gone"
                        )));
                    }
                };
                aead(&blake3::derive_key(
                    "enclave v1 entity quarantine key wrap",
                    key.bytes(),
                ))
            }
        }
    }

    /// Where `owner`'s output `digest` stands.
    pub fn quarantine_state(&self, owner: Owner, digest: &Digest) -> Held {
        let (key, sealed, tomb) = self.quarantine_paths(owner, digest);
        if tomb.exists() {
            Held::Destroyed
        } else if key.exists() && sealed.exists() {
            Held::Kept
        } else {
            Held::Absent
        }
    }

    fn quarantine_key(&self, owner: Owner, digest: &Digest) -> Result<[u8; 32], StoreError> {
        let (path, _, tomb) = self.quarantine_paths(owner, digest);
        if tomb.exists() {
            return Err(StoreError::Shredded(format!(
                "output {digest} was destroyed"
            )));
        }
        let bytes = std::fs::read(&path).map_err(io_err("reading", &path))?;
        unwrap_key(
            &self.quarantine_wrapping(owner, false)?,
            &format!("quarantine:{}{digest}", owner.scope()),
            &bytes,
            &path,
        )
    }

    /// Keeps output `canonical` (whose blake3 is `digest`) in quarantine, sealed under a fresh
    /// key; a second put of the same output keeps the first. Refused for a destroyed output and
    /// for bytes that are not `digest`'s.
    pub fn quarantine_put(
        &self,
        owner: Owner,
        digest: &Digest,
        canonical: &[u8],
    ) -> Result<(), StoreError> {
        if Digest::of(canonical) != *digest {
            return Err(StoreError::Invalid(format!(
                "the bytes given for output {digest} are not its bytes"
            )));
        }
        match self.quarantine_state(owner, digest) {
            Held::Kept => return Ok(()),
            Held::Destroyed => {
                return Err(StoreError::Shredded(format!(
                    "output {digest} was destroyed; it is not kept again"
                )));
            }
            Held::Absent => {}
        }
        let dir = self.quarantine_dir(owner);
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&dir).map_err(io_err("creating", &dir))?;
        let (key_path, sealed, _) = self.quarantine_paths(owner, digest);
        // The key first: whoever creates it decides it, and every job keeping the same output
        // (concurrently too) seals under that key; the sealed file appears by an atomic rename
        // (of a temporary of its own), so a reader sees a whole file or none.
        let fresh: [u8; 32] = random()?;
        let file = wrap_key(
            &self.quarantine_wrapping(owner, true)?,
            &format!("quarantine:{}{digest}", owner.scope()),
            &fresh,
        )?;
        let key = match write_private_new(&key_path, &file) {
            Ok(()) => {
                sync_dir(&dir);
                fresh
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                self.quarantine_key(owner, digest)?
            }
            Err(e) => return Err(io_err("writing", &key_path)(e)),
        };
        seal_to(
            &key,
            &format!("output:{digest}"),
            &mut &canonical[..],
            &sealed,
            &sealed,
        )?;
        Ok(())
    }

    /// Output `digest`, read back from quarantine (at most `max` bytes), authenticated and
    /// checked against its digest.
    pub fn quarantine_get(
        &self,
        owner: Owner,
        digest: &Digest,
        max: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let key = self.quarantine_key(owner, digest)?;
        let (_, sealed, _) = self.quarantine_paths(owner, digest);
        let mut out = Vec::new();
        open_from(&key, &format!("output:{digest}"), &sealed, &mut out, max)?;
        if Digest::of(&out) != *digest {
            return Err(StoreError::Invalid(format!(
                "quarantined output {digest} does not hash to its digest"
            )));
        }
        Ok(out)
    }

    /// Destroys output `digest`: a tombstone first, then its key overwritten, synced and
    /// removed, then the sealed bytes removed. Whether there was a key to destroy.
    pub fn quarantine_destroy(&self, owner: Owner, digest: &Digest) -> Result<bool, StoreError> {
        let dir = self.quarantine_dir(owner);
        let (key, sealed, tomb) = self.quarantine_paths(owner, digest);
        let existed = destroy_key_file(&dir, &key, &tomb)?;
        let _ = std::fs::remove_file(&sealed);
        sync_dir(&dir);
        Ok(existed)
    }
}

impl Home {
    /// Keeps `cells` (the encoded cells a job was shown, for the difference check) in `owner`'s
    /// quarantine like an output, and notes them as job `run`'s (`cells/<run>` names their
    /// digest: a digest gives nothing away). Their digest.
    pub fn keep_cells(&self, owner: Owner, run: &str, cells: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(cells);
        self.quarantine_put(owner, &digest, cells)?;
        let path = self.cells_path(owner, run)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        }
        crate::write_atomic(&path, digest.to_string().as_bytes())
            .map_err(io_err("writing", &path))?;
        Ok(digest)
    }

    /// The cells job `run` was shown (at most `max` bytes), if it kept any.
    pub fn cells_of(
        &self,
        owner: Owner,
        run: &str,
        max: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.cells_path(owner, run)?;
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        let digest: Digest = text
            .trim()
            .parse()
            .map_err(|_| StoreError::Invalid(format!("{} is not a digest", path.display())))?;
        self.quarantine_get(owner, &digest, max).map(Some)
    }

    /// Destroys every job's cells kept in `owner`'s quarantine (with its outputs, when an entity
    /// is shredded): how many there were.
    pub fn destroy_cells(&self, owner: Owner) -> Result<usize, StoreError> {
        let dir = self.quarantine_dir(owner).join("cells");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err("reading", &dir)(e)),
        };
        let mut n = 0;
        for e in entries {
            let path = e.map_err(io_err("reading", &dir))?.path();
            let text = std::fs::read_to_string(&path).map_err(io_err("reading", &path))?;
            if let Ok(digest) = text.trim().parse::<Digest>() {
                self.quarantine_destroy(owner, &digest)?;
                n += 1;
            }
            std::fs::remove_file(&path).map_err(io_err("removing", &path))?;
        }
        Ok(n)
    }

    fn cells_path(&self, owner: Owner, run: &str) -> Result<PathBuf, StoreError> {
        if run.is_empty() || !run.bytes().all(|b| b.is_ascii_hexdigit()) || run.len() > 64 {
            return Err(StoreError::Invalid("a job id is hex digits".into()));
        }
        Ok(self.quarantine_dir(owner).join("cells").join(run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Owner = Owner::Domain;

    #[test]
    fn outputs_are_sealed_read_back_checked_and_destroyed() {
        let d = tempfile::tempdir().unwrap();
        let h = Home::open(d.path()).unwrap();
        let bytes = b"ARROW1 the output's canonical bytes, not to be seen in the clear".to_vec();
        let digest = Digest::of(&bytes);
        assert_eq!(h.quarantine_state(D, &digest), Held::Absent);
        assert!(h.quarantine_put(D, &Digest::of(b"other"), &bytes).is_err());
        h.quarantine_put(D, &digest, &bytes).unwrap();
        h.quarantine_put(D, &digest, &bytes).unwrap();
        assert_eq!(h.quarantine_state(D, &digest), Held::Kept);
        // Nothing in the directory holds the plaintext.
        for f in std::fs::read_dir(d.path().join("quarantine")).unwrap() {
            let on_disk = std::fs::read(f.unwrap().path()).unwrap();
            assert!(!on_disk.windows(16).any(|w| w == &bytes[7..23]));
        }
        assert_eq!(h.quarantine_get(D, &digest, 1 << 20).unwrap(), bytes);
        assert!(h.quarantine_get(D, &digest, 10).is_err(), "bounded");
        // A swapped key file (another output's) does not open it.
        let other = b"another output".to_vec();
        let od = Digest::of(&other);
        h.quarantine_put(D, &od, &other).unwrap();
        let (k1, _, _) = h.quarantine_paths(D, &digest);
        let (k2, _, _) = h.quarantine_paths(D, &od);
        let saved = std::fs::read(&k1).unwrap();
        std::fs::copy(&k2, &k1).unwrap();
        assert!(h.quarantine_get(D, &digest, 1 << 20).is_err());
        std::fs::write(&k1, saved).unwrap();
        assert!(h.quarantine_destroy(D, &digest).unwrap());
        assert_eq!(h.quarantine_state(D, &digest), Held::Destroyed);
        assert!(matches!(
            h.quarantine_get(D, &digest, 1 << 20),
            Err(StoreError::Shredded(_))
        ));
        assert!(
            h.quarantine_put(D, &digest, &bytes).is_err(),
            "never kept again"
        );
        assert!(!h.quarantine_destroy(D, &digest).unwrap());
        assert_eq!(h.quarantine_get(D, &od, 1 << 20).unwrap(), other);
    }

    #[test]
    fn an_entitys_outputs_go_with_its_key() {
        let d = tempfile::tempdir().unwrap();
        let h = Home::open(d.path()).unwrap();
        let bytes = b"an entity's aggregate".to_vec();
        let digest = Digest::of(&bytes);
        let e = Owner::Entity(5);
        h.quarantine_put(e, &digest, &bytes).unwrap();
        assert!(d.path().join("entities/org-5/quarantine").exists());
        assert_eq!(h.quarantine_get(e, &digest, 1 << 20).unwrap(), bytes);
        // Destroying the entity's key destroys the output without touching its files, and no
        // output is kept for the entity afterwards.
        assert!(h.destroy_entity_key(5).unwrap());
        assert!(matches!(
            h.quarantine_get(e, &digest, 1 << 20),
            Err(StoreError::Shredded(_))
        ));
        let late = b"a late output".to_vec();
        assert!(matches!(
            h.quarantine_put(e, &Digest::of(&late), &late),
            Err(StoreError::Shredded(_))
        ));
    }

    #[test]
    fn each_owner_keeps_its_own_copy() {
        let d = tempfile::tempdir().unwrap();
        let h = Home::open(d.path()).unwrap();
        let bytes = b"the same aggregate table, emitted by two entities".to_vec();
        let digest = Digest::of(&bytes);
        let (a, b) = (Owner::Entity(3), Owner::Entity(4));
        h.quarantine_put(a, &digest, &bytes).unwrap();
        h.quarantine_put(b, &digest, &bytes).unwrap();
        assert_eq!(h.quarantine_state(D, &digest), Held::Absent);
        // One entity's shredding leaves the other's copy readable, and the other can keep it
        // again later.
        assert!(h.quarantine_destroy(a, &digest).unwrap());
        assert!(matches!(
            h.quarantine_get(a, &digest, 1 << 20),
            Err(StoreError::Shredded(_))
        ));
        assert_eq!(h.quarantine_get(b, &digest, 1 << 20).unwrap(), bytes);
        h.quarantine_put(b, &digest, &bytes).unwrap();
        h.quarantine_put(D, &digest, &bytes).unwrap();
        // A key file moved from one owner to another does not open there.
        let (ka, _, _) = h.quarantine_paths(a, &digest);
        let (kb, _, _) = h.quarantine_paths(b, &digest);
        let (kd, _, _) = h.quarantine_paths(D, &digest);
        std::fs::copy(&kb, &kd).unwrap();
        assert!(h.quarantine_get(D, &digest, 1 << 20).is_err());
        assert!(!ka.exists());
    }
}
