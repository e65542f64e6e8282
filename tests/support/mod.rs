//! Shared helpers of the integration tests: building the example guests to Wasm, generating
//! sample data once, and a sandbox with test-sized limits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use enclave::query::Dataset;
use enclave::{EngineLimits, JobReport, JobSpec, Limits, Sandbox};

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

/// The example guests.
pub const EXAMPLES: &[&str] = &["sql-report", "income-by-district", "linear-model"];

/// Builds every example guest for wasm32-unknown-unknown (once per test process) and returns
/// the path of `name`'s module.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(root()).args([
            "build",
            "--quiet",
            "--profile",
            "wasm",
            "--target",
            "wasm32-unknown-unknown",
        ]);
        for e in EXAMPLES {
            cmd.args(["-p", e]);
        }
        let status = cmd.status().expect("cargo runs");
        assert!(
            status.success(),
            "building the example guests failed (is the wasm32-unknown-unknown target installed?)"
        );
    });
    let path = target_dir()
        .join("wasm32-unknown-unknown/wasm")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(path.exists(), "{} missing", path.display());
    path
}

/// A residents table of `rows` rows (seed 1), generated once per size.
pub fn residents(rows: u64) -> PathBuf {
    let dir = target_dir().join("enclave-test-data");
    std::fs::create_dir_all(&dir).expect("test data dir");
    let path = dir.join(format!("residents-{rows}.parquet"));
    if !path.exists() {
        // Generate under a unique name, then rename: test processes may race.
        let tmp = dir.join(format!("residents-{rows}.{}.parquet", std::process::id()));
        enclave::datagen::generate("residents", rows, 1, 0, &tmp, |_| {}).expect("datagen");
        std::fs::rename(&tmp, &path).expect("rename test data");
    }
    path
}

/// A sandbox with default engine limits and no disk cache.
pub fn sandbox() -> Sandbox {
    Sandbox::new(EngineLimits::default(), None).expect("sandbox")
}

/// Compiles WAT text to a Wasm binary.
pub fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid WAT")
}

/// A WAT file from `tests/wat/`.
pub fn wat_file(name: &str) -> Vec<u8> {
    wat::parse_file(root().join("tests/wat").join(name)).expect("valid WAT file")
}

/// A job spec over `datasets` with `params`.
pub fn spec(module: &[u8], params: &[(&str, &str)], datasets: Vec<Dataset>) -> JobSpec {
    let params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    JobSpec::new(&blake3::hash(module), params, datasets)
}

/// `spec` with small limits, for hostile modules.
pub fn tight(mut s: JobSpec) -> JobSpec {
    s.limits = Limits {
        fuel: 200_000_000,
        memory_bytes: 64 << 20,
        wall_clock_ms: 5_000,
        ..Limits::default()
    };
    s
}

/// The residents dataset of `rows` rows.
pub fn residents_ds(rows: u64) -> Dataset {
    Dataset::new("residents", residents(rows)).expect("dataset")
}

/// The error of a failed report (panics on success, with the report).
pub fn err(r: &JobReport) -> &enclave::JobError {
    match &r.result {
        Err(e) => e,
        Ok(()) => panic!("expected the job to fail: {r:?}"),
    }
}

/// The `enclave` binary (built once per test process with the test profile).
pub fn enclave_bin() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(root())
            .args(["build", "--quiet", "-p", "enclave", "--bin", "enclave"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the enclave binary failed");
    });
    target_dir().join("debug").join("enclave")
}

/// A command running the `enclave` binary in a fresh domain directory of its own.
pub fn enclave_cmd() -> Command {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let home = target_dir().join("enclave-test-homes").join(format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&home);
    let mut cmd = Command::new(enclave_bin());
    cmd.env("ENCLAVE_HOME", home);
    cmd
}

/// The shipped default policy.
pub fn default_policy() -> std::sync::Arc<enclave::policy::Policy> {
    std::sync::Arc::new(
        enclave::policy::Policy::load(&root().join("policies/default.toml"))
            .expect("default policy"),
    )
}

/// Governance under the default policy for application `app`.
pub fn governance(app: &str) -> enclave::query::Governance {
    enclave::query::Governance {
        policy: default_policy(),
        pseudonym_key: enclave::policy::functions::pseudonym_key(&[42; 32], app),
    }
}
