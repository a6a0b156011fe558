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

use std::fmt;
use std::path::Path;

use serde_json::{Map, Number, Value};

use crate::config::locate::YamlLines;
use crate::config::problems::{KeyPath, Locate, Segment};
use crate::config::{Problem, Problems, Severity};

use super::control::Controls;
use super::model::{
    Activity, ActivityEntry, ActivityKind, ConfigValue, ControlDecl, ControlScope, Dry, EnvRef, EnvVarType,
    Experiment, HttpProvider, Hypothesis, Pause, Pauses, ProcessProvider, Provider, PythonProvider, Runtime,
    SecretValue, Tolerance, WaitUntil,
};
use super::provider::PythonProviders;
use super::provider::process::which;

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

impl ValidationError {
    /// The JSON path as a key path: `$.method[2]['a b']` → `$`, `method`, `2`, `a b`.
    pub fn key(&self) -> KeyPath {
        json_path_key(&self.path)
    }

    /// This problem in the experiment file `file`, on the line `lines` finds for its path.
    pub fn to_problem(&self, file: &str, lines: &YamlLines) -> Problem {
        let key = self.key();
        Problem {
            severity: Severity::Error,
            file: file.to_string(),
            line: JsonPathLines(lines).line_of(&key),
            key,
            message: self.message.clone(),
        }
    }
}

/// The problems `errors` of the experiment document read from `file` (whose text is `text`, YAML or
/// JSON), each with the line of the value at fault.
pub fn problems_in(file: &str, text: &str, errors: &[ValidationError]) -> Problems {
    let lines = YamlLines::new(text);
    let mut problems = Problems::new();
    for e in errors {
        problems.push(e.to_problem(file, &lines));
    }
    problems
}

/// [`problems_in`] for the file at `path`, read again; if it cannot be read the problems have no lines.
pub fn file_problems(path: &Path, errors: &[ValidationError]) -> Problems {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    problems_in(&path.display().to_string(), &text, errors)
}

/// Locates a JSON path (`$` first) in a document.
struct JsonPathLines<'a>(&'a YamlLines);

impl Locate for JsonPathLines<'_> {
    fn line_of(&self, key: &KeyPath) -> Option<usize> {
        match key.segments().split_first() {
            Some((Segment::Key(root), rest)) if root == "$" => self.0.line_of(&KeyPath::from(rest)),
            _ => self.0.line_of(key),
        }
    }
}

/// Parses the paths [`child`] writes: `$`, `.key`, `[index]` and `['key']` (with `\'` escapes).
fn json_path_key(path: &str) -> KeyPath {
    let mut key = KeyPath::root();
    let mut chars = path.chars().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, key: &mut KeyPath| {
        if !word.is_empty() {
            *key = key.key(std::mem::take(word));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '.' => flush(&mut word, &mut key),
            '[' if chars.peek() == Some(&'\'') => {
                flush(&mut word, &mut key);
                chars.next();
                let mut quoted = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => quoted.extend(chars.next()),
                        '\'' => break,
                        c => quoted.push(c),
                    }
                }
                if chars.peek() == Some(&']') {
                    chars.next();
                }
                key = key.key(quoted);
            }
            '[' => {
                flush(&mut word, &mut key);
                let digits: String = chars.by_ref().take_while(|c| *c != ']').collect();
                key = match digits.parse() {
                    Ok(i) => key.index(i),
                    Err(_) => key.key(digits),
                };
            }
            c => word.push(c),
        }
    }
    flush(&mut word, &mut key);
    key
}

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

/// [`validate`], and every declared control must be one `controls` knows (the lib imports each
/// control module while validating).
pub fn validate_with_controls(
    raw: &Value,
    providers: &dyn PythonProviders,
    controls: &dyn Controls,
) -> Result<Experiment, Vec<ValidationError>> {
    let mut errors = Vec::new();
    let experiment = validate(raw, providers).map_err(|e| errors.extend(e)).ok();
    let mut check = |list: &Value, path: String| {
        for (i, c) in list.as_array().into_iter().flatten().enumerate() {
            let module = c.pointer("/provider/module").and_then(Value::as_str);
            if let Some(module) = module.filter(|m| !controls.knows(m)) {
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

const TOLERANCE_KINDS: &str = "hypothesis probe tolerance must either be an integer, a string, a boolean or a \
     pair of values for boundaries. It can also be a dictionary which is a probe activity definition that \
     takes an argument called `value` with the value of the probe itself to be validated";

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

    /// The hypothesis, with the document index of each valid probe.
    fn hypothesis(&mut self, value: &Value) -> Option<(Vec<usize>, Hypothesis)> {
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
    fn entries(&mut self, value: &Value, path: &str) -> Vec<(usize, ActivityEntry)> {
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

    fn activity(&mut self, value: &Value, path: &str, place: Place) -> Option<Activity> {
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

    fn tolerance(&mut self, value: &Value, path: &str) -> Option<Tolerance> {
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

    fn controls(&mut self, value: Option<&Value>, path: &str) -> Vec<ControlDecl> {
        let items = match value {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.error(path, "controls must be a list");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, c) in items.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let Some(obj) = c.as_object() else {
                self.error(at, "a control must be a mapping");
                continue;
            };
            let reference = match obj.get("ref") {
                None => None,
                Some(Value::String(r)) if !r.is_empty() => Some(r.clone()),
                Some(_) => {
                    self.error(child(&at, "ref"), "a control reference must be a non-empty string");
                    continue;
                }
            };
            let scope = match obj.get("scope") {
                None | Some(Value::Null) => None,
                Some(s) => serde_json::from_value::<ControlScope>(s.clone())
                    .map_err(|_| {
                        self.error(
                            child(&at, "scope"),
                            "Control scope property must be 'before' or 'after' only",
                        )
                    })
                    .ok(),
            };
            let automatic = match obj.get("automatic") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    self.error(child(&at, "automatic"), "automatic must be a boolean");
                    true
                }
            };
            let name = self.optional_text(obj, "name", &at).unwrap_or_default();
            if reference.is_some() {
                out.push(ControlDecl {
                    name,
                    module: String::new(),
                    arguments: Map::new(),
                    scope,
                    automatic,
                    reference,
                    raw: c.clone(),
                });
                continue;
            }
            if name.is_empty() {
                self.error(child(&at, "name"), "A control must have a `name` property");
            }
            let provider_path = child(&at, "provider");
            let Some(provider) = obj.get("provider").and_then(Value::as_object) else {
                self.error(provider_path, format!("Control '{name}' must have a `provider` property"));
                continue;
            };
            if provider.get("type").and_then(Value::as_str) != Some("python") {
                self.error(child(&provider_path, "type"), "a control provider must be of type 'python'");
            }
            let module = self.required_text(
                provider,
                "module",
                &provider_path,
                "a control provider must name its `module`",
            );
            let arguments = provider.get("arguments").and_then(Value::as_object).cloned().unwrap_or_default();
            if let Some(module) = module {
                out.push(ControlDecl {
                    name,
                    module,
                    arguments,
                    scope,
                    automatic,
                    reference: None,
                    raw: c.clone(),
                });
            }
        }
        out
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

/// `"${name}"`: the only string form a pause or timeout may take.
fn is_template(s: &str) -> bool {
    s.starts_with("${") && s.ends_with('}')
}

fn text_of(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chaos::experiment::model::HypothesisStrategy;
    use crate::chaos::experiment::testkit::{FakePython, RecordingControls};

    fn providers() -> FakePython {
        FakePython::new().returning("chaoskafka.probes", "topic_has_no_offline_partitions", json!(true))
    }

    fn paths(errors: &[ValidationError]) -> Vec<&str> {
        errors.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn a_minimal_experiment_is_valid() {
        let exp = validate(&json!({"title": "t", "description": "d", "method": []}), &providers()).unwrap();
        assert!(exp.method.is_empty() && !exp.has_steady_state_probes());
        assert_eq!(exp.runtime, Runtime::default());
    }

    #[test]
    fn every_problem_is_listed_with_its_path() {
        let doc = json!({
            "title": "",
            "tags": ["kafka", ""],
            "contributions": {"availability": "huge"},
            "extensions": [{"name": ""}],
            "configuration": {"servers": {"type": "env"}, "kind": {"type": "env", "key": "K", "env_var_type": "list"}},
            "secrets": {"kafka": "not-a-mapping"},
            "controls": [{"name": "c", "provider": {"type": "python", "module": "m"}, "scope": "during"}],
            "runtime": {"rollbacks": {"strategy": "sometimes"}},
            "steady-state-hypothesis": {
                "title": "h",
                "probes": [
                    {"type": "probe", "name": "no tolerance",
                     "provider": {"type": "python", "module": "chaoskafka.probes", "func": "topic_has_no_offline_partitions"}},
                    {"type": "probe", "name": "float", "tolerance": 0.5,
                     "provider": {"type": "python", "module": "chaoskafka.probes", "func": "topic_has_no_offline_partitions"}},
                    {"type": "probe", "name": "bad regex", "tolerance": {"type": "regex", "pattern": "(unclosed"},
                     "provider": {"type": "python", "module": "chaoskafka.probes", "func": "topic_has_no_offline_partitions"}},
                    {"type": "probe", "name": "bad range", "tolerance": {"type": "range", "range": [1]},
                     "provider": {"type": "http", "url": "http://x", "timeout": "soon"}}
                ]
            },
            "method": [
                {"type": "action", "name": "ok",
                 "provider": {"type": "python", "module": "chaoskafka.probes", "func": "topic_has_no_offline_partitions"}},
                {"type": "action", "name": "unknown func",
                 "provider": {"type": "python", "module": "chaoskafka.actions", "func": "delete_everything"}},
                {"type": "sabotage", "name": "x", "provider": {"type": "process", "path": "no-such-binary-anywhere"},
                 "pauses": {"after": "later"}, "background": "yes"},
                {"ref": "ghost"},
                {"type": "probe", "provider": {"type": "ssh"}}
            ]
        });
        let errors = validate(&doc, &providers()).unwrap_err();
        assert_eq!(
            paths(&errors),
            [
                "$.title",
                "$.description",
                "$.tags[1]",
                "$.contributions.availability",
                "$.extensions[0].name",
                "$.configuration.servers.key",
                "$.configuration.kind.env_var_type",
                "$.secrets.kafka",
                "$.controls[0].scope",
                "$.steady-state-hypothesis.probes[0].tolerance",
                "$.steady-state-hypothesis.probes[1].tolerance",
                "$.steady-state-hypothesis.probes[2].tolerance.pattern",
                "$.steady-state-hypothesis.probes[3].provider.timeout",
                "$.steady-state-hypothesis.probes[3].tolerance.range",
                "$.method[1].provider.func",
                "$.method[2].type",
                "$.method[2].provider.path",
                "$.method[2].background",
                "$.method[2].pauses.after",
                "$.method[4].name",
                "$.method[4].provider.type",
                "$.runtime.rollbacks.strategy",
                "$.method[3].ref",
            ]
        );
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(text.contains(&"$.method[1].provider.func: could not find Python function 'delete_everything' in module 'chaoskafka.actions'".to_owned()));
        assert!(text.contains(
            &"$.method[3].ref: referenced activity 'ghost' could not be found in the experiment".to_owned()
        ));
        assert!(text.contains(&"$.steady-state-hypothesis.probes[0].tolerance: hypothesis probe must have a tolerance entry".to_owned()));
    }

    #[test]
    fn missing_method_and_non_object_documents() {
        let errors = validate(&json!({"title": "t", "description": "d"}), &providers()).unwrap_err();
        assert_eq!(paths(&errors), ["$.method"]);
        assert_eq!(paths(&validate(&json!([]), &providers()).unwrap_err()), ["$"]);
    }

    #[test]
    fn references_wait_until_runtime_and_tolerances_are_typed() {
        let probe = json!({"type": "probe", "name": "no offline", "tolerance": [200, 204],
            "provider": {"type": "python", "module": "chaoskafka.probes", "func": "topic_has_no_offline_partitions"}});
        let doc = json!({
            "title": "t", "description": "d",
            "runtime": {"hypothesis": {"strategy": "continously"}, "rollbacks": {"strategy": "deviated"}},
            "steady-state-hypothesis": {"title": "h", "probes": [probe]},
            "method": [
                {"type": "action", "name": "reboot", "provider": {"type": "process", "path": "true", "arguments": ["x"]},
                 "pauses": {"before": "${delay}", "after": {"wait-until": {"probe": {"ref": "no offline"}, "timeout": 60}}}},
                {"ref": "no offline"}
            ],
            "rollbacks": [{"ref": "reboot"}]
        });
        let exp = validate(&doc, &providers()).unwrap();
        assert_eq!(exp.runtime.hypothesis_strategy, Some(HypothesisStrategy::Continuously));
        let reboot = exp.method[0].inline().unwrap();
        assert_eq!(reboot.pauses.before, Some(Pause::Template("${delay}".into())));
        let Some(Pause::WaitUntil(w)) = &reboot.pauses.after else { panic!("{:?}", reboot.pauses) };
        assert_eq!((w.timeout, w.frequency), (60.0, 1.0));
        assert_eq!(
            exp.steady_state_hypothesis.as_ref().unwrap().probes[0].tolerance,
            Some(Tolerance::List(vec![json!(200), json!(204)]))
        );
        assert_eq!(exp.find_activity("reboot").map(|a| a.name.as_str()), Some("reboot"));
    }

    #[test]
    fn wait_until_references_need_a_tolerance() {
        let doc = json!({"title": "t", "description": "d", "method": [
            {"type": "action", "name": "a", "provider": {"type": "process", "path": "true"},
             "pauses": {"after": {"wait-until": {"probe": {"ref": "a"}, "timeout": 0}}}}]});
        let errors = validate(&doc, &providers()).unwrap_err();
        assert_eq!(paths(&errors), ["$.method[0].pauses.after.wait-until.timeout"]);
        let doc = json!({"title": "t", "description": "d", "method": [
            {"type": "action", "name": "a", "provider": {"type": "process", "path": "true"},
             "pauses": {"after": {"wait-until": {"probe": {"ref": "a"}, "timeout": 5}}}}]});
        let errors = validate(&doc, &providers()).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "$.method[0].pauses.after.wait-until.probe.ref: referenced activity 'a' has no tolerance to wait for"
        );
    }

    #[test]
    fn controls_are_checked_against_the_known_modules() {
        let doc = json!({"title": "t", "description": "d", "method": [
            {"type": "action", "name": "a", "provider": {"type": "process", "path": "true"},
             "controls": [{"name": "offsets", "provider": {"type": "python", "module": "chaoskafka.controls.get_production_offsets"}},
                          {"ref": "missing"}]}]});
        let errors = validate(&doc, &providers()).unwrap_err();
        assert_eq!(errors[0].message, "Control reference 'missing' declaration cannot be found");
        let mut fixed = doc.clone();
        fixed["method"][0]["controls"].as_array_mut().unwrap().pop();
        let unknown = validate_with_controls(&fixed, &providers(), &RecordingControls::new()).unwrap_err();
        assert_eq!(paths(&unknown), ["$.method[0].controls[0].provider.module"]);
        let known = RecordingControls::new()
            .on("chaoskafka.controls.get_production_offsets", |_, _| std::ops::ControlFlow::Continue(()));
        assert!(validate_with_controls(&fixed, &providers(), &known).is_ok());
    }

    #[test]
    fn problems_carry_file_line_and_json_path_in_yaml_and_json() {
        let yaml = "title: ''\ndescription: d\nmethod:\n  - type: action\n    name: a\n    provider:\n      type: process\n      path: true\n      weird key: 1\n";
        let raw = crate::chaos::experiment::load::parse(
            yaml,
            crate::chaos::experiment::load::Format::Yaml,
            Path::new("e.yaml"),
        )
        .unwrap();
        let mut errors = validate(&raw, &providers()).unwrap_err();
        errors.push(ValidationError::new("$.method[0].provider['weird key']", "made up"));
        let lines: Vec<String> =
            problems_in("e.yaml", yaml, &errors).all().iter().map(ToString::to_string).collect();
        assert_eq!(lines[0], "e.yaml:1:$.title: experiment requires a title");
        assert_eq!(
            lines.last().map(String::as_str),
            Some("e.yaml:9:$.method[0].provider.\"weird key\": made up")
        );

        let json = "{\n  \"title\": \"t\",\n  \"description\": \"d\",\n  \"method\": [\n    {\"type\": \"action\",\n     \"name\": \"a\",\n     \"provider\": {\"type\": \"python\", \"module\": \"m\"}}\n  ]\n}\n";
        let raw: Value = serde_json::from_str(json).unwrap();
        let errors = validate(&raw, &providers()).unwrap_err();
        let problems = problems_in("e.json", json, &errors);
        let first = &problems.all()[0];
        assert_eq!(
            (first.line, first.key.to_string()),
            (Some(7), "$.method[0].provider.func".to_string()),
            "{first}"
        );
        assert!(first.to_string().starts_with("e.json:7:$.method[0].provider.func: "), "{first}");
    }
}
