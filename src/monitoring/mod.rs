//! Monitoring, in process: what Prometheus, Alertmanager, Fluentd and the ingestion service do in the
//! reference pipeline.
//!
//! - [`tsdb`], [`promql`]: an embedded time-series store fed by scraping our own registry, and a PromQL
//!   evaluator for the subset real alerting uses;
//! - [`rules`], [`alertmanager`]: Prometheus rule files with alert state, and Alertmanager's grouping and
//!   webhook payloads;
//! - [`logs`]: Fluentd's tag routing, filters and outputs, with the Forward and HTTP inputs;
//! - the components that run all of it: `metrics-store` (`PROMETHEUS` with its Alertmanager and the
//!   ingestion service, [`metrics_store`]) and `log-router` (`FLUENTD`, [`log_router`]).

pub mod alertmanager;
pub mod log_router;
pub mod logs;
pub mod metrics_store;
pub mod promql;
pub mod rules;
pub mod tsdb;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{Value, json};

use self::metrics_store::MetricsStoreHandle;
use crate::topology::Pipeline;

/// The topic signals go to (log signals from `FLUENTD`, alert signals from the ingestion service).
pub const SIGNALS_TOPIC: &str = "signals";

/// Writes shipped files under `dir` (a run's `<out>/flows/…`); returns `dir`.
pub fn materialize(dir: &Path, files: &[(&str, &str)]) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(dir.to_path_buf())
}

/// Evaluates a PromQL expression against the pipeline's metrics now: with a metrics store running, its
/// scraped history (range functions work); otherwise one scrape of the registry now.
pub fn query_at(p: &Pipeline, query: &str) -> Result<promql::Value, String> {
    let now = p.clock.now().timestamp_millis();
    match p.handles.first::<MetricsStoreHandle>() {
        Some(m) => m.state.query(query, now),
        None => promql::query(query, &scrape_now(p, None), now),
    }
    .map_err(|e| e.to_string())
}

/// Whether the pipeline runs a metrics store (then [`query_at`] reads its history, not a scrape).
pub fn has_metrics_store(p: &Pipeline) -> bool {
    p.handles.first::<MetricsStoreHandle>().is_some()
}

/// One scrape of the pipeline's registry now, as a TSDB (`job="chaoslab"`, `instance="chaoslab"`), for
/// evaluating several queries at one instant; with `queries`, only the families they can name are kept
/// (every family when one of them matches names by `__name__`).
pub fn scrape_now(p: &Pipeline, queries: Option<&[String]>) -> tsdb::Tsdb {
    let now = p.clock.now().timestamp_millis();
    let mut families = p.metrics.registry().gather();
    if let Some(queries) = queries.filter(|q| !q.iter().any(|q| q.contains("__name__"))) {
        families.retain(|f| queries.iter().any(|q| q.contains(f.name())));
    }
    let mut db = tsdb::Tsdb::new(std::time::Duration::from_secs(600));
    db.ingest_families(&families, &[("job", "chaoslab"), ("instance", "chaoslab")], now);
    db
}

/// [`query_at`] as JSON: a number for a scalar or a single sample, otherwise a list of `{metric, value}`.
pub fn query_value(p: &Pipeline, query: &str) -> Result<Value, String> {
    let value = query_at(p, query)?;
    Ok(match value {
        promql::Value::Scalar(v) => json!(v),
        promql::Value::String(s) => json!(s),
        promql::Value::Vector(samples) if samples.len() == 1 => json!(samples[0].value),
        promql::Value::Vector(samples) => {
            Value::Array(samples.into_iter().map(|s| json!({"metric": s.labels, "value": s.value})).collect())
        }
    })
}
