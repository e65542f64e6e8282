//! The embedded governance store: one SQLite file in WAL mode with durable commits
//! (`synchronous = FULL`), foreign keys on, and versioned migrations (`PRAGMA user_version`).
//!
//! Owns the schema and the mapping between rows and [`crate::model`] records. It must never
//! commit part of a workflow step, never open a database of a newer schema version than it knows,
//! and never report a damaged row as a record (a row that does not parse is a store error).

use std::path::Path;
use std::time::Duration;

use enclave_core::{ApplicationId, TableName};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::GovError;
use crate::day::Day;
use crate::model::AgreementStatus;
use crate::model::{
    Agreement, AgreementEvent, AgreementId, AgreementKind, Application, ApplicationRequest,
    CatalogColumn, CatalogSnapshot, DatasetColumns, Decision, Org, OrgId, OrgStatus, Origin,
    SnapshotFacts, SocialStatus, Step, User, UserId,
};
use crate::roles::{OrgKind, Role};
use crate::store::{NewAgreement, Store, Tx};

/// The schema, one migration per version; never edit a released one, add the next.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE orgs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('authority', 'operator', 'developer')),
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'terminated')),
    created INTEGER NOT NULL
) STRICT;
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    org INTEGER NOT NULL REFERENCES orgs(id),
    role TEXT NOT NULL,
    active INTEGER NOT NULL CHECK (active IN (0, 1)),
    created INTEGER NOT NULL
) STRICT;
CREATE TABLE tokens (
    hash BLOB PRIMARY KEY CHECK (length(hash) = 32),
    user INTEGER NOT NULL REFERENCES users(id),
    created INTEGER NOT NULL,
    revoked INTEGER
) STRICT;
CREATE INDEX tokens_user ON tokens(user);
CREATE TABLE agreements (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('operation', 'development')),
    grantor INTEGER NOT NULL REFERENCES orgs(id),
    grantee INTEGER NOT NULL REFERENCES orgs(id),
    scope TEXT NOT NULL,
    start_day INTEGER NOT NULL,
    end_day INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'terminated')),
    CHECK (start_day <= end_day)
) STRICT;
CREATE INDEX agreements_grantee ON agreements(grantee);
CREATE TABLE agreement_events (
    agreement INTEGER NOT NULL REFERENCES agreements(id),
    at INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor INTEGER NOT NULL REFERENCES users(id)
) STRICT;
CREATE TABLE applications (
    id INTEGER PRIMARY KEY,
    org INTEGER NOT NULL REFERENCES orgs(id),
    agreement INTEGER NOT NULL REFERENCES agreements(id),
    submitter INTEGER NOT NULL REFERENCES users(id),
    scenario TEXT NOT NULL,
    purpose TEXT NOT NULL,
    columns TEXT NOT NULL,
    start_day INTEGER NOT NULL,
    end_day INTEGER NOT NULL,
    measures TEXT NOT NULL,
    decision TEXT NOT NULL,
    created INTEGER NOT NULL
) STRICT;
CREATE INDEX applications_org ON applications(org);
CREATE TABLE journal (
    seq INTEGER PRIMARY KEY,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    record TEXT NOT NULL,
    at INTEGER NOT NULL,
    state INTEGER NOT NULL CHECK (state IN (0, 1, 2))
) STRICT;
CREATE INDEX journal_unlogged ON journal(state) WHERE state < 2;
"#,
    r#"
CREATE TABLE snapshots (
    dataset TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    path TEXT NOT NULL,
    blake3 BLOB NOT NULL CHECK (length(blake3) = 32),
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    columns TEXT NOT NULL,
    registered INTEGER NOT NULL,
    by_user INTEGER NOT NULL REFERENCES users(id),
    social_org INTEGER REFERENCES orgs(id),
    statement TEXT,
    social_status TEXT CHECK (social_status IN ('pending', 'approved', 'rejected')),
    PRIMARY KEY (dataset, version)
) STRICT;
"#,
];

fn store_err(e: rusqlite::Error) -> GovError {
    GovError::Store(e.to_string())
}

fn corrupt(what: &str) -> GovError {
    GovError::Store(format!("a stored {what} does not parse"))
}

/// The SQLite governance store.
pub struct SqliteStore {
    conn: Connection,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, GovError> {
        let conn = Connection::open(path).map_err(store_err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(store_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(GovError::Store(format!(
                "the database cannot use write-ahead logging (journal mode {mode})"
            )));
        }
        SqliteStore::setup(conn)
    }

    /// A database in memory (tests).
    pub fn open_in_memory() -> Result<SqliteStore, GovError> {
        SqliteStore::setup(Connection::open_in_memory().map_err(store_err)?)
    }

    fn setup(mut conn: Connection) -> Result<SqliteStore, GovError> {
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(store_err)?;
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(store_err)?;
        migrate(&mut conn)?;
        Ok(SqliteStore { conn })
    }

    /// The schema version of the open database.
    pub fn version(&self) -> Result<i64, GovError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(store_err)
    }
}

fn migrate(conn: &mut Connection) -> Result<(), GovError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_err)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(store_err)?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if version > known || version < 0 {
        return Err(GovError::Store(format!(
            "the governance database has schema version {version}; this build knows up to {known}"
        )));
    }
    for (i, m) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.execute_batch(m).map_err(store_err)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))
            .map_err(store_err)?;
    }
    tx.commit().map_err(store_err)
}

impl Store for SqliteStore {
    fn transaction<R>(
        &mut self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<R, GovError>,
    ) -> Result<R, GovError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(store_err)?;
        let mut t = SqliteTx { tx };
        let r = f(&mut t)?;
        t.tx.commit().map_err(store_err)?;
        Ok(r)
    }
}

struct SqliteTx<'c> {
    tx: rusqlite::Transaction<'c>,
}

fn org_status_str(s: OrgStatus) -> &'static str {
    match s {
        OrgStatus::Active => "active",
        OrgStatus::Suspended => "suspended",
        OrgStatus::Terminated => "terminated",
    }
}

fn org_status(s: &str) -> Option<OrgStatus> {
    match s {
        "active" => Some(OrgStatus::Active),
        "suspended" => Some(OrgStatus::Suspended),
        "terminated" => Some(OrgStatus::Terminated),
        _ => None,
    }
}

fn kind_str(k: AgreementKind) -> &'static str {
    match k {
        AgreementKind::Operation => "operation",
        AgreementKind::Development => "development",
    }
}

type OrgRow = (i64, String, String, String);
type UserRow = (i64, String, i64, String, i64);
type AgreementRow = (i64, String, i64, i64, String, i64, i64, String);
type ApplicationRow = (
    i64,
    i64,
    i64,
    i64,
    String,
    String,
    String,
    i64,
    i64,
    String,
    String,
);

const ORG_COLS: &str = "id, name, kind, status";
const USER_COLS: &str = "id, name, org, role, active";
const AGREEMENT_COLS: &str = "id, kind, grantor, grantee, scope, start_day, end_day, status";
const APPLICATION_COLS: &str = "id, org, agreement, submitter, scenario, purpose, columns, start_day, end_day, measures, decision";

fn org_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrgRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn agreement_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgreementRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn application_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApplicationRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

fn org_of(row: OrgRow) -> Result<Org, GovError> {
    let (id, name, kind, status) = row;
    Ok(Org {
        id: OrgId(id),
        name,
        kind: OrgKind::parse(&kind).ok_or_else(|| corrupt("organization"))?,
        status: org_status(&status).ok_or_else(|| corrupt("organization"))?,
    })
}

fn user_of(row: UserRow) -> Result<User, GovError> {
    let (id, name, org, role, active) = row;
    Ok(User {
        id: UserId(id),
        name,
        org: OrgId(org),
        role: Role::parse(&role).ok_or_else(|| corrupt("user"))?,
        active: active == 1,
    })
}

fn day(n: i64, what: &str) -> Result<Day, GovError> {
    Day::from_number(n).ok_or_else(|| corrupt(what))
}

fn agreement_of(row: AgreementRow) -> Result<Agreement, GovError> {
    let (id, kind, grantor, grantee, scope, start, end, status) = row;
    let scope: Vec<TableName> =
        serde_json::from_str(&scope).map_err(|_| corrupt("agreement scope"))?;
    Ok(Agreement {
        id: AgreementId(id),
        kind: match kind.as_str() {
            "operation" => AgreementKind::Operation,
            "development" => AgreementKind::Development,
            _ => return Err(corrupt("agreement")),
        },
        grantor: OrgId(grantor),
        grantee: OrgId(grantee),
        scope,
        start: day(start, "agreement")?,
        end: day(end, "agreement")?,
        status: agreement_status(&status).ok_or_else(|| corrupt("agreement"))?,
    })
}

fn application_id(n: i64) -> Result<ApplicationId, GovError> {
    ApplicationId::new(&format!("app-{n}")).map_err(|_| corrupt("application"))
}

fn application_number(id: &ApplicationId) -> Option<i64> {
    id.as_str()
        .strip_prefix("app-")
        .filter(|n| !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
}

fn application_of(row: ApplicationRow) -> Result<Application, GovError> {
    let (id, org, agreement, submitter, scenario, purpose, columns, start, end, measures, decision) =
        row;
    let columns: Vec<DatasetColumns> =
        serde_json::from_str(&columns).map_err(|_| corrupt("application column list"))?;
    let decision: Decision =
        serde_json::from_str(&decision).map_err(|_| corrupt("application decision"))?;
    Ok(Application {
        id: application_id(id)?,
        org: OrgId(org),
        agreement: AgreementId(agreement),
        submitter: UserId(submitter),
        request: ApplicationRequest {
            scenario,
            purpose,
            columns,
            start: day(start, "application")?,
            end: day(end, "application")?,
            measures,
        },
        decision,
    })
}

type SnapshotRow = (
    String,
    i64,
    String,
    Vec<u8>,
    i64,
    i64,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);

const SNAPSHOT_COLS: &str = "dataset, version, path, blake3, rows, bytes, columns, registered, \
                             social_org, statement, social_status";

fn snapshot_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SnapshotRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

fn social_status_str(s: &SocialStatus) -> &'static str {
    match s {
        SocialStatus::Pending => "pending",
        SocialStatus::Approved => "approved",
        SocialStatus::Rejected => "rejected",
    }
}

fn snapshot_of(row: SnapshotRow) -> Result<CatalogSnapshot, GovError> {
    let (dataset, version, path, blake3, rows, bytes, columns, registered, org, statement, status) =
        row;
    let columns: Vec<CatalogColumn> =
        serde_json::from_str(&columns).map_err(|_| corrupt("snapshot column list"))?;
    let origin = match (org, statement, status.as_deref()) {
        (None, None, None) => Origin::Operation,
        (Some(org), Some(statement), Some(s)) => Origin::Social {
            org: OrgId(org),
            statement,
            status: match s {
                "pending" => SocialStatus::Pending,
                "approved" => SocialStatus::Approved,
                "rejected" => SocialStatus::Rejected,
                _ => return Err(corrupt("snapshot")),
            },
        },
        _ => return Err(corrupt("snapshot")),
    };
    Ok(CatalogSnapshot {
        dataset: TableName::new(&dataset).map_err(|_| corrupt("snapshot"))?,
        version,
        facts: SnapshotFacts {
            path,
            blake3: blake3.try_into().map_err(|_| corrupt("snapshot digest"))?,
            rows: u64::try_from(rows).map_err(|_| corrupt("snapshot"))?,
            bytes: u64::try_from(bytes).map_err(|_| corrupt("snapshot"))?,
            columns,
        },
        registered_at: registered,
        origin,
    })
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, GovError> {
    serde_json::to_string(v).map_err(|e| GovError::Store(e.to_string()))
}

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

/// Parses a stored agreement status.
fn agreement_status(s: &str) -> Option<AgreementStatus> {
    match s {
        "active" => Some(AgreementStatus::Active),
        "suspended" => Some(AgreementStatus::Suspended),
        "terminated" => Some(AgreementStatus::Terminated),
        _ => None,
    }
}

/// The stored name of an agreement status (expired is never stored).
fn agreement_status_str(s: AgreementStatus) -> &'static str {
    match s {
        AgreementStatus::Active => "active",
        AgreementStatus::Suspended => "suspended",
        AgreementStatus::Terminated => "terminated",
        AgreementStatus::Expired => "expired",
    }
}
