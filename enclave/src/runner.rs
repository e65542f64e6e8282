//! The local runner: `enclave run` as a developer uses it against sample files.
//!
//! Owns turning command-line inputs (module path, `NAME=FILE` tables, `KEY=VALUE` parameters,
//! limit overrides) into a job, and rendering the job report for people or as one JSON
//! document. It must never print anything but the report (and never a data value in an error).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::{ErrorKind, JobError};
use crate::limits::Limits;
use crate::policy::Policy;
use crate::policy::functions::pseudonym_key;
use crate::query::{Dataset, Governance};
use crate::sandbox::{JobReport, JobSpec, Sandbox};

/// Splits `KEY=VALUE`; the key must be non-empty.
pub fn split_pair(arg: &str, what: &str) -> Result<(String, String), JobError> {
    match arg.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(JobError::new(
            ErrorKind::InvalidInput,
            format!(
                "{what} `{}` is not of the form NAME=VALUE",
                arg.escape_debug()
            ),
        )),
    }
}

/// A local run.
#[derive(Debug, Clone, Default)]
pub struct LocalRun {
    /// Path of the `.wasm` module.
    pub module: PathBuf,
    /// `NAME=FILE` table arguments.
    pub tables: Vec<String>,
    /// `KEY=VALUE` parameter arguments.
    pub params: Vec<String>,
    /// Limit overrides.
    pub limits: Limits,
    /// Seed override (64 hex digits).
    pub seed: Option<String>,
    /// Query parallelism override.
    pub target_partitions: Option<usize>,
    /// Policy file to enforce (column rules, threshold, grants).
    pub policy: Option<PathBuf>,
    /// Application id (pseudonyms are stable within it, different across applications).
    pub application: String,
    /// The domain's secret (pseudonym keys derive from it).
    pub domain_secret: [u8; 32],
}

impl LocalRun {
    /// Reads the module and resolves tables and parameters into a job spec.
    pub fn to_job(&self) -> Result<(Vec<u8>, JobSpec), JobError> {
        let module = std::fs::read(&self.module).map_err(|e| {
            JobError::new(
                ErrorKind::InvalidInput,
                format!("cannot read module {}: {e}", self.module.display()),
            )
        })?;
        let policy = match &self.policy {
            None => None,
            Some(p) => Some(Arc::new(Policy::load(p).map_err(|e| {
                JobError::new(ErrorKind::InvalidInput, format!("policy: {e}"))
            })?)),
        };
        let mut datasets = Vec::new();
        for t in &self.tables {
            let (name, file) = split_pair(t, "--table")?;
            if let (Some(p), Some(path)) = (&policy, &self.policy)
                && !p.grants(&name)
            {
                return Err(JobError::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "dataset `{name}` is not granted by policy {}",
                        path.display()
                    ),
                ));
            }
            datasets.push(Dataset::new(&name, file).map_err(|e| e.to_job_error())?);
        }
        let mut params = BTreeMap::new();
        for p in &self.params {
            let (k, v) = split_pair(p, "--param")?;
            if params.insert(k.clone(), v).is_some() {
                return Err(JobError::new(
                    ErrorKind::InvalidInput,
                    format!("--param `{k}` is given twice"),
                ));
            }
        }
        let mut spec = JobSpec::new(&blake3::hash(&module), params, datasets);
        spec.limits = self.limits.clone();
        if let Some(hex) = &self.seed {
            spec.seed = parse_seed(hex)?;
        }
        if let Some(n) = self.target_partitions {
            spec.target_partitions = n.max(1);
        }
        spec.governance = policy.map(|policy| Governance {
            policy,
            pseudonym_key: pseudonym_key(&self.domain_secret, &self.application),
        });
        Ok((module, spec))
    }

    /// Runs the job in `sandbox`.
    pub fn run(&self, sandbox: &Sandbox) -> Result<JobReport, JobError> {
        let (module, spec) = self.to_job()?;
        Ok(sandbox.run(&module, spec))
    }
}

fn parse_seed(hex: &str) -> Result<[u8; 32], JobError> {
    let bad = || {
        JobError::new(
            ErrorKind::InvalidInput,
            "--seed must be 64 hexadecimal digits",
        )
    };
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(seed)
}

/// The JSON error object.
pub fn error_json(e: &JobError) -> Value {
    let mut v = json!({ "kind": e.kind, "message": e.message });
    if let Some(l) = e.limit {
        v["limit"] = json!(l);
    }
    v
}

/// The report as one JSON document.
pub fn report_json(r: &JobReport) -> Value {
    let outputs: Vec<Value> = r
        .outputs
        .iter()
        .map(|o| {
            json!({
                "name": o.name,
                "kind": o.kind,
                "rows": o.rows,
                "schema": o.schema_json(),
                "blake3": o.blake3,
                "data": o.rows_json().unwrap_or_default(),
            })
        })
        .collect();
    let mut v = json!({
        "status": if r.result.is_ok() { "ok" } else { "error" },
        "job_id": r.job_id,
        "module_blake3": r.module_blake3,
        "fuel_used": r.fuel_used,
        "memory_peak_bytes": r.memory_peak_bytes,
        "wall_ms": r.wall_ms,
        "outputs": outputs,
        "logs": r.logs,
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

/// The report for people.
pub fn report_human(r: &JobReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let status = match &r.result {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("error ({})", e.kind.as_str()),
    };
    let _ = writeln!(s, "job {}: {status}", r.job_id);
    let _ = writeln!(
        s,
        "  module blake3 {}\n  fuel used {}, peak memory {} KiB, {} ms",
        r.module_blake3,
        r.fuel_used,
        r.memory_peak_bytes / 1024,
        r.wall_ms
    );
    if let Err(e) = &r.result {
        let _ = writeln!(s, "  error: {}", e.message);
    }
    for q in &r.queries {
        let _ = writeln!(
            s,
            "  query: {} row(s) in {} batch(es){}",
            q.rows,
            q.batches,
            q.error
                .as_deref()
                .map(|e| format!(" — {e}"))
                .unwrap_or_default()
        );
    }
    for o in &r.outputs {
        let _ = writeln!(
            s,
            "\noutput `{}` ({:?}, {} rows, blake3 {})",
            o.name, o.kind, o.rows, o.blake3
        );
        match datafusion::arrow::util::pretty::pretty_format_batches(&o.batches) {
            Ok(t) => {
                let _ = writeln!(s, "{t}");
            }
            Err(e) => {
                let _ = writeln!(s, "  (cannot render: {e})");
            }
        }
    }
    if !r.logs.is_empty() {
        let _ = writeln!(s, "\nlog:");
        for l in &r.logs {
            let _ = writeln!(s, "  {l}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_seeds() {
        assert_eq!(
            split_pair("a=b=c", "--param").unwrap(),
            ("a".into(), "b=c".into())
        );
        assert_eq!(
            split_pair("a=", "--param").unwrap(),
            ("a".into(), "".into())
        );
        assert!(split_pair("=b", "--param").is_err());
        assert!(
            split_pair("ab", "--table")
                .unwrap_err()
                .message
                .contains("--table")
        );
        assert_eq!(parse_seed(&"ab".repeat(32)).unwrap(), [0xab; 32]);
        assert!(parse_seed("zz").is_err());
        assert!(parse_seed(&"g".repeat(64)).is_err());
        assert!(parse_seed(&"é".repeat(32)).is_err());
    }
}
