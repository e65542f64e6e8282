//! Suspending, resuming and terminating organizations.
//!
//! Owns what termination revokes (users, tokens, agreements, applications, queued jobs,
//! outputs and products). It must never undo
//! a termination.

use super::*;
use crate::job::{JobEnd, JobStatus};

impl<S: Store> Governance<S> {
    /// Suspends, resumes or terminates organization `org_name` (the authority the operator, the
    /// operator a development entity). Terminating deactivates its users, revokes their tokens,
    /// terminates its agreements and revokes its applications; it is final.
    pub fn set_org_status(
        &mut self,
        actor: &Actor,
        org_name: &str,
        status: OrgStatus,
        reason: &str,
        now: i64,
    ) -> Result<Termination, GovError> {
        let reason = text("the reason", reason)?;
        self.tx(|tx| {
            let org = org_named(tx, org_name)?;
            actor.require(match org.kind {
                OrgKind::Developer => Action::ControlDeveloper,
                OrgKind::Operator => Action::ControlOperator,
                OrgKind::Authority => {
                    return Err(GovError::Refused(
                        "the data authority cannot be suspended".into(),
                    ));
                }
            })?;
            let ok = matches!(
                (org.status, status),
                (OrgStatus::Active, OrgStatus::Suspended)
                    | (OrgStatus::Suspended, OrgStatus::Active)
                    | (
                        OrgStatus::Active | OrgStatus::Suspended,
                        OrgStatus::Terminated
                    )
            );
            if !ok {
                return Err(GovError::Refused(format!(
                    "organization `{}` is {:?}: it cannot become {:?}",
                    org.name, org.status, status
                )));
            }
            tx.set_org_status(org.id, status)?;
            let mut done = Termination::default();
            let verb = match status {
                OrgStatus::Active => "resume",
                OrgStatus::Suspended => "suspend",
                OrgStatus::Terminated => "terminate",
            };
            journal(
                tx,
                actor,
                &format!("gov.org.{verb}"),
                &format!("org:{}", org.name),
                serde_json::json!({"org": org.name, "reason": reason}),
                now,
            )?;
            if status != OrgStatus::Terminated {
                return Ok(done);
            }
            for u in tx.users_of(org.id)? {
                if u.active {
                    tx.deactivate_user(u.id)?;
                    done.users += 1;
                }
                done.tokens += tx.revoke_tokens_of(u.id, now)?;
            }
            for a in tx.agreements_of(org.id)? {
                if matches!(
                    a.status,
                    AgreementStatus::Active | AgreementStatus::Suspended
                ) {
                    tx.set_agreement_status(
                        a.id,
                        &AgreementEvent {
                            at: now,
                            status: AgreementStatus::Terminated,
                            reason: format!("organization terminated: {reason}"),
                            actor: actor.user.id,
                        },
                    )?;
                    done.agreements += 1;
                }
            }
            done.applications = revoke_applications(tx, |_| true, org.id, &reason, now)?;
            for job in tx.jobs(Some(org.id), Some(JobStatus::Queued), u32::MAX)? {
                tx.end_job(
                    job.no,
                    JobStatus::Queued,
                    &JobEnd::without_run(
                        JobStatus::Failed,
                        format!("refused: organization `{}` is terminated", org.name),
                    ),
                    now,
                )?;
                done.jobs += 1;
            }
            (done.outputs, done.products) = super::review::withdraw_all_of(
                tx,
                org.id,
                &format!("organization terminated: {reason}"),
                now,
            )?;
            Ok(done)
        })
    }
}

pub(super) fn revoke_applications(
    tx: &mut dyn Tx,
    which: impl Fn(&Application) -> bool,
    org: crate::model::OrgId,
    reason: &str,
    now: i64,
) -> Result<u64, GovError> {
    let mut n = 0;
    for app in tx.applications_of(org)? {
        if which(&app) && matches!(app.decision, Decision::Pending | Decision::Approved { .. }) {
            tx.set_decision(
                &app.id,
                &Decision::Revoked {
                    reason: reason.to_owned(),
                    at: now,
                },
            )?;
            n += 1;
        }
    }
    Ok(n)
}

impl<S: Store> Governance<S> {
    /// Terminated development entities whose key destruction is not on the record yet (the
    /// binary destroys each key, then [`Governance::record_shredded`]).
    pub fn shred_pending(&mut self) -> Result<Vec<Org>, GovError> {
        self.tx(|tx| {
            let mut out = Vec::new();
            for org in tx.orgs_of_kind(OrgKind::Developer)? {
                if org.status == OrgStatus::Terminated
                    && tx
                        .step_at("gov.org.shred", &format!("org:{}", org.name))?
                        .is_none()
                {
                    out.push(org);
                }
            }
            Ok(out)
        })
    }

    /// Records that `org`'s key was destroyed: its social data, modules and transcripts are
    /// unreadable from now on.
    pub fn record_shredded(&mut self, org: &Org, now: i64) -> Result<(), GovError> {
        self.tx(|tx| {
            let subject = format!("org:{}", org.name);
            if tx.step_at("gov.org.shred", &subject)?.is_some() {
                return Ok(());
            }
            journal_as(
                tx,
                "operator:keystore",
                "gov.org.shred",
                &subject,
                serde_json::json!({"org": org.name, "entity": org.id.0}),
                now,
            )
        })
    }

    /// When organization `org` was terminated, if it was (the retention period runs from then).
    pub fn terminated_at(&mut self, org: &Org) -> Result<Option<i64>, GovError> {
        self.tx(|tx| tx.step_at("gov.org.terminate", &format!("org:{}", org.name)))
    }
}

/// How long a terminated entity's sealed files are kept after its exit before retention may
/// purge them (the seed keeps logs at least six months after exit; the log itself is never
/// purged).
pub const RETENTION_SECS: i64 = 183 * 86_400;

impl<S: Store> Governance<S> {
    /// Terminated development entities past retention ([`RETENTION_SECS`] after their
    /// termination) and not purged yet, with their termination time.
    pub fn retention_due(&mut self, actor: &Actor, now: i64) -> Result<Vec<(Org, i64)>, GovError> {
        actor.require(Action::ApplyRetention)?;
        self.tx(|tx| {
            let mut out = Vec::new();
            for org in tx.orgs_of_kind(OrgKind::Developer)? {
                if org.status != OrgStatus::Terminated {
                    continue;
                }
                let subject = format!("org:{}", org.name);
                let Some(at) = tx.step_at("gov.org.terminate", &subject)? else {
                    continue;
                };
                if now.saturating_sub(at) >= RETENTION_SECS
                    && tx.step_at("gov.retention.purge", &subject)?.is_none()
                {
                    out.push((org, at));
                }
            }
            Ok(out)
        })
    }

    /// Records that `org`'s sealed files were purged (`files` of them).
    pub fn record_purged(
        &mut self,
        actor: &Actor,
        org: &Org,
        files: u64,
        now: i64,
    ) -> Result<(), GovError> {
        actor.require(Action::ApplyRetention)?;
        self.tx(|tx| {
            journal(
                tx,
                actor,
                "gov.retention.purge",
                &format!("org:{}", org.name),
                serde_json::json!({"org": org.name, "files": files}),
                now,
            )
        })
    }
}
