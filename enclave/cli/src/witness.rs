//! `enclave witness`: the data authority's witness of the domain log — its own directory, key
//! and state, apart from the domain's (C2SP tlog-witness, tlog-cosignature/v1).
//!
//! Layout of `--dir`: `witness.key` (the cosigner key, 0600), `witness.pub`, `logs` (the log
//! keys it trusts, one per line), `state.json` (the last checkpoint it cosigned per log),
//! `lock`. Owns reading and persisting that state around one decision, under an exclusive lock
//! so that check and update are atomic. It must never hand out a cosignature before its state
//! is durably updated, nor read the domain's files: a request is all it sees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use enclave_tlog::witness::Witnessed;
use enclave_tlog::{AddCheckpoint, Cosigner, VerifierKey, Witness};

#[derive(Args)]
pub(crate) struct WitnessArgs {
    /// The witness's directory (the authority's, never the domain's).
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: WitnessCommand,
}

#[derive(Subcommand)]
enum WitnessCommand {
    /// Create the witness: its key and the first log it watches.
    Init {
        /// The witness's name (e.g. `data-authority.example/witness`).
        #[arg(long)]
        name: String,
        /// The domain log's public key (`log.pub` of the domain).
        #[arg(long)]
        log_key: PathBuf,
    },
    /// Decide an add-checkpoint request (`enclave audit witness-request`): print the cosigned
    /// checkpoint, or refuse with the reason (exit 1).
    Cosign {
        /// The request file.
        #[arg(long)]
        request: PathBuf,
        /// Write the cosigned checkpoint here (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// One JSON document.
        #[arg(long)]
        json: bool,
    },
    /// The witness's public key and what it last cosigned.
    Show,
}

fn dir_of(args: &WitnessArgs) -> anyhow::Result<&Path> {
    args.dir
        .as_deref()
        .context("--dir names the witness's directory")
}

fn private_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn load(dir: &Path) -> anyhow::Result<Witness> {
    let key = enclave_store::read_bounded(&dir.join("witness.key"), 4096)?;
    let cosigner = Cosigner::parse(std::str::from_utf8(&key)?).context("witness.key")?;
    let logs = String::from_utf8(enclave_store::read_bounded(&dir.join("logs"), 1 << 20)?)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| VerifierKey::parse(l).context("a key in `logs`"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let state: BTreeMap<String, Witnessed> = serde_json::from_slice(&enclave_store::read_bounded(
        &dir.join("state.json"),
        1 << 20,
    )?)
    .context("state.json")?;
    Ok(Witness::new(cosigner, logs, state))
}

/// `enclave witness`.
pub(crate) fn witness(args: WitnessArgs) -> anyhow::Result<u8> {
    let dir = dir_of(&args)?.to_owned();
    match args.command {
        WitnessCommand::Init { name, log_key } => {
            std::fs::create_dir_all(&dir)?;
            let mut seed = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
                .map_err(|_| anyhow::anyhow!("no system randomness"))?;
            let c = Cosigner::from_seed(&name, seed)?;
            let log = VerifierKey::parse(&String::from_utf8(enclave_store::read_bounded(
                &log_key, 4096,
            )?)?)
            .context("the log key")?;
            private_new(
                &dir.join("witness.key"),
                format!("{}\n", c.encode()).as_bytes(),
            )
            .context("a witness exists in this directory already")?;
            enclave_store::write_atomic(
                &dir.join("witness.pub"),
                format!("{}\n", c.key().encode()).as_bytes(),
            )?;
            enclave_store::write_atomic(
                &dir.join("logs"),
                format!("{}\n", log.encode()).as_bytes(),
            )?;
            enclave_store::write_atomic(&dir.join("state.json"), b"{}")?;
            eprintln!(
                "witness `{name}` in {} watches log `{}`; its public key (give it to auditors):",
                dir.display(),
                log.name
            );
            println!("{}", c.key().encode());
            Ok(0)
        }
        WitnessCommand::Cosign { request, out, json } => {
            let body = String::from_utf8(enclave_store::read_bounded(&request, 1 << 20)?)
                .context("the request is not UTF-8")?;
            // One decision at a time: check and update are atomic.
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join("lock"))?;
            lock.lock()?;
            let mut w = load(&dir)?;
            let decided = AddCheckpoint::parse(&body)
                .and_then(|req| w.add_checkpoint(&req, unix_now()).map(|line| (req, line)));
            let (req, line) = match decided {
                Ok(x) => x,
                Err(e) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&serde_json::json!({
                                "cosigned": false, "status": e.status(), "reason": e.to_string(),
                            }))?
                        );
                    } else {
                        eprintln!("refused ({}): {e}", e.status());
                    }
                    return Ok(1);
                }
            };
            enclave_store::write_atomic(
                &dir.join("state.json"),
                serde_json::to_string_pretty(w.state())?.as_bytes(),
            )?;
            drop(lock);
            let cosigned = format!("{}{line}", req.checkpoint);
            match &out {
                Some(p) => std::fs::write(p, &cosigned)
                    .with_context(|| format!("writing {}", p.display()))?,
                None if !json => print!("{cosigned}"),
                None => {}
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "cosigned": true, "checkpoint": cosigned,
                    }))?
                );
            }
            Ok(0)
        }
        WitnessCommand::Show => {
            let w = load(&dir)?;
            let key = enclave_store::read_bounded(&dir.join("witness.pub"), 4096)?;
            print!("{}", String::from_utf8_lossy(&key));
            for (origin, s) in w.state() {
                println!("{origin}: cosigned size {} (root {})", s.size, s.root);
            }
            Ok(0)
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
