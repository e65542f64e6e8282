//! `enclave audit …`: verify the domain log, prove an entry, replay a job, export for auditors.
//!
//! Exit status: 0 when the check passed, 1 when it found a problem (the report names the first
//! failing point), 2 when the command could not run.

use std::io::BufReader;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use enclave_core::{Digest, EngineLimits, JobId};
use enclave_runtime::replay::replay;
use enclave_runtime::{Action, Domain, Engine, local_actor};
use enclave_store::{Home, default_home};
use enclave_tlog::proof::encode_hashes;
use enclave_tlog::verify::outcome_json;
use enclave_tlog::{Checkpoint, ProofBundle, VerifierKey, verify_log};
use serde_json::json;

#[derive(clap::Args)]
/// `enclave audit` arguments.
pub struct AuditArgs {
    /// Domain directory (default: $ENCLAVE_HOME, else the user's data dir `enclave/`).
    #[arg(long, global = true)]
    home: Option<PathBuf>,
    /// Print one JSON document.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every entry, the Merkle tree and every signed checkpoint of the domain log.
    Verify {
        /// A checkpoint kept from an earlier look: the log must extend it.
        #[arg(long)]
        trusted: Option<PathBuf>,
    },
    /// Make a proof bundle showing entry N is in the log (check it with `enclave-audit`).
    Prove {
        /// Entry sequence number.
        #[arg(long)]
        entry: u64,
        /// Also prove the log extends its state at this older size.
        #[arg(long)]
        from_size: Option<u64>,
        /// Write the bundle to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Re-run a logged job from its sealed transcript and compare every output bit for bit.
    Replay {
        /// The job id.
        job: String,
        /// Also re-run each recorded query against the dataset files and compare results.
        #[arg(long)]
        rederive: bool,
    },
    /// Copy the log, the public key and the latest checkpoint to DIR for an auditor.
    Export {
        /// Destination directory.
        out: PathBuf,
    },
    /// Write an add-checkpoint request for the data authority's witness (C2SP tlog-witness):
    /// the latest checkpoint and a consistency proof from the size the witness cosigned last
    /// (that of `audit/cosigned.note`, else 0).
    WitnessRequest {
        /// The size the witness cosigned last, if not that of `audit/cosigned.note`.
        #[arg(long)]
        old: Option<u64>,
        /// Write the request here (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Keep a checkpoint the witness cosigned (`enclave witness cosign`) as
    /// `audit/cosigned.note`: it must be signed by this log's key and be a state of this log.
    Cosigned {
        /// The cosigned checkpoint.
        file: PathBuf,
        /// The witness's public key (or a file holding it): its cosignature must verify.
        #[arg(long)]
        witness_key: PathBuf,
    },
}

/// Runs `enclave audit`.
pub fn audit(args: AuditArgs) -> anyhow::Result<u8> {
    let root = args.home.unwrap_or_else(default_home);
    match args.command {
        AuditCommand::Verify { trusted } => verify(&root, trusted, args.json),
        AuditCommand::Prove {
            entry,
            from_size,
            out,
        } => prove(&root, entry, from_size, out, args.json),
        AuditCommand::Replay { job, rederive } => replay_job(&root, &job, rederive, args.json),
        AuditCommand::Export { out } => export(&root, &out, args.json),
        AuditCommand::WitnessRequest { old, out } => witness_request(&root, old, out),
        AuditCommand::Cosigned { file, witness_key } => keep_cosigned(&root, &file, &witness_key),
    }
}

fn public_key(home: &Home) -> anyhow::Result<VerifierKey> {
    let path = home.log_public_key_path();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the log key {}", path.display()))?;
    VerifierKey::parse(&text).with_context(|| format!("parsing {}", path.display()))
}

fn existing_home(root: &std::path::Path) -> anyhow::Result<Home> {
    anyhow::ensure!(
        root.join("log.pub").is_file(),
        "{} is not a domain directory (no log.pub): run a job first or pass --home",
        root.display()
    );
    Ok(Home::open(root)?)
}

fn verify(root: &std::path::Path, trusted: Option<PathBuf>, json: bool) -> anyhow::Result<u8> {
    // Read-only: an auditor's check never repairs or rewrites the log.
    let home = existing_home(root)?;
    let key = public_key(&home)?;
    let trusted = trusted
        .map(|p| std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display())))
        .transpose()?;
    let path = home.log_path();
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    // A job running in this domain holds the log; read it between commits, not during one.
    if file.try_lock_shared().is_err() {
        eprintln!("waiting for the job running in this domain to finish…");
        file.lock_shared()
            .with_context(|| format!("locking {}", path.display()))?;
    }
    let result = verify_log(
        BufReader::with_capacity(1 << 20, file),
        &key,
        trusted.as_deref(),
    );
    if json {
        let mut v = outcome_json(&result);
        v["log"] = json!(path);
        v["public_key"] = json!(key.encode());
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        match &result {
            Ok(s) => println!("{s}\n  log key {}", key.encode()),
            Err(f) => println!("BAD: {f}"),
        }
    }
    Ok(if result.is_ok() { 0 } else { 1 })
}

fn prove(
    root: &std::path::Path,
    entry: u64,
    from_size: Option<u64>,
    out: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<u8> {
    existing_home(root)?;
    let domain = Domain::open(root, local_actor("auditor"))?;
    let log = &domain.log;
    let checkpoint = log
        .latest_checkpoint()
        .context("the log has no checkpoint yet")?;
    let key = public_key(&domain.home)?;
    let cp = Checkpoint::open(&checkpoint, &key)?;
    anyhow::ensure!(
        entry < cp.size,
        "entry {entry} does not exist: the log holds {} entries",
        cp.size
    );
    let consistency = match from_size {
        Some(m) => encode_hashes(&log.consistency_proof(m, cp.size)?),
        None => vec![],
    };
    let bundle = ProofBundle {
        entry: log.entry(entry)?,
        checkpoint,
        inclusion: encode_hashes(&log.inclusion_proof(entry, cp.size)?),
        consistency_from: from_size,
        consistency,
    };
    let check = bundle.check(&key, None)?;
    let text = serde_json::to_string_pretty(&bundle)?;
    if let Some(p) = &out {
        std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?;
    }
    // Handing out a proof is on the record.
    domain.record(&[Action::ProofMade {
        entry,
        bundle: Digest::of(text.as_bytes()),
    }])?;
    if json {
        let v = json!({"ok": true, "entry": entry, "size": cp.size, "root": check.root, "bundle": bundle});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "entry {entry} ({} {}) is included in the log of size {} (root {})",
            bundle.entry.action, bundle.entry.subject, cp.size, check.root
        );
        println!("  inclusion proof: {} hashes", bundle.inclusion.len());
        if let Some(m) = from_size {
            println!(
                "  consistency proof from size {m}: {} hashes",
                bundle.consistency.len()
            );
        }
        match &out {
            Some(p) => println!(
                "  bundle written to {} (check: enclave-audit check-proof {} --key {})",
                p.display(),
                p.display(),
                domain.home.log_public_key_path().display()
            ),
            None => println!("{}", serde_json::to_string_pretty(&bundle)?),
        }
    }
    Ok(0)
}

fn replay_job(root: &std::path::Path, job: &str, rederive: bool, json: bool) -> anyhow::Result<u8> {
    existing_home(root)?;
    let job: JobId = job.parse().context("the job id")?;
    let domain = Domain::open(root, local_actor("auditor"))?;
    let engine = Engine::new(EngineLimits::default(), None)?;
    let report = replay(&domain, &engine, job, rederive)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        match &report.first_difference {
            None => println!(
                "job {job}: replay identical — {} host-call results played back, {} output(s) bit-identical",
                report.host_calls,
                report.outputs.len()
            ),
            Some(d) => println!("job {job}: DIFFERENT at {}: {}", d.at, d.message),
        }
        for o in &report.outputs {
            println!(
                "  output {}: {}",
                o.name,
                o.replayed
                    .map_or_else(|| "(missing)".to_owned(), |d| d.to_string())
            );
        }
        if let Some(e) = report.entry {
            println!("  logged as entry {e}");
        }
        if let Some(checks) = &report.rederived {
            for c in checks {
                println!(
                    "  query #{}: {} ({} rows){}",
                    c.index,
                    c.status,
                    c.rows,
                    c.note
                        .as_deref()
                        .map(|n| format!(" — {n}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(if report.identical { 0 } else { 1 })
}

fn export(root: &std::path::Path, out: &std::path::Path, json: bool) -> anyhow::Result<u8> {
    existing_home(root)?;
    let domain = Domain::open(root, local_actor("auditor"))?;
    let home = &domain.home;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let log = out.join("log.jsonl");
    let key = out.join("log.pub");
    // The domain holds the log while it is copied: the copy ends at a commit.
    let size = domain.log.size();
    std::fs::copy(home.log_path(), &log).context("copying the log")?;
    std::fs::copy(home.log_public_key_path(), &key).context("copying the key")?;
    // The export is on the record: which entries, and the exact file handed out.
    let digest = enclave_store::file_blake3(&log)?;
    domain.record(&[Action::LogExported { size, log: digest }])?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"ok": true, "log": log, "key": key}))?
        );
    } else {
        println!(
            "exported {} and {}\n  verify with: enclave-audit verify --log {} --key {}",
            log.display(),
            key.display(),
            log.display(),
            key.display()
        );
    }
    Ok(0)
}

fn cosigned_path(home: &Home) -> PathBuf {
    home.root().join("audit").join("cosigned.note")
}

/// `enclave audit witness-request`.
fn witness_request(
    root: &std::path::Path,
    old: Option<u64>,
    out: Option<PathBuf>,
) -> anyhow::Result<u8> {
    let home = existing_home(root)?;
    let domain = Domain::open(root, local_actor("operator"))?;
    let key = public_key(&home)?;
    let checkpoint = domain
        .log
        .latest_checkpoint()
        .context("the log has no checkpoint yet")?;
    let cp = Checkpoint::open(&checkpoint, &key)?;
    let old = match old {
        Some(o) => o,
        None => match std::fs::read_to_string(cosigned_path(&home)) {
            Ok(note) => Checkpoint::open(&note, &key)?.size,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        },
    };
    anyhow::ensure!(
        old <= cp.size,
        "the witness cannot have cosigned size {old}: the log holds {} entries",
        cp.size
    );
    let proof = if old == 0 || old == cp.size {
        vec![]
    } else {
        domain.log.consistency_proof(old, cp.size)?
    };
    let req = enclave_tlog::AddCheckpoint {
        old,
        proof,
        checkpoint,
    }
    .encode();
    match out {
        Some(p) => std::fs::write(&p, &req).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{req}"),
    }
    eprintln!("request: size {} from old size {old}", cp.size);
    Ok(0)
}

/// `enclave audit cosigned`.
fn keep_cosigned(
    root: &std::path::Path,
    file: &std::path::Path,
    witness_key: &std::path::Path,
) -> anyhow::Result<u8> {
    let home = existing_home(root)?;
    let domain = Domain::open(root, local_actor("operator"))?;
    let key = public_key(&home)?;
    let note = String::from_utf8(enclave_store::read_bounded(file, 64 << 10)?)?;
    let wkey = enclave_tlog::CosignerKey::parse(&String::from_utf8(enclave_store::read_bounded(
        witness_key,
        4096,
    )?)?)
    .context("the witness key")?;
    let time = wkey.verify(&note).context("the witness's cosignature")?;
    let cp = Checkpoint::open(&note, &key).context("the log's signature")?;
    let latest = Checkpoint::open(
        &domain
            .log
            .latest_checkpoint()
            .context("the log has no checkpoint yet")?,
        &key,
    )?;
    anyhow::ensure!(
        cp.size <= latest.size,
        "the cosigned checkpoint (size {}) is not a state of this log (size {})",
        cp.size,
        latest.size
    );
    let proof = if cp.size == latest.size || cp.size == 0 {
        vec![]
    } else {
        domain.log.consistency_proof(cp.size, latest.size)?
    };
    if cp.size == 0 {
        anyhow::ensure!(
            cp.root == enclave_tlog::merkle::empty_root(),
            "not this log's empty state"
        );
    } else {
        enclave_tlog::merkle::verify_consistency(
            cp.size,
            latest.size,
            &cp.root,
            &latest.root,
            &proof,
        )
        .map_err(|e| anyhow::anyhow!("the cosigned checkpoint is not a state of this log: {e}"))?;
    }
    enclave_store::write_atomic(&cosigned_path(&home), note.as_bytes())?;
    domain.record(&[Action::LogCosigned {
        size: cp.size,
        note: Digest::of(note.as_bytes()),
    }])?;
    eprintln!(
        "kept the checkpoint of size {} cosigned by {} at unix time {time}",
        cp.size, wkey.name
    );
    Ok(0)
}
