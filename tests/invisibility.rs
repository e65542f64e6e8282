//! Invisibility that holds, beyond the SQL cases of `slt/invisibility.slt`: what a job receives
//! holds exactly its result's rows; noised answers lie within their documented error; budgets
//! are spent, kept across jobs and refused when exhausted; Enclave's mechanisms agree with
//! OpenDP's (`dp/opendp_check.py`, the `opendp` Python package).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int32Type;
use enclave_core::{ApplicationId, CallCtx, ErrorKind, QueryHost, TableName};
use enclave_dp::{Cost, Mechanism, Noise, NoiseRng, Share};
use enclave_policy::{Policy, open_policy_text};
use enclave_query::{Dataset, JobSession, LiveHost, SessionLimits};
use enclave_runtime::PolicySource;
use enclave_runtime::report::rows_json;
use enclave_tests::*;

fn read(path: &std::path::Path) -> RecordBatch {
    let f = std::fs::File::open(path).unwrap();
    let r = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .with_batch_size(1 << 20)
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = r.map(|b| b.unwrap()).collect();
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// The IPC bytes the guest would receive for `sql` under the open policy of `residents`.
fn received(sql: &str, table: &std::path::Path) -> Vec<u8> {
    let names = vec![TableName::new("residents").unwrap()];
    let columns: Vec<String> = enclave_datagen::schema_of("residents")
        .unwrap()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let policy =
        Arc::new(Policy::parse("open", &open_policy_text(&[(names[0].clone(), columns)])).unwrap());
    let auth = policy
        .authorize(&names, &ApplicationId::new("t").unwrap(), &[3; 32])
        .unwrap();
    let ds = vec![Dataset::new("residents", table).unwrap()];
    let session = engine()
        .queries
        .block_on(JobSession::new(&ds, SessionLimits::default(), auth))
        .unwrap();
    let mut host = LiveHost::new(Arc::new(session), engine().queries.handle().clone());
    let ctx = CallCtx::new(Instant::now(), 60_000);
    host.open(&ctx, 1, sql).unwrap();
    let mut bytes = Vec::new();
    loop {
        let m = host.next(&ctx, 1).unwrap();
        if m.is_empty() {
            break;
        }
        bytes.extend_from_slice(&m);
    }
    bytes
}

fn results_hold_exactly_their_rows() {
    let table = residents(5000);
    let all = read(&table);
    let ages = all
        .column_by_name("age")
        .unwrap()
        .as_primitive::<Int32Type>();
    let phones = all.column_by_name("phone").unwrap().as_string::<i32>();
    // A filter keeps a few rows of each batch: the sliced string column must not carry the
    // phones of the rows it dropped.
    let bytes = received("SELECT phone FROM residents WHERE age = 37", &table);
    let text = String::from_utf8_lossy(&bytes);
    let (mut kept, mut others) = (0, 0);
    for i in 0..all.num_rows() {
        if ages.value(i) == 37 {
            kept += 1;
            assert!(text.contains(phones.value(i)), "a result row is missing");
        } else {
            others += 1;
            assert!(
                !text.contains(phones.value(i)),
                "the bytes sent to the guest hold the phone of a row the filter removed"
            );
        }
    }
    assert!(kept > 10 && others > 4000, "{kept} {others}");
    // The same after a LIMIT (a slice of the first batch).
    let bytes = received("SELECT phone FROM residents LIMIT 3", &table);
    let text = String::from_utf8_lossy(&bytes);
    let hits = (0..all.num_rows())
        .filter(|&i| text.contains(phones.value(i)))
        .count();
    assert_eq!(hits, 3);
}

fn policy_with(dp: &str) -> PolicySource {
    let text = std::fs::read_to_string(default_policy_path()).unwrap();
    let start = text.find("[dp]").unwrap();
    let end = text.find("[levels]").unwrap();
    PolicySource::Text {
        name: "test policy".into(),
        text: format!("{}{dp}\n{}", &text[..start], &text[end..]),
    }
}

fn run_sql(
    d: &enclave_runtime::Domain,
    sql: &str,
    policy: PolicySource,
    table: &std::path::Path,
) -> enclave_runtime::JobReport {
    let mut j = Job::new(example_bytes("sql-report"))
        .param("sql", sql)
        .table("residents", table);
    j.policy = policy;
    j.application = "dp-test".into();
    j.run_in(d).unwrap()
}

fn noised_answers_lie_within_their_documented_error() {
    let (_dir, d) = temp_domain();
    let table = residents(20_000);
    let all = read(&table);
    // Exact answers.
    let mut exact: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let district = all.column_by_name("district").unwrap().as_string::<i32>();
    let income = all
        .column_by_name("income")
        .unwrap()
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    for i in 0..all.num_rows() {
        let e = exact.entry(district.value(i).to_owned()).or_default();
        e.0 += 1;
        e.1 += income.value(i).clamp(0, 500_000);
    }
    let sql = "SELECT district, COUNT(*) AS n, SUM(income) AS s FROM residents GROUP BY district ORDER BY district";
    let a = run_sql(&d, sql, PolicySource::File(default_policy_path()), &table);
    assert!(a.result.is_ok(), "{:?}", a.result);
    let dp = a.queries[0].dp.as_ref().expect("the query was noised");
    assert_eq!(dp.mechanism, "laplace");
    assert_eq!(dp.statistics, 1, "COUNT(*) is exact, SUM(income) noised");
    // ε = 1 for one statistic of sensitivity 500,000: b = 500,000.
    assert!((dp.noise[0].scale - 500_000.0).abs() < 1e-6, "{dp:?}");
    assert!((dp.noise[0].error95 - 500_000.0 * 20f64.ln()).abs() < 1e-3);
    assert!((dp.budget[0].spent_epsilon - 1.0).abs() < 1e-12);
    let rows = rows_json(&a.outputs[0]).unwrap();
    assert_eq!(rows.len(), 9);
    let b = dp.noise[0].scale;
    let mut moved = 0;
    for r in &rows {
        let (n, s) = exact[r["district"].as_str().unwrap()];
        assert_eq!(r["n"].as_i64().unwrap(), n, "COUNT(*) is exact");
        let err = (r["s"].as_i64().unwrap() - s).abs() as f64;
        // P(|Laplace(b)| > b·ln(10⁶)) = 10⁻⁶ per group.
        assert!(err <= b * 1e6f64.ln(), "error {err} for scale {b}");
        moved += usize::from(err > 0.0);
    }
    assert!(moved >= 8, "noise was added");
    // Another job, another noise key: other answers.
    let again = run_sql(&d, sql, PolicySource::File(default_policy_path()), &table);
    assert_ne!(rows_json(&again.outputs[0]).unwrap(), rows);
    // The ledger kept both: the second query's report shows 2 of 20 spent.
    let dp2 = again.queries[0].dp.as_ref().unwrap();
    assert!((dp2.budget[0].spent_epsilon - 2.0).abs() < 1e-9, "{dp2:?}");
    assert!((dp2.budget[0].left_epsilon - 18.0).abs() < 1e-9);
    // Averages: within the documented error of the mean (noised sum over noised count).
    let m = run_sql(
        &d,
        "SELECT district, AVG(income) AS m FROM residents GROUP BY district",
        PolicySource::File(default_policy_path()),
        &table,
    );
    assert!(m.result.is_ok(), "{:?}", m.result);
    let dpm = m.queries[0].dp.as_ref().unwrap();
    assert_eq!(dpm.statistics, 2);
    for r in rows_json(&m.outputs[0]).unwrap() {
        let (n, s) = exact[r["district"].as_str().unwrap()];
        let mean = r["m"].as_f64().unwrap();
        let (bs, bc) = (dpm.noise[0].scale, dpm.noise[1].scale);
        // |Δmean| ≲ (|Δsum| + mean·|Δcount|) / (n − |Δcount|), each at 10⁻⁶.
        let (es, ec) = (bs * 1e6f64.ln(), bc * 1e6f64.ln());
        let bound = (es + (s as f64 / n as f64) * ec) / (n as f64 - ec);
        assert!(
            (mean - s as f64 / n as f64).abs() <= bound,
            "{mean} vs {}",
            s as f64 / n as f64
        );
        assert!((0.0..=500_000.0).contains(&mean));
    }
}

fn budgets_are_kept_and_exhausted_queries_refused() {
    let (_dir, d) = temp_domain();
    let table = residents(2000);
    let policy =
        policy_with("[dp]\nrequire = [\"L3\"]\nepsilon = 1.0\n[dp.budget]\nepsilon = 2.5\n");
    let sql = "SELECT district, SUM(income) AS s FROM residents GROUP BY district";
    for i in 0..2 {
        let r = run_sql(&d, sql, policy.clone(), &table);
        assert!(r.result.is_ok(), "query {i}: {:?}", r.result);
    }
    let r = run_sql(&d, sql, policy.clone(), &table);
    let e = r.result.unwrap_err();
    assert_eq!(e.kind, ErrorKind::PolicyViolation, "{e:?}");
    assert!(
        e.message.contains("privacy budget exhausted"),
        "{}",
        e.message
    );
    assert!(r.outputs.is_empty());
    // Exact queries (no L3 column) still run: they spend nothing.
    let r = run_sql(
        &d,
        "SELECT sex, COUNT(*) AS n FROM residents GROUP BY sex",
        policy.clone(),
        &table,
    );
    assert!(r.result.is_ok(), "{:?}", r.result);
    assert!(r.queries[0].dp.is_none());
    // Another application has its own budget.
    let mut j = Job::new(example_bytes("sql-report"))
        .param("sql", sql)
        .table("residents", &table);
    j.policy = policy;
    j.application = "other-app".into();
    assert!(j.run_in(&d).unwrap().result.is_ok());
}

fn gaussian_noise_and_contribution_bounds() {
    // Visits have many rows per subject: the host aggregates per subject first (clamped),
    // keeps one group per subject, and adds Gaussian noise.
    let (_dir, d) = temp_domain();
    let dir = tempfile::tempdir().unwrap();
    let visits = dir.path().join("v.parquet");
    enclave_datagen::generate("hospital_visits", 20_000, 1, 2000, &visits, |_| {}).unwrap();
    let text = std::fs::read_to_string(default_policy_path())
        .unwrap()
        .replace("mechanism = \"laplace\"", "mechanism = \"gaussian\"");
    let mut j = Job::new(example_bytes("sql-report"))
        .param(
            "sql",
            "SELECT department, COUNT(*) AS visits, AVG(cost) AS mean_cost FROM hospital_visits GROUP BY department",
        )
        .table("hospital_visits", &visits);
    j.policy = PolicySource::Text {
        name: "gaussian".into(),
        text,
    };
    let r = j.run_in(&d).unwrap();
    assert!(r.result.is_ok(), "{:?}", r.result);
    let dp = r.queries[0].dp.as_ref().unwrap();
    assert_eq!(dp.mechanism, "gaussian");
    assert_eq!(dp.statistics, 2);
    for row in rows_json(&r.outputs[0]).unwrap() {
        let m = row["mean_cost"].as_f64().unwrap();
        assert!((0.0..=20_000.0).contains(&m), "{row}");
    }
}

/// What the registry keeps of `file`'s snapshot about column `column`: unique or not, if known.
fn unique_fact(d: &enclave_runtime::Domain, file: &std::path::Path, column: &str) -> Option<bool> {
    let snap = d.home.snapshots().unwrap().snapshot(file).unwrap();
    let meta: serde_json::Value = serde_json::from_str(snap.meta.as_deref()?).unwrap();
    meta["unique"][column].as_bool()
}

/// Whether each subject has one row is counted exactly, once per snapshot, and kept with it; a
/// file with repeated subjects is known as such, and its subjects are counted distinctly.
fn subject_uniqueness_is_counted_once_per_snapshot() {
    let (_dir, d) = temp_domain();
    let table = residents(3000);
    let sql = "SELECT district, COUNT(*) AS n, AVG(age) AS a FROM residents GROUP BY district ORDER BY district";
    let policy = || PolicySource::File(default_policy_path());
    assert_eq!(unique_fact(&d, &table, "resident_id"), None);
    let a = run_sql(&d, sql, policy(), &table);
    assert!(a.result.is_ok(), "{:?}", a.result);
    assert_eq!(unique_fact(&d, &table, "resident_id"), Some(true));
    let registry = d.home.root().join("datasets/snapshots.jsonl");
    let lines = std::fs::read_to_string(&registry).unwrap().lines().count();
    // A later job uses the fact (same plan, same answers) and learns nothing new.
    let b = run_sql(&d, sql, policy(), &table);
    assert_eq!(a.queries[0].plan, b.queries[0].plan);
    assert_eq!(
        rows_json(&a.outputs[0]).unwrap(),
        rows_json(&b.outputs[0]).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(&registry).unwrap().lines().count(),
        lines
    );

    // Every resident twice: another snapshot, not unique; the threshold counts subjects, not
    // rows (each district's group has as many subjects as before).
    let all = read(&table);
    let dir = tempfile::tempdir().unwrap();
    let twice = dir.path().join("twice.parquet");
    let f = std::fs::File::create(&twice).unwrap();
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(f, all.schema(), None).unwrap();
    w.write(&all).unwrap();
    w.write(&all).unwrap();
    w.close().unwrap();
    let c = run_sql(&d, sql, policy(), &twice);
    assert!(c.result.is_ok(), "{:?}", c.result);
    assert_eq!(unique_fact(&d, &twice, "resident_id"), Some(false));
    assert_ne!(
        a.queries[0].plan, c.queries[0].plan,
        "subjects counted distinctly"
    );
    let (ra, rc) = (
        rows_json(&a.outputs[0]).unwrap(),
        rows_json(&c.outputs[0]).unwrap(),
    );
    assert_eq!(ra.len(), rc.len());
    for (x, y) in ra.iter().zip(&rc) {
        assert_eq!(x["district"], y["district"]);
        assert_eq!(2 * x["n"].as_i64().unwrap(), y["n"].as_i64().unwrap());
    }
    // The first file's fact is untouched.
    assert_eq!(unique_fact(&d, &table, "resident_id"), Some(true));
}

/// Enclave's calibration and draws, and OpenDP's verdict on them.
fn mechanisms_agree_with_opendp() {
    let mut laplace = Vec::new();
    for (sens, eps) in [(1.0, 1.0), (500_000.0, 0.25), (3.0, 0.1)] {
        let n = Noise::laplace(sens, eps).unwrap();
        laplace.push(serde_json::json!({"sensitivity": sens, "epsilon": eps, "scale": n.scale}));
    }
    let mut gaussian = Vec::new();
    for (sens, eps, delta) in [(1.0, 1.0, 1e-6), (10.0, 0.5, 1e-7), (2.0, 4.0, 1e-5)] {
        let cost = Cost::new(eps, delta).unwrap();
        let share = Share::new(Mechanism::Gaussian, cost, 1).unwrap();
        let n = share.noise(sens, sens).unwrap();
        let rho = cost.rho().unwrap();
        gaussian.push(serde_json::json!({
            "sensitivity": sens, "sigma": n.scale, "rho": rho, "delta": delta,
            "epsilon": Cost::from_rho(rho, delta).epsilon,
        }));
    }
    let mut samples = Vec::new();
    for (mech, scale) in [("laplace", 3.0), ("laplace", 40.0), ("gaussian", 5.0)] {
        let noise = match mech {
            "laplace" => Noise::laplace(scale, 1.0).unwrap(),
            _ => Noise::gaussian(scale, 0.5).unwrap(),
        };
        let mut rng = NoiseRng::new(&[7; 32], mech.as_bytes());
        let values: Vec<i64> = (0..20_000).map(|_| noise.add_int(&mut rng, 0)).collect();
        samples
            .push(serde_json::json!({"mechanism": mech, "scale": noise.scale, "values": values}));
    }
    let doc = serde_json::json!({"laplace": laplace, "gaussian": gaussian, "samples": samples});
    python_oracle("dp/opendp_check.py", &doc, "opendp");
}

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        results_hold_exactly_their_rows,
        noised_answers_lie_within_their_documented_error,
        budgets_are_kept_and_exhausted_queries_refused,
        gaussian_noise_and_contribution_bounds,
        mechanisms_agree_with_opendp,
        subject_uniqueness_is_counted_once_per_snapshot,
    ]
}
