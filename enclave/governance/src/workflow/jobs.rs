//! Jobs under applications: a submission (the grant checked and the record queued in one step),
//! a worker taking a queued job (the grant checked again, so that an entity suspended or
//! terminated since, or an application revoked or past its period, refuses it), its end, and
//! what a restart finds.
//!
//! Owns the job queue's rules. Workers act for the domain ([`WORKER_ACTOR`]); a worker runs
//! jobs only while it holds the domain (its log), so a job found running on another worker by
//! one that holds the domain lost its worker. It must never start a job whose grant does not
//! hold at the moment it starts, nor let a developer see another organization's jobs.

use serde_json::json;

use super::applications::grant_in;
use super::*;
use crate::job::{JobEnd, JobNo, JobRecord, JobStatus, MAX_SPEC};
use crate::output::{NewOutput, OutputNo};
use crate::store::NewJob;

/// Who a worker's steps are journaled as.
pub const WORKER_ACTOR: &str = "operator:worker";

/// What a worker got from the queue.
#[derive(Debug)]
pub enum Claim {
    /// The job is the worker's to run under this grant.
    Run {
        /// The record (running).
        job: JobRecord,
        /// The grant, as of the moment it started.
        grant: Grant,
    },
    /// The grant no longer holds: the job failed without running.
    Refused {
        /// The record (failed).
        job: JobRecord,
        /// Why.
        reason: String,
    },
}

fn subject(no: JobNo) -> String {
    format!("job-record:{no}")
}

fn found(tx: &mut dyn Tx, no: JobNo) -> Result<JobRecord, GovError> {
    tx.job(no)?
        .ok_or_else(|| GovError::Store(format!("{no} vanished")))
}

/// The submitter of `job` as an actor (for checking its grant when a worker takes it).
fn submitter(tx: &mut dyn Tx, job: &JobRecord) -> Result<Actor, GovError> {
    let user = tx
        .user(job.submitter)?
        .ok_or_else(|| GovError::Store("a job's submitter is missing".into()))?;
    let org = tx
        .org(job.org)?
        .ok_or_else(|| GovError::Store("a job's organization is missing".into()))?;
    Ok(Actor { user, org })
}

impl<S: Store> Governance<S> {
    /// A developer submits a job under application `application` reading `datasets` with the
    /// module of blake3 `module` (stored in the domain by the binary) and `spec` (parameters,
    /// limits, seed as JSON). The grant must hold now; the job is queued and the step journaled
    /// in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn submit_job(
        &mut self,
        actor: &Actor,
        application: &ApplicationId,
        datasets: &[TableName],
        module: &[u8; 32],
        spec: &str,
        today: Day,
        now: i64,
    ) -> Result<JobRecord, GovError> {
        actor.require(Action::SubmitJob)?;
        if spec.len() > MAX_SPEC {
            return Err(GovError::Invalid(format!(
                "a job's parameters and limits take at most {MAX_SPEC} bytes"
            )));
        }
        if datasets.len() > crate::model::MAX_LIST {
            return Err(GovError::Invalid("a job reads at most 256 datasets".into()));
        }
        for (i, d) in datasets.iter().enumerate() {
            if datasets[..i].contains(d) {
                return Err(GovError::Invalid(format!("dataset `{d}` is given twice")));
            }
        }
        self.tx(|tx| {
            let grant = grant_in(tx, actor, application, datasets, today)?;
            let no = tx.insert_job(&NewJob {
                org: grant.org,
                submitter: actor.user.id,
                application,
                module,
                datasets,
                spec,
                at: now,
            })?;
            journal(
                tx,
                actor,
                "gov.job.submit",
                &subject(no),
                json!({
                    "job": no.to_string(),
                    "application": application.as_str(),
                    "module": hex::encode(module),
                    "datasets": datasets.iter().map(TableName::as_str).collect::<Vec<_>>(),
                    "spec": spec,
                }),
                now,
            )?;
            found(tx, no)
        })
    }

    /// A worker takes job `which` if it is queued, or else (with `None`) the oldest queued job.
    /// Its grant is checked again: if it no longer holds, the job fails without running and the
    /// refusal is returned. `None` when there is nothing to take.
    pub fn claim_job(
        &mut self,
        worker: &str,
        which: Option<JobNo>,
        today: Day,
        now: i64,
    ) -> Result<Option<Claim>, GovError> {
        let worker = name("worker", worker)?;
        self.tx(|tx| {
            let job = match which {
                Some(no) => tx.job(no)?.filter(|j| j.status == JobStatus::Queued),
                None => tx.next_queued_job()?,
            };
            let Some(job) = job else {
                return Ok(None);
            };
            let actor = submitter(tx, &job)?;
            match grant_in(tx, &actor, &job.application, &job.datasets, today) {
                Ok(grant) => {
                    tx.start_job(job.no, &worker, now)?;
                    journal_as(
                        tx,
                        WORKER_ACTOR,
                        "gov.job.start",
                        &subject(job.no),
                        json!({"job": job.no.to_string(), "worker": worker}),
                        now,
                    )?;
                    Ok(Some(Claim::Run {
                        job: found(tx, job.no)?,
                        grant,
                    }))
                }
                Err(e) if e.is_user_error() => {
                    let reason = e.to_string();
                    tx.end_job(
                        job.no,
                        JobStatus::Queued,
                        &JobEnd::without_run(JobStatus::Failed, reason.clone()),
                        now,
                    )?;
                    journal_as(
                        tx,
                        WORKER_ACTOR,
                        "gov.job.refuse",
                        &subject(job.no),
                        json!({"job": job.no.to_string(), "reason": reason}),
                        now,
                    )?;
                    Ok(Some(Claim::Refused {
                        job: found(tx, job.no)?,
                        reason,
                    }))
                }
                Err(e) => Err(e),
            }
        })
    }

    /// Links a running job to the runtime's job id (its log entries and transcript).
    pub fn link_job_run(&mut self, no: JobNo, worker: &str, run: &str) -> Result<(), GovError> {
        self.tx(|tx| {
            let job = found(tx, no)?;
            if job.worker.as_deref() != Some(worker) {
                return Err(GovError::Refused(format!("{no} is not this worker's")));
            }
            tx.set_job_run(no, run)
        })
    }

    /// A worker reports how its running job `no` ended, with the outputs it left in quarantine
    /// (a succeeded job's only; each waits for review).
    pub fn finish_job(
        &mut self,
        no: JobNo,
        worker: &str,
        end: &JobEnd,
        outputs: &[NewOutput],
        now: i64,
    ) -> Result<(JobRecord, Vec<OutputNo>), GovError> {
        self.tx(|tx| {
            let job = found(tx, no)?;
            if job.status != JobStatus::Running || job.worker.as_deref() != Some(worker) {
                return Err(GovError::Refused(format!(
                    "{no} is not running on this worker"
                )));
            }
            tx.end_job(no, JobStatus::Running, end, now)?;
            let outs = if end.status == JobStatus::Succeeded {
                super::review::insert_outputs(tx, no, job.org, outputs, now)?
            } else {
                Vec::new()
            };
            let verb = match end.status {
                JobStatus::Succeeded => "succeed",
                JobStatus::Interrupted => "interrupt",
                _ => "fail",
            };
            journal_as(
                tx,
                WORKER_ACTOR,
                &format!("gov.job.{verb}"),
                &subject(no),
                json!({
                    "job": no.to_string(),
                    "status": end.status.as_str(),
                    "run": job.run,
                    "usage": end.usage,
                    "error": end.error,
                    "entries": end.entries,
                    "transcript": end.transcript,
                    "outputs": outs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }),
                now,
            )?;
            Ok((found(tx, no)?, outs))
        })
    }

    /// What a restart finds: every job running on a worker other than `me` lost its worker
    /// (the caller holds the domain, which every worker holds while its jobs run) and ends as
    /// interrupted. Queued jobs stay queued: the next worker resumes them. Returns the
    /// interrupted records (the binary closes their runs in the log).
    pub fn recover_jobs(&mut self, me: &str, now: i64) -> Result<Vec<JobRecord>, GovError> {
        self.tx(|tx| {
            let mut out = Vec::new();
            for job in tx.jobs(None, Some(JobStatus::Running), u32::MAX)? {
                if job.worker.as_deref() == Some(me) {
                    continue;
                }
                let why = "interrupted: its worker stopped before it ended (found on restart)";
                tx.end_job(
                    job.no,
                    JobStatus::Running,
                    &JobEnd::without_run(JobStatus::Interrupted, why.into()),
                    now,
                )?;
                journal_as(
                    tx,
                    WORKER_ACTOR,
                    "gov.job.interrupt",
                    &subject(job.no),
                    json!({"job": job.no.to_string(), "run": job.run, "worker": job.worker}),
                    now,
                )?;
                out.push(found(tx, job.no)?);
            }
            Ok(out)
        })
    }

    /// Jobs the actor may see, newest first (at most `limit`): a developer its organization's,
    /// record readers every job.
    pub fn jobs(
        &mut self,
        actor: &Actor,
        status: Option<JobStatus>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, GovError> {
        let org = if permits(actor.role(), Action::ReadRecords) {
            None
        } else {
            actor.require(Action::SubmitJob)?;
            Some(actor.org.id)
        };
        self.tx(|tx| tx.jobs(org, status, limit))
    }

    /// One job, if the actor may see it (another organization's job is not even confirmed to
    /// exist).
    pub fn job(&mut self, actor: &Actor, no: JobNo) -> Result<JobRecord, GovError> {
        let all = permits(actor.role(), Action::ReadRecords);
        self.tx(|tx| match tx.job(no)? {
            Some(j) if all || j.org == actor.org.id => Ok(j),
            _ => Err(GovError::NotFound(no.to_string())),
        })
    }
}
