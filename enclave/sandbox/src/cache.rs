//! Compiled-module cache.
//!
//! Owns compiled artifacts keyed by the module's blake3 and the engine's compatibility hash: in
//! memory as ready-to-instantiate `InstancePre`s, and optionally on disk. An artifact on disk is
//! native code, so it is loaded only with a valid tag: HMAC-SHA-256, under a key only the host
//! holds, over the engine's compatibility hash, the module's digest and the artifact's bytes,
//! written beside it when this host compiled the module. A file that anyone else wrote or changed
//! — even with a matching plain checksum — is ignored and the module is compiled again. It must
//! never deserialize bytes whose tag it did not verify.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wasmtime::{Engine, InstancePre, Module};

use super::abi::HostState;

/// A module ready to instantiate.
pub struct Prepared {
    /// blake3 of the module bytes.
    pub hash: blake3::Hash,
    /// Linked, validated module.
    pub(crate) pre: InstancePre<HostState>,
}

/// Where compiled artifacts persist, and the key that authenticates them.
#[derive(Clone)]
pub struct DiskCache {
    /// Directory of the artifacts.
    pub dir: PathBuf,
    /// The host's secret key for artifact tags (derive it from the domain secret; never share it).
    pub key: [u8; 32],
}

impl std::fmt::Debug for DiskCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The cache.
pub struct ModuleCache {
    ready: Mutex<HashMap<[u8; 32], Arc<Prepared>>>,
    disk: Option<(PathBuf, ring::hmac::Key)>,
    compat: [u8; 32],
}

/// Most modules kept ready in memory.
const READY_CAPACITY: usize = 256;

impl ModuleCache {
    /// A cache; with `disk`, compiled artifacts also persist across processes there.
    pub fn new(engine: &Engine, disk: Option<DiskCache>) -> Self {
        let mut h = blake3::Hasher::new_derive_key("enclave v1 engine compatibility");
        std::hash::Hash::hash(
            &engine.precompile_compatibility_hash(),
            &mut HashWriter(&mut h),
        );
        ModuleCache {
            ready: Mutex::new(HashMap::new()),
            disk: disk.map(|d| (d.dir, ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &d.key))),
            compat: *h.finalize().as_bytes(),
        }
    }

    /// A ready module, if cached in memory.
    pub fn get(&self, hash: &blake3::Hash) -> Option<Arc<Prepared>> {
        self.ready.lock().ok()?.get(hash.as_bytes()).cloned()
    }

    /// Keeps a ready module (the oldest are let go beyond a fixed number).
    pub fn insert(&self, prepared: Arc<Prepared>) {
        if let Ok(mut m) = self.ready.lock() {
            if m.len() >= READY_CAPACITY {
                m.clear();
            }
            m.insert(*prepared.hash.as_bytes(), prepared);
        }
    }

    fn paths(&self, hash: &blake3::Hash) -> Option<(PathBuf, PathBuf)> {
        let (dir, _) = self.disk.as_ref()?;
        let compat = blake3::Hash::from(self.compat).to_hex();
        let base = dir.join(format!("{}-{}", hash.to_hex(), &compat[..16]));
        Some((base.with_extension("cwasm"), base.with_extension("tag")))
    }

    fn tag(&self, key: &ring::hmac::Key, hash: &blake3::Hash, artifact: &[u8]) -> ring::hmac::Tag {
        ring::hmac::sign(key, &tagged_message(&self.compat, hash, artifact))
    }

    /// Loads a compiled artifact of module `hash` whose tag verifies under the host's key.
    pub fn load(&self, engine: &Engine, hash: &blake3::Hash) -> Option<Module> {
        let (_, key) = self.disk.as_ref()?;
        let (path, tag_path) = self.paths(hash)?;
        let artifact = std::fs::read(&path).ok()?;
        let tag = std::fs::read(&tag_path).ok()?;
        if ring::hmac::verify(key, &tagged_message(&self.compat, hash, &artifact), &tag).is_err() {
            tracing::warn!(
                "ignoring cached artifact {}: its tag does not verify under this host's key",
                path.display()
            );
            return None;
        }
        // SAFETY: `Module::deserialize` runs the artifact's machine code. The invariant: these
        // bytes were produced by `Module::serialize` on an engine with the same compatibility
        // hash, by a host holding the cache key, and are unchanged since — the HMAC-SHA-256 tag
        // over (compatibility hash, module digest, artifact) verified above under that key, which
        // nobody else holds. Wasmtime additionally checks the artifact header against the engine.
        #[allow(unsafe_code)]
        let module = unsafe { Module::deserialize(engine, &artifact) };
        module.ok()
    }

    /// Persists a compiled artifact with its tag (best effort: the cache is an optimisation).
    pub fn store(&self, hash: &blake3::Hash, module: &Module) {
        let (Some((_, key)), Some((path, tag_path))) = (self.disk.as_ref(), self.paths(hash))
        else {
            return;
        };
        let Ok(artifact) = module.serialize() else {
            return;
        };
        let tag = self.tag(key, hash, &artifact);
        if let Err(e) = write_atomically(&path, &artifact)
            .and_then(|_| write_atomically(&tag_path, tag.as_ref()))
        {
            tracing::warn!("cannot write module cache {}: {e}", path.display());
        }
    }
}

fn tagged_message(compat: &[u8; 32], hash: &blake3::Hash, artifact: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(artifact.len() + 96);
    m.extend_from_slice(b"enclave v1 compiled module\0");
    m.extend_from_slice(compat);
    m.extend_from_slice(hash.as_bytes());
    m.extend_from_slice(artifact);
    m
}

/// Feeds `Hash` output into blake3 (for the engine's compatibility hash).
struct HashWriter<'a>(&'a mut blake3::Hasher);

impl std::hash::Hasher for HashWriter<'_> {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
