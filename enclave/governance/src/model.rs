//! The records of governance: organizations, users, agreements, applications and the grant an
//! approved application makes.
//!
//! Owns the shapes and their statuses (as enums) and the column lists of applications. It must
//! never hold a token in the clear: users are found by the blake3 of their token.

use enclave_core::{ApplicationId, TableName};
use serde::{Deserialize, Serialize};

use crate::day::Day;
use crate::roles::{OrgKind, Role};

/// Row id of an organization.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrgId(pub i64);

/// Row id of a user.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UserId(pub i64);

/// Row id of an agreement.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AgreementId(pub i64);

/// Status of an organization.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrgStatus {
    /// Acting normally.
    Active,
    /// New jobs, applications and downloads refused; can be resumed.
    Suspended,
    /// Permissions revoked and its data destroyed; final.
    Terminated,
}

/// An organization.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Org {
    /// Row id.
    pub id: OrgId,
    /// Unique name.
    pub name: String,
    /// Authority, operator or developer.
    pub kind: OrgKind,
    /// Status.
    pub status: OrgStatus,
}

/// A user.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct User {
    /// Row id.
    pub id: UserId,
    /// Unique name.
    pub name: String,
    /// The organization.
    pub org: OrgId,
    /// The role.
    pub role: Role,
    /// False once revoked (termination or an admin's decision).
    pub active: bool,
}

/// Which tier an agreement is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgreementKind {
    /// The data authority authorizes the operator (授权运营协议).
    Operation,
    /// The operator authorizes a development entity (授权开发协议).
    Development,
}

/// Stored status of an agreement; expiry is derived from its end day ([`Agreement::status_on`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgreementStatus {
    /// In force within its period.
    Active,
    /// Temporarily not in force.
    Suspended,
    /// Ended early; final.
    Terminated,
    /// Past its end day (derived, never stored).
    Expired,
}

/// An agreement.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Agreement {
    /// Row id.
    pub id: AgreementId,
    /// Tier.
    pub kind: AgreementKind,
    /// Who authorizes.
    pub grantor: OrgId,
    /// Who is authorized.
    pub grantee: OrgId,
    /// The datasets it covers.
    pub scope: Vec<TableName>,
    /// First day in force.
    pub start: Day,
    /// Last day in force.
    pub end: Day,
    /// Stored status.
    pub status: AgreementStatus,
}

impl Agreement {
    /// The status on `today`: an active agreement past its last day is expired.
    pub fn status_on(&self, today: Day) -> AgreementStatus {
        match self.status {
            AgreementStatus::Active if today > self.end => AgreementStatus::Expired,
            s => s,
        }
    }

    /// Whether it is in force on `today`.
    pub fn in_force(&self, today: Day) -> bool {
        self.status_on(today) == AgreementStatus::Active && today >= self.start
    }
}

/// One change of an agreement's status.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AgreementEvent {
    /// Unix time.
    pub at: i64,
    /// The new status.
    pub status: AgreementStatus,
    /// Why.
    pub reason: String,
    /// Who.
    pub actor: UserId,
}

/// The columns of one dataset an application asks for (or an approval allows).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DatasetColumns {
    /// The dataset.
    pub dataset: TableName,
    /// Its columns, sorted, without repeats.
    pub columns: Vec<String>,
}

/// Largest number of datasets or columns per dataset in one application.
pub const MAX_LIST: usize = 256;

/// Whether `s` is a column name an application may list.
pub fn is_column(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a column list `dataset:col,col;dataset:col` (the command line's form).
pub fn parse_columns(text: &str) -> Result<Vec<DatasetColumns>, String> {
    let mut out: Vec<DatasetColumns> = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (d, cols) = part
            .split_once(':')
            .ok_or_else(|| "a dataset's columns are written `dataset:col,col`".to_owned())?;
        let dataset = TableName::new(d.trim()).map_err(|e| e.to_string())?;
        let mut columns = Vec::new();
        for c in cols.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if !is_column(c) {
                return Err(format!(
                    "`{}` is not a column name",
                    c.escape_debug().take(64).collect::<String>()
                ));
            }
            columns.push(c.to_owned());
        }
        columns.sort();
        columns.dedup();
        if columns.is_empty() {
            return Err(format!("dataset `{dataset}` lists no columns"));
        }
        if columns.len() > MAX_LIST {
            return Err(format!(
                "dataset `{dataset}` lists more than {MAX_LIST} columns"
            ));
        }
        if out.iter().any(|o| o.dataset == dataset) {
            return Err(format!("dataset `{dataset}` is listed twice"));
        }
        out.push(DatasetColumns { dataset, columns });
    }
    if out.is_empty() {
        return Err("an application lists at least one dataset".into());
    }
    if out.len() > MAX_LIST {
        return Err(format!("more than {MAX_LIST} datasets"));
    }
    out.sort_by(|a, b| a.dataset.cmp(&b.dataset));
    Ok(out)
}

/// What a developer applies for: one scenario, one list, one review (一场景一清单一审核).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ApplicationRequest {
    /// The scenario.
    pub scenario: String,
    /// The purpose.
    pub purpose: String,
    /// Datasets and columns.
    pub columns: Vec<DatasetColumns>,
    /// First day.
    pub start: Day,
    /// Last day.
    pub end: Day,
    /// The security measures the developer commits to.
    pub measures: String,
}

/// The operator's decision on an application.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Decision {
    /// Not decided yet.
    Pending,
    /// Approved, possibly for fewer columns than requested.
    Approved {
        /// The columns approved (a subset of the request).
        columns: Vec<DatasetColumns>,
        /// The reviewer.
        by: UserId,
        /// Unix time.
        at: i64,
    },
    /// Rejected.
    Rejected {
        /// Why.
        reason: String,
        /// The reviewer.
        by: UserId,
        /// Unix time.
        at: i64,
    },
    /// Withdrawn by termination of the entity or its agreement.
    Revoked {
        /// Why.
        reason: String,
        /// Unix time.
        at: i64,
    },
}

/// An application.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Application {
    /// Its identifier (the pseudonym scope of its jobs).
    pub id: ApplicationId,
    /// The applying organization.
    pub org: OrgId,
    /// The development agreement it falls under.
    pub agreement: AgreementId,
    /// Who submitted it.
    pub submitter: UserId,
    /// What was asked.
    pub request: ApplicationRequest,
    /// The decision.
    pub decision: Decision,
}

/// A column as the catalog lists it: name, Arrow type, classification level — never a value.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CatalogColumn {
    /// Column name.
    pub name: String,
    /// Arrow data type, as text.
    pub data_type: String,
    /// Classification level (from the domain policy, or declared for social data).
    pub level: String,
}

/// What the domain measured of a dataset file when it was registered (the binary reads the
/// Parquet footer and hashes the file; governance keeps the result).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SnapshotFacts {
    /// The file, as the domain stores it.
    pub path: String,
    /// blake3 of the file's bytes.
    pub blake3: [u8; 32],
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// Columns.
    pub columns: Vec<CatalogColumn>,
}

/// Where a dataset came from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Origin {
    /// Public data pushed into the domain under the operation authorization (授权运营数据).
    Operation,
    /// Social data a development entity brought for fusion (融合开发社会数据).
    Social {
        /// The entity.
        org: OrgId,
        /// Its statement of the data's lawful source.
        statement: String,
        /// The operator's decision.
        status: SocialStatus,
    },
}

/// The operator's decision on social data.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SocialStatus {
    /// Not decided yet.
    Pending,
    /// Approved: the entity's jobs may join it; it is in the fusion catalog.
    Approved,
    /// Rejected.
    Rejected,
}

/// One registered version of a dataset: old versions stay addressable (replay reads them).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CatalogSnapshot {
    /// The dataset.
    pub dataset: TableName,
    /// Version, from 1.
    pub version: i64,
    /// What was measured.
    pub facts: SnapshotFacts,
    /// Unix time of registration.
    pub registered_at: i64,
    /// Operation or social data.
    pub origin: Origin,
}

/// A committed governance step, journaled in the same transaction as the change it describes,
/// until the binary has recorded it in the domain's log ([`crate::Governance::unlogged_steps`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Step {
    /// Position in the journal.
    pub seq: i64,
    /// `<role>:<user>` who acted.
    pub actor: String,
    /// `gov.<what>.<verb>`.
    pub action: String,
    /// The record acted on (`application:app-3`).
    pub subject: String,
    /// The step's canonical description (JSON); the log holds only its keyed digest.
    pub record: String,
    /// Whether an append to the log was attempted (then the log is checked before appending
    /// again, so a crash between the append and the mark never records a step twice).
    pub attempted: bool,
}

/// What an approved application lets one job read: the query host's grant.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Grant {
    /// The application (pseudonym scope).
    pub application: ApplicationId,
    /// The developer organization.
    pub org: OrgId,
    /// The approved datasets and columns the job asked for (every column of an approved social
    /// dataset of the organization's own).
    pub columns: Vec<DatasetColumns>,
    /// The snapshot each dataset is read from: the latest registered version (of social data,
    /// the latest approved one).
    pub snapshots: Vec<CatalogSnapshot>,
}

impl Grant {
    /// The approved columns of `dataset`, if granted.
    pub fn columns_of(&self, dataset: &str) -> Option<&[String]> {
        self.columns
            .iter()
            .find(|d| d.dataset.as_str() == dataset)
            .map(|d| d.columns.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_lists_parse_strictly() {
        let c = parse_columns("residents: income, district,income; visits:cost").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].dataset.as_str(), "residents");
        assert_eq!(c[0].columns, ["district", "income"]);
        for bad in [
            "",
            "residents",
            "residents:",
            "Residents:income",
            "residents:in-come",
            "residents:a;residents:b",
            "residents:1x",
        ] {
            assert!(parse_columns(bad).is_err(), "{bad}");
        }
    }
}
