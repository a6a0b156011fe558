//! `[[schedule]]`: actions at fixed run times (crash, stop, start, restart a component; set a link's
//! faults), each optionally undone after a while.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::kernel::clock::Clock;
use crate::kernel::supervisor::Supervisor;
use crate::kernel::trace::Trace;
use crate::transport::link::{Link, LinkFaults};

/// What a scheduled action does.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Kill a component (its restart policy applies).
    Crash,
    /// Stop a component (for `for`, if given).
    Stop,
    /// Start a stopped component.
    Start,
    /// Restart a component.
    Restart,
    /// Set faults on a link (for `for`, if given).
    LinkFaults,
}

/// `[[schedule]]`: one action at a point in run time.
#[derive(Clone, Debug, Deserialize)]
pub struct ScheduledAction {
    /// Run time at which to act.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// What to do.
    pub action: Action,
    /// A component name, or a link name `FROM->TO` for `link-faults`.
    pub target: String,
    /// Undo after this long (stop → start, link-faults → clear).
    #[serde(default, rename = "for", with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// Faults for `link-faults`.
    #[serde(default)]
    pub faults: Option<LinkFaults>,
}

/// Arms `schedule` on the run's clock (a task that sleeps until each action).
pub fn arm(
    schedule: &[ScheduledAction],
    supervisor: &Supervisor,
    links: &BTreeMap<String, Arc<Link>>,
    trace: &Trace,
    clock: &Clock,
) {
    let mut schedule = schedule.to_vec();
    schedule.sort_by_key(|s| s.at);
    if schedule.is_empty() {
        return;
    }
    let (sup, links, trace, start) = (supervisor.clone(), links.clone(), trace.clone(), clock.start());
    tokio::spawn(async move {
        for s in schedule {
            tokio::time::sleep_until(start + s.at).await;
            trace.emit(
                "chaoslab",
                "schedule.action",
                &json!({"action": format!("{:?}", s.action), "target": s.target}),
            );
            // What to put back afterwards: the faults in force before, or a start after a stop.
            let before = links.get(&s.target).map(|l| l.faults());
            apply(&sup, &links, &s.action, &s.target, s.faults.clone());
            let undo = match (s.duration, &s.action) {
                (Some(d), Action::Stop) => Some((d, Action::Start, None)),
                (Some(d), Action::LinkFaults) => Some((d, Action::LinkFaults, before)),
                _ => None,
            };
            if let Some((d, undo, faults)) = undo {
                let (sup, links, target) = (sup.clone(), links.clone(), s.target.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    apply(&sup, &links, &undo, &target, faults);
                });
            }
        }
    });
}

/// Carries out one action (also used to undo one).
pub fn apply(
    sup: &Supervisor,
    links: &BTreeMap<String, Arc<Link>>,
    action: &Action,
    target: &str,
    faults: Option<LinkFaults>,
) {
    let result = match action {
        Action::Crash => sup.crash(target, "crash scheduled by the flow").map_err(|e| e.to_string()),
        Action::Stop => sup.stop(target).map_err(|e| e.to_string()),
        Action::Start => sup.start(target).map_err(|e| e.to_string()),
        Action::Restart => sup.restart(target).map_err(|e| e.to_string()),
        Action::LinkFaults => match links.get(target) {
            Some(l) => {
                l.set_faults(faults.unwrap_or_default());
                Ok(())
            }
            None => Err(format!("no link named {target:?}")),
        },
    };
    if let Err(e) = result {
        tracing::error!("scheduled {action:?} on {target} failed: {e}");
    }
}
