//! The incident reasoner: chaoslab's re-implementation of the reference's Flink job "Incident Reasoning"
//! (`SignalProcessFunction`, `Neo4jDAO`, `CompositeSignalProcessFunction`; rdsea/bigdataincidentanalytics, `reasoning/flink-reasoner`), with the
//! knowledge graph in memory instead of Neo4j.
//!
//! Signals are processed one at a time, in arrival order; [`Reasoner::process`] does, for each:
//! 1. Find the signal node (name, component) or create it `SIGNALLED_BY` its component, and merge its
//!    stored `threshold`, `thresholdCounter`, `lastSignalTime` and `coolDownSec` into the signal.
//! 2. If it needs repeated occurrences (`threshold > 0 && coolDownSec > 0`): count it (`+1` when the
//!    previous occurrence is less than `coolDownSec` whole seconds away and the counter is set, else `1`;
//!    never reset after activation) and set `lastSignalTime` to its time.
//! 3. Store the counter, `lastSignalTime = timestamp`, the summary and the details on the node.
//! 4. If activated (`thresholdCounter >= threshold`, always for simple signals): set `activationTime` on
//!    all its PART_OF edges; keep each CompositeSignal with `ceil(activationThreshold · N) <= A` (N PART_OF
//!    edges, A of them with an activation time), and fire it:
//!    sort its active signals by time, newest first (stable, so ties keep PART_OF order);
//!    `m = ceil(|activationThreshold · N|)`; if signals 0 and m−1 are less than `coolDownSec` whole
//!    seconds apart, the active signals are the first `k ≥ m` within that distance of signal 0, and every
//!    INDICATES edge whose `lastActivation` (1990-01-01 when unset) is more than 120 s (rounded down)
//!    before signal 0 gets `lastActivation = signal 0's time` and yields an [`IncidentReport`]; otherwise
//!    the `activationTime` of every signal at least `coolDownSec` whole seconds older than signal 0 is
//!    cleared. Activation times are not cleared after a firing.
//!
//! Floating-point products are computed in `f64` as the reference does, so `ceil(0.55 · 100)` is 56.
//! A signal whose component is not in the graph is refused with [`ReasonError::UnknownComponent`] (the
//! reference's job would fail); nothing is changed and the next signal is processed normally. The wall
//! clock is never read: every time comes from the signals.

use chrono::{NaiveDate, NaiveDateTime};

use super::graph::{GraphError, KnowledgeGraph, SignalKey};
use super::report::{CompositeSignalReport, IncidentReport};
use super::signal::{Signal, abs_whole_seconds, floor_seconds_between};

/// Seconds an INDICATES edge waits before reporting its incident again (`Incident.RE_NOTIFICATION_WAIT_SEC`).
pub const RE_NOTIFICATION_WAIT_SEC: i64 = 120;

/// `lastActivation` of an INDICATES edge that has never fired: 1990-01-01T00:00:00.
pub fn never_activated() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1990, 1, 1).and_then(|date| date.and_hms_opt(0, 0, 0)).unwrap_or_default()
}

/// A signal the reasoner refused; the graph is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ReasonError {
    /// The signal's component is not a DataPipeline node (the reference's "Unable to find or create signal").
    #[error(
        "unable to find or create signal {name:?}: pipeline component {component:?} is not a DataPipeline node of the knowledge graph"
    )]
    UnknownComponent {
        /// Signal name.
        name: String,
        /// The unknown component.
        component: String,
    },
    /// The signal cannot be added to the graph for another reason (e.g. an invalid name).
    #[error("unable to find or create signal {name:?} of component {component:?}: {source}")]
    Graph {
        /// Signal name (shortened).
        name: String,
        /// Component (shortened).
        component: String,
        /// Why.
        source: GraphError,
    },
}

/// The outcome of one signal.
#[derive(Clone, Debug, PartialEq)]
pub struct Processed {
    /// The signal merged with its stored properties after counting. As in the reference, its
    /// `lastSignalTime` is the signal's own time for counted signals and the previous occurrence's time
    /// (from the graph) for simple ones.
    pub signal: Signal,
    /// Incident reports produced by this signal, in CompositeSignal then INDICATES order.
    pub incidents: Vec<IncidentReport>,
}

/// The reasoner; owns the knowledge graph, whose run-time state it updates.
#[derive(Clone, Debug)]
pub struct Reasoner {
    graph: KnowledgeGraph,
}

impl Reasoner {
    /// A reasoner over `graph`.
    pub fn new(graph: KnowledgeGraph) -> Self {
        Reasoner { graph }
    }

    /// The knowledge graph with the current state.
    pub fn graph(&self) -> &KnowledgeGraph {
        &self.graph
    }

    /// The knowledge graph, for run-time edits.
    pub fn graph_mut(&mut self) -> &mut KnowledgeGraph {
        &mut self.graph
    }

    /// Gives the graph back.
    pub fn into_graph(self) -> KnowledgeGraph {
        self.graph
    }

    /// Processes one signal (steps 1–4 of the module doc).
    pub fn process(&mut self, mut signal: Signal) -> Result<Processed, ReasonError> {
        let index = match self.graph.find_signal_or_create(&signal.name, &signal.pipeline_component) {
            Ok(index) => index,
            Err(GraphError::UnknownComponent(component)) => {
                let error = ReasonError::UnknownComponent { name: signal.name, component };
                tracing::warn!(%error, "signal refused");
                return Err(error);
            }
            Err(source) => {
                let error = ReasonError::Graph {
                    name: shorten(&signal.name),
                    component: shorten(&signal.pipeline_component),
                    source,
                };
                tracing::warn!(%error, "signal refused");
                return Err(error);
            }
        };

        let node = &mut self.graph.signals[index];
        signal.threshold = node.threshold;
        signal.threshold_counter = node.threshold_counter;
        signal.last_signal_time = node.last_signal_time;
        signal.cool_down_sec = node.cool_down_sec;

        if signal.requires_multiple_occurrences() {
            signal.threshold_counter =
                if signal.is_within_cool_down_window() && signal.is_counter_initialized() {
                    signal.threshold_counter.saturating_add(1)
                } else {
                    1
                };
            signal.last_signal_time = Some(signal.timestamp);
        }

        node.threshold_counter = signal.threshold_counter;
        node.last_signal_time = Some(signal.timestamp);
        node.summary = Some(signal.summary.clone());
        node.details = Some(signal.details.clone());

        let mut incidents = Vec::new();
        if signal.is_activated() {
            for (composite, active) in self.activate(&signal) {
                incidents.extend(self.fire(composite, active));
            }
        }
        Ok(Processed { signal, incidents })
    }

    /// Step 4, first half: marks the PART_OF edges of `signal` active and returns each CompositeSignal
    /// (by index) that has enough active signals, with those signals sorted newest first.
    fn activate(&mut self, signal: &Signal) -> Vec<(usize, Vec<Signal>)> {
        let key = SignalKey::new(signal.name.clone(), signal.pipeline_component.clone());
        let mut touched = Vec::new();
        for (index, composite) in self.graph.composites.iter_mut().enumerate() {
            let mut member = false;
            for part in composite.parts.iter_mut().filter(|part| part.signal == key) {
                part.activation_time = Some(signal.timestamp);
                member = true;
            }
            if member {
                touched.push(index);
            }
        }

        let mut candidates = Vec::new();
        for index in touched {
            let composite = &self.graph.composites[index];
            let connected = composite.parts.len();
            let active = composite.parts.iter().filter(|part| part.activation_time.is_some()).count();
            let required = (composite.activation_threshold * connected as f64).ceil();
            if required > active as f64 {
                tracing::debug!(
                    composite = %composite.name, active, connected, required, "composite signal not activated"
                );
                continue;
            }
            let mut signals: Vec<Signal> = composite
                .parts
                .iter()
                .filter_map(|part| {
                    let time = part.activation_time?;
                    let node = self.graph.signal(&part.signal.name, &part.signal.component)?;
                    Some(Signal {
                        name: node.name.clone(),
                        timestamp: time,
                        pipeline_component: node.component.clone(),
                        summary: node.summary.clone().unwrap_or_default(),
                        details: node.details.clone().unwrap_or_default(),
                        threshold: node.threshold,
                        threshold_counter: node.threshold_counter,
                        last_signal_time: node.last_signal_time,
                        cool_down_sec: node.cool_down_sec,
                    })
                })
                .collect();
            signals.sort_by_key(|signal| std::cmp::Reverse(signal.timestamp));
            candidates.push((index, signals));
        }
        candidates
    }

    /// Step 4, second half: the CompositeSignal firing of `CompositeSignalProcessFunction`.
    fn fire(&mut self, index: usize, mut sorted: Vec<Signal>) -> Vec<IncidentReport> {
        let composite = &mut self.graph.composites[index];
        let connected = composite.parts.len();
        let window = i64::from(composite.cool_down_sec);
        // In 1..=sorted.len() for a validated graph: 0 < activationThreshold <= 1 and activate() checked it.
        let required = (composite.activation_threshold * connected as f64).abs().ceil() as usize;
        let (Some(newest), Some(boundary)) =
            (sorted.first(), required.checked_sub(1).and_then(|last| sorted.get(last)))
        else {
            tracing::warn!(composite = %composite.name, required, active = sorted.len(), "cannot evaluate composite signal");
            return Vec::new();
        };
        let newest_time = newest.timestamp;
        let within = |signal: &Signal| abs_whole_seconds(newest_time, signal.timestamp) < window;

        if !within(boundary) {
            tracing::debug!(
                composite = %composite.name,
                newest = %newest_time,
                boundary = %boundary.timestamp,
                window,
                "composite signal not fired: signals outside the window"
            );
            for stale in sorted.iter().filter(|signal| !within(signal)) {
                for part in composite.parts.iter_mut().filter(|part| {
                    part.signal.name == stale.name && part.signal.component == stale.pipeline_component
                }) {
                    part.activation_time = None;
                }
            }
            return Vec::new();
        }

        let mut included = required;
        while included < sorted.len() && within(&sorted[included]) {
            included += 1;
        }
        sorted.truncate(included);

        let mut reports = Vec::new();
        for edge in &mut composite.indicates {
            let last = edge.last_activation.unwrap_or_else(never_activated);
            if floor_seconds_between(last, newest_time) > RE_NOTIFICATION_WAIT_SEC {
                edge.last_activation = Some(newest_time);
                let fired = CompositeSignalReport {
                    name: composite.name.clone(),
                    cool_down_sec: composite.cool_down_sec,
                    activation_threshold: composite.activation_threshold,
                    num_of_connected_signals: connected,
                    active_signals: sorted.clone(),
                };
                tracing::info!(
                    incident = %edge.incident,
                    composite = %composite.name,
                    signals = sorted.len(),
                    at = %newest_time,
                    "incident indicated"
                );
                reports.push(IncidentReport::new(edge.incident.clone(), newest_time, fired));
            } else {
                tracing::debug!(incident = %edge.incident, at = %newest_time, "incident already reported within 120 s");
            }
        }
        reports
    }
}

/// The first 64 characters of an outside name, for error messages.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use serde_json::Map;

    /// Components A_C, B_C, C_C; counted signal `N` (threshold 3, coolDown 10) on A_C; simple signals
    /// `A`, `B`, `C` on their components.
    fn graph(composites: &str) -> KnowledgeGraph {
        let text = format!(
            "\
components: [{{name: A_C}}, {{name: B_C}}, {{name: C_C}}]
incidents: [{{name: Outage}}, {{name: Second}}]
signals:
  - {{name: N, component: A_C, threshold: 3, coolDownSec: 10}}
  - {{name: A, component: A_C}}
  - {{name: B, component: B_C}}
  - {{name: C, component: C_C}}
{composites}"
        );
        KnowledgeGraph::from_yaml_str(&text, "test").unwrap()
    }

    fn t0() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2020, 2, 21).unwrap().and_hms_opt(21, 20, 0).unwrap()
    }

    fn at_ms(millis: i64) -> NaiveDateTime {
        t0() + TimeDelta::milliseconds(millis)
    }

    fn signal(name: &str, component: &str, millis: i64) -> Signal {
        Signal::new(name, at_ms(millis), component, format!("{name} happened"), Map::new())
    }

    fn counter(reasoner: &Reasoner, millis: i64) -> i32 {
        reasoner.clone().process(signal("N", "A_C", millis)).unwrap().signal.threshold_counter
    }

    #[test]
    fn counter_resets_after_a_gap_of_cool_down_whole_seconds() {
        let mut reasoner = Reasoner::new(graph(""));
        let mut feed = |millis| reasoner.process(signal("N", "A_C", millis)).unwrap().signal;
        assert_eq!(feed(0).threshold_counter, 1);
        assert_eq!(feed(5_000).threshold_counter, 2);
        let third = feed(14_999);
        assert_eq!(third.threshold_counter, 3, "9.999 s gap truncates to 9 < 10");
        assert!(third.is_activated());
        assert_eq!(feed(24_000).threshold_counter, 4, "not reset after activation");
        let reset = feed(34_000);
        assert_eq!(reset.threshold_counter, 1, "a 10 s gap is not < 10: reset");
        assert!(!reset.is_activated());
        assert_eq!(reset.last_signal_time, Some(at_ms(34_000)));
        let node = reasoner.graph().signal("N", "A_C").unwrap();
        assert_eq!((node.threshold_counter, node.last_signal_time), (1, Some(at_ms(34_000))));
        assert_eq!(node.summary.as_deref(), Some("N happened"));
    }

    #[test]
    fn counting_is_against_the_previous_occurrence_in_absolute_time() {
        let mut reasoner = Reasoner::new(graph(""));
        reasoner.process(signal("N", "A_C", 20_000)).unwrap();
        assert_eq!(counter(&reasoner, 10_001), 2, "an out-of-order occurrence 9.999 s earlier counts");
        assert_eq!(counter(&reasoner, 10_000), 1, "10 s earlier resets");
    }

    #[test]
    fn simple_signals_report_the_previous_time_and_store_the_new_one() {
        let mut reasoner = Reasoner::new(graph(""));
        let first = reasoner.process(signal("A", "A_C", 0)).unwrap().signal;
        assert_eq!((first.threshold, first.threshold_counter, first.last_signal_time), (-1, -1, None));
        let second = reasoner.process(signal("A", "A_C", 7_000)).unwrap().signal;
        assert_eq!(second.last_signal_time, Some(at_ms(0)));
        assert_eq!(reasoner.graph().signal("A", "A_C").unwrap().last_signal_time, Some(at_ms(7_000)));
    }

    #[test]
    fn unknown_components_are_refused_and_processing_goes_on() {
        let mut reasoner = Reasoner::new(graph(""));
        let before = reasoner.graph().clone();
        let error = reasoner.process(signal("Lost", "SENSOR", 0)).unwrap_err();
        assert!(
            matches!(error, ReasonError::UnknownComponent { ref component, .. } if component == "SENSOR")
        );
        assert!(error.to_string().contains("unable to find or create signal \"Lost\""), "{error}");
        assert_eq!(reasoner.graph(), &before, "nothing changed");
        let error = reasoner.process(signal("", "A_C", 0)).unwrap_err();
        assert!(matches!(error, ReasonError::Graph { .. }), "{error}");
        assert!(reasoner.process(signal("New", "B_C", 1_000)).is_ok());
        assert!(reasoner.graph().signal("New", "B_C").is_some(), "added on first sight");
    }

    #[test]
    fn half_of_three_signals_needs_two() {
        let mut reasoner = Reasoner::new(graph(
            "\
compositeSignals:
  - name: Cs
    activationThreshold: 0.5
    coolDownSec: 30
    parts: [{signal: A, component: A_C}, {signal: B, component: B_C}, {signal: C, component: C_C}]
    indicates: [Outage]
",
        ));
        assert!(reasoner.process(signal("A", "A_C", 0)).unwrap().incidents.is_empty(), "ceil(1.5) = 2 > 1");
        let incidents = reasoner.process(signal("B", "B_C", 29_999)).unwrap().incidents;
        assert_eq!(incidents.len(), 1);
        let fired = &incidents[0].composite_signal;
        assert_eq!(fired.num_of_connected_signals, 3);
        let names: Vec<&str> = fired.active_signals.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["B", "A"], "newest first");
        assert_eq!(incidents[0].date_time, at_ms(29_999));
        assert_eq!(incidents[0].summary, "Incident \"Outage\" is active! It is indicated by 2 signal(s).");
    }

    #[test]
    fn counted_signals_activate_composites_only_at_their_threshold() {
        let mut reasoner = Reasoner::new(graph(
            "\
compositeSignals:
  - name: Cs
    coolDownSec: 60
    parts: [{signal: N, component: A_C}]
    indicates: [Outage]
",
        ));
        assert!(reasoner.process(signal("N", "A_C", 0)).unwrap().incidents.is_empty());
        assert!(reasoner.process(signal("N", "A_C", 1_000)).unwrap().incidents.is_empty());
        assert!(reasoner.graph().composite("Cs").unwrap().parts[0].activation_time.is_none());
        let incidents = reasoner.process(signal("N", "A_C", 2_000)).unwrap().incidents;
        assert_eq!(incidents.len(), 1);
        assert_eq!(incidents[0].composite_signal.active_signals[0].threshold_counter, 3);
    }

    #[test]
    fn incidents_wait_120_seconds_before_being_reported_again() {
        let mut reasoner = Reasoner::new(graph(
            "\
compositeSignals:
  - name: Cs
    coolDownSec: 60
    parts: [{signal: A, component: A_C}]
    indicates: [Outage, Second]
",
        ));
        let mut fire = |millis| {
            let incidents = reasoner.process(signal("A", "A_C", millis)).unwrap().incidents;
            incidents.into_iter().map(|report| report.name).collect::<Vec<_>>()
        };
        assert_eq!(fire(0), ["Outage", "Second"], "first firing: 1990-01-01 is long ago");
        assert!(fire(60_000).is_empty());
        assert!(fire(120_999).is_empty(), "120.999 s rounds down to 120, not > 120");
        assert_eq!(fire(121_000), ["Outage", "Second"]);
        assert!(fire(200_000).is_empty(), "measured from the last report, not the last signal");
        let edges = &reasoner.graph().composite("Cs").unwrap().indicates;
        assert_eq!(edges[0].last_activation, Some(at_ms(121_000)));
    }

    #[test]
    fn stale_activations_are_cleared_when_the_composite_cannot_fire() {
        let mut reasoner = Reasoner::new(graph(
            "\
compositeSignals:
  - name: Cs
    activationThreshold: 1
    coolDownSec: 30
    parts: [{signal: A, component: A_C}, {signal: B, component: B_C}, {signal: C, component: C_C}]
    indicates: [Outage]
",
        ));
        let activation = |reasoner: &Reasoner| -> Vec<Option<NaiveDateTime>> {
            reasoner.graph().composite("Cs").unwrap().parts.iter().map(|p| p.activation_time).collect()
        };
        assert!(reasoner.process(signal("A", "A_C", 0)).unwrap().incidents.is_empty());
        assert!(reasoner.process(signal("B", "B_C", 10_000)).unwrap().incidents.is_empty());
        assert!(reasoner.process(signal("C", "C_C", 50_000)).unwrap().incidents.is_empty(), "50 s spread");
        assert_eq!(activation(&reasoner), [None, None, Some(at_ms(50_000))], "A (50 s) and B (40 s) cleared");
        assert!(reasoner.process(signal("A", "A_C", 55_000)).unwrap().incidents.is_empty(), "2 of 3 active");
        let incidents = reasoner.process(signal("B", "B_C", 60_000)).unwrap().incidents;
        assert_eq!(incidents.len(), 1);
        let times: Vec<NaiveDateTime> =
            incidents[0].composite_signal.active_signals.iter().map(|s| s.timestamp).collect();
        assert_eq!(times, [at_ms(60_000), at_ms(55_000), at_ms(50_000)]);
        assert_eq!(
            activation(&reasoner),
            [Some(at_ms(55_000)), Some(at_ms(60_000)), Some(at_ms(50_000))],
            "not cleared after firing"
        );
    }

    fn third_of_three(cool_down_sec: i32) -> Reasoner {
        // ceil(0.34 * 3) = ceil(1.02) = 2 of the 3 signals must be active.
        Reasoner::new(graph(&format!(
            "\
compositeSignals:
  - name: Cs
    activationThreshold: 0.34
    coolDownSec: {cool_down_sec}
    parts: [{{signal: A, component: A_C}}, {{signal: B, component: B_C}}, {{signal: C, component: C_C}}]
    indicates: [Outage]
"
        )))
    }

    fn names(report: &IncidentReport) -> Vec<&str> {
        report.composite_signal.active_signals.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn older_signals_within_the_window_are_included_beyond_the_minimum() {
        let mut reasoner = third_of_three(20);
        assert!(reasoner.process(signal("A", "A_C", 0)).unwrap().incidents.is_empty(), "1 of 2 needed");
        let first = reasoner.process(signal("B", "B_C", 5_000)).unwrap().incidents;
        assert_eq!(first.iter().map(names).collect::<Vec<_>>(), [["B", "A"]]);
        // C@120 is 115 s from B@5: no firing, A and B are cleared.
        assert!(reasoner.process(signal("C", "C_C", 120_000)).unwrap().incidents.is_empty());
        // A@124 fires, but only 119 s after the last report: held back.
        assert!(reasoner.process(signal("A", "A_C", 124_000)).unwrap().incidents.is_empty());
        // B@126: 121 s after the last report; all three are within 20 s of it, so k = 3 > m = 2.
        let second = reasoner.process(signal("B", "B_C", 126_000)).unwrap().incidents;
        assert_eq!(second.len(), 1);
        assert_eq!(names(&second[0]), ["B", "A", "C"]);
        assert_eq!(second[0].participating_components, ["B_C", "A_C", "C_C"]);
    }

    #[test]
    fn signals_outside_the_window_are_left_out_but_stay_active_after_a_firing() {
        let mut reasoner = third_of_three(200);
        assert!(reasoner.process(signal("A", "A_C", 0)).unwrap().incidents.is_empty());
        let first = reasoner.process(signal("B", "B_C", 100_000)).unwrap().incidents;
        assert_eq!(first.iter().map(names).collect::<Vec<_>>(), [["B", "A"]]);
        // C@221: m = 2 fits (C, B: 121 s < 200 s), A is 221 s away and is left out of the report.
        let second = reasoner.process(signal("C", "C_C", 221_000)).unwrap().incidents;
        assert_eq!(second.iter().map(names).collect::<Vec<_>>(), [["C", "B"]]);
        let parts = &reasoner.graph().composite("Cs").unwrap().parts;
        assert_eq!(parts[0].activation_time, Some(at_ms(0)), "firing clears nothing");
    }

    #[test]
    fn never_activated_is_1990() {
        assert_eq!(never_activated().to_string(), "1990-01-01 00:00:00");
    }
}
