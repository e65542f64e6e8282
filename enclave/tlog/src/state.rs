//! The log writer's persisted state: where verification may resume at open.
//!
//! Owns `<log>.state`: after each commit the writer records the byte offset of the end of that
//! commit, the compact range of the tree (its perfect-subtree roots), the last entry's leaf and
//! time, and the checkpoint that closed the commit — authenticated with an HMAC under a key
//! derived from the log's signing key. At the next open the writer checks the tag and that the
//! checkpoint line really ends at that offset in the file, then verifies only the lines after it,
//! so opening does not grow with history. Anything that does not check out means a full
//! verification, never trust. It must never let a state it cannot authenticate shorten a check.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::entry::Line;
use crate::merkle::{CompactRange, Hash};
use crate::note::Signer;

/// Largest state file read.
const MAX_STATE: u64 = 64 << 10;

/// What the writer knew after a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Body {
    pub version: u32,
    /// Entries committed.
    pub size: u64,
    /// Byte offset just after the commit's checkpoint line.
    pub offset: u64,
    /// Lines up to `offset`.
    pub lines: u64,
    /// Checkpoint lines up to `offset`.
    pub checkpoints: u64,
    /// The compact range: (hex root, size) of each perfect subtree, largest first.
    pub parts: Vec<(String, u64)>,
    /// Hex leaf hash of the last entry (absent for an empty log).
    pub prev_leaf: Option<String>,
    /// Time of the last entry.
    pub last_time: i64,
    /// The checkpoint note that closed the commit.
    pub latest: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    body: Body,
    mac: String,
}

fn key(signer: &Signer) -> ring::hmac::Key {
    ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        &signer.derive_key("log writer state"),
    )
}

/// The state file of the log at `log`.
pub(crate) fn path(log: &Path) -> PathBuf {
    log.with_extension("state")
}

fn hex32(s: &str) -> Option<Hash> {
    let v = hex::decode(s).ok()?;
    Hash::try_from(v).ok()
}

/// A state the writer can resume from: authenticated, well-formed, and its checkpoint line found
/// at its offset in `file`.
pub(crate) struct Resume {
    pub body: Body,
    pub range: CompactRange,
    pub prev_leaf: Option<Hash>,
}

/// Loads and checks the state of `log`; `None` means verify from the start.
pub(crate) fn load(log: &Path, signer: &Signer, file: &mut File) -> Option<Resume> {
    let p = path(log);
    let f = File::open(&p).ok()?;
    if f.metadata().ok()?.len() > MAX_STATE {
        return None;
    }
    let mut text = Vec::new();
    f.take(MAX_STATE).read_to_end(&mut text).ok()?;
    let stored: Stored = serde_json::from_slice(&text).ok()?;
    let body_json = serde_json::to_vec(&stored.body).ok()?;
    let mac = hex::decode(&stored.mac).ok()?;
    ring::hmac::verify(&key(signer), &body_json, &mac).ok()?;
    let body = stored.body;
    if body.version != 1 {
        return None;
    }
    let parts: Vec<(Hash, u64)> = body
        .parts
        .iter()
        .map(|(h, n)| hex32(h).map(|h| (h, *n)))
        .collect::<Option<_>>()?;
    let range = CompactRange::from_parts(body.size, parts)?;
    let prev_leaf = match &body.prev_leaf {
        None if body.size == 0 => None,
        Some(h) if body.size > 0 => Some(hex32(h)?),
        _ => return None,
    };
    // The commit's checkpoint line must end exactly at `offset` in the file as it is now.
    let line = Line::Checkpoint(body.latest.clone()).encode().ok()?;
    let start = body.offset.checked_sub(line.len() as u64)?;
    if file.metadata().ok()?.len() < body.offset {
        return None;
    }
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut found = vec![0u8; line.len()];
    file.read_exact(&mut found).ok()?;
    if found != line.as_bytes() {
        return None;
    }
    // And a line must start there (the byte before is a newline, or it is the file's start).
    if start > 0 {
        file.seek(SeekFrom::Start(start - 1)).ok()?;
        let mut b = [0u8; 1];
        file.read_exact(&mut b).ok()?;
        if b[0] != b'\n' {
            return None;
        }
    }
    Some(Resume {
        body,
        range,
        prev_leaf,
    })
}

/// Writes the state (atomically; not synced: a lost or stale state only means more to verify).
pub(crate) fn save(log: &Path, signer: &Signer, body: &Body) -> std::io::Result<()> {
    let body_json = serde_json::to_vec(body).map_err(std::io::Error::other)?;
    let mac = ring::hmac::sign(&key(signer), &body_json);
    let stored = Stored {
        body: body.clone(),
        mac: hex::encode(mac.as_ref()),
    };
    let text = serde_json::to_vec(&stored).map_err(std::io::Error::other)?;
    let p = path(log);
    let tmp = p.with_extension("state.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &p)
}

/// The body for a commit.
pub(crate) fn body(
    range: &CompactRange,
    offset: u64,
    lines: u64,
    checkpoints: u64,
    prev_leaf: Option<Hash>,
    last_time: i64,
    latest: &str,
) -> Body {
    Body {
        version: 1,
        size: range.size(),
        offset,
        lines,
        checkpoints,
        parts: range
            .parts()
            .into_iter()
            .map(|(h, n)| (hex::encode(h), n))
            .collect(),
        prev_leaf: prev_leaf.map(hex::encode),
        last_time,
        latest: latest.to_owned(),
    }
}
