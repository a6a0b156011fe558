//! Validation of probe tolerances: literals, ranges, regular expressions, JSON paths and probes.

use serde_json::{Number, Value};

use super::{Checker, Place, child};
use crate::chaos::experiment::model::Tolerance;

const TOLERANCE_KINDS: &str = "hypothesis probe tolerance must either be an integer, a string, a boolean or a \
     pair of values for boundaries. It can also be a dictionary which is a probe activity definition that \
     takes an argument called `value` with the value of the probe itself to be validated";

impl Checker<'_> {
    pub(super) fn tolerance(&mut self, value: &Value, path: &str) -> Option<Tolerance> {
        let target = |checker: &mut Self| -> Option<String> {
            value.as_object().and_then(|o| checker.optional_text(o, "target", path))
        };
        match value {
            Value::Bool(b) => Some(Tolerance::Bool(*b)),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(Tolerance::Int(n.clone())),
            Value::String(s) => Some(Tolerance::Str(s.clone())),
            Value::Array(items) => Some(Tolerance::List(items.clone())),
            Value::Object(obj) => match obj.get("type").and_then(Value::as_str) {
                Some("probe") => {
                    self.activity(value, path, Place::Nested).map(|a| Tolerance::Probe(Box::new(a)))
                }
                Some("regex") => {
                    let pattern = self.required_text(
                        obj,
                        "pattern",
                        path,
                        "hypothesis regex probe tolerance must have a `pattern` key",
                    )?;
                    if !pattern.contains("${")
                        && let Err(e) = regex::Regex::new(&pattern)
                    {
                        self.error(
                            child(path, "pattern"),
                            format!("hypothesis probe tolerance pattern {pattern} seems invalid: {e}"),
                        );
                    }
                    Some(Tolerance::Regex { pattern, target: target(self) })
                }
                Some("jsonpath") => {
                    let jsonpath = self.required_text(
                        obj,
                        "path",
                        path,
                        "hypothesis jsonpath probe tolerance must have a non-empty `path` key",
                    )?;
                    if !jsonpath.contains("${")
                        && jsonpath_rust::parser::parse_json_path(jsonpath.trim()).is_err()
                    {
                        self.error(
                            child(path, "path"),
                            format!("hypothesis probe tolerance JSON path {jsonpath} is invalid"),
                        );
                    }
                    let count = match obj.get("count") {
                        None | Some(Value::Null) => None,
                        Some(c) => match c.as_u64() {
                            Some(n) => Some(n),
                            None => {
                                self.error(
                                    child(path, "count"),
                                    "jsonpath count must be a non-negative integer",
                                );
                                None
                            }
                        },
                    };
                    Some(Tolerance::JsonPath {
                        path: jsonpath,
                        expect: obj.get("expect").cloned(),
                        count,
                        target: target(self),
                    })
                }
                Some("range") => {
                    let bounds: Option<(Number, Number)> = match obj.get("range") {
                        None => {
                            self.error(
                                child(path, "range"),
                                "hypothesis range probe tolerance must have a `range` key",
                            );
                            None
                        }
                        Some(Value::Array(pair)) if pair.len() == 2 => match (&pair[0], &pair[1]) {
                            (Value::Number(lo), Value::Number(hi)) => Some((lo.clone(), hi.clone())),
                            (lo, _) => {
                                let which = if lo.is_number() { "upper" } else { "lower" };
                                self.error(
                                    child(path, "range"),
                                    format!("hypothesis range {which} boundary must be a number"),
                                );
                                None
                            }
                        },
                        Some(Value::Array(_)) => {
                            self.error(
                                child(path, "range"),
                                "hypothesis range sequence must be made of two values",
                            );
                            None
                        }
                        Some(_) => {
                            self.error(child(path, "range"), "hypothesis range must be a sequence");
                            None
                        }
                    };
                    let (lo, hi) = bounds?;
                    Some(Tolerance::Range { lo, hi, target: target(self) })
                }
                other => {
                    self.error(
                        child(path, "type"),
                        format!(
                            "hypothesis probe tolerance type '{}' is unsupported",
                            other.unwrap_or("None")
                        ),
                    );
                    None
                }
            },
            Value::Null | Value::Number(_) => {
                self.error(path, TOLERANCE_KINDS);
                None
            }
        }
    }
}
