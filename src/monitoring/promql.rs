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

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::token;
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Call, LabelModifier, MatrixSelector, Offset, VectorMatchCardinality,
    VectorSelector,
};

use crate::monitoring::tsdb::{Labels, METRIC_NAME, Point, Tsdb, format_labels, is_stale_nan};

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

fn unsupported(construct: impl Into<String>) -> PromqlError {
    PromqlError::Unsupported { construct: construct.into() }
}

/// Parses PromQL text into an AST (no support check; see [`check_supported`]).
pub fn parse(expr: &str) -> Result<Expr, PromqlError> {
    promql_parser::parser::parse(expr).map_err(|reason| PromqlError::Parse { expr: expr.to_string(), reason })
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

struct Evaluator<'a> {
    db: &'a Tsdb,
    t: i64,
}

impl Evaluator<'_> {
    fn eval(&self, expr: &Expr) -> Result<Value, PromqlError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.select_instant(vs))),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(samples) => unique(
                    samples
                        .into_iter()
                        .map(|s| Sample { labels: drop_name(s.labels), value: -s.value })
                        .collect(),
                ),
                Value::String(_) => Err(PromqlError::Eval("unary minus applied to a string".into())),
            },
            Expr::Binary(b) => self.eval_binary(b),
            Expr::Aggregate(a) => self.eval_aggregate(a),
            Expr::Call(c) => self.eval_call(c),
            Expr::MatrixSelector(_) => {
                Err(unsupported("range vector selector outside the argument of a range function"))
            }
            Expr::Subquery(_) => Err(unsupported("subquery")),
            Expr::Extension(_) => Err(unsupported("extension expression")),
        }
    }

    fn eval_vector(&self, expr: &Expr) -> Result<Vec<Sample>, PromqlError> {
        match self.eval(expr)? {
            Value::Vector(v) => Ok(v),
            other => Err(PromqlError::Eval(format!("expected an instant vector, got {}", type_name(&other)))),
        }
    }

    fn eval_scalar(&self, expr: &Expr) -> Result<f64, PromqlError> {
        match self.eval(expr)? {
            Value::Scalar(v) => Ok(v),
            other => Err(PromqlError::Eval(format!("expected a scalar, got {}", type_name(&other)))),
        }
    }

    /// Series the selector matches, with their samples.
    fn candidates<'s>(
        &'s self,
        vs: &'s VectorSelector,
    ) -> impl Iterator<Item = (&'s Labels, &'s [Point])> + 's {
        let name = vs.name.as_deref().or_else(|| {
            vs.matchers
                .matchers
                .iter()
                .find(|m| m.name == METRIC_NAME && matches!(m.op, MatchOp::Equal))
                .map(|m| m.value.as_str())
        });
        let series: Box<dyn Iterator<Item = (&Labels, &[Point])>> = match name {
            Some(name) => Box::new(self.db.series_named(name)),
            None => Box::new(self.db.all_series()),
        };
        series.filter(move |(labels, _)| selector_matches(vs, labels))
    }

    fn select_instant(&self, vs: &VectorSelector) -> Vec<Sample> {
        let at = self.t - offset_ms(vs.offset.as_ref());
        self.candidates(vs)
            .filter_map(|(labels, points)| {
                let idx = points.partition_point(|p| p.t <= at);
                let latest = points.get(idx.checked_sub(1)?)?;
                (latest.t >= at - LOOKBACK_DELTA_MS && !is_stale_nan(latest.v))
                    .then(|| Sample { labels: labels.clone(), value: latest.v })
            })
            .collect()
    }

    /// The non-stale samples of each matching series within `[end - range, end]`, plus the window.
    fn select_range(&self, ms: &MatrixSelector) -> (Vec<(Labels, Vec<Point>)>, Window) {
        let end = self.t - offset_ms(ms.vs.offset.as_ref());
        let range = i64::try_from(ms.range.as_millis()).unwrap_or(i64::MAX);
        let window = Window { start: end.saturating_sub(range), end, range_ms: range };
        let series = self
            .candidates(&ms.vs)
            .filter_map(|(labels, points)| {
                let from = points.partition_point(|p| p.t < window.start);
                let to = points.partition_point(|p| p.t <= window.end);
                let kept: Vec<Point> =
                    points[from..to].iter().copied().filter(|p| !is_stale_nan(p.v)).collect();
                (!kept.is_empty()).then(|| (labels.clone(), kept))
            })
            .collect();
        (series, window)
    }

    fn eval_call(&self, call: &Call) -> Result<Value, PromqlError> {
        let name = call.func.name;
        let args = &call.args.args;
        let arg = |i: usize| -> Result<&Expr, PromqlError> {
            args.get(i)
                .map(|b| b.as_ref())
                .ok_or_else(|| PromqlError::Eval(format!("function `{name}` is missing argument {}", i + 1)))
        };
        if RANGE_FUNCTIONS.contains(&name) {
            let ms = matrix_arg(arg(0)?)?;
            let (series, window) = self.select_range(ms);
            let mut out = Vec::with_capacity(series.len());
            for (labels, points) in series {
                if let Some(value) = range_function(name, &points, window)? {
                    let labels = if name == "last_over_time" { labels } else { drop_name(labels) };
                    out.push(Sample { labels, value });
                }
            }
            return unique(out);
        }
        match name {
            "time" => Ok(Value::Scalar(self.t as f64 / 1000.0)),
            "vector" => {
                Ok(Value::Vector(vec![Sample { labels: Labels::new(), value: self.eval_scalar(arg(0)?)? }]))
            }
            "scalar" => {
                let v = self.eval_vector(arg(0)?)?;
                Ok(Value::Scalar(if v.len() == 1 { v[0].value } else { f64::NAN }))
            }
            "absent" => {
                let expr = arg(0)?;
                if self.eval_vector(expr)?.is_empty() {
                    Ok(Value::Vector(vec![Sample { labels: absent_labels(expr), value: 1.0 }]))
                } else {
                    Ok(Value::Vector(Vec::new()))
                }
            }
            "abs" => self.map_values(arg(0)?, f64::abs),
            "ceil" => self.map_values(arg(0)?, f64::ceil),
            "floor" => self.map_values(arg(0)?, f64::floor),
            "round" => {
                let to_nearest = match args.get(1) {
                    Some(e) => self.eval_scalar(e)?,
                    None => 1.0,
                };
                // Prometheus rounds half up via floor(v/n + 0.5) * n, dividing by the inverse.
                let inverse = 1.0 / to_nearest;
                self.map_values(arg(0)?, |v| (v * inverse + 0.5).floor() / inverse)
            }
            "clamp_min" => {
                let min = self.eval_scalar(arg(1)?)?;
                self.map_values(arg(0)?, |v| go_max(min, v))
            }
            "clamp_max" => {
                let max = self.eval_scalar(arg(1)?)?;
                self.map_values(arg(0)?, |v| go_min(max, v))
            }
            other => Err(unsupported(format!("function `{other}`"))),
        }
    }

    fn map_values(&self, expr: &Expr, f: impl Fn(f64) -> f64) -> Result<Value, PromqlError> {
        let v = self.eval_vector(expr)?;
        unique(v.into_iter().map(|s| Sample { labels: drop_name(s.labels), value: f(s.value) }).collect())
    }

    fn eval_aggregate(&self, a: &AggregateExpr) -> Result<Value, PromqlError> {
        let input = self.eval_vector(&a.expr)?;
        let op = a.op.id();
        let k = if matches!(op, token::T_TOPK | token::T_BOTTOMK) {
            let param = a
                .param
                .as_deref()
                .ok_or_else(|| PromqlError::Eval(format!("`{}` needs a parameter", a.op)))?;
            let f = self.eval_scalar(param)?;
            if f.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
                return Err(PromqlError::Eval(format!("scalar value {f} overflows int64")));
            }
            // Go's int64(f) truncates towards zero, as `as` does.
            let k = f as i64;
            if k < 1 {
                return Ok(Value::Vector(Vec::new()));
            }
            usize::try_from(k).unwrap_or(usize::MAX)
        } else {
            0
        };
        // Groups in order of first appearance.
        let mut index: BTreeMap<Labels, usize> = BTreeMap::new();
        let mut groups: Vec<(Labels, Vec<Sample>)> = Vec::new();
        for s in input {
            let key = grouping_labels(&s.labels, a.modifier.as_ref());
            let i = *index.entry(key.clone()).or_insert_with(|| {
                groups.push((key, Vec::new()));
                groups.len() - 1
            });
            groups[i].1.push(s);
        }
        let mut out = Vec::new();
        for (key, members) in groups {
            let values = members.iter().map(|s| s.value);
            let value = match op {
                token::T_SUM => values.sum(),
                token::T_COUNT => members.len() as f64,
                token::T_MAX => values.fold(f64::NAN, |acc, v| if acc < v || acc.is_nan() { v } else { acc }),
                token::T_MIN => values.fold(f64::NAN, |acc, v| if acc > v || acc.is_nan() { v } else { acc }),
                token::T_AVG => incremental_mean(values),
                token::T_TOPK | token::T_BOTTOMK => {
                    let mut members = members;
                    let top = op == token::T_TOPK;
                    // NaN ranks below every number for topk and above every number for bottomk.
                    members.sort_by(|x, y| match (x.value.is_nan(), y.value.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        (false, false) => {
                            let o = x.value.total_cmp(&y.value);
                            if top { o.reverse() } else { o }
                        }
                    });
                    out.extend(members.into_iter().take(k));
                    continue;
                }
                _ => return Err(unsupported(format!("aggregation `{}`", a.op))),
            };
            out.push(Sample { labels: key, value });
        }
        Ok(Value::Vector(out))
    }

    fn eval_binary(&self, b: &BinaryExpr) -> Result<Value, PromqlError> {
        let op = b.op.id();
        let return_bool = b.return_bool();
        let lhs = self.eval(&b.lhs)?;
        let rhs = self.eval(&b.rhs)?;
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let (value, keep) = elem_binop(op, l, r)?;
                Ok(Value::Scalar(if is_comparison(op) { bool_value(keep) } else { value }))
            }
            (Value::Vector(v), Value::Scalar(s)) => unique(vector_scalar(op, v, s, false, return_bool)?),
            (Value::Scalar(s), Value::Vector(v)) => unique(vector_scalar(op, v, s, true, return_bool)?),
            (Value::Vector(l), Value::Vector(r)) => {
                let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
                match op {
                    token::T_LAND | token::T_LOR | token::T_LUNLESS => {
                        Ok(Value::Vector(set_op(op, l, r, matching)))
                    }
                    _ => unique(vector_vector(op, l, r, matching, return_bool)?),
                }
            }
            (l, r) => Err(PromqlError::Eval(format!(
                "binary operator `{}` between {} and {}",
                b.op,
                type_name(&l),
                type_name(&r)
            ))),
        }
    }
}

/// The evaluation window of a range selector.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    end: i64,
    range_ms: i64,
}

fn range_function(name: &str, points: &[Point], window: Window) -> Result<Option<f64>, PromqlError> {
    let values = || points.iter().map(|p| p.v);
    Ok(match name {
        "increase" => extrapolated_rate(points, window, true, false),
        "rate" => extrapolated_rate(points, window, true, true),
        "delta" => extrapolated_rate(points, window, false, false),
        "irate" => instant_value(points, true),
        "idelta" => instant_value(points, false),
        "resets" => Some(points.windows(2).filter(|w| w[1].v < w[0].v).count() as f64),
        "changes" => Some(
            points.windows(2).filter(|w| !(w[1].v == w[0].v || (w[1].v.is_nan() && w[0].v.is_nan()))).count()
                as f64,
        ),
        "avg_over_time" => Some(incremental_mean(values())),
        "sum_over_time" => Some(values().sum()),
        "count_over_time" => Some(points.len() as f64),
        "min_over_time" => values().reduce(|acc, v| if v < acc || acc.is_nan() { v } else { acc }),
        "max_over_time" => values().reduce(|acc, v| if v > acc || acc.is_nan() { v } else { acc }),
        "last_over_time" => points.last().map(|p| p.v),
        "present_over_time" => Some(1.0),
        other => return Err(unsupported(format!("function `{other}`"))),
    })
}

/// Prometheus v2's `extrapolatedRate` for `rate` (`is_rate`), `increase` and `delta` (`!is_counter`).
fn extrapolated_rate(points: &[Point], window: Window, is_counter: bool, is_rate: bool) -> Option<f64> {
    let (first, last) = match points {
        [first, .., last] => (*first, *last),
        _ => return None,
    };
    let mut result = last.v - first.v;
    if is_counter {
        // A drop means the counter was reset; add back the value it had before the reset.
        let mut correction = 0.0;
        let mut previous = 0.0;
        for p in points {
            if p.v < previous {
                correction += previous;
            }
            previous = p.v;
        }
        result += correction;
    }
    let mut duration_to_start = (first.t - window.start) as f64 / 1000.0;
    let duration_to_end = (window.end - last.t) as f64 / 1000.0;
    let sampled_interval = (last.t - first.t) as f64 / 1000.0;
    let average_interval = sampled_interval / (points.len() - 1) as f64;
    if is_counter && result > 0.0 && first.v >= 0.0 {
        // A counter cannot go below zero: do not extrapolate further back than where it would be 0.
        let duration_to_zero = sampled_interval * (first.v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    // Extrapolate to a window edge only if a sample there was due; otherwise assume the series starts
    // or ends half an average interval beyond its first or last sample.
    let threshold = average_interval * 1.1;
    let mut extrapolate_to = sampled_interval;
    extrapolate_to += if duration_to_start < threshold { duration_to_start } else { average_interval / 2.0 };
    extrapolate_to += if duration_to_end < threshold { duration_to_end } else { average_interval / 2.0 };
    result *= extrapolate_to / sampled_interval;
    if is_rate {
        result /= window.range_ms as f64 / 1000.0;
    }
    Some(result)
}

/// `irate` (`is_rate`) and `idelta`: from the last two samples only.
fn instant_value(points: &[Point], is_rate: bool) -> Option<f64> {
    let [.., previous, last] = points else { return None };
    let mut result = if is_rate && last.v < previous.v { last.v } else { last.v - previous.v };
    let sampled_ms = last.t - previous.t;
    if sampled_ms == 0 {
        return None;
    }
    if is_rate {
        result /= sampled_ms as f64 / 1000.0;
    }
    Some(result)
}

/// Prometheus' running mean (avoids overflow; keeps infinities stable).
fn incremental_mean(values: impl Iterator<Item = f64>) -> f64 {
    let mut mean = 0.0;
    let mut count = 0.0;
    for v in values {
        count += 1.0;
        if count == 1.0 {
            mean = v;
            continue;
        }
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        mean += v / count - mean / count;
    }
    mean
}

fn matrix_arg(expr: &Expr) -> Result<&MatrixSelector, PromqlError> {
    match expr {
        Expr::MatrixSelector(ms) => Ok(ms),
        Expr::Paren(p) => matrix_arg(&p.expr),
        Expr::Subquery(_) => Err(unsupported("subquery")),
        _ => Err(PromqlError::Eval("a range function needs a range vector selector argument".into())),
    }
}

fn offset_ms(offset: Option<&Offset>) -> i64 {
    match offset {
        Some(Offset::Pos(d)) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Some(Offset::Neg(d)) => -i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        None => 0,
    }
}

fn selector_matches(vs: &VectorSelector, labels: &Labels) -> bool {
    let value = |m: &Matcher| labels.get(&m.name).map(String::as_str).unwrap_or("");
    if let Some(name) = &vs.name
        && labels.get(METRIC_NAME) != Some(name)
    {
        return false;
    }
    vs.matchers.matchers.iter().all(|m| m.is_match(value(m)))
        && (vs.matchers.or_matchers.is_empty()
            || vs.matchers.or_matchers.iter().any(|group| group.iter().all(|m| m.is_match(value(m)))))
}

/// Labels `absent()` gives its result: the selector's equality matchers, except `__name__` and labels
/// that also have another matcher.
fn absent_labels(expr: &Expr) -> Labels {
    let Expr::VectorSelector(vs) = expr else { return Labels::new() };
    let mut labels = Labels::new();
    let mut dropped = BTreeSet::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, MatchOp::Equal) && !labels.contains_key(&m.name) {
            labels.insert(m.name.clone(), m.value.clone());
        } else {
            dropped.insert(m.name.clone());
        }
    }
    dropped.extend(vs.matchers.or_matchers.iter().flatten().map(|m| m.name.clone()));
    labels.retain(|k, v| !dropped.contains(k) && !v.is_empty());
    labels
}

fn grouping_labels(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        None => Labels::new(),
        Some(LabelModifier::Include(by)) => labels
            .iter()
            .filter(|(k, _)| by.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(LabelModifier::Exclude(without)) => labels
            .iter()
            .filter(|(k, _)| k.as_str() != METRIC_NAME && !without.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// The labels two vector elements are matched on.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => labels
            .iter()
            .filter(|(k, _)| on.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(LabelModifier::Exclude(ignoring)) => labels
            .iter()
            .filter(|(k, _)| k.as_str() != METRIC_NAME && !ignoring.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None => labels
            .iter()
            .filter(|(k, _)| k.as_str() != METRIC_NAME)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

fn is_comparison(op: u16) -> bool {
    matches!(op, token::T_EQLC | token::T_NEQ | token::T_GTR | token::T_LSS | token::T_GTE | token::T_LTE)
}

fn should_drop_name(op: u16) -> bool {
    matches!(op, token::T_ADD | token::T_SUB | token::T_MUL | token::T_DIV | token::T_MOD | token::T_POW)
}

fn bool_value(keep: bool) -> f64 {
    if keep { 1.0 } else { 0.0 }
}

/// Applies an arithmetic or comparison operator; comparisons return the lhs and whether it holds.
fn elem_binop(op: u16, l: f64, r: f64) -> Result<(f64, bool), PromqlError> {
    Ok(match op {
        token::T_ADD => (l + r, true),
        token::T_SUB => (l - r, true),
        token::T_MUL => (l * r, true),
        token::T_DIV => (l / r, true),
        // Rust's `%` on floats is C's fmod, like Go's math.Mod.
        token::T_MOD => (l % r, true),
        token::T_POW => (l.powf(r), true),
        token::T_EQLC => (l, l == r),
        token::T_NEQ => (l, l != r),
        token::T_GTR => (l, l > r),
        token::T_LSS => (l, l < r),
        token::T_GTE => (l, l >= r),
        token::T_LTE => (l, l <= r),
        other => return Err(unsupported(format!("binary operator `{}`", token::TokenType::new(other)))),
    })
}

fn vector_scalar(
    op: u16,
    v: Vec<Sample>,
    s: f64,
    swap: bool,
    return_bool: bool,
) -> Result<Vec<Sample>, PromqlError> {
    let mut out = Vec::with_capacity(v.len());
    for sample in v {
        let (l, r) = if swap { (s, sample.value) } else { (sample.value, s) };
        let (mut value, mut keep) = elem_binop(op, l, r)?;
        if is_comparison(op) && swap {
            // The vector's value is the result even when the vector is the right operand.
            value = r;
        }
        if return_bool {
            value = bool_value(keep);
            keep = true;
        }
        if keep {
            let labels =
                if should_drop_name(op) || return_bool { drop_name(sample.labels) } else { sample.labels };
            out.push(Sample { labels, value });
        }
    }
    Ok(out)
}

fn vector_vector(
    op: u16,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    matching: Option<&LabelModifier>,
    return_bool: bool,
) -> Result<Vec<Sample>, PromqlError> {
    let mut right: BTreeMap<Labels, Sample> = BTreeMap::new();
    for rs in rhs {
        let sig = signature(&rs.labels, matching);
        if let Some(dup) = right.get(&sig) {
            return Err(PromqlError::Eval(format!(
                "found duplicate series for the match group {} on the right hand-side of the operation: \
                 [{}, {}]; many-to-many matching not allowed: matching labels must be unique on one side",
                format_labels(&sig),
                format_labels(&rs.labels),
                format_labels(&dup.labels)
            )));
        }
        right.insert(sig, rs);
    }
    let mut matched = BTreeSet::new();
    let mut out = Vec::new();
    for ls in lhs {
        let sig = signature(&ls.labels, matching);
        let Some(rs) = right.get(&sig) else { continue };
        let (mut value, keep) = elem_binop(op, ls.value, rs.value)?;
        if return_bool {
            value = bool_value(keep);
        } else if !keep {
            continue;
        }
        let mut labels = ls.labels;
        if should_drop_name(op) || return_bool {
            labels.remove(METRIC_NAME);
        }
        match matching {
            Some(LabelModifier::Include(on)) => labels.retain(|k, _| on.labels.contains(k)),
            Some(LabelModifier::Exclude(ignoring)) => labels.retain(|k, _| !ignoring.labels.contains(k)),
            None => {}
        }
        if !matched.insert(sig) {
            return Err(PromqlError::Eval(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                    .into(),
            ));
        }
        out.push(Sample { labels, value });
    }
    Ok(out)
}

fn set_op(op: u16, lhs: Vec<Sample>, rhs: Vec<Sample>, matching: Option<&LabelModifier>) -> Vec<Sample> {
    match op {
        token::T_LAND => {
            let right: BTreeSet<Labels> = rhs.iter().map(|s| signature(&s.labels, matching)).collect();
            lhs.into_iter().filter(|s| right.contains(&signature(&s.labels, matching))).collect()
        }
        token::T_LUNLESS => {
            let right: BTreeSet<Labels> = rhs.iter().map(|s| signature(&s.labels, matching)).collect();
            lhs.into_iter().filter(|s| !right.contains(&signature(&s.labels, matching))).collect()
        }
        _ => {
            let left: BTreeSet<Labels> = lhs.iter().map(|s| signature(&s.labels, matching)).collect();
            let mut out = lhs;
            out.extend(rhs.into_iter().filter(|s| !left.contains(&signature(&s.labels, matching))));
            out
        }
    }
}

fn drop_name(mut labels: Labels) -> Labels {
    labels.remove(METRIC_NAME);
    labels
}

/// Refuses a vector holding two elements with the same labels (e.g. after a name was dropped).
fn unique(samples: Vec<Sample>) -> Result<Value, PromqlError> {
    let mut seen = BTreeSet::new();
    for s in &samples {
        if !seen.insert(&s.labels) {
            return Err(PromqlError::Eval(format!(
                "vector cannot contain metrics with the same labelset {}",
                format_labels(&s.labels)
            )));
        }
    }
    Ok(Value::Vector(samples))
}

/// Go's `math.Max`: NaN if either operand is NaN.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// Go's `math.Min`: NaN if either operand is NaN.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Scalar(_) => "scalar",
        Value::Vector(_) => "instant vector",
        Value::String(_) => "string",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_functions_are_exactly_the_leading_entries() {
        assert_eq!(RANGE_FUNCTIONS.first(), Some(&"increase"));
        assert_eq!(RANGE_FUNCTIONS.last(), Some(&"present_over_time"));
        assert_eq!(SUPPORTED_FUNCTIONS.get(RANGE_FUNCTIONS.len()), Some(&"absent"));
    }
    use crate::monitoring::tsdb::stale_nan;
    use std::time::Duration;

    const S: i64 = 1000;

    fn labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
        let mut l: Labels = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        l.insert(METRIC_NAME.into(), name.into());
        l
    }

    /// Adds a series sampled every 10 s from t=0; `None` leaves a gap.
    fn add(db: &mut Tsdb, name: &str, pairs: &[(&str, &str)], values: &[Option<f64>]) {
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                db.append(labels(name, pairs), i as i64 * 10 * S, *v).unwrap();
            }
        }
    }

    fn all(values: &[f64]) -> Vec<Option<f64>> {
        values.iter().copied().map(Some).collect()
    }

    fn fixture() -> Tsdb {
        let mut db = Tsdb::new(Duration::from_secs(3600));
        let a = [("job", "a"), ("instance", "i1")];
        // 0, 10, ..., 60: a counter rising 1/s.
        add(&mut db, "c_total", &a, &all(&[0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]));
        // A counter reset between 20 s (15) and 30 s (2).
        add(&mut db, "r_total", &a, &all(&[5.0, 10.0, 15.0, 2.0, 7.0, 12.0, 17.0]));
        // A counter that appears at 20 s with a small value (zero-point clamp applies).
        add(&mut db, "z_total", &a, &[None, None, Some(1.0), Some(5.0), Some(9.0)]);
        // Appears at 50 s, far from the window start: v2 clamp-before-threshold case.
        add(&mut db, "v_total", &a, &[None, None, None, None, None, Some(2.0), Some(4.0), Some(6.0)]);
        // Gauges on three instances of two jobs.
        add(&mut db, "temp", &[("job", "a"), ("instance", "i1")], &all(&[1.0, 3.0, 2.0, 8.0, 4.0, 6.0, 5.0]));
        add(&mut db, "temp", &[("job", "a"), ("instance", "i2")], &all(&[10.0; 7]));
        add(&mut db, "temp", &[("job", "b"), ("instance", "i3")], &all(&[-2.5; 7]));
        add(&mut db, "limit", &[("job", "a"), ("instance", "i1")], &all(&[4.0; 7]));
        add(&mut db, "limit", &[("job", "a"), ("instance", "i2")], &all(&[20.0; 7]));
        db
    }

    fn vector(expr: &str, db: &Tsdb, t: i64) -> Vec<(Labels, f64)> {
        match query(expr, db, t) {
            Ok(Value::Vector(v)) => v.into_iter().map(|s| (s.labels, s.value)).collect(),
            other => panic!("{expr}: expected a vector, got {other:?}"),
        }
    }

    fn single(expr: &str, db: &Tsdb, t: i64) -> f64 {
        let v = vector(expr, db, t);
        assert_eq!(v.len(), 1, "{expr}: {v:?}");
        v[0].1
    }

    fn scalar(expr: &str, db: &Tsdb, t: i64) -> f64 {
        match query(expr, db, t) {
            Ok(Value::Scalar(v)) => v,
            other => panic!("{expr}: expected a scalar, got {other:?}"),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    // The numbers below were worked out by hand and cross-checked with `promtool test rules`
    // (Prometheus 2.42) on the same series.

    #[test]
    fn increase_and_rate_extrapolate_like_prometheus() {
        let db = fixture();
        // [30 s, 60 s] holds 30..60 (closed interval: 4 samples), no extrapolation needed: 60 - 30 = 30.
        assert_eq!(single("increase(c_total[30s])", &db, 60 * S), 30.0);
        assert_eq!(single("count_over_time(c_total[30s])", &db, 60 * S), 4.0);
        // At 65 s the window [35, 65] holds 40, 50, 60: raw 20 over 20 s, 5 s to each edge (< 1.1 × 10 s)
        // so extrapolated over 30 s: 20 × 30/20 = 30, rate 30/30 = 1.
        assert_eq!(single("increase(c_total[30s])", &db, 65 * S), 30.0);
        assert_eq!(single("rate(c_total[30s])", &db, 65 * S), 1.0);
        // Reset: 17 - 5 + 15 (value before the drop) = 27 over the full minute; rate 27/60 = 0.45.
        assert_eq!(single("increase(r_total[60s])", &db, 60 * S), 27.0);
        assert!(close(single("rate(r_total[60s])", &db, 60 * S), 0.45));
        // Zero clamp: 1, 5, 9 at 20..40 s, window [15, 45]. Raw 8; the counter would hit 0 at
        // 20 × 1/8 = 2.5 s before the first sample (< 5 s to the edge): 8 × (20 + 2.5 + 5)/20 = 11.
        assert_eq!(single("increase(z_total[30s])", &db, 45 * S), 11.0);
        // delta has no clamp: 8 × 30/20 = 12.
        assert_eq!(single("delta(z_total[30s])", &db, 45 * S), 12.0);
        // v2 clamp order: 2, 4, 6 at 50..70 s, window [0, 70]. Zero point 20 × 2/4 = 10 s back, which
        // replaces the 50 s and is < 11 s, so 4 × (20 + 10)/20 = 6 (Prometheus 3 would give 5).
        assert_eq!(single("increase(v_total[70s])", &db, 70 * S), 6.0);
        // The offset shifts the window: [30 s, 60 s] again.
        assert_eq!(single("increase(c_total[30s] offset 10s)", &db, 70 * S), 30.0);
        // A single sample in the window gives no result.
        assert!(vector("increase(c_total[5s])", &db, 60 * S).is_empty());
    }

    #[test]
    fn instant_and_counting_range_functions() {
        let db = fixture();
        // Last two samples of r_total: 12 → 17 over 10 s.
        assert_eq!(single("irate(r_total[60s])", &db, 60 * S), 0.5);
        assert_eq!(single("idelta(r_total[60s])", &db, 60 * S), 5.0);
        // irate across the reset (15 → 2 at 30 s): takes the post-reset value, 2/10 s.
        assert_eq!(single("irate(r_total[25s])", &db, 30 * S), 0.2);
        assert_eq!(single("idelta(r_total[25s])", &db, 30 * S), -13.0);
        assert_eq!(single("resets(r_total[60s])", &db, 60 * S), 1.0);
        assert_eq!(single("changes(r_total[60s])", &db, 60 * S), 6.0);
        assert_eq!(single(r#"changes(temp{instance="i2"}[60s])"#, &db, 60 * S), 0.0);
    }

    #[test]
    fn over_time_functions() {
        let db = fixture();
        let i1 = r#"temp{instance="i1"}[30s]"#;
        // Window [30, 60] of temp{i1}: 8, 4, 6, 5.
        assert_eq!(single(&format!("avg_over_time({i1})"), &db, 60 * S), 5.75);
        assert_eq!(single(&format!("sum_over_time({i1})"), &db, 60 * S), 23.0);
        assert_eq!(single(&format!("min_over_time({i1})"), &db, 60 * S), 4.0);
        assert_eq!(single(&format!("max_over_time({i1})"), &db, 60 * S), 8.0);
        assert_eq!(single(&format!("count_over_time({i1})"), &db, 60 * S), 4.0);
        assert_eq!(single(&format!("present_over_time({i1})"), &db, 60 * S), 1.0);
        // last_over_time keeps the metric name, the others drop it.
        let last = vector(&format!("last_over_time({i1})"), &db, 60 * S);
        assert_eq!(last, vec![(labels("temp", &[("job", "a"), ("instance", "i1")]), 5.0)]);
        let avg = vector(&format!("avg_over_time({i1})"), &db, 60 * S);
        assert!(!avg[0].0.contains_key(METRIC_NAME));
    }

    #[test]
    fn selectors_matchers_lookback_offset_and_staleness() {
        let mut db = fixture();
        assert_eq!(vector(r#"temp{job="a"}"#, &db, 60 * S).len(), 2);
        assert_eq!(vector(r#"temp{job!="a"}"#, &db, 60 * S).len(), 1);
        // Regexes are anchored: "i" alone matches nothing, "i[12]" two series.
        assert!(vector(r#"temp{instance=~"i"}"#, &db, 60 * S).is_empty());
        assert_eq!(vector(r#"temp{instance=~"i[12]"}"#, &db, 60 * S).len(), 2);
        assert_eq!(vector(r#"temp{instance!~"i[12]"}"#, &db, 60 * S).len(), 1);
        assert_eq!(vector(r#"{__name__=~"lim.*"}"#, &db, 60 * S).len(), 2);
        // Latest sample at or before t: at 35 s temp{i1} is the 30 s sample, 8.
        assert_eq!(single(r#"temp{instance="i1"}"#, &db, 35 * S), 8.0);
        // offset 20s at 60 s reads the 40 s sample.
        assert_eq!(single(r#"temp{instance="i1"} offset 20s"#, &db, 60 * S), 4.0);
        // Lookback: the last sample (60 s) is visible up to 360 s inclusive, not after.
        assert_eq!(single(r#"temp{instance="i1"}"#, &db, 360 * S), 5.0);
        assert!(vector(r#"temp{instance="i1"}"#, &db, 361 * S).is_empty());
        // A staleness marker ends the series at once, also for range selectors.
        db.append(labels("temp", &[("job", "a"), ("instance", "i1")]), 70 * S, stale_nan()).unwrap();
        assert!(vector(r#"temp{instance="i1"}"#, &db, 75 * S).is_empty());
        assert_eq!(single(r#"count_over_time(temp{instance="i1"}[30s])"#, &db, 70 * S), 3.0);
    }

    #[test]
    fn comparisons_filter_or_return_bool() {
        let db = fixture();
        // Filtering keeps the series (with its name) and its own value.
        let hot = vector("temp > 5", &db, 60 * S);
        assert_eq!(hot, vec![(labels("temp", &[("job", "a"), ("instance", "i2")]), 10.0)]);
        // Scalar on the left: still the vector's value that survives.
        let cold = vector("0 > temp", &db, 60 * S);
        assert_eq!(cold, vec![(labels("temp", &[("job", "b"), ("instance", "i3")]), -2.5)]);
        // bool: every series, 0 or 1, name dropped.
        let flags = vector("temp > bool 5", &db, 60 * S);
        assert_eq!(flags.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec![0.0, 1.0, 0.0]);
        assert!(flags.iter().all(|(l, _)| !l.contains_key(METRIC_NAME)));
        assert_eq!(scalar("2 > bool 1", &db, 0), 1.0);
        assert_eq!(scalar("2 == bool 1", &db, 0), 0.0);
        // Vector/vector: temp{i1}=5 > limit 4 holds, temp{i2}=10 > 20 does not.
        let over = vector("temp > limit", &db, 60 * S);
        assert_eq!(over, vec![(labels("temp", &[("job", "a"), ("instance", "i1")]), 5.0)]);
        let over_bool = vector("temp > bool limit", &db, 60 * S);
        assert_eq!(over_bool.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec![1.0, 0.0]);
    }

    #[test]
    fn arithmetic_and_vector_matching() {
        let db = fixture();
        // At 60 s: temp = 5 (i1), 10 (i2), -2.5 (i3); limit = 4 (i1), 20 (i2).
        let diff = vector("temp - limit", &db, 60 * S);
        assert_eq!(
            diff,
            vec![
                (labels_no_name(&[("job", "a"), ("instance", "i1")]), 1.0),
                (labels_no_name(&[("job", "a"), ("instance", "i2")]), -10.0)
            ]
        );
        assert_eq!(single(r#"temp{instance="i1"} * 2 + 1"#, &db, 60 * S), 11.0);
        assert_eq!(single(r#"temp{instance="i2"} % 3"#, &db, 60 * S), 1.0);
        assert_eq!(single(r#"temp{instance="i2"} ^ 2"#, &db, 60 * S), 100.0);
        assert_eq!(single(r#"-temp{instance="i3"}"#, &db, 60 * S), 2.5);
        assert_eq!(scalar("7 / 2", &db, 0), 3.5);
        // on(): only `instance` is compared and kept.
        let on = vector(r#"temp / on(instance) limit"#, &db, 60 * S);
        assert_eq!(
            on,
            vec![(labels_no_name(&[("instance", "i1")]), 1.25), (labels_no_name(&[("instance", "i2")]), 0.5)]
        );
        // ignoring(instance): every temp{job="a"} matches both limits: many-to-many is refused.
        let err = query("temp - ignoring(instance) limit", &db, 60 * S).unwrap_err();
        assert!(err.to_string().contains("duplicate series for the match group"), "{err}");
        // Same labels after dropping the name: refused.
        let err = query(r#"{__name__=~"temp|limit", instance="i1"} * 1"#, &db, 60 * S).unwrap_err();
        assert!(err.to_string().contains("same labelset"), "{err}");
    }

    fn labels_no_name(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn aggregations_by_and_without() {
        let db = fixture();
        // temp at 60 s: a/i1 5, a/i2 10, b/i3 -2.5.
        assert_eq!(single("sum(temp)", &db, 60 * S), 12.5);
        let by_job = vector("sum by (job) (temp)", &db, 60 * S);
        assert_eq!(
            by_job,
            vec![(labels_no_name(&[("job", "a")]), 15.0), (labels_no_name(&[("job", "b")]), -2.5)]
        );
        let without = vector("max without (instance) (temp)", &db, 60 * S);
        assert_eq!(
            without,
            vec![(labels_no_name(&[("job", "a")]), 10.0), (labels_no_name(&[("job", "b")]), -2.5)]
        );
        assert_eq!(vector("avg by (job) (temp)", &db, 60 * S)[0].1, 7.5);
        assert_eq!(vector("min by (job) (temp)", &db, 60 * S)[0].1, 5.0);
        assert_eq!(vector("count without (instance) (temp)", &db, 60 * S)[0].1, 2.0);
        // without () only drops the name.
        assert_eq!(vector("sum without () (temp)", &db, 60 * S).len(), 3);
        let top = vector("topk(2, temp)", &db, 60 * S);
        assert_eq!(top.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec![10.0, 5.0]);
        assert_eq!(top[0].0.get(METRIC_NAME).map(String::as_str), Some("temp"));
        let bottom = vector("bottomk by (job) (1, temp)", &db, 60 * S);
        assert_eq!(bottom.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec![5.0, -2.5]);
        assert!(vector("topk(0, temp)", &db, 60 * S).is_empty());
    }

    #[test]
    fn set_operators() {
        let db = fixture();
        let instances = |expr: &str| -> Vec<String> {
            vector(expr, &db, 60 * S).into_iter().map(|(l, _)| l["instance"].clone()).collect()
        };
        // limit exists for i1 and i2 only; the name does not take part in matching.
        assert_eq!(instances("temp and limit"), vec!["i1", "i2"]);
        assert_eq!(instances("temp unless limit"), vec!["i3"]);
        assert_eq!(instances(r#"limit or temp"#), vec!["i1", "i2", "i3"]);
        let or = vector("limit or temp", &db, 60 * S);
        assert_eq!(or[2].0.get(METRIC_NAME).map(String::as_str), Some("temp"));
        assert_eq!(instances(r#"temp and on(job) limit{instance="i1"}"#), vec!["i1", "i2"]);
        assert_eq!(instances(r#"temp unless ignoring(instance) limit{instance="i1"}"#), vec!["i3"]);
    }

    #[test]
    fn absent_and_scalar_functions() {
        let db = fixture();
        assert!(vector("absent(temp)", &db, 60 * S).is_empty());
        let absent = vector(r#"absent(nope{job="mqtt", instance=~"x.*", env="a", env="b"})"#, &db, 60 * S);
        assert_eq!(absent, vec![(labels_no_name(&[("job", "mqtt")]), 1.0)]);
        let absent = vector("absent(sum(nope))", &db, 60 * S);
        assert_eq!(absent, vec![(Labels::new(), 1.0)]);
        // temp at 60 s: 5, 10, -2.5.
        let abs = vector("abs(temp)", &db, 60 * S);
        assert_eq!(abs.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec![5.0, 10.0, 2.5]);
        assert!(!abs[0].0.contains_key(METRIC_NAME));
        assert_eq!(single(r#"ceil(temp{job="b"})"#, &db, 60 * S), -2.0);
        assert_eq!(single(r#"floor(temp{job="b"})"#, &db, 60 * S), -3.0);
        // round() rounds halves up: -2.5 → -2; to the nearest 4: 10 → 12 (floor(2.5 + 0.5) × 4).
        assert_eq!(single(r#"round(temp{job="b"})"#, &db, 60 * S), -2.0);
        assert_eq!(single(r#"round(temp{instance="i2"}, 4)"#, &db, 60 * S), 12.0);
        assert_eq!(single(r#"clamp_min(temp{job="b"}, 0)"#, &db, 60 * S), 0.0);
        assert_eq!(single(r#"clamp_max(temp{instance="i2"}, 7)"#, &db, 60 * S), 7.0);
        assert_eq!(scalar("time()", &db, 61_500), 61.5);
        assert_eq!(vector("vector(3)", &db, 0), vec![(Labels::new(), 3.0)]);
        assert_eq!(scalar(r#"scalar(temp{instance="i2"})"#, &db, 60 * S), 10.0);
        assert!(scalar("scalar(temp)", &db, 60 * S).is_nan());
        assert_eq!(query(r#""hello""#, &db, 0), Ok(Value::String("hello".into())));
    }

    #[test]
    fn unsupported_constructs_are_named() {
        let cases = [
            ("histogram_quantile(0.9, rate(x[5m]))", "function `histogram_quantile`"),
            ("max_over_time(rate(x[1m])[5m:1m])", "subquery"),
            ("a * on(job) group_left(x) b", "group_left"),
            ("x @ 100", "@ modifier"),
            ("quantile(0.5, x)", "aggregation `quantile`"),
            ("x[5m]", "range vector selector"),
            ("stddev(x)", "aggregation `stddev`"),
        ];
        for (expr, construct) in cases {
            let parsed = parse(expr).unwrap();
            let err = check_supported(&parsed).unwrap_err();
            assert!(
                matches!(&err, PromqlError::Unsupported { construct: c } if c.contains(construct)),
                "{expr}: {err}"
            );
        }
        assert!(matches!(parse("rate(x)"), Err(PromqlError::Parse { .. })));
        assert!(check_supported(&parse(r#"increase(broker_uptime{job="mqtt"}[30s]) == 0"#).unwrap()).is_ok());
    }
}
