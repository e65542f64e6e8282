//! Agreement and application commands: `agreement operation|development|suspend|resume|
//! terminate|show` and `application submit|approve|reject|show|list`.
//!
//! Owns parsing these commands into `enclave-governance` calls and printing their results, as
//! human text or `--json`. It must never log free text (scenario, purpose, reasons): the log
//! holds a keyed digest of each step; the texts stay in the governance record.

use anyhow::Context;
use clap::{Args, Subcommand};
use enclave_governance::workflow::Verdict;
use enclave_governance::{
    Agreement, AgreementEvent, AgreementId, AgreementStatus, Application, ApplicationRequest,
    DatasetColumns, Day, Decision, parse_columns,
};
use serde_json::{Value, json};

use crate::gov::{Common, Session, StatusArgs, day, emit, tables};

#[derive(Args)]
pub(crate) struct AgreementArgs {
    #[command(flatten)]
    common: Common,
    /// Print JSON instead of human text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AgreementCommand,
}

#[derive(Args)]
struct TermArgs {
    /// Datasets covered, comma-separated.
    #[arg(long, value_delimiter = ',')]
    datasets: Vec<String>,
    /// First day (YYYY-MM-DD).
    #[arg(long)]
    start: String,
    /// Last day (YYYY-MM-DD); at most three years after the first.
    #[arg(long)]
    end: String,
}

#[derive(Subcommand)]
enum AgreementCommand {
    /// The authority authorizes the operator (授权运营).
    Operation {
        /// The operator.
        #[arg(long)]
        operator: String,
        #[command(flatten)]
        term: TermArgs,
    },
    /// The operator signs a development agreement (授权开发协议) with a development entity.
    Development {
        /// The development entity.
        #[arg(long)]
        developer: String,
        #[command(flatten)]
        term: TermArgs,
    },
    /// Suspend an agreement.
    Suspend(StatusArgs),
    /// Resume a suspended agreement.
    Resume(StatusArgs),
    /// Terminate an agreement (final; its applications are revoked).
    Terminate(StatusArgs),
    /// Show an agreement and its history.
    Show {
        /// The agreement number.
        id: i64,
    },
}

#[derive(Args)]
pub(crate) struct ApplicationArgs {
    #[command(flatten)]
    common: Common,
    /// Print JSON instead of human text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: ApplicationCommand,
}

#[derive(Subcommand)]
enum ApplicationCommand {
    /// Apply for one scenario (一场景一清单一审核).
    Submit {
        /// The scenario.
        #[arg(long)]
        scenario: String,
        /// The purpose.
        #[arg(long)]
        purpose: String,
        /// Datasets and columns: `dataset:col,col;dataset:col`.
        #[arg(long)]
        columns: String,
        /// First day (YYYY-MM-DD).
        #[arg(long)]
        start: String,
        /// Last day (YYYY-MM-DD).
        #[arg(long)]
        end: String,
        /// The security measures committed to.
        #[arg(long)]
        measures: String,
    },
    /// Approve an application (operator reviewers), possibly for fewer columns.
    Approve {
        /// The application (e.g. app-3).
        id: String,
        /// The approved columns, if fewer than requested: `dataset:col,col;…`.
        #[arg(long)]
        columns: Option<String>,
    },
    /// Reject an application with a reason.
    Reject {
        /// The application.
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Show an application and its decision.
    Show {
        /// The application.
        id: String,
    },
    /// List applications: every developer's for reviewers, admins and auditors, else your
    /// organization's.
    List {
        /// Only those still waiting for a decision.
        #[arg(long)]
        pending: bool,
    },
}

fn status_name(s: AgreementStatus) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

fn agreement_json(a: &Agreement, history: &[AgreementEvent]) -> Value {
    json!({
        "agreement": a.id.0,
        "kind": serde_json::to_value(a.kind).unwrap_or(Value::Null),
        "grantor": a.grantor.0,
        "grantee": a.grantee.0,
        "datasets": a.scope.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "start": a.start.to_string(),
        "end": a.end.to_string(),
        "status": status_name(a.status),
        "status_today": status_name(a.status_on(Day::today())),
        "history": history.iter().map(|e| json!({
            "at": e.at,
            "status": status_name(e.status),
            "reason": e.reason,
            "by": e.actor.0,
        })).collect::<Vec<_>>(),
    })
}

fn columns_json(cols: &[DatasetColumns]) -> Value {
    serde_json::to_value(cols).unwrap_or(Value::Null)
}

fn state(d: &Decision) -> &'static str {
    match d {
        Decision::Pending => "pending",
        Decision::Approved { .. } => "approved",
        Decision::Rejected { .. } => "rejected",
        Decision::Revoked { .. } => "revoked",
    }
}

fn application_json(a: &Application) -> Value {
    json!({
        "application": a.id.as_str(),
        "org": a.org.0,
        "agreement": a.agreement.0,
        "submitter": a.submitter.0,
        "scenario": a.request.scenario,
        "purpose": a.request.purpose,
        "requested": columns_json(&a.request.columns),
        "start": a.request.start.to_string(),
        "end": a.request.end.to_string(),
        "measures": a.request.measures,
        "state": state(&a.decision),
        "decision": serde_json::to_value(&a.decision).unwrap_or(Value::Null),
    })
}

fn print_columns(label: &str, cols: &[DatasetColumns]) {
    for c in cols {
        println!("  {label}{}: {}", c.dataset, c.columns.join(", "));
    }
}

fn agreement_status_step(
    s: &mut Session,
    json: bool,
    t: &StatusArgs,
    status: AgreementStatus,
    verb: &str,
) -> anyhow::Result<u8> {
    let id = AgreementId(
        t.target
            .parse()
            .context("an agreement is named by its number")?,
    );
    s.gov
        .change_agreement(&s.actor, id, status, &t.reason, enclave_governance::now())?;
    s.flush()?;
    emit(
        json,
        json!({"agreement": id.0, "status": status_name(status)}),
        || eprintln!("agreement {}: {verb}d", id.0),
    )
}

/// `enclave agreement`.
pub(crate) fn agreement(args: AgreementArgs) -> anyhow::Result<u8> {
    let mut s = Session::open(&args.common)?;
    let now = enclave_governance::now();
    let json = args.json;
    match args.command {
        AgreementCommand::Operation { operator, term } => {
            let scope = tables(&term.datasets)?;
            let (start, end) = (day(&term.start)?, day(&term.end)?);
            let id = s
                .gov
                .authorize_operation(&s.actor, &operator, &scope, start, end, now)?;
            s.flush()?;
            let v = json!({"agreement": id.0, "kind": "operation", "grantee": operator,
                "start": start.to_string(), "end": end.to_string()});
            emit(json, v, || {
                eprintln!(
                    "operation agreement {} with `{operator}`, {start} to {end}",
                    id.0
                );
                println!("{}", id.0);
            })
        }
        AgreementCommand::Development { developer, term } => {
            let scope = tables(&term.datasets)?;
            let (start, end) = (day(&term.start)?, day(&term.end)?);
            let id = s.gov.sign_development(
                &s.actor,
                &developer,
                &scope,
                start,
                end,
                Day::today(),
                now,
            )?;
            s.flush()?;
            let v = json!({"agreement": id.0, "kind": "development", "grantee": developer,
                "start": start.to_string(), "end": end.to_string()});
            emit(json, v, || {
                eprintln!(
                    "development agreement {} with `{developer}`, {start} to {end}",
                    id.0
                );
                println!("{}", id.0);
            })
        }
        AgreementCommand::Suspend(t) => {
            agreement_status_step(&mut s, json, &t, AgreementStatus::Suspended, "suspend")
        }
        AgreementCommand::Resume(t) => {
            agreement_status_step(&mut s, json, &t, AgreementStatus::Active, "resume")
        }
        AgreementCommand::Terminate(t) => {
            agreement_status_step(&mut s, json, &t, AgreementStatus::Terminated, "terminate")
        }
        AgreementCommand::Show { id } => {
            let (a, history) = s.gov.agreement(&s.actor, AgreementId(id))?;
            emit(json, agreement_json(&a, &history), || {
                println!(
                    "agreement {}: {:?}, datasets {}, {} to {}, {:?} today",
                    a.id.0,
                    a.kind,
                    a.scope
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    a.start,
                    a.end,
                    a.status_on(Day::today())
                );
                for e in &history {
                    println!("  {} {:?}: {}", e.at, e.status, e.reason);
                }
            })
        }
    }
}

/// `enclave application`.
pub(crate) fn application(args: ApplicationArgs) -> anyhow::Result<u8> {
    let mut s = Session::open(&args.common)?;
    let now = enclave_governance::now();
    let json = args.json;
    match args.command {
        ApplicationCommand::Submit {
            scenario,
            purpose,
            columns,
            start,
            end,
            measures,
        } => {
            let request = ApplicationRequest {
                scenario,
                purpose,
                columns: parse_columns(&columns).map_err(|e| anyhow::anyhow!("--columns: {e}"))?,
                start: day(&start)?,
                end: day(&end)?,
                measures,
            };
            let id = s
                .gov
                .submit_application(&s.actor, &request, Day::today(), now)?;
            s.flush()?;
            emit(
                json,
                json!({"application": id.as_str(), "state": "pending"}),
                || {
                    eprintln!("submitted application {id}; an operator reviewer decides it");
                    println!("{id}");
                },
            )
        }
        ApplicationCommand::Approve { id, columns } => {
            let id = enclave_core::ApplicationId::new(&id)?;
            let narrowed = columns
                .as_deref()
                .map(parse_columns)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--columns: {e}"))?;
            let d = s
                .gov
                .decide(&s.actor, &id, &Verdict::Approve { narrowed }, now)?;
            s.flush()?;
            let v = json!({"application": id.as_str(), "state": state(&d),
                "decision": serde_json::to_value(&d).unwrap_or(Value::Null)});
            emit(json, v, || {
                if let Decision::Approved { columns, .. } = &d {
                    eprintln!("approved {id} for:");
                    for c in columns {
                        eprintln!("  {}: {}", c.dataset, c.columns.join(", "));
                    }
                }
            })
        }
        ApplicationCommand::Reject { id, reason } => {
            let id = enclave_core::ApplicationId::new(&id)?;
            let d = s
                .gov
                .decide(&s.actor, &id, &Verdict::Reject { reason }, now)?;
            s.flush()?;
            let v = json!({"application": id.as_str(), "state": state(&d)});
            emit(json, v, || eprintln!("rejected {id}"))
        }
        ApplicationCommand::Show { id } => {
            let id = enclave_core::ApplicationId::new(&id)?;
            let a = s.gov.application(&s.actor, &id)?;
            emit(json, application_json(&a), || {
                println!(
                    "{}: {}\n  scenario: {}\n  purpose: {}\n  period: {} to {}\n  measures: {}",
                    a.id,
                    state(&a.decision),
                    a.request.scenario,
                    a.request.purpose,
                    a.request.start,
                    a.request.end,
                    a.request.measures
                );
                print_columns("requested ", &a.request.columns);
                if let Decision::Approved { columns, .. } = &a.decision {
                    print_columns("approved ", columns);
                }
            })
        }
        ApplicationCommand::List { pending } => {
            let mut list = s.gov.applications(&s.actor)?;
            if pending {
                list.retain(|a| a.decision == Decision::Pending);
            }
            let v = Value::Array(list.iter().map(application_json).collect());
            emit(json, v, || {
                println!(
                    "{:<10} {:<9} {:>4} {:<23} scenario",
                    "id", "state", "org", "period"
                );
                for a in &list {
                    println!(
                        "{:<10} {:<9} {:>4} {} {} {}",
                        a.id,
                        state(&a.decision),
                        a.org.0,
                        a.request.start,
                        a.request.end,
                        a.request.scenario
                    );
                }
            })
        }
    }
}
