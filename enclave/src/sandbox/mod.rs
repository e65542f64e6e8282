//! The wasmtime sandbox that runs jobs.
//!
//! Owns the engine configuration (deterministic, no threads, fuel, epochs, pooling allocator),
//! module admission (size, format, imports, exports), the compiled-module cache, and the life of
//! one job: instantiate, run `enclave_run` under its limits, collect outputs and logs, classify
//! how it ended. It must never let guest code reach anything but the `enclave_v1` ABI, and a
//! guest must never be able to panic, abort, hang or exhaust the host.

pub mod abi;
mod cache;
mod guest_mem;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig, Store,
    Trap,
};

use abi::HostState;
pub use abi::QueryRecord;
pub use abi::tape::{Divergence, Event, HostErr, SharedSink, Tape, TapeSink};
use cache::ModuleCache;
pub use cache::Prepared;

use crate::error::{ErrorKind, JobError, Limit};
use crate::limits::{EngineLimits, Limits};
use crate::outputs::Output;
use crate::query::{Dataset, Governance, JobSession, SessionLimits};

/// Epoch tick of the wall-clock watchdog.
const TICK: Duration = Duration::from_millis(10);
/// Native stack of a job thread beyond the Wasm stack (host calls, query planning).
const HOST_STACK: usize = 16 << 20;

/// What to run.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Job identifier (for reports and logs).
    pub job_id: String,
    /// Parameters the guest may read.
    pub params: BTreeMap<String, String>,
    /// Datasets granted to the job.
    pub datasets: Vec<Dataset>,
    /// Limits.
    pub limits: Limits,
    /// Seed of the guest's random stream.
    pub seed: [u8; 32],
    /// The job's logical time (ms since the Unix epoch) returned by `clock`.
    pub clock_ms: i64,
    /// Query engine parallelism.
    pub target_partitions: usize,
    /// Column rules and pseudonym key; `None` runs without a policy (trusted local data only).
    pub governance: Option<Governance>,
    /// Replay: take query results from these recorded events instead of running queries.
    pub replay: Option<Vec<abi::tape::Event>>,
    /// Live: stream the recorded host-call results here (else they are kept in the report).
    pub tape_sink: Option<abi::tape::SharedSink>,
}

impl JobSpec {
    /// A spec with default limits, a seed derived from module, parameters and datasets, and
    /// logical time zero.
    pub fn new(
        module_hash: &blake3::Hash,
        params: BTreeMap<String, String>,
        datasets: Vec<Dataset>,
    ) -> Self {
        let mut h = blake3::Hasher::new_derive_key("enclave v1 job seed");
        h.update(module_hash.as_bytes());
        for (k, v) in &params {
            h.update(&(k.len() as u64).to_le_bytes())
                .update(k.as_bytes());
            h.update(&(v.len() as u64).to_le_bytes())
                .update(v.as_bytes());
        }
        for d in &datasets {
            h.update(d.name.as_bytes()).update(&[0]);
        }
        let seed = *h.finalize().as_bytes();
        JobSpec {
            job_id: blake3::hash(&seed).to_hex()[..16].to_string(),
            params,
            datasets,
            limits: Limits::default(),
            seed,
            clock_ms: 0,
            target_partitions: SessionLimits::default().target_partitions,
            governance: None,
            replay: None,
            tape_sink: None,
        }
    }
}

/// How a job went.
#[derive(Debug, Serialize)]
pub struct JobReport {
    /// Job identifier.
    pub job_id: String,
    /// blake3 of the module, hex.
    pub module_blake3: String,
    /// `Ok` or the error that ended the job.
    #[serde(skip)]
    pub result: Result<(), JobError>,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Peak linear memory, bytes.
    pub memory_peak_bytes: u64,
    /// Wall-clock duration, ms.
    pub wall_ms: u64,
    /// Outputs emitted (still inside the domain).
    #[serde(skip)]
    pub outputs: Vec<Output>,
    /// Log lines.
    pub logs: Vec<String>,
    /// Queries run.
    pub queries: Vec<QueryRecord>,
    /// The recorded (or, in replay, the played-back) host-call results.
    #[serde(skip)]
    pub tape: Option<abi::tape::Tape>,
}

/// The sandbox: one engine, one linker, one module cache, one query runtime.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ModuleCache,
    limits: EngineLimits,
    runtime: tokio::runtime::Runtime,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

fn internal(what: &str) -> impl Fn(wasmtime::Error) -> JobError + '_ {
    move |e| JobError::internal(format!("{what}: {}", chain(&e)))
}

/// The error and its causes on one line.
fn chain(e: &wasmtime::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

impl Sandbox {
    /// A sandbox with the given engine-wide limits; with `cache_dir`, compiled modules persist.
    pub fn new(limits: EngineLimits, cache_dir: Option<PathBuf>) -> Result<Self, JobError> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(limits.concurrent_jobs)
            .total_memories(limits.concurrent_jobs)
            .total_tables(limits.concurrent_jobs)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .table_elements(Limits::default().table_elements as usize)
            .max_memory_size(usize::try_from(limits.max_memory_bytes).unwrap_or(usize::MAX));
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(limits.wasm_stack_bytes)
            .cranelift_nan_canonicalization(true)
            .relaxed_simd_deterministic(true)
            .wasm_shared_everything_threads(false)
            .wasm_memory64(false)
            .wasm_multi_memory(false)
            .wasm_stack_switching(false)
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(internal("engine configuration"))?;
        let mut linker = Linker::new(&engine);
        abi::add_to_linker(&mut linker).map_err(internal("linking the ABI"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("enclave-query")
            .enable_time()
            .build()
            .map_err(|e| JobError::internal(format!("query runtime: {e}")))?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (ticker_engine, stop) = (engine.clone(), Arc::clone(&stop_ticker));
        std::thread::Builder::new()
            .name("enclave-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| JobError::internal(format!("watchdog thread: {e}")))?;
        let cache = ModuleCache::new(&engine, cache_dir);
        Ok(Sandbox {
            engine,
            linker,
            cache,
            limits,
            runtime,
            stop_ticker,
        })
    }

    /// The query runtime (for callers that need to run DataFusion work next to jobs).
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// Admits a module: checks size and format, compiles (or loads from cache), checks imports
    /// and exports, links. Cached by blake3.
    pub fn prepare(&self, bytes: &[u8]) -> Result<Arc<Prepared>, JobError> {
        let hash = blake3::hash(bytes);
        if let Some(p) = self.cache.get(&hash) {
            return Ok(p);
        }
        let size = bytes.len() as u64;
        if size > self.limits.module_bytes {
            return Err(JobError::limit(
                Limit::ModuleBytes,
                size,
                self.limits.module_bytes,
            ));
        }
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {}
            Some([0, b'a', b's', b'm', ..]) => {
                return Err(JobError::new(
                    ErrorKind::InvalidModule,
                    "this is a Wasm component or an unknown Wasm version; jobs must be core Wasm modules (version 1)",
                ));
            }
            _ => {
                return Err(JobError::new(
                    ErrorKind::InvalidModule,
                    "not a WebAssembly binary (expected the `\\0asm` magic; text-format modules must be compiled first)",
                ));
            }
        }
        let module = match self.cache.load(&self.engine, &hash) {
            Some(m) => m,
            None => Module::new(&self.engine, bytes).map_err(|e| {
                JobError::new(
                    ErrorKind::InvalidModule,
                    format!("module rejected by the validator: {}", chain(&e)),
                )
            })?,
        };
        validate::check(&module)?;
        self.cache.store(&hash, &module);
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(internal("linking the module"))?;
        let prepared = Arc::new(Prepared { hash, pre });
        self.cache.insert(Arc::clone(&prepared));
        Ok(prepared)
    }

    /// Admits and runs a module.
    pub fn run(&self, module: &[u8], spec: JobSpec) -> JobReport {
        match self.prepare(module) {
            Ok(p) => self.run_prepared(&p, spec),
            Err(e) => JobReport {
                job_id: spec.job_id,
                module_blake3: blake3::hash(module).to_hex().to_string(),
                result: Err(e),
                fuel_used: 0,
                memory_peak_bytes: 0,
                wall_ms: 0,
                outputs: vec![],
                logs: vec![],
                queries: vec![],
                tape: None,
            },
        }
    }

    /// Runs a prepared module on its own thread; whatever the guest does, a report comes back.
    pub fn run_prepared(&self, prepared: &Arc<Prepared>, spec: JobSpec) -> JobReport {
        let started = Instant::now();
        let module_blake3 = prepared.hash.to_hex().to_string();
        let job_id = spec.job_id.clone();
        let failed = |e: JobError| JobReport {
            job_id: job_id.clone(),
            module_blake3: module_blake3.clone(),
            result: Err(e),
            fuel_used: 0,
            memory_peak_bytes: 0,
            wall_ms: started.elapsed().as_millis() as u64,
            outputs: vec![],
            logs: vec![],
            queries: vec![],
            tape: None,
        };
        let session = if spec.datasets.is_empty() || spec.replay.is_some() {
            None
        } else {
            let limits = SessionLimits {
                memory_bytes: spec.limits.query_memory_bytes,
                sql_bytes: spec.limits.sql_bytes,
                target_partitions: spec.target_partitions,
                ..SessionLimits::default()
            };
            let datasets = spec.datasets.clone();
            let governance = spec.governance.clone();
            let handle = self.runtime.handle().clone();
            // Built on a plain thread so `run` may be called from inside an async context too.
            let built = std::thread::scope(|s| {
                s.spawn(|| handle.block_on(JobSession::new(&datasets, limits, governance)))
                    .join()
            });
            match built {
                Ok(Ok(s)) => Some(Arc::new(s)),
                Ok(Err(e)) => return failed(e.to_job_error()),
                Err(_) => return failed(JobError::internal("opening the datasets panicked")),
            }
        };
        let engine = self.engine.clone();
        let pre = prepared.pre.clone();
        let runtime = self.runtime.handle().clone();
        let stack = self.limits.wasm_stack_bytes.saturating_add(HOST_STACK);
        let spawned = std::thread::Builder::new()
            .name(format!("enclave-job-{}", spec.job_id))
            .stack_size(stack)
            .spawn(move || execute(&engine, &pre, spec, session, runtime));
        let mut report = match spawned.map(|t| t.join()) {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => failed(JobError::internal(
                "the job thread panicked (host bug); the host is unaffected",
            )),
            Err(e) => failed(JobError::internal(format!(
                "cannot start the job thread: {e}"
            ))),
        };
        report.module_blake3 = module_blake3;
        report.wall_ms = started.elapsed().as_millis() as u64;
        report
    }
}

/// Instantiates and runs one job on the current thread.
fn execute(
    engine: &Engine,
    pre: &wasmtime::InstancePre<HostState>,
    spec: JobSpec,
    session: Option<Arc<JobSession>>,
    runtime: tokio::runtime::Handle,
) -> JobReport {
    let limits = spec.limits.clone();
    let tape = match spec.replay {
        Some(events) => Tape::replay(events),
        None => Tape::record(limits.transcript_bytes, spec.tape_sink),
    };
    let state = HostState::new(
        limits.clone(),
        spec.params,
        session,
        runtime,
        spec.seed,
        spec.clock_ms,
        tape,
    );
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    let result = (|| -> Result<(), wasmtime::Error> {
        store.set_fuel(limits.fuel)?;
        let ticks = limits
            .wall_clock_ms
            .div_ceil(TICK.as_millis() as u64)
            .max(1);
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let instance = pre.instantiate(&mut store)?;
        let run = instance.get_typed_func::<(), i32>(&mut store, "enclave_run")?;
        let status = run.call(&mut store, ())?;
        if status != 0 {
            return Err(wasmtime::Error::new(GuestStatus(status)));
        }
        Ok(())
    })();
    let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    let mut state = store.into_data();
    state.tape.close_sink();
    let result = result.map_err(|e| classify(e, &state, fuel_used, &limits));
    // Outputs of a failed job are dropped: nothing partial is kept.
    let outputs = if result.is_ok() {
        state.outputs
    } else {
        Vec::new()
    };
    JobReport {
        job_id: spec.job_id,
        module_blake3: String::new(),
        result,
        fuel_used,
        memory_peak_bytes: state.limiter.memory_peak,
        wall_ms: 0,
        outputs,
        logs: state.logs,
        queries: state.query_log,
        tape: Some(state.tape),
    }
}

/// `enclave_run` returned a non-zero status.
#[derive(Debug, thiserror::Error)]
#[error("enclave_run returned status {0}")]
struct GuestStatus(i32);

/// Turns whatever ended the job into a user-facing error.
fn classify(e: wasmtime::Error, state: &HostState, fuel_used: u64, limits: &Limits) -> JobError {
    let guest_said = state
        .guest_failure
        .as_deref()
        .map(|m| format!("; the guest reported: {m}"))
        .unwrap_or_default();
    if let Some(j) = e.downcast_ref::<JobError>() {
        return j.clone();
    }
    if let Some(GuestStatus(status)) = e.downcast_ref::<GuestStatus>() {
        // A failure after a refused or failed host call is classified by what the host refused.
        if let Some(host) = &state.first_host_error {
            let mut err = host.clone();
            // Add what the guest said unless it only repeats the host's message.
            if !state
                .guest_failure
                .as_deref()
                .is_some_and(|g| g.contains(&host.message))
            {
                err.message = format!("{}{}", host.message, guest_said);
            }
            return err;
        }
        let msg = state
            .guest_failure
            .clone()
            .unwrap_or_else(|| format!("enclave_run returned status {status}"));
        return JobError::new(ErrorKind::GuestFailed, format!("the job failed: {msg}"));
    }
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => JobError::limit(Limit::Fuel, fuel_used, limits.fuel),
            Trap::Interrupt => {
                JobError::limit(Limit::WallClock, state.elapsed_ms(), limits.wall_clock_ms)
            }
            Trap::StackOverflow => JobError {
                kind: ErrorKind::LimitExceeded,
                limit: Some(Limit::Stack),
                message:
                    "wasm stack limit reached: the call stack is exhausted (runaway recursion?)"
                        .into(),
            },
            other => JobError::new(
                ErrorKind::Trap,
                format!("the guest trapped: {other}{guest_said}"),
            ),
        };
    }
    // Instantiation failures (e.g. pool exhausted) and anything unforeseen.
    let text = chain(&e);
    if text.contains("pooling allocator") || text.contains("concurrent") {
        return JobError::internal(format!("no instance slot available: {text}"));
    }
    JobError::new(
        ErrorKind::Trap,
        format!("the guest failed: {text}{guest_said}"),
    )
}
