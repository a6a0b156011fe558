//! What a component kind's `check` gets: its name, the whole flow, and a place to record problems under
//! `components.<name>.<field>`.

use std::path::Path;

use super::flow::Flow;
use crate::config::KeyPath;

/// How bad a recorded problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// The flow cannot run.
    Error,
    /// Worth knowing.
    Warning,
}

/// The checking context of one component.
pub struct CheckCx<'a> {
    name: &'a str,
    flow: &'a Flow,
    found: &'a mut Vec<(KeyPath, Level, String)>,
}

impl<'a> CheckCx<'a> {
    /// A context for `name` recording into `found`.
    pub fn new(name: &'a str, flow: &'a Flow, found: &'a mut Vec<(KeyPath, Level, String)>) -> Self {
        CheckCx { name, flow, found }
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        self.name
    }

    /// The whole flow (to look at other components).
    pub fn flow(&self) -> &Flow {
        self.flow
    }

    /// `components.<name>.<field>`; `field` may be a path (`topics.poke-orders.partitions`).
    fn key(&self, field: &str) -> KeyPath {
        KeyPath::root().key("components").key(self.name).join(&KeyPath::parse(field))
    }

    /// An error at one of its fields (`""` for the component as a whole).
    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        let key = self.key(field);
        self.found.push((key, Level::Error, message.into()));
    }

    /// A warning at one of its fields.
    pub fn warning(&mut self, field: &str, message: impl Into<String>) {
        let key = self.key(field);
        self.found.push((key, Level::Warning, message.into()));
    }

    /// An error unless `ok`.
    pub fn require(&mut self, ok: bool, field: &str, message: impl Into<String>) {
        if !ok {
            self.error(field, message);
        }
    }

    /// Output paths stay inside the run's output directory (which each run clears).
    pub fn relative_path(&mut self, field: &str, path: &Path) {
        let escapes = path.is_absolute()
            || path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
        if escapes || path.as_os_str().is_empty() {
            self.error(
                field,
                format!(
                    "{:?} must be a relative path inside the output directory",
                    path.display().to_string()
                ),
            );
        }
    }

    /// An MQTT topic filter (`customTopic`, `sensors/+/data`, `#`).
    pub fn topic_filter(&mut self, field: &str, filter: &str) {
        if let Err(e) = crate::transport::mqtt::topic::validate_filter(filter) {
            self.error(field, e.to_string());
        }
    }

    /// An MQTT topic name to publish to (no wildcards).
    pub fn topic_name(&mut self, field: &str, topic: &str) {
        if let Err(e) = crate::transport::mqtt::topic::validate_topic_name(topic) {
            self.error(field, e.to_string());
        }
    }

    /// The names of the links that deliver to `instance`.
    pub fn inbound(&self, instance: &str) -> Vec<String> {
        self.flow
            .edges()
            .into_iter()
            .filter(|(_, t)| t == instance)
            .map(|(f, t)| format!("{f}->{t}"))
            .collect()
    }
}
