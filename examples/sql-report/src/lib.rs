//! Example job `sql-report`: runs the SQL given in parameter `sql` and emits its result as the
//! aggregate output `result`; with parameter `sql2`, runs that too and emits it as `result2`
//! (a job that asks two things). The host decides whether the SQL is allowed.

use enclave_guest::{OutputKind, Result, emit_with_schema, param, param_as, query};

fn report(name: &str, sql: &str) -> Result<()> {
    let mut q = query(sql)?;
    let batches = q.by_ref().collect::<Result<Vec<_>>>()?;
    let schema = q.schema().ok_or("query returned no schema")?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    enclave_guest::log!(
        "sql-report: {rows} result rows, {} groups suppressed",
        q.suppressed_groups()
    );
    emit_with_schema(name, OutputKind::Aggregate, &schema, &batches)
}

fn run() -> Result<()> {
    let sql: String = param_as("sql")?;
    report("result", &sql)?;
    if let Some(sql2) = param("sql2") {
        report("result2", &sql2)?;
    }
    Ok(())
}

enclave_guest::job!(run);
