//! A PromQL evaluator for the subset real alerting rules use, over [`Tsdb`].
//!
//! Parsing is done by `promql-parser`; everything after the AST is ours. The semantics follow
//! Prometheus v2 (the reference pipeline runs v2.7.1; the installed `promtool` is 2.42), which matters
//! in three places: range selectors are closed intervals `[t - range, t]`, instant selectors look back
//! 5 minutes inclusively, and `rate`/`increase`/`delta` use v2's `extrapolatedRate` (counter-reset
//! correction, extrapolation to the window edges when the first/last sample is within 1.1× the average
//! sample interval, otherwise by half an interval, and the counter zero-point clamp applied before that
//! threshold test). Prometheus 3 changed the first two and the clamp order.
//!
//! Supported: instant selectors with `=`, `!=`, `=~`, `!~` (anchored) matchers and `offset`, range
//! selectors as function arguments, number and string literals, unary minus, arithmetic
//! (`+ - * / % ^`), comparisons (filtering or `bool`) and `and`/`or`/`unless` between scalars and
//! vectors with one-to-one `on`/`ignoring` matching, the aggregations `sum avg min max count topk
//! bottomk` with `by`/`without`, and the functions listed in [`SUPPORTED_FUNCTIONS`]. Anything else is
//! refused by [`check_supported`] with the construct's name, so rule files using it fail at load.
//!
//! Files: `mod.rs` (the API, the value types and the support check), `eval.rs` (the evaluator:
//! selectors and aggregations), `functions.rs` (function calls, with Prometheus' range-function
//! arithmetic), `binary.rs` (arithmetic, comparison and set operators with vector matching).

mod binary;
mod eval;
mod functions;

use promql_parser::parser::token;
use promql_parser::parser::{VectorMatchCardinality, VectorSelector};

use crate::monitoring::tsdb::{Labels, METRIC_NAME, Tsdb};
use eval::Evaluator;

pub use promql_parser::parser::Expr;

/// How far back an instant selector looks for a series' latest sample (Prometheus' default).
pub const LOOKBACK_DELTA_MS: i64 = 5 * 60 * 1000;

/// Range-vector functions the evaluator implements: the first entries of [`SUPPORTED_FUNCTIONS`].
const RANGE_FUNCTIONS: &[&str] = SUPPORTED_FUNCTIONS.split_at(14).0;

/// Every function the evaluator implements (the 14 range functions first).
pub const SUPPORTED_FUNCTIONS: &[&str] = &[
    "increase",
    "rate",
    "irate",
    "delta",
    "idelta",
    "resets",
    "changes",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "present_over_time",
    "absent",
    "abs",
    "ceil",
    "floor",
    "round",
    "clamp_min",
    "clamp_max",
    "time",
    "vector",
    "scalar",
];

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (without `__name__` where an operation dropped it).
    pub labels: Labels,
    /// The value at the evaluation time.
    pub value: f64,
}

/// The result of evaluating an expression at one instant.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A single number.
    Scalar(f64),
    /// Zero or more labelled samples.
    Vector(Vec<Sample>),
    /// A string literal.
    String(String),
}

/// Why an expression could not be parsed, accepted or evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromqlError {
    /// The text is not valid PromQL.
    #[error("cannot parse PromQL expression `{expr}`: {reason}")]
    Parse {
        /// The expression text.
        expr: String,
        /// The parser's message.
        reason: String,
    },
    /// Valid PromQL that this evaluator does not implement.
    #[error("unsupported PromQL construct: {construct}")]
    Unsupported {
        /// What was found, e.g. "function `histogram_quantile`".
        construct: String,
    },
    /// The expression failed at evaluation time (e.g. ambiguous vector matching).
    #[error("PromQL evaluation failed: {0}")]
    Eval(String),
}

pub(super) fn unsupported(construct: impl Into<String>) -> PromqlError {
    PromqlError::Unsupported { construct: construct.into() }
}

/// Parses PromQL text into an AST (no support check; see [`check_supported`]). promql-parser 0.11 panics on
/// a number used as a duration that does not fit one (`up offset 1e20`, `up[1e999]`, `up offset NaN`, found
/// by `fuzz::promql`): that panic is caught and reported as a parse error.
pub fn parse(expr: &str) -> Result<Expr, PromqlError> {
    std::panic::catch_unwind(|| promql_parser::parser::parse(expr))
        .unwrap_or_else(
            |_| Err("the parser failed on this expression (a duration out of range?)".to_string()),
        )
        .map_err(|reason| PromqlError::Parse { expr: expr.to_string(), reason })
}

/// Refuses any construct the evaluator does not implement, naming it.
pub fn check_supported(expr: &Expr) -> Result<(), PromqlError> {
    check(expr, false)
}

fn check(expr: &Expr, matrix_allowed: bool) -> Result<(), PromqlError> {
    match expr {
        Expr::Aggregate(a) => {
            use token::{T_AVG, T_BOTTOMK, T_COUNT, T_MAX, T_MIN, T_SUM, T_TOPK};
            if !matches!(a.op.id(), T_SUM | T_AVG | T_MIN | T_MAX | T_COUNT | T_TOPK | T_BOTTOMK) {
                return Err(unsupported(format!("aggregation `{}`", a.op)));
            }
            check(&a.expr, false)?;
            a.param.as_deref().map_or(Ok(()), |p| check(p, false))
        }
        Expr::Unary(u) => check(&u.expr, false),
        Expr::Binary(b) => {
            if b.op.id() == token::T_ATAN2 {
                return Err(unsupported("binary operator `atan2`"));
            }
            if let Some(m) = &b.modifier {
                if matches!(
                    m.card,
                    VectorMatchCardinality::ManyToOne(_) | VectorMatchCardinality::OneToMany(_)
                ) {
                    return Err(unsupported("group_left/group_right (many-to-one vector matching)"));
                }
                if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                    return Err(unsupported("fill/fill_left/fill_right modifiers"));
                }
            }
            check(&b.lhs, false)?;
            check(&b.rhs, false)
        }
        Expr::Paren(p) => check(&p.expr, matrix_allowed),
        Expr::Subquery(_) => Err(unsupported("subquery")),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::VectorSelector(vs) => check_selector(vs),
        Expr::MatrixSelector(ms) => {
            if matrix_allowed {
                check_selector(&ms.vs)
            } else {
                Err(unsupported("range vector selector outside the argument of a range function"))
            }
        }
        Expr::Call(c) => {
            let name = c.func.name;
            if !SUPPORTED_FUNCTIONS.contains(&name) {
                return Err(unsupported(format!("function `{name}`")));
            }
            let range = RANGE_FUNCTIONS.contains(&name);
            for (i, arg) in c.args.args.iter().enumerate() {
                check(arg, range && i == 0)?;
            }
            Ok(())
        }
        Expr::Extension(_) => Err(unsupported("extension expression")),
    }
}

fn check_selector(vs: &VectorSelector) -> Result<(), PromqlError> {
    if vs.at.is_some() { Err(unsupported("@ modifier")) } else { Ok(()) }
}

/// Evaluates `expr` at `t_ms` (epoch milliseconds) against `db`.
pub fn eval_instant(expr: &Expr, db: &Tsdb, t_ms: i64) -> Result<Value, PromqlError> {
    check_supported(expr)?;
    Evaluator { db, t: t_ms }.eval(expr)
}

/// Parses and evaluates `expr` at `t_ms`.
pub fn query(expr: &str, db: &Tsdb, t_ms: i64) -> Result<Value, PromqlError> {
    eval_instant(&parse(expr)?, db, t_ms)
}

pub(super) fn drop_name(mut labels: Labels) -> Labels {
    labels.remove(METRIC_NAME);
    labels
}

#[cfg(test)]
mod tests;
