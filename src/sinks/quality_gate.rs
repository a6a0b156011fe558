//! `quality-gate` (`NODE-RED`): the "Sensor Data Flow" — count every packet, check data quality, append to a flat file.
//!
//! Every MQTT message increments `mqtt_received_data_packets_total{job="node-red"}` (the counter the
//! `NotReceivingSensorData` alert watches). A message that is not JSON is dropped (Node-RED's `json`
//! node fails); a record without `time` is dropped and raises the `MissingTimeInformation` event; the
//! rest are appended, one per line, to the flat file (`/data/sensordata/data.txt` in the reference).

use std::fs::OpenOptions;
use std::io::{LineWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use anyhow::Context as _;
use prometheus::IntCounter;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kernel::component::Ctx;
use crate::kernel::logsink::LogStyle;
use crate::kernel::metrics::{MetricScope, MetricsError};
use crate::topology::BuildCx;
use crate::topology::check::CheckCx;
use crate::topology::component::{ComponentKind, Hop, Reference};
use crate::transport::envelope::Qos;
use crate::transport::link::Link;
use crate::transport::mqtt::MqttConnector;
use crate::transport::mqtt::pump::{ConnectionLog, SessionOptions};

/// `kind = "quality-gate"`.
#[derive(Clone, Debug, Deserialize)]
pub struct QualityGateConfig {
    /// Broker to subscribe through.
    pub broker: String,
    /// Topic filter.
    pub topic: String,
    /// Flat file under the run's output directory.
    #[serde(default = "default_file")]
    pub file: PathBuf,
    /// Prometheus `job` label of its counter.
    #[serde(default = "default_job")]
    pub job: String,
    /// Subscription QoS (Node-RED asks for 2; served as 1).
    #[serde(
        default = "crate::transport::envelope::qos_level::at_least_once",
        with = "crate::transport::envelope::qos_level"
    )]
    pub qos: Qos,
    /// MQTT client id.
    #[serde(default = "default_client")]
    pub client_id: String,
    /// Reconnect interval (Node-RED's `mqttReconnectTime`).
    #[serde(default = "fifteen_seconds", with = "humantime_serde")]
    pub retry: Duration,
}

fn default_file() -> PathBuf {
    PathBuf::from("node-red/data.txt")
}
fn default_job() -> String {
    "node-red".into()
}
fn default_client() -> String {
    "nodered".into()
}
fn fifteen_seconds() -> Duration {
    Duration::from_secs(15)
}

impl ComponentKind for QualityGateConfig {
    const KIND: &'static str = "quality-gate";
    const NAMESPACE: &'static str = "iot";

    fn references(&self) -> Vec<Reference<'_>> {
        vec![Reference::new("broker", &self.broker, &["mqtt-broker"], Hop::From)]
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.topic_filter("topic", &self.topic);
        cx.relative_path("file", &self.file);
    }

    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let file = cx.out_path(&self.file);
        let packets = register_packets(&cx.metrics(name), &self.job)?;
        let connector: MqttConnector = cx.handle(&self.broker)?;
        let inbound = cx.link(&self.broker, name)?;
        let cfg = self.clone();
        cx.add(name, move |ctx| {
            run(ctx, cfg.clone(), file.clone(), connector.clone(), inbound.clone(), packets.clone())
        })
    }
}

/// Registers `mqtt_received_data_packets_total{job=…}`: the reference's series, as its alert rule reads it.
pub fn register_packets(metrics: &MetricScope, job: &str) -> Result<IntCounter, MetricsError> {
    let opts = metrics
        .opts("mqtt_received_data_packets_total", "MQTT messages received by the Node-RED flow.")
        .const_label("job", job);
    metrics.counter_with(opts)
}

/// What the quality check decides for one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep; the line to append.
    Keep(String),
    /// Not JSON.
    NotJson,
    /// No usable `time`.
    MissingTime,
}

/// Checks one payload.
pub fn check(payload: &[u8]) -> Verdict {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(payload) else { return Verdict::NotJson };
    match obj.get("time") {
        Some(Value::String(t)) if !t.trim().is_empty() => {}
        _ => return Verdict::MissingTime,
    }
    Verdict::Keep(String::from_utf8_lossy(payload).trim().to_string())
}

/// Runs one incarnation of the flow.
pub async fn run(
    ctx: Ctx,
    cfg: QualityGateConfig,
    file: PathBuf,
    connector: MqttConnector,
    inbound: Arc<Link>,
    packets: IntCounter,
) -> anyhow::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let opened = OpenOptions::new().create(true).append(true).open(&file);
    let mut out = LineWriter::new(opened.with_context(|| format!("cannot open {}", file.display()))?);
    let log = ConnectionLog {
        style: LogStyle::CloudEvent { source: "Node-Red/Sensor-Data-Flow".into() },
        connected: "Connected to broker: {client}@mqtt://{host_port}".into(),
        lost: "Disconnected from broker: {client}@mqtt://{host_port}".into(),
        failed: "Connection failed to broker: {client}@mqtt://{host_port}".into(),
    };
    let _mqtt_in = SessionOptions::clean(&cfg.client_id, cfg.retry, log)
        .subscribe(&ctx, connector, &cfg.topic, cfg.qos, &inbound);
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut rx = inbound.receiver().await;
    while let Some(env) = rx.recv_until(&ctx.shutdown).await {
        ctx.metrics.records_in.inc();
        packets.inc();
        match check(&env.payload) {
            Verdict::Keep(line) => {
                if let Err(e) = ctx.io_write(&name).await {
                    // Node-RED's file node logs the error and goes on with the next message.
                    tracing::error!(component = %ctx.name, "[file:Write to File] failed to append to file: {e}");
                    ctx.drop_record("io_error", json!({"error": e.to_string()}));
                    continue;
                }
                let written = out
                    .write_all(&ctx.hooks.io_data(&name, line.as_bytes()))
                    .and_then(|()| out.write_all(b"\n"));
                written.with_context(|| format!("cannot append to {}", file.display()))?;
                ctx.metrics.records_out.inc();
                ctx.trace_record("record.appended", &json!({"bytes": line.len()}));
                // "Log to Fluentd": the stored record as a data-asset event.
                let event = json!({"message": "sensor data stored", "file": name, "bytes": line.len()});
                ctx.app_log("mqtt.app.dataAsset", crate::kernel::logsink::object(event));
            }
            Verdict::NotJson => {
                tracing::warn!(component = %ctx.name, "json: Unexpected token in JSON payload");
                ctx.drop_record("invalid_json", json!({}));
            }
            Verdict::MissingTime => {
                tracing::warn!(component = %ctx.name, signal = "MissingTimeInformation", "record without time dropped");
                ctx.trace("signal.emitted", &json!({"name": "MissingTimeInformation"}));
                // The "Check Data Quality" node's event, under the reference's tag.
                let event = json!({"message": "The received sensor data has no time information", "level": "WARN",
                                   "payload": String::from_utf8_lossy(&env.payload)});
                ctx.app_log("mqtt.app.signal.MissingTimeInformation", crate::kernel::logsink::object(event));
                ctx.drop_record("missing_time", json!({}));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_check() {
        let ok = br#"{"device_id":"d","humidity":" None","temperature":" None","time":"2020-02-18T21:23:32.106Z"}"#;
        assert!(matches!(check(ok), Verdict::Keep(_)));
        assert_eq!(check(br#"{"device_id":"d","humidity":"1"}"#), Verdict::MissingTime);
        assert_eq!(check(br#"{"device_id":"d","time":""}"#), Verdict::MissingTime);
        assert_eq!(check(b"\xff{"), Verdict::NotJson);
        assert_eq!(check(b"[1,2]"), Verdict::NotJson);
    }
}
