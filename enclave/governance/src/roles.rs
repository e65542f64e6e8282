//! Who may do what: the one place where roles are checked.
//!
//! Owns the roles of a domain, the kinds of organization that hold them and the table of which
//! role may take which action. The workflow ([`crate::workflow`]) asks [`permits`] before every
//! action and adds only the checks that depend on the records (own organization, status,
//! period). It must never grant an action by default: a pair missing from the table is refused.

use std::fmt;

/// The kind of an organization in the domain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum OrgKind {
    /// The data authority (数据主管部门): authorizes the operator, witnesses the log.
    Authority,
    /// The operator (运营主体): runs the domain, signs development agreements, reviews.
    Operator,
    /// A development entity (开发主体): builds data products under agreements and applications.
    Developer,
}

/// A user's role.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Role {
    /// Administers the authority: the operator, its authorization, the authority's users.
    AuthorityAdmin,
    /// Administers the operator: development entities, their agreements, users, catalogs.
    OperatorAdmin,
    /// An operator reviewer: decides applications (and, later, output reviews).
    Reviewer,
    /// A member of a development entity: applies, samples, submits jobs.
    Developer,
    /// Reads the log and the records; changes nothing.
    Auditor,
}

/// An action a user may take.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Action {
    /// Register the operator organization.
    CreateOperator,
    /// Register a development entity.
    CreateDeveloper,
    /// Create users, issue and revoke their tokens.
    ManageUsers,
    /// Sign the operation authorization (authority → operator) or change its status.
    AuthorizeOperation,
    /// Sign a development agreement (operator → developer) or change its status.
    SignDevelopment,
    /// Suspend, resume or terminate a development entity.
    ControlDeveloper,
    /// Suspend, resume or terminate the operator.
    ControlOperator,
    /// Submit an application for a scenario.
    SubmitApplication,
    /// Approve or reject an application.
    DecideApplication,
    /// Run a job under an approved application.
    SubmitJob,
    /// Read agreements, applications and the catalog of the domain (beyond one's own).
    ReadRecords,
    /// Register a dataset snapshot into the domain (the operation catalog).
    RegisterDataset,
    /// Read the published development and fusion catalogs (names, schemas, levels, row counts).
    ReadCatalog,
    /// Bring social data for fusion.
    UploadSocial,
    /// Approve or reject social data.
    DecideSocial,
    /// Run the domain's job workers, and recover jobs after a restart.
    RunWorkers,
    /// Purge what is past its retention period.
    ApplyRetention,
    /// Preview a quarantined output and decide its review (approve or reject).
    DecideOutput,
    /// Download an approved output of one's own organization's job (its release).
    DownloadOutput,
    /// Publish a released output of one's own organization as a product.
    PublishProduct,
    /// Withdraw an output, take a product down.
    ManageProducts,
}

impl Action {
    /// Every action (for the table's tests and documentation).
    pub const ALL: [Action; 21] = [
        Action::CreateOperator,
        Action::CreateDeveloper,
        Action::ManageUsers,
        Action::AuthorizeOperation,
        Action::SignDevelopment,
        Action::ControlDeveloper,
        Action::ControlOperator,
        Action::SubmitApplication,
        Action::DecideApplication,
        Action::SubmitJob,
        Action::ReadRecords,
        Action::RegisterDataset,
        Action::ReadCatalog,
        Action::UploadSocial,
        Action::DecideSocial,
        Action::RunWorkers,
        Action::ApplyRetention,
        Action::DecideOutput,
        Action::DownloadOutput,
        Action::PublishProduct,
        Action::ManageProducts,
    ];
}

/// Whether `role` may take `action` at all. The workflow then checks scope: an admin manages
/// users of its own organization or of the organizations it administers; a developer acts for
/// its own organization; nobody decides on their own organization's application.
pub fn permits(role: Role, action: Action) -> bool {
    use Action as A;
    use Role as R;
    matches!(
        (role, action),
        (
            R::AuthorityAdmin,
            A::CreateOperator
                | A::ManageUsers
                | A::AuthorizeOperation
                | A::ControlOperator
                | A::ReadRecords
        ) | (
            R::OperatorAdmin,
            A::CreateDeveloper
                | A::ManageUsers
                | A::SignDevelopment
                | A::ControlDeveloper
                | A::ReadRecords
                | A::RegisterDataset
                | A::RunWorkers
                | A::ApplyRetention
                | A::ManageProducts
        ) | (
            R::Reviewer,
            A::DecideApplication
                | A::DecideSocial
                | A::DecideOutput
                | A::ManageProducts
                | A::ReadRecords
        ) | (
            R::Developer,
            A::SubmitApplication
                | A::SubmitJob
                | A::UploadSocial
                | A::DownloadOutput
                | A::PublishProduct
        ) | (R::Auditor, A::ReadRecords)
            | (_, A::ReadCatalog)
    )
}

/// Whether a user of an organization of kind `kind` may hold `role`.
pub fn holds(kind: OrgKind, role: Role) -> bool {
    matches!(
        (kind, role),
        (OrgKind::Authority, Role::AuthorityAdmin | Role::Auditor)
            | (
                OrgKind::Operator,
                Role::OperatorAdmin | Role::Reviewer | Role::Auditor
            )
            | (OrgKind::Developer, Role::Developer)
    )
}

macro_rules! names {
    ($ty:ident { $($v:ident => $s:literal),* $(,)? }) => {
        impl $ty {
            /// The name used in the store and on the command line.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$v => $s),* }
            }

            /// Parses a name of [`Self::as_str`].
            pub fn parse(s: &str) -> Option<$ty> {
                match s { $($s => Some($ty::$v),)* _ => None }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names!(OrgKind {
    Authority => "authority",
    Operator => "operator",
    Developer => "developer",
});

names!(Role {
    AuthorityAdmin => "authority-admin",
    OperatorAdmin => "operator-admin",
    Reviewer => "reviewer",
    Developer => "developer",
    Auditor => "auditor",
});

names!(Action {
    CreateOperator => "register the operator",
    CreateDeveloper => "register a development entity",
    ManageUsers => "manage users and tokens",
    AuthorizeOperation => "sign or change the operation authorization",
    SignDevelopment => "sign or change a development agreement",
    ControlDeveloper => "suspend, resume or terminate a development entity",
    ControlOperator => "suspend, resume or terminate the operator",
    SubmitApplication => "submit an application",
    DecideApplication => "decide an application",
    SubmitJob => "submit a job",
    ReadRecords => "read the domain's records",
    RegisterDataset => "register a dataset",
    ReadCatalog => "read the catalogs",
    UploadSocial => "bring social data",
    DecideSocial => "decide social data",
    RunWorkers => "run the job workers",
    ApplyRetention => "purge what is past retention",
    DecideOutput => "review an output",
    DownloadOutput => "download an output",
    PublishProduct => "publish a product",
    ManageProducts => "withdraw outputs and take products down",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_separates_duties() {
        // Nobody both applies and decides; reviewers and developers administer nothing.
        for a in Action::ALL {
            assert!(
                !(permits(Role::Developer, a)
                    && permits(Role::Developer, Action::DecideApplication))
            );
            if permits(Role::Reviewer, a) || permits(Role::Developer, a) {
                assert!(
                    !matches!(
                        a,
                        Action::ManageUsers
                            | Action::SignDevelopment
                            | Action::CreateDeveloper
                            | Action::ControlDeveloper
                    ),
                    "{a}"
                );
            }
            assert!(
                !permits(Role::Auditor, a)
                    || matches!(a, Action::ReadRecords | Action::ReadCatalog)
            );
        }
        assert!(!permits(Role::OperatorAdmin, Action::DecideApplication));
        // Only reviewers decide outputs; only developers take them out.
        for r in [
            Role::AuthorityAdmin,
            Role::OperatorAdmin,
            Role::Developer,
            Role::Auditor,
        ] {
            assert!(!permits(r, Action::DecideOutput), "{r}");
        }
        for r in [
            Role::AuthorityAdmin,
            Role::OperatorAdmin,
            Role::Reviewer,
            Role::Auditor,
        ] {
            assert!(!permits(r, Action::DownloadOutput), "{r}");
        }
        assert!(!permits(Role::Reviewer, Action::SubmitJob));
        assert!(!permits(Role::Developer, Action::DecideApplication));
        assert!(!permits(Role::Developer, Action::DecideSocial));
        assert!(!permits(Role::Developer, Action::RegisterDataset));
        assert!(!permits(Role::AuthorityAdmin, Action::SignDevelopment));
        for r in [
            Role::AuthorityAdmin,
            Role::OperatorAdmin,
            Role::Reviewer,
            Role::Developer,
            Role::Auditor,
        ] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert!(holds(OrgKind::Developer, Role::Developer));
        assert!(!holds(OrgKind::Developer, Role::Reviewer));
        assert!(!holds(OrgKind::Operator, Role::Developer));
    }
}
