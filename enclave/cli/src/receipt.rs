//! Release receipts on the command line: signing one when an output is released (after the
//! release is in the log) and `enclave receipt verify` (offline, with the domain's public log
//! key and the released file).
//!
//! Owns the binary's side of `enclave_tlog::receipt`. It must never sign a receipt for a
//! release the log does not hold, nor report a receipt as verified whose signature or file does
//! not check.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use enclave_runtime::Domain;
use enclave_tlog::{Receipt, VerifierKey};
use serde_json::json;

use crate::gov::emit;

#[derive(Args)]
pub(crate) struct ReceiptArgs {
    #[command(subcommand)]
    command: ReceiptCommand,
}

#[derive(Subcommand)]
enum ReceiptCommand {
    /// Verify a release receipt offline: the domain's signature, and the output file's blake3.
    Verify {
        /// The receipt file.
        receipt: PathBuf,
        /// The domain's public log key (`log.pub` of the domain, as published by the operator).
        #[arg(long)]
        key: PathBuf,
        /// The released output file, to check it is the one the receipt names.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Print JSON instead of human text.
        #[arg(long)]
        json: bool,
    },
}

/// Signs the receipt of a release already in the log: the release entry and a checkpoint of
/// the log as it stands (which holds it).
pub(crate) fn sign(root: &Path, dl: &enclave_governance::Download) -> anyhow::Result<String> {
    let o = dl.record();
    let domain = Domain::open(root, "operator:release".into())?;
    let subject = format!("output-record:{}", o.no);
    let mut entry = None;
    domain.log.scan(|e| {
        if e.action == "gov.output.release" && e.subject == subject {
            entry = Some(e.seq);
        }
    })?;
    let entry = entry.context("the release is not in the log yet: no receipt is signed")?;
    let size = domain.log.size();
    let review = o
        .review
        .as_ref()
        .context("internal: a released output without its review")?;
    let r = Receipt {
        origin: domain.log.origin().to_owned(),
        output: o.output.digest,
        bytes: o.output.bytes,
        record: o.no.to_string(),
        job: o.job.to_string(),
        run: o
            .run
            .clone()
            .context("internal: a released output's job has no run")?,
        module: o.module,
        application: o.application.as_str().to_owned(),
        developer: dl.developer().to_owned(),
        reviewer: dl.reviewer().to_owned(),
        decided: review.at,
        released: o.released_at.context("internal: released without a time")?,
        entry,
        checkpoint_size: size,
        checkpoint_root: domain.log.root(size)?,
    };
    Ok(r.sign(&domain.home.log_signer()?)?)
}

/// `enclave receipt`.
pub(crate) fn receipt(args: ReceiptArgs) -> anyhow::Result<u8> {
    let ReceiptCommand::Verify {
        receipt,
        key,
        output,
        json,
    } = args.command;
    let read = |p: &Path| -> anyhow::Result<String> {
        use std::io::Read;
        let max = enclave_tlog::note::MAX_NOTE as u64;
        let mut text = String::new();
        std::fs::File::open(p)
            .and_then(|f| f.take(max + 1).read_to_string(&mut text))
            .with_context(|| format!("reading {}", p.display()))?;
        if text.len() as u64 > max {
            anyhow::bail!("{} is too large to be a receipt or a key", p.display());
        }
        Ok(text)
    };
    let key = VerifierKey::parse(&read(&key)?).context("the log key")?;
    let r = match Receipt::open(&read(&receipt)?, &key) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("receipt does NOT verify: {e}");
            return Ok(1);
        }
    };
    let file_ok = match &output {
        None => None,
        Some(p) => {
            let mut h = blake3::Hasher::new();
            let f = std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?;
            h.update_reader(f)
                .with_context(|| format!("reading {}", p.display()))?;
            Some(*h.finalize().as_bytes() == r.output)
        }
    };
    let ok = file_ok.unwrap_or(true);
    emit(
        json,
        json!({
            "verified": ok,
            "output_matches": file_ok,
            "origin": r.origin,
            "output": hex::encode(r.output),
            "bytes": r.bytes,
            "record": r.record,
            "job": r.job,
            "run": r.run,
            "module": hex::encode(r.module),
            "application": r.application,
            "developer": r.developer,
            "reviewer": r.reviewer,
            "decided": r.decided,
            "released": r.released,
            "entry": r.entry,
            "checkpoint": {"size": r.checkpoint_size, "root": hex::encode(r.checkpoint_root)},
        }),
        || {
            if file_ok == Some(false) {
                println!("the receipt verifies, but the file is NOT the output it names");
            } else {
                println!(
                    "receipt verifies: {} released {} ({} bytes, blake3 {}) of {} to {}, approved by {}; log entry {} in checkpoint of size {}{}",
                    r.origin,
                    r.job,
                    r.bytes,
                    hex::encode(r.output),
                    r.application,
                    r.developer,
                    r.reviewer,
                    r.entry,
                    r.checkpoint_size,
                    if file_ok == Some(true) {
                        "; the file matches"
                    } else {
                        ""
                    }
                );
            }
        },
    )?;
    Ok(if ok { 0 } else { 1 })
}
