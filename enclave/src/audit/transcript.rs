//! Sealed job transcripts: everything needed to re-run a job, encrypted at rest.
//!
//! A transcript holds the job's inputs (module digest, parameters, seed, clock, limits, datasets
//! with their file digests, the policy text, the application) and the recorded results of every
//! world-dependent host call (the tape). It is sealed with AES-256-GCM (ring) under a key
//! derived by HKDF-SHA-256 from the domain secret and a per-file random salt, in 1 MiB chunks whose
//! nonces carry the chunk number and a final-chunk flag, so edits, reordering and truncation are
//! all detected. The job id is bound in as associated data. It must never write plaintext to disk
//! and never return a transcript that did not authenticate.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use serde::{Deserialize, Serialize};

use crate::error::JobError;
use crate::limits::Limits;
use crate::sandbox::{Event, HostErr, TapeSink};
use crate::store::{StoreError, read_bounded};

const MAGIC: &[u8; 8] = b"ENCLTX01";
const CHUNK: usize = 1 << 20;
const TAG: usize = 16;
/// Largest sealed transcript read back.
const MAX_SEALED: u64 = 8 << 30;

/// Why a transcript could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Authentication failed: the file was altered, truncated or belongs to another job/domain.
    #[error("transcript {0} does not authenticate: it was altered, truncated or is not this job's")]
    Tampered(String),
    /// The decrypted content is malformed (a bug or an incompatible version).
    #[error("transcript {job}: malformed content ({why})")]
    Malformed {
        /// Job id.
        job: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// A dataset the job read, with the digest of its file at the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRef {
    /// Table name.
    pub name: String,
    /// File path.
    pub path: String,
    /// blake3 of the file, hex.
    pub blake3: String,
}

/// An output the job emitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRef {
    /// Output name.
    pub name: String,
    /// blake3 of its canonical IPC, hex.
    pub blake3: String,
}

/// The job's inputs and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Format version.
    pub version: u32,
    /// Job id.
    pub job_id: String,
    /// blake3 of the module, hex.
    pub module_blake3: String,
    /// Parameters.
    pub params: BTreeMap<String, String>,
    /// Random seed, hex.
    pub seed: String,
    /// Logical clock.
    pub clock_ms: i64,
    /// Limits the job ran under.
    pub limits: Limits,
    /// Query parallelism.
    pub target_partitions: usize,
    /// Datasets granted.
    pub datasets: Vec<DatasetRef>,
    /// The policy text enforced, if any.
    pub policy: Option<String>,
    /// Application id (pseudonym scope).
    pub application: String,
    /// Outputs, in emission order.
    pub outputs: Vec<OutputRef>,
    /// `Ok` or the error that ended the job.
    pub result: Result<(), JobError>,
}

/// A whole transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// Inputs and outcome.
    pub header: Header,
    /// Recorded host-call results.
    pub events: Vec<Event>,
}

fn key(secret: &[u8; 32], salt: &[u8; 32]) -> Result<LessSafeKey, ring::error::Unspecified> {
    let prk = Salt::new(HKDF_SHA256, salt).extract(secret);
    let okm = prk.expand(&[b"enclave transcript v1"], &AES_256_GCM)?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3] = u8::from(last);
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

fn prefix(salt: &[u8; 32], job_id: &str) -> Vec<u8> {
    let mut p = MAGIC.to_vec();
    p.extend_from_slice(salt);
    p.extend_from_slice(&(job_id.len() as u16).to_le_bytes());
    p.extend_from_slice(job_id.as_bytes());
    p
}

/// Writes a sealed transcript as the job runs: events are encoded and sealed chunk by chunk
/// (so a streaming job's results are not held in memory), the header goes last, and the file
/// appears under its final name only when finished.
#[derive(Debug)]
pub struct SealedWriter {
    pub(super) job: String,
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    file: Option<File>,
    key: LessSafeKey,
    head: Vec<u8>,
    plain: Vec<u8>,
    counter: u64,
    hasher: blake3::Hasher,
}

impl SealedWriter {
    /// Starts the sealed transcript of `job_id` at `path`.
    pub fn create(secret: &[u8; 32], path: &Path, job_id: &str) -> Result<Self, TranscriptError> {
        let internal = |why| TranscriptError::Malformed {
            job: job_id.to_owned(),
            why,
        };
        let mut salt = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
            .map_err(|_| internal("no system randomness"))?;
        let key = key(secret, &salt).map_err(|_| internal("key derivation"))?;
        let head = prefix(&salt, job_id);
        let tmp = path.with_extension("partial");
        let io = |source| StoreError::Io {
            what: "writing transcript",
            path: tmp.clone(),
            source,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(&tmp).map_err(io)?;
        file.write_all(&head).map_err(io)?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(&head);
        Ok(SealedWriter {
            job: job_id.to_owned(),
            path: path.to_owned(),
            tmp,
            file: Some(file),
            key,
            head,
            plain: Vec::with_capacity(CHUNK + 64 * 1024),
            counter: 0,
            hasher,
        })
    }

    fn seal_chunk(&mut self, len: usize, last: bool) -> Result<(), TranscriptError> {
        // Move the first `len` bytes out without a byte-wise copy loop.
        let rest = self.plain.split_off(len);
        let mut buf = std::mem::replace(&mut self.plain, rest);
        self.plain.reserve(CHUNK + (64 << 10));
        self.key
            .seal_in_place_append_tag(nonce(self.counter, last), Aad::from(&self.head), &mut buf)
            .map_err(|_| TranscriptError::Malformed {
                job: self.job.clone(),
                why: "sealing",
            })?;
        self.counter += 1;
        let framed_len = (buf.len() as u32).to_le_bytes();
        let Some(file) = self.file.as_mut() else {
            return Err(TranscriptError::Malformed {
                job: self.job.clone(),
                why: "transcript already finished",
            });
        };
        let tmp = &self.tmp;
        let io = |source| StoreError::Io {
            what: "writing transcript",
            path: tmp.clone(),
            source,
        };
        file.write_all(&framed_len).map_err(io)?;
        file.write_all(&buf).map_err(io)?;
        self.hasher.update(&framed_len).update(&buf);
        Ok(())
    }

    fn write_plain(&mut self, bytes: &[u8]) -> Result<(), TranscriptError> {
        self.plain.extend_from_slice(bytes);
        while self.plain.len() > CHUNK {
            self.seal_chunk(CHUNK, false)?;
        }
        Ok(())
    }

    /// Appends one recorded host-call result.
    pub fn event(&mut self, e: &Event) -> Result<(), TranscriptError> {
        let mut out = Vec::new();
        encode_event(&mut out, e).map_err(|why| TranscriptError::Malformed {
            job: self.job.clone(),
            why,
        })?;
        self.write_plain(&out)
    }

    /// Writes the header, seals the last chunk, syncs and moves the file to its final name;
    /// returns the blake3 of the sealed file.
    pub fn finish(&mut self, header: &Header) -> Result<[u8; 32], TranscriptError> {
        let mut out = vec![0u8];
        let json = serde_json::to_vec(header).map_err(|_| TranscriptError::Malformed {
            job: self.job.clone(),
            why: "header encoding",
        })?;
        put_bytes(&mut out, &json).map_err(|why| TranscriptError::Malformed {
            job: self.job.clone(),
            why,
        })?;
        self.write_plain(&out)?;
        let rest = self.plain.len();
        self.seal_chunk(rest, true)?;
        let io = |what, path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { what, path, source }
        };
        if let Some(file) = self.file.take() {
            file.sync_all()
                .map_err(io("syncing transcript", &self.tmp))?;
        }
        std::fs::rename(&self.tmp, &self.path).map_err(io("storing transcript", &self.path))?;
        Ok(*self.hasher.finalize().as_bytes())
    }
}

impl Drop for SealedWriter {
    fn drop(&mut self) {
        // An unfinished transcript (the job could not run) leaves nothing behind.
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl TapeSink for SealedWriter {
    fn record(&mut self, event: &Event) -> Result<(), String> {
        self.event(event).map_err(|e| e.to_string())
    }
}

impl Transcript {
    /// Seals a whole transcript to `path`; returns the blake3 of the sealed file.
    pub fn seal(&self, secret: &[u8; 32], path: &Path) -> Result<[u8; 32], TranscriptError> {
        let mut w = SealedWriter::create(secret, path, &self.header.job_id)?;
        for e in &self.events {
            w.event(e)?;
        }
        w.finish(&self.header)
    }

    /// Opens the sealed transcript of `job_id` at `path`; returns it and the file's blake3.
    pub fn open(
        secret: &[u8; 32],
        path: &Path,
        job_id: &str,
    ) -> Result<(Transcript, [u8; 32]), TranscriptError> {
        let sealed = read_bounded(path, MAX_SEALED)?;
        let digest = *blake3::hash(&sealed).as_bytes();
        let tampered = || TranscriptError::Tampered(job_id.to_owned());
        let salt: [u8; 32] = sealed
            .get(8..40)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(tampered)?;
        let head = prefix(&salt, job_id);
        if !sealed.starts_with(&head) {
            return Err(tampered());
        }
        let key = key(secret, &salt).map_err(|_| tampered())?;
        let mut rest = &sealed[head.len()..];
        let mut plain = Vec::with_capacity(sealed.len());
        let mut counter = 0u64;
        loop {
            let (len, tail) = rest.split_at_checked(4).ok_or_else(tampered)?;
            let len = u32::from_le_bytes(len.try_into().map_err(|_| tampered())?) as usize;
            if !(TAG..=CHUNK + TAG).contains(&len) {
                return Err(tampered());
            }
            let (body, tail) = tail.split_at_checked(len).ok_or_else(tampered)?;
            let last = tail.is_empty();
            let mut buf = body.to_vec();
            let opened = key
                .open_in_place(nonce(counter, last), Aad::from(&head), &mut buf)
                .map_err(|_| tampered())?;
            plain.extend_from_slice(opened);
            rest = tail;
            counter += 1;
            if last {
                break;
            }
        }
        let t = Transcript::decode(&plain).map_err(|why| TranscriptError::Malformed {
            job: job_id.to_owned(),
            why,
        })?;
        if t.header.job_id != job_id {
            return Err(tampered());
        }
        Ok((t, digest))
    }

    fn decode(bytes: &[u8]) -> Result<Transcript, &'static str> {
        let mut r = Reader(bytes);
        let mut events = Vec::new();
        loop {
            let e = match r.u8()? {
                0 => break,
                1 => {
                    let sql = String::from_utf8(r.bytes()?.to_vec()).map_err(|_| "SQL text")?;
                    let result = match r.u8()? {
                        0 => Ok(r.i64()?),
                        _ => Err(r.err()?),
                    };
                    Event::Open { sql, result }
                }
                2 => {
                    let handle = r.i32()?;
                    let result = match r.u8()? {
                        0 => Ok(std::sync::Arc::new(r.bytes()?.to_vec())),
                        _ => Err(r.err()?),
                    };
                    Event::Next { handle, result }
                }
                3 => Event::Suppressed {
                    handle: r.i32()?,
                    value: r.i64()?,
                },
                _ => return Err("unknown event tag"),
            };
            events.push(e);
        }
        let header: Header =
            serde_json::from_slice(r.bytes()?).map_err(|_| "header is not valid")?;
        if !r.0.is_empty() {
            return Err("trailing bytes");
        }
        Ok(Transcript { header, events })
    }
}

/// Encodes one event: a tag byte, then its fields (little-endian, length-prefixed bytes).
fn encode_event(out: &mut Vec<u8>, e: &Event) -> Result<(), &'static str> {
    match e {
        Event::Open { sql, result } => {
            out.push(1);
            put_bytes(out, sql.as_bytes())?;
            match result {
                Ok(h) => {
                    out.push(0);
                    out.extend_from_slice(&h.to_le_bytes());
                }
                Err(he) => put_err(out, he)?,
            }
        }
        Event::Next { handle, result } => {
            out.push(2);
            out.extend_from_slice(&handle.to_le_bytes());
            match result {
                Ok(msg) => {
                    out.push(0);
                    put_bytes(out, msg)?;
                }
                Err(he) => put_err(out, he)?,
            }
        }
        Event::Suppressed { handle, value } => {
            out.push(3);
            out.extend_from_slice(&handle.to_le_bytes());
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    Ok(())
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<(), &'static str> {
    let len = u32::try_from(b.len()).map_err(|_| "item larger than 4 GiB")?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(b);
    Ok(())
}

fn put_err(out: &mut Vec<u8>, he: &HostErr) -> Result<(), &'static str> {
    out.push(1);
    out.extend_from_slice(&he.code.to_le_bytes());
    put_bytes(
        out,
        &serde_json::to_vec(&he.error).map_err(|_| "error encoding")?,
    )
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let (a, b) = self.0.split_at_checked(n).ok_or("truncated")?;
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        self.take(N)?.try_into().map_err(|_| "truncated")
    }
    fn i64(&mut self) -> Result<i64, &'static str> {
        Ok(i64::from_le_bytes(self.arr()?))
    }
    fn i32(&mut self) -> Result<i32, &'static str> {
        Ok(i32::from_le_bytes(self.arr()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], &'static str> {
        let n = u32::from_le_bytes(self.arr()?) as usize;
        self.take(n)
    }
    fn err(&mut self) -> Result<HostErr, &'static str> {
        let code = self.i64()?;
        let error = serde_json::from_slice(self.bytes()?).map_err(|_| "error record")?;
        Ok(HostErr { code, error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn sample() -> Transcript {
        Transcript {
            header: Header {
                version: 1,
                job_id: "abc".into(),
                module_blake3: "00".repeat(32),
                params: BTreeMap::from([("k".into(), "v".into())]),
                seed: "11".repeat(32),
                clock_ms: 5,
                limits: Limits::default(),
                target_partitions: 2,
                datasets: vec![],
                policy: None,
                application: "app".into(),
                outputs: vec![],
                result: Ok(()),
            },
            events: vec![
                Event::Open {
                    sql: "SELECT 1".into(),
                    result: Ok(0),
                },
                Event::Next {
                    handle: 0,
                    result: Ok(std::sync::Arc::new(vec![7; 3 * CHUNK])),
                },
                Event::Next {
                    handle: 0,
                    result: Err(HostErr {
                        code: -3,
                        error: JobError::new(ErrorKind::QueryFailed, "boom"),
                    }),
                },
                Event::Suppressed {
                    handle: 0,
                    value: 4,
                },
            ],
        }
    }

    #[test]
    fn seal_open_round_trip_and_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc.sealed");
        let t = sample();
        let digest = t.seal(&[1; 32], &path).unwrap();
        let (back, d2) = Transcript::open(&[1; 32], &path, "abc").unwrap();
        assert_eq!((back, d2), (t, digest));
        // Nothing of the plaintext is visible in the file.
        let sealed = std::fs::read(&path).unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"SELECT 1"));
        // Wrong domain secret, wrong job, a flipped bit, a dropped chunk, a cut tail.
        assert!(Transcript::open(&[2; 32], &path, "abc").is_err());
        assert!(Transcript::open(&[1; 32], &path, "abd").is_err());
        let mut bad = sealed.clone();
        bad[100] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert!(matches!(
            Transcript::open(&[1; 32], &path, "abc"),
            Err(TranscriptError::Tampered(_))
        ));
        let head = prefix(&[0; 32], "abc").len();
        let first = head + 4 + CHUNK + TAG;
        let mut dropped = sealed[..head].to_vec();
        dropped.extend_from_slice(&sealed[first..]);
        std::fs::write(&path, &dropped).unwrap();
        assert!(Transcript::open(&[1; 32], &path, "abc").is_err());
        std::fs::write(&path, &sealed[..first]).unwrap();
        assert!(Transcript::open(&[1; 32], &path, "abc").is_err());
    }
}
