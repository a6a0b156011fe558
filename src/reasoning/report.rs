//! Incident reports: what the reasoner emits when a CompositeSignal fires, in the exact JSON shape of the
//! reference's `Sample_Incident_Report.json` (a Gson serialization of its `Incident` class).
//!
//! Key order is `summary, participatingComponents, name, dateTime, compositeSignal{name, coolDownSec,
//! activationThreshold, numOfConnectedSignals, activeSignals[…]}`, times are
//! `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`, and the active signals serialize as [`Signal`] does. The reference
//! stored `activationThreshold` in Neo4j as written (`1`, not `1.0`), so a whole-number threshold is
//! written as an integer here and any other as a decimal.

use chrono::NaiveDateTime;
use serde::{Serialize, Serializer};

use super::signal::{Signal, serialize_time};

/// Largest integer an `f64` holds exactly (2^53); whole thresholds up to it are written as integers.
const EXACT_F64_INT: f64 = 9_007_199_254_740_992.0;

/// One incident indicated by a fired CompositeSignal (the reference's `Incident`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentReport {
    /// `Incident "<name>" is active! It is indicated by <k> signal(s).`
    pub summary: String,
    /// Distinct components of the active signals, in active-signal order (most recent first).
    pub participating_components: Vec<String>,
    /// Incident name.
    pub name: String,
    /// Time of the most recent active signal.
    #[serde(serialize_with = "serialize_time")]
    pub date_time: NaiveDateTime,
    /// The CompositeSignal that fired, with the signals that made it fire.
    pub composite_signal: CompositeSignalReport,
}

/// The fired CompositeSignal inside an [`IncidentReport`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompositeSignalReport {
    /// CompositeSignal name.
    pub name: String,
    /// Window, in seconds, the active signals must fall into.
    pub cool_down_sec: i32,
    /// Fraction of the connected signals that must be active.
    #[serde(serialize_with = "serialize_threshold")]
    pub activation_threshold: f64,
    /// Number of PART_OF edges into the CompositeSignal.
    pub num_of_connected_signals: usize,
    /// The active signals within the window, most recent first.
    pub active_signals: Vec<Signal>,
}

impl IncidentReport {
    /// Builds the report of incident `name` indicated by `composite_signal` at `date_time`, deriving the
    /// summary and the participating components from the active signals.
    pub fn new(
        name: impl Into<String>,
        date_time: NaiveDateTime,
        composite_signal: CompositeSignalReport,
    ) -> Self {
        let name = name.into();
        let summary = format!(
            "Incident \"{name}\" is active! It is indicated by {} signal(s).",
            composite_signal.active_signals.len()
        );
        let mut participating_components: Vec<String> = Vec::new();
        for signal in &composite_signal.active_signals {
            if !participating_components.contains(&signal.pipeline_component) {
                participating_components.push(signal.pipeline_component.clone());
            }
        }
        IncidentReport { summary, participating_components, name, date_time, composite_signal }
    }

    /// The report as a JSON value (keys in report order).
    pub fn to_json(&self) -> serde_json::Value {
        // Serializing these plain structs into a `Value` cannot fail: every map key is a string.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

fn serialize_threshold<S: Serializer>(threshold: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    let value = *threshold;
    if value.is_finite() && value.fract() == 0.0 && value.abs() <= EXACT_F64_INT {
        // Exact: a whole number within ±2^53 converts to i64 without loss.
        serializer.serialize_i64(value as i64)
    } else {
        serializer.serialize_f64(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reasoning::graph::KnowledgeGraph;
    use crate::reasoning::reasoner::Reasoner;
    use crate::reasoning::signal::parse_signal_record;
    use serde_json::{Map, Value, json};

    const SAMPLE: &str = include_str!("fixtures/sample_incident_report.json");
    const SAMPLE_SIGNALS: &str = include_str!("fixtures/sample_signals.jsonl");
    const KNOWLEDGE: &str = include_str!("../../flows/knowledge.yaml");

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").unwrap()
    }

    /// The sample's four records, plus the 31 earlier NiFi errors that brought its counter to 32: one a
    /// second, the last at 21:20:33.224, all merged in time order.
    fn sample_stream() -> Vec<Value> {
        let records: Vec<Value> =
            SAMPLE_SIGNALS.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(records.len(), 4);
        let nifi = records[2].clone();
        assert_eq!(nifi["event_time"], "2020-02-21T21:20:33.224Z");
        let mut stream: Vec<(String, Value)> = Vec::new();
        for second in 2..33 {
            let mut earlier = nifi.clone();
            let time = format!("2020-02-21T21:20:{second:02}.224Z");
            earlier["event_time"] = json!(time);
            stream.push((time, earlier));
        }
        for record in records {
            let time = record
                .get("event_time")
                .or_else(|| record.get("startsAt"))
                .and_then(Value::as_str)
                .unwrap()
                .to_string();
            stream.push((time, record));
        }
        stream.sort_by(|a, b| a.0.cmp(&b.0));
        stream.into_iter().map(|(_, record)| record).collect()
    }

    #[test]
    fn rebuilds_the_sample_incident_report() {
        let graph = KnowledgeGraph::from_yaml_str(KNOWLEDGE, "flows/knowledge.yaml").unwrap();
        let mut reasoner = Reasoner::new(graph);
        let stream = sample_stream();
        assert_eq!(stream.len(), 35);
        let mut reports = Vec::new();
        for (index, record) in stream.iter().enumerate() {
            let processed = reasoner.process(parse_signal_record(record).unwrap()).unwrap();
            if index + 1 < stream.len() {
                assert!(
                    processed.incidents.is_empty(),
                    "no incident before the broker alert (record {index})"
                );
            }
            reports.extend(processed.incidents);
        }
        assert_eq!(reports.len(), 1);
        let produced = serde_json::to_string_pretty(&reports[0]).unwrap();
        let expected: Value = serde_json::from_str(SAMPLE).unwrap();
        assert_eq!(reports[0].to_json(), expected, "values");
        // Same text, so the same key order at every level (and the same number formats).
        assert_eq!(produced, SAMPLE.trim_end());
    }

    #[test]
    fn summary_and_components_follow_the_active_signals() {
        let signal =
            |name: &str, component: &str, time: &str| Signal::new(name, at(time), component, "s", Map::new());
        let composite = CompositeSignalReport {
            name: "Cs".into(),
            cool_down_sec: 30,
            activation_threshold: 0.5,
            num_of_connected_signals: 3,
            active_signals: vec![
                signal("B", "NODE-RED", "2020-01-01T00:00:20"),
                signal("A", "NIFI", "2020-01-01T00:00:10"),
                signal("C", "NODE-RED", "2020-01-01T00:00:05"),
            ],
        };
        let report = IncidentReport::new("Outage", at("2020-01-01T00:00:20"), composite);
        assert_eq!(report.summary, "Incident \"Outage\" is active! It is indicated by 3 signal(s).");
        assert_eq!(report.participating_components, ["NODE-RED", "NIFI"]);
        let json = report.to_json();
        assert_eq!(json["compositeSignal"]["activationThreshold"], json!(0.5));
        assert_eq!(json["dateTime"], "2020-01-01T00:00:20.000Z");
    }

    #[test]
    fn whole_thresholds_are_integers() {
        let text = |threshold: f64| {
            let composite = CompositeSignalReport {
                name: "Cs".into(),
                cool_down_sec: 1,
                activation_threshold: threshold,
                num_of_connected_signals: 0,
                active_signals: Vec::new(),
            };
            serde_json::to_string(&composite).unwrap()
        };
        assert!(text(1.0).contains("\"activationThreshold\":1,"));
        assert!(text(0.75).contains("\"activationThreshold\":0.75,"));
    }
}
