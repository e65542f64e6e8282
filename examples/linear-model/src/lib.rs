//! Example job `linear-model`: streams row-level data into the guest and fits ordinary least
//! squares there; only the coefficients leave (output `coefficients`, kind model).
//!
//! Parameter `sql` selects the data: every column must be DOUBLE; the last one is the target,
//! the others are features. The default regresses income on age and age² over `residents`.

use std::sync::Arc;

use enclave_guest::arrow_array::{
    Array, ArrayRef, Float64Array, RecordBatch, StringArray, cast::AsArray, types,
};
use enclave_guest::arrow_schema::{DataType, Field, Schema};
use enclave_guest::{OutputKind, Result, emit, param_or, query};
use ols::Ols;

const DEFAULT_SQL: &str = "SELECT CAST(age AS DOUBLE) AS age, CAST(age * age AS DOUBLE) AS age_sq, \
                           CAST(income AS DOUBLE) AS income FROM residents";

fn run() -> Result<()> {
    let sql: String = param_or("sql", DEFAULT_SQL.to_string())?;
    let mut q = query(&sql)?;
    let schema = q.schema().ok_or("query returned no schema")?;
    let width = schema.fields().len();
    if width < 2 {
        return Err("the query must return at least one feature and a target".into());
    }
    if let Some(f) = schema
        .fields()
        .iter()
        .find(|f| f.data_type() != &DataType::Float64)
    {
        return Err(format!(
            "column `{}` is {}, expected DOUBLE",
            f.name(),
            f.data_type()
        )
        .into());
    }
    let mut model = Ols::new(width - 1);
    for batch in q.by_ref() {
        let batch = batch?;
        if batch.columns().iter().any(|c| c.null_count() > 0) {
            return Err("null values are not supported; filter them out in the SQL".into());
        }
        let cols: Vec<&[f64]> = batch
            .columns()
            .iter()
            .map(|c| c.as_primitive::<types::Float64Type>().values().as_ref())
            .collect();
        let (target, features) = cols.split_last().ok_or("empty batch")?;
        model
            .add_columns(features, target)
            .map_err(|e| e.to_string())?;
    }
    let beta = model.solve().map_err(|e| e.to_string())?;
    enclave_guest::log!("linear-model: fitted on {} rows", model.rows());
    let mut terms = vec!["intercept".to_string()];
    terms.extend(
        schema.fields()[..width - 1]
            .iter()
            .map(|f| f.name().clone()),
    );
    let out = Arc::new(Schema::new(vec![
        Field::new("term", DataType::Utf8, false),
        Field::new("coefficient", DataType::Float64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(terms)),
        Arc::new(Float64Array::from(beta)),
    ];
    emit(
        "coefficients",
        OutputKind::Model,
        &[RecordBatch::try_new(out, columns)?],
    )
}

enclave_guest::job!(run);
