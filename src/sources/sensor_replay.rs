//! `sensor-replay` (`SENSOR`): replays a GNFUV-format dataset to MQTT, like the reference `simplesensor`
//! container.
//!
//! Sequential mode is the reference simulator: one row every `rate_ms`, in file order, looping at the
//! end, values published as the strings in the file (` None` included) and `time` replaced by the
//! publish time. Per-device mode runs one generator per `device_id`, each keeping the gaps between its own
//! rows (divided by `speedup`). Generators hand records to the `SENSOR->MQTT_BROKER` link; a publisher
//! loop owns the MQTT session at the far end of it.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::kernel::clock::IsoCache;
use crate::kernel::component::Ctx;
use crate::kernel::task::ChildTask;
use crate::sources::dataset::{Dataset, SensorRow};
use crate::topology::BuildCx;
use crate::topology::build::InputCx;
use crate::topology::check::CheckCx;
use crate::topology::component::{ComponentKind, Hop, Reference};
use crate::topology::flow::Flow;
use crate::transport::envelope::{Envelope, Qos};
use crate::transport::link::Link;
use crate::transport::mqtt::MqttConnector;
use crate::transport::mqtt::pump::{ConnectionLog, SessionOptions, publish_from};

/// The synthetic dataset compiled into the binary (`builtin:gnfuv-synth.csv`).
pub const BUILTIN_DATASET: &str = include_str!("../../datasets/gnfuv-synth.csv");

/// How the sensor replays its file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplayMode {
    /// One row every `rate_ms`, in file order, looping (the reference simulator).
    #[default]
    Sequential,
    /// One sensor per device, each keeping its own inter-arrival gaps divided by `speedup`.
    PerDevice,
}

/// `kind = "sensor-replay"`.
#[derive(Clone, Debug, Deserialize)]
pub struct SensorReplayConfig {
    /// GNFUV-format CSV; `builtin:gnfuv-synth.csv` is the synthetic file compiled into the binary.
    pub dataset: String,
    /// Broker component to publish through.
    pub broker: String,
    /// Topic to publish to.
    pub topic: String,
    /// Pause between rows in sequential mode; 0 = as fast as possible.
    #[serde(default = "default_rate")]
    pub rate_ms: u64,
    /// Replay mode.
    #[serde(default)]
    pub mode: ReplayMode,
    /// Time compression in per-device mode.
    #[serde(default = "default_speedup")]
    pub speedup: f64,
    /// QoS of each publish (0, 1 or 2; 2 is served as 1).
    #[serde(default, with = "crate::transport::envelope::qos_level")]
    pub qos: Qos,
    /// Client id prefix.
    #[serde(default = "default_client")]
    pub client_id: String,
    /// Retry interval when the broker is unreachable.
    #[serde(default = "one_second", with = "humantime_serde")]
    pub retry: Duration,
}

fn default_rate() -> u64 {
    1000
}
fn default_speedup() -> f64 {
    1.0
}
fn default_client() -> String {
    "mqttjs_sensor".into()
}
fn one_second() -> Duration {
    Duration::from_secs(1)
}

/// Loads a sensor dataset: `builtin:gnfuv-synth.csv` or a path resolved against the flow.
pub fn load_dataset(flow: &Flow, spec: &str) -> anyhow::Result<Dataset> {
    if let Some(name) = spec.strip_prefix("builtin:") {
        if name != "gnfuv-synth.csv" {
            anyhow::bail!("unknown built-in dataset {spec:?} (there is builtin:gnfuv-synth.csv)");
        }
        return Ok(Dataset::from_reader(spec, BUILTIN_DATASET.as_bytes())?);
    }
    Ok(Dataset::load(&flow.resolve(spec))?)
}

impl ComponentKind for SensorReplayConfig {
    const KIND: &'static str = "sensor-replay";
    const NAMESPACE: &'static str = "iot";
    const SOURCE: bool = true;

    fn references(&self) -> Vec<Reference<'_>> {
        vec![Reference::new("broker", &self.broker, &["mqtt-broker"], Hop::To)]
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.topic_name("topic", &self.topic);
        cx.require(
            self.speedup.is_finite() && self.speedup > 0.0,
            "speedup",
            format!("must be > 0, got {}", self.speedup),
        );
    }

    fn check_inputs(&self, _name: &str, cx: &InputCx<'_>) -> anyhow::Result<()> {
        load_dataset(cx.flow, &self.dataset).map(|_| ())
    }

    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let dataset = Arc::new(load_dataset(cx.flow, &self.dataset)?);
        let connector: MqttConnector = cx.handle(&self.broker)?;
        let link = cx.link(name, &self.broker)?;
        let cfg = self.clone();
        cx.add(name, move |ctx| run(ctx, cfg.clone(), dataset.clone(), connector.clone(), link.clone()))
    }
}

/// The published JSON, field order as the reference: `device_id, humidity, temperature, time`.
#[derive(Serialize)]
struct Payload<'a> {
    device_id: &'a str,
    humidity: &'a str,
    temperature: &'a str,
    time: &'a str,
}

/// A row's published JSON up to its time: `{"device_id":…,"humidity":…,"temperature":…,"time":`. A
/// replay loops over its rows, so each row is encoded once and only the time per record.
fn payload_prefix(row: &SensorRow) -> serde_json::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec(&Payload {
        device_id: &row.device_id,
        humidity: &row.humidity,
        temperature: &row.temperature,
        time: "",
    })?;
    // Drop the empty time's `""}`: the record's time and the closing brace come per record.
    bytes.truncate(bytes.len() - 3);
    Ok(bytes)
}

/// The published JSON of a row (given by its [`payload_prefix`]) at `time`: the bytes
/// `serde_json::to_vec(&Payload { … })` gives.
fn payload(prefix: &[u8], time: &str) -> serde_json::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(prefix.len() + time.len() + 3);
    bytes.extend_from_slice(prefix);
    serde_json::to_writer(&mut bytes, time)?;
    bytes.push(b'}');
    Ok(bytes)
}

/// Trace data of `record.published`.
#[derive(Serialize)]
struct Published<'a> {
    device: &'a str,
    line: u64,
    time: &'a str,
}

/// Records handed to the link without pausing before yielding to other tasks (only matters with `rate_ms = 0`).
const BURST: u64 = 64;

/// How long a stopping sensor waits for its publisher to empty the link.
const DRAIN: Duration = Duration::from_secs(4);

/// Runs one incarnation of the sensor.
pub async fn run(
    ctx: Ctx,
    cfg: SensorReplayConfig,
    dataset: Arc<Dataset>,
    connector: MqttConnector,
    link: Arc<Link>,
) -> anyhow::Result<()> {
    let log = ConnectionLog {
        style: crate::kernel::logsink::LogStyle::Docker { container: "simplesensor".into() },
        connected: "Successfully connected to MQTT broker at {broker}".into(),
        lost: "Connection to MQTT broker at {broker} lost: {reason}".into(),
        failed: "Attempting to connect to mqtt broker at {broker} failed: {reason}".into(),
    };
    let opts = SessionOptions::clean(&cfg.client_id, cfg.retry, log);
    let _publisher = ChildTask::spawn(publish_from(ctx.clone(), connector, opts, link.clone(), |ctx, _| {
        ctx.metrics.records_out.inc();
    }));
    tracing::info!(component = %ctx.name, rows = dataset.rows.len(), mode = ?cfg.mode, "replaying {}", dataset.source);
    match cfg.mode {
        ReplayMode::Sequential => {
            let rows: Vec<&SensorRow> = dataset.rows.iter().collect();
            let gap = Duration::from_millis(cfg.rate_ms);
            replay(&ctx, &cfg, &link, &rows, |_| gap).await;
        }
        ReplayMode::PerDevice => {
            let mut children = Vec::new();
            for device in dataset.devices() {
                let (ctx, cfg, link, dataset) = (ctx.clone(), cfg.clone(), link.clone(), dataset.clone());
                let device = device.to_string();
                children.push(ChildTask::spawn(async move {
                    let by_device = dataset.by_device();
                    let rows = by_device.get(device.as_str()).cloned().unwrap_or_default();
                    let gaps = device_gaps(&rows, cfg.speedup, Duration::from_millis(cfg.rate_ms));
                    replay(&ctx, &cfg, &link, &rows, |i| gaps[i]).await;
                }));
            }
            for c in children {
                c.join().await;
            }
        }
    }
    // Stopped: let the publisher hand over what is still on its way to the broker, within the grace the
    // supervisor gives (a crash skips this, and what was queued is lost with the link's receiver).
    let deadline = tokio::time::Instant::now() + DRAIN;
    while link.in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// The pause after each row of one device: its next row's time minus its own, divided by `speedup`;
/// after the last row (before looping) the device's median gap.
fn device_gaps(rows: &[&SensorRow], speedup: f64, fallback: Duration) -> Vec<Duration> {
    let mut gaps: Vec<Duration> = rows
        .windows(2)
        .map(|w| (w[1].time - w[0].time).to_std().unwrap_or_default().div_f64(speedup))
        .collect();
    let mut sorted = gaps.clone();
    sorted.sort();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(fallback);
    gaps.push(median);
    gaps
}

/// Publishes `rows` in order, forever, pausing `gap(i)` after row `i`.
async fn replay(
    ctx: &Ctx,
    cfg: &SensorReplayConfig,
    link: &Link,
    rows: &[&SensorRow],
    gap: impl Fn(usize) -> Duration,
) {
    if rows.is_empty() {
        return;
    }
    let mut sent = 0u64;
    let mut next = tokio::time::Instant::now();
    let mut clock = IsoCache::default();
    let prefixes: Vec<serde_json::Result<Vec<u8>>> = rows.iter().map(|row| payload_prefix(row)).collect();
    loop {
        for (i, (row, prefix)) in rows.iter().zip(&prefixes).enumerate() {
            let time = clock.format(ctx.clock.now());
            let encoded = prefix
                .as_ref()
                .map_err(|e| e.to_string())
                .and_then(|p| payload(p, time).map_err(|e| e.to_string()));
            let bytes = match encoded {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(component = %ctx.name, "cannot encode row {}: {e}", row.line);
                    continue;
                }
            };
            ctx.trace_record("record.published", &Published { device: &row.device_id, line: row.line, time });
            ctx.metrics.records_in.inc();
            link.send(Envelope::new(cfg.topic.clone(), bytes).with_qos(cfg.qos)).await;
            sent += 1;
            let pause = gap(i);
            if pause.is_zero() {
                if sent.is_multiple_of(BURST) {
                    if ctx.clock.is_sim() {
                        // "As fast as possible" in virtual time still has to let time pass, or timers
                        // (the end of the run among them) would never fire: one tick per burst.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
            } else {
                // Like a timer with delay semantics: a late tick is not made up by a burst.
                next = (next + pause).max(tokio::time::Instant::now());
                tokio::select! {
                    biased;
                    _ = ctx.shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(next) => {}
                }
            }
            if ctx.shutdown.is_cancelled() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_from_its_row_prefix_is_the_whole_payload_encoded() {
        let rows = [
            ("gnfuv-pi2", "21", "40"),
            ("dev \"quoted\" \\ back", " None", "-0.5"),
            ("ünïcode\u{1}\n", "", "1e3"),
        ];
        for (device_id, humidity, temperature) in rows {
            let row = SensorRow {
                line: 2,
                device_id: device_id.into(),
                humidity: humidity.into(),
                temperature: temperature.into(),
                time: chrono::NaiveDateTime::default(),
            };
            for time in ["2020-02-21T21:38:12.000Z", "", "\"odd\""] {
                let whole = serde_json::to_vec(&Payload { device_id, humidity, temperature, time }).unwrap();
                assert_eq!(
                    payload(&payload_prefix(&row).unwrap(), time).unwrap(),
                    whole,
                    "{device_id:?} {time:?}"
                );
            }
        }
    }
}
