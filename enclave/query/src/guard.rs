//! The SQL guard: what a job's SQL may be, and what its errors may say.
//!
//! Owns the refusal of every statement that is not a plain query (at the AST and again on the
//! plan), the complexity bound on SQL text (before any tree is built: planning, checking and
//! execution all recurse over expression trees) and the classification of DataFusion errors.
//! It must never let an execution error quote data: those are reduced to their category.

use datafusion::common::DataFusionError;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::QueryError;

/// The complexity of a SQL text, from its tokens alone: every operator and operator keyword
/// (`AND`, `OR`, `NOT`, `LIKE`, `IS`, `IN`, `BETWEEN`, `CASE`, `WHEN`, …) counts one, plus the
/// deepest nesting of parentheses. A chain of N operators makes an expression tree N deep however
/// short its text, and every later stage walks such trees recursively; bounding this number
/// bounds their depth. Literal lists (`IN (1, 2, …)`) cost nothing.
pub fn sql_complexity(sql: &str) -> Result<u64, QueryError> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| QueryError::Sql(format!("cannot tokenize the SQL text: {}", e.message)))?;
    let (mut depth, mut max_depth, mut ops) = (0u64, 0u64, 0u64);
    for t in &tokens {
        match t {
            Token::LParen | Token::LBracket => {
                depth += 1;
                max_depth = max_depth.max(depth);
            }
            Token::RParen | Token::RBracket => depth = depth.saturating_sub(1),
            Token::Word(w) => {
                if matches!(
                    w.keyword,
                    Keyword::AND
                        | Keyword::OR
                        | Keyword::NOT
                        | Keyword::XOR
                        | Keyword::LIKE
                        | Keyword::ILIKE
                        | Keyword::SIMILAR
                        | Keyword::IS
                        | Keyword::IN
                        | Keyword::BETWEEN
                        | Keyword::CASE
                        | Keyword::WHEN
                        | Keyword::UNION
                        | Keyword::INTERSECT
                        | Keyword::EXCEPT
                        | Keyword::JOIN
                        | Keyword::SELECT
                ) {
                    ops += 1;
                }
            }
            Token::EOF
            | Token::Whitespace(_)
            | Token::Comma
            | Token::Period
            | Token::SemiColon
            | Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_) => {}
            _ => ops += 1,
        }
    }
    Ok(ops.saturating_add(max_depth))
}

/// Name of a statement's kind, for messages (e.g. `Insert`, `SetVariable`).
fn statement_kind(s: &SqlStatement) -> String {
    let dbg = format!("{s:?}");
    dbg.split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("statement")
        .to_owned()
}

/// Functions whose second argument is a regular expression.
const REGEX_FUNCTIONS: &[&str] = &[
    "regexp_like",
    "regexp_match",
    "regexp_replace",
    "regexp_count",
    "regexp_instr",
];

/// Compiles every literal regular expression of `plan` the way the engine will (same size
/// limit), so that an invalid or pathological pattern is the query author's error at planning,
/// not a failure deep in execution.
pub(super) fn check_regex_literals(plan: &LogicalPlan) -> Result<(), QueryError> {
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::{Expr, Operator};
    let literal = |e: &Expr| -> Option<String> {
        match e {
            Expr::Literal(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)),
                _,
            ) => Some(s.clone()),
            _ => None,
        }
    };
    let mut bad = None;
    let _ = plan.apply_with_subqueries(|p| {
        p.apply_expressions(|e| {
            e.apply(|x| {
                let pattern = match x {
                    Expr::ScalarFunction(f) if REGEX_FUNCTIONS.contains(&f.func.name()) => {
                        f.args.get(1).and_then(literal)
                    }
                    Expr::BinaryExpr(b)
                        if matches!(
                            b.op,
                            Operator::RegexMatch
                                | Operator::RegexIMatch
                                | Operator::RegexNotMatch
                                | Operator::RegexNotIMatch
                        ) =>
                    {
                        literal(&b.right)
                    }
                    _ => None,
                };
                if let Some(p) = pattern
                    && regex::Regex::new(&p).is_err()
                {
                    bad = Some(());
                    return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
                }
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })
        })
    });
    match bad {
        Some(()) => Err(QueryError::Sql(
            "a regular expression in the query does not compile (invalid, or larger than the engine allows)"
                .into(),
        )),
        None => Ok(()),
    }
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

/// Errors raised while parsing and planning concern the SQL text and the schema only (and the
/// memory of constant expressions folded while planning).
pub(super) fn classify_plan_error(memory_limit: u64) -> impl Fn(DataFusionError) -> QueryError {
    move |e| classify_plan_error_inner(memory_limit, e)
}

fn classify_plan_error_inner(memory_limit: u64, e: DataFusionError) -> QueryError {
    match e.find_root() {
        DataFusionError::ResourcesExhausted(_) => QueryError::Memory {
            limit: memory_limit,
        },
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
            // Patterns computed from data compile only while executing; DataFusion reports their
            // failure as internal. It is the query's, not the host's.
            DataFusionError::Internal(m) if m.contains("Regular expression did not compile") => {
                QueryError::Execution("query failed: a regular expression does not compile (invalid or too large; details withheld)".to_owned())
            }
            DataFusionError::Internal(_) => QueryError::Internal("execution failed (details withheld)".to_owned()),
            _ => QueryError::Execution("query failed while executing (details withheld: they may contain data values)".to_owned()),
        }
    }
}
