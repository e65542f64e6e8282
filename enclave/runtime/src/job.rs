//! The job lifecycle, as types: [`Submission`] → [`Submitted`] → [`Authorized`] → [`JobReport`].
//!
//! Owns the one path a job takes, as a straight line: the submission is turned into a manifest
//! (module stored by digest, datasets snapshotted by digest, the policy loaded — the domain's, or
//! the explicit open policy of a developer's own files); the policy authorizes it (only an
//! [`Authorized`] job can run: its [`Authorization`] is what the query host needs to open a
//! session); then it runs: submission and inputs are logged durably, the sandbox runs the module
//! with every query answered by the live host through the recorder, outputs go to the egress
//! collector, the transcript is sealed, and queries, outputs and the outcome are logged. It must
//! never run a job no policy authorized, nor log a placeholder for something it could not compute.

use std::path::PathBuf;
use std::sync::Arc;

use enclave_core::Digest;
use enclave_core::{
    ApplicationId, ErrorKind, JobError, JobManifest, Limits, NoiseKey, Params, PolicyKind,
    PolicyRef, QueryHost, QueryRecord, Seed, TableName, manifest::MANIFEST_VERSION,
};
use enclave_egress::difference::Cells;
use enclave_egress::evidence::Evidence;
use enclave_egress::{Collector, Output};
use enclave_policy::{Authorization, Policy, open_policy_text};
use enclave_query::difference::Differences;
use enclave_query::{Dataset, JobSession, LiveHost, Privacy, SessionLimits};
use enclave_record::{Header, OutputRef, SealedWriter, TRANSCRIPT_VERSION, record};
use enclave_sandbox::{JobInputs, RunReport};
use enclave_store::{EntityKey, Snapshot};

use crate::actions::Action;
use crate::domain::Domain;
use crate::engine::Engine;
use crate::facts::Facts;
use crate::{RuntimeError, Unavailable};

/// A fresh noise key from the system's CSPRNG.
fn random_key() -> Result<NoiseKey, RuntimeError> {
    let mut k = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut k).map_err(|_| {
        RuntimeError::Job(JobError::internal("no system randomness for the noise key"))
    })?;
    Ok(NoiseKey(k))
}

/// Where a job's policy comes from.
#[derive(Debug, Clone)]
pub enum PolicySource {
    /// The explicit open policy for the developer's own files (a local run without a policy).
    Open,
    /// A policy file.
    File(PathBuf),
    /// Policy text (e.g. recorded in a transcript), named for error messages.
    Text {
        /// Name in messages.
        name: String,
        /// The text.
        text: String,
    },
}

/// What a developer asks to run.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The module's bytes.
    pub module: Vec<u8>,
    /// Datasets: the name the SQL uses and the Parquet file.
    pub tables: Vec<(TableName, PathBuf)>,
    /// Parameters.
    pub params: Params,
    /// Limits.
    pub limits: Limits,
    /// The policy.
    pub policy: PolicySource,
    /// The application (pseudonym scope).
    pub application: ApplicationId,
    /// Seed of the guest's random stream (default: derived from module, parameters, datasets).
    pub seed: Option<Seed>,
    /// Query parallelism (default: the cores).
    pub target_partitions: Option<u32>,
    /// The job's logical clock (ms since the Unix epoch).
    pub clock_ms: i64,
    /// The development entity whose key seals the job's module and transcript (a job under an
    /// application: terminating the entity destroys the key, and with it both); `None`: sealed
    /// by the domain.
    pub sealed_by: Option<EntityKey>,
    /// The cells released to the development entity so far: the difference check suppresses
    /// any cell of this job that differs from one of them by fewer than k subjects (empty for a
    /// local run).
    pub released: Arc<Cells>,
}

/// A job with its manifest fixed: module stored, datasets snapshotted, policy loaded.
#[derive(Debug)]
pub struct Submitted {
    manifest: JobManifest,
    module: Vec<u8>,
    policy: Arc<Policy>,
    policy_text: String,
    files: Vec<(Dataset, Snapshot)>,
    sealed_by: Option<EntityKey>,
    released: Arc<Cells>,
}

/// A job its policy authorized: the only state that can run.
#[derive(Debug)]
pub struct Authorized {
    manifest: JobManifest,
    module: Vec<u8>,
    policy_text: String,
    files: Vec<(Dataset, Snapshot)>,
    auth: Authorization,
    sealed_by: Option<EntityKey>,
    released: Arc<Cells>,
}

/// How a job went.
#[derive(Debug)]
pub struct JobReport {
    /// What defined the job.
    pub manifest: JobManifest,
    /// `Ok` or the error that ended the job.
    pub result: Result<(), JobError>,
    /// The run (fuel, memory, time, logs); absent if the job ended before the sandbox ran it.
    pub run: Option<RunReport>,
    /// Outputs (kept inside the domain); empty when the job failed.
    pub outputs: Vec<Output>,
    /// The automatic evidence of each output, in output order.
    pub evidence: Vec<Evidence>,
    /// What each query did.
    pub queries: Vec<QueryRecord>,
    /// The sealed transcript.
    pub transcript: Option<PathBuf>,
    /// Sequence numbers of the log entries written.
    pub entries: Vec<u64>,
}

/// Whose quarantine a job's outputs and cells are kept in.
fn owner_of(sealed_by: &Option<EntityKey>) -> enclave_store::Owner {
    match sealed_by {
        Some(k) => enclave_store::Owner::Entity(k.entity()),
        None => enclave_store::Owner::Domain,
    }
}

fn input_error(m: impl Into<String>) -> RuntimeError {
    RuntimeError::Job(JobError::new(ErrorKind::InvalidInput, m))
}

/// Column names of a Parquet file (its footer only).
/// A Parquet file's row count and columns (name, Arrow type as text), from its footer: what a
/// catalog lists of a dataset (never a value).
pub fn parquet_facts(
    name: &TableName,
    path: &std::path::Path,
) -> Result<(u64, Vec<(String, String)>), RuntimeError> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let bad = |e: &dyn std::fmt::Display| {
        input_error(format!("dataset `{name}` cannot be opened as Parquet: {e}"))
    };
    let f = std::fs::File::open(path).map_err(|e| bad(&e))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| bad(&e))?;
    let rows = u64::try_from(b.metadata().file_metadata().num_rows())
        .map_err(|_| bad(&"a negative row count"))?;
    let columns = b
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().to_string()))
        .collect();
    Ok((rows, columns))
}

fn parquet_columns(name: &TableName, path: &std::path::Path) -> Result<Vec<String>, RuntimeError> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let bad = |e: &dyn std::fmt::Display| {
        input_error(format!("dataset `{name}` cannot be opened as Parquet: {e}"))
    };
    let f = std::fs::File::open(path).map_err(|e| bad(&e))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| bad(&e))?;
    Ok(b.schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect())
}

impl Submitted {
    /// The job's manifest (module, dataset snapshots, policy, application…).
    pub fn manifest(&self) -> &JobManifest {
        &self.manifest
    }
}

impl Domain {
    /// Fixes a submission's manifest: stores the module, snapshots the datasets, loads the policy.
    pub fn submit(&self, s: Submission) -> Result<Submitted, RuntimeError> {
        let module = match &s.sealed_by {
            Some(key) => self.home.store_entity_module(key, &s.module)?,
            None => self.home.store_module(&s.module)?,
        };
        let mut snapshots = self.home.snapshots()?;
        let mut datasets = Vec::with_capacity(s.tables.len());
        let mut files = Vec::with_capacity(s.tables.len());
        for (name, path) in &s.tables {
            if datasets
                .iter()
                .any(|d: &enclave_core::DatasetRef| &d.name == name)
            {
                return Err(input_error(format!("dataset `{name}` is given twice")));
            }
            let snap = snapshots
                .snapshot(path)
                .map_err(|e| input_error(format!("dataset `{name}`: {e}")))?;
            datasets.push(enclave_core::DatasetRef {
                name: name.clone(),
                snapshot: snap.digest,
                bytes: snap.bytes,
            });
            files.push((
                Dataset {
                    name: name.clone(),
                    path: snap.path.clone(),
                    schema: Facts::parse(snap.meta.as_deref()).schema(),
                    subject_unique: None,
                    snapshot: Some(snap.digest.0),
                },
                snap,
            ));
        }
        let (policy, policy_text) = match &s.policy {
            PolicySource::Open => {
                let tables = files
                    .iter()
                    .map(|(d, _)| {
                        let columns = match &d.schema {
                            Some(s) => s.fields().iter().map(|f| f.name().clone()).collect(),
                            None => parquet_columns(&d.name, &d.path)?,
                        };
                        Ok((d.name.clone(), columns))
                    })
                    .collect::<Result<Vec<_>, RuntimeError>>()?;
                let text = open_policy_text(&tables);
                let p = Policy::parse("open policy", &text)
                    .map_err(|e| RuntimeError::Job(JobError::internal(e.to_string())))?;
                (p, text)
            }
            PolicySource::File(path) => {
                Policy::load(path).map_err(|e| input_error(format!("policy: {e}")))?
            }
            PolicySource::Text { name, text } => (
                Policy::parse(name, text).map_err(|e| input_error(format!("policy: {e}")))?,
                text.clone(),
            ),
        };
        for (d, snap) in &mut files {
            d.subject_unique =
                Facts::parse(snap.meta.as_deref()).subject_unique(&policy, d.name.as_str());
        }
        let kind = if policy.open {
            PolicyKind::Open
        } else {
            PolicyKind::Domain
        };
        let seed = s
            .seed
            .unwrap_or_else(|| JobManifest::default_seed(&module, &s.params, &datasets));
        let manifest = JobManifest {
            version: MANIFEST_VERSION,
            job: self.home.new_job_id()?,
            module,
            datasets,
            params: s.params,
            limits: s.limits,
            policy: PolicyRef {
                kind,
                digest: enclave_core::Digest::of(policy_text.as_bytes()),
            },
            application: s.application,
            seed,
            clock_ms: s.clock_ms,
            target_partitions: s
                .target_partitions
                .unwrap_or_else(|| SessionLimits::default().target_partitions as u32)
                .max(1),
        };
        Ok(Submitted {
            manifest,
            module: s.module,
            policy: Arc::new(policy),
            policy_text,
            files,
            sealed_by: s.sealed_by,
            released: s.released,
        })
    }

    /// Keeps what the session learned of each snapshot (a newly inferred schema, counted subject
    /// uniqueness) with it, so later jobs need not learn it again (best effort: it only saves
    /// time; facts are computed exactly or not at all).
    fn remember_facts(&self, session: &JobSession, policy: &Policy, files: &[(Dataset, Snapshot)]) {
        let learned = session.learned_uniqueness();
        if learned.is_empty() && files.iter().all(|(d, _)| d.schema.is_some()) {
            return;
        }
        let Ok(mut snapshots) = self.home.snapshots() else {
            return;
        };
        for (d, snap) in files {
            let name = d.name.as_str();
            let mut facts = Facts::parse(snap.meta.as_deref());
            if d.schema.is_none()
                && let Some(s) = session.file_schema(name)
            {
                facts.set_schema(s);
            }
            for (_, u) in learned.iter().filter(|(t, _)| t == name) {
                facts.set_subject_unique(policy, name, *u);
            }
            if let Some(text) = facts.text() {
                let _ = snapshots.set_meta(snap, text);
            }
        }
    }

    fn submitted_action(
        &self,
        manifest: &JobManifest,
        policy_text: &str,
    ) -> Result<Action<'static>, RuntimeError> {
        let digest = manifest
            .digest()
            .map_err(|e| RuntimeError::Job(JobError::internal(e.to_string())))?;
        Ok(Action::JobSubmitted {
            job: manifest.job,
            module: manifest.module,
            manifest: self.keyed("manifest", digest.as_bytes()),
            params: self.keyed("params", &manifest.params.canonical()),
            policy: (
                manifest.policy.kind,
                self.keyed("policy", policy_text.as_bytes()),
            ),
        })
    }

    /// Asks the job's policy to authorize it. A refusal is logged (submission and refusal) and
    /// returned as the job's error.
    pub fn authorize(&self, job: Submitted) -> Result<Authorized, RuntimeError> {
        let names: Vec<TableName> = job
            .manifest
            .datasets
            .iter()
            .map(|d| d.name.clone())
            .collect();
        match job
            .policy
            .authorize(&names, &job.manifest.application, self.secret())
        {
            Ok(auth) => Ok(Authorized {
                manifest: job.manifest,
                module: job.module,
                policy_text: job.policy_text,
                files: job.files,
                auth,
                sealed_by: job.sealed_by,
                released: job.released,
            }),
            Err(refusal) => {
                let error = JobError::new(ErrorKind::PolicyViolation, refusal.to_string());
                self.record(&[
                    self.submitted_action(&job.manifest, &job.policy_text)?,
                    Action::JobRefused {
                        job: job.manifest.job,
                        kind: error.kind.as_str(),
                    },
                ])?;
                Err(RuntimeError::Job(error))
            }
        }
    }

    /// Runs an authorized job on the record.
    pub fn run(&self, job: Authorized, engine: &Engine) -> Result<JobReport, RuntimeError> {
        let Authorized {
            manifest,
            module,
            policy_text,
            files,
            auth,
            sealed_by,
            released,
        } = job;
        let id = manifest.job;
        // The transcript is opened before anything is logged: a job that cannot be recorded is
        // not started.
        let (path, seal) = match &sealed_by {
            Some(k) => (
                self.home.entity_transcript_path(k.entity(), &id)?,
                k.bytes(),
            ),
            None => (self.home.transcript_path(&id), self.secret()),
        };
        let writer = SealedWriter::create(seal, &path, id)?;
        let mut actions = vec![self.submitted_action(&manifest, &policy_text)?];
        for d in &manifest.datasets {
            actions.push(Action::DatasetRead {
                job: id,
                name: &d.name,
                snapshot: d.snapshot,
            });
        }
        let mut entries = self.record(&actions)?;

        let limits = &manifest.limits;
        let session_limits = SessionLimits {
            memory_bytes: limits.query_memory_bytes,
            sql_bytes: limits.sql_bytes,
            sql_complexity: limits.sql_complexity,
            target_partitions: manifest.target_partitions as usize,
            clock_ms: manifest.clock_ms,
            ..SessionLimits::default()
        };
        let datasets: Vec<Dataset> = files.iter().map(|(d, _)| d.clone()).collect();
        // The noise key of differential privacy: fresh for every job, sealed in its transcript.
        let noise_key = random_key()?;
        let ledger = Arc::new(enclave_store::DurableLedger::new(
            &self.home.ledger_path(),
            manifest.application.as_str(),
            auth.policy().dp.budget,
        ));
        let privacy = Privacy {
            noise_key: noise_key.0,
            ledger,
            differences: Differences::Live {
                released,
                key: self.subject_key(),
            },
        };
        let policy = Arc::clone(auth.policy());
        let session = engine.queries.block_on(JobSession::with_privacy(
            &datasets,
            session_limits,
            auth,
            privacy,
        ));
        let session = session.map(Arc::new);
        let learner = session.as_ref().ok().map(Arc::clone);
        let inputs = JobInputs {
            job: id,
            params: manifest.params.clone(),
            seed: manifest.seed,
            clock_ms: manifest.clock_ms,
            limits: limits.clone(),
        };
        let collector = Collector::new(limits.output_cells);
        // What ran: the run report, outputs and query records (or why nothing ran).
        let (result, run, outputs, queries, recorder) =
            match (session, engine.sandbox.prepare(&module)) {
                (Ok(session), Ok(prepared)) => {
                    let live = LiveHost::new(Arc::clone(&session), engine.queries.handle().clone());
                    let (recording, recorder) = record(writer, live, limits.transcript_bytes)?;
                    match engine.sandbox.run(&prepared, inputs, recording, collector) {
                        Ok(f) => {
                            let queries = f.queries.records();
                            drop(f.queries);
                            (
                                f.report.result.clone(),
                                Some(f.report),
                                f.outputs.outputs,
                                queries,
                                recorder,
                            )
                        }
                        Err(lost) => (lost.result.clone(), Some(*lost), vec![], vec![], recorder),
                    }
                }
                (Err(e), _) => {
                    let (recording, recorder) =
                        record(writer, Unavailable, limits.transcript_bytes)?;
                    drop(recording);
                    (Err(e.to_job_error()), None, vec![], vec![], recorder)
                }
                (_, Err(e)) => {
                    let (recording, recorder) =
                        record(writer, Unavailable, limits.transcript_bytes)?;
                    drop(recording);
                    (Err(e), None, vec![], vec![], recorder)
                }
            };
        // The difference check's decisions, for the transcript (re-derivation takes the same).
        let mut decisions = Vec::new();
        if let Some(s) = &learner {
            self.remember_facts(s, &policy, &files);
            decisions = engine
                .queries
                .block_on(s.difference_decisions())
                .into_iter()
                .map(|(q, defs)| (q, defs.into_iter().map(|d| Digest(d.0)).collect()))
                .collect();
        }
        // Outputs of a failed job are dropped: nothing partial is kept. The others go to
        // quarantine (sealed, each under a key of its own) before anything refers to them; a
        // job whose outputs cannot be kept fails.
        let outputs = if result.is_ok() { outputs } else { vec![] };
        let owner = owner_of(&sealed_by);
        let kept = outputs
            .iter()
            .try_for_each(|o| self.home.quarantine_put(owner, &o.digest, &o.canonical));
        let (result, outputs) = match kept {
            Ok(()) => (result, outputs),
            Err(e) => (
                Err(JobError::internal(format!(
                    "the outputs could not be quarantined: {e}"
                ))),
                vec![],
            ),
        };
        let evidence = self.examine(&engine.leaks, &policy, &files, &outputs, &queries);
        let header = Header {
            version: TRANSCRIPT_VERSION,
            manifest: manifest.clone(),
            policy: policy_text,
            noise_key: Some(noise_key),
            outputs: outputs
                .iter()
                .map(|o| OutputRef {
                    name: o.name.clone(),
                    digest: o.digest,
                })
                .collect(),
            result: result.clone(),
            differenced: decisions,
        };
        let (sealed, results) = recorder.finish(&header)?;

        let mut actions = Vec::new();
        for (i, q) in queries.iter().enumerate() {
            actions.push(Action::QueryRun {
                job: id,
                index: i,
                sql: self.keyed("sql", q.sql.as_bytes()),
                plan: q.plan,
                results: results.get(i).copied(),
            });
        }
        for (i, o) in outputs.iter().enumerate() {
            actions.push(Action::OutputKept {
                job: id,
                index: i,
                name: self.keyed("output name", o.name.as_bytes()),
                output: o.digest,
            });
        }
        for (i, e) in evidence.iter().enumerate() {
            let report = serde_json::to_vec(e)
                .map_err(|e| RuntimeError::Job(JobError::internal(e.to_string())))?;
            actions.push(Action::OutputExamined {
                job: id,
                index: i,
                verdict: e.verdict.name(),
                evidence: self.keyed("evidence", &report),
            });
        }
        let status = match &result {
            Ok(()) => "ok",
            Err(e) => e.kind.as_str(),
        };
        actions.push(Action::JobFinished {
            job: id,
            status,
            transcript: Some(sealed),
        });
        entries.extend(self.record(&actions)?);
        Ok(JobReport {
            manifest,
            result,
            run,
            outputs,
            evidence,
            queries,
            transcript: Some(path),
            entries,
        })
    }
}
