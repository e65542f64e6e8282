//! Jobs under applications: `enclave run --application` (submit, then run it in this process,
//! or `--detach` to leave it to the workers), `enclave jobs work` (a bounded pool of workers
//! running queued jobs), `enclave jobs list | show | recover`.
//!
//! Owns turning a job record into a runtime submission and a report into the record's end. A
//! worker holds the domain (its log) while it runs jobs, so one that opens the domain knows that
//! jobs still marked running elsewhere lost their worker. It must never run a job the queue did
//! not hand it ([`Claim::Run`]), nor acknowledge a submission before it is in the store and the
//! log.

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use clap::{Args, Subcommand};
use enclave_core::{
    ApplicationId, Digest, ErrorKind, JobError, JobId, Limits, Params, Seed, TableName,
};
use enclave_governance::{
    Action as GovAction, Claim, Day, Governance, JobEnd, JobNo, JobRecord, JobStatus, JobUsage,
    SqliteStore, WORKER_ACTOR,
};
use enclave_runtime::report::{report_human_quarantined, report_json_quarantined};
use enclave_runtime::{Domain, Engine, JobReport, PolicySource, RuntimeError, Submission};
use enclave_sandbox::DiskCache;
use enclave_store::Home;
use serde::{Deserialize, Serialize};

use crate::gov::{Common, Session, flush_into, open_gov};

/// What a job record keeps of the request besides module and datasets.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobSpec {
    pub(crate) params: Params,
    pub(crate) limits: Limits,
    pub(crate) seed: Option<Seed>,
    pub(crate) partitions: Option<u32>,
}

#[derive(Args)]
pub(crate) struct JobsArgs {
    #[command(flatten)]
    common: Common,
    /// Print JSON instead of human text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: JobsCommand,
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Run queued jobs on a bounded pool of workers (operator admins), until the queue is empty.
    Work {
        /// Jobs run at once (default: the cores, at most 64).
        #[arg(long)]
        workers: Option<usize>,
        /// Keep waiting for new jobs instead of stopping when the queue is empty.
        #[arg(long)]
        wait: bool,
    },
    /// Jobs you may see, newest first.
    List {
        /// Only jobs in this status (queued, running, succeeded, failed, interrupted).
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One job's record.
    Show {
        /// The job (job-N).
        job: String,
    },
    /// End jobs whose worker stopped (after a crash) as interrupted (operator admins).
    Recover,
}

/// How many workers a pool may have.
const MAX_WORKERS: usize = 64;

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(MAX_WORKERS)
}

/// A worker: this process holding the domain, its engine and its identity.
pub(crate) struct Worker {
    id: String,
    domain: Domain,
    engine: Engine,
    /// Journal steps are recorded one flush at a time (two threads must not log a step twice).
    flushing: Mutex<()>,
}

/// What a worker did with what the queue handed it.
pub(crate) enum Ran {
    /// It ran (successfully or not).
    Report(Box<JobRecord>, Box<JobReport>),
    /// It ended before running (refused by the grant, or by the runtime before the sandbox).
    Ended(Box<JobRecord>, JobError),
}

impl Worker {
    /// Opens the domain at `root` as a worker (waiting while another process holds it), then
    /// ends as interrupted the jobs of workers that stopped.
    pub(crate) fn open(
        root: &Path,
        gov: &mut Governance<SqliteStore>,
        cache: Option<DiskCache>,
    ) -> anyhow::Result<Worker> {
        let domain = Domain::open(root, WORKER_ACTOR.into())
            .with_context(|| format!("opening the domain directory {}", root.display()))?;
        let mut id = [0u8; 6];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .map_err(|_| anyhow::anyhow!("no system randomness"))?;
        let engine = Engine::new(enclave_core::EngineLimits::default(), cache)?;
        let w = Worker {
            id: format!("w-{}", hex::encode(id)),
            domain,
            engine,
            flushing: Mutex::new(()),
        };
        w.recover(gov)?;
        Ok(w)
    }

    fn flush(&self, gov: &mut Governance<SqliteStore>) -> anyhow::Result<()> {
        let _turn = self.flushing.lock().unwrap_or_else(|p| p.into_inner());
        flush_into(gov, &self.domain)
    }

    /// Ends the jobs of stopped workers; their runs are closed in the log when the journaled
    /// steps are flushed ([`flush_into`] closes the run of every `gov.job.interrupt` step).
    fn recover(&self, gov: &mut Governance<SqliteStore>) -> anyhow::Result<Vec<JobRecord>> {
        let lost = gov.recover_jobs(&self.id, enclave_governance::now())?;
        self.flush(gov)?;
        Ok(lost)
    }

    /// Takes job `which` (or the oldest queued one) and runs it; `None` if there was none.
    pub(crate) fn run_next(
        &self,
        gov: &mut Governance<SqliteStore>,
        which: Option<JobNo>,
    ) -> anyhow::Result<Option<Ran>> {
        let claim = gov.claim_job(&self.id, which, Day::today(), enclave_governance::now())?;
        self.flush(gov)?;
        let ran = match claim {
            None => return Ok(None),
            Some(Claim::Refused { job, reason }) => Ran::Ended(
                Box::new(job),
                JobError::new(ErrorKind::PolicyViolation, reason),
            ),
            Some(Claim::Run { job, grant }) => {
                let no = job.no;
                // A job that ends without outputs to review: its error, on the record too.
                let failed = |e: JobError| {
                    let end = JobEnd::without_run(
                        JobStatus::Failed,
                        format!("{}: {}", e.kind.as_str(), e.message),
                    );
                    (end, Vec::new(), Err(e))
                };
                let (end, outputs, ran) = match self.execute(gov, &job, &grant) {
                    Ok(report) => match crate::review::outputs_of(&report) {
                        Ok(outputs) if outputs.len() <= enclave_governance::MAX_OUTPUTS => {
                            (end_of(&report), outputs, Ok(report))
                        }
                        // What cannot be put up for review fails the job (it still ends).
                        Ok(_) => failed(JobError::new(
                            ErrorKind::LimitExceeded,
                            "more outputs than one review holds",
                        )),
                        Err(e) => failed(JobError::internal(e.to_string())),
                    },
                    Err(RuntimeError::Job(e)) => failed(e),
                    // The domain's failure, not the job's: the job still ends on the record.
                    Err(e) => failed(JobError::internal(e.to_string())),
                };
                let (job, _) =
                    gov.finish_job(no, &self.id, &end, &outputs, enclave_governance::now())?;
                self.flush(gov)?;
                match ran {
                    Ok(report) => Ran::Report(Box::new(job), Box::new(report)),
                    Err(e) => Ran::Ended(Box::new(job), e),
                }
            }
        };
        Ok(Some(ran))
    }

    /// Runs a claimed job: its module and spec from the record, its datasets and policy from the
    /// grant.
    fn execute(
        &self,
        gov: &mut Governance<SqliteStore>,
        job: &JobRecord,
        grant: &enclave_governance::Grant,
    ) -> Result<JobReport, RuntimeError> {
        let internal = |e: &dyn std::fmt::Display| {
            RuntimeError::Job(JobError::internal(format!("{}: {e}", job.no)))
        };
        let home = &self.domain.home;
        let key = home.entity_key_or_create(job.org.0)?;
        let module = home.module(&Digest(job.module))?;
        let spec: JobSpec = serde_json::from_str(&job.spec).map_err(|e| internal(&e))?;
        let g = crate::grant::governed(home, grant).map_err(|e| internal(&e))?;
        let mut expected = Vec::new();
        let mut tables = Vec::new();
        // The entity's social data is opened into a private scratch directory for this job only.
        let scratch = home.scratch(&format!("{}-{}", job.no, self.id));
        for (name, path, digest) in g.tables {
            let path = if grant.snapshots.iter().any(|s| {
                s.dataset == name && matches!(s.origin, enclave_governance::Origin::Social { .. })
            }) {
                let open = scratch.path().join(format!("{name}.parquet"));
                home.open_social(&key, &Digest(digest), &path, &open)?;
                open
            } else {
                path
            };
            tables.push((name.clone(), path));
            expected.push((name, Digest(digest)));
        }
        let submission = Submission {
            module,
            tables,
            params: spec.params,
            limits: spec.limits,
            policy: PolicySource::Text {
                name: g.name,
                text: g.text,
            },
            application: job.application.clone(),
            seed: spec.seed,
            target_partitions: spec.partitions,
            clock_ms: 0,
            sealed_by: Some(key),
            // The difference check compares this job's cells with those released to its entity.
            released: crate::cells::released(
                home,
                job.org.0,
                &gov.released_runs(job.org).map_err(|e| internal(&e))?,
            )
            .map_err(|e| internal(&e))?,
        };
        let submitted = self.domain.submit(submission)?;
        // The file read must be the snapshot the catalog registered.
        for (name, digest) in &expected {
            let read = submitted
                .manifest()
                .datasets
                .iter()
                .find(|d| &d.name == name);
            if read.map(|d| d.snapshot) != Some(*digest) {
                return Err(RuntimeError::Job(JobError::new(
                    ErrorKind::PolicyViolation,
                    format!("dataset `{name}` no longer matches its registered snapshot"),
                )));
            }
        }
        gov.link_job_run(job.no, &self.id, &submitted.manifest().job.to_string())
            .map_err(|e| internal(&e))?;
        let authorized = self.domain.authorize(submitted)?;
        self.domain.run(authorized, &self.engine)
    }
}

/// A runtime job id from its hex form in a record.
pub(crate) fn parse_run(s: &str) -> Option<JobId> {
    let b = hex::decode(s).ok()?;
    Some(JobId(b.try_into().ok()?))
}

/// A job record's end from the runtime's report.
fn end_of(r: &JobReport) -> JobEnd {
    let mut usage = JobUsage {
        queries: r.queries.len() as u64,
        dataset_bytes: r.manifest.datasets.iter().map(|d| d.bytes).sum(),
        rows_returned: r.queries.iter().map(|q| q.rows).sum(),
        bytes_returned: r.queries.iter().map(|q| q.bytes).sum(),
        bytes_emitted: r.outputs.iter().map(|o| o.canonical.len() as u64).sum(),
        ..JobUsage::default()
    };
    if let Some(run) = &r.run {
        usage.fuel = run.fuel_used;
        usage.wall_ms = run.wall_ms;
        usage.memory_peak_bytes = run.memory_peak_bytes;
    }
    JobEnd {
        status: if r.result.is_ok() {
            JobStatus::Succeeded
        } else {
            JobStatus::Failed
        },
        usage,
        error: r
            .result
            .as_ref()
            .err()
            .map(|e| format!("{}: {}", e.kind.as_str(), e.message)),
        entries: r
            .entries
            .first()
            .zip(r.entries.last())
            .map(|(a, b)| (*a, *b)),
        transcript: r.transcript.as_ref().map(|p| p.display().to_string()),
    }
}

/// What `enclave run --application` was given, already parsed.
pub(crate) struct GovernedRun<'a> {
    pub(crate) root: &'a Path,
    pub(crate) token: Option<String>,
    pub(crate) application: ApplicationId,
    pub(crate) tables: Vec<TableName>,
    pub(crate) module: Vec<u8>,
    pub(crate) spec: JobSpec,
    pub(crate) detach: bool,
    pub(crate) json: bool,
}

/// `enclave run --application`: submits the job (acknowledged once it is in the store and the
/// log), then runs it in this process unless `--detach`.
pub(crate) fn run_governed(r: GovernedRun<'_>) -> anyhow::Result<u8> {
    let common = Common {
        home: Some(r.root.to_owned()),
        token: r.token.clone(),
    };
    let refusal = |e: anyhow::Error| {
        let kind = match e.downcast_ref::<enclave_governance::GovError>() {
            Some(g) if g.is_user_error() => ErrorKind::PolicyViolation,
            _ => ErrorKind::Internal,
        };
        crate::fail(&JobError::new(kind, format!("{e:#}")), r.json)
    };
    let mut s = match Session::open(&common) {
        Ok(s) => s,
        Err(e) => return refusal(e),
    };
    let home = Home::open(r.root)?;
    // The module is the entity's: sealed under its key, destroyed with it.
    let key = home.entity_key_or_create(s.actor.org().id.0)?;
    let module = home.store_entity_module(&key, &r.module)?;
    let spec = serde_json::to_string(&r.spec)?;
    let job = match s.gov.submit_job(
        &s.actor,
        &r.application,
        &r.tables,
        &module.0,
        &spec,
        Day::today(),
        enclave_governance::now(),
    ) {
        Ok(j) => j,
        Err(e) => {
            crate::grant::record_refusal(r.root, &s.actor, &r.application, &e)?;
            return refusal(e.into());
        }
    };
    s.flush()?;
    eprintln!("submitted {} under {}", job.no, r.application);
    if r.detach {
        if r.json {
            println!("{}", serde_json::to_string_pretty(&record_json(&job))?);
        } else {
            println!("{}", job.no);
        }
        return Ok(0);
    }
    // An entity's module is compiled in memory only: native code on disk would outlive the
    // entity's key (crypto-shredding destroys the module, so it must not leave a copy).
    let worker = Worker::open(r.root, &mut s.gov, None)?;
    match worker.run_next(&mut s.gov, Some(job.no))? {
        None => {
            eprintln!(
                "{} was taken by another worker: see `enclave jobs show {}`",
                job.no, job.no
            );
            Ok(0)
        }
        Some(Ran::Ended(_, e)) => crate::fail(&e, r.json),
        Some(Ran::Report(job, report)) => {
            print_report(&job, &report, r.root, r.json)?;
            Ok(if report.result.is_ok() { 0 } else { 1 })
        }
    }
}

/// Prints a finished job's report (and its record's number).
pub(crate) fn print_report(
    job: &JobRecord,
    report: &JobReport,
    root: &Path,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let mut v = report_json_quarantined(report);
        v["audit"] = serde_json::json!({
            "home": root,
            "entries": report.entries,
            "transcript": report.transcript,
        });
        v["record"] = record_json(job);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report_human_quarantined(report));
        if let (Some(first), Some(last)) = (report.entries.first(), report.entries.last()) {
            println!(
                "\naudit: {} ran as {}, log entries {first}..={last} in {}; replay with `enclave audit replay {}`",
                job.no,
                report.manifest.job,
                root.display(),
                report.manifest.job
            );
        }
    }
    Ok(())
}

fn record_json(j: &JobRecord) -> serde_json::Value {
    let end = j.end.as_ref();
    serde_json::json!({
        "job": j.no.to_string(),
        "status": j.status.as_str(),
        "application": j.application.as_str(),
        "module": hex::encode(j.module),
        "datasets": j.datasets.iter().map(TableName::as_str).collect::<Vec<_>>(),
        "submitted_at": j.submitted_at,
        "started_at": j.started_at,
        "finished_at": j.finished_at,
        "worker": j.worker,
        "run": j.run,
        "usage": end.map(|e| &e.usage),
        "error": end.and_then(|e| e.error.as_deref()),
        "entries": end.and_then(|e| e.entries),
        "transcript": end.and_then(|e| e.transcript.as_deref()),
    })
}

/// A unix time as `YYYY-MM-DD HH:MM:SS` (UTC), `-` for none.
fn when(t: Option<i64>) -> String {
    let Some(t) = t else { return "-".into() };
    let (y, m, d) = enclave_governance::Day::of_unix(t).ymd();
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `enclave jobs`.
pub(crate) fn jobs(args: JobsArgs) -> anyhow::Result<u8> {
    let mut s = Session::open(&args.common)?;
    let json = args.json;
    match args.command {
        JobsCommand::List { status, limit } => {
            let status = status
                .map(|x| {
                    JobStatus::parse(&x).ok_or_else(|| {
                        anyhow::anyhow!(
                            "--status is queued, running, succeeded, failed or interrupted"
                        )
                    })
                })
                .transpose()?;
            let list = s.gov.jobs(&s.actor, status, limit.min(10_000))?;
            if json {
                let v: Vec<_> = list.iter().map(record_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{:<10} {:<12} {:<10} {:<19} {:<19} {:>12} error",
                    "job", "status", "app", "submitted", "finished", "fuel"
                );
                for j in &list {
                    let e = j.end.as_ref();
                    println!(
                        "{:<10} {:<12} {:<10} {:<19} {:<19} {:>12} {}",
                        j.no.to_string(),
                        j.status.as_str(),
                        j.application.as_str(),
                        when(Some(j.submitted_at)),
                        when(j.finished_at),
                        e.map_or(0, |e| e.usage.fuel),
                        e.and_then(|e| e.error.as_deref()).unwrap_or("")
                    );
                }
            }
            Ok(0)
        }
        JobsCommand::Show { job } => {
            let no = JobNo::parse(&job).ok_or_else(|| anyhow::anyhow!("a job is named job-N"))?;
            let j = s.gov.job(&s.actor, no)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&record_json(&j))?);
            } else {
                let v = record_json(&j);
                for (k, x) in v.as_object().into_iter().flatten() {
                    println!("{k:<13} {x}");
                }
            }
            Ok(0)
        }
        JobsCommand::Recover => {
            s.actor.require(GovAction::RunWorkers)?;
            let root = s.root.clone();
            let worker = Worker::open(&root, &mut s.gov, None)?;
            drop(worker);
            crate::gov::emit(json, serde_json::json!({"recovered": true}), || {
                eprintln!("recovered: no job is left running without its worker")
            })
        }
        JobsCommand::Work { workers, wait } => {
            s.actor.require(GovAction::RunWorkers)?;
            let n = workers
                .unwrap_or_else(default_workers)
                .clamp(1, MAX_WORKERS);
            work(&mut s, n, wait, json)
        }
    }
}

/// Runs queued jobs on `n` threads until the queue is empty (with `wait`, then waits for more,
/// releasing the domain while idle).
fn work(s: &mut Session, n: usize, wait: bool, json: bool) -> anyhow::Result<u8> {
    let root = s.root.clone();
    let mut done = 0u64;
    loop {
        let queued = !s.gov.jobs(&s.actor, Some(JobStatus::Queued), 1)?.is_empty();
        if queued {
            // Entity modules compile in memory only (shared by this pool's threads): a disk
            // cache would keep native code past the entity's key.
            let worker = Worker::open(&root, &mut s.gov, None)?;
            let ran = std::thread::scope(|scope| {
                let threads: Vec<_> = (0..n)
                    .map(|_| {
                        scope.spawn(|| -> anyhow::Result<u64> {
                            let mut gov = open_gov(&root)?;
                            let mut count = 0;
                            while let Some(r) = worker.run_next(&mut gov, None)? {
                                count += 1;
                                let (job, what) = match &r {
                                    Ran::Report(j, rep) => (
                                        j,
                                        rep.result
                                            .as_ref()
                                            .err()
                                            .map_or("ok", |e| e.kind.as_str())
                                            .to_owned(),
                                    ),
                                    Ran::Ended(j, e) => (j, e.kind.as_str().to_owned()),
                                };
                                eprintln!("{}: {} ({what})", job.no, job.status);
                            }
                            Ok(count)
                        })
                    })
                    .collect();
                let mut total = 0;
                for t in threads {
                    total += t
                        .join()
                        .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
                }
                anyhow::Ok(total)
            })?;
            done += ran;
        }
        if !wait {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    crate::gov::emit(json, serde_json::json!({"ran": done, "workers": n}), || {
        eprintln!("{done} job(s) run by {n} worker(s)")
    })
}
