//! The graph as the HTTP API serves it: nodes and edges with their properties and state.

use chrono::NaiveDateTime;
use serde::Serialize;

use super::{KnowledgeGraph, SignalKey};
use crate::reasoning::signal::DEFAULT_THRESHOLD_COUNTER;

impl KnowledgeGraph {
    /// Nodes and edges for the HTTP API.
    pub fn view(&self) -> GraphView {
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        for component in &self.components {
            nodes.push(NodeView::DataPipeline {
                id: component_id(&component.name),
                name: component.name.clone(),
                owner: component.owner.clone(),
            });
            for to in &component.predecessor_of {
                edges.push(EdgeView::plain(
                    "PREDECESSOR_OF",
                    component_id(&component.name),
                    component_id(to),
                ));
            }
        }
        for signal in &self.signals {
            let id = signal_id(&signal.key());
            nodes.push(NodeView::Signal {
                id: id.clone(),
                name: signal.name.clone(),
                component: signal.component.clone(),
                threshold: signal.threshold,
                cool_down_sec: signal.cool_down_sec,
                threshold_counter: (signal.threshold_counter != DEFAULT_THRESHOLD_COUNTER)
                    .then_some(signal.threshold_counter),
                last_signal_time: signal.last_signal_time,
                summary: signal.summary.clone(),
            });
            edges.push(EdgeView::plain("SIGNALLED_BY", id, component_id(&signal.component)));
        }
        for incident in &self.incidents {
            nodes.push(NodeView::Incident {
                id: incident_id(&incident.name),
                name: incident.name.clone(),
                description: incident.description.clone(),
            });
        }
        for composite in &self.composites {
            let id = composite_id(&composite.name);
            nodes.push(NodeView::CompositeSignal {
                id: id.clone(),
                name: composite.name.clone(),
                activation_threshold: composite.activation_threshold,
                cool_down_sec: composite.cool_down_sec,
            });
            for part in &composite.parts {
                let mut edge = EdgeView::plain("PART_OF", signal_id(&part.signal), id.clone());
                edge.activation_time = part.activation_time;
                edges.push(edge);
            }
            for indicates in &composite.indicates {
                let mut edge = EdgeView::plain("INDICATES", id.clone(), incident_id(&indicates.incident));
                edge.last_activation = indicates.last_activation;
                edges.push(edge);
            }
        }
        GraphView { nodes, edges }
    }
}

/// The graph as the HTTP API serves it: `{"nodes": [...], "edges": [...]}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GraphView {
    /// All nodes; each has `label`, `id` (`<label kind>:<identity>`) and its properties.
    pub nodes: Vec<NodeView>,
    /// All edges; each has `type`, `from`, `to` and its state properties when set.
    pub edges: Vec<EdgeView>,
}

/// A node of [`GraphView`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "label")]
pub enum NodeView {
    /// A component.
    DataPipeline {
        /// `component:<name>`.
        id: String,
        /// Name.
        name: String,
        /// Owner.
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
    },
    /// A signal.
    #[serde(rename_all = "camelCase")]
    Signal {
        /// `signal:<name>#<component>`.
        id: String,
        /// Name.
        name: String,
        /// Component.
        component: String,
        /// Threshold (−1: simple).
        threshold: i32,
        /// Cool-down (−1: simple).
        cool_down_sec: i32,
        /// Counter, when counted.
        #[serde(skip_serializing_if = "Option::is_none")]
        threshold_counter: Option<i32>,
        /// Latest occurrence.
        #[serde(
            serialize_with = "crate::reasoning::signal::serialize_opt_time",
            skip_serializing_if = "Option::is_none"
        )]
        last_signal_time: Option<NaiveDateTime>,
        /// Latest summary.
        #[serde(skip_serializing_if = "Option::is_none")]
        summary: Option<String>,
    },
    /// A CompositeSignal.
    #[serde(rename_all = "camelCase")]
    CompositeSignal {
        /// `composite:<name>`.
        id: String,
        /// Name.
        name: String,
        /// Activation threshold.
        activation_threshold: f64,
        /// Window in seconds.
        cool_down_sec: i32,
    },
    /// An incident.
    Incident {
        /// `incident:<name>`.
        id: String,
        /// Name.
        name: String,
        /// Description.
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
}

/// An edge of [`GraphView`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeView {
    /// `PREDECESSOR_OF`, `SIGNALLED_BY`, `PART_OF` or `INDICATES`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Source node id.
    pub from: String,
    /// Target node id.
    pub to: String,
    /// PART_OF state.
    #[serde(
        serialize_with = "crate::reasoning::signal::serialize_opt_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub activation_time: Option<NaiveDateTime>,
    /// INDICATES state.
    #[serde(
        serialize_with = "crate::reasoning::signal::serialize_opt_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_activation: Option<NaiveDateTime>,
}

impl EdgeView {
    fn plain(kind: &'static str, from: String, to: String) -> Self {
        EdgeView { kind, from, to, activation_time: None, last_activation: None }
    }
}

fn component_id(name: &str) -> String {
    format!("component:{name}")
}

fn signal_id(key: &SignalKey) -> String {
    format!("signal:{key}")
}

fn composite_id(name: &str) -> String {
    format!("composite:{name}")
}

fn incident_id(name: &str) -> String {
    format!("incident:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWLEDGE: &str = include_str!("../../../flows/knowledge.yaml");

    fn demo() -> KnowledgeGraph {
        KnowledgeGraph::from_yaml_str(KNOWLEDGE, "flows/knowledge.yaml").unwrap()
    }

    #[test]
    fn view_lists_nodes_and_edges() {
        let graph = demo();
        let view = serde_json::to_value(graph.view()).unwrap();
        let nodes = view["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 8 + 4 + 1 + 1);
        assert_eq!(
            nodes[0],
            serde_json::json!({"label": "DataPipeline", "id": "component:SENSOR",
            "name": "SENSOR", "owner": "DataProvider1"})
        );
        let nifi = nodes.iter().find(|n| n["id"] == "signal:MqttConnectionError#NIFI").unwrap();
        assert_eq!(nifi["threshold"], 10);
        assert_eq!(nifi["coolDownSec"], 15);
        assert!(nifi.get("thresholdCounter").is_none());
        let edges = view["edges"].as_array().unwrap();
        let count = |kind: &str| edges.iter().filter(|e| e["type"] == kind).count();
        assert_eq!(count("PREDECESSOR_OF"), 7);
        assert_eq!(count("SIGNALLED_BY"), 4);
        assert_eq!(count("PART_OF"), 4);
        assert_eq!(count("INDICATES"), 1);
    }
}
