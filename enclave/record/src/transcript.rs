//! Sealed job transcripts: everything needed to re-run a job, encrypted at rest.
//!
//! A transcript holds the job's manifest (module, datasets by snapshot digest, parameters, seed,
//! clock, limits, policy digest, application), the policy text, the outcome, and the recorded
//! results of every world-dependent host call ([`Event`]s). It is sealed with AES-256-GCM (ring) under a key
//! derived by HKDF-SHA-256 from the domain secret and a per-file random salt, in 1 MiB chunks whose
//! nonces carry the chunk number and a final-chunk flag, so edits, reordering and truncation are
//! all detected. The job id is bound in as associated data. It must never write plaintext to disk
//! and never return a transcript that did not authenticate.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use enclave_core::{Digest, JobError, JobId, JobManifest};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use serde::{Deserialize, Serialize};

use crate::event::{Event, Reader, put_bytes};

const MAGIC: &[u8; 8] = b"ENCLTX02";
/// Version of the transcript content.
pub const TRANSCRIPT_VERSION: u32 = 2;
const CHUNK: usize = 1 << 20;
const TAG: usize = 16;
/// Largest sealed transcript read back.
const MAX_SEALED: u64 = 8 << 30;

/// Why a transcript could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    /// Storage failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is missing.
    #[error("transcript {0} is missing")]
    Missing(PathBuf),
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

/// An output the job emitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputRef {
    /// Output name.
    pub name: String,
    /// blake3 of its canonical IPC.
    pub digest: Digest,
}

/// The job's manifest, its policy and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Content version ([`TRANSCRIPT_VERSION`]).
    pub version: u32,
    /// Everything that defined the job.
    pub manifest: JobManifest,
    /// The text of the policy the job ran under (its blake3 is in the manifest).
    pub policy: String,
    /// The job's noise key (differential privacy): sealed here so that re-derivation
    /// reproduces the noise; nobody outside the domain ever sees it.
    #[serde(default)]
    pub noise_key: Option<enclave_core::NoiseKey>,
    /// Outputs, in emission order.
    pub outputs: Vec<OutputRef>,
    /// `Ok` or the error that ended the job.
    pub result: Result<(), JobError>,
    /// Per query index, the definitions of the cells the difference check suppressed (what
    /// re-derivation suppresses again: the cells compared with are not the auditor's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differenced: Vec<(u64, Vec<enclave_core::Digest>)>,
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

fn prefix(salt: &[u8; 32], job: &JobId) -> Vec<u8> {
    let mut p = MAGIC.to_vec();
    p.extend_from_slice(salt);
    p.extend_from_slice(&job.0);
    p
}

/// Writes a sealed transcript as the job runs: events are encoded and sealed chunk by chunk
/// (so a streaming job's results are not held in memory), the header goes last, and the file
/// appears under its final name only when finished.
#[derive(Debug)]
pub struct SealedWriter {
    pub(crate) job: JobId,
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    key: LessSafeKey,
    head: Vec<u8>,
    plain: Vec<u8>,
    counter: u64,
    hasher: blake3::Hasher,
}

impl SealedWriter {
    /// Starts the sealed transcript of `job` at `path`.
    pub fn create(secret: &[u8; 32], path: &Path, job: JobId) -> Result<Self, TranscriptError> {
        let internal = |why| TranscriptError::Malformed {
            job: job.to_string(),
            why,
        };
        let mut salt = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
            .map_err(|_| internal("no system randomness"))?;
        let key = key(secret, &salt).map_err(|_| internal("key derivation"))?;
        let head = prefix(&salt, &job);
        let tmp = path.with_extension("partial");
        let io = |source| TranscriptError::Io {
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
            job,
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
                job: self.job.to_string(),
                why: "sealing",
            })?;
        self.counter += 1;
        let framed_len = (buf.len() as u32).to_le_bytes();
        let Some(file) = self.file.as_mut() else {
            return Err(TranscriptError::Malformed {
                job: self.job.to_string(),
                why: "transcript already finished",
            });
        };
        let tmp = &self.tmp;
        let io = |source| TranscriptError::Io {
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
        e.encode(&mut out)
            .map_err(|why| TranscriptError::Malformed {
                job: self.job.to_string(),
                why,
            })?;
        self.write_plain(&out)
    }

    /// Appends an already encoded event.
    pub fn encoded_event(&mut self, bytes: &[u8]) -> Result<(), TranscriptError> {
        self.write_plain(bytes)
    }

    /// Writes the header, seals the last chunk, syncs and moves the file to its final name;
    /// returns the blake3 of the sealed file.
    pub fn finish(&mut self, header: &Header) -> Result<Digest, TranscriptError> {
        let mut out = vec![0u8];
        let json = serde_json::to_vec(header).map_err(|_| TranscriptError::Malformed {
            job: self.job.to_string(),
            why: "header encoding",
        })?;
        put_bytes(&mut out, &json).map_err(|why| TranscriptError::Malformed {
            job: self.job.to_string(),
            why,
        })?;
        self.write_plain(&out)?;
        let rest = self.plain.len();
        self.seal_chunk(rest, true)?;
        let io = |what, path: &Path| {
            let path = path.to_owned();
            move |source| TranscriptError::Io { what, path, source }
        };
        if let Some(file) = self.file.take() {
            file.sync_all()
                .map_err(io("syncing transcript", &self.tmp))?;
        }
        std::fs::rename(&self.tmp, &self.path).map_err(io("storing transcript", &self.path))?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(Digest(*self.hasher.finalize().as_bytes()))
    }

    /// Bytes written so far (sealed chunks).
    pub fn bytes_written(&self) -> u64 {
        self.counter * (CHUNK + TAG + 4) as u64
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

impl Transcript {
    /// Seals a whole transcript to `path`; returns the blake3 of the sealed file.
    pub fn seal(&self, secret: &[u8; 32], path: &Path) -> Result<Digest, TranscriptError> {
        let mut w = SealedWriter::create(secret, path, self.header.manifest.job)?;
        for e in &self.events {
            w.event(e)?;
        }
        w.finish(&self.header)
    }

    /// Opens the sealed transcript of `job` at `path`; returns it and the file's blake3.
    pub fn open(
        secret: &[u8; 32],
        path: &Path,
        job: JobId,
    ) -> Result<(Transcript, Digest), TranscriptError> {
        let sealed = read_bounded(path)?;
        let digest = Digest::of(&sealed);
        let tampered = || TranscriptError::Tampered(job.to_string());
        let salt: [u8; 32] = sealed
            .get(8..40)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(tampered)?;
        let head = prefix(&salt, &job);
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
            job: job.to_string(),
            why,
        })?;
        if t.header.manifest.job != job {
            return Err(tampered());
        }
        Ok((t, digest))
    }

    /// Decodes the decrypted content of a transcript (events, then the header). Hostile input
    /// gives an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Transcript, &'static str> {
        let mut r = Reader(bytes);
        let mut events = Vec::new();
        loop {
            let e = match r.u8()? {
                0 => break,
                tag => Event::decode(tag, &mut r)?,
            };
            events.push(e);
        }
        let header: Header =
            serde_json::from_slice(r.bytes()?).map_err(|_| "header is not valid")?;
        if header.version != TRANSCRIPT_VERSION {
            return Err("unsupported transcript version");
        }
        if !r.0.is_empty() {
            return Err("trailing bytes");
        }
        Ok(Transcript { header, events })
    }
}
/// Reads a sealed transcript (at most [`MAX_SEALED`] bytes).
fn read_bounded(path: &Path) -> Result<Vec<u8>, TranscriptError> {
    let io = |what| {
        move |source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::NotFound {
                TranscriptError::Missing(path.to_owned())
            } else {
                TranscriptError::Io {
                    what,
                    path: path.to_owned(),
                    source,
                }
            }
        }
    };
    let f = File::open(path).map_err(io("reading transcript"))?;
    let len = f.metadata().map_err(io("reading transcript"))?.len();
    if len > MAX_SEALED {
        return Err(TranscriptError::Malformed {
            job: path.display().to_string(),
            why: "larger than the largest transcript read back",
        });
    }
    let mut out = Vec::with_capacity(len as usize);
    f.take(MAX_SEALED)
        .read_to_end(&mut out)
        .map_err(io("reading transcript"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::HostErr;
    use enclave_abi::ErrorCode;
    use enclave_core::{
        ApplicationId, ErrorKind, Limits, Params, PolicyKind, PolicyRef, Seed,
        manifest::MANIFEST_VERSION,
    };

    pub(crate) fn manifest(job: JobId) -> JobManifest {
        JobManifest {
            version: MANIFEST_VERSION,
            job,
            module: Digest::of(b"module"),
            datasets: vec![],
            params: Params::new([("k".to_owned(), "v".to_owned())]).unwrap(),
            limits: Limits::default(),
            policy: PolicyRef {
                kind: PolicyKind::Open,
                digest: Digest::of(b"policy"),
            },
            application: ApplicationId::new("app").unwrap(),
            seed: Seed([0x11; 32]),
            clock_ms: 5,
            target_partitions: 2,
        }
    }

    const JOB: JobId = JobId([0xab; 8]);

    fn sample() -> Transcript {
        Transcript {
            header: Header {
                differenced: vec![],
                version: TRANSCRIPT_VERSION,
                manifest: manifest(JOB),
                policy: "version = 1".into(),
                noise_key: Some(enclave_core::NoiseKey([5; 32])),
                outputs: vec![OutputRef {
                    name: "result".into(),
                    digest: Digest::of(b"out"),
                }],
                result: Ok(()),
            },
            events: vec![
                Event::Open {
                    handle: 0,
                    sql: "SELECT 1".into(),
                    result: Ok(()),
                },
                Event::Next {
                    handle: 0,
                    result: Ok(std::sync::Arc::new(vec![7; 3 * CHUNK])),
                },
                Event::Next {
                    handle: 0,
                    result: Err(HostErr {
                        code: ErrorCode::Failed,
                        error: JobError::new(ErrorKind::QueryFailed, "boom"),
                    }),
                },
                Event::Suppressed {
                    handle: 0,
                    result: Ok(4),
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
        let (back, d2) = Transcript::open(&[1; 32], &path, JOB).unwrap();
        assert_eq!((back, d2), (t, digest));
        // Nothing of the plaintext is visible in the file.
        let sealed = std::fs::read(&path).unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"SELECT 1"));
        // Wrong domain secret, wrong job, a flipped bit, a dropped chunk, a cut tail.
        assert!(Transcript::open(&[2; 32], &path, JOB).is_err());
        assert!(Transcript::open(&[1; 32], &path, JobId([0xac; 8])).is_err());
        let mut bad = sealed.clone();
        bad[100] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert!(matches!(
            Transcript::open(&[1; 32], &path, JOB),
            Err(TranscriptError::Tampered(_))
        ));
        let head = prefix(&[0; 32], &JOB).len();
        let first = head + 4 + CHUNK + TAG;
        let mut dropped = sealed[..head].to_vec();
        dropped.extend_from_slice(&sealed[first..]);
        std::fs::write(&path, &dropped).unwrap();
        assert!(Transcript::open(&[1; 32], &path, JOB).is_err());
        std::fs::write(&path, &sealed[..first]).unwrap();
        assert!(Transcript::open(&[1; 32], &path, JOB).is_err());
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            Transcript::open(&[1; 32], &path, JOB),
            Err(TranscriptError::Missing(_))
        ));
    }

    #[test]
    fn decoding_hostile_content_never_panics() {
        let t = sample();
        let mut plain = Vec::new();
        for e in &t.events[..1] {
            e.encode(&mut plain).unwrap();
        }
        plain.push(0);
        let json = serde_json::to_vec(&t.header).unwrap();
        put_bytes(&mut plain, &json).unwrap();
        assert!(Transcript::decode(&plain).is_ok());
        for i in 0..plain.len().min(400) {
            for x in [0x01u8, 0x80, 0xff] {
                let mut c = plain.clone();
                c[i] ^= x;
                let _ = Transcript::decode(&c);
            }
            let _ = Transcript::decode(&plain[..i]);
        }
        // A length prefix claiming 4 GiB is an error, not an allocation.
        assert!(Transcript::decode(&[1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
