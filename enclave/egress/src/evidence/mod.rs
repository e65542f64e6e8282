//! Automatic evidence: what the host can say about each output before anyone reviews it.
//!
//! Owns the per-output report — a [`Verdict`] (pass, flag, block) and the [`Finding`]s behind
//! it — and the checks that make it: size and shape caps per kind, the provenance of the output
//! (equal to a host-certified aggregate query result, or derived by the job's code), the raw-rows
//! and model-size bounds on derived outputs, the leak scan against the domain's index of
//! identifying values ([`leak`]), and covert channels (NaN payloads, float low bits, long or
//! random-looking labels, row order no sort explains: [`covert`]). It runs after the job, on the
//! collected outputs, and never changes them. It must never put a data value in a finding:
//! findings name checks, columns (by position when a column's name itself is suspect) and rows,
//! and a column name that hits the leak index is never repeated.

pub mod covert;
pub mod leak;
mod scan;
mod text;

use arrow_array::Array;
use enclave_abi::OutputKind;
use enclave_core::{Digest, QueryRecord};
use serde::Serialize;

use crate::Output;
use leak::{LeakError, LeakIndex, LeakScanner};

/// How an output stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing found.
    Pass,
    /// A reviewer must look at this.
    Flag,
    /// It cannot leave.
    Block,
}

impl Verdict {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Flag => "flag",
            Verdict::Block => "block",
        }
    }
}

/// Which check found something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Rows, columns or bytes over the policy's caps.
    Size,
    /// A derived output with more rows than the aggregates it could come from.
    RawRows,
    /// A model with too many parameters for its training rows.
    ModelSize,
    /// Computed by the job's code, not a host-certified aggregate.
    Derived,
    /// A value of the domain's leak index.
    Leak,
    /// A NaN carrying a payload.
    NanPayload,
    /// Float values computed by the job (their low bits can carry data).
    FloatBits,
    /// Long or random-looking strings in a label column.
    LabelText,
    /// Row order that no sort on a column explains.
    RowOrder,
    /// Disclosure control of aggregate cells (threshold and dominance), applied by the host.
    Disclosure,
    /// Cells suppressed because they differed from released or shown cells by fewer than k
    /// subjects.
    Difference,
}

impl Check {
    /// Name as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            Check::Size => "size",
            Check::RawRows => "raw-rows",
            Check::ModelSize => "model-size",
            Check::Derived => "derived",
            Check::Leak => "leak",
            Check::NanPayload => "nan-payload",
            Check::FloatBits => "float-bits",
            Check::LabelText => "label-text",
            Check::RowOrder => "row-order",
            Check::Disclosure => "disclosure",
            Check::Difference => "difference",
        }
    }
}

/// One thing a check found. Never holds a data value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check.
    pub check: Check,
    /// What it means for the output.
    pub verdict: Verdict,
    /// What was found, in words (column by name or `#position`, never a value).
    pub message: String,
}

/// Where an output comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "provenance")]
pub enum Provenance {
    /// Equal to the whole result of the job's query number `query`, which the host built from
    /// the aggregation grammar (threshold- and DP-checked).
    Certified {
        /// The query's index in the job.
        query: usize,
    },
    /// Equal to the whole result of the job's query number `query`, which read only columns
    /// open to the job (no threshold was needed, none applied): bounded like a derived output,
    /// but not computed by the job.
    Open {
        /// The query's index in the job.
        query: usize,
    },
    /// Computed by the job's code: a reviewer must look at it explicitly.
    Derived,
}

/// The evidence report of one output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// The output's name (as the job gave it; the leak scan checks it too).
    pub output: String,
    /// Its canonical digest.
    pub digest: Digest,
    /// Its kind.
    pub kind: &'static str,
    /// Rows.
    pub rows: u64,
    /// Columns.
    pub columns: u64,
    /// Canonical bytes.
    pub bytes: u64,
    /// Where it comes from.
    #[serde(flatten)]
    pub provenance: Provenance,
    /// The worst verdict of its findings (pass when none).
    pub verdict: Verdict,
    /// What the checks found.
    pub findings: Vec<Finding>,
    /// Cells the leak scan looked at.
    pub cells_scanned: u64,
}

/// The caps and bounds the checks apply (from the policy's `[egress]` and threshold).
#[derive(Debug, Clone, PartialEq)]
pub struct Caps {
    /// Most rows per output.
    pub max_rows: u64,
    /// Most columns per output.
    pub max_columns: u64,
    /// Most canonical bytes per output.
    pub max_bytes: u64,
    /// Training rows a model needs per parameter.
    pub model_rows_per_parameter: u64,
    /// Longest label string before it is flagged.
    pub max_label_bytes: u64,
    /// The threshold k: a derived output may have at most one row per k row-level input rows.
    pub min_group_size: u64,
    /// Lookups the leak scan may make over all of a job's outputs.
    pub leak_work: u64,
}

/// Default [`Caps::leak_work`]: enough for millions of cells, bounded whatever the job emits.
pub const DEFAULT_LEAK_WORK: u64 = 256 << 20;

impl Evidence {
    /// Adds a finding (the verdict becomes the worse of the two).
    pub fn add(&mut self, f: Finding) {
        self.verdict = self.verdict.max(f.verdict);
        self.findings.push(f);
    }
}

impl Finding {
    fn new(check: Check, verdict: Verdict, message: impl Into<String>) -> Finding {
        Finding {
            check,
            verdict,
            message: message.into(),
        }
    }
}

/// How findings name column `i` of `out`: by name, unless the name itself is suspect (hits the
/// leak index, or is long), then by position only.
pub(crate) struct Names {
    names: Vec<String>,
}

impl Names {
    pub(crate) fn column(&self, i: usize) -> String {
        self.names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("#{}", i + 1))
    }
}

/// The evidence of every output of a job that made `queries`, against the leak `indexes`.
pub fn examine(
    outputs: &[Output],
    queries: &[QueryRecord],
    caps: &Caps,
    indexes: &[&LeakIndex],
) -> Vec<Evidence> {
    let mut scanner = LeakScanner::new(indexes, caps.leak_work);
    outputs
        .iter()
        .map(|o| examine_one(o, queries, caps, &mut scanner))
        .collect()
}

fn provenance(out: &Output, queries: &[QueryRecord]) -> Provenance {
    let Ok(digest) = out.table_digest() else {
        return Provenance::Derived;
    };
    let equal = |q: &QueryRecord| q.error.is_none() && q.result == Some(digest);
    if let Some(query) = queries.iter().position(|q| q.aggregate && equal(q)) {
        return Provenance::Certified { query };
    }
    // The host keeps results of row-level queries only when they read open columns alone.
    match queries
        .iter()
        .position(|q| !q.aggregate && !q.row_level_grant && equal(q))
    {
        Some(query) => Provenance::Open { query },
        None => Provenance::Derived,
    }
}

/// The names of the fields nested in a column of type `dt`.
fn nested_names(dt: &arrow_schema::DataType, out: &mut Vec<String>) {
    use arrow_schema::DataType::*;
    match dt {
        List(f) | LargeList(f) | FixedSizeList(f, _) => {
            out.push(f.name().clone());
            nested_names(f.data_type(), out);
        }
        Struct(fs) => {
            for f in fs {
                out.push(f.name().clone());
                nested_names(f.data_type(), out);
            }
        }
        _ => {}
    }
}

fn leak_error(e: &LeakError) -> Finding {
    Finding::new(
        Check::Leak,
        Verdict::Block,
        format!("the leak scan could not finish: {e}"),
    )
}

fn examine_one(
    out: &Output,
    queries: &[QueryRecord],
    caps: &Caps,
    scanner: &mut LeakScanner<'_>,
) -> Evidence {
    let mut findings = Vec::new();
    let columns = out.schema.fields().len() as u64;
    let bytes = out.canonical.len() as u64;
    let provenance = provenance(out, queries);
    let certified = matches!(provenance, Provenance::Certified { .. });
    let derived = provenance == Provenance::Derived;
    let cells_before = scanner.cells;

    // Names first: a name that hits the index is never repeated in a finding.
    let mut names = Vec::with_capacity(out.schema.fields().len());
    match scanner.scan_names(std::iter::once(out.name.as_str())) {
        Ok(true) => findings.push(Finding::new(
            Check::Leak,
            Verdict::Block,
            "the output's name holds a value of the domain's leak index",
        )),
        Ok(false) => {}
        Err(e) => findings.push(leak_error(&e)),
    }
    for (i, f) in out.schema.fields().iter().enumerate() {
        let pos = format!("#{}", i + 1);
        match scanner.scan_names(std::iter::once(f.name().as_str())) {
            Ok(false) if f.name().len() <= 64 && !f.name().chars().any(char::is_control) => {
                names.push(format!("`{}` ({pos})", f.name()));
            }
            Ok(false) => names.push(pos),
            Ok(true) => {
                findings.push(Finding::new(
                    Check::Leak,
                    Verdict::Block,
                    format!("the name of column {pos} holds a value of the domain's leak index"),
                ));
                names.push(pos);
            }
            Err(e) => {
                findings.push(leak_error(&e));
                names.push(pos);
            }
        }
    }
    // Names inside nested columns (struct fields, list items) are names too.
    for (i, f) in out.schema.fields().iter().enumerate() {
        let mut nested = Vec::new();
        nested_names(f.data_type(), &mut nested);
        match scanner.scan_names(nested.iter().map(String::as_str)) {
            Ok(false) => {}
            Ok(true) => findings.push(Finding::new(
                Check::Leak,
                Verdict::Block,
                format!(
                    "a field name nested in column #{} holds a value of the domain's leak index",
                    i + 1
                ),
            )),
            Err(e) => findings.push(leak_error(&e)),
        }
    }
    let names = Names { names };

    // What the host's cell filter did to a certified output's groups (never which ones).
    if let Provenance::Certified { query } = provenance
        && let Some(q) = queries.get(query)
    {
        let mut said = format!(
            "the host suppressed every group under the threshold ({} suppressed, counted in tens)",
            q.suppressed_groups
        );
        if q.dominance_checked {
            said.push_str(&format!(
                " and every cell of a restricted sum or mean dominated by its largest \
                 contributions (N-K and p % rules; {} suppressed, counted in tens)",
                q.dominated_groups
            ));
        }
        findings.push(Finding::new(Check::Disclosure, Verdict::Pass, said));
        if q.dominance_undefined {
            findings.push(Finding::new(
                Check::Disclosure,
                Verdict::Flag,
                "some cells of a restricted sum or mean have negative contributions: their \
                 dominance is undefined (the rules held on magnitudes); review them as ACRO would",
            ));
        }
    }

    // The difference check: the job asked for cells that would have given somebody away by
    // difference with cells released before (or shown to it); the host suppressed them, and a
    // reviewer should know someone tried.
    let differenced = queries
        .iter()
        .fold(0u64, |a, q| a.saturating_add(q.differenced_groups));
    if differenced > 0 {
        findings.push(Finding::new(
            Check::Difference,
            Verdict::Flag,
            format!(
                "the host suppressed {differenced} cell(s) of this job's queries whose subjects \
                 differed from a cell released to the entity or shown to this job by fewer than \
                 the threshold (a differencing pair, or a total minus visible groups)"
            ),
        ));
    }

    // Size caps, per kind.
    for (what, n, cap) in [
        ("rows", out.rows, caps.max_rows),
        ("columns", columns, caps.max_columns),
        ("bytes", bytes, caps.max_bytes),
    ] {
        if n > cap {
            findings.push(Finding::new(
                Check::Size,
                Verdict::Block,
                format!("{n} {what}, over the policy's cap of {cap} {what} per output"),
            ));
        }
    }

    // Derived outputs: bounded by what they can come from.
    let (agg_rows, row_rows) = queries.iter().fold((0u64, 0u64), |(a, r), q| {
        if q.aggregate || q.grouped {
            (a.saturating_add(q.rows), r)
        } else {
            (a, r.saturating_add(q.rows))
        }
    });
    if !certified {
        if derived {
            findings.push(Finding::new(
                Check::Derived,
                Verdict::Flag,
                "computed by the job's code, not equal to the whole result of any query the host \
                 ran: a reviewer must examine it",
            ));
        }
        let k = caps.min_group_size.max(1);
        if out.kind == OutputKind::Model {
            let params = covert::numeric_cells(out);
            let rows_read = agg_rows.saturating_add(row_rows);
            let needed = params.saturating_mul(caps.model_rows_per_parameter);
            if needed > rows_read {
                findings.push(Finding::new(
                    Check::ModelSize,
                    Verdict::Block,
                    format!(
                        "a model of {params} parameters from {rows_read} input rows: the policy \
                         asks for at least {} rows per parameter",
                        caps.model_rows_per_parameter
                    ),
                ));
            }
        } else {
            let allowed = agg_rows.max(row_rows / k).max(1);
            if out.rows > allowed {
                findings.push(Finding::new(
                    Check::RawRows,
                    Verdict::Block,
                    format!(
                        "{} rows computed from {agg_rows} rows of groups and {row_rows} rows of \
                         data: a derived output may have at most one row per group received or \
                         per {k} rows of data ({allowed}); this looks like row-level data",
                        out.rows
                    ),
                ));
            }
        }
    }

    // The leak scan: text cells always, numbers of derived outputs.
    for (i, _) in out.schema.fields().iter().enumerate() {
        let arrays: Vec<&dyn Array> = out.batches.iter().map(|b| b.column(i).as_ref()).collect();
        match scanner.scan_column(i, &arrays, !certified) {
            Ok(None) => {}
            Ok(Some(h)) => {
                let (verdict, what) = if h.numeric_only {
                    (Verdict::Flag, "equal to exact values of")
                } else if h.embedded {
                    (Verdict::Block, "holding, inside longer text, values of")
                } else {
                    (Verdict::Block, "holding values of")
                };
                findings.push(Finding::new(
                    Check::Leak,
                    verdict,
                    format!(
                        "column {}: {} cell(s) {what} `{}` (first at row {})",
                        names.column(i),
                        h.cells,
                        h.source,
                        h.first_row + 1
                    ),
                ));
            }
            Err(e) => findings.push(leak_error(&e)),
        }
    }

    findings.extend(covert::check(out, !derived, caps, &names));
    let verdict = findings
        .iter()
        .map(|f| f.verdict)
        .max()
        .unwrap_or(Verdict::Pass);
    Evidence {
        output: out.name.clone(),
        digest: out.digest,
        kind: out.kind.name(),
        rows: out.rows,
        columns,
        bytes,
        provenance,
        verdict,
        findings,
        cells_scanned: scanner.cells - cells_before,
    }
}

#[cfg(test)]
mod tests;
