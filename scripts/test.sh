#!/usr/bin/env bash
# Runs every test of Enclave: formatting, lints (clippy runs as the compiler's wrapper during the
# test build, so dependencies are compiled once, not twice), unit and integration tests (which
# build the example guests for wasm32 and the C guest with clang), then each fuzz target for a few
# seconds (`scripts/fuzz.sh`; skipped when cargo-fuzz or nightly is missing — `.ci/run` installs
# them).
set -euo pipefail
cd "$(dirname "$0")/.."

GUESTS=(sql-report income-by-district linear-model)
EXCLUDE=()
for g in "${GUESTS[@]}"; do EXCLUDE+=(--exclude "$g"); done

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target list --installed | grep -q wasm32-unknown-unknown

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== build and lint every target (clippy -D warnings as the workspace's rustc wrapper)"
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)"
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
# --timings: target/cargo-timings/ shows where the build time goes.
cargo test --workspace "${EXCLUDE[@]}" --all-targets --no-run --timings
echo "== built in ${SECONDS} s"

echo "== tests"
cargo test --workspace "${EXCLUDE[@]}"

echo "== tests done at ${SECONDS} s"

./scripts/fuzz.sh
