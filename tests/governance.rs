//! Governance through the command line, as the seed's workflow runs: the authority authorizes
//! the operator, the operator signs a development agreement, the developer applies, a reviewer
//! approves a narrowed column list, the entity is terminated; every step is in the log, which
//! verifies. Also: refusals by role, status and period, and SIGKILL during submissions and
//! decisions (the store and the log stay consistent, nothing acknowledged is lost).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use enclave_governance::{Governance, SqliteStore};
use enclave_tests::*;
use libtest_mimic::Trial;

use crate::parties::*;

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
    let fused_run = doc["job_id"].as_str().unwrap().to_owned();
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
    // Re-derivation opens the sealed social data again, for itself only.
    let rederived = cli(
        home,
        None,
        &[
            "audit",
            "replay",
            &fused_run,
            "--rederive",
            "--json",
            "--home",
            home.to_str().unwrap(),
        ],
    );
    let doc = json_of(&rederived);
    assert!(rederived.status.success(), "{doc}");
    let checks = doc["rederived"].as_array().expect("re-derivation checks");
    assert!(
        !checks.is_empty() && checks.iter().all(|c| c["status"] == "same"),
        "{doc}"
    );
    let left: Vec<_> = std::fs::read_dir(home.join("scratch"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "opened files left behind: {left:?}");
    assert!(home.join("keys/org-3.key").exists());
    // Product review: the governed job's output waits in quarantine until a reviewer approves
    // it; then its developer downloads it, with a signed receipt.
    let dl = home.join("out-1.arrow");
    let dl = dl.to_str().unwrap();
    refused(
        home,
        d,
        &["output", "download", "out-1", "--out", dl],
        "in quarantine",
    );
    ok(
        home,
        r,
        &[
            "output",
            "approve",
            "out-1",
            "--affirm",
            "all",
            "--acknowledge-findings",
        ],
    );
    ok(home, d, &["output", "download", "out-1", "--out", dl]);
    assert!(std::path::Path::new(&format!("{dl}.receipt")).exists());
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
    // Its downloads are refused and its quarantined outputs destroyed.
    refused(
        home,
        d,
        &["output", "download", "out-1", "--out", dl],
        "unknown or revoked",
    );
    let keys_left = std::fs::read_dir(home.join("entities/org-3/quarantine"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("key".as_ref()))
        .count();
    assert_eq!(keys_left, 0, "the entity's outputs are shredded");
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
        "gov.output.approve",
        "gov.output.release",
        "gov.output.download",
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

fn json(home: &Path, token: Option<&str>, args: &[&str]) -> serde_json::Value {
    let out = ok(home, token, args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("enclave {args:?}: `{out}` is not JSON: {e}"))
}

/// `--json` on every governance command: the result as one JSON document on stdout, with the
/// same facts the human text gives; listing shows a reviewer every pending application and a
/// developer only its own organization's.
fn governance_commands_speak_json() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let p = set_up(home);
    let (o, r, d) = (
        Some(p.operator.as_str()),
        Some(p.reviewer.as_str()),
        Some(p.dev.as_str()),
    );
    let who = json(home, d, &["token", "whoami", "--json"]);
    assert_eq!(who["user"], "dev");
    assert_eq!(who["role"], "developer");
    assert_eq!(who["org"], "acme-analytics");
    assert_eq!(who["org_status"], "active");
    // Catalogs: names, types, levels and counts.
    let cat = json(home, d, &["catalog", "list", "--json"]);
    assert_eq!(cat[0]["dataset"], "residents");
    let income = cat[0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "income")
        .cloned();
    assert_eq!(income.map(|c| c["level"].clone()), Some("L3".into()));
    let social = residents(500);
    let up = json(
        home,
        d,
        &[
            "social",
            "upload",
            "panel",
            social.to_str().unwrap(),
            "--level",
            "L2",
            "--statement",
            "ours",
            "--json",
        ],
    );
    assert_eq!(
        (up["review"].as_str(), up["rows"].as_u64()),
        (Some("pending"), Some(500))
    );
    let dec = json(
        home,
        r,
        &[
            "social", "approve", "panel", "--reason", "checked", "--json",
        ],
    );
    assert_eq!(dec["review"], "approved");
    assert_eq!(
        json(home, d, &["catalog", "fusion", "--json"])[0]["dataset"],
        "panel"
    );
    assert_eq!(
        json(home, o, &["jobs", "list", "--json"]),
        serde_json::json!([])
    );
    assert_eq!(json(home, o, &["jobs", "work", "--json"])["ran"], 0);
    let org = json(
        home,
        o,
        &[
            "org",
            "register",
            "--kind",
            "developer",
            "beta-labs",
            "--json",
        ],
    );
    assert_eq!(org["org"], "beta-labs");
    assert_eq!(org["kind"], "developer");
    let user = json(
        home,
        o,
        &[
            "user",
            "add",
            "--org",
            "beta-labs",
            "--role",
            "developer",
            "bea",
            "--json",
        ],
    );
    assert_eq!(
        (user["user"].as_str(), user["role"].as_str()),
        (Some("bea"), Some("developer"))
    );
    let issued = json(home, o, &["token", "issue", "bea", "--json"]);
    let bea = issued["token"].as_str().expect("the token").to_owned();
    assert_eq!(
        json(home, Some(&bea), &["token", "whoami", "--json"])["user"],
        "bea"
    );
    let agr = json(
        home,
        o,
        &[
            "agreement",
            "development",
            "--developer",
            "beta-labs",
            "--datasets",
            "residents",
            "--start",
            &days(0),
            "--end",
            &days(100),
            "--json",
        ],
    );
    let n = agr["agreement"].as_i64().expect("its number");
    assert_eq!(agr["kind"], "development");
    let ns = n.to_string();
    let susp = json(
        home,
        o,
        &["agreement", "suspend", &ns, "--reason", "audit", "--json"],
    );
    assert_eq!(susp["status"], "suspended");
    json(
        home,
        o,
        &[
            "agreement",
            "resume",
            &ns,
            "--reason",
            "audit done",
            "--json",
        ],
    );
    let shown = json(home, o, &["agreement", "show", &ns, "--json"]);
    assert_eq!(shown["datasets"], serde_json::json!(["residents"]));
    assert_eq!(shown["status_today"], "active");
    let history: Vec<_> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].clone())
        .collect();
    assert!(
        history.ends_with(&[serde_json::json!("suspended"), serde_json::json!("active")]),
        "{history:?}"
    );
    // Applications of two developers; each sees only its own, the reviewer sees both.
    let mine = String::from_utf8_lossy(&submit(home, &p.dev, "residents:district,income").stdout)
        .trim()
        .to_owned();
    let theirs = String::from_utf8_lossy(&submit(home, &bea, "residents:district").stdout)
        .trim()
        .to_owned();
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| a["application"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&json(home, d, &["application", "list", "--json"])),
        vec![mine.clone()]
    );
    assert_eq!(
        ids(&json(home, Some(&bea), &["application", "list", "--json"])),
        vec![theirs.clone()]
    );
    let pending = json(home, r, &["application", "list", "--pending", "--json"]);
    assert_eq!(ids(&pending), vec![mine.clone(), theirs.clone()]);
    assert_eq!(pending[0]["scenario"], "income by district");
    assert_eq!(
        pending[0]["requested"][0]["columns"],
        serde_json::json!(["district", "income"])
    );
    let approved = json(
        home,
        r,
        &[
            "application",
            "approve",
            &mine,
            "--columns",
            "residents:district",
            "--json",
        ],
    );
    assert_eq!(approved["state"], "approved");
    assert_eq!(
        approved["decision"]["columns"][0]["columns"],
        serde_json::json!(["district"])
    );
    let rejected = json(
        home,
        r,
        &[
            "application",
            "reject",
            &theirs,
            "--reason",
            "not necessary",
            "--json",
        ],
    );
    assert_eq!(rejected["state"], "rejected");
    assert!(
        json(home, r, &["application", "list", "--pending", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let shown = json(home, d, &["application", "show", &mine, "--json"]);
    assert_eq!(
        (shown["state"].as_str(), shown["purpose"].as_str()),
        (Some("approved"), Some("subsidy planning"))
    );
    // Another organization's application is not found, in JSON mode as in text.
    refused(
        home,
        d,
        &["application", "show", &theirs, "--json"],
        "not found",
    );
    // The human table lists the same ids.
    let table = ok(home, r, &["application", "list"]);
    assert!(
        table.contains(&mine) && table.contains(&theirs) && table.contains("rejected"),
        "{table}"
    );
    let end = json(
        home,
        o,
        &[
            "org",
            "terminate",
            "beta-labs",
            "--reason",
            "exit",
            "--json",
        ],
    );
    assert_eq!(end["status"], "terminated");
    assert_eq!(end["revoked"]["tokens"], 1);
    assert_eq!(end["revoked"]["users"], 1);
}

pub fn tests() -> Vec<Trial> {
    crate::trials![
        seed_workflow_end_to_end,
        governance_commands_speak_json,
        sigkill_during_submission_and_decision_loses_nothing
    ]
}
