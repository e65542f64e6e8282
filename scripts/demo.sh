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
# The dev profile builds dependencies optimized (see Cargo.toml) and shares its build with the tests.
cargo build -p enclave
cargo build --profile wasm --target wasm32-unknown-unknown -p sql-report -p income-by-district -p linear-model
ENCLAVE="$TARGET/debug/enclave"
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
echo "== under the domain policy (policies/default.toml): column rules, threshold, pseudonyms"
"$ENCLAVE" run --module "$WASM/sql_report.wasm" --table residents="$OUT/residents.parquet" \
  --policy policies/default.toml \
  --param sql="SELECT district, COUNT(*) AS residents, CAST(AVG(income) AS BIGINT) AS mean_income FROM residents GROUP BY district ORDER BY district"
echo
echo "== a refused query: income is L3 (aggregate only), as JSON"
"$ENCLAVE" run --module "$WASM/sql_report.wasm" --table residents="$OUT/residents.parquet" \
  --policy policies/default.toml --param sql="SELECT district, income FROM residents" --json || true

echo
echo "== a desensitized sample for developers"
"$ENCLAVE" sample --table residents="$OUT/residents.parquet" --policy policies/default.toml \
  --rows 1000 --seed 7 --out "$OUT/residents-sample.parquet"

echo
echo "== a refused statement (the SQL guard at work), as JSON"
"$ENCLAVE" run --module "$WASM/sql_report.wasm" --table residents="$OUT/residents.parquet" \
  --param sql="COPY residents TO '/tmp/leak.csv'" --json || true
