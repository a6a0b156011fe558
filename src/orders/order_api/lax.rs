//! Pydantic's lax mode, as FastAPI applies it to the order API's fields: what each type accepts, the
//! coercions (`true` → 1, `7.0` → 7, `" 42 "` → 42, `"25.5"` → 25.5) and the error each refusal gets.
//!
//! A value comes either from a JSON body ([`PyValue`], what Python's `json.loads` built) or as text (a
//! path segment, a query parameter, a form field). Where the original accepted a value and then failed
//! in the database (an integer past the column's range, a NUL, a NaN price) chaoslab refuses it here
//! with the error pydantic gives for the matching constraint; the README lists these.

use serde_json::{Value, json};

use super::errors::FieldError;
use super::pyjson::PyValue;
use crate::orders::model::OrderState;

/// Where a value came from.
#[derive(Clone, Copy, Debug)]
pub enum Given<'a> {
    /// A JSON body's member.
    Json(&'a PyValue),
    /// A path segment, a query parameter or a form field.
    Text(&'a str),
}

impl<'a> Given<'a> {
    /// The text, for a JSON string or a text value.
    fn text(&self) -> Option<&'a str> {
        match self {
            Given::Json(PyValue::Str(s)) => Some(s.as_str()),
            Given::Text(t) => Some(t),
            Given::Json(_) => None,
        }
    }

    fn input(&self) -> Value {
        match self {
            Given::Json(v) => v.to_json(),
            Given::Text(t) => Value::String((*t).to_owned()),
        }
    }
}

/// A bound chaoslab puts on an integer (pydantic's `ge`/`le`).
#[derive(Clone, Copy, Debug)]
pub struct Range {
    /// Smallest value.
    pub min: i64,
    /// Largest value.
    pub max: i64,
}

impl Range {
    /// A PostgreSQL `integer` column (the reference's `user_id`).
    pub const INT32: Range = Range { min: i32::MIN as i64, max: i32::MAX as i64 };
    /// Anything an `i64` holds.
    pub const INT64: Range = Range { min: i64::MIN, max: i64::MAX };

    fn check(self, n: i128, loc: &[Value], input: Value) -> Result<i64, FieldError> {
        if n > i128::from(self.max) {
            let msg = format!("Input should be less than or equal to {}", self.max);
            Err(FieldError::new("less_than_equal", loc.to_vec(), msg, input)
                .with_ctx(json!({"le": self.max})))
        } else if n < i128::from(self.min) {
            let msg = format!("Input should be greater than or equal to {}", self.min);
            Err(FieldError::new("greater_than_equal", loc.to_vec(), msg, input)
                .with_ctx(json!({"ge": self.min})))
        } else {
            i64::try_from(n)
                .map_err(|_| FieldError::new("int_parsing_size", loc.to_vec(), SIZE_MSG, Value::Null))
        }
    }
}

const INT_TYPE_MSG: &str = "Input should be a valid integer";
const INT_PARSING_MSG: &str = "Input should be a valid integer, unable to parse string as an integer";
const INT_FROM_FLOAT_MSG: &str = "Input should be a valid integer, got a number with a fractional part";
const SIZE_MSG: &str = "Unable to parse input string as an integer, exceeded maximum size";
const FINITE_MSG: &str = "Input should be a finite number";

/// An integer, pydantic-lax: bools, integral floats, and strings of digits (signed, `_`-separated,
/// surrounded by whitespace, or with a zero fraction such as `"7.0"`).
pub fn int(given: Given<'_>, loc: &[Value], range: Range) -> Result<i64, FieldError> {
    let err = |kind, msg| Err(FieldError::new(kind, loc.to_vec(), msg, given.input()));
    let n: i128 = match given {
        Given::Json(PyValue::Bool(b)) => i128::from(*b),
        Given::Json(PyValue::Int(digits)) => match digits.parse::<i128>() {
            Ok(n) => n,
            Err(_) => {
                return range.check(
                    if digits.starts_with('-') { i128::MIN } else { i128::MAX },
                    loc,
                    given.input(),
                );
            }
        },
        Given::Json(PyValue::Float(f)) => {
            if !f.is_finite() {
                return err("finite_number", FINITE_MSG);
            }
            if f.fract() != 0.0 {
                return err("int_from_float", INT_FROM_FLOAT_MSG);
            }
            if f.abs() >= 9.223_372_036_854_776e18 {
                return err("int_parsing_size", SIZE_MSG);
            }
            *f as i128
        }
        _ => match given.text().map(int_text) {
            Some(Some(n)) => n,
            Some(None) => return err("int_parsing", INT_PARSING_MSG),
            None => return err("int_type", INT_TYPE_MSG),
        },
    };
    range.check(n, loc, given.input())
}

/// Python's `int(text)` after pydantic's strip, plus a zero fraction (`"7.0"`, `"1.00"`); a value past
/// `i128` saturates (the range check refuses it).
fn int_text(text: &str) -> Option<i128> {
    let t = text.trim();
    let t = match t.split_once('.') {
        Some((whole, frac)) if !frac.is_empty() && frac.bytes().all(|b| b == b'0') => whole,
        _ => t,
    };
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    // Digits, with single underscores only between two digits.
    let bytes = digits.as_bytes();
    let well_formed = !bytes.is_empty()
        && bytes.iter().enumerate().all(|(i, &b)| {
            b.is_ascii_digit()
                || (b == b'_'
                    && i > 0
                    && i + 1 < bytes.len()
                    && bytes[i - 1].is_ascii_digit()
                    && bytes[i + 1].is_ascii_digit())
        });
    if !well_formed {
        return None;
    }
    let mut n: i128 = 0;
    for b in bytes.iter().filter(|b| b.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(i128::from(b - b'0'));
    }
    Some(if negative { -n } else { n })
}

/// A number, pydantic-lax: bools, integers, floats and numeric strings; NaN and ±∞ are refused (the
/// original stored them and then could not answer any listing that held the row).
pub fn float(given: Given<'_>, loc: &[Value]) -> Result<f64, FieldError> {
    let err = |kind, msg| Err(FieldError::new(kind, loc.to_vec(), msg, given.input()));
    let f = match given {
        Given::Json(PyValue::Bool(b)) => f64::from(u8::from(*b)),
        Given::Json(PyValue::Int(digits)) => digits.parse::<f64>().unwrap_or(f64::NAN),
        Given::Json(PyValue::Float(f)) => *f,
        _ => match given.text().map(|s| s.trim().parse::<f64>()) {
            Some(Ok(f)) => f,
            Some(Err(_)) => {
                return err(
                    "float_parsing",
                    "Input should be a valid number, unable to parse string as a number",
                );
            }
            None => return err("float_type", "Input should be a valid number"),
        },
    };
    if f.is_finite() { Ok(f) } else { err("finite_number", FINITE_MSG) }
}

/// A string (JSON strings only, as pydantic), at most `max` characters and without NUL (PostgreSQL
/// cannot store it).
pub fn string(given: Given<'_>, loc: &[Value], max: usize) -> Result<String, FieldError> {
    let Some(s) = given.text() else {
        return Err(FieldError::new(
            "string_type",
            loc.to_vec(),
            "Input should be a valid string",
            given.input(),
        ));
    };
    if s.chars().count() > max {
        let msg = format!("String should have at most {max} characters");
        return Err(FieldError::new("string_too_long", loc.to_vec(), msg, given.input())
            .with_ctx(json!({ "max_length": max })));
    }
    if s.contains('\0') {
        let pattern = "^[^\\x00]*$";
        let msg = format!("String should match pattern '{pattern}'");
        return Err(FieldError::new("string_pattern_mismatch", loc.to_vec(), msg, given.input())
            .with_ctx(json!({ "pattern": pattern })));
    }
    Ok(s.to_owned())
}

/// The five states' names as pydantic lists them.
const EXPECTED_STATES: &str = "'pending', 'rejected', 'failed', 'success' or 'reversed'";

/// An order state: exactly one of the five lower-case names, whatever else is given (`null`, a number)
/// gets pydantic's `enum` error.
pub fn state(given: Given<'_>, loc: &[Value]) -> Result<OrderState, FieldError> {
    match given.text().and_then(|n| OrderState::ALL.into_iter().find(|s| s.as_str() == n)) {
        Some(s) => Ok(s),
        None => Err(FieldError::new(
            "enum",
            loc.to_vec(),
            format!("Input should be {EXPECTED_STATES}"),
            given.input(),
        )
        .with_ctx(json!({ "expected": EXPECTED_STATES }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Vec<Value> {
        vec!["body".into(), "user_id".into()]
    }

    fn int_of(v: PyValue) -> Result<i64, &'static str> {
        int(Given::Json(&v), &at(), Range::INT32).map_err(|e| e.kind)
    }

    #[test]
    fn integers_coerce_as_pydantic_lax_does() {
        assert_eq!(int_of(PyValue::Bool(true)), Ok(1));
        assert_eq!(int_of(PyValue::Float(7.0)), Ok(7));
        assert_eq!(int_of(PyValue::Float(100.0)), Ok(100));
        assert_eq!(int_of(PyValue::Float(7.5)), Err("int_from_float"));
        assert_eq!(int_of(PyValue::Float(1e20)), Err("int_parsing_size"));
        assert_eq!(int_of(PyValue::Float(f64::INFINITY)), Err("finite_number"));
        assert_eq!(int_of(PyValue::Null), Err("int_type"));
        assert_eq!(int_of(PyValue::Array(vec![])), Err("int_type"));
        for (text, n) in [(" 42 ", 42), ("+8", 8), ("1_000", 1000), ("7.0", 7), ("007", 7), ("-3", -3)] {
            assert_eq!(int_of(PyValue::Str(text.into())), Ok(n), "{text:?}");
        }
        for text in ["7.5", "1e3", "0x10", "", "true", "_1", "1__0", "1_", "1.", "--1"] {
            assert_eq!(int_of(PyValue::Str(text.into())), Err("int_parsing"), "{text:?}");
        }
        assert_eq!(int_of(PyValue::Int("2147483648".into())), Err("less_than_equal"));
        assert_eq!(int_of(PyValue::Int("-2147483649".into())), Err("greater_than_equal"));
        assert_eq!(int_of(PyValue::Int("1".repeat(60))), Err("less_than_equal"));
        let e = int(Given::Text("99999999999999999999"), &at(), Range::INT64).unwrap_err();
        assert_eq!((e.kind, e.ctx.map(|c| *c)), ("less_than_equal", Some(json!({"le": i64::MAX}))));
    }

    #[test]
    fn floats_strings_and_states() {
        let f = |v: PyValue| float(Given::Json(&v), &at()).map_err(|e| e.kind);
        assert_eq!(f(PyValue::Bool(true)), Ok(1.0));
        assert_eq!(f(PyValue::Str(" 2.5 ".into())), Ok(2.5));
        assert_eq!(f(PyValue::Str("1e3".into())), Ok(1000.0));
        assert_eq!(f(PyValue::Str("1,5".into())), Err("float_parsing"));
        assert_eq!(f(PyValue::Float(f64::NAN)), Err("finite_number"));
        assert_eq!(f(PyValue::Str("inf".into())), Err("finite_number"));
        assert_eq!(f(PyValue::Null), Err("float_type"));
        let s = |v: PyValue| string(Given::Json(&v), &at(), 100).map_err(|e| e.kind);
        assert_eq!(s(PyValue::Int("25".into())), Err("string_type"));
        assert_eq!(s(PyValue::Str("x".repeat(101))), Err("string_too_long"));
        assert_eq!(s(PyValue::Str("pika\0chu".into())), Err("string_pattern_mismatch"));
        let e = state(Given::Json(&PyValue::Str("SUCCESS".into())), &at()).unwrap_err();
        assert_eq!(e.msg, "Input should be 'pending', 'rejected', 'failed', 'success' or 'reversed'");
        assert_eq!(e.ctx.map(|c| *c), Some(json!({"expected": EXPECTED_STATES})));
        assert!(state(Given::Json(&PyValue::Null), &at()).is_err());
        assert_eq!(state(Given::Text("reversed"), &at()).unwrap(), OrderState::Reversed);
    }
}
