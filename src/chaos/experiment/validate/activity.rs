//! Validation of activities: the hypothesis, `method` and `rollbacks` entries, providers (`python`,
//! `process`, `http`) and pauses (seconds, templates and chaoslab's `wait-until`).

use serde_json::{Map, Value};

use super::{Checker, Place, child};
use crate::chaos::experiment::model::{
    Activity, ActivityEntry, ActivityKind, Dry, HttpProvider, Hypothesis, Pause, Pauses, ProcessProvider,
    Provider, PythonProvider, WaitUntil,
};
use crate::chaos::experiment::provider::process::which;

impl Checker<'_> {
    /// The hypothesis, with the document index of each valid probe.
    pub(super) fn hypothesis(&mut self, value: &Value) -> Option<(Vec<usize>, Hypothesis)> {
        let path = "$.steady-state-hypothesis";
        let Some(obj) = value.as_object() else {
            self.error(path, "the steady-state hypothesis must be a mapping");
            return None;
        };
        let title = self.required_text(obj, "title", path, "hypothesis requires a title");
        let controls = self.controls(obj.get("controls"), &child(path, "controls"));
        let (mut probes, mut indices) = (Vec::new(), Vec::new());
        match obj.get("probes") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, p) in items.iter().enumerate() {
                    if let Some(a) = self.activity(p, &format!("{path}.probes[{i}]"), Place::Hypothesis) {
                        probes.push(a);
                        indices.push(i);
                    }
                }
            }
            Some(_) => self.error(child(path, "probes"), "hypothesis probes must be a list"),
        }
        Some((indices, Hypothesis { title: title?, probes, controls, raw: value.clone() }))
    }

    /// The valid entries of a list, each with its index in the document (for error paths).
    pub(super) fn entries(&mut self, value: &Value, path: &str) -> Vec<(usize, ActivityEntry)> {
        let Some(items) = value.as_array() else {
            self.error(path, "must be a list of activities");
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| Some((i, self.entry(item, &format!("{path}[{i}]"))?)))
            .collect()
    }

    fn entry(&mut self, value: &Value, path: &str) -> Option<ActivityEntry> {
        match value.get("ref") {
            Some(Value::String(r)) if !r.is_empty() => Some(ActivityEntry::Ref(r.clone())),
            Some(_) => {
                self.error(child(path, "ref"), "reference to activity must be non-empty strings");
                None
            }
            None => self.activity(value, path, Place::Flow).map(|a| ActivityEntry::Inline(Box::new(a))),
        }
    }

    pub(super) fn activity(&mut self, value: &Value, path: &str, place: Place) -> Option<Activity> {
        let Some(obj) = value.as_object().filter(|o| !o.is_empty()) else {
            self.error(path, "empty activity is no activity");
            return None;
        };
        if obj.contains_key("ref") {
            self.error(child(path, "ref"), "a reference is not allowed here, declare the activity in place");
            return None;
        }
        let kind = match obj.get("type") {
            None => {
                self.error(child(path, "type"), "an activity must have a type");
                None
            }
            Some(t) => match serde_json::from_value::<ActivityKind>(t.clone()) {
                Ok(k) => Some(k),
                Err(_) => {
                    self.error(
                        child(path, "type"),
                        format!("'{}' is not a supported activity type", text_of(t)),
                    );
                    None
                }
            },
        };
        let name = self.required_text(obj, "name", path, "an activity must have a name");
        let provider = match obj.get("provider") {
            Some(p @ Value::Object(_)) => {
                self.provider(p, &child(path, "provider"), name.as_deref().unwrap_or(""))
            }
            _ => {
                self.error(child(path, "provider"), "an activity requires a provider");
                None
            }
        };
        let timeout = match obj.get("timeout") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => {
                self.error(child(path, "timeout"), "activity timeout must be a number");
                None
            }
        };
        let background = match obj.get("background") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.error(child(path, "background"), "activity background must be a boolean");
                false
            }
        };
        let pauses = self.pauses(obj.get("pauses"), &child(path, "pauses"));
        let controls = self.controls(obj.get("controls"), &child(path, "controls"));
        let dry = match obj.get("dry") {
            None | Some(Value::Null) => None,
            Some(d) => serde_json::from_value::<Dry>(d.clone())
                .map_err(|_| {
                    self.error(child(path, "dry"), "dry must be one of probes|actions|activities|pause")
                })
                .ok(),
        };
        let tolerance = match (obj.get("tolerance"), place) {
            (None, Place::Hypothesis) => {
                self.error(child(path, "tolerance"), "hypothesis probe must have a tolerance entry");
                None
            }
            (None, _) => None,
            (Some(t), _) => self.tolerance(t, &child(path, "tolerance")),
        };
        Some(Activity {
            kind: kind?,
            name: name?,
            provider: provider?,
            tolerance,
            background,
            pauses,
            timeout,
            controls,
            dry,
            raw: value.clone(),
        })
    }

    fn provider(&mut self, value: &Value, path: &str, activity: &str) -> Option<Provider> {
        let obj = value.as_object()?;
        match obj.get("type").and_then(Value::as_str) {
            None => {
                self.error(child(path, "type"), "a provider must have a type");
                None
            }
            Some("python") => self.python(obj, path).map(Provider::Python),
            Some("process") => self.process(obj, path, activity).map(Provider::Process),
            Some("http") => self.http(obj, path).map(Provider::Http),
            Some(other) => {
                self.error(child(path, "type"), format!("unknown provider type '{other}'"));
                None
            }
        }
    }

    fn python(&mut self, obj: &Map<String, Value>, path: &str) -> Option<PythonProvider> {
        let module = self.required_text(obj, "module", path, "a Python activity must have a module path");
        let func = self.required_text(obj, "func", path, "a Python activity must have a function name");
        let arguments = match obj.get("arguments") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(a)) => a.clone(),
            Some(_) => {
                self.error(child(path, "arguments"), "arguments must be a mapping");
                Map::new()
            }
        };
        let secrets = self.string_list(
            obj.get("secrets"),
            &child(path, "secrets"),
            "secrets must be a list of scope names",
        );
        let (module, func) = (module?, func?);
        if !self.providers.knows(&module, &func) {
            self.error(
                child(path, "func"),
                format!("could not find Python function '{func}' in module '{module}'"),
            );
        } else if let Err(why) = self.providers.check_arguments(&module, &func, &arguments) {
            self.error(child(path, "arguments"), why);
        }
        Some(PythonProvider { module, func, arguments, secrets })
    }

    fn process(&mut self, obj: &Map<String, Value>, path: &str, activity: &str) -> Option<ProcessProvider> {
        let raw_path = self.required_text(obj, "path", path, "a process activity must have a path")?;
        if which(&raw_path).is_none() {
            self.error(
                child(path, "path"),
                format!("path '{raw_path}' cannot be found or is not executable, in activity '{activity}'"),
            );
        }
        let arguments = obj.get("arguments").cloned().unwrap_or(Value::Null);
        if !matches!(arguments, Value::Null | Value::Array(_) | Value::String(_) | Value::Object(_)) {
            self.error(child(path, "arguments"), "process arguments must be a list, a string or a mapping");
        }
        let timeout = match obj.get("timeout") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => {
                self.error(child(path, "timeout"), "process timeout must be a number");
                None
            }
        };
        Some(ProcessProvider { path: raw_path, arguments, timeout })
    }

    fn http(&mut self, obj: &Map<String, Value>, path: &str) -> Option<HttpProvider> {
        let url = self.required_text(obj, "url", path, "a HTTP activity must have a URL");
        let method = self.optional_text(obj, "method", path).unwrap_or_else(|| "GET".to_owned());
        let headers = match obj.get("headers") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(h)) => h.clone(),
            Some(_) => {
                self.error(child(path, "headers"), "a HTTP activities expect headers as a mapping");
                Map::new()
            }
        };
        let timeout = obj.get("timeout").filter(|t| !t.is_null()).cloned();
        let timeout_ok = match &timeout {
            None | Some(Value::Number(_)) => true,
            Some(Value::String(s)) => is_template(s),
            Some(Value::Array(pair)) => {
                pair.len() == 2 && pair.iter().all(|t| t.is_number() || t.as_str().is_some_and(is_template))
            }
            Some(_) => false,
        };
        if !timeout_ok {
            self.error(
                child(path, "timeout"),
                "HTTP timeout must be a number or a pair [connect, read] of numbers",
            );
        }
        let verify_tls = match obj.get("verify_tls") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.error(child(path, "verify_tls"), "verify_tls must be a boolean");
                true
            }
        };
        let max_retries = match obj.get("max_retries") {
            None | Some(Value::Null) => 0,
            Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) => n,
                None => {
                    self.error(child(path, "max_retries"), "max_retries must be a non-negative integer");
                    0
                }
            },
        };
        Some(HttpProvider {
            url: url?,
            method: method.to_ascii_uppercase(),
            headers,
            arguments: obj.get("arguments").filter(|a| !a.is_null()).cloned(),
            timeout,
            verify_tls,
            max_retries,
        })
    }

    fn pauses(&mut self, value: Option<&Value>, path: &str) -> Pauses {
        let mut pauses = Pauses::default();
        let Some(map) = self.mapping(value, path) else { return pauses };
        pauses.before = map.get("before").and_then(|p| self.pause(p, &child(path, "before")));
        pauses.after = map.get("after").and_then(|p| self.pause(p, &child(path, "after")));
        pauses
    }

    fn pause(&mut self, value: &Value, path: &str) -> Option<Pause> {
        match value {
            Value::Null => None,
            Value::Number(n) => match n.as_f64().filter(|s| *s >= 0.0) {
                Some(s) => Some(Pause::Seconds(s)),
                None => {
                    self.error(path, "a pause must be a non-negative number of seconds");
                    None
                }
            },
            Value::String(s) if is_template(s) => Some(Pause::Template(s.clone())),
            Value::Object(obj) if obj.contains_key("wait-until") => {
                self.wait_until(&obj["wait-until"], &child(path, "wait-until"))
            }
            _ => {
                self.error(
                    path,
                    "activity pause must be a number or a pattern to a variable from the configuration or secrets \
                     (or, in chaoslab, {wait-until: {probe, timeout, frequency}})",
                );
                None
            }
        }
    }

    fn wait_until(&mut self, value: &Value, path: &str) -> Option<Pause> {
        let Some(obj) = value.as_object() else {
            self.error(path, "wait-until must be a mapping with `probe`, `timeout` and `frequency`");
            return None;
        };
        let probe = match obj.get("probe") {
            Some(Value::Object(p)) if p.contains_key("ref") => {
                self.entry(&obj["probe"], &child(path, "probe"))
            }
            Some(p @ Value::Object(_)) => {
                let probe = self.activity(p, &child(path, "probe"), Place::Nested);
                if probe.as_ref().is_some_and(|a| a.tolerance.is_none()) {
                    self.error(
                        child(&child(path, "probe"), "tolerance"),
                        "a wait-until probe needs a tolerance",
                    );
                }
                probe.map(|a| ActivityEntry::Inline(Box::new(a)))
            }
            _ => {
                self.error(
                    child(path, "probe"),
                    "wait-until needs a `probe` (an activity with a tolerance, or a ref)",
                );
                None
            }
        };
        let seconds = |key: &str, default: Option<f64>, checker: &mut Self| match obj.get(key) {
            None => {
                if default.is_none() {
                    checker.error(child(path, key), format!("wait-until needs a `{key}` in seconds"));
                }
                default
            }
            Some(v) => match v.as_f64().filter(|s| *s > 0.0) {
                Some(s) => Some(s),
                None => {
                    checker.error(
                        child(path, key),
                        format!("wait-until `{key}` must be a positive number of seconds"),
                    );
                    None
                }
            },
        };
        let timeout = seconds("timeout", None, self);
        let frequency = seconds("frequency", Some(1.0), self);
        Some(Pause::WaitUntil(WaitUntil {
            probe: Box::new(probe?),
            timeout: timeout?,
            frequency: frequency?,
        }))
    }
}

/// `"${name}"`: the only string form a pause or timeout may take.
fn is_template(s: &str) -> bool {
    s.starts_with("${") && s.ends_with('}')
}

fn text_of(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}
