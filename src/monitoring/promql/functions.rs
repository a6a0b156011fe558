//! Function calls: the range functions (`rate`, `increase`, `delta` with Prometheus v2's extrapolation,
//! `irate`, `idelta`, `resets`, `changes`, `*_over_time`) and the instant ones (`absent`, `abs`, `ceil`,
//! `floor`, `round`, `clamp_min`, `clamp_max`, `time`, `vector`, `scalar`).

use std::collections::BTreeSet;

use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, MatrixSelector};

use super::eval::{Evaluator, unique};
use super::{Expr, PromqlError, RANGE_FUNCTIONS, Sample, Value, drop_name, unsupported};
use crate::monitoring::tsdb::{Labels, METRIC_NAME, Point};

impl Evaluator<'_> {
    pub(super) fn eval_call(&self, call: &Call) -> Result<Value, PromqlError> {
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
}

/// The evaluation window of a range selector.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) range_ms: i64,
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
        "avg_over_time" => Some(kahan_mean(values())),
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
pub(super) fn incremental_mean(values: impl Iterator<Item = f64>) -> f64 {
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

/// `avg_over_time`'s mean as Prometheus 2.42 computes it: the incremental mean, each step added with
/// Neumaier's compensated sum (`kahanSumInc`), the compensation added at the end — the last bits differ
/// from the plain incremental mean, and `promtool test rules` compares them exactly.
fn kahan_mean(values: impl Iterator<Item = f64>) -> f64 {
    let (mut mean, mut c, mut count) = (0.0f64, 0.0f64, 0.0f64);
    for v in values {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        let inc = v / count - mean / count;
        let t = mean + inc;
        c += if mean.abs() >= inc.abs() { (mean - t) + inc } else { (inc - t) + mean };
        mean = t;
    }
    if mean.is_infinite() { mean } else { mean + c }
}

fn matrix_arg(expr: &Expr) -> Result<&MatrixSelector, PromqlError> {
    match expr {
        Expr::MatrixSelector(ms) => Ok(ms),
        Expr::Paren(p) => matrix_arg(&p.expr),
        Expr::Subquery(_) => Err(unsupported("subquery")),
        _ => Err(PromqlError::Eval("a range function needs a range vector selector argument".into())),
    }
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

/// Go's `math.Max`: NaN if either operand is NaN.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// Go's `math.Min`: NaN if either operand is NaN.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}
