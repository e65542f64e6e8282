//! Applications (one scenario, one list, one review), their decisions, and the grant a job gets.
//!
//! Owns what an application may ask for (within an agreement in force), what a reviewer may
//! approve (a subset of the request), and every condition of a job's grant. It must never grant
//! a dataset or column an approval did not list.

use super::*;

impl<S: Store> Governance<S> {
    /// A developer applies for one scenario under its development agreement in force.
    pub fn submit_application(
        &mut self,
        actor: &Actor,
        request: &ApplicationRequest,
        today: Day,
        now: i64,
    ) -> Result<ApplicationId, GovError> {
        actor.require(Action::SubmitApplication)?;
        let request = ApplicationRequest {
            scenario: text("the scenario", &request.scenario)?,
            purpose: text("the purpose", &request.purpose)?,
            measures: text("the security measures", &request.measures)?,
            columns: checked_columns(&request.columns)?,
            start: request.start,
            end: request.end,
        };
        if request.end < request.start {
            return Err(GovError::Invalid("the period ends before it starts".into()));
        }
        if request.end < today {
            return Err(GovError::Invalid(format!(
                "the period ended ({}) before today ({today})",
                request.end
            )));
        }
        self.tx(|tx| {
            let me = tx
                .org(actor.org.id)?
                .ok_or_else(|| GovError::Store("org vanished".into()))?;
            active(&me)?;
            let datasets: Vec<TableName> =
                request.columns.iter().map(|c| c.dataset.clone()).collect();
            let agreement = tx
                .agreements_of(me.id)?
                .into_iter()
                .filter(|a| a.kind == AgreementKind::Development && a.in_force(today))
                .find(|a| {
                    a.start <= request.start
                        && request.end <= a.end
                        && covers(&a.scope, datasets.iter().cloned())
                })
                .ok_or_else(|| {
                    GovError::Refused(format!(
                        "`{}` holds no development agreement in force on {today} that covers \
                         these datasets from {} to {}",
                        me.name, request.start, request.end
                    ))
                })?;
            let id = tx.insert_application(me.id, agreement.id, actor.user.id, &request, now)?;
            journal(
                tx,
                actor,
                "gov.application.submit",
                &format!("application:{id}"),
                serde_json::json!({"application": id.as_str(), "org": me.name,
                    "agreement": agreement.id.0, "scenario": request.scenario,
                    "purpose": request.purpose, "columns": request.columns,
                    "start": request.start.to_string(), "end": request.end.to_string(),
                    "measures": request.measures}),
                now,
            )?;
            Ok(id)
        })
    }

    /// An operator reviewer decides application `id`: approve (possibly for fewer columns) or
    /// reject with a reason. Only pending applications are decided.
    pub fn decide(
        &mut self,
        actor: &Actor,
        id: &ApplicationId,
        verdict: &Verdict,
        now: i64,
    ) -> Result<Decision, GovError> {
        actor.require(Action::DecideApplication)?;
        let verdict = match verdict {
            Verdict::Approve { narrowed } => Verdict::Approve {
                narrowed: narrowed.as_deref().map(checked_columns).transpose()?,
            },
            Verdict::Reject { reason } => Verdict::Reject {
                reason: text("the reason", reason)?,
            },
        };
        self.tx(|tx| {
            let me = tx
                .org(actor.org.id)?
                .ok_or_else(|| GovError::Store("org vanished".into()))?;
            active(&me)?;
            let app = tx
                .application(id)?
                .ok_or_else(|| GovError::NotFound(format!("application {id}")))?;
            if app.org == actor.org.id {
                return Err(GovError::Refused(
                    "nobody decides on their own organization's application".into(),
                ));
            }
            if app.decision != Decision::Pending {
                return Err(GovError::Refused(format!(
                    "application {id} is decided already"
                )));
            }
            let decision = match &verdict {
                Verdict::Approve { narrowed: None } => Decision::Approved {
                    columns: app.request.columns.clone(),
                    by: actor.user.id,
                    at: now,
                },
                Verdict::Approve {
                    narrowed: Some(cols),
                } => {
                    for c in cols {
                        let asked = app
                            .request
                            .columns
                            .iter()
                            .find(|r| r.dataset == c.dataset)
                            .ok_or_else(|| {
                                GovError::Invalid(format!(
                                    "dataset `{}` was not requested",
                                    c.dataset
                                ))
                            })?;
                        if let Some(extra) = c.columns.iter().find(|x| !asked.columns.contains(x)) {
                            return Err(GovError::Invalid(format!(
                                "column `{}.{extra}` was not requested",
                                c.dataset
                            )));
                        }
                    }
                    Decision::Approved {
                        columns: cols.clone(),
                        by: actor.user.id,
                        at: now,
                    }
                }
                Verdict::Reject { reason } => Decision::Rejected {
                    reason: reason.clone(),
                    by: actor.user.id,
                    at: now,
                },
            };
            tx.set_decision(id, &decision)?;
            let (verb, detail) = match &decision {
                Decision::Approved { columns, .. } => ("approve", serde_json::json!(columns)),
                Decision::Rejected { reason, .. } => ("reject", serde_json::json!(reason)),
                _ => ("decide", serde_json::Value::Null),
            };
            journal(
                tx,
                actor,
                &format!("gov.application.{verb}"),
                &format!("application:{id}"),
                serde_json::json!({"application": id.as_str(), "decision": detail}),
                now,
            )?;
            Ok(decision)
        })
    }

    /// An application, for its organization's members and record readers.
    pub fn application(
        &mut self,
        actor: &Actor,
        id: &ApplicationId,
    ) -> Result<Application, GovError> {
        self.tx(|tx| {
            let app = tx.application(id)?;
            match app {
                Some(a) if a.org == actor.org.id || permits(actor.role(), Action::ReadRecords) => {
                    Ok(a)
                }
                // Another organization's application is not even confirmed to exist.
                _ => Err(GovError::NotFound(format!("application {id}"))),
            }
        })
    }

    /// Applications visible to `actor`, oldest first: every developer's for record readers
    /// (reviewers, operator admins, auditors), else its own organization's.
    pub fn applications(&mut self, actor: &Actor) -> Result<Vec<Application>, GovError> {
        self.tx(|tx| {
            let orgs = if permits(actor.role(), Action::ReadRecords) {
                tx.orgs_of_kind(OrgKind::Developer)?
            } else {
                vec![actor.org.clone()]
            };
            let mut all = Vec::new();
            for org in orgs {
                all.extend(tx.applications_of(org.id)?);
            }
            all.sort_by_key(|a| {
                let n = a.id.as_str().strip_prefix("app-");
                n.and_then(|n| n.parse::<u64>().ok())
            });
            Ok(all)
        })
    }

    /// The grant a job of `actor` gets under application `id` for `datasets`, on `today`.
    /// Everything must hold at once: the developer's organization is active and owns the
    /// application; the application is approved and `today` lies in its period; its development
    /// agreement is in force and so is the operator's authorization; every dataset was approved.
    pub fn grant_for_job(
        &mut self,
        actor: &Actor,
        id: &ApplicationId,
        datasets: &[TableName],
        today: Day,
    ) -> Result<Grant, GovError> {
        actor.require(Action::SubmitJob)?;
        self.tx(|tx| grant_in(tx, actor, id, datasets, today))
    }
}

/// [`Governance::grant_for_job`] inside a transaction (a job's submission and the start of a
/// queued job check the grant in the same transaction as the change they make).
pub(super) fn grant_in(
    tx: &mut dyn Tx,
    actor: &Actor,
    id: &ApplicationId,
    datasets: &[TableName],
    today: Day,
) -> Result<Grant, GovError> {
    let me = tx
        .org(actor.org.id)?
        .ok_or_else(|| GovError::Store("org vanished".into()))?;
    active(&me)?;
    let user = tx.user(actor.user.id)?;
    if !user.is_some_and(|u| u.active) {
        return Err(GovError::Unauthenticated("the user is deactivated"));
    }
    let app = match tx.application(id)? {
        Some(a) if a.org == me.id => a,
        _ => {
            return Err(GovError::Refused(format!(
                "application {id} is not an application of `{}`",
                me.name
            )));
        }
    };
    let approved = match &app.decision {
        Decision::Approved { columns, .. } => columns.clone(),
        Decision::Pending => {
            return Err(GovError::Refused(format!(
                "application {id} is not decided yet"
            )));
        }
        Decision::Rejected { .. } => {
            return Err(GovError::Refused(format!("application {id} was rejected")));
        }
        Decision::Revoked { .. } => {
            return Err(GovError::Refused(format!("application {id} was revoked")));
        }
    };
    if today < app.request.start || today > app.request.end {
        return Err(GovError::Refused(format!(
            "application {id} runs from {} to {}; today is {today}",
            app.request.start, app.request.end
        )));
    }
    let agreement = tx
        .agreement(app.agreement)?
        .ok_or_else(|| GovError::Store("an application's agreement is missing".into()))?;
    if !agreement.in_force(today) {
        return Err(GovError::Refused(format!(
            "the development agreement of application {id} is {:?} on {today}",
            agreement.status_on(today)
        )));
    }
    let operator = tx
        .org(agreement.grantor)?
        .ok_or_else(|| GovError::Store("an agreement's grantor is missing".into()))?;
    let mut columns = Vec::new();
    let mut snapshots = Vec::new();
    let mut public = Vec::new();
    for d in datasets {
        let versions = tx.snapshots_of(d)?;
        if versions
            .iter()
            .any(|v| matches!(v.origin, crate::model::Origin::Social { .. }))
        {
            // Social data: only the entity's own, only once approved; all its columns.
            let s = super::catalog::approved_social(tx, d)?
                        .filter(|s| {
                            matches!(&s.origin, crate::model::Origin::Social { org, .. } if *org == me.id)
                        })
                        .ok_or_else(|| {
                            GovError::Refused(format!(
                                "social data `{d}` is not approved for `{}`",
                                me.name
                            ))
                        })?;
            columns.push(DatasetColumns {
                dataset: d.clone(),
                columns: super::catalog::column_names(&s),
            });
            snapshots.push(s);
            continue;
        }
        let c = approved.iter().find(|c| &c.dataset == d).ok_or_else(|| {
            GovError::Refused(format!(
                "dataset `{d}` is not approved under application {id}"
            ))
        })?;
        let latest = versions.into_iter().last().ok_or_else(|| {
            GovError::Refused(format!(
                "dataset `{d}` is not registered in the domain's catalog"
            ))
        })?;
        columns.push(c.clone());
        snapshots.push(latest);
        public.push(d.clone());
    }
    if !public.is_empty() {
        operation_in_force(tx, &operator, &public, today, today)?;
    } else {
        active(&operator)?;
    }
    Ok(Grant {
        application: app.id.clone(),
        org: me.id,
        columns,
        snapshots,
    })
}

fn checked_columns(cols: &[DatasetColumns]) -> Result<Vec<DatasetColumns>, GovError> {
    let mut out: Vec<DatasetColumns> = Vec::new();
    if cols.is_empty() || cols.len() > crate::model::MAX_LIST {
        return Err(GovError::Invalid(
            "an application lists between 1 and 256 datasets".into(),
        ));
    }
    for c in cols {
        if out.iter().any(|o| o.dataset == c.dataset) {
            return Err(GovError::Invalid(format!(
                "dataset `{}` is listed twice",
                c.dataset
            )));
        }
        let mut columns = c.columns.clone();
        columns.sort();
        columns.dedup();
        if columns.is_empty() || columns.len() > crate::model::MAX_LIST {
            return Err(GovError::Invalid(format!(
                "dataset `{}` lists between 1 and 256 columns",
                c.dataset
            )));
        }
        if let Some(bad) = columns.iter().find(|x| !is_column(x)) {
            return Err(GovError::Invalid(format!(
                "`{}` is not a column name",
                bad.escape_debug().take(64).collect::<String>()
            )));
        }
        out.push(DatasetColumns {
            dataset: c.dataset.clone(),
            columns,
        });
    }
    out.sort_by(|a, b| a.dataset.cmp(&b.dataset));
    Ok(out)
}
