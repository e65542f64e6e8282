//! Outputs under review and the products made of them: what a governed job emitted (kept in
//! quarantine by the binary), the egress checks' verdict on it, the reviewer's decision against
//! the seed's six criteria of product review (数据产品审核), its release to the requesting
//! developer and its publication in the product catalog.
//!
//! Owns the records' shapes and the review as a state machine: `pending → approved | rejected`,
//! `approved → released` (the developer's first download, with a signed receipt), and
//! `pending | approved | released → withdrawn` (a takedown, or the entity's termination). It
//! must never hold a value of an output: only its digest, its shape, and the evidence report
//! (which names checks, columns and rows, never values).

use std::fmt;

use enclave_core::ApplicationId;

use crate::job::JobNo;
use crate::model::{OrgId, UserId};

/// An output's number in the domain's records, shown as `out-N`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct OutputNo(pub i64);

/// A product's number in the catalog, shown as `prod-N`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ProductNo(pub i64);

fn parse_numbered(s: &str, prefix: &str) -> Option<i64> {
    let n = s.strip_prefix(prefix)?;
    if n.is_empty() || n.len() > 18 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok().filter(|n| *n >= 1)
}

impl OutputNo {
    /// Parses `out-N` (N ≥ 1).
    pub fn parse(s: &str) -> Option<OutputNo> {
        parse_numbered(s, "out-").map(OutputNo)
    }
}

impl ProductNo {
    /// Parses `prod-N` (N ≥ 1).
    pub fn parse(s: &str) -> Option<ProductNo> {
        parse_numbered(s, "prod-").map(ProductNo)
    }
}

impl fmt::Display for OutputNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "out-{}", self.0)
    }
}

impl fmt::Display for ProductNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "prod-{}", self.0)
    }
}

macro_rules! named {
    ($(#[$m:meta])* $ty:ident { $($(#[$vm:meta])* $v:ident => $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
        pub enum $ty { $($(#[$vm])* $v),* }

        impl $ty {
            /// Every value, in order.
            pub const ALL: &'static [$ty] = &[$($ty::$v),*];

            /// The name in the store and on the command line.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$v => $s),* }
            }

            /// Parses [`Self::as_str`].
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

named!(
    /// The egress checks' verdict on an output, as recorded when its job ended.
    OutputVerdict {
        /// Nothing found.
        Pass => "pass",
        /// A reviewer must look at the findings (and say so when approving).
        Flag => "flag",
        /// It cannot leave: no decision can approve it.
        Block => "block",
    }
);

named!(
    /// Where an output's review stands.
    ReviewState {
        /// Waiting for a reviewer.
        Pending => "pending",
        /// A reviewer approved it against every criterion; the developer may download it.
        Approved => "approved",
        /// A reviewer rejected it: it never leaves.
        Rejected => "rejected",
        /// The developer downloaded it: a receipt was signed.
        Released => "released",
        /// Taken down (or its entity terminated): no further download.
        Withdrawn => "withdrawn",
    }
);

impl ReviewState {
    /// Whether `self → next` is a transition of the review.
    pub fn may_become(self, next: ReviewState) -> bool {
        use ReviewState as S;
        matches!(
            (self, next),
            (S::Pending, S::Approved | S::Rejected | S::Withdrawn)
                | (S::Approved, S::Released | S::Withdrawn)
                | (S::Released, S::Withdrawn)
        )
    }

    /// Whether the requesting developer may download the output in this state.
    pub fn downloadable(self) -> bool {
        matches!(self, ReviewState::Approved | ReviewState::Released)
    }
}

named!(
    /// The seed's six criteria of product review; a reviewer approves only by affirming each.
    Criterion {
        /// It fits the application's purpose and scope.
        Purpose => "purpose",
        /// It states its source, and the source is lawful.
        Source => "source",
        /// It exposes no raw or sensitive data directly.
        NoRawData => "no-raw-data",
        /// It cannot leak, or let others abuse, personal information or trade secrets.
        NoPersonalInfo => "no-personal-info",
        /// It involves no cross-border transfer.
        NoCrossBorder => "no-cross-border",
        /// It carries no other risk.
        NoOtherRisk => "no-other-risk",
    }
);

named!(
    /// What a published product is.
    ProductKind {
        /// A dataset.
        Dataset => "dataset",
        /// A data service (API).
        Api => "api",
        /// A model.
        Model => "model",
        /// A report.
        Report => "report",
    }
);

/// An output as a job's end hands it to governance.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewOutput {
    /// Position among the job's outputs.
    pub index: u32,
    /// The name the job gave it (guest-chosen text: shown to reviewers, never logged).
    pub name: String,
    /// Its kind (`table`, `model`, `report`…).
    pub kind: String,
    /// blake3 of its canonical bytes (its address in quarantine).
    pub digest: [u8; 32],
    /// Rows.
    pub rows: u64,
    /// Columns.
    pub columns: u64,
    /// Canonical bytes.
    pub bytes: u64,
    /// The egress checks' verdict.
    pub verdict: OutputVerdict,
    /// `certified`, `open` or `derived`.
    pub provenance: String,
    /// The evidence report (JSON; no values).
    pub evidence: String,
}

/// Longest name of an output kept in the records, bytes (a longer one is cut at a character
/// boundary; the evidence report names it anyway).
pub const MAX_OUTPUT_NAME: usize = 256;
/// Longest evidence report kept, bytes.
pub const MAX_EVIDENCE: usize = 1 << 20;
/// Most outputs of one job kept for review.
pub const MAX_OUTPUTS: usize = 1024;

/// A reviewer's decision as recorded.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Review {
    /// Who decided.
    pub reviewer: UserId,
    /// When (unix seconds).
    pub at: i64,
    /// Approved (every criterion affirmed) or rejected.
    pub approved: bool,
    /// The criteria the reviewer found met.
    pub affirmed: Vec<Criterion>,
    /// The criteria the reviewer found failed (a rejection names at least one).
    pub failed: Vec<Criterion>,
    /// A rejection's reason.
    pub reason: Option<String>,
    /// Whether the reviewer acknowledged the egress findings (required to approve a flagged
    /// output).
    pub acknowledged: bool,
}

/// A reviewer's request.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum OutputDecision {
    /// Approve: every criterion must be affirmed; a flagged output needs `acknowledge`.
    Approve {
        /// The criteria affirmed.
        affirmed: Vec<Criterion>,
        /// The reviewer read the egress findings of a flagged output.
        acknowledge: bool,
    },
    /// Reject, naming the failed criteria and why.
    Reject {
        /// The criteria failed (at least one).
        failed: Vec<Criterion>,
        /// Why.
        reason: String,
    },
}

/// An output's record.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OutputRecord {
    /// Its number.
    pub no: OutputNo,
    /// The job that emitted it.
    pub job: JobNo,
    /// The job's development entity.
    pub org: OrgId,
    /// The job's application.
    pub application: ApplicationId,
    /// blake3 of the job's module.
    pub module: [u8; 32],
    /// The runtime's job id (`job:<run>` in the log), if linked.
    pub run: Option<String>,
    /// What the job handed over.
    pub output: NewOutput,
    /// Where its review stands.
    pub state: ReviewState,
    /// When the job ended (unix seconds).
    pub created_at: i64,
    /// The reviewer's decision, once made.
    pub review: Option<Review>,
    /// When it was first downloaded.
    pub released_at: Option<i64>,
    /// The release receipt (a signed note), once issued.
    pub receipt: Option<String>,
    /// Why it was withdrawn, and when.
    pub withdrawn: Option<(i64, String)>,
}

/// A product in the catalog.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Product {
    /// Its number.
    pub no: ProductNo,
    /// The approved output it publishes.
    pub output: OutputNo,
    /// The development entity whose product it is.
    pub org: OrgId,
    /// What it is.
    pub kind: ProductKind,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Its source statement (where the data comes from, and that it is lawful).
    pub source: String,
    /// When it was published.
    pub published_at: i64,
    /// When and why it was taken down.
    pub taken_down: Option<(i64, String)>,
}

/// A new product.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewProduct {
    /// The output.
    pub output: OutputNo,
    /// What it is.
    pub kind: ProductKind,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Source statement.
    pub source: String,
}

/// What a download hands the binary: the record (approved or released) and whether this
/// download released it (the binary then signs the receipt). Only
/// [`crate::Governance::download_output`] makes one.
#[derive(Clone, Debug)]
pub struct Download {
    pub(crate) record: OutputRecord,
    pub(crate) first: bool,
    pub(crate) reviewer: String,
    pub(crate) developer: String,
}

impl Download {
    /// The output's record (released).
    pub fn record(&self) -> &OutputRecord {
        &self.record
    }

    /// Whether this download released it.
    pub fn first(&self) -> bool {
        self.first
    }

    /// The name of the reviewer who approved it.
    pub fn reviewer(&self) -> &str {
        &self.reviewer
    }

    /// The name of the development entity it is released to.
    pub fn developer(&self) -> &str {
        &self.developer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_transitions() {
        use ReviewState as S;
        for a in S::ALL {
            for b in S::ALL {
                let ok = a.may_become(*b);
                let expected = matches!(
                    (a, b),
                    (S::Pending, S::Approved | S::Rejected | S::Withdrawn)
                        | (S::Approved, S::Released | S::Withdrawn)
                        | (S::Released, S::Withdrawn)
                );
                assert_eq!(ok, expected, "{a} -> {b}");
            }
        }
        assert!(!S::Rejected.may_become(S::Approved), "a rejection is final");
        assert!(!S::Withdrawn.may_become(S::Released));
        assert!(S::Released.downloadable() && !S::Pending.downloadable());
    }

    #[test]
    fn numbers_parse() {
        assert_eq!(OutputNo::parse("out-12"), Some(OutputNo(12)));
        assert_eq!(ProductNo::parse("prod-1"), Some(ProductNo(1)));
        for bad in [
            "out-0",
            "out-",
            "out-+1",
            "out-1x",
            "prod-1",
            "out-99999999999999999999",
        ] {
            assert_eq!(OutputNo::parse(bad), None, "{bad}");
        }
        for c in Criterion::ALL {
            assert_eq!(Criterion::parse(c.as_str()), Some(*c));
        }
    }
}
