//! Ground truth: what no reference setup can know, because chaoslab injected the faults itself.
//!
//! For each fault applied in a run, the incidents reported while it was in force or within
//! [`DETECTION_WINDOW`] after it ended, each with its time to detect (incident time minus fault start);
//! and every incident that no fault explains (a false positive, or a failure chaoslab did not cause).

use serde::Serialize;

use super::faults::FaultRecord;
use crate::reasoning::incident_reasoner::IncidentSeen;

/// How long after a fault ends an incident still counts as caused by it.
pub const DETECTION_WINDOW_MS: i64 = 5 * 60 * 1000;

/// The same as a duration, for messages.
pub const DETECTION_WINDOW: std::time::Duration =
    std::time::Duration::from_millis(DETECTION_WINDOW_MS as u64);

/// One incident a fault explains.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Detection {
    /// Incident name.
    pub incident: String,
    /// Its `dateTime`.
    pub at: String,
    /// Seconds from the fault's start to the incident.
    pub time_to_detect_secs: f64,
}

/// A fault and what detected it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultTruth {
    /// Fault id.
    pub fault: String,
    /// Its kind.
    pub kind: String,
    /// Its targets.
    pub targets: Vec<String>,
    /// When it started.
    pub applied_at: String,
    /// What asked for it (a Chaos Mesh object), when not a user directly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Incidents it explains, in time order; empty: undetected.
    pub detections: Vec<Detection>,
}

/// The whole picture.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GroundTruth {
    /// Per fault.
    pub faults: Vec<FaultTruth>,
    /// Incidents no fault explains.
    pub unexplained: Vec<IncidentSeen>,
}

fn millis(iso: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(iso).ok().map(|t| t.timestamp_millis())
}

/// Joins faults and incidents by time.
pub fn ground_truth(faults: &[FaultRecord], incidents: &[IncidentSeen]) -> GroundTruth {
    let mut explained = vec![false; incidents.len()];
    let mut out = Vec::new();
    for f in faults {
        let Some(start) = millis(&f.applied_at) else { continue };
        let end = f.ended_at.as_deref().and_then(millis).unwrap_or(i64::MAX - DETECTION_WINDOW_MS);
        let mut detections = Vec::new();
        for (i, inc) in incidents.iter().enumerate() {
            if inc.at_ms >= start && inc.at_ms <= end.saturating_add(DETECTION_WINDOW_MS) {
                explained[i] = true;
                detections.push(Detection {
                    incident: inc.name.clone(),
                    at: inc.date_time.clone(),
                    time_to_detect_secs: (inc.at_ms - start) as f64 / 1000.0,
                });
            }
        }
        out.push(FaultTruth {
            fault: f.id.clone(),
            kind: f.kind.clone(),
            targets: f.targets.clone(),
            applied_at: f.applied_at.clone(),
            origin: f.origin.clone(),
            detections,
        });
    }
    let unexplained =
        incidents.iter().zip(&explained).filter(|(_, e)| !**e).map(|(i, _)| i.clone()).collect();
    GroundTruth { faults: out, unexplained }
}

/// The ground truth of an experiment that started at `journal_start` (the journal's `start`, naive
/// UTC): faults applied from then on, and the incidents from then on.
pub fn since_journal_start(
    faults: &[FaultRecord],
    incidents: &[IncidentSeen],
    journal_start: &str,
) -> GroundTruth {
    let start = chrono::NaiveDateTime::parse_from_str(journal_start, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(i64::MIN);
    let faults: Vec<FaultRecord> =
        faults.iter().filter(|f| millis(&f.applied_at).is_some_and(|t| t >= start)).cloned().collect();
    let incidents: Vec<IncidentSeen> = incidents.iter().filter(|i| i.at_ms >= start).cloned().collect();
    ground_truth(&faults, &incidents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(id: &str, applied: &str, ended: Option<&str>) -> FaultRecord {
        FaultRecord {
            id: id.into(),
            kind: "mqtt-broker-down".into(),
            category: "mqtt".into(),
            targets: vec!["MQTT_BROKER".into()],
            selector: "MQTT_BROKER".into(),
            parameters: Default::default(),
            duration_ms: None,
            applied_at: applied.into(),
            applied_ms: 0,
            expires_at: None,
            status: "expired".into(),
            ended_at: ended.map(str::to_owned),
            reason: None,
            output: serde_json::Value::Null,
            origin: None,
        }
    }

    fn incident(at: &str) -> IncidentSeen {
        IncidentSeen {
            name: "Data Loading Incident".into(),
            composite: "MqttUnavailable".into(),
            date_time: at.into(),
            at_ms: millis(at).unwrap(),
            signals: vec![],
            components: vec![],
        }
    }

    #[test]
    fn incidents_are_matched_to_faults_with_time_to_detect() {
        let faults = [fault("f-0001", "2020-02-21T21:00:10.000Z", Some("2020-02-21T21:01:40.000Z"))];
        let incidents = [
            incident("2020-02-21T21:00:50.000Z"),
            incident("2020-02-21T21:06:39.000Z"),
            incident("2020-02-21T21:06:41.000Z"),
            incident("2020-02-21T20:59:00.000Z"),
        ];
        let t = ground_truth(&faults, &incidents);
        assert_eq!(t.faults[0].detections.len(), 2, "during, and within 5 min after the end");
        assert_eq!(t.faults[0].detections[0].time_to_detect_secs, 40.0);
        assert_eq!(t.unexplained.len(), 2, "one after the window, one before the fault");
        let none = ground_truth(&faults, &[]);
        assert!(none.faults[0].detections.is_empty() && none.unexplained.is_empty());
    }
}
