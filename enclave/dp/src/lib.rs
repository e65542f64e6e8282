//! Differential privacy: noise mechanisms, their calibration, and the accounting of budgets.
//!
//! Owns the exact discrete samplers of Canonne, Kamath and Steinke (2020) — discrete Laplace and
//! discrete Gaussian, on integers or on a fixed grid, so that floating-point artefacts
//! (Mironov 2012) never reveal the value noised — drawn from a CSPRNG keyed by a key only the
//! domain holds ([`NoiseRng`]); the calibration of a mechanism from (ε, δ) and a sensitivity
//! ([`Mechanism`], [`Noise`]); and the cost of a query and its composition ([`Cost`]).
//! It must never draw noise from a seed a developer can see or choose, nor round a scale down.

mod budget;
mod ledger;
mod noise;
mod rng;
mod sample;

pub use budget::{Budget, Cost, CostError, Share};
pub use ledger::{AlreadyCharged, Balance, Ledger, LedgerError, MemoryLedger, settle};
pub use noise::{Mechanism, Noise, NoiseError};
pub use rng::NoiseRng;
pub use sample::{discrete_gaussian, discrete_laplace};
