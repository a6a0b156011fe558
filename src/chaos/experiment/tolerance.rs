//! Tolerances: does a steady-state probe's output pass?
//!
//! chaostoolkit-lib's `within_tolerance` dispatches on the JSON type of the tolerance (see
//! [`Tolerance`]) and compares with Python semantics (see [`pyvalue`](super::pyvalue)). Where the lib
//! would raise out of the comparison (a regex against a number, `"a" <= 3`, a range check of `None`)
//! and crash the whole run, chaoslab counts the tolerance as *not met* and logs why.
//!
//! Dialects differ slightly: regexes use Rust's `regex` syntax (no look-around or back-references,
//! unlike Python's `re`), and JSONPath follows RFC 9535 through `jsonpath-rust` (filters compare with
//! `==` where the lib's `jsonpath2` used `=`).

use std::cmp::Ordering;

use jsonpath_rust::JsonPath;
use serde_json::{Map, Number, Value};

use super::model::{Activity, Provider, Tolerance};
use super::provider::{PythonProviders, run_provider};
use super::pyvalue::{Numeric, as_numeric, py_cmp, py_eq, py_str, py_truthy};
use super::substitute::{Bindings, substitute, substitute_str};

/// True when `value` (a probe's output) is within `tolerance`. `bindings` substitute `${…}` in
/// string, regex and JSONPath tolerances; `python` runs probe tolerances.
pub async fn within_tolerance(
    tolerance: &Tolerance,
    value: &Value,
    bindings: &Bindings<'_>,
    python: &dyn PythonProviders,
) -> bool {
    match tolerance {
        Tolerance::Probe(probe) => probe_tolerance(probe, value, bindings, python).await,
        other => check(other, value, bindings),
    }
}

/// Every tolerance kind but the probe one (which needs to run a provider).
fn check(tolerance: &Tolerance, value: &Value, bindings: &Bindings<'_>) -> bool {
    match tolerance {
        Tolerance::Bool(b) => py_eq(value, &Value::Bool(*b)),
        Tolerance::Str(s) => py_eq(value, &substitute_str(s, bindings)),
        Tolerance::Int(n) => py_eq(status_or_value(value), &Value::Number(n.clone())),
        Tolerance::List(items) => list_tolerance(items, value),
        Tolerance::Regex { pattern, target } => regex_tolerance(pattern, targeted(value, target), bindings),
        Tolerance::JsonPath { path, expect, count, target } => {
            jsonpath_tolerance(path, expect.as_ref(), *count, targeted(value, target), bindings)
        }
        Tolerance::Range { lo, hi, target } => range_tolerance(lo, hi, targeted(value, target)),
        Tolerance::Probe(_) => false,
    }
}

/// `value["status"]` for a response-like dict, the value itself otherwise.
fn status_or_value(value: &Value) -> &Value {
    value.as_object().and_then(|o| o.get("status")).unwrap_or(value)
}

/// `value.get(target, value)` for a dict value with a `target`.
fn targeted<'v>(value: &'v Value, target: &Option<String>) -> &'v Value {
    match (target, value) {
        (Some(key), Value::Object(map)) => map.get(key).unwrap_or(value),
        _ => value,
    }
}

fn list_tolerance(items: &[Value], value: &Value) -> bool {
    if let Some(status) = value.as_object().and_then(|o| o.get("status")) {
        return items.iter().any(|i| py_eq(i, status));
    }
    if let [lo, hi] = items {
        let within = matches!(py_cmp(lo, value), Some(Ordering::Less | Ordering::Equal))
            && matches!(py_cmp(value, hi), Some(Ordering::Less | Ordering::Equal));
        if py_cmp(lo, value).is_none() || py_cmp(value, hi).is_none() {
            tracing::warn!(%value, "range tolerance cannot compare the value with its bounds; not met");
        }
        return within;
    }
    items.iter().any(|i| py_eq(i, value))
}

fn regex_tolerance(pattern: &str, value: &Value, bindings: &Bindings<'_>) -> bool {
    let pattern = py_str(&substitute_str(pattern, bindings));
    tracing::debug!(%pattern, "applied regex pattern");
    let regex = match regex::Regex::new(&pattern) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%pattern, error = %e, "invalid regex tolerance; not met");
            return false;
        }
    };
    match value.as_str() {
        Some(text) => regex.is_match(text),
        None => {
            tracing::warn!(%value, "regex tolerance needs a string value; not met");
            false
        }
    }
}

fn jsonpath_tolerance(
    path: &str,
    expect: Option<&Value>,
    count: Option<u64>,
    value: &Value,
    bindings: &Bindings<'_>,
) -> bool {
    let path = py_str(&substitute_str(path, bindings));
    tracing::debug!(%path, "applied jsonpath");
    // A string value is a JSON document when it parses as one (an http body, a describe_kafka_topic
    // result), else it is queried as a plain string.
    let parsed;
    let document = match value {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(v) => {
                parsed = v;
                &parsed
            }
            Err(_) => value,
        },
        other => other,
    };
    let found: Vec<Value> = match document.query(path.trim()) {
        Ok(matches) => matches.into_iter().cloned().collect(),
        Err(e) => {
            tracing::warn!(%path, error = %e, "invalid JSONPath tolerance; not met");
            return false;
        }
    };
    let mut result = !found.is_empty();
    if let Some(n) = count {
        result = found.len() as u64 == n;
    }
    if let Some(expect) = expect {
        let expected = match substitute(expect, bindings) {
            Value::Array(items) => items,
            single => vec![single],
        };
        result = found.len() == expected.len() && found.iter().zip(&expected).all(|(f, e)| py_eq(f, e));
    }
    if !result {
        let found = Value::Array(found);
        tracing::debug!(%found, "jsonpath tolerance not met");
    }
    result
}

fn range_tolerance(lo: &Number, hi: &Number, value: &Value) -> bool {
    let number = match value {
        Value::String(text) => Numeric::parse(text),
        other => as_numeric(other),
    };
    let (Some(v), Some(lo), Some(hi)) = (number, Numeric::from_number(lo), Numeric::from_number(hi)) else {
        tracing::debug!(%value, "range check expects a number value");
        return false;
    };
    matches!(lo.cmp_to(&v), Some(Ordering::Less | Ordering::Equal))
        && matches!(v.cmp_to(&hi), Some(Ordering::Less | Ordering::Equal))
}

/// Calls the tolerance probe with `arguments.value = value`; it passes when its result is truthy and
/// fails when it fails. (The value goes into mapping-shaped arguments: python and http providers, or a
/// process provider given a mapping.)
async fn probe_tolerance(
    probe: &Activity,
    value: &Value,
    bindings: &Bindings<'_>,
    python: &dyn PythonProviders,
) -> bool {
    let mut probe = probe.clone();
    match &mut probe.provider {
        Provider::Python(p) => {
            p.arguments.insert("value".to_owned(), value.clone());
        }
        Provider::Http(p) => {
            let mut args = p.arguments.take().and_then(|a| a.as_object().cloned()).unwrap_or_else(Map::new);
            args.insert("value".to_owned(), value.clone());
            p.arguments = Some(Value::Object(args));
        }
        Provider::Process(p) => {
            if let Value::Object(args) = &mut p.arguments {
                args.insert("value".to_owned(), value.clone());
            }
        }
    }
    match run_provider(&probe, bindings, python).await {
        Ok(result) => py_truthy(&result),
        Err(e) => {
            tracing::debug!(probe = %probe.name, error = %e, "tolerance probe failed; not met");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chaos::experiment::model::Configuration;
    use crate::chaos::experiment::substitute::Outputs;
    use crate::chaos::experiment::testkit::{FakePython, tolerance};

    async fn holds(tol: Value, value: Value) -> bool {
        holds_with(tol, value, &FakePython::new()).await
    }

    async fn holds_with(tol: Value, value: Value, python: &FakePython) -> bool {
        let configuration: Configuration =
            json!({"expected": "ok", "threshold": 5, "path": "$.partitions"}).as_object().cloned().unwrap();
        let secrets = Configuration::new();
        let outputs = Outputs::new();
        let b = Bindings { configuration: &configuration, secrets: &secrets, outputs: &outputs };
        within_tolerance(&tolerance(tol), &value, &b, python).await
    }

    #[tokio::test]
    async fn bool_tolerance() {
        assert!(holds(json!(true), json!(true)).await);
        assert!(holds(json!(true), json!(1)).await);
        assert!(!holds(json!(true), json!(false)).await);
        assert!(!holds(json!(false), json!(null)).await);
    }

    #[tokio::test]
    async fn string_tolerance_substitutes_first() {
        assert!(holds(json!("ok"), json!("ok")).await);
        assert!(holds(json!("${expected}"), json!("ok")).await);
        assert!(holds(json!("${threshold}"), json!(5)).await);
        assert!(!holds(json!("ok"), json!("OK")).await);
    }

    #[tokio::test]
    async fn int_tolerance_reads_status_of_responses() {
        assert!(holds(json!(200), json!({"status": 200, "body": "x"})).await);
        assert!(!holds(json!(200), json!({"status": 503})).await);
        assert!(holds(json!(0), json!(0)).await);
        assert!(holds(json!(1), json!(true)).await);
        assert!(!holds(json!(0), json!({"body": 0})).await);
    }

    #[tokio::test]
    async fn list_tolerance_status_range_and_membership() {
        assert!(holds(json!([200, 204, 301]), json!({"status": 204})).await);
        assert!(holds(json!([0, 10]), json!(10)).await);
        assert!(holds(json!([0, 10]), json!(2.5)).await);
        assert!(!holds(json!([0, 10]), json!(11)).await);
        assert!(!holds(json!([0, 10]), json!("5")).await);
        assert!(holds(json!(["a", "b", "c"]), json!("b")).await);
        assert!(!holds(json!(["a", "b", "c"]), json!("d")).await);
    }

    #[tokio::test]
    async fn range_tolerance_is_inclusive_and_decimal() {
        let tol = json!({"type": "range", "range": [1, 5.5], "target": "lag"});
        assert!(holds(tol.clone(), json!({"lag": 5.5})).await);
        assert!(holds(tol.clone(), json!({"lag": "3"})).await);
        assert!(holds(tol.clone(), json!(1)).await);
        assert!(!holds(tol.clone(), json!({"lag": 6})).await);
        assert!(!holds(tol, json!({"lag": "many"})).await);
    }

    #[tokio::test]
    async fn regex_tolerance_searches_with_substitution() {
        let tol = json!({"type": "regex", "pattern": "number [0-9]+", "target": "body"});
        assert!(holds(tol.clone(), json!({"status": 200, "body": "you are number 87"})).await);
        assert!(!holds(tol, json!({"body": "you are first"})).await);
        assert!(holds(json!({"type": "regex", "pattern": "^${expected}$"}), json!("ok")).await);
        assert!(!holds(json!({"type": "regex", "pattern": "1"}), json!(1)).await);
    }

    #[tokio::test]
    async fn jsonpath_tolerance_matches_counts_and_expects() {
        let topic = json!(
            r#"{"topic": "poke-orders", "partitions": 3,
            "partitions_info": {"0": {"leader": 1, "isr": [1]}, "1": {"leader": -1, "isr": []}}}"#
        );
        assert!(holds(json!({"type": "jsonpath", "path": "$.partitions"}), topic.clone()).await);
        assert!(holds(json!({"type": "jsonpath", "path": "${path}", "expect": 3}), topic.clone()).await);
        assert!(
            !holds(json!({"type": "jsonpath", "path": "$.partitions", "expect": 4}), topic.clone()).await
        );
        let leaders = json!({"type": "jsonpath", "path": "$.partitions_info.*.leader", "expect": [1, -1]});
        assert!(holds(leaders, topic.clone()).await);
        let offline = json!({"type": "jsonpath", "path": "$.partitions_info[?@.leader == -1]", "count": 0});
        assert!(!holds(offline.clone(), topic.clone()).await);
        assert!(!holds(json!({"type": "jsonpath", "path": "$.missing"}), topic).await);
        let body = json!({"status": 200, "body": {"items": [{"ok": true}, {"ok": true}]}});
        assert!(
            holds(json!({"type": "jsonpath", "path": "$.items[*].ok", "count": 2, "target": "body"}), body)
                .await
        );
    }

    #[tokio::test]
    async fn probe_tolerance_passes_the_value_and_reads_truthiness() {
        let python = FakePython::new()
            .with("checks", "lag_is_low", |args| Ok(json!(args["value"].as_i64().unwrap_or(99) < 10)))
            .with("checks", "describe", |_| Ok(json!({})))
            .with("checks", "broken", |_| {
                Err(crate::chaos::experiment::provider::ActivityError::failed("no"))
            });
        let probe = |func: &str| json!({"type": "probe", "name": "p", "provider": {"type": "python", "module": "checks", "func": func}});
        assert!(holds_with(probe("lag_is_low"), json!(3), &python).await);
        assert!(!holds_with(probe("lag_is_low"), json!(30), &python).await);
        assert!(!holds_with(probe("describe"), json!(3), &python).await);
        assert!(!holds_with(probe("broken"), json!(3), &python).await);
        assert_eq!(python.calls()[0].args, json!({"value": 3}));
    }
}
