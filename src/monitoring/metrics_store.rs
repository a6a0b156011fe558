//! `metrics-store` (`PROMETHEUS`, with the Alertmanager and the ingestion service inside).
//!
//! - `PROMETHEUS` scrapes the pipeline's registry into the embedded TSDB every `scrape_interval`,
//!   evaluates the rule files every `evaluation_interval`, groups firing alerts as Alertmanager does and
//!   hands each webhook payload to the ingestion service.
//! - The ingestion service (`POST /alerts`, also fed in-process) turns each alert into a
//!   `PROMETHEUS_ALERT` signal with `startsAt` set to now, as the reference's Nest.js service does.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::SIGNALS_TOPIC;
use super::alertmanager::{Alertmanager, AlertmanagerConfig};
use super::rules::RuleSet;
use super::tsdb::Tsdb;
use crate::bus::backend::AnyProducer;
use crate::bus::client::Acks;
use crate::bus::kafka_cluster::BusHandle;
use crate::kernel::clock::{Clock, iso_millis};
use crate::kernel::component::Ctx;
use crate::kernel::metrics::{MetricScope, Metrics, MetricsError};
use crate::topology::BuildCx;
use crate::topology::build::InputCx;
use crate::topology::check::CheckCx;
use crate::topology::component::{ComponentKind, Hop, Reference};
use crate::transport::link::Link;
use prometheus::IntCounter;

/// The shipped rule files, written to `<out>/flows/rules/` when the flow names none.
const SHIPPED_RULES: &[(&str, &str)] = &[
    ("mqtt.yml", include_str!("../../flows/rules/mqtt.yml")),
    ("nodered.yml", include_str!("../../flows/rules/nodered.yml")),
];

/// `kind = "metrics-store"`.
#[derive(Clone, Debug, Deserialize)]
pub struct MetricsStoreConfig {
    /// The `kafka-cluster` alert signals go to.
    pub bus: String,
    /// Prometheus' `scrape_interval`.
    #[serde(default = "ten_seconds", with = "humantime_serde")]
    pub scrape_interval: Duration,
    /// Prometheus' `evaluation_interval`.
    #[serde(default = "ten_seconds", with = "humantime_serde")]
    pub evaluation_interval: Duration,
    /// Alertmanager's `group_wait`.
    #[serde(default = "five_seconds", with = "humantime_serde")]
    pub group_wait: Duration,
    /// Alertmanager's `group_interval`.
    #[serde(default = "one_minute", with = "humantime_serde")]
    pub group_interval: Duration,
    /// Alertmanager's `repeat_interval`.
    #[serde(default = "five_minutes", with = "humantime_serde")]
    pub repeat_interval: Duration,
    /// Directory of Prometheus rule files (default: the shipped `flows/rules`, written to `<out>/flows/rules`).
    #[serde(default)]
    pub rules: Option<PathBuf>,
}

fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}
fn five_seconds() -> Duration {
    Duration::from_secs(5)
}
fn one_minute() -> Duration {
    Duration::from_secs(60)
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

/// What a metrics store provides: its state (PromQL over the scraped history) and the ingestion
/// service (`POST /alerts`).
#[derive(Clone)]
pub struct MetricsStoreHandle {
    /// TSDB, rules, Alertmanager.
    pub state: Arc<MetricsState>,
    /// The ingestion service.
    pub ingestion: Arc<Ingestion>,
}

impl ComponentKind for MetricsStoreConfig {
    const KIND: &'static str = "metrics-store";
    const NAMESPACE: &'static str = "monitoring";

    fn references(&self) -> Vec<Reference<'_>> {
        vec![Reference::new("bus", &self.bus, &["kafka-cluster"], Hop::To)]
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        for (field, d) in [
            ("scrape_interval", self.scrape_interval),
            ("evaluation_interval", self.evaluation_interval),
            ("group_interval", self.group_interval),
            ("repeat_interval", self.repeat_interval),
        ] {
            cx.require(!d.is_zero(), field, "must be more than 0");
        }
    }

    fn check_inputs(&self, _name: &str, cx: &InputCx<'_>) -> anyhow::Result<()> {
        if let Some(dir) = &self.rules {
            RuleSet::load_dir(cx.flow.resolve(&dir.display().to_string()))?;
        }
        Ok(())
    }

    /// Provides a [`MetricsStoreHandle`].
    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let dir = match &self.rules {
            Some(dir) => cx.flow.resolve(&dir.display().to_string()),
            None => super::materialize(&cx.out_path("flows/rules"), SHIPPED_RULES)?,
        };
        let rules = RuleSet::load_dir(dir)?;
        let BusHandle { client, .. } = cx.handle(&self.bus)?;
        let ingestion = Arc::new(Ingestion::new(
            client.producer("nest-js", Acks::All)?,
            cx.link(name, &self.bus)?,
            cx.clock.clone(),
            IngestStats::register(&cx.metrics(name))?,
        ));
        let alertmanager = AlertmanagerConfig {
            group_wait: self.group_wait,
            group_interval: self.group_interval,
            repeat_interval: self.repeat_interval,
            ..AlertmanagerConfig::default()
        };
        let instance = match cx.api_base {
            Some(base) => base.trim_start_matches("http://").to_string(),
            None => "chaoslab:8080".to_string(),
        };
        let state = Arc::new(MetricsState::new(
            cx.registry().clone(),
            rules,
            alertmanager,
            &instance,
            self.scrape_interval,
            self.evaluation_interval,
        ));
        cx.provide(name, MetricsStoreHandle { state: state.clone(), ingestion: ingestion.clone() });
        cx.add(name, move |ctx| run_prometheus(ctx, state.clone(), ingestion.clone()))
    }
}

/// Longest signal name or component accepted from outside.
pub const MAX_NAME: usize = 200;

/// Counters of the ingestion service, on `/metrics` as `alertmanager_webhook_{payloads,signals,refused}_total`
/// (so a scrape shows that Alertmanager's deliveries arrived).
#[derive(Clone, Debug)]
pub struct IngestStats {
    /// Webhook payloads accepted.
    pub payloads: IntCounter,
    /// Signals published.
    pub signals: IntCounter,
    /// Payloads refused (not JSON, no `alerts`, an alert the reasoner could not read).
    pub refused: IntCounter,
}

impl IngestStats {
    /// The counters, registered in `metrics` (a component's scope).
    pub fn register(metrics: &MetricScope) -> Result<IngestStats, MetricsError> {
        Ok(IngestStats {
            payloads: metrics
                .counter("alertmanager_webhook_payloads_total", "Alertmanager webhook payloads accepted.")?,
            signals: metrics.counter(
                "alertmanager_webhook_signals_total",
                "PROMETHEUS_ALERT signals published from webhook payloads.",
            )?,
            refused: metrics.counter(
                "alertmanager_webhook_refused_total",
                "Webhook payloads refused (not JSON, no alerts, an alert the reasoner cannot read).",
            )?,
        })
    }
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
    /// An ingestion service publishing with `producer` over `link`, counting into `stats`.
    pub fn new(producer: Arc<AnyProducer>, link: Arc<Link>, clock: Clock, stats: IngestStats) -> Self {
        Ingestion { producer, link, clock, stats }
    }

    /// Handles one webhook payload; returns how many signals were published.
    pub async fn ingest(&self, payload: &Value) -> Result<usize, IngestError> {
        let refuse = |why: String| {
            self.stats.refused.inc();
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
            let signal = json!({
                "signal_type": "PROMETHEUS_ALERT",
                "status": alert.get("status").cloned().unwrap_or(Value::Null),
                "labels": alert.get("labels").cloned().unwrap_or(Value::Null),
                "annotations": alert.get("annotations").cloned().unwrap_or(Value::Null),
                "startsAt": iso_millis(self.clock.now()),
                "endsAt": alert.get("endsAt").cloned().unwrap_or(Value::Null),
                "generatorURL": alert.get("generatorURL").cloned().unwrap_or(Value::Null),
            });
            // What the REASONER cannot read is refused here, not answered 200 and dropped there.
            if let Err(e) = crate::reasoning::signal::parse_signal_record(&signal) {
                return Err(refuse(format!("alerts[{i}]: {e}")));
            }
            signals.push(signal);
        }
        self.stats.payloads.inc();
        for s in &signals {
            self.link.gate().await.map_err(|e| IngestError::Publish(e.to_string()))?;
            let ts = self.clock.now().timestamp_millis();
            self.producer
                .send(SIGNALS_TOPIC, None, None, Bytes::from(s.to_string()), ts)
                .await
                .map_err(|e| IngestError::Publish(e.to_string()))?;
            self.stats.signals.inc();
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

    fn scrape(&self, t_ms: i64) -> crate::monitoring::tsdb::ScrapeStats {
        let families = self.registry.registry().gather();
        lock(&self.tsdb).ingest_families(
            &families,
            &[("job", "chaoslab"), ("instance", &self.instance)],
            t_ms,
        )
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
            // In its row: samples scraped in; refused ones (out of order, over a limit) are drops.
            let stats = state.scrape(now_ms);
            ctx.metrics.records_in.inc_by((stats.appended + stats.rejected) as u64);
            ctx.metrics.dropped_n("sample_refused", stats.rejected as u64);
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
