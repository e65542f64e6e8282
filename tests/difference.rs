//! The difference check across releases: a cell a job's query shows may not differ from a cell
//! released to the entity before, or shown to the same job, by fewer than k subjects — the same
//! aggregate with and without one person, a total minus the visible groups. Jobs run through the
//! runtime on a table made for it; the released cells of one job are what the next is compared
//! with, as the domain's worker passes them. Cells of the same definition, and cells of close
//! counts but other subjects, still show.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use enclave_egress::difference::Cells;
use enclave_egress::evidence::{Check, Verdict};
use enclave_runtime::{Domain, JobReport, PolicySource};
use enclave_tests::*;
use libtest_mimic::Trial;

/// k = 10, no noise: every count is exact.
fn policy() -> PolicySource {
    PolicySource::Text {
        name: "difference".into(),
        text: POLICY.into(),
    }
}

/// The same with `district` open (plaintext): its counts are anybody's.
fn open_district() -> PolicySource {
    PolicySource::Text {
        name: "difference, district open".into(),
        text: POLICY.replace("district = \"L2\"", "district = \"L1\""),
    }
}

const POLICY: &str = r#"version = 1
[threshold]
min_group_size = 10
[dp]
require = []
[levels]
L1 = ["plaintext"]
L2 = ["group_by", "aggregate", "join"]
L4 = ["denied"]
[datasets.people]
subject = "person_id"
[datasets.people.columns]
person_id = { level = "L4", uses = ["pseudonym", "join"] }
district = "L2"
sex = "L2"
age = "L2"
"#;

/// district-0: 20 F (one of them 99 years old, the only one), 15 M, 5 X — 40 people;
/// district-1: 39 other people (a count close to district-0's, no one in common);
/// district-2: 20 F (one of them 99), 20 M.
fn people(dir: &Path) -> PathBuf {
    let mut rows: Vec<(String, String, i64)> = Vec::new();
    for (sex, n) in [("F", 20), ("M", 15), ("X", 5)] {
        for i in 0..n {
            let age = if sex == "F" && i == 0 { 99 } else { 20 + i };
            rows.push(("district-0".into(), sex.into(), age));
        }
    }
    for i in 0..39 {
        rows.push((
            "district-1".into(),
            if i % 2 == 0 { "F" } else { "M" }.into(),
            30 + i,
        ));
    }
    for (sex, n) in [("F", 20), ("M", 20)] {
        for i in 0..n {
            let age = if sex == "F" && i == 0 { 99 } else { 20 + i };
            rows.push(("district-2".into(), sex.into(), age));
        }
    }
    people_table(dir, &rows, "age", 4)
}

/// A domain with the table; `release` runs a job and releases its cells to the next.
struct World {
    _dir: tempfile::TempDir,
    domain: Domain,
    file: PathBuf,
    released: Cells,
    policy: PolicySource,
}

impl World {
    fn new() -> World {
        World::under(policy())
    }

    fn under(policy: PolicySource) -> World {
        let (dir, domain) = temp_domain();
        let file = people(dir.path());
        World {
            _dir: dir,
            domain,
            file,
            released: Cells::new(),
            policy,
        }
    }

    /// Runs `sql` (and `sql2` in the same job) against what was released so far.
    fn run(&self, sql: &str, sql2: Option<&str>) -> JobReport {
        let r = self.try_run(sql, sql2);
        assert!(r.result.is_ok(), "{sql}: {:?}", r.result);
        r
    }

    /// [`World::run`], whatever its result.
    fn try_run(&self, sql: &str, sql2: Option<&str>) -> JobReport {
        let mut j = Job::new(example_bytes("sql-report"))
            .table("people", &self.file)
            .param("sql", sql);
        if let Some(s) = sql2 {
            j = j.param("sql2", s);
        }
        j.policy = self.policy.clone();
        let mut s = j.submission();
        s.released = Arc::new(self.released.clone());
        self.domain
            .authorize(self.domain.submit(s).unwrap())
            .and_then(|a| self.domain.run(a, engine()))
            .unwrap()
    }

    /// The job's outputs are released: its cells — computed by re-deriving it, as at a first
    /// release — join those compared with.
    fn release(&mut self, r: &JobReport) {
        let (cells, rep) =
            enclave_runtime::replay::release_cells(&self.domain, engine(), r.manifest.job).unwrap();
        assert!(rep.identical, "{:?}", rep.first_difference);
        // Through their encoding, as the domain keeps them.
        self.released
            .extend(Cells::decode(&cells.encode()).unwrap());
    }
}

/// The counts an output shows (its last column), in order.
fn counts(r: &JobReport, output: usize) -> Vec<i64> {
    let mut out = Vec::new();
    for b in &r.outputs[output].batches {
        let c = b.column(b.num_columns() - 1);
        let c = datafusion::arrow::compute::cast(c, &DataType::Int64).unwrap();
        let c = c.as_primitive::<Int64Type>();
        out.extend((0..c.len()).map(|i| c.value(i)));
    }
    out
}

fn flagged(r: &JobReport) -> bool {
    r.evidence.iter().all(|e| {
        e.findings
            .iter()
            .any(|f| f.check == Check::Difference && f.verdict == Verdict::Flag)
    })
}

fn differenced(r: &JobReport) -> u64 {
    r.queries.iter().map(|q| q.differenced_groups).sum()
}

const ALL: &str = "SELECT COUNT(age) AS n FROM people WHERE district = 'district-0'";
const ALL_BUT_ONE: &str =
    "SELECT COUNT(age) AS n FROM people WHERE district = 'district-0' AND age < 99";
const BY_SEX: &str = "SELECT sex, COUNT(age) AS n FROM people WHERE district = 'district-0' \
                      GROUP BY sex ORDER BY sex";

fn a_differencing_pair_across_releases_is_suppressed_and_flagged() {
    let mut w = World::new();
    let first = w.run(ALL, None);
    assert_eq!(counts(&first, 0), vec![40]);
    assert!(!flagged(&first));
    w.release(&first);
    // The same aggregate without the one 99-year-old: 39 people, one fewer than released.
    let second = w.run(ALL_BUT_ONE, None);
    assert_eq!(counts(&second, 0), Vec::<i64>::new(), "suppressed");
    assert_eq!(differenced(&second), 1);
    assert!(flagged(&second), "{:?}", second.evidence);
    let e = &second.evidence[0];
    assert!(
        e.findings
            .iter()
            .any(|f| f.check == Check::Difference && f.message.contains("fewer than")),
        "the reason is in the evidence: {e:?}"
    );
    // The same cell again shows (nothing new), and so does a cell of a close count made of
    // other people (its subjects were compared, not only its count).
    let again = w.run(ALL, None);
    assert_eq!(counts(&again, 0), vec![40]);
    assert_eq!(differenced(&again), 0);
    let other = w.run(
        "SELECT COUNT(age) AS n FROM people WHERE district = 'district-1'",
        None,
    );
    assert_eq!(counts(&other, 0), vec![39]);
    assert!(!flagged(&other));
}

fn a_differencing_pair_within_one_job_is_suppressed() {
    let w = World::new();
    let r = w.run(ALL, Some(ALL_BUT_ONE));
    assert_eq!(counts(&r, 0), vec![40]);
    assert_eq!(counts(&r, 1), Vec::<i64>::new());
    assert!(flagged(&r));
}

fn a_total_minus_the_visible_groups_is_suppressed() {
    // The groups a query hides hold 5 people (X): the district's total (open columns may give
    // it) minus F and M would be them. The smaller shown group goes too (secondary suppression).
    let w = World::new();
    let groups = w.run(BY_SEX, None);
    assert_eq!(counts(&groups, 0), vec![20]);
    assert_eq!(differenced(&groups), 1);
    assert!(flagged(&groups));

    // district-2 by sex without its 99-year-old shows F 19 and M 20, hiding no group; but their
    // union is the released total (40) but one: the smaller group goes.
    let by_sex = "SELECT sex, COUNT(age) AS n FROM people WHERE district = 'district-2' \
                  AND age < 99 GROUP BY sex ORDER BY sex";
    let total = "SELECT COUNT(age) AS n FROM people WHERE district = 'district-2'";
    let mut w = World::new();
    let t = w.run(total, None);
    assert_eq!(counts(&t, 0), vec![40]);
    w.release(&t);
    let g = w.run(by_sex, None);
    assert_eq!(counts(&g, 0), vec![20], "only M shows");
    assert_eq!(differenced(&g), 1);
    assert!(flagged(&g));

    // The groups first: the total is one more than their union, though no single group is close
    // to it; it is suppressed.
    let mut w = World::new();
    let g = w.run(by_sex, None);
    assert_eq!(counts(&g, 0), vec![19, 20]);
    assert!(!flagged(&g));
    w.release(&g);
    let t = w.run(total, None);
    assert_eq!(counts(&t, 0), Vec::<i64>::new());
    assert!(flagged(&t));
}

fn a_cell_a_few_short_of_its_open_total_is_suppressed() {
    // With `district` open, anybody counts a district's people (a query over open columns only,
    // or the rows themselves): a restricted count that leaves out one of them gives that one
    // away, whether or not anything was released.
    let w = World::under(open_district());
    let open = w.run(
        "SELECT COUNT(*) AS n FROM people WHERE district = 'district-0'",
        None,
    );
    assert_eq!(counts(&open, 0), vec![40]);
    assert!(!open.queries[0].aggregate, "not a restricted query");
    let r = w.run(ALL_BUT_ONE, None);
    assert_eq!(counts(&r, 0), Vec::<i64>::new());
    assert!(flagged(&r));
    // Grouped by the open column: the districts where the condition leaves out 1 to 9 people
    // are suppressed (district-0 and district-2 lose their 99-year-old), not district-1.
    let g = w.run(
        "SELECT district, COUNT(age) AS n FROM people WHERE age < 99 GROUP BY district \
         ORDER BY district",
        None,
    );
    assert_eq!(counts(&g, 0), vec![39]);
    assert_eq!(differenced(&g), 2);
    // Joined to itself on the subject (no rows change), the open condition on one side and the
    // restricted one on the other: the same cell, suppressed the same.
    let joined = w.run(
        "SELECT COUNT(b.age) AS n FROM people a JOIN people b ON a.person_id = b.person_id \
         WHERE a.district = 'district-0' AND b.age < 99",
        None,
    );
    assert_eq!(counts(&joined, 0), Vec::<i64>::new());
    assert!(flagged(&joined));
    // The open condition hidden under a NOT or an OR beside a restricted one is refused.
    for sql in [
        "SELECT COUNT(age) AS n FROM people WHERE NOT (district <> 'district-0' OR age >= 99)",
        "SELECT COUNT(age) AS n FROM people WHERE (district = 'district-0' OR age < -1) \
         AND age < 99",
    ] {
        let r = w.try_run(sql, None);
        let e = r.result.as_ref().expect_err(sql);
        assert!(
            e.message.contains("mixes open and restricted"),
            "{sql}: {e:?}"
        );
    }
    // A group the WHERE removes whole is hidden as much as one under the threshold: district-0
    // without its 5 X shows F (20) and M (15), whose sum is the open total but 5; M goes too.
    let groups = w.run(
        "SELECT sex, COUNT(age) AS n FROM people WHERE district = 'district-0' AND sex <> 'X' \
         GROUP BY sex ORDER BY sex",
        None,
    );
    assert_eq!(counts(&groups, 0), vec![20]);
    assert_eq!(differenced(&groups), 1);
    // A condition that leaves out at least k people shows (district-0 under 30: 24 of 40).
    let young = w.run(
        "SELECT COUNT(age) AS n FROM people WHERE district = 'district-0' AND age < 30",
        None,
    );
    assert_eq!(counts(&young, 0), vec![24]);
    assert!(!flagged(&young));
}

/// Visits: 40 people with a visit in each of two districts, 15 more in district-0 only and 15
/// in district-1 only, under a policy that noises cost: each subject keeps a keyed choice of one
/// district, so one cell counts its 15 own people only, not the 40 who chose the other.
fn capped_cells_have_the_subjects_they_count() {
    let (dir, domain) = temp_domain();
    let mut rows: Vec<(String, &str)> = Vec::new();
    for i in 0..40 {
        rows.push((format!("p{i:04}"), "district-0"));
        rows.push((format!("p{i:04}"), "district-1"));
    }
    for i in 40..55 {
        rows.push((format!("p{i:04}"), "district-0"));
    }
    for i in 55..70 {
        rows.push((format!("p{i:04}"), "district-1"));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("person_id", DataType::Utf8, false),
        Field::new("district", DataType::Utf8, false),
        Field::new("cost", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(vec![100i64; rows.len()])),
        ],
    )
    .unwrap();
    let path = write_parquet(dir.path(), "visits", &batch);
    let mut j = Job::new(example_bytes("sql-report"))
        .table("visits", &path)
        .param(
            "sql",
            "SELECT district, COUNT(*) AS n, SUM(cost) AS total FROM visits GROUP BY district \
         ORDER BY district",
        );
    j.policy = PolicySource::Text {
        name: "visits".into(),
        text: r#"version = 1
[threshold]
min_group_size = 10
[dp]
require = ["L3"]
epsilon = 1.0
max_groups_per_subject = 1
max_rows_per_subject = 1
[dp.budget]
epsilon = 100.0
delta = 1e-5
[levels]
L1 = ["plaintext"]
L2 = ["group_by", "aggregate", "join"]
L3 = ["aggregate"]
L4 = ["denied"]
[datasets.visits]
subject = "person_id"
[datasets.visits.columns]
person_id = { level = "L4", uses = ["pseudonym", "join"] }
district = "L2"
cost = { level = "L3", bounds = [0, 1000] }
"#
        .into(),
    };
    let r = j.run_in(&domain).unwrap();
    assert!(r.result.is_ok(), "{:?}", r.result);
    assert!(r.queries[0].dp.is_some());
    // Each person chose one of their two districts: the cells' counts add up to the 40 people.
    let mut shown = counts_of(&r, 1);
    shown.sort_unstable();
    assert_eq!(shown, vec![15, 55], "one district keeps only its own 15");
    let (cells, rep) =
        enclave_runtime::replay::release_cells(&domain, engine(), r.manifest.job).unwrap();
    assert!(rep.identical, "{:?}", rep.first_difference);
    // Every cell's set holds exactly the subjects it counts (the chosen ones), no more.
    let mut exact: Vec<(u64, u64)> = cells
        .cells()
        .iter()
        .filter(|c| c.count.lo == c.count.hi)
        .map(|c| (c.count.lo, c.set.len()))
        .collect();
    exact.sort_unstable();
    assert_eq!(exact, vec![(15, 15), (55, 55)]);
}

/// The values of column `col` (a count) of the first output.
fn counts_of(r: &JobReport, col: usize) -> Vec<i64> {
    let mut out = Vec::new();
    for b in &r.outputs[0].batches {
        let c = datafusion::arrow::compute::cast(b.column(col), &DataType::Int64).unwrap();
        let c = c.as_primitive::<Int64Type>();
        out.extend((0..c.len()).map(|i| c.value(i)));
    }
    out
}

fn decisions_replay_and_rederive() {
    // Re-derivation suppresses what the job suppressed, from its transcript: the cells it was
    // compared with are not the auditor's to hold.
    let mut w = World::new();
    let first = w.run(ALL, None);
    w.release(&first);
    let second = w.run(ALL_BUT_ONE, Some(BY_SEX));
    // The pair's cell, and the smaller group whose union with the other came close to it.
    assert_eq!(differenced(&second), 2);
    assert_eq!(counts(&second, 1), vec![20]);
    let rep =
        enclave_runtime::replay::replay(&w.domain, engine(), second.manifest.job, true).unwrap();
    assert!(rep.identical, "{:?}", rep.first_difference);
    let checks = rep.rederived.unwrap();
    assert_eq!(checks.len(), 2);
    assert!(checks.iter().all(|c| c.status == "same"), "{checks:?}");
}

pub fn tests() -> Vec<Trial> {
    crate::trials![
        a_differencing_pair_across_releases_is_suppressed_and_flagged,
        a_differencing_pair_within_one_job_is_suppressed,
        a_total_minus_the_visible_groups_is_suppressed,
        a_cell_a_few_short_of_its_open_total_is_suppressed,
        capped_cells_have_the_subjects_they_count,
        decisions_replay_and_rederive
    ]
}
