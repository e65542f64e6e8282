#!/usr/bin/env bash
# The demo domain on embedded defaults: builds Enclave and the example jobs, generates sample
# tables, and runs each example in the sandbox, printing what a developer sees.
#   ROWS=1000000 ./scripts/demo.sh     # a larger sample
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-100000}"
OUT="${DEMO_DIR:-target/demo}"
TARGET="${CARGO_TARGET_DIR:-target}"

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
echo "== building enclave and the example jobs"
cargo build --release -p enclave
cargo build --profile wasm --target wasm32-unknown-unknown -p sql-report -p income-by-district -p linear-model
ENCLAVE="$TARGET/release/enclave"
WASM="$TARGET/wasm32-unknown-unknown/wasm"
mkdir -p "$OUT"

echo "== generating sample data ($ROWS residents)"
"$ENCLAVE" datagen residents --rows "$ROWS" --seed 42 --out "$OUT/residents.parquet"

echo
echo "== sql-report: residents per age band"
"$ENCLAVE" run --module "$WASM/sql_report.wasm" --table residents="$OUT/residents.parquet" \
  --param sql="SELECT age_band, COUNT(*) AS residents, CAST(AVG(income) AS BIGINT) AS mean_income FROM residents GROUP BY age_band ORDER BY age_band"

echo
echo "== income-by-district"
"$ENCLAVE" run --module "$WASM/income_by_district.wasm" --table residents="$OUT/residents.parquet"

echo
echo "== linear-model: income ~ age + age² (rows streamed into the guest, only coefficients leave)"
"$ENCLAVE" run --module "$WASM/linear_model.wasm" --table residents="$OUT/residents.parquet"

echo
echo "== a refused query (the SQL guard at work), as JSON"
"$ENCLAVE" run --module "$WASM/sql_report.wasm" --table residents="$OUT/residents.parquet" \
  --param sql="COPY residents TO '/tmp/leak.csv'" --json || true
