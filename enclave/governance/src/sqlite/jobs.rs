//! The `jobs` table: job records as rows (migration 3).
//!
//! Owns the mapping between a [`JobRecord`] and its row, and the guarded status updates (a row
//! changes only from the status the state machine allows). It must never report a row that does
//! not parse as a record.

use enclave_core::{ApplicationId, TableName};
use rusqlite::{OptionalExtension, params};

use super::{corrupt, store_err};
use crate::GovError;
use crate::job::{JobEnd, JobNo, JobRecord, JobStatus, JobUsage};
use crate::model::{OrgId, UserId};
use crate::store::NewJob;

pub(super) const MIGRATION: &str = r#"
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    org INTEGER NOT NULL REFERENCES orgs(id),
    submitter INTEGER NOT NULL REFERENCES users(id),
    application TEXT NOT NULL,
    module BLOB NOT NULL CHECK (length(module) = 32),
    datasets TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted')),
    submitted INTEGER NOT NULL,
    started INTEGER,
    finished INTEGER,
    worker TEXT,
    usage TEXT,
    error TEXT,
    run TEXT,
    first_entry INTEGER,
    last_entry INTEGER,
    transcript TEXT
) STRICT;
CREATE INDEX jobs_status ON jobs(status);
CREATE INDEX jobs_org ON jobs(org);
"#;

const COLS: &str = "id, org, submitter, application, module, datasets, spec, status, submitted, \
                    started, finished, worker, usage, error, run, first_entry, last_entry, \
                    transcript";

struct Row {
    id: i64,
    org: i64,
    submitter: i64,
    application: String,
    module: Vec<u8>,
    datasets: String,
    spec: String,
    status: String,
    submitted: i64,
    started: Option<i64>,
    finished: Option<i64>,
    worker: Option<String>,
    usage: Option<String>,
    error: Option<String>,
    run: Option<String>,
    first_entry: Option<i64>,
    last_entry: Option<i64>,
    transcript: Option<String>,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        org: r.get(1)?,
        submitter: r.get(2)?,
        application: r.get(3)?,
        module: r.get(4)?,
        datasets: r.get(5)?,
        spec: r.get(6)?,
        status: r.get(7)?,
        submitted: r.get(8)?,
        started: r.get(9)?,
        finished: r.get(10)?,
        worker: r.get(11)?,
        usage: r.get(12)?,
        error: r.get(13)?,
        run: r.get(14)?,
        first_entry: r.get(15)?,
        last_entry: r.get(16)?,
        transcript: r.get(17)?,
    })
}

fn record(r: Row) -> Result<JobRecord, GovError> {
    let bad = || corrupt("job");
    let status = JobStatus::parse(&r.status).ok_or_else(bad)?;
    let datasets: Vec<String> = serde_json::from_str(&r.datasets).map_err(|_| bad())?;
    let datasets = datasets
        .iter()
        .map(|d| TableName::new(d).map_err(|_| bad()))
        .collect::<Result<Vec<_>, _>>()?;
    let end = if status.is_final() {
        let usage: JobUsage = match &r.usage {
            Some(u) => serde_json::from_str(u).map_err(|_| bad())?,
            None => JobUsage::default(),
        };
        let entries = match (r.first_entry, r.last_entry) {
            (Some(a), Some(b)) => Some((
                u64::try_from(a).map_err(|_| bad())?,
                u64::try_from(b).map_err(|_| bad())?,
            )),
            (None, None) => None,
            _ => return Err(bad()),
        };
        Some(JobEnd {
            status,
            usage,
            error: r.error,
            entries,
            transcript: r.transcript,
        })
    } else {
        None
    };
    Ok(JobRecord {
        no: JobNo(r.id),
        org: OrgId(r.org),
        submitter: UserId(r.submitter),
        application: ApplicationId::new(&r.application).map_err(|_| bad())?,
        module: r.module.try_into().map_err(|_| bad())?,
        datasets,
        spec: r.spec,
        status,
        submitted_at: r.submitted,
        started_at: r.started,
        finished_at: r.finished,
        worker: r.worker,
        run: r.run,
        end,
    })
}

fn int(n: u64, what: &str) -> Result<i64, GovError> {
    i64::try_from(n).map_err(|_| GovError::Invalid(format!("{what} is too large to store")))
}

pub(super) fn insert(tx: &rusqlite::Transaction<'_>, j: &NewJob<'_>) -> Result<JobNo, GovError> {
    let datasets: Vec<&str> = j.datasets.iter().map(TableName::as_str).collect();
    let datasets = serde_json::to_string(&datasets).map_err(|e| GovError::Store(e.to_string()))?;
    tx.execute(
        "INSERT INTO jobs (org, submitter, application, module, datasets, spec, status, submitted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7)",
        params![
            j.org.0,
            j.submitter.0,
            j.application.as_str(),
            &j.module[..],
            datasets,
            j.spec,
            j.at
        ],
    )
    .map_err(store_err)?;
    Ok(JobNo(tx.last_insert_rowid()))
}

pub(super) fn get(
    tx: &rusqlite::Transaction<'_>,
    no: JobNo,
) -> Result<Option<JobRecord>, GovError> {
    tx.query_row(
        &format!("SELECT {COLS} FROM jobs WHERE id = ?1"),
        params![no.0],
        row,
    )
    .optional()
    .map_err(store_err)?
    .map(record)
    .transpose()
}

pub(super) fn list(
    tx: &rusqlite::Transaction<'_>,
    org: Option<OrgId>,
    status: Option<JobStatus>,
    limit: u32,
) -> Result<Vec<JobRecord>, GovError> {
    let mut stmt = tx
        .prepare(&format!(
            "SELECT {COLS} FROM jobs
             WHERE (?1 IS NULL OR org = ?1) AND (?2 IS NULL OR status = ?2)
             ORDER BY id DESC LIMIT ?3"
        ))
        .map_err(store_err)?;
    let rows = stmt
        .query_map(
            params![org.map(|o| o.0), status.map(JobStatus::as_str), limit],
            row,
        )
        .map_err(store_err)?;
    rows.map(|r| r.map_err(store_err).and_then(record))
        .collect()
}

/// The oldest queued job (one indexed row, however long the queue).
pub(super) fn next_queued(tx: &rusqlite::Transaction<'_>) -> Result<Option<JobRecord>, GovError> {
    let mut stmt = tx
        .prepare(&format!(
            "SELECT {COLS} FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1"
        ))
        .map_err(store_err)?;
    let mut rows = stmt.query_map([], row).map_err(store_err)?;
    rows.next()
        .transpose()
        .map_err(store_err)?
        .map(record)
        .transpose()
}

pub(super) fn start(
    tx: &rusqlite::Transaction<'_>,
    no: JobNo,
    worker: &str,
    at: i64,
) -> Result<(), GovError> {
    let n = tx
        .execute(
            "UPDATE jobs SET status = 'running', worker = ?2, started = ?3
             WHERE id = ?1 AND status = 'queued'",
            params![no.0, worker, at],
        )
        .map_err(store_err)?;
    if n == 1 {
        Ok(())
    } else {
        Err(GovError::Refused(format!("{no} is not queued")))
    }
}

pub(super) fn end(
    tx: &rusqlite::Transaction<'_>,
    no: JobNo,
    from: JobStatus,
    e: &JobEnd,
    at: i64,
) -> Result<(), GovError> {
    if !from.may_become(e.status) {
        return Err(GovError::Store(format!(
            "a job cannot go from {from} to {}",
            e.status
        )));
    }
    let usage = serde_json::to_string(&e.usage).map_err(|x| GovError::Store(x.to_string()))?;
    let (first, last) = match e.entries {
        Some((a, b)) => (
            Some(int(a, "a log position")?),
            Some(int(b, "a log position")?),
        ),
        None => (None, None),
    };
    let n = tx
        .execute(
            "UPDATE jobs SET status = ?3, finished = ?4, usage = ?5, error = ?6,
                 first_entry = ?7, last_entry = ?8, transcript = ?9
             WHERE id = ?1 AND status = ?2",
            params![
                no.0,
                from.as_str(),
                e.status.as_str(),
                at,
                usage,
                e.error,
                first,
                last,
                e.transcript
            ],
        )
        .map_err(store_err)?;
    if n == 1 {
        Ok(())
    } else {
        Err(GovError::Refused(format!("{no} is not {from}")))
    }
}

pub(super) fn set_run(
    tx: &rusqlite::Transaction<'_>,
    no: JobNo,
    run: &str,
) -> Result<(), GovError> {
    if run.len() != 16 || !run.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(GovError::Store("a runtime job id is 16 hex digits".into()));
    }
    let n = tx
        .execute(
            "UPDATE jobs SET run = ?2 WHERE id = ?1 AND status = 'running' AND run IS NULL",
            params![no.0, run],
        )
        .map_err(store_err)?;
    if n == 1 {
        Ok(())
    } else {
        Err(GovError::Refused(format!("{no} is not running")))
    }
}
