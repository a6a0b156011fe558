//! Configuration and secrets: from declarations to the values a run substitutes.
//!
//! chaostoolkit-lib resolves `configuration` and `secrets` before the journal starts: literals stay,
//! `{type: env}` entries read the environment (a missing variable without default is an invalid
//! experiment), and `{type: probe}` entries are *dynamic configuration*, evaluated once at start-up.
//! `--var name[:type]=value` and `--var-file` override declared configuration keys and secrets.
//!
//! Deviations, both on purpose: a `.env` var file is not written into the process environment (that
//! is global, unsafe state in Rust 2024) but layered over it for this resolution only; and an
//! unreadable or malformed var file is an error instead of a logged-and-skipped file, because a
//! silently ignored override would make the journal lie about what ran.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Number, Value};
use thiserror::Error;

use super::load::{self, Format, LoadError};
use super::model::{
    ConfigValue, Configuration, EnvRef, EnvVarType, Experiment, Provider, SecretValue, Secrets,
};
use super::provider::{self, PythonProviders};
use super::substitute::{Bindings, Outputs};
use super::validate::ValidationError;

/// The configuration and secrets a run substitutes and hands to providers and controls.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Vars {
    /// Configuration by name. Controls may change it during the run.
    pub configuration: Configuration,
    /// Secrets: scope → object of key → value.
    pub secrets: Secrets,
}

impl Vars {
    /// Bindings for substitution over these vars and `outputs`.
    pub fn bindings<'a>(&'a self, outputs: &'a Outputs) -> Bindings<'a> {
        Bindings { configuration: &self.configuration, secrets: &self.secrets, outputs }
    }
}

/// Values given on the command line (`--var`, `--var-file`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VarOverrides {
    /// Configuration overrides by key.
    pub configuration: Configuration,
    /// Secret overrides: scope → object of key → value.
    pub secrets: Secrets,
    /// Variables from `.env` var files, consulted before the process environment.
    pub env: BTreeMap<String, String>,
}

/// A `--var` or `--var-file` that cannot be used.
#[derive(Debug, Error)]
pub enum VarError {
    /// Not `name[:type]=value`.
    #[error("var '{0}' needs to be in the format name[:type]=value")]
    Format(String),
    /// The value does not convert to the requested type.
    #[error("var '{spec}' cannot convert value to {kind}: {reason}")]
    Convert {
        /// The whole `--var` argument.
        spec: String,
        /// The requested type.
        kind: String,
        /// Why not.
        reason: String,
    },
    /// A JSON/YAML var file that does not parse.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A JSON/YAML var file whose top level is not a mapping (or whose sections are not).
    #[error("{}: {what} must be a mapping", .path.display())]
    NotAMapping {
        /// The file.
        path: PathBuf,
        /// Which part.
        what: &'static str,
    },
    /// A `.env` line without `=`.
    #[error("{}:{line}: expected NAME=value", .path.display())]
    EnvLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
}

impl VarOverrides {
    /// Applies one `--var name[:type]=value` (types: `str` (default), `int`, `float`, `bytes`).
    pub fn add_var(&mut self, spec: &str) -> Result<(), VarError> {
        let (name, value) = parse_var(spec)?;
        self.configuration.insert(name, value);
        Ok(())
    }

    /// Applies one `--var-file`: a `.json`/`.yaml`/`.yml` with `configuration` and `secrets`
    /// mappings, or any other file as `.env` lines (`NAME=value`, `#` comments). Later files override
    /// earlier ones; a file's secret scope replaces the same scope from an earlier file, as in the lib.
    pub fn add_var_file(&mut self, path: &Path) -> Result<(), VarError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| LoadError::Read { path: path.to_path_buf(), source })?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if matches!(ext, "json" | "yaml" | "yml") {
            if text.trim().is_empty() {
                return Ok(());
            }
            let format = if ext == "json" { Format::Json } else { Format::Yaml };
            let data = load::parse(&text, format, path)?;
            let data =
                data.as_object().ok_or(VarError::NotAMapping { path: path.into(), what: "the file" })?;
            for (section, target, what) in [
                ("configuration", &mut self.configuration, "configuration"),
                ("secrets", &mut self.secrets, "secrets"),
            ] {
                match data.get(section) {
                    None => {}
                    Some(Value::Object(values)) => target.extend(values.clone()),
                    Some(_) => return Err(VarError::NotAMapping { path: path.into(), what }),
                }
            }
            return Ok(());
        }
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) =
                line.split_once('=').ok_or(VarError::EnvLine { path: path.into(), line: index + 1 })?;
            self.env.insert(name.to_owned(), value.to_owned());
        }
        Ok(())
    }
}

/// Parses `name[:type]=value` as the chaos CLI's `convert_vars`.
pub fn parse_var(spec: &str) -> Result<(String, Value), VarError> {
    let (key, raw) = spec.split_once('=').ok_or_else(|| VarError::Format(spec.to_owned()))?;
    let (name, kind) = match key.rsplit_once(':') {
        Some((name, kind)) => (name, kind),
        None => (key, "str"),
    };
    if name.is_empty() {
        return Err(VarError::Format(spec.to_owned()));
    }
    let convert_err =
        |reason: String| VarError::Convert { spec: spec.to_owned(), kind: kind.to_owned(), reason };
    let value = match kind {
        "str" | "bytes" => Value::String(raw.to_owned()),
        "int" => raw.trim().parse::<i64>().map(Value::from).map_err(|e| convert_err(e.to_string()))?,
        "float" => {
            let f = raw.trim().parse::<f64>().map_err(|e| convert_err(e.to_string()))?;
            Number::from_f64(f).map(Value::Number).ok_or_else(|| convert_err("not a finite number".into()))?
        }
        _ => return Err(convert_err("variables can only be: str, int, float, or bytes".into())),
    };
    Ok((name.to_owned(), value))
}

/// The process environment, for [`resolve_vars`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Resolves the experiment's declared configuration and secrets with `overrides` and `env`.
///
/// `{type: probe}` entries stay as declared here; the run evaluates them at start-up. Every problem is
/// reported, each with the path of the declaration.
pub fn resolve_vars(
    experiment: &Experiment,
    overrides: &VarOverrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vars, Vec<ValidationError>> {
    let lookup = |name: &str| overrides.env.get(name).cloned().or_else(|| env(name));
    let mut errors = Vec::new();
    let mut vars = Vars::default();

    for (key, declared) in &experiment.configuration {
        let path = format!("$.configuration.{key}");
        let value = match (overrides.configuration.get(key), declared) {
            (Some(overridden), _) => Some(overridden.clone()),
            (None, ConfigValue::Literal(v)) => Some(v.clone()),
            (None, ConfigValue::Probe(activity)) => Some(activity.raw.clone()),
            (None, ConfigValue::Env(env_ref)) => resolve_env(env_ref, &lookup, &path, &mut errors),
        };
        if let Some(value) = value {
            vars.configuration.insert(key.clone(), value);
        }
    }

    for (scope, keys) in &experiment.secrets {
        let scope_overrides = overrides.secrets.get(scope).and_then(Value::as_object);
        let mut resolved = Map::new();
        for (key, declared) in keys {
            let path = format!("$.secrets.{scope}.{key}");
            if let Some(v) = scope_overrides.and_then(|o| o.get(key)) {
                resolved.insert(key.clone(), v.clone());
                continue;
            }
            match declared {
                SecretValue::Literal(v) => {
                    resolved.insert(key.clone(), v.clone());
                }
                SecretValue::Env { key: var } => match lookup(var) {
                    Some(text) => {
                        resolved.insert(key.clone(), Value::String(text));
                    }
                    None => errors.push(ValidationError::new(
                        path,
                        format!("Secrets make reference to an environment key that does not exist: {var}"),
                    )),
                },
                SecretValue::Vault(_) => errors.push(ValidationError::new(
                    path,
                    "vault secrets are not supported by chaoslab (no Vault client)",
                )),
            }
        }
        vars.secrets.insert(scope.clone(), Value::Object(resolved));
    }

    if errors.is_empty() { Ok(vars) } else { Err(errors) }
}

fn resolve_env(
    env_ref: &EnvRef,
    lookup: &dyn Fn(&str) -> Option<String>,
    path: &str,
    errors: &mut Vec<ValidationError>,
) -> Option<Value> {
    let raw = match (lookup(&env_ref.key), &env_ref.default) {
        (Some(text), _) => Value::String(text),
        (None, Some(default)) => default.clone(),
        (None, None) => {
            errors.push(ValidationError::new(
                path,
                format!(
                    "Configuration makes reference to an environment key that does not exist: {}",
                    env_ref.key
                ),
            ));
            return None;
        }
    };
    let Some(kind) = env_ref.env_var_type else { return Some(raw) };
    match convert_env(kind, &raw) {
        Ok(v) => Some(v),
        Err(reason) => {
            let kind = serde_json::to_value(kind).unwrap_or_default();
            errors.push(ValidationError::new(
                path,
                format!("cannot convert environment key {} ({raw}) to {kind}: {reason}", env_ref.key),
            ));
            None
        }
    }
}

/// `env_var_type` conversion of an environment text (or a declared default of any type).
pub fn convert_env(kind: EnvVarType, value: &Value) -> Result<Value, String> {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match kind {
        // Python's `convert_to_type` returns the value untouched for `str`.
        EnvVarType::Str => Ok(value.clone()),
        EnvVarType::Bytes => Ok(Value::String(text)),
        EnvVarType::Int => match value {
            // `int(2.7)` truncates a float default.
            Value::Number(n) if n.is_f64() => Ok(Value::from(n.as_f64().unwrap_or_default().trunc() as i64)),
            _ => text.trim().parse::<i64>().map(Value::from).map_err(|e| e.to_string()),
        },
        EnvVarType::Float => {
            let f = text.trim().parse::<f64>().map_err(|e| e.to_string())?;
            Number::from_f64(f).map(Value::Number).ok_or_else(|| "not a finite number".to_owned())
        }
        EnvVarType::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Bool(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Bool(false)),
            _ => Err("expected true/false, 1/0, yes/no or on/off".to_owned()),
        },
        EnvVarType::Json => serde_json::from_str(&text).map_err(|e| e.to_string()),
    }
}

/// Evaluates dynamic configuration (`{type: probe}` values still in `vars`), in declaration order.
///
/// As in the lib: a python probe gives its result, a process probe its stripped stdout (a non-zero
/// exit is a failure), an http probe its body; a failed entry is logged and left out of the
/// configuration.
pub(crate) async fn load_dynamic_configuration(
    experiment: &Experiment,
    vars: &mut Vars,
    python: &dyn PythonProviders,
) {
    let no_outputs = Outputs::new();
    let mut had_errors = false;
    for (key, declared) in &experiment.configuration {
        let ConfigValue::Probe(activity) = declared else { continue };
        let still_dynamic = vars.configuration.get(key).is_some_and(|v| v == &activity.raw);
        if !still_dynamic {
            continue;
        }
        let result = provider::run_provider(activity, &vars.bindings(&no_outputs), python).await;
        let value = match (&activity.provider, result) {
            (_, Err(e)) => Err(e.to_string()),
            (Provider::Python(_), Ok(v)) => Ok(v),
            (Provider::Process(_), Ok(v)) => match v.get("status").and_then(Value::as_i64) {
                Some(0) => Ok(Value::String(v["stdout"].as_str().unwrap_or_default().trim().to_owned())),
                _ => Err(format!("process exited with {}: {}", v["status"], v["stderr"])),
            },
            (Provider::Http(_), Ok(v)) => Ok(v.get("body").cloned().unwrap_or(Value::Null)),
        };
        match value {
            Ok(v) => {
                vars.configuration.insert(key.clone(), v);
            }
            Err(reason) => {
                had_errors = true;
                tracing::debug!(key = %key, probe = %activity.name, %reason, "dynamic configuration failed");
                vars.configuration.shift_remove(key);
            }
        }
    }
    if had_errors {
        tracing::warn!("some of the dynamic configuration failed to be loaded; see the debug log");
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serde_json::json;

    use super::*;
    use crate::chaos::experiment::provider::NoPythonProviders;
    use crate::chaos::experiment::validate::validate;

    fn experiment(doc: Value) -> Experiment {
        validate(&doc, &NoPythonProviders).unwrap()
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    fn base(configuration: Value, secrets: Value) -> Value {
        json!({"title": "t", "description": "d", "method": [], "configuration": configuration, "secrets": secrets})
    }

    #[test]
    fn env_configuration_with_types_defaults_and_overrides() {
        let exp = experiment(base(
            json!({
                "bootstrap_servers": {"type": "env", "key": "BOOTSTRAP_SERVERS"},
                "port": {"type": "env", "key": "PORT", "env_var_type": "int"},
                "flag": {"type": "env", "key": "FLAG", "default": "off", "env_var_type": "bool"},
                "doc": {"type": "env", "key": "DOC", "env_var_type": "json"},
                "topic": "poke-orders",
                "overridden": 1
            }),
            json!({}),
        ));
        let mut overrides = VarOverrides::default();
        overrides.add_var("overridden:int=2").unwrap();
        overrides.add_var("undeclared=x").unwrap();
        let env = env_of(&[("BOOTSTRAP_SERVERS", "b:9092"), ("PORT", " 8080 "), ("DOC", "{\"a\": [1]}")]);
        let vars = resolve_vars(&exp, &overrides, &env).unwrap();
        assert_eq!(
            Value::Object(vars.configuration),
            json!({"bootstrap_servers": "b:9092", "port": 8080, "flag": false, "doc": {"a": [1]},
                   "topic": "poke-orders", "overridden": 2})
        );
    }

    #[test]
    fn missing_env_is_reported_for_every_declaration() {
        let exp = experiment(base(
            json!({"a": {"type": "env", "key": "A"}, "b": {"type": "env", "key": "B", "env_var_type": "int"}}),
            json!({"kafka": {"token": {"type": "env", "key": "TOKEN"}, "vaulted": {"type": "vault", "path": "p"}}}),
        ));
        let errors = resolve_vars(&exp, &VarOverrides::default(), &env_of(&[("B", "x")])).unwrap_err();
        assert!(
            errors[1].message.starts_with("cannot convert environment key B (\"x\") to \"int\""),
            "{}",
            errors[1]
        );
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["$.configuration.a", "$.configuration.b", "$.secrets.kafka.token", "$.secrets.kafka.vaulted"]
        );
        assert!(errors[0].message.contains("environment key that does not exist: A"));
    }

    #[test]
    fn secrets_from_env_literals_and_var_files() {
        let exp = experiment(base(
            json!({}),
            json!({"kafka": {"token": {"type": "env", "key": "TOKEN"}, "user": "u"}}),
        ));
        let mut yaml = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        writeln!(yaml, "secrets:\n  kafka:\n    user: from-file").unwrap();
        let mut dotenv = tempfile::Builder::new().suffix(".env").tempfile().unwrap();
        writeln!(dotenv, "# comment\nTOKEN=abc=def\n").unwrap();
        let mut overrides = VarOverrides::default();
        overrides.add_var_file(yaml.path()).unwrap();
        overrides.add_var_file(dotenv.path()).unwrap();
        let vars = resolve_vars(&exp, &overrides, &env_of(&[])).unwrap();
        assert_eq!(Value::Object(vars.secrets), json!({"kafka": {"token": "abc=def", "user": "from-file"}}));
    }

    #[test]
    fn var_specs_and_bad_files() {
        assert_eq!(parse_var("a=1").unwrap(), ("a".to_owned(), json!("1")));
        assert_eq!(parse_var("a:float=1.5").unwrap(), ("a".to_owned(), json!(1.5)));
        assert_eq!(
            parse_var("url:str=http://x:1/?q=a").unwrap(),
            ("url".to_owned(), json!("http://x:1/?q=a"))
        );
        assert!(matches!(parse_var("novalue"), Err(VarError::Format(_))));
        assert!(matches!(parse_var("a:int=x"), Err(VarError::Convert { .. })));
        assert!(matches!(parse_var("a:list=x"), Err(VarError::Convert { .. })));

        let mut bad = tempfile::Builder::new().suffix(".env").tempfile().unwrap();
        writeln!(bad, "OK=1\nbroken").unwrap();
        let err = VarOverrides::default().add_var_file(bad.path()).unwrap_err();
        assert!(matches!(err, VarError::EnvLine { line: 2, .. }), "{err}");
        let mut list = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
        writeln!(list, "[1]").unwrap();
        assert!(matches!(
            VarOverrides::default().add_var_file(list.path()),
            Err(VarError::NotAMapping { .. })
        ));
    }

    #[test]
    fn env_conversions() {
        assert_eq!(convert_env(EnvVarType::Int, &json!(300)), Ok(json!(300)));
        assert_eq!(convert_env(EnvVarType::Int, &json!(2.7)), Ok(json!(2)));
        assert_eq!(convert_env(EnvVarType::Float, &json!("0.25")), Ok(json!(0.25)));
        assert_eq!(convert_env(EnvVarType::Bool, &json!("YES")), Ok(json!(true)));
        assert!(convert_env(EnvVarType::Bool, &json!("maybe")).is_err());
        assert_eq!(convert_env(EnvVarType::Str, &json!(5)), Ok(json!(5)));
        assert_eq!(convert_env(EnvVarType::Bytes, &json!(5)), Ok(json!("5")));
    }
}
