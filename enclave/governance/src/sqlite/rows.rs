//! Rows of the governance database and the records they hold: column lists, tuple types, and
//! the parsing of each row into a [`crate::model`] record (a row that does not parse is a store
//! error, never a record).

use super::*;

pub(super) fn org_status_str(s: OrgStatus) -> &'static str {
    match s {
        OrgStatus::Active => "active",
        OrgStatus::Suspended => "suspended",
        OrgStatus::Terminated => "terminated",
    }
}

pub(super) fn org_status(s: &str) -> Option<OrgStatus> {
    match s {
        "active" => Some(OrgStatus::Active),
        "suspended" => Some(OrgStatus::Suspended),
        "terminated" => Some(OrgStatus::Terminated),
        _ => None,
    }
}

pub(super) fn kind_str(k: AgreementKind) -> &'static str {
    match k {
        AgreementKind::Operation => "operation",
        AgreementKind::Development => "development",
    }
}

pub(super) type OrgRow = (i64, String, String, String);
pub(super) type UserRow = (i64, String, i64, String, i64);
pub(super) type AgreementRow = (i64, String, i64, i64, String, i64, i64, String);
pub(super) type ApplicationRow = (
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

pub(super) const ORG_COLS: &str = "id, name, kind, status";
pub(super) const USER_COLS: &str = "id, name, org, role, active";
pub(super) const AGREEMENT_COLS: &str =
    "id, kind, grantor, grantee, scope, start_day, end_day, status";
pub(super) const APPLICATION_COLS: &str = "id, org, agreement, submitter, scenario, purpose, columns, start_day, end_day, measures, decision";

pub(super) fn org_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrgRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

pub(super) fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

pub(super) fn agreement_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgreementRow> {
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

pub(super) fn application_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApplicationRow> {
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

pub(super) fn org_of(row: OrgRow) -> Result<Org, GovError> {
    let (id, name, kind, status) = row;
    Ok(Org {
        id: OrgId(id),
        name,
        kind: OrgKind::parse(&kind).ok_or_else(|| corrupt("organization"))?,
        status: org_status(&status).ok_or_else(|| corrupt("organization"))?,
    })
}

pub(super) fn user_of(row: UserRow) -> Result<User, GovError> {
    let (id, name, org, role, active) = row;
    Ok(User {
        id: UserId(id),
        name,
        org: OrgId(org),
        role: Role::parse(&role).ok_or_else(|| corrupt("user"))?,
        active: active == 1,
    })
}

pub(super) fn day(n: i64, what: &str) -> Result<Day, GovError> {
    Day::from_number(n).ok_or_else(|| corrupt(what))
}

pub(super) fn agreement_of(row: AgreementRow) -> Result<Agreement, GovError> {
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

pub(super) fn application_id(n: i64) -> Result<ApplicationId, GovError> {
    ApplicationId::new(&format!("app-{n}")).map_err(|_| corrupt("application"))
}

pub(super) fn application_number(id: &ApplicationId) -> Option<i64> {
    id.as_str()
        .strip_prefix("app-")
        .filter(|n| !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
}

pub(super) fn application_of(row: ApplicationRow) -> Result<Application, GovError> {
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

pub(super) type SnapshotRow = (
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

pub(super) const SNAPSHOT_COLS: &str = "dataset, version, path, blake3, rows, bytes, columns, registered, \
                             social_org, statement, social_status";

pub(super) fn snapshot_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SnapshotRow> {
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

pub(super) fn social_status_str(s: &SocialStatus) -> &'static str {
    match s {
        SocialStatus::Pending => "pending",
        SocialStatus::Approved => "approved",
        SocialStatus::Rejected => "rejected",
    }
}

pub(super) fn snapshot_of(row: SnapshotRow) -> Result<CatalogSnapshot, GovError> {
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

pub(super) fn json<T: serde::Serialize>(v: &T) -> Result<String, GovError> {
    serde_json::to_string(v).map_err(|e| GovError::Store(e.to_string()))
}

/// Parses a stored agreement status.
pub(super) fn agreement_status(s: &str) -> Option<AgreementStatus> {
    match s {
        "active" => Some(AgreementStatus::Active),
        "suspended" => Some(AgreementStatus::Suspended),
        "terminated" => Some(AgreementStatus::Terminated),
        _ => None,
    }
}

/// The stored name of an agreement status (expired is never stored).
pub(super) fn agreement_status_str(s: AgreementStatus) -> &'static str {
    match s {
        AgreementStatus::Active => "active",
        AgreementStatus::Suspended => "suspended",
        AgreementStatus::Terminated => "terminated",
        AgreementStatus::Expired => "expired",
    }
}
