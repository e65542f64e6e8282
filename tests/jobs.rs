//! Jobs under applications through the command line: the record of each job (status, usage,
//! its log entries and transcript), the bounded worker pool, termination failing queued jobs,
//! and SIGKILL during submissions and runs (after a restart the store and the log agree, no job
//! stays running, nothing acknowledged is lost).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use enclave_tests::*;
use libtest_mimic::Trial;

use crate::parties::{Parties, cli, log_actions, ok, refused, set_up, submit};

/// An approved application (`residents:district,income`) of the set-up developer.
fn approved(home: &Path, p: &Parties) -> String {
    let out = submit(home, &p.dev, "residents:district,income");
    assert!(out.status.success());
    let app = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    ok(home, Some(&p.reviewer), &["application", "approve", &app]);
    app
}

fn run_args(app: &str, extra: &[&str]) -> Vec<String> {
    let module = example("sql-report");
    let mut v: Vec<String> = [
        "run",
        "--module",
        module.to_str().unwrap(),
        "--param",
        "sql=SELECT district, COUNT(*) AS n FROM residents GROUP BY district",
        "--application",
        app,
        "--table",
        "residents",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn records(home: &Path, token: &str) -> Vec<serde_json::Value> {
    let out = ok(
        home,
        Some(token),
        &["jobs", "list", "--json", "--limit", "10000"],
    );
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Log entries as (action, subject).
fn entries(home: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(home.join("audit/log.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            Some((
                v["entry"]["action"].as_str()?.to_owned(),
                v["entry"]["subject"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// Every run the log opened is closed (finished or refused), and every record's run that the
/// log opened is one of them.
fn runs_are_closed(home: &Path) {
    let mut open: BTreeMap<String, bool> = BTreeMap::new();
    for (action, subject) in entries(home) {
        if action == "job.submit" {
            open.insert(subject, false);
        } else if action.starts_with("job.finish.") || action.starts_with("job.refuse.") {
            open.insert(subject, true);
        }
    }
    let dangling: Vec<_> = open.iter().filter(|(_, c)| !**c).collect();
    assert!(dangling.is_empty(), "runs never closed: {dangling:?}");
}

fn jobs_run_on_the_queue_with_their_records() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let p = set_up(home);
    let app = approved(home, &p);
    let (o, d) = (Some(p.operator.as_str()), Some(p.dev.as_str()));
    // Run here: submitted, run, recorded.
    let mut args = run_args(&app, &["--json", "--no-cache"]);
    let out = cli(
        home,
        d,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = json_of(&out);
    let rec = &doc["record"];
    assert_eq!(rec["job"], "job-1");
    assert_eq!(rec["status"], "succeeded", "{doc}");
    assert_eq!(rec["application"], app.as_str());
    assert!(rec["usage"]["fuel"].as_u64().unwrap() > 0, "{rec}");
    assert_eq!(rec["usage"]["queries"], 1);
    assert!(rec["usage"]["bytes_emitted"].as_u64().unwrap() > 0);
    let run = rec["run"].as_str().unwrap().to_owned();
    assert_eq!(
        doc["job_id"],
        run.as_str(),
        "the record links the runtime's job"
    );
    assert!(rec["transcript"].as_str().unwrap().contains(&run));
    let first = rec["entries"][0].as_u64().unwrap();
    let last = rec["entries"][1].as_u64().unwrap();
    assert!(first < last);
    let shown = ok(home, d, &["jobs", "show", "job-1", "--json"]);
    assert!(shown.contains("succeeded"), "{shown}");
    // Queued for the workers: the developer may not run them, the operator's pool does.
    args = run_args(&app, &["--detach"]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    for n in 2..=4 {
        assert_eq!(ok(home, d, &argv), format!("job-{n}"));
    }
    let queued = ok(home, d, &["jobs", "list", "--status", "queued", "--json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&queued)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    refused(home, d, &["jobs", "work"], "may not run the job workers");
    refused(home, d, &["jobs", "show", "job-99"], "not found");
    let out = cli(home, o, &["jobs", "work", "--workers", "2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("3 job(s) run by 2 worker(s)"), "{err}");
    let all = records(home, &p.operator);
    assert_eq!(all.len(), 4);
    for r in &all {
        assert_eq!(r["status"], "succeeded", "{r}");
    }
    // An entity's module is compiled in memory only: no native code outlives its key.
    let cached: Vec<_> = std::fs::read_dir(home.join("cache"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        cached.is_empty(),
        "compiled entity code on disk: {cached:?}"
    );
    let argv_cached = run_args(&app, &["--cache-dir", "/tmp/x"]);
    let argv_cached: Vec<&str> = argv_cached.iter().map(String::as_str).collect();
    refused(home, d, &argv_cached, "compiles in memory only");
    // Termination fails what is still queued; the developer is locked out.
    assert_eq!(ok(home, d, &argv), "job-5");
    ok(
        home,
        o,
        &[
            "org",
            "terminate",
            "acme-analytics",
            "--reason",
            "agreement violated",
        ],
    );
    let five = records(home, &p.operator)
        .into_iter()
        .find(|r| r["job"] == "job-5")
        .unwrap();
    assert_eq!(five["status"], "failed");
    assert!(five["error"].as_str().unwrap().contains("terminated"));
    refused(home, d, &["jobs", "list"], "unknown or revoked");
    // Retention purges only after six months; reviewers may not purge.
    let r = ok(home, o, &["retention", "--dry-run", "--json"]);
    let r: serde_json::Value = serde_json::from_str(&r).unwrap();
    assert_eq!(r["purged"].as_array().unwrap().len(), 0, "{r}");
    refused(home, Some(&p.reviewer), &["retention"], "may not purge");
    refused(home, d, &argv, "unknown or revoked");
    // Every state change is on the record, and the log verifies.
    let actions = log_actions(home);
    let count = |a: &str| actions.iter().filter(|x| *x == a).count();
    assert_eq!(count("gov.job.submit"), 5);
    assert_eq!(count("gov.job.start"), 4);
    assert_eq!(count("gov.job.succeed"), 4);
    runs_are_closed(home);
}

/// Starts `args` as `token`'s user and SIGKILLs it after `delay`: whether the submission was
/// acknowledged (its job number printed) before the kill.
fn kill_after(home: &Path, token: &str, args: &[String], delay: Duration) -> Option<String> {
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut c = enclave_cmd(home);
    c.env("ENCLAVE_TOKEN", token)
        .env("XDG_CONFIG_HOME", home.join("no-config"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(err.reopen().unwrap());
    let mut child = c.spawn().unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(err.path()).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("submitted "))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
}

fn sigkill_during_job_submission_and_runs_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let p = set_up(home);
    let app = approved(home, &p);
    let mut acknowledged = Vec::new();
    for i in 0..24u64 {
        // Delays from 0 to ~0.7 s cover start-up, the submission's transaction and log append,
        // the worker's start and the run; every third is detached.
        let extra: &[&str] = if i % 3 == 0 {
            &["--detach"]
        } else {
            &["--no-cache"]
        };
        if let Some(job) = kill_after(
            home,
            &p.dev,
            &run_args(&app, extra),
            Duration::from_millis(i * 30),
        ) {
            acknowledged.push(job);
        }
    }
    // A restart: the operator's recovery ends jobs whose worker died.
    ok(home, Some(&p.operator), &["jobs", "recover"]);
    let all = records(home, &p.operator);
    for job in &acknowledged {
        assert!(
            all.iter().any(|r| r["job"] == job.as_str()),
            "acknowledged {job} was lost"
        );
    }
    for r in &all {
        assert_ne!(r["status"], "running", "{r}");
    }
    let actions = log_actions(home);
    let count = |a: &str| actions.iter().filter(|x| *x == a).count();
    assert_eq!(
        count("gov.job.submit"),
        all.len(),
        "every stored job is logged once, and only those"
    );
    let interrupted = all.iter().filter(|r| r["status"] == "interrupted").count();
    assert_eq!(count("gov.job.interrupt"), interrupted);
    runs_are_closed(home);
    // What was queued is resumed by the workers and runs to its end.
    ok(home, Some(&p.operator), &["jobs", "work"]);
    let all = records(home, &p.operator);
    for r in &all {
        let s = r["status"].as_str().unwrap();
        assert!(
            matches!(s, "succeeded" | "interrupted"),
            "{r}: a job either ran or lost its worker"
        );
    }
    runs_are_closed(home);
    let mut gov = enclave_governance::Governance::new(
        enclave_governance::SqliteStore::open(&home.join("governance.db")).unwrap(),
    );
    assert!(gov.unlogged_steps().unwrap().is_empty());
}

pub fn tests() -> Vec<Trial> {
    crate::trials![
        jobs_run_on_the_queue_with_their_records,
        sigkill_during_job_submission_and_runs_loses_nothing
    ]
}
