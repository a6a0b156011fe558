//! Controls: hooks that run before and after each level of a run, and may change its configuration
//! or interrupt it.
//!
//! In Chaos Toolkit a control is a Python module with `before_<level>_control` /
//! `after_<level>_control` functions (plus `configure_control` and `cleanup_control`), declared in
//! the experiment (`controls:` at experiment, hypothesis or activity level) or globally in the
//! settings. chaoslab plugs its own in through [`Controls`]: the engine works out which declared
//! controls apply where (exactly as chaostoolkit-lib's `get_context_controls`) and calls
//! [`Controls::apply`] for each, with the level, the scope, the context (the experiment, hypothesis
//! or activity as JSON), the state after the level ran, and the live configuration and secrets.
//!
//! A hook returning [`ControlFlow::Break`] is the lib's `InterruptExecution`: the run ends as
//! `interrupted`, rollbacks following the rollback strategy. A control that keeps watching the run
//! from its before-experiment hook to its after-experiment hook (chaosaddons' safeguards) returns
//! that work from [`Controls::watch`] (see [`watch`](super::watch)); one whose `arguments` must be
//! checked does it in [`Controls::validate`] (the lib's `validate_control`).
//! (chaoskafka's `get_production_offsets` is an `after_activity_control` that reads the produce
//! result from the state and writes `partition`, `earliest` and `num_messages` into the
//! configuration for the rollback to use.)

use std::ops::ControlFlow;
use std::sync::Arc;

use serde_json::Value;

use super::config::Vars;
use super::model::{ControlDecl, ControlLevel, ControlScope, Experiment};
use super::provider::{BoxFuture, PythonProviders};
use super::validate::ValidationError;
use super::watch::{Probing, Watch};

/// Why a control interrupted the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interrupt {
    /// Logged, and recorded as the reason of the interruption.
    pub reason: String,
}

impl Interrupt {
    /// An interruption for `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Interrupt { reason: reason.into() }
    }
}

/// One hook invocation.
#[derive(Clone, Copy, Debug)]
pub struct Hook<'a> {
    /// The declared control being applied (its `module` and `arguments` say what to do).
    pub control: &'a ControlDecl,
    /// The level being wrapped.
    pub level: ControlLevel,
    /// Before or after it.
    pub scope: ControlScope,
    /// The experiment.
    pub experiment: &'a Experiment,
    /// The context as JSON: the experiment (experiment, method, rollback levels), the hypothesis or
    /// the activity.
    pub context: &'a Value,
    /// After-scope only: the level's result as JSON — the journal (experiment), the steady-state
    /// (hypothesis), the list of runs (method, rollback) or the run (activity). `None` before, or when
    /// the level did not get to produce one.
    pub state: Option<&'a Value>,
}

/// chaoslab's control implementations, looked up by the declared `provider.module`.
pub trait Controls: Send + Sync {
    /// True when `module` is a control chaoslab has (validation reports the others).
    fn knows(&self, module: &str) -> bool;

    /// `configure_control`, once per declared control name before the run. An error is logged; a
    /// failing *global* control is then left out of the run, as in the lib.
    fn configure<'a>(
        &'a self,
        control: &'a ControlDecl,
        experiment: &'a Experiment,
        vars: &'a mut Vars,
    ) -> BoxFuture<'a, Result<(), String>> {
        let _ = (control, experiment, vars);
        Box::pin(async { Ok(()) })
    }

    /// A `before_*`/`after_*` hook. It may change `vars`; `Break` interrupts the run.
    fn apply<'a>(&'a self, hook: Hook<'a>, vars: &'a mut Vars) -> BoxFuture<'a, ControlFlow<Interrupt>>;

    /// `cleanup_control`, once per declared control name after the run.
    fn cleanup(&self, control: &ControlDecl) {
        let _ = control;
    }

    /// The lib's `validate_control`: the problems of the declaration `raw` (a control of a module this
    /// set knows), whose JSON path is `path` (`$.controls[0]`). `providers` check the `python`
    /// providers of activities it declares.
    fn validate(&self, raw: &Value, path: &str, providers: &dyn PythonProviders) -> Vec<ValidationError> {
        let _ = (raw, path, providers);
        Vec::new()
    }

    /// Work the control keeps doing alongside the run, started right after its before-experiment
    /// hook and stopped by its after-experiment hook (see [`watch`](super::watch)). `None`: nothing
    /// to watch (the default).
    fn watch<'a>(
        &'a self,
        control: &ControlDecl,
        probing: Arc<dyn Probing + 'a>,
        watch: Watch,
    ) -> Option<BoxFuture<'a, ()>> {
        let _ = (control, probing, watch);
        None
    }
}

/// No controls at all: every declared control is unknown and every hook does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoControls;

impl Controls for NoControls {
    fn knows(&self, _module: &str) -> bool {
        false
    }

    fn apply<'a>(&'a self, _hook: Hook<'a>, _vars: &'a mut Vars) -> BoxFuture<'a, ControlFlow<Interrupt>> {
        Box::pin(async { ControlFlow::Continue(()) })
    }
}

/// The controls applied at `level`, in order, given the experiment's `top` controls, the
/// `context`'s own (for the experiment, method and rollback levels the context *is* the experiment)
/// and the `global` ones from the settings. This is chaostoolkit-lib's `get_context_controls`, quirks
/// included, so that an experiment behaves the same under both engines:
/// - with no experiment-level controls: the context's own, then the global ones;
/// - a context without controls, and the method and rollback levels: the automatic experiment-level
///   controls only (global ones are then *not* applied there);
/// - otherwise the context's and global ones, each `ref` adding the experiment-level control it
///   names, and each non-`ref` control bringing in front of the list every automatic
///   experiment-level control of another name (once per such control: two context controls bring
///   them twice). Nothing is added at the experiment level itself.
pub(crate) fn applicable<'a>(
    level: ControlLevel,
    top: &'a [ControlDecl],
    context: &'a [ControlDecl],
    global: &'a [ControlDecl],
) -> Vec<&'a ControlDecl> {
    let mut controls: Vec<&ControlDecl> = context.iter().chain(global).collect();
    if top.is_empty() {
        return controls;
    }
    if controls.is_empty() || matches!(level, ControlLevel::Method | ControlLevel::Rollback) {
        return top.iter().filter(|c| c.automatic).collect();
    }
    for c in controls.clone() {
        if let Some(name) = &c.reference {
            if let Some(declared) = top.iter().find(|t| &t.name == name) {
                controls.push(declared);
            }
            continue;
        }
        for t in top.iter().rev() {
            if c.name != t.name && level != ControlLevel::Experiment && t.automatic {
                controls.insert(0, t);
            }
        }
    }
    controls
}

/// Every declared control once per name (experiment, hypothesis, then activities), for
/// `configure_control` and `cleanup_control`. References are not declarations.
pub(crate) fn declared_once(experiment: &Experiment) -> Vec<&ControlDecl> {
    let mut seen: Vec<&str> = Vec::new();
    let mut once = Vec::new();
    for c in experiment.all_controls() {
        if c.name.is_empty() || c.reference.is_some() || seen.contains(&c.name.as_str()) {
            continue;
        }
        seen.push(&c.name);
        once.push(c);
    }
    once
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;

    fn decl(name: &str, automatic: bool) -> ControlDecl {
        ControlDecl {
            name: name.to_owned(),
            module: format!("mod.{name}"),
            arguments: Map::new(),
            scope: None,
            automatic,
            reference: None,
            raw: json!({"name": name}),
        }
    }

    fn reference(name: &str) -> ControlDecl {
        ControlDecl { reference: Some(name.to_owned()), module: String::new(), ..decl("", true) }
    }

    fn names(list: Vec<&ControlDecl>) -> Vec<String> {
        list.iter().map(|c| if c.name.is_empty() { "<ref>".into() } else { c.name.clone() }).collect()
    }

    #[test]
    fn without_experiment_controls_the_context_and_globals_apply() {
        let own = [decl("offsets", true)];
        let global = [decl("safeguard", true)];
        assert_eq!(names(applicable(ControlLevel::Activity, &[], &own, &global)), ["offsets", "safeguard"]);
        assert_eq!(names(applicable(ControlLevel::Method, &[], &[], &global)), ["safeguard"]);
    }

    #[test]
    fn experiment_controls_cascade_when_automatic() {
        let top = [decl("tracing", true), decl("manual", false)];
        assert_eq!(names(applicable(ControlLevel::Activity, &top, &[], &[])), ["tracing"]);
        assert_eq!(names(applicable(ControlLevel::Rollback, &top, &top, &[decl("g", true)])), ["tracing"]);
        assert_eq!(names(applicable(ControlLevel::Experiment, &top, &top, &[])), ["tracing", "manual"]);
        let own = [decl("offsets", true)];
        assert_eq!(names(applicable(ControlLevel::Activity, &top, &own, &[])), ["tracing", "offsets"]);
        let same_name = [decl("tracing", true)];
        assert_eq!(names(applicable(ControlLevel::Hypothesis, &top, &same_name, &[])), ["tracing"]);
    }

    #[test]
    fn references_and_the_duplication_quirk() {
        let top = [decl("tracing", true), decl("manual", false)];
        let own = [reference("manual")];
        assert_eq!(names(applicable(ControlLevel::Activity, &top, &own, &[])), ["<ref>", "manual"]);
        let two = [decl("a", true), decl("b", true)];
        assert_eq!(
            names(applicable(ControlLevel::Activity, &top, &two, &[])),
            ["tracing", "tracing", "a", "b"]
        );
    }
}
