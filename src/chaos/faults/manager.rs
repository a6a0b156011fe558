//! The fault manager: applies, lists, expires and removes faults on a running pipeline.
//!
//! Every fault becomes a [`FaultRecord`] with an id (`f-0001`, …, so sim runs are reproducible).
//! Lasting faults stay in the active set until their duration ends or they are removed; the state of
//! each target is then *recomputed* from all faults still active on it (link faults over the link's
//! own faults, clock offsets summed, I/O faults merged, pauses and failures held while any remains),
//! so overlapping faults compose and removing one never removes another's effect. Instant faults (a
//! kill, a topic deletion) are carried out and recorded as `completed`. Applications and removals go
//! to the trace (`fault.applied`, `fault.removed`) and to metrics (`chaoslab_faults_applied_total`,
//! `chaoslab_faults_active`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use prometheus::{IntCounterVec, IntGaugeVec, Opts};
use serde::Serialize;
use serde_json::{Value, json};

use super::http::HttpFaults;
use super::spec::{Direction, Effect, Fault, FaultError, FaultRequest, TargetKind};
use crate::bus::backend::BusClient;
use crate::kernel::clock::{Clock, iso_millis};
use crate::kernel::hooks::IoFaults;
use crate::kernel::metrics::Metrics;
use crate::kernel::seed::{Rng, Seed};
use crate::kernel::supervisor::Supervisor;
use crate::kernel::task::ChildTask;
use crate::kernel::trace::Trace;
use crate::transport::link::{Link, LinkFaults};
use crate::transport::mqtt::MqttConnector;

/// Component kinds that write to storage (targets of I/O faults).
pub const STORE_KINDS: [&str; 4] = ["file-store", "quality-gate", "document-index", "order-store"];

/// What the manager acts on.
pub struct FaultEnv {
    /// Components.
    pub supervisor: Supervisor,
    /// Links by `FROM->TO`.
    pub links: BTreeMap<String, Arc<Link>>,
    /// The MQTT brokers' connectors, by broker component.
    pub mqtt: BTreeMap<String, MqttConnector>,
    /// The bus the services use, when the flow has one (Kafka faults need it).
    pub bus: Option<BusClient>,
    /// HTTP rules of the order API.
    pub http: Arc<HttpFaults>,
    /// The run clock.
    pub clock: Clock,
    /// The run trace.
    pub trace: Trace,
}

/// One fault as listed (and as the trace records it, which replay reads back).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct FaultRecord {
    /// `f-0001`, …
    pub id: String,
    /// Catalogue kind.
    pub kind: String,
    /// Its family.
    pub category: String,
    /// What it was applied to.
    pub targets: Vec<String>,
    /// The selector as given.
    pub selector: String,
    /// Parameters as given.
    pub parameters: serde_json::Map<String, Value>,
    /// Duration in milliseconds, if any.
    pub duration_ms: Option<u64>,
    /// When it was applied.
    pub applied_at: String,
    /// Milliseconds since run start when it was applied.
    pub applied_ms: u64,
    /// When it ends by itself.
    pub expires_at: Option<String>,
    /// `active`, `completed` (instant kinds), `expired`, `removed`.
    pub status: String,
    /// When it ended.
    pub ended_at: Option<String>,
    /// Why it ended (`expired`, `removed`, `target gone`, `run ended`).
    pub reason: Option<String>,
    /// What an instant fault returned (produced offsets, …).
    pub output: Value,
    /// What asked for it, when not a user directly (`NetworkChaos default/network-delay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

struct Active {
    record: FaultRecord,
    fault: Fault,
    /// Memory held by a memory assault.
    _ballast: Option<Vec<u8>>,
    _expiry: Option<ChildTask>,
}

struct State {
    next_id: u64,
    active: BTreeMap<String, Active>,
    history: Vec<FaultRecord>,
    /// Each faulted link's own faults, restored when its last fault goes.
    link_base: BTreeMap<String, LinkFaults>,
    rng: Rng,
}

struct Inner {
    env: FaultEnv,
    state: Mutex<State>,
    applied: IntCounterVec,
    active: IntGaugeVec,
}

/// Applies and removes faults. Cheap to clone.
#[derive(Clone)]
pub struct FaultManager {
    inner: Arc<Inner>,
}

/// How long applying waits for a stopped component to be seen down.
const SETTLE: Duration = Duration::from_secs(5);

/// Keep this many ended faults for listing.
const HISTORY: usize = 1000;

/// Why applying failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The request is invalid.
    #[error(transparent)]
    Invalid(#[from] FaultError),
    /// It could not be carried out.
    #[error("{0}")]
    Failed(String),
}

impl FaultManager {
    /// A manager over `env`, drawing target picks from `seed`.
    pub fn new(env: FaultEnv, metrics: &Metrics, seed: Seed) -> anyhow::Result<FaultManager> {
        let applied = IntCounterVec::new(
            Opts::new("chaoslab_faults_applied_total", "Faults applied, by kind"),
            &["kind"],
        )?;
        let active =
            IntGaugeVec::new(Opts::new("chaoslab_faults_active", "Faults in force, by kind"), &["kind"])?;
        metrics.register(&applied)?;
        metrics.register(&active)?;
        let state = State {
            next_id: 0,
            active: BTreeMap::new(),
            history: Vec::new(),
            link_base: BTreeMap::new(),
            rng: seed.stream("faults"),
        };
        Ok(FaultManager { inner: Arc::new(Inner { env, state: Mutex::new(state), applied, active }) })
    }

    fn bus(&self) -> Option<&BusClient> {
        self.inner.env.bus.as_ref()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn env(&self) -> &FaultEnv {
        &self.inner.env
    }

    /// The faults in force, then the ended ones (newest last).
    pub fn list(&self) -> (Vec<FaultRecord>, Vec<FaultRecord>) {
        let st = self.state();
        (st.active.values().map(|a| a.record.clone()).collect(), st.history.clone())
    }

    /// Every fault ever applied in this run, in id order (for the run summary and ground truth).
    pub fn all(&self) -> Vec<FaultRecord> {
        let (active, ended) = self.list();
        let mut all: Vec<FaultRecord> = ended.into_iter().chain(active).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// The candidates a kind may target, with component kinds.
    fn candidates(&self, target: TargetKind) -> Vec<(String, Option<String>)> {
        let sup = &self.env().supervisor;
        let comps = || sup.names().into_iter().map(|n| (n.clone(), sup.kind_of(&n)));
        match target {
            TargetKind::Link => {
                let mut c: Vec<_> = self.env().links.keys().map(|n| (n.clone(), None)).collect();
                c.extend(comps());
                c
            }
            TargetKind::Component => comps().collect(),
            TargetKind::Store => {
                comps().filter(|(_, k)| k.as_deref().is_some_and(|k| STORE_KINDS.contains(&k))).collect()
            }
            TargetKind::Api => comps().filter(|(_, k)| k.as_deref() == Some("order-api")).collect(),
            TargetKind::KafkaBroker => {
                comps().filter(|(_, k)| k.as_deref() == Some("kafka-broker")).collect()
            }
            TargetKind::MqttBroker => comps().filter(|(_, k)| k.as_deref() == Some("mqtt-broker")).collect(),
            TargetKind::Bus => Vec::new(),
        }
    }

    /// Links a network fault on `targets` covers: link names as they are, components by direction.
    fn links_of(&self, targets: &[String], direction: Direction) -> Vec<String> {
        let mut out = Vec::new();
        for t in targets {
            if self.env().links.contains_key(t) {
                out.push(t.clone());
                continue;
            }
            for (name, link) in &self.env().links {
                let hit = match direction {
                    Direction::To => link.to() == t,
                    Direction::From => link.from() == t,
                    Direction::Both => link.to() == t || link.from() == t,
                };
                if hit {
                    out.push(name.clone());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Checks and applies a fault. Lasting faults are active until their duration ends or
    /// [`FaultManager::remove`]; instant ones are carried out now.
    pub async fn apply(&self, request: &FaultRequest) -> Result<FaultRecord, ApplyError> {
        let fault = Fault::parse(request)?;
        let info = fault.info;
        let targets = if info.target == TargetKind::Bus {
            Vec::new()
        } else {
            let candidates = self.candidates(info.target);
            let picked = {
                let mut st = self.state();
                fault.selector.pick(&candidates, &mut st.rng)
            };
            let picked = picked.map_err(|e| {
                let hint = match info.target {
                    TargetKind::Store => " (I/O faults act on stores and sinks)",
                    TargetKind::KafkaBroker if self.bus().is_none() => " (the order services are off)",
                    _ => "",
                };
                ApplyError::Invalid(FaultError::one(format!("{e}{hint}")))
            })?;
            match &fault.effect {
                Effect::Net(_, direction) => {
                    let links = self.links_of(&picked, *direction);
                    if links.is_empty() {
                        return Err(ApplyError::Invalid(FaultError::one(format!(
                            "target: {} has no links in direction {direction:?}",
                            picked.join(", ")
                        ))));
                    }
                    links
                }
                _ => picked,
            }
        };
        self.apply_fault(request, fault, targets, None).await
    }

    /// Applies a fault to targets chosen by the caller — links (`FROM->TO`) for network kinds,
    /// components otherwise — recording `origin` (what asked for it, e.g. a Chaos Mesh object) with it.
    /// The request's `target` and `mode` are not used for picking; each target must exist and suit the
    /// kind.
    pub async fn apply_to(
        &self,
        request: &FaultRequest,
        targets: Vec<String>,
        origin: &str,
    ) -> Result<FaultRecord, ApplyError> {
        let mut request = request.clone();
        if request.target.is_none() {
            request.target = Some(targets.join(","));
        }
        let fault = Fault::parse(&request)?;
        if targets.is_empty() {
            return Err(ApplyError::Invalid(FaultError::one("target: no targets")));
        }
        let allowed: Vec<String> = match fault.effect {
            Effect::Net(..) => self.env().links.keys().cloned().collect(),
            _ => self.candidates(fault.info.target).into_iter().map(|(n, _)| n).collect(),
        };
        let wrong: Vec<&str> = targets.iter().filter(|t| !allowed.contains(t)).map(String::as_str).collect();
        if !wrong.is_empty() {
            return Err(ApplyError::Invalid(FaultError::one(format!(
                "target: {} cannot take {} (candidates: {})",
                wrong.join(", "),
                fault.info.name,
                allowed.join(", ")
            ))));
        }
        self.apply_fault(&request, fault, targets, Some(origin.to_owned())).await
    }

    async fn apply_fault(
        &self,
        request: &FaultRequest,
        fault: Fault,
        targets: Vec<String>,
        origin: Option<String>,
    ) -> Result<FaultRecord, ApplyError> {
        let info = fault.info;
        let now = self.env().clock.now();
        let applied_ms = self.env().clock.elapsed().as_millis() as u64;
        let id = {
            let mut st = self.state();
            st.next_id += 1;
            format!("f-{:04}", st.next_id)
        };
        let mut record = FaultRecord {
            id: id.clone(),
            kind: info.name.to_owned(),
            category: info.category.to_owned(),
            targets: targets.clone(),
            selector: fault.selector.pattern().to_owned(),
            parameters: request.parameters.clone(),
            duration_ms: fault.duration.map(|d| d.as_millis() as u64),
            applied_at: iso_millis(now),
            applied_ms,
            expires_at: fault
                .duration
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .map(|d| iso_millis(now + d)),
            status: "active".into(),
            ended_at: None,
            reason: None,
            output: Value::Null,
            origin,
        };
        if info.instant {
            record.output = self.instant(&fault, &targets).await.map_err(ApplyError::Failed)?;
            record.status = "completed".into();
            record.ended_at = Some(record.applied_at.clone());
            self.inner.applied.with_label_values(&[info.name]).inc();
            self.trace("fault.applied", &record);
            let mut st = self.state();
            push_history(&mut st.history, record.clone());
            return Ok(record);
        }
        let ballast = match fault.effect {
            Effect::Memory(bytes) => Some(ballast(bytes)),
            _ => None,
        };
        let expiry = fault.duration.map(|d| {
            let me = self.clone();
            let id = id.clone();
            ChildTask::spawn(async move {
                tokio::time::sleep(d).await;
                me.end(&id, "expired");
            })
        });
        {
            let mut st = self.state();
            if let Effect::Net(..) = fault.effect {
                for l in &targets {
                    if !st.active.values().any(|a| a.touches_link(l)) {
                        let base = self.env().links.get(l).map(|link| link.faults()).unwrap_or_default();
                        st.link_base.insert(l.clone(), base);
                    }
                }
            }
            let active =
                Active { record: record.clone(), fault: fault.clone(), _ballast: ballast, _expiry: expiry };
            st.active.insert(id.clone(), active);
        }
        if let Effect::Http(rule) = &fault.effect {
            self.env().http.add(&id, &targets, rule.clone());
        }
        self.inner.applied.with_label_values(&[info.name]).inc();
        self.inner.active.with_label_values(&[info.name]).inc();
        self.trace("fault.applied", &record);
        self.recompute(&fault, &targets);
        if fault.effect == Effect::Failure {
            self.settle(&targets).await;
        }
        Ok(record)
    }

    /// Waits (a bounded time) until stopped targets are seen down, so that what runs next — a probe in
    /// an experiment — observes the fault, not the moment before it.
    async fn settle(&self, targets: &[String]) {
        let sup = &self.env().supervisor;
        for t in targets {
            let down = sup.wait_for(t, |h| h.state != crate::kernel::supervisor::State::Running);
            if tokio::time::timeout(SETTLE, down).await.is_err() {
                tracing::warn!(component = %t, "still running {SETTLE:?} after the fault stopped it");
            }
        }
    }

    /// Removes an active fault; returns its final record.
    pub fn remove(&self, id: &str) -> Option<FaultRecord> {
        self.end(id, "removed")
    }

    /// Removes every active fault (the run is ending, or a user asked); returns them.
    pub fn remove_all(&self, reason: &str) -> Vec<FaultRecord> {
        let ids: Vec<String> = self.state().active.keys().cloned().collect();
        ids.iter().filter_map(|id| self.end(id, reason)).collect()
    }

    /// Removes active faults whose targets no longer exist.
    pub fn prune(&self) -> Vec<FaultRecord> {
        let names = self.env().supervisor.names();
        let gone: Vec<String> = self
            .state()
            .active
            .values()
            .filter(|a| {
                a.record.targets.iter().any(|t| !names.contains(t) && !self.env().links.contains_key(t))
            })
            .map(|a| a.record.id.clone())
            .collect();
        gone.iter().filter_map(|id| self.end(id, "target gone")).collect()
    }

    fn end(&self, id: &str, reason: &str) -> Option<FaultRecord> {
        let active = {
            let mut st = self.state();
            let mut active = st.active.remove(id)?;
            active.record.status = if reason == "expired" { "expired" } else { "removed" }.into();
            active.record.reason = Some(reason.to_owned());
            active.record.ended_at = Some(iso_millis(self.env().clock.now()));
            push_history(&mut st.history, active.record.clone());
            active
        };
        if let Effect::Http(_) = active.fault.effect {
            self.env().http.remove(id);
        }
        self.inner.active.with_label_values(&[active.fault.info.name]).dec();
        self.trace("fault.removed", &active.record);
        self.recompute(&active.fault, &active.record.targets);
        Some(active.record)
        // `active` drops here: its expiry timer (if this is not it) and ballast go with it.
    }

    fn trace(&self, kind: &str, record: &FaultRecord) {
        tracing::info!(
            id = %record.id,
            kind = %record.kind,
            targets = %record.targets.join(","),
            "{kind}{}",
            record.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
        );
        self.env().trace.emit("chaoslab", kind, record);
    }

    /// Brings each target of `fault` in line with every fault still active on it.
    fn recompute(&self, fault: &Fault, targets: &[String]) {
        let env = self.env();
        let st = self.state();
        fn on<'a>(st: &'a State, t: &'a str) -> impl Iterator<Item = &'a Active> + 'a {
            st.active.values().filter(move |a| a.record.targets.iter().any(|x| x == t))
        }
        for t in targets {
            match &fault.effect {
                Effect::Net(..) => {
                    let Some(link) = env.links.get(t) else { continue };
                    let mut faults = st.link_base.get(t).cloned().unwrap_or_default();
                    for a in on(&st, t) {
                        if let Effect::Net(net, _) = &a.fault.effect {
                            net.overlay(&mut faults);
                        }
                    }
                    link.set_faults(faults);
                }
                Effect::ClockOffset(_) => {
                    let total: i64 = on(&st, t)
                        .filter_map(|a| match a.fault.effect {
                            Effect::ClockOffset(ms) => Some(ms),
                            _ => None,
                        })
                        .sum();
                    env.supervisor.hooks(t).set_skew(total);
                }
                Effect::CpuStress(_) => {
                    let cores: f64 = on(&st, t)
                        .filter_map(|a| match a.fault.effect {
                            Effect::CpuStress(c) => Some(c),
                            _ => None,
                        })
                        .sum();
                    env.supervisor.hooks(t).set_cpu_share(1.0 / (1.0 + cores));
                }
                Effect::Io(_) => {
                    let io: Vec<IoFaults> = on(&st, t)
                        .filter_map(|a| match &a.fault.effect {
                            Effect::Io(f) => Some(f.clone()),
                            _ => None,
                        })
                        .collect();
                    env.supervisor.hooks(t).set_io(io);
                }
                Effect::Pause => {
                    let paused = on(&st, t).any(|a| a.fault.effect == Effect::Pause);
                    let result = if paused { env.supervisor.pause(t) } else { env.supervisor.resume(t) };
                    if let Err(e) = result {
                        tracing::warn!("pause fault: {e}");
                    }
                    // A paused component's links hold their messages (and release the backlog after).
                    for (name, link) in &env.links {
                        if link.to() == t || link.from() == t {
                            let held = st.active.values().any(|a| {
                                a.fault.effect == Effect::Pause
                                    && a.record.targets.iter().any(|x| x == link.to() || x == link.from())
                            });
                            if link.is_held() != held {
                                tracing::debug!(link = %name, held, "link hold");
                                link.set_hold(held);
                            }
                        }
                    }
                }
                Effect::Failure => {
                    let down = on(&st, t).any(|a| a.fault.effect == Effect::Failure);
                    let result = if down { env.supervisor.stop(t) } else { env.supervisor.start(t) };
                    if let Err(e) = result {
                        tracing::warn!("failure fault: {e}");
                    }
                }
                _ => {}
            }
        }
    }

    /// Carries out an instant fault; returns its output.
    async fn instant(&self, fault: &Fault, targets: &[String]) -> Result<Value, String> {
        let env = self.env();
        let sup = &env.supervisor;
        let bus =
            || self.bus().ok_or_else(|| "the order services (and their bus) are off in this flow".to_owned());
        let embedded = || {
            bus()?
                .embedded()
                .cloned()
                .ok_or_else(|| "this fault needs the embedded bus, not a Kafka cluster".to_owned())
        };
        match &fault.effect {
            Effect::Kill => {
                for t in targets {
                    sup.crash(t, &format!("killed by fault {}", fault.info.name)).map_err(|e| e.to_string())?;
                }
                self.settle(targets).await;
                Ok(json!({"killed": targets}))
            }
            Effect::Restart(grace) => {
                for t in targets {
                    match grace {
                        Some(g) => sup.restart_within(t, *g),
                        None => sup.restart(t),
                    }
                    .map_err(|e| e.to_string())?;
                }
                Ok(json!({"restarted": targets}))
            }
            Effect::Reboot(downtime) => {
                for t in targets {
                    sup.stop(t).map_err(|e| e.to_string())?;
                }
                self.settle(targets).await;
                let (sup, targets2, downtime) = (sup.clone(), targets.to_vec(), *downtime);
                tokio::spawn(async move {
                    tokio::time::sleep(downtime).await;
                    for t in &targets2 {
                        if let Err(e) = sup.start(t) {
                            tracing::warn!("reboot of {t}: {e}");
                        }
                    }
                });
                Ok(json!({"rebooting": targets, "downtime_ms": downtime.as_millis() as u64}))
            }
            Effect::DeleteTopic(topic) => {
                embedded()?.admin().delete_topic(topic).map_err(|e| e.to_string())?;
                Ok(json!({"deleted": topic}))
            }
            Effect::DeleteGroup(group) => {
                embedded()?.admin().delete_group(group).map_err(|e| e.to_string())?;
                Ok(json!({"deleted": group}))
            }
            Effect::Produce { topic, partition, messages } => {
                let producer = bus()?.producer("chaostoolkit", crate::bus::client::Acks::All).map_err(|e| e.to_string())?;
                let ts = env.clock.now().timestamp_millis();
                let mut out = Vec::new();
                for m in messages {
                    let meta = producer
                        .send(topic, Some(*partition), None, Bytes::from(m.clone()), ts)
                        .await
                        .map_err(|e| e.to_string())?;
                    out.push(json!({"topic": meta.topic, "partition": meta.partition, "offset": meta.offset}));
                }
                Ok(Value::Array(out))
            }
            Effect::Rebalance { group, topic } => {
                let mut consumer = bus()?.consumer(group, "chaostoolkit", false).map_err(|e| e.to_string())?;
                consumer.subscribe(&[topic.as_str()]).map_err(|e| e.to_string())?;
                consumer.poll(1).await.map_err(|e| e.to_string())?;
                tokio::time::sleep(Duration::from_secs(3)).await;
                consumer.close();
                Ok(json!(true))
            }
            Effect::DropSession(client_id) => match targets.first().and_then(|t| env.mqtt.get(t)).or_else(|| env.mqtt.values().next()) {
                None => Err("this flow has no MQTT broker".into()),
                Some(MqttConnector::Sim(broker)) => {
                    if broker.kick(client_id) {
                        Ok(json!({"dropped": client_id}))
                    } else {
                        Err(format!(
                            "parameters.client_id: no connected client {client_id:?} (connected: {})",
                            broker.connected_clients().join(", ")
                        ))
                    }
                }
                Some(MqttConnector::Live(_)) => Err(
                    "mqtt-drop-session needs the in-process broker (sim mode); in live mode use mqtt-broker-restart"
                        .into(),
                ),
            },
            other => Err(format!("{other:?} is not an instant fault")),
        }
    }
}

impl Active {
    fn touches_link(&self, link: &str) -> bool {
        matches!(self.fault.effect, Effect::Net(..)) && self.record.targets.iter().any(|t| t == link)
    }
}

fn push_history(history: &mut Vec<FaultRecord>, record: FaultRecord) {
    if history.len() >= HISTORY {
        history.remove(0);
    }
    history.push(record);
}

/// Memory that is really resident: every page written.
fn ballast(bytes: usize) -> Vec<u8> {
    let mut v = vec![0u8; bytes];
    for i in (0..bytes).step_by(4096) {
        v[i] = 1;
    }
    v
}
