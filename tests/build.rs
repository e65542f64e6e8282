//! Builds the guests the tests run, once per change, not from inside tests: the Rust example jobs
//! (`cargo build --profile wasm --target wasm32-unknown-unknown`, in a target directory of their
//! own so the outer build's lock is not contended) and the C example job (clang for wasm32, when
//! clang is installed; `.ci/run` installs it). Tells the tests where they are through
//! `ENCLAVE_GUEST_DIR` and `ENCLAVE_C_GUEST`.

use std::path::{Path, PathBuf};
use std::process::Command;

const GUESTS: &[&str] = &["sql-report", "income-by-district", "linear-model"];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf();
    for dir in ["guest-sdk", "examples", "enclave/abi"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    println!("cargo:rerun-if-env-changed=RUSTC_WORKSPACE_WRAPPER");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let guest_target = target.join("guests");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--profile",
            "wasm",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .arg("--target-dir")
        .arg(&guest_target);
    for g in GUESTS {
        cmd.args(["-p", g]);
    }
    // The outer build's settings are for the host; the guests use the workspace's own
    // (`.cargo/config.toml` enables simd128 for wasm32). A clippy wrapper (scripts/test.sh) is
    // kept: the guests are linted as they are built.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("cargo runs");
    assert!(
        status.success(),
        "building the example guests failed (is the wasm32-unknown-unknown target installed? \
         `rustup target add wasm32-unknown-unknown`)"
    );
    let wasm_dir = guest_target.join("wasm32-unknown-unknown").join("wasm");
    println!("cargo:rustc-env=ENCLAVE_GUEST_DIR={}", wasm_dir.display());
    let c_out = build_c_guest(
        &root.join("examples/c/count.c"),
        &root.join("enclave/abi/include"),
        &guest_target,
    );
    println!(
        "cargo:rustc-env=ENCLAVE_C_GUEST={}",
        c_out.map(|p| p.display().to_string()).unwrap_or_default()
    );
}

/// Compiles the C job with clang for wasm32 (freestanding, no libc). `None` when clang or its
/// wasm linker is not installed; the C-guest test then fails with that reason.
fn build_c_guest(source: &Path, include: &Path, target: &Path) -> Option<PathBuf> {
    let out = target.join("count.wasm");
    let clang = std::env::var_os("ENCLAVE_CLANG").unwrap_or_else(|| "clang".into());
    let status = Command::new(clang)
        .args([
            "--target=wasm32-unknown-unknown",
            "-O2",
            "-nostdlib",
            "-ffreestanding",
            "-fno-builtin",
            "-Wall",
            "-Werror",
            "-Wl,--no-entry",
        ])
        .arg("-I")
        .arg(include)
        .arg("-o")
        .arg(&out)
        .arg(source)
        .status();
    match status {
        Ok(s) if s.success() => Some(out),
        _ => None,
    }
}
