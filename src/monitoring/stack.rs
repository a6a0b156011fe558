//! The monitoring components of a pipeline: `FLUENTD`, `PROMETHEUS` (with the Alertmanager inside) and
//! the ingestion service, and what they share.
//!
//! - `FLUENTD` takes every component's log records (and, in live mode, events from Forward and HTTP
//!   clients), routes them with the Fluentd configuration, and writes the outputs: `signals` records to
//!   the bus through its `FLUENTD->KAFKA` link, log documents to the index through `FLUENTD->ELASTICSEARCH`.
//! - `PROMETHEUS` scrapes the pipeline's registry into the embedded TSDB every `scrape_interval`,
//!   evaluates the rule files every `evaluation_interval`, groups firing alerts as Alertmanager does and
//!   hands each webhook payload to the ingestion service.
//! - The ingestion service (`POST /alerts`, also fed in-process) turns each alert into a
//!   `PROMETHEUS_ALERT` signal with `startsAt` set to now, as the reference's Nest.js service does.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::alertmanager::{Alertmanager, AlertmanagerConfig};
use super::logs::event::{EventTime, LogEvent};
use super::logs::router::{OutputRef, Router};
use super::rules::RuleSet;
use super::tsdb::Tsdb;
use crate::bus::backend::AnyProducer;
use crate::kernel::clock::{Clock, iso_millis};
use crate::kernel::component::Ctx;
use crate::kernel::logsink::LogRecord;
use crate::kernel::metrics::Metrics;
use crate::transport::envelope::{Envelope, Qos};
use crate::transport::link::Link;

/// The topic signals go to.
pub const SIGNALS_TOPIC: &str = "signals";

/// Longest signal name or component accepted from outside.
pub const MAX_NAME: usize = 200;

/// Counters of the ingestion service.
#[derive(Debug, Default, Serialize)]
pub struct IngestStats {
    /// Webhook payloads accepted.
    pub payloads: AtomicU64,
    /// Signals published.
    pub signals: AtomicU64,
    /// Payloads refused (not JSON, no `alerts`, bad alert).
    pub refused: AtomicU64,
}

/// The ingestion service: Alertmanager webhooks in, `PROMETHEUS_ALERT` signals out.
pub struct Ingestion {
    producer: Arc<AnyProducer>,
    link: Arc<Link>,
    clock: Clock,
    /// Counters.
    pub stats: IngestStats,
}

/// Why a webhook was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Not an Alertmanager webhook.
    #[error("{0}")]
    Invalid(String),
    /// The bus did not take a signal.
    #[error("publishing to {SIGNALS_TOPIC}: {0}")]
    Publish(String),
}

impl Ingestion {
    /// An ingestion service publishing with `producer` over `link`.
    pub fn new(producer: Arc<AnyProducer>, link: Arc<Link>, clock: Clock) -> Self {
        Ingestion { producer, link, clock, stats: IngestStats::default() }
    }

    /// Handles one webhook payload; returns how many signals were published.
    pub async fn ingest(&self, payload: &Value) -> Result<usize, IngestError> {
        let refuse = |why: String| {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            IngestError::Invalid(why)
        };
        let alerts = payload
            .get("alerts")
            .and_then(Value::as_array)
            .ok_or_else(|| refuse("the webhook has no `alerts` array".into()))?;
        let mut signals = Vec::with_capacity(alerts.len());
        for (i, alert) in alerts.iter().enumerate() {
            let labels = alert.get("labels").and_then(Value::as_object);
            let name = labels.and_then(|l| l.get("alertname")).and_then(Value::as_str);
            let component =
                labels.and_then(|l| l.get("pipeline_component")).and_then(Value::as_str).unwrap_or("");
            match name {
                None => return Err(refuse(format!("alerts[{i}].labels.alertname: missing"))),
                Some(n) if n.chars().count() > MAX_NAME || component.chars().count() > MAX_NAME => {
                    return Err(refuse(format!(
                        "alerts[{i}].labels: alertname or pipeline_component over {MAX_NAME} characters"
                    )));
                }
                Some(_) => {}
            }
            // The reference overwrites startsAt with the service's own time (commit 5b3d087).
            signals.push(json!({
                "signal_type": "PROMETHEUS_ALERT",
                "status": alert.get("status").cloned().unwrap_or(Value::Null),
                "labels": alert.get("labels").cloned().unwrap_or(Value::Null),
                "annotations": alert.get("annotations").cloned().unwrap_or(Value::Null),
                "startsAt": iso_millis(self.clock.now()),
                "endsAt": alert.get("endsAt").cloned().unwrap_or(Value::Null),
                "generatorURL": alert.get("generatorURL").cloned().unwrap_or(Value::Null),
            }));
        }
        self.stats.payloads.fetch_add(1, Ordering::Relaxed);
        for s in &signals {
            self.link.gate().await.map_err(|e| IngestError::Publish(e.to_string()))?;
            let ts = self.clock.now().timestamp_millis();
            self.producer
                .send(SIGNALS_TOPIC, None, None, Bytes::from(s.to_string()), ts)
                .await
                .map_err(|e| IngestError::Publish(e.to_string()))?;
            self.stats.signals.fetch_add(1, Ordering::Relaxed);
        }
        Ok(signals.len())
    }
}

/// Metrics, rules and alerting state, shared by `PROMETHEUS` and the query API.
pub struct MetricsState {
    tsdb: Mutex<Tsdb>,
    rules: Mutex<RuleSet>,
    alertmanager: Mutex<Alertmanager>,
    registry: Metrics,
    instance: String,
    scrape: Duration,
    evaluation: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MetricsState {
    /// State over `registry`, with these rules and Alertmanager settings.
    pub fn new(
        registry: Metrics,
        rules: RuleSet,
        alertmanager: AlertmanagerConfig,
        instance: &str,
        scrape: Duration,
        evaluation: Duration,
    ) -> Self {
        MetricsState {
            tsdb: Mutex::new(Tsdb::new(Duration::from_secs(3600))),
            rules: Mutex::new(rules.with_default_interval(evaluation)),
            alertmanager: Mutex::new(Alertmanager::new(alertmanager)),
            registry,
            instance: instance.to_owned(),
            scrape,
            evaluation,
        }
    }

    /// Evaluates a PromQL expression against the scraped history at `t_ms`.
    pub fn query(&self, expr: &str, t_ms: i64) -> Result<super::promql::Value, super::promql::PromqlError> {
        super::promql::query(expr, &lock(&self.tsdb), t_ms)
    }

    fn scrape(&self, t_ms: i64) {
        let families = self.registry.registry().gather();
        lock(&self.tsdb).ingest_families(
            &families,
            &[("job", "chaoslab"), ("instance", &self.instance)],
            t_ms,
        );
    }
}

/// Runs `PROMETHEUS`: scrape, evaluate, group and deliver, each on its own schedule.
pub async fn run_prometheus(
    ctx: Ctx,
    state: Arc<MetricsState>,
    ingestion: Arc<Ingestion>,
) -> anyhow::Result<()> {
    ctx.health.set_ready(true, "scraping");
    let start = tokio::time::Instant::now();
    let (mut next_scrape, mut next_eval) = (start, start + state.scrape / 2);
    loop {
        let now_ms = ctx.clock.now().timestamp_millis();
        let now = tokio::time::Instant::now();
        if now >= next_scrape {
            state.scrape(now_ms);
            next_scrape += state.scrape;
        }
        if now >= next_eval {
            let alerts = {
                let mut tsdb = lock(&state.tsdb);
                lock(&state.rules).evaluate(&mut tsdb, now_ms)
            };
            for a in &alerts {
                ctx.trace(
                    "alert.evaluated",
                    &json!({"labels": a.labels, "state": format!("{:?}", a.state), "value": a.value}),
                );
            }
            lock(&state.alertmanager).push(&alerts, now_ms);
            next_eval += state.evaluation;
        }
        let payloads = lock(&state.alertmanager).due(now_ms);
        for p in payloads {
            let value = serde_json::to_value(&p)?;
            ctx.trace("alert.notified", &json!({"groupKey": value.get("groupKey"), "alerts": value["alerts"].as_array().map_or(0, Vec::len)}));
            match ingestion.ingest(&value).await {
                Ok(n) => ctx.metrics.records_out.inc_by(n as u64),
                Err(e) => ctx.drop_record("webhook_failed", json!({"error": e.to_string()})),
            }
        }
        let mut wake = next_scrape.min(next_eval);
        if let Some(due) = lock(&state.alertmanager).next_due() {
            let ahead = Duration::from_millis(u64::try_from(due - now_ms).unwrap_or(0));
            wake = wake.min(now + ahead);
        }
        if ctx.sleep_or_stop(wake.saturating_duration_since(tokio::time::Instant::now())).await {
            return Ok(());
        }
    }
}

/// Where `FLUENTD` reads from: its components' records and, live, outside clients' events.
pub struct LogInputs {
    /// Records from the pipeline's components.
    pub internal: tokio::sync::Mutex<mpsc::Receiver<LogRecord>>,
    /// Events from Forward and HTTP clients.
    pub external: tokio::sync::Mutex<mpsc::Receiver<LogEvent>>,
}

/// `FLUENTD`'s outputs.
pub struct LogOutputs {
    /// Produces to the bus.
    pub producer: Arc<AnyProducer>,
    /// `FLUENTD->KAFKA`.
    pub kafka: Arc<Link>,
    /// `FLUENTD->ELASTICSEARCH`, if the flow has the index.
    pub index: Option<Arc<Link>>,
    /// Where `file` outputs write (under the run's output directory).
    pub files: PathBuf,
}

fn event_of(r: LogRecord) -> LogEvent {
    LogEvent::new(r.tag, EventTime::from_millis(r.time.timestamp_millis()), r.record)
}

/// Runs `FLUENTD`.
pub async fn run_fluentd(
    ctx: Ctx,
    router: Arc<Router>,
    inputs: Arc<LogInputs>,
    out: Arc<LogOutputs>,
) -> anyhow::Result<()> {
    ctx.health.set_ready(true, "routing");
    let mut internal = inputs.internal.lock().await;
    let mut external = inputs.external.lock().await;
    let mut external_open = true;
    loop {
        let event = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return Ok(()),
            r = internal.recv() => match r { Some(r) => event_of(r), None => return Ok(()) },
            e = external.recv(), if external_open => match e {
                Some(e) => e,
                None => {
                    external_open = false;
                    continue;
                }
            },
        };
        ctx.metrics.records_in.inc();
        for routed in router.route(event) {
            let doc = Value::Object(routed.event.record);
            match routed.output {
                OutputRef::Topic(topic) => {
                    if let Err(e) = out.kafka.gate().await {
                        ctx.drop_record(
                            "kafka_unreachable",
                            json!({"tag": routed.event.tag, "error": e.to_string()}),
                        );
                        continue;
                    }
                    let ts = ctx.clock.now().timestamp_millis();
                    // The reference's kafka2 output uses `default_message_key 0`.
                    let sent = out
                        .producer
                        .send(&topic, None, Some(Bytes::from_static(b"0")), Bytes::from(doc.to_string()), ts)
                        .await;
                    match sent {
                        Ok(_) => ctx.metrics.records_out.inc(),
                        Err(e) => ctx.drop_record(
                            "kafka_error",
                            json!({"tag": routed.event.tag, "error": e.to_string()}),
                        ),
                    }
                }
                OutputRef::Index(index) => {
                    if let Some(link) = &out.index {
                        let env = Envelope {
                            topic: index,
                            payload: Bytes::from(doc.to_string()),
                            qos: Qos::AtMostOnce,
                            retain: false,
                        };
                        link.send(env).await;
                    }
                }
                OutputRef::Stdout => tracing::info!(target: "fluentd", tag = %routed.event.tag, "{doc}"),
                OutputRef::File(path) => append_file(&out.files, &path, &doc),
                OutputRef::Null => {}
            }
        }
    }
}

/// Appends a record to a `file` output, kept under `root` whatever path the configuration names.
fn append_file(root: &Path, path: &str, doc: &Value) {
    use std::io::Write as _;
    let name: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    let file = root.join(name.trim_start_matches('.'));
    let written = std::fs::create_dir_all(root).and_then(|()| {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&file)?;
        writeln!(f, "{doc}")
    });
    if let Err(e) = written {
        tracing::warn!("fluentd file output {}: {e}", file.display());
    }
}

/// Reads a JSON object from a map, for callers that build records.
pub fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
