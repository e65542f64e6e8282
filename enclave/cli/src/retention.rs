//! `enclave retention`: purges what is past its retention period — the sealed files of
//! development entities terminated more than six months ago (already unreadable: their key was
//! destroyed at termination). The log is never purged: every entry stays verifiable.
//!
//! Owns deciding, per due entity, what is deleted and recording it. It must never delete a file
//! whose key still lives, nor anything of the log.

use clap::Args;
use enclave_governance::RETENTION_SECS;
use enclave_store::{Home, KeyState};

use crate::gov::{Common, Session, shred};

#[derive(Args)]
pub(crate) struct RetentionArgs {
    #[command(flatten)]
    common: Common,
    /// Say what would be purged, and purge nothing.
    #[arg(long)]
    dry_run: bool,
    /// One JSON document.
    #[arg(long)]
    json: bool,
}

fn files_under(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| {
            let p = e.path();
            if p.is_dir() { files_under(&p) } else { 1 }
        })
        .sum()
}

/// `enclave retention`.
pub(crate) fn retention(args: RetentionArgs) -> anyhow::Result<u8> {
    let mut s = Session::open(&args.common)?;
    let now = enclave_governance::now();
    let due = s.gov.retention_due(&s.actor, now)?;
    let home = Home::open(&s.root)?;
    let mut purged = Vec::new();
    for (org, at) in due {
        let dir = home.entity_dir(org.id.0);
        let files = files_under(&dir);
        if !args.dry_run {
            if !matches!(
                home.entity_key(org.id.0)?,
                KeyState::Destroyed | KeyState::Absent
            ) {
                // Termination destroys the key; a crash may have left it: destroy it first.
                shred(&mut s.gov, &s.root)?;
            }
            if matches!(home.entity_key(org.id.0)?, KeyState::Live(_)) {
                anyhow::bail!("the key of `{}` still lives: nothing purged", org.name);
            }
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            s.gov.record_purged(&s.actor, &org, files, now)?;
            s.flush()?;
        }
        purged.push(serde_json::json!({
            "org": org.name,
            "terminated_at": at,
            "files": files,
        }));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "dry_run": args.dry_run,
                "retention_days": RETENTION_SECS / 86_400,
                "purged": purged,
            }))?
        );
    } else {
        let verb = if args.dry_run {
            "would purge"
        } else {
            "purged"
        };
        for p in &purged {
            println!(
                "{verb} {} file(s) of `{}`",
                p["files"],
                p["org"].as_str().unwrap_or("")
            );
        }
        eprintln!(
            "{} entit(ies) past the {}-day retention; the log is kept whole",
            purged.len(),
            RETENTION_SECS / 86_400
        );
    }
    Ok(0)
}
