//! Test helpers shared by the engine's unit tests: a recording fake of [`PythonProviders`], a
//! recording [`Controls`], a virtual-time clock, and shortcuts that build activities and tolerances
//! through validation.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::config::Vars;
use super::control::{Controls, Hook, Interrupt};
use super::model::{Activity, ActivityEntry, Configuration, ControlLevel, ControlScope, Secrets, Tolerance};
use super::provider::{ActivityError, BoxFuture, PythonProviders};
use super::run::Now;
use super::validate::validate;

type Handler = Arc<dyn Fn(&Value) -> Result<Value, ActivityError> + Send + Sync>;

/// One recorded provider call.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub module: String,
    pub func: String,
    pub args: Value,
    pub config: Value,
    pub secrets: Value,
}

/// A scripted, recording set of Python providers.
#[derive(Clone, Default)]
pub struct FakePython {
    handlers: BTreeMap<(String, String), (Handler, Option<Duration>)>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl FakePython {
    pub fn new() -> Self {
        Self::default()
    }

    /// `module.func` answers `f(args)`.
    pub fn with(
        mut self,
        module: &str,
        func: &str,
        f: impl Fn(&Value) -> Result<Value, ActivityError> + Send + Sync + 'static,
    ) -> Self {
        self.handlers.insert((module.into(), func.into()), (Arc::new(f), None));
        self
    }

    /// `module.func` answers `value`.
    pub fn returning(self, module: &str, func: &str, value: Value) -> Self {
        self.with(module, func, move |_| Ok(value.clone()))
    }

    /// `module.func` panics.
    pub fn panicking(self, module: &str, func: &str) -> Self {
        self.with(module, func, |_| panic!("boom from a fake provider"))
    }

    /// `module.func` takes `seconds` (tokio time) before answering.
    pub fn delayed(mut self, module: &str, func: &str, seconds: u64) -> Self {
        if let Some(entry) = self.handlers.get_mut(&(module.into(), func.into())) {
            entry.1 = Some(Duration::from_secs(seconds));
        }
        self
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn call_names(&self) -> Vec<String> {
        self.calls().iter().map(|c| c.func.clone()).collect()
    }
}

impl PythonProviders for FakePython {
    fn call(
        &self,
        module: &str,
        func: &str,
        args: &Value,
        config: &Configuration,
        secrets: &Secrets,
    ) -> Pin<Box<dyn Future<Output = Result<Value, ActivityError>> + Send + '_>> {
        self.calls.lock().unwrap().push(Call {
            module: module.into(),
            func: func.into(),
            args: args.clone(),
            config: Value::Object(config.clone()),
            secrets: Value::Object(secrets.clone()),
        });
        let (handler, delay) = self.handlers[&(module.to_owned(), func.to_owned())].clone();
        let result = handler(args);
        Box::pin(async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            result
        })
    }

    fn knows(&self, module: &str, func: &str) -> bool {
        self.handlers.contains_key(&(module.to_owned(), func.to_owned()))
    }
}

/// Knows every function (for building activities in tests).
pub struct AnyPython;

impl PythonProviders for AnyPython {
    fn call(
        &self,
        _module: &str,
        _func: &str,
        _args: &Value,
        _config: &Configuration,
        _secrets: &Secrets,
    ) -> Pin<Box<dyn Future<Output = Result<Value, ActivityError>> + Send + '_>> {
        Box::pin(async { Ok(Value::Null) })
    }

    fn knows(&self, _module: &str, _func: &str) -> bool {
        true
    }
}

/// An activity from its JSON, through validation.
pub fn activity(doc: Value) -> Activity {
    let exp = validate(&json!({"title": "t", "description": "d", "method": [doc]}), &AnyPython).unwrap();
    match exp.method.into_iter().next() {
        Some(ActivityEntry::Inline(a)) => *a,
        other => panic!("not an inline activity: {other:?}"),
    }
}

/// A tolerance from its JSON, through validation.
pub fn tolerance(doc: Value) -> Tolerance {
    let probe = json!({"type": "probe", "name": "p", "tolerance": doc,
        "provider": {"type": "python", "module": "m", "func": "f"}});
    let exp = validate(
        &json!({"title": "t", "description": "d", "method": [],
                "steady-state-hypothesis": {"title": "h", "probes": [probe]}}),
        &AnyPython,
    )
    .unwrap();
    exp.steady_state_hypothesis.unwrap().probes[0].tolerance.clone().unwrap()
}

/// Calendar time in virtual time: 2024-01-01T00:00:00Z plus the tokio clock's elapsed time since
/// this call (the test runtime's clock is paused).
pub fn sim_now() -> Now {
    let epoch: DateTime<Utc> = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let start = tokio::time::Instant::now();
    Arc::new(move || epoch + chrono::Duration::from_std(start.elapsed()).unwrap())
}

/// One recorded control hook.
#[derive(Clone, Debug, PartialEq)]
pub struct HookCall {
    pub control: String,
    pub level: ControlLevel,
    pub scope: ControlScope,
    pub context_name: Option<String>,
    pub state: Option<Value>,
}

type ControlAction = Arc<dyn Fn(&Hook<'_>, &mut Vars) -> ControlFlow<Interrupt> + Send + Sync>;

/// Controls that record every hook and may act on some (keyed by module).
#[derive(Clone, Default)]
pub struct RecordingControls {
    actions: BTreeMap<String, ControlAction>,
    pub hooks: Arc<Mutex<Vec<HookCall>>>,
}

impl RecordingControls {
    pub fn new() -> Self {
        Self::default()
    }

    /// Hooks of controls whose module is `module` run `f`.
    pub fn on(
        mut self,
        module: &str,
        f: impl Fn(&Hook<'_>, &mut Vars) -> ControlFlow<Interrupt> + Send + Sync + 'static,
    ) -> Self {
        self.actions.insert(module.into(), Arc::new(f));
        self
    }

    pub fn hooks(&self) -> Vec<HookCall> {
        self.hooks.lock().unwrap().clone()
    }
}

impl Controls for RecordingControls {
    fn knows(&self, module: &str) -> bool {
        self.actions.contains_key(module)
    }

    fn apply<'a>(&'a self, hook: Hook<'a>, vars: &'a mut Vars) -> BoxFuture<'a, ControlFlow<Interrupt>> {
        self.hooks.lock().unwrap().push(HookCall {
            control: hook.control.name.clone(),
            level: hook.level,
            scope: hook.scope,
            context_name: hook.context.get("name").and_then(Value::as_str).map(str::to_owned),
            state: hook.state.cloned(),
        });
        let outcome = match self.actions.get(&hook.control.module) {
            Some(action) => action(&hook, vars),
            None => ControlFlow::Continue(()),
        };
        Box::pin(async move { outcome })
    }
}

/// A probe activity calling `sys.<func>` with `tolerance` (`null`: no tolerance).
pub fn probe(name: &str, func: &str, tolerance: Value) -> Value {
    let mut p =
        json!({"type": "probe", "name": name, "provider": {"type": "python", "module": "sys", "func": func}});
    if !tolerance.is_null() {
        p["tolerance"] = tolerance;
    }
    p
}

/// An action activity calling `sys.<func>`.
pub fn action(name: &str, func: &str) -> Value {
    json!({"type": "action", "name": name, "provider": {"type": "python", "module": "sys", "func": func}})
}

/// An experiment document with these hypothesis probes (none: no hypothesis), method and rollbacks.
pub fn experiment_doc(probes: Vec<Value>, method: Vec<Value>, rollbacks: Vec<Value>) -> Value {
    let mut doc = json!({"title": "t", "description": "d", "method": method, "rollbacks": rollbacks});
    if !probes.is_empty() {
        doc["steady-state-hypothesis"] = json!({"title": "h", "probes": probes});
    }
    doc
}

/// Validates `doc`, resolves its vars from `env`, and runs it with `python`, `controls` and the
/// settings `tune` adjusts, in virtual time.
pub async fn run_doc(
    doc: &Value,
    python: &dyn PythonProviders,
    controls: &dyn Controls,
    env: &[(&str, &str)],
    cancel: tokio_util::sync::CancellationToken,
    tune: impl FnOnce(&mut super::settings::RunSettings),
) -> super::journal::Journal {
    let experiment = validate(doc, python).unwrap();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let vars = super::config::resolve_vars(&experiment, &Default::default(), &lookup).unwrap();
    let mut settings = super::settings::RunSettings::new(vars);
    tune(&mut settings);
    super::run::run_experiment(&experiment, settings, python, controls, cancel, sim_now()).await
}

/// Seconds of virtual time since `start`.
pub fn since(start: tokio::time::Instant) -> u64 {
    start.elapsed().as_secs()
}
