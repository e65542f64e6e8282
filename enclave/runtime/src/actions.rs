//! What the domain logs: the typed actions of the runtime and their log entries.
//!
//! Owns the mapping from what happens (a job submitted, refused, run; a dataset read; a query run;
//! an output kept; a job replayed; a sample made; a proof or an export handed out) to entries —
//! actor, action, subject and 32-byte digests. Content that is low-entropy or chosen by guest
//! code (SQL text, parameters, policy text, output names) appears only as a digest keyed by the
//! domain, so nobody holding the log can confirm a guess; files (modules, dataset snapshots,
//! outputs, transcripts) appear as their plain blake3 so auditors can check them. Subjects hold
//! ids and indices, never a name a guest chose. It must never log a value from a dataset, a
//! parameter or an output.

use enclave_core::{Digest, JobId, KeyedDigest, PolicyKind, TableName};
use enclave_tlog::Draft;

/// Something that happened in the domain, as the log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<'a> {
    /// A job was submitted.
    JobSubmitted {
        /// The job.
        job: JobId,
        /// blake3 of the module.
        module: Digest,
        /// Keyed digest of the manifest (everything that defines the job).
        manifest: KeyedDigest,
        /// Keyed digest of the parameters.
        params: KeyedDigest,
        /// The policy's kind and keyed digest of its text.
        policy: (PolicyKind, KeyedDigest),
    },
    /// A submitted job was refused before it ran (authorization, unusable inputs).
    JobRefused {
        /// The job.
        job: JobId,
        /// The error kind (`policy_violation`, `invalid_input`, …).
        kind: &'a str,
    },
    /// A job was granted a dataset snapshot.
    DatasetRead {
        /// The job.
        job: JobId,
        /// Dataset name (from the policy, not from guest code).
        name: &'a TableName,
        /// blake3 of the snapshot.
        snapshot: Digest,
    },
    /// A job ran a query.
    QueryRun {
        /// The job.
        job: JobId,
        /// 0-based index among the job's queries.
        index: usize,
        /// Keyed digest of the SQL text.
        sql: KeyedDigest,
        /// blake3 of the executed plan, when it was planned.
        plan: Option<Digest>,
        /// blake3 of the result messages handed to the guest, when any were recorded.
        results: Option<Digest>,
    },
    /// A job emitted an output (kept inside the domain).
    OutputKept {
        /// The job.
        job: JobId,
        /// 0-based index among the job's outputs.
        index: usize,
        /// Keyed digest of the name the guest gave it.
        name: KeyedDigest,
        /// blake3 of its canonical IPC.
        output: Digest,
    },
    /// The automatic evidence of an output: its verdict and the keyed digest of its report.
    OutputExamined {
        /// The job.
        job: JobId,
        /// 0-based index among the job's outputs.
        index: usize,
        /// `pass`, `flag` or `block`.
        verdict: &'a str,
        /// Keyed digest of the evidence report (JSON).
        evidence: KeyedDigest,
    },
    /// A job ended; its transcript is sealed.
    JobFinished {
        /// The job.
        job: JobId,
        /// `ok` or the error kind.
        status: &'a str,
        /// blake3 of the sealed transcript file; absent only if the host lost the run (a bug).
        transcript: Option<Digest>,
    },
    /// An auditor replayed a job.
    JobReplayed {
        /// The job.
        job: JobId,
        /// Whether the queries were re-derived from the datasets too.
        rederived: bool,
        /// Whether every check passed.
        identical: bool,
        /// blake3 of the replay report.
        report: Digest,
    },
    /// A desensitized sample of a dataset was written for a developer.
    SampleMade {
        /// Dataset name.
        dataset: &'a TableName,
        /// blake3 of the source snapshot.
        source: Digest,
        /// blake3 of the sample file handed out.
        sample: Digest,
        /// Keyed digest of the request (rows, seed).
        request: KeyedDigest,
    },
    /// An inclusion (and consistency) proof was handed out.
    ProofMade {
        /// The entry proven.
        entry: u64,
        /// blake3 of the bundle.
        bundle: Digest,
    },
    /// A governance step was committed (an entity registered, a token issued, an agreement
    /// signed or changed, an application submitted or decided, an entity suspended or
    /// terminated).
    Governed {
        /// `gov.<what>.<verb>`, e.g. `gov.application.approve`.
        action: &'a str,
        /// The record, e.g. `application:app-3` (ids and names the domain checked, never free
        /// text).
        subject: &'a str,
        /// Keyed digest of the step's canonical description (who, what, parameters).
        record: KeyedDigest,
    },
    /// The log and its key were exported for an auditor.
    LogExported {
        /// Entries exported.
        size: u64,
        /// blake3 of the exported log file.
        log: Digest,
    },
    /// The domain kept a checkpoint the data authority's witness cosigned.
    LogCosigned {
        /// Size of the cosigned checkpoint.
        size: u64,
        /// blake3 of the cosigned checkpoint note.
        note: Digest,
    },
}

impl Action<'_> {
    /// The entry draft for `actor`.
    pub fn draft(&self, actor: &str) -> Draft {
        let d = |action: &str, subject: String| Draft::new(actor, action, subject);
        match self {
            Action::JobSubmitted {
                job,
                module,
                manifest,
                params,
                policy,
            } => {
                let policy_name = match policy.0 {
                    PolicyKind::Domain => "policy",
                    PolicyKind::Open => "open_policy",
                };
                d("job.submit", format!("job:{job}"))
                    .digest("module", &module.0)
                    .digest("manifest", &manifest.0)
                    .digest("params", &params.0)
                    .digest(policy_name, &policy.1.0)
            }
            Action::JobRefused { job, kind } => {
                d(&format!("job.refuse.{kind}"), format!("job:{job}"))
            }
            Action::DatasetRead {
                job,
                name,
                snapshot,
            } => d("dataset.read", format!("job:{job}/dataset:{name}"))
                .digest("snapshot", &snapshot.0),
            Action::QueryRun {
                job,
                index,
                sql,
                plan,
                results,
            } => {
                let mut e =
                    d("query.run", format!("job:{job}/query:{index}")).digest("sql", &sql.0);
                if let Some(p) = plan {
                    e = e.digest("plan", &p.0);
                }
                if let Some(r) = results {
                    e = e.digest("results", &r.0);
                }
                e
            }
            Action::OutputKept {
                job,
                index,
                name,
                output,
            } => d("output.keep", format!("job:{job}/output:{index}"))
                .digest("name", &name.0)
                .digest("output", &output.0),
            Action::OutputExamined {
                job,
                index,
                verdict,
                evidence,
            } => d(
                &format!("output.examine.{verdict}"),
                format!("job:{job}/output:{index}"),
            )
            .digest("evidence", &evidence.0),
            Action::JobFinished {
                job,
                status,
                transcript,
            } => {
                let e = d(&format!("job.finish.{status}"), format!("job:{job}"));
                match transcript {
                    Some(t) => e.digest("transcript", &t.0),
                    None => e,
                }
            }
            Action::JobReplayed {
                job,
                rederived,
                identical,
                report,
            } => d(
                &format!(
                    "job.replay.{}.{}",
                    if *rederived { "rederive" } else { "transcript" },
                    if *identical { "identical" } else { "different" }
                ),
                format!("job:{job}"),
            )
            .digest("report", &report.0),
            Action::SampleMade {
                dataset,
                source,
                sample,
                request,
            } => d("dataset.sample", format!("dataset:{dataset}"))
                .digest("snapshot", &source.0)
                .digest("sample", &sample.0)
                .digest("request", &request.0),
            Action::ProofMade { entry, bundle } => {
                d("log.prove", format!("entry:{entry}")).digest("bundle", &bundle.0)
            }
            Action::Governed {
                action,
                subject,
                record,
            } => d(action, (*subject).to_owned()).digest("record", &record.0),
            Action::LogExported { size, log } => {
                d("log.export", format!("log:{size}")).digest("log", &log.0)
            }
            Action::LogCosigned { size, note } => {
                d("log.cosign", format!("log:{size}")).digest("cosigned", &note.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_makes_a_valid_entry_without_guest_text() {
        let job = JobId([1; 8]);
        let name = TableName::new("residents").unwrap();
        let k = KeyedDigest([2; 32]);
        let f = Digest([3; 32]);
        let actions = [
            Action::JobSubmitted {
                job,
                module: f,
                manifest: k,
                params: k,
                policy: (PolicyKind::Open, k),
            },
            Action::JobRefused {
                job,
                kind: "policy_violation",
            },
            Action::DatasetRead {
                job,
                name: &name,
                snapshot: f,
            },
            Action::QueryRun {
                job,
                index: 3,
                sql: k,
                plan: None,
                results: Some(f),
            },
            Action::OutputKept {
                job,
                index: 0,
                name: k,
                output: f,
            },
            Action::JobFinished {
                job,
                status: "ok",
                transcript: Some(f),
            },
            Action::OutputExamined {
                job,
                index: 0,
                verdict: "flag",
                evidence: k,
            },
            Action::JobReplayed {
                job,
                rederived: true,
                identical: false,
                report: f,
            },
            Action::SampleMade {
                dataset: &name,
                source: f,
                sample: f,
                request: k,
            },
            Action::ProofMade {
                entry: 7,
                bundle: f,
            },
            Action::LogExported { size: 9, log: f },
            Action::LogCosigned { size: 9, note: f },
            Action::Governed {
                action: "gov.application.approve",
                subject: "application:app-3",
                record: k,
            },
        ];
        for a in &actions {
            let d = a.draft("developer:alice");
            d.validate().unwrap_or_else(|e| panic!("{a:?}: {e}"));
        }
        let open = actions[0].draft("x");
        assert!(open.digests.contains_key("open_policy"));
        assert_eq!(
            actions[4].draft("x").subject,
            "job:0101010101010101/output:0"
        );
        assert_eq!(
            actions[7].draft("x").action,
            "job.replay.rederive.different"
        );
    }
}
