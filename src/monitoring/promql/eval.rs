//! The evaluator: expressions dispatched by kind, instant and range selectors (lookback, offset,
//! staleness) and the aggregations.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{AggregateExpr, LabelModifier, MatrixSelector, Offset, VectorSelector, token};

use super::functions::{Window, incremental_mean};
use super::{Expr, LOOKBACK_DELTA_MS, PromqlError, Sample, Value, drop_name, unsupported};
use crate::monitoring::tsdb::{Labels, METRIC_NAME, Point, Tsdb, format_labels, is_stale_nan};

pub(super) struct Evaluator<'a> {
    pub(super) db: &'a Tsdb,
    pub(super) t: i64,
}

impl Evaluator<'_> {
    pub(super) fn eval(&self, expr: &Expr) -> Result<Value, PromqlError> {
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

    pub(super) fn eval_vector(&self, expr: &Expr) -> Result<Vec<Sample>, PromqlError> {
        match self.eval(expr)? {
            Value::Vector(v) => Ok(v),
            other => Err(PromqlError::Eval(format!("expected an instant vector, got {}", type_name(&other)))),
        }
    }

    pub(super) fn eval_scalar(&self, expr: &Expr) -> Result<f64, PromqlError> {
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
    pub(super) fn select_range(&self, ms: &MatrixSelector) -> (Vec<(Labels, Vec<Point>)>, Window) {
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

/// Refuses a vector holding two elements with the same labels (e.g. after a name was dropped).
pub(super) fn unique(samples: Vec<Sample>) -> Result<Value, PromqlError> {
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

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Scalar(_) => "scalar",
        Value::Vector(_) => "instant vector",
        Value::String(_) => "string",
    }
}
