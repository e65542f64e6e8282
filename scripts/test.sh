#!/usr/bin/env bash
# Runs every test of Enclave: formatting, lints, unit and integration tests (which build the
# example guests to wasm32-unknown-unknown and run them in the sandbox).
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target list --installed | grep -q wasm32-unknown-unknown

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== build the example guests (wasm32-unknown-unknown)"
cargo build --profile wasm --target wasm32-unknown-unknown \
  -p sql-report -p income-by-district -p linear-model

echo "== clippy (host and guests)"
cargo clippy --workspace --exclude sql-report --exclude income-by-district --exclude linear-model \
  --all-targets -- -D warnings
cargo clippy --target wasm32-unknown-unknown -p enclave-guest \
  -p sql-report -p income-by-district -p linear-model -- -D warnings

echo "== tests"
cargo test --workspace --exclude sql-report --exclude income-by-district --exclude linear-model
