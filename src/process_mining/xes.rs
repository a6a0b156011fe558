//! XES (IEEE 1849) event logs through the `process_mining` crate: replayed as an event source, and written
//! from a run's generated log (`<out>/events.xes`, readable by pm4py and ProM).
//!
//! A file that is not well-formed XML is reported at its line (the crate's parser does not say where, so
//! the file is read once more with `quick-xml` to find the place); an event without a `concept:name`
//! names its trace and position.

use std::path::Path;

use chrono::{DateTime, FixedOffset};
use process_mining::core::event_data::case_centric::xes::{
    XESImportOptions, export_xes_event_log_to_path, import_xes_slice,
};
use process_mining::core::event_data::case_centric::{
    Attribute, AttributeValue, Event, EventLog, Trace, XESEditableAttribute,
};

/// A log that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct XesError {
    /// The file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// One case of a log: its id and its activities in order.
pub type Case = (String, Vec<String>);

/// One case to write: its id and its events (activity, time).
pub type TimedCase = (String, Vec<(String, DateTime<FixedOffset>)>);

/// The first XML error of `bytes`: its line and message.
fn xml_problem(bytes: &[u8]) -> Option<(usize, String)> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(quick_xml::events::Event::Eof) => return None,
            Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)) => {
                for a in e.attributes() {
                    let bad = match a {
                        Ok(a) => std::str::from_utf8(&a.value).err().map(|e| e.to_string()),
                        Err(e) => Some(e.to_string()),
                    };
                    if let Some(m) = bad {
                        let at = (reader.buffer_position() as usize).min(bytes.len());
                        return Some((bytes[..at].iter().filter(|b| **b == b'\n').count() + 1, m));
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                let at = (reader.error_position() as usize).min(bytes.len());
                return Some((bytes[..at].iter().filter(|b| **b == b'\n').count() + 1, e.to_string()));
            }
        }
        buf.clear();
    }
}

fn text_of(a: Option<&Attribute>) -> Option<String> {
    match a.map(|a| &a.value) {
        Some(AttributeValue::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Reads a log's cases (`concept:name` of traces and events).
pub fn read(path: &Path) -> Result<Vec<Case>, XesError> {
    let file = path.display().to_string();
    let fail = |line, message: String| XesError { file: file.clone(), line, message };
    let bytes = std::fs::read(path).map_err(|e| fail(None, format!("cannot read: {e}")))?;
    let gz = file.ends_with(".gz");
    if !gz && let Some((line, m)) = xml_problem(&bytes) {
        return Err(fail(Some(line), format!("not well-formed XML: {m}")));
    }
    let log =
        import_xes_slice(&bytes, gz, XESImportOptions::default()).map_err(|e| fail(None, e.to_string()))?;
    let mut cases = Vec::with_capacity(log.traces.len());
    for (i, t) in log.traces.iter().enumerate() {
        let id = text_of(t.attributes.get_by_key("concept:name")).unwrap_or_else(|| format!("trace-{i}"));
        let mut acts = Vec::with_capacity(t.events.len());
        for (j, e) in t.events.iter().enumerate() {
            match text_of(e.attributes.get_by_key("concept:name")) {
                Some(a) => acts.push(a),
                None => {
                    return Err(fail(
                        None,
                        format!(
                            "trace {} ({id:?}), event {}: no concept:name (an activity is required)",
                            i + 1,
                            j + 1
                        ),
                    ));
                }
            }
        }
        cases.push((id, acts));
    }
    if cases.is_empty() {
        return Err(fail(None, "the log has no traces".into()));
    }
    Ok(cases)
}

/// Writes cases as an XES log; events get `time:timestamp` when their times are given.
pub fn write(path: &Path, cases: &[TimedCase]) -> Result<(), XesError> {
    let mut log = EventLog::new();
    for (id, events) in cases {
        let mut t = Trace::new();
        t.attributes.add_to_attributes("concept:name".into(), AttributeValue::String(id.clone()));
        for (a, at) in events {
            let mut e = Event::new(a.clone());
            e.attributes.add_to_attributes("time:timestamp".into(), AttributeValue::Date(*at));
            t.events.push(e);
        }
        log.traces.push(t);
    }
    export_xes_event_log_to_path(&log, path).map_err(|e| XesError {
        file: path.display().to_string(),
        line: None,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_logs_read_back_and_broken_ones_name_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.xes");
        let t = DateTime::parse_from_rfc3339("2020-02-21T21:00:00+00:00").unwrap();
        let cases = vec![
            ("c1".to_string(), vec![("A".to_string(), t), ("B".to_string(), t)]),
            ("c2".to_string(), vec![("A".to_string(), t)]),
        ];
        write(&path, &cases).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back, vec![("c1".into(), vec!["A".into(), "B".into()]), ("c2".into(), vec!["A".into()])]);

        let text = std::fs::read_to_string(&path).unwrap();
        let broken = text.replacen("<event>", "<event>\n<string key=\"concept:name\" value=\"x\">", 1);
        std::fs::write(&path, &broken).unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.line.is_some() && e.message.contains("not well-formed"), "{e}");

        let no_name =
            text.replacen("key=\"concept:name\" value=\"A\"", "key=\"org:resource\" value=\"A\"", 1);
        std::fs::write(&path, &no_name).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("trace 1 (\"c1\"), event 1: no concept:name"), "{e}");

        let mut bytes = text.into_bytes();
        let at = bytes.windows(3).position(|w| w == b"\"A\"").unwrap() + 1;
        bytes[at] = 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.line.is_some(), "a non-UTF-8 activity is reported at its line: {e}");
    }
}
