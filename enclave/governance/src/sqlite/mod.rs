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

mod jobs;
mod outputs;
mod products;
mod rows;
mod tx;

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
    jobs::MIGRATION,
    outputs::MIGRATION,
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
