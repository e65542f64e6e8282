//! Privacy cost and budgets: what a query spends and how spending composes.
//!
//! Owns [`Cost`] (an (ε, δ) pair), its composition — basic sequential composition: the costs of
//! the queries charged against one budget add up, ε with ε and δ with δ — and how one query's
//! cost is shared among the statistics it noises: evenly in ε for Laplace, evenly in ρ (zCDP,
//! which composes additively) for Gaussian, with ρ derived from the query's (ε, δ) by
//! ε = ρ + 2·√(ρ·ln(1/δ)). A budget is a cap on the composed cost.

use serde::{Deserialize, Serialize};

use crate::noise::{Mechanism, Noise, NoiseError};

/// A cost or a budget that is not a valid (ε, δ).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CostError {
    /// ε or δ out of range.
    #[error(
        "differential privacy: ε must be positive and finite and δ in [0, 1) (got ε={epsilon}, δ={delta})"
    )]
    Invalid {
        /// ε given.
        epsilon: f64,
        /// δ given.
        delta: f64,
    },
    /// The Gaussian mechanism needs δ > 0.
    #[error("differential privacy: the Gaussian mechanism needs δ > 0")]
    GaussianNeedsDelta,
}

/// An (ε, δ) privacy cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Cost {
    /// ε.
    pub epsilon: f64,
    /// δ.
    pub delta: f64,
}

/// A cap on the composed cost of the queries charged against it.
pub type Budget = Cost;

impl Cost {
    /// A validated cost: ε > 0 finite, 0 ≤ δ < 1.
    pub fn new(epsilon: f64, delta: f64) -> Result<Cost, CostError> {
        if epsilon.is_finite() && epsilon > 0.0 && (0.0..1.0).contains(&delta) {
            Ok(Cost { epsilon, delta })
        } else {
            Err(CostError::Invalid { epsilon, delta })
        }
    }

    /// Nothing spent.
    pub const ZERO: Cost = Cost {
        epsilon: 0.0,
        delta: 0.0,
    };

    /// Basic sequential composition.
    pub fn then(self, other: Cost) -> Cost {
        Cost {
            epsilon: self.epsilon + other.epsilon,
            delta: self.delta + other.delta,
        }
    }

    /// Whether this (composed) cost stays within `budget`. A relative slack of 1e-9 absorbs the
    /// rounding of sums of decimal fractions (0.1 + 0.2), nothing more.
    pub fn within(self, budget: &Budget) -> bool {
        let fits = |x: f64, cap: f64| x <= cap * (1.0 + 1e-9) + f64::MIN_POSITIVE;
        fits(self.epsilon, budget.epsilon) && fits(self.delta, budget.delta)
    }

    /// What is left of `budget` after this cost (never negative).
    pub fn left_of(self, budget: &Budget) -> Cost {
        Cost {
            epsilon: (budget.epsilon - self.epsilon).max(0.0),
            delta: (budget.delta - self.delta).max(0.0),
        }
    }

    /// ρ of the Gaussian mechanism whose zCDP guarantee converts to this (ε, δ):
    /// ρ = (√(ln(1/δ) + ε) − √(ln(1/δ)))².
    pub fn rho(self) -> Result<f64, CostError> {
        if self.delta <= 0.0 {
            return Err(CostError::GaussianNeedsDelta);
        }
        let l = (1.0 / self.delta).ln();
        Ok(((l + self.epsilon).sqrt() - l.sqrt()).powi(2))
    }

    /// The (ε, δ) that ρ-zCDP implies at `delta`: ε = ρ + 2·√(ρ·ln(1/δ)).
    pub fn from_rho(rho: f64, delta: f64) -> Cost {
        Cost {
            epsilon: rho + 2.0 * (rho * (1.0 / delta).ln()).sqrt(),
            delta,
        }
    }
}

/// One query's cost shared among `statistics` noised values: the noise of each, given its
/// sensitivity (`l1` for Laplace, `l2` for Gaussian).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    mechanism: Mechanism,
    /// ε each (Laplace) or ρ each (Gaussian).
    each: f64,
}

impl Share {
    /// `cost` shared evenly among `statistics` (at least one).
    pub fn new(mechanism: Mechanism, cost: Cost, statistics: usize) -> Result<Share, CostError> {
        let m = statistics.max(1) as f64;
        let each = match mechanism {
            Mechanism::Laplace => cost.epsilon / m,
            Mechanism::Gaussian => cost.rho()? / m,
        };
        Ok(Share { mechanism, each })
    }

    /// The noise of one statistic of L1 sensitivity `l1` and L2 sensitivity `l2`.
    pub fn noise(&self, l1: f64, l2: f64) -> Result<Noise, NoiseError> {
        match self.mechanism {
            Mechanism::Laplace => Noise::laplace(l1, self.each),
            Mechanism::Gaussian => Noise::gaussian(l2, self.each),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composition_adds_and_budgets_cap() {
        let a = Cost::new(0.5, 1e-7).unwrap();
        let b = Cost::new(0.25, 0.0).unwrap();
        let s = a.then(b).then(b);
        assert_eq!(s.epsilon, 1.0);
        assert!(s.within(&Cost::new(1.0, 1e-6).unwrap()));
        assert!(!s.then(b).within(&Cost::new(1.0, 1e-6).unwrap()));
        assert!(
            Cost::new(0.1, 0.0)
                .unwrap()
                .then(Cost::new(0.2, 0.0).unwrap())
                .within(&Cost::new(0.3, 0.0).unwrap())
        );
        assert!(Cost::new(0.0, 0.0).is_err());
        assert!(Cost::new(1.0, 1.0).is_err());
        assert!(Cost::new(f64::INFINITY, 0.0).is_err());
    }

    #[test]
    fn rho_round_trips_through_the_conversion() {
        for (e, d) in [(1.0, 1e-6), (0.1, 1e-9), (5.0, 1e-5)] {
            let rho = Cost::new(e, d).unwrap().rho().unwrap();
            let back = Cost::from_rho(rho, d);
            assert!(
                (back.epsilon - e).abs() < 1e-9 * e.max(1.0),
                "{e} {d}: {back:?}"
            );
        }
        assert!(Cost::new(1.0, 0.0).unwrap().rho().is_err());
    }

    #[test]
    fn shares_split_evenly() {
        let s = Share::new(Mechanism::Laplace, Cost::new(1.0, 0.0).unwrap(), 4).unwrap();
        assert_eq!(s.noise(10.0, 0.0).unwrap().scale, 40.0);
        let c = Cost::new(1.0, 1e-6).unwrap();
        let g = Share::new(Mechanism::Gaussian, c, 2).unwrap();
        let sigma = g.noise(0.0, 1.0).unwrap().scale;
        // Two statistics at ρ/2 each compose to ρ: σ = 1/√(2·ρ/2) = 1/√ρ.
        assert!((sigma - 1.0 / c.rho().unwrap().sqrt()).abs() < 1e-9);
    }
}
