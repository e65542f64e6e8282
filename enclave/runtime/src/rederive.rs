//! Re-deriving a job's query results from the datasets (`enclave audit replay --rederive`).
//!
//! Owns checking that each dataset snapshot is still in the domain with the digest logged when
//! the job ran (found by digest, hashed again in full), re-running
//! every recorded query against those files under the same policy and pseudonym key, and
//! comparing with the transcript through a canonical digest: an order-free multiset hash of rows
//! (arrow row format) with floating-point values rounded to 12 significant digits, so that the
//! order in which partitions finish — which changes row order and the last bits of float sums —
//! gives no false alarm. It must never compare a query the guest stopped reading early as if it
//! were complete.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use futures::StreamExt;
use serde::Serialize;

use enclave_core::{Digest, TableName};
use enclave_egress::wire::{compact_batch, wire_schema};
use enclave_policy::Policy;
use enclave_query::{Dataset, JobSession, SessionLimits};
use enclave_record::{Event, Transcript};
use enclave_store::file_blake3;

use crate::RuntimeError;
use crate::domain::Domain;
use crate::engine::Engine;
use crate::replay::{Logged, ReplayReport};

/// One query compared with its re-derivation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueryCheck {
    /// 0-based index among the job's opened queries.
    pub index: usize,
    /// Keyed digest of the SQL text (as in the log).
    pub sql: enclave_core::KeyedDigest,
    /// `same`, `different`, or `skipped` (with `note`).
    pub status: &'static str,
    /// Canonical digest of the recorded result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Digest>,
    /// Canonical digest of the re-derived result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rederived: Option<Digest>,
    /// Rows in the recorded result.
    pub rows: u64,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A recorded query: its SQL and the messages the guest received.
struct Recorded {
    sql: String,
    messages: Vec<u8>,
    complete: bool,
    failed: bool,
}

fn recorded_queries(events: &[Event]) -> Vec<Recorded> {
    let mut out: Vec<Recorded> = Vec::new();
    let mut by_handle: BTreeMap<i32, usize> = BTreeMap::new();
    for e in events {
        match e {
            Event::Open {
                handle,
                sql,
                result: Ok(()),
            } => {
                out.push(Recorded {
                    sql: sql.clone(),
                    messages: Vec::new(),
                    complete: false,
                    failed: false,
                });
                by_handle.insert(*handle, out.len() - 1);
            }
            Event::Next { handle, result } => {
                if let Some(q) = by_handle.get(handle).and_then(|&i| out.get_mut(i)) {
                    match result {
                        Ok(m) if m.is_empty() => q.complete = true,
                        Ok(m) => q.messages.extend_from_slice(m),
                        Err(_) => q.failed = true,
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Rounds to 12 significant digits (NaN, infinities and zero unchanged; -0 becomes 0).
fn round12(v: f64) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return if v == 0.0 { 0.0 } else { v };
    }
    format!("{v:.11e}").parse().unwrap_or(v)
}

fn canonical_column(col: &ArrayRef) -> ArrayRef {
    match col.data_type() {
        DataType::Float64 => {
            let a = col.as_primitive::<Float64Type>();
            Arc::new(a.unary::<_, Float64Type>(round12)) as ArrayRef
        }
        DataType::Float32 => {
            let a = col.as_primitive::<Float32Type>();
            let v: Float64Array = a.iter().map(|x| x.map(|x| round12(f64::from(x)))).collect();
            Arc::new(v) as ArrayRef
        }
        _ => Arc::clone(col),
    }
}

/// Order-free canonical digest of a result: schema, row count and the lane-wise sum of the
/// blake3 of each row's arrow row encoding (floats rounded to 12 significant digits).
pub fn canonical_digest(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<([u8; 32], u64), String> {
    let mut h = blake3::Hasher::new();
    let mut fields = Vec::new();
    for f in schema.fields() {
        let t = match f.data_type() {
            DataType::Float32 => DataType::Float64,
            t => t.clone(),
        };
        h.update(f.name().as_bytes()).update(b"\0");
        h.update(t.to_string().as_bytes()).update(b"\0");
        fields.push(SortField::new(t));
    }
    let converter = RowConverter::new(fields).map_err(|e| format!("row format: {e}"))?;
    let mut acc = [0u64; 4];
    let mut count = 0u64;
    for b in batches {
        let cols: Vec<ArrayRef> = b.columns().iter().map(canonical_column).collect();
        let rows = converter
            .convert_columns(&cols)
            .map_err(|e| format!("row format: {e}"))?;
        for row in rows.iter() {
            let d = blake3::hash(row.as_ref());
            for (lane, chunk) in acc.iter_mut().zip(d.as_bytes().chunks_exact(8)) {
                let mut w = [0u8; 8];
                w.copy_from_slice(chunk);
                *lane = lane.wrapping_add(u64::from_le_bytes(w));
            }
            count += 1;
        }
    }
    for lane in acc {
        h.update(&lane.to_le_bytes());
    }
    h.update(&count.to_le_bytes());
    Ok((*h.finalize().as_bytes(), count))
}

fn decode(messages: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    let reader = StreamReader::try_new(Cursor::new(messages), None)
        .map_err(|e| format!("recorded IPC: {e}"))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("recorded IPC: {e}"))?;
    Ok((schema, batches))
}

/// Checks the dataset snapshots and re-derives every complete recorded query.
pub(crate) fn rederive(
    domain: &Domain,
    engine: &Engine,
    transcript: &Transcript,
    logged: &Logged,
    report: &mut ReplayReport,
    cells: Option<&mut Option<enclave_egress::difference::Cells>>,
) -> Result<Vec<QueryCheck>, RuntimeError> {
    let manifest = &transcript.header.manifest;
    let snapshots = domain.home.snapshots()?;
    // Opened social data, removed when re-derivation ends.
    let mut scratch: Option<enclave_store::Scratch> = None;
    let mut datasets = Vec::new();
    for d in &manifest.datasets {
        let at = format!("dataset {}", d.name);
        let Some((seq, logged_digest)) = logged.datasets.get(d.name.as_str()) else {
            report.differ(at, "the transcript names a dataset the log does not");
            return Ok(vec![]);
        };
        if *logged_digest != d.snapshot {
            report.differ(
                at,
                format!("the transcript's snapshot differs from entry {seq}"),
            );
            return Ok(vec![]);
        }
        let path = match snapshots.resolve(&d.snapshot) {
            Ok(snap) => snap.path,
            // An entity's social data lives only sealed: opened for this re-derivation alone.
            Err(_) => match domain.home.find_social(&d.snapshot) {
                Ok(Some((key, sealed))) => {
                    let scratch = scratch.get_or_insert_with(|| {
                        domain.home.scratch(&format!("rederive-{}", manifest.job))
                    });
                    let open = scratch.path().join(format!("{}.parquet", d.name));
                    domain.home.open_social(&key, &d.snapshot, &sealed, &open)?;
                    open
                }
                Ok(None) => {
                    report.differ(
                        at,
                        format!(
                            "no file of snapshot {} (entry {seq}) is in the domain any more: it was changed or removed",
                            d.snapshot
                        ),
                    );
                    return Ok(vec![]);
                }
                Err(e) => {
                    report.differ(at, format!("entry {seq}: {e}"));
                    return Ok(vec![]);
                }
            },
        };
        // The registry's cheap identity check is not enough for an auditor: hash it again.
        let now = file_blake3(&path)?;
        if now != d.snapshot {
            report.differ(
                at,
                format!(
                    "the file {} changed: blake3 {now}, entry {seq} logged {}",
                    path.display(),
                    d.snapshot
                ),
            );
            return Ok(vec![]);
        }
        datasets.push(Dataset {
            name: d.name.clone(),
            path,
            schema: None,
            // Counted again from the file the auditor just re-hashed.
            subject_unique: None,
            snapshot: Some(d.snapshot.0),
        });
    }
    let policy = std::sync::Arc::new(
        Policy::parse("transcript policy", &transcript.header.policy)
            .map_err(|e| RuntimeError::NotFound(format!("the recorded policy: {e}")))?,
    );
    if Digest::of(transcript.header.policy.as_bytes()) != manifest.policy.digest {
        report.differ("policy", "the recorded policy text differs from its digest");
        return Ok(vec![]);
    }
    let names: Vec<TableName> = datasets.iter().map(|d| d.name.clone()).collect();
    let auth = policy
        .authorize(&names, &manifest.application, domain.secret())
        .map_err(|e| RuntimeError::NotFound(format!("the recorded policy: {e}")))?;
    let limits = SessionLimits {
        memory_bytes: manifest.limits.query_memory_bytes,
        sql_bytes: manifest.limits.sql_bytes,
        sql_complexity: manifest.limits.sql_complexity,
        target_partitions: manifest.target_partitions as usize,
        clock_ms: manifest.clock_ms,
        ..SessionLimits::default()
    };
    let rt = &engine.queries;
    // The recorded noise key reproduces the noise; the queries were charged when the job ran.
    let privacy = enclave_query::Privacy {
        noise_key: transcript.header.noise_key.map_or([0; 32], |k| k.0),
        ledger: std::sync::Arc::new(enclave_dp::AlreadyCharged),
        // The decisions the difference check took when the job ran: the cells it compared with
        // were the entity's then, not anything the auditor holds.
        differences: enclave_query::difference::Differences::Replay {
            decisions: transcript
                .header
                .differenced
                .iter()
                .map(|(q, defs)| {
                    (
                        *q,
                        defs.iter()
                            .map(|d| enclave_egress::difference::CellDef(d.0))
                            .collect(),
                    )
                })
                .collect(),
            key: domain.subject_key(),
        },
    };
    let session = rt
        .block_on(JobSession::with_privacy(&datasets, limits, auth, privacy))
        .map_err(|e| RuntimeError::Job(e.to_job_error()))?;
    let mut checks = Vec::new();
    for (index, q) in recorded_queries(&transcript.events).into_iter().enumerate() {
        let mut check = QueryCheck {
            index,
            sql: domain.keyed("sql", blake3::hash(q.sql.as_bytes()).as_bytes()),
            status: "skipped",
            recorded: None,
            rederived: None,
            rows: 0,
            note: None,
        };
        if q.failed || !q.complete {
            // Opened all the same: the guest was shown some of its cells, and the queries after
            // it are checked and noised in the job's order.
            if let Err(e) = rt.block_on(session.open(&q.sql)) {
                report.differ(
                    format!("query #{index}"),
                    format!("re-opening it failed: {e}"),
                );
            }
            check.note = Some(if q.failed {
                "the query failed while the job ran".into()
            } else {
                "the guest stopped reading before the end of the result".into()
            });
            checks.push(check);
            continue;
        }
        let (schema, batches) = decode(&q.messages).map_err(RuntimeError::NotFound)?;
        let (recorded, rows) =
            canonical_digest(&schema, &batches).map_err(RuntimeError::NotFound)?;
        check.rows = rows;
        check.recorded = Some(Digest(recorded));
        let memory = manifest.limits.query_memory_bytes;
        let rerun = rt.block_on(async {
            let started = session.open(&q.sql).await?;
            // In the wire form the guest was given (plain types, exactly the rows).
            let schema = wire_schema(&started.stream.schema());
            let batches: Vec<RecordBatch> = started
                .stream
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
                .map_err(enclave_query::classify_exec_error(memory))?;
            let batches = batches
                .iter()
                .map(|b| compact_batch(b, &schema))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| enclave_query::QueryError::Internal(e.to_string()))?;
            Ok::<_, enclave_query::QueryError>((schema, batches))
        });
        let (schema2, batches2) = match rerun {
            Ok(r) => r,
            Err(e) => {
                report.differ(
                    format!("query #{index}"),
                    format!("re-running it failed: {e}"),
                );
                check.status = "different";
                checks.push(check);
                continue;
            }
        };
        let (rederived, _) =
            canonical_digest(&schema2, &batches2).map_err(RuntimeError::NotFound)?;
        check.rederived = Some(Digest(rederived));
        if rederived == recorded {
            check.status = "same";
        } else {
            check.status = "different";
            report.differ(
                format!("query #{index}"),
                "the re-derived result differs from the transcript",
            );
        }
        checks.push(check);
    }
    if let Some(sink) = cells {
        *sink = Some(
            rt.block_on(session.shown_cells())
                .map_err(|e| RuntimeError::Job(e.to_job_error()))?,
        );
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    fn batch(ids: &[i64], names: &[&str], x: &[f64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("x", DataType::Float64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
                Arc::new(Float64Array::from(x.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn canonical_digest_ignores_order_and_float_noise_only() {
        let a = batch(&[1, 2, 3], &["a", "b", "c"], &[0.1 + 0.2, 1.0, 2.5]);
        let b1 = batch(&[3], &["c"], &[2.5]);
        let b2 = batch(&[2, 1], &["b", "a"], &[1.0, 0.3]);
        let s = a.schema();
        let (d1, n1) = canonical_digest(&s, std::slice::from_ref(&a)).unwrap();
        let (d2, n2) = canonical_digest(&s, &[b1, b2]).unwrap();
        assert_eq!((d1, n1), (d2, n2));
        // A real change, a missing row or a duplicated row changes the digest.
        let c = batch(&[1, 2, 3], &["a", "b", "c"], &[0.3, 1.0, 2.6]);
        assert_ne!(canonical_digest(&s, &[c]).unwrap().0, d1);
        let short = batch(&[1, 2], &["a", "b"], &[0.3, 1.0]);
        assert_ne!(canonical_digest(&s, &[short]).unwrap().0, d1);
        let dup = batch(&[1, 2, 3, 3], &["a", "b", "c", "c"], &[0.3, 1.0, 2.5, 2.5]);
        assert_ne!(canonical_digest(&s, &[dup]).unwrap().0, d1);
        assert_eq!(round12(-0.0), 0.0);
        assert!(round12(f64::NAN).is_nan());
    }
}
