//! The seed's workflow, step by step: bootstrap, registration, users and tokens, the two tiers
//! of agreements, applications and their decisions, the grant of a job, and the lifecycle.
//!
//! Owns every rule that depends on the records: periods (at most three years; a development
//! agreement within the operator's authorization; an application within its agreement), scope
//! (datasets an agreement covers, columns an approval lists), ownership (a developer acts for
//! its own organization; nobody decides on their own organization's application) and status
//! (suspended and terminated entities, agreements and applications refuse). Each step is one
//! store transaction. It must never act for an [`Actor`] that did not come from
//! [`Governance::authenticate`] or [`Governance::bootstrap`].

use std::fmt;

use enclave_core::{ApplicationId, TableName};

use crate::GovError;
use crate::day::Day;
use crate::model::{
    Agreement, AgreementEvent, AgreementId, AgreementKind, AgreementStatus, Application,
    ApplicationRequest, DatasetColumns, Decision, Grant, Org, OrgStatus, Step, User, UserId,
    is_column,
};
use crate::roles::{Action, OrgKind, Role, holds, permits};
use crate::store::{NewAgreement, Store, Tx};

mod agreements;
mod applications;
mod catalog;
mod jobs;
mod lifecycle;
mod products;
mod review;

pub use jobs::{Claim, WORKER_ACTOR};
pub use lifecycle::RETENTION_SECS;
#[cfg(test)]
pub(crate) use review::bounded as bounded_for_test;

/// Longest term of an agreement, in years (the seed: operation three years, development at
/// most three).
pub const MAX_TERM_YEARS: u32 = 3;

/// Longest free-text field (scenario, purpose, measures, reasons), in bytes.
pub const MAX_TEXT: usize = 4096;

/// A user's API token: shown once when issued, stored only as its blake3.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

const TOKEN_PREFIX: &str = "enclave_";

impl Token {
    fn generate() -> Result<Token, GovError> {
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| GovError::Store("no system randomness".into()))?;
        Ok(Token(format!("{TOKEN_PREFIX}{}", hex::encode(bytes))))
    }

    /// The token text (give it to its user; never log it).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stored form of a presented token, if it has a token's shape.
    fn hash_of(text: &str) -> Option<[u8; 32]> {
        let hexpart = text.trim().strip_prefix(TOKEN_PREFIX)?;
        let bytes: [u8; 32] = hex::decode(hexpart).ok()?.try_into().ok()?;
        let mut h = blake3::Hasher::new_derive_key("enclave v1 api token");
        h.update(&bytes);
        Some(*h.finalize().as_bytes())
    }
}

/// An authenticated user, as of the moment it authenticated.
#[derive(Clone, Debug)]
pub struct Actor {
    user: User,
    org: Org,
}

impl Actor {
    /// The user.
    pub fn user(&self) -> &User {
        &self.user
    }

    /// The user's organization.
    pub fn org(&self) -> &Org {
        &self.org
    }

    /// The user's role.
    pub fn role(&self) -> Role {
        self.user.role
    }

    /// An actor made up by a test (to show that the workflow's own checks hold where the role
    /// table would already refuse).
    #[cfg(test)]
    pub(crate) fn forged_for_test(user: User, org: Org) -> Actor {
        Actor { user, org }
    }

    /// Refuses unless the role may take `action` ([`permits`]).
    pub fn require(&self, action: Action) -> Result<(), GovError> {
        if permits(self.user.role, action) {
            Ok(())
        } else {
            Err(GovError::Forbidden {
                role: self.user.role,
                action,
            })
        }
    }
}

/// An operator's verdict on an application.
#[derive(Clone, Debug)]
pub enum Verdict {
    /// Approve; `narrowed` (a subset of the request) replaces the requested columns.
    Approve {
        /// The columns approved, if fewer than requested.
        narrowed: Option<Vec<DatasetColumns>>,
    },
    /// Reject with a reason.
    Reject {
        /// Why.
        reason: String,
    },
}

/// What terminating an organization did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Termination {
    /// Users deactivated.
    pub users: u64,
    /// Tokens revoked.
    pub tokens: u64,
    /// Agreements terminated.
    pub agreements: u64,
    /// Applications revoked.
    pub applications: u64,
    /// Queued jobs failed (they never start).
    pub jobs: u64,
    /// Outputs withdrawn (pending, approved or released: no further review or download).
    pub outputs: u64,
    /// Products taken down.
    pub products: u64,
}

fn text(what: &str, s: &str) -> Result<String, GovError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(GovError::Invalid(format!("{what} is empty")));
    }
    if s.len() > MAX_TEXT {
        return Err(GovError::Invalid(format!(
            "{what} is longer than {MAX_TEXT} bytes"
        )));
    }
    if s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(GovError::Invalid(format!(
            "{what} contains control characters"
        )));
    }
    Ok(s.to_owned())
}

/// A name of an organization or user: 1–64 of `[a-z0-9._-]`, starting with a letter or digit.
fn name(what: &str, s: &str) -> Result<String, GovError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(GovError::Invalid(format!(
            "`{}` is not a valid {what} name (1–64 of a-z 0-9 . _ -)",
            s.escape_debug().take(64).collect::<String>()
        )))
    }
}

/// Checks a period: start ≤ end and at most [`MAX_TERM_YEARS`] (end before the same date three
/// years on).
fn term(start: Day, end: Day) -> Result<(), GovError> {
    if end < start {
        return Err(GovError::Invalid(format!(
            "the period ends ({end}) before it starts ({start})"
        )));
    }
    let limit = start
        .plus_years(MAX_TERM_YEARS)
        .ok_or_else(|| GovError::Invalid("the period ends past 9999".into()))?;
    if end >= limit {
        return Err(GovError::Refused(format!(
            "an agreement lasts at most {MAX_TERM_YEARS} years: {start} to {end} is longer \
             (the last possible day is the day before {limit})"
        )));
    }
    Ok(())
}

/// Journals a step in the current transaction (the binary records it in the log).
fn journal(
    tx: &mut dyn Tx,
    actor: &Actor,
    action: &str,
    subject: &str,
    record: serde_json::Value,
    now: i64,
) -> Result<(), GovError> {
    let who = format!("{}:{}", actor.user.role, actor.user.name);
    journal_as(tx, &who, action, subject, record, now)
}

/// Journals a step taken by `who` (`<role>:<name>`; the domain's workers for jobs).
fn journal_as(
    tx: &mut dyn Tx,
    who: &str,
    action: &str,
    subject: &str,
    record: serde_json::Value,
    now: i64,
) -> Result<(), GovError> {
    tx.journal(who, action, subject, &record.to_string(), now)
}

fn org_named(tx: &mut dyn Tx, n: &str) -> Result<Org, GovError> {
    tx.org_by_name(n)?
        .ok_or_else(|| GovError::NotFound(format!("organization `{n}`")))
}

fn user_named(tx: &mut dyn Tx, n: &str) -> Result<User, GovError> {
    tx.user_by_name(n)?
        .ok_or_else(|| GovError::NotFound(format!("user `{n}`")))
}

fn active(org: &Org) -> Result<(), GovError> {
    match org.status {
        OrgStatus::Active => Ok(()),
        OrgStatus::Suspended => Err(GovError::Refused(format!(
            "organization `{}` is suspended",
            org.name
        ))),
        OrgStatus::Terminated => Err(GovError::Refused(format!(
            "organization `{}` is terminated",
            org.name
        ))),
    }
}

/// Whether the acting organization administers `target`: its own, or the tier below it.
fn administers(actor: &Actor, target: &Org) -> bool {
    target.id == actor.org.id
        || matches!(
            (actor.org.kind, target.kind),
            (OrgKind::Authority, OrgKind::Operator) | (OrgKind::Operator, OrgKind::Developer)
        )
}

fn covers(scope: &[TableName], datasets: impl IntoIterator<Item = TableName>) -> bool {
    datasets.into_iter().all(|d| scope.contains(&d))
}

/// The operator's operation agreement in force on `today` that covers `datasets` until `until`.
fn operation_in_force(
    tx: &mut dyn Tx,
    operator: &Org,
    datasets: &[TableName],
    today: Day,
    until: Day,
) -> Result<Agreement, GovError> {
    active(operator)?;
    tx.agreements_of(operator.id)?
        .into_iter()
        .filter(|a| a.kind == AgreementKind::Operation && a.in_force(today))
        .find(|a| a.end >= until && covers(&a.scope, datasets.iter().cloned()))
        .ok_or_else(|| {
            GovError::Refused(format!(
                "the operator holds no operation authorization in force on {today} covering \
                 these datasets until {until}"
            ))
        })
}

/// The governance of one domain over a store.
pub struct Governance<S: Store> {
    store: S,
}

impl<S: Store> fmt::Debug for Governance<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Governance").finish_non_exhaustive()
    }
}

impl<S: Store> Governance<S> {
    /// Governance over `store`.
    pub fn new(store: S) -> Governance<S> {
        Governance { store }
    }

    fn tx<R>(
        &mut self,
        mut f: impl FnMut(&mut dyn Tx) -> Result<R, GovError>,
    ) -> Result<R, GovError> {
        self.store.transaction(&mut f)
    }

    /// A new domain's first step: the data authority and its first admin, with a token. Refused
    /// once any authority exists.
    pub fn bootstrap(
        &mut self,
        authority: &str,
        admin: &str,
        now: i64,
    ) -> Result<(Actor, Token), GovError> {
        let authority = name("organization", authority)?;
        let admin = name("user", admin)?;
        let token = Token::generate()?;
        let hash = Token::hash_of(token.as_str())
            .ok_or_else(|| GovError::Store("a generated token does not parse".into()))?;
        let actor = self.tx(|tx| {
            if !tx.orgs_of_kind(OrgKind::Authority)?.is_empty() {
                return Err(GovError::Refused(
                    "this domain is initialized already: it has a data authority".into(),
                ));
            }
            let org = tx.insert_org(&authority, OrgKind::Authority, now)?;
            let user = tx.insert_user(&admin, org, Role::AuthorityAdmin, now)?;
            tx.insert_token(&hash, user, now)?;
            let user = tx
                .user(user)?
                .ok_or_else(|| GovError::Store("user vanished".into()))?;
            let org = tx
                .org(org)?
                .ok_or_else(|| GovError::Store("org vanished".into()))?;
            let actor = Actor { user, org };
            journal(
                tx,
                &actor,
                "gov.domain.init",
                &format!("org:{authority}"),
                serde_json::json!({"authority": authority, "admin": admin}),
                now,
            )?;
            Ok(actor)
        })?;
        Ok((actor, token))
    }

    /// The user of `token`. Refused for unknown or revoked tokens, deactivated users and
    /// terminated organizations (suspended ones authenticate; their actions are refused).
    pub fn authenticate(&mut self, token: &str) -> Result<Actor, GovError> {
        let hash = Token::hash_of(token).ok_or(GovError::Unauthenticated(
            "the token is malformed (expected `enclave_` and 64 hex digits)",
        ))?;
        self.tx(|tx| {
            let user = tx
                .token_user(&hash)?
                .and_then(|u| tx.user(u).transpose())
                .transpose()?
                .ok_or(GovError::Unauthenticated("unknown or revoked token"))?;
            if !user.active {
                return Err(GovError::Unauthenticated("the user is deactivated"));
            }
            let org = tx
                .org(user.org)?
                .ok_or_else(|| GovError::Store("a user's organization is missing".into()))?;
            if org.status == OrgStatus::Terminated {
                return Err(GovError::Unauthenticated("the organization is terminated"));
            }
            Ok(Actor { user, org })
        })
    }

    /// Registers an organization: the operator (by the authority; one per domain) or a
    /// development entity (by the operator).
    pub fn register_org(
        &mut self,
        actor: &Actor,
        org_name: &str,
        kind: OrgKind,
        now: i64,
    ) -> Result<Org, GovError> {
        match kind {
            OrgKind::Operator => actor.require(Action::CreateOperator)?,
            OrgKind::Developer => actor.require(Action::CreateDeveloper)?,
            OrgKind::Authority => {
                return Err(GovError::Refused(
                    "a domain has one data authority, made by `enclave init`".into(),
                ));
            }
        }
        let org_name = name("organization", org_name)?;
        self.tx(|tx| {
            let me = tx
                .org(actor.org.id)?
                .ok_or_else(|| GovError::Store("org vanished".into()))?;
            active(&me)?;
            if kind == OrgKind::Operator
                && tx
                    .orgs_of_kind(OrgKind::Operator)?
                    .iter()
                    .any(|o| o.status != OrgStatus::Terminated)
            {
                return Err(GovError::Refused(
                    "the domain has an operator already (terminate it first)".into(),
                ));
            }
            if tx.org_by_name(&org_name)?.is_some() {
                return Err(GovError::Refused(format!(
                    "organization `{org_name}` exists already"
                )));
            }
            let id = tx.insert_org(&org_name, kind, now)?;
            journal(
                tx,
                actor,
                &format!("gov.org.register.{kind}"),
                &format!("org:{org_name}"),
                serde_json::json!({"org": org_name, "kind": kind.as_str()}),
                now,
            )?;
            tx.org(id)?
                .ok_or_else(|| GovError::Store("org vanished".into()))
        })
    }

    /// Adds user `user_name` with `role` to organization `org_name`.
    pub fn add_user(
        &mut self,
        actor: &Actor,
        org_name: &str,
        user_name: &str,
        role: Role,
        now: i64,
    ) -> Result<User, GovError> {
        actor.require(Action::ManageUsers)?;
        let user_name = name("user", user_name)?;
        self.tx(|tx| {
            let org = org_named(tx, org_name)?;
            if !administers(actor, &org) {
                return Err(GovError::Refused(format!(
                    "`{}` does not administer organization `{}`",
                    actor.org.name, org.name
                )));
            }
            if org.status == OrgStatus::Terminated {
                return Err(GovError::Refused(format!(
                    "organization `{}` is terminated",
                    org.name
                )));
            }
            if !holds(org.kind, role) {
                return Err(GovError::Invalid(format!(
                    "a member of the {} `{}` cannot have role {role}",
                    org.kind, org.name
                )));
            }
            if tx.user_by_name(&user_name)?.is_some() {
                return Err(GovError::Refused(format!(
                    "user `{user_name}` exists already"
                )));
            }
            let id = tx.insert_user(&user_name, org.id, role, now)?;
            journal(
                tx,
                actor,
                "gov.user.add",
                &format!("user:{user_name}"),
                serde_json::json!({"user": user_name, "org": org.name, "role": role.as_str()}),
                now,
            )?;
            tx.user(id)?
                .ok_or_else(|| GovError::Store("user vanished".into()))
        })
    }

    fn managed_user(
        tx: &mut dyn Tx,
        actor: &Actor,
        user_name: &str,
    ) -> Result<(User, Org), GovError> {
        let user = user_named(tx, user_name)?;
        let org = tx
            .org(user.org)?
            .ok_or_else(|| GovError::Store("a user's organization is missing".into()))?;
        if !administers(actor, &org) {
            return Err(GovError::Refused(format!(
                "`{}` does not administer organization `{}`",
                actor.org.name, org.name
            )));
        }
        Ok((user, org))
    }

    /// Issues a new token for `user_name` (shown once; stored as its hash).
    pub fn issue_token(
        &mut self,
        actor: &Actor,
        user_name: &str,
        now: i64,
    ) -> Result<Token, GovError> {
        actor.require(Action::ManageUsers)?;
        let token = Token::generate()?;
        let hash = Token::hash_of(token.as_str())
            .ok_or_else(|| GovError::Store("a generated token does not parse".into()))?;
        self.tx(|tx| {
            let (user, org) = Self::managed_user(tx, actor, user_name)?;
            if !user.active || org.status == OrgStatus::Terminated {
                return Err(GovError::Refused(format!(
                    "user `{}` is deactivated",
                    user.name
                )));
            }
            tx.insert_token(&hash, user.id, now)?;
            journal(
                tx,
                actor,
                "gov.token.issue",
                &format!("user:{}", user.name),
                serde_json::json!({"user": user.name}),
                now,
            )
        })?;
        Ok(token)
    }

    /// Revokes every token of `user_name`; how many were live.
    pub fn revoke_tokens(
        &mut self,
        actor: &Actor,
        user_name: &str,
        now: i64,
    ) -> Result<u64, GovError> {
        actor.require(Action::ManageUsers)?;
        self.tx(|tx| {
            let (user, _) = Self::managed_user(tx, actor, user_name)?;
            let n = tx.revoke_tokens_of(user.id, now)?;
            journal(
                tx,
                actor,
                "gov.token.revoke",
                &format!("user:{}", user.name),
                serde_json::json!({"user": user.name, "revoked": n}),
                now,
            )?;
            Ok(n)
        })
    }

    /// The organization named `org_name` (for members, administrators and record readers).
    pub fn org(&mut self, actor: &Actor, org_name: &str) -> Result<Org, GovError> {
        self.tx(|tx| {
            let org = org_named(tx, org_name)?;
            if org.id == actor.org.id
                || administers(actor, &org)
                || permits(actor.role(), Action::ReadRecords)
            {
                Ok(org)
            } else {
                Err(GovError::NotFound(format!("organization `{org_name}`")))
            }
        })
    }

    /// The agreements and applications of the actor's own organization.
    pub fn own_records(
        &mut self,
        actor: &Actor,
    ) -> Result<(Vec<Agreement>, Vec<Application>), GovError> {
        self.tx(|tx| {
            Ok((
                tx.agreements_of(actor.org.id)?,
                tx.applications_of(actor.org.id)?,
            ))
        })
    }

    /// The user with this id (record readers).
    pub fn user(&mut self, id: UserId) -> Result<Option<User>, GovError> {
        self.tx(|tx| tx.user(id))
    }

    /// Committed steps not yet recorded in the log, oldest first. The binary records each
    /// ([`Governance::mark_step`] before and after), and acknowledges a command only once its
    /// steps are logged; after a crash the next command records what is left.
    pub fn unlogged_steps(&mut self) -> Result<Vec<Step>, GovError> {
        self.tx(|tx| tx.unlogged())
    }

    /// Marks step `seq` attempted (before the append) or logged (after it).
    pub fn mark_step(&mut self, seq: i64, logged: bool) -> Result<(), GovError> {
        self.tx(|tx| tx.mark_step(seq, logged))
    }
}
