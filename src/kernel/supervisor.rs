//! The supervisor: starts, stops, crashes and restarts components, and knows their health.
//!
//! Each component has a keeper task that owns its current incarnation. Commands (stop, start, crash,
//! restart) reach the keeper over a channel, so a crash injected by a fault and a crash caused by a
//! bug or a panic take the same path: state change → trace event → metrics → restart policy with
//! back-off. Components are started in the order they were added and stopped in reverse.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::component::{ComponentSpec, Ctx, RestartMode};
use super::hooks::ComponentHooks;
use super::metrics::Metrics;
use super::seed::Seed;
use super::trace::Trace;

/// Lifecycle state of a component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Added, never started.
    Created,
    /// Running.
    Running,
    /// Stopped on request; waits for a start.
    Stopped,
    /// Crashed; a restart may follow.
    Crashed,
    /// Waiting out the back-off before a restart.
    Restarting,
    /// Exited normally and will not be restarted.
    Exited,
    /// Gave up after too many consecutive crashes.
    Failed,
}

impl State {
    /// The state as the trace and the API name it (`running`, `stopped`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Stopped => "stopped",
            State::Crashed => "crashed",
            State::Restarting => "restarting",
            State::Exited => "exited",
            State::Failed => "failed",
        }
    }
}

/// A component's health as the supervisor and the component itself report it.
#[derive(Clone, Debug, Serialize)]
pub struct Health {
    /// Lifecycle state.
    pub state: State,
    /// Set by the component: true when it does its job (e.g. connected to its broker).
    pub ready: bool,
    /// Last reason or note (crash cause, "connected", …).
    pub detail: String,
    /// Restarts so far.
    pub restarts: u64,
    /// Milliseconds since run start when the state last changed.
    pub since_ms: u64,
    /// Frozen by a pause fault.
    pub paused: bool,
}

impl Health {
    /// A component added and never started.
    pub fn created() -> Health {
        Health {
            state: State::Created,
            ready: false,
            detail: String::new(),
            restarts: 0,
            since_ms: 0,
            paused: false,
        }
    }
}

/// Lets a running component report readiness.
#[derive(Clone)]
pub struct HealthHandle {
    tx: Arc<watch::Sender<Health>>,
}

impl HealthHandle {
    /// Reports whether the component can do its job, with a short reason.
    pub fn set_ready(&self, ready: bool, detail: &str) {
        self.tx.send_if_modified(|h| {
            if h.ready == ready && h.detail == detail {
                return false;
            }
            h.ready = ready;
            h.detail = detail.to_string();
            true
        });
    }
}

/// A command for a component's keeper.
#[derive(Debug)]
enum Command {
    Start,
    Stop,
    /// Stop gracefully (within this grace; the supervisor's own when none), then start again.
    Restart(Option<Duration>),
    Crash(String),
}

/// No component of that name.
#[derive(Debug, thiserror::Error)]
#[error("no component named {0:?} (known: {1})")]
pub struct UnknownComponent(pub String, pub String);

struct Slot {
    spec: ComponentSpec,
    control: mpsc::UnboundedSender<Command>,
    control_rx: Option<mpsc::UnboundedReceiver<Command>>,
    health: Arc<watch::Sender<Health>>,
    up: Arc<AtomicBool>,
    keeper: Option<JoinHandle<()>>,
}

struct Shared {
    clock: Clock,
    trace: Trace,
    metrics: Metrics,
    seed: Seed,
    grace: Duration,
    logs: std::sync::OnceLock<super::logsink::LogSink>,
}

/// Owns every component of a pipeline.
#[derive(Clone)]
pub struct Supervisor {
    shared: Arc<Shared>,
    slots: Arc<Mutex<BTreeMap<String, Slot>>>,
    order: Arc<Mutex<Vec<String>>>,
    flags: Arc<Mutex<BTreeMap<String, Arc<AtomicBool>>>>,
    hooks: Arc<Mutex<BTreeMap<String, Arc<ComponentHooks>>>>,
}

impl Supervisor {
    /// A supervisor with no components.
    pub fn new(clock: Clock, trace: Trace, metrics: Metrics, seed: Seed) -> Supervisor {
        let shared = Shared {
            clock,
            trace,
            metrics,
            seed,
            grace: Duration::from_secs(5),
            logs: std::sync::OnceLock::new(),
        };
        Supervisor {
            shared: Arc::new(shared),
            slots: Default::default(),
            order: Default::default(),
            flags: Default::default(),
            hooks: Default::default(),
        }
    }

    fn slots(&self) -> MutexGuard<'_, BTreeMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the start order (stop order is its reverse): the names given first, in that order, then any
    /// others in the order they were added.
    pub fn set_start_order(&self, first: &[String]) {
        let mut order = self.order.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rest: Vec<String> = order.iter().filter(|n| !first.contains(n)).cloned().collect();
        let mut new: Vec<String> = first.iter().filter(|n| order.contains(n)).cloned().collect();
        new.append(&mut rest);
        *order = new;
    }

    /// Names in start order.
    pub fn names(&self) -> Vec<String> {
        self.order.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Registers a component (not started yet). Adding a name twice replaces nothing and is an error.
    pub fn add(&self, spec: ComponentSpec) -> anyhow::Result<()> {
        let mut slots = self.slots();
        if slots.contains_key(&spec.name) {
            anyhow::bail!("component {:?} is defined twice", spec.name);
        }
        let (control, control_rx) = mpsc::unbounded_channel();
        let health = Health::created();
        let name = spec.name.clone();
        slots.insert(
            name.clone(),
            Slot {
                spec,
                control,
                control_rx: Some(control_rx),
                health: Arc::new(watch::channel(health).0),
                up: self.up_flag(&name),
                keeper: None,
            },
        );
        self.order.lock().unwrap_or_else(PoisonError::into_inner).push(name);
        Ok(())
    }

    /// The flag that is true while `name` runs (links use it to drop traffic to a component that is down).
    /// It may be asked for before the component is added.
    pub fn up_flag(&self, name: &str) -> Arc<AtomicBool> {
        let mut flags = self.flags.lock().unwrap_or_else(PoisonError::into_inner);
        flags.entry(name.to_string()).or_default().clone()
    }

    /// The fault hooks of `name` (clock offset, pause, I/O faults). It may be asked for before the component
    /// is added, and stays the same object across restarts.
    pub fn hooks(&self, name: &str) -> Arc<ComponentHooks> {
        let mut hooks = self.hooks.lock().unwrap_or_else(PoisonError::into_inner);
        hooks
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(ComponentHooks::new(name, self.shared.seed)))
            .clone()
    }

    /// Freezes a running component: its timers stop firing (see `Ctx::sleep_or_stop`) and it reports not
    /// ready. It keeps its state; [`Supervisor::resume`] lets it go on where it was.
    pub fn pause(&self, name: &str) -> Result<(), UnknownComponent> {
        self.set_paused(name, true)
    }

    /// Ends a [`Supervisor::pause`].
    pub fn resume(&self, name: &str) -> Result<(), UnknownComponent> {
        self.set_paused(name, false)
    }

    fn set_paused(&self, name: &str, paused: bool) -> Result<(), UnknownComponent> {
        let health = {
            let slots = self.slots();
            match slots.get(name) {
                Some(slot) => slot.health.clone(),
                None => {
                    let known = slots.keys().cloned().collect::<Vec<_>>().join(", ");
                    return Err(UnknownComponent(name.to_string(), known));
                }
            }
        };
        self.hooks(name).set_paused(paused);
        health.send_modify(|h| {
            h.paused = paused;
            if paused {
                h.ready = false;
            }
        });
        let kind = if paused { "component.paused" } else { "component.resumed" };
        self.shared.trace.emit(name, kind, &json!({}));
        tracing::info!(component = %name, "{}", if paused { "paused" } else { "resumed" });
        Ok(())
    }

    /// Routes every component's log records to `sink` (set once, before start).
    pub fn set_log_sink(&self, sink: super::logsink::LogSink) {
        // Set at build time, once; a second sink is ignored.
        let _ = self.shared.logs.set(sink);
    }

    /// Starts every component not yet started, in the order added.
    pub fn start_all(&self) {
        for name in self.names() {
            let mut slots = self.slots();
            let Some(slot) = slots.get_mut(&name) else { continue };
            let Some(rx) = slot.control_rx.take() else { continue };
            let keeper = Keeper {
                spec: slot.spec.clone(),
                shared: self.shared.clone(),
                health: slot.health.clone(),
                up: slot.up.clone(),
                rng: self.shared.seed.shared_stream(&format!("component:{name}")),
                metrics: self.shared.metrics.component(&name),
                hooks: self.hooks(&name),
            };
            slot.keeper = Some(tokio::spawn(keeper.run(rx)));
        }
    }

    fn command(&self, name: &str, cmd: Command) -> Result<(), UnknownComponent> {
        let slots = self.slots();
        match slots.get(name) {
            Some(slot) => {
                // The keeper only goes away at shutdown; a command sent then has nothing left to act on.
                let _ = slot.control.send(cmd);
                Ok(())
            }
            None => {
                Err(UnknownComponent(name.to_string(), slots.keys().cloned().collect::<Vec<_>>().join(", ")))
            }
        }
    }

    /// Asks a component to stop gracefully; it stays down until [`Supervisor::start`].
    pub fn stop(&self, name: &str) -> Result<(), UnknownComponent> {
        self.command(name, Command::Stop)
    }

    /// Starts a stopped (or failed) component.
    pub fn start(&self, name: &str) -> Result<(), UnknownComponent> {
        self.command(name, Command::Start)
    }

    /// Stops and starts a component at once.
    pub fn restart(&self, name: &str) -> Result<(), UnknownComponent> {
        self.command(name, Command::Restart(None))
    }

    /// Like [`Supervisor::restart`], killing it if it has not stopped within `grace` (a Kubernetes pod
    /// deleted with a grace period, then recreated).
    pub fn restart_within(&self, name: &str, grace: Duration) -> Result<(), UnknownComponent> {
        self.command(name, Command::Restart(Some(grace)))
    }

    /// Kills a component without letting it clean up; its restart policy decides what follows.
    pub fn crash(&self, name: &str, reason: &str) -> Result<(), UnknownComponent> {
        self.command(name, Command::Crash(reason.to_string()))
    }

    /// The `kind` a component was registered with.
    pub fn kind_of(&self, name: &str) -> Option<String> {
        self.slots().get(name).map(|s| s.spec.kind.clone())
    }

    /// Current health of one component.
    pub fn health(&self, name: &str) -> Option<Health> {
        self.slots().get(name).map(|s| s.health.borrow().clone())
    }

    /// Health of all components in start order.
    pub fn health_all(&self) -> Vec<(String, Health)> {
        let slots = self.slots();
        self.names()
            .into_iter()
            .filter_map(|n| slots.get(&n).map(|s| (n.clone(), s.health.borrow().clone())))
            .collect()
    }

    /// Waits until `name` reaches a state for which `pred` holds.
    pub async fn wait_for(
        &self,
        name: &str,
        pred: impl Fn(&Health) -> bool,
    ) -> Result<Health, UnknownComponent> {
        let mut rx = {
            let slots = self.slots();
            match slots.get(name) {
                Some(s) => s.health.subscribe(),
                None => {
                    let known = slots.keys().cloned().collect::<Vec<_>>().join(", ");
                    return Err(UnknownComponent(name.to_string(), known));
                }
            }
        };
        loop {
            let current = rx.borrow_and_update().clone();
            if pred(&current) {
                return Ok(current);
            }
            if rx.changed().await.is_err() {
                return Ok(current);
            }
        }
    }

    /// Stops every component in reverse start order and waits for the keepers to end.
    pub async fn shutdown(&self) {
        for name in self.names().into_iter().rev() {
            self.shutdown_one(&name).await;
        }
    }

    /// Stops one component for good (no restart) and waits for its keeper.
    pub async fn shutdown_one(&self, name: &str) {
        let keeper = {
            let mut slots = self.slots();
            let Some(slot) = slots.get_mut(name) else { return };
            // Replacing the sender closes the keeper's channel: it stops its component and ends.
            let (dead, _) = mpsc::unbounded_channel();
            slot.control = dead;
            slot.keeper.take()
        };
        if let Some(k) = keeper {
            let _ = k.await;
        }
    }
}

/// How one incarnation ended.
enum Ending {
    /// Stopped on request; wait for a start.
    Stopped,
    /// The supervisor is going away.
    Shutdown,
    /// Restart at once.
    Restart,
    /// Exited by itself.
    Exited,
    /// Crashed, with the reason.
    Crashed(String),
}

struct Keeper {
    spec: ComponentSpec,
    shared: Arc<Shared>,
    health: Arc<watch::Sender<Health>>,
    up: Arc<AtomicBool>,
    rng: super::seed::SharedRng,
    metrics: super::metrics::ComponentMetrics,
    hooks: Arc<ComponentHooks>,
}

impl Keeper {
    fn set_state(&self, state: State, detail: &str) {
        let since_ms = self.shared.clock.elapsed().as_millis() as u64;
        let mut from = State::Created;
        self.health.send_modify(|h| {
            from = h.state;
            h.state = state;
            h.since_ms = since_ms;
            h.detail = detail.to_string();
            if state != State::Running {
                h.ready = false;
            }
        });
        let running = state == State::Running;
        self.up.store(running, Ordering::SeqCst);
        self.metrics.up.set(i64::from(running));
        self.shared.trace.emit(
            &self.spec.name,
            "component.state",
            &json!({"from": from.as_str(), "to": state.as_str(), "detail": detail}),
        );
        match state {
            State::Crashed | State::Failed => {
                tracing::warn!(component = %self.spec.name, "{}: {detail}", state.as_str())
            }
            _ => {
                tracing::info!(component = %self.spec.name, "{}{}", state.as_str(), if detail.is_empty() { String::new() } else { format!(": {detail}") })
            }
        }
    }

    async fn run(self, mut control: mpsc::UnboundedReceiver<Command>) {
        let mut consecutive = 0u32;
        loop {
            let started = tokio::time::Instant::now();
            let ending = self.run_once(&mut control).await;
            let lived = started.elapsed();
            let crashed = match ending {
                Ending::Shutdown => {
                    self.set_state(State::Stopped, "shutdown");
                    return;
                }
                Ending::Restart => {
                    self.set_state(State::Restarting, "restart requested");
                    self.count_restart();
                    continue;
                }
                Ending::Stopped => {
                    self.set_state(State::Stopped, "stopped");
                    if self.wait_for_start(&mut control).await {
                        consecutive = 0;
                        continue;
                    }
                    return;
                }
                Ending::Exited => {
                    self.set_state(State::Exited, "exited");
                    false
                }
                Ending::Crashed(reason) => {
                    self.set_state(State::Crashed, &reason);
                    true
                }
            };
            let policy = &self.spec.restart;
            let restart = match policy.mode {
                RestartMode::Always => true,
                RestartMode::OnFailure => crashed,
                RestartMode::Never => false,
            };
            if !restart {
                if self.wait_for_start(&mut control).await {
                    consecutive = 0;
                    continue;
                }
                return;
            }
            if lived >= policy.reset_after {
                consecutive = 0;
            }
            consecutive += 1;
            if policy.max_restarts > 0 && consecutive > policy.max_restarts {
                self.set_state(
                    State::Failed,
                    &format!("gave up after {} restarts in a row", policy.max_restarts),
                );
                if self.wait_for_start(&mut control).await {
                    consecutive = 0;
                    continue;
                }
                return;
            }
            let backoff = policy.backoff_for(consecutive);
            self.set_state(State::Restarting, &format!("restart in {}", humantime::format_duration(backoff)));
            let wait = tokio::time::sleep(backoff);
            tokio::pin!(wait);
            // A stop during the back-off turns the pending restart into a plain start later.
            let mut restarted = true;
            loop {
                tokio::select! {
                    biased;
                    cmd = control.recv() => match cmd {
                        None => { self.set_state(State::Stopped, "shutdown"); return; }
                        Some(Command::Stop) => {
                            self.set_state(State::Stopped, "stopped");
                            if !self.wait_for_start(&mut control).await { return; }
                            consecutive = 0;
                            restarted = false;
                            break;
                        }
                        Some(Command::Start | Command::Restart(_)) => break,
                        Some(Command::Crash(_)) => {}
                    },
                    _ = &mut wait => break,
                }
            }
            if restarted {
                self.count_restart();
            }
        }
    }

    /// A new incarnation after a crash, an exit or a restart request (not a start after a stop).
    fn count_restart(&self) {
        self.metrics.restarts.inc();
        self.health.send_modify(|h| h.restarts += 1);
    }

    /// Waits for a start command; false when the supervisor is gone.
    async fn wait_for_start(&self, control: &mut mpsc::UnboundedReceiver<Command>) -> bool {
        loop {
            match control.recv().await {
                None => return false,
                Some(Command::Start | Command::Restart(_)) => return true,
                Some(Command::Stop | Command::Crash(_)) => {}
            }
        }
    }

    async fn run_once(&self, control: &mut mpsc::UnboundedReceiver<Command>) -> Ending {
        let shutdown = CancellationToken::new();
        let ctx = Ctx {
            name: self.spec.name.as_str().into(),
            clock: self.shared.clock.skewed(self.hooks.skew()),
            trace: self.shared.trace.clone(),
            metrics: self.metrics.clone(),
            rng: self.rng.clone(),
            health: HealthHandle { tx: self.health.clone() },
            shutdown: shutdown.clone(),
            hooks: self.hooks.clone(),
            logs: self.shared.logs.get().cloned(),
        };
        let mut task = tokio::spawn((self.spec.run)(ctx));
        self.set_state(State::Running, "");
        loop {
            tokio::select! {
                biased;
                cmd = control.recv() => match cmd {
                    Some(Command::Start) => {}
                    Some(Command::Crash(reason)) => {
                        task.abort();
                        let _ = (&mut task).await;
                        return Ending::Crashed(reason);
                    }
                    Some(Command::Stop) => { self.stop_gracefully(task, &shutdown, None).await; return Ending::Stopped; }
                    Some(Command::Restart(grace)) => { self.stop_gracefully(task, &shutdown, grace).await; return Ending::Restart; }
                    None => { self.stop_gracefully(task, &shutdown, None).await; return Ending::Shutdown; }
                },
                res = &mut task => return match res {
                    Ok(Ok(())) => Ending::Exited,
                    Ok(Err(e)) => Ending::Crashed(format!("{e:#}")),
                    Err(e) if e.is_panic() => Ending::Crashed(format!("panicked: {}", panic_message(e.into_panic()))),
                    Err(_) => Ending::Crashed("aborted".into()),
                },
            }
        }
    }

    async fn stop_gracefully(
        &self,
        mut task: JoinHandle<anyhow::Result<()>>,
        shutdown: &CancellationToken,
        grace: Option<Duration>,
    ) {
        shutdown.cancel();
        let grace = grace.unwrap_or(self.shared.grace);
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            tracing::warn!(component = %self.spec.name, "did not stop within {grace:?}; killed");
            task.abort();
            let _ = task.await;
        }
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    use super::*;
    use crate::kernel::component::RestartPolicy;

    fn supervisor() -> (Supervisor, Trace) {
        let clock = Clock::sim(chrono::DateTime::UNIX_EPOCH);
        let trace = Trace::recording(clock.clone());
        (Supervisor::new(clock, trace.clone(), Metrics::new().unwrap(), Seed(1)), trace)
    }

    /// A component that fails `fail` times (returning an error after 1 s), then runs until stopped.
    fn flaky(name: &str, mode: RestartMode, fail: u32, max_restarts: u32) -> (ComponentSpec, Arc<AtomicU32>) {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let policy = RestartPolicy { mode, max_restarts, ..RestartPolicy::default() };
        let spec = ComponentSpec::new(name, "test", policy, move |ctx| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if n < fail {
                    anyhow::bail!("failure {n}");
                }
                ctx.shutdown.cancelled().await;
                Ok(())
            }
        });
        (spec, runs)
    }

    fn states(trace: &Trace, name: &str) -> Vec<String> {
        trace
            .lines()
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["component"] == name && e["kind"] == "component.state")
            .map(|e| e["data"]["to"].as_str().unwrap().to_string())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_longer_than_reset_after_starts_the_crash_count_over() {
        // Crashes after 1 s twice, then after 90 s (past reset_after = 60 s) forever: with max_restarts = 2
        // the third quick crash would give up, but each long run resets the count, so it never does.
        let (sup, _trace) = supervisor();
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let policy = RestartPolicy { mode: RestartMode::Always, max_restarts: 2, ..RestartPolicy::default() };
        assert_eq!(policy.reset_after, Duration::from_secs(60));
        let spec = ComponentSpec::new("Y", "test", policy, move |_ctx| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                let lived = if n < 2 { 1 } else { 90 };
                tokio::time::sleep(Duration::from_secs(lived)).await;
                anyhow::bail!("crash {n}")
            }
        });
        sup.add(spec).unwrap();
        sup.start_all();
        // Quick crashes 1 and 2 (back-offs 1 s, 2 s), then four long ones: 1+1+1+2+4*(90+back-off).
        tokio::time::sleep(Duration::from_secs(500)).await;
        let h = sup.health_all().into_iter().find(|(n, _)| n == "Y").unwrap().1;
        assert_ne!(h.state, State::Failed, "{h:?}");
        assert!(runs.load(Ordering::SeqCst) >= 6, "it kept restarting: {}", runs.load(Ordering::SeqCst));

        // Without the long runs the same policy gives up at the third crash in a row.
        let (sup, _trace) = supervisor();
        let (spec, _) = flaky("Z", RestartMode::Always, 10, 2);
        sup.add(spec).unwrap();
        sup.start_all();
        sup.wait_for("Z", |h| h.state == State::Failed).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_components_in_reverse_start_order() {
        let (sup, trace) = supervisor();
        for name in ["SOURCE", "BROKER", "SINK"] {
            let spec = ComponentSpec::new(name, "test", RestartPolicy::default(), |ctx| async move {
                ctx.shutdown.cancelled().await;
                // Take a moment to stop, so an order that overlapped would show.
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(())
            });
            sup.add(spec).unwrap();
        }
        sup.start_all();
        for name in ["SOURCE", "BROKER", "SINK"] {
            sup.wait_for(name, |h| h.state == State::Running).await.unwrap();
        }
        sup.shutdown().await;
        let stopped: Vec<String> = trace
            .lines()
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["kind"] == "component.state" && e["data"]["to"] == "stopped")
            .map(|e| e["component"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(stopped, ["SINK", "BROKER", "SOURCE"]);
    }

    #[tokio::test(start_paused = true)]
    async fn crashes_restart_with_growing_back_off_then_give_up() {
        let (sup, trace) = supervisor();
        let (spec, runs) = flaky("X", RestartMode::Always, 10, 2);
        sup.add(spec).unwrap();
        sup.start_all();
        let t0 = tokio::time::Instant::now();
        let h = sup.wait_for("X", |h| h.state == State::Failed).await.unwrap();
        // run 1 s, back-off 1 s, run 1 s, back-off 2 s, run 1 s → third crash exceeds max_restarts = 2.
        assert_eq!(t0.elapsed(), Duration::from_secs(6));
        assert_eq!((runs.load(Ordering::SeqCst), h.restarts), (3, 2));
        assert_eq!(h.detail, "gave up after 2 restarts in a row");
        // A start after giving up brings it back.
        sup.start("X").unwrap();
        sup.wait_for("X", |h| h.state == State::Running).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        assert!(sup.start("nope").unwrap_err().to_string().contains("known: X"));
        let err = sup.wait_for("nope", |_| true).await.unwrap_err().to_string();
        assert!(err.contains("known: X"), "{err}");
        assert_eq!(
            states(&trace, "X")[..6],
            ["running", "crashed", "restarting", "running", "crashed", "restarting"].map(String::from)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_within_a_grace_kills_what_does_not_stop_in_time() {
        let (sup, _) = supervisor();
        let (spec, runs) = flaky("X", RestartMode::Always, 0, 0);
        sup.add(spec).unwrap();
        sup.start_all();
        // Each incarnation sleeps 1 s before it listens for a stop: a 200 ms grace is too short.
        let t = tokio::time::Instant::now();
        sup.restart_within("X", Duration::from_millis(200)).unwrap();
        sup.wait_for("X", |h| h.restarts == 1 && h.state == State::Running).await.unwrap();
        assert_eq!(t.elapsed(), Duration::from_millis(200), "killed at the end of the grace, started again");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // Given the time it needs, it stops by itself.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t = tokio::time::Instant::now();
        sup.restart_within("X", Duration::from_secs(30)).unwrap();
        sup.wait_for("X", |h| h.restarts == 2 && h.state == State::Running).await.unwrap();
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        sup.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn policies_never_and_on_failure() {
        let (sup, _) = supervisor();
        let (never, never_runs) = flaky("N", RestartMode::Never, 1, 0);
        let (on_failure, of_runs) = flaky("F", RestartMode::OnFailure, 1, 0);
        sup.add(never).unwrap();
        sup.add(on_failure).unwrap();
        sup.start_all();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(sup.health("N").unwrap().state, State::Crashed, "never: stays down");
        assert_eq!(never_runs.load(Ordering::SeqCst), 1);
        assert_eq!(sup.health("F").unwrap().state, State::Running, "on-failure: restarted after the crash");
        assert_eq!(of_runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_start_restart_and_crash_commands() {
        let (sup, _) = supervisor();
        let (spec, runs) = flaky("X", RestartMode::Always, 0, 0);
        sup.add(spec).unwrap();
        let up = sup.up_flag("X");
        sup.start_all();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(up.load(Ordering::SeqCst));
        sup.stop("X").unwrap();
        sup.wait_for("X", |h| h.state == State::Stopped).await.unwrap();
        assert!(!up.load(Ordering::SeqCst));
        sup.start("X").unwrap();
        sup.wait_for("X", |h| h.state == State::Running).await.unwrap();
        assert_eq!(sup.health("X").unwrap().restarts, 0, "a start after a stop is not a restart");
        sup.restart("X").unwrap();
        // The incarnation ends gracefully after its 1 s start-up sleep, then the new one starts.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(sup.health("X").unwrap().restarts, 1, "a requested restart counts");
        sup.crash("X", "boom").unwrap();
        let h = sup.wait_for("X", |h| h.state == State::Restarting).await.unwrap();
        assert_eq!(h.detail, "restart in 1s");
        // Stopped during the back-off: no restart happens, and starting later is a plain start.
        sup.stop("X").unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(sup.health("X").unwrap().state, State::Stopped);
        sup.start("X").unwrap();
        sup.wait_for("X", |h| h.state == State::Running).await.unwrap();
        assert_eq!(sup.health("X").unwrap().restarts, 1);
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        sup.shutdown().await;
        assert_eq!(sup.health("X").unwrap().state, State::Stopped);
    }

    #[tokio::test(start_paused = true)]
    async fn a_panic_is_a_crash() {
        let (sup, _) = supervisor();
        let policy = RestartPolicy { mode: RestartMode::Never, ..RestartPolicy::default() };
        sup.add(ComponentSpec::new("P", "test", policy, |_ctx| async { panic!("kaput") })).unwrap();
        sup.start_all();
        let h = sup.wait_for("P", |h| h.state == State::Crashed).await.unwrap();
        assert_eq!(h.detail, "panicked: kaput");
    }
}
