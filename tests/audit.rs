//! The audit trail end to end: every run is logged and sealed, every example job replays
//! bit-identically and re-derives, and a changed dataset, module or transcript is named; the
//! CLI's `audit verify|prove|replay` speak JSON; the log never holds a data value.

use std::path::{Path, PathBuf};

use enclave::audit::replay::replay;
use enclave::audit::{Domain, local_actor};
use enclave::runner::LocalRun;
use enclave::sandbox::Event;
use enclave_tests::*;
use serde_json::Value;

const SQL: &str = "SELECT district, COUNT(*) AS n, AVG(income) AS avg_income, SUM(income) AS total \
                   FROM residents GROUP BY district";

fn local(module: &str, table: &Path, params: &[&str], policy: bool) -> LocalRun {
    LocalRun {
        module: example(module),
        tables: vec![format!("residents={}", table.display())],
        params: params.iter().map(|s| s.to_string()).collect(),
        policy: policy.then(|| root().join("policies/default.toml")),
        application: "audit-test".into(),
        target_partitions: Some(4),
        ..LocalRun::default()
    }
}

fn domain(dir: &Path) -> Domain {
    Domain::open(dir, local_actor("developer")).unwrap()
}

/// A private copy of the residents table that a test may change.
fn table_copy(dir: &Path, rows: u64) -> PathBuf {
    let p = dir.join(format!("residents-{rows}.parquet"));
    std::fs::copy(residents(rows), &p).unwrap();
    p
}

#[test]
fn every_example_job_replays_bit_identically_and_rederives() {
    let dir = tempfile::tempdir().unwrap();
    let d = domain(dir.path());
    let sb = sandbox();
    let table = residents(20_000);
    let sql_param = format!("sql={SQL}");
    let runs = [
        local("sql-report", &table, &[&sql_param], false),
        local("income-by-district", &table, &[], true),
        local("linear-model", &table, &[], false),
    ];
    for mut run in runs {
        run.domain_secret = d.home.domain_secret().unwrap();
        let logged = d.run(&run, &sb).unwrap();
        let r = &logged.report;
        assert!(r.result.is_ok(), "{:?}", r.result);
        assert!(logged.transcript.exists());
        let rep = replay(&d, &sb, &r.job_id, true).unwrap();
        assert!(rep.identical, "{:?}", rep.first_difference);
        assert_eq!(rep.outputs.len(), r.outputs.len());
        for (o, c) in r.outputs.iter().zip(&rep.outputs) {
            assert_eq!(c.replayed.as_deref(), Some(o.blake3.as_str()));
        }
        let checks = rep.rederived.unwrap();
        assert!(!checks.is_empty());
        assert!(checks.iter().all(|c| c.status == "same"), "{checks:?}");
    }
    // Everything above — runs and replays — is in a log that verifies.
    let f = std::fs::File::open(d.home.log_path()).unwrap();
    let key = d.home.log_signer().unwrap().verifier();
    let s = enclave_audit::verify_log(std::io::BufReader::new(f), &key, None).unwrap();
    assert!(s.entries >= 15, "{s:?}");
}

#[test]
fn changed_dataset_module_and_transcript_are_each_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = domain(dir.path());
    let sb = sandbox();
    let table = table_copy(dir.path(), 5000);
    let sql_param = format!("sql={SQL}");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut run = local("sql-report", &table, &[&sql_param], false);
        run.domain_secret = d.home.domain_secret().unwrap();
        ids.push(d.run(&run, &sb).unwrap().report.job_id);
    }
    // The same job run three times got three ids.
    assert!(ids[0] != ids[1] && ids[1] != ids[2]);

    // A changed dataset file: plain replay still reproduces the outputs (it uses the transcript),
    // re-derivation names the dataset.
    std::fs::copy(residents(3000), &table).unwrap();
    assert!(replay(&d, &sb, &ids[0], false).unwrap().identical);
    let rep = replay(&d, &sb, &ids[0], true).unwrap();
    let diff = rep.first_difference.unwrap();
    assert_eq!(diff.at, "dataset residents");
    assert!(diff.message.contains("changed"), "{}", diff.message);

    // An edited transcript.
    let path = d.home.transcript_path(&ids[1]);
    let mut sealed = std::fs::read(&path).unwrap();
    let n = sealed.len();
    sealed[n - 20] ^= 0x40;
    std::fs::write(&path, &sealed).unwrap();
    let rep = replay(&d, &sb, &ids[1], false).unwrap();
    assert!(!rep.identical);
    assert_eq!(rep.first_difference.unwrap().at, "transcript");

    // A changed module (all three runs share it).
    let module = std::fs::read(example("sql-report")).unwrap();
    let stored = dir
        .path()
        .join("modules")
        .join(format!("{}.wasm", blake3::hash(&module).to_hex()));
    let mut altered = module.clone();
    altered.extend_from_slice(b"\0\x04name\x00"); // a trailing custom section: still valid Wasm
    std::fs::write(&stored, &altered).unwrap();
    let rep = replay(&d, &sb, &ids[2], false).unwrap();
    let diff = rep.first_difference.unwrap();
    assert_eq!(diff.at, "module");
    assert!(diff.message.contains("changed"), "{}", diff.message);

    // Unknown jobs are an error, not a pass.
    assert!(replay(&d, &sb, "0000000000000000", false).is_err());
}

#[test]
fn replay_names_the_first_diverging_host_call_and_output() {
    let m = std::fs::read(example("sql-report")).unwrap();
    let sb = sandbox();
    let live = sb.run(&m, spec(&m, &[("sql", SQL)], vec![residents_ds(5000)]));
    assert!(live.result.is_ok(), "{:?}", live.result);
    let events = live.tape.unwrap().into_events();
    assert!(matches!(events[0], Event::Open { .. }));

    // The guest asks for other SQL than recorded: host call #0 (query_open) diverges.
    let mut s = spec(&m, &[("sql", "SELECT 1 AS one FROM residents")], vec![]);
    s.replay = Some(events.clone());
    let r = sb.run(&m, s);
    assert!(r.result.is_err());
    let d = r.tape.unwrap().replay_outcome().unwrap();
    assert_eq!((d.call, d.function), (0, "query_open"));
    assert!(d.what.contains("SQL"), "{}", d.what);

    // Other recorded results (the same query over other rows) give an output that is not
    // bit-identical: the replay depends on every recorded result.
    let other = sb.run(&m, spec(&m, &[("sql", SQL)], vec![residents_ds(3000)]));
    let mut changed = events.clone();
    changed.truncate(1);
    changed.extend(other.tape.unwrap().into_events().into_iter().skip(1));
    let mut s = spec(&m, &[("sql", SQL)], vec![]);
    s.replay = Some(changed);
    let r = sb.run(&m, s);
    assert!(r.result.is_ok(), "{:?}", r.result);
    assert_ne!(r.outputs[0].blake3, live.outputs[0].blake3);

    // The untouched tape replays to the very same output.
    let mut s = spec(&m, &[("sql", SQL)], vec![]);
    s.replay = Some(events);
    let r = sb.run(&m, s);
    assert!(r.result.is_ok());
    assert_eq!(r.outputs[0].blake3, live.outputs[0].blake3);
    assert!(r.tape.unwrap().replay_outcome().is_none());
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn cli_audit_verify_prove_replay_and_no_data_values_in_the_log() {
    let home = tempfile::tempdir().unwrap();
    let table = residents(5000);
    let secret_literal = "ZQXJ-not-in-any-log";
    let sql = format!(
        "SELECT district, COUNT(*) AS n FROM residents WHERE name <> '{secret_literal}' GROUP BY district"
    );
    let cmd = |args: &[&str]| {
        let mut c = std::process::Command::new(enclave_bin());
        c.env("ENCLAVE_HOME", home.path()).args(args);
        c.output().unwrap()
    };
    let module = example("sql-report");
    let out = cmd(&[
        "run",
        "--json",
        "--module",
        module.to_str().unwrap(),
        "--table",
        &format!("residents={}", table.display()),
        "--param",
        &format!("sql={sql}"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out);
    let job = v["job_id"].as_str().unwrap().to_owned();
    assert_eq!(v["audit"]["entries"].as_array().unwrap().len(), 5);

    let out = cmd(&["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_of(&out)["summary"]["entries"], 5);

    let out = cmd(&[
        "audit",
        "prove",
        "--entry",
        "2",
        "--from-size",
        "1",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out);
    let bundle: enclave_audit::ProofBundle = serde_json::from_value(v["bundle"].clone()).unwrap();
    let key = std::fs::read_to_string(home.path().join("log.pub")).unwrap();
    let key = enclave_audit::VerifierKey::parse(&key).unwrap();
    assert_eq!(bundle.check(&key, None).unwrap().entry, 2);
    let out = cmd(&["audit", "prove", "--entry", "99"]);
    assert_eq!(out.status.code(), Some(2));

    let out = cmd(&["audit", "replay", &job, "--rederive", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v = json_of(&out);
    assert_eq!(v["identical"], true);
    assert_eq!(v["rederived"][0]["status"], "same");

    // The log holds digests only: not the SQL literal, not the parameter, no resident value.
    let log = std::fs::read_to_string(home.path().join("audit/log.jsonl")).unwrap();
    assert!(!log.contains(secret_literal));
    assert!(!log.contains("SELECT"));
    // A deleted line is named by the verifier, which exits 1.
    let mut lines: Vec<&str> = log.lines().collect();
    assert!(lines[3].contains("\"seq\":2,"), "{}", lines[3]);
    lines.remove(3);
    std::fs::write(home.path().join("audit/log.jsonl"), lines.join("\n") + "\n").unwrap();
    let out = cmd(&["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!(v["failure"]["kind"], "sequence");
    assert_eq!(v["failure"]["entry"], 2);
}

#[test]
fn transcript_limit_ends_the_job_and_failed_jobs_replay_too() {
    let m = std::fs::read(example("sql-report")).unwrap();
    let sb = sandbox();
    let mut s = spec(
        &m,
        &[("sql", "SELECT * FROM residents")],
        vec![residents_ds(5000)],
    );
    s.limits.transcript_bytes = 64 << 10;
    let r = sb.run(&m, s);
    let e = err(&r);
    assert_eq!(e.limit, Some(enclave::Limit::TranscriptBytes), "{e:?}");

    // A job the policy refuses is logged with its status and replays to the same refusal.
    let dir = tempfile::tempdir().unwrap();
    let d = domain(dir.path());
    let table = residents(5000);
    let mut run = local(
        "sql-report",
        &table,
        &["sql=SELECT district, income FROM residents"],
        true,
    );
    run.domain_secret = d.home.domain_secret().unwrap();
    let logged = d.run(&run, &sb).unwrap();
    assert_eq!(
        err(&logged.report).kind,
        enclave::ErrorKind::PolicyViolation
    );
    let entries = d.job_entries(&logged.report.job_id).unwrap();
    assert_eq!(
        entries.last().unwrap().action,
        "job.finish.policy_violation"
    );
    let rep = replay(&d, &sb, &logged.report.job_id, true).unwrap();
    assert!(rep.identical, "{:?}", rep.first_difference);
}
