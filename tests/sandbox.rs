//! The sandbox beyond the hostile-module suite: the compiled-module cache, whose artifacts are
//! native code and load only with this host's tag; queries that never yield stop with their job.

use enclave_core::{EngineLimits, JobId, Limits, Params, Seed};
use enclave_egress::Collector;
use enclave_sandbox::{DiskCache, JobInputs, Sandbox};
use enclave_tests::*;
use libtest_mimic::Trial;

struct NoQueries;

impl enclave_core::QueryHost for NoQueries {
    fn open(
        &mut self,
        _: &enclave_core::CallCtx,
        _: i32,
        _: &str,
    ) -> Result<(), enclave_core::HostError> {
        Err(enclave_core::HostError::Fatal(
            enclave_core::JobError::internal("no queries in this test"),
        ))
    }
    fn next(
        &mut self,
        _: &enclave_core::CallCtx,
        _: i32,
    ) -> Result<enclave_core::Message, enclave_core::HostError> {
        unreachable!()
    }
    fn suppressed(
        &mut self,
        _: &enclave_core::CallCtx,
        _: i32,
    ) -> Result<i64, enclave_core::HostError> {
        unreachable!()
    }
    fn close(&mut self, _: i32) {}
    fn records(&self) -> Vec<enclave_core::QueryRecord> {
        vec![]
    }
}

fn run_ok(sb: &Sandbox, module: &[u8]) {
    let p = sb.prepare(module).expect("admitted");
    let inputs = JobInputs {
        job: JobId([7; 8]),
        params: Params::default(),
        seed: Seed([0; 32]),
        clock_ms: 0,
        limits: Limits::default(),
    };
    let f = sb
        .run(&p, inputs, NoQueries, Collector::new(1 << 20))
        .unwrap_or_else(|r| panic!("{:?}", r.result));
    assert!(f.report.result.is_ok(), "{:?}", f.report.result);
}

fn artifacts(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn cached_modules_load_only_with_this_hosts_tag() {
    let dir = tempfile::tempdir().unwrap();
    let m = wat_file("lib/ok.wat");
    let cache = |key: [u8; 32]| {
        Sandbox::new(
            EngineLimits::default(),
            Some(DiskCache {
                dir: dir.path().to_path_buf(),
                key,
            }),
        )
        .unwrap()
    };
    run_ok(&cache([1; 32]), &m);
    let files = artifacts(dir.path());
    assert_eq!(files.len(), 2, "artifact and tag: {files:?}");
    let artifact = files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .unwrap()
        .clone();
    let tag = artifact.with_extension("tag");
    let original = std::fs::read(&artifact).unwrap();

    // An attacker replaces the artifact (native code) and rewrites a plain checksum beside it:
    // without this host's key the tag cannot be forged, so the artifact is ignored and the module
    // compiled again (and the job still runs).
    let mut evil = original.clone();
    let n = evil.len();
    evil[n / 2] ^= 0xff;
    std::fs::write(&artifact, &evil).unwrap();
    std::fs::write(&tag, blake3::hash(&evil).as_bytes()).unwrap();
    run_ok(&cache([1; 32]), &m);
    assert_eq!(
        std::fs::read(&artifact).unwrap(),
        original,
        "the forged artifact was replaced by a fresh compile"
    );
    // A tag made under another host's key does not verify under this one: its artifact is
    // ignored too (the other host's own cache works for it).
    let other = tempfile::tempdir().unwrap();
    let sb = Sandbox::new(
        EngineLimits::default(),
        Some(DiskCache {
            dir: other.path().to_path_buf(),
            key: [2; 32],
        }),
    )
    .unwrap();
    run_ok(&sb, &m);
    let theirs = artifacts(other.path());
    let their_tag = theirs
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "tag"))
        .unwrap();
    assert_ne!(
        std::fs::read(their_tag).unwrap(),
        std::fs::read(&tag).unwrap()
    );
}

fn the_job_clock_and_random_stream_are_the_manifests() {
    // Two runs of the same job: the same random bytes and clock reach the guest; the outputs
    // are bit-identical (the passthrough module draws both before querying).
    let t = residents(500);
    let job = Job::new(wat_file("lib/passthrough.wat"))
        .table("residents", &t)
        .param("sql", "SELECT COUNT(*) AS n FROM residents");
    let (a, b) = (job.run(), job.run());
    assert!(a.result.is_ok(), "{:?}", a.result);
    assert_eq!(a.outputs[0].digest, b.outputs[0].digest);
    assert_eq!(
        a.run.as_ref().unwrap().fuel_used,
        b.run.as_ref().unwrap().fuel_used
    );
}

/// A query that never yields to the runtime (an aggregate over a 4-way cross join) stops when its
/// job ends: after more such jobs than the shared query runtime has workers, a normal query job
/// of the same process still runs, well within its wall clock.
fn queries_that_never_yield_stop_with_their_job() {
    let table = residents(2000);
    let sql = "SELECT COUNT(*) AS n, MAX(a.name || b.name || c.name || d.name) AS m \
               FROM residents a, residents b, residents c, residents d";
    let hostile: Vec<_> = (0..3)
        .map(|_| {
            let mut j = Job::new(example_bytes("sql-report"))
                .table("residents", table.clone())
                .param("sql", sql);
            j.limits.wall_clock_ms = 1_500;
            std::thread::spawn(move || j.run())
        })
        .collect();
    for t in hostile {
        let r = t.join().expect("job thread");
        assert_eq!(
            err(&r).kind,
            enclave_core::ErrorKind::LimitExceeded,
            "{:?}",
            r.result
        );
    }
    let mut normal = Job::new(example_bytes("sql-report"))
        .table("residents", table)
        .param(
            "sql",
            "SELECT district, COUNT(*) AS n FROM residents GROUP BY district",
        );
    normal.limits.wall_clock_ms = 10_000;
    let r = normal.run();
    assert!(
        r.result.is_ok(),
        "the query runtime is still busy with the ended jobs' queries: {:?}",
        r.result
    );
}

pub fn tests() -> Vec<Trial> {
    crate::trials![
        queries_that_never_yield_stop_with_their_job,
        cached_modules_load_only_with_this_hosts_tag,
        the_job_clock_and_random_stream_are_the_manifests
    ]
}
