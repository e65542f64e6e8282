//! `enclave-audit`: the auditor's standalone verifier of an Enclave domain log.
//!
//! Checks an exported log file against the domain's public log key (and optionally a checkpoint
//! kept from an earlier look, or one the data authority's witness cosigned), or checks one proof
//! bundle, or one release receipt. Exit status: 0 verified, 1 the log or
//! proof is bad (the report names the first failing point), 2 the command could not run. This
//! package is a binary; its library target is the same entry point, so tests can run it in a
//! child process. It depends on nothing of the runtime.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use enclave_tlog::verify::outcome_json;
use enclave_tlog::{ProofBundle, VerifierKey, verify_log};

#[derive(Parser)]
#[command(
    name = "enclave-audit",
    version,
    about = "Verify an Enclave domain's audit log"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check every entry, the Merkle tree and every signed checkpoint of an exported log.
    Verify {
        /// The exported log file (`log.jsonl`).
        #[arg(long)]
        log: PathBuf,
        /// The log's public key, or a file holding it (`<name>+<id>+<key>`).
        #[arg(long)]
        key: String,
        /// A signed checkpoint kept from an earlier look: the log must extend it.
        #[arg(long)]
        trusted: Option<PathBuf>,
        /// The data authority's witness key (`<name>+<id>+<key>`, type 0x04), or a file holding
        /// it: the log must extend a checkpoint that witness cosigned (`--cosigned`).
        #[arg(long, requires = "cosigned")]
        witness: Option<String>,
        /// A checkpoint with the witness's cosignature (`enclave witness cosign`).
        #[arg(long, requires = "witness", conflicts_with = "trusted")]
        cosigned: Option<PathBuf>,
        /// Print a JSON report.
        #[arg(long)]
        json: bool,
    },
    /// Check a release receipt (`enclave output download`): the domain's signature over it, and
    /// that a file is the output it names.
    Receipt {
        /// The receipt file.
        receipt: PathBuf,
        /// The log's public key, or a file holding it.
        #[arg(long)]
        key: String,
        /// The released output file.
        #[arg(long)]
        output: Option<PathBuf>,
        /// The domain's exported log (`log.jsonl`): it is verified, and must hold the release
        /// entry within the receipt's checkpoint.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Print a JSON report.
        #[arg(long)]
        json: bool,
    },
    /// Check a proof bundle made by `enclave audit prove`.
    CheckProof {
        /// The bundle (JSON).
        bundle: PathBuf,
        /// The log's public key, or a file holding it.
        #[arg(long)]
        key: String,
        /// A signed checkpoint kept from earlier: the bundle must prove the log extends it.
        #[arg(long)]
        trusted: Option<PathBuf>,
        /// Print a JSON report.
        #[arg(long)]
        json: bool,
    },
}

fn read_small(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(meta.len() <= 1 << 20, "{} is too large", path.display());
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn load_key(arg: &str) -> Result<VerifierKey> {
    let path = Path::new(arg);
    let text = if path.is_file() {
        read_small(path)?
    } else {
        arg.to_owned()
    };
    VerifierKey::parse(&text).context("parsing the log key")
}

fn load_witness_key(arg: &str) -> Result<enclave_tlog::CosignerKey> {
    let path = Path::new(arg);
    let text = if path.is_file() {
        read_small(path)?
    } else {
        arg.to_owned()
    };
    enclave_tlog::CosignerKey::parse(&text).context("parsing the witness key")
}

/// Runs `enclave-audit` with the process's arguments.
pub fn main() -> ExitCode {
    ExitCode::from(main_with(std::env::args_os()))
}

/// Runs `enclave-audit` with `args` (the first is the program name); returns the exit status.
pub fn main_with<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(cli) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("enclave-audit: {e:#}");
            2
        }
    }
}

fn run(cli: Cli) -> Result<bool> {
    match cli.cmd {
        Cmd::Verify {
            log,
            key,
            trusted,
            witness,
            cosigned,
            json,
        } => {
            let key = load_key(&key)?;
            let mut trusted = trusted.as_deref().map(read_small).transpose()?;
            // The witness's cosignature first: without it the log is not accepted at all.
            let mut witnessed = None;
            if let (Some(w), Some(c)) = (&witness, &cosigned) {
                let wkey = load_witness_key(w)?;
                let note = read_small(c)?;
                match wkey.verify(&note) {
                    Ok(time) => witnessed = Some((wkey.name.clone(), time)),
                    Err(e) => {
                        let why = format!(
                            "the checkpoint {} is not cosigned by the witness {}: {e}",
                            c.display(),
                            wkey.name
                        );
                        if json {
                            let v = serde_json::json!({"ok": false, "failure": {"kind": "witness", "message": why}});
                            println!("{}", serde_json::to_string_pretty(&v)?);
                        } else {
                            println!("BAD: {why}");
                        }
                        return Ok(false);
                    }
                }
                trusted = Some(note);
            }
            let file =
                std::fs::File::open(&log).with_context(|| format!("opening {}", log.display()))?;
            let result = verify_log(
                BufReader::with_capacity(1 << 20, file),
                &key,
                trusted.as_deref(),
            );
            if json {
                let mut v = outcome_json(&result);
                if let Some((name, time)) = &witnessed {
                    v["witness"] = serde_json::json!({"name": name, "time": time});
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                match &result {
                    Ok(s) => println!("{s}"),
                    Err(f) => println!("BAD: {f}"),
                }
                if let (Ok(_), Some((name, time))) = (&result, &witnessed) {
                    println!(
                        "the log extends the checkpoint witness {name} cosigned at unix time {time}"
                    );
                }
            }
            Ok(result.is_ok())
        }
        Cmd::Receipt {
            receipt,
            key,
            output,
            log,
            json,
        } => {
            let key = load_key(&key)?;
            let result = enclave_tlog::Receipt::open(&read_small(&receipt)?, &key)
                .map_err(|e| e.to_string())
                .and_then(|r| match &output {
                    None => Ok((r, None)),
                    Some(p) => {
                        let f = std::fs::File::open(p)
                            .map_err(|e| format!("reading {}: {e}", p.display()))?;
                        let mut h = blake3::Hasher::new();
                        h.update_reader(f)
                            .map_err(|e| format!("reading {}: {e}", p.display()))?;
                        if *h.finalize().as_bytes() == r.output {
                            Ok((r, Some(true)))
                        } else {
                            Err(format!(
                                "{} is not the output the receipt names",
                                p.display()
                            ))
                        }
                    }
                })
                .and_then(|(r, file)| {
                    let Some(log) = &log else {
                        return Ok((r, file));
                    };
                    let open = || {
                        std::fs::File::open(log)
                            .map(|f| BufReader::with_capacity(1 << 20, f))
                            .map_err(|e| format!("reading {}: {e}", log.display()))
                    };
                    verify_log(open()?, &key, None)
                        .map_err(|f| format!("the log does not verify: {f}"))?;
                    enclave_tlog::receipt::check_in_log(open()?, &key, &r)?;
                    Ok((r, file))
                });
            if json {
                let v = match &result {
                    Ok((r, file)) => serde_json::json!({
                        "ok": true,
                        "origin": r.origin,
                        "output": hex_of(&r.output),
                        "record": r.record,
                        "job": r.job,
                        "application": r.application,
                        "developer": r.developer,
                        "reviewer": r.reviewer,
                        "entry": r.entry,
                        "checkpoint_size": r.checkpoint_size,
                        "output_matches": file,
                        "in_log": log.is_some(),
                    }),
                    Err(e) => serde_json::json!({"ok": false, "error": e}),
                };
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                match &result {
                    Ok((r, file)) => println!(
                        "ok: {} released {} ({}, {} bytes) of {} to {}, approved by {}; log entry {} within checkpoint size {}{}",
                        r.origin,
                        r.record,
                        r.job,
                        r.bytes,
                        r.application,
                        r.developer,
                        r.reviewer,
                        r.entry,
                        r.checkpoint_size,
                        match (file.is_some(), log.is_some()) {
                            (true, true) => "; the file matches; the log holds the release",
                            (true, false) => "; the file matches",
                            (false, true) => "; the log holds the release",
                            (false, false) => "",
                        }
                    ),
                    Err(e) => println!("BAD: {e}"),
                }
            }
            Ok(result.is_ok())
        }
        Cmd::CheckProof {
            bundle,
            key,
            trusted,
            json,
        } => {
            let key = load_key(&key)?;
            let trusted = trusted.as_deref().map(read_small).transpose()?;
            let bundle: ProofBundle =
                serde_json::from_str(&read_small(&bundle)?).context("parsing the proof bundle")?;
            let result = bundle.check(&key, trusted.as_deref());
            if json {
                let v = match &result {
                    Ok(c) => serde_json::json!({"ok": true, "proof": c}),
                    Err(e) => serde_json::json!({"ok": false, "error": e.to_string()}),
                };
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                match &result {
                    Ok(c) => println!("{c}"),
                    Err(e) => println!("BAD: {e}"),
                }
            }
            Ok(result.is_ok())
        }
    }
}
