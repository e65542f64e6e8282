//! The example guests, built to Wasm with the SDK and run as jobs.

use enclave_abi::OutputKind;
use enclave_core::ErrorKind;
use enclave_runtime::report::rows_json;
use enclave_tests::*;
use libtest_mimic::Trial;

fn run_example(name: &str, params: &[(&str, &str)], rows: u64) -> enclave_runtime::JobReport {
    let mut job = Job::new(example_bytes(name)).table("residents", residents(rows));
    for (k, v) in params {
        job = job.param(k, v);
    }
    job.run()
}

fn every_example_module_has_only_abi_imports() {
    for name in EXAMPLES {
        assert!(
            engine().sandbox.prepare(&example_bytes(name)).is_ok(),
            "{name} is not admitted"
        );
    }
}

fn sql_report_emits_the_query_result() {
    let r = run_example(
        "sql-report",
        &[(
            "sql",
            "SELECT age_band, COUNT(*) AS n, SUM(income) AS total FROM residents GROUP BY age_band ORDER BY age_band",
        )],
        5000,
    );
    assert!(r.result.is_ok(), "{:?}", r.result);
    let out = &r.outputs[0];
    assert_eq!(
        (out.name.as_str(), out.kind),
        ("result", OutputKind::Aggregate)
    );
    let rows = rows_json(out).unwrap();
    assert_eq!(
        rows.iter().map(|v| v["n"].as_i64().unwrap()).sum::<i64>(),
        5000
    );
    assert!(
        r.run
            .unwrap()
            .logs
            .iter()
            .any(|l| l.contains("result rows"))
    );
}

fn sql_report_surfaces_refusals() {
    for (sql, kind) in [
        (
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/etc'",
            ErrorKind::SqlRefused,
        ),
        ("SELECT * FROM 'file.parquet'", ErrorKind::SqlRefused),
        (
            "SET datafusion.execution.batch_size = 1",
            ErrorKind::SqlRefused,
        ),
        ("INSERT INTO residents VALUES (1)", ErrorKind::SqlRefused),
        ("SELECT * FROM hospital_visits", ErrorKind::SqlRefused),
    ] {
        let r = run_example("sql-report", &[("sql", sql)], 1000);
        let e = err(&r);
        assert_eq!(e.kind, kind, "{sql}: {e:?}");
        assert!(r.outputs.is_empty());
    }
    let r = run_example("sql-report", &[], 1000);
    assert_eq!(err(&r).kind, ErrorKind::GuestFailed);
    assert!(
        err(&r).message.contains("parameter `sql`"),
        "{}",
        err(&r).message
    );
}

fn income_by_district_gives_nine_districts() {
    let r = run_example("income-by-district", &[], 20_000);
    assert!(r.result.is_ok(), "{:?}", r.result);
    let rows = rows_json(&r.outputs[0]).unwrap();
    assert_eq!(rows.len(), 9);
    assert_eq!(
        rows.iter()
            .map(|v| v["residents"].as_i64().unwrap())
            .sum::<i64>(),
        20_000
    );
    for row in &rows {
        let mean = row["mean_income"].as_f64().unwrap();
        assert!(mean > 10_000.0 && mean < 200_000.0, "{row}");
    }
}

fn linear_model_fits_the_income_curve() {
    let r = run_example("linear-model", &[], 50_000);
    assert!(r.result.is_ok(), "{:?}", r.result);
    let out = &r.outputs[0];
    assert_eq!(out.kind, OutputKind::Model);
    let rows = rows_json(out).unwrap();
    let coef = |t: &str| {
        rows.iter().find(|v| v["term"] == t).unwrap()["coefficient"]
            .as_f64()
            .unwrap()
    };
    assert!(
        coef("age") > 0.0,
        "income rises with age early on: {rows:?}"
    );
    assert!(coef("age_sq") < 0.0, "and falls later: {rows:?}");
    assert_eq!(
        r.queries[0].rows, 50_000,
        "all rows streamed into the guest"
    );
}

fn same_module_same_data_same_bytes() {
    for (name, params) in [
        (
            "sql-report",
            vec![(
                "sql",
                "SELECT district, AVG(income) AS m FROM residents GROUP BY district ORDER BY district",
            )],
        ),
        ("income-by-district", vec![]),
        ("linear-model", vec![]),
    ] {
        let a = run_example(name, &params, 30_000);
        let b = run_example(name, &params, 30_000);
        assert!(a.result.is_ok() && b.result.is_ok(), "{name}");
        let digests =
            |r: &enclave_runtime::JobReport| r.outputs.iter().map(|o| o.digest).collect::<Vec<_>>();
        assert_eq!(digests(&a), digests(&b), "{name} is not deterministic");
        assert_eq!(
            a.run.unwrap().fuel_used,
            b.run.unwrap().fuel_used,
            "{name}: fuel is deterministic too"
        );
    }
}

pub fn tests() -> Vec<Trial> {
    crate::trials![
        every_example_module_has_only_abi_imports,
        sql_report_emits_the_query_result,
        sql_report_surfaces_refusals,
        income_by_district_gives_nine_districts,
        linear_model_fits_the_income_curve,
        same_module_same_data_same_bytes,
    ]
}
