//! A job under an application: the grant of the token's user, the catalog's snapshots it reads,
//! and the policy text it runs under (the domain's, with the social data it joins classified
//! and narrowed to the grant).
//!
//! Owns turning a governance grant into what the runtime takes. It must never let a job read a
//! file the catalog did not register for it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use enclave_core::TableName;
use enclave_governance::Day;
use enclave_runtime::Domain;
use enclave_runtime::actions::Action;
use enclave_store::Home;

use crate::gov::{Common, Session};

/// What a job under an application runs with: its policy text (the domain's, with the social
/// data it joins classified and an `[approval]` section narrowing it to the grant) and the
/// registered snapshots it reads.
pub(crate) struct Governed {
    /// Name of the policy in messages.
    pub(crate) name: String,
    /// The policy text.
    pub(crate) text: String,
    /// Dataset, file inside the domain, and the blake3 the catalog registered.
    pub(crate) tables: Vec<(TableName, PathBuf, [u8; 32])>,
}

/// The grant of a job that names application `application` for `tables`: the token's user must
/// hold it today. A refusal is recorded in the log and returned as an error.
pub(crate) fn governed(
    root: &Path,
    token: Option<&str>,
    application: &str,
    tables: &[TableName],
) -> anyhow::Result<Governed> {
    let home = Home::open(root)?;
    let common = Common {
        home: Some(root.to_owned()),
        token: token.map(str::to_owned),
    };
    let mut s = Session::open(&common)?;
    let id = enclave_core::ApplicationId::new(application)?;
    let grant = match s.gov.grant_for_job(&s.actor, &id, tables, Day::today()) {
        Ok(g) => g,
        Err(e) => {
            let domain = Domain::open(root, format!("{}:{}", s.actor.role(), s.actor.user().name))?;
            let digest = domain.keyed("governance refusal", e.to_string().as_bytes());
            domain.record(&[Action::Governed {
                action: "gov.job.refuse",
                subject: &format!("application:{id}"),
                record: digest,
            }])?;
            return Err(e.into());
        }
    };
    let path = home.policy_path();
    let mut text = String::from_utf8(enclave_store::read_bounded(&path, 1 << 20)?)
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    for snap in &grant.snapshots {
        if let Some(t) = crate::catalog::social_policy_text(snap) {
            text.push_str(&t);
        }
    }
    let approved: Vec<(TableName, Vec<String>)> = grant
        .columns
        .iter()
        .map(|c| (c.dataset.clone(), c.columns.clone()))
        .collect();
    text.push_str(&enclave_policy::approval_text(&approved));
    Ok(Governed {
        name: format!("{} under {id}", path.display()),
        text,
        tables: grant
            .snapshots
            .iter()
            .map(|s| {
                (
                    s.dataset.clone(),
                    PathBuf::from(&s.facts.path),
                    s.facts.blake3,
                )
            })
            .collect(),
    })
}
