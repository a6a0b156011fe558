//! The engine: Chaos Mesh's controllers as tasks in the pipeline's runtime, so that in sim mode every
//! schedule, deadline and duration runs in virtual time and the run is deterministic for its seed.
//!
//! - this file: the engine a pipeline owns (`Pipeline::mesh`), the objects it runs (created, running,
//!   paused, finished; each with a uid drawn from the seed) and a chaos's life: select pods, apply the
//!   faults through the fault manager (each recorded with its Chaos Mesh object as origin, so the ground
//!   truth names it), wait for the duration, recover; paused, its faults are recovered until it resumes;
//! - `schedule`: cron ticks on the run's calendar clock, `Forbid`/`Allow`, missed ticks, history;
//! - `workflow`: Serial, Parallel, Suspend, chaos, Schedule, Task and StatusCheck nodes, with deadlines that
//!   bound the children;
//! - `status_check`: HTTP checks, Synchronous or Continuous, with thresholds;
//! - `task`: Task nodes (built-in actions or allow-listed executables) and their conditional branches.

mod schedule;
mod status_check;
mod task;
mod workflow;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::events::{EventType, Events, MeshEvent};
use super::load::Loaded;
use super::plan::{ChaosPlan, Direction, Effect, Plan, WorkflowPlan};
use super::select::{self, Pod};
use crate::chaos::experiment::provider::process::ProcessAllow;
use crate::chaos::faults::FaultRequest;
use crate::kernel::clock::Clock;
use crate::kernel::metrics::Metrics;
use crate::kernel::seed::{Seed, SharedRng};
use crate::kernel::trace::Trace;
use crate::topology::Pipeline;

/// A boxed future (the controllers call each other recursively).
type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An object's identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectId {
    /// Its kind.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ObjectId {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// `Kind namespace/name`, as fault origins read.
    pub fn origin(&self) -> String {
        format!("{} {}", self.kind, self.key())
    }

    fn child(&self, kind: &str, name: String) -> ObjectId {
        ObjectId { kind: kind.to_string(), namespace: self.namespace.clone(), name }
    }
}

/// Where an object is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Acting (or waiting for its next tick).
    Running,
    /// Paused: its faults recovered, its schedule not firing.
    Paused,
    /// Done.
    Finished,
}

/// An object the engine runs, as listed.
#[derive(Clone, Debug, Serialize)]
pub struct ObjectStatus {
    /// Its uid (drawn from the run's seed).
    pub uid: String,
    /// Its kind.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The object that created it (a Schedule or a Workflow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Its phase.
    pub phase: Phase,
    /// When it was created (calendar time).
    pub created: String,
}

impl ObjectStatus {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

struct Entry {
    /// Creation order.
    seq: u64,
    status: ObjectStatus,
    stop: CancellationToken,
    pause: watch::Sender<bool>,
}

/// Why an engine refused a request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    /// No such object.
    #[error("no {0}")]
    NotFound(String),
    /// An object of that kind and name is already running.
    #[error("{0} already exists")]
    Exists(String),
    /// The object cannot do that.
    #[error("{0}")]
    Invalid(String),
}

/// Finished objects kept for listing and archives; older ones are forgotten (their events stay in the
/// file).
pub const MAX_FINISHED: usize = 1_000;

/// The Chaos Mesh engine of one run.
pub struct Engine {
    events: Events,
    clock: Clock,
    uids: SharedRng,
    objects: Mutex<BTreeMap<(String, String), Entry>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    root: CancellationToken,
    process_allow: Mutex<ProcessAllow>,
    next_seq: std::sync::atomic::AtomicU64,
    /// The plans of the workflows created, by `namespace/name` (the dashboard draws them), at most
    /// [`MAX_FINISHED`].
    workflows: Mutex<BTreeMap<String, Arc<WorkflowPlan>>>,
}

impl Engine {
    /// An engine recording events to the trace, a counter in `metrics` and `<out>/mesh-events.jsonl`.
    pub fn new(clock: Clock, trace: Trace, metrics: &Metrics, seed: Seed, out: Option<&Path>) -> Engine {
        Engine {
            events: Events::new(clock.clone(), trace, metrics, out),
            clock,
            uids: seed.shared_stream("mesh:uids"),
            objects: Mutex::new(BTreeMap::new()),
            tasks: Mutex::new(Vec::new()),
            root: CancellationToken::new(),
            process_allow: Mutex::new(ProcessAllow::default()),
            next_seq: std::sync::atomic::AtomicU64::new(0),
            workflows: Mutex::new(BTreeMap::new()),
        }
    }

    /// Executables a workflow's Task nodes may run (live runs; names or paths).
    pub fn set_process_allow(&self, allow: ProcessAllow) {
        *self.process_allow.lock().unwrap_or_else(PoisonError::into_inner) = allow;
    }

    fn process_allow(&self) -> ProcessAllow {
        self.process_allow.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Every event kept (the last [`MAX_KEPT`](super::events::MAX_KEPT); the file has them all).
    pub fn events(&self) -> Vec<MeshEvent> {
        self.events.all()
    }

    /// The events of one object.
    pub fn events_of(&self, kind: &str, key: &str) -> Vec<MeshEvent> {
        self.events.of(kind, key)
    }

    /// Creates an object in the running pipeline `p` (whose engine this is): it acts from now on.
    /// Returns its status; an object of the same kind and name that has not finished is an error.
    pub fn create(&self, p: &Arc<Pipeline>, loaded: &Loaded) -> Result<ObjectStatus, EngineError> {
        let o = &loaded.object;
        let id = ObjectId {
            kind: o.kind.clone(),
            namespace: o.metadata.namespace().to_string(),
            name: o.name().to_string(),
        };
        if self.phase(&id).is_some_and(|ph| ph != Phase::Finished) {
            return Err(EngineError::Exists(id.origin()));
        }
        let paused = o.metadata.paused();
        let (stop, pause) = self.register(&id, None, paused);
        let ctl = Ctl { p: p.clone() };
        let task: BoxFuture = match loaded.plan.clone() {
            Plan::Chaos(plan) => Box::pin(ctl.run_chaos(id.clone(), plan, pause, stop)),
            Plan::Schedule(plan) => Box::pin(ctl.run_schedule(id.clone(), plan, pause, stop)),
            Plan::Workflow(plan) => {
                let plan = Arc::new(plan);
                let mut kept = self.workflows.lock().unwrap_or_else(PoisonError::into_inner);
                if kept.len() >= MAX_FINISHED && !kept.contains_key(&id.key()) {
                    let first = kept.keys().next().cloned();
                    first.map(|k| kept.remove(&k));
                }
                kept.insert(id.key(), plan.clone());
                Box::pin(ctl.run_workflow(id.clone(), plan, stop))
            }
            Plan::StatusCheck(plan) => Box::pin(ctl.run_status_check(id.clone(), plan, stop)),
        };
        let handle = tokio::spawn(task);
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
        self.status(&id).ok_or_else(|| EngineError::NotFound(id.origin()))
    }

    /// Deletes an object (and what it created); its faults are recovered.
    pub fn delete(&self, kind: &str, key: &str) -> Result<(), EngineError> {
        let objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        match objects.get(&(kind.to_string(), key.to_string())) {
            Some(e) => {
                e.stop.cancel();
                Ok(())
            }
            None => Err(EngineError::NotFound(format!("{kind} {key}"))),
        }
    }

    /// Pauses (`true`) or resumes a chaos or a Schedule, as the pause annotation does.
    pub fn set_paused(&self, kind: &str, key: &str, paused: bool) -> Result<(), EngineError> {
        if kind == "Workflow" || kind == "StatusCheck" {
            return Err(EngineError::Invalid(format!("a {kind} cannot be paused")));
        }
        let mut objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(e) = objects.get_mut(&(kind.to_string(), key.to_string())) else {
            return Err(EngineError::NotFound(format!("{kind} {key}")));
        };
        if e.status.phase == Phase::Finished {
            return Err(EngineError::Invalid(format!("{kind} {key} has finished")));
        }
        e.status.phase = if paused { Phase::Paused } else { Phase::Running };
        e.pause.send_replace(paused);
        Ok(())
    }

    /// Every object, by kind and name.
    pub fn list(&self) -> Vec<ObjectStatus> {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|e| e.status.clone())
            .collect()
    }

    /// The plan of the workflow `namespace/name`, if one was created.
    pub fn workflow_plan(&self, key: &str) -> Option<Arc<WorkflowPlan>> {
        self.workflows.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    /// The object with this uid.
    pub fn by_uid(&self, uid: &str) -> Option<ObjectStatus> {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .find(|e| e.status.uid == uid)
            .map(|e| e.status.clone())
    }

    /// Deletes everything and waits until every fault is recovered (the run is ending).
    pub async fn shutdown(&self) {
        self.root.cancel();
        loop {
            let tasks: Vec<JoinHandle<()>> =
                std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
            if tasks.is_empty() {
                break;
            }
            for t in tasks {
                if let Err(e) = t.await {
                    tracing::warn!("a Chaos Mesh controller task failed: {e}");
                }
            }
        }
        if let Err(e) = self.events.flush() {
            tracing::warn!("cannot write the Chaos Mesh events: {e}");
        }
    }

    /// Records a new object; its stop token is a child of the engine's (or its owner's).
    fn register(
        &self,
        id: &ObjectId,
        owner: Option<(&ObjectId, &CancellationToken)>,
        paused: bool,
    ) -> (CancellationToken, watch::Receiver<bool>) {
        let stop = match owner {
            Some((_, parent)) => parent.child_token(),
            None => self.root.child_token(),
        };
        let (pause, paused_rx) = watch::channel(paused);
        let status = ObjectStatus {
            uid: self.uids.uuid().to_string(),
            kind: id.kind.clone(),
            namespace: id.namespace.clone(),
            name: id.name.clone(),
            owner: owner.map(|(o, _)| o.origin()),
            phase: if paused { Phase::Paused } else { Phase::Running },
            created: crate::kernel::clock::iso_millis(self.clock.now()),
        };
        let mut objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = self.next_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        objects.insert((id.kind.clone(), id.key()), Entry { seq, status, stop: stop.clone(), pause });
        let finished = objects.values().filter(|e| e.status.phase == Phase::Finished).count();
        if finished > MAX_FINISHED {
            let oldest = objects
                .iter()
                .filter(|(_, e)| e.status.phase == Phase::Finished)
                .min_by_key(|(_, e)| e.seq)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                objects.remove(&k);
            }
        }
        (stop, paused_rx)
    }

    fn status(&self, id: &ObjectId) -> Option<ObjectStatus> {
        let objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        objects.get(&(id.kind.clone(), id.key())).map(|e| e.status.clone())
    }

    fn set_phase(&self, id: &ObjectId, phase: Phase) {
        let mut objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = objects.get_mut(&(id.kind.clone(), id.key())) {
            e.status.phase = phase;
        }
    }

    /// An object's phase; `None` once forgotten.
    fn phase(&self, id: &ObjectId) -> Option<Phase> {
        self.status(id).map(|s| s.phase)
    }

    /// Forgets a finished object (history limits).
    fn forget(&self, id: &ObjectId) {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner).remove(&(id.kind.clone(), id.key()));
    }

    fn event(
        &self,
        id: &ObjectId,
        kind: EventType,
        reason: &str,
        message: impl Into<String>,
        targets: Vec<String>,
    ) {
        self.events.emit(&id.kind, &id.key(), kind, reason, message, targets);
    }
}

/// A controller's handle on the running pipeline (whose engine is `p.mesh`).
#[derive(Clone)]
struct Ctl {
    p: Arc<Pipeline>,
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Woke {
    TimeUp,
    Stopped,
    PauseChanged,
}

impl Ctl {
    fn engine(&self) -> &Engine {
        &self.p.mesh
    }

    /// A `Normal` event.
    fn note(&self, id: &ObjectId, reason: &str, message: impl Into<String>, targets: Vec<String>) {
        self.engine().event(id, EventType::Normal, reason, message, targets);
    }

    /// A `Warning` event.
    fn warn(&self, id: &ObjectId, reason: &str, message: impl Into<String>, targets: Vec<String>) {
        self.engine().event(id, EventType::Warning, reason, message, targets);
    }

    /// Sleeps until `until` (forever when `None`) unless `stop` fires or the pause flag changes first.
    async fn wait(
        stop: &CancellationToken,
        until: Option<tokio::time::Instant>,
        pause: Option<&mut watch::Receiver<bool>>,
    ) -> Woke {
        let timer = async {
            match until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let changed = async {
            match pause {
                Some(rx) => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => Woke::Stopped,
            _ = timer => Woke::TimeUp,
            _ = changed => Woke::PauseChanged,
        }
    }

    /// A chaos: select, apply, wait, recover — and recover while paused, apply again on resume. The
    /// duration counts from the creation, paused or not.
    async fn run_chaos(
        self,
        id: ObjectId,
        plan: ChaosPlan,
        mut pause: watch::Receiver<bool>,
        stop: CancellationToken,
    ) {
        let until = plan.duration.map(|d| tokio::time::Instant::now() + d);
        let mut rng = self.p.seed.stream(&format!("mesh:{}", id.key()));
        let mut woke;
        loop {
            let paused = *pause.borrow_and_update();
            if paused {
                self.note(&id, "Paused", "paused: nothing is injected", vec![]);
                woke = Self::wait(&stop, until, Some(&mut pause)).await;
                if woke == Woke::PauseChanged {
                    continue;
                }
                break;
            }
            let Some((targets, applied, lasting)) = self.inject(&id, &plan, &mut rng).await else {
                self.engine().set_phase(&id, Phase::Finished);
                return;
            };
            woke = Self::wait(&stop, until, Some(&mut pause)).await;
            for fault in &applied {
                self.p.faults.remove(fault);
            }
            if lasting {
                self.note(&id, "Recovered", "every fault removed", targets);
            }
            if woke != Woke::PauseChanged {
                break;
            }
        }
        match woke {
            Woke::TimeUp => self.note(&id, "TimeUp", "time up according to the duration", vec![]),
            _ => self.note(&id, "Deleted", "the object was deleted", vec![]),
        }
        self.engine().set_phase(&id, Phase::Finished);
    }

    /// Selects the pods and applies the faults; `None` (after a `Failed` event) when nothing could be.
    /// Returns the targets, the fault ids and whether any fault lasts (is not instant).
    async fn inject(
        &self,
        id: &ObjectId,
        plan: &ChaosPlan,
        rng: &mut crate::kernel::seed::Rng,
    ) -> Option<(Vec<String>, Vec<String>, bool)> {
        let pods = select::pods_of_run(&self.p.flow, &self.p.supervisor);
        let selected = match select::pick(&plan.pods, &id.namespace, &pods, rng) {
            Ok(s) => s,
            Err(e) => {
                self.warn(id, "Failed", format!("cannot select pods: {e}"), vec![]);
                return None;
            }
        };
        let targets = match &plan.effect {
            Effect::Pods { .. } => selected.iter().map(|p| p.instance.clone()).collect(),
            Effect::Links { direction, target, external, .. } => {
                let mut others = match target {
                    None => None,
                    Some(t) => match select::pick(t, &id.namespace, &pods, rng) {
                        Ok(o) => Some(o),
                        Err(e) => {
                            self.warn(id, "Failed", format!("cannot select the target: {e}"), vec![]);
                            return None;
                        }
                    },
                };
                if !external.is_empty() {
                    // The components fronting those hosts are the other end, beside any `target`.
                    let fronting = pods.iter().filter(|p| external.iter().any(|t| p.has_external(t)));
                    let all = others.get_or_insert_with(Vec::new);
                    for p in fronting {
                        if !all.iter().any(|o| o.instance == p.instance) {
                            all.push(p.clone());
                        }
                    }
                    if all.is_empty() {
                        let message = format!("no component talks to {} here", external.join(", "));
                        self.warn(id, "Failed", message, vec![]);
                        return None;
                    }
                }
                self.links(&selected, *direction, others.as_deref())
            }
        };
        if targets.is_empty() {
            let names: Vec<String> = selected.iter().map(|p| p.name.clone()).collect();
            self.warn(id, "Failed", "the selected pods have no links in that direction", names);
            return None;
        }
        let mut applied = Vec::new();
        let mut lasting = false;
        for f in plan.effect.faults() {
            let request = FaultRequest {
                kind: f.kind.to_string(),
                parameters: f.parameters.clone(),
                ..Default::default()
            };
            match self.p.faults.apply_to(&request, targets.clone(), &id.origin()).await {
                Ok(record) => {
                    lasting |= record.ended_at.is_none();
                    applied.push(record.id);
                }
                Err(e) => self.warn(id, "Failed", format!("{}: {e}", f.kind), targets.clone()),
            }
        }
        if !applied.is_empty() {
            let kinds: Vec<&str> = plan.effect.faults().iter().map(|f| f.kind).collect();
            let message = format!("{} {} applied as {}", id.kind, plan.action, kinds.join(", "));
            self.note(id, "Applied", message, targets.clone());
        }
        Some((targets, applied, lasting))
    }

    /// The links a network chaos acts on, in name order: those the selected pods send on (`to`), receive
    /// on (`from`) or both, restricted to peers among `others` when there is a target.
    fn links(&self, selected: &[Pod], direction: Direction, others: Option<&[Pod]>) -> Vec<String> {
        let is = |name: &str, pods: &[Pod]| pods.iter().any(|p| p.instance == name || p.component == name);
        let peer = |name: &str| others.is_none_or(|o| is(name, o));
        self.p
            .links
            .iter()
            .filter(|(_, link)| {
                let out = is(link.from(), selected) && peer(link.to());
                let inn = is(link.to(), selected) && peer(link.from());
                match direction {
                    Direction::To => out,
                    Direction::From => inn,
                    Direction::Both => out || inn,
                }
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}
