#!/usr/bin/env bash
# Runs each fuzz target (tests/fuzz) for ENCLAVE_FUZZ_SECONDS (default 5) seconds, from its seed
# corpus; new inputs go to a temporary directory. Needs a nightly toolchain and cargo-fuzz
# (`rustup toolchain install nightly --profile minimal; cargo install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${ENCLAVE_FUZZ_SECONDS:-5}"
if [ "$SECONDS_EACH" = 0 ]; then
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== fuzz targets skipped: cargo +nightly fuzz is not installed"
  exit 0
fi
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
echo "== fuzz targets (${SECONDS_EACH} s each)"
for t in output_ipc policy_parser log_entry transcript governance_input witness_request difference_cells; do
  work="$(mktemp -d)"
  # libFuzzer refuses a corpus directory that does not exist (git keeps no empty directories).
  mkdir -p "tests/fuzz/corpus/$t"
  # --dev: a debug build (overflow checks on) compiles in a fraction of the time; a few seconds
  # of fuzzing per target is a smoke test of every parser, run on every CI run.
  cargo +nightly fuzz run --dev --fuzz-dir tests/fuzz "$t" "$work" "tests/fuzz/corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048
  rm -rf "$work"
done
