//! The job queue: submission under a grant, workers taking jobs, their end, a restart, and
//! termination — with a negative test for every check.

use super::*;
use crate::job::{JobEnd, JobNo, JobStatus, JobUsage};
use crate::workflow::Claim;

pub(super) fn approved(w: &mut World) -> ApplicationId {
    let app = w
        .gov
        .submit_application(
            &w.dev,
            &request("residents:district,income", "2026-12-01", "2027-03-31"),
            d("2026-12-03"),
            NOW,
        )
        .unwrap();
    w.gov
        .decide(&w.reviewer, &app, &Verdict::Approve { narrowed: None }, NOW)
        .unwrap();
    app
}

pub(super) fn submit(w: &mut World, app: &ApplicationId) -> JobNo {
    w.gov
        .submit_job(
            &w.dev,
            app,
            &[t("residents")],
            &[7; 32],
            "{}",
            d("2026-12-03"),
            NOW,
        )
        .unwrap()
        .no
}

#[test]
fn jobs_queue_run_and_end_on_the_record() {
    let mut w = world();
    let app = approved(&mut w);
    let today = d("2026-12-03");
    let no = submit(&mut w, &app);
    let j = w.gov.job(&w.dev, no).unwrap();
    assert_eq!(
        (j.status, j.module, j.datasets.clone()),
        (JobStatus::Queued, [7; 32], vec![t("residents")])
    );
    // A worker takes it: the grant comes with it.
    let Some(Claim::Run { job, grant }) = w.gov.claim_job("w-1", None, today, NOW + 1).unwrap()
    else {
        panic!("the queued job is handed out");
    };
    assert_eq!(
        (job.no, job.status, job.worker.as_deref()),
        (no, JobStatus::Running, Some("w-1"))
    );
    assert_eq!(
        grant.columns_of("residents").unwrap(),
        ["district", "income"]
    );
    // Nothing else is queued; the same job is not handed out twice.
    assert!(w.gov.claim_job("w-2", None, today, NOW).unwrap().is_none());
    assert!(
        w.gov
            .claim_job("w-2", Some(no), today, NOW)
            .unwrap()
            .is_none()
    );
    refused(
        w.gov.link_job_run(no, "w-2", "0123456789abcdef"),
        "not this worker",
    );
    w.gov.link_job_run(no, "w-1", "0123456789abcdef").unwrap();
    let end = JobEnd {
        status: JobStatus::Succeeded,
        usage: JobUsage {
            fuel: 42,
            queries: 1,
            ..JobUsage::default()
        },
        error: None,
        entries: Some((10, 14)),
        transcript: Some("/domain/transcripts/0123456789abcdef.sealed".into()),
    };
    refused(
        w.gov.finish_job(no, "w-2", &end, &[], NOW + 2),
        "not running on this worker",
    );
    let (done, _) = w.gov.finish_job(no, "w-1", &end, &[], NOW + 2).unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.run.as_deref(), Some("0123456789abcdef"));
    assert_eq!(done.end.as_ref().unwrap(), &end);
    assert_eq!(
        (done.started_at, done.finished_at),
        (Some(NOW + 1), Some(NOW + 2))
    );
    // Final: it cannot end twice.
    refused(
        w.gov.finish_job(no, "w-1", &end, &[], NOW + 3),
        "not running",
    );
    // Every step is journaled: submit, start, succeed (the later refusals are not).
    let steps: Vec<String> = w
        .gov
        .unlogged_steps()
        .unwrap()
        .into_iter()
        .map(|s| s.action)
        .collect();
    let tail: Vec<&str> = steps
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["gov.job.submit", "gov.job.start", "gov.job.succeed"]);
    // Another developer neither sees it nor learns it exists; reviewers see every job.
    refused(w.gov.job(&w.other_dev, no), "not found");
    assert!(w.gov.jobs(&w.other_dev, None, 10).unwrap().is_empty());
    assert_eq!(w.gov.jobs(&w.reviewer, None, 10).unwrap().len(), 1);
}

#[test]
fn submissions_are_refused_without_a_grant() {
    let mut w = world();
    let app = approved(&mut w);
    let today = d("2026-12-03");
    let sub = |w: &mut World, who: &Actor, app: &ApplicationId, tables: &[TableName], day: &str| {
        let who = who.clone();
        w.gov
            .submit_job(&who, app, tables, &[1; 32], "{}", d(day), NOW)
    };
    let dev = w.dev.clone();
    let other = w.other_dev.clone();
    let reviewer = w.reviewer.clone();
    refused(
        sub(&mut w, &other, &app, &[t("residents")], "2026-12-03"),
        "not an application of",
    );
    refused(
        sub(&mut w, &reviewer, &app, &[t("residents")], "2026-12-03"),
        "may not submit a job",
    );
    refused(
        sub(&mut w, &dev, &app, &[t("hospital_visits")], "2026-12-03"),
        "not approved",
    );
    refused(
        sub(&mut w, &dev, &app, &[t("residents")], "2027-04-01"),
        "runs from",
    );
    refused(
        sub(
            &mut w,
            &dev,
            &app,
            &[t("residents"), t("residents")],
            "2026-12-03",
        ),
        "twice",
    );
    refused(
        w.gov.submit_job(
            &dev,
            &app,
            &[t("residents")],
            &[1; 32],
            &"x".repeat(crate::job::MAX_SPEC + 1),
            today,
            NOW,
        ),
        "at most",
    );
    // Nothing was queued by the refusals.
    assert!(w.gov.jobs(&w.reviewer, None, 10).unwrap().is_empty());
}

#[test]
fn a_grant_that_stops_holding_refuses_the_queued_job() {
    let mut w = world();
    let app = approved(&mut w);
    let today = d("2026-12-03");
    let no = submit(&mut w, &app);
    let operator = w.operator.clone();
    w.gov
        .set_org_status(
            &operator,
            "acme-analytics",
            OrgStatus::Suspended,
            "audit finding",
            NOW,
        )
        .unwrap();
    match w.gov.claim_job("w-1", None, today, NOW).unwrap() {
        Some(Claim::Refused { job, reason }) => {
            assert_eq!((job.no, job.status), (no, JobStatus::Failed));
            assert!(reason.contains("suspended"), "{reason}");
            assert!(job.end.unwrap().error.unwrap().contains("suspended"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Resumed: a new job runs; a job queued before termination never starts.
    w.gov
        .set_org_status(
            &operator,
            "acme-analytics",
            OrgStatus::Active,
            "resolved",
            NOW,
        )
        .unwrap();
    let queued = submit(&mut w, &app);
    let done = w
        .gov
        .set_org_status(
            &operator,
            "acme-analytics",
            OrgStatus::Terminated,
            "violation",
            NOW,
        )
        .unwrap();
    assert_eq!(done.jobs, 1);
    let j = w.gov.job(&w.reviewer, queued).unwrap();
    assert_eq!(j.status, JobStatus::Failed);
    assert!(w.gov.claim_job("w-1", None, today, NOW).unwrap().is_none());
}

#[test]
fn a_restart_interrupts_jobs_of_stopped_workers_and_keeps_the_queue() {
    let mut w = world();
    let app = approved(&mut w);
    let today = d("2026-12-03");
    let running = submit(&mut w, &app);
    let queued = submit(&mut w, &app);
    // The oldest job is taken first.
    let Some(Claim::Run { job, .. }) = w.gov.claim_job("w-old", None, today, NOW).unwrap() else {
        panic!()
    };
    assert_eq!(job.no, running);
    // A new worker (after the old one's process died) finds it.
    let lost = w.gov.recover_jobs("w-new", NOW + 5).unwrap();
    assert_eq!(lost.iter().map(|j| j.no).collect::<Vec<_>>(), [running]);
    assert_eq!(lost[0].status, JobStatus::Interrupted);
    assert!(
        w.gov
            .finish_job(
                running,
                "w-old",
                &JobEnd::without_run(JobStatus::Failed, "x".into()),
                &[],
                NOW
            )
            .is_err()
    );
    // A worker's own running jobs are not its to interrupt; the queued job is resumed.
    let Some(Claim::Run { job, .. }) = w.gov.claim_job("w-new", None, today, NOW).unwrap() else {
        panic!()
    };
    assert_eq!(job.no, queued);
    assert!(w.gov.recover_jobs("w-new", NOW).unwrap().is_empty());
}

#[test]
fn job_states_move_only_forward() {
    use JobStatus::*;
    for s in [Queued, Running, Succeeded, Failed, Interrupted] {
        assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        for f in [Succeeded, Failed, Interrupted] {
            assert!(!f.may_become(s), "{f} → {s}");
        }
    }
    assert!(Queued.may_become(Running) && Running.may_become(Succeeded));
    assert!(!Queued.may_become(Succeeded) && !Queued.may_become(Interrupted));
    assert_eq!(JobNo::parse("job-12"), Some(JobNo(12)));
    for bad in [
        "job-0",
        "job-",
        "job-1x",
        "12",
        "job--1",
        "job-99999999999999999999",
    ] {
        assert_eq!(JobNo::parse(bad), None, "{bad}");
    }
}

#[test]
fn shredding_is_recorded_once_and_retention_waits_six_months() {
    let mut w = world();
    let operator = w.operator.clone();
    assert!(w.gov.shred_pending().unwrap().is_empty());
    w.gov
        .set_org_status(
            &operator,
            "acme-analytics",
            OrgStatus::Terminated,
            "exit",
            NOW,
        )
        .unwrap();
    let pending = w.gov.shred_pending().unwrap();
    assert_eq!(
        pending.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
        ["acme-analytics"]
    );
    w.gov.record_shredded(&pending[0], NOW).unwrap();
    w.gov.record_shredded(&pending[0], NOW).unwrap();
    assert!(w.gov.shred_pending().unwrap().is_empty());
    let shreds = w
        .gov
        .unlogged_steps()
        .unwrap()
        .into_iter()
        .filter(|s| s.action == "gov.org.shred")
        .count();
    assert_eq!(shreds, 1);
    // Retention: only operator admins; nothing is due before six months.
    let dev = w.other_dev.clone();
    refused(w.gov.retention_due(&dev, NOW), "may not purge");
    let day = 86_400;
    assert!(
        w.gov
            .retention_due(&operator, NOW + crate::workflow::RETENTION_SECS - day)
            .unwrap()
            .is_empty()
    );
    let due = w
        .gov
        .retention_due(&operator, NOW + crate::workflow::RETENTION_SECS)
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1, NOW);
    w.gov.record_purged(&operator, &due[0].0, 3, NOW).unwrap();
    assert!(
        w.gov
            .retention_due(&operator, NOW + 10 * crate::workflow::RETENTION_SECS)
            .unwrap()
            .is_empty(),
        "purged once"
    );
}
