//! Watches: work a control keeps doing alongside the whole run, such as chaosaddons' safeguards
//! guardian, which runs probes of its own from `before_experiment_control` to
//! `after_experiment_control` and interrupts the run when one misses its tolerance.
//!
//! In the lib such a control starts threads and interrupts the main one with `exit_gracefully()`
//! (SIGUSR1, caught by the run as `SystemExit(20)`: status `interrupted`, rollbacks per strategy).
//! Here a control's [`Controls::watch`] returns a future that the engine polls in the run's own task,
//! beside everything else (no `spawn`, so a sim run stays virtual-time and deterministic), with:
//! - [`Probing`]: the run's own activity machinery (providers, activity-level controls, pauses,
//!   substitution with the live configuration and secrets, tolerances);
//! - a [`Watch`]: [`Watch::ready`] lets the control's before-experiment hook return (the lib's hook
//!   blocks on the pre-check probes), [`Watch::interrupt`] interrupts the run, [`Watch::stopped`]
//!   says the control's after-experiment hook ran (or the run ended).
//!
//! An interruption is taken at once wherever the run is — the before-experiment hooks, the
//! hypothesis, between or in the middle of activities (the activity in progress is dropped, as the
//! lib's signal does), the continuous hypothesis — until the rollbacks end. The first one wins.
//! Unlike the lib's signal, one first taken while rollbacks play lets them finish (as chaoslab's
//! Ctrl-C does); the run is still `interrupted`.

use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::control::{Controls, Interrupt};
use super::journal::ActivityRun;
use super::model::{Activity, ControlDecl, Tolerance};
use super::provider::BoxFuture;
use super::validate::ValidationError;

/// The run's activity machinery, lent to a control that runs probes of its own.
pub trait Probing: Send + Sync {
    /// Reads an activity a control declares (in its `arguments`) with the run's providers, reporting
    /// problems under `path`.
    fn read_activity(&self, raw: &Value, path: &str) -> Result<Activity, Vec<ValidationError>>;

    /// Runs `probe` as chaosaddons' `execute_activity` does: inside the activity-level controls that
    /// apply to it, with its pauses, through the run's providers and the live configuration and
    /// secrets. It is not recorded in the journal nor in `${output:…}`, and a dry run does not skip it
    /// (the lib's safeguards call `run_activity` directly). `Err`: an activity-level control
    /// interrupted it, or a pause could not be read.
    fn run_probe<'a>(&'a self, probe: &'a Activity) -> BoxFuture<'a, Result<ActivityRun, String>>;

    /// Whether `output` is within `tolerance`, substituting the live configuration and secrets.
    fn within_tolerance<'a>(&'a self, tolerance: &'a Tolerance, output: &'a Value) -> BoxFuture<'a, bool>;
}

/// The run-wide interruption that watches pull.
#[derive(Default)]
struct Trip {
    pulled: CancellationToken,
    state: Mutex<TripState>,
}

#[derive(Default)]
struct TripState {
    reason: Option<String>,
    closed: bool,
}

impl Trip {
    fn lock(&self) -> std::sync::MutexGuard<'_, TripState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A control's end of its watch.
#[derive(Clone)]
pub struct Watch(Arc<WatchState>);

struct WatchState {
    ready: CancellationToken,
    stop: CancellationToken,
    ended: CancellationToken,
    trip: Arc<Trip>,
}

impl Watch {
    fn new(trip: Arc<Trip>) -> Self {
        Watch(Arc::new(WatchState {
            ready: CancellationToken::new(),
            stop: CancellationToken::new(),
            ended: CancellationToken::new(),
            trip,
        }))
    }

    /// The control's before-experiment hook may return now (also when the watch's future ends).
    pub fn ready(&self) {
        self.0.ready.cancel();
    }

    /// Interrupts the run as soon as possible. True when this is the interruption the run takes:
    /// false once another was taken or the rollbacks have ended.
    pub fn interrupt(&self, interrupt: Interrupt) -> bool {
        let mut state = self.0.trip.lock();
        if state.closed || state.reason.is_some() {
            return false;
        }
        state.reason = Some(interrupt.reason);
        self.0.trip.pulled.cancel();
        true
    }

    /// Resolves once the control's after-experiment hook has run, or the run has ended.
    pub async fn stopped(&self) {
        self.0.stop.cancelled().await;
    }

    /// True once [`stopped`](Self::stopped) has resolved.
    pub fn is_stopped(&self) -> bool {
        self.0.stop.is_cancelled()
    }
}

/// The watches of one run and its interruption.
pub(crate) struct Watches<'a> {
    trip: Arc<Trip>,
    /// Started, not yet taken by [`keep`](Self::keep).
    pending: Mutex<Vec<(Watch, BoxFuture<'a, ()>)>>,
    added: Notify,
    /// Every watch started, with its control's name.
    started: Mutex<Vec<(String, Watch)>>,
}

impl<'a> Watches<'a> {
    pub(crate) fn new() -> Self {
        Watches {
            trip: Arc::default(),
            pending: Mutex::new(Vec::new()),
            added: Notify::new(),
            started: Mutex::new(Vec::new()),
        }
    }

    /// Starts `control`'s watch, if it has one; [`keep`](Self::keep) polls it from now on.
    pub(crate) fn start(
        &self,
        controls: &'a dyn Controls,
        control: &ControlDecl,
        probing: Arc<dyn Probing + 'a>,
    ) -> Option<Watch> {
        let watch = Watch::new(self.trip.clone());
        let work = controls.watch(control, probing, watch.clone())?;
        tracing::debug!(control = %control.name, "control watch started");
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((control.name.clone(), watch.clone()));
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).push((watch.clone(), work));
        self.added.notify_one();
        Some(watch)
    }

    /// Resolves when `watch` is ready or its future has ended.
    pub(crate) async fn until_ready(watch: &Watch) {
        tokio::select! {
            biased;
            _ = watch.0.ready.cancelled() => {}
            _ = watch.0.ended.cancelled() => {}
        }
    }

    /// Stops the watches of the control named `name` (`None`: all of them) and waits until their
    /// futures end: in-flight probes finish, as the lib's `shutdown(wait=True)`.
    pub(crate) async fn stop(&self, name: Option<&str>) {
        let watches: Vec<Watch> = self
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(n, _)| name.is_none_or(|name| name == n))
            .map(|(_, w)| w.clone())
            .collect();
        for watch in &watches {
            watch.0.stop.cancel();
        }
        for watch in &watches {
            watch.0.ended.cancelled().await;
        }
    }

    /// Polls every started watch until `done`. Run it beside the run's work (`join`, same task).
    pub(crate) async fn keep(&self, done: &CancellationToken) {
        let mut running = FuturesUnordered::new();
        loop {
            let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
            for (watch, work) in taken {
                running.push(async move {
                    work.await;
                    watch.0.ended.cancel();
                });
            }
            tokio::select! {
                biased;
                Some(()) = running.next() => {}
                _ = self.added.notified() => {}
                _ = done.cancelled() => break,
            }
        }
    }

    /// The interruption taken, if any.
    pub(crate) fn tripped(&self) -> Option<String> {
        self.trip.lock().reason.clone()
    }

    /// Resolves with the reason once a watch interrupts the run.
    pub(crate) async fn interrupted(&self) -> String {
        self.trip.pulled.cancelled().await;
        self.tripped().unwrap_or_default()
    }

    /// No interruption is taken from now on; returns the one taken, if any.
    pub(crate) fn close(&self) -> Option<String> {
        let mut state = self.trip.lock();
        state.closed = true;
        state.reason.clone()
    }
}
