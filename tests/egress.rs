//! Automatic evidence on real jobs: `sql-report` and `income-by-district` over generated residents,
//! under the default policy and under a deliberately leaky one (resident IDs and names opened as
//! plaintext, so that a job can try to carry them out). Each attack must be blocked with the
//! reason in the evidence report, no finding may repeat a value, and the verdicts are logged.

use enclave_egress::evidence::{Check, Evidence, Provenance, Verdict};
use enclave_runtime::{JobReport, PolicySource};
use enclave_tests::*;
use libtest_mimic::Trial;

/// The default policy with resident IDs and names of `residents` opened as plaintext (still
/// classified L4: the leak scan looks for them).
fn leaky_policy() -> PolicySource {
    let text = std::fs::read_to_string(default_policy_path()).unwrap();
    let text = text
        .replacen(
            r#"resident_id = { level = "L4", uses = ["pseudonym", "join"], format = "resident_id" }"#,
            r#"resident_id = { level = "L4", uses = ["plaintext"], format = "resident_id" }"#,
            1,
        )
        .replacen(
            r#"name = { level = "L4", format = "name" }"#,
            r#"name = { level = "L4", uses = ["plaintext"], format = "name" }"#,
            1,
        );
    assert!(text.contains(r#"uses = ["plaintext"], format = "resident_id""#));
    PolicySource::Text {
        name: "leaky".into(),
        text,
    }
}

fn sql(sql: &str, policy: PolicySource) -> JobReport {
    let mut j = Job::new(example_bytes("sql-report"))
        .table("residents", residents(2000))
        .param("sql", sql);
    j.policy = policy;
    let r = j.run();
    assert!(r.result.is_ok(), "{sql}: {:?}", r.result);
    r
}

fn only(r: &JobReport) -> &Evidence {
    assert_eq!(r.evidence.len(), 1, "{:?}", r.evidence);
    let e = &r.evidence[0];
    // No finding repeats a value: nothing that looks like an ID or phone number.
    for f in &e.findings {
        let digits = f
            .message
            .split(|c: char| !c.is_ascii_digit())
            .map(str::len)
            .max()
            .unwrap_or(0);
        assert!(digits < 8, "a finding holds a long number: {}", f.message);
    }
    e
}

fn found(e: &Evidence, check: Check, verdict: Verdict) -> bool {
    e.findings
        .iter()
        .any(|f| f.check == check && f.verdict == verdict)
}

fn raw_rows_are_blocked() {
    // Open columns row by row, and pseudonyms row by row under a row-level grant.
    let granted = PolicySource::Text {
        name: "granted".into(),
        text: format!(
            "{}\n[grant]\nrow_level = [\"residents.resident_id\"]\n",
            std::fs::read_to_string(default_policy_path()).unwrap()
        ),
    };
    for (q, policy) in [
        (
            "SELECT district, age_band FROM residents",
            PolicySource::File(default_policy_path()),
        ),
        ("SELECT resident_id, age_band FROM residents", granted),
    ] {
        let mut j = Job::new(example_bytes("sql-report"))
            .table("residents", residents(2000))
            .param("sql", q);
        j.policy = policy;
        let r = j.run();
        assert!(r.result.is_ok(), "{q}: {:?}", r.result);
        let e = only(&r);
        assert!(!matches!(e.provenance, Provenance::Certified { .. }), "{q}");
        assert_eq!(e.verdict, Verdict::Block, "{q}");
        assert!(
            found(e, Check::RawRows, Verdict::Block),
            "{q}: {:?}",
            e.findings
        );
    }
}

fn a_resident_id_in_a_label_is_blocked_however_formatted() {
    let r = sql(
        "SELECT district, \
           MIN(substr(resident_id, 1, 6) || '-' || substr(resident_id, 7, 8) || ' ' || substr(resident_id, 15)) AS first, \
           district || ': ' || MAX(resident_id) AS label \
         FROM residents GROUP BY district ORDER BY district",
        leaky_policy(),
    );
    let e = only(&r);
    assert_eq!(e.verdict, Verdict::Block, "{:?}", e.findings);
    let leaks: Vec<_> = e
        .findings
        .iter()
        .filter(|f| f.check == Check::Leak && f.verdict == Verdict::Block)
        .collect();
    assert_eq!(leaks.len(), 2, "{leaks:?}");
    assert!(
        leaks
            .iter()
            .all(|f| f.message.contains("residents.resident_id"))
    );
    assert!(
        leaks
            .iter()
            .any(|f| f.message.contains("inside longer text"))
    );
    assert!(!found(e, Check::RawRows, Verdict::Block));
}

fn single_subject_groups_are_blocked_as_rows() {
    // Grouping by a pseudonym (one subject per group) is refused by the host itself; a job that
    // groups pseudonymized rows in its own code emits rows of data (`raw_rows_are_blocked`).
    let mut j = Job::new(example_bytes("sql-report"))
        .table("residents", residents(2000))
        .param(
            "sql",
            "SELECT resident_id, COUNT(*) AS n FROM residents GROUP BY resident_id",
        );
    j.policy = PolicySource::File(default_policy_path());
    let r = j.run();
    assert_eq!(err(&r).kind, enclave_core::ErrorKind::PolicyViolation);
    assert!(r.evidence.is_empty());
    // Grouped by columns a policy opened: the values themselves are in the index.
    let r = sql(
        "SELECT name, resident_id, COUNT(*) AS n FROM residents GROUP BY name, resident_id",
        leaky_policy(),
    );
    let e = only(&r);
    assert!(found(e, Check::Leak, Verdict::Block), "{:?}", e.findings);
    // Under the default policy the host suppresses small groups itself; what is left is a
    // certified aggregate.
    let r = sql(
        "SELECT age, COUNT(*) AS n FROM residents GROUP BY age ORDER BY age",
        PolicySource::File(default_policy_path()),
    );
    assert!(r.queries[0].suppressed_groups > 0);
    let e = only(&r);
    assert_eq!(e.provenance, Provenance::Certified { query: 0 });
    assert_eq!(e.verdict, Verdict::Pass, "{:?}", e.findings);
}

fn income_by_district_is_certified_and_passes() {
    let mut j = Job::new(example_bytes("income-by-district")).table("residents", residents(2000));
    j.policy = PolicySource::File(default_policy_path());
    let (_dir, d) = temp_domain();
    let r = j.run_in(&d).unwrap();
    assert!(r.result.is_ok(), "{:?}", r.result);
    let e = only(&r);
    assert_eq!(e.provenance, Provenance::Certified { query: 0 });
    assert_eq!(e.verdict, Verdict::Pass, "{:?}", e.findings);
    assert!(e.cells_scanned > 0, "the district labels are scanned");
    // The verdict is in the log, and the index is kept for the next job.
    let mut examined = Vec::new();
    d.log
        .scan(|en| {
            if en.action.starts_with("output.examine.") {
                examined.push((en.action.clone(), en.subject.clone()));
            }
        })
        .unwrap();
    assert_eq!(
        examined,
        vec![(
            "output.examine.pass".to_owned(),
            format!("job:{}/output:0", r.manifest.job)
        )]
    );
    let kept: Vec<_> = std::fs::read_dir(d.home.root().join("datasets/leak"))
        .unwrap()
        .collect();
    assert_eq!(kept.len(), 1);
    let again = j.run_in(&d).unwrap();
    assert_eq!(only(&again).verdict, Verdict::Pass);
}

fn a_damaged_index_is_rebuilt_not_trusted() {
    let mut j = Job::new(example_bytes("sql-report"))
        .table("residents", residents(2000))
        .param(
            "sql",
            "SELECT district, MAX(resident_id) AS id FROM residents GROUP BY district",
        );
    j.policy = leaky_policy();
    let (_dir, d) = temp_domain();
    assert_eq!(only(&j.run_in(&d).unwrap()).verdict, Verdict::Block);
    let dir = d.home.root().join("datasets/leak");
    for f in std::fs::read_dir(&dir).unwrap() {
        let p = f.unwrap().path();
        // An empty index of the right form would pass everything: a damaged file must not be
        // believed, whatever it holds.
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0xff;
        std::fs::write(&p, bytes).unwrap();
    }
    assert_eq!(only(&j.run_in(&d).unwrap()).verdict, Verdict::Block);
}

pub fn tests() -> Vec<Trial> {
    crate::trials![
        raw_rows_are_blocked,
        a_resident_id_in_a_label_is_blocked_however_formatted,
        single_subject_groups_are_blocked_as_rows,
        income_by_district_is_certified_and_passes,
        a_damaged_index_is_rebuilt_not_trusted,
    ]
}
