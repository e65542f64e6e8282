//! The `outputs` and `products` tables (migration 4): outputs under review as rows (products in
//! [`super::products`]).
//!
//! Owns the schema of both and the mapping between [`OutputRecord`] and its row, and the guarded state
//! updates (a row changes only from the state the review's state machine allows). It must never
//! report a row that does not parse as a record.

use enclave_core::ApplicationId;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{corrupt, store_err};
use crate::GovError;
use crate::job::JobNo;
use crate::model::{OrgId, UserId};
use crate::output::{
    Criterion, NewOutput, OutputNo, OutputRecord, OutputVerdict, Review, ReviewState,
};

pub(super) const MIGRATION: &str = r#"
CREATE TABLE outputs (
    id INTEGER PRIMARY KEY,
    job INTEGER NOT NULL REFERENCES jobs(id),
    org INTEGER NOT NULL REFERENCES orgs(id),
    idx INTEGER NOT NULL CHECK (idx >= 0),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    digest BLOB NOT NULL CHECK (length(digest) = 32),
    rows INTEGER NOT NULL CHECK (rows >= 0),
    cols INTEGER NOT NULL CHECK (cols >= 0),
    bytes INTEGER NOT NULL CHECK (bytes >= 0),
    verdict TEXT NOT NULL CHECK (verdict IN ('pass', 'flag', 'block')),
    provenance TEXT NOT NULL,
    evidence TEXT NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('pending', 'approved', 'rejected', 'released', 'withdrawn')),
    created INTEGER NOT NULL,
    review TEXT,
    released INTEGER,
    receipt TEXT,
    withdrawn INTEGER,
    withdrawn_reason TEXT,
    UNIQUE (job, idx)
) STRICT;
CREATE INDEX outputs_state ON outputs(state);
CREATE INDEX outputs_org ON outputs(org);
CREATE INDEX outputs_digest ON outputs(digest);
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    output INTEGER NOT NULL REFERENCES outputs(id),
    org INTEGER NOT NULL REFERENCES orgs(id),
    kind TEXT NOT NULL CHECK (kind IN ('dataset', 'api', 'model', 'report')),
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    source TEXT NOT NULL,
    published INTEGER NOT NULL,
    taken_down INTEGER,
    down_reason TEXT
) STRICT;
CREATE INDEX products_output ON products(output);
"#;

const COLS: &str = "o.id, o.job, o.org, j.application, j.module, j.run, o.idx, o.name, o.kind, \
                    o.digest, o.rows, o.cols, o.bytes, o.verdict, o.provenance, o.evidence, \
                    o.state, o.created, o.review, o.released, o.receipt, o.withdrawn, \
                    o.withdrawn_reason";
const FROM: &str = "FROM outputs o JOIN jobs j ON j.id = o.job";

/// The stored form of a [`Review`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredReview {
    reviewer: i64,
    at: i64,
    approved: bool,
    affirmed: Vec<String>,
    failed: Vec<String>,
    reason: Option<String>,
    acknowledged: bool,
}

fn criteria(names: &[String]) -> Option<Vec<Criterion>> {
    names.iter().map(|n| Criterion::parse(n)).collect()
}

fn names(c: &[Criterion]) -> Vec<String> {
    c.iter().map(|c| c.as_str().to_owned()).collect()
}

struct Row {
    id: i64,
    job: i64,
    org: i64,
    application: String,
    module: Vec<u8>,
    run: Option<String>,
    idx: i64,
    name: String,
    kind: String,
    digest: Vec<u8>,
    rows: i64,
    cols: i64,
    bytes: i64,
    verdict: String,
    provenance: String,
    evidence: String,
    state: String,
    created: i64,
    review: Option<String>,
    released: Option<i64>,
    receipt: Option<String>,
    withdrawn: Option<i64>,
    withdrawn_reason: Option<String>,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        job: r.get(1)?,
        org: r.get(2)?,
        application: r.get(3)?,
        module: r.get(4)?,
        run: r.get(5)?,
        idx: r.get(6)?,
        name: r.get(7)?,
        kind: r.get(8)?,
        digest: r.get(9)?,
        rows: r.get(10)?,
        cols: r.get(11)?,
        bytes: r.get(12)?,
        verdict: r.get(13)?,
        provenance: r.get(14)?,
        evidence: r.get(15)?,
        state: r.get(16)?,
        created: r.get(17)?,
        review: r.get(18)?,
        released: r.get(19)?,
        receipt: r.get(20)?,
        withdrawn: r.get(21)?,
        withdrawn_reason: r.get(22)?,
    })
}

fn record(r: Row) -> Result<OutputRecord, GovError> {
    let bad = || corrupt("output");
    let count = |n: i64| u64::try_from(n).map_err(|_| bad());
    let review = match &r.review {
        None => None,
        Some(text) => {
            let s: StoredReview = serde_json::from_str(text).map_err(|_| bad())?;
            Some(Review {
                reviewer: UserId(s.reviewer),
                at: s.at,
                approved: s.approved,
                affirmed: criteria(&s.affirmed).ok_or_else(bad)?,
                failed: criteria(&s.failed).ok_or_else(bad)?,
                reason: s.reason,
                acknowledged: s.acknowledged,
            })
        }
    };
    let withdrawn = match (r.withdrawn, r.withdrawn_reason) {
        (Some(at), Some(why)) => Some((at, why)),
        (None, None) => None,
        _ => return Err(bad()),
    };
    Ok(OutputRecord {
        no: OutputNo(r.id),
        job: JobNo(r.job),
        org: OrgId(r.org),
        application: ApplicationId::new(&r.application).map_err(|_| bad())?,
        module: r.module.try_into().map_err(|_| bad())?,
        run: r.run,
        output: NewOutput {
            index: u32::try_from(r.idx).map_err(|_| bad())?,
            name: r.name,
            kind: r.kind,
            digest: r.digest.try_into().map_err(|_| bad())?,
            rows: count(r.rows)?,
            columns: count(r.cols)?,
            bytes: count(r.bytes)?,
            verdict: OutputVerdict::parse(&r.verdict).ok_or_else(bad)?,
            provenance: r.provenance,
            evidence: r.evidence,
        },
        state: ReviewState::parse(&r.state).ok_or_else(bad)?,
        created_at: r.created,
        review,
        released_at: r.released,
        receipt: r.receipt,
        withdrawn,
    })
}

fn int(n: u64) -> Result<i64, GovError> {
    i64::try_from(n).map_err(|_| GovError::Invalid("a count is too large to store".into()))
}

pub(super) fn insert(
    tx: &rusqlite::Transaction<'_>,
    job: JobNo,
    org: OrgId,
    o: &NewOutput,
    at: i64,
) -> Result<OutputNo, GovError> {
    tx.execute(
        "INSERT INTO outputs (job, org, idx, name, kind, digest, rows, cols, bytes, verdict,
             provenance, evidence, state, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'pending', ?13)",
        params![
            job.0,
            org.0,
            o.index,
            o.name,
            o.kind,
            &o.digest[..],
            int(o.rows)?,
            int(o.columns)?,
            int(o.bytes)?,
            o.verdict.as_str(),
            o.provenance,
            o.evidence,
            at
        ],
    )
    .map_err(store_err)?;
    Ok(OutputNo(tx.last_insert_rowid()))
}

pub(super) fn get(
    tx: &rusqlite::Transaction<'_>,
    no: OutputNo,
) -> Result<Option<OutputRecord>, GovError> {
    tx.query_row(
        &format!("SELECT {COLS} {FROM} WHERE o.id = ?1"),
        params![no.0],
        row,
    )
    .optional()
    .map_err(store_err)?
    .map(record)
    .transpose()
}

/// Outputs, newest first: of `org` / `job` / in `state` when given, at most `limit`.
pub(super) fn list(
    tx: &rusqlite::Transaction<'_>,
    org: Option<OrgId>,
    job: Option<JobNo>,
    state: Option<ReviewState>,
    limit: u32,
) -> Result<Vec<OutputRecord>, GovError> {
    let mut stmt = tx
        .prepare(&format!(
            "SELECT {COLS} {FROM}
             WHERE (?1 IS NULL OR o.org = ?1) AND (?2 IS NULL OR o.job = ?2)
               AND (?3 IS NULL OR o.state = ?3)
             ORDER BY o.id DESC LIMIT ?4"
        ))
        .map_err(store_err)?;
    let rows = stmt
        .query_map(
            params![
                org.map(|o| o.0),
                job.map(|j| j.0),
                state.map(ReviewState::as_str),
                limit
            ],
            row,
        )
        .map_err(store_err)?;
    rows.map(|r| r.map_err(store_err).and_then(record))
        .collect()
}

fn changed(n: usize, no: OutputNo, from: ReviewState) -> Result<(), GovError> {
    if n == 1 {
        Ok(())
    } else {
        Err(GovError::Refused(format!("{no} is not {from}")))
    }
}

fn transition(from: ReviewState, to: ReviewState) -> Result<(), GovError> {
    if from.may_become(to) {
        Ok(())
    } else {
        Err(GovError::Refused(format!(
            "an output cannot go from {from} to {to}"
        )))
    }
}

pub(super) fn set_review(
    tx: &rusqlite::Transaction<'_>,
    no: OutputNo,
    review: &Review,
) -> Result<(), GovError> {
    let to = if review.approved {
        ReviewState::Approved
    } else {
        ReviewState::Rejected
    };
    transition(ReviewState::Pending, to)?;
    let text = serde_json::to_string(&StoredReview {
        reviewer: review.reviewer.0,
        at: review.at,
        approved: review.approved,
        affirmed: names(&review.affirmed),
        failed: names(&review.failed),
        reason: review.reason.clone(),
        acknowledged: review.acknowledged,
    })
    .map_err(|e| GovError::Store(e.to_string()))?;
    let n = tx
        .execute(
            "UPDATE outputs SET state = ?2, review = ?3 WHERE id = ?1 AND state = 'pending'",
            params![no.0, to.as_str(), text],
        )
        .map_err(store_err)?;
    changed(n, no, ReviewState::Pending)
}

pub(super) fn set_released(
    tx: &rusqlite::Transaction<'_>,
    no: OutputNo,
    at: i64,
) -> Result<(), GovError> {
    transition(ReviewState::Approved, ReviewState::Released)?;
    let n = tx
        .execute(
            "UPDATE outputs SET state = 'released', released = ?2
             WHERE id = ?1 AND state = 'approved'",
            params![no.0, at],
        )
        .map_err(store_err)?;
    changed(n, no, ReviewState::Approved)
}

pub(super) fn set_receipt(
    tx: &rusqlite::Transaction<'_>,
    no: OutputNo,
    receipt: &str,
) -> Result<(), GovError> {
    let n = tx
        .execute(
            "UPDATE outputs SET receipt = ?2
             WHERE id = ?1 AND state IN ('released', 'withdrawn') AND receipt IS NULL
               AND released IS NOT NULL",
            params![no.0, receipt],
        )
        .map_err(store_err)?;
    if n == 1 {
        Ok(())
    } else {
        Err(GovError::Refused(format!(
            "{no} is not released, or has its receipt"
        )))
    }
}

pub(super) fn withdraw(
    tx: &rusqlite::Transaction<'_>,
    no: OutputNo,
    from: ReviewState,
    at: i64,
    reason: &str,
) -> Result<(), GovError> {
    transition(from, ReviewState::Withdrawn)?;
    let n = tx
        .execute(
            "UPDATE outputs SET state = 'withdrawn', withdrawn = ?3, withdrawn_reason = ?4
             WHERE id = ?1 AND state = ?2",
            params![no.0, from.as_str(), at, reason],
        )
        .map_err(store_err)?;
    changed(n, no, from)
}
