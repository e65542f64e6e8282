//! The `enclave` command line as a developer uses it (run in child processes).

use std::path::Path;

use enclave_tests::*;
use libtest_mimic::Trial;
use serde_json::Value;

fn run_json(home: &Path, args: &[&str]) -> (bool, Value) {
    let out = enclave_cmd(home)
        .args(args)
        .arg("--json")
        .arg("--no-cache")
        .output()
        .unwrap();
    (out.status.success(), json_of(&out))
}

fn run_json_report_has_the_documented_fields() {
    let home = tempfile::tempdir().unwrap();
    let module = example("sql-report");
    let table = format!("residents={}", residents(3000).display());
    let sql =
        "sql=SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY district";
    let args = [
        "run",
        "--module",
        module.to_str().unwrap(),
        "--table",
        &table,
        "--param",
        sql,
    ];
    let (ok, doc) = run_json(home.path(), &args);
    assert!(ok, "{doc}");
    assert_eq!(doc["status"], "ok");
    assert_eq!(doc["job_id"].as_str().unwrap().len(), 16);
    assert_eq!(doc["module_blake3"].as_str().unwrap().len(), 64);
    assert_eq!(
        doc["policy"]["kind"], "open",
        "no --policy: the explicit open policy"
    );
    assert!(doc["fuel_used"].as_u64().unwrap() > 0);
    let out = &doc["outputs"][0];
    assert_eq!(out["name"], "result");
    assert_eq!(out["kind"], "aggregate");
    assert_eq!(out["rows"], 9);
    assert_eq!(out["blake3"].as_str().unwrap().len(), 64);
    assert_eq!(out["schema"][0]["name"], "district");
    assert_eq!(out["data"].as_array().unwrap().len(), 9);
    assert!(out["data"][0]["n"].as_i64().unwrap() > 0);
    assert!(
        doc["queries"][0]["sql"].as_str().unwrap().len() == 64,
        "SQL only as a digest"
    );
    // The same run again: a new job id, the same output digest.
    let (_, again) = run_json(home.path(), &args);
    assert_eq!(again["outputs"][0]["blake3"], out["blake3"]);
    assert_ne!(again["job_id"], doc["job_id"]);
}

fn run_json_reports_errors_with_kind_and_nonzero_exit() {
    let home = tempfile::tempdir().unwrap();
    let module = example("sql-report");
    let m = module.to_str().unwrap();
    let table = format!("residents={}", residents(3000).display());
    let (ok, doc) = run_json(
        home.path(),
        &[
            "run",
            "--module",
            m,
            "--table",
            &table,
            "--param",
            "sql=COPY residents TO '/tmp/x.csv'",
        ],
    );
    assert!(!ok);
    assert_eq!(doc["status"], "error");
    assert_eq!(doc["error"]["kind"], "sql_refused");
    assert!(doc["error"]["message"].as_str().unwrap().contains("COPY"));
    assert_eq!(doc["outputs"].as_array().unwrap().len(), 0);

    let (ok, doc) = run_json(
        home.path(),
        &[
            "run",
            "--module",
            m,
            "--table",
            &table,
            "--param",
            "sql=SELECT 1",
            "--fuel",
            "1000",
        ],
    );
    assert!(!ok);
    assert_eq!(doc["error"]["kind"], "limit_exceeded");
    assert_eq!(doc["error"]["limit"], "fuel");

    let (ok, doc) = run_json(home.path(), &["run", "--module", "/no/such/module.wasm"]);
    assert!(!ok);
    assert_eq!(doc["error"]["kind"], "invalid_input");

    let (ok, doc) = run_json(home.path(), &["run", "--module", m, "--table", "residents"]);
    assert!(!ok);
    assert_eq!(doc["error"]["kind"], "invalid_input");

    let (ok, doc) = run_json(home.path(), &["run", "--module", m, "--seed", "XYZ"]);
    assert!(!ok);
    assert_eq!(doc["error"]["kind"], "invalid_input");
}

fn human_report_and_datagen() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("t.parquet");
    let out = enclave_cmd(home.path())
        .args([
            "datagen",
            "traffic_records",
            "--rows",
            "2000",
            "--seed",
            "5",
            "--out",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(file.exists());
    let out = enclave_cmd(home.path())
        .args(["datagen", "nope", "--rows", "1", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown table"));

    let module = example("sql-report");
    let out = enclave_cmd(home.path())
        .args(["run", "--no-cache", "--module"])
        .arg(&module)
        .arg("--table")
        .arg(format!("traffic={}", file.display()))
        .args(["--param", "sql=SELECT vehicle_type, COUNT(*) AS n FROM traffic GROUP BY vehicle_type ORDER BY vehicle_type"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(": ok"), "{text}");
    assert!(text.contains("policy: open"), "{text}");
    assert!(
        text.contains("vehicle_type") && text.contains("小型汽车"),
        "{text}"
    );
    // Help exits 0, a bad flag 2.
    let out = enclave_cmd(home.path()).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = enclave_cmd(home.path()).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// `enclave policy check`: the default policy validates; one that exposes birth date, district
/// and sex row by row (which rebuild the resident ID) is refused.
fn policy_check_refuses_reconstructible_identifiers() {
    let home = tempfile::tempdir().unwrap();
    let table = format!("residents={}", residents(3000).display());
    let check = |policy: &Path| {
        let out = enclave_cmd(home.path())
            .args(["policy", "check", "--policy"])
            .arg(policy)
            .args(["--table", &table, "--json"])
            .output()
            .unwrap();
        (out.status.success(), json_of(&out))
    };
    let (ok, doc) = check(&default_policy_path());
    assert!(ok, "{doc}");
    let d = &doc["datasets"][0];
    assert_eq!(d["row_level"]["unique"], 0, "{doc}");
    assert!(d["row_level"]["min_class"].as_u64().unwrap() >= 2, "{doc}");
    let leaky = home.path().join("leaky.toml");
    std::fs::write(
        &leaky,
        std::fs::read_to_string(default_policy_path())
            .unwrap()
            .replace("birth_date = \"L4\"", "birth_date = \"L1\"")
            .replace("sex = \"L2\"", "sex = \"L1\""),
    )
    .unwrap();
    let (ok, doc) = check(&leaky);
    assert!(!ok, "{doc}");
    assert_eq!(doc["ok"], false);
    assert!(
        doc["datasets"][0]["row_level"]["unique_share"]
            .as_f64()
            .unwrap()
            > 0.5,
        "{doc}"
    );
}

fn policy_refusal_and_sample_from_the_cli() {
    let home = tempfile::tempdir().unwrap();
    let module = example("sql-report");
    let m = module.to_str().unwrap();
    let table = format!("residents={}", residents(3000).display());
    let policy = default_policy_path();
    let p = policy.to_str().unwrap();
    let run = |sql: &str| {
        run_json(
            home.path(),
            &[
                "run",
                "--module",
                m,
                "--table",
                &table,
                "--policy",
                p,
                "--param",
                &format!("sql={sql}"),
            ],
        )
    };
    let (ok, doc) = run("SELECT name, income FROM residents");
    assert!(!ok);
    assert_eq!(doc["error"]["kind"], "policy_violation");
    let msg = doc["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("residents.") && (msg.contains("L4") || msg.contains("L3")),
        "{msg}"
    );
    let (ok, doc) =
        run("SELECT district, COUNT(*) AS n, AVG(income) AS m FROM residents GROUP BY district");
    assert!(ok, "{doc}");
    assert_eq!(doc["outputs"][0]["rows"], 9);
    assert_eq!(doc["policy"]["kind"], "domain");
    // A dataset the policy does not classify is not granted: refused before it runs.
    let (ok, doc) = run_json(
        home.path(),
        &[
            "run",
            "--module",
            m,
            "--policy",
            p,
            "--table",
            &format!("secrets={}", residents(3000).display()),
        ],
    );
    assert!(!ok);
    assert_eq!(doc["error"]["kind"], "policy_violation");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not classified")
    );

    let sample = home.path().join("sample.parquet");
    let out = enclave_cmd(home.path())
        .args([
            "sample", "--table", &table, "--policy", p, "--rows", "500", "--seed", "3", "--out",
        ])
        .arg(&sample)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("income: Noise"));
    // The sample is on the record.
    let log = std::fs::read_to_string(home.path().join("audit/log.jsonl")).unwrap();
    assert!(log.contains("\"dataset.sample\""), "{log}");
    // The developer's loop: run the module on the sample under the open policy.
    let (ok, doc) = run_json(
        home.path(),
        &[
            "run",
            "--module",
            m,
            "--table",
            &format!("residents={}", sample.display()),
            "--param",
            "sql=SELECT COUNT(*) AS n FROM residents",
        ],
    );
    assert!(ok, "{doc}");
    assert_eq!(doc["outputs"][0]["data"][0]["n"], 500);
}

pub fn tests() -> Vec<Trial> {
    crate::trials![
        run_json_report_has_the_documented_fields,
        run_json_reports_errors_with_kind_and_nonzero_exit,
        human_report_and_datagen,
        policy_refusal_and_sample_from_the_cli,
        policy_check_refuses_reconstructible_identifiers,
    ]
}
