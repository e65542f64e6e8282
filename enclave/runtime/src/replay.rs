//! Deterministic replay of a logged job, for auditors.
//!
//! Owns `enclave audit replay JOB`: find the job's entries in the log, check the sealed
//! transcript against the digest logged for it and open it, check the stored module against the
//! logged module digest, re-run the module with every query answered from the transcript, and
//! compare every host call and every output with what was recorded. `--rederive` goes further
//! (see [`crate::rederive`]). Every check that fails is reported at its first point — which input,
//! which host call, which output — and every replay, however far it got, is logged with whether
//! it re-derived. It must never report "identical" when any check was skipped.

use enclave_egress::difference::Cells;
use std::collections::BTreeMap;

use enclave_core::{Digest, JobId};
use enclave_egress::Collector;
use enclave_record::{Replaying, Transcript, TranscriptError};
use enclave_sandbox::JobInputs;
use enclave_store::StoreError;
use serde::Serialize;

use crate::RuntimeError;
use crate::actions::Action;
use crate::domain::Domain;
use crate::engine::Engine;
use crate::rederive::{QueryCheck, rederive};

/// The first point where a replay differs from the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Where: `transcript`, `module`, `dataset <name>`, `host call #N (fn)`, `output #N`,
    /// `result`, `query #N`.
    pub at: String,
    /// What differs.
    pub message: String,
}

/// An output compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputCheck {
    /// Output name (from the sealed transcript).
    pub name: String,
    /// blake3 recorded in the transcript and the log.
    pub recorded: Option<Digest>,
    /// blake3 of the replayed output.
    pub replayed: Option<Digest>,
}

/// What a replay established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// The job.
    pub job: JobId,
    /// True when every check passed.
    pub identical: bool,
    /// The first difference, if any.
    pub first_difference: Option<Difference>,
    /// blake3 of the module replayed.
    pub module: Option<Digest>,
    /// Host calls played back from the transcript.
    pub host_calls: usize,
    /// Outputs compared.
    pub outputs: Vec<OutputCheck>,
    /// Queries re-derived against the datasets (`--rederive`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rederived: Option<Vec<QueryCheck>>,
    /// The log entry recording this replay.
    pub entry: Option<u64>,
}

impl ReplayReport {
    fn new(job: JobId) -> Self {
        ReplayReport {
            job,
            identical: false,
            first_difference: None,
            module: None,
            host_calls: 0,
            outputs: vec![],
            rederived: None,
            entry: None,
        }
    }

    /// Notes a difference (only the first is kept).
    pub(crate) fn differ(&mut self, at: impl Into<String>, message: impl Into<String>) {
        if self.first_difference.is_none() {
            self.first_difference = Some(Difference {
                at: at.into(),
                message: message.into(),
            });
        }
    }
}

/// Digests the log holds for one job.
pub(crate) struct Logged {
    module: Option<(u64, Digest)>,
    transcript: Option<(u64, Digest)>,
    outputs: BTreeMap<usize, Digest>,
    /// Dataset name → (entry, snapshot digest).
    pub(crate) datasets: BTreeMap<String, (u64, Digest)>,
}

fn digest(e: &enclave_tlog::Entry, name: &str) -> Option<Digest> {
    e.digests.get(name).and_then(|d| d.parse().ok())
}

fn logged(domain: &Domain, job: &JobId) -> Result<Logged, RuntimeError> {
    let mut l = Logged {
        module: None,
        transcript: None,
        outputs: BTreeMap::new(),
        datasets: BTreeMap::new(),
    };
    for e in domain.job_entries(job)? {
        if e.action == "job.submit" {
            l.module = digest(&e, "module").map(|d| (e.seq, d));
        } else if e.action.starts_with("job.finish.") {
            l.transcript = digest(&e, "transcript").map(|d| (e.seq, d));
        } else if e.action == "output.keep" {
            let index = e
                .subject
                .rsplit_once("/output:")
                .and_then(|(_, n)| n.parse().ok());
            if let (Some(i), Some(d)) = (index, digest(&e, "output")) {
                l.outputs.insert(i, d);
            }
        } else if e.action == "dataset.read"
            && let Some((_, name)) = e.subject.rsplit_once("/dataset:")
            && let Some(d) = digest(&e, "snapshot")
        {
            l.datasets.insert(name.to_owned(), (e.seq, d));
        }
    }
    Ok(l)
}

/// Replays `job` from its transcript; with `with_rederive`, also re-runs its queries against the
/// dataset snapshots. The replay itself is logged, whatever its outcome.
pub fn replay(
    domain: &Domain,
    engine: &Engine,
    job: JobId,
    with_rederive: bool,
) -> Result<ReplayReport, RuntimeError> {
    let mut report = ReplayReport::new(job);
    check(domain, engine, job, with_rederive, &mut report, None)?;
    record_replay(domain, job, with_rederive, &mut report)?;
    Ok(report)
}

/// Ends `report` and logs the replay, whatever its outcome.
fn record_replay(
    domain: &Domain,
    job: JobId,
    rederived: bool,
    report: &mut ReplayReport,
) -> Result<(), RuntimeError> {
    report.identical = report.first_difference.is_none();
    let json = serde_json::to_vec(&*report).map_err(|_| {
        RuntimeError::Job(enclave_core::JobError::internal(
            "the replay report could not be encoded",
        ))
    })?;
    let seqs = domain.record(&[Action::JobReplayed {
        job,
        rederived,
        identical: report.identical,
        report: Digest::of(&json),
    }])?;
    report.entry = seqs.first().copied();
    Ok(())
}

fn check(
    domain: &Domain,
    engine: &Engine,
    job: JobId,
    with_rederive: bool,
    report: &mut ReplayReport,
    cells: Option<&mut Option<Cells>>,
) -> Result<(), RuntimeError> {
    let logged = logged(domain, &job)?;
    let (Some((submit_seq, module_digest)), Some((finish_seq, transcript_digest))) =
        (logged.module, logged.transcript)
    else {
        return Err(RuntimeError::NotFound(format!(
            "job {job} has no submit and finish entries in the log: it never ran"
        )));
    };
    // A job under an application has its transcript sealed by its entity's key (refused as
    // shredded once the entity was terminated).
    let Some((path, key)) = domain.home.find_transcript(&job)? else {
        report.differ("transcript", "the sealed transcript is missing");
        return Ok(());
    };
    let transcript = match Transcript::open(&key, &path, job) {
        Ok((t, digest)) => {
            if digest != transcript_digest {
                report.differ(
                    "transcript",
                    format!(
                        "the sealed transcript differs from the digest logged in entry {finish_seq}"
                    ),
                );
                return Ok(());
            }
            t
        }
        Err(TranscriptError::Tampered(_)) => {
            report.differ(
                "transcript",
                format!("the sealed transcript does not authenticate (edited, truncated or replaced); entry {finish_seq} logged its digest"),
            );
            return Ok(());
        }
        Err(TranscriptError::Missing(_)) => {
            report.differ("transcript", "the sealed transcript is missing");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let header = &transcript.header;
    let manifest = &header.manifest;
    if manifest.module != module_digest {
        report.differ(
            "transcript",
            format!("the transcript names another module than entry {submit_seq}"),
        );
        return Ok(());
    }
    let module = match domain.home.module(&module_digest) {
        Ok(m) => m,
        Err(e @ (StoreError::Invalid(_) | StoreError::NoModule(_))) => {
            report.differ(
                "module",
                format!("{e} (entry {submit_seq} logged blake3 {module_digest})"),
            );
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    report.module = Some(module_digest);

    let replaying = Replaying::new(transcript.events.clone());
    let inputs = JobInputs {
        job,
        params: manifest.params.clone(),
        seed: manifest.seed,
        clock_ms: manifest.clock_ms,
        limits: manifest.limits.clone(),
    };
    let collector = Collector::new(manifest.limits.output_cells);
    let (result, replayed_outputs, outcome) = match engine.sandbox.prepare(&module) {
        Ok(prepared) => match engine.sandbox.run(&prepared, inputs, replaying, collector) {
            Ok(f) => {
                report.host_calls = f.queries.played();
                (f.report.result, f.outputs.outputs, f.queries.outcome())
            }
            Err(lost) => (lost.result, vec![], None),
        },
        Err(e) => (Err(e), vec![], None),
    };
    if let Some(d) = outcome {
        report.differ(format!("host call #{} ({})", d.call, d.function), d.what);
    }
    match (&header.result, &result) {
        (Ok(()), Err(e)) => report.differ(
            "result",
            format!("the job succeeded but its replay failed: {}", e.message),
        ),
        (Err(e), Ok(())) => report.differ(
            "result",
            format!(
                "the job failed ({}) but its replay succeeded",
                e.kind.as_str()
            ),
        ),
        (Err(a), Err(b)) if a.kind != b.kind => report.differ(
            "result",
            format!(
                "the job failed with {} but its replay with {}",
                a.kind.as_str(),
                b.kind.as_str()
            ),
        ),
        _ => {}
    }
    let replayed_outputs = if result.is_ok() {
        replayed_outputs
    } else {
        vec![]
    };
    let n = header.outputs.len().max(replayed_outputs.len());
    for i in 0..n {
        let rec = header.outputs.get(i);
        let rep = replayed_outputs.get(i);
        let check = OutputCheck {
            name: rec
                .map(|o| o.name.clone())
                .or_else(|| rep.map(|o| o.name.clone()))
                .unwrap_or_default(),
            recorded: rec.map(|o| o.digest),
            replayed: rep.map(|o| o.digest),
        };
        if check.recorded != check.replayed || rep.map(|o| &o.name) != rec.map(|o| &o.name) {
            report.differ(
                format!("output #{i}"),
                "the replayed output is not bit-identical to the recorded one",
            );
        } else if logged.outputs.get(&i) != check.recorded.as_ref() {
            report.differ(
                format!("output #{i}"),
                "the output digest in the transcript differs from the log",
            );
        }
        report.outputs.push(check);
    }
    if logged.outputs.len() != header.outputs.len() {
        report.differ(
            "outputs",
            "the log and the transcript hold different numbers of outputs",
        );
    }
    if with_rederive {
        let checks = rederive(domain, engine, &transcript, &logged, report, cells)?;
        report.rederived = Some(checks);
    }
    Ok(())
}

/// The cells job `job`'s queries showed, with their subjects: what releasing one of its outputs
/// releases to its development entity, for the difference check. Computed by re-deriving the
/// job (`replay` with re-derivation, logged as one), and refused unless the re-derivation is
/// identical: what is compared is what the job was shown.
pub fn release_cells(
    domain: &Domain,
    engine: &Engine,
    job: JobId,
) -> Result<(Cells, ReplayReport), RuntimeError> {
    let mut report = ReplayReport::new(job);
    let mut cells = None;
    check(domain, engine, job, true, &mut report, Some(&mut cells))?;
    record_replay(domain, job, true, &mut report)?;
    match cells {
        Some(c) if report.identical => Ok((c, report)),
        _ => Err(RuntimeError::Job(enclave_core::JobError::internal(
            format!(
                "job {job} does not re-derive identically ({}): the cells it was shown cannot be \
             computed, so none of its outputs is released",
                report
                    .first_difference
                    .as_ref()
                    .map_or_else(|| "no re-derivation".to_owned(), |d| format!("{d:?}"))
            ),
        ))),
    }
}
