//! The live query host: the sandbox's [`QueryHost`] over a [`JobSession`].
//!
//! Owns the query runtime (tokio worker threads with stacks large enough for bounded expression
//! trees) and each open query of a job: its result stream, the IPC writer that turns batches
//! into the messages a guest reads (in wire form: plain types, compact buffers), the count of
//! suppressed groups, and the [`QueryRecord`] of what it did. Every blocking step stops at the
//! job's deadline. It must never block past the deadline, and never send a message built from
//! anything but the checked query's result.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::execution::SendableRecordBatchStream;
use enclave_abi::ErrorCode;
use enclave_core::{
    CallCtx, DatasetBudget, Digest, HostError, JobError, Message, NoiseNote, QueryDp, QueryHost,
    QueryRecord,
};
use futures::StreamExt;

use crate::QueryError;
use crate::guard::classify_exec_error;
use crate::session::JobSession;
use enclave_egress::wire::{compact_batch, wire_schema};

/// Native stack of each query worker thread: planning recursion is bounded by the SQL complexity
/// limit, and DataFusion grows deeper recursions on the heap (`recursive_protection`).
const WORKER_STACK: usize = 16 << 20;

/// The runtime queries execute on: one per process, shared by every job.
pub struct QueryRuntime {
    runtime: tokio::runtime::Runtime,
}

impl QueryRuntime {
    /// A multi-threaded runtime with one worker per core.
    pub fn new() -> Result<QueryRuntime, QueryError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("enclave-query")
            .thread_stack_size(WORKER_STACK)
            .enable_time()
            .build()
            .map_err(|e| QueryError::Internal(format!("query runtime: {e}")))?;
        Ok(QueryRuntime { runtime })
    }

    /// A handle to spawn on or block on.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime.handle()
    }

    /// Runs `f` to completion from a plain thread (never from inside this runtime).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

struct LiveQuery {
    /// `None` only while a step runs on the query runtime (or after one missed the deadline).
    stream: Option<SendableRecordBatchStream>,
    suppressed: Arc<AtomicU64>,
    /// Groups suppressed for dominance, groups kept with dominance undefined.
    dominated: [Arc<AtomicU64>; 2],
    /// Noised: the suppressed count is not shown at all.
    noised: bool,
    wire: SchemaRef,
    writer: StreamWriter<Vec<u8>>,
    record: usize,
    done: bool,
    /// The result batches of an aggregate query or of one over open columns only, kept (up to
    /// [`CERTIFIED_CELLS`] and [`CERTIFIED_BYTES`]) to recognize outputs equal to it; `None` for
    /// other queries or once too large.
    kept: Option<Vec<RecordBatch>>,
    kept_cells: u64,
    kept_bytes: u64,
}

/// Most cells of a result kept to recognize an output equal to it.
pub const CERTIFIED_CELLS: u64 = 1 << 22;
/// Most bytes (in memory) of a result kept to recognize an output equal to it.
pub const CERTIFIED_BYTES: u64 = 64 << 20;

/// The live [`QueryHost`] of one job.
pub struct LiveHost {
    session: Arc<JobSession>,
    runtime: tokio::runtime::Handle,
    open: BTreeMap<i32, LiveQuery>,
    records: Vec<QueryRecord>,
}

impl Drop for LiveHost {
    /// The job is over: whatever of its queries still runs on the shared runtime stops.
    fn drop(&mut self) {
        self.session.cancel();
    }
}

impl LiveHost {
    /// A host answering from `session`, executing on `runtime`.
    pub fn new(session: Arc<JobSession>, runtime: tokio::runtime::Handle) -> LiveHost {
        LiveHost {
            session,
            runtime,
            open: BTreeMap::new(),
            records: Vec::new(),
        }
    }

    fn memory_limit(&self) -> u64 {
        self.session.limits().memory_bytes
    }

    fn refuse(&mut self, record: usize, e: &QueryError) -> HostError {
        let error = e.to_job_error();
        if let Some(r) = self.records.get_mut(record) {
            r.error = Some(error.clone());
        }
        let code = if e.is_refusal() {
            ErrorCode::Refused
        } else {
            ErrorCode::Failed
        };
        HostError::refused(code, error)
    }

    fn query(&mut self, handle: i32) -> Result<&mut LiveQuery, HostError> {
        self.open.get_mut(&handle).ok_or_else(|| {
            HostError::Fatal(JobError::internal(format!(
                "query handle {handle} is not open in the query host"
            )))
        })
    }
}

/// Groups suppressed, as a job may learn it: rounded down to a multiple of
/// [`SUPPRESSED_STEP`] (whether one small group exists is not an oracle), and never under
/// differential privacy (0).
fn shown_suppressed(q: &LiveQuery) -> u64 {
    if q.noised {
        return 0;
    }
    let n = q.suppressed.load(Ordering::Relaxed);
    n - n % SUPPRESSED_STEP
}

/// Groups suppressed for dominance, shown as [`shown_suppressed`] shows the others.
fn shown_dominated(q: &LiveQuery) -> u64 {
    if q.noised {
        return 0;
    }
    let n = q.dominated[0].load(Ordering::Relaxed);
    n - n % SUPPRESSED_STEP
}

/// The granularity of the suppressed-group count a job sees.
pub const SUPPRESSED_STEP: u64 = 10;

fn ipc_error(e: datafusion::arrow::error::ArrowError) -> HostError {
    HostError::Fatal(JobError::internal(format!("IPC encoding: {e}")))
}

impl QueryHost for LiveHost {
    fn open(&mut self, ctx: &CallCtx, handle: i32, sql: &str) -> Result<(), HostError> {
        self.records.push(QueryRecord::new(sql));
        let record = self.records.len() - 1;
        let session = Arc::clone(&self.session);
        // Planned on the query runtime, awaited with the job's own deadline (see `next`).
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let owned = sql.to_owned();
        let task = self.runtime.spawn(async move {
            let _ = tx.send(session.open(&owned).await);
        });
        let opened = rx.recv_timeout(ctx.remaining()).inspect_err(|e| {
            task.abort();
            if *e == RecvTimeoutError::Timeout {
                self.session.cancel();
            }
        });
        let started = match opened {
            Err(RecvTimeoutError::Timeout) => return Err(HostError::Fatal(ctx.wall_clock_error())),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(HostError::Fatal(JobError::internal(
                    "the planning task ended without a result",
                )));
            }
            Ok(Err(e)) => return Err(self.refuse(record, &e)),
            Ok(Ok(s)) => s,
        };
        let wire = wire_schema(&started.stream.schema());
        let writer = StreamWriter::try_new(Vec::new(), &wire).map_err(ipc_error)?;
        if let Some(r) = self.records.get_mut(record) {
            r.plan = Some(Digest(started.plan_blake3));
            r.row_level_grant = started.row_level_grant;
            r.aggregate = started.aggregate;
            r.grouped = started.grouped;
            r.dominance_checked = started.dominance;
            r.differenced_groups = started.differenced;
            r.dp = started.dp.as_ref().map(|d| QueryDp {
                mechanism: d.mechanism.to_owned(),
                epsilon: d.epsilon,
                delta: d.delta,
                statistics: d.statistics as u64,
                budget: d
                    .datasets
                    .iter()
                    .map(|(name, b)| DatasetBudget {
                        dataset: name.clone(),
                        spent_epsilon: b.spent.epsilon,
                        spent_delta: b.spent.delta,
                        left_epsilon: b.left.epsilon,
                        left_delta: b.left.delta,
                    })
                    .collect(),
                noise: d
                    .noise
                    .iter()
                    .map(|(statistic, scale, error95)| NoiseNote {
                        statistic: statistic.clone(),
                        scale: *scale,
                        error95: *error95,
                    })
                    .collect(),
            });
        }
        self.open.insert(
            handle,
            LiveQuery {
                stream: Some(started.stream),
                suppressed: started.suppressed,
                dominated: started.dominated,
                noised: started.dp.is_some(),
                // Grammar results certify outputs; results over open columns only name them.
                kept: (started.aggregate || !started.row_level_grant).then(Vec::new),
                kept_cells: 0,
                kept_bytes: 0,
                wire,
                writer,
                record,
                done: false,
            },
        );
        Ok(())
    }

    fn next(&mut self, ctx: &CallCtx, handle: i32) -> Result<Message, HostError> {
        let memory_limit = self.memory_limit();
        let runtime = self.runtime.clone();
        let session = Arc::clone(&self.session);
        let q = self.query(handle)?;
        let buffered = std::mem::take(q.writer.get_mut());
        if !buffered.is_empty() {
            let (record, n) = (q.record, buffered.len() as u64);
            if let Some(r) = self.records.get_mut(record) {
                r.bytes += n;
            }
            return Ok(Arc::new(buffered));
        }
        if q.done {
            return Ok(Arc::new(Vec::new()));
        }
        // The step runs on the query runtime; the job thread waits with a deadline of its own.
        // A timer of the runtime would not do: when every worker is inside an operator that does
        // not yield (a cross join concatenating strings), the runtime's timers do not fire.
        let Some(mut stream) = q.stream.take() else {
            return Err(HostError::Fatal(ctx.wall_clock_error()));
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let task = runtime.spawn(async move {
            let item = stream.next().await;
            let _ = tx.send((item, stream));
        });
        let step = match rx.recv_timeout(ctx.remaining()) {
            Ok((item, stream)) => {
                q.stream = Some(stream);
                Ok(item)
            }
            Err(e) => {
                task.abort();
                if e == RecvTimeoutError::Timeout {
                    session.cancel();
                }
                Err(e)
            }
        };
        let mut certified = None;
        let rows = match step {
            Err(RecvTimeoutError::Timeout) => return Err(HostError::Fatal(ctx.wall_clock_error())),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(HostError::Fatal(JobError::internal(
                    "the query task ended without a result",
                )));
            }
            Ok(Some(Ok(batch))) => {
                let batch = compact_batch(&batch, &q.wire).map_err(ipc_error)?;
                q.writer.write(&batch).map_err(ipc_error)?;
                if let Some(kept) = &mut q.kept {
                    let cells =
                        (batch.num_rows() as u64).saturating_mul(batch.num_columns().max(1) as u64);
                    q.kept_cells = q.kept_cells.saturating_add(cells);
                    q.kept_bytes = q
                        .kept_bytes
                        .saturating_add(batch.get_array_memory_size() as u64);
                    if q.kept_cells > CERTIFIED_CELLS || q.kept_bytes > CERTIFIED_BYTES {
                        q.kept = None;
                    } else {
                        kept.push(batch.clone());
                    }
                }
                batch.num_rows() as u64
            }
            Ok(Some(Err(e))) => {
                q.done = true;
                let record = q.record;
                let e = classify_exec_error(memory_limit)(e);
                return Err(self.refuse(record, &e));
            }
            Ok(None) => {
                q.writer.finish().map_err(ipc_error)?;
                q.done = true;
                if let Some(kept) = q.kept.take() {
                    certified = Some(
                        enclave_egress::table_digest(&q.wire, &kept)
                            .map_err(|e| HostError::Fatal(JobError::internal(e)))?,
                    );
                }
                0
            }
        };
        let msg = std::mem::take(q.writer.get_mut());
        let (record, suppressed, dominated) = (q.record, shown_suppressed(q), shown_dominated(q));
        let undefined = q.dominated[1].load(Ordering::Relaxed) > 0;
        if let Some(r) = self.records.get_mut(record) {
            r.rows += rows;
            r.batches += u64::from(rows > 0);
            r.bytes += msg.len() as u64;
            r.suppressed_groups = suppressed;
            r.dominated_groups = dominated;
            r.dominance_undefined = undefined;
            if certified.is_some() {
                r.result = certified;
            }
        }
        Ok(Arc::new(msg))
    }

    fn suppressed(&mut self, _ctx: &CallCtx, handle: i32) -> Result<i64, HostError> {
        let q = self.query(handle)?;
        Ok(i64::try_from(shown_suppressed(q)).unwrap_or(i64::MAX))
    }

    fn close(&mut self, handle: i32) {
        self.open.remove(&handle);
    }

    fn records(&self) -> Vec<QueryRecord> {
        self.records.clone()
    }
}
