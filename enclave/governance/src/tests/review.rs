//! Product review and release: outputs of a job wait for a reviewer, decisions against the six
//! criteria, downloads by the own organization only, products and takedowns, termination —
//! with a negative test for every check.

use super::*;
use crate::job::{JobEnd, JobNo, JobStatus};
use crate::workflow::Claim;

fn output(index: u32, verdict: OutputVerdict, seed: u8) -> NewOutput {
    NewOutput {
        index,
        name: format!("table-{index}"),
        kind: "table".into(),
        digest: [seed; 32],
        rows: 17,
        columns: 3,
        bytes: 900,
        verdict,
        provenance: "certified".into(),
        evidence: r#"{"verdict":"pass","findings":[]}"#.into(),
    }
}

/// A finished job of `w.dev` with outputs of verdicts pass, flag and block.
fn job_with_outputs(w: &mut World) -> (JobNo, Vec<OutputNo>) {
    let app = super::jobs::approved(w);
    let no = super::jobs::submit(w, &app);
    let Some(Claim::Run { .. }) = w
        .gov
        .claim_job("w-1", Some(no), d("2026-12-03"), NOW)
        .unwrap()
    else {
        panic!("not claimed")
    };
    w.gov.link_job_run(no, "w-1", "0123456789abcdef").unwrap();
    let end = JobEnd {
        status: JobStatus::Succeeded,
        usage: JobUsage::default(),
        error: None,
        entries: None,
        transcript: None,
    };
    let outs = [
        output(0, OutputVerdict::Pass, 1),
        output(1, OutputVerdict::Flag, 2),
        output(2, OutputVerdict::Block, 3),
    ];
    let (_, nos) = w.gov.finish_job(no, "w-1", &end, &outs, NOW).unwrap();
    (no, nos)
}

fn approve(all: bool, acknowledge: bool) -> OutputDecision {
    let affirmed = if all {
        Criterion::ALL.to_vec()
    } else {
        Criterion::ALL[..5].to_vec()
    };
    OutputDecision::Approve {
        affirmed,
        acknowledge,
    }
}

#[test]
fn outputs_wait_for_a_reviewer_and_leave_only_when_approved() {
    let mut w = world();
    let (job, outs) = job_with_outputs(&mut w);
    let (pass, flag, block) = (outs[0], outs[1], outs[2]);
    let pending = w
        .gov
        .outputs(&w.reviewer, Some(ReviewState::Pending), 100)
        .unwrap();
    assert_eq!(pending.len(), 3);
    assert!(pending.iter().all(|o| o.job == job));
    // Quarantined outputs cannot be read by their developer.
    refused(
        w.gov.download_output(&w.dev, pass, NOW),
        "in quarantine until a reviewer approves it",
    );
    // Only reviewers decide.
    for who in [&w.dev, &w.operator, &w.authority] {
        refused(
            w.gov.decide_output(who, pass, &approve(true, false), NOW),
            "may not review an output",
        );
    }
    // An approval affirms all six criteria.
    refused(
        w.gov
            .decide_output(&w.reviewer, pass, &approve(false, false), NOW),
        "not affirmed: no-other-risk",
    );
    // A block cannot be approved; a flag needs the findings acknowledged.
    refused(
        w.gov
            .decide_output(&w.reviewer, block, &approve(true, true), NOW),
        "blocked",
    );
    refused(
        w.gov
            .decide_output(&w.reviewer, flag, &approve(true, false), NOW),
        "acknowledging the findings",
    );
    let f = w
        .gov
        .decide_output(&w.reviewer, flag, &approve(true, true), NOW)
        .unwrap();
    assert_eq!(f.state, ReviewState::Approved);
    assert!(f.review.as_ref().unwrap().acknowledged);
    // A rejection names failed criteria and a reason; it is final.
    refused(
        w.gov.decide_output(
            &w.reviewer,
            block,
            &OutputDecision::Reject {
                failed: vec![],
                reason: "raw rows".into(),
            },
            NOW,
        ),
        "names the criteria",
    );
    let b = w
        .gov
        .decide_output(
            &w.reviewer,
            block,
            &OutputDecision::Reject {
                failed: vec![Criterion::NoRawData],
                reason: "raw rows".into(),
            },
            NOW,
        )
        .unwrap();
    assert_eq!(b.state, ReviewState::Rejected);
    refused(
        w.gov
            .decide_output(&w.reviewer, block, &approve(true, true), NOW),
        "only pending outputs are decided",
    );
    refused(w.gov.download_output(&w.dev, block, NOW), "rejected");
    // Approved: downloadable by its own organization only; the first download releases it.
    w.gov
        .decide_output(&w.reviewer, pass, &approve(true, false), NOW)
        .unwrap();
    refused(w.gov.download_output(&w.other_dev, pass, NOW), "not found");
    refused(w.gov.output(&w.other_dev, pass), "not found");
    assert!(w.gov.outputs(&w.other_dev, None, 100).unwrap().is_empty());
    refused(
        w.gov.download_output(&w.reviewer, pass, NOW),
        "may not download",
    );
    let first = w.gov.download_output(&w.dev, pass, NOW + 1).unwrap();
    assert!(first.first());
    assert_eq!(first.record().state, ReviewState::Released);
    assert_eq!(first.reviewer(), "rita");
    assert_eq!(first.developer(), "acme-analytics");
    assert_eq!(
        w.gov.keep_receipt(pass, "receipt one").unwrap(),
        "receipt one"
    );
    assert_eq!(
        w.gov.keep_receipt(pass, "receipt two").unwrap(),
        "receipt one",
        "the first receipt kept is the one handed out"
    );
    let again = w.gov.download_output(&w.dev, pass, NOW + 2).unwrap();
    assert!(!again.first());
    assert_eq!(again.record().receipt.as_deref(), Some("receipt one"));
    assert_eq!(again.record().released_at, Some(NOW + 1));
    // Every step is journaled.
    let steps: Vec<String> = w
        .gov
        .unlogged_steps()
        .unwrap()
        .into_iter()
        .map(|s| s.action)
        .collect();
    for a in [
        "gov.output.approve",
        "gov.output.reject",
        "gov.output.release",
        "gov.output.download",
    ] {
        assert!(steps.iter().any(|s| s == a), "{a} missing from {steps:?}");
    }
}

#[test]
fn downloads_need_the_grant_to_stand() {
    let mut w = world();
    let (_, outs) = job_with_outputs(&mut w);
    w.gov
        .decide_output(&w.reviewer, outs[0], &approve(true, false), NOW)
        .unwrap();
    w.gov
        .set_org_status(
            &w.operator,
            "acme-analytics",
            OrgStatus::Suspended,
            "audit",
            NOW,
        )
        .unwrap();
    refused(w.gov.download_output(&w.dev, outs[0], NOW), "suspended");
    w.gov
        .set_org_status(
            &w.operator,
            "acme-analytics",
            OrgStatus::Active,
            "done",
            NOW,
        )
        .unwrap();
    w.gov.download_output(&w.dev, outs[0], NOW).unwrap();
    w.gov
        .set_org_status(
            &w.authority,
            "city-operator",
            OrgStatus::Suspended,
            "audit",
            NOW,
        )
        .unwrap();
    refused(w.gov.download_output(&w.dev, outs[0], NOW), "city-operator");
}

#[test]
fn nobody_reviews_their_own_organizations_output() {
    let mut w = world();
    let (_, outs) = job_with_outputs(&mut w);
    // A reviewer role held inside the development entity (the role table forbids it; the
    // workflow refuses it on its own).
    let forged = Actor::forged_for_test(
        User {
            role: Role::Reviewer,
            ..w.dev.user().clone()
        },
        w.dev.org().clone(),
    );
    refused(
        w.gov
            .decide_output(&forged, outs[0], &approve(true, false), NOW),
        "own organization",
    );
    refused(
        w.gov.preview_output(&forged, outs[0], NOW),
        "own organization",
    );
    let o = w.gov.preview_output(&w.reviewer, outs[0], NOW).unwrap();
    assert_eq!(o.state, ReviewState::Pending);
}

#[test]
fn products_are_published_from_releases_and_taken_down() {
    let mut w = world();
    let (_, outs) = job_with_outputs(&mut w);
    let pass = outs[0];
    let product = |output| NewProduct {
        output,
        kind: ProductKind::Report,
        title: "Income by district".into(),
        description: "Counts and noised means".into(),
        source: "residents, registered by the operator under its authorization".into(),
    };
    w.gov
        .decide_output(&w.reviewer, pass, &approve(true, false), NOW)
        .unwrap();
    refused(
        w.gov.publish_product(&w.dev, &product(pass), NOW),
        "only a released output",
    );
    w.gov.download_output(&w.dev, pass, NOW).unwrap();
    refused(
        w.gov.publish_product(&w.other_dev, &product(pass), NOW),
        "not found",
    );
    refused(
        w.gov.publish_product(&w.reviewer, &product(pass), NOW),
        "may not publish",
    );
    let p = w.gov.publish_product(&w.dev, &product(pass), NOW).unwrap();
    assert_eq!(w.gov.products(&w.other_dev, false, 10).unwrap().len(), 1);
    refused(w.gov.products(&w.dev, true, 10), "may not read");
    refused(
        w.gov.take_down(&w.other_dev, p.no, "not theirs", NOW),
        "may not withdraw",
    );
    let down = w
        .gov
        .take_down(&w.operator, p.no, "complaint", NOW)
        .unwrap();
    assert!(down.taken_down.is_some());
    assert!(w.gov.products(&w.dev, false, 10).unwrap().is_empty());
    assert_eq!(w.gov.products(&w.reviewer, true, 10).unwrap().len(), 1);
    // The output is withdrawn: downloads are refused from now on.
    refused(w.gov.download_output(&w.dev, pass, NOW), "withdrawn");
    refused(
        w.gov.take_down(&w.operator, p.no, "again", NOW),
        "taken down already",
    );
}

#[test]
fn termination_withdraws_outputs_and_lists_their_keys_for_shredding() {
    let mut w = world();
    let (_, outs) = job_with_outputs(&mut w);
    w.gov
        .decide_output(&w.reviewer, outs[0], &approve(true, false), NOW)
        .unwrap();
    w.gov.download_output(&w.dev, outs[0], NOW).unwrap();
    let done = w
        .gov
        .set_org_status(
            &w.operator,
            "acme-analytics",
            OrgStatus::Terminated,
            "agreement ended",
            NOW,
        )
        .unwrap();
    assert_eq!(done.outputs, 3);
    for o in &outs {
        let r = w.gov.output(&w.reviewer, *o).unwrap();
        assert_eq!(r.state, ReviewState::Withdrawn, "{o}");
    }
    let org = w.dev.org().id;
    let digests = w.gov.outputs_to_shred(org).unwrap();
    assert_eq!(digests, vec![[3; 32], [2; 32], [1; 32]]);
}

#[test]
fn oversized_evidence_blocks_and_names_are_bounded() {
    let mut o = output(0, OutputVerdict::Pass, 9);
    o.name = "名".repeat(200);
    o.evidence = "x".repeat(MAX_EVIDENCE_FOR_TEST + 1);
    let b = crate::workflow::bounded_for_test(&o);
    assert_eq!(b.verdict, OutputVerdict::Block);
    assert!(b.name.len() <= crate::output::MAX_OUTPUT_NAME);
    assert!(serde_json::from_str::<serde_json::Value>(&b.evidence).is_ok());
}

const MAX_EVIDENCE_FOR_TEST: usize = crate::output::MAX_EVIDENCE;

#[test]
fn a_first_release_the_difference_check_refuses_withdraws_the_output() {
    let mut w = world();
    let (_, outs) = job_with_outputs(&mut w);
    let (pass, flag) = (outs[0], outs[1]);
    w.gov
        .decide_output(&w.reviewer, pass, &approve(true, false), NOW)
        .unwrap();
    w.gov
        .decide_output(&w.reviewer, flag, &approve(true, true), NOW)
        .unwrap();
    // The check is asked about the job's first release, with no job released before.
    let mut asked = Vec::new();
    let mut too_close = |run: &str, released: &[String]| {
        asked.push((run.to_owned(), released.to_vec()));
        Ok(Some("a cell differs by 1 subject".to_owned()))
    };
    refused(
        w.gov
            .download_output_checked(&w.dev, pass, NOW, &mut too_close),
        "difference check: a cell differs by 1 subject",
    );
    assert_eq!(asked, vec![("0123456789abcdef".to_owned(), vec![])]);
    let o = w.gov.output(&w.dev, pass).unwrap();
    assert_eq!(o.state, ReviewState::Withdrawn, "withdrawn, on the record");
    assert!(o.withdrawn.unwrap().1.contains("difference check"));
    // A check that cannot run refuses and changes nothing.
    let mut broken = |_: &str, _: &[String]| Err("the cells are unreadable".to_owned());
    // (the domain's fault, not the user's: a store error)
    match w
        .gov
        .download_output_checked(&w.dev, flag, NOW, &mut broken)
    {
        Err(GovError::Store(m)) => assert!(m.contains("could not run"), "{m}"),
        other => panic!("expected a store error, got {other:?}"),
    }
    assert_eq!(
        w.gov.output(&w.dev, flag).unwrap().state,
        ReviewState::Approved
    );
    // Passed, the output is released; the job's later releases are not checked again.
    let mut pass_check = |_: &str, _: &[String]| Ok(None);
    let dl = w
        .gov
        .download_output_checked(&w.dev, flag, NOW, &mut pass_check)
        .unwrap();
    assert!(dl.first());
    assert_eq!(
        w.gov.released_runs(w.dev.org().id).unwrap(),
        vec!["0123456789abcdef".to_owned()]
    );
    let mut never = |_: &str, _: &[String]| -> Result<Option<String>, String> {
        panic!("the job is released already")
    };
    w.gov
        .download_output_checked(&w.dev, flag, NOW, &mut never)
        .unwrap();
}
