//! Where privacy spending is charged: the [`Ledger`] interface and an in-memory ledger.
//!
//! Owns the contract of a charge — all datasets of a query are charged or none is, a charge that
//! would take any of them past its budget is refused with what was spent and what is left — and
//! [`MemoryLedger`], a ledger that lives as long as one job's session (tests, and local runs on
//! a developer's own files). The domain's durable ledger (`enclave-store`) implements the same
//! interface.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::budget::{Budget, Cost};

/// A charge that was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LedgerError {
    /// The query would take `dataset` past the budget.
    #[error(
        "privacy budget exhausted: dataset `{dataset}` has spent ε={spent_epsilon:.4} (δ={spent_delta:.2e}) of ε={budget_epsilon} (δ={budget_delta:.2e}); this query needs ε={epsilon:.4} (δ={delta:.2e})"
    )]
    OverBudget {
        /// The dataset.
        dataset: String,
        /// ε spent so far.
        spent_epsilon: f64,
        /// δ spent so far.
        spent_delta: f64,
        /// ε of the budget.
        budget_epsilon: f64,
        /// δ of the budget.
        budget_delta: f64,
        /// ε asked.
        epsilon: f64,
        /// δ asked.
        delta: f64,
    },
    /// The ledger could not record the charge (nothing was charged).
    #[error("privacy ledger: {0}")]
    Storage(String),
}

/// What a dataset has spent and may still spend after a charge.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Balance {
    /// Spent, this charge included.
    pub spent: Cost,
    /// Left of the budget.
    pub left: Cost,
}

/// Where a job's privacy spending is charged.
pub trait Ledger: Send + Sync {
    /// Charges `cost` to every one of `datasets`, or to none if any would go over its budget.
    fn charge(
        &self,
        datasets: &[String],
        cost: Cost,
    ) -> Result<Vec<(String, Balance)>, LedgerError>;
}

/// Checks a charge against what was spent: the new balances, or the refusal.
pub fn settle(
    spent: &BTreeMap<String, Cost>,
    budget: &Budget,
    datasets: &[String],
    cost: Cost,
) -> Result<Vec<(String, Balance)>, LedgerError> {
    let mut out = Vec::with_capacity(datasets.len());
    for d in datasets {
        let before = spent.get(d).copied().unwrap_or(Cost::ZERO);
        let after = before.then(cost);
        if !after.within(budget) {
            return Err(LedgerError::OverBudget {
                dataset: d.clone(),
                spent_epsilon: before.epsilon,
                spent_delta: before.delta,
                budget_epsilon: budget.epsilon,
                budget_delta: budget.delta,
                epsilon: cost.epsilon,
                delta: cost.delta,
            });
        }
        out.push((
            d.clone(),
            Balance {
                spent: after,
                left: after.left_of(budget),
            },
        ));
    }
    Ok(out)
}

/// A ledger in memory, for one session.
pub struct MemoryLedger {
    budget: Budget,
    spent: Mutex<BTreeMap<String, Cost>>,
}

impl MemoryLedger {
    /// An empty ledger with `budget` per dataset.
    pub fn new(budget: Budget) -> MemoryLedger {
        MemoryLedger {
            budget,
            spent: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Ledger for MemoryLedger {
    fn charge(
        &self,
        datasets: &[String],
        cost: Cost,
    ) -> Result<Vec<(String, Balance)>, LedgerError> {
        let mut spent = self
            .spent
            .lock()
            .map_err(|_| LedgerError::Storage("poisoned".into()))?;
        let out = settle(&spent, &self.budget, datasets, cost)?;
        for (d, b) in &out {
            spent.insert(d.clone(), b.spent);
        }
        Ok(out)
    }
}

/// The ledger of a re-derivation: the queries it re-runs were charged when the job ran, so
/// nothing is charged again.
pub struct AlreadyCharged;

impl Ledger for AlreadyCharged {
    fn charge(
        &self,
        datasets: &[String],
        cost: Cost,
    ) -> Result<Vec<(String, Balance)>, LedgerError> {
        Ok(datasets
            .iter()
            .map(|d| {
                (
                    d.clone(),
                    Balance {
                        spent: cost,
                        left: Cost::ZERO,
                    },
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_all_or_nothing_and_refuses_past_the_budget() {
        let l = MemoryLedger::new(Cost::new(1.0, 1e-6).unwrap());
        let q = Cost::new(0.4, 0.0).unwrap();
        let ds = vec!["a".to_owned(), "b".to_owned()];
        l.charge(&ds, q).unwrap();
        l.charge(&ds[..1], q).unwrap();
        // a has 0.8, b 0.4: a third query on both is refused, and b is not charged either.
        let e = l.charge(&ds, q).unwrap_err();
        assert!(
            matches!(e, LedgerError::OverBudget { ref dataset, .. } if dataset == "a"),
            "{e}"
        );
        let b = l.charge(&ds[1..], q).unwrap();
        assert!((b[0].1.spent.epsilon - 0.8).abs() < 1e-12);
        assert!((b[0].1.left.epsilon - 0.2).abs() < 1e-12);
    }
}
