//! Mechanisms and their calibration: how much noise a statistic gets.
//!
//! Owns the Laplace mechanism (scale b = Δ₁/ε, pure ε-DP) and the Gaussian mechanism
//! (σ = Δ₂/√(2ρ), ρ-zCDP), each sampled exactly on integers or on a power-of-two grid below the
//! scale (the value is rounded to the grid first), and the error bound documented for users:
//! the half-width that holds the noise with probability 1 − β. Scales are rounded up, never
//! down.

use serde::{Deserialize, Serialize};

use crate::rng::NoiseRng;
use crate::sample::{discrete_gaussian, discrete_laplace};

/// A noise mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// Discrete Laplace: ε-DP for an L1 sensitivity.
    Laplace,
    /// Discrete Gaussian: ρ-zCDP for an L2 sensitivity, (ε, δ)-DP after conversion.
    Gaussian,
}

impl Mechanism {
    /// Name as written in policies and reports.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Laplace => "laplace",
            Mechanism::Gaussian => "gaussian",
        }
    }
}

/// A mechanism that cannot be calibrated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoiseError {
    /// ε, ρ or a sensitivity is not a positive finite number.
    #[error("differential privacy: {0} must be a positive finite number")]
    NotPositive(&'static str),
    /// The noise would be larger than the samplers represent (ε far too small for the bounds).
    #[error(
        "differential privacy: the noise scale {scale:.3e} is too large (tighten the bounds or spend more ε)"
    )]
    TooLarge {
        /// The scale asked for.
        scale: f64,
    },
}

/// Calibrated noise for one statistic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Noise {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// Laplace: the scale b; Gaussian: the standard deviation σ.
    pub scale: f64,
}

/// Largest scale accepted (the samplers' integers stay far from overflow below it).
const MAX_SCALE: f64 = 1e15;
/// Bits of grid below the scale for non-integer statistics.
const GRID_BITS: i32 = 20;

fn positive(x: f64, what: &'static str) -> Result<f64, NoiseError> {
    if x.is_finite() && x > 0.0 {
        Ok(x)
    } else {
        Err(NoiseError::NotPositive(what))
    }
}

impl Noise {
    /// Laplace noise for L1 sensitivity `l1` at `epsilon`: b = Δ₁/ε.
    pub fn laplace(l1: f64, epsilon: f64) -> Result<Noise, NoiseError> {
        let scale = positive(l1, "the sensitivity")? / positive(epsilon, "ε")?;
        Noise::checked(Mechanism::Laplace, scale)
    }

    /// Gaussian noise for L2 sensitivity `l2` at zCDP parameter `rho`: σ = Δ₂/√(2ρ).
    pub fn gaussian(l2: f64, rho: f64) -> Result<Noise, NoiseError> {
        let scale = positive(l2, "the sensitivity")? / (2.0 * positive(rho, "ρ")?).sqrt();
        Noise::checked(Mechanism::Gaussian, scale)
    }

    fn checked(mechanism: Mechanism, scale: f64) -> Result<Noise, NoiseError> {
        if !(scale.is_finite() && scale <= MAX_SCALE) {
            return Err(NoiseError::TooLarge { scale });
        }
        Ok(Noise { mechanism, scale })
    }

    /// `value` plus integer noise (for counts and sums of integers).
    pub fn add_int(&self, rng: &mut NoiseRng, value: i64) -> i64 {
        let noise = match self.mechanism {
            // b = t / 2^20, t rounded up.
            Mechanism::Laplace => {
                let t = (self.scale * f64::from(1u32 << 20)).ceil().max(1.0) as u64;
                discrete_laplace(rng, t, 1 << 20)
            }
            // σ² = n / 2^20, n rounded up.
            Mechanism::Gaussian => {
                let n = (self.scale * self.scale * f64::from(1u32 << 20))
                    .ceil()
                    .max(1.0) as u128;
                discrete_gaussian(rng, n, 1 << 20)
            }
        };
        let noise = i64::try_from(noise).unwrap_or(if noise < 0 { i64::MIN } else { i64::MAX });
        value.saturating_add(noise)
    }

    /// `value` rounded to a power-of-two grid 2^20 times finer than the scale, plus noise drawn
    /// exactly on that grid (for sums and means of real numbers). A non-finite value counts as 0.
    pub fn add_float(&self, rng: &mut NoiseRng, value: f64) -> f64 {
        let exp = self.scale.log2().floor() as i32 - GRID_BITS;
        let g = 2f64.powi(exp);
        let units = self.scale / g; // in [2^20, 2^21)
        let noise = match self.mechanism {
            Mechanism::Laplace => discrete_laplace(rng, units.ceil() as u64, 1),
            Mechanism::Gaussian => discrete_gaussian(rng, (units * units).ceil() as u128, 1),
        };
        let v = if value.is_finite() { value } else { 0.0 };
        ((v / g).round() + noise as f64) * g
    }

    /// Half-width of the interval that holds the noise with probability `1 − beta`:
    /// Laplace b·ln(1/β); Gaussian σ·√(2·ln(2/β)).
    pub fn error_bound(&self, beta: f64) -> f64 {
        let beta = beta.clamp(1e-300, 1.0);
        match self.mechanism {
            Mechanism::Laplace => self.scale * (1.0 / beta).ln(),
            Mechanism::Gaussian => self.scale * (2.0 * (2.0 / beta).ln()).sqrt(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_follows_the_formulas() {
        let l = Noise::laplace(100.0, 0.5).unwrap();
        assert_eq!(l.scale, 200.0);
        let g = Noise::gaussian(10.0, 0.125).unwrap();
        assert!((g.scale - 20.0).abs() < 1e-12);
        assert!(Noise::laplace(0.0, 1.0).is_err());
        assert!(Noise::laplace(1.0, f64::NAN).is_err());
        assert!(Noise::gaussian(1.0, -1.0).is_err());
        assert!(matches!(
            Noise::laplace(1e12, 1e-6),
            Err(NoiseError::TooLarge { .. })
        ));
    }

    #[test]
    fn float_noise_lives_on_the_grid_and_has_the_scale() {
        let n = Noise::laplace(1.0, 1.0 / 3.0).unwrap(); // b = 3
        let mut r = NoiseRng::new(&[3u8; 32], b"float");
        let g = 2f64.powi(1 - GRID_BITS); // 2^(⌊log2 3⌋ − 20)
        let xs: Vec<f64> = (0..20_000).map(|_| n.add_float(&mut r, 0.1)).collect();
        for x in &xs {
            assert_eq!((x / g).fract(), 0.0, "{x} is not on the grid");
        }
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!((var / 18.0 - 1.0).abs() < 0.08, "var {var}, want 2b² = 18");
        assert!((mean - 0.1).abs() < 0.15, "mean {mean}");
    }

    #[test]
    fn error_bound_holds_empirically() {
        for noise in [
            Noise::laplace(1.0, 0.1).unwrap(),
            Noise::gaussian(1.0, 0.01).unwrap(),
        ] {
            let bound = noise.error_bound(0.05);
            let mut r = NoiseRng::new(&[5u8; 32], noise.mechanism.name().as_bytes());
            let n = 20_000;
            let outside = (0..n)
                .filter(|_| (noise.add_int(&mut r, 0) as f64).abs() > bound)
                .count() as f64
                / n as f64;
            assert!(outside < 0.06, "{:?}: {outside} outside {bound}", noise);
        }
    }
}
