//! Disclosure control of aggregate cells, against ACRO: cross-tabulations of a sum and of a mean
//! over tables made to hold every kind of cell (ordinary, under the threshold, dominated by one
//! or two contributors, all zeros, negative contributions) run as jobs under a policy without
//! noise; the host shows exactly the cells ACRO (`sdc/acro_check.py`, the `acro` package with
//! its default rules) passes, with the same figures, and the evidence names the rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Float64Type;
use enclave_egress::evidence::{Check, Verdict};
use enclave_runtime::{JobReport, PolicySource};
use enclave_tests::*;
use libtest_mimic::Trial;

/// A policy without noise (so that figures compare exactly), with ACRO's threshold of 10 and
/// the default `[disclosure]` rules.
fn policy() -> PolicySource {
    PolicySource::Text {
        name: "sdc".into(),
        text: r#"version = 1
[threshold]
min_group_size = 10
[dp]
require = []
[levels]
L1 = ["plaintext"]
L2 = ["group_by", "aggregate", "join"]
L3 = ["aggregate"]
L4 = ["denied"]
[datasets.people]
subject = "person_id"
[datasets.people.columns]
person_id = { level = "L4", uses = ["pseudonym", "join"] }
district = "L2"
sex = "L2"
income = "L3"
"#
        .into(),
    }
}

/// What a cell is made to be.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Ordinary,
    Small,
    Dominated,
    Zeros,
    Negative,
}

/// A deterministic generator (splitmix64): the tables are the same on every run.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Rows (district, sex, income) of a table whose cells are of the kinds `pick` chooses.
fn rows(seed: u64, pick: impl Fn(&mut Mix) -> Kind) -> Vec<(String, String, i64)> {
    let mut m = Mix(seed);
    let mut out = Vec::new();
    for d in 0..5 {
        for sex in ["F", "M"] {
            let kind = pick(&mut m);
            let n = match kind {
                Kind::Small => 2 + m.below(8),
                _ => 10 + m.below(30),
            };
            for i in 0..n {
                let income = match kind {
                    Kind::Ordinary | Kind::Small => 1_000 + m.below(4_000) as i64,
                    Kind::Dominated if i < 1 + (seed % 2) => 2_000_000 + m.below(1_000) as i64,
                    Kind::Dominated => 1_000 + m.below(500) as i64,
                    Kind::Zeros => 0,
                    Kind::Negative if i == 0 => -500,
                    Kind::Negative => 1_000 + m.below(4_000) as i64,
                };
                out.push((format!("district-{d}"), sex.to_owned(), income));
            }
        }
    }
    out
}

fn parquet(rows: &[(String, String, i64)], dir: &Path) -> PathBuf {
    people_table(dir, rows, "income", 6)
}

/// ACRO's outcome and figure per cell `district|sex`.
fn acro(rows: &[(String, String, i64)], aggfunc: &str) -> BTreeMap<String, (String, f64)> {
    let doc = serde_json::json!({
        "rows": rows.iter().map(|r| serde_json::json!([r.0, r.1, r.2])).collect::<Vec<_>>(),
        "aggfunc": aggfunc,
    });
    let out = python_oracle("sdc/acro_check.py", &doc, "acro==1.0.2");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, c)| {
            (
                k.clone(),
                (
                    c["outcome"].as_str().unwrap().to_owned(),
                    c["value"].as_f64().unwrap(),
                ),
            )
        })
        .collect()
}

/// The cells the host shows for `agg` (`SUM` or `AVG`) of income by district and sex.
fn enclave(file: &Path, agg: &str) -> (JobReport, BTreeMap<String, f64>) {
    let sql = format!(
        "SELECT district, sex, CAST({agg}(income) AS DOUBLE) AS v FROM people \
         GROUP BY district, sex"
    );
    let mut j = Job::new(example_bytes("sql-report"))
        .table("people", file)
        .param("sql", &sql);
    j.policy = policy();
    let r = j.run();
    assert!(r.result.is_ok(), "{sql}: {:?}", r.result);
    let mut cells = BTreeMap::new();
    for b in &r.outputs[0].batches {
        let d = b.column(0).as_string::<i32>();
        let s = b.column(1).as_string::<i32>();
        let v = b.column(2).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            cells.insert(format!("{}|{}", d.value(i), s.value(i)), v.value(i));
        }
    }
    assert!(
        r.outputs[0]
            .batches
            .iter()
            .all(|b| b.column(2).null_count() == 0)
    );
    (r, cells)
}

fn the_host_shows_exactly_the_cells_acro_passes() {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for seed in 1..=4u64 {
        let rows = rows(seed, |m| match m.below(8) {
            0 | 1 => Kind::Small,
            2 | 3 => Kind::Dominated,
            4 => Kind::Zeros,
            _ => Kind::Ordinary,
        });
        let dir = tempfile::tempdir().unwrap();
        let file = parquet(&rows, dir.path());
        for (agg, aggfunc) in [("SUM", "sum"), ("AVG", "mean")] {
            let oracle = acro(&rows, aggfunc);
            let (report, shown) = enclave(&file, agg);
            for (cell, (outcome, value)) in &oracle {
                let kept = shown.get(cell);
                if outcome == "ok" {
                    let v = kept.unwrap_or_else(|| {
                        panic!("seed {seed} {agg}: ACRO passes {cell}, the host suppressed it")
                    });
                    assert!(
                        (v - value).abs() <= 1e-9 * value.abs().max(1.0),
                        "seed {seed} {agg} {cell}: {v} vs ACRO's {value}"
                    );
                } else {
                    assert!(
                        kept.is_none(),
                        "seed {seed} {agg}: ACRO fails {cell} ({outcome}), the host shows it"
                    );
                }
                *seen.entry(outcome_kind(outcome)).or_default() += 1;
            }
            assert!(
                shown.keys().all(|c| oracle.contains_key(c)),
                "only cells of the data"
            );
            // The evidence names the rules the host applied.
            let e = &report.evidence[0];
            assert!(
                e.findings.iter().any(|f| f.check == Check::Disclosure
                    && f.verdict == Verdict::Pass
                    && f.message.contains("dominated")),
                "{:?}",
                e.findings
            );
            assert!(report.queries[0].dominance_checked);
        }
    }
    // Every kind of verdict was met.
    for kind in ["ok", "threshold", "nk", "p"] {
        assert!(seen.get(kind).copied().unwrap_or(0) > 0, "{kind}: {seen:?}");
    }
}

fn outcome_kind(outcome: &str) -> &'static str {
    if outcome == "ok" {
        "ok"
    } else if outcome.contains("Threshold") {
        "threshold"
    } else if outcome.contains("NK") {
        "nk"
    } else if outcome.contains("PRatio") || outcome.contains("PPercent") {
        "p"
    } else {
        "other"
    }
}

/// Negative contributions leave dominance undefined: ACRO asks for a review of those cells, the
/// host keeps them (and their threshold still applies), and neither suppresses a cell for it.
fn negative_contributions_leave_dominance_undefined() {
    let rows = rows(9, |m| {
        if m.below(3) == 0 {
            Kind::Negative
        } else {
            Kind::Ordinary
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let file = parquet(&rows, dir.path());
    let oracle = acro(&rows, "sum");
    let (_, shown) = enclave(&file, "SUM");
    let mut negative = 0;
    for (cell, (outcome, value)) in &oracle {
        assert!(!outcome.contains("Threshold"), "{cell}: {outcome}");
        let v = shown
            .get(cell)
            .unwrap_or_else(|| panic!("{cell} ({outcome}) suppressed"));
        assert!((v - value).abs() < 1e-6);
        if rows
            .iter()
            .any(|r| format!("{}|{}", r.0, r.1) == *cell && r.2 < 0)
        {
            negative += 1;
            assert_ne!(outcome, "ok", "ACRO reviews {cell}");
        }
    }
    assert!(negative > 0);
}

pub fn tests() -> Vec<Trial> {
    crate::trials![
        the_host_shows_exactly_the_cells_acro_passes,
        negative_contributions_leave_dominance_undefined
    ]
}
