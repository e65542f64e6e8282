//! The `enclave` command line: `run` (local runner), `datagen` (sample tables).
//! `anyhow` lives here only; the library returns typed errors.

mod cli;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use enclave::runner::{LocalRun, report_human, report_json, setup_error_json};
use enclave::{EngineLimits, Limits, Sandbox};

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
    /// Run a job module against local Parquet files (a developer's run on samples).
    Run(Box<RunArgs>),
    /// Generate a deterministic, realistic sample table as Parquet.
    Datagen(DatagenArgs),
    /// Write a sampled, desensitized sample of a dataset for developers (抽样、脱敏样本).
    Sample(SampleArgs),
    /// Verify the domain log, prove entries, replay jobs (auditors).
    Audit(cli::audit::AuditArgs),
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
    /// Seed of sampling and desensitization.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output Parquet file.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The job module (.wasm, built with the guest SDK or any language implementing docs/abi.md).
    #[arg(long)]
    module: PathBuf,
    /// A dataset: NAME=FILE.parquet (repeatable). NAME is the table name the job's SQL uses.
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
    partitions: Option<usize>,
    /// Directory of the compiled-module cache (default: $XDG_CACHE_HOME/enclave or ~/.cache/enclave).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Do not cache compiled modules on disk.
    #[arg(long)]
    no_cache: bool,
    /// Enforce this policy: column rules on every query plan, the group threshold, grants.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Application id under which the job runs (pseudonyms are stable within one application).
    #[arg(long, default_value = "local")]
    application: String,
    /// Print one JSON document instead of the human-readable report.
    #[arg(long)]
    json: bool,
    /// Domain directory for the audit log, transcripts and keys (default: $ENCLAVE_HOME, else
    /// the user's data dir `enclave/`).
    #[arg(long)]
    home: Option<PathBuf>,
}

#[derive(clap::Args)]
struct DatagenArgs {
    /// Table: residents, hospital_visits or traffic_records.
    table: String,
    /// Number of rows (1 to 1,000,000,000).
    #[arg(long)]
    rows: u64,
    /// Seed: the same table, rows and seed always give the same data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output Parquet file.
    #[arg(long)]
    out: PathBuf,
    /// For hospital_visits: how many residents (same seed) are patients.
    #[arg(long, default_value_t = 100_000)]
    population: u64,
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("enclave").join("modules"))
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
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
    let cache = if args.no_cache {
        None
    } else {
        args.cache_dir.or_else(default_cache_dir)
    };
    let engine_limits = EngineLimits::default();
    if limits.memory_bytes > engine_limits.max_memory_bytes {
        anyhow::bail!(
            "--memory-mib: at most {} MiB",
            engine_limits.max_memory_bytes >> 20
        );
    }
    let sandbox = Sandbox::new(engine_limits, cache).map_err(|e| anyhow::anyhow!(e.message))?;
    let root = args
        .home
        .clone()
        .unwrap_or_else(enclave::store::default_home);
    let domain = enclave::audit::Domain::open(&root, enclave::audit::local_actor("developer"))
        .with_context(|| format!("opening the domain directory {}", root.display()))?;
    let opened = &domain.opened;
    if opened.torn_bytes_removed > 0 || opened.recommitted > 0 {
        eprintln!(
            "note: the audit log was repaired at start ({} torn bytes removed, {} entries committed)",
            opened.torn_bytes_removed, opened.recommitted
        );
    }
    let domain_secret = domain.home.domain_secret()?;
    let local = LocalRun {
        module: args.module,
        tables: args.tables,
        params: args.params,
        limits,
        seed: args.seed,
        target_partitions: args.partitions,
        policy: args.policy,
        application: args.application,
        domain_secret,
    };
    let logged = match domain.run(&local, &sandbox) {
        Ok(r) => r,
        Err(enclave::audit::AuditError::Job(e)) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&setup_error_json(&e))?);
            } else {
                eprintln!("error ({}): {}", e.kind.as_str(), e.message);
            }
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    let report = &logged.report;
    let audit = serde_json::json!({
        "home": root,
        "entries": logged.entries,
        "transcript": logged.transcript,
    });
    if args.json {
        let mut v = report_json(report);
        v["audit"] = audit;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report_human(report));
        if let (Some(first), Some(last)) = (logged.entries.first(), logged.entries.last()) {
            println!(
                "\naudit: log entries {first}..={last} in {}; replay with `enclave audit replay {}`",
                root.display(),
                report.job_id
            );
        }
    }
    Ok(if report.result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn datagen(args: DatagenArgs) -> anyhow::Result<ExitCode> {
    let bar = if std::io::stderr().is_terminal() && args.rows >= 1_000_000 {
        let b = indicatif::ProgressBar::new(args.rows);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {human_pos}/{human_len} rows [{bar:40}] {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let started = std::time::Instant::now();
    let n = enclave::datagen::generate(
        &args.table,
        args.rows,
        args.seed,
        args.population,
        &args.out,
        |done| {
            if let Some(b) = &bar {
                b.set_position(done);
            }
        },
    )
    .with_context(|| format!("generating {}", args.table))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    eprintln!(
        "wrote {n} rows of {} (seed {}) to {} in {:.1} s",
        args.table,
        args.seed,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn sample(args: SampleArgs) -> anyhow::Result<ExitCode> {
    let (name, file) = enclave::runner::split_pair(&args.table, "--table")
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let policy = enclave::policy::Policy::load(&args.policy)?;
    let s = enclave::sample::sample(
        &policy,
        &name,
        std::path::Path::new(&file),
        args.rows,
        args.seed,
        &args.out,
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
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("ENCLAVE_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run(*a),
        Command::Datagen(a) => datagen(a),
        Command::Sample(a) => sample(a),
        Command::Audit(a) => cli::audit::audit(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
