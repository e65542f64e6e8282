use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{Field, Schema};
use enclave_abi::OutputKind;
use enclave_core::QueryRecord;

use super::leak::{LeakIndex, LeakIndexBuilder, LeakKey};
use super::*;
use crate::Output;

const ID: &str = "110101199003071234";

fn caps() -> Caps {
    Caps {
        max_rows: 1000,
        max_columns: 16,
        max_bytes: 1 << 20,
        model_rows_per_parameter: 10,
        max_label_bytes: 64,
        min_group_size: 10,
        leak_work: 1 << 20,
    }
}

fn index() -> LeakIndex {
    let mut b = LeakIndexBuilder::new(&LeakKey::derive(&[1; 32]));
    let ids: ArrayRef = Arc::new(StringArray::from(vec![
        ID,
        "31010120000101111X",
        "440301198512125678",
    ]));
    b.add_column("residents.resident_id", &[ids]).unwrap();
    b.finish()
}

fn output(kind: OutputKind, cols: Vec<(&str, ArrayRef)>) -> Output {
    let schema = Arc::new(Schema::new(
        cols.iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch =
        RecordBatch::try_new(schema.clone(), cols.into_iter().map(|(_, a)| a).collect()).unwrap();
    Output::new("result", kind, schema, vec![batch]).unwrap()
}

fn aggregate_query(rows: u64, result: Option<Digest>) -> QueryRecord {
    let mut q = QueryRecord::new("SELECT district, COUNT(*) FROM residents GROUP BY district");
    q.aggregate = true;
    q.grouped = true;
    q.rows = rows;
    q.result = result;
    q
}

fn row_query(rows: u64) -> QueryRecord {
    let mut q = QueryRecord::new("SELECT district FROM residents");
    q.rows = rows;
    q
}

fn districts() -> ArrayRef {
    Arc::new(StringArray::from(vec!["a", "b", "c"]))
}

fn one(ev: &[Evidence]) -> &Evidence {
    assert_eq!(ev.len(), 1);
    &ev[0]
}

fn has(e: &Evidence, check: Check, verdict: Verdict) -> bool {
    e.findings
        .iter()
        .any(|f| f.check == check && f.verdict == verdict)
}

fn no_value_in(e: &Evidence) {
    for f in &e.findings {
        assert!(!f.message.contains(ID), "{}", f.message);
        assert!(!f.message.contains("110101"), "{}", f.message);
    }
}

#[test]
fn a_certified_aggregate_passes() {
    let counts: ArrayRef = Arc::new(Int64Array::from(vec![12, 30, 11]));
    let out = output(
        OutputKind::Aggregate,
        vec![("district", districts()), ("n", counts)],
    );
    let q = aggregate_query(3, Some(out.table_digest().unwrap()));
    let ix = index();
    let ev = examine(&[out], &[q], &caps(), &[&ix]);
    let e = one(&ev);
    assert_eq!(e.provenance, Provenance::Certified { query: 0 });
    assert_eq!(e.verdict, Verdict::Pass, "{:?}", e.findings);
    assert_eq!(e.cells_scanned, 3, "text cells only for a certified output");
}

#[test]
fn the_same_figures_rebatched_are_still_certified_but_changed_ones_are_derived() {
    let counts: ArrayRef = Arc::new(Int64Array::from(vec![12, 30, 11]));
    let out = output(
        OutputKind::Aggregate,
        vec![("district", districts()), ("n", counts.clone())],
    );
    let digest = out.table_digest().unwrap();
    let b = &out.batches[0];
    let split = Output::new(
        "result",
        OutputKind::Aggregate,
        out.schema.clone(),
        vec![b.slice(0, 1), b.slice(1, 2)],
    )
    .unwrap();
    assert_eq!(split.table_digest().unwrap(), digest);
    let changed: ArrayRef = Arc::new(Int64Array::from(vec![12, 31, 11]));
    let other = output(
        OutputKind::Aggregate,
        vec![("district", districts()), ("n", changed)],
    );
    let ev = examine(
        &[split, other],
        &[aggregate_query(3, Some(digest))],
        &caps(),
        &[],
    );
    assert!(matches!(ev[0].provenance, Provenance::Certified { .. }));
    assert_eq!(ev[1].provenance, Provenance::Derived);
    assert!(has(&ev[1], Check::Derived, Verdict::Flag));
    // A result of a query over open columns is not certified even when equal: it is open.
    let mut q = row_query(3);
    q.result = Some(digest);
    let ev = examine(
        std::slice::from_ref(&out),
        std::slice::from_ref(&q),
        &caps(),
        &[],
    );
    assert_eq!(ev[0].provenance, Provenance::Open { query: 0 });
    assert!(!has(&ev[0], Check::Derived, Verdict::Flag));
    // Nor is one of a query that read pseudonyms or granted columns (the host keeps no digest
    // of those; one that claims it does is not believed).
    q.row_level_grant = true;
    let ev = examine(&[out], &[q], &caps(), &[]);
    assert_eq!(ev[0].provenance, Provenance::Derived);
}

#[test]
fn raw_rows_are_blocked() {
    let rows: Vec<i64> = (0..500).collect();
    let out = output(
        OutputKind::Aggregate,
        vec![("pseudonym", Arc::new(Int64Array::from(rows)) as ArrayRef)],
    );
    let e = examine(&[out], &[row_query(1000)], &caps(), &[]);
    let e = one(&e);
    assert_eq!(e.verdict, Verdict::Block);
    assert!(has(e, Check::RawRows, Verdict::Block), "{:?}", e.findings);
    // One row per k row-level rows is what a derived output may have.
    let few = output(
        OutputKind::Aggregate,
        vec![(
            "x",
            Arc::new(Int64Array::from((0..100).collect::<Vec<i64>>())) as ArrayRef,
        )],
    );
    let e = examine(&[few], &[row_query(1000)], &caps(), &[]);
    assert!(!has(&e[0], Check::RawRows, Verdict::Block));
}

#[test]
fn a_resident_id_hidden_in_a_label_is_blocked_without_repeating_it() {
    for label in [
        format!("east-{ID}"),
        "east 110101-19900307-1234".to_owned(),
        "东区·110101·19900307·1234".to_owned(),
        "ＥＡＳＴ１１０１０１１９９００３０７１２３４".to_owned(),
    ] {
        let labels: ArrayRef = Arc::new(StringArray::from(vec![
            "west".to_owned(),
            label.clone(),
            "north".to_owned(),
        ]));
        let counts: ArrayRef = Arc::new(Int64Array::from(vec![12, 30, 11]));
        let out = output(
            OutputKind::Aggregate,
            vec![("label", labels), ("n", counts)],
        );
        let q = aggregate_query(3, Some(out.table_digest().unwrap()));
        let ix = index();
        let ev = examine(&[out], &[q], &caps(), &[&ix]);
        let e = one(&ev);
        assert_eq!(e.verdict, Verdict::Block, "{label}: {:?}", e.findings);
        assert!(has(e, Check::Leak, Verdict::Block));
        assert!(e.findings.iter().any(|f| f.message.contains("row 2")));
        no_value_in(e);
    }
}

#[test]
fn a_column_named_after_a_value_is_blocked_and_not_named() {
    let out = output(
        OutputKind::Aggregate,
        vec![(ID, Arc::new(Int64Array::from(vec![1])) as ArrayRef)],
    );
    let ix = index();
    let ev = examine(&[out], &[aggregate_query(1, None)], &caps(), &[&ix]);
    let e = one(&ev);
    assert!(has(e, Check::Leak, Verdict::Block));
    no_value_in(e);
}

#[test]
fn ids_as_numbers_in_a_derived_output_are_blocked() {
    let out = output(
        OutputKind::Aggregate,
        vec![(
            "n",
            Arc::new(Int64Array::from(vec![440301198512125678i64])) as ArrayRef,
        )],
    );
    let ix = index();
    let ev = examine(&[out], &[aggregate_query(1, None)], &caps(), &[&ix]);
    assert!(
        has(one(&ev), Check::Leak, Verdict::Block),
        "{:?}",
        ev[0].findings
    );
}

#[test]
fn a_model_with_a_parameter_per_row_is_blocked() {
    let weights: Vec<f64> = (0..100).map(f64::from).collect();
    let out = output(
        OutputKind::Model,
        vec![("w", Arc::new(Float64Array::from(weights)) as ArrayRef)],
    );
    let ev = examine(&[out], &[row_query(100)], &caps(), &[]);
    let e = one(&ev);
    assert!(has(e, Check::ModelSize, Verdict::Block), "{:?}", e.findings);
    // Ten rows per parameter is enough.
    let small = output(
        OutputKind::Model,
        vec![(
            "w",
            Arc::new(Float64Array::from(vec![0.5, 1.5])) as ArrayRef,
        )],
    );
    let ev = examine(&[small], &[row_query(100)], &caps(), &[]);
    assert!(!has(&ev[0], Check::ModelSize, Verdict::Block));
    assert!(has(&ev[0], Check::FloatBits, Verdict::Flag));
}

#[test]
fn nan_payloads_block_and_plain_nans_do_not() {
    let payload = f64::from_bits(0x7ff8_0000_0000_beef);
    let vals: ArrayRef = Arc::new(Float64Array::from(vec![1.0, payload, f64::NAN]));
    let out = output(OutputKind::Aggregate, vec![("x", vals)]);
    let ev = examine(&[out], &[aggregate_query(3, None)], &caps(), &[]);
    let e = one(&ev);
    assert!(has(e, Check::NanPayload, Verdict::Block));
    assert!(e.findings.iter().any(|f| f.message.contains("1 NaN")));
    let plain: ArrayRef = Arc::new(Float64Array::from(vec![1.0, f64::NAN, -f64::NAN]));
    let out = output(OutputKind::Aggregate, vec![("x", plain)]);
    let ev = examine(&[out], &[aggregate_query(3, None)], &caps(), &[]);
    assert!(!has(&ev[0], Check::NanPayload, Verdict::Block));
}

#[test]
fn random_labels_long_labels_and_unsorted_rows_are_flagged() {
    let labels: ArrayRef = Arc::new(StringArray::from(vec![
        "b".to_owned(),
        "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5".to_owned(),
        "a".repeat(80),
    ]));
    let vals: ArrayRef = Arc::new(Int64Array::from(vec![3, 1, 2]));
    let out = output(OutputKind::Aggregate, vec![("label", labels), ("v", vals)]);
    let ev = examine(&[out], &[aggregate_query(3, None)], &caps(), &[]);
    let e = one(&ev);
    assert_eq!(e.verdict, Verdict::Flag, "{:?}", e.findings);
    let label = |w: &str| {
        e.findings
            .iter()
            .any(|f| f.check == Check::LabelText && f.message.contains(w))
    };
    assert!(label("look random"));
    assert!(label("longer than 64 bytes"));
    assert!(has(e, Check::RowOrder, Verdict::Flag));
    // Sorted on some column: no row-order finding.
    let vals: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
    let out = output(OutputKind::Aggregate, vec![("v", vals)]);
    let ev = examine(&[out], &[aggregate_query(3, None)], &caps(), &[]);
    assert!(!has(&ev[0], Check::RowOrder, Verdict::Flag));
}

#[test]
fn size_caps_block() {
    let wide: Vec<(String, ArrayRef)> = (0..20)
        .map(|i| {
            (
                format!("c{i}"),
                Arc::new(Int64Array::from(vec![1])) as ArrayRef,
            )
        })
        .collect();
    let out = output(
        OutputKind::Aggregate,
        wide.iter().map(|(n, a)| (n.as_str(), a.clone())).collect(),
    );
    let q = aggregate_query(1, Some(out.table_digest().unwrap()));
    let ev = examine(&[out], &[q], &caps(), &[]);
    let e = one(&ev);
    assert!(has(e, Check::Size, Verdict::Block));
    assert!(e.findings.iter().any(|f| f.message.contains("20 columns")));
}

#[test]
fn ids_as_bytes_as_timestamps_and_in_nested_names_are_found() {
    use arrow_array::{BinaryArray, StructArray, TimestampNanosecondArray};
    let ix = index();
    // Bytes.
    let bytes: ArrayRef = Arc::new(BinaryArray::from(vec![ID.as_bytes()]));
    let out = output(OutputKind::Aggregate, vec![("b", bytes)]);
    let ev = examine(&[out], &[aggregate_query(1, None)], &caps(), &[&ix]);
    assert!(
        has(&ev[0], Check::Leak, Verdict::Block),
        "{:?}",
        ev[0].findings
    );
    assert!(has(&ev[0], Check::LabelText, Verdict::Flag));
    // A timestamp whose integer is an ID.
    let ts: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![440301198512125678i64]));
    let out = output(OutputKind::Aggregate, vec![("t", ts)]);
    let ev = examine(&[out], &[aggregate_query(1, None)], &caps(), &[&ix]);
    assert!(
        has(&ev[0], Check::Leak, Verdict::Block),
        "{:?}",
        ev[0].findings
    );
    // A struct field named after an ID.
    let inner: ArrayRef = Arc::new(Int64Array::from(vec![1]));
    let st: ArrayRef = Arc::new(StructArray::from(vec![(
        Arc::new(Field::new(ID, arrow_schema::DataType::Int64, true)),
        inner,
    )]));
    let out = output(OutputKind::Aggregate, vec![("s", st)]);
    let ev = examine(&[out], &[aggregate_query(1, None)], &caps(), &[&ix]);
    assert!(
        ev[0]
            .findings
            .iter()
            .any(|f| f.check == Check::Leak && f.message.contains("nested")),
        "{:?}",
        ev[0].findings
    );
    no_value_in(&ev[0]);
}
