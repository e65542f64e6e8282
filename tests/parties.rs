//! The governed domain the CLI tests share: the seed's parties set up through the command line
//! (authority, operator with admin and reviewer, a developer under a development agreement, a
//! registered dataset), and helpers to run commands as one of them and read the log.

use std::path::Path;
use std::process::Output;

use enclave_governance::Day;
use enclave_tests::*;

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
