//! Column rules, the group threshold, pseudonyms and samples, end to end through the sandbox.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Int64Type, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use enclave::ErrorKind;
use enclave::query::Dataset;
use enclave_tests::*;

fn sql_report(sql: &str, datasets: Vec<Dataset>, app: &str) -> enclave::JobReport {
    let m = std::fs::read(example("sql-report")).unwrap();
    let mut s = spec(&m, &[("sql", sql)], datasets);
    s.governance = Some(governance(app));
    sandbox().run(&m, s)
}

fn read(path: &std::path::Path) -> RecordBatch {
    let f = std::fs::File::open(path).unwrap();
    let r = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = r.map(|b| b.unwrap()).collect();
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

#[test]
fn restricted_columns_are_refused_through_the_sandbox() {
    let r = sql_report(
        "SELECT district, income FROM residents",
        vec![residents_ds(2000)],
        "app",
    );
    let e = err(&r);
    assert_eq!(e.kind, ErrorKind::PolicyViolation, "{e:?}");
    assert!(
        e.message.contains("residents.income")
            && e.message.contains("L3")
            && e.message.contains("plaintext"),
        "{}",
        e.message
    );
    let r = sql_report(
        "SELECT district, AVG(income) AS m FROM residents GROUP BY district ORDER BY district",
        vec![residents_ds(2000)],
        "app",
    );
    assert!(r.result.is_ok(), "{:?}", r.result);
    assert_eq!(r.outputs[0].rows, 9);
}

/// Visits where group A has 30 rows from 3 subjects, B 12 subjects, C exactly 10, D 9.
fn visits_fixture(dir: &std::path::Path) -> Dataset {
    let mut rid = Vec::new();
    let mut diag = Vec::new();
    for s in 0..3 {
        for _ in 0..10 {
            rid.push(format!("A{s:02}"));
            diag.push("A");
        }
    }
    for (g, n) in [("B", 12), ("C", 10), ("D", 9)] {
        for s in 0..n {
            rid.push(format!("{g}{s:02}"));
            diag.push(g);
        }
    }
    let n = rid.len();
    let schema = enclave::datagen::schema_of("hospital_visits").unwrap();
    let cols: Vec<Arc<dyn Array>> = schema
        .fields()
        .iter()
        .map(|f| -> Arc<dyn Array> {
            match f.name().as_str() {
                "resident_id" => Arc::new(StringArray::from(rid.clone())),
                "diagnosis" => Arc::new(StringArray::from(diag.clone())),
                _ => datafusion::arrow::array::new_null_array(f.data_type(), n),
            }
        })
        .collect();
    let nullable = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(nullable.clone(), cols).unwrap();
    let path = dir.join("visits.parquet");
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), nullable, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    Dataset::new("hospital_visits", path).unwrap()
}

#[test]
fn group_threshold_counts_subjects_not_rows() {
    let dir = tempfile::tempdir().unwrap();
    let ds = visits_fixture(dir.path());
    let r = sql_report(
        "SELECT diagnosis, COUNT(*) AS visits FROM hospital_visits GROUP BY diagnosis ORDER BY diagnosis",
        vec![ds.clone()],
        "app",
    );
    assert!(r.result.is_ok(), "{:?}", r.result);
    let rows = r.outputs[0].rows_json().unwrap();
    let shown: Vec<&str> = rows
        .iter()
        .map(|v| v["diagnosis"].as_str().unwrap())
        .collect();
    // A has 30 rows but 3 subjects: suppressed. D has 9 subjects: suppressed. C has exactly k.
    assert_eq!(shown, vec!["B", "C"]);
    assert_eq!(r.queries[0].suppressed_groups, 2);
    assert!(
        r.logs.iter().any(|l| l.contains("2 groups suppressed")),
        "{:?}",
        r.logs
    );
    // Through a CTE that drops the subject column, the host threads it back in.
    let r = sql_report(
        "WITH t AS (SELECT diagnosis FROM hospital_visits) SELECT diagnosis, COUNT(*) AS n FROM t GROUP BY diagnosis",
        vec![ds.clone()],
        "app",
    );
    assert!(r.result.is_ok(), "{:?}", r.result);
    assert_eq!(r.outputs[0].rows, 2);
    // An aggregate over an aggregate: each inner group already has ≥ k subjects.
    let r = sql_report(
        "SELECT COUNT(*) AS groups FROM (SELECT diagnosis, COUNT(*) AS n FROM hospital_visits GROUP BY diagnosis)",
        vec![ds],
        "app",
    );
    assert!(r.result.is_ok(), "{:?}", r.result);
    assert_eq!(r.outputs[0].rows_json().unwrap()[0]["groups"], 2);
}

#[test]
fn pseudonyms_are_stable_within_and_differ_across_applications() {
    // (ORDER BY a pseudonym would be a comparison, which the rule does not allow.)
    let q = "SELECT resident_id FROM residents LIMIT 5";
    let a1 = sql_report(q, vec![residents_ds(2000)], "app-1");
    let a2 = sql_report(q, vec![residents_ds(2000)], "app-1");
    let b = sql_report(q, vec![residents_ds(2000)], "app-2");
    assert!(a1.result.is_ok(), "{:?}", a1.result);
    let ids = |r: &enclave::JobReport| -> Vec<String> {
        let mut v: Vec<String> = r.outputs[0]
            .rows_json()
            .unwrap()
            .iter()
            .map(|v| v["resident_id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&a1), ids(&a2));
    assert_ne!(ids(&a1), ids(&b));
    for id in ids(&a1) {
        assert_eq!(id.len(), 32, "{id}");
        assert!(!enclave::datagen::is_valid_resident_id(&id));
    }
    // Joins on pseudonyms still work: both tables are pseudonymized with the same key.
    let dir = tempfile::tempdir().unwrap();
    let visits = dir.path().join("v.parquet");
    enclave::datagen::generate("hospital_visits", 5000, 1, 2000, &visits, |_| {}).unwrap();
    let r = sql_report(
        "SELECT r.district, COUNT(*) AS visits FROM residents r JOIN hospital_visits v ON r.resident_id = v.resident_id \
         GROUP BY r.district ORDER BY r.district",
        vec![
            residents_ds(2000),
            Dataset::new("hospital_visits", &visits).unwrap(),
        ],
        "app-1",
    );
    assert!(r.result.is_ok(), "{:?}", r.result);
    let total: i64 = r.outputs[0]
        .rows_json()
        .unwrap()
        .iter()
        .map(|v| v["visits"].as_i64().unwrap())
        .sum();
    assert!(total > 4000, "joined visits: {total}");
}

#[test]
fn samples_keep_schema_hide_values_and_keep_marginals() {
    let dir = tempfile::tempdir().unwrap();
    let src = residents(20_000);
    let out = dir.path().join("sample.parquet");
    let policy = default_policy();
    let s = enclave::sample::sample(&policy, "residents", &src, 2000, 9, &out).unwrap();
    assert_eq!((s.rows, s.source_rows), (2000, 20_000));
    let source = read(&src);
    let sample = read(&out);
    assert_eq!(source.schema(), sample.schema(), "schema kept");
    assert_eq!(sample.num_rows(), 2000);
    // No real L3/L4 value of the source is present.
    for col in ["resident_id", "name", "phone"] {
        let real: HashSet<&str> = source
            .column_by_name(col)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        let fake = sample.column_by_name(col).unwrap().as_string::<i32>();
        assert!(
            fake.iter().flatten().all(|v| !real.contains(v)),
            "{col} leaks"
        );
    }
    let real: HashSet<i64> = source
        .column_by_name("income")
        .unwrap()
        .as_primitive::<Int64Type>()
        .iter()
        .flatten()
        .collect();
    assert!(
        sample
            .column_by_name("income")
            .unwrap()
            .as_primitive::<Int64Type>()
            .iter()
            .flatten()
            .all(|v| !real.contains(&v))
    );
    let real: HashSet<i32> = source
        .column_by_name("birth_date")
        .unwrap()
        .as_primitive::<Date32Type>()
        .iter()
        .flatten()
        .collect();
    assert!(
        sample
            .column_by_name("birth_date")
            .unwrap()
            .as_primitive::<Date32Type>()
            .iter()
            .flatten()
            .all(|v| !real.contains(&v))
    );
    let ids = sample
        .column_by_name("resident_id")
        .unwrap()
        .as_string::<i32>();
    assert!(
        ids.iter()
            .flatten()
            .all(enclave::datagen::is_valid_resident_id),
        "fakes are format-valid"
    );
    // Marginals of kept (district) and shuffled (sex) columns are preserved.
    let share = |b: &RecordBatch, col: &str| -> BTreeMap<String, f64> {
        let a = b.column_by_name(col).unwrap().as_string::<i32>();
        let mut m = BTreeMap::new();
        for v in a.iter().flatten() {
            *m.entry(v.to_owned()).or_insert(0.0) += 1.0 / b.num_rows() as f64;
        }
        m
    };
    for col in ["district", "sex", "age_band"] {
        let (a, b) = (share(&source, col), share(&sample, col));
        for (k, p) in &a {
            let q = b.get(k).copied().unwrap_or(0.0);
            assert!(
                (p - q).abs() < 0.04,
                "{col}={k}: source {p:.3}, sample {q:.3}"
            );
        }
    }
    // A full-size sample keeps the exact multiset of kept and shuffled columns.
    let full = dir.path().join("full.parquet");
    enclave::sample::sample(&policy, "residents", &src, 20_000, 9, &full).unwrap();
    let full = read(&full);
    for col in ["district", "sex", "age"] {
        let sorted = |b: &RecordBatch| {
            let c =
                datafusion::arrow::compute::cast(b.column_by_name(col).unwrap(), &DataType::Utf8)
                    .unwrap();
            let mut v: Vec<String> = c
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_owned)
                .collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&source), sorted(&full), "{col}");
    }
    // Deterministic for a seed.
    let again = dir.path().join("again.parquet");
    enclave::sample::sample(&policy, "residents", &src, 2000, 9, &again).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    let _ = Int64Array::from(vec![0]);
}
