//! Deterministic replay of a logged job, for auditors.
//!
//! Owns `enclave audit replay JOB`: find the job's entries in the log, check the sealed
//! transcript against the digest logged for it and open it, check the stored module against the
//! logged module digest, re-run the module with query results played back from the transcript,
//! and compare every host call and every output with what was recorded. `--rederive` goes further
//! (see `rederive`). Every check that fails is reported at its first point — which input, which
//! host call, which output. It must never report "identical" when any check was skipped.

use serde::Serialize;

use super::rederive::{QueryCheck, rederive};
use super::transcript::{Transcript, TranscriptError};
use super::{Action, AuditError, Domain, parse_hex32};
use crate::sandbox::{JobSpec, Sandbox};
use crate::store::StoreError;

/// The first point where a replay differs from the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Where: `transcript`, `module`, `dataset <name>`, `host call #N (fn)`, `output <name>`,
    /// `result`, `query #N`.
    pub at: String,
    /// What differs.
    pub message: String,
}

/// An output compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputCheck {
    /// Output name.
    pub name: String,
    /// blake3 recorded in the transcript and the log.
    pub recorded: Option<String>,
    /// blake3 of the replayed output.
    pub replayed: Option<String>,
}

/// What a replay established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Job id.
    pub job_id: String,
    /// True when every check passed.
    pub identical: bool,
    /// The first difference, if any.
    pub first_difference: Option<Difference>,
    /// blake3 of the module replayed.
    pub module_blake3: Option<String>,
    /// Host calls played back from the transcript.
    pub host_calls: usize,
    /// Outputs compared.
    pub outputs: Vec<OutputCheck>,
    /// Queries re-derived against the datasets (`--rederive`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rederived: Option<Vec<QueryCheck>>,
}

impl ReplayReport {
    fn new(job_id: &str) -> Self {
        ReplayReport {
            job_id: job_id.to_owned(),
            identical: false,
            first_difference: None,
            module_blake3: None,
            host_calls: 0,
            outputs: vec![],
            rederived: None,
        }
    }

    /// Notes a difference (only the first is kept).
    pub(super) fn differ(&mut self, at: impl Into<String>, message: impl Into<String>) {
        if self.first_difference.is_none() {
            self.first_difference = Some(Difference {
                at: at.into(),
                message: message.into(),
            });
        }
    }
}

/// Digests the log holds for one job.
struct Logged {
    module: Option<(u64, String)>,
    transcript: Option<(u64, String)>,
    outputs: Vec<(String, String)>,
    datasets: Vec<(u64, String, String)>,
}

fn logged(domain: &Domain, job_id: &str) -> Result<Logged, AuditError> {
    let mut l = Logged {
        module: None,
        transcript: None,
        outputs: vec![],
        datasets: vec![],
    };
    for e in domain.job_entries(job_id)? {
        let digest = |k: &str| e.digests.get(k).cloned().unwrap_or_default();
        if e.action == "job.submit" {
            l.module = Some((e.seq, digest("module")));
        } else if e.action.starts_with("job.finish.") {
            l.transcript = Some((e.seq, digest("transcript")));
        } else if e.action == "output.keep" {
            let name = e.subject.rsplit_once("/output:").map(|(_, n)| n.to_owned());
            l.outputs.push((name.unwrap_or_default(), digest("output")));
        } else if e.action == "dataset.read" {
            let name = e
                .subject
                .rsplit_once("/dataset:")
                .map(|(_, n)| n.to_owned());
            l.datasets
                .push((e.seq, name.unwrap_or_default(), digest("file")));
        }
    }
    Ok(l)
}

/// Replays `job_id` from its transcript; with `rederive`, also re-runs its queries against the
/// datasets. The replay itself is logged.
pub fn replay(
    domain: &Domain,
    sandbox: &Sandbox,
    job_id: &str,
    with_rederive: bool,
) -> Result<ReplayReport, AuditError> {
    let mut report = ReplayReport::new(job_id);
    let logged = logged(domain, job_id)?;
    let (Some((submit_seq, module_hex)), Some((finish_seq, transcript_hex))) =
        (logged.module.clone(), logged.transcript.clone())
    else {
        return Err(AuditError::NotFound(format!(
            "job {job_id} has no submit and finish entries in the log: it never completed"
        )));
    };
    let secret = domain.home.domain_secret()?;
    let path = domain.home.transcript_path(job_id);
    let transcript = match Transcript::open(&secret, &path, job_id) {
        Ok((t, digest)) => {
            if blake3::Hash::from(digest).to_hex().as_str() != transcript_hex {
                report.differ(
                    "transcript",
                    format!(
                        "the sealed transcript differs from the digest logged in entry {finish_seq}"
                    ),
                );
                return Ok(report);
            }
            t
        }
        Err(TranscriptError::Tampered(_)) => {
            report.differ(
                "transcript",
                format!("the sealed transcript does not authenticate (edited, truncated or replaced); entry {finish_seq} logged its digest"),
            );
            return Ok(report);
        }
        Err(TranscriptError::Store(StoreError::Io { source, .. }))
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            report.differ("transcript", "the sealed transcript is missing");
            return Ok(report);
        }
        Err(e) => return Err(e.into()),
    };
    let header = &transcript.header;
    if header.module_blake3 != module_hex {
        report.differ(
            "transcript",
            format!("the transcript names another module than entry {submit_seq}"),
        );
        return Ok(report);
    }
    let module = match domain.home.module(&module_hex) {
        Ok(m) => m,
        Err(e @ (StoreError::Invalid(_) | StoreError::NoModule(_))) => {
            report.differ(
                "module",
                format!("{e} (entry {submit_seq} logged blake3 {module_hex})"),
            );
            return Ok(report);
        }
        Err(e) => return Err(e.into()),
    };
    report.module_blake3 = Some(module_hex.clone());

    let module_hash = blake3::hash(&module);
    let mut spec = JobSpec::new(&module_hash, header.params.clone(), vec![]);
    spec.job_id = header.job_id.clone();
    spec.seed = parse_hex32(&header.seed)
        .ok_or_else(|| AuditError::NotFound("the transcript's seed is not 64 hex digits".into()))?;
    spec.clock_ms = header.clock_ms;
    spec.limits = header.limits.clone();
    spec.target_partitions = header.target_partitions;
    spec.replay = Some(transcript.events.clone());
    let replayed = sandbox.run(&module, spec);
    let tape = replayed.tape.as_ref();
    report.host_calls = transcript.events.len();
    if let Some(d) = tape.and_then(|t| t.replay_outcome()) {
        report.differ(
            format!("host call #{} ({})", d.call, d.function),
            d.what.clone(),
        );
    }
    match (&header.result, &replayed.result) {
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
    let n = header.outputs.len().max(replayed.outputs.len());
    for i in 0..n {
        let rec = header.outputs.get(i);
        let rep = replayed.outputs.get(i);
        let name = rec
            .map(|o| o.name.clone())
            .or_else(|| rep.map(|o| o.name.clone()))
            .unwrap_or_default();
        let check = OutputCheck {
            name: name.clone(),
            recorded: rec.map(|o| o.blake3.clone()),
            replayed: rep.map(|o| o.blake3.clone()),
        };
        let logged_digest = logged
            .outputs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| d);
        if check.recorded != check.replayed || rep.map(|o| &o.name) != rec.map(|o| &o.name) {
            report.differ(
                format!("output {name}"),
                "the replayed output is not bit-identical to the recorded one",
            );
        } else if logged_digest != check.recorded.as_ref() {
            report.differ(
                format!("output {name}"),
                "the output digest in the transcript differs from the log",
            );
        }
        report.outputs.push(check);
    }
    if with_rederive {
        let checks = rederive(sandbox, &transcript, &logged.datasets, &secret, &mut report)?;
        report.rederived = Some(checks);
    }
    report.identical = report.first_difference.is_none();
    domain.record(&[Action::JobReplayed {
        job: job_id,
        identical: report.identical,
    }])?;
    Ok(report)
}
