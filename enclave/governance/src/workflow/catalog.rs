//! The catalogs: datasets registered into the domain (the operation catalog, 授权运营数据资源目录),
//! the published development catalog (授权开发数据资源目录) and social data brought for fusion
//! (融合开发社会数据资源目录).
//!
//! Owns who may register what (the operator, datasets its authorization covers), the versions of
//! a dataset (re-registration adds one; old ones stay addressable for replay), and the decision
//! on social data. What the catalogs show is names, schemas, levels and row counts — never a
//! value. It must never let a job read social data that was not approved, or another entity's.

use super::*;
use crate::model::{CatalogColumn, CatalogSnapshot, Origin, SnapshotFacts, SocialStatus};

/// Largest number of columns a registered file may have.
const MAX_COLUMNS: usize = 4096;

fn checked_facts(facts: &SnapshotFacts) -> Result<(), GovError> {
    if facts.columns.is_empty() || facts.columns.len() > MAX_COLUMNS {
        return Err(GovError::Invalid(format!(
            "a dataset has between 1 and {MAX_COLUMNS} columns"
        )));
    }
    if facts.path.is_empty() || facts.path.len() > MAX_TEXT {
        return Err(GovError::Invalid(
            "the file path is empty or too long".into(),
        ));
    }
    Ok(())
}

fn hex32(d: &[u8; 32]) -> String {
    hex::encode(d)
}

impl<S: Store> Governance<S> {
    /// The operator registers a snapshot of `dataset` (a new version if it exists). The
    /// operator's authorization in force on `today` must cover the dataset.
    pub fn register_dataset(
        &mut self,
        actor: &Actor,
        dataset: &TableName,
        facts: &SnapshotFacts,
        today: Day,
        now: i64,
    ) -> Result<CatalogSnapshot, GovError> {
        actor.require(Action::RegisterDataset)?;
        checked_facts(facts)?;
        self.tx(|tx| {
            let me = tx
                .org(actor.org.id)?
                .ok_or_else(|| GovError::Store("org vanished".into()))?;
            operation_in_force(tx, &me, std::slice::from_ref(dataset), today, today)?;
            let versions = tx.snapshots_of(dataset)?;
            if versions
                .iter()
                .any(|s| matches!(s.origin, Origin::Social { .. }))
            {
                return Err(GovError::Refused(format!(
                    "`{dataset}` is social data of a development entity"
                )));
            }
            let version =
                tx.insert_snapshot(dataset, facts, &Origin::Operation, actor.user.id, now)?;
            journal(
                tx,
                actor,
                "gov.catalog.register",
                &format!("dataset:{dataset}"),
                serde_json::json!({"dataset": dataset, "version": version,
                    "blake3": hex32(&facts.blake3), "rows": facts.rows, "bytes": facts.bytes,
                    "columns": facts.columns}),
                now,
            )?;
            latest(tx, dataset)
        })
    }

    /// The development catalog: the latest version of every registered (operation) dataset.
    pub fn development_catalog(&mut self, actor: &Actor) -> Result<Vec<CatalogSnapshot>, GovError> {
        actor.require(Action::ReadCatalog)?;
        self.tx(|tx| {
            Ok(tx
                .latest_snapshots()?
                .into_iter()
                .filter(|s| s.origin == Origin::Operation)
                .collect())
        })
    }

    /// The fusion catalog: the latest approved version of every social dataset.
    pub fn fusion_catalog(&mut self, actor: &Actor) -> Result<Vec<CatalogSnapshot>, GovError> {
        actor.require(Action::ReadCatalog)?;
        self.tx(|tx| {
            let mut out = Vec::new();
            for s in tx.latest_snapshots()? {
                if matches!(s.origin, Origin::Social { .. })
                    && let Some(a) = approved_social(tx, &s.dataset)?
                {
                    out.push(a);
                }
            }
            Ok(out)
        })
    }

    /// A development entity brings social data: `facts` with each column's declared level, and
    /// a statement of its lawful source. It waits for the operator's decision.
    pub fn upload_social(
        &mut self,
        actor: &Actor,
        dataset: &TableName,
        facts: &SnapshotFacts,
        statement: &str,
        now: i64,
    ) -> Result<CatalogSnapshot, GovError> {
        actor.require(Action::UploadSocial)?;
        checked_facts(facts)?;
        let statement = text("the statement of lawful source", statement)?;
        self.tx(|tx| {
            let me = tx
                .org(actor.org.id)?
                .ok_or_else(|| GovError::Store("org vanished".into()))?;
            active(&me)?;
            for s in tx.snapshots_of(dataset)? {
                match s.origin {
                    Origin::Social { org, .. } if org == me.id => {}
                    _ => {
                        return Err(GovError::Refused(format!(
                            "the name `{dataset}` is taken in this domain"
                        )));
                    }
                }
            }
            let origin = Origin::Social {
                org: me.id,
                statement: statement.clone(),
                status: SocialStatus::Pending,
            };
            let version = tx.insert_snapshot(dataset, facts, &origin, actor.user.id, now)?;
            journal(
                tx,
                actor,
                "gov.social.upload",
                &format!("dataset:{dataset}"),
                serde_json::json!({"dataset": dataset, "version": version, "org": me.name,
                    "blake3": hex32(&facts.blake3), "rows": facts.rows,
                    "columns": facts.columns, "statement": statement}),
                now,
            )?;
            latest(tx, dataset)
        })
    }

    /// A reviewer approves or rejects version `version` of social dataset `dataset`.
    pub fn decide_social(
        &mut self,
        actor: &Actor,
        dataset: &TableName,
        version: i64,
        approve: bool,
        reason: &str,
        now: i64,
    ) -> Result<(), GovError> {
        actor.require(Action::DecideSocial)?;
        let reason = text("the reason", reason)?;
        self.tx(|tx| {
            let s = tx
                .snapshots_of(dataset)?
                .into_iter()
                .find(|s| s.version == version)
                .ok_or_else(|| GovError::NotFound(format!("`{dataset}` version {version}")))?;
            match &s.origin {
                Origin::Social { org, status, .. } => {
                    if *org == actor.org.id {
                        return Err(GovError::Refused(
                            "nobody decides on their own organization's data".into(),
                        ));
                    }
                    if *status != SocialStatus::Pending {
                        return Err(GovError::Refused(format!(
                            "`{dataset}` version {version} is decided already"
                        )));
                    }
                }
                Origin::Operation => {
                    return Err(GovError::Invalid(format!("`{dataset}` is not social data")));
                }
            }
            let status = if approve {
                SocialStatus::Approved
            } else {
                SocialStatus::Rejected
            };
            tx.set_social_status(dataset, version, &status)?;
            journal(
                tx,
                actor,
                if approve {
                    "gov.social.approve"
                } else {
                    "gov.social.reject"
                },
                &format!("dataset:{dataset}"),
                serde_json::json!({"dataset": dataset, "version": version, "reason": reason}),
                now,
            )
        })
    }
}

fn latest(tx: &mut dyn Tx, dataset: &TableName) -> Result<CatalogSnapshot, GovError> {
    tx.snapshots_of(dataset)?
        .pop()
        .ok_or_else(|| GovError::Store("a registered snapshot vanished".into()))
}

/// The latest approved version of social dataset `dataset`.
pub(super) fn approved_social(
    tx: &mut dyn Tx,
    dataset: &TableName,
) -> Result<Option<CatalogSnapshot>, GovError> {
    Ok(tx.snapshots_of(dataset)?.into_iter().rev().find(|s| {
        matches!(
            s.origin,
            Origin::Social {
                status: SocialStatus::Approved,
                ..
            }
        )
    }))
}

/// Column names of a snapshot.
pub(super) fn column_names(s: &CatalogSnapshot) -> Vec<String> {
    let mut c: Vec<String> = s
        .facts
        .columns
        .iter()
        .map(|c: &CatalogColumn| c.name.clone())
        .collect();
    c.sort();
    c
}
