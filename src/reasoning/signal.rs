//! Signals: the reasoner's input, parsed from the JSON records that Fluentd (`LOG`) and the
//! ingestion-service (`PROMETHEUS_ALERT`) put on the `signals` topic.
//!
//! Parsing follows the reference's `KafkaRecordMapFunction` (rdsea/bigdataincidentanalytics, `reasoning/flink-reasoner`, `KafkaRecordMapFunction.kt`):
//! - `LOG`: `name` is the part of `tag` after its last `.`, `timestamp` is `event_time` in exactly
//!   `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`, `pipelineComponent` is `pipeline_component`, `summary` is `message`, and
//!   `details` are all other fields except `signal_type`, `tag`, `event_time`, `pipeline_component` and
//!   `message`, in record order.
//! - `PROMETHEUS_ALERT`: `name` is `labels.alertname`, `timestamp` is `startsAt` without its last character
//!   read as an ISO local date-time (`yyyy-MM-ddTHH:mm[:ss[.f…]]`, up to 9 fraction digits),
//!   `pipelineComponent` is `labels.pipeline_component`, `summary` is `annotations.summary`, and `details` is
//!   `{labels: labels − {alertname, pipeline_component}, annotations: annotations − {summary}}`.
//!
//! Times are UTC [`NaiveDateTime`]s (the reference's `LocalDateTime`). Where this parser is stricter than
//! the reference, it says so with an error instead of crashing or guessing: every text field must be a JSON
//! string (Gson would also stringify numbers), calendar dates must exist (Java's default resolver would
//! clamp 2020-02-30 to 2020-02-29), and names and components must be 1 to [`MAX_NAME_CHARS`] characters
//! (they become graph keys and log fields).
//!
//! [`Signal`] also carries the per-signal counter semantics of the reference's domain class
//! (`requiresMultipleOccurrences`, `isWithinCoolDownWindow`, `isActivated`, …) and serializes exactly like
//! the signals inside `Sample_Incident_Report.json`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// Longest signal name or pipeline component accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// `threshold` of a signal that needs no repeated occurrences (the reference's default).
pub const DEFAULT_THRESHOLD: i32 = -1;
/// `thresholdCounter` before a signal has been counted (stored as null by the reference).
pub const DEFAULT_THRESHOLD_COUNTER: i32 = -1;
/// `coolDownSec` of a signal that needs no repeated occurrences (the reference's default).
pub const DEFAULT_COOL_DOWN_SEC: i32 = -1;

/// Format of every time in reports and predictions: `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`.
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// Longest piece of an offending value quoted in an error message.
const QUOTE_CHARS: usize = 64;

/// A record that is not a valid signal; each variant names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// The record is not a JSON object.
    #[error("signal record is not a JSON object")]
    NotAnObject,
    /// A required field is absent (the path is dotted, e.g. `labels.alertname`).
    #[error("signal record has no field `{0}`")]
    Missing(&'static str),
    /// A field has the wrong JSON type.
    #[error("signal record field `{field}` must be {expected}")]
    WrongType {
        /// Field path.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// `signal_type` is neither `LOG` nor `PROMETHEUS_ALERT`.
    #[error("unsupported signal_type {0:?} in signal record (expected LOG or PROMETHEUS_ALERT)")]
    UnsupportedType(String),
    /// A time field does not have the required format or is not a real date and time.
    #[error("signal record field `{field}`: {value:?} is not a time of the form {format}")]
    BadTime {
        /// Field path.
        field: &'static str,
        /// The value (shortened).
        value: String,
        /// The required format.
        format: &'static str,
    },
    /// A name or pipeline component is empty or too long.
    #[error("signal record field `{field}`: {reason}")]
    BadName {
        /// Field path.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// One occurrence of a signal, merged by the reasoner with the properties stored in the knowledge graph.
///
/// Serializes (camelCase, in this field order, times as `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`, no
/// `lastSignalTime` while it is unset, as Gson omits nulls) exactly like an entry of a report's
/// `compositeSignal.activeSignals`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Signal {
    /// Signal name, e.g. `MqttConnectionError`.
    pub name: String,
    /// When it occurred (UTC).
    #[serde(serialize_with = "serialize_time")]
    pub timestamp: NaiveDateTime,
    /// The DataPipeline component that signalled it, e.g. `NIFI`.
    pub pipeline_component: String,
    /// Human-readable text (log message or alert summary).
    pub summary: String,
    /// Everything else the record carried.
    pub details: Map<String, Value>,
    /// Occurrences needed to activate it; [`DEFAULT_THRESHOLD`] when one is enough.
    pub threshold: i32,
    /// Occurrences counted so far within the cool-down window; [`DEFAULT_THRESHOLD_COUNTER`] when uncounted.
    pub threshold_counter: i32,
    /// The previous counted occurrence (see the reasoner for when it is set).
    #[serde(serialize_with = "serialize_opt_time", skip_serializing_if = "Option::is_none")]
    pub last_signal_time: Option<NaiveDateTime>,
    /// Longest gap, in seconds, between counted occurrences; [`DEFAULT_COOL_DOWN_SEC`] when not counted.
    pub cool_down_sec: i32,
}

impl Signal {
    /// A signal with the reference's defaults: no threshold, no counter, no cool-down, no last time.
    pub fn new(
        name: impl Into<String>,
        timestamp: NaiveDateTime,
        pipeline_component: impl Into<String>,
        summary: impl Into<String>,
        details: Map<String, Value>,
    ) -> Self {
        Signal {
            name: name.into(),
            timestamp,
            pipeline_component: pipeline_component.into(),
            summary: summary.into(),
            details,
            threshold: DEFAULT_THRESHOLD,
            threshold_counter: DEFAULT_THRESHOLD_COUNTER,
            last_signal_time: None,
            cool_down_sec: DEFAULT_COOL_DOWN_SEC,
        }
    }

    /// `threshold > 0 && coolDownSec > 0`: the signal is active only after repeated occurrences.
    pub fn requires_multiple_occurrences(&self) -> bool {
        self.threshold > 0 && self.cool_down_sec > 0
    }

    /// No previous occurrence, or the previous one is less than `coolDownSec` whole seconds away.
    pub fn is_within_cool_down_window(&self) -> bool {
        match self.last_signal_time {
            None => true,
            Some(last) => abs_whole_seconds(last, self.timestamp) < i64::from(self.cool_down_sec),
        }
    }

    /// `thresholdCounter >= 0`.
    pub fn is_counter_initialized(&self) -> bool {
        self.threshold_counter >= 0
    }

    /// `thresholdCounter >= threshold`; always true for simple signals (−1 ≥ −1).
    pub fn is_activated(&self) -> bool {
        self.threshold_counter >= self.threshold
    }

    /// The FP-growth item of this signal: `name#component`.
    pub fn item(&self) -> String {
        format!("{}#{}", self.name, self.pipeline_component)
    }
}

/// `|Duration.between(a, b)|.seconds`: the absolute distance in whole seconds, fractions truncated.
pub fn abs_whole_seconds(a: NaiveDateTime, b: NaiveDateTime) -> i64 {
    (b - a).abs().num_seconds()
}

/// Seconds from `from` to `to`, rounded down (Cypher's `duration.inSeconds(from, to).seconds`).
pub fn floor_seconds_between(from: NaiveDateTime, to: NaiveDateTime) -> i64 {
    let delta: TimeDelta = to - from;
    let whole = delta.num_seconds();
    if delta.subsec_nanos() < 0 { whole - 1 } else { whole }
}

/// Formats a time as `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'` (fractions below a millisecond are cut off).
pub fn format_time(time: NaiveDateTime) -> String {
    time.format(TIME_FORMAT).to_string()
}

/// The UTC time of an epoch-millisecond instant, if chrono can represent it.
pub fn time_from_epoch_millis(millis: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_millis(millis).map(|t| t.naive_utc())
}

/// Epoch milliseconds of a UTC time.
pub fn epoch_millis(time: NaiveDateTime) -> i64 {
    time.and_utc().timestamp_millis()
}

/// Serde helper: a time in the report format.
pub fn serialize_time<S: Serializer>(time: &NaiveDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(*time))
}

/// Serde helper: an optional time in the report format (`null` when unset).
pub fn serialize_opt_time<S: Serializer>(
    time: &Option<NaiveDateTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serialize_time(time, serializer),
        None => serializer.serialize_none(),
    }
}

/// Checks a signal name or component name: 1 to [`MAX_NAME_CHARS`] characters. Returns the reason if not.
pub fn check_name(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".to_string());
    }
    let chars = value.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(format!(
            "{chars} characters, at most {MAX_NAME_CHARS} allowed (starts with {:?})",
            quote(value)
        ));
    }
    Ok(())
}

/// Parses one record of the `signals` topic into a [`Signal`] with default counter properties.
pub fn parse_signal_record(record: &Value) -> Result<Signal, SignalError> {
    let object = record.as_object().ok_or(SignalError::NotAnObject)?;
    let signal_type = string_field(object, "signal_type", "signal_type")?;
    match signal_type {
        "LOG" => parse_log(object),
        "PROMETHEUS_ALERT" => parse_alert(object),
        other => Err(SignalError::UnsupportedType(quote(other))),
    }
}

/// Fields of a `LOG` record that are not copied into `details`.
const LOG_OWN_FIELDS: [&str; 5] = ["signal_type", "tag", "event_time", "pipeline_component", "message"];

fn parse_log(object: &Map<String, Value>) -> Result<Signal, SignalError> {
    let tag = string_field(object, "tag", "tag")?;
    let name = tag.rsplit('.').next().unwrap_or(tag);
    named("tag", name)?;
    let event_time = string_field(object, "event_time", "event_time")?;
    let timestamp = parse_log_time(event_time).ok_or_else(|| SignalError::BadTime {
        field: "event_time",
        value: quote(event_time),
        format: "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'",
    })?;
    let component = string_field(object, "pipeline_component", "pipeline_component")?;
    named("pipeline_component", component)?;
    let summary = string_field(object, "message", "message")?;
    let details: Map<String, Value> = object
        .iter()
        .filter(|(key, _)| !LOG_OWN_FIELDS.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    Ok(Signal::new(name, timestamp, component, summary, details))
}

fn parse_alert(object: &Map<String, Value>) -> Result<Signal, SignalError> {
    let labels = object_field(object, "labels", "labels")?;
    let annotations = object_field(object, "annotations", "annotations")?;
    let name = string_field(labels, "alertname", "labels.alertname")?;
    named("labels.alertname", name)?;
    let starts_at = string_field(object, "startsAt", "startsAt")?;
    let timestamp = parse_alert_time(starts_at).ok_or_else(|| SignalError::BadTime {
        field: "startsAt",
        value: quote(starts_at),
        format: "yyyy-MM-ddTHH:mm[:ss[.fffffffff]] followed by one character (Z)",
    })?;
    let component = string_field(labels, "pipeline_component", "labels.pipeline_component")?;
    named("labels.pipeline_component", component)?;
    let summary = string_field(annotations, "summary", "annotations.summary")?;
    let without = |map: &Map<String, Value>, dropped: &[&str]| -> Map<String, Value> {
        map.iter()
            .filter(|(key, _)| !dropped.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    };
    let mut details = Map::new();
    details
        .insert("labels".to_string(), Value::Object(without(labels, &["alertname", "pipeline_component"])));
    details.insert("annotations".to_string(), Value::Object(without(annotations, &["summary"])));
    Ok(Signal::new(name, timestamp, component, summary, details))
}

fn string_field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<&'a str, SignalError> {
    match object.get(key) {
        None => Err(SignalError::Missing(path)),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(SignalError::WrongType { field: path, expected: "a string" }),
    }
}

fn object_field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<&'a Map<String, Value>, SignalError> {
    match object.get(key) {
        None => Err(SignalError::Missing(path)),
        Some(Value::Object(inner)) => Ok(inner),
        Some(_) => Err(SignalError::WrongType { field: path, expected: "an object" }),
    }
}

fn named(field: &'static str, value: &str) -> Result<(), SignalError> {
    check_name(value).map_err(|reason| SignalError::BadName { field, reason })
}

/// The first [`QUOTE_CHARS`] characters of a value, for error messages.
fn quote(value: &str) -> String {
    match value.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_string(),
    }
}

/// Reads `len` ASCII digits at `start` as a number (the caller has checked they are digits).
fn digits(bytes: &[u8], start: usize, len: usize) -> Option<u32> {
    bytes
        .get(start..start + len)?
        .iter()
        .try_fold(0u32, |acc, &byte| byte.is_ascii_digit().then(|| acc * 10 + u32::from(byte - b'0')))
}

/// Checks `bytes` against a shape where `d` is any ASCII digit and every other byte is literal.
fn has_shape(bytes: &[u8], shape: &[u8]) -> bool {
    bytes.len() == shape.len()
        && bytes
            .iter()
            .zip(shape)
            .all(|(&byte, &want)| if want == b'd' { byte.is_ascii_digit() } else { byte == want })
}

/// `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`, exactly.
fn parse_log_time(text: &str) -> Option<NaiveDateTime> {
    let bytes = text.as_bytes();
    if !has_shape(bytes, b"dddd-dd-ddTdd:dd:dd.dddZ") {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(digits(bytes, 0, 4)?).ok()?,
        digits(bytes, 5, 2)?,
        digits(bytes, 8, 2)?,
    )?;
    let time = NaiveTime::from_hms_milli_opt(
        digits(bytes, 11, 2)?,
        digits(bytes, 14, 2)?,
        digits(bytes, 17, 2)?,
        digits(bytes, 20, 3)?,
    )?;
    Some(date.and_time(time))
}

/// `startsAt.dropLast(1)` read as ISO local date-time: `yyyy-MM-ddTHH:mm[:ss[.f{1,9}]]`.
fn parse_alert_time(text: &str) -> Option<NaiveDateTime> {
    let (cut, _) = text.char_indices().last()?;
    let bytes = &text.as_bytes()[..cut];
    let head = bytes.get(..16)?;
    let upper_t = has_shape(head, b"dddd-dd-ddTdd:dd");
    if !upper_t && !has_shape(head, b"dddd-dd-ddtdd:dd") {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(digits(bytes, 0, 4)?).ok()?,
        digits(bytes, 5, 2)?,
        digits(bytes, 8, 2)?,
    )?;
    let rest = &bytes[16..];
    let (second, nanos) = match rest {
        [] => (0, 0),
        [b':', tail @ ..] => {
            let second = digits(tail, 0, 2)?;
            match &tail[2..] {
                [] => (second, 0),
                [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
                    let value = digits(fraction, 0, fraction.len())?;
                    let scale = 10u32.pow(u32::try_from(9 - fraction.len()).ok()?);
                    (second, value * scale)
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    let time = NaiveTime::from_hms_nano_opt(digits(bytes, 11, 2)?, digits(bytes, 14, 2)?, second, nanos)?;
    Some(date.and_time(time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").unwrap()
    }

    fn log_record() -> Value {
        json!({
            "level": "INFO",
            "message": "Disconnected from broker: nodered@mqtt://mqtt:1883",
            "software": "PLATFORM",
            "pipeline_component": "NODE-RED",
            "signal_type": "LOG",
            "tag": "com.rdsea.nodered.platform.signal.MqttConnectionFailureLog",
            "event_time": "2020-02-21T21:20:02.991Z",
            "subject": "signpost"
        })
    }

    fn alert_record() -> Value {
        json!({
            "signal_type": "PROMETHEUS_ALERT",
            "status": "firing",
            "labels": {"alertname": "MqttInstanceDownAlert", "instance": "mosquitto-exporter:9234",
                       "job": "mqtt", "pipeline_component": "MQTT_BROKER", "severity": "critical"},
            "annotations": {"description": "broker down", "summary": "MQTT not reachable"},
            "startsAt": "2020-02-21T21:20:41.617Z",
            "endsAt": "0001-01-01T00:00:00Z"
        })
    }

    #[test]
    fn parses_log_records() {
        let signal = parse_signal_record(&log_record()).unwrap();
        assert_eq!(signal.name, "MqttConnectionFailureLog");
        assert_eq!(signal.timestamp, at("2020-02-21T21:20:02.991"));
        assert_eq!(signal.pipeline_component, "NODE-RED");
        assert_eq!(signal.summary, "Disconnected from broker: nodered@mqtt://mqtt:1883");
        let keys: Vec<&str> = signal.details.keys().map(String::as_str).collect();
        assert_eq!(keys, ["level", "software", "subject"]);
        assert_eq!(signal.threshold, -1);
        assert_eq!(signal.threshold_counter, -1);
        assert_eq!(signal.cool_down_sec, -1);
        assert_eq!(signal.last_signal_time, None);
        assert_eq!(signal.item(), "MqttConnectionFailureLog#NODE-RED");
    }

    #[test]
    fn log_name_without_dot_is_the_whole_tag() {
        let mut record = log_record();
        record["tag"] = json!("Bare");
        assert_eq!(parse_signal_record(&record).unwrap().name, "Bare");
        record["tag"] = json!("ends.with.dot.");
        assert!(matches!(parse_signal_record(&record), Err(SignalError::BadName { field: "tag", .. })));
    }

    #[test]
    fn log_time_needs_exactly_three_fraction_digits_and_z() {
        let mut record = log_record();
        for bad in [
            "2020-02-21T21:30:09.791000000Z",
            "2020-02-21T21:30:09.79Z",
            "2020-02-21T21:30:09.791",
            "2020-02-21 21:30:09.791Z",
            "2020-02-30T21:30:09.791Z",
            "2020-02-21T24:30:09.791Z",
        ] {
            record["event_time"] = json!(bad);
            let error = parse_signal_record(&record).unwrap_err();
            assert!(matches!(error, SignalError::BadTime { field: "event_time", .. }), "{bad}: {error}");
        }
    }

    #[test]
    fn parses_alert_records() {
        let signal = parse_signal_record(&alert_record()).unwrap();
        assert_eq!(signal.name, "MqttInstanceDownAlert");
        assert_eq!(signal.timestamp, at("2020-02-21T21:20:41.617"));
        assert_eq!(signal.pipeline_component, "MQTT_BROKER");
        assert_eq!(signal.summary, "MQTT not reachable");
        assert_eq!(
            Value::Object(signal.details),
            json!({"labels": {"instance": "mosquitto-exporter:9234", "job": "mqtt", "severity": "critical"},
                   "annotations": {"description": "broker down"}})
        );
    }

    #[test]
    fn alert_time_is_iso_local_after_dropping_the_last_character() {
        let mut record = alert_record();
        for (text, want) in [
            ("2020-02-21T21:20:41.617386915Z", "2020-02-21T21:20:41.617386915"),
            ("2020-02-21T21:20:41Z", "2020-02-21T21:20:41"),
            ("2020-02-21T21:20Z", "2020-02-21T21:20:00"),
            ("2020-02-21T21:20:41.5+", "2020-02-21T21:20:41.5"),
            // Like `dropLast(1)`, whatever the last character is.
            ("2020-02-21T21:20:41.617", "2020-02-21T21:20:41.61"),
        ] {
            record["startsAt"] = json!(text);
            assert_eq!(parse_signal_record(&record).unwrap().timestamp, at(want), "{text}");
        }
        for bad in [
            "",
            "Z",
            "2020-02-21T21:20:41.Z",
            "2020-02-21T21:20:41.1234567890Z",
            "2020-02-21",
            "2020-13-01T00:00Z",
        ] {
            record["startsAt"] = json!(bad);
            assert!(
                matches!(parse_signal_record(&record), Err(SignalError::BadTime { field: "startsAt", .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(parse_signal_record(&json!([1])), Err(SignalError::NotAnObject));
        assert_eq!(parse_signal_record(&json!({})), Err(SignalError::Missing("signal_type")));
        assert_eq!(
            parse_signal_record(&json!({"signal_type": "TRACE"})),
            Err(SignalError::UnsupportedType("TRACE".into()))
        );
        let mut record = alert_record();
        record["labels"].as_object_mut().unwrap().remove("alertname");
        assert_eq!(parse_signal_record(&record), Err(SignalError::Missing("labels.alertname")));
        let mut record = alert_record();
        record["annotations"] = json!("text");
        assert_eq!(
            parse_signal_record(&record),
            Err(SignalError::WrongType { field: "annotations", expected: "an object" })
        );
        let mut record = log_record();
        record["message"] = json!(5);
        assert_eq!(
            parse_signal_record(&record),
            Err(SignalError::WrongType { field: "message", expected: "a string" })
        );
        let mut record = log_record();
        record.as_object_mut().unwrap().remove("pipeline_component");
        assert_eq!(parse_signal_record(&record), Err(SignalError::Missing("pipeline_component")));
    }

    #[test]
    fn names_and_components_are_length_limited() {
        let mut record = alert_record();
        record["labels"]["pipeline_component"] = json!("C".repeat(MAX_NAME_CHARS));
        assert!(parse_signal_record(&record).is_ok());
        record["labels"]["pipeline_component"] = json!("C".repeat(MAX_NAME_CHARS + 1));
        let error = parse_signal_record(&record).unwrap_err();
        assert!(matches!(error, SignalError::BadName { field: "labels.pipeline_component", .. }));
        assert!(error.to_string().contains("201 characters"), "{error}");
        assert!(error.to_string().len() < 250, "long values are shortened: {error}");
    }

    #[test]
    fn counter_semantics_match_the_reference() {
        let mut signal = Signal::new("S", at("2020-01-01T00:00:10.999"), "NIFI", "", Map::new());
        assert!(!signal.requires_multiple_occurrences());
        assert!(signal.is_activated(), "-1 >= -1");
        assert!(signal.is_within_cool_down_window(), "no previous occurrence");
        assert!(!signal.is_counter_initialized());
        signal.threshold = 3;
        signal.cool_down_sec = 10;
        assert!(signal.requires_multiple_occurrences());
        signal.last_signal_time = Some(at("2020-01-01T00:00:01.000"));
        assert!(signal.is_within_cool_down_window(), "9.999 s truncates to 9 < 10");
        signal.timestamp = at("2020-01-01T00:00:11.000");
        assert!(!signal.is_within_cool_down_window(), "10 s is not < 10");
        signal.timestamp = at("2019-12-31T23:59:51.001");
        assert!(signal.is_within_cool_down_window(), "absolute: 9.999 s earlier");
        signal.threshold_counter = 2;
        assert!(!signal.is_activated());
        signal.threshold_counter = 3;
        assert!(signal.is_activated());
    }

    #[test]
    fn time_helpers() {
        assert_eq!(format_time(at("2020-02-21T21:20:41.617999999")), "2020-02-21T21:20:41.617Z");
        assert_eq!(format_time(at("0999-01-02T03:04:05")), "0999-01-02T03:04:05.000Z");
        assert_eq!(floor_seconds_between(at("2020-01-01T00:00:00"), at("2020-01-01T00:02:00.999")), 120);
        assert_eq!(floor_seconds_between(at("2020-01-01T00:00:00.5"), at("2020-01-01T00:00:00")), -1);
        assert_eq!(abs_whole_seconds(at("2020-01-01T00:00:00.5"), at("2020-01-01T00:00:00")), 0);
        let millis = epoch_millis(at("2020-02-21T21:20:41.617"));
        assert_eq!(time_from_epoch_millis(millis), Some(at("2020-02-21T21:20:41.617")));
    }

    #[test]
    fn serializes_like_the_sample() {
        let mut signal = parse_signal_record(&alert_record()).unwrap();
        let text = serde_json::to_string(&signal).unwrap();
        assert!(!text.contains("lastSignalTime"), "unset times are omitted like Gson does: {text}");
        signal.last_signal_time = Some(signal.timestamp);
        let value = serde_json::to_value(&signal).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "name",
                "timestamp",
                "pipelineComponent",
                "summary",
                "details",
                "threshold",
                "thresholdCounter",
                "lastSignalTime",
                "coolDownSec"
            ]
        );
        assert_eq!(value["timestamp"], "2020-02-21T21:20:41.617Z");
    }
}
