//! Python semantics for JSON values.
//!
//! Chaos Toolkit is written in Python, and several of its rules are "whatever Python does": a boolean
//! tolerance is `value == tolerance` (so `1 == True`), a two-item list is `a <= value <= b`, a probe
//! tolerance passes when `bool(result)`, a mixed template turns values into text with `str()`. This
//! module gives those four operations on [`serde_json::Value`], so that the rest of the engine can
//! state each rule once, as the lib does, without re-deriving Python's coercions at every call site.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// Python's `a == b` for two JSON values (`True == 1`, `1 == 1.0`, lists and dicts deeply).
pub fn py_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => match (as_numeric(a), as_numeric(b)) {
            (Some(x), Some(y)) => x.cmp_to(&y) == Some(Ordering::Equal),
            _ => false,
        },
    }
}

/// Python's ordering of two JSON values, or `None` where Python raises `TypeError` (e.g. `"a" < 1`).
///
/// Numbers and booleans compare numerically, strings by code point, lists lexicographically.
pub fn py_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                if !py_eq(p, q) {
                    return py_cmp(p, q);
                }
            }
            Some(x.len().cmp(&y.len()))
        }
        _ => as_numeric(a)?.cmp_to(&as_numeric(b)?),
    }
}

/// Python's `bool(value)`: `None`, `False`, `0`, `""`, `[]` and `{}` are false.
pub fn py_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Python's `str(value)`: strings as they are, `True`/`False`/`None`, containers as their `repr`.
pub fn py_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr(value)`, as `str()` shows the items of a list or a dict.
pub fn py_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> =
                map.iter().map(|(k, v)| format!("'{}': {}", k.replace('\'', "\\'"), py_repr(v))).collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// A number as Python's numeric tower sees it: booleans are the integers 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Numeric {
    /// An integer that fits `i128` (every JSON integer does).
    Int(i128),
    /// A float.
    Float(f64),
}

impl Numeric {
    /// Compares two numbers exactly when both are integers, as floats otherwise (`None` for NaN).
    pub fn cmp_to(&self, other: &Numeric) -> Option<Ordering> {
        match (self, other) {
            (Numeric::Int(x), Numeric::Int(y)) => Some(x.cmp(y)),
            _ => self.as_f64().partial_cmp(&other.as_f64()),
        }
    }

    /// The value as a float (lossy for integers beyond 2^53).
    pub fn as_f64(&self) -> f64 {
        match self {
            Numeric::Int(i) => *i as f64,
            Numeric::Float(f) => *f,
        }
    }

    /// Parses a decimal literal as Python's `Decimal(str)` accepts the common cases.
    pub fn parse(text: &str) -> Option<Numeric> {
        let t = text.trim();
        if let Ok(i) = t.parse::<i128>() {
            return Some(Numeric::Int(i));
        }
        t.parse::<f64>().ok().filter(|f| !f.is_nan()).map(Numeric::Float)
    }

    /// Reads a JSON number.
    pub fn from_number(n: &Number) -> Option<Numeric> {
        if let Some(i) = n.as_i64() {
            Some(Numeric::Int(i128::from(i)))
        } else if let Some(u) = n.as_u64() {
            Some(Numeric::Int(i128::from(u)))
        } else {
            n.as_f64().map(Numeric::Float)
        }
    }
}

/// The numeric reading of a value for `==` and `<`: numbers and booleans only.
pub fn as_numeric(value: &Value) -> Option<Numeric> {
    match value {
        Value::Bool(b) => Some(Numeric::Int(i128::from(*b))),
        Value::Number(n) => Numeric::from_number(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn equality_follows_python() {
        assert!(py_eq(&json!(true), &json!(1)));
        assert!(py_eq(&json!(1), &json!(1.0)));
        assert!(!py_eq(&json!(false), &json!(null)));
        assert!(!py_eq(&json!("1"), &json!(1)));
        assert!(py_eq(&json!({"a": [1, true]}), &json!({"a": [1.0, 1]})));
        assert!(!py_eq(&json!([1, 2]), &json!([1, 2, 3])));
    }

    #[test]
    fn ordering_follows_python() {
        assert_eq!(py_cmp(&json!(2), &json!(10.5)), Some(Ordering::Less));
        assert_eq!(py_cmp(&json!("b"), &json!("a")), Some(Ordering::Greater));
        assert_eq!(py_cmp(&json!([1, 2]), &json!([1, 3])), Some(Ordering::Less));
        assert_eq!(py_cmp(&json!("a"), &json!(1)), None);
        assert_eq!(py_cmp(&json!(null), &json!(null)), None);
        assert_eq!(
            py_cmp(&json!(9007199254740993_i64), &json!(9007199254740992_i64)),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn truthiness_and_str_follow_python() {
        assert!(!py_truthy(&json!(0)));
        assert!(!py_truthy(&json!({})));
        assert!(py_truthy(&json!({"status": 0})));
        assert!(py_truthy(&json!(-0.5)));
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!(null)), "None");
        assert_eq!(py_str(&json!(1.5)), "1.5");
        assert_eq!(py_str(&json!("x")), "x");
        assert_eq!(py_str(&json!({"a": ["b", false]})), "{'a': ['b', False]}");
    }

    #[test]
    fn decimal_parsing() {
        assert_eq!(Numeric::parse(" 12 "), Some(Numeric::Int(12)));
        assert_eq!(Numeric::parse("1e3"), Some(Numeric::Float(1000.0)));
        assert_eq!(Numeric::parse("abc"), None);
    }
}
