//! Compiled-module cache.
//!
//! Owns compiled artifacts keyed by the module's blake3 and the engine's compatibility hash: in
//! memory as ready-to-instantiate `InstancePre`s, and optionally on disk as artifacts this host
//! wrote itself. It must never deserialize bytes it cannot prove it wrote: each artifact has a
//! blake3 sidecar written after it, and both are checked before loading.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wasmtime::{Engine, InstancePre, Module};

use super::abi::HostState;

/// A module ready to instantiate.
pub struct Prepared {
    /// blake3 of the module bytes.
    pub hash: blake3::Hash,
    /// Linked, validated module.
    pub pre: InstancePre<HostState>,
}

/// The cache.
pub struct ModuleCache {
    ready: Mutex<HashMap<[u8; 32], Arc<Prepared>>>,
    dir: Option<PathBuf>,
    compat: String,
}

/// A stable digest of the engine's compatibility hash (compiler version, settings, target).
fn compat_key(engine: &Engine) -> String {
    // SipHash with fixed zero keys: stable for the same engine build and configuration.
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

impl ModuleCache {
    /// A cache; with `dir`, compiled artifacts also persist across processes there.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        ModuleCache {
            ready: Mutex::new(HashMap::new()),
            dir,
            compat: compat_key(engine),
        }
    }

    /// A ready module, if cached in memory.
    pub fn get(&self, hash: &blake3::Hash) -> Option<Arc<Prepared>> {
        self.ready.lock().ok()?.get(hash.as_bytes()).cloned()
    }

    /// Keeps a ready module.
    pub fn insert(&self, prepared: Arc<Prepared>) {
        if let Ok(mut m) = self.ready.lock() {
            m.insert(*prepared.hash.as_bytes(), prepared);
        }
    }

    fn artifact_path(&self, hash: &blake3::Hash) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{}-{}.cwasm", hash.to_hex(), self.compat)))
    }

    /// Loads a compiled artifact this host wrote earlier, if present and intact.
    pub fn load(&self, engine: &Engine, hash: &blake3::Hash) -> Option<Module> {
        let path = self.artifact_path(hash)?;
        let artifact = std::fs::read(&path).ok()?;
        let recorded = std::fs::read_to_string(sidecar(&path)).ok()?;
        if recorded.trim() != blake3::hash(&artifact).to_hex().as_str() {
            tracing::warn!(
                "ignoring cached artifact {} with a bad checksum",
                path.display()
            );
            return None;
        }
        // SAFETY: `Module::deserialize` runs the artifact's machine code. The invariant is that
        // the bytes were produced by `Engine::precompile_module` of an engine with the same
        // compatibility hash (part of the file name), written by this host into its own cache
        // directory, and unchanged since (checked against the blake3 sidecar written after the
        // artifact). Wasmtime additionally checks the artifact header against the engine.
        #[allow(unsafe_code)]
        let module = unsafe { Module::deserialize(engine, &artifact) };
        module.ok()
    }

    /// Persists a compiled artifact (best effort: the cache is an optimisation).
    pub fn store(&self, hash: &blake3::Hash, module: &Module) {
        let Some(path) = self.artifact_path(hash) else {
            return;
        };
        let Ok(artifact) = module.serialize() else {
            return;
        };
        if let Err(e) = write_atomically(&path, &artifact).and_then(|_| {
            write_atomically(&sidecar(&path), blake3::hash(&artifact).to_hex().as_bytes())
        }) {
            tracing::warn!("cannot write module cache {}: {e}", path.display());
        }
    }
}

fn sidecar(path: &Path) -> PathBuf {
    path.with_extension("cwasm.b3")
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
