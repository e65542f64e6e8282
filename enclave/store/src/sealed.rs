//! Entity keys and the files sealed under them: crypto-shredding.
//!
//! Each development entity (by organization number) gets one random 256-bit key, kept in
//! `keys/org-<n>.key` wrapped with AES-256-GCM under a key derived from the domain secret. What
//! belongs to the entity — its social data, the modules of its jobs, their transcripts — is kept
//! under `entities/org-<n>/` sealed with keys derived from it (HKDF-SHA-256 with a random salt
//! per file, AES-256-GCM in 1 MiB chunks whose nonces carry the chunk number and a final flag, a
//! context string as associated data), so an edit, a swap, reordering or truncation is detected.
//! Destroying the key (overwritten, synced, removed, a tombstone left) makes every copy of
//! those files unreadable, backups included — provided `keys/` itself is never backed up with
//! them (docs/governance.md). It must never write an entity's file in the clear, never hand out
//! bytes that did not authenticate, and never bring back a destroyed key.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::rand::{SecureRandom, SystemRandom};

use crate::{Home, StoreError, io_err, write_private_new};

const MAGIC: &[u8; 8] = b"ENCLSF01";
const CHUNK: usize = 1 << 20;
const TAG: usize = 16;

/// An entity's key (never printed).
#[derive(Clone)]
pub struct EntityKey {
    entity: i64,
    key: [u8; 32],
}

impl std::fmt::Debug for EntityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EntityKey(org-{}, ..)", self.entity)
    }
}

impl EntityKey {
    /// The entity (organization number).
    pub fn entity(&self) -> i64 {
        self.entity
    }

    /// The key bytes (to seal transcripts with; never log them).
    pub fn bytes(&self) -> &[u8; 32] {
        &self.key
    }
}

/// Where an entity's key stands.
#[derive(Debug)]
pub enum KeyState {
    /// The key exists.
    Live(EntityKey),
    /// It was destroyed: everything sealed under it is unreadable.
    Destroyed,
    /// It was never made (the entity sealed nothing).
    Absent,
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| StoreError::Invalid("no system randomness".into()))?;
    Ok(b)
}

pub(crate) fn aead(key: &[u8; 32]) -> Result<LessSafeKey, StoreError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| StoreError::Invalid("an AES-256-GCM key could not be made".into()))
}

fn file_key(key: &[u8; 32], salt: &[u8; 32], context: &str) -> Result<LessSafeKey, StoreError> {
    let bad = |_| StoreError::Invalid("a file key could not be derived".into());
    let prk = Salt::new(HKDF_SHA256, salt).extract(key);
    let info = [context.as_bytes()];
    let okm = prk.expand(&info, HKDF_SHA256).map_err(bad)?;
    let mut k = [0u8; 32];
    okm.fill(&mut k).map_err(bad)?;
    aead(&k)
}

fn nonce(index: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[0] = u8::from(last);
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Reads up to `buf.len()` bytes (fewer only at the end of the input).
fn fill(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Home {
    fn key_path(&self, entity: i64) -> PathBuf {
        self.root.join("keys").join(format!("org-{entity}.key"))
    }

    fn tombstone_path(&self, entity: i64) -> PathBuf {
        self.root
            .join("keys")
            .join(format!("org-{entity}.destroyed"))
    }

    /// The directory of entity `entity`'s sealed files (`social`, `modules`, `transcripts`).
    pub fn entity_dir(&self, entity: i64) -> PathBuf {
        self.root.join("entities").join(format!("org-{entity}"))
    }

    fn wrapping(&self) -> Result<LessSafeKey, StoreError> {
        let secret = self.domain_secret()?;
        aead(&blake3::derive_key("enclave v1 entity key wrap", &secret))
    }

    /// Where entity `entity`'s key stands.
    pub fn entity_key(&self, entity: i64) -> Result<KeyState, StoreError> {
        if self.tombstone_path(entity).exists() {
            return Ok(KeyState::Destroyed);
        }
        let path = self.key_path(entity);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KeyState::Absent),
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        let key = unwrap_key(&self.wrapping()?, &format!("org-{entity}"), &bytes, &path)?;
        Ok(KeyState::Live(EntityKey { entity, key }))
    }

    /// Entity `entity`'s key, made on first use; refused once it was destroyed.
    pub fn entity_key_or_create(&self, entity: i64) -> Result<EntityKey, StoreError> {
        match self.entity_key(entity)? {
            KeyState::Live(k) => return Ok(k),
            KeyState::Destroyed => {
                return Err(StoreError::Shredded(format!(
                    "the key of org-{entity} was destroyed (the entity was terminated)"
                )));
            }
            KeyState::Absent => {}
        }
        let dir = self.root.join("keys");
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&dir).map_err(io_err("creating", &dir))?;
        let key: [u8; 32] = random()?;
        let file = wrap_key(&self.wrapping()?, &format!("org-{entity}"), &key)?;
        let path = self.key_path(entity);
        match write_private_new(&path, &file) {
            Ok(()) => {}
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("writing", &path)(e)),
        }
        sync_dir(&dir);
        match self.entity_key(entity)? {
            KeyState::Live(k) => Ok(k),
            _ => Err(StoreError::Invalid(format!(
                "the key of org-{entity} vanished"
            ))),
        }
    }

    /// Destroys entity `entity`'s key: a tombstone is written first, then the key file is
    /// overwritten, synced and removed. Whether a key was there to destroy.
    pub fn destroy_entity_key(&self, entity: i64) -> Result<bool, StoreError> {
        destroy_key_file(
            &self.root.join("keys"),
            &self.key_path(entity),
            &self.tombstone_path(entity),
        )
    }
}

/// Wraps a 256-bit key under `wrapping`, bound to `aad`: the file form (nonce, ciphertext, tag).
pub(crate) fn wrap_key(
    wrapping: &LessSafeKey,
    aad: &str,
    key: &[u8; 32],
) -> Result<Vec<u8>, StoreError> {
    let n: [u8; 12] = random()?;
    let mut ct = key.to_vec();
    wrapping
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(n),
            Aad::from(aad.as_bytes()),
            &mut ct,
        )
        .map_err(|_| StoreError::Invalid("a key could not be wrapped".into()))?;
    let mut file = n.to_vec();
    file.extend_from_slice(&ct);
    Ok(file)
}

/// The key in a wrapped-key file's `bytes` (read from `path`), bound to `aad`.
pub(crate) fn unwrap_key(
    wrapping: &LessSafeKey,
    aad: &str,
    bytes: &[u8],
    path: &Path,
) -> Result<[u8; 32], StoreError> {
    let bad = || StoreError::Invalid(format!("{} does not authenticate", path.display()));
    if bytes.len() != 12 + 32 + TAG {
        return Err(bad());
    }
    let (n, ct) = bytes.split_at(12);
    let n = Nonce::try_assume_unique_for_key(n).map_err(|_| bad())?;
    let mut ct = ct.to_vec();
    let key = wrapping
        .open_in_place(n, Aad::from(aad.as_bytes()), &mut ct)
        .map_err(|_| bad())?;
    key.try_into().map_err(|_| bad())
}

/// Destroys the key file `key` in `dir`: the tombstone `tomb` is written first, then the key
/// file is overwritten, synced and removed. Whether a key was there to destroy.
pub(crate) fn destroy_key_file(dir: &Path, key: &Path, tomb: &Path) -> Result<bool, StoreError> {
    if !tomb.exists() {
        std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        match write_private_new(tomb, b"destroyed\n") {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("writing", tomb)(e)),
        }
        sync_dir(dir);
    }
    let existed = match std::fs::OpenOptions::new().write(true).open(key) {
        Ok(mut f) => {
            let len = f.metadata().map(|m| m.len()).unwrap_or(64).min(4096);
            f.write_all(&vec![0u8; len as usize])
                .and_then(|()| f.sync_all())
                .map_err(io_err("overwriting", key))?;
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_err("opening", key)(e)),
    };
    if existed {
        std::fs::remove_file(key).map_err(io_err("removing", key))?;
        sync_dir(dir);
    }
    Ok(existed)
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn sync_dir(dir: &Path) {
    // Best effort: a directory that cannot be opened for sync is still consistent on most file
    // systems; the tombstone decides what the key's state is.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Seals `src` into a new file `dst` under `key`, bound to `context` (e.g. `social:<blake3>`).
pub fn seal_file(key: &EntityKey, context: &str, src: &Path, dst: &Path) -> Result<(), StoreError> {
    let mut input = File::open(src).map_err(io_err("reading", src))?;
    seal_to(&key.key, context, &mut input, src, dst)
}

/// Seals what `input` (named `src` in errors) holds into a new file `dst` under the raw `key`,
/// bound to `context`.
pub(crate) fn seal_to(
    key: &[u8; 32],
    context: &str,
    input: &mut impl Read,
    src: &Path,
    dst: &Path,
) -> Result<(), StoreError> {
    let salt: [u8; 32] = random()?;
    let k = file_key(key, &salt, context)?;
    // A temporary of its own: writers of the same destination do not meet.
    let tag: [u8; 8] = random()?;
    let tmp = dst.with_extension(format!("partial-{}", hex_of(&tag)));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut out = opts.open(&tmp).map_err(io_err("writing", &tmp))?;
    let w = |out: &mut File, b: &[u8]| out.write_all(b).map_err(io_err("writing", &tmp));
    w(&mut out, MAGIC)?;
    w(&mut out, &salt)?;
    let mut cur = vec![0u8; CHUNK];
    let mut next = vec![0u8; CHUNK];
    let mut n = fill(input, &mut cur).map_err(io_err("reading", src))?;
    let mut index = 0u64;
    loop {
        let m = if n == CHUNK {
            fill(input, &mut next).map_err(io_err("reading", src))?
        } else {
            0
        };
        let last = m == 0;
        let mut chunk = cur[..n].to_vec();
        k.seal_in_place_append_tag(
            nonce(index, last),
            Aad::from(context.as_bytes()),
            &mut chunk,
        )
        .map_err(|_| StoreError::Invalid("sealing failed".into()))?;
        w(&mut out, &chunk)?;
        if last {
            break;
        }
        std::mem::swap(&mut cur, &mut next);
        n = m;
        index += 1;
    }
    out.sync_all().map_err(io_err("syncing", &tmp))?;
    drop(out);
    std::fs::rename(&tmp, dst).map_err(io_err("renaming", dst))?;
    if let Some(parent) = dst.parent() {
        sync_dir(parent);
    }
    Ok(())
}

/// Opens sealed file `src` under `key` and `context` into `out`, at most `max` bytes of
/// plaintext. Fails (writing nothing more) at the first chunk that does not authenticate.
pub fn open_file(
    key: &EntityKey,
    context: &str,
    src: &Path,
    out: &mut impl Write,
    max: u64,
) -> Result<u64, StoreError> {
    open_from(&key.key, context, src, out, max)
}

/// [`open_file`] under a raw key.
pub(crate) fn open_from(
    key: &[u8; 32],
    context: &str,
    src: &Path,
    out: &mut impl Write,
    max: u64,
) -> Result<u64, StoreError> {
    let tampered = || {
        StoreError::Invalid(format!(
            "{} does not authenticate: it was altered, truncated or is not this file",
            src.display()
        ))
    };
    let mut input = File::open(src).map_err(io_err("reading", src))?;
    let mut head = [0u8; 40];
    if fill(&mut input, &mut head).map_err(io_err("reading", src))? != 40 || &head[..8] != MAGIC {
        return Err(tampered());
    }
    let salt: [u8; 32] = head[8..].try_into().map_err(|_| tampered())?;
    let k = file_key(key, &salt, context)?;
    let mut cur = vec![0u8; CHUNK + TAG];
    let mut next = vec![0u8; CHUNK + TAG];
    let mut n = fill(&mut input, &mut cur).map_err(io_err("reading", src))?;
    let mut index = 0u64;
    let mut total = 0u64;
    loop {
        if n < TAG {
            return Err(tampered());
        }
        let m = if n == CHUNK + TAG {
            fill(&mut input, &mut next).map_err(io_err("reading", src))?
        } else {
            0
        };
        let last = m == 0;
        let plain = k
            .open_in_place(
                nonce(index, last),
                Aad::from(context.as_bytes()),
                &mut cur[..n],
            )
            .map_err(|_| tampered())?;
        total += plain.len() as u64;
        if total > max {
            return Err(StoreError::Invalid(format!(
                "{} holds more than {max} bytes",
                src.display()
            )));
        }
        out.write_all(plain).map_err(io_err("writing from", src))?;
        if last {
            return Ok(total);
        }
        std::mem::swap(&mut cur, &mut next);
        n = m;
        index = index.checked_add(1).ok_or_else(tampered)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, Home) {
        let d = tempfile::tempdir().unwrap();
        let h = Home::open(d.path()).unwrap();
        (d, h)
    }

    #[test]
    fn sealed_files_round_trip_and_detect_tampering() {
        let (d, h) = home();
        let key = h.entity_key_or_create(7).unwrap();
        for len in [0usize, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5] {
            let src = d.path().join("plain");
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            std::fs::write(&src, &data).unwrap();
            let dst = d.path().join("sealed");
            let _ = std::fs::remove_file(&dst);
            seal_file(&key, "social:x", &src, &dst).unwrap();
            let sealed = std::fs::read(&dst).unwrap();
            if len > 16 {
                assert!(
                    !sealed.windows(16).any(|w| w == &data[..16]),
                    "plaintext on disk"
                );
            }
            let mut back = Vec::new();
            assert_eq!(
                open_file(&key, "social:x", &dst, &mut back, u64::MAX).unwrap(),
                len as u64
            );
            assert_eq!(back, data);
            // Another context, a flipped bit, a truncation (also at a chunk boundary) refuse.
            assert!(open_file(&key, "social:y", &dst, &mut Vec::new(), u64::MAX).is_err());
            let mut bad = sealed.clone();
            let i = bad.len() - 1;
            bad[i] ^= 1;
            std::fs::write(&dst, &bad).unwrap();
            assert!(open_file(&key, "social:x", &dst, &mut Vec::new(), u64::MAX).is_err());
            if len > CHUNK {
                std::fs::write(&dst, &sealed[..40 + CHUNK + TAG]).unwrap();
                assert!(open_file(&key, "social:x", &dst, &mut Vec::new(), u64::MAX).is_err());
            }
            std::fs::write(&dst, &sealed[..sealed.len() - 1]).unwrap();
            assert!(open_file(&key, "social:x", &dst, &mut Vec::new(), u64::MAX).is_err());
            // Bounded.
            if len > 10 {
                std::fs::write(&dst, &sealed).unwrap();
                assert!(open_file(&key, "social:x", &dst, &mut Vec::new(), 10).is_err());
            }
        }
    }

    #[test]
    fn destroyed_keys_stay_destroyed() {
        let (d, h) = home();
        let k1 = h.entity_key_or_create(3).unwrap();
        let k2 = h.entity_key_or_create(3).unwrap();
        assert_eq!(k1.bytes(), k2.bytes(), "one key per entity");
        let other = h.entity_key_or_create(4).unwrap();
        assert_ne!(k1.bytes(), other.bytes());
        let src = d.path().join("plain");
        std::fs::write(&src, b"the entity's social data").unwrap();
        let dst = d.path().join("sealed");
        seal_file(&k1, "c", &src, &dst).unwrap();
        // A key file of one entity is not another's, nor readable under another domain secret.
        std::fs::copy(h.key_path(4), h.key_path(5)).unwrap();
        assert!(h.entity_key(5).is_err());
        assert!(h.destroy_entity_key(3).unwrap());
        assert!(matches!(h.entity_key(3).unwrap(), KeyState::Destroyed));
        assert!(!h.key_path(3).exists());
        assert!(
            h.entity_key_or_create(3).is_err(),
            "a destroyed key never comes back"
        );
        assert!(!h.destroy_entity_key(3).unwrap());
        assert!(matches!(h.entity_key(9).unwrap(), KeyState::Absent));
        // The sealed file is still there, and useless: only k1 opened it.
        assert!(open_file(&other, "c", &dst, &mut Vec::new(), u64::MAX).is_err());
    }
}
