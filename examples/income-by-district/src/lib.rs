//! Example job `income-by-district`: per-district count, total and mean income.
//!
//! The host computes the count and the sum with SQL (under the domain policy the sum of an L3
//! column is noised and every group has at least k residents); the guest derives the mean and
//! emits the aggregate output `income_by_district`.
//! Parameter `table` names the residents table (default `residents`).

use std::sync::Arc;

use enclave_guest::arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, cast::AsArray, types,
};
use enclave_guest::arrow_schema::{DataType, Field, Schema};
use enclave_guest::{OutputKind, Result, emit, param_or, query};

fn run() -> Result<()> {
    let table: String = param_or("table", "residents".to_string())?;
    if !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("parameter `table` must be a plain identifier".into());
    }
    // Two statistics the aggregation grammar allows over an L3 column (each noised under the
    // domain policy); the guest derives the mean from them.
    let sql = format!(
        "SELECT district, COUNT(*) AS n, SUM(income) AS s FROM {table} GROUP BY district ORDER BY district"
    );
    let (mut districts, mut counts, mut totals, mut means) = (vec![], vec![], vec![], vec![]);
    for batch in query(&sql)? {
        let batch = batch?;
        let d = batch.column(0);
        let n = batch.column(1).as_primitive::<types::Int64Type>();
        let s = batch.column(2).as_primitive::<types::Int64Type>();
        for i in 0..batch.num_rows() {
            let name = match d.data_type() {
                DataType::Utf8 => d.as_string::<i32>().value(i).to_owned(),
                DataType::Utf8View => d.as_string_view().value(i).to_owned(),
                DataType::LargeUtf8 => d.as_string::<i64>().value(i).to_owned(),
                other => {
                    return Err(
                        format!("district column has type {other}, expected a string").into(),
                    );
                }
            };
            let (count, total) = (n.value(i), s.value(i));
            districts.push(name);
            counts.push(count);
            totals.push(total);
            means.push(((total as f64 / count.max(1) as f64) * 100.0).round() / 100.0);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("district", DataType::Utf8, false),
        Field::new("residents", DataType::Int64, false),
        Field::new("total_income", DataType::Int64, false),
        Field::new("mean_income", DataType::Float64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(districts)),
        Arc::new(Int64Array::from(counts)),
        Arc::new(Int64Array::from(totals)),
        Arc::new(Float64Array::from(means)),
    ];
    let batch = RecordBatch::try_new(schema, columns)?;
    enclave_guest::log!("income-by-district: {} districts", batch.num_rows());
    emit("income_by_district", OutputKind::Aggregate, &[batch])
}

enclave_guest::job!(run);
