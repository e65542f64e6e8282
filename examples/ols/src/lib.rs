//! Streaming ordinary least squares.
//!
//! Owns the numerics of the `linear-model` example: it accumulates XᵀX and Xᵀy one column
//! chunk at a time (so rows never need to be held) and solves the normal equations by Cholesky
//! decomposition. It does no I/O; the same code runs inside the guest and natively in the
//! benchmark so the two can be compared.
#![forbid(unsafe_code)]

use std::fmt;

/// Why a fit could not be produced.
#[derive(Debug, Clone, PartialEq)]
pub enum OlsError {
    /// Columns of a chunk differ in length, or their count differs from the model's.
    Shape { expected: usize, got: usize },
    /// Fewer observations than coefficients.
    TooFewRows { rows: u64, coefficients: usize },
    /// XᵀX is not positive definite (collinear features).
    Singular,
}

impl fmt::Display for OlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OlsError::Shape { expected, got } => {
                write!(f, "shape mismatch: expected {expected}, got {got}")
            }
            OlsError::TooFewRows { rows, coefficients } => {
                write!(
                    f,
                    "{rows} rows cannot determine {coefficients} coefficients"
                )
            }
            OlsError::Singular => f.write_str("features are collinear (XᵀX is singular)"),
        }
    }
}

impl std::error::Error for OlsError {}

/// Accumulates sufficient statistics for `y = β₀ + β₁x₁ + … + βₖxₖ`.
#[derive(Debug, Clone)]
pub struct Ols {
    features: usize,
    /// Upper triangle of XᵀX, (k+1)×(k+1) row-major, including the intercept column.
    xtx: Vec<f64>,
    xty: Vec<f64>,
    rows: u64,
}

impl Ols {
    /// A model with `features` regressors plus an intercept.
    pub fn new(features: usize) -> Self {
        let p = features + 1;
        Ols {
            features,
            xtx: vec![0.0; p * p],
            xty: vec![0.0; p],
            rows: 0,
        }
    }

    /// Observations seen so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Adds a chunk given column-wise: `xs[j][i]` is feature j of row i, `y[i]` the target.
    pub fn add_columns(&mut self, xs: &[&[f64]], y: &[f64]) -> Result<(), OlsError> {
        if xs.len() != self.features {
            return Err(OlsError::Shape {
                expected: self.features,
                got: xs.len(),
            });
        }
        let n = y.len();
        if let Some(bad) = xs.iter().find(|c| c.len() != n) {
            return Err(OlsError::Shape {
                expected: n,
                got: bad.len(),
            });
        }
        let p = self.features + 1;
        // Column 0 is the intercept (all ones).
        let col = |j: usize| -> Option<&[f64]> { if j == 0 { None } else { Some(xs[j - 1]) } };
        for a in 0..p {
            for b in a..p {
                let s = match (col(a), col(b)) {
                    (None, None) => n as f64,
                    (None, Some(v)) | (Some(v), None) => v.iter().sum(),
                    (Some(u), Some(v)) => dot(u, v),
                };
                self.xtx[a * p + b] += s;
            }
            self.xty[a] += match col(a) {
                None => y.iter().sum(),
                Some(u) => dot(u, y),
            };
        }
        self.rows += n as u64;
        Ok(())
    }

    /// Solves for the coefficients `[β₀ (intercept), β₁, …, βₖ]`.
    pub fn solve(&self) -> Result<Vec<f64>, OlsError> {
        let p = self.features + 1;
        if self.rows < p as u64 {
            return Err(OlsError::TooFewRows {
                rows: self.rows,
                coefficients: p,
            });
        }
        // Cholesky: XᵀX = L Lᵀ, using the upper triangle as the symmetric matrix.
        let a = |i: usize, j: usize| {
            if i <= j {
                self.xtx[i * p + j]
            } else {
                self.xtx[j * p + i]
            }
        };
        let mut l = vec![0.0f64; p * p];
        for i in 0..p {
            for j in 0..=i {
                let mut s = a(i, j);
                for k in 0..j {
                    s -= l[i * p + k] * l[j * p + k];
                }
                if i == j {
                    if s <= 1e-12 * a(i, i).abs().max(1.0) {
                        return Err(OlsError::Singular);
                    }
                    l[i * p + i] = s.sqrt();
                } else {
                    l[i * p + j] = s / l[j * p + j];
                }
            }
        }
        // Forward: L z = Xᵀy; backward: Lᵀ β = z.
        let mut z = vec![0.0; p];
        for i in 0..p {
            let s: f64 = (0..i).map(|k| l[i * p + k] * z[k]).sum();
            z[i] = (self.xty[i] - s) / l[i * p + i];
        }
        let mut beta = vec![0.0; p];
        for i in (0..p).rev() {
            let s: f64 = (i + 1..p).map(|k| l[k * p + i] * beta[k]).sum();
            beta[i] = (z[i] - s) / l[i * p + i];
        }
        Ok(beta)
    }
}

/// Dot product in four independent lanes (lets the compiler vectorise, keeps results
/// deterministic for a given chunking).
fn dot(u: &[f64], v: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let mut cu = u.chunks_exact(4);
    let mut cv = v.chunks_exact(4);
    for (a, b) in (&mut cu).zip(&mut cv) {
        for k in 0..4 {
            acc[k] += a[k] * b[k];
        }
    }
    let tail: f64 = cu
        .remainder()
        .iter()
        .zip(cv.remainder())
        .map(|(a, b)| a * b)
        .sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_exact_line() {
        let x: Vec<f64> = (0..100).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|x| 3.0 + 2.0 * x).collect();
        let mut m = Ols::new(1);
        m.add_columns(&[&x[..50]], &y[..50]).unwrap();
        m.add_columns(&[&x[50..]], &y[50..]).unwrap();
        let b = m.solve().unwrap();
        assert!(
            (b[0] - 3.0).abs() < 1e-9 && (b[1] - 2.0).abs() < 1e-9,
            "{b:?}"
        );
    }

    #[test]
    fn recovers_two_features() {
        let x1: Vec<f64> = (0..200).map(|i| f64::from(i % 17)).collect();
        let x2: Vec<f64> = (0..200).map(|i| f64::from((i * 7) % 23)).collect();
        let y: Vec<f64> = x1
            .iter()
            .zip(&x2)
            .map(|(a, b)| -1.5 + 0.5 * a + 4.0 * b)
            .collect();
        let mut m = Ols::new(2);
        m.add_columns(&[&x1, &x2], &y).unwrap();
        let b = m.solve().unwrap();
        for (got, want) in b.iter().zip([-1.5, 0.5, 4.0]) {
            assert!((got - want).abs() < 1e-8, "{b:?}");
        }
    }

    #[test]
    fn refuses_collinear_and_short_and_misshapen() {
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let x2: Vec<f64> = x.iter().map(|v| 2.0 * v).collect();
        let mut m = Ols::new(2);
        m.add_columns(&[&x, &x2], &x).unwrap();
        assert_eq!(m.solve(), Err(OlsError::Singular));
        let m = Ols::new(3);
        assert!(matches!(m.solve(), Err(OlsError::TooFewRows { .. })));
        let mut m = Ols::new(1);
        assert!(matches!(
            m.add_columns(&[&x[..3]], &x),
            Err(OlsError::Shape { .. })
        ));
        assert!(matches!(
            m.add_columns(&[], &x),
            Err(OlsError::Shape { .. })
        ));
    }
}
