//! Edits of the knowledge graph: creating, updating and deleting nodes, adding and removing edges, and
//! the reasoner's run-time state. Loading applies its entries through the same checks.

use super::{
    ComponentNode, CompositeNode, CompositeSpec, DEFAULT_ACTIVATION_THRESHOLD,
    DEFAULT_COMPOSITE_COOL_DOWN_SEC, GraphComponent, GraphError, GraphLink, IncidentNode, IncidentSpec,
    Indicates, KnowledgeGraph, PartOf, SignalKey, SignalNode, SignalSpec,
};
use crate::reasoning::signal::{
    DEFAULT_COOL_DOWN_SEC, DEFAULT_THRESHOLD, DEFAULT_THRESHOLD_COUNTER, check_name,
};

impl KnowledgeGraph {
    /// Adds a DataPipeline component.
    pub fn create_component(&mut self, spec: GraphComponent) -> Result<(), GraphError> {
        valid_name("component name", &spec.name)?;
        if self.component(&spec.name).is_some() {
            return Err(GraphError::Duplicate { kind: "component", name: format!("{:?}", spec.name) });
        }
        self.components.push(ComponentNode {
            name: spec.name,
            owner: spec.owner,
            predecessor_of: Vec::new(),
        });
        Ok(())
    }

    /// Changes a component's owner.
    pub fn update_component(&mut self, spec: GraphComponent) -> Result<(), GraphError> {
        let node = self
            .components
            .iter_mut()
            .find(|c| c.name == spec.name)
            .ok_or_else(|| GraphError::UnknownComponent(spec.name.clone()))?;
        node.owner = spec.owner;
        Ok(())
    }

    /// Removes a component and its PREDECESSOR_OF edges; refused while signals belong to it.
    pub fn delete_component(&mut self, name: &str) -> Result<(), GraphError> {
        let index = self
            .components
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| GraphError::UnknownComponent(name.to_string()))?;
        let signals: Vec<&str> =
            self.signals.iter().filter(|s| s.component == name).map(|s| s.name.as_str()).collect();
        if !signals.is_empty() {
            return Err(GraphError::ComponentInUse {
                component: name.to_string(),
                signals: signals.join(", "),
            });
        }
        self.components.remove(index);
        for component in &mut self.components {
            component.predecessor_of.retain(|to| to != name);
        }
        Ok(())
    }

    /// Adds a signal of a known component.
    pub fn create_signal(&mut self, spec: SignalSpec) -> Result<(), GraphError> {
        valid_name("signal name", &spec.name)?;
        valid_name("component name", &spec.component)?;
        let (threshold, cool_down_sec) = signal_counting(&spec)?;
        if self.component(&spec.component).is_none() {
            return Err(GraphError::UnknownComponent(spec.component));
        }
        if self.signal(&spec.name, &spec.component).is_some() {
            let name = format!("{:?} of component {:?}", spec.name, spec.component);
            return Err(GraphError::Duplicate { kind: "signal", name });
        }
        self.signals.push(SignalNode {
            name: spec.name,
            component: spec.component,
            threshold,
            cool_down_sec,
            threshold_counter: DEFAULT_THRESHOLD_COUNTER,
            last_signal_time: None,
            summary: None,
            details: None,
        });
        Ok(())
    }

    /// Changes a signal's threshold and cool-down (omitted = simple signal); its counter is kept.
    pub fn update_signal(&mut self, spec: SignalSpec) -> Result<(), GraphError> {
        let (threshold, cool_down_sec) = signal_counting(&spec)?;
        let node = self.signal_mut(&spec.name, &spec.component)?;
        node.threshold = threshold;
        node.cool_down_sec = cool_down_sec;
        Ok(())
    }

    /// Removes a signal and its PART_OF edges.
    pub fn delete_signal(&mut self, key: &SignalKey) -> Result<(), GraphError> {
        let index = self
            .signals
            .iter()
            .position(|s| s.is(&key.name, &key.component))
            .ok_or_else(|| unknown_signal(&key.name, &key.component))?;
        self.signals.remove(index);
        for composite in &mut self.composites {
            composite.parts.retain(|part| &part.signal != key);
        }
        Ok(())
    }

    /// Adds a CompositeSignal (no edges yet).
    pub fn create_composite(&mut self, spec: CompositeSpec) -> Result<(), GraphError> {
        valid_name("composite signal name", &spec.name)?;
        let (activation_threshold, cool_down_sec) = composite_props(&spec)?;
        if self.composite(&spec.name).is_some() {
            return Err(GraphError::Duplicate { kind: "composite signal", name: format!("{:?}", spec.name) });
        }
        self.composites.push(CompositeNode {
            name: spec.name,
            activation_threshold,
            cool_down_sec,
            parts: Vec::new(),
            indicates: Vec::new(),
        });
        Ok(())
    }

    /// Changes a CompositeSignal's activation threshold and cool-down (omitted = defaults).
    pub fn update_composite(&mut self, spec: CompositeSpec) -> Result<(), GraphError> {
        let (activation_threshold, cool_down_sec) = composite_props(&spec)?;
        let node = self.composite_mut(&spec.name)?;
        node.activation_threshold = activation_threshold;
        node.cool_down_sec = cool_down_sec;
        Ok(())
    }

    /// Removes a CompositeSignal with its PART_OF and INDICATES edges.
    pub fn delete_composite(&mut self, name: &str) -> Result<(), GraphError> {
        let index = self
            .composites
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| GraphError::UnknownComposite(name.to_string()))?;
        self.composites.remove(index);
        Ok(())
    }

    /// Adds an incident.
    pub fn create_incident(&mut self, spec: IncidentSpec) -> Result<(), GraphError> {
        valid_name("incident name", &spec.name)?;
        if self.incident(&spec.name).is_some() {
            return Err(GraphError::Duplicate { kind: "incident", name: format!("{:?}", spec.name) });
        }
        self.incidents.push(IncidentNode { name: spec.name, description: spec.description });
        Ok(())
    }

    /// Changes an incident's description.
    pub fn update_incident(&mut self, spec: IncidentSpec) -> Result<(), GraphError> {
        let node = self
            .incidents
            .iter_mut()
            .find(|i| i.name == spec.name)
            .ok_or_else(|| GraphError::UnknownIncident(spec.name.clone()))?;
        node.description = spec.description;
        Ok(())
    }

    /// Removes an incident and the INDICATES edges into it.
    pub fn delete_incident(&mut self, name: &str) -> Result<(), GraphError> {
        let index = self
            .incidents
            .iter()
            .position(|i| i.name == name)
            .ok_or_else(|| GraphError::UnknownIncident(name.to_string()))?;
        self.incidents.remove(index);
        for composite in &mut self.composites {
            composite.indicates.retain(|edge| edge.incident != name);
        }
        Ok(())
    }

    /// Adds an edge between existing nodes; duplicates and self-loops are refused.
    pub fn link(&mut self, link: GraphLink) -> Result<(), GraphError> {
        match link {
            GraphLink::PredecessorOf { from, to } => {
                if self.component(&to).is_none() {
                    return Err(GraphError::UnknownComponent(to));
                }
                if from == to {
                    return Err(GraphError::Invalid {
                        field: "PREDECESSOR_OF",
                        reason: format!("component {from:?} cannot precede itself"),
                    });
                }
                let node = self
                    .components
                    .iter_mut()
                    .find(|c| c.name == from)
                    .ok_or_else(|| GraphError::UnknownComponent(from.clone()))?;
                if node.predecessor_of.contains(&to) {
                    return Err(duplicate_edge("PREDECESSOR_OF", &from, &to));
                }
                node.predecessor_of.push(to);
            }
            GraphLink::PartOf { signal, component, composite } => {
                if self.signal(&signal, &component).is_none() {
                    return Err(unknown_signal(&signal, &component));
                }
                let key = SignalKey::new(signal, component);
                let node = self.composite_mut(&composite)?;
                if node.parts.iter().any(|part| part.signal == key) {
                    return Err(duplicate_edge("PART_OF", &key.to_string(), &composite));
                }
                node.parts.push(PartOf { signal: key, activation_time: None });
            }
            GraphLink::Indicates { composite, incident } => {
                if self.incident(&incident).is_none() {
                    return Err(GraphError::UnknownIncident(incident));
                }
                let node = self.composite_mut(&composite)?;
                if node.indicates.iter().any(|edge| edge.incident == incident) {
                    return Err(duplicate_edge("INDICATES", &composite, &incident));
                }
                node.indicates.push(Indicates { incident, last_activation: None });
            }
        }
        Ok(())
    }

    /// Removes an edge.
    pub fn unlink(&mut self, link: &GraphLink) -> Result<(), GraphError> {
        let (kind, from, to, removed) = match link {
            GraphLink::PredecessorOf { from, to } => {
                let node = self
                    .components
                    .iter_mut()
                    .find(|c| &c.name == from)
                    .ok_or_else(|| GraphError::UnknownComponent(from.clone()))?;
                let before = node.predecessor_of.len();
                node.predecessor_of.retain(|t| t != to);
                ("PREDECESSOR_OF", from.clone(), to.clone(), node.predecessor_of.len() < before)
            }
            GraphLink::PartOf { signal, component, composite } => {
                let node = self.composite_mut(composite)?;
                let before = node.parts.len();
                node.parts
                    .retain(|part| !(part.signal.name == *signal && part.signal.component == *component));
                let from = SignalKey::new(signal.clone(), component.clone()).to_string();
                ("PART_OF", from, composite.clone(), node.parts.len() < before)
            }
            GraphLink::Indicates { composite, incident } => {
                let node = self.composite_mut(composite)?;
                let before = node.indicates.len();
                node.indicates.retain(|edge| &edge.incident != incident);
                ("INDICATES", composite.clone(), incident.clone(), node.indicates.len() < before)
            }
        };
        if removed { Ok(()) } else { Err(GraphError::NoSuchEdge { kind, from, to }) }
    }

    /// Clears all reasoner state: counters, last times, summaries, details, activation times.
    pub fn reset_runtime_state(&mut self) {
        for signal in &mut self.signals {
            signal.threshold_counter = DEFAULT_THRESHOLD_COUNTER;
            signal.last_signal_time = None;
            signal.summary = None;
            signal.details = None;
        }
        for composite in &mut self.composites {
            composite.parts.iter_mut().for_each(|part| part.activation_time = None);
            composite.indicates.iter_mut().for_each(|edge| edge.last_activation = None);
        }
    }

    /// The index of signal (`name`, `component`), added as a simple signal on first sight. Fails, without
    /// changing anything, if the names are invalid or the component is not a DataPipeline node.
    pub(in crate::reasoning) fn find_signal_or_create(
        &mut self,
        name: &str,
        component: &str,
    ) -> Result<usize, GraphError> {
        if let Some(index) = self.signals.iter().position(|s| s.is(name, component)) {
            return Ok(index);
        }
        self.create_signal(SignalSpec {
            name: name.to_string(),
            component: component.to_string(),
            threshold: None,
            cool_down_sec: None,
        })?;
        Ok(self.signals.len() - 1)
    }

    fn signal_mut(&mut self, name: &str, component: &str) -> Result<&mut SignalNode, GraphError> {
        self.signals.iter_mut().find(|s| s.is(name, component)).ok_or_else(|| unknown_signal(name, component))
    }

    fn composite_mut(&mut self, name: &str) -> Result<&mut CompositeNode, GraphError> {
        self.composites
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| GraphError::UnknownComposite(name.to_string()))
    }
}

fn unknown_signal(name: &str, component: &str) -> GraphError {
    GraphError::UnknownSignal { name: name.to_string(), component: component.to_string() }
}

fn duplicate_edge(kind: &'static str, from: &str, to: &str) -> GraphError {
    GraphError::DuplicateEdge { kind, from: format!("{from:?}"), to: format!("{to:?}") }
}

fn valid_name(field: &'static str, name: &str) -> Result<(), GraphError> {
    check_name(name).map_err(|reason| GraphError::Invalid { field, reason })
}

/// `(threshold, coolDownSec)` of a signal spec: both ≥ 1, or both absent (−1, −1).
fn signal_counting(spec: &SignalSpec) -> Result<(i32, i32), GraphError> {
    match (spec.threshold, spec.cool_down_sec) {
        (None, None) => Ok((DEFAULT_THRESHOLD, DEFAULT_COOL_DOWN_SEC)),
        (Some(threshold), Some(cool_down)) => {
            if threshold < 1 {
                return Err(GraphError::Invalid {
                    field: "threshold",
                    reason: format!("{threshold} is below 1"),
                });
            }
            if cool_down < 1 {
                return Err(GraphError::Invalid {
                    field: "coolDownSec",
                    reason: format!("{cool_down} is below 1"),
                });
            }
            Ok((threshold, cool_down))
        }
        (Some(_), None) | (None, Some(_)) => Err(GraphError::Invalid {
            field: "threshold/coolDownSec",
            reason: "a counted signal needs both threshold and coolDownSec".to_string(),
        }),
    }
}

/// `(activationThreshold, coolDownSec)` of a CompositeSignal spec, defaults applied and ranges checked.
fn composite_props(spec: &CompositeSpec) -> Result<(f64, i32), GraphError> {
    let threshold = spec.activation_threshold.unwrap_or(DEFAULT_ACTIVATION_THRESHOLD);
    if !(threshold > 0.0 && threshold <= 1.0) {
        return Err(GraphError::Invalid {
            field: "activationThreshold",
            reason: format!("{threshold} is not in (0, 1]"),
        });
    }
    let cool_down = spec.cool_down_sec.unwrap_or(DEFAULT_COMPOSITE_COOL_DOWN_SEC);
    if cool_down < 1 {
        return Err(GraphError::Invalid { field: "coolDownSec", reason: format!("{cool_down} is below 1") });
    }
    Ok((threshold, cool_down))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWLEDGE: &str = include_str!("../../../flows/knowledge.yaml");

    fn demo() -> KnowledgeGraph {
        KnowledgeGraph::from_yaml_str(KNOWLEDGE, "flows/knowledge.yaml").unwrap()
    }

    #[test]
    fn edits_are_validated() {
        let mut graph = demo();
        assert!(matches!(
            graph.create_component(GraphComponent { name: "NIFI".into(), owner: None }),
            Err(GraphError::Duplicate { kind: "component", .. })
        ));
        graph.create_component(GraphComponent { name: "KAFKA".into(), owner: Some("Ops".into()) }).unwrap();
        graph.update_component(GraphComponent { name: "KAFKA".into(), owner: None }).unwrap();
        assert_eq!(graph.component("KAFKA").unwrap().owner, None);
        graph.link(GraphLink::PredecessorOf { from: "KAFKA".into(), to: "NIFI".into() }).unwrap();
        assert!(matches!(
            graph.link(GraphLink::PredecessorOf { from: "KAFKA".into(), to: "KAFKA".into() }),
            Err(GraphError::Invalid { field: "PREDECESSOR_OF", .. })
        ));
        assert!(matches!(
            graph.link(GraphLink::PredecessorOf { from: "KAFKA".into(), to: "NIFI".into() }),
            Err(GraphError::DuplicateEdge { .. })
        ));

        let spec = |threshold, cool_down_sec| SignalSpec {
            name: "Lag".into(),
            component: "KAFKA".into(),
            threshold,
            cool_down_sec,
        };
        assert!(matches!(
            graph.create_signal(SignalSpec { component: "NOPE".into(), ..spec(None, None) }),
            Err(GraphError::UnknownComponent(_))
        ));
        graph.create_signal(spec(Some(3), Some(30))).unwrap();
        assert!(graph.update_signal(spec(Some(3), None)).is_err());
        graph.update_signal(spec(Some(5), Some(60))).unwrap();
        assert_eq!(graph.signal("Lag", "KAFKA").unwrap().threshold, 5);
        assert!(matches!(graph.delete_component("KAFKA"), Err(GraphError::ComponentInUse { .. })));

        graph
            .create_composite(CompositeSpec {
                name: "Cs".into(),
                activation_threshold: Some(0.5),
                cool_down_sec: None,
            })
            .unwrap();
        assert!(
            graph
                .update_composite(CompositeSpec {
                    name: "Cs".into(),
                    activation_threshold: Some(-1.0),
                    cool_down_sec: None
                })
                .is_err()
        );
        let part =
            GraphLink::PartOf { signal: "Lag".into(), component: "KAFKA".into(), composite: "Cs".into() };
        graph.link(part.clone()).unwrap();
        assert!(matches!(graph.link(part.clone()), Err(GraphError::DuplicateEdge { kind: "PART_OF", .. })));
        graph.create_incident(IncidentSpec { name: "Lagging".into(), description: None }).unwrap();
        graph
            .update_incident(IncidentSpec { name: "Lagging".into(), description: Some("slow".into()) })
            .unwrap();
        let indicates = GraphLink::Indicates { composite: "Cs".into(), incident: "Lagging".into() };
        graph.link(indicates.clone()).unwrap();
        assert!(matches!(
            graph.link(GraphLink::Indicates { composite: "Cs".into(), incident: "Ghost".into() }),
            Err(GraphError::UnknownIncident(_))
        ));

        graph.delete_incident("Lagging").unwrap();
        assert!(graph.composite("Cs").unwrap().indicates.is_empty(), "INDICATES removed with the incident");
        assert!(matches!(graph.unlink(&indicates), Err(GraphError::NoSuchEdge { .. })));
        graph.delete_signal(&SignalKey::new("Lag", "KAFKA")).unwrap();
        assert!(graph.composite("Cs").unwrap().parts.is_empty(), "PART_OF removed with the signal");
        graph.delete_component("KAFKA").unwrap();
        assert!(graph.components().iter().all(|c| !c.predecessor_of.contains(&"KAFKA".to_string())));
        graph.delete_composite("Cs").unwrap();
        assert_eq!(graph, demo(), "everything added was removed again");

        graph.unlink(&GraphLink::PredecessorOf { from: "MQTT_BROKER".into(), to: "FLINK".into() }).unwrap();
        assert_eq!(graph.component("MQTT_BROKER").unwrap().predecessor_of, ["NIFI", "NODE-RED"]);
        let text = graph.to_yaml().unwrap();
        assert_eq!(KnowledgeGraph::from_yaml_str(&text, "edited").unwrap(), graph, "edits persist");
    }

    #[test]
    fn links_read_from_json() {
        let link: GraphLink = serde_json::from_str(
            r#"{"type": "PART_OF", "signal": "S", "component": "NIFI", "composite": "Cs"}"#,
        )
        .unwrap();
        assert_eq!(
            link,
            GraphLink::PartOf { signal: "S".into(), component: "NIFI".into(), composite: "Cs".into() }
        );
        assert!(serde_json::from_str::<GraphLink>(r#"{"type": "OWNS", "from": "a", "to": "b"}"#).is_err());
    }

    #[test]
    fn find_signal_or_create_adds_on_first_sight_only_for_known_components() {
        let mut graph = demo();
        let before = graph.signals().len();
        let index = graph.find_signal_or_create("MissingTimeInformation", "NODE-RED").unwrap();
        assert_eq!(index, before);
        assert_eq!(graph.find_signal_or_create("MissingTimeInformation", "NODE-RED").unwrap(), index);
        assert_eq!(graph.find_signal_or_create("MqttConnectionError", "NIFI").unwrap(), 0);
        let unknown = graph.find_signal_or_create("Fault", "KAFKA").unwrap_err();
        assert!(matches!(unknown, GraphError::UnknownComponent(ref c) if c == "KAFKA"));
        assert_eq!(graph.signals().len(), before + 1);
        let view = serde_json::to_value(graph.view()).unwrap();
        assert!(view["edges"].as_array().unwrap().iter().any(|e| e["type"] == "SIGNALLED_BY"
            && e["from"] == "signal:MissingTimeInformation#NODE-RED"
            && e["to"] == "component:NODE-RED"));
    }
}
