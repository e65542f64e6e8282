use super::*;
use arrow_array::{Array, Int64Array, NullArray, RecordBatchOptions, StringArray};
use arrow_ipc::CompressionType;
use arrow_ipc::writer::IpcWriteOptions;
use arrow_schema::{Field, Schema};

fn batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("district", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["亭湖区", "盐都区"])),
            Arc::new(Int64Array::from(vec![12, 30])),
        ],
    )
    .unwrap()
}

fn encode(b: &RecordBatch) -> Vec<u8> {
    canonical_ipc(&b.schema(), std::slice::from_ref(b)).unwrap()
}

const CELLS: u64 = 1 << 20;

#[test]
fn roundtrip_and_canonical_digest() {
    let b = batch();
    let bytes = encode(&b);
    let out = Output::from_guest("result", OutputKind::Aggregate, &bytes, CELLS).unwrap();
    assert_eq!(out.rows, 2);
    assert_eq!(*out.canonical, bytes);
    assert_eq!(out.digest, Digest::of(&bytes));
    // Same data, different encoding (no EOS marker): same canonical digest.
    let no_eos = &bytes[..bytes.len() - 8];
    let again = Output::from_guest("result", OutputKind::Aggregate, no_eos, CELLS).unwrap();
    assert_eq!(again.digest, out.digest);
}

#[test]
fn refuses_malformed_streams() {
    let bytes = encode(&batch());
    let bad = |b: &[u8]| Output::from_guest("ok", OutputKind::Aggregate, b, CELLS);
    assert!(bad(b"garbage!").is_err());
    assert!(bad(&[]).is_err());
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"hidden");
    assert!(bad(&trailing).is_err());
    assert!(bad(&bytes[..bytes.len() / 2]).is_err());
    // Every single-byte corruption is an error or a valid output, never a panic.
    for i in 0..bytes.len() {
        let mut c = bytes.clone();
        c[i] ^= 0xA5;
        let _ = bad(&c);
    }
}

#[test]
fn refuses_compressed_bodies_and_dictionaries() {
    let b = batch();
    let opts = IpcWriteOptions::default()
        .try_with_compression(Some(CompressionType::LZ4_FRAME))
        .unwrap();
    let mut w = StreamWriter::try_new_with_options(Vec::new(), &b.schema(), opts).unwrap();
    w.write(&b).unwrap();
    w.finish().unwrap();
    let bytes = w.into_inner().unwrap();
    let e = Output::from_guest("ok", OutputKind::Aggregate, &bytes, CELLS).unwrap_err();
    assert!(e.to_string().contains("compressed"), "{e}");

    let dict: arrow_array::DictionaryArray<arrow_array::types::Int32Type> =
        vec!["a", "b", "a"].into_iter().collect();
    let schema = Arc::new(Schema::new(vec![Field::new(
        "d",
        dict.data_type().clone(),
        false,
    )]));
    let b = RecordBatch::try_new(schema, vec![Arc::new(dict)]).unwrap();
    let e = Output::from_guest("ok", OutputKind::Aggregate, &encode(&b), CELLS).unwrap_err();
    assert!(e.to_string().contains("not accepted"), "{e}");
}

#[test]
fn declared_sizes_are_bounded_before_decoding() {
    // A billion null rows cost a few bytes on the wire.
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Null, true)]));
    let b = RecordBatch::try_new(schema, vec![Arc::new(NullArray::new(1 << 30))]).unwrap();
    let bytes = encode(&b);
    assert!(bytes.len() < 1024);
    assert!(matches!(
        Output::from_guest("ok", OutputKind::Aggregate, &bytes, CELLS),
        Err(OutputError::TooLarge { .. })
    ));
    // So do a billion rows of no columns.
    let empty = Arc::new(Schema::empty());
    let b = RecordBatch::try_new_with_options(
        empty,
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1 << 30)),
    )
    .unwrap();
    assert!(matches!(
        Output::from_guest("ok", OutputKind::Aggregate, &encode(&b), CELLS),
        Err(OutputError::TooLarge { .. })
    ));
    // Within the limit they are fine.
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Null, true)]));
    let b = RecordBatch::try_new(schema, vec![Arc::new(NullArray::new(10))]).unwrap();
    assert_eq!(
        Output::from_guest("ok", OutputKind::Aggregate, &encode(&b), CELLS)
            .unwrap()
            .rows,
        10
    );
}

#[test]
fn slack_in_guest_buffers_does_not_reach_the_canonical_form() {
    let secret = "bytes-the-guest-hid-in-a-slice";
    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
    // Arrow's writer trims what it writes; a hostile guest writes the bytes itself: two rows
    // encoded, then the batch's row counts patched to one, so the values buffer goes on past the
    // last offset the batch uses.
    let b = RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(vec!["shown", secret]))],
    )
    .unwrap();
    let bytes = crate::tests::shrink_rows(&encode(&b), 2, 1);
    assert!(bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    let out = Output::from_guest("ok", OutputKind::Report, &bytes, CELLS).unwrap();
    assert_eq!(out.rows, 1);
    assert!(
        !out.canonical
            .windows(secret.len())
            .any(|w| w == secret.as_bytes())
    );
}

#[test]
fn the_collector_refuses_or_ends_the_job() {
    let mut c = Collector::new(4);
    assert!(
        c.output("a", OutputKind::Aggregate, &encode(&batch()))
            .is_ok()
    );
    assert!(matches!(
        c.output("b", OutputKind::Aggregate, b"junk"),
        Err(HostError::Refused {
            code: ErrorCode::BadArgument,
            ..
        })
    ));
    let big = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![1; 5]))],
    )
    .unwrap();
    match c.output("c", OutputKind::Aggregate, &encode(&big)) {
        Err(HostError::Fatal(e)) => assert_eq!(e.limit, Some(Limit::OutputCells)),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.outputs.len(), 1);
}

/// Rewrites every little-endian `from` (as i64) in the record-batch message headers of an IPC
/// stream to `to`: the batch then declares fewer rows than its buffers hold.
pub(crate) fn shrink_rows(bytes: &[u8], from: i64, to: i64) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut pos = 0usize;
    while pos + 8 <= out.len() {
        let mut len = u32::from_le_bytes(out[pos..pos + 4].try_into().unwrap()) as usize;
        let mut head = pos + 4;
        if len == 0xFFFF_FFFF {
            len = u32::from_le_bytes(out[pos + 4..pos + 8].try_into().unwrap()) as usize;
            head = pos + 8;
        }
        if len == 0 {
            break;
        }
        let msg = root_as_message(&out[head..head + len]).unwrap();
        let body = msg.bodyLength() as usize;
        if msg.header_type() == MessageHeader::RecordBatch {
            let (f, t) = (from.to_le_bytes(), to.to_le_bytes());
            let mut i = head;
            while i + 8 <= head + len {
                if out[i..i + 8] == f {
                    out[i..i + 8].copy_from_slice(&t);
                    i += 8;
                } else {
                    i += 1;
                }
            }
        }
        pos = head + len + body;
    }
    out
}
