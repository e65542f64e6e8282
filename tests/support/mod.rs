//! Shared helpers of the integration tests and benchmarks: where the guests are (built once by
//! `build.rs`), sample data generated once per size without races, a shared engine, jobs run the
//! way the runtime runs them (in a domain of their own), and the command lines run as child
//! processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use enclave_core::{ApplicationId, EngineLimits, JobError, Limits, Params, TableName};
use enclave_runtime::{Domain, Engine, JobReport, PolicySource, RuntimeError, Submission};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The cargo target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// The example guests (Rust).
pub const EXAMPLES: &[&str] = &["sql-report", "income-by-district", "linear-model"];

/// The path of example guest `name` (built by `build.rs`).
pub fn example(name: &str) -> PathBuf {
    let path =
        Path::new(env!("ENCLAVE_GUEST_DIR")).join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.exists(),
        "{} missing (built by tests/build.rs)",
        path.display()
    );
    path
}

/// The bytes of example guest `name`.
pub fn example_bytes(name: &str) -> Vec<u8> {
    std::fs::read(example(name)).expect("guest module")
}

/// The C example guest, if clang could build it.
pub fn c_guest() -> Result<PathBuf, String> {
    let p = env!("ENCLAVE_C_GUEST");
    if p.is_empty() {
        return Err(
            "the C guest was not built: clang with the wasm32 target and wasm-ld (Debian: clang, lld) are needed"
                .into(),
        );
    }
    Ok(PathBuf::from(p))
}

/// Compiles WAT text to a Wasm binary.
pub fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid WAT")
}

/// A WAT file from `tests/wat/`.
pub fn wat_file(name: &str) -> Vec<u8> {
    wat::parse_file(root().join("tests/wat").join(name)).expect("valid WAT file")
}

/// A generated table (`datagen`) of `rows` rows, created once per (table, rows, seed, population)
/// and shared: generated under a unique temporary name and renamed into place, so threads and
/// processes never see a partial file.
pub fn table(name: &str, rows: u64, seed: u64, population: u64) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let dir = target_dir().join("enclave-test-data");
    std::fs::create_dir_all(&dir).expect("test data dir");
    let path = dir.join(format!("{name}-{rows}-{seed}-{population}.parquet"));
    let _held = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if !path.exists() {
        let tmp = tempfile::Builder::new()
            .prefix(".partial-")
            .suffix(".parquet")
            .tempfile_in(&dir)
            .expect("temporary file");
        enclave_datagen::generate(name, rows, seed, population, tmp.path(), |_| {})
            .expect("datagen");
        tmp.persist(&path).expect("rename test data");
    }
    path
}

/// A residents table of `rows` rows (seed 1).
pub fn residents(rows: u64) -> PathBuf {
    table("residents", rows, 1, 0)
}

/// An engine shared by the tests of this process (no module cache on disk).
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(EngineLimits::default(), None).expect("engine"))
}

/// The shipped default policy file.
pub fn default_policy_path() -> PathBuf {
    root().join("policies/default.toml")
}

/// Small limits for hostile modules.
pub fn tight_limits() -> Limits {
    Limits {
        fuel: 200_000_000,
        memory_bytes: 64 << 20,
        wall_clock_ms: 5_000,
        ..Limits::default()
    }
}

/// A job to run in a test.
#[derive(Debug, Clone)]
pub struct Job {
    /// The module.
    pub module: Vec<u8>,
    /// Tables: name and file.
    pub tables: Vec<(String, PathBuf)>,
    /// Parameters.
    pub params: Vec<(String, String)>,
    /// The policy (default: the open policy of the given files).
    pub policy: PolicySource,
    /// Limits.
    pub limits: Limits,
    /// Application.
    pub application: String,
    /// Query parallelism.
    pub partitions: Option<u32>,
}

impl Job {
    /// A job running `module` with default limits under the open policy.
    pub fn new(module: Vec<u8>) -> Job {
        Job {
            module,
            tables: vec![],
            params: vec![],
            policy: PolicySource::Open,
            limits: Limits::default(),
            application: "local".into(),
            partitions: None,
        }
    }

    /// Adds a table.
    pub fn table(mut self, name: &str, file: impl Into<PathBuf>) -> Job {
        self.tables.push((name.into(), file.into()));
        self
    }

    /// Adds a parameter.
    pub fn param(mut self, k: &str, v: &str) -> Job {
        self.params.push((k.into(), v.into()));
        self
    }

    /// Runs under the shipped default policy.
    pub fn default_policy(mut self) -> Job {
        self.policy = PolicySource::File(default_policy_path());
        self
    }

    /// The submission of this job.
    pub fn submission(&self) -> Submission {
        Submission {
            module: self.module.clone(),
            tables: self
                .tables
                .iter()
                .map(|(n, p)| (TableName::new(n).expect("table name"), p.clone()))
                .collect(),
            params: Params::new(self.params.clone()).expect("params"),
            limits: self.limits.clone(),
            policy: self.policy.clone(),
            application: ApplicationId::new(&self.application).expect("application"),
            seed: None,
            target_partitions: self.partitions,
            clock_ms: 0,
            sealed_by: None,
            released: Default::default(),
        }
    }

    /// Runs the job in `domain` (submit, authorize, run); a refusal before the run is `Err`.
    pub fn run_in(&self, domain: &Domain) -> Result<JobReport, RuntimeError> {
        let s = domain.submit(self.submission())?;
        let a = domain.authorize(s)?;
        domain.run(a, engine())
    }

    /// Runs the job in a fresh domain of its own.
    pub fn run(&self) -> JobReport {
        let (_dir, d) = temp_domain();
        match self.run_in(&d) {
            Ok(r) => r,
            Err(RuntimeError::Job(e)) => panic!("the job was refused before it ran: {e:?}"),
            Err(e) => panic!("the domain failed: {e}"),
        }
    }
}

/// A fresh domain in a temporary directory (kept as long as the `TempDir` lives).
pub fn temp_domain() -> (tempfile::TempDir, Domain) {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = Domain::open(dir.path(), "developer:test".into()).expect("domain");
    (dir, d)
}

/// The error of a failed report (panics on success, with the report).
pub fn err(r: &JobReport) -> &JobError {
    match &r.result {
        Err(e) => e,
        Ok(()) => panic!("expected the job to fail: {r:?}"),
    }
}

/// The environment variable that makes the test binary act as a command line.
pub const EXEC_AS: &str = "ENCLAVE_TEST_EXEC";

/// A command running `enclave` (this test binary, re-executed as the CLI) in domain `home`.
pub fn enclave_cmd(home: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("test binary"));
    c.env(EXEC_AS, "enclave").env("ENCLAVE_HOME", home);
    c
}

/// A command running the standalone `enclave-audit`.
pub fn enclave_audit_cmd() -> Command {
    let mut c = Command::new(std::env::current_exe().expect("test binary"));
    c.env(EXEC_AS, "enclave-audit");
    c
}

/// stdout as one JSON document (panics with both streams otherwise).
/// Runs the Python oracle `script` (under `tests/`) with `doc` on its standard input; its
/// output, once it exited successfully (`what` names the package to install otherwise).
pub fn python_oracle(script: &str, doc: &serde_json::Value, what: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("python3")
        .arg(root().join("tests").join(script))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 runs (install it, and `pip install {what}`): {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(doc.to_string().as_bytes())
        .expect("the oracle reads its input");
    let out = child.wait_with_output().expect("the oracle ends");
    assert!(
        out.status.success(),
        "{script} disagrees or failed (is `{what}` installed? `pip install {what}`):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Peak resident set of this process so far, in bytes (Linux), and a way to reset it.
pub mod rss {
    /// `VmHWM` of this process, in bytes (0 if unknown).
    pub fn peak() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024)
    }

    /// Resets the peak to the current resident set (Linux `clear_refs` 5).
    pub fn reset() {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }
}

/// Writes `batch` to `dir/name.parquet` (a table a test makes for itself).
pub fn write_parquet(
    dir: &Path,
    name: &str,
    batch: &datafusion::arrow::array::RecordBatch,
) -> PathBuf {
    let path = dir.join(format!("{name}.parquet"));
    let f = std::fs::File::create(&path).expect("parquet file");
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None)
        .expect("parquet writer");
    w.write(batch).expect("parquet write");
    w.close().expect("parquet close");
    path
}

/// A people table: `person_id` (`p` and `width` digits, one per row), `district`, `sex` and an
/// integer column `value` (its name), from `rows` (district, sex, value).
pub fn people_table(
    dir: &Path,
    rows: &[(String, String, i64)],
    value: &str,
    width: usize,
) -> PathBuf {
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("person_id", DataType::Utf8, false),
        Field::new("district", DataType::Utf8, false),
        Field::new("sex", DataType::Utf8, false),
        Field::new(value, DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            std::sync::Arc::new(StringArray::from(
                (0..rows.len())
                    .map(|i| format!("p{i:0width$}"))
                    .collect::<Vec<_>>(),
            )),
            std::sync::Arc::new(StringArray::from(
                rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
            )),
            std::sync::Arc::new(StringArray::from(
                rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
            )),
            std::sync::Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("people batch");
    write_parquet(dir, "people", &batch)
}
