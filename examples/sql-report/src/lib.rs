//! Example job `sql-report`: runs the SQL given in parameter `sql` and emits its result as the
//! aggregate output `result`. The host decides whether the SQL is allowed.

use enclave_guest::{OutputKind, Result, emit_with_schema, param_as, query};

fn run() -> Result<()> {
    let sql: String = param_as("sql")?;
    let mut q = query(&sql)?;
    let batches = q.by_ref().collect::<Result<Vec<_>>>()?;
    let schema = q.schema().ok_or("query returned no schema")?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    enclave_guest::log!(
        "sql-report: {rows} result rows, {} groups suppressed",
        q.suppressed_groups()
    );
    emit_with_schema("result", OutputKind::Aggregate, &schema, &batches)
}

enclave_guest::job!(run);
