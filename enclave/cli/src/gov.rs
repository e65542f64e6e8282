//! Governance commands: `init` (a new domain), `org`, `user`, `token`, `agreement`,
//! `application`. Each acts as the user of a token (`--token`, else `$ENCLAVE_TOKEN`, else
//! `~/.config/enclave/token`), runs one governance step and records it in the domain's log.
//!
//! Owns parsing these commands into `enclave-governance` calls and printing their results. It
//! must never print a token except the one just issued, and never log free text (scenario,
//! purpose, reasons): the log holds a keyed digest of each step.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use enclave_core::TableName;
use enclave_governance::{Actor, Day, Governance, OrgKind, OrgStatus, Role, SqliteStore};
use enclave_runtime::Domain;
use enclave_runtime::actions::Action;
use enclave_store::Home;
use serde_json::{Value, json};

/// Options every governance command takes.
#[derive(Args, Clone)]
pub(crate) struct Common {
    /// Domain directory (default: $ENCLAVE_HOME, else the user's data dir `enclave/`).
    #[arg(long, global = true)]
    pub(crate) home: Option<PathBuf>,
    /// API token (default: $ENCLAVE_TOKEN, else the file ~/.config/enclave/token).
    #[arg(long, global = true)]
    pub(crate) token: Option<String>,
}

#[derive(Args)]
pub(crate) struct InitArgs {
    /// Domain directory to create (default: $ENCLAVE_HOME, else the user's data dir).
    #[arg(long)]
    home: Option<PathBuf>,
    /// Name of the data authority (数据主管部门).
    #[arg(long, default_value = "data-authority")]
    authority: String,
    /// Name of the authority's first admin.
    #[arg(long, default_value = "authority-admin")]
    admin: String,
}

#[derive(Args)]
pub(crate) struct OrgArgs {
    #[command(flatten)]
    common: Common,
    /// Print JSON instead of human text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: OrgCommand,
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Register the operator (authority admins) or a development entity (operator admins).
    Register {
        /// `operator` or `developer`.
        #[arg(long)]
        kind: String,
        /// Name: 1–64 of a-z 0-9 . _ -.
        name: String,
    },
    /// Suspend an entity: new applications, jobs and downloads are refused.
    Suspend(StatusArgs),
    /// Resume a suspended entity.
    Resume(StatusArgs),
    /// Terminate an entity: users and tokens revoked, agreements terminated, applications
    /// revoked. Final.
    Terminate(StatusArgs),
}

#[derive(Args)]
pub(crate) struct StatusArgs {
    /// The organization or agreement.
    pub(crate) target: String,
    /// Why (kept in the record; the log holds its keyed digest).
    #[arg(long)]
    pub(crate) reason: String,
}

#[derive(Args)]
pub(crate) struct UserArgs {
    #[command(flatten)]
    common: Common,
    /// Print JSON instead of human text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user to an organization.
    Add {
        /// The organization.
        #[arg(long)]
        org: String,
        /// authority-admin, operator-admin, reviewer, developer or auditor.
        #[arg(long)]
        role: String,
        /// Name: 1–64 of a-z 0-9 . _ -.
        name: String,
    },
}

#[derive(Args)]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    common: Common,
    /// Print JSON instead of human text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue a new token for a user (printed once; stored only as a hash).
    Issue {
        /// The user.
        user: String,
    },
    /// Revoke every token of a user.
    Revoke {
        /// The user.
        user: String,
    },
    /// Show who the token is.
    Whoami,
}

const DEFAULT_POLICY: &str = include_str!("../../../policies/default.toml");

fn home_of(home: &Option<PathBuf>) -> PathBuf {
    home.clone().unwrap_or_else(enclave_store::default_home)
}

/// The token: the flag, else `$ENCLAVE_TOKEN`, else `~/.config/enclave/token`.
fn token_of(common: &Common) -> anyhow::Result<String> {
    if let Some(t) = &common.token {
        return Ok(t.clone());
    }
    if let Ok(t) = std::env::var("ENCLAVE_TOKEN") {
        return Ok(t);
    }
    let file = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("enclave").join("token"));
    if let Some(f) = file.filter(|f| f.exists()) {
        let text = enclave_store::read_bounded(&f, 4096)?;
        return Ok(String::from_utf8_lossy(&text).trim().to_owned());
    }
    anyhow::bail!(
        "no token: pass --token, set ENCLAVE_TOKEN, or write it to ~/.config/enclave/token"
    )
}

pub(crate) fn open_gov(root: &Path) -> anyhow::Result<Governance<SqliteStore>> {
    let home = Home::open(root)?;
    let path = home.governance_path();
    if !path.exists() {
        anyhow::bail!(
            "{} has no governance database: create the domain with `enclave init --home {}`",
            root.display(),
            root.display()
        );
    }
    Ok(Governance::new(SqliteStore::open(&path)?))
}

/// An authenticated session: the governance store, the acting user and the domain's log.
pub(crate) struct Session {
    pub(crate) gov: Governance<SqliteStore>,
    pub(crate) actor: Actor,
    pub(crate) root: PathBuf,
}

impl Session {
    pub(crate) fn open(common: &Common) -> anyhow::Result<Session> {
        let root = home_of(&common.home);
        let mut gov = open_gov(&root)?;
        // What an interrupted command committed reaches the log before anything else happens,
        // and a terminated entity's key is destroyed.
        flush(&mut gov, &root)?;
        shred(&mut gov, &root)?;
        let actor = gov.authenticate(&token_of(common)?)?;
        Ok(Session { gov, actor, root })
    }

    /// Records the committed steps in the log; a command is acknowledged only after this.
    pub(crate) fn flush(&mut self) -> anyhow::Result<()> {
        flush(&mut self.gov, &self.root)
    }
}

/// Destroys the keys of terminated development entities (crypto-shredding their social data,
/// modules, transcripts and quarantined outputs) and records it; idempotent, so a crash between the two is repaired
/// by the next command.
pub(crate) fn shred(gov: &mut Governance<SqliteStore>, root: &Path) -> anyhow::Result<()> {
    let pending = gov.shred_pending()?;
    if pending.is_empty() {
        return Ok(());
    }
    let home = Home::open(root)?;
    for org in pending {
        // Its quarantined outputs go with it (other owners' copies of the same bytes stay).
        for digest in gov.outputs_to_shred(org.id)? {
            home.quarantine_destroy(
                enclave_store::Owner::Entity(org.id.0),
                &enclave_core::Digest(digest),
            )?;
        }
        home.destroy_cells(enclave_store::Owner::Entity(org.id.0))?;
        home.destroy_entity_key(org.id.0)?;
        gov.record_shredded(&org, enclave_governance::now())?;
    }
    flush(gov, root)
}

/// Records every journaled step not yet in the log (after a crash, what the last command
/// committed but did not log), each as its actor. A step whose append was attempted is looked
/// up in the log first, so none is recorded twice.
fn flush(gov: &mut Governance<SqliteStore>, root: &Path) -> anyhow::Result<()> {
    if gov.unlogged_steps()?.is_empty() {
        return Ok(());
    }
    let domain = Domain::open(root, "operator:governance".into())?;
    flush_into(gov, &domain)
}

/// [`flush`] into a domain this process holds already.
pub(crate) fn flush_into(gov: &mut Governance<SqliteStore>, domain: &Domain) -> anyhow::Result<()> {
    for step in gov.unlogged_steps()? {
        if step.action == "gov.job.interrupt" {
            close_interrupted_run(domain, &step)?;
        }
        let digest = domain.keyed("governance step", step.record.as_bytes());
        let hex = digest.to_string();
        let mut present = false;
        if step.attempted {
            domain.log.scan(|e| {
                present |= e.action == step.action
                    && e.subject == step.subject
                    && e.digests.get("record") == Some(&hex);
            })?;
        }
        if !present {
            gov.mark_step(step.seq, false)?;
            domain
                .record_as(
                    &step.actor,
                    &[Action::Governed {
                        action: &step.action,
                        subject: &step.subject,
                        record: digest,
                    }],
                )
                .context("the step is committed but could not be logged yet (it will be on the next command)")?;
        }
        gov.mark_step(step.seq, true)?;
    }
    Ok(())
}

/// Closes in the log the runtime run of an interrupted job, if the log opened it (`job.submit`)
/// and nothing closed it. Part of flushing the `gov.job.interrupt` step, so that a process
/// killed between the store's commit and the log's append leaves the next flush to finish it;
/// checking the log first makes it idempotent.
fn close_interrupted_run(domain: &Domain, step: &enclave_governance::Step) -> anyhow::Result<()> {
    let record: serde_json::Value = serde_json::from_str(&step.record)
        .context("a journaled interrupt step is not JSON (the store is damaged)")?;
    let Some(run) = record["run"].as_str() else {
        // The job never reached the runtime: there is no run to close.
        return Ok(());
    };
    let run = crate::jobs::parse_run(run)
        .context("a journaled interrupt step names a malformed run (the store is damaged)")?;
    let subject = format!("job:{run}");
    let (mut opened, mut closed) = (false, false);
    domain.log.scan(|e| {
        if e.subject == subject {
            opened |= e.action == "job.submit";
            closed |= e.action.starts_with("job.finish.") || e.action.starts_with("job.refuse.");
        }
    })?;
    if opened && !closed {
        domain.record_as(
            &step.actor,
            &[Action::JobFinished {
                job: run,
                status: "interrupted",
                transcript: None,
            }],
        )?;
    }
    Ok(())
}

pub(crate) fn day(s: &str) -> anyhow::Result<Day> {
    Ok(s.parse::<Day>()?)
}

pub(crate) fn tables(names: &[String]) -> anyhow::Result<Vec<TableName>> {
    names
        .iter()
        .map(|n| TableName::new(n.trim()).map_err(anyhow::Error::from))
        .collect()
}

/// `enclave init`.
pub(crate) fn init(args: InitArgs) -> anyhow::Result<u8> {
    let root = home_of(&args.home);
    let home = Home::open(&root)?;
    home.domain_secret()?;
    home.log_signer()?;
    let policy = home.policy_path();
    let wrote_policy = if policy.exists() {
        false
    } else {
        enclave_store::write_atomic(&policy, DEFAULT_POLICY.as_bytes())
            .with_context(|| format!("writing {}", policy.display()))?;
        true
    };
    let mut gov = Governance::new(SqliteStore::open(&home.governance_path())?);
    let (actor, token) = gov.bootstrap(&args.authority, &args.admin, enclave_governance::now())?;
    flush(&mut gov, &root)?;
    eprintln!("created the domain in {}:", root.display());
    eprintln!("  domain.key              the domain secret (0600)");
    eprintln!("  log.key, log.pub        the log's signing key (0600) and its public key");
    eprintln!("  governance.db           entities, agreements, applications (SQLite, WAL)");
    if wrote_policy {
        eprintln!("  policy.toml             the default policy (policies/default.toml)");
    }
    eprintln!("  audit/log.jsonl         the tamper-evident log (first entry: gov.domain.init)");
    eprintln!(
        "data authority `{}`, admin `{}`; the admin's token (shown once, keep it secret):",
        actor.org().name,
        actor.user().name
    );
    println!("{}", token.as_str());
    Ok(0)
}

/// Prints `value` as JSON, or runs `human`.
pub(crate) fn emit(json: bool, value: Value, human: impl FnOnce()) -> anyhow::Result<u8> {
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        human();
    }
    Ok(0)
}

fn status_step(
    s: &mut Session,
    json: bool,
    target: &StatusArgs,
    status: OrgStatus,
) -> anyhow::Result<u8> {
    let done = s.gov.set_org_status(
        &s.actor,
        &target.target,
        status,
        &target.reason,
        enclave_governance::now(),
    )?;
    let verb = match status {
        OrgStatus::Active => "resume",
        OrgStatus::Suspended => "suspend",
        OrgStatus::Terminated => "terminate",
    };
    s.flush()?;
    let mut v = json!({"org": target.target, "status": serde_json::to_value(status)?});
    if status == OrgStatus::Terminated {
        shred(&mut s.gov, &s.root)?;
        v["revoked"] = json!({
            "users": done.users,
            "tokens": done.tokens,
            "agreements": done.agreements,
            "applications": done.applications,
            "queued_jobs_failed": done.jobs,
        });
    }
    emit(json, v, || {
        if status == OrgStatus::Terminated {
            eprintln!(
                "terminated `{}`: {} user(s) deactivated, {} token(s) revoked, {} agreement(s) terminated, {} application(s) revoked, {} queued job(s) failed",
                target.target,
                done.users,
                done.tokens,
                done.agreements,
                done.applications,
                done.jobs
            );
        } else {
            eprintln!("`{}` is now {verb}d", target.target);
        }
    })
}

/// `enclave org`.
pub(crate) fn org(args: OrgArgs) -> anyhow::Result<u8> {
    let mut s = Session::open(&args.common)?;
    let json = args.json;
    match args.command {
        OrgCommand::Register { kind, name } => {
            let kind = match kind.as_str() {
                "operator" => OrgKind::Operator,
                "developer" => OrgKind::Developer,
                _ => anyhow::bail!("--kind is `operator` or `developer`"),
            };
            let org = s
                .gov
                .register_org(&s.actor, &name, kind, enclave_governance::now())?;
            s.flush()?;
            let v = json!({"org": org.name, "id": org.id.0, "kind": kind.to_string(),
                "status": serde_json::to_value(org.status)?});
            emit(json, v, || eprintln!("registered {kind} `{}`", org.name))
        }
        OrgCommand::Suspend(t) => status_step(&mut s, json, &t, OrgStatus::Suspended),
        OrgCommand::Resume(t) => status_step(&mut s, json, &t, OrgStatus::Active),
        OrgCommand::Terminate(t) => status_step(&mut s, json, &t, OrgStatus::Terminated),
    }
}

/// `enclave user`.
pub(crate) fn user(args: UserArgs) -> anyhow::Result<u8> {
    let mut s = Session::open(&args.common)?;
    match args.command {
        UserCommand::Add { org, role, name } => {
            let role = Role::parse(&role).ok_or_else(|| {
                anyhow::anyhow!(
                    "--role is one of authority-admin, operator-admin, reviewer, developer, auditor"
                )
            })?;
            let u = s
                .gov
                .add_user(&s.actor, &org, &name, role, enclave_governance::now())?;
            s.flush()?;
            let v = json!({"user": u.name, "id": u.id.0, "org": org, "role": role.to_string()});
            emit(args.json, v, || {
                eprintln!("added {role} `{}` to `{org}`", u.name)
            })
        }
    }
}

/// `enclave token`.
pub(crate) fn token(args: TokenArgs) -> anyhow::Result<u8> {
    let mut s = Session::open(&args.common)?;
    let json = args.json;
    match args.command {
        TokenCommand::Issue { user } => {
            let t = s
                .gov
                .issue_token(&s.actor, &user, enclave_governance::now())?;
            s.flush()?;
            let v = json!({"user": user, "token": t.as_str()});
            emit(json, v, || {
                eprintln!("token for `{user}` (shown once):");
                println!("{}", t.as_str());
            })
        }
        TokenCommand::Revoke { user } => {
            let n = s
                .gov
                .revoke_tokens(&s.actor, &user, enclave_governance::now())?;
            s.flush()?;
            let v = json!({"user": user, "revoked": n});
            emit(json, v, || eprintln!("revoked {n} token(s) of `{user}`"))
        }
        TokenCommand::Whoami => {
            let (u, o) = (s.actor.user(), s.actor.org());
            let v = json!({"user": u.name, "role": s.actor.role().to_string(), "org": o.name,
                "org_kind": o.kind.to_string(), "org_status": serde_json::to_value(o.status)?});
            emit(json, v, || {
                println!(
                    "{} ({}) of {} `{}` ({:?})",
                    u.name,
                    s.actor.role(),
                    o.kind,
                    o.name,
                    o.status
                );
            })
        }
    }
}
