//! What a component is to the supervisor: a name, a restart policy and a function that runs it.
//!
//! A component's `run` is called afresh for every (re)start with a [`Ctx`]; whatever it keeps in local
//! variables is lost when it crashes, exactly like a process. What must survive restarts (its random
//! stream, its metrics, its inbound links) lives outside, in the context and the topology.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::hooks::ComponentHooks;
use super::logsink::{LogRecord, LogSink, LogStyle, platform_record, tag_segment};
use super::metrics::ComponentMetrics;
use super::seed::SharedRng;
use super::supervisor::HealthHandle;
use super::trace::Trace;

/// The body of a component: one incarnation, from start to exit.
pub type RunFn = Arc<dyn Fn(Ctx) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// How the supervisor reacts when a component exits or crashes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartPolicy {
    /// When to restart.
    pub mode: RestartMode,
    /// First back-off.
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
    /// Longest back-off.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Back-off growth per consecutive crash.
    pub multiplier: f64,
    /// A component that ran this long before crashing starts again from the first back-off.
    #[serde(with = "humantime_serde")]
    pub reset_after: Duration,
    /// Give up (state `failed`) after this many consecutive crashes; 0 = never give up.
    pub max_restarts: u32,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            mode: RestartMode::Always,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            multiplier: 2.0,
            reset_after: Duration::from_secs(60),
            max_restarts: 0,
        }
    }
}

impl RestartPolicy {
    /// The back-off before restart number `consecutive` (1-based).
    pub fn backoff_for(&self, consecutive: u32) -> Duration {
        let factor = self.multiplier.max(1.0).powi(consecutive.saturating_sub(1).min(64) as i32);
        let secs = (self.backoff.as_secs_f64() * factor).min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }
}

/// When a component is restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartMode {
    /// After a crash and after a normal exit.
    Always,
    /// Only after a crash.
    OnFailure,
    /// Never; a crashed component stays down until started by hand.
    Never,
}

/// A component as registered with the supervisor.
#[derive(Clone)]
pub struct ComponentSpec {
    /// Reference name, e.g. `FLINK`.
    pub name: String,
    /// What it is, e.g. `window-average`.
    pub kind: String,
    /// Restart behaviour.
    pub restart: RestartPolicy,
    /// The body.
    pub run: RunFn,
}

impl fmt::Debug for ComponentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentSpec").field("name", &self.name).field("kind", &self.kind).finish()
    }
}

impl ComponentSpec {
    /// A spec from a closure returning a future.
    pub fn new<F, Fut>(name: &str, kind: &str, restart: RestartPolicy, run: F) -> Self
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        ComponentSpec {
            name: name.to_string(),
            kind: kind.to_string(),
            restart,
            run: Arc::new(move |ctx| Box::pin(run(ctx))),
        }
    }
}

/// Everything one incarnation of a component gets.
#[derive(Clone)]
pub struct Ctx {
    /// The component's name.
    pub name: Arc<str>,
    /// Its clock.
    pub clock: Clock,
    /// The run's trace.
    pub trace: Trace,
    /// Its standard counters.
    pub metrics: ComponentMetrics,
    /// Its random stream (survives restarts).
    pub rng: SharedRng,
    /// Its health report.
    pub health: HealthHandle,
    /// Cancelled when the supervisor asks the component to stop gracefully.
    pub shutdown: CancellationToken,
    /// Fault hooks (clock offset, pause, I/O faults); `clock` already follows the offset.
    pub hooks: Arc<ComponentHooks>,
    /// Where log records go when the pipeline routes logs.
    pub logs: Option<LogSink>,
}

impl Ctx {
    /// Spends `d` of modelled work (a service rate's share of a second), stretched by CPU stress (the
    /// component gets only its share of a core); true when stopping.
    pub async fn work(&self, d: Duration) -> bool {
        self.sleep_or_stop(d.div_f64(self.hooks.cpu_share())).await
    }

    /// Sleeps `d` unless asked to stop first; true when stopping. While the component is paused the
    /// sleep does not end (a frozen process's timers do not fire), so a timer-driven loop freezes too.
    pub async fn sleep_or_stop(&self, d: Duration) -> bool {
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => return true,
            _ = tokio::time::sleep(d) => {}
        }
        if self.hooks.is_paused() {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return true,
                _ = self.hooks.wait_unpaused() => {}
            }
        }
        false
    }

    /// A platform log line: to `tracing`, and as a record tagged `com.chaoslab.<component>.platform`.
    pub fn platform_log(&self, style: &LogStyle, level: &str, message: &str) {
        match level {
            "ERROR" => tracing::error!(component = %self.name, "{message}"),
            "WARN" => tracing::warn!(component = %self.name, "{message}"),
            _ => tracing::info!(component = %self.name, "{message}"),
        }
        if let Some(logs) = &self.logs {
            let time = self.clock.now();
            let id = self.rng.uuid().to_string();
            let record = platform_record(style, &self.name, level, message, time, &id);
            logs.send(LogRecord {
                tag: format!("com.chaoslab.{}.platform", tag_segment(&self.name)),
                time,
                record,
            });
        }
    }

    /// An application event tagged `com.chaoslab.<component>.<suffix>` (e.g. `mqtt.app.dataAsset`); only
    /// routed, not written to `tracing` (they are per-record).
    pub fn app_log(&self, suffix: &str, record: serde_json::Map<String, Value>) {
        if let Some(logs) = &self.logs {
            let tag = format!("com.chaoslab.{}.{suffix}", tag_segment(&self.name));
            logs.send(LogRecord { tag, time: self.clock.now(), record });
        }
    }

    /// Call before each write to a store or file, with its path relative to the store's root (a file, an
    /// index, a table): applies injected I/O faults.
    pub async fn io_write(&self, path: &str) -> std::io::Result<()> {
        self.hooks.io_write(path).await
    }

    /// Writes an event to the trace under this component's name.
    pub fn trace<D: serde::Serialize + ?Sized>(&self, kind: &str, data: &D) {
        self.trace.emit(&self.name, kind, data);
    }

    /// Writes a per-record event (omitted at trace level `lifecycle`).
    pub fn trace_record<D: serde::Serialize + ?Sized>(&self, kind: &str, data: &D) {
        self.trace.emit_record(&self.name, kind, data);
    }

    /// Counts a dropped record and traces it (`data` gets a `reason` field).
    pub fn drop_record(&self, reason: &str, data: Value) {
        self.metrics.dropped(reason);
        let mut data = data;
        if let Value::Object(map) = &mut data {
            map.insert("reason".into(), Value::from(reason));
        }
        self.trace("record.dropped", &data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let p = RestartPolicy::default();
        assert_eq!(p.backoff_for(1), Duration::from_secs(1));
        assert_eq!(p.backoff_for(2), Duration::from_secs(2));
        assert_eq!(p.backoff_for(3), Duration::from_secs(4));
        assert_eq!(p.backoff_for(10), Duration::from_secs(30));
    }

    #[test]
    fn policy_reads_from_toml() {
        let p: RestartPolicy = toml::from_str("mode = \"on-failure\"\nbackoff = \"500ms\"").unwrap();
        assert_eq!(p.mode, RestartMode::OnFailure);
        assert_eq!(p.backoff, Duration::from_millis(500));
        assert!(toml::from_str::<RestartPolicy>("backoff = \"soon\"").is_err());
    }
}
