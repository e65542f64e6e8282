//! The scalar functions a job's SQL may call.
//!
//! Owns the job's function registry, DataFusion's defaults with three changes: functions that
//! reveal the host or break replay are absent (`version`, `random`, `uuid`, `input_file_name`,
//! `file_row_index`); `now()`, `current_date` and `current_time` return the job's logical clock,
//! the same in a replay; and functions whose result can be far larger than their arguments
//! (`repeat`, `lpad`, `range`, `array_repeat`, `replace`, …) first reserve an upper bound of their
//! result from the job's query memory pool, so a query that would allocate gigabytes in one call
//! ends with the query memory limit instead. It must never register a function that reads the
//! world outside the job's datasets.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef, TimeUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};

/// Functions a job may not call at all.
const ABSENT: &[&str] = &[
    // The host's build.
    "version",
    // Real randomness (jobs have the seeded `enclave_v1.random`).
    "random",
    "uuid",
    // Host paths and file layout.
    "input_file_name",
    "file_row_index",
];

/// How the result size of an amplifying function is bounded, from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: |s| · n.
    Repeat,
    /// `lpad(s, n [, fill])`, `rpad`: 4 · n per row, plus |s|.
    Pad,
    /// `replace(s, from, to)`: |s| · max(1, |to|).
    Replace,
    /// `regexp_replace(s, pattern, replacement [, flags])`: (|s| + rows) · max(1, |replacement|).
    RegexpReplace,
    /// `array_repeat(x, n)`: (|x| + 16 per row) · n.
    ArrayRepeat,
    /// `array_resize(a, n [, v])`: 16 · n per row, plus |a|.
    ArrayResize,
    /// `range(a, b [, step])`, `generate_series`: 8 bytes per element, integer bounds only.
    Range,
    /// `string_to_array(s, delimiter [, null])`: 16 · (|s| + rows).
    StringToArray,
    /// `array_to_string(a, delimiter [, null])`: |a| · (8 · |delimiter| + 4).
    ArrayToString,
}

fn growth(name: &str) -> Option<Growth> {
    Some(match name {
        "repeat" => Growth::Repeat,
        "lpad" | "rpad" => Growth::Pad,
        "replace" => Growth::Replace,
        "regexp_replace" => Growth::RegexpReplace,
        "array_repeat" => Growth::ArrayRepeat,
        "array_resize" => Growth::ArrayResize,
        "range" | "generate_series" => Growth::Range,
        "string_to_array" => Growth::StringToArray,
        "array_to_string" => Growth::ArrayToString,
        _ => return None,
    })
}

/// The registry for a job whose logical clock is `clock_ms`, with amplifying functions drawing
/// on `pool`.
pub(crate) fn scalar_functions(clock_ms: i64, pool: Arc<dyn MemoryPool>) -> Vec<Arc<ScalarUDF>> {
    let mut out: Vec<Arc<ScalarUDF>> = Vec::new();
    for f in datafusion::execution::SessionStateDefaults::default_scalar_functions() {
        let name = f.name().to_owned();
        if ABSENT.contains(&name.as_str()) || Clock::kind(&name).is_some() {
            continue;
        }
        match growth(&name) {
            Some(g) => out.push(Arc::new(ScalarUDF::new_from_impl(Bounded {
                inner: f,
                growth: g,
                pool: PoolRef(Arc::clone(&pool)),
            }))),
            None => out.push(f),
        }
    }
    for kind in [ClockKind::Now, ClockKind::Date, ClockKind::Time] {
        out.push(Arc::new(ScalarUDF::new_from_impl(Clock::new(
            kind, clock_ms,
        ))));
    }
    out
}

/// The memory pool, compared by identity (UDFs must be `Eq` and `Hash`).
#[derive(Clone)]
struct PoolRef(Arc<dyn MemoryPool>);

impl std::fmt::Debug for PoolRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PoolRef")
    }
}
impl PartialEq for PoolRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for PoolRef {}
impl std::hash::Hash for PoolRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as *const () as usize).hash(state);
    }
}

/// An amplifying function that reserves an upper bound of its result before it runs.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
    pool: PoolRef,
}

/// Bytes of the values of `v` (an upper bound of what it holds), for `rows` rows.
fn value_bytes(v: &ColumnarValue, rows: usize) -> u64 {
    match v {
        ColumnarValue::Array(a) => a.get_array_memory_size() as u64,
        ColumnarValue::Scalar(s) => (s.size() as u64).saturating_mul(rows as u64),
    }
}

/// The longest string among the values of `v` (0 when it is not a string).
fn max_len(v: &ColumnarValue) -> u64 {
    let longest = |a: &dyn Array| -> u64 {
        match cast(a, &DataType::LargeUtf8) {
            Ok(s) => s
                .as_string::<i64>()
                .iter()
                .map(|x| x.map_or(0, str::len) as u64)
                .max()
                .unwrap_or(0),
            Err(_) => 0,
        }
    };
    match v {
        ColumnarValue::Array(a) => longest(a.as_ref()),
        ColumnarValue::Scalar(s) => match s.to_array() {
            Ok(a) => longest(a.as_ref()),
            Err(_) => 0,
        },
    }
}

/// Integer values of `v` (`None` for nulls), or `None` when `v` is not an integer.
fn ints(v: &ColumnarValue, rows: usize) -> Option<Vec<Option<i64>>> {
    let a = v.to_array(rows).ok()?;
    if !a.data_type().is_integer() {
        return None;
    }
    let a = cast(&a, &DataType::Int64).ok()?;
    Some(
        a.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .iter()
            .collect(),
    )
}

/// The largest non-negative integer among the values of `v` (0 when there is none).
fn max_int(v: &ColumnarValue, rows: usize) -> u64 {
    match v {
        ColumnarValue::Scalar(s) => match s {
            ScalarValue::Int8(Some(n)) => (*n).max(0) as u64,
            ScalarValue::Int16(Some(n)) => (*n).max(0) as u64,
            ScalarValue::Int32(Some(n)) => (*n).max(0) as u64,
            ScalarValue::Int64(Some(n)) => (*n).max(0) as u64,
            ScalarValue::UInt8(Some(n)) => u64::from(*n),
            ScalarValue::UInt16(Some(n)) => u64::from(*n),
            ScalarValue::UInt32(Some(n)) => u64::from(*n),
            ScalarValue::UInt64(Some(n)) => *n,
            _ => 0,
        },
        ColumnarValue::Array(_) => ints(v, rows)
            .into_iter()
            .flatten()
            .flatten()
            .map(|n| n.max(0) as u64)
            .max()
            .unwrap_or(0),
    }
}

impl Bounded {
    /// An upper bound of the result's bytes, or an error when it cannot be bounded.
    fn bound(&self, args: &[ColumnarValue], rows: usize) -> Result<u64> {
        let arg = |i: usize| args.get(i);
        let rows64 = rows as u64;
        let bytes = |i: usize| arg(i).map_or(0, |a| value_bytes(a, rows));
        let len = |i: usize| arg(i).map_or(0, max_len);
        let int = |i: usize| arg(i).map_or(0, |a| max_int(a, rows));
        Ok(match self.growth {
            Growth::Repeat => bytes(0).saturating_mul(int(1)),
            Growth::Pad => rows64.saturating_mul(int(1)).saturating_mul(4) + bytes(0),
            Growth::Replace => bytes(0).saturating_mul(len(2).max(1)),
            Growth::RegexpReplace => (bytes(0) + rows64).saturating_mul(len(2).max(1)),
            Growth::ArrayRepeat => (bytes(0) + 16 * rows64).saturating_mul(int(1)),
            Growth::ArrayResize => rows64.saturating_mul(int(1)).saturating_mul(16) + bytes(0),
            Growth::StringToArray => (bytes(0) + rows64).saturating_mul(16),
            Growth::ArrayToString => bytes(0).saturating_mul(len(1).saturating_mul(8) + 4),
            Growth::Range => {
                let refuse = || {
                    DataFusionError::Plan(format!(
                        "{} over dates or timestamps is not available to jobs; use integer bounds",
                        self.inner.name()
                    ))
                };
                let cols: Vec<Vec<Option<i64>>> = args
                    .iter()
                    .map(|a| ints(a, rows).ok_or_else(refuse))
                    .collect::<Result<_>>()?;
                let mut total = 0u64;
                for r in 0..rows {
                    let v = |i: usize| cols.get(i).and_then(|c| c.get(r).copied().flatten());
                    let (start, stop, step) = match cols.len() {
                        1 => (Some(0), v(0), Some(1)),
                        2 => (v(0), v(1), Some(1)),
                        _ => (v(0), v(1), v(2)),
                    };
                    if let (Some(a), Some(b), Some(s)) = (start, stop, step)
                        && s != 0
                    {
                        let span = (i128::from(b) - i128::from(a)).unsigned_abs();
                        let n = span / i128::from(s).unsigned_abs() + 1;
                        total = total.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
                    }
                }
                total.saturating_mul(8)
            }
        })
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }
    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bound = self.bound(&args.args, args.number_rows)?;
        let reservation = MemoryConsumer::new(format!("result of {}()", self.inner.name()))
            .register(&self.pool.0);
        reservation
            .try_grow(usize::try_from(bound).unwrap_or(usize::MAX))
            .map_err(|_| {
                DataFusionError::ResourcesExhausted(format!(
                    "{}() would need up to {bound} bytes for its result",
                    self.inner.name()
                ))
            })?;
        let out = self.inner.invoke_with_args(args);
        drop(reservation);
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClockKind {
    Now,
    Date,
    Time,
}

/// `now()` (`current_timestamp`), `current_date` (`today`), `current_time`: the job's logical
/// clock, fixed at submission and recorded, so a replay sees the same time.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Clock {
    kind: ClockKind,
    clock_ms: i64,
    aliases: Vec<String>,
    signature: Signature,
}

const DAY_MS: i64 = 86_400_000;

impl Clock {
    fn kind(name: &str) -> Option<ClockKind> {
        match name {
            "now" => Some(ClockKind::Now),
            "current_date" => Some(ClockKind::Date),
            "current_time" => Some(ClockKind::Time),
            _ => None,
        }
    }

    fn new(kind: ClockKind, clock_ms: i64) -> Clock {
        let aliases = match kind {
            ClockKind::Now => vec!["current_timestamp".to_owned()],
            ClockKind::Date => vec!["today".to_owned()],
            ClockKind::Time => vec![],
        };
        Clock {
            kind,
            clock_ms,
            aliases,
            signature: Signature::nullary(Volatility::Immutable),
        }
    }

    fn value(&self) -> ScalarValue {
        match self.kind {
            ClockKind::Now => {
                ScalarValue::TimestampNanosecond(self.clock_ms.checked_mul(1_000_000), None)
            }
            ClockKind::Date => {
                ScalarValue::Date32(i32::try_from(self.clock_ms.div_euclid(DAY_MS)).ok())
            }
            ClockKind::Time => {
                ScalarValue::Time64Nanosecond(Some(self.clock_ms.rem_euclid(DAY_MS) * 1_000_000))
            }
        }
    }
}

impl ScalarUDFImpl for Clock {
    fn name(&self) -> &str {
        match self.kind {
            ClockKind::Now => "now",
            ClockKind::Date => "current_date",
            ClockKind::Time => "current_time",
        }
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            ClockKind::Now => DataType::Timestamp(TimeUnit::Nanosecond, None),
            ClockKind::Date => DataType::Date32,
            ClockKind::Time => DataType::Time64(TimeUnit::Nanosecond),
        })
    }
    fn simplify(&self, _args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        Ok(ExprSimplifyResult::Simplified(Expr::Literal(
            self.value(),
            None,
        )))
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    fn registry() -> Vec<Arc<ScalarUDF>> {
        scalar_functions(
            86_400_000 + 3_600_000,
            Arc::new(GreedyMemoryPool::new(1 << 20)),
        )
    }

    #[test]
    fn host_facts_and_real_randomness_are_absent() {
        let names: Vec<String> = registry().iter().map(|f| f.name().to_owned()).collect();
        for absent in ABSENT {
            assert!(!names.iter().any(|n| n == absent), "{absent}");
        }
        for present in [
            "now",
            "current_date",
            "current_time",
            "repeat",
            "abs",
            "lower",
        ] {
            assert!(names.iter().any(|n| n == present), "{present}");
        }
    }

    #[test]
    fn the_clock_is_the_jobs() {
        let c = Clock::new(ClockKind::Date, 86_400_000 + 3_600_000);
        assert_eq!(c.value(), ScalarValue::Date32(Some(1)));
        let c = Clock::new(ClockKind::Time, 86_400_000 + 3_600_000);
        assert_eq!(
            c.value(),
            ScalarValue::Time64Nanosecond(Some(3_600_000_000_000))
        );
        let c = Clock::new(ClockKind::Now, 1_000);
        assert_eq!(
            c.value(),
            ScalarValue::TimestampNanosecond(Some(1_000_000_000), None)
        );
    }
}
