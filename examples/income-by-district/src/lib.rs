//! Example job `income-by-district`: per-district count, mean and standard deviation of income.
//!
//! The host computes the sufficient statistics (count, Σx, Σx², exact decimals) with SQL; the guest turns them
//! into mean and standard deviation and emits the aggregate output `income_by_district`.
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
    let sql = format!(
        "SELECT district, COUNT(*) AS n, SUM(CAST(income AS DECIMAL(38, 0))) AS s, \
         SUM(CAST(income AS DECIMAL(38, 0)) * CAST(income AS DECIMAL(38, 0))) AS ss \
         FROM {table} GROUP BY district ORDER BY district"
    );
    let (mut districts, mut counts, mut means, mut sds) = (vec![], vec![], vec![], vec![]);
    for batch in query(&sql)? {
        let batch = batch?;
        let d = batch.column(0);
        let n = batch.column(1).as_primitive::<types::Int64Type>();
        // Exact decimal sums: the result does not depend on the order rows were added in.
        let s = batch.column(2).as_primitive::<types::Decimal128Type>();
        let ss = batch.column(3).as_primitive::<types::Decimal128Type>();
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
            let count = n.value(i);
            let (sum, sum_sq, n128) = (s.value(i), ss.value(i), i128::from(count));
            let mean = sum as f64 / count as f64;
            // n·Σx² − (Σx)² exactly in i128, then one division: no cancellation error.
            let var = match (n128.checked_mul(sum_sq), sum.checked_mul(sum)) {
                (Some(a), Some(b)) if count > 1 => {
                    (a - b) as f64 / (count as f64 * (count - 1) as f64)
                }
                _ => 0.0,
            };
            districts.push(name);
            counts.push(count);
            means.push((mean * 100.0).round() / 100.0);
            sds.push((var.sqrt() * 100.0).round() / 100.0);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("district", DataType::Utf8, false),
        Field::new("residents", DataType::Int64, false),
        Field::new("mean_income", DataType::Float64, false),
        Field::new("stddev_income", DataType::Float64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(districts)),
        Arc::new(Int64Array::from(counts)),
        Arc::new(Float64Array::from(means)),
        Arc::new(Float64Array::from(sds)),
    ];
    let batch = RecordBatch::try_new(schema, columns)?;
    enclave_guest::log!("income-by-district: {} districts", batch.num_rows());
    emit("income_by_district", OutputKind::Aggregate, &[batch])
}

enclave_guest::job!(run);
