//! A witness of the domain's log: C2SP tlog-cosignature/v1 cosignatures and the tlog-witness
//! `add-checkpoint` rules, so that the data authority can attest that the operator's log only
//! grew.
//!
//! Owns the cosigner keys (signature type 0x04, key id `SHA-256(name ‖ "\n" ‖ 0x04 ‖ key)[:4]`),
//! cosigning (`cosignature/v1\ntime <t>\n` + the checkpoint text, signed with Ed25519; the
//! signature line carries key id ‖ big-endian timestamp ‖ signature), verifying a cosignature,
//! the request format (`old <size>`, consistency proof lines, an empty line, the checkpoint) and
//! the witness's decision: a checkpoint is cosigned only if it is signed by a log key the witness
//! trusts, its `old` size is the size the witness cosigned last (else a conflict naming that size),
//! and it provably extends what the witness cosigned (a smaller size is a rollback, a
//! different root or a failing proof a fork). It must never cosign a checkpoint it did not check
//! against its last cosigned state, and never move that state backwards.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::digest::{SHA256, digest};
use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::merkle::{Hash, verify_consistency};
use crate::note::{
    Checkpoint, MAX_NOTE, NamedPair, NoteError, VerifierKey, encode_key_alg, parse_signature_line,
    split_key_alg, split_note,
};

/// Signature type of Ed25519 cosignatures (C2SP tlog-cosignature).
pub const ALG_COSIGNATURE: u8 = 0x04;
/// Most consistency proof lines a request may carry (C2SP tlog-witness).
pub const MAX_PROOF_LINES: usize = 63;

/// Key id of a cosigner: `SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[:4]`.
pub fn cosigner_key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut buf = Vec::with_capacity(name.len() + 34);
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(ALG_COSIGNATURE);
    buf.extend_from_slice(public);
    let d = digest(&SHA256, &buf);
    let mut id = [0u8; 4];
    id.copy_from_slice(&d.as_ref()[..4]);
    id
}

/// The message a v1 cosignature signs.
fn signed_message(text: &str, time: u64) -> String {
    format!("cosignature/v1\ntime {time}\n{text}")
}

/// A witness's public key: verifies its cosignatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignerKey {
    /// Witness name.
    pub name: String,
    /// Key id.
    pub id: [u8; 4],
    /// Ed25519 public key.
    pub public: [u8; 32],
}

impl CosignerKey {
    /// Parses `<name>+<8 hex id>+<base64(0x04 ‖ key)>`.
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        let (name, id, public) =
            split_key_alg(s.trim(), "expected <name>+<id>+<key>", ALG_COSIGNATURE)?;
        if cosigner_key_id(name, &public) != id {
            return Err(NoteError::BadKey("key id does not match the key"));
        }
        Ok(CosignerKey {
            name: name.to_owned(),
            id,
            public,
        })
    }

    /// The text form.
    pub fn encode(&self) -> String {
        encode_key_alg(&self.name, &self.id, &self.public, ALG_COSIGNATURE)
    }

    /// Checks that checkpoint `note` carries a valid cosignature by this key; its timestamp
    /// (the latest, if several verify). Lines of other keys are ignored.
    pub fn verify(&self, note: &str) -> Result<u64, NoteError> {
        let (text, sigs) = split_note(note)?;
        let mut best = None;
        for line in sigs.lines() {
            let (name, sig) = parse_signature_line(line)?;
            if name != self.name || sig.len() != 4 + 8 + 64 || sig[..4] != self.id {
                continue;
            }
            let mut t = [0u8; 8];
            t.copy_from_slice(&sig[4..12]);
            let time = u64::from_be_bytes(t);
            if time > i64::MAX as u64 {
                return Err(NoteError::BadSignature(self.label()));
            }
            UnparsedPublicKey::new(&ED25519, &self.public)
                .verify(signed_message(text, time).as_bytes(), &sig[12..])
                .map_err(|_| NoteError::BadSignature(self.label()))?;
            best = best.max(Some(time));
        }
        best.ok_or_else(|| NoteError::Unsigned(self.label()))
    }

    fn label(&self) -> String {
        format!("{}+{}", self.name, hex::encode(self.id))
    }
}

/// A witness's private key.
#[derive(Debug)]
pub struct Cosigner(NamedPair);

impl Cosigner {
    /// A cosigner named `name` from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        NamedPair::from_seed(name, seed, cosigner_key_id).map(Cosigner)
    }

    /// Parses `PRIVATE+KEY+<name>+<id>+<base64(0x04 ‖ seed)>`.
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        NamedPair::parse(s, ALG_COSIGNATURE, cosigner_key_id).map(Cosigner)
    }

    /// The secret text form (write it only to a private file).
    pub fn encode(&self) -> String {
        self.0.encode(ALG_COSIGNATURE)
    }

    /// The public key.
    pub fn key(&self) -> CosignerKey {
        CosignerKey {
            name: self.0.name.clone(),
            id: self.0.id,
            public: self.0.public(),
        }
    }

    /// The cosignature line (`— <name> <base64(id ‖ time ‖ signature)>\n`) over checkpoint
    /// text `text` at `time`.
    pub fn cosign(&self, text: &str, time: u64) -> String {
        let sig = self.0.pair.sign(signed_message(text, time).as_bytes());
        let mut blob = self.0.id.to_vec();
        blob.extend_from_slice(&time.to_be_bytes());
        blob.extend_from_slice(sig.as_ref());
        format!("\u{2014} {} {}\n", self.0.name, STANDARD.encode(blob))
    }
}

/// An `add-checkpoint` request: the size the log believes the witness cosigned last, the
/// consistency proof from there, and the signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The old size.
    pub old: u64,
    /// The consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

impl AddCheckpoint {
    /// The request body.
    pub fn encode(&self) -> String {
        let mut s = format!("old {}\n", self.old);
        for h in &self.proof {
            s.push_str(&STANDARD.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    /// Parses a request body (hostile: bounded, exact syntax).
    pub fn parse(body: &str) -> Result<Self, WitnessError> {
        let bad = WitnessError::BadRequest;
        if body.len() > MAX_NOTE + 64 * (MAX_PROOF_LINES + 1) {
            return Err(bad("the request is too large"));
        }
        let (head, checkpoint) = body
            .split_once("\n\n")
            .ok_or(bad("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .filter(|n| {
                !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
                    && (*n == "0" || !n.starts_with('0'))
            })
            .and_then(|n| n.parse().ok())
            .ok_or(bad("the first line is `old <size>`"))?;
        let mut proof = Vec::new();
        for l in lines {
            if proof.len() == MAX_PROOF_LINES {
                return Err(bad("more than 63 consistency proof lines"));
            }
            let h = STANDARD
                .decode(l)
                .ok()
                .and_then(|h| <[u8; 32]>::try_from(h).ok())
                .ok_or(bad("a proof line is not a base64 SHA-256 hash"))?;
            proof.push(h);
        }
        Ok(AddCheckpoint {
            old,
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }
}

/// Why a witness refused a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    /// The request is malformed (400).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The witness trusts no log of this origin (404).
    #[error("the witness knows no log `{0}`")]
    UnknownLog(String),
    /// No signature by a trusted log key verifies (403).
    #[error("the checkpoint is not signed by the log's key: {0}")]
    Unsigned(NoteError),
    /// The request's old size is not the size the witness cosigned last (409).
    #[error("the witness last cosigned size {have}, not {old}")]
    Conflict {
        /// What the witness cosigned last.
        have: u64,
        /// What the request claimed.
        old: u64,
    },
    /// The checkpoint is smaller than what the witness cosigned: the log was rolled back.
    #[error("rollback: the witness cosigned size {have}; this checkpoint has size {size}")]
    Rollback {
        /// What the witness cosigned.
        have: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The checkpoint does not extend what the witness cosigned: the log was forked or rewritten
    /// (409 at equal sizes, 422 for a failing proof).
    #[error(
        "fork: the checkpoint of size {size} does not extend the one of size {have} the witness cosigned ({why})"
    )]
    Fork {
        /// What the witness cosigned.
        have: u64,
        /// The checkpoint's size.
        size: u64,
        /// What failed.
        why: String,
    },
}

impl WitnessError {
    /// The HTTP status C2SP tlog-witness gives this refusal.
    pub fn status(&self) -> u16 {
        match self {
            WitnessError::BadRequest(_) | WitnessError::Rollback { .. } => 400,
            WitnessError::UnknownLog(_) => 404,
            WitnessError::Unsigned(_) => 403,
            WitnessError::Conflict { .. } => 409,
            WitnessError::Fork { have, size, .. } if have == size => 409,
            WitnessError::Fork { .. } => 422,
        }
    }
}

/// What a witness remembers of one log: the last checkpoint it cosigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witnessed {
    /// Size.
    pub size: u64,
    /// Base64 root.
    pub root: String,
}

/// A witness: its key, the log keys it trusts, and the last checkpoint it cosigned per origin.
#[derive(Debug)]
pub struct Witness {
    cosigner: Cosigner,
    logs: Vec<VerifierKey>,
    state: BTreeMap<String, Witnessed>,
}

impl Witness {
    /// A witness with its key, trusted log keys and state.
    pub fn new(
        cosigner: Cosigner,
        logs: Vec<VerifierKey>,
        state: BTreeMap<String, Witnessed>,
    ) -> Self {
        Witness {
            cosigner,
            logs,
            state,
        }
    }

    /// The state (to persist, atomically, before handing out a cosignature).
    pub fn state(&self) -> &BTreeMap<String, Witnessed> {
        &self.state
    }

    /// Decides a request at `now` (unix seconds): the cosignature line, with the state already
    /// updated, or the refusal (the state unchanged).
    pub fn add_checkpoint(
        &mut self,
        req: &AddCheckpoint,
        now: u64,
    ) -> Result<String, WitnessError> {
        let (text, _) = split_note(&req.checkpoint).map_err(WitnessError::Unsigned)?;
        let origin = text.split('\n').next().unwrap_or_default();
        let keys: Vec<&VerifierKey> = self.logs.iter().filter(|k| k.name == origin).collect();
        if keys.is_empty() {
            return Err(WitnessError::UnknownLog(origin.chars().take(256).collect()));
        }
        let mut last = None;
        let mut cp = None;
        for k in keys {
            match Checkpoint::open(&req.checkpoint, k) {
                Ok(c) => {
                    cp = Some(c);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let cp = cp.ok_or_else(|| {
            WitnessError::Unsigned(last.unwrap_or(NoteError::Malformed("no signature")))
        })?;
        let have = self.state.get(&cp.origin);
        let have_size = have.map_or(0, |w| w.size);
        if cp.size < have_size {
            return Err(WitnessError::Rollback {
                have: have_size,
                size: cp.size,
            });
        }
        if req.old > cp.size {
            return Err(WitnessError::BadRequest(
                "the old size is larger than the checkpoint's",
            ));
        }
        if req.old != have_size {
            return Err(WitnessError::Conflict {
                have: have_size,
                old: req.old,
            });
        }
        if let Some(w) = have {
            let root = STANDARD
                .decode(&w.root)
                .ok()
                .and_then(|r| <[u8; 32]>::try_from(r).ok())
                .ok_or(WitnessError::BadRequest("the witness state is damaged"))?;
            verify_consistency(w.size, cp.size, &root, &cp.root, &req.proof).map_err(|e| {
                WitnessError::Fork {
                    have: w.size,
                    size: cp.size,
                    why: e.to_string(),
                }
            })?;
        } else if !req.proof.is_empty() {
            return Err(WitnessError::BadRequest(
                "a proof from size 0 must be empty",
            ));
        }
        self.state.insert(
            cp.origin.clone(),
            Witnessed {
                size: cp.size,
                root: STANDARD.encode(cp.root),
            },
        );
        Ok(self.cosigner.cosign(text, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{Tree, leaf_hash};
    use crate::note::Signer;

    fn tree(leaves: &[&[u8]]) -> Tree {
        let mut t = Tree::new();
        for l in leaves {
            t.push(leaf_hash(l));
        }
        t
    }

    fn checkpoint(log: &Signer, t: &Tree, size: u64) -> String {
        log.sign(
            &Checkpoint {
                origin: log.name().into(),
                size,
                root: t.root(size).unwrap(),
            }
            .body(),
        )
        .unwrap()
    }

    #[test]
    fn spec_example_cosignature_line_decodes() {
        // C2SP tlog-cosignature's example: key id, then the big-endian timestamp 1679315147 that
        // the spec's signed-message example shows.
        let line = "\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==";
        let (name, sig) = parse_signature_line(line).unwrap();
        assert_eq!(name, "witness.example.com/w1");
        assert_eq!(sig.len(), 4 + 8 + 64);
        assert_eq!(
            u64::from_be_bytes(sig[4..12].try_into().unwrap()),
            1_679_315_147
        );
        assert_eq!(
            signed_message(
                "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
                1_679_315_147
            ),
            "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
    }

    #[test]
    fn cosigner_keys_round_trip_and_differ_from_note_keys() {
        let c = Cosigner::from_seed("authority.example/w1", [7; 32]).unwrap();
        assert_eq!(Cosigner::parse(&c.encode()).unwrap().key(), c.key());
        let k = CosignerKey::parse(&c.key().encode()).unwrap();
        assert_eq!(k, c.key());
        // The same seed as a note signer has another key id and another type byte.
        let s = Signer::from_seed("authority.example/w1", [7; 32]).unwrap();
        assert_ne!(s.verifier().id, k.id);
        assert!(CosignerKey::parse(&s.verifier().encode()).is_err());
        assert!(VerifierKey::parse(&k.encode()).is_err());
    }

    #[test]
    fn the_witness_cosigns_growth_and_refuses_forks_rollbacks_and_stale_sizes() {
        let log = Signer::from_seed("enclave-domain/test", [1; 32]).unwrap();
        let w = Cosigner::from_seed("authority.example/w1", [2; 32]).unwrap();
        let wkey = w.key();
        let mut witness = Witness::new(w, vec![log.verifier()], BTreeMap::new());
        let leaves: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i]).collect();
        let refs: Vec<&[u8]> = leaves.iter().map(Vec::as_slice).collect();
        let t = tree(&refs);
        // First contact: old 0, empty proof.
        let cp5 = checkpoint(&log, &t, 5);
        let req = AddCheckpoint {
            old: 0,
            proof: vec![],
            checkpoint: cp5.clone(),
        };
        assert_eq!(AddCheckpoint::parse(&req.encode()).unwrap(), req);
        let line = witness.add_checkpoint(&req, 1000).unwrap();
        let cosigned = format!("{cp5}{line}");
        assert_eq!(wkey.verify(&cosigned).unwrap(), 1000);
        // Still a valid log note.
        assert!(Checkpoint::open(&cosigned, &log.verifier()).is_ok());
        // Growth with a consistency proof.
        let cp12 = checkpoint(&log, &t, 12);
        let proof = t.consistency_proof(5, 12).unwrap();
        let req = AddCheckpoint {
            old: 5,
            proof: proof.clone(),
            checkpoint: cp12.clone(),
        };
        witness.add_checkpoint(&req, 1001).unwrap();
        assert_eq!(witness.state()["enclave-domain/test"].size, 12);
        // A stale old size is a conflict naming the witness's size.
        let stale = AddCheckpoint {
            old: 5,
            proof,
            checkpoint: cp12.clone(),
        };
        let e = witness.add_checkpoint(&stale, 1002).unwrap_err();
        assert_eq!(e, WitnessError::Conflict { have: 12, old: 5 });
        assert_eq!(e.status(), 409);
        // Rollback: a smaller checkpoint.
        let cp8 = checkpoint(&log, &t, 8);
        let e = witness
            .add_checkpoint(
                &AddCheckpoint {
                    old: 12,
                    proof: vec![],
                    checkpoint: cp8,
                },
                1003,
            )
            .unwrap_err();
        assert_eq!(e, WitnessError::Rollback { have: 12, size: 8 });
        assert_eq!(e.status(), 400, "{e}");
        // Fork: the same key signs a rewritten history (one entry changed).
        let mut forked = leaves.clone();
        forked[3] = b"rewritten".to_vec();
        let frefs: Vec<&[u8]> = forked.iter().map(Vec::as_slice).collect();
        let ft = tree(&frefs);
        for (size, proof) in [
            (12, vec![]),
            (16, ft.consistency_proof(12, 16).unwrap()),
            (16, t.consistency_proof(12, 16).unwrap()),
        ] {
            let e = witness
                .add_checkpoint(
                    &AddCheckpoint {
                        old: 12,
                        proof,
                        checkpoint: checkpoint(&log, &ft, size),
                    },
                    1004,
                )
                .unwrap_err();
            assert!(matches!(e, WitnessError::Fork { .. }), "{e}");
        }
        assert_eq!(
            witness.state()["enclave-domain/test"].size,
            12,
            "state unchanged"
        );
        // Another key, another origin, a tampered note.
        let other = Signer::from_seed("enclave-domain/test", [9; 32]).unwrap();
        let e = witness
            .add_checkpoint(
                &AddCheckpoint {
                    old: 12,
                    proof: t.consistency_proof(12, 16).unwrap(),
                    checkpoint: checkpoint(&other, &t, 16),
                },
                1005,
            )
            .unwrap_err();
        assert_eq!(e.status(), 403);
        let stranger = Signer::from_seed("elsewhere/log", [1; 32]).unwrap();
        let e = witness
            .add_checkpoint(
                &AddCheckpoint {
                    old: 0,
                    proof: vec![],
                    checkpoint: checkpoint(&stranger, &t, 3),
                },
                1006,
            )
            .unwrap_err();
        assert_eq!(e.status(), 404);
        // The honest extension still works.
        let cp20 = checkpoint(&log, &t, 20);
        let line = witness
            .add_checkpoint(
                &AddCheckpoint {
                    old: 12,
                    proof: t.consistency_proof(12, 20).unwrap(),
                    checkpoint: cp20.clone(),
                },
                1007,
            )
            .unwrap();
        // A cosignature does not carry over to another checkpoint.
        assert!(wkey.verify(&format!("{cp12}{line}")).is_err());
        assert!(wkey.verify(&cp20).is_err());
    }

    #[test]
    fn requests_parse_strictly() {
        for bad in [
            "",
            "old 1\n",
            "old 01\n\nx\n",
            "old -1\n\nx\n",
            "new 1\n\nx\n",
            "old 1\nnot-base64!\n\nx\n",
            "old 1\nAAAA\n\nx\n",
        ] {
            assert!(AddCheckpoint::parse(bad).is_err(), "{bad:?}");
        }
        let many = format!(
            "old 1\n{}\nx\n",
            format!("{}\n", STANDARD.encode([0u8; 32])).repeat(64)
        );
        assert!(AddCheckpoint::parse(&many).is_err());
    }
}
