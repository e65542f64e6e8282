//! The trust boundary: the auditor's crate builds without the runtime. Its dependency tree must
//! never contain wasmtime, DataFusion, arrow or the `enclave` crate.

#[test]
fn the_verifier_depends_on_neither_wasmtime_nor_datafusion() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "-p",
            "enclave-audit",
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("ring v0.17"), "{tree}");
    for line in tree.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        assert!(
            !(name.starts_with("wasmtime")
                || name.starts_with("cranelift")
                || name.starts_with("datafusion")
                || name.starts_with("arrow")
                || name.starts_with("parquet")
                || name == "enclave"),
            "the verifier must not depend on {name}"
        );
    }
}
