//! The data authority as witness, through the command lines: the domain asks the authority's
//! witness to cosign its checkpoints; the witness cosigns only what extends what it cosigned;
//! a forked or rolled-back domain is refused; `enclave-audit verify` can require the
//! cosignature.

use std::path::Path;

use enclave_tlog::CosignerKey;
use libtest_mimic::Trial;

use crate::parties::{cli, ok, set_up};

/// Runs `enclave` with `args`; (success, stdout, stderr).
fn run(home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = cli(home, None, args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

/// The domain asks, the witness decides; whether it cosigned (and kept the cosignature).
fn witness_round(home: &Path, w: &Path, old: Option<u64>) -> (bool, String) {
    let req = home.join("request.txt");
    let cos = home.join("cosigned.txt");
    let _ = std::fs::remove_file(&cos);
    let old_s = old.map(|o| o.to_string());
    let mut args = vec![
        "audit",
        "witness-request",
        "--home",
        p(home),
        "--out",
        p(&req),
    ];
    if let Some(o) = &old_s {
        args.extend(["--old", o.as_str()]);
    }
    let (done, _, err) = run(home, &args);
    assert!(done, "{err}");
    let (cosigned, _, err) = run(
        home,
        &[
            "witness",
            "cosign",
            "--dir",
            p(w),
            "--request",
            p(&req),
            "--out",
            p(&cos),
        ],
    );
    if !cosigned {
        return (false, err);
    }
    let wkey = w.join("witness.pub");
    let (kept, _, err) = run(
        home,
        &[
            "audit",
            "cosigned",
            p(&cos),
            "--witness-key",
            p(&wkey),
            "--home",
            p(home),
        ],
    );
    assert!(kept, "{err}");
    (true, err)
}

fn size_of_cosigned(home: &Path) -> u64 {
    let note = std::fs::read_to_string(home.join("audit/cosigned.note")).unwrap();
    note.lines().nth(1).unwrap().parse().unwrap()
}

fn auditor_verify(log_home: &Path, key_home: &Path, w: &Path, cosigned: &Path) -> (bool, String) {
    let out = enclave_tests::enclave_audit_cmd()
        .args(["verify", "--log"])
        .arg(log_home.join("audit/log.jsonl"))
        .arg("--key")
        .arg(key_home.join("log.pub"))
        .arg("--witness")
        .arg(w.join("witness.pub"))
        .arg("--cosigned")
        .arg(cosigned)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

fn the_authority_witness_refuses_forks_and_rollbacks() {
    let dir = tempfile::tempdir().unwrap();
    let home = &dir.path().join("domain");
    let w = &dir.path().join("authority-witness");
    let parties = set_up(home);
    let o = Some(parties.operator.as_str());
    let (made, wkey, err) = run(
        home,
        &[
            "witness",
            "init",
            "--dir",
            p(w),
            "--name",
            "data-authority.example/witness",
            "--log-key",
            p(&home.join("log.pub")),
        ],
    );
    assert!(made, "{err}");
    CosignerKey::parse(wkey.trim()).unwrap();
    // The first checkpoint: trust on first use.
    let (cosigned, err) = witness_round(home, w, None);
    assert!(cosigned, "{err}");
    let first = size_of_cosigned(home);
    let before_growth = dir.path().join("domain-copy");
    copy_dir(home, &before_growth);
    let older = dir.path().join("domain-older");
    copy_dir(home, &older);
    // The domain grows; the witness checks the consistency proof and cosigns again.
    ok(
        home,
        o,
        &["org", "register", "--kind", "developer", "lab-a"],
    );
    let (cosigned, err) = witness_round(home, w, None);
    assert!(cosigned, "{err}");
    let second = size_of_cosigned(home);
    assert!(second > first);
    let (good, said) = auditor_verify(home, home, w, &home.join("audit/cosigned.note"));
    assert!(good, "{said}");
    assert!(said.contains("data-authority.example/witness"), "{said}");
    // A fork: the copy (the operator restoring an old state and rewriting what followed, with
    // the same key) grows past the witnessed size with other entries.
    for name in ["lab-x", "lab-y", "lab-z", "lab-w"] {
        ok(
            &before_growth,
            o,
            &["org", "register", "--kind", "developer", name],
        );
    }
    // Its own idea of what the witness cosigned is stale: a conflict naming the witness's size.
    let (cosigned, err) = witness_round(&before_growth, w, None);
    assert!(
        !cosigned && err.contains("409") && err.contains(&second.to_string()),
        "{err}"
    );
    let (cosigned, err) = witness_round(&before_growth, w, Some(second));
    assert!(!cosigned && err.contains("fork"), "{err}");
    // A rollback: a state older than what the witness cosigned.
    let req = older.join("request.txt");
    let (done, _, err) = run(
        &older,
        &[
            "audit",
            "witness-request",
            "--home",
            p(&older),
            "--old",
            "0",
            "--out",
            p(&req),
        ],
    );
    assert!(done, "{err}");
    let body = std::fs::read_to_string(&req).unwrap();
    // The request of the domain at its witnessed size `first`, replayed later.
    let (done, _, _) = run(
        home,
        &["witness", "cosign", "--dir", p(w), "--request", p(&req)],
    );
    assert!(!done, "{body}");
    // The witness's state never moved back.
    let (_, shown, _) = run(home, &["witness", "show", "--dir", p(w)]);
    assert!(
        shown.contains(&format!("cosigned size {second}")),
        "{shown}"
    );
    // The auditor requiring the cosignature refuses the forked log, and a checkpoint the
    // witness never cosigned.
    let (good, said) = auditor_verify(&before_growth, home, w, &home.join("audit/cosigned.note"));
    assert!(!good, "{said}");
    let uncosigned = dir.path().join("plain.note");
    let note = std::fs::read_to_string(home.join("audit/cosigned.note")).unwrap();
    let plain: String = note
        .lines()
        .filter(|l| !l.contains("data-authority.example/witness"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&uncosigned, plain).unwrap();
    let (good, said) = auditor_verify(home, home, w, &uncosigned);
    assert!(!good && said.contains("not cosigned"), "{said}");
    // A cosignature of another checkpoint does not verify either.
    let tampered = dir.path().join("tampered.note");
    let edited: String = note
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 1 {
                format!("{}\n", second + 1)
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&tampered, edited).unwrap();
    let (good, _) = auditor_verify(home, home, w, &tampered);
    assert!(!good);
}

pub fn tests() -> Vec<Trial> {
    crate::trials![the_authority_witness_refuses_forks_and_rollbacks]
}
