//! From counts to a model: the Heuristics Miner's dependency graph.
//!
//! - Dependency `a ⇒ b` = `(|a>b| − |b>a|) / (|a>b| + |b>a| + 1)` (`henrywedge`: `|a>b| / (|a>b| + |b>a| +
//!   1)`); a self-loop `a ⇒ a` = `|a>a| / (|a>a| + 1)`.
//! - An edge is kept when its dependency reaches the threshold, `|a>b|` reaches the positive
//!   observations, and (not `henrywedge`) it is within `relative_to_best` of `a`'s best outgoing one.
//! - The AND measure of two outputs `b, c` of `a` = `(|b>c| + |c>b|) / (|a>b| + |a>c| + 1)`; at or above
//!   the AND threshold they are concurrent, below it a choice (joins symmetric).
//! - Start activities are those that start at least a quarter of their occurrences' cases (or have no
//!   incoming edge); end activities likewise — Lossy Counting's removal of running cases adds a few false
//!   starts and ends, which this keeps out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::lossy_counting::{Counts, Variant};

/// The share of an activity's occurrences that must start (end) a case for it to be a start (end)
/// activity.
pub const ROLE_SHARE: f64 = 0.25;

/// The miner's thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Dependency threshold.
    pub dependency: f64,
    /// Least `|a>b|` for an edge.
    pub positive_observations: u64,
    /// How far below the best outgoing dependency an edge may be (not `henrywedge`).
    pub relative_to_best: f64,
    /// AND threshold.
    pub and: f64,
}

impl Thresholds {
    /// The variant's published defaults.
    pub fn defaults(variant: Variant) -> Thresholds {
        match variant {
            Variant::Beamline => {
                Thresholds { dependency: 0.9, positive_observations: 10, relative_to_best: 0.05, and: 0.1 }
            }
            Variant::Pybeamline => {
                Thresholds { dependency: 0.5, positive_observations: 1, relative_to_best: 0.05, and: 0.8 }
            }
            Variant::Henrywedge => {
                Thresholds { dependency: 0.5, positive_observations: 1, relative_to_best: 1.0, and: 0.5 }
            }
        }
    }
}

/// One edge of the dependency graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// Source activity.
    pub from: String,
    /// Target activity.
    pub to: String,
    /// `|from > to|`.
    pub frequency: u64,
    /// The dependency measure.
    pub dependency: f64,
}

/// One activity of the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// Name.
    pub name: String,
    /// Counted frequency.
    pub frequency: u64,
}

/// A mined dependency graph.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DependencyGraph {
    /// Activities, by name.
    pub activities: Vec<Activity>,
    /// Edges, sorted by source and target.
    pub edges: Vec<Edge>,
    /// Start activities.
    pub start: Vec<String>,
    /// End activities.
    pub end: Vec<String>,
    /// Pairs of outputs of one activity that are concurrent (`[a, b, c]`: `b ∥ c` after `a`).
    pub and_splits: Vec<[String; 3]>,
    /// Pairs of inputs of one activity that are concurrent (`[b, c, d]`: `b ∥ c` before `d`).
    pub and_joins: Vec<[String; 3]>,
    /// Events the counts cover.
    pub events: u64,
}

/// The dependency of `a ⇒ b` for `variant`.
pub fn dependency(variant: Variant, ab: u64, ba: u64, same: bool) -> f64 {
    let (ab, ba) = (ab as f64, ba as f64);
    if same {
        return ab / (ab + 1.0);
    }
    match variant {
        Variant::Henrywedge => ab / (ab + ba + 1.0),
        _ => (ab - ba) / (ab + ba + 1.0),
    }
}

impl DependencyGraph {
    /// Mines the dependency graph of `counts`.
    pub fn mine(counts: &Counts, variant: Variant, t: &Thresholds) -> DependencyGraph {
        let mut candidates: BTreeMap<&str, Vec<Edge>> = BTreeMap::new();
        for (a, row) in &counts.relations {
            for (b, ab) in row {
                let ba = counts.relation(b, a);
                let dep = dependency(variant, *ab, ba, a == b);
                if dep >= t.dependency && *ab >= t.positive_observations.max(1) {
                    candidates.entry(a.as_str()).or_default().push(Edge {
                        from: a.clone(),
                        to: b.clone(),
                        frequency: *ab,
                        dependency: dep,
                    });
                }
            }
        }
        let mut edges = Vec::new();
        for (_, mut out) in candidates {
            if variant != Variant::Henrywedge {
                let best = out.iter().map(|e| e.dependency).fold(f64::MIN, f64::max);
                out.retain(|e| best - e.dependency <= t.relative_to_best);
            }
            edges.extend(out);
        }
        edges.sort_by(|x, y| (&x.from, &x.to).cmp(&(&y.from, &y.to)));
        let mut g = DependencyGraph {
            activities: counts
                .activities
                .iter()
                .map(|(n, f)| Activity { name: n.clone(), frequency: *f })
                .collect(),
            edges,
            events: counts.events,
            ..DependencyGraph::default()
        };
        let and = |x: &str, y: &str, ax: u64, ay: u64| {
            (counts.relation(x, y) + counts.relation(y, x)) as f64 / (ax + ay + 1) as f64
        };
        for a in g.activity_names() {
            let outs = g.successors(&a);
            for (i, b) in outs.iter().enumerate() {
                for c in &outs[i + 1..] {
                    if b != &a
                        && c != &a
                        && and(b, c, counts.relation(&a, b), counts.relation(&a, c)) >= t.and
                    {
                        g.and_splits.push([a.clone(), b.clone(), c.clone()]);
                    }
                }
            }
            let ins = g.predecessors(&a);
            for (i, b) in ins.iter().enumerate() {
                for c in &ins[i + 1..] {
                    if b != &a
                        && c != &a
                        && and(b, c, counts.relation(b, &a), counts.relation(c, &a)) >= t.and
                    {
                        g.and_joins.push([b.clone(), c.clone(), a.clone()]);
                    }
                }
            }
        }
        // Lossy Counting also removes cases that are still running: such a case's last activity is counted
        // as an end, and its next event as a start. Those are a small share of an activity's occurrences,
        // while a real start or end is a large one (`ROLE_SHARE`); an activity without incoming (outgoing)
        // edges is a start (end) whatever the counts say, since completed cases are removed only later.
        let frequency = |a: &str| counts.activities.get(a).copied().unwrap_or(0);
        let role = |m: &BTreeMap<String, u64>, a: &str| {
            m.get(a).is_some_and(|f| *f as f64 >= ROLE_SHARE * frequency(a) as f64 && *f > 0)
        };
        let names = g.activity_names();
        g.start = names
            .iter()
            .filter(|a| role(&counts.starts, a) || g.predecessors(a).iter().all(|p| p == *a))
            .cloned()
            .collect();
        g.end = names
            .iter()
            .filter(|a| role(&counts.ends, a) || g.successors(a).iter().all(|s| s == *a))
            .cloned()
            .collect();
        g
    }

    /// Activity names, sorted.
    pub fn activity_names(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = self.activities.iter().map(|a| a.name.clone()).collect();
        for e in &self.edges {
            names.insert(e.from.clone());
            names.insert(e.to.clone());
        }
        names.into_iter().collect()
    }

    /// Targets of `a`'s edges.
    pub fn successors(&self, a: &str) -> Vec<String> {
        self.edges.iter().filter(|e| e.from == a).map(|e| e.to.clone()).collect()
    }

    /// Sources of the edges into `a`.
    pub fn predecessors(&self, a: &str) -> Vec<String> {
        self.edges.iter().filter(|e| e.to == a).map(|e| e.from.clone()).collect()
    }

    /// The edges as `(from, to)` pairs.
    pub fn edge_set(&self) -> BTreeSet<(String, String)> {
        self.edges.iter().map(|e| (e.from.clone(), e.to.clone())).collect()
    }

    /// True when `b` and `c` are concurrent after `a` (or, for joins, before `a`).
    pub fn concurrent(&self, a: &str, b: &str, c: &str, join: bool) -> bool {
        let list = if join { &self.and_joins } else { &self.and_splits };
        list.iter().any(|t| {
            let (x, y, z) = if join { (&t[2], &t[0], &t[1]) } else { (&t[0], &t[1], &t[2]) };
            x == a && ((y == b && z == c) || (y == c && z == b))
        })
    }

    /// Graphviz DOT: activities with frequencies, edges with frequency and dependency.
    pub fn to_dot(&self) -> String {
        let mut s =
            String::from("digraph process_model {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
        let q = |x: &str| format!("\"{}\"", x.replace('\\', "\\\\").replace('"', "\\\""));
        for a in &self.activities {
            let _ = writeln!(s, "  {} [label={}];", q(&a.name), q(&format!("{} ({})", a.name, a.frequency)));
        }
        let _ = writeln!(s, "  \"●\" [shape=circle, label=\"\"];\n  \"■\" [shape=doublecircle, label=\"\"];");
        for a in &self.start {
            let _ = writeln!(s, "  \"●\" -> {};", q(a));
        }
        for a in &self.end {
            let _ = writeln!(s, "  {} -> \"■\";", q(a));
        }
        for e in &self.edges {
            let _ = writeln!(
                s,
                "  {} -> {} [label={}];",
                q(&e.from),
                q(&e.to),
                q(&format!("{} ({:.3})", e.frequency, e.dependency))
            );
        }
        s.push_str("}\n");
        s
    }
}

/// Precision and recall of mined edges against the generating model's causal edges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EdgeQuality {
    /// Mined edges that the model has, over mined edges (1 when nothing was mined).
    pub precision: f64,
    /// Model edges that were mined, over model edges.
    pub recall: f64,
}

/// Compares mined edges with the model's.
pub fn edge_quality(mined: &BTreeSet<(String, String)>, truth: &BTreeSet<(String, String)>) -> EdgeQuality {
    let hit = mined.intersection(truth).count() as f64;
    EdgeQuality {
        precision: if mined.is_empty() { 1.0 } else { hit / mined.len() as f64 },
        recall: if truth.is_empty() { 1.0 } else { hit / truth.len() as f64 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process_mining::lossy_counting::LossyCounting;
    use crate::process_mining::tree::ProcessTree;
    use rand::SeedableRng;

    fn mine(tree: &ProcessTree, cases: usize, variant: Variant, epsilon: f64) -> DependencyGraph {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(4);
        let mut lc = LossyCounting::new(variant, epsilon, 1000);
        for c in 0..cases {
            let mut t = Vec::new();
            tree.generate(&mut rng, &mut t);
            for a in &t {
                lc.observe(&c.to_string(), a);
            }
        }
        DependencyGraph::mine(&lc.counts(), variant, &Thresholds::defaults(variant))
    }

    #[test]
    fn a_noiseless_stream_gives_the_models_edges() {
        for name in ["sequence", "xor", "and", "loop", "order-to-cash"] {
            let tree = ProcessTree::builtin(name).unwrap();
            for variant in [Variant::Beamline, Variant::Pybeamline] {
                let g = mine(&tree, 2000, variant, 1e-4);
                let q = edge_quality(&g.edge_set(), &tree.causal_edges());
                assert_eq!((q.precision, q.recall), (1.0, 1.0), "{name} {variant:?}: {:?}", g.edge_set());
            }
        }
        let and = mine(&ProcessTree::builtin("and").unwrap(), 2000, Variant::Beamline, 1e-4);
        assert!(and.concurrent("A", "B", "C", false) && and.concurrent("D", "B", "C", true), "{and:?}");
        assert_eq!((and.start.clone(), and.end.clone()), (vec!["A".to_string()], vec!["D".to_string()]));
        let xor = mine(&ProcessTree::builtin("xor").unwrap(), 2000, Variant::Beamline, 1e-4);
        assert!(xor.and_splits.is_empty(), "a choice is not concurrency: {:?}", xor.and_splits);
        assert!(xor.to_dot().contains("\"A\" -> \"B\""));
    }

    #[test]
    fn dependency_measures_per_variant() {
        assert!((dependency(Variant::Beamline, 10, 0, false) - 10.0 / 11.0).abs() < 1e-12);
        assert!((dependency(Variant::Beamline, 5, 5, false)).abs() < 1e-12);
        assert!((dependency(Variant::Henrywedge, 5, 5, false) - 5.0 / 11.0).abs() < 1e-12);
        assert!((dependency(Variant::Pybeamline, 3, 0, true) - 0.75).abs() < 1e-12);
        let q = edge_quality(
            &[("a".into(), "b".into()), ("x".into(), "y".into())].into(),
            &[("a".into(), "b".into())].into(),
        );
        assert_eq!((q.precision, q.recall), (0.5, 1.0));
    }

    /// An interleaved stream: `open` cases at once, each event from a random one.
    fn stream(tree: &ProcessTree, events: usize, open: usize, seed: u64) -> Vec<(String, String)> {
        use rand::Rng as _;
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut next = 0usize;
        let mut new_case = |rng: &mut rand_xoshiro::Xoshiro256PlusPlus| {
            let mut t = Vec::new();
            tree.generate(rng, &mut t);
            next += 1;
            (next.to_string(), t, 0usize)
        };
        let mut cases: Vec<(String, Vec<String>, usize)> = (0..open).map(|_| new_case(&mut rng)).collect();
        let mut out = Vec::with_capacity(events);
        while out.len() < events {
            let i = rng.gen_range(0..open);
            let (id, t, pos) = &mut cases[i];
            out.push((id.clone(), t[*pos].clone()));
            *pos += 1;
            if *pos == t.len() {
                cases[i] = new_case(&mut rng);
            }
        }
        out
    }

    #[test]
    fn a_large_epsilon_forgets_relations_and_the_tables_stay_within_the_bound() {
        let tree = ProcessTree::builtin("order-to-cash").unwrap();
        let events = stream(&tree, 60_000, 200, 9);
        let mut recall = Vec::new();
        for epsilon in [1e-4, 0.02] {
            let mut lc = LossyCounting::new(Variant::Beamline, epsilon, 0);
            let mut max = (0, 0, 0);
            for (c, a) in &events {
                lc.observe(c, a);
                let s = lc.sizes();
                max = (max.0.max(s.activities), max.1.max(s.cases), max.2.max(s.relations));
            }
            // Lossy Counting keeps at most (1/ε)·log(εN) entries per table (plus the bucket being filled).
            let n = events.len() as f64;
            let bound = ((1.0 / epsilon) * (epsilon * n).max(1.0).ln() + 1.0 / epsilon).ceil() as usize;
            assert!(max.1 <= bound && max.2 <= bound, "ε {epsilon}: sizes {max:?} over the bound {bound}");
            let g = DependencyGraph::mine(
                &lc.counts(),
                Variant::Beamline,
                &Thresholds::defaults(Variant::Beamline),
            );
            recall.push(edge_quality(&g.edge_set(), &tree.causal_edges()).recall);
        }
        assert_eq!(recall[0], 1.0, "a small ε finds every edge");
        assert!(
            recall[1] < 1.0,
            "with w = 50 and 200 open cases, cases are dropped mid-way and relations lost: {recall:?}"
        );
    }

    #[test]
    fn with_a_tiny_epsilon_the_stream_gives_the_batch_dependencies() {
        let tree = ProcessTree::builtin("order-to-cash").unwrap();
        let events = stream(&tree, 30_000, 50, 3);
        let mut lc = LossyCounting::new(Variant::Beamline, 1e-9, 0);
        for (c, a) in &events {
            lc.observe(c, a);
        }
        let streamed =
            DependencyGraph::mine(&lc.counts(), Variant::Beamline, &Thresholds::defaults(Variant::Beamline));
        // The batch Heuristics Miner over the same log: directly-follows counts per case, computed here.
        let mut traces: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (c, a) in &events {
            traces.entry(c.as_str()).or_default().push(a.as_str());
        }
        let mut df: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for t in traces.values() {
            for w in t.windows(2) {
                *df.entry((w[0], w[1])).or_insert(0) += 1;
            }
        }
        assert!(!streamed.edges.is_empty());
        for e in &streamed.edges {
            let ab = df.get(&(e.from.as_str(), e.to.as_str())).copied().unwrap_or(0);
            let ba = df.get(&(e.to.as_str(), e.from.as_str())).copied().unwrap_or(0);
            assert_eq!(e.frequency, ab, "{} -> {}", e.from, e.to);
            let batch = (ab as f64 - ba as f64) / (ab as f64 + ba as f64 + 1.0);
            assert_eq!(e.dependency, batch, "{} -> {}", e.from, e.to);
        }
        let batch_edges: BTreeSet<(String, String)> = df
            .iter()
            .filter(|((a, b), ab)| {
                let ba = df.get(&(*b, *a)).copied().unwrap_or(0);
                (**ab as f64 - ba as f64) / (**ab as f64 + ba as f64 + 1.0) >= 0.9 && **ab >= 10
            })
            .map(|((a, b), _)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(streamed.edge_set(), batch_edges);
    }
}
