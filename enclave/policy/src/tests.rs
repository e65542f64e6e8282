use std::path::Path;

use super::*;

fn default_policy() -> Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/default.toml");
    Policy::load(&path).expect("the shipped policy loads").0
}

#[test]
fn shipped_policy_loads_with_expected_rules() {
    let p = default_policy();
    assert_eq!(p.min_group_size, 10);
    let r = p.dataset("residents").unwrap();
    assert_eq!(r.subject.as_deref(), Some("resident_id"));
    let id = &r.columns["resident_id"];
    assert_eq!(id.level, "L4");
    assert!(
        id.is_pseudonymized()
            && id.allows(Use::Join)
            && !id.allows(Use::Plaintext)
            && !id.allows(Use::Compare)
    );
    assert!(r.columns["name"].uses.is_empty());
    assert!(r.columns["phone"].uses.is_empty());
    let income = &r.columns["income"];
    assert!(
        income.allows(Use::Aggregate)
            && !income.allows(Use::GroupBy)
            && !income.allows(Use::Compare)
    );
    assert!(r.columns["district"].is_open());
    assert!(r.columns["age"].allows(Use::GroupBy) && r.columns["age"].allows(Use::Compare));
    assert!(!r.columns["age"].allows(Use::Plaintext));
}

#[test]
fn errors_name_file_and_line() {
    let cases = [
        (
            "version = 2\n[levels]\nL1 = [\"plaintext\"]\n",
            1,
            "version",
        ),
        (
            "version = 1\n[levels]\nL1 = [\"plaintext\", \"sideways\"]\n",
            3,
            "unknown use `sideways`",
        ),
        (
            "version = 1\n[levels]\nL1 = [\"denied\", \"join\"]\n",
            3,
            "denied",
        ),
        (
            "version = 1\n[levels]\nL1 = [\"plaintext\"]\n[datasets.t.columns]\na = \"L9\"\n",
            5,
            "unknown level `L9`",
        ),
        (
            "version = 1\n[levels]\nL1 = [\"plaintext\"]\n[datasets.t]\nsubject = \"id\"\n[datasets.t.columns]\na = \"L1\"\n",
            5,
            "subject column `id`",
        ),
        (
            "version = 1\n[threshold]\nmin_group_size = 0\n[levels]\nL1 = []\n",
            3,
            "min_group_size",
        ),
        (
            "version = 1\n[levels]\nL1 = [\"plaintext\"]\nbogus = 3\n",
            4,
            "",
        ),
        ("version = 1\nsurprise = true\n[levels]\n", 2, "surprise"),
        (
            "version = 1\nkind = \"wide\"\n[levels]\n",
            2,
            "unknown policy kind",
        ),
        ("version = 1\n[levels\n", 2, ""),
        (
            "version = 1\n[levels]\nL1 = [\"plaintext\"]\n[grant]\ndatasets = [\"nope\"]\n",
            5,
            "nope",
        ),
    ];
    for (text, line, needle) in cases {
        let e = Policy::parse("p.toml", text).unwrap_err();
        assert_eq!(e.file, "p.toml");
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.message.contains(needle), "{text:?}: {e}");
        assert!(e.to_string().starts_with(&format!("p.toml:{line}: ")));
    }
    let e = Policy::load(Path::new("/no/such/policy.toml")).unwrap_err();
    assert!(e.message.contains("cannot read"));
}

#[test]
fn egress_rules_default_to_the_hidden_levels_and_are_validated() {
    let p = default_policy();
    let levels: Vec<&str> = p.egress.leak_levels.iter().map(String::as_str).collect();
    assert_eq!(levels, ["L3", "L4"]);
    assert_eq!(p.egress.model_rows_per_parameter, 10);
    let base = "version = 1\n[levels]\nL1 = [\"plaintext\"]\nL2 = [\"aggregate\"]\n";
    let p = Policy::parse(
        "t",
        &format!("{base}[egress]\nmax_rows = 50\nleak_levels = [\"L1\"]\n"),
    )
    .unwrap();
    assert_eq!(p.egress.max_rows, 50);
    assert!(p.egress.leak_levels.contains("L1") && !p.egress.leak_levels.contains("L2"));
    for (bad, says) in [
        ("max_rows = 0", "egress.max_rows"),
        ("max_columns = -3", "egress.max_columns"),
        ("leak_levels = [\"L9\"]", "not a level"),
        ("sideways = 1", "unknown field"),
    ] {
        let e = Policy::parse("t", &format!("{base}[egress]\n{bad}\n")).unwrap_err();
        assert!(e.to_string().contains(says), "{bad}: {e}");
        if !bad.starts_with("sideways") {
            assert_eq!(e.line, 6, "{bad}: {e}");
        }
    }
}

#[test]
fn disclosure_rules_default_to_acros_and_are_validated() {
    let p = default_policy();
    assert_eq!(p.disclosure, DisclosureRules::default());
    assert_eq!(
        (
            p.disclosure.dominance_n,
            p.disclosure.dominance_k,
            p.disclosure.p_percent
        ),
        (2, 0.9, 0.1)
    );
    let base = "version = 1\n[levels]\nL1 = [\"plaintext\"]\n";
    let p = Policy::parse(
        "t",
        &format!("{base}[disclosure]\ndominance_n = 3\ndominance_k = 0.75\np_percent = 0\n"),
    )
    .unwrap();
    assert_eq!(
        p.disclosure,
        DisclosureRules {
            dominance_n: 3,
            dominance_k: 0.75,
            p_percent: 0.0
        }
    );
    for (bad, says) in [
        ("dominance_n = 0", "disclosure.dominance_n"),
        ("dominance_n = 11", "disclosure.dominance_n"),
        ("dominance_k = 0.0", "disclosure.dominance_k"),
        ("dominance_k = 1.5", "disclosure.dominance_k"),
        ("dominance_k = nan", "disclosure.dominance_k"),
        ("p_percent = 1.0", "disclosure.p_percent"),
        ("p_percent = -0.1", "disclosure.p_percent"),
        ("sideways = 1", "unknown field"),
    ] {
        let e = Policy::parse("t", &format!("{base}[disclosure]\n{bad}\n")).unwrap_err();
        assert!(e.to_string().contains(says), "{bad}: {e}");
    }
}
