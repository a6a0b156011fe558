//! Reading and writing the knowledge-graph YAML (schema in the module doc of [`super`]).
//!
//! `marked-yaml` parses the file with positions; each list entry is read into a plain `serde` struct and
//! applied with the same checks as the edits. Every problem — syntax, repeated or unknown keys, wrong
//! types, duplicates, references to nodes not declared, values out of range — is recorded in one
//! [`Problems`] and reported together, each as `file:line:key: message`.

use std::path::Path;

use marked_yaml::Node;
use serde::{Deserialize, Serialize};

use super::{CompositeSpec, GraphComponent, GraphError, GraphLink, IncidentSpec, KnowledgeGraph, SignalSpec};
use crate::config::Problems;
use crate::config::locate::YamlLines;
use crate::config::problems::{FileProblems, KeyPath};
use crate::config::yaml::{check_keys, from_node, is_null};
use crate::reasoning::signal::{DEFAULT_COOL_DOWN_SEC, DEFAULT_THRESHOLD};

/// The file format, as written by [`KnowledgeGraph::to_yaml`].
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct KnowledgeFile {
    components: Vec<FileComponent>,
    incidents: Vec<FileIncident>,
    signals: Vec<FileSignal>,
    composite_signals: Vec<FileComposite>,
}

/// Keys of the file.
const FILE_KEYS: &[&str] = &["components", "incidents", "signals", "compositeSignals"];

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileComponent {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    predecessor_of: Vec<String>,
}

const COMPONENT_KEYS: &[&str] = &["name", "owner", "predecessorOf"];

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileIncident {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

const INCIDENT_KEYS: &[&str] = &["name", "description"];

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileSignal {
    name: String,
    component: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threshold: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cool_down_sec: Option<i32>,
}

const SIGNAL_KEYS: &[&str] = &["name", "component", "threshold", "coolDownSec"];

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileComposite {
    name: String,
    #[serde(default)]
    activation_threshold: Option<f64>,
    #[serde(default)]
    cool_down_sec: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<FilePart>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    indicates: Vec<String>,
}

const COMPOSITE_KEYS: &[&str] = &["name", "activationThreshold", "coolDownSec", "parts", "indicates"];

#[derive(Debug, Serialize, Deserialize)]
struct FilePart {
    signal: String,
    component: String,
}

const PART_KEYS: &[&str] = &["signal", "component"];

impl KnowledgeGraph {
    /// Loads a graph from a YAML file.
    pub fn load(path: &Path) -> Result<Self, GraphError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| GraphError::Read { path: path.to_path_buf(), source })?;
        Self::from_yaml_str(&text, &path.display().to_string())
    }

    /// Loads a graph from YAML text; `origin` names it in problems (usually the file name). Every problem
    /// found is reported in [`GraphError::Load`].
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Self, GraphError> {
        let mut problems = Problems::new();
        let mut graph = KnowledgeGraph::new();
        if let Some(doc) = YamlLines::load(origin, text, &mut problems)
            && let Some(root) = doc.root()
        {
            let mut reader = Reader { problems: problems.in_file(origin, &doc), graph: &mut graph };
            reader.file(root);
        }
        problems.sort_by_line();
        problems.check().map_err(GraphError::Load)?;
        Ok(graph)
    }

    /// The graph's configuration (no run-time state) as YAML in the schema of the module doc.
    pub fn to_yaml(&self) -> Result<String, GraphError> {
        let file = KnowledgeFile {
            components: self
                .components
                .iter()
                .map(|c| FileComponent {
                    name: c.name.clone(),
                    owner: c.owner.clone(),
                    predecessor_of: c.predecessor_of.clone(),
                })
                .collect(),
            incidents: self
                .incidents
                .iter()
                .map(|i| FileIncident { name: i.name.clone(), description: i.description.clone() })
                .collect(),
            signals: self
                .signals
                .iter()
                .map(|s| {
                    let counted =
                        s.threshold != DEFAULT_THRESHOLD || s.cool_down_sec != DEFAULT_COOL_DOWN_SEC;
                    FileSignal {
                        name: s.name.clone(),
                        component: s.component.clone(),
                        threshold: counted.then_some(s.threshold),
                        cool_down_sec: counted.then_some(s.cool_down_sec),
                    }
                })
                .collect(),
            composite_signals: self
                .composites
                .iter()
                .map(|c| FileComposite {
                    name: c.name.clone(),
                    activation_threshold: Some(c.activation_threshold),
                    cool_down_sec: Some(c.cool_down_sec),
                    parts: c
                        .parts
                        .iter()
                        .map(|p| FilePart {
                            signal: p.signal.name.clone(),
                            component: p.signal.component.clone(),
                        })
                        .collect(),
                    indicates: c.indicates.iter().map(|i| i.incident.clone()).collect(),
                })
                .collect(),
        };
        serde_norway::to_string(&file).map_err(GraphError::Yaml)
    }

    /// Writes [`to_yaml`](Self::to_yaml) to `path` through a temporary file in the same directory that is
    /// then renamed over `path`, so readers never see a half-written file.
    pub fn save(&self, path: &Path) -> Result<(), GraphError> {
        let text = self.to_yaml()?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temporary = path.with_file_name(format!(".{name}.tmp"));
        std::fs::write(&temporary, text)
            .map_err(|source| GraphError::Write { path: temporary.clone(), source })?;
        std::fs::rename(&temporary, path)
            .map_err(|source| GraphError::Write { path: path.to_path_buf(), source })
    }
}

/// Applies one file to a graph, recording every problem.
struct Reader<'a> {
    problems: FileProblems<'a>,
    graph: &'a mut KnowledgeGraph,
}

impl Reader<'_> {
    fn file(&mut self, root: &Node) {
        let top = KeyPath::root();
        check_keys(root, &top, FILE_KEYS, &mut self.problems);
        let components: Vec<(KeyPath, FileComponent)> = self.entries(root, "components", COMPONENT_KEYS);
        for (at, c) in &components {
            let spec = GraphComponent { name: c.name.clone(), owner: c.owner.clone() };
            let result = self.graph.create_component(spec);
            self.record(at, result);
        }
        for (at, c) in &components {
            for (j, to) in c.predecessor_of.iter().enumerate() {
                let link = GraphLink::PredecessorOf { from: c.name.clone(), to: to.clone() };
                let result = self.graph.link(link);
                self.record(&at.key("predecessorOf").index(j), result);
            }
        }
        for (at, i) in self.entries::<FileIncident>(root, "incidents", INCIDENT_KEYS) {
            let result =
                self.graph.create_incident(IncidentSpec { name: i.name, description: i.description });
            self.record(&at, result);
        }
        for (at, s) in self.entries::<FileSignal>(root, "signals", SIGNAL_KEYS) {
            let spec = SignalSpec {
                name: s.name,
                component: s.component,
                threshold: s.threshold,
                cool_down_sec: s.cool_down_sec,
            };
            let result = self.graph.create_signal(spec);
            self.record(&at, result);
        }
        for (at, c) in self.entries::<FileComposite>(root, "compositeSignals", COMPOSITE_KEYS) {
            let spec = CompositeSpec {
                name: c.name.clone(),
                activation_threshold: c.activation_threshold,
                cool_down_sec: c.cool_down_sec,
            };
            let result = self.graph.create_composite(spec);
            if !self.record(&at, result) {
                continue;
            }
            for (j, part) in c.parts.into_iter().enumerate() {
                let link = GraphLink::PartOf {
                    signal: part.signal,
                    component: part.component,
                    composite: c.name.clone(),
                };
                let result = self.graph.link(link);
                self.record(&at.key("parts").index(j), result);
            }
            for (j, incident) in c.indicates.into_iter().enumerate() {
                let result = self.graph.link(GraphLink::Indicates { composite: c.name.clone(), incident });
                self.record(&at.key("indicates").index(j), result);
            }
        }
    }

    /// Records the error of an edit at `at`; true when it succeeded.
    fn record(&mut self, at: &KeyPath, result: Result<(), GraphError>) -> bool {
        match result {
            Ok(()) => true,
            Err(error) => {
                self.problems.error(at.clone(), error.to_string());
                false
            }
        }
    }

    /// The readable entries of the list `name` (absent or null: none), each with its key path. Unknown
    /// keys and entries of the wrong shape are recorded.
    fn entries<T: for<'de> Deserialize<'de>>(
        &mut self,
        root: &Node,
        name: &str,
        known: &[&str],
    ) -> Vec<(KeyPath, T)> {
        let at = KeyPath::root().key(name);
        let Some(node) = root.as_mapping().and_then(|m| m.get_node(name)).filter(|n| !is_null(n)) else {
            return Vec::new();
        };
        let Some(items) = node.as_sequence() else {
            self.problems.error(at, format!("`{name}` must be a list"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = at.index(i);
            check_keys(item, &at, known, &mut self.problems);
            let parts = item.as_mapping().and_then(|m| m.get_node("parts")).and_then(Node::as_sequence);
            if let Some(parts) = parts.filter(|_| name == "compositeSignals") {
                for (j, part) in parts.iter().enumerate() {
                    check_keys(part, &at.key("parts").index(j), PART_KEYS, &mut self.problems);
                }
            }
            if let Some(value) = from_node(item, &at, &mut self.problems) {
                out.push((at, value));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reasoning::graph::{DEFAULT_ACTIVATION_THRESHOLD, DEFAULT_COMPOSITE_COOL_DOWN_SEC};

    const KNOWLEDGE: &str = include_str!("../../../flows/knowledge.yaml");

    fn demo() -> KnowledgeGraph {
        KnowledgeGraph::from_yaml_str(KNOWLEDGE, "flows/knowledge.yaml").unwrap()
    }

    /// The first problem of a file that does not load: its line and `key: message`.
    fn load_error(text: &str) -> (Option<usize>, String) {
        match KnowledgeGraph::from_yaml_str(text, "k.yaml") {
            Err(GraphError::Load(problems)) => {
                let first = &problems.0[0];
                assert_eq!(first.file, "k.yaml");
                let reason = if first.key.is_empty() {
                    first.message.clone()
                } else {
                    format!("{}: {}", first.key, first.message)
                };
                (first.line, reason)
            }
            other => panic!("expected a load error, got {other:?}"),
        }
    }

    #[test]
    fn loads_the_demo_graph() {
        let graph = demo();
        let names: Vec<&str> = graph.components().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["SENSOR", "MQTT_BROKER", "NIFI", "FLINK", "NODE-RED", "HADOOP", "SPARK", "ELASTICSEARCH"]
        );
        assert_eq!(graph.component("MQTT_BROKER").unwrap().predecessor_of, ["NIFI", "FLINK", "NODE-RED"]);
        assert_eq!(graph.component("NIFI").unwrap().owner.as_deref(), Some("ServiceProvider1"));
        let nifi = graph.signal("MqttConnectionError", "NIFI").unwrap();
        assert_eq!((nifi.threshold, nifi.cool_down_sec), (10, 15));
        let alert = graph.signal("MqttInstanceDownAlert", "MQTT_BROKER").unwrap();
        assert_eq!((alert.threshold, alert.cool_down_sec, alert.threshold_counter), (-1, -1, -1));
        let composite = graph.composite("MqttUnavailable").unwrap();
        assert_eq!(composite.activation_threshold, 1.0);
        assert_eq!(composite.cool_down_sec, 120);
        assert_eq!(composite.parts.len(), 4);
        assert_eq!(composite.indicates[0].incident, "Data Loading Incident");
    }

    #[test]
    fn yaml_round_trip_keeps_the_configuration() {
        let graph = demo();
        let text = graph.to_yaml().unwrap();
        let again = KnowledgeGraph::from_yaml_str(&text, "round-trip").unwrap();
        assert_eq!(again, graph);
    }

    #[test]
    fn save_writes_through_a_renamed_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("knowledge.yaml");
        let mut graph = demo();
        graph.create_incident(IncidentSpec { name: "Storage Incident".into(), description: None }).unwrap();
        graph.save(&path).unwrap();
        let entries: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(entries, ["knowledge.yaml"], "no temporary file is left behind");
        let loaded = KnowledgeGraph::load(&path).unwrap();
        assert!(loaded.incident("Storage Incident").is_some());
        assert!(matches!(
            KnowledgeGraph::load(&dir.path().join("missing.yaml")),
            Err(GraphError::Read { .. })
        ));
    }

    #[test]
    fn unknown_keys_fail_with_line() {
        let text = "components:\n  - name: NIFI\n    colour: blue\n";
        let (line, reason) = load_error(text);
        assert_eq!(line, Some(3));
        assert!(reason.contains("unknown field `colour`"), "{reason}");
        assert!(!reason.contains("at line"), "the location is not repeated: {reason}");
        let (line, reason) = load_error("component: []\n");
        assert_eq!(line, Some(1));
        assert!(reason.contains("unknown field `component`"), "{reason}");
    }

    #[test]
    fn unknown_references_fail_with_line_and_path() {
        let text = "\
components:
  - name: NIFI
signals:
  - name: A
    component: NIFI
  - name: B
    component: NIFY
";
        let (line, reason) = load_error(text);
        assert_eq!(line, Some(6));
        assert_eq!(reason, "signals[1]: unknown DataPipeline component \"NIFY\"");

        let text = "\
components:
  - name: NIFI
    predecessorOf:
      - HADOOP
";
        let (line, reason) = load_error(text);
        assert_eq!(line, Some(4));
        assert_eq!(reason, "components[0].predecessorOf[0]: unknown DataPipeline component \"HADOOP\"");

        let text = "\
components: [{name: NIFI}]
signals: [{name: A, component: NIFI}]
incidents: [{name: I}]
compositeSignals:
  - name: Cs
    parts:
      - {signal: A, component: NIFI}
      - {signal: A, component: FLINK}
    indicates: [I]
";
        let (line, reason) = load_error(text);
        assert_eq!(line, Some(8));
        assert_eq!(reason, "compositeSignals[0].parts[1]: unknown signal \"A\" of component \"FLINK\"");

        let text = "\
components: [{name: NIFI}]
compositeSignals:
  - name: Cs
    indicates:
      - Nothing
";
        let (line, reason) = load_error(text);
        assert_eq!(line, Some(5));
        assert!(reason.contains("unknown incident \"Nothing\""), "{reason}");
    }

    #[test]
    fn duplicates_fail_with_line() {
        let (line, reason) = load_error("components:\n  - name: NIFI\n  - name: FLINK\n  - name: NIFI\n");
        assert_eq!(line, Some(4));
        assert_eq!(reason, "components[2]: component \"NIFI\" already exists");
        let text = "components:\n  - name: NIFI\n  - name: FLINK\n    predecessorOf: [NIFI, NIFI]\n";
        let (line, reason) = load_error(text);
        assert_eq!(line, Some(4));
        assert!(reason.contains("PREDECESSOR_OF edge \"FLINK\" -> \"NIFI\" already exists"), "{reason}");
        let text = "components: [{name: NIFI}]\nsignals:\n  - {name: A, component: NIFI}\n  - {name: A, component: NIFI}\n";
        let (line, reason) = load_error(text);
        assert_eq!(line, Some(4));
        assert!(reason.contains("signal \"A\" of component \"NIFI\" already exists"), "{reason}");
    }

    #[test]
    fn out_of_range_properties_fail() {
        let base = "components: [{name: NIFI}]\n";
        let (_, reason) =
            load_error(&format!("{base}signals: [{{name: A, component: NIFI, threshold: 3}}]\n"));
        assert!(reason.contains("needs both threshold and coolDownSec"), "{reason}");
        let (_, reason) = load_error(&format!(
            "{base}signals: [{{name: A, component: NIFI, threshold: 0, coolDownSec: 5}}]\n"
        ));
        assert!(reason.contains("invalid threshold"), "{reason}");
        let (line, reason) =
            load_error(&format!("{base}compositeSignals:\n  - name: Cs\n    activationThreshold: 0\n"));
        assert_eq!(line, Some(3));
        assert!(reason.contains("activationThreshold: 0 is not in (0, 1]"), "{reason}");
        let (_, reason) =
            load_error(&format!("{base}compositeSignals: [{{name: Cs, activationThreshold: 1.5}}]\n"));
        assert!(reason.contains("not in (0, 1]"), "{reason}");
        let (_, reason) = load_error(&format!("{base}compositeSignals: [{{name: Cs, coolDownSec: 0}}]\n"));
        assert!(reason.contains("invalid coolDownSec"), "{reason}");
        let long = "N".repeat(201);
        let (line, reason) = load_error(&format!("components:\n  - name: {long}\n"));
        assert_eq!(line, Some(2));
        assert!(reason.contains("invalid component name: 201 characters"), "{reason}");
        let (line, reason) = load_error("components:\n  - name: 5\n    owner: [x]\n");
        assert_eq!(line, Some(3));
        assert!(reason.contains("invalid type"), "{reason}");
    }

    #[test]
    fn defaults_apply_to_composites() {
        let text = "components: [{name: NIFI}]\ncompositeSignals: [{name: Cs}]\n";
        let graph = KnowledgeGraph::from_yaml_str(text, "k").unwrap();
        let composite = graph.composite("Cs").unwrap();
        assert_eq!(composite.activation_threshold, DEFAULT_ACTIVATION_THRESHOLD);
        assert_eq!(composite.cool_down_sec, DEFAULT_COMPOSITE_COOL_DOWN_SEC);
    }

    #[test]
    fn every_problem_of_a_file_is_reported() {
        let text = "\
components:
  - name: NIFI
    colour: blue
  - name: NIFI
  - name: FLINK
    owner: [x]
signals:
  - {name: A, component: NIFY}
  - {name: B, component: NIFI, threshold: lots, coolDownSec: 5}
compositeSignals:
  - name: Cs
    activationThreshold: 2
  - name: Ds
    parts:
      - {signal: A, component: NIFI, weight: 1}
    indicates: [Nothing]
";
        let Err(GraphError::Load(problems)) = KnowledgeGraph::from_yaml_str(text, "k.yaml") else {
            panic!("expected problems")
        };
        let lines: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "k.yaml:3:components[0].colour: unknown field `colour`, expected one of `name`, `owner`, \
                 `predecessorOf`",
                "k.yaml:4:components[1]: component \"NIFI\" already exists",
                "k.yaml:6:components[2].owner: invalid type: sequence, expected a string",
                "k.yaml:8:signals[0]: unknown DataPipeline component \"NIFY\"",
                "k.yaml:9:signals[1].threshold: `lots` is not a valid integer (invalid digit found in string)",
                "k.yaml:11:compositeSignals[0]: invalid activationThreshold: 2 is not in (0, 1]",
                "k.yaml:15:compositeSignals[1].parts[0].weight: unknown field `weight`, expected one of `signal`, \
                 `component`",
                "k.yaml:15:compositeSignals[1].parts[0]: unknown signal \"A\" of component \"NIFI\"",
                "k.yaml:16:compositeSignals[1].indicates[0]: unknown incident \"Nothing\"",
            ]
        );
    }
}
