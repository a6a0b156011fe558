//! Monitoring, in process: what Prometheus, Alertmanager, Fluentd and the ingestion service do in the
//! reference pipeline.
//!
//! - [`tsdb`], [`promql`]: an embedded time-series store fed by scraping our own registry, and a PromQL
//!   evaluator for the subset real alerting uses;
//! - [`rules`], [`alertmanager`]: Prometheus rule files with alert state, and Alertmanager's grouping and
//!   webhook payloads;
//! - [`logs`]: Fluentd's tag routing, filters and outputs, with the Forward and HTTP inputs;
//! - the components that run all of it on a pipeline (`PROMETHEUS`, `ALERTMANAGER`,
//!   `FLUENTD`, `INGESTION-SERVICE`) and the `signals` they produce (see the topology).

pub mod alertmanager;
pub mod logs;
pub mod promql;
pub mod rules;
pub mod stack;
pub mod tsdb;

use serde_json::{Value, json};

use crate::topology::Pipeline;

/// Evaluates a PromQL expression against the pipeline's metrics now: a number for a scalar or a single
/// sample, otherwise a list of `{metric, value}`.
pub fn query_value(p: &Pipeline, query: &str) -> Result<Value, String> {
    let now = p.clock.now().timestamp_millis();
    // With PROMETHEUS running, the scraped history (range functions work); otherwise one scrape now.
    let value = match &p.monitoring {
        Some(m) => m.metrics.query(query, now),
        None => {
            let mut db = tsdb::Tsdb::new(std::time::Duration::from_secs(600));
            db.ingest_families(
                &p.metrics.registry().gather(),
                &[("job", "chaoslab"), ("instance", "chaoslab")],
                now,
            );
            promql::query(query, &db, now)
        }
    }
    .map_err(|e| e.to_string())?;
    Ok(match value {
        promql::Value::Scalar(v) => json!(v),
        promql::Value::String(s) => json!(s),
        promql::Value::Vector(samples) if samples.len() == 1 => json!(samples[0].value),
        promql::Value::Vector(samples) => {
            Value::Array(samples.into_iter().map(|s| json!({"metric": s.labels, "value": s.value})).collect())
        }
    })
}
