//! The experiment format of Chaos Toolkit 1.19 / chaostoolkit-lib 1.45 as typed Rust values.
//!
//! An [`Experiment`] is only built by [`validate`](super::validate::validate), which reads the raw
//! JSON document and reports every problem at once. Each typed part keeps the JSON it was read from
//! (`raw`), because the journal records activities exactly as they were written and controls receive
//! them as plain JSON, like the Python lib hands them dicts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// Configuration values by name, as substitution and providers see them (a JSON object).
pub type Configuration = Map<String, Value>;

/// Secrets: scope name → JSON object of key → value. Scopes keep their declaration order, which is
/// the order substitution searches them in.
pub type Secrets = Map<String, Value>;

/// A validated experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct Experiment {
    /// `title`; may contain `${…}`, substituted when the run starts.
    pub title: String,
    /// `description`.
    pub description: String,
    /// `tags`.
    pub tags: Vec<String>,
    /// `contributions`: name → `high|medium|low|none`.
    pub contributions: Map<String, Value>,
    /// `configuration` as declared, in order: literals, `{type: env}` references, `{type: probe}`.
    pub configuration: Vec<(String, ConfigValue)>,
    /// `secrets` as declared, in order: scope → key → literal, `{type: env}` or `{type: vault}`.
    pub secrets: Vec<(String, Vec<(String, SecretValue)>)>,
    /// Experiment-level `controls`.
    pub controls: Vec<ControlDecl>,
    /// `steady-state-hypothesis`.
    pub steady_state_hypothesis: Option<Hypothesis>,
    /// `method` (may be empty, never absent).
    pub method: Vec<ActivityEntry>,
    /// `rollbacks`.
    pub rollbacks: Vec<ActivityEntry>,
    /// `runtime` strategies.
    pub runtime: Runtime,
    /// `extensions`, kept as JSON (each has a non-empty `name`).
    pub extensions: Vec<Value>,
    /// The whole document as loaded.
    pub raw: Value,
}

impl Experiment {
    /// The document as loaded.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// True when a steady-state hypothesis with at least one probe is declared. Without one the lib
    /// "just explores": no hypothesis runs at all, whatever the strategy.
    pub fn has_steady_state_probes(&self) -> bool {
        self.steady_state_hypothesis.as_ref().is_some_and(|h| !h.probes.is_empty())
    }

    /// Resolves `{"ref": name}`: the named activity among the method's and the steady-state probes',
    /// the last declaration winning (the lib caches the method first, then the probes, by name).
    pub fn find_activity(&self, name: &str) -> Option<&Activity> {
        let method = self.method.iter().filter_map(ActivityEntry::inline);
        let probes = self.steady_state_hypothesis.iter().flat_map(|h| h.probes.iter());
        method.chain(probes).rfind(|a| a.name == name)
    }

    /// Every control declaration: experiment, hypothesis, then each probe, method and rollback activity.
    pub fn all_controls(&self) -> Vec<&ControlDecl> {
        let mut all: Vec<&ControlDecl> = self.controls.iter().collect();
        if let Some(h) = &self.steady_state_hypothesis {
            all.extend(&h.controls);
            all.extend(h.probes.iter().flat_map(|p| &p.controls));
        }
        for entry in self.method.iter().chain(&self.rollbacks) {
            if let Some(a) = entry.inline() {
                all.extend(&a.controls);
            }
        }
        all
    }
}

/// One declared configuration value.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    /// Used as written (including a mapping whose `type` is neither `env` nor `probe`).
    Literal(Value),
    /// `{type: env, key, default?, env_var_type?}`.
    Env(EnvRef),
    /// `{type: probe, name, provider}`: a dynamic value, the probe's result at start-up.
    Probe(Box<Activity>),
}

/// A reference to an environment variable.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvRef {
    /// `key`: the variable's name.
    pub key: String,
    /// `default` when the variable is unset.
    pub default: Option<Value>,
    /// `env_var_type`: how to convert the text.
    pub env_var_type: Option<EnvVarType>,
}

/// `env_var_type` of a configuration value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvVarType {
    /// Text as is.
    Str,
    /// An integer.
    Int,
    /// A float.
    Float,
    /// Python `bytes`; chaoslab keeps the text (JSON has no bytes).
    Bytes,
    /// A boolean (`true/false`, `1/0`, `yes/no`, `on/off`, any case).
    Bool,
    /// A JSON document.
    Json,
}

/// One declared secret.
#[derive(Clone, Debug, PartialEq)]
pub enum SecretValue {
    /// Used as written.
    Literal(Value),
    /// `{type: env, key}`.
    Env {
        /// The variable's name.
        key: String,
    },
    /// `{type: vault, path, key?}`: accepted by validation, refused when resolved (no Vault client).
    Vault(Value),
}

/// `steady-state-hypothesis`.
#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    /// `title`.
    pub title: String,
    /// `probes`, each with a tolerance.
    pub probes: Vec<Activity>,
    /// Hypothesis-level `controls`.
    pub controls: Vec<ControlDecl>,
    /// The hypothesis as written.
    pub raw: Value,
}

/// An entry of `method` or `rollbacks`: an activity, or a reference to one by name.
#[derive(Clone, Debug, PartialEq)]
pub enum ActivityEntry {
    /// An activity declared in place.
    Inline(Box<Activity>),
    /// `{"ref": "<name>"}`.
    Ref(String),
}

impl ActivityEntry {
    /// The activity when declared in place.
    pub fn inline(&self) -> Option<&Activity> {
        match self {
            ActivityEntry::Inline(a) => Some(a.as_ref()),
            ActivityEntry::Ref(_) => None,
        }
    }

    /// True for a background activity (a reference never runs in the background).
    pub fn is_background(&self) -> bool {
        self.inline().is_some_and(|a| a.background)
    }
}

/// A probe or an action.
#[derive(Clone, Debug, PartialEq)]
pub struct Activity {
    /// `type`.
    pub kind: ActivityKind,
    /// `name`.
    pub name: String,
    /// `provider`.
    pub provider: Provider,
    /// `tolerance` (steady-state probes, and probes used inside `wait-until`).
    pub tolerance: Option<Tolerance>,
    /// `background`: run concurrently with what follows; awaited at the end of the method.
    pub background: bool,
    /// `pauses`.
    pub pauses: Pauses,
    /// `timeout` in seconds: validated but, as in the lib, not enforced at the activity level.
    pub timeout: Option<f64>,
    /// Activity-level `controls`.
    pub controls: Vec<ControlDecl>,
    /// Activity-level `dry`, overriding the run's.
    pub dry: Option<Dry>,
    /// The activity as written; the journal records it as `activity`.
    pub raw: Value,
}

/// `probe` or `action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivityKind {
    /// Observes the system.
    Probe,
    /// Changes the system.
    Action,
}

impl ActivityKind {
    /// `"Probe"` or `"Action"`, as the lib logs activities.
    pub fn title(self) -> &'static str {
        match self {
            ActivityKind::Probe => "Probe",
            ActivityKind::Action => "Action",
        }
    }
}

/// An activity's `provider`.
#[derive(Clone, Debug, PartialEq)]
pub enum Provider {
    /// `type: python`: a function of chaoslab's [`PythonProviders`](super::provider::PythonProviders).
    Python(PythonProvider),
    /// `type: process`: an executable.
    Process(ProcessProvider),
    /// `type: http`: an HTTP request.
    Http(HttpProvider),
}

/// `{type: python, module, func, arguments, secrets}`.
#[derive(Clone, Debug, PartialEq)]
pub struct PythonProvider {
    /// `module`, e.g. `chaoskafka.probes`.
    pub module: String,
    /// `func`, e.g. `check_consumer_lag_under_threshold`.
    pub func: String,
    /// `arguments` (substituted before the call).
    pub arguments: Map<String, Value>,
    /// `secrets`: the scopes handed to the function.
    pub secrets: Vec<String>,
}

/// `{type: process, path, arguments, timeout}`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessProvider {
    /// `path`, looked up on `PATH` (`~` expands to `$HOME`).
    pub path: String,
    /// `arguments`: a list (one argument per item, `None` and `""` dropped), a string (run through
    /// the shell as `"<path> <arguments>"`), or a mapping (deprecated: flattened to `k v k v…`).
    pub arguments: Value,
    /// `timeout` in seconds; exceeding it fails the activity.
    pub timeout: Option<f64>,
}

/// `{type: http, url, method, headers, arguments, timeout, verify_tls, max_retries}`.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpProvider {
    /// `url` (substituted).
    pub url: String,
    /// `method`, upper-cased (default `GET`).
    pub method: String,
    /// `headers` (substituted).
    pub headers: Map<String, Value>,
    /// `arguments`: the query for `GET`, otherwise the body.
    pub arguments: Option<Value>,
    /// `timeout`: a number or `[connect, read]`, possibly a `${…}` template.
    pub timeout: Option<Value>,
    /// `verify_tls` (default true).
    pub verify_tls: bool,
    /// `max_retries` on connection errors (default 0).
    pub max_retries: u32,
}

/// `pauses: {before, after}`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pauses {
    /// Pause before the activity.
    pub before: Option<Pause>,
    /// Pause after the activity.
    pub after: Option<Pause>,
}

/// One pause.
#[derive(Clone, Debug, PartialEq)]
pub enum Pause {
    /// A number of seconds.
    Seconds(f64),
    /// A `"${name}"` template resolving to a number of seconds.
    Template(String),
    /// chaoslab extension (chaostoolkit#62): `{wait-until: {probe, timeout, frequency}}` polls a probe
    /// until its tolerance holds, instead of sleeping a fixed time.
    WaitUntil(WaitUntil),
}

/// A pause that waits for a tolerance instead of a fixed time.
#[derive(Clone, Debug, PartialEq)]
pub struct WaitUntil {
    /// The probe to poll, inline or `{ref: name}`; it carries the tolerance that ends the wait.
    pub probe: Box<ActivityEntry>,
    /// Give up after this many seconds.
    pub timeout: f64,
    /// Seconds between two polls.
    pub frequency: f64,
}

/// A steady-state probe's `tolerance`, by the JSON shape the lib dispatches on.
#[derive(Clone, Debug, PartialEq)]
pub enum Tolerance {
    /// `true`/`false`: `value == tolerance`.
    Bool(bool),
    /// An integer: compared with `value["status"]` when the value has one, else `value == tolerance`.
    Int(Number),
    /// A string: `value == tolerance` after `${…}` substitution (which may yield another type).
    Str(String),
    /// A list: `status in list`; two items are an inclusive range; else `value in list`.
    List(Vec<Value>),
    /// `{type: probe, …}`: a probe called with `value`; passes when its result is truthy.
    Probe(Box<Activity>),
    /// `{type: regex, pattern, target?}`: `re.search`.
    Regex {
        /// The pattern (substituted).
        pattern: String,
        /// Key of a dict value to test instead of the whole value.
        target: Option<String>,
    },
    /// `{type: jsonpath, path, expect?, count?, target?}`.
    JsonPath {
        /// The JSONPath (substituted).
        path: String,
        /// Matches must equal `[expect]`, or `expect` when it is a list.
        expect: Option<Value>,
        /// Number of matches required.
        count: Option<u64>,
        /// Key of a dict value to query instead of the whole value.
        target: Option<String>,
    },
    /// `{type: range, range: [lo, hi], target?}`: inclusive decimal comparison.
    Range {
        /// Lower bound.
        lo: Number,
        /// Upper bound.
        hi: Number,
        /// Key of a dict value to compare instead of the whole value.
        target: Option<String>,
    },
}

/// A control declaration (`controls: [...]` at any level, or in the run settings for global ones).
#[derive(Clone, Debug, PartialEq)]
pub struct ControlDecl {
    /// `name` (empty for a bare `{ref}`).
    pub name: String,
    /// `provider.module` of the `python` provider (empty for a reference).
    pub module: String,
    /// `provider.arguments`, passed to every hook.
    pub arguments: Map<String, Value>,
    /// `scope`: only apply `before` or `after`.
    pub scope: Option<ControlScope>,
    /// `automatic` (default true): an experiment-level control also applies to every level below.
    pub automatic: bool,
    /// `ref`: this entry stands for the experiment-level control of that name.
    pub reference: Option<String>,
    /// The declaration as written.
    pub raw: Value,
}

/// Where a control hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlLevel {
    /// Around the whole run.
    Experiment,
    /// Around each run of the steady-state hypothesis.
    Hypothesis,
    /// Around the method.
    Method,
    /// Around the rollbacks.
    Rollback,
    /// Around each activity (pauses included).
    Activity,
}

impl ControlLevel {
    /// The level's name as in `before_<level>_control`.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlLevel::Experiment => "experiment",
            ControlLevel::Hypothesis => "hypothesis",
            ControlLevel::Method => "method",
            ControlLevel::Rollback => "rollback",
            ControlLevel::Activity => "activity",
        }
    }
}

/// `before` or `after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlScope {
    /// Before the level's work.
    Before,
    /// After it, with its state.
    After,
}

/// `runtime` of the experiment (or of the settings).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runtime {
    /// `runtime.rollbacks.strategy`.
    pub rollback_strategy: Option<RollbackStrategy>,
    /// `runtime.hypothesis.strategy`.
    pub hypothesis_strategy: Option<HypothesisStrategy>,
}

/// When the steady-state hypothesis runs (`--hypothesis-strategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HypothesisStrategy {
    /// Before and after the method.
    #[default]
    Default,
    /// Before the method only.
    BeforeMethodOnly,
    /// After the method only.
    AfterMethodOnly,
    /// Repeatedly during the method only.
    DuringMethodOnly,
    /// Before, repeatedly during, and after the method (`continously` is the deprecated spelling).
    #[serde(alias = "continously")]
    Continuously,
    /// Never (the lib reaches it through `runtime` or settings only).
    Skip,
}

impl HypothesisStrategy {
    /// Runs the hypothesis before the method (the gate).
    pub fn runs_before(self) -> bool {
        matches!(self, Self::Default | Self::BeforeMethodOnly | Self::Continuously)
    }

    /// Runs the hypothesis after the method (deviation check).
    pub fn runs_after(self) -> bool {
        matches!(self, Self::Default | Self::AfterMethodOnly | Self::Continuously)
    }

    /// Runs the hypothesis repeatedly while the method runs.
    pub fn runs_during(self) -> bool {
        matches!(self, Self::DuringMethodOnly | Self::Continuously)
    }
}

/// Whether rollbacks play (`--rollback-strategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RollbackStrategy {
    /// Unless the run `failed` or was `interrupted`.
    #[default]
    Default,
    /// Always.
    Always,
    /// Never.
    Never,
    /// Only when the experiment deviated.
    Deviated,
}

/// `--dry`: what not to execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dry {
    /// Skip probes (and their pauses).
    Probes,
    /// Skip actions (and their pauses).
    Actions,
    /// Skip every activity (and their pauses).
    Activities,
    /// Run every activity but skip all pauses.
    Pause,
}

impl Dry {
    /// The value as written in experiments and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Dry::Probes => "probes",
            Dry::Actions => "actions",
            Dry::Activities => "activities",
            Dry::Pause => "pause",
        }
    }
}

/// A string that is not one of an option's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not one of {allowed}")]
pub struct UnknownChoice {
    /// What was given.
    pub value: String,
    /// The accepted values, `|`-separated.
    pub allowed: &'static str,
}

/// Parses an option value through its serde name (one spelling for files and command lines).
fn parse_choice<T: for<'de> Deserialize<'de>>(s: &str, allowed: &'static str) -> Result<T, UnknownChoice> {
    serde_json::from_value(Value::String(s.to_owned()))
        .map_err(|_| UnknownChoice { value: s.to_owned(), allowed })
}

impl FromStr for HypothesisStrategy {
    type Err = UnknownChoice;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_choice(s, "default|before-method-only|after-method-only|during-method-only|continuously|skip")
    }
}

impl FromStr for RollbackStrategy {
    type Err = UnknownChoice;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_choice(s, "default|always|never|deviated")
    }
}

impl FromStr for Dry {
    type Err = UnknownChoice;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_choice(s, "probes|actions|activities|pause")
    }
}

impl fmt::Display for HypothesisStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Default => "default",
            Self::BeforeMethodOnly => "before-method-only",
            Self::AfterMethodOnly => "after-method-only",
            Self::DuringMethodOnly => "during-method-only",
            Self::Continuously => "continuously",
            Self::Skip => "skip",
        };
        f.write_str(s)
    }
}

impl fmt::Display for RollbackStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Default => "default",
            Self::Always => "always",
            Self::Never => "never",
            Self::Deviated => "deviated",
        };
        f.write_str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_their_cli_spellings() {
        assert_eq!("continously".parse::<HypothesisStrategy>(), Ok(HypothesisStrategy::Continuously));
        assert_eq!("during-method-only".parse(), Ok(HypothesisStrategy::DuringMethodOnly));
        assert_eq!("deviated".parse(), Ok(RollbackStrategy::Deviated));
        assert_eq!("pause".parse(), Ok(Dry::Pause));
        let err = "sometimes".parse::<RollbackStrategy>().unwrap_err();
        assert_eq!(err.to_string(), "'sometimes' is not one of default|always|never|deviated");
        assert_eq!(HypothesisStrategy::BeforeMethodOnly.to_string(), "before-method-only");
    }

    #[test]
    fn strategy_phases() {
        use HypothesisStrategy::*;
        let phases = |s: HypothesisStrategy| (s.runs_before(), s.runs_during(), s.runs_after());
        assert_eq!(phases(Default), (true, false, true));
        assert_eq!(phases(BeforeMethodOnly), (true, false, false));
        assert_eq!(phases(AfterMethodOnly), (false, false, true));
        assert_eq!(phases(DuringMethodOnly), (false, true, false));
        assert_eq!(phases(Continuously), (true, true, true));
        assert_eq!(phases(Skip), (false, false, false));
    }
}
