//! `chaosaddons.controls.safeguards` (chaostoolkit-addons 0.11), natively.
//!
//! The control declares `arguments.probes`: probes, each with a `tolerance`, that keep an eye on the
//! system while the experiment runs. Its `before_experiment_control` starts them all at once:
//! - a probe with neither `background` nor `frequency` runs once *now*: the hook (and so the run)
//!   waits until every such probe has run, then their tolerances are checked, so one that misses
//!   interrupts the run before anything else runs;
//! - `background: true`: runs once, beside the run, and is checked when it returns;
//! - `frequency: N`: runs, waits `N` seconds, then checks that run, and again, until the control's
//!   `after_experiment_control` (a probe's run is judged `N` seconds after it was taken, as the
//!   addon's `run_repeatedly` does). `frequency` wins over `background`.
//!
//! The first probe that misses its tolerance (a failed probe has no output, which misses) interrupts
//! the run at once, wherever it is: status `interrupted`, rollbacks per strategy, and the log says
//! `Safeguard '<name>' triggered the end of the experiment`. The probes go on until the
//! after-experiment hook, which stops them and waits for those in flight. Probes run through the
//! engine's activity machinery (providers, activity-level controls, pauses, substitution); like the
//! addon's own `execute_activity` they are not in the journal and a dry run does not skip them.
//!
//! Validation is the addon's `validate_control`: at least one probe, each a valid activity of type
//! `probe` with a tolerance; chaoslab also refuses a `frequency` that is not a positive number of
//! seconds and a `{ref}` (the addon crashes on it).

use std::sync::Arc;
use std::time::Duration;

use futures::future::{join, join_all};
use serde_json::{Map, Value};

use crate::chaos::experiment::control::Interrupt;
use crate::chaos::experiment::journal::ActivityRun;
use crate::chaos::experiment::model::{Activity, ActivityKind, ControlDecl, Tolerance};
use crate::chaos::experiment::provider::BoxFuture;
use crate::chaos::experiment::validate::ValidationError;
use crate::chaos::experiment::watch::{Probing, Watch};

/// The module name of the control.
pub const SAFEGUARDS: &str = "chaosaddons.controls.safeguards";

/// Reads a probe declared at a JSON path into an activity (validation with the run's providers).
pub(crate) type ReadProbe<'r> = dyn Fn(&Value, &str) -> Result<Activity, Vec<ValidationError>> + 'r;

/// When a safeguard runs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum When {
    /// Once, before the experiment goes on.
    Now,
    /// Once, beside the run.
    Soon,
    /// Again and again, this long apart.
    Every(Duration),
}

/// One safeguard probe.
#[derive(Clone, Debug)]
struct Safeguard {
    probe: Activity,
    tolerance: Tolerance,
    when: When,
}

/// Reads `arguments.probes` of a control at `path`, reading each probe with `read`.
fn safeguards(
    arguments: &Map<String, Value>,
    path: &str,
    read: &ReadProbe<'_>,
) -> Result<Vec<Safeguard>, Vec<ValidationError>> {
    let at = format!("{path}.provider.arguments.probes");
    let probes = match arguments.get("probes") {
        Some(Value::Array(probes)) if !probes.is_empty() => probes,
        None | Some(Value::Null) | Some(Value::Array(_)) => {
            return Err(vec![ValidationError::new(at, "safeguard control must have at least one probe")]);
        }
        Some(_) => return Err(vec![ValidationError::new(at, "safeguard control probes must be a list")]),
    };
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, raw) in probes.iter().enumerate() {
        let path = format!("{at}[{i}]");
        let every = match raw.get("frequency") {
            None | Some(Value::Null) => Ok(None),
            Some(f) => f
                .as_f64()
                .filter(|s| *s > 0.0)
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .map(Some)
                .ok_or_else(|| {
                    errors.push(ValidationError::new(
                        format!("{path}.frequency"),
                        "safeguard probe frequency must be a positive number of seconds",
                    ))
                }),
        };
        let probe = match read(raw, &path) {
            Ok(probe) => probe,
            Err(problems) => {
                errors.extend(problems);
                continue;
            }
        };
        if probe.kind != ActivityKind::Probe {
            errors.push(ValidationError::new(
                format!("{path}.type"),
                format!("safeguard control '{}' should be of type 'probe' not 'action'", probe.name),
            ));
            continue;
        }
        let Some(tolerance) = probe.tolerance.clone() else {
            errors.push(ValidationError::new(
                format!("{path}.tolerance"),
                format!(
                    "safeguard control is invalid as the probe '{}' is missing a tolerance property",
                    probe.name
                ),
            ));
            continue;
        };
        let when = match every {
            Ok(Some(every)) => When::Every(every),
            Ok(None) if probe.background => When::Soon,
            Ok(None) => When::Now,
            Err(()) => continue,
        };
        out.push(Safeguard { probe, tolerance, when });
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// The control's problems (`validate_control`); `raw` is the declaration at `path`.
pub(crate) fn validate(raw: &Value, path: &str, read: &ReadProbe<'_>) -> Vec<ValidationError> {
    let no_arguments = Map::new();
    let arguments = raw.pointer("/provider/arguments").and_then(Value::as_object).unwrap_or(&no_arguments);
    safeguards(arguments, path, read).err().unwrap_or_default()
}

/// The guardian: every safeguard of `control`, until `watch` stops. `None` when the arguments are
/// wrong (reported by validation; at run time the lib logs the control's failure and goes on).
pub(crate) fn guardian<'a>(
    control: &ControlDecl,
    probing: Arc<dyn Probing + 'a>,
    watch: Watch,
) -> Option<BoxFuture<'a, ()>> {
    let read = |raw: &Value, path: &str| probing.read_activity(raw, path);
    let guards = match safeguards(&control.arguments, &format!("control '{}'", control.name), &read) {
        Ok(guards) => guards,
        Err(errors) => {
            let problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
            tracing::warn!(control = %control.name, "safeguards not started: {}", problems.join("; "));
            return None;
        }
    };
    Some(Box::pin(async move {
        let probing = probing.as_ref();
        let (now, later): (Vec<&Safeguard>, Vec<&Safeguard>) =
            guards.iter().partition(|g| g.when == When::Now);
        let prechecks = async {
            // The lib's barrier: every "now" probe has run before any is judged and the hook returns.
            let runs = join_all(now.iter().map(|g| execute(probing, g))).await;
            for (guard, run) in now.iter().zip(runs) {
                if let Some(run) = run {
                    judge(probing, &watch, guard, &run).await;
                }
            }
            watch.ready();
        };
        let others = join_all(later.iter().map(|g| async {
            match g.when {
                When::Every(every) => repeatedly(probing, &watch, g, every).await,
                _ => {
                    if let Some(run) = execute(probing, g).await {
                        judge(probing, &watch, g, &run).await;
                    }
                }
            }
        }));
        join(prechecks, others).await;
        tracing::debug!("Guardian is now terminated");
    }))
}

/// The addon's `run_repeatedly`: run, wait, judge that run unless stopped meanwhile.
async fn repeatedly(probing: &dyn Probing, watch: &Watch, guard: &Safeguard, every: Duration) {
    while !watch.is_stopped() {
        let Some(run) = execute(probing, guard).await else { return };
        tokio::select! {
            biased;
            _ = watch.stopped() => return,
            _ = tokio::time::sleep(every) => {}
        }
        judge(probing, watch, guard, &run).await;
    }
    tracing::debug!("Safeguard '{}' finished normally", guard.probe.name);
}

/// Runs the probe; `None` (logged) when it could not run at all, which ends that safeguard.
async fn execute(probing: &dyn Probing, guard: &Safeguard) -> Option<ActivityRun> {
    match probing.run_probe(&guard.probe).await {
        Ok(run) => Some(run),
        Err(why) => {
            tracing::debug!("Safeguard '{}' failed: {why}", guard.probe.name);
            None
        }
    }
}

/// The addon's `interrupt_experiment_on_unhealthy_probe`.
async fn judge(probing: &dyn Probing, watch: &Watch, guard: &Safeguard, run: &ActivityRun) {
    if probing.within_tolerance(&guard.tolerance, &run.output).await {
        return;
    }
    let name = &guard.probe.name;
    tracing::debug!(output = %run.output, status = ?run.status, "Safeguard '{name}' missed its tolerance");
    watch.interrupt(Interrupt::new(format!("Safeguard '{name}' triggered the end of the experiment")));
}

#[cfg(test)]
mod tests;
