//! The engine: Chaos Mesh's controllers as tasks in the pipeline's runtime, so that in sim mode every
//! schedule, deadline and duration runs in virtual time and the run is deterministic for its seed.
//!
//! - this file: the engine, the objects it runs (created, running, paused, finished) and a chaos's life:
//!   select pods, apply the faults through the fault manager (each recorded with its Chaos Mesh object
//!   as origin, so the ground truth names it), wait for the duration, recover;
//! - [`schedule`]: cron ticks on the run's calendar clock, `Forbid`/`Allow`, missed ticks, history;
//! - [`workflow`]: Serial, Parallel, Suspend, chaos and Schedule nodes, with deadlines that bound the
//!   children.

mod schedule;
mod workflow;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::events::{EventType, Events};
use super::load::Loaded;
use super::plan::{ChaosPlan, Direction, Effect, Plan};
use super::select::{self, Pod};
use crate::chaos::faults::FaultRequest;
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
    /// Paused by the annotation.
    Paused,
    /// Done.
    Finished,
}

/// An object the engine runs, as listed.
#[derive(Clone, Debug, Serialize)]
pub struct ObjectStatus {
    /// Its kind.
    pub kind: String,
    /// `namespace/name`.
    pub object: String,
    /// The object that created it (a Schedule or a Workflow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Its phase.
    pub phase: Phase,
    /// When it was created (calendar time).
    pub created: String,
}

struct Entry {
    status: ObjectStatus,
    stop: CancellationToken,
}

/// The engine of one run.
pub struct Engine {
    p: Arc<Pipeline>,
    events: Arc<Events>,
    objects: Mutex<BTreeMap<(String, String), Entry>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    root: CancellationToken,
}

impl Engine {
    /// An engine acting on `p`, recording to `events`.
    pub fn new(p: Arc<Pipeline>, events: Arc<Events>) -> Arc<Engine> {
        Arc::new(Engine {
            p,
            events,
            objects: Mutex::new(BTreeMap::new()),
            tasks: Mutex::new(Vec::new()),
            root: CancellationToken::new(),
        })
    }

    /// The events recorded so far.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Creates an object: it starts acting now. Returns its `namespace/name`.
    pub fn create(self: &Arc<Self>, loaded: &Loaded) -> String {
        let o = &loaded.object;
        let id = ObjectId {
            kind: o.kind.clone(),
            namespace: o.metadata.namespace().to_string(),
            name: o.name().to_string(),
        };
        let paused = o.metadata.paused();
        let stop = self.register(&id, None, paused);
        let me = self.clone();
        let task: BoxFuture = match loaded.plan.clone() {
            Plan::Chaos(plan) => Box::pin(async move { me.run_chaos(id, plan, paused, stop).await }),
            Plan::Schedule(plan) => Box::pin(async move { me.run_schedule(id, plan, stop).await }),
            Plan::Workflow(plan) => Box::pin(async move { me.run_workflow(id, Arc::new(plan), stop).await }),
        };
        self.spawn(task);
        o.key()
    }

    /// Deletes an object (and what it created): its faults are recovered. False when there is none.
    pub fn delete(&self, kind: &str, key: &str) -> bool {
        let objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        match objects.get(&(kind.to_string(), key.to_string())) {
            Some(e) => {
                e.stop.cancel();
                true
            }
            None => false,
        }
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

    /// Deletes everything and waits until every fault is recovered.
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

    fn spawn(&self, task: BoxFuture) {
        let handle = tokio::spawn(task);
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner).push(handle);
    }

    /// Records a new object; its stop token is a child of the engine's (or `parent`'s).
    fn register(
        &self,
        id: &ObjectId,
        owner: Option<(&ObjectId, &CancellationToken)>,
        paused: bool,
    ) -> CancellationToken {
        let stop = match owner {
            Some((_, parent)) => parent.child_token(),
            None => self.root.child_token(),
        };
        let status = ObjectStatus {
            kind: id.kind.clone(),
            object: id.key(),
            owner: owner.map(|(o, _)| o.origin()),
            phase: if paused { Phase::Paused } else { Phase::Running },
            created: self.p.clock.now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        };
        let mut objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        objects.insert((id.kind.clone(), id.key()), Entry { status, stop: stop.clone() });
        stop
    }

    fn set_phase(&self, id: &ObjectId, phase: Phase) {
        let mut objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = objects.get_mut(&(id.kind.clone(), id.key())) {
            e.status.phase = phase;
        }
    }

    /// An object's phase; `None` once forgotten.
    fn phase(&self, id: &ObjectId) -> Option<Phase> {
        let objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        objects.get(&(id.kind.clone(), id.key())).map(|e| e.status.phase)
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

    /// Sleeps for `d` (forever when `None`) unless `stop` fires first; true when the time ran out.
    async fn wait(stop: &CancellationToken, d: Option<Duration>) -> bool {
        match d {
            Some(d) => {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => false,
                    _ = tokio::time::sleep(d) => true,
                }
            }
            None => {
                stop.cancelled().await;
                false
            }
        }
    }

    /// A chaos: select, apply, wait, recover.
    async fn run_chaos(
        self: Arc<Self>,
        id: ObjectId,
        plan: ChaosPlan,
        paused: bool,
        stop: CancellationToken,
    ) {
        if paused {
            self.event(
                &id,
                EventType::Normal,
                "Paused",
                "paused by the annotation: nothing is injected",
                vec![],
            );
            let timed_out = Self::wait(&stop, plan.duration).await;
            self.finish(&id, timed_out);
            return;
        }
        let pods = select::pods_of_run(&self.p.flow, &self.p.supervisor);
        let mut rng = self.p.seed.stream(&format!("mesh:{}", id.key()));
        let selected = match select::pick(&plan.pods, &id.namespace, &pods, &mut rng) {
            Ok(s) => s,
            Err(e) => {
                self.event(&id, EventType::Warning, "Failed", format!("cannot select pods: {e}"), vec![]);
                self.set_phase(&id, Phase::Finished);
                return;
            }
        };
        let targets = match &plan.effect {
            Effect::Pods { .. } => selected.iter().map(|p| p.instance.clone()).collect(),
            Effect::Links { direction, target, .. } => {
                let others = match target {
                    None => None,
                    Some(t) => match select::pick(t, &id.namespace, &pods, &mut rng) {
                        Ok(o) => Some(o),
                        Err(e) => {
                            self.event(
                                &id,
                                EventType::Warning,
                                "Failed",
                                format!("cannot select the target: {e}"),
                                vec![],
                            );
                            self.set_phase(&id, Phase::Finished);
                            return;
                        }
                    },
                };
                self.links(&selected, *direction, others.as_deref())
            }
        };
        if targets.is_empty() {
            let names: Vec<String> = selected.iter().map(|p| p.name.clone()).collect();
            self.event(
                &id,
                EventType::Warning,
                "Failed",
                "the selected pods have no links in that direction",
                names,
            );
            self.set_phase(&id, Phase::Finished);
            return;
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
                Err(e) => {
                    self.event(
                        &id,
                        EventType::Warning,
                        "Failed",
                        format!("{}: {e}", f.kind),
                        targets.clone(),
                    );
                }
            }
        }
        if !applied.is_empty() {
            let kinds: Vec<&str> = plan.effect.faults().iter().map(|f| f.kind).collect();
            self.event(
                &id,
                EventType::Normal,
                "Applied",
                format!("{} {} applied as {}", id.kind, plan.action, kinds.join(", ")),
                targets.clone(),
            );
        }
        let timed_out = Self::wait(&stop, plan.duration).await;
        for fault in &applied {
            self.p.faults.remove(fault);
        }
        self.finish(&id, timed_out);
        if lasting {
            self.event(&id, EventType::Normal, "Recovered", "every fault removed", targets);
        }
    }

    /// Records the end: time up (its duration passed) or deleted (by a user, its owner, or the run's end).
    fn finish(&self, id: &ObjectId, timed_out: bool) {
        if timed_out {
            self.event(id, EventType::Normal, "TimeUp", "time up according to the duration", vec![]);
        } else {
            self.event(id, EventType::Normal, "Deleted", "the object was deleted", vec![]);
        }
        self.set_phase(id, Phase::Finished);
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
