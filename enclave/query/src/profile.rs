//! Profiling a dataset for the operator: how identifying the columns a policy exposes are.
//!
//! Owns [`uniqueness`]: over one Parquet file, the number of subjects (distinct values of the
//! subject column, or rows without one) and how many of them are alone in their class — the
//! only subject with their combination of the given columns (k-anonymity: a class of size 1).
//! Used by `enclave policy check`; never reachable from a job (it runs in a session of its own,
//! outside any policy, and returns counts only, never a value).

use datafusion::arrow::array::{Array, Int64Array};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use crate::QueryError;

/// Subjects and unique subjects of a combination of columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Uniqueness {
    /// Subjects (or rows).
    pub subjects: u64,
    /// Subjects who are the only one with their combination.
    pub unique: u64,
    /// The smallest class (k of k-anonymity); 0 for an empty file.
    pub min_class: u64,
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

async fn count(ctx: &SessionContext, sql: &str) -> Result<u64, QueryError> {
    let internal = |e: datafusion::error::DataFusionError| QueryError::Internal(e.to_string());
    let batches = ctx
        .sql(sql)
        .await
        .map_err(internal)?
        .collect()
        .await
        .map_err(internal)?;
    let v = batches
        .first()
        .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>().cloned())
        .filter(|a| !a.is_empty() && a.is_valid(0))
        .map_or(0, |a| a.value(0));
    Ok(u64::try_from(v).unwrap_or(0))
}

/// Uniqueness of the combination `columns` in `path`, counting distinct `subject` values (rows
/// when `None`). No columns: everyone is in one class.
pub async fn uniqueness(
    path: &std::path::Path,
    columns: &[String],
    subject: Option<&str>,
) -> Result<Uniqueness, QueryError> {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(false));
    let p = path
        .to_str()
        .ok_or_else(|| QueryError::Input(format!("{} is not a UTF-8 path", path.display())))?;
    ctx.register_parquet("t", p, ParquetReadOptions::default().file_extension(""))
        .await
        .map_err(|e| QueryError::Input(format!("{}: {e}", path.display())))?;
    let who = subject.map_or("1".to_owned(), |s| format!("COUNT(DISTINCT {})", ident(s)));
    let total = match subject {
        Some(s) => format!("SELECT COUNT(DISTINCT {}) FROM t", ident(s)),
        None => "SELECT COUNT(*) FROM t".to_owned(),
    };
    let subjects = count(&ctx, &total).await?;
    if columns.is_empty() {
        return Ok(Uniqueness {
            subjects,
            unique: u64::from(subjects == 1),
            min_class: subjects,
        });
    }
    let keys = columns
        .iter()
        .map(|c| ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let per = match subject {
        Some(_) => who.clone(),
        None => "COUNT(*)".to_owned(),
    };
    let classes = format!("SELECT {per} AS n FROM t GROUP BY {keys}");
    // A subject is unique when some class holds it alone (a subject with several rows may be
    // alone in one class and not in another): its class's smallest and largest subject agree.
    let unique = match subject {
        Some(s) => {
            let s = ident(s);
            let sql = format!(
                "SELECT COUNT(DISTINCT {s}) FROM (SELECT {s}, MIN({s}) OVER (PARTITION BY {keys}) AS lo, \
                 MAX({s}) OVER (PARTITION BY {keys}) AS hi FROM t) WHERE lo = hi"
            );
            count(&ctx, &sql).await?
        }
        None => {
            count(
                &ctx,
                &format!("SELECT COUNT(*) FROM ({classes}) WHERE n = 1"),
            )
            .await?
        }
    };
    let min_class = count(&ctx, &format!("SELECT MIN(n) FROM ({classes})")).await?;
    Ok(Uniqueness {
        subjects,
        unique,
        min_class,
    })
}
