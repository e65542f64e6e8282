//! The record end to end: every run is logged and sealed, every example job replays
//! bit-identically and re-derives from its dataset snapshots (from any working directory), a
//! changed dataset, module or transcript is named, every action that reads data or proves
//! something leaves an entry, and the log holds no data value, no guessable digest of SQL or
//! parameters, and no name a guest chose.

use std::path::Path;

use enclave_core::JobId;
use enclave_record::{Event, Replaying};
use enclave_runtime::Domain;
use enclave_runtime::replay::replay;
use enclave_sandbox::JobInputs;
use enclave_tests::*;
use libtest_mimic::Trial;
use serde_json::Value;

const SQL: &str = "SELECT district, COUNT(*) AS n, AVG(income) AS avg_income, SUM(income) AS total \
                   FROM residents GROUP BY district";

fn job(module: &str, table: &Path, params: &[(&str, &str)], policy: bool) -> Job {
    let mut j = Job::new(example_bytes(module)).table("residents", table);
    for (k, v) in params {
        j = j.param(k, v);
    }
    if policy {
        j = j.default_policy();
    }
    j.application = "audit-test".into();
    j.partitions = Some(4);
    j
}

fn log_verifies(d: &Domain) -> u64 {
    let f = std::fs::File::open(d.home.log_path()).unwrap();
    let key = d.home.log_signer().unwrap().verifier();
    enclave_tlog::verify_log(std::io::BufReader::new(f), &key, None)
        .unwrap()
        .entries
}

fn every_example_job_replays_bit_identically_and_rederives() {
    let (_dir, d) = temp_domain();
    let table = residents(20_000);
    for j in [
        job("sql-report", &table, &[("sql", SQL)], false),
        job("income-by-district", &table, &[], true),
        job("linear-model", &table, &[], false),
    ] {
        let r = j.run_in(&d).unwrap();
        assert!(r.result.is_ok(), "{:?}", r.result);
        assert!(r.transcript.as_ref().unwrap().exists());
        let rep = replay(&d, engine(), r.manifest.job, true).unwrap();
        assert!(rep.identical, "{:?}", rep.first_difference);
        assert_eq!(rep.outputs.len(), r.outputs.len());
        for (o, c) in r.outputs.iter().zip(&rep.outputs) {
            assert_eq!(c.replayed, Some(o.digest));
        }
        let checks = rep.rederived.unwrap();
        assert!(!checks.is_empty());
        assert!(checks.iter().all(|c| c.status == "same"), "{checks:?}");
        assert!(rep.entry.is_some(), "the replay is logged");
    }
    // Everything above — runs and replays — is in a log that verifies.
    assert!(log_verifies(&d) >= 15);
}

fn changed_dataset_module_and_transcript_are_each_named() {
    let (dir, d) = temp_domain();
    let table = dir.path().join("residents.parquet");
    std::fs::copy(residents(5000), &table).unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = job("sql-report", &table, &[("sql", SQL)], false)
            .run_in(&d)
            .unwrap();
        ids.push(r.manifest.job);
    }
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2],
        "the same job run three times, three ids"
    );

    // A changed dataset file: plain replay still reproduces the outputs (from the transcript),
    // re-derivation names the dataset (its snapshot is no longer in the domain).
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::copy(residents(3000), &table).unwrap();
    assert!(replay(&d, engine(), ids[0], false).unwrap().identical);
    let rep = replay(&d, engine(), ids[0], true).unwrap();
    let diff = rep.first_difference.unwrap();
    assert_eq!(diff.at, "dataset residents");
    assert!(diff.message.contains("changed"), "{}", diff.message);

    // An edited transcript.
    let path = d.home.transcript_path(&ids[1]);
    let mut sealed = std::fs::read(&path).unwrap();
    let n = sealed.len();
    sealed[n - 20] ^= 0x40;
    std::fs::write(&path, &sealed).unwrap();
    let rep = replay(&d, engine(), ids[1], false).unwrap();
    assert!(!rep.identical);
    assert_eq!(rep.first_difference.unwrap().at, "transcript");
    assert!(
        rep.entry.is_some(),
        "a replay that stops at the transcript is logged too"
    );

    // A changed module (all three runs share it).
    let module = example_bytes("sql-report");
    let stored = dir
        .path()
        .join("modules")
        .join(format!("{}.wasm", blake3::hash(&module).to_hex()));
    let mut altered = module.clone();
    altered.extend_from_slice(b"\0\x04name\x00"); // a trailing custom section: still valid Wasm
    std::fs::write(&stored, &altered).unwrap();
    let rep = replay(&d, engine(), ids[2], false).unwrap();
    let diff = rep.first_difference.unwrap();
    assert_eq!(diff.at, "module");
    assert!(diff.message.contains("changed"), "{}", diff.message);

    // Unknown jobs are an error, not a pass.
    assert!(replay(&d, engine(), JobId([0; 8]), false).is_err());
    // Every replay above is on the record, saying whether it re-derived.
    let log = std::fs::read_to_string(d.home.log_path()).unwrap();
    assert!(log.contains("job.replay.rederive.different"));
    assert!(log.contains("job.replay.transcript.identical"));
    assert!(log.contains("job.replay.transcript.different"));
}

fn replay_names_the_first_diverging_host_call_and_output() {
    let (dir, d) = temp_domain();
    let live = job("sql-report", &residents(5000), &[("sql", SQL)], false)
        .run_in(&d)
        .unwrap();
    assert!(live.result.is_ok(), "{:?}", live.result);
    let (t, _) = enclave_record::Transcript::open(
        &d.home.domain_secret().unwrap(),
        &d.home.transcript_path(&live.manifest.job),
        live.manifest.job,
    )
    .unwrap();
    assert!(matches!(t.events[0], Event::Open { .. }));
    let m = example_bytes("sql-report");
    let prepared = engine().sandbox.prepare(&m).unwrap();
    let run = |sql: &str, events: Vec<Event>| {
        let inputs = JobInputs {
            job: live.manifest.job,
            params: enclave_core::Params::new([("sql".to_owned(), sql.to_owned())]).unwrap(),
            seed: live.manifest.seed,
            clock_ms: 0,
            limits: live.manifest.limits.clone(),
        };
        engine()
            .sandbox
            .run(
                &prepared,
                inputs,
                Replaying::new(events),
                enclave_egress::Collector::new(1 << 20),
            )
            .unwrap_or_else(|r| panic!("{:?}", r.result))
    };
    // The guest asks for other SQL than recorded: host call #0 (query_open) diverges.
    let f = run("SELECT 1 AS one FROM residents", t.events.clone());
    assert!(f.report.result.is_err());
    let dv = f.queries.outcome().unwrap();
    assert_eq!((dv.call, dv.function), (0, "query_open"));
    assert!(dv.what.contains("SQL"), "{}", dv.what);

    // Other recorded results (the same query over other rows) give an output that is not
    // bit-identical: the replay depends on every recorded result.
    let other = job("sql-report", &residents(3000), &[("sql", SQL)], false)
        .run_in(&d)
        .unwrap();
    let (t2, _) = enclave_record::Transcript::open(
        &d.home.domain_secret().unwrap(),
        &d.home.transcript_path(&other.manifest.job),
        other.manifest.job,
    )
    .unwrap();
    let f = run(SQL, t2.events.clone());
    assert!(f.report.result.is_ok(), "{:?}", f.report.result);
    assert_ne!(f.outputs.outputs[0].digest, live.outputs[0].digest);

    // The untouched record replays to the very same output.
    let f = run(SQL, t.events);
    assert!(f.report.result.is_ok());
    assert_eq!(f.outputs.outputs[0].digest, live.outputs[0].digest);
    assert!(f.queries.outcome().is_none());
    drop(dir);
}

fn policy_refused_jobs_are_logged_and_replay_too() {
    let (_dir, d) = temp_domain();
    let r = job(
        "sql-report",
        &residents(5000),
        &[("sql", "SELECT district, income FROM residents")],
        true,
    )
    .run_in(&d)
    .unwrap();
    assert_eq!(err(&r).kind, enclave_core::ErrorKind::PolicyViolation);
    let entries = d.job_entries(&r.manifest.job).unwrap();
    assert_eq!(
        entries.last().unwrap().action,
        "job.finish.policy_violation"
    );
    let rep = replay(&d, engine(), r.manifest.job, true).unwrap();
    assert!(rep.identical, "{:?}", rep.first_difference);
    // A job refused at authorization (a dataset the policy does not grant) is logged as refused.
    let refused = Job::new(example_bytes("sql-report"))
        .table("not_a_dataset", residents(500))
        .default_policy()
        .run_in(&d);
    assert!(matches!(
        refused,
        Err(enclave_runtime::RuntimeError::Job(ref e)) if e.kind == enclave_core::ErrorKind::PolicyViolation
    ));
    let log = std::fs::read_to_string(d.home.log_path()).unwrap();
    assert!(log.contains("job.refuse.policy_violation"));
}

fn cli_audit_verify_prove_replay_export_and_no_data_values_in_the_log() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    // The table is given by a path relative to the working directory of the run.
    std::fs::copy(residents(5000), work.path().join("r.parquet")).unwrap();
    let secret_literal = "ZQXJ-not-in-any-log";
    let sql = format!(
        "SELECT district, COUNT(*) AS n FROM residents WHERE name <> '{secret_literal}' GROUP BY district"
    );
    let cmd = |cwd: &Path, args: &[&str]| {
        enclave_cmd(home.path())
            .current_dir(cwd)
            .args(args)
            .output()
            .unwrap()
    };
    let module = example("sql-report");
    let out = cmd(
        work.path(),
        &[
            "run",
            "--json",
            "--module",
            module.to_str().unwrap(),
            "--table",
            "residents=r.parquet",
            "--param",
            &format!("sql={sql}"),
            "--param",
            "secret_param=PARAMVALUE-42",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out);
    let job = v["job_id"].as_str().unwrap().to_owned();
    let entries = v["audit"]["entries"].as_array().unwrap().len();
    assert_eq!(
        entries, 6,
        "submit, dataset, query, output, its evidence, finish"
    );

    let elsewhere = tempfile::tempdir().unwrap();
    let out = cmd(elsewhere.path(), &["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_of(&out)["summary"]["entries"], 6);

    let out = cmd(
        elsewhere.path(),
        &[
            "audit",
            "prove",
            "--entry",
            "2",
            "--from-size",
            "1",
            "--json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out);
    let bundle: enclave_tlog::ProofBundle = serde_json::from_value(v["bundle"].clone()).unwrap();
    let key = std::fs::read_to_string(home.path().join("log.pub")).unwrap();
    let key = enclave_tlog::VerifierKey::parse(&key).unwrap();
    assert_eq!(bundle.check(&key, None).unwrap().entry, 2);
    let out = cmd(elsewhere.path(), &["audit", "prove", "--entry", "99"]);
    assert_eq!(out.status.code(), Some(2));

    // Replay and re-derive from another working directory: datasets are found by snapshot digest.
    let out = cmd(
        elsewhere.path(),
        &["audit", "replay", &job, "--rederive", "--json"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v = json_of(&out);
    assert_eq!(v["identical"], true);
    assert_eq!(v["rederived"][0]["status"], "same");

    let export = elsewhere.path().join("export");
    let out = cmd(
        elsewhere.path(),
        &["audit", "export", export.to_str().unwrap(), "--json"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = enclave_audit_cmd()
        .args(["verify", "--log"])
        .arg(export.join("log.jsonl"))
        .arg("--key")
        .arg(export.join("log.pub"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The log holds digests only: not the SQL literal, not the parameter, no resident value;
    // proofs, replays and exports are on it.
    let log = std::fs::read_to_string(home.path().join("audit/log.jsonl")).unwrap();
    assert!(!log.contains(secret_literal));
    assert!(!log.contains("SELECT"));
    assert!(!log.contains("PARAMVALUE"));
    for action in ["log.prove", "job.replay.rederive.identical", "log.export"] {
        assert!(log.contains(action), "{action} is not logged");
    }
    // The SQL digest is keyed by the domain: blake3 of the (guessed) text does not confirm it.
    let guess = blake3::hash(blake3::hash(sql.as_bytes()).as_bytes())
        .to_hex()
        .to_string();
    assert!(!log.contains(&blake3::hash(sql.as_bytes()).to_hex().to_string()));
    assert!(!log.contains(&guess));

    // A deleted line is named by the verifier, which exits 1.
    let mut lines: Vec<&str> = log.lines().collect();
    assert!(lines[3].contains("\"seq\":2,"), "{}", lines[3]);
    lines.remove(3);
    std::fs::write(home.path().join("audit/log.jsonl"), lines.join("\n") + "\n").unwrap();
    let out = cmd(elsewhere.path(), &["audit", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = json_of(&out);
    assert_eq!(v["failure"]["kind"], "sequence");
    assert_eq!(v["failure"]["entry"], 2);
}

fn output_names_chosen_by_the_guest_stay_out_of_the_log() {
    let (_dir, d) = temp_domain();
    // passthrough.wat names its output `result`; a guest could name it anything.
    let r = Job::new(wat_file("lib/passthrough.wat"))
        .table("residents", residents(500))
        .param("sql", "SELECT COUNT(*) AS n FROM residents")
        .run_in(&d)
        .unwrap();
    assert!(r.result.is_ok(), "{:?}", r.result);
    let log = std::fs::read_to_string(d.home.log_path()).unwrap();
    assert!(log.contains("/output:0\""), "outputs are logged by index");
    assert!(
        !log.contains("\"result\"") && !log.contains(":result"),
        "the guest's output name reached the log"
    );
}

fn opening_the_log_verifies_only_what_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let n = {
        let d = Domain::open(dir.path(), "developer:test".into()).unwrap();
        for _ in 0..3 {
            Job::new(wat_file("lib/ok.wat")).run_in(&d).unwrap();
        }
        d.log.size()
    };
    let d = Domain::open(dir.path(), "developer:test".into()).unwrap();
    assert_eq!(d.opened.entries, n);
    assert_eq!(d.opened.verified, 0, "the writer resumed from its state");
    Job::new(wat_file("lib/ok.wat")).run_in(&d).unwrap();
    drop(d);
    // A damaged state file only means verifying everything.
    std::fs::write(dir.path().join("audit/log.state"), b"{}").unwrap();
    let d = Domain::open(dir.path(), "developer:test".into()).unwrap();
    assert_eq!(d.opened.verified, d.opened.entries);
    drop(d);
    // The writer does not re-verify what it committed itself; auditors do. A line edited in the
    // verified prefix does not stop the writer, and `verify` names it.
    let log = dir.path().join("audit/log.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, text.replacen("\"seq\":1,", "\"seq\":9,", 1)).unwrap();
    let d = Domain::open(dir.path(), "developer:test".into()).unwrap();
    let f = std::fs::File::open(d.home.log_path()).unwrap();
    let key = d.home.log_signer().unwrap().verifier();
    let failure = enclave_tlog::verify_log(std::io::BufReader::new(f), &key, None).unwrap_err();
    assert_eq!(failure.entry, Some(1), "{failure}");
    // A state whose checkpoint is no longer where it says (the file was cut) is not trusted.
    drop(d);
    let cut = text.len() / 2;
    let cut = text[..cut].rfind('\n').unwrap() + 1;
    std::fs::write(&log, &text[..cut]).unwrap();
    let d = Domain::open(dir.path(), "developer:test".into()).unwrap();
    assert_eq!(d.opened.verified, d.opened.entries);
}

pub fn tests() -> Vec<Trial> {
    crate::trials![
        every_example_job_replays_bit_identically_and_rederives,
        changed_dataset_module_and_transcript_are_each_named,
        replay_names_the_first_diverging_host_call_and_output,
        policy_refused_jobs_are_logged_and_replay_too,
        cli_audit_verify_prove_replay_export_and_no_data_values_in_the_log,
        output_names_chosen_by_the_guest_stay_out_of_the_log,
        opening_the_log_verifies_only_what_is_new,
    ]
}
