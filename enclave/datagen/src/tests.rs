use super::*;
use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int32Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::HashSet;

fn read(path: &Path) -> Vec<RecordBatch> {
    let f = File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

#[test]
fn check_digit_known_answers() {
    // Examples published with GB 11643-1999.
    assert_eq!(resident_id_check_digit("11010519491231002"), Some('X'));
    assert_eq!(resident_id_check_digit("44052418800101001"), Some('4'));
    assert!(is_valid_resident_id("11010519491231002X"));
    assert!(!is_valid_resident_id("110105194912310021"));
    assert!(!is_valid_resident_id("11010519491231002"));
    assert_eq!(resident_id_check_digit("1101051949123100a"), None);
}

#[test]
fn civil_dates() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(REFERENCE_DAY), (2026, 1, 1));
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
}

#[test]
fn residents_are_valid_unique_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a.parquet"),
        dir.path().join("b.parquet"),
        dir.path().join("c.parquet"),
    );
    assert_eq!(generate("residents", 5000, 7, 0, &a, |_| {}).unwrap(), 5000);
    generate("residents", 5000, 7, 0, &b, |_| {}).unwrap();
    generate("residents", 5000, 8, 0, &c, |_| {}).unwrap();
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "same seed, same bytes"
    );
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
    let batches = read(&a);
    let mut ids = HashSet::new();
    let districts: HashSet<&str> = yancheng::DISTRICTS.iter().map(|d| d.name).collect();
    let mut rows = 0;
    for batch in &batches {
        let id = batch.column(0).as_string::<i32>();
        let birth = batch.column(3).as_primitive::<Date32Type>();
        let age = batch.column(4).as_primitive::<Int32Type>();
        let phone = batch.column(6).as_string::<i32>();
        let district = batch.column(7).as_string::<i32>();
        for i in 0..batch.num_rows() {
            let rid = id.value(i);
            assert!(is_valid_resident_id(rid), "{rid}");
            assert!(ids.insert(rid.to_owned()), "duplicate ID");
            let (y, m, d) = civil_from_days(birth.value(i));
            assert_eq!(&rid[6..14], format!("{y:04}{m:02}{d:02}"));
            assert!((0..=110).contains(&age.value(i)));
            assert_eq!(phone.value(i).len(), 11);
            assert!(phone.value(i).starts_with('1'));
            assert!(districts.contains(district.value(i)));
            let code: u32 = rid[..6].parse().unwrap();
            let dd = yancheng::DISTRICTS.iter().find(|d| d.code == code).unwrap();
            assert_eq!(dd.name, district.value(i));
        }
        rows += batch.num_rows();
    }
    assert_eq!(rows, 5000);
}

#[test]
fn visits_reference_generated_residents() {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("v.parquet");
    generate("hospital_visits", 3000, 11, 500, &v, |_| {}).unwrap();
    let mut people = residents::Residents::new(11);
    let ids: HashSet<String> = (0..500).map(|_| people.next_person().resident_id).collect();
    for batch in read(&v) {
        let rid = batch.column(1).as_string::<i32>();
        for i in 0..batch.num_rows() {
            assert!(ids.contains(rid.value(i)));
        }
    }
}

#[test]
fn traffic_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.parquet");
    assert_eq!(
        generate("traffic_records", 1000, 1, 0, &t, |_| {}).unwrap(),
        1000
    );
    let batches = read(&t);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1000);
    assert!(
        batches[0].column(9).null_count() > 0,
        "most records have no violation"
    );
    assert!(matches!(
        generate("nope", 10, 1, 0, &t, |_| {}),
        Err(DatagenError::UnknownTable(_))
    ));
    assert!(matches!(
        generate("residents", 0, 1, 0, &t, |_| {}),
        Err(DatagenError::Rows)
    ));
    let missing = dir.path().join("no/such/dir/x.parquet");
    assert!(matches!(
        generate("residents", 10, 1, 0, &missing, |_| {}),
        Err(DatagenError::Io { .. })
    ));
}
