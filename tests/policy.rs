//! Column rules, the group threshold, pseudonyms and samples, end to end through jobs.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Int64Type, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use enclave_core::{Digest, ErrorKind};
use enclave_runtime::report::rows_json;
use enclave_runtime::sample::{sample as make_sample, sample_key};
use enclave_tests::*;
use libtest_mimic::Trial;

fn sql_report(sql: &str, tables: &[(&str, PathBuf)], app: &str) -> enclave_runtime::JobReport {
    let mut job = Job::new(example_bytes("sql-report"))
        .param("sql", sql)
        .default_policy();
    for (n, p) in tables {
        job = job.table(n, p);
    }
    job.application = app.to_owned();
    job.run()
}

fn default_policy() -> enclave_policy::Policy {
    enclave_policy::Policy::load(&default_policy_path())
        .unwrap()
        .0
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

fn restricted_columns_are_refused_through_the_sandbox() {
    let r = sql_report(
        "SELECT district, income FROM residents",
        &[("residents", residents(2000))],
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
        &[("residents", residents(2000))],
        "app",
    );
    assert!(r.result.is_ok(), "{:?}", r.result);
    assert_eq!(r.outputs[0].rows, 9);
}

/// Visits where group A has 30 rows from 3 subjects, B 12 subjects, C exactly 10, D 9.
fn visits_fixture(dir: &Path) -> PathBuf {
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
    let schema = enclave_datagen::schema_of("hospital_visits").unwrap();
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
    path
}

fn group_threshold_counts_subjects_not_rows() {
    let dir = tempfile::tempdir().unwrap();
    let ds = visits_fixture(dir.path());
    let r = sql_report(
        "SELECT diagnosis, COUNT(*) AS visits FROM hospital_visits GROUP BY diagnosis ORDER BY diagnosis",
        &[("hospital_visits", ds.clone())],
        "app",
    );
    assert!(r.result.is_ok(), "{:?}", r.result);
    let rows = rows_json(&r.outputs[0]).unwrap();
    let shown: Vec<&str> = rows
        .iter()
        .map(|v| v["diagnosis"].as_str().unwrap())
        .collect();
    // A has 30 rows but 3 subjects: suppressed. D has 9 subjects: suppressed. C has exactly k.
    assert_eq!(shown, vec!["B", "C"]);
    // Two groups were suppressed; the job learns that only to a multiple of 10 (not at all
    // whether one small group exists).
    assert_eq!(r.queries[0].suppressed_groups, 0);
    // Through a CTE: a subquery over restricted columns is outside the aggregation grammar.
    let r = sql_report(
        "WITH t AS (SELECT diagnosis, resident_id FROM hospital_visits) SELECT diagnosis, COUNT(*) AS n FROM t GROUP BY diagnosis",
        &[("hospital_visits", ds.clone())],
        "app",
    );
    assert_eq!(
        r.result.as_ref().unwrap_err().kind,
        ErrorKind::PolicyViolation,
        "{:?}",
        r.result
    );
    // Counting the subjects themselves gives the same groups.
    let r = sql_report(
        "SELECT diagnosis, COUNT(DISTINCT resident_id) AS n FROM hospital_visits GROUP BY diagnosis ORDER BY diagnosis",
        &[("hospital_visits", ds)],
        "app",
    );
    assert!(r.result.is_ok(), "{:?}", r.result);
    assert_eq!(r.outputs[0].rows, 2);
}

fn pseudonyms_are_stable_within_and_differ_across_applications() {
    // Pseudonyms leave row by row only under a row-level grant (model training); the job's
    // queries then say so. (ORDER BY a pseudonym would be a comparison.)
    let q = "SELECT resident_id FROM residents LIMIT 5";
    let granted = format!(
        "{}\n[grant]\nrow_level = [\"residents.resident_id\"]\n",
        std::fs::read_to_string(default_policy_path()).unwrap()
    );
    let ids = |r: &enclave_runtime::JobReport| -> Vec<String> {
        let mut v: Vec<String> = rows_json(&r.outputs[0])
            .unwrap()
            .iter()
            .map(|v| v["resident_id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    // Each job runs in a domain of its own here: pseudonyms are keyed by the domain secret too.
    // Within one domain and application they are stable:
    let (_dir, d) = temp_domain();
    let job = |app: &str| {
        let mut j = Job::new(example_bytes("sql-report"))
            .param("sql", q)
            .table("residents", residents(2000));
        j.policy = enclave_runtime::PolicySource::Text {
            name: "granted".into(),
            text: granted.clone(),
        };
        j.application = app.to_owned();
        j.run_in(&d).unwrap()
    };
    let (a1, a2, b) = (job("app-1"), job("app-1"), job("app-2"));
    assert!(a1.result.is_ok(), "{:?}", a1.result);
    assert!(a1.queries[0].row_level_grant);
    assert_eq!(ids(&a1), ids(&a2));
    assert_ne!(ids(&a1), ids(&b));
    for id in ids(&a1) {
        assert_eq!(id.len(), 32, "{id}");
        assert!(!enclave_datagen::is_valid_resident_id(&id));
    }
    // Joins on pseudonyms still work: both tables are pseudonymized with the same key.
    let dir = tempfile::tempdir().unwrap();
    let visits = dir.path().join("v.parquet");
    enclave_datagen::generate("hospital_visits", 5000, 1, 2000, &visits, |_| {}).unwrap();
    let r = sql_report(
        "SELECT r.district, COUNT(*) AS visits FROM residents r JOIN hospital_visits v ON r.resident_id = v.resident_id \
         GROUP BY r.district ORDER BY r.district",
        &[("residents", residents(2000)), ("hospital_visits", visits)],
        "app-1",
    );
    assert!(r.result.is_ok(), "{:?}", r.result);
    let total: i64 = rows_json(&r.outputs[0])
        .unwrap()
        .iter()
        .map(|v| v["visits"].as_i64().unwrap())
        .sum();
    assert!(total > 4000, "joined visits: {total}");
}

fn samples_keep_schema_hide_values_and_keep_marginals() {
    let dir = tempfile::tempdir().unwrap();
    let src = residents(20_000);
    let out = dir.path().join("sample.parquet");
    let policy = default_policy();
    let key = sample_key(&[5; 32], &Digest::of(b"snapshot"), 9);
    let s = make_sample(&policy, "residents", &src, 2000, 9, &key, &out).unwrap();
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
            .all(enclave_datagen::is_valid_resident_id),
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
    make_sample(&policy, "residents", &src, 20_000, 9, &key, &full).unwrap();
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
    // Deterministic for a domain and a seed.
    let again = dir.path().join("again.parquet");
    make_sample(&policy, "residents", &src, 2000, 9, &key, &again).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
}

/// What an attacker who knows the seed (but not the domain secret) can compute: which source rows
/// were picked, in order (the seed selects them). The shuffle, noise and fakes come from the
/// domain's key, so the attacker's best reconstruction of a shuffled column — undoing the
/// shuffle the seed alone would have given — matches the source no better than chance, and a
/// second domain with the same seed desensitizes differently.
fn knowing_the_seed_does_not_relink_sample_rows() {
    let dir = tempfile::tempdir().unwrap();
    let src = residents(20_000);
    let policy = default_policy();
    let snap = Digest::of(b"the same snapshot");
    let out_a = dir.path().join("a.parquet");
    let out_b = dir.path().join("b.parquet");
    make_sample(
        &policy,
        "residents",
        &src,
        2000,
        9,
        &sample_key(&[1; 32], &snap, 9),
        &out_a,
    )
    .unwrap();
    make_sample(
        &policy,
        "residents",
        &src,
        2000,
        9,
        &sample_key(&[2; 32], &snap, 9),
        &out_b,
    )
    .unwrap();
    let (a, b, source) = (read(&out_a), read(&out_b), read(&src));
    // The rows picked are the seed's (open columns are kept row by row and agree).
    assert_eq!(
        a.column_by_name("district").unwrap().to_data(),
        b.column_by_name("district").unwrap().to_data()
    );
    // Everything derived from randomness differs between the two domains.
    for col in ["age", "sex", "income", "resident_id", "name", "phone"] {
        assert_ne!(
            a.column_by_name(col).unwrap().to_data(),
            b.column_by_name(col).unwrap().to_data(),
            "{col} does not depend on the domain's key"
        );
    }
    // Re-link attempt: the attacker knows which source row each sample row came from (seed) and
    // tries the seed-only shuffle (SplitMix64 from the seed, as samples were made before) to map
    // the shuffled `age` back. The match rate must be near chance, not near 100 %.
    let total = source.num_rows() as u64;
    let mut rng = enclave_datagen::fakes::Rng::for_row(9, 0x5a4d_504c, 0);
    let picked = {
        use enclave_datagen::fakes::Random;
        let mut set = std::collections::BTreeSet::new();
        for j in total - 2000..total {
            let t = rng.below(j + 1);
            if !set.insert(t) {
                set.insert(j);
            }
        }
        set.into_iter().collect::<Vec<u64>>()
    };
    let src_age = source
        .column_by_name("age")
        .unwrap()
        .as_primitive::<datafusion::arrow::datatypes::Int32Type>();
    let sample_age = a
        .column_by_name("age")
        .unwrap()
        .as_primitive::<datafusion::arrow::datatypes::Int32Type>();
    let mut order: Vec<u64> = (0..2000).collect();
    {
        use enclave_datagen::fakes::Random;
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    let mut matched = 0;
    for (i, &from) in order.iter().enumerate() {
        // The seed-only shuffle put source row picked[from] at sample row i.
        if sample_age.value(i) == src_age.value(picked[from as usize] as usize) {
            matched += 1;
        }
    }
    // Ages have ~100 values; chance agreement is a few percent.
    assert!(matched < 2000 / 5, "{matched} of 2000 rows re-linked");
}

pub fn tests() -> Vec<Trial> {
    crate::trials![
        restricted_columns_are_refused_through_the_sandbox,
        group_threshold_counts_subjects_not_rows,
        pseudonyms_are_stable_within_and_differ_across_applications,
        samples_keep_schema_hide_values_and_keep_marginals,
        knowing_the_seed_does_not_relink_sample_rows,
    ]
}
