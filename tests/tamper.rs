//! The verifier against real logs and every kind of tampering the audit issue names: an edited
//! entry, a deleted one, a swapped pair, a truncated log, a forged checkpoint and a rollback.

use std::path::{Path, PathBuf};
use std::process::Command;

use enclave_tlog::merkle::verify_inclusion;
use enclave_tlog::proof::encode_hashes;
use enclave_tlog::{Draft, FailureKind, Log, ProofBundle, Signer, verify_log};

const NAME: &str = "enclave/test-domain";

fn signer() -> Signer {
    Signer::from_seed(NAME, [7; 32]).unwrap()
}

fn draft(i: u64) -> Draft {
    Draft::new("developer:alice", "job.run", format!("job:j-{i}")).digest("module", &[i as u8; 32])
}

/// A log of 10 entries in 5 commits: 0, 1, [2 3 4], 5, [6 7 8 9].
fn build(dir: &Path) -> PathBuf {
    let path = dir.join("log.jsonl");
    let (log, report) = Log::open(&path, signer()).unwrap();
    assert_eq!(report.entries, 0);
    log.append(draft(0)).unwrap();
    log.append(draft(1)).unwrap();
    log.append_all((2..5).map(draft).collect()).unwrap();
    log.append(draft(5)).unwrap();
    log.append_all((6..10).map(draft).collect()).unwrap();
    assert_eq!(log.size(), 10);
    path
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write(path: &Path, lines: &[String]) {
    let mut s = lines.join("\n");
    s.push('\n');
    std::fs::write(path, s).unwrap();
}

/// Index of the line holding entry `seq`.
fn line_of(lines: &[String], seq: u64) -> usize {
    let tag = format!("{{\"entry\":{{\"seq\":{seq},");
    lines.iter().position(|l| l.starts_with(&tag)).unwrap()
}

fn verify(
    path: &Path,
    trusted: Option<&str>,
) -> Result<enclave_tlog::Summary, enclave_tlog::Failure> {
    let f = std::fs::File::open(path).unwrap();
    verify_log(std::io::BufReader::new(f), &signer().verifier(), trusted)
}

fn honest_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path());
    let s = verify(&path, None).unwrap();
    assert_eq!((s.entries, s.checkpoints, s.uncommitted), (10, 5, 0));
    let (log, report) = Log::open(&path, signer()).unwrap();
    assert_eq!(
        (
            report.entries,
            report.torn_bytes_removed,
            report.recommitted
        ),
        (10, 0, 0)
    );
    assert_eq!(hex::encode(log.root(10).unwrap()), s.root);
    // The same log with a different key is refused at the first checkpoint.
    let other = Signer::from_seed(NAME, [8; 32]).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    let err = verify_log(std::io::BufReader::new(f), &other.verifier(), None).unwrap_err();
    assert_eq!(err.kind, FailureKind::ForgedCheckpoint);
}

fn edited_entry_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path());
    let mut l = lines(&path);
    let i = line_of(&l, 3);
    l[i] = l[i].replace("job:j-3", "job:j-X");
    write(&path, &l);
    let err = verify(&path, None).unwrap_err();
    assert_eq!(
        (err.kind, err.entry),
        (FailureKind::Chain, Some(3)),
        "{err}"
    );

    // The last entry of a commit has no successor to betray it: the checkpoint names it.
    let path = build(&dir.path().join("b").tap_mkdir());
    let mut l = lines(&path);
    let i = line_of(&l, 5);
    l[i] = l[i].replace("job:j-5", "job:j-Y");
    write(&path, &l);
    let err = verify(&path, None).unwrap_err();
    assert_eq!(
        (err.kind, err.entry),
        (FailureKind::CheckpointMismatch, Some(5)),
        "{err}"
    );
    assert!(err.message.contains("entry 5"), "{err}");
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}
impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

fn deleted_and_swapped_entries_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path());
    let mut l = lines(&path);
    l.remove(line_of(&l, 7));
    write(&path, &l);
    let err = verify(&path, None).unwrap_err();
    assert_eq!(
        (err.kind, err.entry),
        (FailureKind::Sequence, Some(7)),
        "{err}"
    );

    let path = build(&dir.path().join("b").tap_mkdir());
    let mut l = lines(&path);
    let (a, b) = (line_of(&l, 2), line_of(&l, 3));
    l.swap(a, b);
    write(&path, &l);
    let err = verify(&path, None).unwrap_err();
    assert_eq!(
        (err.kind, err.entry),
        (FailureKind::Sequence, Some(2)),
        "{err}"
    );
    assert_eq!(err.line as usize, a + 1);
}

fn truncated_log_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path());
    let (log, _) = Log::open(&path, signer()).unwrap();
    let trusted = log.latest_checkpoint().unwrap();
    drop(log);
    let l = lines(&path);

    // Cut at a commit boundary: only a checkpoint kept by the auditor can tell.
    let cut = line_of(&l, 6);
    write(&path, &l[..cut]);
    verify(&path, None).unwrap();
    let err = verify(&path, Some(&trusted)).unwrap_err();
    assert_eq!(
        (err.kind, err.entry),
        (FailureKind::Truncated, Some(6)),
        "{err}"
    );

    // Cut inside a commit: the entries left have no checkpoint.
    write(&path, &l[..cut + 2]);
    let err = verify(&path, None).unwrap_err();
    assert_eq!(
        (err.kind, err.entry),
        (FailureKind::Uncommitted, Some(6)),
        "{err}"
    );

    // Cut inside a line: a torn tail.
    let mut s = l.join("\n");
    s.truncate(s.len() - 40);
    std::fs::write(&path, s).unwrap();
    let err = verify(&path, None).unwrap_err();
    assert_eq!(err.kind, FailureKind::TornTail, "{err}");
}

fn forged_checkpoint_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path());
    let mut l = lines(&path);
    // An attacker with another key under the same name signs a checkpoint for an edited log.
    let i = line_of(&l, 9);
    l[i] = l[i].replace("job:j-9", "job:j-Z");
    let forger = Signer::from_seed(NAME, [66; 32]).unwrap();
    let e: enclave_tlog::entry::Line = serde_json::from_str(&l[i]).unwrap();
    let enclave_tlog::entry::Line::Entry(_) = e else {
        panic!()
    };
    let mut tree = enclave_tlog::merkle::Tree::new();
    for line in &l {
        if let Ok(enclave_tlog::entry::Line::Entry(e)) = serde_json::from_str(line) {
            tree.push(e.leaf_hash().unwrap());
        }
    }
    let cp = enclave_tlog::Checkpoint {
        origin: NAME.into(),
        size: 10,
        root: tree.root(10).unwrap(),
    };
    let forged = enclave_tlog::entry::Line::Checkpoint(forger.sign(&cp.body()).unwrap())
        .encode()
        .unwrap();
    let last = l.len() - 1;
    l[last] = forged.trim_end().to_owned();
    write(&path, &l);
    let err = verify(&path, None).unwrap_err();
    assert_eq!(err.kind, FailureKind::ForgedCheckpoint, "{err}");
    assert_eq!(err.line as usize, l.len());

    // Editing the signed text of a real checkpoint breaks its signature.
    let path = build(&dir.path().join("b").tap_mkdir());
    let mut l = lines(&path);
    let i = line_of(&l, 1) + 1;
    assert!(l[i].contains("\\n2\\n"));
    l[i] = l[i].replacen("\\n2\\n", "\\n3\\n", 1);
    write(&path, &l);
    let err = verify(&path, None).unwrap_err();
    assert_eq!(err.kind, FailureKind::ForgedCheckpoint, "{err}");
}

fn rollback_to_a_rewritten_history_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path());
    let (log, _) = Log::open(&path, signer()).unwrap();
    let trusted = log.latest_checkpoint().unwrap();
    drop(log);
    // The operator (who holds the key) rebuilds the log without entry 4 onward, then appends
    // different entries: every line verifies on its own, but not against the auditor's checkpoint.
    let forked = dir.path().join("fork").tap_mkdir().join("log.jsonl");
    let (log, _) = Log::open(&forked, signer()).unwrap();
    for i in 0..4 {
        log.append(draft(i)).unwrap();
    }
    for i in 40..50 {
        log.append(draft(i)).unwrap();
    }
    let newer = log.latest_checkpoint().unwrap();
    drop(log);
    verify(&forked, None).unwrap();
    let err = verify(&forked, Some(&trusted)).unwrap_err();
    assert_eq!(err.kind, FailureKind::Inconsistent, "{err}");
    // A proof bundle from the fork cannot show consistency with the trusted checkpoint either.
    let (log, _) = Log::open(&forked, signer()).unwrap();
    let bundle = ProofBundle {
        entry: log.entry(12).unwrap(),
        checkpoint: newer,
        inclusion: encode_hashes(&log.inclusion_proof(12, 14).unwrap()),
        consistency_from: Some(10),
        consistency: encode_hashes(&log.consistency_proof(10, 14).unwrap()),
    };
    bundle.check(&signer().verifier(), None).unwrap();
    assert!(bundle.check(&signer().verifier(), Some(&trusted)).is_err());
}

fn proof_bundles_check_and_tampered_ones_fail() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path());
    let (log, _) = Log::open(&path, signer()).unwrap();
    let old = {
        // A checkpoint of size 5 as the auditor would have kept it.
        let body = enclave_tlog::Checkpoint {
            origin: NAME.into(),
            size: 5,
            root: log.root(5).unwrap(),
        }
        .body();
        signer().sign(&body).unwrap()
    };
    let bundle = ProofBundle {
        entry: log.entry(3).unwrap(),
        checkpoint: log.latest_checkpoint().unwrap(),
        inclusion: encode_hashes(&log.inclusion_proof(3, 10).unwrap()),
        consistency_from: Some(5),
        consistency: encode_hashes(&log.consistency_proof(5, 10).unwrap()),
    };
    let key = signer().verifier();
    let c = bundle.check(&key, Some(&old)).unwrap();
    assert_eq!((c.entry, c.size, c.consistent_with), (3, 10, Some(5)));
    let leaf = bundle.entry.leaf_hash().unwrap();
    let proof = log.inclusion_proof(3, 10).unwrap();
    verify_inclusion(3, 10, &leaf, &proof, &log.root(10).unwrap()).unwrap();

    let mut b = bundle.clone();
    b.entry.subject = "job:j-other".into();
    assert!(b.check(&key, None).is_err());
    let mut b = bundle.clone();
    b.inclusion.pop();
    assert!(b.check(&key, None).is_err());
    let mut b = bundle.clone();
    b.consistency.swap(0, 1);
    assert!(b.check(&key, Some(&old)).is_err());
    let mut b = bundle.clone();
    b.checkpoint = b.checkpoint.replacen("\n10\n", "\n11\n", 1);
    assert!(b.check(&key, None).is_err());

    // Without a trusted checkpoint the consistency proof is not skipped: it is checked against
    // the bundle's own checkpoint and says which root the log had at the older size.
    let c = bundle.check(&key, None).unwrap();
    assert_eq!(
        c.consistency,
        Some(enclave_tlog::Consistency::Derived {
            size: 5,
            root: hex::encode(log.root(5).unwrap()),
        })
    );
    assert!(c.to_string().contains("compare with a checkpoint you kept"));
    let mut b = bundle.clone();
    b.consistency.swap(0, 1);
    assert!(
        b.check(&key, None).is_err(),
        "a bad consistency proof fails even untrusted"
    );
    // From a power-of-two size the proof omits the old root: it is reported unchecked.
    let mut b = bundle;
    b.consistency_from = Some(4);
    b.consistency = encode_hashes(&log.consistency_proof(4, 10).unwrap());
    let c = b.check(&key, None).unwrap();
    assert_eq!(
        c.consistency,
        Some(enclave_tlog::Consistency::Unchecked { size: 4 })
    );
    assert!(c.to_string().contains("UNCHECKED"));
}

fn torn_tail_is_repaired_and_uncommitted_entries_recommitted() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path());
    let l = lines(&path);
    // A crash mid-write: complete entries 6..9 without their checkpoint, then half a line.
    let cut = l.len() - 1;
    let mut s = l[..cut].join("\n");
    s.push('\n');
    s.push_str(&l[cut][..30]);
    std::fs::write(&path, &s).unwrap();
    let (log, report) = Log::open(&path, signer()).unwrap();
    assert_eq!(
        (
            report.entries,
            report.torn_bytes_removed,
            report.recommitted
        ),
        (10, 30, 4)
    );
    log.append(draft(10)).unwrap();
    drop(log);
    let s = verify(&path, None).unwrap();
    assert_eq!(s.entries, 11);

    // Damage before the tail is not "repaired": the open fails and names the line.
    let mut l = lines(&path);
    l[3] = "{\"entry\":garbage}".into();
    write(&path, &l);
    let err = Log::open(&path, signer()).err().unwrap();
    assert!(err.to_string().contains("line 4"), "{err}");
}

fn concurrent_appends_are_all_durable_and_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.jsonl");
    let (log, _) = Log::open(&path, signer()).unwrap();
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let log = &log;
            s.spawn(move || {
                for i in 0..100 {
                    log.append(draft(t * 1000 + i)).unwrap();
                }
            });
        }
    });
    assert_eq!(log.size(), 800);
    // A second writer is refused while the first holds the file.
    assert!(matches!(
        Log::open(&path, signer()),
        Err(enclave_tlog::LogError::Locked(_))
    ));
    drop(log);
    let s = verify(&path, None).unwrap();
    assert_eq!(s.entries, 800);
    assert!(s.checkpoints <= 800);
    // Invalid drafts are refused before anything is written.
    let (log, _) = Log::open(&path, signer()).unwrap();
    assert!(log.append(Draft::new("a b", "x", "y")).is_err());
    assert_eq!(log.size(), 800);
}

fn command_line_verifier_reports_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(dir.path());
    let key = signer().verifier().encode();
    let run = |p: &Path| {
        enclave_tests::enclave_audit_cmd()
            .args(["verify", "--json", "--key", &key, "--log"])
            .arg(p)
            .output()
            .unwrap()
    };
    let out = run(&path);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["entries"], 10);
    let mut l = lines(&path);
    l.remove(line_of(&l, 2));
    write(&path, &l);
    let out = run(&path);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["failure"]["kind"], "sequence");
    assert_eq!(v["failure"]["entry"], 2);
    let out = enclave_tests::enclave_audit_cmd()
        .args(["verify", "--key", "not-a-key", "--log"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // check-proof: a good bundle passes (also against an older trusted checkpoint), a bundle
    // for an edited entry fails with exit status 1.
    let path = build(&dir.path().join("p").tap_mkdir());
    let (log, _) = Log::open(&path, signer()).unwrap();
    let old = signer()
        .sign(
            &enclave_tlog::Checkpoint {
                origin: NAME.into(),
                size: 4,
                root: log.root(4).unwrap(),
            }
            .body(),
        )
        .unwrap();
    let bundle = ProofBundle {
        entry: log.entry(7).unwrap(),
        checkpoint: log.latest_checkpoint().unwrap(),
        inclusion: encode_hashes(&log.inclusion_proof(7, 10).unwrap()),
        consistency_from: Some(4),
        consistency: encode_hashes(&log.consistency_proof(4, 10).unwrap()),
    };
    let (bundle_path, old_path) = (dir.path().join("b.json"), dir.path().join("old.txt"));
    std::fs::write(&old_path, &old).unwrap();
    let check = |b: &ProofBundle| {
        std::fs::write(&bundle_path, serde_json::to_string(b).unwrap()).unwrap();
        enclave_tests::enclave_audit_cmd()
            .args(["check-proof", "--json", "--key", &key, "--trusted"])
            .arg(&old_path)
            .arg(&bundle_path)
            .output()
            .unwrap()
    };
    let out = check(&bundle);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["proof"]["consistent_with"], 4);
    let mut bad = bundle;
    bad.entry.action = "job.delete".into();
    let out = check(&bad);
    assert_eq!(out.status.code(), Some(1));
}

/// A writer process killed at a random moment (SIGKILL, no chance to clean up) loses no entry it
/// had acknowledged; the next open repairs whatever it left half-written.
fn acknowledged_entries_survive_a_killed_writer() {
    if let Some(path) = std::env::var_os("ENCLAVE_AUDIT_CHILD_LOG") {
        // Child: append forever, printing each acknowledged sequence number.
        let (log, _) = Log::open(Path::new(&path), signer()).unwrap();
        let mut out = std::io::stdout();
        for i in 0.. {
            let a = log.append_all(vec![draft(i), draft(i)]).unwrap();
            use std::io::Write;
            writeln!(out, "{}", a[1].seq).unwrap();
            out.flush().unwrap();
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.jsonl");
    for round in 0..3u32 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tamper::acknowledged_entries_survive_a_killed_writer",
                "--nocapture",
            ])
            .env("ENCLAVE_AUDIT_CHILD_LOG", &path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acked = None;
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .take(40 + 13 * round as usize)
        {
            if let Ok(n) = line.unwrap().trim().parse::<u64>() {
                acked = Some(n);
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let acked = acked.expect("the child acknowledged entries");
        let (log, _report) = Log::open(&path, signer()).unwrap();
        assert!(
            log.size() > acked,
            "round {round}: entry {acked} was acknowledged but lost"
        );
        drop(log);
        verify(&path, None).unwrap();
    }
}

pub fn tests() -> Vec<libtest_mimic::Trial> {
    crate::trials![
        honest_log_verifies,
        edited_entry_is_named,
        deleted_and_swapped_entries_are_named,
        truncated_log_is_detected,
        forged_checkpoint_is_detected,
        rollback_to_a_rewritten_history_is_detected,
        proof_bundles_check_and_tampered_ones_fail,
        torn_tail_is_repaired_and_uncommitted_entries_recommitted,
        concurrent_appends_are_all_durable_and_group_committed,
        command_line_verifier_reports_and_exits,
        acknowledged_entries_survive_a_killed_writer,
    ]
}
