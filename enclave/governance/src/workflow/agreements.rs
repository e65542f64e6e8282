//! The two tiers of agreements: the operation authorization (authority → operator) and
//! development agreements (operator → developer), their terms and their status changes.
//!
//! Owns the three-year limit, the rule that a development agreement lies within the operator's
//! authorization, and who may change which agreement. It must never change a terminated one.

use super::lifecycle::revoke_applications;
use super::*;

impl<S: Store> Governance<S> {
    /// The authority authorizes the operator `operator` to run `scope` from `start` to `end`.
    pub fn authorize_operation(
        &mut self,
        actor: &Actor,
        operator: &str,
        scope: &[TableName],
        start: Day,
        end: Day,
        now: i64,
    ) -> Result<AgreementId, GovError> {
        actor.require(Action::AuthorizeOperation)?;
        term(start, end)?;
        let scope = sorted_scope(scope)?;
        self.tx(|tx| {
            active(&actor.org)?;
            sign(
                tx,
                actor,
                actor.org.id,
                operator,
                AgreementKind::Operation,
                (&scope, start, end),
                now,
            )
        })
    }

    /// The operator signs a development agreement with `developer` for `scope`, within its own
    /// operation authorization (in force on `today`, covering `scope` until `end`).
    #[allow(clippy::too_many_arguments)]
    pub fn sign_development(
        &mut self,
        actor: &Actor,
        developer: &str,
        scope: &[TableName],
        start: Day,
        end: Day,
        today: Day,
        now: i64,
    ) -> Result<AgreementId, GovError> {
        actor.require(Action::SignDevelopment)?;
        term(start, end)?;
        let scope = sorted_scope(scope)?;
        self.tx(|tx| {
            let me = tx
                .org(actor.org.id)?
                .ok_or_else(|| GovError::Store("org vanished".into()))?;
            operation_in_force(tx, &me, &scope, today.max(start), end)?;
            sign(
                tx,
                actor,
                me.id,
                developer,
                AgreementKind::Development,
                (&scope, start, end),
                now,
            )
        })
    }

    /// Suspends, resumes or terminates agreement `id` (the authority its operation
    /// authorizations, the operator its development agreements). Terminated is final;
    /// terminating a development agreement revokes its applications.
    pub fn change_agreement(
        &mut self,
        actor: &Actor,
        id: AgreementId,
        status: AgreementStatus,
        reason: &str,
        now: i64,
    ) -> Result<(), GovError> {
        let reason = text("the reason", reason)?;
        self.tx(|tx| {
            let a = tx
                .agreement(id)?
                .ok_or_else(|| GovError::NotFound(format!("agreement {}", id.0)))?;
            actor.require(match a.kind {
                AgreementKind::Operation => Action::AuthorizeOperation,
                AgreementKind::Development => Action::SignDevelopment,
            })?;
            if a.grantor != actor.org.id {
                return Err(GovError::Refused(format!(
                    "agreement {} was not granted by `{}`",
                    id.0, actor.org.name
                )));
            }
            let ok = matches!(
                (a.status, status),
                (AgreementStatus::Active, AgreementStatus::Suspended)
                    | (AgreementStatus::Suspended, AgreementStatus::Active)
                    | (
                        AgreementStatus::Active | AgreementStatus::Suspended,
                        AgreementStatus::Terminated
                    )
            );
            if !ok {
                return Err(GovError::Refused(format!(
                    "agreement {} is {:?}: it cannot become {:?}",
                    id.0, a.status, status
                )));
            }
            let event = AgreementEvent {
                at: now,
                status,
                reason: reason.clone(),
                actor: actor.user.id,
            };
            tx.set_agreement_status(id, &event)?;
            let revoked =
                if status == AgreementStatus::Terminated && a.kind == AgreementKind::Development {
                    revoke_applications(tx, |app| app.agreement == id, a.grantee, &reason, now)?
                } else {
                    0
                };
            journal(
                tx,
                actor,
                &format!("gov.agreement.{}", verb_of(status)),
                &format!("agreement:{}", id.0),
                serde_json::json!({"agreement": id.0, "reason": reason,
                    "applications_revoked": revoked}),
                now,
            )
        })
    }

    /// An agreement's record and history (for its parties and record readers).
    pub fn agreement(
        &mut self,
        actor: &Actor,
        id: AgreementId,
    ) -> Result<(Agreement, Vec<AgreementEvent>), GovError> {
        self.tx(|tx| {
            let a = tx
                .agreement(id)?
                .ok_or_else(|| GovError::NotFound(format!("agreement {}", id.0)))?;
            let party = a.grantor == actor.org.id || a.grantee == actor.org.id;
            if !party && !permits(actor.role(), Action::ReadRecords) {
                return Err(GovError::NotFound(format!("agreement {}", id.0)));
            }
            let history = tx.agreement_history(id)?;
            Ok((a, history))
        })
    }
}

fn sorted_scope(scope: &[TableName]) -> Result<Vec<TableName>, GovError> {
    let mut s = scope.to_vec();
    s.sort();
    s.dedup();
    if s.is_empty() {
        return Err(GovError::Invalid(
            "an agreement covers at least one dataset".into(),
        ));
    }
    if s.len() > crate::model::MAX_LIST {
        return Err(GovError::Invalid(
            "an agreement covers too many datasets".into(),
        ));
    }
    Ok(s)
}

fn verb_of(status: AgreementStatus) -> &'static str {
    match status {
        AgreementStatus::Active => "resume",
        AgreementStatus::Suspended => "suspend",
        AgreementStatus::Terminated => "terminate",
        AgreementStatus::Expired => "expire",
    }
}

/// Signs an agreement of `kind` from `grantor` with the active organization `grantee` (the
/// operator for an operation authorization, a development entity for a development agreement).
fn sign(
    tx: &mut dyn Tx,
    actor: &Actor,
    grantor: crate::model::OrgId,
    grantee: &str,
    kind: AgreementKind,
    (scope, start, end): (&[TableName], Day, Day),
    now: i64,
) -> Result<AgreementId, GovError> {
    let org = org_named(tx, grantee)?;
    let (wanted, what, verb) = match kind {
        AgreementKind::Operation => (OrgKind::Operator, "the operator", "operation"),
        AgreementKind::Development => (OrgKind::Developer, "a development entity", "development"),
    };
    if org.kind != wanted {
        return Err(GovError::Invalid(format!("`{}` is not {what}", org.name)));
    }
    active(&org)?;
    let id = tx.insert_agreement(
        &NewAgreement {
            kind,
            grantor,
            grantee: org.id,
            scope,
            start,
            end,
        },
        &AgreementEvent {
            at: now,
            status: AgreementStatus::Active,
            reason: "signed".into(),
            actor: actor.user.id,
        },
    )?;
    journal(
        tx,
        actor,
        &format!("gov.agreement.{verb}"),
        &format!("agreement:{}", id.0),
        serde_json::json!({"agreement": id.0, "grantee": org.name, "datasets": scope,
            "start": start.to_string(), "end": end.to_string()}),
        now,
    )?;
    Ok(id)
}
