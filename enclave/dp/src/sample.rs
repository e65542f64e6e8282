//! Exact samplers (Canonne, Kamath, Steinke 2020, "The Discrete Gaussian for Differential
//! Privacy", algorithms 1–3) over rationals: no floating point touches a draw.
//!
//! Owns Bernoulli(p) for rational p, Bernoulli(exp(−γ)) for rational γ ≥ 0, the discrete
//! Laplace distribution with rational scale t/s (P[x] ∝ exp(−|x|·s/t)) and the discrete Gaussian
//! with rational variance parameter σ² = n/d (P[x] ∝ exp(−x²/2σ²)). Every loop ends with
//! probability 1 and its expected length is a small constant.

use num_bigint::BigUint;

use crate::rng::NoiseRng;

/// A non-negative rational num/den (den > 0).
#[derive(Clone, Debug)]
struct Ratio {
    num: BigUint,
    den: BigUint,
}

impl Ratio {
    fn new(num: impl Into<BigUint>, den: impl Into<BigUint>) -> Ratio {
        Ratio {
            num: num.into(),
            den: den.into(),
        }
    }
}

/// Bernoulli(num/den), num ≤ den.
fn bernoulli(rng: &mut NoiseRng, p: &Ratio) -> bool {
    rng.below_big(&p.den) < p.num
}

/// Bernoulli(exp(−γ)) for 0 ≤ γ ≤ 1 (algorithm 1, first part).
fn bernoulli_exp_unit(rng: &mut NoiseRng, g: &Ratio) -> bool {
    let mut k = BigUint::from(1u8);
    loop {
        // Bernoulli(γ / k)
        let p = Ratio::new(g.num.clone(), &g.den * &k);
        if bernoulli(rng, &p) {
            k += 1u8;
        } else {
            break;
        }
    }
    k.bit(0)
}

/// Bernoulli(exp(−γ)) for rational γ ≥ 0 (algorithm 1).
fn bernoulli_exp(rng: &mut NoiseRng, g: &Ratio) -> bool {
    let whole = &g.num / &g.den;
    let one = Ratio::new(1u8, 1u8);
    let mut i = BigUint::from(0u8);
    while i < whole {
        if !bernoulli_exp_unit(rng, &one) {
            return false;
        }
        i += 1u8;
    }
    let frac = Ratio::new(&g.num - &whole * &g.den, g.den.clone());
    bernoulli_exp_unit(rng, &frac)
}

/// A draw from the discrete Laplace distribution with scale `t / s` (t, s > 0):
/// P[x] ∝ exp(−|x| · s / t) (algorithm 2).
pub fn discrete_laplace(rng: &mut NoiseRng, t: u64, s: u64) -> i128 {
    let (t, s) = (t.max(1), s.max(1));
    loop {
        let u = rng.below(t);
        if !bernoulli_exp(rng, &Ratio::new(u, t)) {
            continue;
        }
        let mut v: u128 = 0;
        while bernoulli_exp(rng, &Ratio::new(1u8, 1u8)) {
            v += 1;
        }
        let x = u128::from(u) + u128::from(t) * v;
        let y = x / u128::from(s);
        let negative = rng.bit();
        if negative && y == 0 {
            continue;
        }
        // y ≤ (2^64 · v) / 1 < 2^127 for any v a run of Bernoulli(1/e) successes can reach.
        let y = i128::try_from(y).unwrap_or(i128::MAX);
        return if negative { -y } else { y };
    }
}

/// A draw from the discrete Gaussian with σ² = `n / d` (n, d > 0): P[x] ∝ exp(−x² / 2σ²)
/// (algorithm 3).
pub fn discrete_gaussian(rng: &mut NoiseRng, n: u128, d: u128) -> i128 {
    let (n, d) = (BigUint::from(n.max(1)), BigUint::from(d.max(1)));
    // t = ⌊σ⌋ + 1 = isqrt(⌊n/d⌋) + 1
    let t_big = (&n / &d).sqrt() + 1u8;
    let t = u64::try_from(t_big.clone()).unwrap_or(u64::MAX);
    let two_n_d_t2 = BigUint::from(2u8) * &n * &d * &t_big * &t_big;
    loop {
        let y = discrete_laplace(rng, t, 1);
        // γ = (|y| − σ²/t)² / 2σ² = (|y|·d·t − n)² / (2·n·d·t²)
        let a = BigUint::from(y.unsigned_abs()) * &d * &t_big;
        let diff = if a >= n { &a - &n } else { &n - &a };
        let g = Ratio::new(&diff * &diff, two_n_d_t2.clone());
        if bernoulli_exp(rng, &g) {
            return y;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(tag: &[u8]) -> NoiseRng {
        NoiseRng::new(&[42u8; 32], tag)
    }

    #[test]
    fn bernoulli_exp_has_the_right_mean() {
        let mut r = rng(b"bexp");
        for (num, den) in [(1u64, 2u64), (3, 2), (5, 1)] {
            let g = Ratio::new(num, den);
            let n = 40_000;
            let hits = (0..n).filter(|_| bernoulli_exp(&mut r, &g)).count() as f64;
            let p = (-(num as f64) / den as f64).exp();
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            assert!(
                (hits / n as f64 - p).abs() < 5.0 * sd,
                "γ={num}/{den}: {} vs {p}",
                hits / n as f64
            );
        }
    }

    /// The discrete Laplace pmf, P[x] = (1−q)/(1+q) · q^|x| with q = exp(−1/b).
    fn laplace_pmf(b: f64, x: i64) -> f64 {
        let q = (-1.0 / b).exp();
        (1.0 - q) / (1.0 + q) * q.powi(x.unsigned_abs() as i32)
    }

    #[test]
    fn discrete_laplace_matches_its_pmf() {
        // Scale 3/2: chi-square over the cells −6..=6 plus the two tails.
        let mut r = rng(b"laplace");
        let n = 60_000usize;
        let mut counts = std::collections::BTreeMap::<i64, usize>::new();
        for _ in 0..n {
            let x = discrete_laplace(&mut r, 3, 2) as i64;
            *counts.entry(x.clamp(-7, 7)).or_default() += 1;
        }
        let b = 1.5;
        let mut chi = 0.0;
        for x in -7..=7i64 {
            let p = if x.abs() == 7 {
                // tail mass beyond 6 on one side
                (7..200).map(|y| laplace_pmf(b, y)).sum::<f64>()
            } else {
                laplace_pmf(b, x)
            };
            let e = p * n as f64;
            let o = *counts.get(&x).unwrap_or(&0) as f64;
            chi += (o - e).powi(2) / e;
        }
        // 14 degrees of freedom: 36.1 is the 0.999 quantile.
        assert!(chi < 36.1, "chi2 = {chi}, {counts:?}");
    }

    #[test]
    fn discrete_laplace_variance_at_large_scale() {
        // Var = 2q/(1−q)² ≈ 2b² for b = 1000.
        let mut r = rng(b"laplace-large");
        let n = 40_000;
        let xs: Vec<f64> = (0..n)
            .map(|_| discrete_laplace(&mut r, 1000, 1) as f64)
            .collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let q = (-1.0f64 / 1000.0).exp();
        let want = 2.0 * q / (1.0 - q).powi(2);
        assert!(mean.abs() < 5.0 * (want / n as f64).sqrt(), "mean {mean}");
        // The sample variance of a Laplace has relative sd ≈ √(5/n) ≈ 1.1 %.
        assert!((var / want - 1.0).abs() < 0.06, "var {var} vs {want}");
    }

    #[test]
    fn discrete_gaussian_matches_its_variance_and_shape() {
        for (n_, d_) in [(9u128, 4u128), (250_000, 1)] {
            let sigma2 = n_ as f64 / d_ as f64;
            let mut r = rng(format!("gauss{n_}").as_bytes());
            let n = 30_000;
            let xs: Vec<f64> = (0..n)
                .map(|_| discrete_gaussian(&mut r, n_, d_) as f64)
                .collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            assert!(mean.abs() < 5.0 * (sigma2 / n as f64).sqrt(), "mean {mean}");
            // For σ ≥ 1 the discrete Gaussian's variance is within 1e-3 of σ² (CKS, fact 19).
            assert!((var / sigma2 - 1.0).abs() < 0.05, "var {var} vs {sigma2}");
            // Within ±σ: P ≈ 0.683 for large σ (more for small σ: the lattice counts both ends).
            let sigma = sigma2.sqrt();
            let inside = xs.iter().filter(|x| x.abs() <= sigma).count() as f64 / n as f64;
            assert!(inside > 0.66 && inside < 0.80, "P(|x| ≤ σ) = {inside}");
        }
    }
}
