//! Suspending, resuming and terminating organizations.
//!
//! Owns what termination revokes (users, tokens, agreements, applications). It must never undo
//! a termination.

use super::*;

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
