//! The wasmtime sandbox that runs jobs.
//!
//! Owns the engine configuration (deterministic, no threads, fuel, epochs, pooling allocator),
//! module admission (size, format, imports, exports), the compiled-module cache, and the life of
//! one job: instantiate, run `enclave_run` under its limits with its queries going to a
//! [`QueryHost`] and its outputs to an [`OutputSink`], collect logs, classify how it ended. It
//! knows no query engine: what answers a query — the live query host, a recording of it, or a
//! replay — is the caller's choice. It must never let guest code reach anything but the
//! `enclave_v1` ABI, and a guest must never be able to panic, abort, hang or exhaust the host.

// Containment of host-side panics (a bug reached by a hostile job must end that job, not the
// process) relies on unwinding.
#[cfg(not(panic = "unwind"))]
compile_error!(
    "enclave-sandbox contains host panics with catch_unwind: build with panic = \"unwind\""
);

mod abi;
mod cache;
mod guest_mem;
mod validate;

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use enclave_core::{
    Digest, EngineLimits, ErrorKind, JobError, JobId, Limit, Limits, OutputSink, Params, QueryHost,
    Seed,
};
use serde::Serialize;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig, Store,
    Trap,
};

pub use abi::{BYTE_FUEL, CALL_FUEL, OPEN_FUEL, OUTPUT_BYTE_FUEL, RANDOM_BYTE_FUEL};
use abi::{HostState, Start};
use cache::ModuleCache;
pub use cache::{DiskCache, Prepared};

/// Epoch tick of the wall-clock watchdog.
const TICK: Duration = Duration::from_millis(10);
/// Native stack of a job thread beyond the Wasm stack (host calls, query planning).
const HOST_STACK: usize = 32 << 20;

/// What a job runs with, besides its module and its hosts.
#[derive(Debug, Clone)]
pub struct JobInputs {
    /// The job.
    pub job: JobId,
    /// Parameters the guest may read.
    pub params: Params,
    /// Seed of the guest's random stream.
    pub seed: Seed,
    /// The job's logical time (ms since the Unix epoch) returned by `clock`.
    pub clock_ms: i64,
    /// Limits.
    pub limits: Limits,
}

/// How a run went (outputs went to the sink; queries are the host's to report).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The job.
    pub job: JobId,
    /// blake3 of the module.
    pub module: Digest,
    /// `Ok` or the error that ended the job.
    #[serde(skip)]
    pub result: Result<(), JobError>,
    /// Fuel consumed (Wasm instructions and host calls).
    pub fuel_used: u64,
    /// Peak linear memory, bytes.
    pub memory_peak_bytes: u64,
    /// Wall-clock duration, ms.
    pub wall_ms: u64,
    /// Log lines.
    pub logs: Vec<String>,
    /// Host calls made.
    pub host_calls: u64,
}

/// A finished run: its report and the hosts, handed back.
pub struct Finished<Q, O> {
    /// The report.
    pub report: RunReport,
    /// The query host.
    pub queries: Q,
    /// The output sink.
    pub outputs: O,
}

/// The sandbox: one engine, one linker, one module cache.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ModuleCache,
    limits: EngineLimits,
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
    /// A sandbox with the given engine-wide limits; with `cache`, compiled modules persist on
    /// disk, authenticated by the cache key.
    pub fn new(limits: EngineLimits, cache: Option<DiskCache>) -> Result<Self, JobError> {
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
        let cache = ModuleCache::new(&engine, cache);
        Ok(Sandbox {
            engine,
            linker,
            cache,
            limits,
            stop_ticker,
        })
    }

    /// The engine-wide limits.
    pub fn limits(&self) -> &EngineLimits {
        &self.limits
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

    /// Runs a prepared module on a thread of its own, its queries answered by `queries` and its
    /// outputs taken by `outputs`. Whatever the guest does, a report comes back with both hosts;
    /// only a host bug that kills the job thread outside its containment loses them (`Err`, with
    /// a report of the internal error).
    pub fn run<Q, O>(
        &self,
        prepared: &Arc<Prepared>,
        inputs: JobInputs,
        queries: Q,
        outputs: O,
    ) -> Result<Finished<Q, O>, Box<RunReport>>
    where
        Q: QueryHost + 'static,
        O: OutputSink + 'static,
    {
        let started = Instant::now();
        let engine = self.engine.clone();
        let pre = prepared.pre.clone();
        let module = Digest(*prepared.hash.as_bytes());
        let job = inputs.job;
        let stack = self.limits.wasm_stack_bytes.saturating_add(HOST_STACK);
        let start = Start {
            limits: inputs.limits.clone(),
            params: inputs.params,
            seed: inputs.seed.0,
            clock_ms: inputs.clock_ms,
            queries: Box::new(queries),
            outputs: Box::new(outputs),
        };
        let limits = inputs.limits;
        // Everything the job thread needs is moved in and comes back out, whatever happens.
        let slot: Arc<std::sync::Mutex<Option<Executed>>> = Arc::new(std::sync::Mutex::new(None));
        let out = Arc::clone(&slot);
        let spawned = std::thread::Builder::new()
            .name(format!("enclave-job-{job}"))
            .stack_size(stack)
            .spawn(move || {
                let done = execute(&engine, &pre, start, &limits);
                if let Ok(mut s) = out.lock() {
                    *s = Some(done);
                }
            });
        let joined = match spawned {
            Ok(t) => t.join().map_err(|_| ()),
            Err(_) => Err(()),
        };
        let done = slot.lock().ok().and_then(|mut s| s.take());
        let wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let lost = |what: &str| {
            Box::new(RunReport {
                job,
                module,
                result: Err(JobError::internal(format!(
                    "{what} (host bug); the host is unaffected"
                ))),
                fuel_used: 0,
                memory_peak_bytes: 0,
                wall_ms,
                logs: vec![],
                host_calls: 0,
            })
        };
        match (joined, done) {
            (Ok(()), Some((state, result, fuel_used))) => {
                let report = RunReport {
                    job,
                    module,
                    result,
                    fuel_used,
                    memory_peak_bytes: state.limiter.memory_peak,
                    wall_ms,
                    logs: state.logs,
                    host_calls: state.host_calls,
                };
                let queries = downcast::<Q>(state.queries as Box<dyn Any>);
                let outputs = downcast::<O>(state.outputs as Box<dyn Any>);
                match (queries, outputs) {
                    (Some(queries), Some(outputs)) => Ok(Finished {
                        report,
                        queries,
                        outputs,
                    }),
                    _ => Err(lost("the job's hosts came back with another type")),
                }
            }
            _ => Err(lost(
                "the job thread could not start or died outside its containment",
            )),
        }
    }
}

fn downcast<T: 'static>(b: Box<dyn Any>) -> Option<T> {
    b.downcast::<T>().ok().map(|b| *b)
}

/// What a job thread hands back: its host state, the outcome and the fuel used.
type Executed = (HostState, Result<(), JobError>, u64);

/// Instantiates and runs one job on the current thread; returns the host state, the outcome and
/// the fuel used. A panic inside (a host bug reached by the job) ends the job as an internal
/// error; the process goes on.
fn execute(
    engine: &Engine,
    pre: &wasmtime::InstancePre<HostState>,
    start: Start,
    limits: &Limits,
) -> Executed {
    let mut store = Store::new(engine, HostState::new(start));
    store.limiter(|s| &mut s.limiter);
    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<(), wasmtime::Error> {
        store.set_fuel(limits.fuel)?;
        let ticks = limits
            .wall_clock_ms
            .div_ceil(TICK.as_millis() as u64)
            .max(1);
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let instance = pre.instantiate(&mut store)?;
        let run = instance.get_typed_func::<(), i32>(&mut store, enclave_abi::ENTRY)?;
        let status = run.call(&mut store, ())?;
        if status != 0 {
            return Err(wasmtime::Error::new(GuestStatus(status)));
        }
        Ok(())
    }));
    let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    let state = store.into_data();
    let result = match ran {
        Ok(r) => r.map_err(|e| classify(e, &state, fuel_used, limits)),
        Err(_) => Err(JobError::internal(
            "a host function panicked (host bug); the job was stopped, the host is unaffected",
        )),
    };
    (state, result, fuel_used)
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
