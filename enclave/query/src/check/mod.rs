//! Why a query is refused under a policy.
//!
//! Owns [`CheckError`]: a column put to a use its rule does not allow (naming the column, its
//! level, the use and what the rule allows), a dataset the policy does not classify, or a
//! construct outside the aggregation grammar (`grammar`). Its messages name columns and
//! constructs, never data values.

use enclave_policy::Use;

/// A refused query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// A column would be put to a use its rule does not allow.
    #[error(
        "policy violation: column `{dataset}.{column}` (level {level}) may not be used as {used_as} {context}; its rule allows {allowed}"
    )]
    Violation {
        /// The dataset.
        dataset: String,
        /// The column.
        column: String,
        /// Its classification level.
        level: String,
        /// The use refused.
        used_as: Use,
        /// Where in the query.
        context: String,
        /// What its rule allows.
        allowed: String,
    },
    /// A table without rules in the policy.
    #[error(
        "policy violation: dataset `{0}` is not classified by the policy, so none of its columns may be used"
    )]
    Unclassified(String),
    /// A construct outside the grammar.
    #[error("not supported under a policy: {0}")]
    Unsupported(String),
}
