//! Validation: from a raw JSON document to an [`Experiment`], reporting *every* problem.
//!
//! The rules are chaostoolkit-lib's `ensure_experiment_is_valid` and the checks it calls (activity,
//! provider, hypothesis, tolerance, controls, extensions), with messages worded like the lib's. The
//! lib stops at the first problem; here each problem is collected with the JSON path of the value at
//! fault (`$.method[2].provider.func`), so one pass over a broken experiment shows everything to fix.
//!
//! [`file_problems`] turns the problems into [`crate::config::Problems`] of the experiment file, each
//! printed `file:line:$.json.path: message` with the line of the value at fault (YAML and JSON alike).
//!
//! Resolving environment variables is not validation here: it depends on where the run happens, so
//! it belongs to [`resolve_vars`](super::config::resolve_vars), which reports with the same paths.
//!
//! Stricter than the lib, on purpose: references in `rollbacks` must resolve too (the lib would
//! crash at run time), and a steady-state probe cannot be a `{ref}` (its tolerance would come from
//! the referencing entry, a corner the lib handles by accident).
//!
//! Files: `mod.rs` (the entry points, the checker and the document's top-level sections),
//! `activity.rs` (activities, providers and pauses), `tolerance.rs` (probe tolerances), `controls.rs`
//! (control declarations), `problems.rs` (the problems with their file and line).

mod activity;
mod controls;
mod problems;
mod tolerance;

use std::fmt;

use serde_json::{Map, Value};

use super::control::Controls;
use super::model::{
    Activity, ActivityEntry, ConfigValue, EnvRef, EnvVarType, Experiment, Pause, Runtime, SecretValue,
};
use super::provider::PythonProviders;

pub use problems::{check_text, file_problems, problems_in};

/// One problem, at a JSON path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// Where, e.g. `$.method[2].provider.func`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ValidationError {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ValidationError {}

/// Validates `raw` against the experiment format; `providers` answers whether `python` providers
/// exist. Declared controls are checked for shape only (see [`validate_with_controls`]).
pub fn validate(raw: &Value, providers: &dyn PythonProviders) -> Result<Experiment, Vec<ValidationError>> {
    let mut checker = Checker { errors: Vec::new(), providers };
    let experiment = checker.experiment(raw);
    match experiment {
        Some(e) if checker.errors.is_empty() => Ok(e),
        _ => Err(checker.errors),
    }
}

/// An activity a control declares in its `arguments` (a safeguard probe), checked as the activities
/// nested in an experiment are (no `{ref}`, a tolerance optional), with problems under `path`.
pub fn validate_activity(
    raw: &Value,
    path: &str,
    providers: &dyn PythonProviders,
) -> Result<Activity, Vec<ValidationError>> {
    let mut checker = Checker { errors: Vec::new(), providers };
    match checker.activity(raw, path, Place::Nested) {
        Some(a) if checker.errors.is_empty() => Ok(a),
        _ => Err(checker.errors),
    }
}

/// [`validate`], and every declared control must be one `controls` knows (the lib imports each
/// control module while validating) and pass its own checks ([`Controls::validate`]).
pub fn validate_with_controls(
    raw: &Value,
    providers: &dyn PythonProviders,
    controls: &dyn Controls,
) -> Result<Experiment, Vec<ValidationError>> {
    let mut errors = Vec::new();
    let experiment = validate(raw, providers).map_err(|e| errors.extend(e)).ok();
    let mut check = |list: &Value, path: String| {
        for (i, c) in list.as_array().into_iter().flatten().enumerate() {
            let Some(module) = c.pointer("/provider/module").and_then(Value::as_str) else { continue };
            if controls.knows(module) {
                errors.extend(controls.validate(c, &format!("{path}[{i}]"), providers));
            } else {
                errors.push(ValidationError::new(
                    format!("{path}[{i}].provider.module"),
                    format!("could not find control module '{module}'"),
                ));
            }
        }
    };
    check(&raw["controls"], "$.controls".into());
    check(&raw["steady-state-hypothesis"]["controls"], "$.steady-state-hypothesis.controls".into());
    for (i, p) in raw["steady-state-hypothesis"]["probes"].as_array().into_iter().flatten().enumerate() {
        check(&p["controls"], format!("$.steady-state-hypothesis.probes[{i}].controls"));
    }
    for section in ["method", "rollbacks"] {
        for (i, a) in raw[section].as_array().into_iter().flatten().enumerate() {
            check(&a["controls"], format!("$.{section}[{i}].controls"));
        }
    }
    match experiment {
        Some(e) if errors.is_empty() => Ok(e),
        _ => Err(errors),
    }
}

/// `path.key`, or `path['key']` when the key is not a plain word.
fn child(path: &str, key: &str) -> String {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        format!("{path}.{key}")
    } else {
        format!("{path}['{}']", key.replace('\'', "\\'"))
    }
}

/// Where an activity is declared, which decides what it may or must have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// `method` or `rollbacks`: may be a `{ref}`.
    Flow,
    /// A steady-state probe: must have a tolerance.
    Hypothesis,
    /// A probe used as a tolerance, a dynamic configuration value or a `wait-until` probe.
    Nested,
}

/// Document indices of the valid entries of `method`, `rollbacks` and the hypothesis probes.
struct Indices {
    method: Vec<usize>,
    rollbacks: Vec<usize>,
    probes: Vec<usize>,
}

struct Checker<'p> {
    errors: Vec<ValidationError>,
    providers: &'p dyn PythonProviders,
}

impl Checker<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ValidationError::new(path, message));
    }

    fn experiment(&mut self, raw: &Value) -> Option<Experiment> {
        let Some(doc) = raw.as_object().filter(|d| !d.is_empty()) else {
            self.error("$", "an empty experiment is not an experiment");
            return None;
        };
        let title = self.required_text(doc, "title", "$", "experiment requires a title");
        let description = self.required_text(doc, "description", "$", "experiment requires a description");
        let tags = self.tags(doc.get("tags"));
        let contributions = self.contributions(doc.get("contributions"));
        let extensions = self.extensions(doc.get("extensions"));
        let configuration = self.configuration(doc.get("configuration"));
        let secrets = self.secrets(doc.get("secrets"));
        let controls = self.controls(doc.get("controls"), "$.controls");
        let hypothesis = doc.get("steady-state-hypothesis").and_then(|h| self.hypothesis(h));
        let method = match doc.get("method") {
            None => {
                self.error(
                    "$.method",
                    "an experiment requires a method, which can be empty for only checking steady state hypothesis",
                );
                Vec::new()
            }
            Some(m) => self.entries(m, "$.method"),
        };
        let rollbacks = doc.get("rollbacks").map(|r| self.entries(r, "$.rollbacks")).unwrap_or_default();
        let indices = Indices {
            method: method.iter().map(|(i, _)| *i).collect(),
            rollbacks: rollbacks.iter().map(|(i, _)| *i).collect(),
            probes: hypothesis.as_ref().map(|(i, _)| i.clone()).unwrap_or_default(),
        };
        let hypothesis = hypothesis.map(|(_, h)| h);
        let method = method.into_iter().map(|(_, e)| e).collect();
        let rollbacks = rollbacks.into_iter().map(|(_, e)| e).collect();
        let runtime = self.runtime(doc.get("runtime"));

        // Built even when a field was wrong, so that references are checked too; `validate` returns
        // it only when no error was found.
        let experiment = Experiment {
            title: title.unwrap_or_default(),
            description: description.unwrap_or_default(),
            tags,
            contributions,
            configuration,
            secrets,
            controls,
            steady_state_hypothesis: hypothesis,
            method,
            rollbacks,
            runtime,
            extensions,
            raw: raw.clone(),
        };
        self.references(&experiment, &indices);
        Some(experiment)
    }

    /// Checks every `{ref}`: activities, `wait-until` probes and controls.
    fn references(&mut self, experiment: &Experiment, indices: &Indices) {
        let sections = [
            ("method", &experiment.method, &indices.method),
            ("rollbacks", &experiment.rollbacks, &indices.rollbacks),
        ];
        for (section, entries, positions) in sections {
            for (entry, i) in entries.iter().zip(positions) {
                let path = format!("$.{section}[{i}]");
                match entry {
                    ActivityEntry::Ref(name) if experiment.find_activity(name).is_none() => self.error(
                        child(&path, "ref"),
                        format!("referenced activity '{name}' could not be found in the experiment"),
                    ),
                    ActivityEntry::Ref(_) => {}
                    ActivityEntry::Inline(a) => self.wait_references(experiment, a, &path),
                }
            }
        }
        if let Some(h) = &experiment.steady_state_hypothesis {
            for (p, i) in h.probes.iter().zip(&indices.probes) {
                self.wait_references(experiment, p, &format!("$.steady-state-hypothesis.probes[{i}]"));
            }
        }
        let names: Vec<&str> = experiment
            .all_controls()
            .iter()
            .filter(|c| c.reference.is_none())
            .map(|c| c.name.as_str())
            .collect();
        for c in experiment.all_controls() {
            if let Some(name) = c.reference.as_deref().filter(|n| !names.contains(n)) {
                self.error("$.controls", format!("Control reference '{name}' declaration cannot be found"));
            }
        }
    }

    fn wait_references(&mut self, experiment: &Experiment, activity: &Activity, path: &str) {
        for (which, pause) in [("before", &activity.pauses.before), ("after", &activity.pauses.after)] {
            let Some(Pause::WaitUntil(wait)) = pause else { continue };
            let ActivityEntry::Ref(name) = wait.probe.as_ref() else { continue };
            let at = format!("{path}.pauses.{which}.wait-until.probe.ref");
            match experiment.find_activity(name) {
                None => self
                    .error(at, format!("referenced activity '{name}' could not be found in the experiment")),
                Some(p) if p.tolerance.is_none() => {
                    self.error(at, format!("referenced activity '{name}' has no tolerance to wait for"))
                }
                Some(_) => {}
            }
        }
    }

    fn required_text(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &str,
        message: &str,
    ) -> Option<String> {
        match obj.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => {
                self.error(child(path, key), message);
                None
            }
        }
    }

    fn optional_text(&mut self, obj: &Map<String, Value>, key: &str, path: &str) -> Option<String> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.error(child(path, key), format!("`{key}` must be a string"));
                None
            }
        }
    }

    fn tags(&mut self, tags: Option<&Value>) -> Vec<String> {
        let mut out = Vec::new();
        match tags {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, t) in items.iter().enumerate() {
                    match t.as_str().filter(|s| !s.is_empty()) {
                        Some(s) => out.push(s.to_owned()),
                        None => {
                            self.error(format!("$.tags[{i}]"), "experiment tags must be a non-empty string")
                        }
                    }
                }
            }
            Some(_) => self.error("$.tags", "experiment tags must be a list of non-empty strings"),
        }
        out
    }

    fn contributions(&mut self, value: Option<&Value>) -> Map<String, Value> {
        match value {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => {
                for (name, level) in map {
                    if !matches!(level.as_str(), Some("high" | "medium" | "low" | "none")) {
                        self.error(
                            child("$.contributions", name),
                            "contribution must be one of 'high', 'medium', 'low' or 'none'",
                        );
                    }
                }
                map.clone()
            }
            Some(_) => {
                self.error("$.contributions", "contributions must be a mapping");
                Map::new()
            }
        }
    }

    fn extensions(&mut self, value: Option<&Value>) -> Vec<Value> {
        match value {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                for (i, ext) in items.iter().enumerate() {
                    if ext.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
                        self.error(
                            format!("$.extensions[{i}].name"),
                            "All extensions require a non-empty name",
                        );
                    }
                }
                items.clone()
            }
            Some(_) => {
                self.error("$.extensions", "extensions must be a list");
                Vec::new()
            }
        }
    }

    fn configuration(&mut self, value: Option<&Value>) -> Vec<(String, ConfigValue)> {
        let Some(map) = self.mapping(value, "$.configuration") else { return Vec::new() };
        let mut out = Vec::new();
        for (key, v) in map {
            let path = child("$.configuration", key);
            let entry = match v.get("type").and_then(Value::as_str) {
                Some("env") if v.is_object() => self.env_ref(v, &path).map(ConfigValue::Env),
                Some("probe") if v.is_object() => {
                    self.activity(v, &path, Place::Nested).map(|a| ConfigValue::Probe(Box::new(a)))
                }
                _ => Some(ConfigValue::Literal(v.clone())),
            };
            if let Some(entry) = entry {
                out.push((key.clone(), entry));
            }
        }
        out
    }

    fn env_ref(&mut self, v: &Value, path: &str) -> Option<EnvRef> {
        let obj = v.as_object()?;
        let key = self.required_text(obj, "key", path, "an environment variable reference needs a `key`");
        let env_var_type = match obj.get("env_var_type") {
            None | Some(Value::Null) => None,
            Some(t) => match serde_json::from_value::<EnvVarType>(t.clone()) {
                Ok(kind) => Some(kind),
                Err(_) => {
                    self.error(
                        child(path, "env_var_type"),
                        "env_var_type must be one of str, int, float, bytes, bool, json",
                    );
                    None
                }
            },
        };
        Some(EnvRef {
            key: key?,
            default: obj.get("default").filter(|d| !d.is_null()).cloned(),
            env_var_type,
        })
    }

    fn secrets(&mut self, value: Option<&Value>) -> Vec<(String, Vec<(String, SecretValue)>)> {
        let Some(scopes) = self.mapping(value, "$.secrets") else { return Vec::new() };
        let mut out = Vec::new();
        for (scope, keys) in scopes {
            let scope_path = child("$.secrets", scope);
            let Some(keys) = keys.as_object() else {
                self.error(scope_path, "a secrets scope must be a mapping of key to value");
                continue;
            };
            let mut entries = Vec::new();
            for (key, v) in keys {
                let path = child(&scope_path, key);
                let entry = match v.get("type").and_then(Value::as_str) {
                    Some("env") => {
                        let obj = v.as_object().cloned().unwrap_or_default();
                        self.required_text(
                            &obj,
                            "key",
                            &path,
                            "an environment variable reference needs a `key`",
                        )
                        .map(|key| SecretValue::Env { key })
                    }
                    Some("vault") => Some(SecretValue::Vault(v.clone())),
                    _ => Some(SecretValue::Literal(v.clone())),
                };
                if let Some(entry) = entry {
                    entries.push((key.clone(), entry));
                }
            }
            out.push((scope.clone(), entries));
        }
        out
    }

    fn runtime(&mut self, value: Option<&Value>) -> Runtime {
        let mut runtime = Runtime::default();
        let Some(map) = self.mapping(value, "$.runtime") else { return runtime };
        let strategy = |section: &str| map.get(section)?.get("strategy").filter(|s| !s.is_null()).cloned();
        if let Some(s) = strategy("rollbacks") {
            match serde_json::from_value(s) {
                Ok(v) => runtime.rollback_strategy = Some(v),
                Err(_) => self.error(
                    "$.runtime.rollbacks.strategy",
                    "strategy must be one of default|always|never|deviated",
                ),
            }
        }
        if let Some(s) = strategy("hypothesis") {
            match serde_json::from_value(s) {
                Ok(v) => runtime.hypothesis_strategy = Some(v),
                Err(_) => self.error(
                    "$.runtime.hypothesis.strategy",
                    "strategy must be one of default|before-method-only|after-method-only|during-method-only|continuously|skip",
                ),
            }
        }
        runtime
    }

    fn mapping<'v>(&mut self, value: Option<&'v Value>, path: &str) -> Option<&'v Map<String, Value>> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(_) => {
                self.error(path, "must be a mapping");
                None
            }
        }
    }

    fn string_list(&mut self, value: Option<&Value>, path: &str, message: &str) -> Vec<String> {
        match value {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
            }
            Some(_) => {
                self.error(path, message);
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests;
