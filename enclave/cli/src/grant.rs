//! A job under an application: the policy text it runs under (the domain's, with the social
//! data it joins classified and narrowed to the grant) and the catalog's snapshots it reads.
//!
//! Owns turning a governance grant into what the runtime takes. It must never let a job read a
//! file the catalog did not register for it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use enclave_core::{ApplicationId, TableName};
use enclave_governance::{Actor, GovError, Grant};
use enclave_runtime::Domain;
use enclave_runtime::actions::Action;
use enclave_store::Home;

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

/// Records in the log that governance refused a job of `actor` under `application`.
pub(crate) fn record_refusal(
    root: &Path,
    actor: &Actor,
    application: &ApplicationId,
    e: &GovError,
) -> anyhow::Result<()> {
    let domain = Domain::open(root, format!("{}:{}", actor.role(), actor.user().name))?;
    let digest = domain.keyed("governance refusal", e.to_string().as_bytes());
    domain.record(&[Action::Governed {
        action: "gov.job.refuse",
        subject: &format!("application:{application}"),
        record: digest,
    }])?;
    Ok(())
}

/// The policy and snapshots of a job under `grant`.
pub(crate) fn governed(home: &Home, grant: &Grant) -> anyhow::Result<Governed> {
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
        name: format!("{} under {}", path.display(), grant.application),
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
