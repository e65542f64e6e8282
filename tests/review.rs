//! Product review and release through the command line: outputs of governed jobs wait in
//! quarantine, only reviewers decide (every criterion affirmed, flagged findings acknowledged),
//! the requesting developer alone downloads an approved output with a signed receipt that
//! `enclave receipt verify` and `enclave-audit receipt` check offline (a tampered one fails),
//! products are published and taken down, and termination destroys the entity's quarantine; a
//! release that would complete a differencing pair with an earlier one is refused.

use std::path::Path;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{DataType, Int64Type};

use enclave_tests::*;
use libtest_mimic::Trial;

use crate::parties::{cli, log_actions, ok, refused, set_up, submit};

fn run_json(home: &Path, token: &str, args: &[&str]) -> serde_json::Value {
    let out = cli(home, Some(token), args);
    let doc = json_of(&out);
    assert!(out.status.success(), "{doc}");
    doc
}

/// The outputs the token's user sees, as JSON.
fn outputs(home: &Path, token: &str) -> Vec<serde_json::Value> {
    let out = ok(home, Some(token), &["output", "list", "--json"]);
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn verify_receipt(home: &Path, receipt: &Path, file: &Path) -> std::process::Output {
    cli(
        home,
        None,
        &[
            "receipt",
            "verify",
            receipt.to_str().unwrap(),
            "--key",
            home.join("log.pub").to_str().unwrap(),
            "--output",
            file.to_str().unwrap(),
        ],
    )
}

fn audit_receipt(home: &Path, receipt: &Path, file: &Path) -> std::process::Output {
    enclave_audit_cmd()
        .args(["receipt"])
        .arg(receipt)
        .arg("--key")
        .arg(home.join("log.pub"))
        .arg("--output")
        .arg(file)
        .output()
        .unwrap()
}

fn outputs_are_reviewed_released_with_receipts_and_taken_down() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let p = set_up(home);
    let (o, r, d) = (
        Some(p.operator.as_str()),
        Some(p.reviewer.as_str()),
        Some(p.dev.as_str()),
    );
    let out = submit(home, &p.dev, "residents:district,income");
    assert!(out.status.success());
    let app = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    ok(home, r, &["application", "approve", &app]);
    // A certified aggregate (income-by-district) and a derived model (computed by the guest).
    let certified = run_json(
        home,
        &p.dev,
        &[
            "run",
            "--module",
            example("income-by-district").to_str().unwrap(),
            "--application",
            &app,
            "--table",
            "residents",
            "--json",
            "--no-cache",
        ],
    );
    assert_eq!(
        certified["outputs"][0]["evidence"]["verdict"], "pass",
        "{certified}"
    );
    assert!(
        certified["outputs"][0].get("data").is_none(),
        "a governed job's report shows no rows: {certified}"
    );
    let derived = run_json(
        home,
        &p.dev,
        &[
            "run",
            "--module",
            example("linear-model").to_str().unwrap(),
            "--param",
            "sql=SELECT CAST(ascii(district) AS DOUBLE) AS a, \
             CAST(length(district) AS DOUBLE) AS t FROM residents",
            "--application",
            &app,
            "--table",
            "residents",
            "--json",
            "--no-cache",
        ],
    );
    assert_eq!(
        derived["outputs"][0]["evidence"]["verdict"], "flag",
        "{derived}"
    );
    let mine = outputs(home, &p.dev);
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert!(mine.iter().all(|x| x["state"] == "pending"));
    let (pass, flag) = ("out-1", "out-2");
    assert_eq!(mine[1]["output"], pass);
    assert_eq!(mine[1]["provenance"], "certified");
    assert_eq!(mine[0]["provenance"], "derived");
    // Quarantine is unreadable to the developer; only reviewers decide.
    let file = home.join("download.arrow");
    let f = file.to_str().unwrap();
    refused(
        home,
        d,
        &["output", "download", pass, "--out", f],
        "in quarantine until a reviewer approves it",
    );
    assert!(!file.exists());
    refused(
        home,
        d,
        &["output", "approve", pass, "--affirm", "all"],
        "may not review an output",
    );
    refused(
        home,
        o,
        &["output", "approve", pass, "--affirm", "all"],
        "may not review an output",
    );
    refused(home, d, &["output", "preview", pass], "may not review");
    // The reviewer's preview is bounded and on the record.
    let preview = ok(home, r, &["output", "preview", pass, "--rows", "3"]);
    assert!(preview.contains("district"), "{preview}");
    assert!(preview.contains("rows shown"), "{preview}");
    let shown = ok(home, r, &["output", "show", flag, "--json"]);
    assert!(shown.contains("\"derived\""), "{shown}");
    // Every criterion is affirmed; flagged findings are acknowledged.
    refused(
        home,
        r,
        &["output", "approve", pass, "--affirm", "purpose,source"],
        "not affirmed: no-raw-data",
    );
    refused(
        home,
        r,
        &["output", "approve", pass, "--affirm", "purpose,bogus"],
        "not a criterion",
    );
    ok(home, r, &["output", "approve", pass, "--affirm", "all"]);
    refused(
        home,
        r,
        &["output", "approve", flag, "--affirm", "all"],
        "acknowledging the findings",
    );
    ok(
        home,
        r,
        &[
            "output",
            "reject",
            flag,
            "--failed",
            "no-personal-info",
            "--reason",
            "a model of row-level data",
        ],
    );
    refused(
        home,
        d,
        &["output", "download", flag, "--out", f],
        "rejected",
    );
    // Another development entity sees nothing of it.
    ok(
        home,
        o,
        &["org", "register", "--kind", "developer", "other-lab"],
    );
    ok(
        home,
        o,
        &[
            "user",
            "add",
            "--org",
            "other-lab",
            "--role",
            "developer",
            "eve",
        ],
    );
    let eve = ok(home, o, &["token", "issue", "eve"]);
    let e = Some(eve.as_str());
    refused(
        home,
        e,
        &["output", "download", pass, "--out", f],
        "not found",
    );
    refused(home, e, &["output", "show", pass], "not found");
    assert!(outputs(home, &eve).is_empty());
    // The developer downloads it: the bytes are the reviewed output, the receipt verifies.
    let dl = json_of(&cli(
        home,
        d,
        &["output", "download", pass, "--out", f, "--json"],
    ));
    assert_eq!(dl["first_release"], true, "{dl}");
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(
        blake3::hash(&bytes).to_hex().to_string(),
        dl["blake3"].as_str().unwrap()
    );
    assert!(
        bytes.starts_with(b"\xff\xff\xff\xff"),
        "an Arrow IPC stream"
    );
    let receipt = home.join("download.arrow.receipt");
    let v = verify_receipt(home, &receipt, &file);
    let said = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&v.stderr)
    );
    assert!(
        said.contains("receipt verifies") && said.contains("the file matches"),
        "{said}"
    );
    let a = audit_receipt(home, &receipt, &file);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stdout));
    // Against the domain's exported log: the release is in it, under the receipt's checkpoint;
    // a log cut short before the release is refused.
    let log = home.join("audit/log.jsonl");
    let with_log = |log: &Path| {
        enclave_audit_cmd()
            .arg("receipt")
            .arg(&receipt)
            .arg("--key")
            .arg(home.join("log.pub"))
            .arg("--log")
            .arg(log)
            .output()
            .unwrap()
    };
    let a = with_log(&log);
    let said = String::from_utf8_lossy(&a.stdout);
    assert!(
        a.status.success() && said.contains("the log holds the release"),
        "{said}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let short = home.join("short.jsonl");
    let keep: Vec<&str> = text.lines().take(10).collect();
    std::fs::write(&short, keep.join("\n") + "\n").unwrap();
    let a = with_log(&short);
    assert!(
        !a.status.success(),
        "{}",
        String::from_utf8_lossy(&a.stdout)
    );
    assert!(String::from_utf8_lossy(&a.stdout).contains("BAD"));
    // A tampered receipt, or another file, does not verify.
    let text = std::fs::read_to_string(&receipt).unwrap();
    assert!(text.contains("reviewer rita") && text.contains(&format!("application {app}")));
    let forged = home.join("forged.receipt");
    std::fs::write(&forged, text.replace("reviewer rita", "reviewer olga")).unwrap();
    let v = verify_receipt(home, &forged, &file);
    assert!(!v.status.success());
    assert!(String::from_utf8_lossy(&v.stderr).contains("NOT verify"));
    let a = audit_receipt(home, &forged, &file);
    assert!(!a.status.success());
    assert!(String::from_utf8_lossy(&a.stdout).contains("BAD"));
    let other = home.join("other.arrow");
    std::fs::write(&other, b"not the output").unwrap();
    assert!(!verify_receipt(home, &receipt, &other).status.success());
    assert!(!audit_receipt(home, &receipt, &other).status.success());
    // A second download is logged again and keeps the first receipt.
    let again = json_of(&cli(
        home,
        d,
        &["output", "download", pass, "--out", f, "--json"],
    ));
    assert_eq!(again["first_release"], false);
    assert_eq!(std::fs::read_to_string(&receipt).unwrap(), text);
    // A product: published from the release, seen in the catalog, taken down.
    refused(
        home,
        d,
        &[
            "product",
            "publish",
            flag,
            "--kind",
            "model",
            "--title",
            "t",
            "--description",
            "d",
            "--source",
            "s",
        ],
        "only a released output",
    );
    let prod = json_of(&cli(
        home,
        d,
        &[
            "product",
            "publish",
            pass,
            "--kind",
            "report",
            "--title",
            "Income by district",
            "--description",
            "Residents and noised mean income per district",
            "--source",
            "residents registered by the operator under its authorization",
            "--json",
        ],
    ));
    let prod_no = prod["product"].as_str().unwrap().to_owned();
    assert!(ok(home, e, &["product", "list"]).contains("Income by district"));
    refused(
        home,
        e,
        &["product", "takedown", &prod_no, "--reason", "rival"],
        "may not withdraw",
    );
    ok(
        home,
        o,
        &[
            "product",
            "takedown",
            &prod_no,
            "--reason",
            "complaint upheld",
        ],
    );
    assert!(!ok(home, e, &["product", "list"]).contains("Income by district"));
    refused(
        home,
        d,
        &["output", "download", pass, "--out", f],
        "withdrawn",
    );
    // Terminated: the entity's quarantine is destroyed.
    let quarantine = home.join("entities/org-3/quarantine");
    let keys = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".key")
                })
                .count()
            })
            .unwrap_or(0)
    };
    // Two outputs, and the cells the certified one's job was shown (for the difference check;
    // the derived job read open columns only).
    assert_eq!(keys(&quarantine), 3);
    ok(
        home,
        o,
        &["org", "terminate", "acme-analytics", "--reason", "exit"],
    );
    ok(home, o, &["product", "list"]);
    assert_eq!(keys(&quarantine), 0, "the entity's outputs are shredded");
    // Every step is on the record; no output name, reason or title in the log.
    let actions = log_actions(home);
    for must in [
        "gov.output.preview",
        "gov.output.approve",
        "gov.output.reject",
        "gov.output.release",
        "gov.output.download",
        "gov.product.publish",
        "gov.product.takedown",
    ] {
        assert!(actions.iter().any(|a| a == must), "{must} missing");
    }
    let log = std::fs::read_to_string(home.join("audit/log.jsonl")).unwrap();
    for text in [
        "Income by district",
        "complaint upheld",
        "row-level data",
        "coefficients",
    ] {
        assert!(!log.contains(text), "`{text}` in the log");
    }
}

/// A district of the test residents and an age that 1 to 9 of its (at least 20) women have.
fn one_of_few(file: &Path) -> (String, i64) {
    use std::collections::BTreeMap;
    let f = std::fs::File::open(file).unwrap();
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap();
    let mut by: BTreeMap<(String, i64), u64> = BTreeMap::new();
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    for b in reader {
        let b = b.unwrap();
        let col = |n: &str, t: &DataType| {
            let i = b.schema().index_of(n).unwrap();
            datafusion::arrow::compute::cast(b.column(i), t).unwrap()
        };
        let d = col("district", &DataType::Utf8);
        let a = col("age", &DataType::Int64);
        let s = col("sex", &DataType::Utf8);
        let (d, a, s) = (
            d.as_string::<i32>(),
            a.as_primitive::<Int64Type>(),
            s.as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            if s.value(i) != "女" {
                continue;
            }
            *by.entry((d.value(i).to_owned(), a.value(i))).or_default() += 1;
            *total.entry(d.value(i).to_owned()).or_default() += 1;
        }
    }
    by.into_iter()
        .find(|((d, _), n)| (1..=9).contains(n) && total[d] >= 20)
        .map(|(k, _)| k)
        .expect("a small age group in a large district")
}

/// Through the command line: two jobs compute the same count (the women of a district) with and
/// without a few of them before either is released — the district's open total is far from
/// both — the first is released, the second's release is refused by the difference check and
/// its output withdrawn (on the record, with the reason); a third job asking it again after the
/// release has the cell suppressed at query time and its output flagged.
fn a_release_that_would_complete_a_differencing_pair_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let p = set_up(home);
    let (r, d) = (Some(p.reviewer.as_str()), Some(p.dev.as_str()));
    let out = submit(home, &p.dev, "residents:district,age,sex");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    ok(home, r, &["application", "approve", &app]);
    let (district, age) = one_of_few(&residents(3000));
    let all = format!(
        "sql=SELECT COUNT(age) AS n FROM residents WHERE district = '{district}' AND sex = '女'"
    );
    let fewer = format!(
        "sql=SELECT COUNT(age) AS n FROM residents WHERE district = '{district}' AND sex = '女' \
         AND age <> {age}"
    );
    let module = example("sql-report");
    let run = |param: &str| {
        let out = cli(
            home,
            d,
            &[
                "run",
                "--module",
                module.to_str().unwrap(),
                "--param",
                param,
                "--application",
                &app,
                "--table",
                "residents",
                "--json",
                "--no-cache",
            ],
        );
        let doc = json_of(&out);
        assert!(out.status.success(), "{doc}");
        doc
    };
    let first = run(&all);
    let second = run(&fewer);
    for doc in [&first, &second] {
        assert_ne!(doc["outputs"][0]["evidence"]["verdict"], "block", "{doc}");
    }
    for o in ["out-1", "out-2"] {
        ok(
            home,
            r,
            &[
                "output",
                "approve",
                o,
                "--affirm",
                "all",
                "--acknowledge-findings",
            ],
        );
    }
    let file = home.join("n.arrow");
    let f = file.to_str().unwrap();
    ok(home, d, &["output", "download", "out-1", "--out", f]);
    refused(
        home,
        d,
        &["output", "download", "out-2", "--out", f],
        "difference check",
    );
    let shown = ok(home, d, &["output", "show", "out-2", "--json"]);
    assert!(shown.contains("withdrawn"), "{shown}");
    assert!(shown.contains("difference check"), "{shown}");
    refused(
        home,
        d,
        &["output", "download", "out-2", "--out", f],
        "withdrawn",
    );
    // Asked again now: the cell is suppressed when the query runs, and the output is flagged.
    let third = run(&fewer);
    assert_eq!(
        third["outputs"][0]["evidence"]["verdict"], "flag",
        "{third}"
    );
    assert!(third.to_string().contains("difference"), "{third}");
    // The first output's job released other cells of no one's: a fourth job asking the same as
    // the first is shown its cell (nothing new).
    let fourth = run(&all);
    assert_eq!(
        fourth["outputs"][0]["evidence"]["verdict"], "pass",
        "{fourth}"
    );
}

pub fn tests() -> Vec<Trial> {
    crate::trials![
        a_release_that_would_complete_a_differencing_pair_is_refused,
        outputs_are_reviewed_released_with_receipts_and_taken_down
    ]
}
