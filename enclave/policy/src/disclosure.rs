//! Statistical disclosure control of aggregate cells, as output checkers practise it (ACRO/SACRO,
//! OpenSAFELY): the dominance rules the query host applies to every cell of a restricted SUM or
//! AVG before any job sees it.
//!
//! Owns [`DisclosureRules`] (the `[disclosure]` section): the N-K rule (the `dominance_n`
//! largest contributions must make up less than `dominance_k` of a cell's total) and the p %
//! rule (what remains after the two largest must be at least `p_percent` of the largest). The
//! rules are applied in `enclave-query`; this crate only validates the numbers. It must never
//! switch a rule off by default: the defaults are ACRO's (N = 2, K = 90 %, p = 10 %).

use serde::Deserialize;
use toml::Spanned;

use crate::PolicyError;

/// The `[disclosure]` section of a policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DisclosureRules {
    /// N of the N-K rule: how many of the largest contributions are added up.
    pub dominance_n: u32,
    /// K of the N-K rule, as a share in (0, 1]: a cell whose N largest contributions make up at
    /// least this share of its total is suppressed.
    pub dominance_k: f64,
    /// p of the p % rule, as a share in [0, 1): a cell whose total minus its two largest
    /// contributions is less than this share of the largest is suppressed (0 turns it off).
    pub p_percent: f64,
}

/// ACRO's defaults.
impl Default for DisclosureRules {
    fn default() -> Self {
        DisclosureRules {
            dominance_n: 2,
            dominance_k: 0.9,
            p_percent: 0.1,
        }
    }
}

/// Largest N of the N-K rule.
pub const MAX_DOMINANCE_N: u32 = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDisclosure {
    #[serde(default)]
    dominance_n: Option<Spanned<i64>>,
    #[serde(default)]
    dominance_k: Option<Spanned<f64>>,
    #[serde(default)]
    p_percent: Option<Spanned<f64>>,
}

/// The `[disclosure]` section, validated.
pub(crate) fn parse(
    raw: RawDisclosure,
    err: &impl Fn(usize, String) -> PolicyError,
) -> Result<DisclosureRules, PolicyError> {
    let mut rules = DisclosureRules::default();
    if let Some(n) = raw.dominance_n {
        rules.dominance_n = match u32::try_from(*n.get_ref()) {
            Ok(v) if (1..=MAX_DOMINANCE_N).contains(&v) => v,
            _ => {
                return Err(err(
                    n.span().start,
                    format!("disclosure.dominance_n must be between 1 and {MAX_DOMINANCE_N}"),
                ));
            }
        };
    }
    if let Some(k) = raw.dominance_k {
        let v = *k.get_ref();
        if !(v > 0.0 && v <= 1.0) {
            return Err(err(
                k.span().start,
                "disclosure.dominance_k must be a share in (0, 1]".into(),
            ));
        }
        rules.dominance_k = v;
    }
    if let Some(p) = raw.p_percent {
        let v = *p.get_ref();
        if !(0.0..1.0).contains(&v) {
            return Err(err(
                p.span().start,
                "disclosure.p_percent must be a share in [0, 1)".into(),
            ));
        }
        rules.p_percent = v;
    }
    Ok(rules)
}
