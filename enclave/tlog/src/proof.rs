//! Proof bundles: one entry, a signed checkpoint, the inclusion proof linking them and, when asked,
//! a consistency proof from an older size. An auditor checks a bundle with only the log's public
//! key and, optionally, a checkpoint kept from earlier. Every field is hostile input: proof lengths
//! are bounded and checked exactly by `merkle`. It must never accept a bundle whose checkpoint
//! signature was not verified.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::entry::Entry;
use crate::merkle::{Hash, consistency_old_root, verify_consistency, verify_inclusion};
use crate::note::{Checkpoint, VerifierKey};

/// Most hashes a proof over a 2^64-entry log can need.
const MAX_PROOF: usize = 130;

/// Everything needed to show that one entry is in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofBundle {
    /// The entry.
    pub entry: Entry,
    /// The signed checkpoint the proof leads to.
    pub checkpoint: String,
    /// Base64 hashes of the inclusion proof.
    pub inclusion: Vec<String>,
    /// Size the consistency proof starts from, if one is included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency_from: Option<u64>,
    /// Base64 hashes of the consistency proof from `consistency_from` to the checkpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consistency: Vec<String>,
}

/// What a checked bundle established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProofCheck {
    /// The entry's sequence number.
    pub entry: u64,
    /// Size of the checkpoint it is included in.
    pub size: u64,
    /// Hex root of that checkpoint.
    pub root: String,
    /// Size of the trusted checkpoint shown consistent with it, if one was given.
    pub consistent_with: Option<u64>,
    /// Without a trusted checkpoint, what the bundle's consistency proof (if any) established.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
}

/// A consistency proof checked against the bundle's own checkpoint only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Consistency {
    /// The proof is valid for the bundle's checkpoint and commits the log at `size` to `root`:
    /// compare that root with a checkpoint of that size you kept.
    Derived {
        /// The older size.
        size: u64,
        /// Hex root the log had at that size, according to the proof.
        root: String,
    },
    /// The proof's shape is right but it can only be checked against a trusted checkpoint of
    /// `size` (a power of two: the proof omits the old root).
    Unchecked {
        /// The older size.
        size: u64,
    },
}

impl std::fmt::Display for ProofCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok: entry {} is in the log of size {} (root {})",
            self.entry, self.size, self.root
        )?;
        if let Some(n) = self.consistent_with {
            write!(f, ", which extends the trusted size {n}")?;
        }
        match &self.consistency {
            Some(Consistency::Derived { size, root }) => write!(
                f,
                "; its consistency proof says the log at size {size} had root {root}                  (compare with a checkpoint you kept, or pass --trusted)"
            )?,
            Some(Consistency::Unchecked { size }) => write!(
                f,
                "; its consistency proof from size {size} is UNCHECKED: pass --trusted with a                  checkpoint of that size"
            )?,
            None => {}
        }
        Ok(())
    }
}

/// Why a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BundleError(pub String);

fn hashes(v: &[String]) -> Result<Vec<Hash>, BundleError> {
    if v.len() > MAX_PROOF {
        return Err(BundleError("proof too long".into()));
    }
    v.iter()
        .map(|s| {
            STANDARD
                .decode(s)
                .ok()
                .and_then(|b| Hash::try_from(b).ok())
                .ok_or_else(|| BundleError("proof hash is not base64 of 32 bytes".into()))
        })
        .collect()
}

/// Encodes proof hashes as base64.
pub fn encode_hashes(v: &[Hash]) -> Vec<String> {
    v.iter().map(|h| STANDARD.encode(h)).collect()
}

impl ProofBundle {
    /// Checks the bundle with the log key and, if given, an older trusted checkpoint note.
    pub fn check(
        &self,
        key: &VerifierKey,
        trusted: Option<&str>,
    ) -> Result<ProofCheck, BundleError> {
        let cp = Checkpoint::open(&self.checkpoint, key)
            .map_err(|e| BundleError(format!("checkpoint: {e}")))?;
        self.entry
            .validate()
            .map_err(|e| BundleError(format!("entry: {e}")))?;
        let proof = hashes(&self.inclusion)?;
        verify_inclusion(
            self.entry.seq,
            cp.size,
            &self
                .entry
                .leaf_hash()
                .map_err(|e| BundleError(format!("entry: {e}")))?,
            &proof,
            &cp.root,
        )
        .map_err(|e| {
            BundleError(format!(
                "entry {} is not in the log of size {}: {e}",
                self.entry.seq, cp.size
            ))
        })?;
        let mut consistent_with = None;
        let mut consistency = None;
        if trusted.is_none()
            && let Some(m) = self.consistency_from
        {
            let proof = hashes(&self.consistency)?;
            consistency = Some(
                match consistency_old_root(m, cp.size, &cp.root, &proof).map_err(|e| {
                    BundleError(format!(
                        "the consistency proof from size {m} does not fit the checkpoint of size {}: {e}",
                        cp.size
                    ))
                })? {
                    Some(root) => Consistency::Derived {
                        size: m,
                        root: hex::encode(root),
                    },
                    None => Consistency::Unchecked { size: m },
                },
            );
        }
        if let Some(note) = trusted {
            let old = Checkpoint::open(note, key)
                .map_err(|e| BundleError(format!("trusted checkpoint: {e}")))?;
            if self.consistency_from != Some(old.size) {
                return Err(BundleError(format!(
                    "the bundle holds no consistency proof from the trusted size {}",
                    old.size
                )));
            }
            let proof = hashes(&self.consistency)?;
            verify_consistency(old.size, cp.size, &old.root, &cp.root, &proof).map_err(|e| {
                BundleError(format!(
                    "the log of size {} is not an extension of the trusted checkpoint of size {}: {e}",
                    cp.size, old.size
                ))
            })?;
            consistent_with = Some(old.size);
        }
        Ok(ProofCheck {
            entry: self.entry.seq,
            size: cp.size,
            root: hex::encode(cp.root),
            consistent_with,
            consistency,
        })
    }
}
