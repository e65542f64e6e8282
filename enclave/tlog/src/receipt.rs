//! Release receipts: what the domain signs when a reviewed output leaves it — a C2SP signed
//! note by the domain's log key binding the output's blake3 to its job, module, application,
//! development entity, reviewer, decision and release times, the log entry of the release and
//! a checkpoint that includes it.
//!
//! Owns the receipt's text (one `key value` line each, in a fixed order, under the header
//! `enclave release receipt v1`), its signing and its offline verification. A receipt never
//! parses as a checkpoint (its second line is no tree size) nor a checkpoint as a receipt. It
//! must never return the fields of a receipt whose signature did not verify, and never accept
//! a field out of its order, a non-canonical number or digest, or a name a signed note could
//! not carry.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::merkle::Hash;
use crate::note::{NoteError, Signer, VerifierKey, valid_name};

/// The receipt's first line.
pub const RECEIPT_HEADER: &str = "enclave release receipt v1";

/// A release receipt's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The log's origin (the signing key's name).
    pub origin: String,
    /// blake3 of the released output's canonical bytes.
    pub output: [u8; 32],
    /// Its size in bytes.
    pub bytes: u64,
    /// The output's record (`out-N`: the subject `output-record:out-N` of its release entry).
    pub record: String,
    /// The job record (`job-N`).
    pub job: String,
    /// The runtime's job id (`job:<run>` in the log; 16 hex digits).
    pub run: String,
    /// blake3 of the job's module.
    pub module: [u8; 32],
    /// The application it ran under.
    pub application: String,
    /// The development entity it is released to.
    pub developer: String,
    /// The reviewer who approved it.
    pub reviewer: String,
    /// When the reviewer decided (unix seconds).
    pub decided: i64,
    /// When it was released (unix seconds).
    pub released: i64,
    /// The sequence number of the release's log entry.
    pub entry: u64,
    /// A checkpoint of the log that includes that entry: its size.
    pub checkpoint_size: u64,
    /// ... and its root.
    pub checkpoint_root: Hash,
}

const KEYS: [&str; 14] = [
    "origin",
    "output",
    "bytes",
    "record",
    "job",
    "run",
    "module",
    "application",
    "developer",
    "reviewer",
    "decided",
    "released",
    "entry",
    "checkpoint",
];

fn bad(what: &'static str) -> NoteError {
    NoteError::Malformed(what)
}

fn decimal(s: &str) -> Option<u64> {
    let canonical = !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

fn digest(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    hex::decode(s).ok()?.try_into().ok()
}

fn time(s: &str) -> Option<i64> {
    decimal(s).and_then(|n| i64::try_from(n).ok())
}

impl Receipt {
    /// The signed text.
    pub fn body(&self) -> Result<String, NoteError> {
        for v in [
            &self.origin,
            &self.record,
            &self.job,
            &self.application,
            &self.developer,
            &self.reviewer,
        ] {
            if !valid_name(v) || v.len() > 128 {
                return Err(bad(
                    "a receipt name is 1-128 characters without spaces, '+' or control characters",
                ));
            }
        }
        if self.run.len() != 16 || !self.run.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("a receipt's run is 16 hex digits"));
        }
        if self.decided < 0 || self.released < 0 {
            return Err(bad("a receipt's times are unix seconds"));
        }
        if self.entry >= self.checkpoint_size {
            return Err(bad("the checkpoint does not include the release entry"));
        }
        Ok(format!(
            "{RECEIPT_HEADER}\norigin {}\noutput {}\nbytes {}\nrecord {}\njob {}\nrun {}\nmodule {}\n\
             application {}\ndeveloper {}\nreviewer {}\ndecided {}\nreleased {}\nentry {}\n\
             checkpoint {} {}\n",
            self.origin,
            hex::encode(self.output),
            self.bytes,
            self.record,
            self.job,
            self.run.to_ascii_lowercase(),
            hex::encode(self.module),
            self.application,
            self.developer,
            self.reviewer,
            self.decided,
            self.released,
            self.entry,
            self.checkpoint_size,
            STANDARD.encode(self.checkpoint_root)
        ))
    }

    /// Signs the receipt with the log's key (whose name must be the receipt's origin).
    pub fn sign(&self, signer: &Signer) -> Result<String, NoteError> {
        if signer.name() != self.origin {
            return Err(bad("a receipt is signed by its log's key"));
        }
        signer.sign(&self.body()?)
    }

    /// Parses a receipt's text (already verified).
    pub fn parse(text: &str) -> Result<Receipt, NoteError> {
        let mut lines = text
            .strip_suffix('\n')
            .ok_or(bad("a receipt ends with a newline"))?
            .split('\n');
        if lines.next() != Some(RECEIPT_HEADER) {
            return Err(bad("not a release receipt"));
        }
        let mut values = Vec::with_capacity(KEYS.len());
        for key in KEYS {
            let line = lines.next().ok_or(bad("a receipt line is missing"))?;
            let v = line
                .strip_prefix(key)
                .and_then(|r| r.strip_prefix(' '))
                .ok_or(bad("a receipt line is out of order or unknown"))?;
            values.push(v);
        }
        if lines.next().is_some() {
            return Err(bad("a receipt has extra lines"));
        }
        let (cp_size, cp_root) = values[13]
            .split_once(' ')
            .ok_or(bad("a receipt's checkpoint is `<size> <root>`"))?;
        let r = Receipt {
            origin: values[0].to_owned(),
            output: digest(values[1]).ok_or(bad("output is a lowercase blake3 hex digest"))?,
            bytes: decimal(values[2]).ok_or(bad("bytes is a decimal number"))?,
            record: values[3].to_owned(),
            job: values[4].to_owned(),
            run: values[5].to_owned(),
            module: digest(values[6]).ok_or(bad("module is a lowercase blake3 hex digest"))?,
            application: values[7].to_owned(),
            developer: values[8].to_owned(),
            reviewer: values[9].to_owned(),
            decided: time(values[10]).ok_or(bad("decided is unix seconds"))?,
            released: time(values[11]).ok_or(bad("released is unix seconds"))?,
            entry: decimal(values[12]).ok_or(bad("entry is a decimal number"))?,
            checkpoint_size: decimal(cp_size).ok_or(bad("the checkpoint size is decimal"))?,
            checkpoint_root: STANDARD
                .decode(cp_root)
                .ok()
                .and_then(|r| <[u8; 32]>::try_from(r).ok())
                .ok_or(bad("the checkpoint root is a base64 SHA-256 hash"))?,
        };
        // Canonical form only: the text is exactly what `body` writes.
        if r.body()? != text {
            return Err(bad("a receipt is not in canonical form"));
        }
        Ok(r)
    }

    /// Verifies a signed receipt with the log's key and parses it; its origin must be the key's
    /// name.
    pub fn open(note: &str, key: &VerifierKey) -> Result<Receipt, NoteError> {
        let r = Receipt::parse(key.open(note)?)?;
        if r.origin != key.name {
            return Err(bad("the receipt's origin differs from the log key name"));
        }
        Ok(r)
    }
}

/// Checks a verified receipt against an exported log (which the caller verified as a whole
/// with [`crate::verify_log`]): the log reaches the receipt's checkpoint, its first
/// `checkpoint_size` entries have the receipt's root, and entry `entry` is the release of the
/// receipt's record (`gov.output.release` of `output-record:<record>`).
pub fn check_in_log<R: std::io::BufRead>(
    mut log: R,
    key: &VerifierKey,
    r: &Receipt,
) -> Result<(), String> {
    use crate::entry::Line;
    use crate::merkle::CompactRange;
    use crate::verify::{Prepared, prepare, read_line};
    let mut range = CompactRange::new();
    let (mut buf, mut scratch) = (Vec::new(), Vec::new());
    let mut release = false;
    let mut line_no = 0u64;
    while range.size() < r.checkpoint_size {
        if !read_line(&mut log, &mut buf, line_no).map_err(|f| f.to_string())? {
            return Err(format!(
                "the log holds {} entries: it does not reach the receipt's checkpoint of size {}",
                range.size(),
                r.checkpoint_size
            ));
        }
        line_no += 1;
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let Prepared::Entry(facts) = prepare(key, text, &mut scratch) else {
            continue;
        };
        let facts = facts?;
        if facts.seq == r.entry {
            let Ok(Line::Entry(e)) = Line::decode(text) else {
                return Err(format!("entry {} does not decode", r.entry));
            };
            release = e.action == "gov.output.release"
                && e.subject == format!("output-record:{}", r.record);
        }
        range.push(facts.leaf);
    }
    if range.root() != r.checkpoint_root {
        return Err(format!(
            "the log's first {} entries do not have the receipt's root: this is not the log the \
             receipt was signed over",
            r.checkpoint_size
        ));
    }
    if !release {
        return Err(format!(
            "entry {} of the log is not the release of {}",
            r.entry, r.record
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::Checkpoint;

    fn sample() -> Receipt {
        Receipt {
            origin: "enclave.example/log".into(),
            output: [0xab; 32],
            bytes: 1234,
            record: "out-9".into(),
            job: "job-7".into(),
            run: "0123456789abcdef".into(),
            module: [0x11; 32],
            application: "app-3".into(),
            developer: "acme-analytics".into(),
            reviewer: "rita".into(),
            decided: 1_796_000_000,
            released: 1_796_000_100,
            entry: 41,
            checkpoint_size: 42,
            checkpoint_root: [7; 32],
        }
    }

    #[test]
    fn a_receipt_signs_verifies_and_refuses_tampering() {
        let signer = Signer::from_seed("enclave.example/log", [5; 32]).unwrap();
        let key = signer.verifier();
        let note = sample().sign(&signer).unwrap();
        assert_eq!(Receipt::open(&note, &key).unwrap(), sample());
        // Any changed byte of the text fails the signature.
        for (from, to) in [
            ("bytes 1234", "bytes 1235"),
            ("reviewer rita", "reviewer eve"),
            ("job job-7", "job job-8"),
        ] {
            let forged = note.replacen(from, to, 1);
            assert!(
                matches!(
                    Receipt::open(&forged, &key),
                    Err(NoteError::BadSignature(_))
                ),
                "{to}"
            );
        }
        // Another key, or another origin, does not verify.
        let other = Signer::from_seed("enclave.example/log", [6; 32]).unwrap();
        assert!(Receipt::open(&note, &other.verifier()).is_err());
        let mut elsewhere = sample();
        elsewhere.origin = "other/log".into();
        assert!(elsewhere.sign(&signer).is_err());
        // A receipt is no checkpoint, and a checkpoint is no receipt.
        assert!(Checkpoint::open(&note, &key).is_err());
        let cp = signer
            .sign(
                &Checkpoint {
                    origin: "enclave.example/log".into(),
                    size: 42,
                    root: [7; 32],
                }
                .body(),
            )
            .unwrap();
        assert!(Receipt::open(&cp, &key).is_err());
    }

    #[test]
    fn only_the_canonical_text_parses() {
        let body = sample().body().unwrap();
        assert_eq!(Receipt::parse(&body).unwrap(), sample());
        for (from, to) in [
            ("bytes 1234", "bytes 01234"),
            ("bytes 1234", "bytes +1234"),
            ("output abab", "output ABAB"),
            ("entry 41", "entry 42"),
            ("reviewer rita", "reviewer ri ta"),
            ("origin ", "origin  "),
            ("run 0123456789abcdef", "run 0123"),
        ] {
            let changed = body.replacen(from, to, 1);
            assert!(Receipt::parse(&changed).is_err(), "{to}");
        }
        // Lines out of order, missing, extra, or a missing final newline.
        let lines: Vec<&str> = body.lines().collect();
        let mut swapped = lines.clone();
        swapped.swap(2, 3);
        assert!(Receipt::parse(&(swapped.join("\n") + "\n")).is_err());
        assert!(Receipt::parse(&(lines[..14].join("\n") + "\n")).is_err());
        assert!(Receipt::parse(&(body.clone() + "extra 1\n")).is_err());
        assert!(Receipt::parse(body.trim_end()).is_err());
        assert!(Receipt::parse("").is_err());
    }
}
