//! Governance of an authorized operation domain: who the parties are, what they agreed, and
//! what each development use was approved for.
//!
//! The seed's two-tier authorization lives here: the data authority authorizes one operator
//! (an operation agreement of at most three years); the operator signs development agreements
//! (at most three years, within its own authorization) with development entities; every use
//! needs an application per scenario, decided by an operator reviewer, and the approved
//! application *is* the grant a job runs under ([`Governance::grant_for_job`]). Roles are checked
//! in one place ([`roles::permits`]); records live behind the [`store::Store`] interface
//! (SQLite by default, [`sqlite`]).
//!
//! Owns entities, roles, tokens, agreements, applications and the lifecycle (suspend, resume,
//! terminate). It must never act for a user who did not authenticate, never store a token in
//! the clear, and never grant a column an approval did not list. It knows nothing of wasmtime,
//! DataFusion or the log: the binary records what it decided.

pub mod day;
pub mod job;
pub mod model;
pub mod output;
pub mod roles;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod store;
pub mod workflow;

#[cfg(all(test, feature = "sqlite"))]
mod tests;

pub use day::Day;
pub use job::{JobEnd, JobNo, JobRecord, JobStatus, JobUsage};
pub use model::{
    Agreement, AgreementEvent, AgreementId, AgreementKind, AgreementStatus, Application,
    ApplicationRequest, CatalogColumn, CatalogSnapshot, DatasetColumns, Decision, Grant, Org,
    OrgId, OrgStatus, Origin, SnapshotFacts, SocialStatus, Step, User, UserId, parse_columns,
};
pub use output::{
    Criterion, Download, MAX_OUTPUTS, NewOutput, NewProduct, OutputDecision, OutputNo,
    OutputRecord, OutputVerdict, Product, ProductKind, ProductNo, Review, ReviewState,
};
pub use roles::{Action, OrgKind, Role, permits};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use store::{NewJob, Store, Tx};
pub use workflow::{Actor, Claim, Governance, RETENTION_SECS, Token, WORKER_ACTOR};

/// Why a governance request was not done.
#[derive(Debug, thiserror::Error)]
pub enum GovError {
    /// No valid token.
    #[error("not authenticated: {0}")]
    Unauthenticated(&'static str),
    /// The role may not take the action.
    #[error("a user with role {role} may not {action}")]
    Forbidden {
        /// The acting user's role.
        role: Role,
        /// The action.
        action: Action,
    },
    /// The workflow's rules refuse the request (status, period, scope, ownership).
    #[error("refused: {0}")]
    Refused(String),
    /// The request itself is malformed.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A named record does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The store failed (an internal error, not the user's).
    #[error("governance store: {0}")]
    Store(String),
}

impl GovError {
    /// Whether the error is the caller's (refused, forbidden, invalid), not the domain's.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, GovError::Store(_))
    }
}

/// The current unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
