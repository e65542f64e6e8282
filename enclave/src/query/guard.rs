//! The SQL guard: what a job's SQL may be, and what its errors may say.
//!
//! Owns the refusal of every statement that is not a plain query (at the AST and again on the
//! plan) and the classification of DataFusion errors. It must never let an execution error
//! quote data: those are reduced to their category.

use datafusion::common::DataFusionError;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use super::QueryError;

/// Name of a statement's kind, for messages (e.g. `Insert`, `SetVariable`).
fn statement_kind(s: &SqlStatement) -> String {
    let dbg = format!("{s:?}");
    dbg.split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("statement")
        .to_owned()
}

/// Refuses everything that is not a plain query, before planning.
pub(super) fn refuse_non_query(statement: &DfStatement) -> Result<(), QueryError> {
    let what = match statement {
        DfStatement::Statement(s) => match s.as_ref() {
            SqlStatement::Query(_) => return Ok(()),
            other => format!("`{}` statements", statement_kind(other)),
        },
        DfStatement::CreateExternalTable(_) => "`CREATE EXTERNAL TABLE`".to_owned(),
        DfStatement::CopyTo(_) => "`COPY ... TO`".to_owned(),
        DfStatement::Explain(_) => "`EXPLAIN`".to_owned(),
        DfStatement::Reset(_) => "`RESET`".to_owned(),
    };
    Err(QueryError::Refused(format!(
        "{what} are not allowed: jobs may only run queries (SELECT … / WITH …)"
    )))
}

/// Defence in depth: refuses any non-query node anywhere in a plan.
pub(super) fn refuse_non_query_plan(plan: &LogicalPlan) -> Result<(), QueryError> {
    let mut bad: Option<&'static str> = None;
    plan.apply(|p| {
        bad = match p {
            LogicalPlan::Dml(_) => Some("DML"),
            LogicalPlan::Ddl(_) => Some("DDL"),
            LogicalPlan::Copy(_) => Some("COPY"),
            LogicalPlan::Statement(_) => Some("statements"),
            LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) => Some("EXPLAIN"),
            LogicalPlan::DescribeTable(_) => Some("DESCRIBE"),
            LogicalPlan::Extension(_) => Some("extension plans"),
            _ => None,
        };
        Ok(if bad.is_some() {
            datafusion::common::tree_node::TreeNodeRecursion::Stop
        } else {
            datafusion::common::tree_node::TreeNodeRecursion::Continue
        })
    })
    .map_err(|e| QueryError::Internal(e.to_string()))?;
    match bad {
        Some(what) => Err(QueryError::Refused(format!(
            "{what} are not allowed: jobs may only run queries"
        ))),
        None => Ok(()),
    }
}

pub(super) fn root_message(e: &DataFusionError) -> String {
    e.find_root().to_string()
}

/// Errors raised while parsing and planning concern the SQL text and the schema only.
pub(super) fn classify_plan_error(e: DataFusionError) -> QueryError {
    match e.find_root() {
        DataFusionError::ResourcesExhausted(_) => {
            QueryError::Execution("query memory limit reached while planning".into())
        }
        DataFusionError::Internal(m) => QueryError::Internal(m.clone()),
        DataFusionError::NotImplemented(m) => QueryError::Sql(format!("not supported: {m}")),
        root => QueryError::Sql(root.to_string()),
    }
}

/// Errors raised while executing may quote data: keep only their category.
pub fn classify_exec_error(memory_limit: u64) -> impl Fn(DataFusionError) -> QueryError {
    move |e| {
        use datafusion::arrow::error::ArrowError;
        match e.find_root() {
            DataFusionError::ResourcesExhausted(_) => QueryError::Memory { limit: memory_limit },
            DataFusionError::ArrowError(a, _) => QueryError::Execution(match a.as_ref() {
                ArrowError::DivideByZero => "query failed: division by zero".to_owned(),
                ArrowError::ArithmeticOverflow(_) => "query failed: arithmetic overflow (details withheld)".to_owned(),
                ArrowError::CastError(_) => "query failed: a value could not be cast (details withheld)".to_owned(),
                _ => "query failed in an Arrow kernel (details withheld: they may contain data values)".to_owned(),
            }),
            DataFusionError::Plan(m) | DataFusionError::Configuration(m) => QueryError::Sql(m.clone()),
            DataFusionError::NotImplemented(m) => QueryError::Sql(format!("not supported: {m}")),
            DataFusionError::ParquetError(_) | DataFusionError::ObjectStore(_) | DataFusionError::IoError(_) => {
                QueryError::Execution("query failed reading a dataset file (details withheld)".to_owned())
            }
            DataFusionError::Internal(_) => QueryError::Internal("execution failed (details withheld)".to_owned()),
            _ => QueryError::Execution("query failed while executing (details withheld: they may contain data values)".to_owned()),
        }
    }
}
