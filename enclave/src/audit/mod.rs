//! The domain's audit trail: the typed actions the runtime logs, and running a job on the record.
//!
//! Owns the mapping from what happens in the domain (a job submitted, a dataset read, a query
//! run, an output kept, a job finished) to log entries — actor, action, subject and blake3 digests,
//! never a data value — and the sequence a logged job follows: record submission and inputs
//! durably, run, seal the transcript, record queries, outputs and outcome. The log itself (Merkle
//! tree, checkpoints, durability) lives in the `enclave-audit` crate so auditors can build it
//! alone; `transcript` seals what a job saw, `recorder` writes it while the job runs, `replay`
//! and `rederive` re-run jobs from it. It must never log a value from a dataset,
//! a parameter or an output — only digests.

pub mod recorder;
pub mod rederive;
pub mod replay;
pub mod transcript;

use std::path::PathBuf;

use enclave_audit::{Draft, Entry, Log, LogError, OpenReport};

use crate::error::JobError;
use crate::runner::LocalRun;
use crate::sandbox::{JobReport, Sandbox};
use crate::store::{Home, StoreError, file_blake3};
use recorder::Recorder;
use transcript::{DatasetRef, Header, OutputRef, SealedWriter, TranscriptError};

/// Why an audited operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log refused or failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The domain directory failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A transcript could not be sealed or opened.
    #[error(transparent)]
    Transcript(#[from] TranscriptError),
    /// The job could not be set up.
    #[error("{}", .0.message)]
    Job(JobError),
    /// The named job or entry is not in the log.
    #[error("{0}")]
    NotFound(String),
}

/// Something that happened in the domain, as the log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<'a> {
    /// A job was submitted with this module, parameters and policy.
    JobSubmitted {
        /// Job id.
        job: &'a str,
        /// blake3 of the module.
        module: [u8; 32],
        /// blake3 of the canonical JSON of the parameters.
        params: [u8; 32],
        /// blake3 of the policy text, if one was enforced.
        policy: Option<[u8; 32]>,
    },
    /// A job was granted a dataset file with this digest.
    DatasetRead {
        /// Job id.
        job: &'a str,
        /// Table name.
        name: &'a str,
        /// blake3 of the file.
        file: [u8; 32],
    },
    /// A job ran a query.
    QueryRun {
        /// Job id.
        job: &'a str,
        /// 0-based index among the job's queries.
        index: usize,
        /// blake3 of the SQL text.
        sql: [u8; 32],
        /// blake3 of the executed plan, when it was planned.
        plan: Option<[u8; 32]>,
        /// blake3 of the result messages handed to the guest.
        results: [u8; 32],
    },
    /// A job emitted an output (kept inside the domain).
    OutputKept {
        /// Job id.
        job: &'a str,
        /// Output name.
        name: &'a str,
        /// blake3 of its canonical IPC.
        output: [u8; 32],
    },
    /// A job ended; its transcript is sealed.
    JobFinished {
        /// Job id.
        job: &'a str,
        /// `ok` or the error kind.
        status: &'a str,
        /// blake3 of the sealed transcript file.
        transcript: [u8; 32],
    },
    /// An auditor replayed a job.
    JobReplayed {
        /// Job id.
        job: &'a str,
        /// Whether the outputs were identical.
        identical: bool,
    },
}

fn hex32(h: &[u8; 32]) -> String {
    blake3::Hash::from(*h).to_hex().to_string()
}

impl Action<'_> {
    /// The entry draft for `actor`.
    pub fn draft(&self, actor: &str) -> Draft {
        let d = |action: &str, subject: String| Draft::new(actor, action, subject);
        match self {
            Action::JobSubmitted {
                job,
                module,
                params,
                policy,
            } => {
                let mut d = d("job.submit", format!("job:{job}"))
                    .digest("module", module)
                    .digest("params", params);
                if let Some(p) = policy {
                    d = d.digest("policy", p);
                }
                d
            }
            Action::DatasetRead { job, name, file } => {
                d("dataset.read", format!("job:{job}/dataset:{name}")).digest("file", file)
            }
            Action::QueryRun {
                job,
                index,
                sql,
                plan,
                results,
            } => {
                let mut d = d("query.run", format!("job:{job}/query:{index}"))
                    .digest("sql", sql)
                    .digest("results", results);
                if let Some(p) = plan {
                    d = d.digest("plan", p);
                }
                d
            }
            Action::OutputKept { job, name, output } => {
                d("output.keep", format!("job:{job}/output:{name}")).digest("output", output)
            }
            Action::JobFinished {
                job,
                status,
                transcript,
            } => d(&format!("job.finish.{status}"), format!("job:{job}"))
                .digest("transcript", transcript),
            Action::JobReplayed { job, identical } => d(
                if *identical {
                    "job.replay.identical"
                } else {
                    "job.replay.different"
                },
                format!("job:{job}"),
            ),
        }
    }
}

/// The acting user of a local domain: `developer:$USER` with unusual characters replaced.
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

/// An opened domain: its directory, its log and the actor on whose behalf entries are written.
pub struct Domain {
    /// The directory.
    pub home: Home,
    /// The log.
    pub log: Log,
    /// What opening the log repaired.
    pub opened: OpenReport,
    actor: String,
}

/// A job run on the record.
#[derive(Debug)]
pub struct LoggedRun {
    /// The job's report.
    pub report: JobReport,
    /// Sealed transcript path.
    pub transcript: PathBuf,
    /// Sequence numbers of the entries written.
    pub entries: Vec<u64>,
}

impl Domain {
    /// Opens the domain at `root` (created if new), acting as `actor`.
    pub fn open(root: &std::path::Path, actor: String) -> Result<Domain, AuditError> {
        let home = Home::open(root)?;
        let signer = home.log_signer()?;
        // Local runs on one domain take turns: wait for another process's job to finish.
        let (log, opened) = Log::open_waiting(
            &home.log_path(),
            signer,
            std::time::Duration::from_secs(600),
        )?;
        Ok(Domain {
            home,
            log,
            opened,
            actor,
        })
    }

    /// Records actions as one group of entries; returns their sequence numbers once durable.
    pub fn record(&self, actions: &[Action<'_>]) -> Result<Vec<u64>, AuditError> {
        let drafts = actions.iter().map(|a| a.draft(&self.actor)).collect();
        Ok(self
            .log
            .append_all(drafts)?
            .into_iter()
            .map(|a| a.seq)
            .collect())
    }

    /// Entries whose subject is `job:<id>` or below it, with their sequence numbers.
    pub fn job_entries(&self, job_id: &str) -> Result<Vec<Entry>, AuditError> {
        let subject = format!("job:{job_id}");
        let below = format!("{subject}/");
        let mut out = Vec::new();
        self.log.scan(|e| {
            if e.subject == subject || e.subject.starts_with(&below) {
                out.push(e.clone());
            }
        })?;
        if out.is_empty() {
            return Err(AuditError::NotFound(format!(
                "job {job_id} is not in this domain's log"
            )));
        }
        Ok(out)
    }

    /// Runs a local job on the record: submission and inputs are logged before it starts, its
    /// transcript is sealed, and queries, outputs and outcome are logged when it ends.
    pub fn run(&self, local: &LocalRun, sandbox: &Sandbox) -> Result<LoggedRun, AuditError> {
        let (module, mut spec) = local.to_job().map_err(AuditError::Job)?;
        // A job id unique in this domain: the same job run twice gets two ids.
        let mut h = blake3::Hasher::new_derive_key("enclave v1 job id");
        h.update(&spec.seed).update(&self.log.size().to_le_bytes());
        spec.job_id = h.finalize().to_hex()[..16].to_string();
        let job = spec.job_id.clone();
        let module_hex = self.home.store_module(&module)?;
        let policy_text = match &local.policy {
            Some(p) => Some(
                crate::store::read_bounded(p, 16 << 20)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())?,
            ),
            None => None,
        };
        let mut datasets = Vec::new();
        for d in &spec.datasets {
            datasets.push((d.name.clone(), d.path.clone(), file_blake3(&d.path)?));
        }
        let params_json = serde_json::to_vec(&spec.params).unwrap_or_default();
        let mut actions = vec![Action::JobSubmitted {
            job: &job,
            module: *blake3::hash(&module).as_bytes(),
            params: *blake3::hash(&params_json).as_bytes(),
            policy: policy_text
                .as_ref()
                .map(|t| *blake3::hash(t.as_bytes()).as_bytes()),
        }];
        for (name, _, file) in &datasets {
            actions.push(Action::DatasetRead {
                job: &job,
                name,
                file: *file,
            });
        }
        // The transcript is opened before anything is logged: a job that cannot be recorded
        // is not started.
        let secret = self.home.domain_secret()?;
        let path = self.home.transcript_path(&job);
        let (sink, recorder) = Recorder::start(SealedWriter::create(&secret, &path, &job)?)?;
        let mut entries = self.record(&actions)?;

        let header_base = Header {
            version: 1,
            job_id: job.clone(),
            module_blake3: module_hex,
            params: spec.params.clone(),
            seed: hex32(&spec.seed),
            clock_ms: spec.clock_ms,
            limits: spec.limits.clone(),
            target_partitions: spec.target_partitions,
            datasets: datasets
                .iter()
                .map(|(name, path, file)| DatasetRef {
                    name: name.clone(),
                    path: path.display().to_string(),
                    blake3: hex32(file),
                })
                .collect(),
            policy: policy_text,
            application: local.application.clone(),
            outputs: vec![],
            result: Ok(()),
        };
        spec.tape_sink = Some(sink);
        let report = sandbox.run(&module, spec);
        let header = Header {
            outputs: report
                .outputs
                .iter()
                .map(|o| OutputRef {
                    name: o.name.clone(),
                    blake3: o.blake3.clone(),
                })
                .collect(),
            result: report.result.clone(),
            ..header_base
        };
        let (sealed, results) = recorder.finish(&header)?;

        let mut actions = Vec::new();
        for (i, q) in report.queries.iter().enumerate() {
            actions.push(Action::QueryRun {
                job: &job,
                index: i,
                sql: *blake3::hash(q.sql.as_bytes()).as_bytes(),
                plan: q.plan_blake3.as_deref().and_then(parse_hex32),
                results: results.get(i).copied().unwrap_or([0; 32]),
            });
        }
        let output_digests: Vec<(String, [u8; 32])> = report
            .outputs
            .iter()
            .map(|o| (o.name.clone(), parse_hex32(&o.blake3).unwrap_or([0; 32])))
            .collect();
        for (name, output) in &output_digests {
            actions.push(Action::OutputKept {
                job: &job,
                name,
                output: *output,
            });
        }
        let status = match &report.result {
            Ok(()) => "ok",
            Err(e) => e.kind.as_str(),
        };
        actions.push(Action::JobFinished {
            job: &job,
            status,
            transcript: sealed,
        });
        entries.extend(self.record(&actions)?);
        Ok(LoggedRun {
            report,
            transcript: path,
            entries,
        })
    }
}

/// Parses 64 hex digits.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    blake3::Hash::from_hex(s).ok().map(|h| *h.as_bytes())
}
