//! The records on the event topics: `{"case": …, "activity": …, "timestamp": …}` — the shape of the order
//! services' `poke-order-events` too, so a miner reads either. A case id may be a string or a number.
//! The validation stream marks the last event of each case with `"last": true`, so the conformance
//! checker knows a held-out case is complete.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest case id or activity accepted from the bus.
pub const MAX_FIELD: usize = 1000;

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessEvent {
    /// Case id.
    pub case: String,
    /// Activity name.
    pub activity: String,
    /// ISO 8601 time of the event.
    pub timestamp: String,
    /// The last event of its case (validation stream only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub last: bool,
}

/// Why a record is not an event (it is counted and dropped, never fatal).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Not UTF-8.
    #[error("not UTF-8 (at byte {0})")]
    NotUtf8(usize),
    /// Not a JSON object.
    #[error("not a JSON object")]
    NotJson,
    /// A field is missing or not usable.
    #[error("field {0}: {1}")]
    Field(&'static str, &'static str),
}

impl EventError {
    /// A short reason for metrics (`chaoslab_records_dropped_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            EventError::NotUtf8(_) => "not_utf8",
            EventError::NotJson => "not_json",
            EventError::Field("case", _) => "no_case",
            EventError::Field(..) => "bad_event",
        }
    }
}

fn text(v: Option<&Value>, field: &'static str, numbers: bool) -> Result<String, EventError> {
    let s = match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if numbers => n.to_string(),
        None | Some(Value::Null) => return Err(EventError::Field(field, "missing")),
        Some(_) => return Err(EventError::Field(field, "must be a string")),
    };
    if s.trim().is_empty() {
        return Err(EventError::Field(field, "empty"));
    }
    if s.chars().count() > MAX_FIELD {
        return Err(EventError::Field(field, "over 1000 characters"));
    }
    Ok(s)
}

impl ProcessEvent {
    /// Reads one record.
    pub fn parse(payload: &[u8]) -> Result<ProcessEvent, EventError> {
        let text_payload = std::str::from_utf8(payload).map_err(|e| EventError::NotUtf8(e.valid_up_to()))?;
        /// The fields read; others are skipped without being built (a record is parsed per event).
        #[derive(serde::Deserialize)]
        struct Fields {
            case: Option<Value>,
            activity: Option<Value>,
            timestamp: Option<Value>,
            last: Option<Value>,
        }
        // Only an object: serde would also read a struct from an array.
        if !text_payload.trim_start().starts_with('{') {
            return Err(EventError::NotJson);
        }
        let Ok(m) = serde_json::from_str::<Fields>(text_payload) else {
            return Err(EventError::NotJson);
        };
        Ok(ProcessEvent {
            case: text(m.case.as_ref(), "case", true)?,
            activity: text(m.activity.as_ref(), "activity", false)?,
            timestamp: m.timestamp.as_ref().and_then(Value::as_str).unwrap_or("").to_string(),
            last: m.last.as_ref().and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// The record's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_and_bad_records_say_why() {
        let e = ProcessEvent::parse(
            br#"{"case": 42, "activity": "order created", "timestamp": "2024-01-01T00:00:00"}"#,
        )
        .unwrap();
        assert_eq!((e.case.as_str(), e.activity.as_str(), e.last), ("42", "order created", false));
        let v = ProcessEvent { case: "c".into(), activity: "a".into(), timestamp: "t".into(), last: true };
        assert_eq!(ProcessEvent::parse(&v.to_bytes()).unwrap(), v);
        assert_eq!(ProcessEvent::parse(br#"{"activity": "a"}"#).unwrap_err().reason(), "no_case");
        assert_eq!(ProcessEvent::parse(br#"["c", "a"]"#).unwrap_err(), EventError::NotJson);
        assert_eq!(
            ProcessEvent::parse(br#"{"case": "1", "activity": ""}"#).unwrap_err(),
            EventError::Field("activity", "empty")
        );
        assert_eq!(
            ProcessEvent::parse(b"{\"case\": \"1\", \"activity\": \"\xff\"}").unwrap_err(),
            EventError::NotUtf8(27)
        );
        assert_eq!(ProcessEvent::parse(b"[1]").unwrap_err(), EventError::NotJson);
        let long = format!(r#"{{"case": "1", "activity": "{}"}}"#, "x".repeat(1001));
        assert!(ProcessEvent::parse(long.as_bytes()).is_err());
    }
}
