//! The workflow end to end on the SQLite store, with a negative test for every check.

use enclave_core::{ApplicationId, TableName};

use crate::workflow::Verdict;
use crate::*;

fn t(s: &str) -> TableName {
    TableName::new(s).unwrap()
}

fn d(s: &str) -> Day {
    s.parse().unwrap()
}

const NOW: i64 = 1_796_000_000;

struct World {
    gov: Governance<SqliteStore>,
    authority: Actor,
    operator: Actor,
    reviewer: Actor,
    dev: Actor,
    other_dev: Actor,
}

fn login(gov: &mut Governance<SqliteStore>, admin: &Actor, user: &str) -> Actor {
    let token = gov.issue_token(admin, user, NOW).unwrap();
    gov.authenticate(token.as_str()).unwrap()
}

fn world() -> World {
    let mut gov = Governance::new(SqliteStore::open_in_memory().unwrap());
    let (authority, _) = gov.bootstrap("city-data-bureau", "alice", NOW).unwrap();
    gov.register_org(&authority, "city-operator", OrgKind::Operator, NOW)
        .unwrap();
    gov.add_user(
        &authority,
        "city-operator",
        "olga",
        Role::OperatorAdmin,
        NOW,
    )
    .unwrap();
    let operator = login(&mut gov, &authority, "olga");
    gov.authorize_operation(
        &authority,
        "city-operator",
        &[t("residents"), t("hospital_visits")],
        d("2026-01-01"),
        d("2028-12-31"),
        NOW,
    )
    .unwrap();
    gov.add_user(&operator, "city-operator", "rita", Role::Reviewer, NOW)
        .unwrap();
    let reviewer = login(&mut gov, &operator, "rita");
    for (org, user) in [("acme-analytics", "dev"), ("other-lab", "eve")] {
        gov.register_org(&operator, org, OrgKind::Developer, NOW)
            .unwrap();
        gov.add_user(&operator, org, user, Role::Developer, NOW)
            .unwrap();
        gov.sign_development(
            &operator,
            org,
            &[t("residents")],
            d("2026-06-01"),
            d("2027-05-31"),
            d("2026-12-03"),
            NOW,
        )
        .unwrap();
    }
    for name in ["residents", "hospital_visits"] {
        gov.register_dataset(&operator, &t(name), &facts(name, 1), d("2026-12-03"), NOW)
            .unwrap();
    }
    let dev = login(&mut gov, &operator, "dev");
    let other_dev = login(&mut gov, &operator, "eve");
    World {
        gov,
        authority,
        operator,
        reviewer,
        dev,
        other_dev,
    }
}

fn facts(name: &str, seed: u8) -> SnapshotFacts {
    SnapshotFacts {
        path: format!("/domain/{name}-{seed}.parquet"),
        blake3: [seed; 32],
        rows: 1000,
        bytes: 1 << 20,
        columns: ["resident_id", "district", "income", "name"]
            .iter()
            .map(|c| CatalogColumn {
                name: (*c).into(),
                data_type: "Utf8".into(),
                level: "L3".into(),
            })
            .collect(),
    }
}

fn request(cols: &str, start: &str, end: &str) -> ApplicationRequest {
    ApplicationRequest {
        scenario: "income statistics by district".into(),
        purpose: "housing subsidy planning".into(),
        columns: parse_columns(cols).unwrap(),
        start: d(start),
        end: d(end),
        measures: "aggregates only; reviewed outputs".into(),
    }
}

fn refused(r: Result<impl std::fmt::Debug, GovError>, needle: &str) {
    match r {
        Err(
            e @ (GovError::Refused(_)
            | GovError::Forbidden { .. }
            | GovError::Invalid(_)
            | GovError::NotFound(_)
            | GovError::Unauthenticated(_)),
        ) => {
            assert!(e.to_string().contains(needle), "`{e}` lacks `{needle}`");
            assert!(e.is_user_error());
        }
        other => panic!("expected a refusal containing `{needle}`, got {other:?}"),
    }
}

#[test]
fn approved_application_is_the_grant() {
    let mut w = world();
    let today = d("2026-12-03");
    let app = w
        .gov
        .submit_application(
            &w.dev,
            &request("residents:district,income,name", "2026-12-01", "2027-03-31"),
            today,
            NOW,
        )
        .unwrap();
    refused(
        w.gov.grant_for_job(&w.dev, &app, &[t("residents")], today),
        "not decided",
    );
    let narrowed = parse_columns("residents:district,income").unwrap();
    w.gov
        .decide(
            &w.reviewer,
            &app,
            &Verdict::Approve {
                narrowed: Some(narrowed),
            },
            NOW,
        )
        .unwrap();
    let grant = w
        .gov
        .grant_for_job(&w.dev, &app, &[t("residents")], today)
        .unwrap();
    assert_eq!(grant.application, app);
    assert_eq!(
        grant.columns_of("residents").unwrap(),
        ["district", "income"]
    );
    assert!(grant.columns_of("hospital_visits").is_none());
    // Decided once only.
    refused(
        w.gov.decide(
            &w.reviewer,
            &app,
            &Verdict::Reject {
                reason: "late".into(),
            },
            NOW,
        ),
        "decided already",
    );
    // Outside the application's period.
    refused(
        w.gov
            .grant_for_job(&w.dev, &app, &[t("residents")], d("2027-04-01")),
        "runs from",
    );
    // A dataset the approval does not list.
    refused(
        w.gov
            .grant_for_job(&w.dev, &app, &[t("hospital_visits")], today),
        "not approved",
    );
    // Another developer's application.
    refused(
        w.gov
            .grant_for_job(&w.other_dev, &app, &[t("residents")], today),
        "not an application of `other-lab`",
    );
    refused(w.gov.application(&w.other_dev, &app), "not found");
    // Roles: developers do not decide, reviewers do not administer or run jobs.
    refused(
        w.gov
            .decide(&w.dev, &app, &Verdict::Approve { narrowed: None }, NOW),
        "may not decide an application",
    );
    refused(
        w.gov.add_user(
            &w.reviewer,
            "acme-analytics",
            "mallory",
            Role::Developer,
            NOW,
        ),
        "may not manage users",
    );
    refused(
        w.gov.set_org_status(
            &w.reviewer,
            "acme-analytics",
            OrgStatus::Suspended,
            "x",
            NOW,
        ),
        "may not suspend",
    );
    refused(
        w.gov
            .grant_for_job(&w.reviewer, &app, &[t("residents")], today),
        "may not submit a job",
    );
    refused(
        w.gov
            .register_org(&w.dev, "shell-co", OrgKind::Developer, NOW),
        "may not register",
    );
    refused(
        w.gov.sign_development(
            &w.authority,
            "acme-analytics",
            &[t("residents")],
            today,
            today,
            today,
            NOW,
        ),
        "may not sign",
    );
}

#[test]
fn narrowing_cannot_widen_and_rejection_needs_a_reason() {
    let mut w = world();
    let today = d("2026-12-03");
    let app = w
        .gov
        .submit_application(
            &w.dev,
            &request("residents:income", "2026-12-03", "2027-01-31"),
            today,
            NOW,
        )
        .unwrap();
    refused(
        w.gov.decide(
            &w.reviewer,
            &app,
            &Verdict::Approve {
                narrowed: Some(parse_columns("residents:income,name").unwrap()),
            },
            NOW,
        ),
        "`residents.name` was not requested",
    );
    refused(
        w.gov.decide(
            &w.reviewer,
            &app,
            &Verdict::Approve {
                narrowed: Some(parse_columns("hospital_visits:cost").unwrap()),
            },
            NOW,
        ),
        "was not requested",
    );
    refused(
        w.gov.decide(
            &w.reviewer,
            &app,
            &Verdict::Reject {
                reason: "  ".into(),
            },
            NOW,
        ),
        "empty",
    );
    w.gov
        .decide(
            &w.reviewer,
            &app,
            &Verdict::Reject {
                reason: "not necessary".into(),
            },
            NOW,
        )
        .unwrap();
    refused(
        w.gov.grant_for_job(&w.dev, &app, &[t("residents")], today),
        "rejected",
    );
}

#[test]
fn agreements_are_bounded_and_expire() {
    let mut w = world();
    let today = d("2026-12-03");
    // A four-year (or three years and a day) agreement is refused.
    for end in ["2030-06-01", "2029-06-01"] {
        refused(
            w.gov.authorize_operation(
                &w.authority,
                "city-operator",
                &[t("residents")],
                d("2026-06-01"),
                d(end),
                NOW,
            ),
            "at most 3 years",
        );
    }
    w.gov
        .authorize_operation(
            &w.authority,
            "city-operator",
            &[t("residents")],
            d("2026-06-01"),
            d("2029-05-31"),
            NOW,
        )
        .unwrap();
    refused(
        w.gov.sign_development(
            &w.operator,
            "acme-analytics",
            &[t("residents")],
            d("2026-01-01"),
            d("2029-01-01"),
            today,
            NOW,
        ),
        "at most 3 years",
    );
    // Not beyond the operator's own authorization, nor for datasets it does not cover.
    refused(
        w.gov.sign_development(
            &w.operator,
            "acme-analytics",
            &[t("traffic")],
            today,
            d("2027-01-01"),
            today,
            NOW,
        ),
        "no operation authorization",
    );
    // An application past its agreement's end, or for a dataset it does not cover.
    refused(
        w.gov.submit_application(
            &w.dev,
            &request("residents:income", "2027-01-01", "2027-07-01"),
            today,
            NOW,
        ),
        "no development agreement",
    );
    refused(
        w.gov.submit_application(
            &w.dev,
            &request("hospital_visits:cost", "2027-01-01", "2027-02-01"),
            today,
            NOW,
        ),
        "no development agreement",
    );
    let app = w
        .gov
        .submit_application(
            &w.dev,
            &request("residents:income", "2026-12-03", "2027-05-31"),
            today,
            NOW,
        )
        .unwrap();
    w.gov
        .decide(&w.reviewer, &app, &Verdict::Approve { narrowed: None }, NOW)
        .unwrap();
    assert!(
        w.gov
            .grant_for_job(&w.dev, &app, &[t("residents")], d("2027-05-31"))
            .is_ok()
    );
    // The day after the agreement's end it is expired (the application ends the same day).
    let (agreement, history) = {
        let (a, _) = w.gov.own_records(&w.dev).unwrap();
        let a = a.into_iter().next().unwrap();
        let h = w.gov.agreement(&w.dev, a.id).unwrap().1;
        (a, h)
    };
    assert_eq!(
        agreement.status_on(d("2027-06-01")),
        AgreementStatus::Expired
    );
    assert_eq!(history.len(), 1);
    // Suspending the agreement stops the job; resuming restores it; the history keeps both.
    w.gov
        .change_agreement(
            &w.operator,
            agreement.id,
            AgreementStatus::Suspended,
            "audit pending",
            NOW,
        )
        .unwrap();
    refused(
        w.gov.grant_for_job(&w.dev, &app, &[t("residents")], today),
        "Suspended",
    );
    refused(
        w.gov
            .change_agreement(&w.dev, agreement.id, AgreementStatus::Active, "mine", NOW),
        "may not sign",
    );
    w.gov
        .change_agreement(
            &w.operator,
            agreement.id,
            AgreementStatus::Active,
            "audit passed",
            NOW,
        )
        .unwrap();
    assert!(
        w.gov
            .grant_for_job(&w.dev, &app, &[t("residents")], today)
            .is_ok()
    );
    assert_eq!(
        w.gov.agreement(&w.operator, agreement.id).unwrap().1.len(),
        3
    );
}

#[test]
fn suspension_and_termination() {
    let mut w = world();
    let today = d("2026-12-03");
    let app = w
        .gov
        .submit_application(
            &w.dev,
            &request("residents:income", "2026-12-03", "2027-05-31"),
            today,
            NOW,
        )
        .unwrap();
    w.gov
        .decide(&w.reviewer, &app, &Verdict::Approve { narrowed: None }, NOW)
        .unwrap();
    w.gov
        .set_org_status(
            &w.operator,
            "acme-analytics",
            OrgStatus::Suspended,
            "late report",
            NOW,
        )
        .unwrap();
    refused(
        w.gov.grant_for_job(&w.dev, &app, &[t("residents")], today),
        "suspended",
    );
    refused(
        w.gov.submit_application(
            &w.dev,
            &request("residents:income", "2026-12-03", "2027-01-31"),
            today,
            NOW,
        ),
        "suspended",
    );
    w.gov
        .set_org_status(
            &w.operator,
            "acme-analytics",
            OrgStatus::Active,
            "report received",
            NOW,
        )
        .unwrap();
    assert!(
        w.gov
            .grant_for_job(&w.dev, &app, &[t("residents")], today)
            .is_ok()
    );
    let token = w.gov.issue_token(&w.operator, "dev", NOW).unwrap();
    let done = w
        .gov
        .set_org_status(
            &w.operator,
            "acme-analytics",
            OrgStatus::Terminated,
            "agreement violated",
            NOW,
        )
        .unwrap();
    assert_eq!(done.users, 1);
    assert_eq!(done.tokens, 2);
    assert_eq!(done.agreements, 1);
    assert_eq!(done.applications, 1);
    refused(w.gov.authenticate(token.as_str()), "unknown or revoked");
    refused(
        w.gov.grant_for_job(&w.dev, &app, &[t("residents")], today),
        "terminated",
    );
    refused(
        w.gov.set_org_status(
            &w.operator,
            "acme-analytics",
            OrgStatus::Active,
            "oops",
            NOW,
        ),
        "cannot become",
    );
    refused(w.gov.issue_token(&w.operator, "dev", NOW), "deactivated");
    // The other developer is untouched.
    assert!(w.gov.issue_token(&w.operator, "eve", NOW).is_ok());
    // The authority can terminate the operator: its developers' jobs stop too.
    let app2 = w
        .gov
        .submit_application(
            &w.other_dev,
            &request("residents:income", "2026-12-03", "2027-05-31"),
            today,
            NOW,
        )
        .unwrap();
    w.gov
        .decide(
            &w.reviewer,
            &app2,
            &Verdict::Approve { narrowed: None },
            NOW,
        )
        .unwrap();
    assert!(
        w.gov
            .grant_for_job(&w.other_dev, &app2, &[t("residents")], today)
            .is_ok()
    );
    refused(
        w.gov.set_org_status(
            &w.operator,
            "city-operator",
            OrgStatus::Suspended,
            "self",
            NOW,
        ),
        "may not suspend, resume or terminate the operator",
    );
    w.gov
        .set_org_status(
            &w.authority,
            "city-operator",
            OrgStatus::Suspended,
            "inspection",
            NOW,
        )
        .unwrap();
    refused(
        w.gov
            .grant_for_job(&w.other_dev, &app2, &[t("residents")], today),
        "city-operator",
    );
}

#[test]
fn tokens_are_hashed_and_scoped() {
    let mut w = world();
    refused(w.gov.authenticate("enclave_00"), "malformed");
    refused(w.gov.authenticate("nonsense"), "malformed");
    refused(
        w.gov.authenticate(&format!("enclave_{}", "ab".repeat(32))),
        "unknown or revoked",
    );
    let token = w.gov.issue_token(&w.operator, "dev", NOW).unwrap();
    assert_eq!(format!("{token:?}"), "Token(..)");
    assert_eq!(
        w.gov.authenticate(token.as_str()).unwrap().user().name,
        "dev"
    );
    // An operator admin manages developers, not the authority's users.
    refused(
        w.gov.issue_token(&w.operator, "alice", NOW),
        "does not administer",
    );
    refused(
        w.gov
            .add_user(&w.operator, "acme-analytics", "x", Role::Reviewer, NOW),
        "cannot have role",
    );
    assert_eq!(w.gov.revoke_tokens(&w.operator, "dev", NOW).unwrap(), 2);
    refused(w.gov.authenticate(token.as_str()), "unknown or revoked");
    refused(w.gov.bootstrap("again", "bob", NOW), "initialized already");
    refused(
        w.gov
            .register_org(&w.authority, "second-operator", OrgKind::Operator, NOW),
        "operator already",
    );
    refused(
        w.gov
            .register_org(&w.operator, "Bad Name", OrgKind::Developer, NOW),
        "not a valid",
    );
}

#[test]
fn the_store_is_durable_and_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("governance.db");
    let token = {
        let mut gov = Governance::new(SqliteStore::open(&path).unwrap());
        gov.bootstrap("bureau", "alice", NOW).unwrap().1
    };
    let mut gov = Governance::new(SqliteStore::open(&path).unwrap());
    assert_eq!(
        gov.authenticate(token.as_str()).unwrap().role(),
        Role::AuthorityAdmin
    );
    // The token is not in the file in the clear.
    let bytes = std::fs::read(&path).unwrap();
    let wal = std::fs::read(dir.path().join("governance.db-wal")).unwrap_or_default();
    let needle = token.as_str().as_bytes();
    for b in [&bytes, &wal] {
        assert!(!b.windows(needle.len()).any(|w| w == needle));
    }
    drop(gov);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
    assert!(!err.is_user_error());
}

#[test]
fn unknown_application_ids_are_not_found() {
    let mut w = world();
    for id in ["app-0", "app-01", "app-999", "local"] {
        let id = ApplicationId::new(id).unwrap();
        refused(w.gov.application(&w.reviewer, &id), "not found");
        refused(
            w.gov
                .grant_for_job(&w.dev, &id, &[t("residents")], d("2026-12-03")),
            "not an application",
        );
    }
}

#[test]
fn catalogs_versions_and_social_data() {
    let mut w = world();
    let today = d("2026-12-03");
    // Re-registration makes a new version; the catalog shows the latest, no values.
    let v2 = w
        .gov
        .register_dataset(
            &w.operator,
            &t("residents"),
            &facts("residents", 2),
            today,
            NOW,
        )
        .unwrap();
    assert_eq!(v2.version, 2);
    let catalog = w.gov.development_catalog(&w.dev).unwrap();
    assert_eq!(catalog.len(), 2);
    assert_eq!(
        catalog
            .iter()
            .find(|s| s.dataset.as_str() == "residents")
            .unwrap()
            .version,
        2
    );
    // Only datasets the operator's authorization covers; only by the operator.
    refused(
        w.gov
            .register_dataset(&w.operator, &t("traffic"), &facts("traffic", 1), today, NOW),
        "no operation authorization",
    );
    refused(
        w.gov
            .register_dataset(&w.dev, &t("mine"), &facts("mine", 1), today, NOW),
        "may not register a dataset",
    );
    // A job reads the latest version.
    let app = w
        .gov
        .submit_application(
            &w.dev,
            &request("residents:income", "2026-12-03", "2027-05-31"),
            today,
            NOW,
        )
        .unwrap();
    w.gov
        .decide(&w.reviewer, &app, &Verdict::Approve { narrowed: None }, NOW)
        .unwrap();
    let g = w
        .gov
        .grant_for_job(&w.dev, &app, &[t("residents")], today)
        .unwrap();
    assert_eq!(g.snapshots[0].version, 2);
    assert_eq!(g.snapshots[0].facts.blake3, [2; 32]);
    // Social data: unapproved, it cannot be joined; approved, only by its owner.
    refused(
        w.gov
            .upload_social(&w.dev, &t("residents"), &facts("x", 3), "ours", NOW),
        "is taken",
    );
    w.gov
        .upload_social(
            &w.dev,
            &t("shop_sales"),
            &facts("shop_sales", 4),
            "collected with consent",
            NOW,
        )
        .unwrap();
    refused(
        w.gov
            .grant_for_job(&w.dev, &app, &[t("residents"), t("shop_sales")], today),
        "social data `shop_sales` is not approved",
    );
    assert!(w.gov.fusion_catalog(&w.dev).unwrap().is_empty());
    refused(
        w.gov
            .decide_social(&w.dev, &t("shop_sales"), 1, true, "mine", NOW),
        "may not decide social data",
    );
    w.gov
        .decide_social(
            &w.reviewer,
            &t("shop_sales"),
            1,
            true,
            "lawful source checked",
            NOW,
        )
        .unwrap();
    refused(
        w.gov
            .decide_social(&w.reviewer, &t("shop_sales"), 1, false, "again", NOW),
        "decided already",
    );
    let g = w
        .gov
        .grant_for_job(&w.dev, &app, &[t("residents"), t("shop_sales")], today)
        .unwrap();
    assert_eq!(g.columns_of("shop_sales").unwrap().len(), 4);
    assert_eq!(w.gov.fusion_catalog(&w.other_dev).unwrap().len(), 1);
    // Another entity cannot join it, even with an approved application of its own.
    let app2 = w
        .gov
        .submit_application(
            &w.other_dev,
            &request("residents:income", "2026-12-03", "2027-05-31"),
            today,
            NOW,
        )
        .unwrap();
    w.gov
        .decide(
            &w.reviewer,
            &app2,
            &Verdict::Approve { narrowed: None },
            NOW,
        )
        .unwrap();
    refused(
        w.gov
            .grant_for_job(&w.other_dev, &app2, &[t("shop_sales")], today),
        "not approved for `other-lab`",
    );
    refused(
        w.gov
            .upload_social(&w.other_dev, &t("shop_sales"), &facts("s", 5), "copy", NOW),
        "is taken",
    );
}

mod jobs;
mod review;
