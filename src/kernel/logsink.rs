//! Platform and application logs as records, on their way to the log router (`FLUENTD`).
//!
//! In the reference every container logs to Fluentd through Docker's fluentd driver, and applications
//! send tagged events. Here a component writes a log line with `Ctx::platform_log` or `Ctx::app_log`:
//! it goes to `tracing` as usual *and*, when the pipeline routes logs, as a [`LogRecord`] with a
//! reference-style tag (`com.chaoslab.<component>.platform`, `com.chaoslab.<component>.mqtt.app.…`)
//! and the fields the real component's logger would send, so Fluentd-style rules match them unchanged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

/// One log event: tag, time, record.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// Fluentd tag.
    pub tag: String,
    /// Event time (the component's clock).
    pub time: DateTime<Utc>,
    /// Fields.
    pub record: Map<String, Value>,
}

/// Where components' log records go. Cheap to clone; a full queue drops (and counts) rather than blocks.
#[derive(Clone, Debug)]
pub struct LogSink {
    tx: mpsc::Sender<LogRecord>,
    dropped: Arc<AtomicU64>,
}

impl LogSink {
    /// A sink and its receiving end, holding up to `capacity` records.
    pub fn new(capacity: usize) -> (LogSink, mpsc::Receiver<LogRecord>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (LogSink { tx, dropped: Arc::default() }, rx)
    }

    /// Queues a record; drops it when the router is behind or gone.
    pub fn send(&self, record: LogRecord) {
        if self.tx.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// How a component's platform logger shapes its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogStyle {
    /// A Java service logging through Logback (NiFi, Flink, Spark): `message`, `level`, `logger`, `thread`,
    /// and the formatted line in `msg`.
    Logback {
        /// Logger name.
        logger: String,
        /// Thread name.
        thread: String,
    },
    /// Node-RED's CloudEvents (`specversion`, `id`, `type`, `source`, `time`, `subject`, `level`, `message`).
    CloudEvent {
        /// `source`.
        source: String,
    },
    /// A container's stdout through Docker's fluentd driver (`log`, `container_name`, `source`).
    Docker {
        /// `container_name`.
        container: String,
    },
}

/// The tag segment of a component: `MQTT_BROKER` → `mqtt` (as Docker tags the broker), `NODE-RED` →
/// `nodered`, `HADOOP` → `namenode`, others lower-cased without punctuation.
pub fn tag_segment(component: &str) -> String {
    match component {
        "MQTT_BROKER" => "mqtt".into(),
        "HADOOP" => "namenode".into(),
        other => other.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase(),
    }
}

/// A platform record in `style`; `id` is a fresh event id (CloudEvents).
pub fn platform_record(
    style: &LogStyle,
    component: &str,
    level: &str,
    message: &str,
    time: DateTime<Utc>,
    id: &str,
) -> Map<String, Value> {
    let value = match style {
        LogStyle::Logback { logger, thread } => json!({
            "message": message,
            "level": level,
            "logger": logger,
            "thread": thread,
            "msg": format!("{} [{thread}] {level} {logger}  - {message}", time.format("%Y-%m-%d %H:%M:%S%.3f")),
        }),
        LogStyle::CloudEvent { source } => json!({
            "specversion": "0.3",
            "id": id,
            "type": format!("com.chaoslab.{}.platform", tag_segment(component)),
            "source": source,
            "time": crate::kernel::clock::iso_millis(time),
            "subject": "signpost",
            "level": level,
            "message": message,
        }),
        LogStyle::Docker { container } => json!({
            "log": message,
            "container_name": format!("/{container}"),
            "source": if level == "ERROR" { "stderr" } else { "stdout" },
        }),
    };
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The map of a JSON object (an empty map for anything else), for callers that build records.
pub fn object(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_records_look_like_the_reference() {
        assert_eq!(tag_segment("NODE-RED"), "nodered");
        assert_eq!(tag_segment("MQTT_BROKER"), "mqtt");
        assert_eq!(tag_segment("NIFI"), "nifi");
        let t = chrono::DateTime::parse_from_rfc3339("2020-02-21T21:20:33.219Z").unwrap().with_timezone(&Utc);
        let nifi = LogStyle::Logback {
            logger: "org.apache.nifi.processors.mqtt.ConsumeMQTT".into(),
            thread: "Timer-Driven Process Thread-9".into(),
        };
        let r = platform_record(
            &nifi,
            "NIFI",
            "ERROR",
            "ConsumeMQTT[id=x] Connection to tcp://mqtt:1883 lost",
            t,
            "",
        );
        assert_eq!(
            r["msg"],
            "2020-02-21 21:20:33.219 [Timer-Driven Process Thread-9] ERROR org.apache.nifi.processors.mqtt.ConsumeMQTT  - ConsumeMQTT[id=x] Connection to tcp://mqtt:1883 lost"
        );
        let nr = platform_record(
            &LogStyle::CloudEvent { source: "Node-Red/Sensor-Data-Flow".into() },
            "NODE-RED",
            "INFO",
            "m",
            t,
            "id-1",
        );
        assert_eq!(nr["type"], "com.chaoslab.nodered.platform");
        assert_eq!(nr["time"], "2020-02-21T21:20:33.219Z");
    }

    #[tokio::test]
    async fn a_full_sink_drops_and_counts() {
        let (sink, mut rx) = LogSink::new(1);
        let rec = LogRecord { tag: "a".into(), time: DateTime::UNIX_EPOCH, record: Map::new() };
        sink.send(rec.clone());
        sink.send(rec.clone());
        assert_eq!(sink.dropped(), 1);
        assert_eq!(rx.recv().await.unwrap(), rec);
    }
}
