//! C2SP signed notes and tlog checkpoints, with Ed25519 keys (ring).
//!
//! Owns the key formats (`PRIVATE+KEY+<name>+<id>+<b64>` signer keys, `<name>+<id>+<b64>`
//! verifier keys, as in golang.org/x/mod/sumdb/note), signing, verifying and the checkpoint body
//! (`<origin>\n<size>\n<b64 root>\n`). Parsing treats every note as hostile: bounded size, exact
//! syntax, and a note is only trusted when a signature by the expected key verifies. It must never
//! return the text of a note whose signature was not checked.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::digest::{SHA256, digest};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::merkle::Hash;

/// Largest note accepted.
pub const MAX_NOTE: usize = 16 << 10;
/// Most signature lines accepted on one note.
const MAX_SIGNATURES: usize = 16;
/// Signature algorithm byte for Ed25519 in key encodings.
const ALG_ED25519: u8 = 0x01;

/// Why a key, note or checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key string is malformed.
    #[error("malformed key: {0}")]
    BadKey(&'static str),
    /// The note is malformed.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// No signature by the expected key is present.
    #[error("note is not signed by key {0}")]
    Unsigned(String),
    /// A signature claiming the expected key does not verify.
    #[error("signature by key {0} does not verify")]
    BadSignature(String),
    /// The checkpoint body is malformed.
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(&'static str),
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// Key id: the first four bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key).
pub fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut buf = Vec::with_capacity(name.len() + 34);
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(ALG_ED25519);
    buf.extend_from_slice(public);
    let d = digest(&SHA256, &buf);
    let mut id = [0u8; 4];
    id.copy_from_slice(&d.as_ref()[..4]);
    id
}

/// A public key that verifies notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    /// Key name (also the checkpoint origin in Enclave).
    pub name: String,
    /// Key id.
    pub id: [u8; 4],
    /// Ed25519 public key.
    pub public: [u8; 32],
}

impl VerifierKey {
    /// Parses `<name>+<8 hex id>+<base64(0x01 ‖ key)>`.
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        let (name, id, public) = split_key(s.trim(), "expected <name>+<id>+<key>")?;
        if key_id(name, &public) != id {
            return Err(NoteError::BadKey("key id does not match the key"));
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            id,
            public,
        })
    }

    /// The text form `<name>+<id>+<key>`.
    pub fn encode(&self) -> String {
        encode_key(&self.name, &self.id, &self.public)
    }

    /// Verifies `note` and returns its text (everything before the signature block).
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let (text, sigs) = split_note(note)?;
        let mut found = false;
        for line in sigs.lines() {
            let (name, sig) = parse_signature_line(line)?;
            if name != self.name || sig.len() < 4 || sig[..4] != self.id {
                continue;
            }
            UnparsedPublicKey::new(&ED25519, &self.public)
                .verify(text.as_bytes(), &sig[4..])
                .map_err(|_| NoteError::BadSignature(self.label()))?;
            found = true;
        }
        if found {
            Ok(text)
        } else {
            Err(NoteError::Unsigned(self.label()))
        }
    }

    fn label(&self) -> String {
        format!("{}+{}", self.name, hex::encode(self.id))
    }
}

/// Splits `<name>+<8 hex id>+<base64(0x01 ‖ 32 bytes)>` (the base64 may itself hold `+`).
fn split_key<'a>(
    s: &'a str,
    shape: &'static str,
) -> Result<(&'a str, [u8; 4], [u8; 32]), NoteError> {
    split_key_alg(s, shape, ALG_ED25519)
}

/// [`split_key`] for signature type `alg` (0x04: a cosigner's key).
pub(crate) fn split_key_alg<'a>(
    s: &'a str,
    shape: &'static str,
    alg: u8,
) -> Result<(&'a str, [u8; 4], [u8; 32]), NoteError> {
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::BadKey(shape));
    };
    if !valid_name(name) {
        return Err(NoteError::BadKey("invalid key name"));
    }
    let id = decode_id(id)?;
    let raw = STANDARD
        .decode(data)
        .map_err(|_| NoteError::BadKey("key is not base64"))?;
    let Some((&first, key)) = raw.split_first() else {
        return Err(NoteError::BadKey("not an Ed25519 key"));
    };
    if first != alg {
        return Err(NoteError::BadKey(
            "not an Ed25519 key of this signature type",
        ));
    }
    let key = key
        .try_into()
        .map_err(|_| NoteError::BadKey("Ed25519 keys are 32 bytes"))?;
    Ok((name, id, key))
}

/// The text form `<name>+<id>+<base64(0x01 ‖ key)>`.
fn encode_key(name: &str, id: &[u8; 4], key: &[u8; 32]) -> String {
    encode_key_alg(name, id, key, ALG_ED25519)
}

/// [`encode_key`] for signature type `alg`.
pub(crate) fn encode_key_alg(name: &str, id: &[u8; 4], key: &[u8; 32], alg: u8) -> String {
    let mut data = vec![alg];
    data.extend_from_slice(key);
    format!("{name}+{}+{}", hex::encode(id), STANDARD.encode(data))
}

fn decode_id(id: &str) -> Result<[u8; 4], NoteError> {
    // C2SP: the key hash is 8 lower-case hex digits.
    if id.len() != 8 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(NoteError::BadKey("key id must be 8 lower-case hex digits"));
    }
    let raw = hex::decode(id).map_err(|_| NoteError::BadKey("key id is not hex"))?;
    raw.try_into()
        .map_err(|_| NoteError::BadKey("key id must be 4 bytes"))
}

/// Splits a note into its text (with final newline) and its signature block.
pub(crate) fn split_note(note: &str) -> Result<(&str, &str), NoteError> {
    if note.len() > MAX_NOTE {
        return Err(NoteError::Malformed("note too large"));
    }
    if !note.ends_with('\n') {
        return Err(NoteError::Malformed("note must end with a newline"));
    }
    let Some(i) = note.rfind("\n\n") else {
        return Err(NoteError::Malformed("no signature block"));
    };
    let (text, sigs) = (&note[..=i], &note[i + 2..]);
    if text.contains("\n\n") || text.starts_with('\n') {
        return Err(NoteError::Malformed("blank line in the note text"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed("control character in text"));
    }
    if sigs.is_empty() || sigs.lines().count() > MAX_SIGNATURES {
        return Err(NoteError::Malformed("bad number of signatures"));
    }
    Ok((text, sigs))
}

/// Parses `— <name> <base64(id ‖ signature)>`.
pub(crate) fn parse_signature_line(line: &str) -> Result<(&str, Vec<u8>), NoteError> {
    let Some(rest) = line.strip_prefix("\u{2014} ") else {
        return Err(NoteError::Malformed(
            "signature line must start with an em dash",
        ));
    };
    let Some((name, sig)) = rest.split_once(' ') else {
        return Err(NoteError::Malformed(
            "signature line needs a name and a signature",
        ));
    };
    if !valid_name(name) {
        return Err(NoteError::Malformed("invalid signer name"));
    }
    let sig = STANDARD
        .decode(sig)
        .map_err(|_| NoteError::Malformed("signature is not base64"))?;
    if sig.len() < 5 {
        return Err(NoteError::Malformed("signature too short"));
    }
    Ok((name, sig))
}

/// A named Ed25519 key pair with its key id: what a note signer and a witness's cosigner share
/// (they differ in the key id's algorithm byte and in what they sign).
pub(crate) struct NamedPair {
    pub(crate) name: String,
    pub(crate) id: [u8; 4],
    pub(crate) pair: Ed25519KeyPair,
    seed: [u8; 32],
}

impl NamedPair {
    /// The pair named `name` from `seed`, its id computed by `key_id`.
    pub(crate) fn from_seed(
        name: &str,
        seed: [u8; 32],
        key_id: fn(&str, &[u8; 32]) -> [u8; 4],
    ) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::BadKey("invalid key name"));
        }
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| NoteError::BadKey("bad Ed25519 seed"))?;
        let public: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| NoteError::BadKey("bad Ed25519 public key"))?;
        Ok(NamedPair {
            name: name.to_owned(),
            id: key_id(name, &public),
            pair,
            seed,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<id>+<base64(alg ‖ seed)>`, checking the id.
    pub(crate) fn parse(
        s: &str,
        alg: u8,
        key_id: fn(&str, &[u8; 32]) -> [u8; 4],
    ) -> Result<Self, NoteError> {
        const SHAPE: &str = "expected PRIVATE+KEY+<name>+<id>+<key>";
        let rest = s
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::BadKey(SHAPE))?;
        let (name, id, seed) = split_key_alg(rest, SHAPE, alg)?;
        let pair = NamedPair::from_seed(name, seed, key_id)?;
        if pair.id != id {
            return Err(NoteError::BadKey("key id does not match the key"));
        }
        Ok(pair)
    }

    /// The secret text form `PRIVATE+KEY+<name>+<id>+<key>`.
    pub(crate) fn encode(&self, alg: u8) -> String {
        format!(
            "PRIVATE+KEY+{}",
            encode_key_alg(&self.name, &self.id, &self.seed, alg)
        )
    }

    /// The public key.
    pub(crate) fn public(&self) -> [u8; 32] {
        let mut public = [0u8; 32];
        public.copy_from_slice(self.pair.public_key().as_ref());
        public
    }
}

impl std::fmt::Debug for NamedPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("id", &hex::encode(self.id))
            .finish_non_exhaustive()
    }
}

/// A private key that signs notes.
#[derive(Debug)]
pub struct Signer(NamedPair);

impl Signer {
    /// A signer named `name` from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        NamedPair::from_seed(name, seed, key_id).map(Signer)
    }

    /// Parses `PRIVATE+KEY+<name>+<id>+<base64(0x01 ‖ seed)>`.
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        NamedPair::parse(s, ALG_ED25519, key_id).map(Signer)
    }

    /// The text form `PRIVATE+KEY+<name>+<id>+<key>`. Secret: write it only to a private file.
    pub fn encode(&self) -> String {
        self.0.encode(ALG_ED25519)
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.0.name.clone(),
            id: self.0.id,
            public: self.0.public(),
        }
    }

    /// Key name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// A 32-byte key derived from this signer's secret for `label` (e.g. to authenticate the
    /// writer's own state files). Never equal to the signing key.
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        let mut buf = Vec::with_capacity(64 + label.len());
        buf.extend_from_slice(b"enclave v1 derived key\0");
        buf.extend_from_slice(label.as_bytes());
        buf.push(0);
        buf.extend_from_slice(&self.0.seed);
        let d = digest(&SHA256, &buf);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    /// Signs `text` (which must end with a newline) into a note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if !text.ends_with('\n') || text.contains("\n\n") || text.len() > MAX_NOTE / 2 {
            return Err(NoteError::Malformed(
                "text must end with one newline and hold no blank line",
            ));
        }
        let sig = self.0.pair.sign(text.as_bytes());
        let mut blob = self.0.id.to_vec();
        blob.extend_from_slice(sig.as_ref());
        Ok(format!(
            "{text}\n\u{2014} {} {}\n",
            self.0.name,
            STANDARD.encode(blob)
        ))
    }
}

/// A tlog checkpoint body: origin, tree size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Log identity (the key name in Enclave).
    pub origin: String,
    /// Number of entries committed.
    pub size: u64,
    /// Merkle root of those entries.
    pub root: Hash,
}

impl Checkpoint {
    /// The checkpoint text `<origin>\n<size>\n<b64 root>\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Parses a verified note text (non-empty extension lines after the root are allowed and
    /// ignored; C2SP tlog-checkpoint forbids empty ones).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        if !text.ends_with('\n') {
            return Err(NoteError::BadCheckpoint("must end with a newline"));
        }
        let mut lines = text.split_terminator('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(NoteError::BadCheckpoint(
                "needs origin, size and root lines",
            ));
        };
        if origin.is_empty() {
            return Err(NoteError::BadCheckpoint("empty origin"));
        }
        let canonical = size.bytes().all(|b| b.is_ascii_digit())
            && !size.is_empty()
            && (size == "0" || !size.starts_with('0'));
        let size: u64 = match size.parse() {
            Ok(n) if canonical => n,
            _ => return Err(NoteError::BadCheckpoint("size is not a decimal number")),
        };
        let root = STANDARD
            .decode(root)
            .ok()
            .and_then(|r| <[u8; 32]>::try_from(r).ok())
            .ok_or(NoteError::BadCheckpoint(
                "root is not a base64 SHA-256 hash",
            ))?;
        if lines.any(str::is_empty) {
            return Err(NoteError::BadCheckpoint("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// Verifies a signed checkpoint note with `key` and parses it; its origin must be `key.name`.
    pub fn open(note: &str, key: &VerifierKey) -> Result<Self, NoteError> {
        let cp = Checkpoint::parse(key.open(note)?)?;
        if cp.origin != key.name {
            return Err(NoteError::BadCheckpoint(
                "origin differs from the log key name",
            ));
        }
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // golang.org/x/mod/sumdb/note example keys and signature (ExampleSign / ExampleOpen).
    const SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn go_note_known_answer() {
        let signer = Signer::parse(SKEY).unwrap();
        assert_eq!(signer.encode(), SKEY);
        let vkey = VerifierKey::parse(VKEY).unwrap();
        assert_eq!(signer.verifier(), vkey);
        assert_eq!(vkey.encode(), VKEY);
        let note = signer.sign(TEXT).unwrap();
        assert_eq!(note, format!("{TEXT}\n{SIG}"));
        assert_eq!(vkey.open(&note).unwrap(), TEXT);
    }

    #[test]
    fn tampered_notes_are_refused() {
        let vkey = VerifierKey::parse(VKEY).unwrap();
        let note = format!("{TEXT}\n{SIG}");
        let edited = note.replacen("problem", "pr0blem", 1);
        assert!(matches!(
            vkey.open(&edited),
            Err(NoteError::BadSignature(_))
        ));
        let other = Signer::from_seed("PeterNeumann", [9; 32]).unwrap();
        let forged = other.sign(TEXT).unwrap();
        assert!(matches!(vkey.open(&forged), Err(NoteError::Unsigned(_))));
        assert!(vkey.open(TEXT).is_err());
        assert!(vkey.open(&note[..note.len() - 1]).is_err());
        assert!(vkey.open(&note.replace('\u{2014}', "-")).is_err());
        // Key id mismatch and bad key text.
        assert!(
            VerifierKey::parse(
                "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .is_err()
        );
        assert!(VerifierKey::parse("Peter Neumann+c74f20a3+AAAA").is_err());
        // C2SP: the key id is lower-case hex.
        assert!(
            VerifierKey::parse(
                "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .is_err()
        );
        assert!(Signer::parse(VKEY).is_err());
    }

    #[test]
    fn checkpoint_round_trip_and_strict_parse() {
        let signer = Signer::from_seed("enclave/test", [3; 32]).unwrap();
        let cp = Checkpoint {
            origin: "enclave/test".into(),
            size: 42,
            root: [5; 32],
        };
        let note = signer.sign(&cp.body()).unwrap();
        assert_eq!(Checkpoint::open(&note, &signer.verifier()).unwrap(), cp);
        for body in [
            "enclave/test\n042\nBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=\n",
            "enclave/test\n-1\nBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=\n",
            "enclave/test\n1\nBQUF\n",
            "enclave/test\n1\n",
            "enclave/test\n42\nBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=\n\nextension\n",
            "enclave/test\n42\nBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=",
        ] {
            assert!(Checkpoint::parse(body).is_err(), "{body:?}");
        }
        // A non-empty extension line is fine.
        let ext = format!("{}extension\n", cp.body());
        assert_eq!(Checkpoint::parse(&ext).unwrap(), cp);
        let other = Signer::from_seed("enclave/other", [3; 32]).unwrap();
        let note = other.sign(&cp.body()).unwrap();
        assert!(Checkpoint::open(&note, &other.verifier()).is_err());
    }
}
