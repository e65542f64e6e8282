//! One transaction of the SQLite store: the [`Tx`] implementation.

use super::rows::*;
use super::*;
use crate::job::{JobEnd, JobNo, JobRecord, JobStatus};
use crate::output::{
    NewOutput, NewProduct, OutputNo, OutputRecord, Product, ProductNo, Review, ReviewState,
};
use crate::store::NewJob;

impl SqliteTx<'_> {
    fn one<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, GovError> {
        self.tx
            .query_row(sql, params, row)
            .optional()
            .map_err(store_err)
    }

    fn all<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, GovError> {
        let mut stmt = self.tx.prepare(sql).map_err(store_err)?;
        let rows = stmt.query_map(params, row).map_err(store_err)?;
        rows.collect::<Result<Vec<T>, _>>().map_err(store_err)
    }

    fn changed(&self, n: usize, what: &str) -> Result<(), GovError> {
        if n == 1 {
            Ok(())
        } else {
            Err(GovError::NotFound(what.to_owned()))
        }
    }
}

impl Tx for SqliteTx<'_> {
    fn insert_org(&mut self, name: &str, kind: OrgKind, at: i64) -> Result<OrgId, GovError> {
        self.tx
            .execute(
                "INSERT INTO orgs (name, kind, status, created) VALUES (?1, ?2, 'active', ?3)",
                params![name, kind.as_str(), at],
            )
            .map_err(store_err)?;
        Ok(OrgId(self.tx.last_insert_rowid()))
    }

    fn org(&mut self, id: OrgId) -> Result<Option<Org>, GovError> {
        self.one(
            &format!("SELECT {ORG_COLS} FROM orgs WHERE id = ?1"),
            params![id.0],
            org_row,
        )?
        .map(org_of)
        .transpose()
    }

    fn org_by_name(&mut self, name: &str) -> Result<Option<Org>, GovError> {
        self.one(
            &format!("SELECT {ORG_COLS} FROM orgs WHERE name = ?1"),
            params![name],
            org_row,
        )?
        .map(org_of)
        .transpose()
    }

    fn orgs_of_kind(&mut self, kind: OrgKind) -> Result<Vec<Org>, GovError> {
        self.all(
            &format!("SELECT {ORG_COLS} FROM orgs WHERE kind = ?1 ORDER BY id"),
            params![kind.as_str()],
            org_row,
        )?
        .into_iter()
        .map(org_of)
        .collect()
    }

    fn set_org_status(&mut self, id: OrgId, status: OrgStatus) -> Result<(), GovError> {
        let n = self
            .tx
            .execute(
                "UPDATE orgs SET status = ?2 WHERE id = ?1",
                params![id.0, org_status_str(status)],
            )
            .map_err(store_err)?;
        self.changed(n, "organization")
    }

    fn insert_user(
        &mut self,
        name: &str,
        org: OrgId,
        role: Role,
        at: i64,
    ) -> Result<UserId, GovError> {
        self.tx
            .execute(
                "INSERT INTO users (name, org, role, active, created) VALUES (?1, ?2, ?3, 1, ?4)",
                params![name, org.0, role.as_str(), at],
            )
            .map_err(store_err)?;
        Ok(UserId(self.tx.last_insert_rowid()))
    }

    fn user(&mut self, id: UserId) -> Result<Option<User>, GovError> {
        self.one(
            &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
            params![id.0],
            user_row,
        )?
        .map(user_of)
        .transpose()
    }

    fn user_by_name(&mut self, name: &str) -> Result<Option<User>, GovError> {
        self.one(
            &format!("SELECT {USER_COLS} FROM users WHERE name = ?1"),
            params![name],
            user_row,
        )?
        .map(user_of)
        .transpose()
    }

    fn users_of(&mut self, org: OrgId) -> Result<Vec<User>, GovError> {
        self.all(
            &format!("SELECT {USER_COLS} FROM users WHERE org = ?1 ORDER BY id"),
            params![org.0],
            user_row,
        )?
        .into_iter()
        .map(user_of)
        .collect()
    }

    fn deactivate_user(&mut self, id: UserId) -> Result<(), GovError> {
        let n = self
            .tx
            .execute("UPDATE users SET active = 0 WHERE id = ?1", params![id.0])
            .map_err(store_err)?;
        self.changed(n, "user")
    }

    fn insert_token(&mut self, hash: &[u8; 32], user: UserId, at: i64) -> Result<(), GovError> {
        self.tx
            .execute(
                "INSERT INTO tokens (hash, user, created) VALUES (?1, ?2, ?3)",
                params![hash.as_slice(), user.0, at],
            )
            .map_err(store_err)?;
        Ok(())
    }

    fn token_user(&mut self, hash: &[u8; 32]) -> Result<Option<UserId>, GovError> {
        Ok(self
            .one(
                "SELECT user FROM tokens WHERE hash = ?1 AND revoked IS NULL",
                params![hash.as_slice()],
                |r| r.get::<_, i64>(0),
            )?
            .map(UserId))
    }

    fn revoke_tokens_of(&mut self, user: UserId, at: i64) -> Result<u64, GovError> {
        let n = self
            .tx
            .execute(
                "UPDATE tokens SET revoked = ?2 WHERE user = ?1 AND revoked IS NULL",
                params![user.0, at],
            )
            .map_err(store_err)?;
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    fn insert_agreement(
        &mut self,
        a: &NewAgreement<'_>,
        event: &AgreementEvent,
    ) -> Result<AgreementId, GovError> {
        self.tx
            .execute(
                "INSERT INTO agreements (kind, grantor, grantee, scope, start_day, end_day, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active')",
                params![
                    kind_str(a.kind),
                    a.grantor.0,
                    a.grantee.0,
                    json(&a.scope)?,
                    a.start.number(),
                    a.end.number()
                ],
            )
            .map_err(store_err)?;
        let id = AgreementId(self.tx.last_insert_rowid());
        self.insert_event(id, event)?;
        Ok(id)
    }

    fn agreement(&mut self, id: AgreementId) -> Result<Option<Agreement>, GovError> {
        self.one(
            &format!("SELECT {AGREEMENT_COLS} FROM agreements WHERE id = ?1"),
            params![id.0],
            agreement_row,
        )?
        .map(agreement_of)
        .transpose()
    }

    fn agreements_of(&mut self, org: OrgId) -> Result<Vec<Agreement>, GovError> {
        self.all(
            &format!("SELECT {AGREEMENT_COLS} FROM agreements WHERE grantee = ?1 ORDER BY id"),
            params![org.0],
            agreement_row,
        )?
        .into_iter()
        .map(agreement_of)
        .collect()
    }

    fn set_agreement_status(
        &mut self,
        id: AgreementId,
        event: &AgreementEvent,
    ) -> Result<(), GovError> {
        let n = self
            .tx
            .execute(
                "UPDATE agreements SET status = ?2 WHERE id = ?1",
                params![id.0, agreement_status_str(event.status)],
            )
            .map_err(store_err)?;
        self.changed(n, "agreement")?;
        self.insert_event(id, event)
    }

    fn agreement_history(&mut self, id: AgreementId) -> Result<Vec<AgreementEvent>, GovError> {
        self.all(
            "SELECT at, status, reason, actor FROM agreement_events WHERE agreement = ?1 ORDER BY rowid",
            params![id.0],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            },
        )?
        .into_iter()
        .map(|(at, status, reason, actor)| {
            Ok(AgreementEvent {
                at,
                status: agreement_status(&status).ok_or_else(|| corrupt("agreement event"))?,
                reason,
                actor: UserId(actor),
            })
        })
        .collect()
    }

    fn insert_application(
        &mut self,
        org: OrgId,
        agreement: AgreementId,
        submitter: UserId,
        request: &ApplicationRequest,
        at: i64,
    ) -> Result<ApplicationId, GovError> {
        self.tx
            .execute(
                "INSERT INTO applications (org, agreement, submitter, scenario, purpose, columns,
                   start_day, end_day, measures, decision, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    org.0,
                    agreement.0,
                    submitter.0,
                    request.scenario,
                    request.purpose,
                    json(&request.columns)?,
                    request.start.number(),
                    request.end.number(),
                    request.measures,
                    json(&Decision::Pending)?,
                    at
                ],
            )
            .map_err(store_err)?;
        application_id(self.tx.last_insert_rowid())
    }

    fn application(&mut self, id: &ApplicationId) -> Result<Option<Application>, GovError> {
        let Some(n) = application_number(id) else {
            return Ok(None);
        };
        self.one(
            &format!("SELECT {APPLICATION_COLS} FROM applications WHERE id = ?1"),
            params![n],
            application_row,
        )?
        .map(application_of)
        .transpose()
    }

    fn applications_of(&mut self, org: OrgId) -> Result<Vec<Application>, GovError> {
        self.all(
            &format!("SELECT {APPLICATION_COLS} FROM applications WHERE org = ?1 ORDER BY id"),
            params![org.0],
            application_row,
        )?
        .into_iter()
        .map(application_of)
        .collect()
    }

    fn set_decision(&mut self, id: &ApplicationId, decision: &Decision) -> Result<(), GovError> {
        let n = application_number(id)
            .ok_or_else(|| GovError::NotFound(format!("application {id}")))?;
        let changed = self
            .tx
            .execute(
                "UPDATE applications SET decision = ?2 WHERE id = ?1",
                params![n, json(decision)?],
            )
            .map_err(store_err)?;
        self.changed(changed, "application")
    }

    fn insert_snapshot(
        &mut self,
        dataset: &TableName,
        facts: &SnapshotFacts,
        origin: &Origin,
        by: UserId,
        at: i64,
    ) -> Result<i64, GovError> {
        let version: i64 = self
            .one(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM snapshots WHERE dataset = ?1",
                params![dataset.as_str()],
                |r| r.get(0),
            )?
            .unwrap_or(1);
        let (org, statement, status) = match origin {
            Origin::Operation => (None, None, None),
            Origin::Social {
                org,
                statement,
                status,
            } => (
                Some(org.0),
                Some(statement.as_str()),
                Some(social_status_str(status)),
            ),
        };
        let rows =
            i64::try_from(facts.rows).map_err(|_| GovError::Invalid("too many rows".into()))?;
        let bytes =
            i64::try_from(facts.bytes).map_err(|_| GovError::Invalid("too large a file".into()))?;
        self.tx
            .execute(
                &format!(
                    "INSERT INTO snapshots ({SNAPSHOT_COLS}, by_user)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
                params![
                    dataset.as_str(),
                    version,
                    facts.path,
                    facts.blake3.as_slice(),
                    rows,
                    bytes,
                    json(&facts.columns)?,
                    at,
                    org,
                    statement,
                    status,
                    by.0
                ],
            )
            .map_err(store_err)?;
        Ok(version)
    }

    fn snapshots_of(&mut self, dataset: &TableName) -> Result<Vec<CatalogSnapshot>, GovError> {
        self.all(
            &format!("SELECT {SNAPSHOT_COLS} FROM snapshots WHERE dataset = ?1 ORDER BY version"),
            params![dataset.as_str()],
            snapshot_row,
        )?
        .into_iter()
        .map(snapshot_of)
        .collect()
    }

    fn latest_snapshots(&mut self) -> Result<Vec<CatalogSnapshot>, GovError> {
        self.all(
            &format!(
                "SELECT {SNAPSHOT_COLS} FROM snapshots s WHERE version =
                   (SELECT MAX(version) FROM snapshots t WHERE t.dataset = s.dataset)
                 ORDER BY dataset"
            ),
            [],
            snapshot_row,
        )?
        .into_iter()
        .map(snapshot_of)
        .collect()
    }

    fn set_social_status(
        &mut self,
        dataset: &TableName,
        version: i64,
        status: &SocialStatus,
    ) -> Result<(), GovError> {
        let n = self
            .tx
            .execute(
                "UPDATE snapshots SET social_status = ?3
                 WHERE dataset = ?1 AND version = ?2 AND social_org IS NOT NULL",
                params![dataset.as_str(), version, social_status_str(status)],
            )
            .map_err(store_err)?;
        self.changed(n, "social dataset")
    }

    fn insert_output(
        &mut self,
        job: JobNo,
        org: OrgId,
        output: &NewOutput,
        at: i64,
    ) -> Result<OutputNo, GovError> {
        super::outputs::insert(&self.tx, job, org, output, at)
    }

    fn output(&mut self, no: OutputNo) -> Result<Option<OutputRecord>, GovError> {
        super::outputs::get(&self.tx, no)
    }

    fn outputs(
        &mut self,
        org: Option<OrgId>,
        job: Option<JobNo>,
        state: Option<ReviewState>,
        limit: u32,
    ) -> Result<Vec<OutputRecord>, GovError> {
        super::outputs::list(&self.tx, org, job, state, limit)
    }

    fn set_review(&mut self, no: OutputNo, review: &Review) -> Result<(), GovError> {
        super::outputs::set_review(&self.tx, no, review)
    }

    fn set_released(&mut self, no: OutputNo, at: i64) -> Result<(), GovError> {
        super::outputs::set_released(&self.tx, no, at)
    }

    fn set_receipt(&mut self, no: OutputNo, receipt: &str) -> Result<(), GovError> {
        super::outputs::set_receipt(&self.tx, no, receipt)
    }

    fn withdraw_output(
        &mut self,
        no: OutputNo,
        from: ReviewState,
        at: i64,
        reason: &str,
    ) -> Result<(), GovError> {
        super::outputs::withdraw(&self.tx, no, from, at, reason)
    }

    fn insert_product(
        &mut self,
        org: OrgId,
        product: &NewProduct,
        at: i64,
    ) -> Result<ProductNo, GovError> {
        super::products::insert_product(&self.tx, org, product, at)
    }

    fn product(&mut self, no: ProductNo) -> Result<Option<Product>, GovError> {
        super::products::get_product(&self.tx, no)
    }

    fn products(
        &mut self,
        org: Option<OrgId>,
        output: Option<OutputNo>,
        all: bool,
        limit: u32,
    ) -> Result<Vec<Product>, GovError> {
        super::products::list_products(&self.tx, org, output, all, limit)
    }

    fn take_down(&mut self, no: ProductNo, at: i64, reason: &str) -> Result<(), GovError> {
        super::products::take_down(&self.tx, no, at, reason)
    }

    fn insert_job(&mut self, job: &NewJob<'_>) -> Result<JobNo, GovError> {
        super::jobs::insert(&self.tx, job)
    }

    fn job(&mut self, no: JobNo) -> Result<Option<JobRecord>, GovError> {
        super::jobs::get(&self.tx, no)
    }

    fn jobs(
        &mut self,
        org: Option<OrgId>,
        status: Option<JobStatus>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, GovError> {
        super::jobs::list(&self.tx, org, status, limit)
    }

    fn next_queued_job(&mut self) -> Result<Option<JobRecord>, GovError> {
        super::jobs::next_queued(&self.tx)
    }

    fn start_job(&mut self, no: JobNo, worker: &str, at: i64) -> Result<(), GovError> {
        super::jobs::start(&self.tx, no, worker, at)
    }

    fn set_job_run(&mut self, no: JobNo, run: &str) -> Result<(), GovError> {
        super::jobs::set_run(&self.tx, no, run)
    }

    fn end_job(
        &mut self,
        no: JobNo,
        from: JobStatus,
        end: &JobEnd,
        at: i64,
    ) -> Result<(), GovError> {
        super::jobs::end(&self.tx, no, from, end, at)
    }

    fn journal(
        &mut self,
        actor: &str,
        action: &str,
        subject: &str,
        record: &str,
        at: i64,
    ) -> Result<(), GovError> {
        self.tx
            .execute(
                "INSERT INTO journal (actor, action, subject, record, at, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0)",
                params![actor, action, subject, record, at],
            )
            .map_err(store_err)?;
        Ok(())
    }

    fn step_at(&mut self, action: &str, subject: &str) -> Result<Option<i64>, GovError> {
        self.one(
            "SELECT at FROM journal WHERE action = ?1 AND subject = ?2 ORDER BY seq LIMIT 1",
            params![action, subject],
            |r| r.get(0),
        )
    }

    fn unlogged(&mut self) -> Result<Vec<Step>, GovError> {
        self.all(
            "SELECT seq, actor, action, subject, record, state FROM journal
                 WHERE state < 2 ORDER BY seq",
            [],
            |r| {
                Ok(Step {
                    seq: r.get(0)?,
                    actor: r.get(1)?,
                    action: r.get(2)?,
                    subject: r.get(3)?,
                    record: r.get(4)?,
                    attempted: r.get::<_, i64>(5)? == 1,
                })
            },
        )
    }

    fn mark_step(&mut self, seq: i64, logged: bool) -> Result<(), GovError> {
        let n = self
            .tx
            .execute(
                "UPDATE journal SET state = ?2 WHERE seq = ?1",
                params![seq, if logged { 2 } else { 1 }],
            )
            .map_err(store_err)?;
        self.changed(n, "journal step")
    }
}

impl SqliteTx<'_> {
    fn insert_event(&self, id: AgreementId, e: &AgreementEvent) -> Result<(), GovError> {
        self.tx
            .execute(
                "INSERT INTO agreement_events (agreement, at, status, reason, actor)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    id.0,
                    e.at,
                    agreement_status_str(e.status),
                    e.reason,
                    e.actor.0
                ],
            )
            .map_err(store_err)?;
        Ok(())
    }
}
