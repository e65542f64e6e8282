//! The store interface of governance: what the workflow reads and writes, one transaction at a
//! time.
//!
//! Owns the [`Store`] and [`Tx`] traits; [`crate::sqlite`] implements them (PostgreSQL can be
//! added beside it without touching [`crate::workflow`]). Every workflow step runs in one
//! transaction that commits durably or not at all. It must never expose a half-applied step.

use enclave_core::{ApplicationId, TableName};

use crate::GovError;
use crate::day::Day;
use crate::job::{JobEnd, JobNo, JobRecord, JobStatus};
use crate::model::{
    Agreement, AgreementEvent, AgreementId, AgreementKind, Application, ApplicationRequest,
    CatalogSnapshot, Decision, Org, OrgId, OrgStatus, Origin, SnapshotFacts, SocialStatus, Step,
    User, UserId,
};
use crate::output::{
    NewOutput, NewProduct, OutputNo, OutputRecord, Product, ProductNo, Review, ReviewState,
};
use crate::roles::{OrgKind, Role};

/// A store of governance records.
pub trait Store {
    /// Runs `f` in one transaction: committed (durably) if it returns `Ok`, rolled back if not.
    fn transaction<R>(
        &mut self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<R, GovError>,
    ) -> Result<R, GovError>;
}

/// A new agreement.
#[derive(Clone, Debug)]
pub struct NewAgreement<'a> {
    /// Tier.
    pub kind: AgreementKind,
    /// Who authorizes.
    pub grantor: OrgId,
    /// Who is authorized.
    pub grantee: OrgId,
    /// The datasets.
    pub scope: &'a [enclave_core::TableName],
    /// First day.
    pub start: Day,
    /// Last day.
    pub end: Day,
}

/// A new job.
#[derive(Clone, Debug)]
pub struct NewJob<'a> {
    /// The development entity.
    pub org: OrgId,
    /// Who submits it.
    pub submitter: UserId,
    /// Its application.
    pub application: &'a ApplicationId,
    /// blake3 of its module.
    pub module: &'a [u8; 32],
    /// The datasets it reads.
    pub datasets: &'a [TableName],
    /// Parameters, limits, seed (JSON).
    pub spec: &'a str,
    /// Unix time.
    pub at: i64,
}

/// One transaction's reads and writes.
pub trait Tx {
    /// Adds an organization.
    fn insert_org(&mut self, name: &str, kind: OrgKind, at: i64) -> Result<OrgId, GovError>;
    /// An organization by id.
    fn org(&mut self, id: OrgId) -> Result<Option<Org>, GovError>;
    /// An organization by name.
    fn org_by_name(&mut self, name: &str) -> Result<Option<Org>, GovError>;
    /// Every organization of `kind`.
    fn orgs_of_kind(&mut self, kind: OrgKind) -> Result<Vec<Org>, GovError>;
    /// Sets an organization's status.
    fn set_org_status(&mut self, id: OrgId, status: OrgStatus) -> Result<(), GovError>;

    /// Adds a user.
    fn insert_user(
        &mut self,
        name: &str,
        org: OrgId,
        role: Role,
        at: i64,
    ) -> Result<UserId, GovError>;
    /// A user by id.
    fn user(&mut self, id: UserId) -> Result<Option<User>, GovError>;
    /// A user by name.
    fn user_by_name(&mut self, name: &str) -> Result<Option<User>, GovError>;
    /// The users of an organization.
    fn users_of(&mut self, org: OrgId) -> Result<Vec<User>, GovError>;
    /// Deactivates a user.
    fn deactivate_user(&mut self, id: UserId) -> Result<(), GovError>;

    /// Adds a token (its blake3) for a user.
    fn insert_token(&mut self, hash: &[u8; 32], user: UserId, at: i64) -> Result<(), GovError>;
    /// The user of an unrevoked token.
    fn token_user(&mut self, hash: &[u8; 32]) -> Result<Option<UserId>, GovError>;
    /// Revokes every token of a user; how many were live.
    fn revoke_tokens_of(&mut self, user: UserId, at: i64) -> Result<u64, GovError>;

    /// Adds an agreement (status active) with its first history event.
    fn insert_agreement(
        &mut self,
        a: &NewAgreement<'_>,
        event: &AgreementEvent,
    ) -> Result<AgreementId, GovError>;
    /// An agreement by id.
    fn agreement(&mut self, id: AgreementId) -> Result<Option<Agreement>, GovError>;
    /// The agreements whose grantee is `org`.
    fn agreements_of(&mut self, org: OrgId) -> Result<Vec<Agreement>, GovError>;
    /// Sets an agreement's status and records why.
    fn set_agreement_status(
        &mut self,
        id: AgreementId,
        event: &AgreementEvent,
    ) -> Result<(), GovError>;
    /// An agreement's history, oldest first.
    fn agreement_history(&mut self, id: AgreementId) -> Result<Vec<AgreementEvent>, GovError>;

    /// Adds a pending application; returns its new identifier.
    fn insert_application(
        &mut self,
        org: OrgId,
        agreement: AgreementId,
        submitter: UserId,
        request: &ApplicationRequest,
        at: i64,
    ) -> Result<ApplicationId, GovError>;
    /// An application by id.
    fn application(&mut self, id: &ApplicationId) -> Result<Option<Application>, GovError>;
    /// The applications of an organization.
    fn applications_of(&mut self, org: OrgId) -> Result<Vec<Application>, GovError>;
    /// Records a decision.
    fn set_decision(&mut self, id: &ApplicationId, decision: &Decision) -> Result<(), GovError>;

    /// Adds the next version of `dataset` (1 if new); returns it.
    fn insert_snapshot(
        &mut self,
        dataset: &TableName,
        facts: &SnapshotFacts,
        origin: &Origin,
        by: UserId,
        at: i64,
    ) -> Result<i64, GovError>;
    /// Every version of `dataset`, oldest first.
    fn snapshots_of(&mut self, dataset: &TableName) -> Result<Vec<CatalogSnapshot>, GovError>;
    /// The latest version of every dataset, by name.
    fn latest_snapshots(&mut self) -> Result<Vec<CatalogSnapshot>, GovError>;
    /// Records the operator's decision on a social dataset's version.
    fn set_social_status(
        &mut self,
        dataset: &TableName,
        version: i64,
        status: &SocialStatus,
    ) -> Result<(), GovError>;

    /// Adds a queued job; returns its number.
    fn insert_job(&mut self, job: &NewJob<'_>) -> Result<JobNo, GovError>;
    /// A job by number.
    fn job(&mut self, no: JobNo) -> Result<Option<JobRecord>, GovError>;
    /// Jobs, newest first: of `org` if given, in `status` if given, at most `limit`.
    fn jobs(
        &mut self,
        org: Option<OrgId>,
        status: Option<JobStatus>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, GovError>;
    /// The oldest queued job, if any.
    fn next_queued_job(&mut self) -> Result<Option<JobRecord>, GovError>;
    /// Marks a queued job running on `worker`.
    fn start_job(&mut self, no: JobNo, worker: &str, at: i64) -> Result<(), GovError>;
    /// Records the runtime's job id of a running job.
    fn set_job_run(&mut self, no: JobNo, run: &str) -> Result<(), GovError>;
    /// Ends a job that is in status `from`.
    fn end_job(
        &mut self,
        no: JobNo,
        from: JobStatus,
        end: &JobEnd,
        at: i64,
    ) -> Result<(), GovError>;

    /// Adds an output of job `job` (pending review); returns its number.
    fn insert_output(
        &mut self,
        job: JobNo,
        org: OrgId,
        output: &NewOutput,
        at: i64,
    ) -> Result<OutputNo, GovError>;
    /// An output by number.
    fn output(&mut self, no: OutputNo) -> Result<Option<OutputRecord>, GovError>;
    /// Outputs, newest first: of `org`, of `job`, in `state` when given; at most `limit`.
    fn outputs(
        &mut self,
        org: Option<OrgId>,
        job: Option<JobNo>,
        state: Option<ReviewState>,
        limit: u32,
    ) -> Result<Vec<OutputRecord>, GovError>;
    /// Records a pending output's review (approved or rejected).
    fn set_review(&mut self, no: OutputNo, review: &Review) -> Result<(), GovError>;
    /// Marks an approved output released.
    fn set_released(&mut self, no: OutputNo, at: i64) -> Result<(), GovError>;
    /// Keeps a released output's receipt (once).
    fn set_receipt(&mut self, no: OutputNo, receipt: &str) -> Result<(), GovError>;
    /// Withdraws an output that is in state `from`.
    fn withdraw_output(
        &mut self,
        no: OutputNo,
        from: ReviewState,
        at: i64,
        reason: &str,
    ) -> Result<(), GovError>;
    /// Adds a product of `org`; returns its number.
    fn insert_product(
        &mut self,
        org: OrgId,
        product: &NewProduct,
        at: i64,
    ) -> Result<ProductNo, GovError>;
    /// A product by number.
    fn product(&mut self, no: ProductNo) -> Result<Option<Product>, GovError>;
    /// Products, newest first: of `org`, of `output` when given; taken-down ones too if `all`.
    fn products(
        &mut self,
        org: Option<OrgId>,
        output: Option<OutputNo>,
        all: bool,
        limit: u32,
    ) -> Result<Vec<Product>, GovError>;
    /// Takes a product down.
    fn take_down(&mut self, no: ProductNo, at: i64, reason: &str) -> Result<(), GovError>;

    /// Journals a step of this transaction (to be recorded in the log).
    fn journal(
        &mut self,
        actor: &str,
        action: &str,
        subject: &str,
        record: &str,
        at: i64,
    ) -> Result<(), GovError>;
    /// When the first step `action` on `subject` was journaled, if ever.
    fn step_at(&mut self, action: &str, subject: &str) -> Result<Option<i64>, GovError>;
    /// The journaled steps not recorded in the log yet, oldest first.
    fn unlogged(&mut self) -> Result<Vec<Step>, GovError>;
    /// Marks a step attempted (an append is under way) or logged (done).
    fn mark_step(&mut self, seq: i64, logged: bool) -> Result<(), GovError>;
}
