//! The parameter grid: each parameter's values (a list, or a range `"20ms..400ms/20ms"`, `"1..5/1"`),
//! every combination a point, and `${name}` placeholders in chaos files replaced by a point's values.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One parameter's values as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Values {
    /// `["0ms", "100ms"]` or `[1, 2]`.
    List(Vec<toml::Value>),
    /// `"0ms..400ms/20ms"`: from, to (included), step; durations or numbers.
    Range(String),
}

/// A value of a point: its text (what `${name}` becomes) and a number for plots and regressions
/// (durations in milliseconds).
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// As substituted.
    pub text: String,
    /// As plotted (none for text that is no number or duration).
    pub number: Option<f64>,
}

/// A number or a duration in milliseconds, with how to write a value back (`ms`, `s`, or none).
fn number(text: &str) -> Option<(f64, &'static str)> {
    let t = text.trim();
    if let Ok(n) = t.parse::<f64>() {
        return Some((n, ""));
    }
    let d = crate::mesh::duration::parse(t).ok()?;
    let unit = if t.ends_with("ms") { "ms" } else { "s" };
    Some((d.nanos as f64 / 1e6, unit))
}

fn value(text: String) -> Value {
    Value { number: number(&text).map(|n| n.0), text }
}

impl Values {
    /// The values, or why not.
    pub fn expand(&self) -> Result<Vec<Value>, String> {
        match self {
            Values::List(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(value(s.clone())),
                    toml::Value::Integer(i) => Ok(value(i.to_string())),
                    toml::Value::Float(f) => Ok(value(f.to_string())),
                    other => Err(format!("{other} is not a string or a number")),
                })
                .collect(),
            Values::Range(text) => {
                let bad = || format!("{text:?} is not a range such as 20ms..400ms/20ms or 1..5/1");
                let (span, step) = text.split_once('/').ok_or_else(bad)?;
                let (from, to) = span.split_once("..").ok_or_else(bad)?;
                let ((a, unit), (b, _), (s, _)) = (
                    number(from).ok_or_else(bad)?,
                    number(to).ok_or_else(bad)?,
                    number(step).ok_or_else(bad)?,
                );
                if s <= 0.0 || b < a {
                    return Err(format!(
                        "{text:?}: the step must be positive and the end not below the start"
                    ));
                }
                let count = ((b - a) / s + 1e-9).floor() as usize + 1;
                if count > 10_000 {
                    return Err(format!("{text:?} has {count} values; at most 10000"));
                }
                // Durations are written back in the unit of the start (`ms` for 20ms..), numbers as numbers.
                let write = |v: f64| match unit {
                    "ms" => format!("{}ms", round(v)),
                    "s" => format!("{}s", round(v / 1000.0)),
                    _ => round(v),
                };
                Ok((0..count).map(|i| value(write(a + s * i as f64))).collect())
            }
        }
    }
}

fn round(v: f64) -> String {
    let r = (v * 1e6).round() / 1e6;
    if r.fract() == 0.0 { format!("{}", r as i64) } else { format!("{r}") }
}

/// The expanded grid: parameter names (sorted) and every point, the last parameter varying fastest.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    /// Parameter names.
    pub names: Vec<String>,
    /// Points: one value per name.
    pub points: Vec<Vec<Value>>,
}

impl Grid {
    /// Expands `params`; the error names the parameter.
    pub fn new(params: &BTreeMap<String, Values>) -> Result<Grid, (String, String)> {
        let mut points: Vec<Vec<Value>> = vec![Vec::new()];
        for (name, values) in params {
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.is_empty() {
                return Err((name.clone(), "a parameter name is letters, digits and _".into()));
            }
            let values = values.expand().map_err(|e| (name.clone(), e))?;
            if values.is_empty() {
                return Err((name.clone(), "no values".into()));
            }
            points = points
                .into_iter()
                .flat_map(|p| {
                    values.iter().map(move |v| {
                        let mut q = p.clone();
                        q.push(v.clone());
                        q
                    })
                })
                .collect();
            if points.len() > 100_000 {
                return Err((name.clone(), "the grid has more than 100000 points".into()));
            }
        }
        Ok(Grid { names: params.keys().cloned().collect(), points })
    }

    /// A point's label in file names: its values joined by `-` (`20ms`, `20ms-3`), or `base` without
    /// parameters.
    pub fn label(point: &[Value]) -> String {
        if point.is_empty() {
            return "base".into();
        }
        let joined: Vec<String> = point.iter().map(|v| v.text.clone()).collect();
        joined
            .join("-")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
            .collect()
    }
}

/// The `${name}` placeholders of a text, in order of first use.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        rest = &rest[i + 2..];
        if let Some(j) = rest.find('}') {
            let name = rest[..j].to_string();
            if !out.contains(&name) {
                out.push(name);
            }
            rest = &rest[j + 1..];
        }
    }
    out
}

/// `text` with `${name}` replaced by the point's values.
pub fn substitute(text: &str, names: &[String], point: &[Value]) -> String {
    let mut out = text.to_string();
    for (name, v) in names.iter().zip(point) {
        out = out.replace(&format!("${{{name}}}"), &v.text);
    }
    out
}

/// Every string of `value` with `${name}` replaced by the point's values; a string that is one placeholder
/// and whose value is a plain number becomes that number (`"${percent}"` → `50`).
pub fn substitute_json(value: serde_json::Value, names: &[String], point: &[Value]) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        J::String(s) => {
            let whole = names.iter().zip(point).find(|(n, _)| s == format!("${{{n}}}"));
            match whole.and_then(|(_, v)| v.text.trim().parse::<f64>().ok()) {
                Some(n) => serde_json::Number::from_f64(n)
                    .map(|n| match n.as_f64() {
                        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => J::from(f as i64),
                        _ => J::Number(n),
                    })
                    .unwrap_or(J::String(s)),
                None => J::String(substitute(&s, names, point)),
            }
        }
        J::Array(items) => J::Array(items.into_iter().map(|v| substitute_json(v, names, point)).collect()),
        J::Object(map) => {
            J::Object(map.into_iter().map(|(k, v)| (k, substitute_json(v, names, point))).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> Vec<String> {
        Values::Range(s.into()).expand().unwrap().into_iter().map(|v| v.text).collect()
    }

    #[test]
    fn ranges_lists_and_points() {
        assert_eq!(range("0ms..100ms/20ms"), ["0ms", "20ms", "40ms", "60ms", "80ms", "100ms"]);
        assert_eq!(range("1..2/0.5"), ["1", "1.5", "2"]);
        assert_eq!(range("1s..3s/1s"), ["1s", "2s", "3s"]);
        let v = Values::Range("0ms..400ms/20ms".into()).expand().unwrap();
        assert_eq!((v.len(), v[1].number), (21, Some(20.0)));
        assert!(Values::Range("5..1/1".into()).expand().is_err());
        assert!(Values::Range("a..b/c".into()).expand().unwrap_err().contains("not a range"));
        let params: BTreeMap<String, Values> = [
            ("latency".to_string(), Values::Range("10ms..20ms/10ms".into())),
            ("loss".to_string(), Values::List(vec![toml::Value::Integer(1), toml::Value::Integer(5)])),
        ]
        .into();
        let g = Grid::new(&params).unwrap();
        let labels: Vec<String> = g.points.iter().map(|p| Grid::label(p)).collect();
        assert_eq!(labels, ["10ms-1", "10ms-5", "20ms-1", "20ms-5"]);
        assert_eq!(Grid::new(&BTreeMap::new()).unwrap().points, vec![Vec::<Value>::new()]);
    }

    #[test]
    fn placeholders_are_found_and_replaced() {
        let text = "latency: '${latency}'\njitter: '${jitter}'\nagain: ${latency}\n";
        assert_eq!(placeholders(text), ["latency", "jitter"]);
        let names = vec!["jitter".to_string(), "latency".to_string()];
        let point = vec![value("0ms".into()), value("20ms".into())];
        assert_eq!(substitute(text, &names, &point), "latency: '20ms'\njitter: '0ms'\nagain: 20ms\n");
        let names = vec!["latency".to_string(), "percent".to_string()];
        let point = vec![value("20ms".into()), value("50".into())];
        let request = serde_json::json!({"parameters": {"latency": "${latency}", "percent": "${percent}",
            "note": "at ${percent} %", "list": ["${latency}"]}});
        assert_eq!(
            substitute_json(request, &names, &point),
            serde_json::json!({"parameters": {"latency": "20ms", "percent": 50, "note": "at 50 %", "list": ["20ms"]}})
        );
    }
}
