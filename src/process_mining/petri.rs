//! Model quality on held-out cases: the mined dependency graph as a Petri net, token-replay fitness (the
//! `process_mining` crate's `apply_token_based_replay`) and escaping-edges precision.
//!
//! The net is built as the Alpha algorithm builds one from its causal and choice relations: a transition
//! per activity, a place per maximal pair `(A, B)` of activity sets such that every `a ∈ A` has an edge to
//! every `b ∈ B` and the members of `A` (and of `B`) are a choice for each other — two outputs of one
//! activity are a choice unless the AND measure calls them concurrent (joins alike). A start place feeds
//! the start activities and the end activities feed an end place. The net has no silent transitions,
//! which the crate's replay needs.
//!
//! Precision is the token-based escaping-edges measure (as pm4py's `precision_token_based_replay`):
//! replaying each held-out trace, the transitions the net enables after each prefix are compared with the
//! activities the log shows after that prefix; precision = 1 − escaping / enabled. Written here because
//! the crate has no precision measure.

use std::collections::{BTreeMap, BTreeSet};

use process_mining::core::PetriNet;
use process_mining::core::event_data::case_centric::utils::activity_projection::EventLogActivityProjection;
use process_mining::core::process_models::case_centric::petri_net::{ArcType, Marking, PlaceID};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::heuristics::DependencyGraph;

/// Most activities a model may have for the net to be built (the place search is exponential).
pub const MAX_ACTIVITIES: usize = 64;

/// A place: input activities, output activities.
pub type Place = (BTreeSet<String>, BTreeSet<String>);

/// The places of a dependency graph's net (besides start and end).
pub fn places(g: &DependencyGraph) -> Vec<Place> {
    let edges = g.edge_set();
    let choice_out = |a: &str, x: &str, y: &str| x != y && !g.concurrent(a, x, y, false);
    let choice_in = |b: &str, x: &str, y: &str| x != y && !g.concurrent(b, x, y, true);
    let valid = |(ins, outs): &Place| -> bool {
        ins.iter().all(|a| outs.iter().all(|b| edges.contains(&(a.clone(), b.clone()))))
            && outs
                .iter()
                .all(|b1| outs.iter().all(|b2| b1 == b2 || ins.iter().all(|a| choice_out(a, b1, b2))))
            && ins.iter().all(|a1| ins.iter().all(|a2| a1 == a2 || outs.iter().all(|b| choice_in(b, a1, a2))))
    };
    let mut set: BTreeSet<Place> =
        edges.iter().filter(|(a, b)| a != b).map(|(a, b)| ([a.clone()].into(), [b.clone()].into())).collect();
    loop {
        let list: Vec<Place> = set.iter().cloned().collect();
        let mut grew = false;
        for (i, p) in list.iter().enumerate() {
            for q in &list[i + 1..] {
                let merged: Place = (p.0.union(&q.0).cloned().collect(), p.1.union(&q.1).cloned().collect());
                if !set.contains(&merged) && valid(&merged) {
                    set.insert(merged);
                    grew = true;
                }
            }
        }
        if !grew || set.len() > 10_000 {
            break;
        }
    }
    let all: Vec<Place> = set.into_iter().collect();
    all.iter()
        .filter(|p| !all.iter().any(|q| q != *p && p.0.is_subset(&q.0) && p.1.is_subset(&q.1)))
        .cloned()
        .collect()
}

/// A net over the crate's types, with deterministic ids (nothing here reads OS randomness).
pub struct Net {
    /// The crate's net.
    pub net: PetriNet,
    places: Vec<(Vec<String>, Vec<String>)>,
    activities: Vec<String>,
}

impl Net {
    /// Builds the net of `g`; `None` when it has no activities or too many.
    pub fn of(g: &DependencyGraph) -> Option<Net> {
        let activities = g.activity_names();
        if activities.is_empty() || activities.len() > MAX_ACTIVITIES {
            return None;
        }
        let mut net = PetriNet::new();
        let mut ids = BTreeMap::new();
        for (i, a) in activities.iter().enumerate() {
            let t = net.add_transition(Some(a.clone()), Some(Uuid::from_u128(1 << 64 | i as u128)));
            ids.insert(a.clone(), t);
        }
        let mut ps: Vec<(Vec<String>, Vec<String>)> =
            vec![(Vec::new(), g.start.clone()), (g.end.clone(), Vec::new())];
        ps.extend(places(g).into_iter().map(|(i, o)| (i.into_iter().collect(), o.into_iter().collect())));
        let mut place_ids = Vec::new();
        for (n, (ins, outs)) in ps.iter().enumerate() {
            let p = net.add_place(Some(Uuid::from_u128(2 << 64 | n as u128)));
            place_ids.push(p);
            for a in ins {
                if let Some(t) = ids.get(a) {
                    net.add_arc(ArcType::transition_to_place(*t, p), None);
                }
            }
            for b in outs {
                if let Some(t) = ids.get(b) {
                    net.add_arc(ArcType::place_to_transition(p, *t), None);
                }
            }
        }
        net.initial_marking = Some(Marking::from([(place_ids[0], 1)]));
        net.final_markings = Some(vec![Marking::from([(place_ids[1], 1)])]);
        Some(Net { net, places: ps, activities })
    }

    /// The crate's token-based replay fitness over `traces` (`None` when the crate refuses the net).
    pub fn fitness(&self, traces: &[Vec<String>]) -> Option<f64> {
        if traces.is_empty() {
            return None;
        }
        let mut act_to_index = std::collections::HashMap::new();
        let mut activities: Vec<String> = Vec::new();
        let mut counted: BTreeMap<Vec<usize>, u64> = BTreeMap::new();
        for t in traces {
            let ids: Vec<usize> = t
                .iter()
                .map(|a| {
                    *act_to_index.entry(a.clone()).or_insert_with(|| {
                        activities.push(a.clone());
                        activities.len() - 1
                    })
                })
                .collect();
            *counted.entry(ids).or_insert(0) += 1;
        }
        let projection =
            EventLogActivityProjection { activities, act_to_index, traces: counted.into_iter().collect() };
        let r = process_mining::conformance::case_centric::token_based_replay::apply_token_based_replay(
            &self.net,
            &projection,
        )
        .ok()?;
        Some(r.compute_fitness())
    }

    /// Escaping-edges precision over `traces` (`None` without traces).
    pub fn precision(&self, traces: &[Vec<String>]) -> Option<f64> {
        if traces.is_empty() {
            return None;
        }
        // What the log shows after each prefix.
        let mut observed: BTreeMap<&[String], BTreeSet<&str>> = BTreeMap::new();
        for t in traces {
            for i in 0..t.len() {
                observed.entry(&t[..i]).or_default().insert(t[i].as_str());
            }
        }
        let (mut enabled_total, mut escaping) = (0u64, 0u64);
        for (prefix, next) in &observed {
            let mut marking = vec![0i64; self.places.len()];
            marking[0] = 1;
            for a in *prefix {
                self.fire(&mut marking, a);
            }
            for a in &self.activities {
                if self.enabled(&marking, a) {
                    enabled_total += 1;
                    if !next.contains(a.as_str()) {
                        escaping += 1;
                    }
                }
            }
        }
        Some(if enabled_total == 0 { 1.0 } else { 1.0 - escaping as f64 / enabled_total as f64 })
    }

    fn enabled(&self, marking: &[i64], a: &str) -> bool {
        let mut any = false;
        for (i, (_, outs)) in self.places.iter().enumerate() {
            if outs.iter().any(|b| b == a) {
                any = true;
                if marking[i] <= 0 {
                    return false;
                }
            }
        }
        any
    }

    /// Fires `a`, creating missing tokens as token replay does.
    fn fire(&self, marking: &mut [i64], a: &str) {
        for (i, (ins, outs)) in self.places.iter().enumerate() {
            if outs.iter().any(|b| b == a) {
                marking[i] = (marking[i] - 1).max(0);
            }
            if ins.iter().any(|b| b == a) {
                marking[i] += 1;
            }
        }
    }

    /// Places besides start and end (for tests and reports).
    pub fn inner_places(&self) -> usize {
        self.places.len() - 2
    }
}

/// Quality of a model on held-out cases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplayQuality {
    /// Token-replay fitness.
    pub fitness: f64,
    /// Escaping-edges precision.
    pub precision: f64,
}

/// Fitness and precision of `g` on `traces`, when both can be computed.
pub fn replay_quality(g: &DependencyGraph, traces: &[Vec<String>]) -> Option<ReplayQuality> {
    let net = Net::of(g)?;
    Some(ReplayQuality { fitness: net.fitness(traces)?, precision: net.precision(traces)? })
}

/// The id of a place, for callers that inspect the crate's net.
pub fn place_id(n: u128) -> PlaceID {
    PlaceID(Uuid::from_u128(2 << 64 | n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process_mining::heuristics::{DependencyGraph, Thresholds};
    use crate::process_mining::lossy_counting::{LossyCounting, Variant};
    use crate::process_mining::tree::ProcessTree;
    use rand::SeedableRng;

    fn log(tree: &ProcessTree, n: usize, seed: u64) -> Vec<Vec<String>> {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let mut t = Vec::new();
                tree.generate(&mut rng, &mut t);
                t
            })
            .collect()
    }

    fn mined(traces: &[Vec<String>]) -> DependencyGraph {
        let mut lc = LossyCounting::new(Variant::Beamline, 1e-5, 0);
        for (c, t) in traces.iter().enumerate() {
            for a in t {
                lc.observe(&c.to_string(), a);
            }
        }
        let mut counts = lc.counts();
        // Every case of a finite log ends: count its last activity.
        for t in traces {
            if let Some(last) = t.last() {
                *counts.ends.entry(last.clone()).or_insert(0) += 1;
            }
        }
        DependencyGraph::mine(&counts, Variant::Beamline, &Thresholds::defaults(Variant::Beamline))
    }

    #[test]
    fn the_mined_net_replays_its_own_model_perfectly() {
        for name in ["sequence", "xor", "and", "loop", "order-to-cash"] {
            let tree = ProcessTree::builtin(name).unwrap();
            let g = mined(&log(&tree, 3000, 1));
            let held_out = log(&tree, 300, 2);
            let q = replay_quality(&g, &held_out).unwrap();
            assert!((q.fitness - 1.0).abs() < 1e-9, "{name}: fitness {} with {:?}", q.fitness, places(&g));
            assert!(q.precision > 0.9, "{name}: precision {}", q.precision);
        }
        let and = mined(&log(&ProcessTree::builtin("and").unwrap(), 3000, 1));
        assert_eq!(Net::of(&and).unwrap().inner_places(), 4, "{:?}", places(&and));
        let xor = mined(&log(&ProcessTree::builtin("xor").unwrap(), 3000, 1));
        assert_eq!(Net::of(&xor).unwrap().inner_places(), 2, "{:?}", places(&xor));
    }

    #[test]
    fn traces_the_model_cannot_produce_lower_fitness_and_a_flower_lowers_precision() {
        let tree = ProcessTree::builtin("sequence").unwrap();
        let g = mined(&log(&tree, 1000, 1));
        let bad: Vec<Vec<String>> = vec![["A", "C", "B", "D", "E"].iter().map(|s| s.to_string()).collect()];
        let q = replay_quality(&g, &bad).unwrap();
        assert!(q.fitness < 0.9, "{q:?}");
        // A model of 'xor' judged on a log that only ever takes B: C and D escape after A.
        let xor = mined(&log(&ProcessTree::builtin("xor").unwrap(), 1000, 1));
        let only_b: Vec<Vec<String>> = vec![["A", "B", "E"].iter().map(|s| s.to_string()).collect()];
        let q = replay_quality(&xor, &only_b).unwrap();
        assert!((q.fitness - 1.0).abs() < 1e-9 && q.precision < 0.7, "{q:?}");
    }
}
