//! Compiling a Chaos Mesh object into a [`Plan`]: what each chaos does in terms of the fault catalogue,
//! when a Schedule fires, how a Workflow's nodes nest. Every check that does not need a running
//! pipeline happens here, with the key of the offending field; the version traps of Chaos Mesh are
//! warnings.
//!
//! How the kinds map:
//!
//! | Chaos Mesh | chaoslab fault | on |
//! |---|---|---|
//! | `NetworkChaos` delay (+ `reorder`), loss, duplicate, corrupt, partition, bandwidth, rate, netem | `network-delay`, `network-reorder`, `network-loss`, `network-duplicate`, `network-corrupt`, `network-partition`, `network-bandwidth` | the links of the selected pods, by `direction` and `target` |
//! | `PodChaos` pod-kill, container-kill | `process-kill` | the selected pods |
//! | `PodChaos` pod-failure | `process-failure` (down until the chaos ends) | the selected pods |
//! | `TimeChaos` | `clock-offset` | the selected pods |
//! | `IOChaos` latency; fault (errno 28: `disk-full`) | `io-latency`; `io-error`, `disk-full` | the selected pods |
//! | `HTTPChaos` abort, delay, replace code/body | `http-abort`, `http-delay`, `http-replace-body` | the selected HTTP services |
//! | `StressChaos` cpu, memory | `cpu-stress`, `memory-stress` | the selected pods |
//!
//! Files: this one (the plan types, the entry point, checks every kind shares), [`chaos`] (the chaos
//! kinds), [`workflow`] (Schedule, Workflow, Task, StatusCheck), `tests`.

pub mod chaos;
mod http;
mod io;
mod stress;
pub mod workflow;

use std::time::Duration;

use serde_json::{Map, Value};

use super::cron::Cron;
use super::duration;
use super::schema::{ChaosSpec, Object, PodSelector, Spec};
use super::select::{self, Pod};
use crate::config::KeyPath;
use crate::config::problems::FileProblems;

/// What an object does.
#[allow(clippy::large_enum_variant, reason = "read once per object; boxing would only add noise")]
#[derive(Clone, Debug)]
pub enum Plan {
    /// A chaos that acts once it is created.
    Chaos(ChaosPlan),
    /// A Schedule that creates chaos (or workflows) on cron ticks.
    Schedule(SchedulePlan),
    /// A Workflow.
    Workflow(WorkflowPlan),
    /// A standalone StatusCheck.
    StatusCheck(StatusCheckPlan),
}

/// A status check: an HTTP request every `interval`, judged by its status code.
#[derive(Clone, Debug)]
pub struct StatusCheckPlan {
    /// `Continuous` (true): runs until its duration or the failure threshold; `Synchronous`: ends at the
    /// first threshold reached.
    pub continuous: bool,
    /// How long it runs (a workflow node's deadline replaces it).
    pub duration: Option<Duration>,
    /// Each request's timeout.
    pub timeout: Duration,
    /// Between requests.
    pub interval: Duration,
    /// Consecutive failures that fail it.
    pub failure_threshold: u32,
    /// Consecutive successes that make a Synchronous check succeed.
    pub success_threshold: u32,
    /// Records kept.
    pub history_limit: usize,
    /// The request.
    pub http: HttpProbe,
}

/// The request of a status check.
#[derive(Clone, Debug)]
pub struct HttpProbe {
    /// The URL as written.
    pub url: String,
    /// `GET` or `POST`.
    pub method: String,
    /// Headers, each value once.
    pub headers: Vec<(String, String)>,
    /// The body (`POST`).
    pub body: Option<String>,
    /// Accepted status codes, inclusive.
    pub codes: (u16, u16),
}

/// What a Task node runs. Chaos Mesh runs a container; chaoslab runs a built-in action (`image:
/// chaoslab`) — in sim mode too — or an executable on the run's allow-list (`--allow-process`, live only).
#[derive(Clone, Debug)]
pub enum TaskAction {
    /// `echo WORDS…` (stdout: the words), `http-get URL` (stdout: the body; exit 0 on 2xx, else 1),
    /// `query PROMQL` (stdout: the value; exit 1 when the query fails).
    Builtin(Vec<String>),
    /// An executable and its arguments.
    Process {
        /// The executable (`command[0]`).
        program: String,
        /// The rest of `command`, then `args`.
        args: Vec<String>,
        /// Environment variables.
        env: Vec<(String, String)>,
    },
}

/// The built-in task actions and how many arguments each takes (at least, at most).
pub const BUILTIN_TASKS: [(&str, usize, usize); 3] =
    [("echo", 0, usize::MAX), ("http-get", 1, 1), ("query", 1, 1)];

/// A conditional branch: a template and the condition over `exitCode` and `stdout`.
#[derive(Clone, Debug)]
pub struct Branch {
    /// The template.
    pub target: usize,
    /// The expression as written; `None`: always.
    pub text: Option<String>,
    /// It parsed.
    pub expression: Option<evalexpr::Node>,
}

impl HttpProbe {
    /// The path when the URL names the run's own API (`/health`, `http://chaoslab/health`), which is
    /// called in-process (in sim mode too); `None` for any other URL.
    pub fn own_path(&self) -> Option<String> {
        if self.url.starts_with('/') {
            return Some(self.url.clone());
        }
        let rest =
            self.url.strip_prefix("http://chaoslab").or_else(|| self.url.strip_prefix("https://chaoslab"))?;
        match rest.chars().next() {
            None => Some("/".into()),
            Some('/') | Some('?') => {
                Some(if rest.starts_with('/') { rest.to_string() } else { format!("/{rest}") })
            }
            _ => None,
        }
    }
}

/// One chaos: which pods, for how long, doing what.
#[derive(Clone, Debug)]
pub struct ChaosPlan {
    /// `NetworkChaos`, `PodChaos`, …
    pub kind: &'static str,
    /// The action (`delay`, `pod-failure`, …; the kind's name in lower case for kinds without actions).
    pub action: String,
    /// Which pods, and how many.
    pub pods: PodSelector,
    /// How long it acts; `None`: until deleted.
    pub duration: Option<Duration>,
    /// What it does to them.
    pub effect: Effect,
}

/// What a chaos does to its pods.
#[allow(clippy::large_enum_variant, reason = "read once per object; boxing would only add noise")]
#[derive(Clone, Debug)]
pub enum Effect {
    /// Faults on links of the selected pods.
    Links {
        /// Which links, relative to the selected pods.
        direction: Direction,
        /// The other end (`target`); none: every peer (unless `external` names some).
        target: Option<PodSelector>,
        /// `externalTargets`: hosts outside chaoslab; the components fronting them are the other end too.
        external: Vec<String>,
        /// The faults, all on the same links.
        faults: Vec<PlannedFault>,
    },
    /// Faults on the selected pods themselves.
    Pods {
        /// The faults.
        faults: Vec<PlannedFault>,
    },
}

impl Effect {
    /// The faults.
    pub fn faults(&self) -> &[PlannedFault] {
        match self {
            Effect::Links { faults, .. } | Effect::Pods { faults } => faults,
        }
    }
}

/// `NetworkChaos.direction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Traffic the selected pods send (to the target).
    To,
    /// Traffic the selected pods receive (from the target).
    From,
    /// Both.
    Both,
}

/// A fault of the catalogue with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedFault {
    /// The catalogue kind.
    pub kind: &'static str,
    /// Its parameters (durations in seconds, percentages 0–100).
    pub parameters: Map<String, Value>,
}

fn fault(kind: &'static str, parameters: Value) -> PlannedFault {
    let parameters = match parameters {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    PlannedFault { kind, parameters }
}

/// A Schedule.
#[derive(Clone, Debug)]
pub struct SchedulePlan {
    /// When it fires.
    pub cron: Cron,
    /// The expression as written.
    pub cron_text: String,
    /// `Forbid` (true): a tick is skipped while the previous spawn is still running.
    pub forbid: bool,
    /// A tick later than this is missed.
    pub starting_deadline: Option<Duration>,
    /// Finished spawns kept.
    pub history_limit: usize,
    /// What each tick creates.
    pub spawn: Spawn,
}

/// What a Schedule creates.
#[derive(Clone, Debug)]
pub enum Spawn {
    /// A chaos.
    Chaos(Box<ChaosPlan>),
    /// A workflow.
    Workflow(Box<WorkflowPlan>),
}

/// A Workflow: its templates as nodes, by index.
#[derive(Clone, Debug)]
pub struct WorkflowPlan {
    /// The entry template.
    pub entry: usize,
    /// The templates.
    pub nodes: Vec<NodePlan>,
}

/// One template.
#[derive(Clone, Debug)]
pub struct NodePlan {
    /// Its name.
    pub name: String,
    /// Its deadline.
    pub deadline: Option<Duration>,
    /// What it does.
    pub body: NodeBody,
    /// `file:line` of the template.
    pub place: String,
}

/// What a template does.
#[derive(Clone, Debug)]
pub enum NodeBody {
    /// Children one after the other.
    Serial(Vec<usize>),
    /// Children at once.
    Parallel(Vec<usize>),
    /// Waits for its deadline.
    Suspend,
    /// A chaos that lasts until the node's deadline (or its own duration).
    Chaos(Box<ChaosPlan>),
    /// A Schedule, deleted with what it created when the node's deadline passes.
    Schedule(Box<SchedulePlan>),
    /// A task, then the conditional branches its result selects.
    Task {
        /// What it runs.
        action: TaskAction,
        /// The branches, in order.
        branches: Vec<Branch>,
    },
    /// A status check; with `abort`, a failed one aborts the workflow.
    StatusCheck {
        /// The check.
        check: Box<StatusCheckPlan>,
        /// `abortWithStatusCheck`.
        abort: bool,
    },
}

impl Plan {
    /// Every pod selector of the plan with a label (the template or spec it belongs to).
    pub fn selectors(&self) -> Vec<(String, &PodSelector)> {
        fn chaos<'a>(label: String, c: &'a ChaosPlan, out: &mut Vec<(String, &'a PodSelector)>) {
            out.push((label.clone(), &c.pods));
            if let Effect::Links { target: Some(t), .. } = &c.effect {
                out.push((format!("{label} target"), t));
            }
        }
        fn workflow<'a>(w: &'a WorkflowPlan, out: &mut Vec<(String, &'a PodSelector)>) {
            for n in &w.nodes {
                match &n.body {
                    NodeBody::Chaos(c) => chaos(format!("template {}", n.name), c, out),
                    NodeBody::Schedule(s) => schedule(format!("template {}", n.name), s, out),
                    _ => {}
                }
            }
        }
        fn schedule<'a>(label: String, s: &'a SchedulePlan, out: &mut Vec<(String, &'a PodSelector)>) {
            match &s.spawn {
                Spawn::Chaos(c) => chaos(label, c, out),
                Spawn::Workflow(w) => workflow(w, out),
            }
        }
        let mut out = Vec::new();
        match self {
            Plan::Chaos(c) => chaos("spec".into(), c, &mut out),
            Plan::Schedule(s) => schedule("spec".into(), s, &mut out),
            Plan::Workflow(w) => workflow(w, &mut out),
            Plan::StatusCheck(_) => {}
        }
        out
    }
}

/// Compiles `object`; problems go to `p`. With `pods`, selectors that match none of them are warnings.
pub fn compile(object: &Object, pods: Option<&[Pod]>, p: &mut FileProblems<'_>) -> Option<Plan> {
    let mut cx = Cx { p, pods, namespace: object.metadata.namespace().to_string(), errors: 0 };
    let spec = KeyPath::root().key("spec");
    let plan = match &object.spec {
        Spec::Chaos(c) => cx.chaos(c, &spec, None).map(Plan::Chaos),
        Spec::Schedule(s) => cx.schedule(s, &spec, true).map(Plan::Schedule),
        Spec::Workflow(w) => cx.workflow(w, &spec).map(Plan::Workflow),
        Spec::StatusCheck(c) => cx.status_check(c, &spec, None).map(Plan::StatusCheck),
    };
    if cx.errors > 0 { None } else { plan }
}

struct Cx<'a, 'b> {
    p: &'a mut FileProblems<'b>,
    pods: Option<&'a [Pod]>,
    namespace: String,
    errors: usize,
}

impl Cx<'_, '_> {
    fn error(&mut self, at: KeyPath, message: impl Into<String>) {
        self.errors += 1;
        self.p.error(at, message);
    }

    fn warning(&mut self, at: KeyPath, message: impl Into<String>) {
        self.p.warning(at, message);
    }

    /// A Go duration that must not be negative.
    fn duration(&mut self, text: Option<&str>, at: KeyPath) -> Option<Duration> {
        let text = text?;
        match duration::parse(text) {
            Ok(d) => match d.to_std() {
                Some(d) => Some(d),
                None => {
                    self.error(at, format!("{text:?} is negative"));
                    None
                }
            },
            Err(e) => {
                self.error(at, e);
                None
            }
        }
    }

    /// A percentage written as a string (`"25"`, `"0.5"`), 0–100.
    fn percent(&mut self, text: &str, at: KeyPath) -> f64 {
        match text.trim().parse::<f64>() {
            Ok(v) if (0.0..=100.0).contains(&v) => v,
            _ => {
                self.error(at, format!("{text:?} is not a percentage (a number from 0 to 100, as a string)"));
                0.0
            }
        }
    }

    fn selector(&mut self, pods: &PodSelector, at: &KeyPath) {
        for (key, message) in select::check(&pods.selector) {
            self.error(at.key("selector").join(&KeyPath::parse(&key)), message);
        }
        if let Err(e) = select::check_mode(pods.mode, pods.value.as_deref()) {
            self.error(at.key("value"), e);
        }
        if !pods.selector.nodes.is_empty() || !pods.selector.node_selectors.is_empty() {
            self.warning(
                at.key("selector"),
                "one process has no nodes: a selector naming nodes selects no pod",
            );
        }
        if let Some(all) = self.pods
            && select::filter(&pods.selector, &self.namespace, all).is_empty()
        {
            self.warning(
                at.key("selector"),
                format!(
                    "selects no pod of this flow (it would fail with \"no pod is selected\"); the flow's pods: {}",
                    select::describe_pods(all)
                ),
            );
        }
    }

    /// A chaos spec at `at`; `deadline` (a workflow node's) replaces its duration.
    fn chaos(&mut self, spec: &ChaosSpec, at: &KeyPath, deadline: Option<Duration>) -> Option<ChaosPlan> {
        let pods = spec.pods();
        self.selector(&pods, at);
        let own = self.duration(spec.duration(), at.key("duration"));
        let (action, effect) = match spec {
            ChaosSpec::Network(n) => self.network(n, at)?,
            ChaosSpec::Pod(s) => self.pod(s, at)?,
            ChaosSpec::Time(t) => self.time(t, at),
            ChaosSpec::Io(io) => self.io(io, at)?,
            ChaosSpec::Http(h) => self.http(h, at)?,
            ChaosSpec::Stress(st) => self.stress(st, at)?,
        };
        if spec.remote_cluster().is_some() {
            self.error(
                at.key("remoteCluster"),
                "one process is one cluster: remote clusters are not supported",
            );
        }
        Some(ChaosPlan { kind: spec.kind(), action, pods, duration: deadline.or(own), effect })
    }
}

/// A cycle among the templates reachable from the entry, as `a -> b -> a`.
fn cycle(plan: &WorkflowPlan) -> Option<String> {
    fn children(n: &NodePlan) -> Vec<usize> {
        match &n.body {
            NodeBody::Serial(c) | NodeBody::Parallel(c) => c.clone(),
            NodeBody::Task { branches, .. } => branches.iter().map(|b| b.target).collect(),
            _ => Vec::new(),
        }
    }
    fn walk(plan: &WorkflowPlan, at: usize, path: &mut Vec<usize>) -> Option<String> {
        if let Some(pos) = path.iter().position(|&p| p == at) {
            let names: Vec<&str> = path[pos..]
                .iter()
                .chain(std::iter::once(&at))
                .map(|&i| plan.nodes[i].name.as_str())
                .collect();
            return Some(names.join(" -> "));
        }
        path.push(at);
        for c in children(&plan.nodes[at]) {
            if let Some(found) = walk(plan, c, path) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    walk(plan, plan.entry, &mut Vec::new())
}

#[cfg(test)]
mod tests;
