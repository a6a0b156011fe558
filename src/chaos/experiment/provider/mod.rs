//! Providers: what actually runs when an activity runs.
//!
//! `http` and `process` are implemented here for real, as chaostoolkit-lib does. `python` providers
//! name a module and a function; chaoslab has no Python, so they go to a [`PythonProviders`]
//! registry that the embedding program supplies (chaoslab's own actions and probes, or a fake in
//! tests). As in the lib's python provider, anything that goes wrong inside the function (an error
//! or even a panic) is an *activity failure*, recorded in the journal, not a crash of the run.

pub mod http;
pub mod process;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use futures::FutureExt;
use serde_json::{Map, Value};
use thiserror::Error;

use super::model::{Activity, Configuration, Provider, PythonProvider, Secrets};
use super::substitute::{Bindings, substitute_map};

/// Why an activity failed (the lib's `ActivityFailed`).
#[derive(Clone, Debug, PartialEq, Error)]
pub enum ActivityError {
    /// The provider reported a failure.
    #[error("{0}")]
    Failed(String),
    /// The activity took longer than its provider's `timeout`.
    #[error("{what} took too long to complete (timeout {seconds}s)")]
    TimedOut {
        /// `"process activity"` or `"activity"`, as the lib words it.
        what: &'static str,
        /// The timeout.
        seconds: f64,
    },
    /// No Python provider is registered under this module and function.
    #[error("could not find Python function '{func}' in module '{module}'")]
    UnknownFunction {
        /// `module`.
        module: String,
        /// `func`.
        func: String,
    },
    /// The provider panicked; the run goes on, as the lib goes on after an exception in a function.
    #[error("the provider panicked: {0}")]
    Panicked(String),
}

impl ActivityError {
    /// A failure with a message.
    pub fn failed(message: impl Into<String>) -> Self {
        ActivityError::Failed(message.into())
    }

    /// The journal's `exception` lines for this failure, shaped like Python's
    /// `traceback.format_exception` of a `chaoslib.exceptions.ActivityFailed` without traceback.
    pub fn exception_lines(&self) -> Vec<String> {
        vec![format!("chaoslib.exceptions.ActivityFailed: {self}\n")]
    }
}

/// A boxed future returned by provider and control hooks (object-safe `async fn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The `type: python` providers chaoslab knows: `module` + `func` + `arguments`.
pub trait PythonProviders: Send + Sync {
    /// Calls `module.func` with the substituted `args` (a JSON object), the run's configuration and
    /// the secret scopes the provider listed in `secrets` (empty when it listed none).
    fn call(
        &self,
        module: &str,
        func: &str,
        args: &Value,
        config: &Configuration,
        secrets: &Secrets,
    ) -> Pin<Box<dyn Future<Output = Result<Value, ActivityError>> + Send + '_>>;

    /// True when `module.func` exists; validation reports the others.
    fn knows(&self, module: &str, func: &str) -> bool;

    /// Checks `arguments` against the function's signature (the lib inspects the Python signature);
    /// returns why they do not fit. The default accepts anything.
    fn check_arguments(
        &self,
        module: &str,
        func: &str,
        arguments: &Map<String, Value>,
    ) -> Result<(), String> {
        let _ = (module, func, arguments);
        Ok(())
    }
}

/// A registry without any Python provider (for experiments using only `http`/`process`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPythonProviders;

impl PythonProviders for NoPythonProviders {
    fn call(
        &self,
        module: &str,
        func: &str,
        _args: &Value,
        _config: &Configuration,
        _secrets: &Secrets,
    ) -> Pin<Box<dyn Future<Output = Result<Value, ActivityError>> + Send + '_>> {
        let err = ActivityError::UnknownFunction { module: module.to_owned(), func: func.to_owned() };
        Box::pin(async move { Err(err) })
    }

    fn knows(&self, _module: &str, _func: &str) -> bool {
        false
    }
}

/// Runs an activity's provider with `${…}` substituted from `bindings` (the lib's `run_activity`:
/// no controls, no pauses).
pub(crate) async fn run_provider(
    activity: &Activity,
    bindings: &Bindings<'_>,
    python: &dyn PythonProviders,
) -> Result<Value, ActivityError> {
    // Providers warn about error statuses only outside the steady-state hypothesis, where an error
    // status may be exactly what the tolerance expects.
    let in_hypothesis = activity.tolerance.is_some();
    match &activity.provider {
        Provider::Python(p) => call_python(p, bindings, python).await,
        Provider::Process(p) => process::run(p, in_hypothesis, bindings).await,
        Provider::Http(p) => http::run(p, in_hypothesis, bindings).await,
    }
}

async fn call_python(
    provider: &PythonProvider,
    bindings: &Bindings<'_>,
    python: &dyn PythonProviders,
) -> Result<Value, ActivityError> {
    let (module, func) = (provider.module.as_str(), provider.func.as_str());
    if !python.knows(module, func) {
        return Err(ActivityError::UnknownFunction { module: module.to_owned(), func: func.to_owned() });
    }
    let args = Value::Object(substitute_map(&provider.arguments, bindings));
    let secrets: Secrets = provider
        .secrets
        .iter()
        .filter_map(|scope| bindings.secrets.get(scope).map(|v| (scope.clone(), v.clone())))
        .collect();
    let call = std::panic::catch_unwind(AssertUnwindSafe(|| {
        python.call(module, func, &args, bindings.configuration, &secrets)
    }));
    let outcome = match call {
        Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
        Err(panic) => Err(panic),
    };
    outcome.unwrap_or_else(|panic| Err(ActivityError::Panicked(panic_message(panic.as_ref()))))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chaos::experiment::substitute::Outputs;
    use crate::chaos::experiment::testkit::{FakePython, activity};

    #[tokio::test]
    async fn python_calls_get_substituted_arguments_and_listed_secret_scopes() {
        let fake = FakePython::new().returning("m", "f", json!(42));
        let act = activity(json!({"type": "action", "name": "a", "provider": {"type": "python",
            "module": "m", "func": "f", "arguments": {"x": "${x}", "o": "${output:prev}"}, "secrets": ["kafka"]}}));
        let configuration = json!({"x": 7}).as_object().cloned().unwrap();
        let secrets = json!({"kafka": {"k": 1}, "aws": {"a": 2}}).as_object().cloned().unwrap();
        let mut outputs = Outputs::new();
        outputs.insert("prev".into(), json!("earlier"));
        let b = Bindings { configuration: &configuration, secrets: &secrets, outputs: &outputs };
        assert_eq!(run_provider(&act, &b, &fake).await, Ok(json!(42)));
        let calls = fake.calls();
        assert_eq!(calls[0].args, json!({"x": 7, "o": "earlier"}));
        assert_eq!(calls[0].secrets, json!({"kafka": {"k": 1}}));
    }

    #[tokio::test]
    async fn unknown_functions_and_panics_are_activity_failures() {
        let fake = FakePython::new().panicking("m", "boom");
        let configuration = Configuration::new();
        let secrets = Secrets::new();
        let outputs = Outputs::new();
        let b = Bindings { configuration: &configuration, secrets: &secrets, outputs: &outputs };
        let unknown = activity(json!({"type": "probe", "name": "p",
            "provider": {"type": "python", "module": "m", "func": "nope"}}));
        let err = run_provider(&unknown, &b, &fake).await.unwrap_err();
        assert_eq!(err.to_string(), "could not find Python function 'nope' in module 'm'");
        let boom = activity(json!({"type": "probe", "name": "p",
            "provider": {"type": "python", "module": "m", "func": "boom"}}));
        let err = run_provider(&boom, &b, &fake).await.unwrap_err();
        assert!(matches!(&err, ActivityError::Panicked(m) if m.contains("boom")), "{err}");
        assert_eq!(err.exception_lines(), vec![format!("chaoslib.exceptions.ActivityFailed: {err}\n")]);
    }
}
