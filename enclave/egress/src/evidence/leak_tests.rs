use super::*;
use arrow_array::{Float64Array, Int64Array, StringArray};
use std::sync::Arc;

fn key() -> LeakKey {
    LeakKey::derive(&[7u8; 32])
}

fn strings(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

#[test]
fn normalization_folds_formatting_away() {
    let n = |s: &str| {
        let mut o = String::new();
        normalize(s, &mut o);
        o
    };
    assert_eq!(n("110101-1990 0307 123X"), "11010119900307123x");
    assert_eq!(
        n("１１０１０１１９９００３０７１２３Ｘ"),
        "11010119900307123x"
    );
    assert_eq!(n("138\u{2014}0013\u{200B}8000"), "13800138000");
    assert_eq!(n("（138）0013·8000"), "13800138000");
    assert_eq!(n("张　三"), "张三");
    assert_eq!(n("A.B_C(D)+E/F:G,H"), "abcdefgh");
}

#[test]
fn index_finds_exact_reformatted_and_embedded_values() {
    let mut b = LeakIndexBuilder::new(&key());
    let ids = strings(&[
        "110101199003071234",
        "11010119851120567X",
        "310101200001011111",
    ]);
    let st = b.add_column("residents.resident_id", &[ids]).unwrap();
    assert!(st.indexed);
    assert_eq!(st.distinct, 3);
    let ix = b.finish();
    assert_eq!(
        ix.find("11010119851120567x").unwrap().name,
        "residents.resident_id"
    );
    assert!(ix.find("110101 19851120 567-X").is_some());
    assert!(ix.find("110101199003071235").is_none());

    let col = strings(&["浦东-110101-19900307-1234", "fine label", "another"]);
    let mut s = LeakScanner::new(&[&ix], 1 << 20);
    let h = s.scan_column(0, &[col.as_ref()], false).unwrap().unwrap();
    assert_eq!((h.cells, h.first_row, h.embedded), (1, 0, true));
    assert!(!h.numeric_only);
    // An ID as a number is the same value.
    let n: ArrayRef = Arc::new(Int64Array::from(vec![310101200001011111i64, 5]));
    let h = s.scan_column(1, &[n.as_ref()], true).unwrap().unwrap();
    assert_eq!((h.cells, h.first_row), (1, 0));
    assert!(
        !h.numeric_only,
        "an identifier column's value is not a coincidence"
    );
    // Numeric cells are skipped when asked.
    assert!(s.scan_column(1, &[n.as_ref()], false).unwrap().is_none());
}

#[test]
fn low_cardinality_columns_are_not_indexed_and_short_values_never() {
    let mut b = LeakIndexBuilder::new(&key());
    let sex = strings(&["male", "female", "male", "male", "female", "male"]);
    assert!(!b.add_column("residents.sex", &[sex]).unwrap().indexed);
    let short = strings(&["ab", "cd"]);
    let st = b.add_column("t.short", &[short]).unwrap();
    assert_eq!(st.distinct, 0);
    assert!(!st.indexed);
    assert!(b.finish().is_empty());
}

#[test]
fn numeric_sources_hit_numeric_cells_as_coincidences_and_text_as_leaks() {
    let mut b = LeakIndexBuilder::new(&key());
    let inc: ArrayRef = Arc::new(Float64Array::from(vec![123456.5, 98765.25, 40000.0]));
    assert!(b.add_column("residents.income", &[inc]).unwrap().indexed);
    let ix = b.finish();
    let mut s = LeakScanner::new(&[&ix], 1 << 20);
    let cells: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 98765.25]));
    let h = s.scan_column(0, &[cells.as_ref()], true).unwrap().unwrap();
    assert!(h.numeric_only);
    let text = strings(&["income was 40000"]);
    let h = s.scan_column(0, &[text.as_ref()], true).unwrap();
    // "40000" is shorter than the embedded minimum: not found inside text…
    assert!(h.is_none());
    // …but the exact value as a label is.
    let text = strings(&["40,000"]);
    let h = s.scan_column(0, &[text.as_ref()], true).unwrap().unwrap();
    assert!(!h.numeric_only);
}

#[test]
fn file_form_round_trips_and_refuses_damage_and_other_keys() {
    let mut b = LeakIndexBuilder::new(&key());
    b.add_column("d.c", &[strings(&["alpha-beta-1", "gamma-delta-2"])])
        .unwrap();
    let ix = b.finish();
    let bytes = ix.to_bytes();
    let back = LeakIndex::from_bytes(&key(), &bytes, "x").unwrap();
    assert_eq!(back.sources(), ix.sources());
    assert!(back.find("ALPHA BETA 1").is_some());
    let other = LeakKey::derive(&[8u8; 32]);
    assert!(LeakIndex::from_bytes(&other, &bytes, "x").is_err());
    for at in [0, 9, 45, bytes.len() / 2, bytes.len() - 1] {
        let mut d = bytes.clone();
        d[at] ^= 1;
        assert!(
            LeakIndex::from_bytes(&key(), &d, "x").is_err(),
            "flip at {at}"
        );
    }
    assert!(LeakIndex::from_bytes(&key(), &bytes[..bytes.len() - 5], "x").is_err());
    assert!(LeakIndex::from_bytes(&key(), &[], "x").is_err());
}

#[test]
fn a_scan_over_its_budget_fails_closed() {
    let mut b = LeakIndexBuilder::new(&key());
    b.add_column("d.c", &[strings(&["1234567890", "0987654321"])])
        .unwrap();
    let ix = b.finish();
    let long = "x".repeat(10_000);
    let col = strings(&[&long]);
    let mut s = LeakScanner::new(&[&ix], 100);
    assert!(matches!(
        s.scan_column(0, &[col.as_ref()], false),
        Err(LeakError::TooLarge(_))
    ));
}
