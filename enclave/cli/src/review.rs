//! Product review and release on the command line: `enclave output list | show | preview |
//! approve | reject | download | withdraw` and `enclave product publish | list | takedown`.
//!
//! Owns reading a quarantined output for the two who may see it — a reviewer's bounded preview
//! and the requesting developer's download of an approved output — once governance allowed it,
//! and turning a job's report into the outputs it leaves for review. It must never read
//! quarantine before governance allowed the step, nor write an output whose bytes do not hash
//! to the digest reviewed.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use enclave_core::Digest;
use enclave_egress::evidence::{Provenance, Verdict};
use enclave_governance::{
    Criterion, NewOutput, NewProduct, OutputDecision, OutputNo, OutputRecord, OutputVerdict,
    Product, ProductKind, ProductNo, ReviewState,
};
use enclave_runtime::JobReport;
use enclave_store::{Home, Owner};
use serde_json::{Value, json};

use crate::gov::{Common, Session, emit};

/// Largest output read back from quarantine (the egress cap on canonical bytes is lower).
const MAX_OUTPUT_BYTES: u64 = 1 << 30;

#[derive(Args)]
pub(crate) struct OutputArgs {
    #[command(flatten)]
    common: Common,
    /// Print JSON instead of human text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: OutputCommand,
}

#[derive(Subcommand)]
enum OutputCommand {
    /// Outputs of governed jobs: every one for reviewers and record readers, the own
    /// organization's for developers.
    List {
        /// Only outputs in this state (pending, approved, rejected, released, withdrawn).
        #[arg(long)]
        state: Option<String>,
        /// At most this many, newest first.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One output's record and its evidence report (no values).
    Show {
        /// `out-N`.
        output: String,
    },
    /// A reviewer's bounded preview of a quarantined output (on the record).
    Preview {
        /// `out-N`.
        output: String,
        /// Rows shown (at most 100).
        #[arg(long, default_value_t = 20)]
        rows: usize,
    },
    /// Approve an output (reviewers): every criterion of product review affirmed.
    Approve {
        /// `out-N`.
        output: String,
        /// The criteria found met, comma-separated, or `all`: purpose, source, no-raw-data,
        /// no-personal-info, no-cross-border, no-other-risk.
        #[arg(long)]
        affirm: String,
        /// I read the egress findings of this flagged output.
        #[arg(long)]
        acknowledge_findings: bool,
    },
    /// Reject an output (reviewers), naming the failed criteria and why.
    Reject {
        /// `out-N`.
        output: String,
        /// The criteria failed, comma-separated.
        #[arg(long)]
        failed: String,
        /// Why (kept in the record; the log holds its keyed digest).
        #[arg(long)]
        reason: String,
    },
    /// Download an approved output of your organization's job, with its signed release receipt.
    Download {
        /// `out-N`.
        output: String,
        /// Where to write the output (canonical Arrow IPC stream).
        #[arg(long)]
        out: PathBuf,
        /// Where to write the receipt (default: OUT with `.receipt` appended).
        #[arg(long)]
        receipt: Option<PathBuf>,
    },
    /// Withdraw an output (operator admins and reviewers): no further download.
    Withdraw {
        /// `out-N`.
        output: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Args)]
pub(crate) struct ProductArgs {
    #[command(flatten)]
    common: Common,
    /// Print JSON instead of human text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: ProductCommand,
}

#[derive(Subcommand)]
enum ProductCommand {
    /// Publish a released output of your organization in the product catalog.
    Publish {
        /// `out-N`.
        output: String,
        /// dataset, api, model or report.
        #[arg(long)]
        kind: String,
        /// Title.
        #[arg(long)]
        title: String,
        /// Description.
        #[arg(long)]
        description: String,
        /// Source statement: where its data comes from, and that it is lawful.
        #[arg(long)]
        source: String,
    },
    /// The product catalog.
    List {
        /// Taken-down products too (record readers).
        #[arg(long)]
        all: bool,
        /// At most this many, newest first.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Take a product down: its output's downloads are refused from now on.
    Takedown {
        /// `prod-N`.
        product: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

fn output_no(s: &str) -> anyhow::Result<OutputNo> {
    OutputNo::parse(s)
        .ok_or_else(|| anyhow::anyhow!("`{}` is not an output (out-N)", s.escape_debug()))
}

fn criteria(list: &str) -> anyhow::Result<Vec<Criterion>> {
    if list.trim() == "all" {
        return Ok(Criterion::ALL.to_vec());
    }
    list.split(',')
        .map(|c| {
            Criterion::parse(c.trim()).ok_or_else(|| {
                anyhow::anyhow!(
                    "`{}` is not a criterion: {}",
                    c.trim().escape_debug(),
                    Criterion::ALL
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })
        .collect()
}

fn evidence(o: &OutputRecord) -> Value {
    serde_json::from_str(&o.output.evidence)
        .unwrap_or_else(|_| json!({"error": "the stored evidence report does not parse"}))
}

fn output_json(o: &OutputRecord) -> Value {
    json!({
        "output": o.no.to_string(),
        "job": o.job.to_string(),
        "run": o.run,
        "application": o.application.as_str(),
        "module": hex::encode(o.module),
        "index": o.output.index,
        "name": o.output.name,
        "kind": o.output.kind,
        "blake3": hex::encode(o.output.digest),
        "rows": o.output.rows,
        "columns": o.output.columns,
        "bytes": o.output.bytes,
        "verdict": o.output.verdict.as_str(),
        "provenance": o.output.provenance,
        "state": o.state.as_str(),
        "created_at": o.created_at,
        "review": o.review.as_ref().map(|r| json!({
            "reviewer": r.reviewer.0,
            "at": r.at,
            "approved": r.approved,
            "affirmed": r.affirmed.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            "failed": r.failed.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            "reason": r.reason,
            "acknowledged_findings": r.acknowledged,
        })),
        "released_at": o.released_at,
        "has_receipt": o.receipt.is_some(),
        "withdrawn": o.withdrawn.as_ref().map(|(at, why)| json!({"at": at, "reason": why})),
    })
}

fn output_line(o: &OutputRecord) -> String {
    format!(
        "{}  {}  {:<9} {:<5} {:<9} {} rows × {} cols  {}  `{}`",
        o.no,
        o.job,
        o.state.as_str(),
        o.output.verdict.as_str(),
        o.output.provenance,
        o.output.rows,
        o.output.columns,
        &hex::encode(o.output.digest)[..16],
        o.output.name.escape_debug()
    )
}

fn product_json(p: &Product) -> Value {
    json!({
        "product": p.no.to_string(),
        "output": p.output.to_string(),
        "org": p.org.0,
        "kind": p.kind.as_str(),
        "title": p.title,
        "description": p.description,
        "source": p.source,
        "published_at": p.published_at,
        "taken_down": p.taken_down.as_ref().map(|(at, why)| json!({"at": at, "reason": why})),
    })
}

/// `enclave output`.
pub(crate) fn output(args: OutputArgs) -> anyhow::Result<u8> {
    let mut s = Session::open(&args.common)?;
    let json = args.json;
    let now = enclave_governance::now();
    match args.command {
        OutputCommand::List { state, limit } => {
            let state = state
                .map(|x| {
                    ReviewState::parse(&x).ok_or_else(|| {
                        anyhow::anyhow!(
                            "--state is pending, approved, rejected, released or withdrawn"
                        )
                    })
                })
                .transpose()?;
            let list = s.gov.outputs(&s.actor, state, limit.min(10_000))?;
            emit(
                json,
                Value::Array(list.iter().map(output_json).collect()),
                || {
                    for o in &list {
                        println!("{}", output_line(o));
                    }
                },
            )
        }
        OutputCommand::Show { output } => {
            let o = s.gov.output(&s.actor, output_no(&output)?)?;
            let mut v = output_json(&o);
            v["evidence"] = evidence(&o);
            emit(json, v.clone(), || {
                println!("{}", output_line(&o));
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v["evidence"]).unwrap_or_default()
                );
            })
        }
        OutputCommand::Preview { output, rows } => {
            let o = s.gov.preview_output(&s.actor, output_no(&output)?, now)?;
            s.flush()?;
            let home = Home::open(&s.root)?;
            let bytes = home
                .quarantine_get(
                    Owner::Entity(o.org.0),
                    &Digest(o.output.digest),
                    MAX_OUTPUT_BYTES,
                )
                .with_context(|| format!("reading {} from quarantine", o.no))?;
            let preview = enclave_runtime::report::preview(&bytes, rows.min(100), 64)
                .map_err(|e| anyhow::anyhow!("{} cannot be previewed: {e}", o.no))?;
            emit(
                json,
                json!({"output": o.no.to_string(), "rows": o.output.rows, "preview": preview}),
                || {
                    println!("{}", output_line(&o));
                    print!("{preview}");
                },
            )
        }
        OutputCommand::Approve {
            output,
            affirm,
            acknowledge_findings,
        } => {
            let decision = OutputDecision::Approve {
                affirmed: criteria(&affirm)?,
                acknowledge: acknowledge_findings,
            };
            let o = s
                .gov
                .decide_output(&s.actor, output_no(&output)?, &decision, now)?;
            s.flush()?;
            emit(json, output_json(&o), || {
                println!("approved {}: its developer may download it", o.no)
            })
        }
        OutputCommand::Reject {
            output,
            failed,
            reason,
        } => {
            let decision = OutputDecision::Reject {
                failed: criteria(&failed)?,
                reason,
            };
            let o = s
                .gov
                .decide_output(&s.actor, output_no(&output)?, &decision, now)?;
            s.flush()?;
            emit(json, output_json(&o), || {
                println!("rejected {}: it stays in quarantine", o.no)
            })
        }
        OutputCommand::Withdraw { output, reason } => {
            let o = s
                .gov
                .withdraw_output(&s.actor, output_no(&output)?, &reason, now)?;
            s.flush()?;
            emit(json, output_json(&o), || println!("withdrew {}", o.no))
        }
        OutputCommand::Download {
            output,
            out,
            receipt,
        } => download(&mut s, output_no(&output)?, &out, receipt, json, now),
    }
}

/// A download: governance releases the output (on the record), the bytes come back from
/// quarantine checked against the reviewed digest, the receipt is signed over a checkpoint that
/// holds the release.
fn download(
    s: &mut Session,
    no: OutputNo,
    out: &Path,
    receipt_path: Option<PathBuf>,
    json: bool,
    now: i64,
) -> anyhow::Result<u8> {
    // A job's first release: the cells it was shown are computed (and kept) first, outside
    // the transaction that checks and releases.
    let before = s.gov.output(&s.actor, no)?;
    if before.state == ReviewState::Approved
        && let Some(run) = &before.run
    {
        crate::cells::keep_for_release(&s.root, before.org.0, run)
            .with_context(|| format!("the difference check of {no}"))?;
    }
    let home = Home::open(&s.root)?;
    let k = crate::cells::threshold(&home)?;
    let org = s.actor.org().id.0;
    let dl = s
        .gov
        .download_output_checked(&s.actor, no, now, &mut |run, released| {
            crate::cells::check_release(&home, org, k, run, released).map_err(|e| format!("{e:#}"))
        });
    // A withdrawal is on the record even when the download is refused.
    s.flush()?;
    let dl = dl?;
    let o = dl.record();
    let bytes = home
        .quarantine_get(
            Owner::Entity(o.org.0),
            &Digest(o.output.digest),
            MAX_OUTPUT_BYTES,
        )
        .with_context(|| format!("reading {no} from quarantine"))?;
    let receipt = match &o.receipt {
        Some(r) => r.clone(),
        None => {
            let r = crate::receipt::sign(&s.root, &dl)?;
            s.gov.keep_receipt(no, &r)?
        }
    };
    // A withdrawal or takedown that committed while the bytes were read wins: nothing is written.
    let now_state = s.gov.output(&s.actor, no)?.state;
    if !now_state.downloadable() {
        anyhow::bail!("refused: {no} is {now_state}: it cannot be downloaded");
    }
    let receipt_path = receipt_path.unwrap_or_else(|| {
        let mut p = out.as_os_str().to_owned();
        p.push(".receipt");
        PathBuf::from(p)
    });
    enclave_store::write_atomic(out, &bytes)
        .with_context(|| format!("writing {}", out.display()))?;
    enclave_store::write_atomic(&receipt_path, receipt.as_bytes())
        .with_context(|| format!("writing {}", receipt_path.display()))?;
    emit(
        json,
        json!({
            "output": no.to_string(),
            "blake3": hex::encode(o.output.digest),
            "bytes": bytes.len(),
            "file": out,
            "receipt": receipt_path,
            "first_release": dl.first(),
        }),
        || {
            println!(
                "{no}: {} bytes to {} (blake3 {}), receipt {}",
                bytes.len(),
                out.display(),
                hex::encode(o.output.digest),
                receipt_path.display()
            )
        },
    )
}

/// `enclave product`.
pub(crate) fn product(args: ProductArgs) -> anyhow::Result<u8> {
    let mut s = Session::open(&args.common)?;
    let json = args.json;
    let now = enclave_governance::now();
    match args.command {
        ProductCommand::Publish {
            output,
            kind,
            title,
            description,
            source,
        } => {
            let kind = ProductKind::parse(&kind)
                .ok_or_else(|| anyhow::anyhow!("--kind is dataset, api, model or report"))?;
            let p = s.gov.publish_product(
                &s.actor,
                &NewProduct {
                    output: output_no(&output)?,
                    kind,
                    title,
                    description,
                    source,
                },
                now,
            )?;
            s.flush()?;
            emit(json, product_json(&p), || {
                println!("published {} ({})", p.no, p.output)
            })
        }
        ProductCommand::List { all, limit } => {
            let list = s.gov.products(&s.actor, all, limit.min(10_000))?;
            emit(
                json,
                Value::Array(list.iter().map(product_json).collect()),
                || {
                    for p in &list {
                        println!(
                            "{}  {}  {:<7} {}{}",
                            p.no,
                            p.output,
                            p.kind.as_str(),
                            p.title,
                            if p.taken_down.is_some() {
                                "  (taken down)"
                            } else {
                                ""
                            }
                        );
                    }
                },
            )
        }
        ProductCommand::Takedown { product, reason } => {
            let no = ProductNo::parse(&product).ok_or_else(|| {
                anyhow::anyhow!("`{}` is not a product (prod-N)", product.escape_debug())
            })?;
            let p = s.gov.take_down(&s.actor, no, &reason, now)?;
            s.flush()?;
            emit(json, product_json(&p), || {
                println!("took down {}: {} is withdrawn", p.no, p.output)
            })
        }
    }
}

/// The outputs a report left in quarantine, with the egress evidence of each, for review.
pub(crate) fn outputs_of(r: &JobReport) -> anyhow::Result<Vec<NewOutput>> {
    if r.result.is_err() {
        return Ok(Vec::new());
    }
    if r.evidence.len() != r.outputs.len() {
        anyhow::bail!("internal: a job's outputs and their evidence do not match");
    }
    r.outputs
        .iter()
        .zip(&r.evidence)
        .enumerate()
        .map(|(i, (o, e))| {
            if e.digest != o.digest {
                anyhow::bail!("internal: an output's evidence is another output's");
            }
            Ok(NewOutput {
                index: u32::try_from(i)?,
                name: o.name.clone(),
                kind: o.kind.name().to_owned(),
                digest: o.digest.0,
                rows: e.rows,
                columns: e.columns,
                bytes: e.bytes,
                verdict: match e.verdict {
                    Verdict::Pass => OutputVerdict::Pass,
                    Verdict::Flag => OutputVerdict::Flag,
                    Verdict::Block => OutputVerdict::Block,
                },
                provenance: match e.provenance {
                    Provenance::Certified { .. } => "certified",
                    Provenance::Open { .. } => "open",
                    Provenance::Derived => "derived",
                }
                .to_owned(),
                evidence: serde_json::to_string(e)
                    .context("internal: an evidence report cannot be written")?,
            })
        })
        .collect()
}
