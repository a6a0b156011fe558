//! Binary operators: arithmetic, comparisons (filtering or `bool`) and `and`/`or`/`unless`, between
//! scalars and vectors, with one-to-one `on`/`ignoring` vector matching.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::parser::{BinaryExpr, LabelModifier, token};

use super::eval::{Evaluator, type_name, unique};
use super::{PromqlError, Sample, Value, drop_name, unsupported};
use crate::monitoring::tsdb::{Labels, METRIC_NAME, format_labels};

impl Evaluator<'_> {
    pub(super) fn eval_binary(&self, b: &BinaryExpr) -> Result<Value, PromqlError> {
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
