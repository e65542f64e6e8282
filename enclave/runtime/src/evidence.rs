//! The automatic evidence of a job's outputs, as the domain makes it: the leak index of each
//! dataset snapshot a job read and the egress checks run against it.
//!
//! Owns choosing the columns to index (those the policy classifies at one of its
//! `[egress] leak_levels`), building an index from the snapshot's Parquet file once and keeping
//! it under `datasets/leak/` (keyed by the domain; named by snapshot, dataset and columns), and
//! turning the policy into the checks' caps. It must never let an output pass a scan that could
//! not run: an index that cannot be built or read blocks every output of the job, with the reason.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use enclave_core::{Digest, JobError, QueryRecord};
use enclave_egress::Output;
use enclave_egress::evidence::leak::{
    ColumnValues, LeakIndex, LeakIndexBuilder, LeakKey, MAX_VALUES,
};
use enclave_egress::evidence::{
    Caps, Check, DEFAULT_LEAK_WORK, Evidence, Finding, Verdict, examine,
};
use enclave_policy::Policy;
use enclave_query::Dataset;
use enclave_store::{Home, Snapshot};

use crate::RuntimeError;
use crate::domain::Domain;

/// Largest index file read back (the largest index this domain builds, with room to spare).
const MAX_INDEX_FILE: u64 =
    ((MAX_VALUES as u64 * 10 / 7 + 1).next_power_of_two()) * 10 + (16 << 20);

/// The checks' caps under `policy`.
pub fn caps(policy: &Policy) -> Caps {
    let e = &policy.egress;
    Caps {
        max_rows: e.max_rows,
        max_columns: e.max_columns,
        max_bytes: e.max_bytes,
        model_rows_per_parameter: e.model_rows_per_parameter,
        max_label_bytes: e.max_label_bytes,
        min_group_size: policy.min_group_size,
        leak_work: DEFAULT_LEAK_WORK,
    }
}

/// The columns of `dataset` whose values the leak scan looks for under `policy`.
pub fn leak_columns(policy: &Policy, dataset: &str) -> Vec<String> {
    let Some(rules) = policy.dataset(dataset) else {
        return Vec::new();
    };
    rules
        .columns
        .iter()
        .filter(|(_, r)| policy.egress.leak_levels.contains(&r.level))
        .map(|(c, _)| c.clone())
        .collect()
}

fn index_error(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Job(JobError::internal(format!("leak index: {e}")))
}

fn leak_index_path(home: &Home, snapshot: &Digest, dataset: &str, columns: &[String]) -> PathBuf {
    let mut h = blake3::Hasher::new();
    h.update(snapshot.to_string().as_bytes());
    h.update(b"\n");
    h.update(dataset.as_bytes());
    for c in columns {
        h.update(b"\n");
        h.update(c.as_bytes());
    }
    home.root()
        .join("datasets")
        .join("leak")
        .join(format!("{}.idx", &h.finalize().to_hex()[..32]))
}

/// Leak indexes this process has read, shared by its jobs (a worker pool, a server): keyed by
/// file, size and modification time, so a rebuilt file is read again. Bounded in values held.
#[derive(Default)]
pub struct LeakCache {
    held: Mutex<Vec<Held>>,
}

/// One index the cache holds: its file, the file's size and modification time, the index.
type Held = (PathBuf, u64, Option<SystemTime>, Arc<LeakIndex>);

/// Most values the cache of one process holds (≈ 10 bytes each).
const CACHE_VALUES: usize = 128 << 20;

impl LeakCache {
    fn identity(path: &Path) -> Option<(u64, Option<SystemTime>)> {
        let m = std::fs::metadata(path).ok()?;
        Some((m.len(), m.modified().ok()))
    }

    fn get(&self, path: &Path) -> Option<Arc<LeakIndex>> {
        let (len, modified) = Self::identity(path)?;
        let held = self.held.lock().ok()?;
        held.iter()
            .find(|(p, l, m, _)| p == path && *l == len && *m == modified)
            .map(|(.., ix)| Arc::clone(ix))
    }

    fn put(&self, path: &Path, ix: &Arc<LeakIndex>) {
        let Some((len, modified)) = Self::identity(path) else {
            return;
        };
        let Ok(mut held) = self.held.lock() else {
            return;
        };
        held.retain(|(p, ..)| p != path);
        held.push((path.to_owned(), len, modified, Arc::clone(ix)));
        // The oldest go first once the bound is passed.
        while held.iter().map(|(.., ix)| ix.len()).sum::<usize>() > CACHE_VALUES && held.len() > 1 {
            held.remove(0);
        }
    }
}

/// The leak index of the values `policy` says to look for in dataset `dataset`, snapshot
/// `snapshot` held in the Parquet file `file`: from `cache` when this process read it already,
/// read back when this domain built it before, else built from the file and kept (at
/// registration, or at the first job that reads it); `None` when no column of it is at a leak
/// level.
pub fn leak_index(
    home: &Home,
    policy: &Policy,
    dataset: &str,
    snapshot: &Digest,
    file: &Path,
    cache: Option<&LeakCache>,
) -> Result<Option<Arc<LeakIndex>>, RuntimeError> {
    let columns = leak_columns(policy, dataset);
    if columns.is_empty() {
        return Ok(None);
    }
    let path = leak_index_path(home, snapshot, dataset, &columns);
    if let Some(ix) = cache.and_then(|c| c.get(&path)) {
        return Ok(Some(ix));
    }
    let key = LeakKey::derive(&home.domain_secret()?);
    if path.exists() {
        match LeakIndex::load(&key, &path, MAX_INDEX_FILE) {
            Ok(ix) => {
                let ix = Arc::new(ix);
                if let Some(c) = cache {
                    c.put(&path, &ix);
                }
                return Ok(Some(ix));
            }
            // A damaged or foreign file is rebuilt from the data (it is only a cache).
            Err(e) => tracing::warn!("rebuilding {}: {e}", path.display()),
        }
    }
    let ix = Arc::new(build(&key, dataset, file, &columns)?);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(index_error)?;
    }
    ix.save(&path).map_err(index_error)?;
    if let Some(c) = cache {
        c.put(&path, &ix);
    }
    Ok(Some(ix))
}

impl Domain {
    /// The evidence of a job's outputs: every dataset's leak index, then the checks.
    pub(crate) fn examine(
        &self,
        cache: &LeakCache,
        policy: &Policy,
        files: &[(Dataset, Snapshot)],
        outputs: &[Output],
        queries: &[QueryRecord],
    ) -> Vec<Evidence> {
        if outputs.is_empty() {
            return Vec::new();
        }
        let mut indexes = Vec::new();
        let mut missing = None;
        for (d, snap) in files {
            match leak_index(
                &self.home,
                policy,
                d.name.as_str(),
                &snap.digest,
                &snap.path,
                Some(cache),
            ) {
                Ok(Some(ix)) => indexes.push(ix),
                Ok(None) => {}
                Err(e) => missing = Some(format!("dataset `{}`: {e}", d.name)),
            }
        }
        let refs: Vec<&LeakIndex> = indexes.iter().map(|i| i.as_ref()).collect();
        let mut ev = examine(outputs, queries, &caps(policy), &refs);
        if let Some(why) = missing {
            for e in &mut ev {
                e.add(Finding {
                    check: Check::Leak,
                    verdict: Verdict::Block,
                    message: format!("the leak index could not be read or built ({why})"),
                });
            }
        }
        ev
    }
}

/// Builds the index of `columns` of the Parquet file at `path` (dataset `dataset`).
fn build(
    key: &LeakKey,
    dataset: &str,
    path: &std::path::Path,
    columns: &[String],
) -> Result<LeakIndex, RuntimeError> {
    let f = std::fs::File::open(path).map_err(index_error)?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f).map_err(index_error)?;
    let schema = b.schema().clone();
    let roots: Vec<usize> = columns
        .iter()
        .filter_map(|c| schema.index_of(c).ok())
        .collect();
    let mask = ProjectionMask::roots(b.parquet_schema(), roots);
    let reader = b
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(index_error)?;
    // Batch by batch: only the fingerprints of what was read are kept.
    let mut builder = LeakIndexBuilder::new(key);
    let mut collected: Vec<(String, ColumnValues)> = Vec::new();
    for batch in reader {
        let batch = batch.map_err(index_error)?;
        for (i, f) in batch.schema().fields().iter().enumerate() {
            let slot = match collected.iter().position(|(n, _)| n == f.name()) {
                Some(p) => p,
                None => {
                    let c = builder.column(&format!("{dataset}.{}", f.name()));
                    collected.push((f.name().clone(), c));
                    collected.len() - 1
                }
            };
            collected[slot]
                .1
                .add(batch.column(i).as_ref())
                .map_err(index_error)?;
        }
    }
    for (_, c) in collected {
        builder.add_values(c).map_err(index_error)?;
    }
    Ok(builder.finish())
}
