//! The noise generator: a blake3 XOF keyed by a domain key and a context.
//!
//! Owns turning a 32-byte key (a job's noise key, which only the domain and the job's sealed
//! transcript hold) and a context (the query, the statistic, the group) into uniform integers.
//! The same key and context always give the same draws, so a replay reproduces its noise; a
//! developer who knows everything but the key cannot predict or undo them.

use num_bigint::BigUint;

/// Uniform random integers from a keyed blake3 XOF.
pub struct NoiseRng {
    xof: blake3::OutputReader,
}

impl NoiseRng {
    /// The generator for `key` and `context` (length-prefixed, so contexts never collide).
    pub fn new(key: &[u8; 32], context: &[u8]) -> NoiseRng {
        let mut h = blake3::Hasher::new_keyed(key);
        h.update(&(context.len() as u64).to_le_bytes());
        h.update(context);
        NoiseRng {
            xof: h.finalize_xof(),
        }
    }

    /// 64 uniform bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.xof.fill(&mut b);
        u64::from_le_bytes(b)
    }

    /// One uniform bit.
    pub fn bit(&mut self) -> bool {
        let mut b = [0u8; 1];
        self.xof.fill(&mut b);
        b[0] & 1 == 1
    }

    /// Uniform in `0..n` (rejection sampling: exact). `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        if n <= 1 {
            return 0;
        }
        // The largest multiple of n that fits: draws at or above it are rejected.
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Uniform in `0..n` for a big `n` (rejection on the bit length: exact). `n` must be positive.
    pub fn below_big(&mut self, n: &BigUint) -> BigUint {
        let bits = n.bits();
        if bits <= 63 {
            let small = n.iter_u64_digits().next().unwrap_or(0);
            return BigUint::from(self.below(small.max(1)));
        }
        let bytes = bits.div_ceil(8) as usize;
        let excess = (bytes as u64) * 8 - bits;
        let mut buf = vec![0u8; bytes];
        loop {
            self.xof.fill(&mut buf);
            if let Some(top) = buf.last_mut() {
                *top &= 0xffu8 >> excess;
            }
            let x = BigUint::from_bytes_le(&buf);
            if &x < n {
                return x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_and_context_same_draws_others_differ() {
        let k = [7u8; 32];
        let a: Vec<u64> = {
            let mut r = NoiseRng::new(&k, b"q1");
            (0..4).map(|_| r.next_u64()).collect()
        };
        let mut r = NoiseRng::new(&k, b"q1");
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        let mut r = NoiseRng::new(&k, b"q2");
        assert_ne!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        let mut r = NoiseRng::new(&[8u8; 32], b"q1");
        assert_ne!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
    }

    #[test]
    fn below_is_uniform() {
        let mut r = NoiseRng::new(&[1u8; 32], b"uniform");
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[r.below(6) as usize] += 1;
        }
        // Chi-square with 5 degrees of freedom; 20.5 is the 0.999 quantile.
        let chi: f64 = counts
            .iter()
            .map(|&c| (f64::from(c) - 10_000.0).powi(2) / 10_000.0)
            .sum();
        assert!(chi < 20.5, "{counts:?} chi2={chi}");
        let n = BigUint::from(3u8) << 70;
        for _ in 0..100 {
            assert!(r.below_big(&n) < n);
        }
    }
}
