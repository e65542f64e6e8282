//! The wire form of Arrow data: plain types and compact buffers.
//!
//! Owns the rule that a batch crossing the domain boundary — a query result streamed into a
//! guest, an output re-encoded by the host — holds exactly its rows: dictionaries, run-end
//! encodings and view types are decoded to plain types, and any column whose buffers hold bytes
//! beyond its rows (a slice, an oversized buffer, offsets that do not start at zero or end before
//! the values do) is copied compactly. Arrow's IPC writer sends a sliced string column's whole
//! values buffer; without this, values of rows a filter removed would travel with the result. It
//! must never pass a buffer with bytes beyond its rows.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow_cast::cast;
use arrow_data::ArrayData;
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Fields, Schema, SchemaRef};
use arrow_select::take::take;

/// The type a column has on the wire: dictionaries, run-end encodings and view types decoded to
/// plain types, recursively.
pub fn wire_type(dt: &DataType) -> DataType {
    let field = |f: &FieldRef| -> FieldRef {
        Arc::new(Field::new(
            f.name(),
            wire_type(f.data_type()),
            f.is_nullable(),
        ))
    };
    match dt {
        DataType::Dictionary(_, v) => wire_type(v),
        DataType::RunEndEncoded(_, v) => wire_type(v.data_type()),
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::ListView(f) | DataType::List(f) => DataType::List(field(f)),
        DataType::LargeListView(f) | DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(field).collect::<Fields>()),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        other => other.clone(),
    }
}

/// The schema batches have on the wire.
pub fn wire_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), wire_type(f.data_type()), f.is_nullable()))
            .collect::<Vec<_>>(),
    ))
}

/// Whether `data`'s buffers hold bytes beyond its rows (a slice, an oversized buffer, offsets
/// that do not start at zero or end before the values do), here or in a child.
fn has_slack(data: &ArrayData) -> bool {
    let len = data.len();
    if data.offset() != 0 {
        return true;
    }
    if let Some(n) = data.nulls()
        && (n.offset() != 0 || n.buffer().len() > len.div_ceil(8))
    {
        return true;
    }
    let offsets_slack = |width: usize, values_len: usize| -> bool {
        let Some(b) = data.buffers().first() else {
            return true;
        };
        if b.len() != (len + 1) * width {
            return true;
        }
        let at = |i: usize| -> usize {
            let s = &b.as_slice()[i * width..(i + 1) * width];
            if width == 4 {
                i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize
            } else {
                i64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]) as usize
            }
        };
        at(0) != 0 || at(len) != values_len
    };
    let slack = match data.data_type() {
        DataType::Utf8 | DataType::Binary => {
            offsets_slack(4, data.buffers().get(1).map_or(0, |b| b.len()))
        }
        DataType::LargeUtf8 | DataType::LargeBinary => {
            offsets_slack(8, data.buffers().get(1).map_or(0, |b| b.len()))
        }
        DataType::List(_) | DataType::Map(..) => {
            offsets_slack(4, data.child_data().first().map_or(0, |c| c.len()))
        }
        DataType::LargeList(_) => {
            offsets_slack(8, data.child_data().first().map_or(0, |c| c.len()))
        }
        DataType::FixedSizeList(_, n) => {
            data.child_data().first().map_or(0, |c| c.len()) != len * (*n).max(0) as usize
        }
        DataType::Struct(_) => data.child_data().iter().any(|c| c.len() != len),
        DataType::Boolean => data
            .buffers()
            .first()
            .is_none_or(|b| b.len() > len.div_ceil(8)),
        dt => match dt.primitive_width() {
            Some(w) => data.buffers().first().is_none_or(|b| b.len() > len * w),
            None => false,
        },
    };
    slack || data.child_data().iter().any(has_slack)
}

/// `column` in its wire type, with buffers holding exactly its rows.
fn wire_column(column: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    let typed = if column.data_type() == to {
        Arc::clone(column)
    } else {
        cast(column, to)?
    };
    if has_slack(&typed.to_data()) {
        let n = u32::try_from(typed.len())
            .map_err(|_| ArrowError::ComputeError("batch too long".into()))?;
        let indices = UInt32Array::from_iter_values(0..n);
        return take(&typed, &indices, None);
    }
    Ok(typed)
}

/// `batch` in the wire schema `to`: plain types and compact buffers.
pub fn compact_batch(batch: &RecordBatch, to: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(to.fields())
        .map(|(c, f)| wire_column(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        Arc::clone(to),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::types::Int32Type;
    use arrow_array::{DictionaryArray, Int32Array};
    use arrow_ipc::writer::StreamWriter;

    fn ipc(b: &RecordBatch) -> Vec<u8> {
        let mut w = StreamWriter::try_new(Vec::new(), &b.schema()).unwrap();
        w.write(b).unwrap();
        w.finish().unwrap();
        w.into_inner().unwrap()
    }

    #[test]
    fn sliced_and_dictionary_columns_carry_only_their_rows() {
        let secret = "hidden-value-of-a-filtered-row";
        let dict: DictionaryArray<Int32Type> = vec!["kept", secret]
            .into_iter()
            .collect::<DictionaryArray<_>>();
        let dict = dict.slice(0, 1);
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8View, false),
            Field::new("d", dict.data_type().clone(), false),
            Field::new("n", DataType::Int32, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(arrow_array::StringViewArray::from(vec!["kept", secret]).slice(0, 1)),
                Arc::new(DictionaryArray::<Int32Type>::from(dict.to_data())),
                Arc::new(Int32Array::from(vec![1, 2]).slice(0, 1)),
            ],
        )
        .unwrap();
        let raw = ipc(&batch);
        assert!(
            raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the premise: arrow's writer sends bytes of rows outside a sliced view or dictionary"
        );
        let wire = wire_schema(&schema);
        assert_eq!(wire.field(0).data_type(), &DataType::Utf8);
        assert_eq!(wire.field(1).data_type(), &DataType::Utf8);
        let compact = compact_batch(&batch, &wire).unwrap();
        let bytes = ipc(&compact);
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
        assert_eq!(compact.num_rows(), 1);
        // A batch that is already compact is passed through without copying.
        let plain = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, false)])),
            vec![Arc::new(Int32Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let again = compact_batch(&plain, &plain.schema()).unwrap();
        assert!(Arc::ptr_eq(plain.column(0), again.column(0)));
    }
}
