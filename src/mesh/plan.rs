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

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::cron::Cron;
use super::duration::{self, GoDuration};
use super::schema::chaos::{
    DelaySpec, HttpChaosSpec, IoChaosSpec, NetworkChaosSpec, PodChaosSpec, TimeChaosSpec,
};
use super::schema::workflow::Template;
use super::schema::{ChaosSpec, Object, PodSelector, ScheduleSpec, Spec, WorkflowSpec};
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
        /// The other end (`target`); none: every peer.
        target: Option<PodSelector>,
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
            ChaosSpec::Stress(_) => {
                self.error(at.clone(), format!("{} is not supported yet", spec.kind()));
                return None;
            }
        };
        let remote = match spec {
            ChaosSpec::Network(s) => s.remote_cluster.is_some(),
            ChaosSpec::Pod(s) => s.remote_cluster.is_some(),
            ChaosSpec::Time(s) => s.remote_cluster.is_some(),
            ChaosSpec::Stress(s) => s.remote_cluster.is_some(),
            ChaosSpec::Io(s) => s.remote_cluster.is_some(),
            ChaosSpec::Http(s) => s.remote_cluster.is_some(),
        };
        if remote {
            self.error(
                at.key("remoteCluster"),
                "one process is one cluster: remote clusters are not supported",
            );
        }
        Some(ChaosPlan { kind: spec.kind(), action, pods, duration: deadline.or(own), effect })
    }

    fn network(&mut self, n: &NetworkChaosSpec, at: &KeyPath) -> Option<(String, Effect)> {
        let direction = match n.direction.as_deref() {
            None | Some("to") => Direction::To,
            Some("from") => Direction::From,
            Some("both") => Direction::Both,
            Some(other) => {
                self.error(at.key("direction"), format!("{other:?} is not one of to, from, both"));
                Direction::To
            }
        };
        if direction != Direction::To && n.target.is_none() && n.action != "partition" {
            self.error(
                at.key("direction"),
                "`from` and `both` need a `target` (Chaos Mesh refuses them without one)",
            );
        }
        if let Some(t) = &n.target {
            self.selector(t, &at.key("target"));
        }
        if !n.external_targets.is_empty() {
            self.error(at.key("externalTargets"), "external targets are not supported yet");
        }
        let mut faults = Vec::new();
        let wants = |what: &str| n.action == what || n.action == "netem";
        let missing = |cx: &mut Self, what: &str| {
            if n.action == what {
                cx.error(at.key(what), format!("action {what} needs `{what}`"));
            }
        };
        match n.action.as_str() {
            "netem" | "delay" | "loss" | "duplicate" | "corrupt" | "partition" | "bandwidth" | "rate" => {}
            other => {
                self.error(
                    at.key("action"),
                    format!("{other:?} is not one of netem, delay, loss, duplicate, corrupt, partition, bandwidth, rate"),
                );
                return None;
            }
        }
        if wants("delay") {
            match &n.delay {
                Some(d) => faults.extend(self.delay(d, &at.key("delay"))),
                None => missing(self, "delay"),
            }
        }
        if wants("loss") {
            match &n.loss {
                Some(l) => {
                    let percent = self.percent(&l.loss, at.key("loss").key("loss"));
                    faults.push(fault("network-loss", json!({ "percent": percent })));
                }
                None => missing(self, "loss"),
            }
        }
        if wants("duplicate") {
            match &n.duplicate {
                Some(d) => {
                    let percent = self.percent(&d.duplicate, at.key("duplicate").key("duplicate"));
                    faults.push(fault("network-duplicate", json!({ "percent": percent })));
                }
                None => missing(self, "duplicate"),
            }
        }
        if wants("corrupt") {
            match &n.corrupt {
                Some(c) => {
                    let percent = self.percent(&c.corrupt, at.key("corrupt").key("corrupt"));
                    faults.push(fault("network-corrupt", json!({ "percent": percent })));
                }
                None => missing(self, "corrupt"),
            }
        }
        if n.action == "bandwidth" {
            match &n.bandwidth {
                Some(b) => {
                    if let Some(rate) = self.rate(&b.rate, at.key("bandwidth").key("rate")) {
                        faults.push(fault("network-bandwidth", json!({ "rate": rate })));
                    }
                }
                None => missing(self, "bandwidth"),
            }
        }
        if wants("rate") {
            match &n.rate {
                Some(r) => {
                    if let Some(rate) = self.rate(&r.rate, at.key("rate").key("rate")) {
                        faults.push(fault("network-bandwidth", json!({ "rate": rate })));
                    }
                }
                None => missing(self, "rate"),
            }
        }
        if n.action == "partition" {
            faults.push(fault("network-partition", json!({})));
        }
        if n.action == "netem" && faults.is_empty() && self.errors == 0 {
            self.warning(
                at.key("action"),
                "netem without delay, loss, duplicate, corrupt or rate injects nothing",
            );
        }
        Some((n.action.clone(), Effect::Links { direction, target: n.target.clone(), faults }))
    }

    /// `delay`: a zero delay injects nothing (a warning); the unit traps are warnings.
    fn delay(&mut self, d: &DelaySpec, at: &KeyPath) -> Vec<PlannedFault> {
        let value = |cx: &mut Self, text: &str, key: &str| -> Option<GoDuration> {
            match duration::parse(text) {
                Ok(v) if v.nanos < 0 => {
                    cx.error(at.key(key), format!("{text:?} is negative"));
                    None
                }
                Ok(v) => {
                    if v.unitless {
                        cx.warning(
                            at.key(key),
                            format!(
                                "{text:?} has no unit: Chaos Mesh 2.7 accepts it, 2.8 and later reject it (the CRD \
                                 requires ns, us, ms, s, m or h); write \"0ms\""
                            ),
                        );
                    }
                    Some(v)
                }
                Err(e) => {
                    cx.error(at.key(key), e);
                    None
                }
            }
        };
        let latency = value(self, &d.latency, "latency");
        let jitter = d.jitter.as_deref().and_then(|j| value(self, j, "jitter"));
        let correlation = d.correlation.as_deref().map_or(0.0, |c| self.percent(c, at.key("correlation")));
        let (Some(latency), jitter) = (latency, jitter) else { return Vec::new() };
        let jitter_nanos = jitter.map_or(0, |j| j.nanos);
        let mut out = Vec::new();
        if latency.nanos == 0 && jitter_nanos == 0 {
            self.warning(at.key("latency"), "a delay of 0 with no jitter injects nothing");
        } else {
            self.warning(
                at.key("latency"),
                format!(
                    "Chaos Mesh 2.7.0 to 2.7.3 passed delays to tc without units (chaos-mesh#4545, fixed in 2.8.0): \
                     a study run on those versions had about 1000 times less than the {} configured; chaoslab \
                     applies it as written",
                    d.latency
                ),
            );
            out.push(fault(
                "network-delay",
                json!({
                    "latency": latency.nanos as f64 / 1e9,
                    "jitter": jitter_nanos as f64 / 1e9,
                    "correlation": correlation,
                }),
            ));
        }
        if let Some(r) = &d.reorder {
            let percent = self.percent(&r.reorder, at.key("reorder").key("reorder"));
            if let Some(c) = &r.correlation {
                self.percent(c, at.key("reorder").key("correlation"));
            }
            if latency.nanos == 0 {
                self.error(
                    at.key("reorder"),
                    "reordering needs a latency (netem holds the other packets back by it)",
                );
            }
            out.push(fault(
                "network-reorder",
                json!({ "percent": percent, "latency": latency.nanos as f64 / 1e9 }),
            ));
        }
        out
    }

    /// A tc rate (`100kbps`, `1mbit`, `10bps`) in bytes per second. As in tc, `bit` units count bits and
    /// `bps` units count bytes.
    fn rate(&mut self, text: &str, at: KeyPath) -> Option<u64> {
        let lower = text.trim().to_ascii_lowercase();
        let split = lower.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(lower.len());
        let (num, unit) = lower.split_at(split);
        let bytes_per = |unit: &str| -> Option<f64> {
            Some(match unit {
                "bit" => 1.0 / 8.0,
                "kbit" => 1e3 / 8.0,
                "mbit" => 1e6 / 8.0,
                "gbit" => 1e9 / 8.0,
                "tbit" => 1e12 / 8.0,
                "bps" => 1.0,
                "kbps" => 1e3,
                "mbps" => 1e6,
                "gbps" => 1e9,
                "tbps" => 1e12,
                _ => return None,
            })
        };
        match (num.parse::<f64>(), bytes_per(unit)) {
            (Ok(n), Some(f)) if n > 0.0 => Some(((n * f).round() as u64).max(1)),
            _ => {
                self.error(
                    at,
                    format!("{text:?} is not a tc rate (a number and a unit: bit, kbit, mbit, gbit, bps, kbps, mbps, gbps)"),
                );
                None
            }
        }
    }

    fn pod(&mut self, s: &PodChaosSpec, at: &KeyPath) -> Option<(String, Effect)> {
        if let Some(g) = s.grace_period
            && g < 0
        {
            self.error(at.key("gracePeriod"), format!("{g} is negative"));
        }
        let kind = match s.action.as_str() {
            "pod-kill" => "process-kill",
            "pod-failure" => "process-failure",
            "container-kill" => {
                if s.container_names.is_empty() {
                    self.error(at.key("containerNames"), "container-kill needs containerNames");
                }
                "process-kill"
            }
            other => {
                self.error(
                    at.key("action"),
                    format!("{other:?} is not one of pod-kill, pod-failure, container-kill"),
                );
                return None;
            }
        };
        Some((s.action.clone(), Effect::Pods { faults: vec![fault(kind, json!({}))] }))
    }

    fn time(&mut self, t: &TimeChaosSpec, at: &KeyPath) -> (String, Effect) {
        let offset = match duration::parse(&t.time_offset) {
            Ok(d) => d.nanos as f64 / 1e9,
            Err(e) => {
                self.error(at.key("timeOffset"), e);
                0.0
            }
        };
        for (i, id) in t.clock_ids.iter().enumerate() {
            if id != "CLOCK_REALTIME" {
                self.warning(
                    at.key("clockIds").index(i),
                    format!(
                        "chaoslab shifts a component's calendar clock (CLOCK_REALTIME); {id} is treated as it"
                    ),
                );
            }
        }
        let faults = vec![fault("clock-offset", json!({ "offset": offset }))];
        ("time-offset".into(), Effect::Pods { faults })
    }

    fn io(&mut self, io: &IoChaosSpec, at: &KeyPath) -> Option<(String, Effect)> {
        let percent = match io.percent {
            None => 100.0,
            Some(p) if (0..=100).contains(&p) => p as f64,
            Some(p) => {
                self.error(at.key("percent"), format!("{p} is not a percentage (0 to 100)"));
                100.0
            }
        };
        let f = match io.action.as_str() {
            "latency" => match self.duration(io.delay.as_deref(), at.key("delay")) {
                Some(d) => fault("io-latency", json!({ "delay": d.as_secs_f64() })),
                None => {
                    if io.delay.is_none() {
                        self.error(at.key("delay"), "action latency needs `delay`");
                    }
                    return None;
                }
            },
            "fault" => match io.errno {
                Some(28) => fault("disk-full", json!({})),
                Some(_) => fault("io-error", json!({ "percent": percent })),
                None => {
                    self.error(at.key("errno"), "action fault needs `errno`");
                    return None;
                }
            },
            "attrOverride" | "mistake" => {
                self.error(at.key("action"), format!("IOChaos {} is not supported yet", io.action));
                return None;
            }
            other => {
                self.error(
                    at.key("action"),
                    format!("{other:?} is not one of latency, fault, attrOverride, mistake"),
                );
                return None;
            }
        };
        Some((io.action.clone(), Effect::Pods { faults: vec![f] }))
    }

    /// `HTTPChaos` on the HTTP services (the order API's fault middleware): `abort` answers 503 (one
    /// process has no connection to cut), `delay` holds the request, `replace.code` answers that status,
    /// `replace.body` (base64, as Chaos Mesh's `[]byte`) replaces a response's body. `path` is a prefix
    /// glob (`*`, `/api/*`).
    fn http(&mut self, h: &HttpChaosSpec, at: &KeyPath) -> Option<(String, Effect)> {
        let errors = self.errors;
        if h.target != "Request" && h.target != "Response" {
            self.error(at.key("target"), format!("{:?} is not Request or Response", h.target));
        }
        let path = match h.path.as_deref().map(str::trim) {
            None | Some("*") | Some("") => None,
            Some(glob) => {
                let prefix = glob.strip_suffix('*').unwrap_or(glob);
                if prefix.contains(['*', '?', '[']) || !prefix.starts_with('/') {
                    self.error(
                        at.key("path"),
                        format!("{glob:?}: chaoslab takes `*` or a path prefix such as `/api/*`"),
                    );
                }
                Some(prefix.to_string())
            }
        };
        let unsupported = [
            ("method", h.method.is_some()),
            ("code", h.code.is_some()),
            ("request_headers", !h.request_headers.is_empty()),
            ("response_headers", !h.response_headers.is_empty()),
            ("patch", h.patch.is_some()),
            ("tls", h.tls.is_some()),
        ];
        for (key, present) in unsupported {
            if present {
                self.error(at.key(key), format!("HTTPChaos `{key}` is not supported yet"));
            }
        }
        let with_path = |mut v: Value| {
            if let (Some(p), Value::Object(m)) = (&path, &mut v) {
                m.insert("path".into(), Value::String(p.clone()));
            }
            v
        };
        let mut faults = Vec::new();
        let mut actions = Vec::new();
        if h.abort == Some(true) {
            actions.push("abort");
            faults.push(fault("http-abort", with_path(json!({ "code": 503 }))));
        }
        if let Some(d) = self.duration(h.delay.as_deref(), at.key("delay")) {
            actions.push("delay");
            faults.push(fault("http-delay", with_path(json!({ "delay": d.as_secs_f64() }))));
        }
        if let Some(r) = &h.replace {
            actions.push("replace");
            if let Some(code) = r.code {
                if (100..=599).contains(&code) {
                    faults.push(fault("http-abort", with_path(json!({ "code": code }))));
                } else {
                    self.error(at.key("replace").key("code"), format!("{code} is not an HTTP status"));
                }
            }
            if let Some(body) = &r.body {
                use base64::Engine as _;
                if h.target != "Response" {
                    self.error(
                        at.key("replace").key("body"),
                        "chaoslab replaces response bodies only (target: Response)",
                    );
                }
                match base64::engine::general_purpose::STANDARD.decode(body.trim()) {
                    Ok(bytes) => faults.push(fault(
                        "http-replace-body",
                        with_path(json!({ "body": String::from_utf8_lossy(&bytes) })),
                    )),
                    Err(e) => self.error(
                        at.key("replace").key("body"),
                        format!("not base64 (Chaos Mesh's []byte): {e}"),
                    ),
                }
            }
            for (key, present) in [
                ("headers", !r.headers.is_empty()),
                ("path", r.path.is_some()),
                ("method", r.method.is_some()),
                ("queries", !r.queries.is_empty()),
            ] {
                if present {
                    self.error(at.key("replace").key(key), format!("replacing `{key}` is not supported yet"));
                }
            }
        }
        if faults.is_empty() && self.errors == errors {
            self.error(at.clone(), "an HTTPChaos needs abort, delay or replace");
        }
        (self.errors == errors).then(|| (actions.join("+"), Effect::Pods { faults }))
    }

    fn schedule(&mut self, s: &ScheduleSpec, at: &KeyPath, top: bool) -> Option<SchedulePlan> {
        let cron = match Cron::parse(&s.schedule) {
            Ok(c) => Some(c),
            Err(e) => {
                self.error(at.key("schedule"), e);
                None
            }
        };
        let starting_deadline = match s.starting_deadline_seconds {
            None => None,
            Some(n) if n >= 0 => Some(Duration::from_secs(n as u64)),
            Some(n) => {
                self.error(at.key("startingDeadlineSeconds"), format!("{n} is negative"));
                None
            }
        };
        let forbid = match s.concurrency_policy.as_deref() {
            None | Some("Forbid") => true,
            Some("Allow") => false,
            Some(other) => {
                self.error(at.key("concurrencyPolicy"), format!("{other:?} is not Forbid or Allow"));
                true
            }
        };
        let history_limit = match s.history_limit {
            None => 1,
            Some(n) if n >= 1 => n as usize,
            Some(n) => {
                self.error(at.key("historyLimit"), format!("{n} is below 1"));
                1
            }
        };
        for key in s.unsupported() {
            self.error(
                at.key(key),
                "this chaos kind acts on what one process does not have; it is not supported",
            );
        }
        let embedded = s.embedded();
        let mut keys: Vec<&str> = embedded.iter().map(|(k, _)| *k).collect();
        if s.workflow.is_some() {
            keys.push("workflow");
        }
        let kind = match &s.kind {
            Some(kind) => kind.clone(),
            None => {
                match keys.as_slice() {
                    [one] => {
                        let kind = if *one == "workflow" {
                            "Workflow".to_string()
                        } else {
                            embedded[0].1.kind().to_string()
                        };
                        self.warning(
                        at.key("type"),
                        format!("missing: Chaos Mesh's CRD requires `type`; chaoslab takes {kind} from `{one}`"),
                    );
                        kind
                    }
                    _ => {
                        self.error(
                            at.key("type"),
                            "required: the kind to create (PodChaos, NetworkChaos, …, Workflow)",
                        );
                        return None;
                    }
                }
            }
        };
        let wanted = if kind == "Workflow" {
            "workflow"
        } else {
            match super::schema::chaos::embed_key(&kind) {
                Some(k) => k,
                None => {
                    self.error(at.key("type"), format!("{kind:?} is not a kind a Schedule can create"));
                    return None;
                }
            }
        };
        for key in &keys {
            if *key != wanted {
                self.error(at.key(*key), format!("type is {kind}: `{key}` does not belong here"));
            }
        }
        let spawn = if kind == "Workflow" {
            if !top {
                self.error(
                    at.key("type"),
                    "a workflow's Schedule node cannot create a Workflow (Chaos Mesh: ChaosOnlyScheduleSpec)",
                );
                return None;
            }
            match &s.workflow {
                Some(w) => Spawn::Workflow(Box::new(self.workflow(w, &at.key("workflow"))?)),
                None => {
                    self.error(at.key("workflow"), "type Workflow needs `workflow`");
                    return None;
                }
            }
        } else {
            match embedded.iter().find(|(k, _)| *k == wanted) {
                Some((k, spec)) => Spawn::Chaos(Box::new(self.chaos(spec, &at.key(*k), None)?)),
                None => {
                    self.error(at.key(wanted), format!("type {kind} needs `{wanted}`"));
                    return None;
                }
            }
        };
        Some(SchedulePlan {
            cron: cron?,
            cron_text: s.schedule.clone(),
            forbid,
            starting_deadline,
            history_limit,
            spawn,
        })
    }

    fn workflow(&mut self, w: &WorkflowSpec, at: &KeyPath) -> Option<WorkflowPlan> {
        let templates = at.key("templates");
        let mut index = std::collections::BTreeMap::new();
        for (i, t) in w.templates.iter().enumerate() {
            if let Some(first) = index.insert(t.name.as_str(), i) {
                self.error(templates.index(i).key("name"), format!("{:?} is also template {first}", t.name));
            }
        }
        let Some(&entry) = index.get(w.entry.as_str()) else {
            self.error(at.key("entry"), format!("no template is named {:?}", w.entry));
            return None;
        };
        let mut nodes = Vec::new();
        for (i, t) in w.templates.iter().enumerate() {
            let at = templates.index(i);
            let deadline = self.duration(t.deadline.as_deref(), at.key("deadline"));
            let children = |cx: &mut Self| -> Vec<usize> {
                let mut out = Vec::new();
                for (j, c) in t.children.iter().enumerate() {
                    match index.get(c.as_str()) {
                        Some(&k) => out.push(k),
                        None => cx.error(at.key("children").index(j), format!("no template is named {c:?}")),
                    }
                }
                out
            };
            let body = match t.template_type.as_str() {
                "Serial" => NodeBody::Serial(children(self)),
                "Parallel" => NodeBody::Parallel(children(self)),
                "Suspend" => {
                    if deadline.is_none() {
                        self.error(at.key("deadline"), "a Suspend node waits for its deadline: it needs one");
                    }
                    NodeBody::Suspend
                }
                "Schedule" => match &t.schedule {
                    Some(s) => match self.schedule(s, &at.key("schedule"), false) {
                        Some(s) => {
                            if let Some(d) = deadline {
                                self.schedule_deadline(&s, d, &at);
                            }
                            NodeBody::Schedule(Box::new(s))
                        }
                        None => continue,
                    },
                    None => {
                        self.error(at.key("schedule"), "a Schedule node needs `schedule`");
                        continue;
                    }
                },
                "StatusCheck" => match &t.status_check {
                    Some(c) => match self.status_check(c, &at.key("statusCheck"), deadline) {
                        Some(check) => NodeBody::StatusCheck {
                            check: Box::new(check),
                            abort: t.abort_with_status_check.unwrap_or(false),
                        },
                        None => continue,
                    },
                    None => {
                        self.error(at.key("statusCheck"), "a StatusCheck node needs `statusCheck`");
                        continue;
                    }
                },
                "Task" => match self.task(t, &at, &index) {
                    Some(body) => body,
                    None => continue,
                },
                kind => match super::schema::chaos::embed_key(kind) {
                    Some(key) => match self.template_chaos(t, key, &at) {
                        Some(spec) => match self.chaos(&spec, &at.key(key), deadline) {
                            Some(c) => NodeBody::Chaos(Box::new(c)),
                            None => continue,
                        },
                        None => continue,
                    },
                    None => {
                        self.error(
                            at.key("templateType"),
                            format!(
                                "{kind:?} is not one of Serial, Parallel, Suspend, Schedule, Task, StatusCheck or a \
                                 chaos kind ({})",
                                super::schema::SUPPORTED_KINDS[..6].join(", ")
                            ),
                        );
                        continue;
                    }
                },
            };
            nodes.push((i, NodePlan { name: t.name.clone(), deadline, body, place: self.p.place(&at) }));
        }
        if self.errors > 0 {
            return None;
        }
        let nodes: Vec<NodePlan> = nodes.into_iter().map(|(_, n)| n).collect();
        let plan = WorkflowPlan { entry, nodes };
        if let Some(cycle) = cycle(&plan) {
            self.error(at.key("templates"), format!("templates refer to each other in a cycle: {cycle}"));
            return None;
        }
        Some(plan)
    }

    /// A status check at `at`; `deadline` (a workflow node's) replaces its duration.
    fn status_check(
        &mut self,
        c: &super::schema::StatusCheckSpec,
        at: &KeyPath,
        deadline: Option<Duration>,
    ) -> Option<StatusCheckPlan> {
        let errors = self.errors;
        let continuous = match c.mode.as_deref() {
            None | Some("Synchronous") => false,
            Some("Continuous") => true,
            Some(other) => {
                self.error(at.key("mode"), format!("{other:?} is not Synchronous or Continuous"));
                false
            }
        };
        if let Some(kind) = c.kind.as_deref()
            && kind != "HTTP"
        {
            self.error(at.key("type"), format!("{kind:?}: HTTP is the only type"));
        }
        let duration = deadline.or_else(|| self.duration(c.duration.as_deref(), at.key("duration")));
        if continuous && duration.is_none() && errors == self.errors {
            self.warning(
                at.key("duration"),
                "a Continuous check without a duration runs until it fails or is deleted",
            );
        }
        let positive = |cx: &mut Self, v: Option<i64>, key: &str, default: u32, max: i64| -> u32 {
            match v {
                None => default,
                Some(n) if (1..=max).contains(&n) => n as u32,
                Some(n) => {
                    cx.error(at.key(key), format!("{n} is not between 1 and {max}"));
                    default
                }
            }
        };
        let timeout = positive(self, c.timeout_seconds, "timeoutSeconds", 1, 86_400);
        let interval = positive(self, c.interval_seconds, "intervalSeconds", 10, 86_400);
        let failure_threshold = positive(self, c.failure_threshold, "failureThreshold", 3, 1_000_000);
        let success_threshold = positive(self, c.success_threshold, "successThreshold", 1, 1_000_000);
        let history_limit =
            positive(self, c.records_history_limit, "recordsHistoryLimit", 100, 1000) as usize;
        let Some(http) = &c.http else {
            self.error(at.key("http"), "required (HTTP is the only type)");
            return None;
        };
        let hat = at.key("http");
        let method = http.method.clone().unwrap_or_else(|| "GET".into());
        if method != "GET" && method != "POST" {
            self.error(hat.key("method"), format!("{method:?} is not GET or POST"));
        }
        let own = !http.url.starts_with("http://")
            && !http.url.starts_with("https://")
            && !http.url.starts_with('/');
        if own || http.url.parse::<hyper::Uri>().is_err() {
            self.error(
                hat.key("url"),
                format!("{:?} is not an http(s) URL or a path of chaoslab's own API", http.url),
            );
        }
        let code = &http.criteria.status_code;
        let parse = |t: &str| t.trim().parse::<u16>().ok().filter(|c| (100..=599).contains(c));
        let codes = match code.split_once('-') {
            Some((a, b)) => parse(a).zip(parse(b)).filter(|(a, b)| a <= b),
            None => parse(code).map(|c| (c, c)),
        };
        let Some(codes) = codes else {
            self.error(
                hat.key("criteria").key("statusCode"),
                format!("{code:?} is not a status code or an inclusive range (200, 200-399)"),
            );
            return None;
        };
        let headers = http
            .headers
            .iter()
            .flat_map(|(name, values)| values.iter().map(move |v| (name.clone(), v.clone())))
            .collect();
        if self.errors > errors {
            return None;
        }
        Some(StatusCheckPlan {
            continuous,
            duration,
            timeout: Duration::from_secs(timeout.into()),
            interval: Duration::from_secs(interval.into()),
            failure_threshold,
            success_threshold,
            history_limit,
            http: HttpProbe { url: http.url.clone(), method, headers, body: http.body.clone(), codes },
        })
    }

    /// A Task node: its action and branches.
    fn task(
        &mut self,
        t: &Template,
        at: &KeyPath,
        index: &std::collections::BTreeMap<&str, usize>,
    ) -> Option<NodeBody> {
        let errors = self.errors;
        let Some(container) = t.task.as_ref().and_then(|task| task.container.as_ref()) else {
            self.error(at.key("task").key("container"), "a Task node needs `task.container`");
            return None;
        };
        let cat = at.key("task").key("container");
        let argv: Vec<String> = container.command.iter().chain(&container.args).cloned().collect();
        let builtin = container
            .image
            .as_deref()
            .is_some_and(|i| i == "chaoslab" || i.starts_with("chaoslab:") || i.starts_with("chaoslab/"));
        let action = match argv.split_first() {
            None => {
                self.error(cat.key("command"), "empty: what should the task run?");
                None
            }
            Some((name, rest)) if builtin => match BUILTIN_TASKS.iter().find(|(n, _, _)| n == name) {
                Some((_, min, max)) if (*min..=*max).contains(&rest.len()) => {
                    Some(TaskAction::Builtin(argv.clone()))
                }
                Some((_, min, _)) => {
                    self.error(
                        cat.key("command"),
                        format!("{name} takes {min} argument(s), found {}", rest.len()),
                    );
                    None
                }
                None => {
                    let names: Vec<&str> = BUILTIN_TASKS.iter().map(|(n, _, _)| *n).collect();
                    self.error(
                        cat.key("command"),
                        format!("{name:?} is not a built-in task ({})", names.join(", ")),
                    );
                    None
                }
            },
            Some((program, rest)) => Some(TaskAction::Process {
                program: program.clone(),
                args: rest.to_vec(),
                env: container.env.iter().map(|e| (e.name.clone(), e.value.clone())).collect(),
            }),
        };
        let mut branches = Vec::new();
        for (i, b) in t.conditional_branches.iter().enumerate() {
            let bat = at.key("conditionalBranches").index(i);
            let Some(&target) = index.get(b.target.as_str()) else {
                self.error(bat.key("target"), format!("no template is named {:?}", b.target));
                continue;
            };
            let text = b.expression.clone().filter(|e| !e.trim().is_empty());
            let expression = match &text {
                None => None,
                Some(e) => match evalexpr::build_operator_tree::<evalexpr::DefaultNumericTypes>(e) {
                    Ok(tree) => Some(tree),
                    Err(err) => {
                        self.error(bat.key("expression"), format!("{e:?} does not parse: {err}"));
                        None
                    }
                },
            };
            branches.push(Branch { target, text, expression });
        }
        let action = action.filter(|_| self.errors == errors)?;
        Some(NodeBody::Task { action, branches })
    }

    /// The embedded chaos of a chaos template, which must be the one its type names.
    fn template_chaos(&mut self, t: &Template, key: &str, at: &KeyPath) -> Option<ChaosSpec> {
        for other in t.unsupported() {
            self.error(at.key(other), "this chaos kind is not supported");
        }
        let mut found = None;
        for (k, spec) in t.embedded() {
            if k == key {
                found = Some(spec);
            } else {
                self.error(
                    at.key(k),
                    format!("templateType is {}: `{k}` does not belong here", t.template_type),
                );
            }
        }
        if found.is_none() {
            self.error(at.key(key), format!("templateType {} needs `{key}`", t.template_type));
        }
        found
    }

    /// Warns when a Schedule node's deadline is shorter than its cron's interval: Chaos Mesh deletes the
    /// node's Schedule (and what it created) at the deadline, so the cron fires at most once, and only
    /// when a tick falls within the deadline of the node's start.
    fn schedule_deadline(&mut self, s: &SchedulePlan, deadline: Duration, at: &KeyPath) {
        let Some(interval) = s.cron.typical_interval() else { return };
        if deadline < interval {
            self.warning(
                at.key("deadline"),
                format!(
                    "the node ends after {} but its schedule {:?} ticks every {}: Chaos Mesh deletes a Schedule \
                     node's Schedule, and the chaos it created, at the node's deadline, so this fires at most once, \
                     and only when a tick falls within {} of the node's start",
                    duration::format(deadline),
                    s.cron_text,
                    duration::format(interval),
                    duration::format(deadline),
                ),
            );
        }
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
mod tests {
    use super::*;
    use crate::config::Problems;
    use crate::mesh::load::load_text;

    fn compile_text(spec: &str, kind: &str) -> (Option<Plan>, Vec<String>) {
        let text =
            format!("apiVersion: chaos-mesh.org/v1alpha1\nkind: {kind}\nmetadata:\n  name: x\nspec:\n{spec}");
        let mut problems = Problems::new();
        let loaded = load_text("f.yaml", &text, None, &mut problems);
        (loaded.into_iter().next().map(|l| l.plan), problems.all().iter().map(ToString::to_string).collect())
    }

    fn faults(plan: &Option<Plan>) -> Vec<PlannedFault> {
        match plan {
            Some(Plan::Chaos(c)) => c.effect.faults().to_vec(),
            other => panic!("not a chaos: {other:?}"),
        }
    }

    const SEL: &str = "  mode: all\n  selector:\n    namespaces: [kafka]\n";

    #[test]
    fn network_actions_become_catalogue_faults_with_tc_units() {
        let (plan, problems) = compile_text(
            &format!("  action: bandwidth\n{SEL}  bandwidth: {{rate: 1mbit, limit: 1, buffer: 1}}\n"),
            "NetworkChaos",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(faults(&plan)[0].parameters["rate"], 125_000);
        let (plan, _) =
            compile_text(&format!("  action: rate\n{SEL}  rate: {{rate: 100kbps}}\n"), "NetworkChaos");
        assert_eq!(faults(&plan)[0].parameters["rate"], 100_000);
        let (plan, problems) = compile_text(
            &format!(
                "  action: netem\n{SEL}  delay: {{latency: 1.5s, jitter: 10ms, correlation: '25'}}\n  loss: {{loss: '5'}}\n"
            ),
            "NetworkChaos",
        );
        let f = faults(&plan);
        assert_eq!((f[0].kind, f[1].kind), ("network-delay", "network-loss"));
        assert_eq!(
            (f[0].parameters["latency"].as_f64(), f[0].parameters["correlation"].as_f64()),
            (Some(1.5), Some(25.0))
        );
        assert!(
            problems.iter().any(|p| p.starts_with("warning: f.yaml:10:spec.delay.latency: Chaos Mesh 2.7.0")),
            "{problems:?}"
        );
        // A zero delay injects nothing, and the unitless jitter is a version trap.
        let (plan, problems) = compile_text(
            &format!("  action: delay\n{SEL}  delay: {{latency: 0ms, jitter: '0'}}\n"),
            "NetworkChaos",
        );
        assert!(faults(&plan).is_empty());
        assert!(problems.iter().any(|p| p.contains("spec.delay.jitter: \"0\" has no unit")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("injects nothing")), "{problems:?}");
        let (plan, problems) = compile_text(
            &format!("  action: delay\n  direction: from\n{SEL}  delay: {{latency: 5ms}}\n"),
            "NetworkChaos",
        );
        assert!(plan.is_none());
        assert!(
            problems.iter().any(|p| p.contains("spec.direction: `from` and `both` need a `target`")),
            "{problems:?}"
        );
    }

    #[test]
    fn pod_time_and_io_chaos_map_onto_the_catalogue() {
        let (plan, _) = compile_text(&format!("  action: pod-failure\n  duration: 90s\n{SEL}"), "PodChaos");
        match &plan {
            Some(Plan::Chaos(c)) => assert_eq!(c.duration, Some(Duration::from_secs(90))),
            other => panic!("{other:?}"),
        }
        assert_eq!(faults(&plan)[0].kind, "process-failure");
        let (plan, _) = compile_text(&format!("  timeOffset: -10m100ns\n{SEL}"), "TimeChaos");
        assert_eq!(faults(&plan)[0].parameters["offset"].as_f64(), Some(-600.0000001));
        let (plan, _) =
            compile_text(&format!("  action: fault\n  volumePath: /data\n  errno: 28\n{SEL}"), "IOChaos");
        assert_eq!(faults(&plan)[0].kind, "disk-full");
        let (plan, problems) =
            compile_text(&format!("  action: mistake\n  volumePath: /data\n{SEL}"), "IOChaos");
        assert!(plan.is_none() && problems[0].contains("not supported yet"), "{problems:?}");
    }

    #[test]
    fn schedules_check_their_policy_and_type() {
        let pod = "  podChaos:\n    action: pod-kill\n    mode: one\n    selector: {}\n";
        let (plan, problems) = compile_text(&format!("  schedule: '@every 30s'\n{pod}"), "Schedule");
        let Some(Plan::Schedule(s)) = plan else { panic!("{problems:?}") };
        assert!(s.forbid && s.history_limit == 1);
        assert!(
            problems.iter().any(|p| p.contains("spec.type: missing") && p.contains("PodChaos")),
            "{problems:?}"
        );
        let (plan, problems) = compile_text(
            &format!(
                "  schedule: '@every 30s'\n  type: NetworkChaos\n  concurrencyPolicy: Sometimes\n  historyLimit: 0\n{pod}"
            ),
            "Schedule",
        );
        assert!(plan.is_none());
        let joined = problems.join("\n");
        for expected in [
            "spec.concurrencyPolicy: \"Sometimes\"",
            "spec.historyLimit: 0 is below 1",
            "spec.podChaos: type is NetworkChaos",
            "spec.networkChaos: type NetworkChaos needs",
        ] {
            assert!(joined.contains(expected), "{expected} in {joined}");
        }
    }

    #[test]
    fn workflows_resolve_their_templates() {
        let (plan, problems) = compile_text(
            "  entry: a\n  templates:\n    - {name: a, templateType: Serial, children: [b, c]}\n    \
             - {name: b, templateType: Suspend, deadline: 10s}\n    - {name: c, templateType: Parallel, children: [a]}\n",
            "Workflow",
        );
        assert!(plan.is_none());
        assert!(problems.iter().any(|p| p.contains("cycle: a -> c -> a")), "{problems:?}");
        let (plan, problems) = compile_text(
            "  entry: main\n  templates:\n    - {name: main, templateType: Serial, children: [wait, nope]}\n    \
             - {name: wait, templateType: Suspend}\n    - {name: s, templateType: Schedule, deadline: 1m, \
             schedule: {schedule: '@hourly', type: Workflow}}\n",
            "Workflow",
        );
        assert!(plan.is_none());
        let joined = problems.join("\n");
        for expected in [
            "spec.templates[0].children[1]: no template is named \"nope\"",
            "spec.templates[1].deadline: a Suspend node waits for its deadline",
            "spec.templates[2].schedule.type: a workflow's Schedule node cannot create a Workflow",
        ] {
            assert!(joined.contains(expected), "{expected} in {joined}");
        }
    }

    #[test]
    fn tasks_and_http_chaos_are_checked_up_front() {
        let (plan, problems) = compile_text(
            "  entry: t\n  templates:\n    - name: t\n      templateType: Task\n      task: {container: {name: c, \
             image: chaoslab, command: [http-get]}}\n      conditionalBranches:\n        - {target: t2, expression: \
             '(exitCode == 0'}\n        - {target: gone}\n    - {name: t2, templateType: Suspend, deadline: 1s}\n",
            "Workflow",
        );
        assert!(plan.is_none());
        let joined = problems.join("\n");
        for expected in [
            "spec.templates[0].task.container.command: http-get takes 1 argument(s), found 0",
            "spec.templates[0].conditionalBranches[0].expression: \"(exitCode == 0\" does not parse",
            "spec.templates[0].conditionalBranches[1].target: no template is named \"gone\"",
        ] {
            assert!(joined.contains(expected), "{expected} in {joined}");
        }
        let sel = "  mode: all\n  selector: {labelSelectors: {app: poke-order-api}}\n  target: Response\n";
        let (plan, problems) =
            compile_text(&format!("{sel}  path: /api/*\n  replace: {{body: aGVsbG8=}}\n"), "HTTPChaos");
        assert!(problems.is_empty(), "{problems:?}");
        let f = faults(&plan);
        assert_eq!(
            (f[0].kind, &f[0].parameters["body"], &f[0].parameters["path"]),
            ("http-replace-body", &json!("hello"), &json!("/api/"))
        );
        let (plan, problems) = compile_text(
            &format!("{sel}  path: /a*b\n  method: GET\n  patch: {{queries: [[a, b]]}}\n"),
            "HTTPChaos",
        );
        assert!(plan.is_none());
        let joined = problems.join("\n");
        for expected in [
            "spec.path: \"/a*b\"",
            "spec.method: HTTPChaos `method` is not supported yet",
            "spec.patch: HTTPChaos `patch`",
        ] {
            assert!(joined.contains(expected), "{expected} in {joined}");
        }
    }
}
