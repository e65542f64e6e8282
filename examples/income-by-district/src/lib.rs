//! Example job `income-by-district`: per-district count, total and mean income.
//!
//! The host computes every figure with one aggregate query (under the domain policy the sum of an
//! L3 column is noised, every group has at least k residents, and the mean is derived from the
//! noised sum and count after aggregation); the guest emits that result unchanged as the
//! aggregate output `income_by_district`, so egress certifies it as the host's own result (a job
//! that computed figures itself would emit a *derived* output, which a reviewer must examine).
//! Parameter `table` names the residents table (default `residents`).

use enclave_guest::{OutputKind, Result, emit_with_schema, param_or, query};

fn run() -> Result<()> {
    let table: String = param_or("table", "residents".to_string())?;
    if !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("parameter `table` must be a plain identifier".into());
    }
    let sql = format!(
        "SELECT district, COUNT(*) AS residents, SUM(income) AS total_income, \
         ROUND(SUM(income) / COUNT(*), 2) AS mean_income \
         FROM {table} GROUP BY district ORDER BY district"
    );
    let mut q = query(&sql)?;
    let batches = q.by_ref().collect::<Result<Vec<_>>>()?;
    let schema = q.schema().ok_or("query returned no schema")?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    enclave_guest::log!("income-by-district: {rows} districts");
    emit_with_schema(
        "income_by_district",
        OutputKind::Aggregate,
        &schema,
        &batches,
    )
}

enclave_guest::job!(run);
