//! Governance through the command line, as the seed's workflow runs: the authority authorizes
//! the operator, the operator signs a development agreement, the developer applies, a reviewer
//! approves a narrowed column list, the entity is terminated; every step is in the log, which
//! verifies. Also: refusals by role, status and period, and SIGKILL during submissions and
//! decisions (the store and the log stay consistent, nothing acknowledged is lost).

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use enclave_governance::{Day, Governance, SqliteStore};
use enclave_tests::*;
use libtest_mimic::Trial;

pub(crate) fn cli(home: &Path, token: Option<&str>, args: &[&str]) -> Output {
    let mut c = enclave_cmd(home);
    c.env_remove("ENCLAVE_TOKEN")
        .env("XDG_CONFIG_HOME", home.join("no-config"));
    if let Some(t) = token {
        c.env("ENCLAVE_TOKEN", t);
    }
    c.args(args).output().expect("the CLI runs")
}

pub(crate) fn ok(home: &Path, token: Option<&str>, args: &[&str]) -> String {
    let out = cli(home, token, args);
    assert!(
        out.status.success(),
        "enclave {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub(crate) fn refused(home: &Path, token: Option<&str>, args: &[&str], needle: &str) {
    let out = cli(home, token, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "enclave {args:?} should fail");
    assert!(
        err.contains(needle),
        "enclave {args:?}: `{err}` lacks `{needle}`"
    );
}

pub(crate) fn days(n: i64) -> String {
    Day::from_number(Day::today().number() + n)
        .expect("a day in range")
        .to_string()
}

/// Tokens of a domain set up to the point where a developer may apply.
pub(crate) struct Parties {
    pub(crate) authority: String,
    pub(crate) operator: String,
    pub(crate) reviewer: String,
    pub(crate) dev: String,
}

pub(crate) fn set_up(home: &Path) -> Parties {
    let authority = ok(
        home,
        None,
        &[
            "init",
            "--home",
            home.to_str().unwrap(),
            "--authority",
            "city-data-bureau",
        ],
    );
    let a = Some(authority.as_str());
    ok(
        home,
        a,
        &["org", "register", "--kind", "operator", "city-operator"],
    );
    ok(
        home,
        a,
        &[
            "user",
            "add",
            "--org",
            "city-operator",
            "--role",
            "operator-admin",
            "olga",
        ],
    );
    let operator = ok(home, a, &["token", "issue", "olga"]);
    ok(
        home,
        a,
        &[
            "agreement",
            "operation",
            "--operator",
            "city-operator",
            "--datasets",
            "residents,hospital_visits",
            "--start",
            &days(-30),
            "--end",
            &days(700),
        ],
    );
    let o = Some(operator.as_str());
    ok(
        home,
        o,
        &["org", "register", "--kind", "developer", "acme-analytics"],
    );
    ok(
        home,
        o,
        &[
            "user",
            "add",
            "--org",
            "acme-analytics",
            "--role",
            "developer",
            "dev",
        ],
    );
    let dev = ok(home, o, &["token", "issue", "dev"]);
    ok(
        home,
        o,
        &[
            "user",
            "add",
            "--org",
            "city-operator",
            "--role",
            "reviewer",
            "rita",
        ],
    );
    let reviewer = ok(home, o, &["token", "issue", "rita"]);
    ok(
        home,
        o,
        &[
            "agreement",
            "development",
            "--developer",
            "acme-analytics",
            "--datasets",
            "residents",
            "--start",
            &days(0),
            "--end",
            &days(365),
        ],
    );
    let file = residents(3000);
    ok(
        home,
        o,
        &["catalog", "register", "residents", file.to_str().unwrap()],
    );
    Parties {
        authority,
        operator,
        reviewer,
        dev,
    }
}

pub(crate) fn submit(home: &Path, dev: &str, columns: &str) -> Output {
    cli(
        home,
        Some(dev),
        &[
            "application",
            "submit",
            "--scenario",
            "income by district",
            "--purpose",
            "subsidy planning",
            "--columns",
            columns,
            "--start",
            &days(0),
            "--end",
            &days(90),
            "--measures",
            "aggregates only",
        ],
    )
}

/// The log's entries' actions (after checking it verifies with the domain's public key).
pub(crate) fn log_actions(home: &Path) -> Vec<String> {
    let out = enclave_audit_cmd()
        .args(["verify", "--log"])
        .arg(home.join("audit/log.jsonl"))
        .arg("--key")
        .arg(home.join("log.pub"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::read_to_string(home.join("audit/log.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["entry"]["action"].as_str().map(str::to_owned))
        .collect()
}

fn seed_workflow_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let p = set_up(home);
    let (a, o, r, d) = (
        Some(p.authority.as_str()),
        Some(p.operator.as_str()),
        Some(p.reviewer.as_str()),
        Some(p.dev.as_str()),
    );
    // A second init is refused: the domain has its authority.
    refused(
        home,
        None,
        &["init", "--home", home.to_str().unwrap()],
        "initialized already",
    );
    // At most three years.
    refused(
        home,
        o,
        &[
            "agreement",
            "development",
            "--developer",
            "acme-analytics",
            "--datasets",
            "residents",
            "--start",
            &days(0),
            "--end",
            &days(4 * 365),
        ],
        "at most 3 years",
    );
    let out = submit(home, &p.dev, "residents:district,income,name");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(app, "app-1");
    // Roles: the developer cannot decide, the reviewer cannot administer, the operator admin
    // cannot decide either (separation of duties), the authority cannot sign development.
    refused(home, d, &["application", "approve", &app], "may not decide");
    refused(home, o, &["application", "approve", &app], "may not decide");
    refused(
        home,
        r,
        &[
            "user",
            "add",
            "--org",
            "acme-analytics",
            "--role",
            "developer",
            "mallory",
        ],
        "may not manage users",
    );
    refused(
        home,
        r,
        &["org", "register", "--kind", "developer", "shell-co"],
        "may not register",
    );
    refused(home, d, &["token", "issue", "dev"], "may not manage users");
    refused(
        home,
        a,
        &[
            "agreement",
            "development",
            "--developer",
            "acme-analytics",
            "--datasets",
            "residents",
            "--start",
            &days(0),
            "--end",
            &days(30),
        ],
        "may not sign",
    );
    // A column outside the request cannot be approved; a narrowed list can.
    refused(
        home,
        r,
        &[
            "application",
            "approve",
            &app,
            "--columns",
            "residents:phone",
        ],
        "was not requested",
    );
    ok(
        home,
        r,
        &[
            "application",
            "approve",
            &app,
            "--columns",
            "residents:district,income",
        ],
    );
    let shown = ok(home, d, &["application", "show", &app]);
    assert!(
        shown.contains("approved residents: district, income"),
        "{shown}"
    );
    assert!(
        !shown.contains("approved residents: district, income, name"),
        "{shown}"
    );
    // The developer samples locally, then runs the job under the application: the domain's
    // policy narrowed to the approved columns.
    let module = example("sql-report");
    let run_with = |token: Option<&str>, app: &str, sql: &str, tables: &[&str]| {
        let sql = format!("sql={sql}");
        let mut args = vec![
            "run",
            "--module",
            module.to_str().unwrap(),
            "--param",
            &sql,
            "--application",
            app,
            "--json",
            "--no-cache",
        ];
        for t in tables {
            args.extend(["--table", t]);
        }
        let out = cli(home, token, &args);
        (out.status.success(), json_of(&out))
    };
    let run = |token: Option<&str>, app: &str, sql: &str| run_with(token, app, sql, &["residents"]);
    // The catalog lists what was registered, without values.
    let listed = ok(home, d, &["catalog", "list"]);
    assert!(listed.contains("residents v1: 3000 rows"), "{listed}");
    assert!(
        listed.contains("income Int64 (L3)") || listed.contains("income"),
        "{listed}"
    );
    // Under an application the file comes from the catalog, not from the developer.
    let (ran, doc) = run_with(d, &app, "SELECT 1", &["residents=/etc/passwd"]);
    assert!(!ran && doc.to_string().contains("catalog"), "{doc}");
    let sql = "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY district";
    let (ran, doc) = run(d, &app, sql);
    assert!(ran, "{doc}");
    let governed_run = doc["job_id"].as_str().unwrap().to_owned();
    assert_eq!(doc["record"]["status"], "succeeded", "{doc}");
    assert_eq!(doc["policy"]["kind"], "domain");
    assert_eq!(doc["application"], app.as_str());
    assert_eq!(doc["outputs"][0]["rows"], 9);
    // `name` was requested but not approved: the job may not read it.
    let (ran, doc) = run(
        d,
        &app,
        "SELECT name, COUNT(*) AS n FROM residents GROUP BY name",
    );
    assert!(!ran);
    assert!(doc.to_string().contains("name"), "{doc}");
    // Without a token, or with another role's token, nothing runs under the application.
    let (ran, doc) = run(None, &app, sql);
    assert!(!ran && doc.to_string().contains("no token"), "{doc}");
    let (ran, doc) = run(r, &app, sql);
    assert!(
        !ran && doc.to_string().contains("may not submit a job"),
        "{doc}"
    );
    let (ran, doc) = run(d, "app-99", sql);
    assert!(
        !ran && doc.to_string().contains("not an application of"),
        "{doc}"
    );
    // Social data: a developer brings its own; until a reviewer approves it no job joins it.
    let social = residents(2000);
    refused(
        home,
        d,
        &[
            "social",
            "upload",
            "residents",
            social.to_str().unwrap(),
            "--level",
            "L2",
            "--statement",
            "ours",
        ],
        "dataset of the domain policy",
    );
    ok(
        home,
        d,
        &[
            "social",
            "upload",
            "partner_panel",
            social.to_str().unwrap(),
            "--level",
            "L2",
            "--statement",
            "panel collected with consent under contract 7",
        ],
    );
    let both = ["residents", "partner_panel"];
    let (ran, doc) = run_with(d, &app, sql, &both);
    assert!(!ran && doc.to_string().contains("not approved"), "{doc}");
    refused(
        home,
        d,
        &["social", "approve", "partner_panel", "--reason", "mine"],
        "may not decide social data",
    );
    ok(
        home,
        r,
        &[
            "social",
            "approve",
            "partner_panel",
            "--reason",
            "lawful source checked",
        ],
    );
    let (ran, doc) = run_with(d, &app, sql, &both);
    assert!(ran, "{doc}");
    let fusion = ok(home, d, &["catalog", "fusion"]);
    assert!(fusion.contains("partner_panel v1"), "{fusion}");
    // A dataset outside the agreement cannot even be applied for.
    let out = submit(home, &p.dev, "hospital_visits:cost");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no development agreement"));
    // Suspended: applications refused; resumed: accepted again.
    ok(
        home,
        o,
        &[
            "org",
            "suspend",
            "acme-analytics",
            "--reason",
            "late report",
        ],
    );
    let out = submit(home, &p.dev, "residents:income");
    assert!(String::from_utf8_lossy(&out.stderr).contains("suspended"));
    ok(
        home,
        o,
        &[
            "org",
            "resume",
            "acme-analytics",
            "--reason",
            "report received",
        ],
    );
    // The entity's data is sealed under its key: its social data, the module of its jobs and
    // their transcripts; the auditor can replay its job while the entity exists.
    let sealed: Vec<std::path::PathBuf> = ["social", "modules", "transcripts"]
        .iter()
        .flat_map(|k| {
            std::fs::read_dir(home.join("entities").join("org-3").join(k))
                .unwrap_or_else(|e| panic!("entities/org-3/{k}: {e}"))
                .map(|e| e.unwrap().path())
        })
        .collect();
    assert!(sealed.len() >= 3, "{sealed:?}");
    for f in &sealed {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            bytes.starts_with(b"ENCLSF01") || bytes.starts_with(b"ENCLTX02"),
            "{f:?}"
        );
        assert!(
            !bytes.windows(4).any(|w| w == b"PAR1" || w == b"\0asm"),
            "plaintext Parquet or Wasm in {f:?}"
        );
    }
    let module_digest = enclave_core::Digest::of(&std::fs::read(&module).unwrap());
    assert!(
        !home
            .join("modules")
            .join(format!("{module_digest}.wasm"))
            .exists(),
        "the governed job's module is kept in the clear"
    );
    let replay = cli(
        home,
        None,
        &[
            "audit",
            "replay",
            &governed_run,
            "--home",
            home.to_str().unwrap(),
        ],
    );
    assert!(
        replay.status.success(),
        "{}{}",
        String::from_utf8_lossy(&replay.stdout),
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(home.join("keys/org-3.key").exists());
    // Terminated: the developer's token no longer works; its application is revoked; its key is
    // destroyed, and with it its data (crypto-shredding: backups of `entities/` too).
    let out = ok(
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
    let _ = out;
    refused(home, d, &["token", "whoami"], "unknown or revoked");
    let (ran, doc) = run(d, &app, sql);
    assert!(
        !ran && doc.to_string().contains("unknown or revoked"),
        "{doc}"
    );
    refused(
        home,
        d,
        &["application", "show", &app],
        "unknown or revoked",
    );
    assert!(!home.join("keys/org-3.key").exists());
    assert!(home.join("keys/org-3.destroyed").exists());
    let replay = cli(
        home,
        None,
        &[
            "audit",
            "replay",
            &governed_run,
            "--home",
            home.to_str().unwrap(),
        ],
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&replay.stdout),
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(
        !replay.status.success() && said.contains("unreadable"),
        "{said}"
    );
    let mut gov = Governance::new(SqliteStore::open(&home.join("governance.db")).unwrap());
    let reviewer = gov.authenticate(&p.reviewer).unwrap();
    let revoked = gov
        .application(&reviewer, &enclave_core::ApplicationId::new(&app).unwrap())
        .unwrap();
    assert!(matches!(
        revoked.decision,
        enclave_governance::Decision::Revoked { .. }
    ));
    // Every step is in the log, in order, and the log verifies.
    let actions = log_actions(home);
    let gov_steps: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("gov."))
        .collect();
    assert_eq!(gov_steps.first(), Some(&"gov.domain.init"));
    for must in [
        "gov.org.register.operator",
        "gov.agreement.operation",
        "gov.agreement.development",
        "gov.application.submit",
        "gov.application.approve",
        "gov.org.suspend",
        "gov.org.resume",
        "gov.org.terminate",
        "gov.org.shred",
        "gov.job.submit",
        "gov.job.start",
        "gov.job.succeed",
        "gov.job.refuse",
        "gov.catalog.register",
        "gov.social.upload",
        "gov.social.approve",
    ] {
        assert!(
            gov_steps.contains(&must),
            "{must} missing from {gov_steps:?}"
        );
    }
    assert!(
        actions.iter().any(|a| a == "job.submit"),
        "the governed job ran on the record"
    );
    assert!(gov.unlogged_steps().unwrap().is_empty());
    // No token and no free text in the log.
    let log = std::fs::read_to_string(home.join("audit/log.jsonl")).unwrap();
    for secret in [
        p.dev.as_str(),
        p.reviewer.as_str(),
        "subsidy planning",
        "agreement violated",
    ] {
        assert!(!log.contains(secret));
    }
}

/// Starts `args` and SIGKILLs it after `delay`; whether it finished first.
pub(crate) fn kill_after(home: &Path, token: &str, args: &[String], delay: Duration) -> bool {
    let mut c = enclave_cmd(home);
    c.env("ENCLAVE_TOKEN", token)
        .env("XDG_CONFIG_HOME", home.join("no-config"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    std::thread::sleep(delay);
    let done = matches!(child.try_wait(), Ok(Some(s)) if s.success());
    let _ = child.kill();
    let _ = child.wait();
    done
}

fn sigkill_during_submission_and_decision_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let p = set_up(home);
    let store = home.join("governance.db");
    let submit_args: Vec<String> = [
        "application",
        "submit",
        "--scenario",
        "s",
        "--purpose",
        "p",
        "--columns",
        "residents:income",
        "--start",
        &days(0),
        "--end",
        &days(30),
        "--measures",
        "m",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut acknowledged = 0;
    for i in 0..24u64 {
        // Delays from 0 to ~70 ms cover start-up, the transaction and the log append.
        if kill_after(home, &p.dev, &submit_args, Duration::from_millis(i * 3)) {
            acknowledged += 1;
        }
    }
    // Any command recovers: journaled steps reach the log.
    ok(home, Some(&p.dev), &["token", "whoami"]);
    let mut gov = Governance::new(SqliteStore::open(&store).unwrap());
    let dev = gov.authenticate(&p.dev).unwrap();
    let (_, apps) = gov.own_records(&dev).unwrap();
    let submitted = log_actions(home)
        .iter()
        .filter(|a| *a == "gov.application.submit")
        .count();
    assert_eq!(
        submitted,
        apps.len(),
        "every stored application is logged once, and only those"
    );
    assert!(
        apps.len() >= acknowledged,
        "an acknowledged submission was lost"
    );
    assert!(gov.unlogged_steps().unwrap().is_empty());
    // Decisions: kill reviewers mid-approval.
    let mut approved_ack = 0;
    for (i, app) in apps.iter().enumerate() {
        let args: Vec<String> = ["application", "approve", app.id.as_str()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if kill_after(
            home,
            &p.reviewer,
            &args,
            Duration::from_millis(i as u64 * 3),
        ) {
            approved_ack += 1;
        }
    }
    ok(home, Some(&p.reviewer), &["token", "whoami"]);
    let (_, apps) = gov.own_records(&dev).unwrap();
    let approved = apps
        .iter()
        .filter(|a| matches!(a.decision, enclave_governance::Decision::Approved { .. }))
        .count();
    let logged = log_actions(home)
        .iter()
        .filter(|a| *a == "gov.application.approve")
        .count();
    assert_eq!(
        logged, approved,
        "every stored decision is logged once, and only those"
    );
    assert!(
        approved >= approved_ack,
        "an acknowledged decision was lost"
    );
    assert!(gov.unlogged_steps().unwrap().is_empty());
}

pub fn tests() -> Vec<Trial> {
    crate::trials![
        seed_workflow_end_to_end,
        sigkill_during_submission_and_decision_loses_nothing
    ]
}
