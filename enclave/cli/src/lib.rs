//! The `enclave` command line: `run` (a job on the record), `datagen` (sample tables), `sample`
//! (desensitized samples), `audit` (verify, prove, replay, export), `policy check`, and the
//! governance commands (`init`, `org`, `user`, `token`, `agreement`, `application`, `catalog`,
//! `social`, `jobs`, `output`, `product`, `receipt`, `retention`) and the authority's `witness`.
//!
//! Owns turning command-line arguments into the runtime's types (a [`Submission`], a sample
//! request) and printing reports. `anyhow`, `clap` and `indicatif` live here only; the libraries
//! return typed errors. This package is a binary; its library target is the same entry point, so
//! the integration tests can run it in a child process. It must never print a data value in an
//! error.

mod agreements;
mod audit;
mod catalog;
mod cells;
mod datagen;
mod gov;
mod grant;
mod jobs;
mod policy_check;
mod receipt;
mod retention;
mod review;
mod witness;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use enclave_core::{
    ApplicationId, EngineLimits, ErrorKind, JobError, Limits, Params, Seed, TableName,
};
use enclave_runtime::report::{report_human, report_json, setup_error_json};
use enclave_runtime::sample::SampleRequest;
use enclave_runtime::{Domain, Engine, PolicySource, RuntimeError, Submission, local_actor};
use enclave_sandbox::DiskCache;

#[derive(Parser)]
#[command(
    name = "enclave",
    version,
    about = "Enclave: secure data-enclave runtime for public data under authorized operation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a job module against Parquet files, on the record (a developer's run on samples).
    Run(Box<RunArgs>),
    /// Generate a deterministic, realistic sample table as Parquet.
    Datagen(datagen::DatagenArgs),
    /// Write a sampled, desensitized sample of a dataset for developers (抽样、脱敏样本).
    Sample(SampleArgs),
    /// Verify the domain log, prove entries, replay jobs (auditors).
    Audit(audit::AuditArgs),
    /// Check a policy against datasets (operators).
    Policy(PolicyArgs),
    /// Create a domain: its directory, keys, default policy, governance database and the data
    /// authority's first admin (whose token it prints once).
    Init(gov::InitArgs),
    /// Organizations: register the operator or a development entity; suspend, resume, terminate.
    Org(gov::OrgArgs),
    /// Users of an organization.
    User(gov::UserArgs),
    /// API tokens: issue, revoke, whoami.
    Token(gov::TokenArgs),
    /// Agreements: the operation authorization and development agreements.
    Agreement(agreements::AgreementArgs),
    /// Applications: one scenario, one list, one review.
    Application(agreements::ApplicationArgs),
    /// Catalogs: register datasets (operators), the development and fusion catalogs.
    Catalog(catalog::CatalogArgs),
    /// Social data for fusion: upload (developers), approve or reject (reviewers).
    Social(catalog::SocialArgs),
    /// Jobs under applications: the workers (operators), the records.
    Jobs(jobs::JobsArgs),
    /// Outputs of governed jobs: review (reviewers), download with a signed receipt
    /// (developers), withdraw.
    Output(review::OutputArgs),
    /// The product catalog: publish a released output, list, take down.
    Product(review::ProductArgs),
    /// Release receipts: verify one offline with the domain's public log key.
    Receipt(receipt::ReceiptArgs),
    /// Purge the sealed files of entities terminated more than six months ago (operators).
    Retention(retention::RetentionArgs),
    /// The data authority's witness of the domain log: cosigns checkpoints that extend what it
    /// cosigned before (C2SP tlog-witness).
    Witness(witness::WitnessArgs),
}

#[derive(clap::Args)]
struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy and report, per dataset, how many subjects are unique on the columns it
    /// exposes row by row (refused above `max_unique_share`) and on its group keys.
    Check(policy_check::PolicyCheckArgs),
}

#[derive(clap::Args)]
struct SampleArgs {
    /// The dataset: NAME=FILE.parquet (NAME is the dataset name the policy speaks of).
    #[arg(long = "table", value_name = "NAME=FILE")]
    table: String,
    /// The policy whose rules decide each column's treatment.
    #[arg(long)]
    policy: PathBuf,
    /// Rows in the sample.
    #[arg(long)]
    rows: u64,
    /// Selects the rows (the same seed, the same rows); the desensitization itself draws from a
    /// key only the domain holds.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output Parquet file.
    #[arg(long)]
    out: PathBuf,
    /// Domain directory (default: $ENCLAVE_HOME, else the user's data dir `enclave/`).
    #[arg(long)]
    home: Option<PathBuf>,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The job module (.wasm, built with the guest SDK or any language implementing docs/abi.md).
    #[arg(long)]
    module: PathBuf,
    /// A dataset: NAME=FILE.parquet (repeatable). NAME is the table name the job's SQL uses.
    /// Under an application, only NAME: the file is the catalog's registered snapshot.
    #[arg(long = "table", value_name = "NAME=FILE")]
    tables: Vec<String>,
    /// A job parameter: KEY=VALUE (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Fuel (deterministic CPU budget, ≈ Wasm instructions).
    #[arg(long)]
    fuel: Option<u64>,
    /// Guest linear-memory cap in MiB.
    #[arg(long)]
    memory_mib: Option<u64>,
    /// Wall-clock backstop in milliseconds.
    #[arg(long)]
    wall_ms: Option<u64>,
    /// Output bytes cap.
    #[arg(long)]
    output_bytes: Option<u64>,
    /// Query-engine memory cap in MiB.
    #[arg(long)]
    query_memory_mib: Option<u64>,
    /// Seed of the job's random stream (64 hex digits; default derived from module and inputs).
    #[arg(long)]
    seed: Option<String>,
    /// Query parallelism (DataFusion target partitions).
    #[arg(long)]
    partitions: Option<u32>,
    /// Directory of the compiled-module cache (default: the domain's `cache/`). Local runs only:
    /// a governed job's module is compiled in memory, never kept on disk.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Do not cache compiled modules on disk.
    #[arg(long)]
    no_cache: bool,
    /// The policy to enforce: column rules on every query plan, the group threshold, grants.
    /// Without it the job runs under the explicit open policy of your own files (every column of
    /// the given files plaintext), and the report and the log say so.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Application under which the job runs (pseudonyms are stable within one application).
    /// `local` (the default) is a developer's own run; any other names an approved application
    /// of a domain with governance: the token's user must hold its grant, and the job runs
    /// under the domain's policy narrowed to the approved columns.
    #[arg(long, default_value = "local")]
    application: String,
    /// API token for a run under an application (default: $ENCLAVE_TOKEN, else
    /// ~/.config/enclave/token).
    #[arg(long)]
    token: Option<String>,
    /// Under an application: submit the job and return (its number is printed); the domain's
    /// workers (`enclave jobs work`) run it.
    #[arg(long)]
    detach: bool,
    /// Print one JSON document instead of the human-readable report.
    #[arg(long)]
    json: bool,
    /// Domain directory for the audit log, transcripts and keys (default: $ENCLAVE_HOME, else
    /// the user's data dir `enclave/`).
    #[arg(long)]
    home: Option<PathBuf>,
}

fn input(m: impl Into<String>) -> JobError {
    JobError::new(ErrorKind::InvalidInput, m)
}

/// Splits `KEY=VALUE`; the key must be non-empty.
fn split_pair(arg: &str, what: &str) -> Result<(String, String), JobError> {
    match arg.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(input(format!(
            "{what} `{}` is not of the form NAME=VALUE",
            arg.escape_debug()
        ))),
    }
}

/// Reads a module file, refusing more than `max` bytes before reading them.
fn read_module(path: &std::path::Path, max: u64) -> Result<Vec<u8>, JobError> {
    let f = std::fs::File::open(path)
        .map_err(|e| input(format!("cannot read module {}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| input(format!("cannot read module {}: {e}", path.display())))?;
    if bytes.len() as u64 > max {
        return Err(JobError::limit(
            enclave_core::Limit::ModuleBytes,
            bytes.len() as u64,
            max,
        ));
    }
    Ok(bytes)
}

/// The job's limits from the command line.
fn limits_of(args: &RunArgs, engine_limits: &EngineLimits) -> Result<Limits, JobError> {
    let mut limits = Limits::default();
    if let Some(f) = args.fuel {
        limits.fuel = f;
    }
    if let Some(m) = args.memory_mib {
        limits.memory_bytes = m.saturating_mul(1 << 20);
    }
    if let Some(w) = args.wall_ms {
        limits.wall_clock_ms = w;
    }
    if let Some(o) = args.output_bytes {
        limits.output_bytes = o;
    }
    if let Some(q) = args.query_memory_mib {
        limits.query_memory_bytes = q.saturating_mul(1 << 20);
    }
    if limits.memory_bytes > engine_limits.max_memory_bytes {
        return Err(input(format!(
            "--memory-mib: at most {} MiB",
            engine_limits.max_memory_bytes >> 20
        )));
    }
    Ok(limits)
}

fn params_of(args: &RunArgs) -> Result<Params, JobError> {
    Params::new(
        args.params
            .iter()
            .map(|p| split_pair(p, "--param"))
            .collect::<Result<Vec<_>, _>>()?,
    )
    .map_err(|e| input(e.to_string()))
}

fn seed_of(args: &RunArgs) -> Result<Option<Seed>, JobError> {
    args.seed
        .as_deref()
        .map(|s| {
            s.parse::<Seed>()
                .map_err(|_| input("--seed must be 64 lower-case hexadecimal digits"))
        })
        .transpose()
}

/// A local run's submission (the developer's own files).
fn submission(args: &RunArgs, engine_limits: &EngineLimits) -> Result<Submission, JobError> {
    let limits = limits_of(args, engine_limits)?;
    let module = read_module(&args.module, engine_limits.module_bytes)?;
    let mut tables = Vec::new();
    for t in &args.tables {
        let (name, file) = split_pair(t, "--table")?;
        let name = TableName::new(&name).map_err(|e| input(e.to_string()))?;
        tables.push((name, PathBuf::from(file)));
    }
    Ok(Submission {
        module,
        tables,
        params: params_of(args)?,
        limits,
        policy: match &args.policy {
            Some(p) => PolicySource::File(p.clone()),
            None => PolicySource::Open,
        },
        application: ApplicationId::new(&args.application).map_err(|e| input(e.to_string()))?,
        seed: seed_of(args)?,
        target_partitions: args.partitions,
        clock_ms: 0,
        sealed_by: None,
        released: Default::default(),
    })
}

/// Prints a job error that ended a run before it produced a report; exit status 1.
pub(crate) fn fail(e: &JobError, json: bool) -> anyhow::Result<u8> {
    if json {
        println!("{}", serde_json::to_string_pretty(&setup_error_json(e))?);
    } else {
        eprintln!("error ({}): {}", e.kind.as_str(), e.message);
    }
    Ok(1)
}

/// `enclave run --application`: the job goes through the domain's queue.
fn run_under_application(args: &RunArgs, root: &std::path::Path) -> anyhow::Result<u8> {
    let engine_limits = EngineLimits::default();
    let parsed = (|| -> Result<_, JobError> {
        if args.policy.is_some() {
            return Err(input(
                "under an application the domain's policy applies: drop --policy",
            ));
        }
        if args.cache_dir.is_some() {
            return Err(input(
                "under an application the module compiles in memory only (no disk copy may \
                 outlive the entity's key): drop --cache-dir",
            ));
        }
        let tables = args
            .tables
            .iter()
            .map(|t| {
                if t.contains('=') {
                    Err(input(
                        "under an application the datasets come from the domain's catalog: \
                         name them with --table NAME",
                    ))
                } else {
                    TableName::new(t).map_err(|e| input(e.to_string()))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let spec = jobs::JobSpec {
            params: params_of(args)?,
            limits: limits_of(args, &engine_limits)?,
            seed: seed_of(args)?,
            partitions: args.partitions,
        };
        let module = read_module(&args.module, engine_limits.module_bytes)?;
        let application =
            ApplicationId::new(&args.application).map_err(|e| input(e.to_string()))?;
        Ok((tables, spec, module, application))
    })();
    let (tables, spec, module, application) = match parsed {
        Ok(p) => p,
        Err(e) => return fail(&e, args.json),
    };
    jobs::run_governed(jobs::GovernedRun {
        root,
        token: args.token.clone(),
        application,
        tables,
        module,
        spec,
        detach: args.detach,
        json: args.json,
    })
}

fn run(args: RunArgs) -> anyhow::Result<u8> {
    let engine_limits = EngineLimits::default();
    let root = args
        .home
        .clone()
        .unwrap_or_else(enclave_store::default_home);
    // Under an application, the datasets are the catalog's registered snapshots and the policy
    // is the domain's, narrowed to the grant; the job goes through the queue.
    if args.application != "local" {
        return run_under_application(&args, &root);
    }
    if args.detach {
        return fail(
            &input("--detach queues a job under an application; a local run runs here"),
            args.json,
        );
    }
    let submission = match submission(&args, &engine_limits) {
        Ok(s) => s,
        Err(e) => return fail(&e, args.json),
    };
    let domain = Domain::open(&root, local_actor("developer"))
        .with_context(|| format!("opening the domain directory {}", root.display()))?;
    let opened = &domain.opened;
    if opened.torn_bytes_removed > 0 || opened.recommitted > 0 {
        eprintln!(
            "note: the audit log was repaired at start ({} torn bytes removed, {} entries committed)",
            opened.torn_bytes_removed, opened.recommitted
        );
    }
    let cache = if args.no_cache {
        None
    } else {
        let (dir, key) = domain.home.module_cache()?;
        Some(DiskCache {
            dir: args.cache_dir.clone().unwrap_or(dir),
            key,
        })
    };
    let engine = Engine::new(engine_limits, cache)?;
    let report = match domain
        .submit(submission)
        .and_then(|s| domain.authorize(s))
        .and_then(|a| domain.run(a, &engine))
    {
        Ok(r) => r,
        Err(RuntimeError::Job(e)) => return fail(&e, args.json),
        Err(e) => return Err(e.into()),
    };
    if args.json {
        let mut v = report_json(&report);
        v["audit"] = serde_json::json!({
            "home": root,
            "entries": report.entries,
            "transcript": report.transcript,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report_human(&report));
        if let (Some(first), Some(last)) = (report.entries.first(), report.entries.last()) {
            println!(
                "\naudit: log entries {first}..={last} in {}; replay with `enclave audit replay {}`",
                root.display(),
                report.manifest.job
            );
        }
    }
    Ok(if report.result.is_ok() { 0 } else { 1 })
}

fn sample(args: SampleArgs) -> anyhow::Result<u8> {
    let (name, file) =
        split_pair(&args.table, "--table").map_err(|e| anyhow::anyhow!(e.message))?;
    let dataset = TableName::new(&name)?;
    let (policy, _) = enclave_policy::Policy::load(&args.policy)?;
    let root = args
        .home
        .clone()
        .unwrap_or_else(enclave_store::default_home);
    let domain = Domain::open(&root, local_actor("developer"))
        .with_context(|| format!("opening the domain directory {}", root.display()))?;
    let input = PathBuf::from(&file);
    let s = domain.sample(
        &policy,
        &SampleRequest {
            dataset,
            input: &input,
            rows: args.rows,
            seed: args.seed,
            out: &args.out,
        },
    )?;
    eprintln!(
        "wrote {} of {} rows of `{name}` to {}",
        s.rows,
        s.source_rows,
        args.out.display()
    );
    for (column, t) in s.treatments {
        eprintln!("  {column}: {t:?}");
    }
    for column in s.dense {
        eprintln!(
            "  note: `{column}` has a dense domain: some noised values equal other rows' source values"
        );
    }
    Ok(0)
}

/// Runs `enclave` with the process's arguments.
pub fn main() -> ExitCode {
    ExitCode::from(main_with(std::env::args_os()))
}

/// Runs `enclave` with `args` (the first is the program name); returns the exit status.
pub fn main_with<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("ENCLAVE_LOG"))
        .with_writer(std::io::stderr)
        .try_init();
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let result = match cli.command {
        Command::Run(a) => run(*a),
        Command::Datagen(a) => datagen::datagen(a),
        Command::Sample(a) => sample(a),
        Command::Audit(a) => audit::audit(a),
        Command::Policy(PolicyArgs {
            command: PolicyCommand::Check(a),
        }) => policy_check::policy_check(a),
        Command::Init(a) => gov::init(a),
        Command::Org(a) => gov::org(a),
        Command::User(a) => gov::user(a),
        Command::Token(a) => gov::token(a),
        Command::Agreement(a) => agreements::agreement(a),
        Command::Application(a) => agreements::application(a),
        Command::Catalog(a) => catalog::catalog(a),
        Command::Social(a) => catalog::social(a),
        Command::Jobs(a) => jobs::jobs(a),
        Command::Output(a) => review::output(a),
        Command::Product(a) => review::product(a),
        Command::Receipt(a) => receipt::receipt(a),
        Command::Retention(a) => retention::retention(a),
        Command::Witness(a) => witness::witness(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs() {
        assert_eq!(
            split_pair("a=b=c", "--param").unwrap(),
            ("a".into(), "b=c".into())
        );
        assert_eq!(
            split_pair("a=", "--param").unwrap(),
            ("a".into(), "".into())
        );
        assert!(split_pair("=b", "--param").is_err());
        assert!(
            split_pair("ab", "--table")
                .unwrap_err()
                .message
                .contains("--table")
        );
    }
}
