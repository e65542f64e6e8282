//! An opened domain: its directory, its log, its keys, and who is acting.
//!
//! Owns opening a domain (the directory layout, the domain secret, the log with its signer) and
//! writing actions to its log as one durable group. Local runs of one domain take turns: the log
//! is held for a job's duration. It must never write an entry that is not an [`Action`].

use std::path::Path;
use std::time::Duration;

use enclave_core::{DigestKey, JobId, KeyedDigest};
use enclave_store::Home;
use enclave_tlog::{Entry, Log, OpenReport};

use crate::RuntimeError;
use crate::actions::Action;

/// An opened domain, acting as one user.
pub struct Domain {
    /// The directory.
    pub home: Home,
    /// The log.
    pub log: Log,
    /// What opening the log found and repaired.
    pub opened: OpenReport,
    actor: String,
    secret: [u8; 32],
    digest_key: DigestKey,
}

/// How long a local run waits for another process's job on the same domain.
const LOG_WAIT: Duration = Duration::from_secs(600);

/// The acting user of a local domain: `<role>:$USER` with unusual characters replaced.
pub fn local_actor(role: &str) -> String {
    let user = std::env::var("USER").unwrap_or_default();
    let user: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    format!("{role}:{}", if user.is_empty() { "local" } else { &user })
}

impl Domain {
    /// Opens the domain at `root` (created if new), acting as `actor`.
    pub fn open(root: &Path, actor: String) -> Result<Domain, RuntimeError> {
        let home = Home::open(root)?;
        let secret = home.domain_secret()?;
        let signer = home.log_signer()?;
        let (log, opened) = Log::open_waiting(&home.log_path(), signer, LOG_WAIT)?;
        Ok(Domain {
            home,
            log,
            opened,
            actor,
            digest_key: DigestKey::derive(&secret),
            secret,
        })
    }

    /// The domain secret (keys of pseudonyms, transcripts and samples derive from it).
    /// The key of the subject index of the difference check: the same for every job of the
    /// domain (their cells compare), derived from the domain's secret (no developer holds it).
    pub fn subject_key(&self) -> enclave_egress::difference::SubjectKey {
        enclave_egress::difference::SubjectKey::new(blake3::derive_key(
            "enclave v1 subject index",
            self.secret(),
        ))
    }

    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The keyed digest of `bytes` labelled `what`.
    pub fn keyed(&self, what: &str, bytes: &[u8]) -> KeyedDigest {
        self.digest_key.digest(what, bytes)
    }

    /// The acting user.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Records actions as one group of entries; returns their sequence numbers once durable.
    pub fn record(&self, actions: &[Action<'_>]) -> Result<Vec<u64>, RuntimeError> {
        self.record_as(&self.actor, actions)
    }

    /// Records actions as one group of entries by `actor` (a step taken by another user of
    /// this domain, e.g. a journaled governance step); returns their sequence numbers.
    pub fn record_as(&self, actor: &str, actions: &[Action<'_>]) -> Result<Vec<u64>, RuntimeError> {
        let drafts = actions.iter().map(|a| a.draft(actor)).collect();
        Ok(self
            .log
            .append_all(drafts)?
            .into_iter()
            .map(|a| a.seq)
            .collect())
    }

    /// Entries whose subject is `job:<id>` or below it.
    pub fn job_entries(&self, job: &JobId) -> Result<Vec<Entry>, RuntimeError> {
        let subject = format!("job:{job}");
        let below = format!("{subject}/");
        let mut out = Vec::new();
        self.log.scan(|e| {
            if e.subject == subject || e.subject.starts_with(&below) {
                out.push(e.clone());
            }
        })?;
        if out.is_empty() {
            return Err(RuntimeError::NotFound(format!(
                "job {job} is not in this domain's log"
            )));
        }
        Ok(out)
    }
}
