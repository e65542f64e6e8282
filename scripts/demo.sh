#!/usr/bin/env bash
# The demo domain on embedded defaults: builds Enclave and the example jobs, generates sample
# tables, and runs each example in the sandbox, printing what a developer sees.
#   ROWS=1000000 ./scripts/demo.sh     # a larger sample
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-100000}"
OUT="${DEMO_DIR:-target/demo}"
TARGET="${CARGO_TARGET_DIR:-target}"
# The demo's own domain directory (log, keys, transcripts); set ENCLAVE_HOME to use another.
export ENCLAVE_HOME="${ENCLAVE_HOME:-$OUT/home}"

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
echo "== building enclave and the example jobs"
# The dev profile builds dependencies optimized (see Cargo.toml) and shares its build with the
# tests (the same package selection, so the same features: nothing is compiled twice).
cargo build --workspace --exclude sql-report --exclude income-by-district --exclude linear-model --bins
cargo build --profile wasm --target wasm32-unknown-unknown -p sql-report -p income-by-district -p linear-model
ENCLAVE="$TARGET/debug/enclave"
WASM="$TARGET/wasm32-unknown-unknown/wasm"
mkdir -p "$OUT"

echo "== generating sample data ($ROWS residents)"
"$ENCLAVE" datagen residents --rows "$ROWS" --seed 42 --out "$OUT/residents.parquet"

echo
echo "== a domain with its parties (governance on the embedded SQLite store, $ENCLAVE_HOME)"
if [ -e "$ENCLAVE_HOME/governance.db" ]; then
  echo "(initialized by an earlier run: remove $ENCLAVE_HOME for a fresh domain)"
else
  day() { date -u -d "$1 days" +%F; }
  AUTHORITY=$("$ENCLAVE" init --home "$ENCLAVE_HOME" --authority city-data-bureau --admin alice)
  ENCLAVE_TOKEN=$AUTHORITY "$ENCLAVE" org register --kind operator city-operator
  ENCLAVE_TOKEN=$AUTHORITY "$ENCLAVE" user add --org city-operator --role operator-admin olga
  OPERATOR=$(ENCLAVE_TOKEN=$AUTHORITY "$ENCLAVE" token issue olga)
  ENCLAVE_TOKEN=$AUTHORITY "$ENCLAVE" agreement operation --operator city-operator \
    --datasets residents,hospital_visits,traffic_records --start "$(day -1)" --end "$(day 1000)" >/dev/null
  ENCLAVE_TOKEN=$OPERATOR "$ENCLAVE" org register --kind developer acme-analytics
  ENCLAVE_TOKEN=$OPERATOR "$ENCLAVE" user add --org acme-analytics --role developer dev
  ENCLAVE_TOKEN=$OPERATOR "$ENCLAVE" user add --org city-operator --role reviewer rita
  DEV=$(ENCLAVE_TOKEN=$OPERATOR "$ENCLAVE" token issue dev)
  REVIEWER=$(ENCLAVE_TOKEN=$OPERATOR "$ENCLAVE" token issue rita)
  ENCLAVE_TOKEN=$OPERATOR "$ENCLAVE" agreement development --developer acme-analytics \
    --datasets residents --start "$(day 0)" --end "$(day 365)" >/dev/null
  ENCLAVE_TOKEN=$OPERATOR "$ENCLAVE" catalog register residents "$OUT/residents.parquet"
  echo "-- the development catalog, as a developer sees it (no values):"
  ENCLAVE_TOKEN=$DEV "$ENCLAVE" catalog list
  echo "-- a four-year agreement is refused:"
  ENCLAVE_TOKEN=$OPERATOR "$ENCLAVE" agreement development --developer acme-analytics \
    --datasets residents --start "$(day 0)" --end "$(day 1500)" || true
  APP=$(ENCLAVE_TOKEN=$DEV "$ENCLAVE" application submit --scenario "income by district" \
    --purpose "housing subsidy planning" --columns "residents:district,income,name" \
    --start "$(day 0)" --end "$(day 90)" --measures "aggregates only; outputs reviewed")
  echo "-- the developer cannot approve its own application:"
  ENCLAVE_TOKEN=$DEV "$ENCLAVE" application approve "$APP" || true
  ENCLAVE_TOKEN=$REVIEWER "$ENCLAVE" application approve "$APP" --columns "residents:district,income"
  ENCLAVE_TOKEN=$DEV "$ENCLAVE" application show "$APP"
  echo "-- the job under the application: the registered snapshot, the policy narrowed to the grant"
  ENCLAVE_TOKEN=$DEV "$ENCLAVE" run --module "$WASM/sql_report.wasm" --application "$APP" --table residents \
    --param sql="SELECT district, COUNT(*) AS residents, AVG(income) AS mean_income FROM residents GROUP BY district ORDER BY district"
  echo "-- name was requested but not approved:"
  ENCLAVE_TOKEN=$DEV "$ENCLAVE" run --module "$WASM/sql_report.wasm" --application "$APP" --table residents \
    --param sql="SELECT name FROM residents LIMIT 1" || true
  echo "-- two jobs queued, run by the operator's worker pool, on the record:"
  for band in 1 2; do
    ENCLAVE_TOKEN=$DEV "$ENCLAVE" run --module "$WASM/sql_report.wasm" --application "$APP" --table residents \
      --detach --param sql="SELECT district, COUNT(*) AS n FROM residents GROUP BY district"
  done
  ENCLAVE_TOKEN=$OPERATOR "$ENCLAVE" jobs work --workers 2
  ENCLAVE_TOKEN=$DEV "$ENCLAVE" jobs list
  echo "-- product review: the outputs wait in quarantine; the developer cannot read them yet:"
  ENCLAVE_TOKEN=$REVIEWER "$ENCLAVE" output list --state pending
  ENCLAVE_TOKEN=$DEV "$ENCLAVE" output download out-1 --out "$OUT/out-1.arrow" || true
  ENCLAVE_TOKEN=$REVIEWER "$ENCLAVE" output preview out-1 --rows 5
  ENCLAVE_TOKEN=$REVIEWER "$ENCLAVE" output approve out-1 --affirm all
  echo "-- released to the developer with a receipt signed by the domain, checked offline:"
  ENCLAVE_TOKEN=$DEV "$ENCLAVE" output download out-1 --out "$OUT/out-1.arrow"
  "$ENCLAVE" receipt verify "$OUT/out-1.arrow.receipt" --key "$ENCLAVE_HOME/log.pub" --output "$OUT/out-1.arrow"
  "$TARGET/debug/enclave-audit" receipt "$OUT/out-1.arrow.receipt" --key "$ENCLAVE_HOME/log.pub" \
    --output "$OUT/out-1.arrow"
  ENCLAVE_TOKEN=$DEV "$ENCLAVE" product publish out-1 --kind report --title "Residents and mean income by district" \
    --description "Counts and noised mean income per district" --source "residents, registered by the operator"
  ENCLAVE_TOKEN=$REVIEWER "$ENCLAVE" product list
  echo "-- the data authority's witness cosigns the log's checkpoint (C2SP tlog-witness):"
  "$ENCLAVE" witness init --dir "$OUT/authority-witness" --name data-authority.example/witness \
    --log-key "$ENCLAVE_HOME/log.pub" >/dev/null
  "$ENCLAVE" audit witness-request --out "$OUT/witness-request.txt"
  "$ENCLAVE" witness cosign --dir "$OUT/authority-witness" --request "$OUT/witness-request.txt" \
    --out "$OUT/cosigned.note"
  "$ENCLAVE" audit cosigned "$OUT/cosigned.note" --witness-key "$OUT/authority-witness/witness.pub"
  "$TARGET/debug/enclave-audit" verify --log "$ENCLAVE_HOME/audit/log.jsonl" --key "$ENCLAVE_HOME/log.pub" \
    --witness "$OUT/authority-witness/witness.pub" --cosigned "$ENCLAVE_HOME/audit/cosigned.note"
  echo "-- a second entity is terminated: its tokens fail, its key (and with it its sealed data) is destroyed:"
  ENCLAVE_TOKEN=$OPERATOR "$ENCLAVE" org register --kind developer short-lived-lab
  ENCLAVE_TOKEN=$OPERATOR "$ENCLAVE" user add --org short-lived-lab --role developer sam
  SAM=$(ENCLAVE_TOKEN=$OPERATOR "$ENCLAVE" token issue sam)
  ENCLAVE_TOKEN=$OPERATOR "$ENCLAVE" org terminate short-lived-lab --reason "early exit"
  ENCLAVE_TOKEN=$SAM "$ENCLAVE" token whoami || true
  ENCLAVE_TOKEN=$OPERATOR "$ENCLAVE" retention --dry-run
fi



echo
echo "== sql-report: residents per age band (no --policy: the explicit open policy of your own files)"
"$ENCLAVE" run --module "$WASM/sql_report.wasm" --table residents="$OUT/residents.parquet" \
  --param sql="SELECT age_band, COUNT(*) AS residents, CAST(AVG(income) AS BIGINT) AS mean_income FROM residents GROUP BY age_band ORDER BY age_band"

echo
echo "== income-by-district"
"$ENCLAVE" run --module "$WASM/income_by_district.wasm" --table residents="$OUT/residents.parquet"

echo
echo "== linear-model: income ~ age + age² (rows streamed into the guest, only coefficients leave)"
"$ENCLAVE" run --module "$WASM/linear_model.wasm" --table residents="$OUT/residents.parquet" | tee "$OUT/linear-model.txt"
JOB="$(sed -n 's/^job \([0-9a-f]*\):.*/\1/p' "$OUT/linear-model.txt" | head -1)"

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

echo
echo "== the audit log: every run above is on the record ($ENCLAVE_HOME)"
"$ENCLAVE" audit verify
echo
echo "== replay the linear-model job $JOB from its sealed transcript, and re-derive its query"
"$ENCLAVE" audit replay "$JOB" --rederive
echo
echo "== an auditor's proof that entry 0 is in the log, checked by the standalone verifier"
"$ENCLAVE" audit prove --entry 0 --out "$OUT/proof.json"
"$ENCLAVE" audit export "$OUT/export" >/dev/null
"$TARGET/debug/enclave-audit" check-proof "$OUT/proof.json" --key "$OUT/export/log.pub"
"$TARGET/debug/enclave-audit" verify --log "$OUT/export/log.jsonl" --key "$OUT/export/log.pub"
