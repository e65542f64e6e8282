//! A job's report, for people and as one JSON document.
//!
//! Owns the rendering of [`JobReport`] (status, error, ids and digests, fuel, memory, time, the
//! policy it ran under, outputs with their rows, logs, queries) and of errors of jobs that could
//! not be set up. Rendering is bounded: outputs were already bounded by egress. It must never
//! render an error with a data value in it (errors never hold one).

use std::fmt::Write;

use enclave_core::{JobError, PolicyKind};
use enclave_egress::Output;
use enclave_egress::evidence::{Evidence, Provenance};
use serde_json::{Value, json};

use crate::job::JobReport;

/// The JSON error object.
pub fn error_json(e: &JobError) -> Value {
    let mut v = json!({ "kind": e.kind, "message": e.message });
    if let Some(l) = e.limit {
        v["limit"] = json!(l);
    }
    v
}

/// The rows of an output as JSON objects (column name → value).
pub fn rows_json(o: &Output) -> Result<Vec<Value>, String> {
    let mut w = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    let refs: Vec<&datafusion::arrow::array::RecordBatch> = o.batches.iter().collect();
    w.write_batches(&refs).map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())?;
    let bytes = w.into_inner();
    if bytes.is_empty() {
        return Ok(vec![]);
    }
    match serde_json::from_slice(&bytes).map_err(|e| e.to_string())? {
        Value::Array(rows) => Ok(rows),
        _ => Err("JSON writer produced no array".into()),
    }
}

/// The schema of an output as a list of `{name, type, nullable}` objects.
pub fn schema_json(o: &Output) -> Value {
    Value::Array(
        o.schema
            .fields()
            .iter()
            .map(|f| {
                json!({
                    "name": f.name(),
                    "type": f.data_type().to_string(),
                    "nullable": f.is_nullable(),
                })
            })
            .collect(),
    )
}

/// The evidence report of an output as JSON.
pub fn evidence_json(e: &Evidence) -> Value {
    serde_json::to_value(e).unwrap_or_else(|err| json!({ "error": err.to_string() }))
}

/// The evidence report of an output for people.
pub fn evidence_human(s: &mut String, e: &Evidence) {
    let provenance = match e.provenance {
        Provenance::Certified { query } => {
            format!(
                "certified (the whole result of query {}, checked by the host)",
                query + 1
            )
        }
        Provenance::Open { query } => format!(
            "open (the whole result of query {}, over columns open to the job)",
            query + 1
        ),
        Provenance::Derived => "derived (computed by the job's code)".to_owned(),
    };
    let _ = writeln!(
        s,
        "  evidence: {} — {provenance}; {} cell(s) scanned for leaks",
        e.verdict.name().to_uppercase(),
        e.cells_scanned
    );
    for f in &e.findings {
        let _ = writeln!(
            s,
            "    {} [{}]: {}",
            f.verdict.name(),
            f.check.name(),
            f.message
        );
    }
}

fn policy_name(k: PolicyKind) -> &'static str {
    match k {
        PolicyKind::Domain => "domain",
        PolicyKind::Open => "open (the developer's own files: every column plaintext)",
    }
}

/// The report as one JSON document, with the outputs' rows (a local run on the developer's own
/// files).
pub fn report_json(r: &JobReport) -> Value {
    json_of(r, true)
}

/// The report as one JSON document without the outputs' rows: they stay in quarantine until a
/// reviewer approves their release (a job under an application).
pub fn report_json_quarantined(r: &JobReport) -> Value {
    json_of(r, false)
}

fn json_of(r: &JobReport, rows: bool) -> Value {
    let outputs: Vec<Value> = r
        .outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let mut v = json!({
                "name": o.name,
                "kind": o.kind.name(),
                "rows": o.rows,
                "schema": schema_json(o),
                "blake3": o.digest,
            });
            if let Some(e) = r.evidence.get(i) {
                v["evidence"] = evidence_json(e);
            }
            if !rows {
                v["quarantine"] = json!(QUARANTINED);
                return v;
            }
            match rows_json(o) {
                Ok(rows) => v["data"] = json!(rows),
                Err(e) => v["data_error"] = json!(format!("cannot render the rows as JSON: {e}")),
            }
            v
        })
        .collect();
    let m = &r.manifest;
    let mut v = json!({
        "status": if r.result.is_ok() { "ok" } else { "error" },
        "job_id": m.job,
        "module_blake3": m.module,
        "policy": { "kind": m.policy.kind, "blake3": m.policy.digest },
        "application": m.application,
        "fuel_used": r.run.as_ref().map_or(0, |x| x.fuel_used),
        "memory_peak_bytes": r.run.as_ref().map_or(0, |x| x.memory_peak_bytes),
        "wall_ms": r.run.as_ref().map_or(0, |x| x.wall_ms),
        "host_calls": r.run.as_ref().map_or(0, |x| x.host_calls),
        "outputs": outputs,
        "logs": r.run.as_ref().map(|x| x.logs.clone()).unwrap_or_default(),
        "queries": r.queries,
    });
    if let Err(e) = &r.result {
        v["error"] = error_json(e);
    }
    v
}

/// The JSON document for a job that could not even be set up.
pub fn setup_error_json(e: &JobError) -> Value {
    json!({ "status": "error", "error": error_json(e), "outputs": [] })
}

/// What a report says of an output it does not show.
const QUARANTINED: &str = "kept in quarantine, sealed, until a reviewer approves its release";

/// The report for people, with the outputs' rows (a local run on the developer's own files).
pub fn report_human(r: &JobReport) -> String {
    human(r, true)
}

/// The report for people without the outputs' rows (a job under an application).
pub fn report_human_quarantined(r: &JobReport) -> String {
    human(r, false)
}

/// A bounded preview of an output's canonical bytes for a reviewer: the first `rows` rows,
/// every cell cut to `cell_chars` characters (and control characters escaped), so that neither
/// a long output nor a long cell floods the screen.
pub fn preview(canonical: &[u8], rows: usize, cell_chars: usize) -> Result<String, String> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let o = Output::from_guest(
        "preview",
        enclave_abi::OutputKind::Aggregate,
        canonical,
        u64::MAX >> 1,
    )
    .map_err(|e| e.to_string())?;
    let mut table: Vec<Vec<String>> = vec![
        o.schema
            .fields()
            .iter()
            .map(|f| cut(f.name(), cell_chars))
            .collect(),
    ];
    let options = FormatOptions::default().with_null("NULL");
    'batches: for b in &o.batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        for i in 0..b.num_rows() {
            if table.len() > rows {
                break 'batches;
            }
            table.push(
                formatters
                    .iter()
                    .map(|f| cut(&f.value(i).to_string(), cell_chars))
                    .collect(),
            );
        }
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    for (n, r) in table.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        let _ = writeln!(s, "| {} |", cells.join(" | "));
        if n == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            let _ = writeln!(s, "|-{}-|", rule.join("-|-"));
        }
    }
    let shown = table.len() - 1;
    if (shown as u64) < o.rows {
        let _ = writeln!(s, "({shown} of {} rows shown)", o.rows);
    }
    Ok(s)
}

fn cut(v: &str, max: usize) -> String {
    let escaped: String = v.escape_debug().collect();
    if escaped.chars().count() <= max {
        escaped
    } else {
        let mut t: String = escaped.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn human(r: &JobReport, rows: bool) -> String {
    let mut s = String::new();
    let status = match &r.result {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("error ({})", e.kind.as_str()),
    };
    let m = &r.manifest;
    let _ = writeln!(s, "job {}: {status}", m.job);
    let _ = writeln!(s, "  module blake3 {}", m.module);
    let _ = writeln!(
        s,
        "  policy: {} (blake3 {}), application {}",
        policy_name(m.policy.kind),
        m.policy.digest,
        m.application
    );
    if let Some(run) = &r.run {
        let _ = writeln!(
            s,
            "  fuel used {}, peak memory {} KiB, {} ms",
            run.fuel_used,
            run.memory_peak_bytes / 1024,
            run.wall_ms
        );
    }
    if let Err(e) = &r.result {
        let _ = writeln!(s, "  error: {}", e.message);
    }
    for q in &r.queries {
        let _ = writeln!(
            s,
            "  query: {} row(s) in {} batch(es){}{}",
            q.rows,
            q.batches,
            if q.suppressed_groups > 0 || q.dominated_groups > 0 {
                format!(
                    ", {} group(s) suppressed ({} for dominance)",
                    q.suppressed_groups + q.dominated_groups,
                    q.dominated_groups
                )
            } else {
                String::new()
            },
            q.error
                .as_ref()
                .map(|e| format!(" — {}", e.message))
                .unwrap_or_default()
        );
        if let Some(dp) = &q.dp {
            let _ = writeln!(
                s,
                "    differential privacy: {} noise on {} statistic(s), ε={} δ={:e}",
                dp.mechanism, dp.statistics, dp.epsilon, dp.delta
            );
            for n in &dp.noise {
                let _ = writeln!(
                    s,
                    "      {}: scale {:.4}, |noise| ≤ {:.4} with probability 95 %",
                    n.statistic, n.scale, n.error95
                );
            }
            for b in &dp.budget {
                let _ = writeln!(
                    s,
                    "      budget of `{}`: ε {:.4} spent, {:.4} left (δ {:e} spent)",
                    b.dataset, b.spent_epsilon, b.left_epsilon, b.spent_delta
                );
            }
        }
        if q.row_level_grant {
            let _ = writeln!(
                s,
                "    read columns of a row-level grant: what the job derives leaves only through review"
            );
        }
    }
    for (i, o) in r.outputs.iter().enumerate() {
        let _ = writeln!(
            s,
            "\noutput `{}` ({}, {} rows, blake3 {})",
            o.name,
            o.kind.name(),
            o.rows,
            o.digest
        );
        if let Some(e) = r.evidence.get(i) {
            evidence_human(&mut s, e);
        }
        if !rows {
            let _ = writeln!(s, "  {QUARANTINED}");
            continue;
        }
        match datafusion::arrow::util::pretty::pretty_format_batches(&o.batches) {
            Ok(t) => {
                let _ = writeln!(s, "{t}");
            }
            Err(e) => {
                let _ = writeln!(s, "  (cannot render: {e})");
            }
        }
    }
    if let Some(run) = &r.run
        && !run.logs.is_empty()
    {
        let _ = writeln!(s, "\nlog:");
        for l in &run.logs {
            let _ = writeln!(s, "  {l}");
        }
    }
    s
}
