//! The Heuristics Miner with Lossy Counting's tables (Burattin, Sperduti, van der Aalst, "Heuristics Miners
//! for Streaming Event Data", 2012), as published and in the two variants people run.
//!
//! Every event `(case c, activity a)` is counted in three tables of `(f, Δ)` entries: `D_A` (activities),
//! `D_C` (each case's last activity) and `D_R` (relations `a → b` between consecutive activities of a
//! case). With bucket width `w = ⌈1/ε⌉` and current bucket `b`, a new entry is `(1, b − 1)`; every `w`
//! events, entries with `f + Δ ≤ b` are removed from all three. The undercount is at most `εN`, and the
//! tables hold `O((1/ε)·log(εN))` entries.
//!
//! Variants ([`Variant`]):
//! - `beamline` (the reference implementation, `beamline/discovery-heuristics`): `b = ⌊N / w⌋`;
//! - `pybeamline` (`beamline/pybeamline`): `b = ⌈N / w⌉`, and no `D_A` (activities come from `D_R`);
//! - `henrywedge` (what the seed study deployed, `HenryWedge/distributed-heuristics-miner-flink`): a
//!   fixed bucket size instead of `ε`, `b = ⌈N / w⌉`, and no cleanup of `D_C`.
//!
//! Start activities are counted when a case is first seen, end activities when a case's entry is removed
//! (its last activity), as the reference does.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// Which published variant of the algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// `beamline/discovery-heuristics`: floor bucket, dependency `(ab − ba)/(ab + ba + 1)`, relative-to-best.
    #[default]
    Beamline,
    /// `beamline/pybeamline`: ceiling bucket, no activity table.
    Pybeamline,
    /// `HenryWedge/distributed-heuristics-miner-flink`: fixed bucket, `ab/(ab + ba + 1)`, no
    /// relative-to-best, no case cleanup.
    Henrywedge,
}

/// One counted entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Frequency since the entry was (re)inserted.
    pub f: u64,
    /// The maximum undercount.
    pub delta: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct CaseEntry {
    last: u32,
    entry: Entry,
}

/// The three tables and their counters. Activities are interned (`u32`); cases are keyed by their id. A
/// checkpoint is a clone.
#[derive(Clone, Debug, PartialEq)]
pub struct LossyCounting {
    variant: Variant,
    width: u64,
    observed: u64,
    names: Vec<String>,
    ids: FxHashMap<String, u32>,
    activities: BTreeMap<u32, Entry>,
    cases: FxHashMap<String, CaseEntry>,
    relations: FxHashMap<(u32, u32), Entry>,
    starts: BTreeMap<u32, u64>,
    ends: BTreeMap<u32, u64>,
}

/// Table sizes, for metrics and the memory bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableSizes {
    /// Entries of `D_A`.
    pub activities: usize,
    /// Entries of `D_C`.
    pub cases: usize,
    /// Entries of `D_R`.
    pub relations: usize,
}

/// What the tables say now: counts by name, for a model or a merge.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Events observed.
    pub events: u64,
    /// Activity frequencies.
    pub activities: BTreeMap<String, u64>,
    /// Relation frequencies `|a > b|`.
    pub relations: BTreeMap<String, BTreeMap<String, u64>>,
    /// Cases started with each activity.
    pub starts: BTreeMap<String, u64>,
    /// Cases whose last activity (when removed) was this one.
    pub ends: BTreeMap<String, u64>,
}

impl Counts {
    /// Adds another instance's counts (the merge of parallel miners).
    pub fn merge(&mut self, other: &Counts) {
        self.events += other.events;
        for (a, f) in &other.activities {
            *self.activities.entry(a.clone()).or_insert(0) += f;
        }
        for (a, to) in &other.relations {
            let row = self.relations.entry(a.clone()).or_default();
            for (b, f) in to {
                *row.entry(b.clone()).or_insert(0) += f;
            }
        }
        for (a, f) in &other.starts {
            *self.starts.entry(a.clone()).or_insert(0) += f;
        }
        for (a, f) in &other.ends {
            *self.ends.entry(a.clone()).or_insert(0) += f;
        }
    }

    /// `|a > b|`.
    pub fn relation(&self, a: &str, b: &str) -> u64 {
        self.relations.get(a).and_then(|r| r.get(b)).copied().unwrap_or(0)
    }
}

impl LossyCounting {
    /// Tables for error `epsilon` (`beamline`, `pybeamline`) or bucket size `bucket` (`henrywedge`).
    pub fn new(variant: Variant, epsilon: f64, bucket: u64) -> LossyCounting {
        let width = match variant {
            Variant::Henrywedge => bucket.max(1),
            _ => (1.0 / epsilon.clamp(1e-12, 1.0)).ceil().max(1.0) as u64,
        };
        LossyCounting {
            variant,
            width,
            observed: 0,
            names: Vec::new(),
            ids: FxHashMap::default(),
            activities: BTreeMap::new(),
            cases: FxHashMap::default(),
            relations: FxHashMap::default(),
            starts: BTreeMap::new(),
            ends: BTreeMap::new(),
        }
    }

    /// The bucket width `w`.
    pub fn width(&self) -> u64 {
        self.width
    }

    /// Events observed.
    pub fn observed(&self) -> u64 {
        self.observed
    }

    fn bucket(&self) -> i64 {
        let (n, w) = (self.observed, self.width);
        let b = match self.variant {
            Variant::Beamline => n / w,
            Variant::Pybeamline | Variant::Henrywedge => n.div_ceil(w),
        };
        b as i64
    }

    fn intern(&mut self, activity: &str) -> u32 {
        if let Some(id) = self.ids.get(activity) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(activity.to_string());
        self.ids.insert(activity.to_string(), id);
        id
    }

    /// Counts one event.
    pub fn observe(&mut self, case: &str, activity: &str) {
        self.observed += 1;
        let b = self.bucket();
        let a = self.intern(activity);
        let fresh = Entry { f: 1, delta: b - 1 };
        if self.variant != Variant::Pybeamline {
            self.activities.entry(a).and_modify(|e| e.f += 1).or_insert(fresh);
        }
        match self.cases.get_mut(case) {
            Some(c) => {
                let r = (c.last, a);
                c.last = a;
                c.entry.f += 1;
                self.relations.entry(r).and_modify(|e| e.f += 1).or_insert(fresh);
            }
            None => {
                *self.starts.entry(a).or_insert(0) += 1;
                self.cases.insert(case.to_string(), CaseEntry { last: a, entry: fresh });
            }
        }
        if self.observed.is_multiple_of(self.width) {
            self.cleanup(b);
        }
    }

    fn cleanup(&mut self, b: i64) {
        let keep = |e: &Entry| e.f as i64 + e.delta > b;
        self.activities.retain(|_, e| keep(e));
        self.relations.retain(|_, e| keep(e));
        if self.variant != Variant::Henrywedge {
            let ends = &mut self.ends;
            self.cases.retain(|_, c| {
                let k = keep(&c.entry);
                if !k {
                    *ends.entry(c.last).or_insert(0) += 1;
                }
                k
            });
        }
    }

    /// Entries per table.
    pub fn sizes(&self) -> TableSizes {
        TableSizes {
            activities: self.activities.len(),
            cases: self.cases.len(),
            relations: self.relations.len(),
        }
    }

    /// The counts by name.
    pub fn counts(&self) -> Counts {
        let name = |id: &u32| self.names.get(*id as usize).cloned().unwrap_or_default();
        let mut c = Counts { events: self.observed, ..Counts::default() };
        for (a, e) in &self.activities {
            c.activities.insert(name(a), e.f);
        }
        for ((a, b), e) in &self.relations {
            c.relations.entry(name(a)).or_default().insert(name(b), e.f);
            if self.variant == Variant::Pybeamline {
                // No activity table: activities are what the relations name.
                for x in [a, b] {
                    c.activities.entry(name(x)).or_insert(0);
                }
                *c.activities.entry(name(b)).or_insert(0) += e.f;
            }
        }
        for (a, f) in &self.starts {
            c.starts.insert(name(a), *f);
        }
        for (a, f) in &self.ends {
            c.ends.insert(name(a), *f);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_relations_per_case_and_starts() {
        let mut lc = LossyCounting::new(Variant::Beamline, 1e-6, 0);
        for (c, a) in [("1", "A"), ("2", "A"), ("1", "B"), ("2", "C"), ("1", "D"), ("2", "D")] {
            lc.observe(c, a);
        }
        let c = lc.counts();
        assert_eq!(c.relation("A", "B"), 1);
        assert_eq!(c.relation("A", "C"), 1);
        assert_eq!(c.relation("B", "D"), 1);
        assert_eq!(c.starts["A"], 2);
        assert_eq!(c.activities["D"], 2);
        assert_eq!(lc.sizes(), TableSizes { activities: 4, cases: 2, relations: 4 });
    }

    #[test]
    fn cleanup_removes_rare_entries_at_bucket_ends_and_bounds_the_tables() {
        // w = 10: one-off cases vanish at each bucket end; their last activity counts as an end.
        let mut lc = LossyCounting::new(Variant::Pybeamline, 0.1, 0);
        for i in 0..1000 {
            lc.observe(&format!("c{i}"), "A");
        }
        assert!(lc.sizes().cases <= 10, "{:?}", lc.sizes());
        assert_eq!(lc.counts().ends.get("A").copied().unwrap_or(0) + lc.sizes().cases as u64, 1000);
        // The henrywedge variant never cleans its case table.
        let mut hw = LossyCounting::new(Variant::Henrywedge, 0.0, 10);
        for i in 0..1000 {
            hw.observe(&format!("c{i}"), "A");
        }
        assert_eq!(hw.sizes().cases, 1000);
        assert_eq!(hw.width(), 10);
        assert_eq!(LossyCounting::new(Variant::Beamline, 1e-4, 0).width(), 10_000);
    }

    #[test]
    fn counts_merge_and_checkpoints_round_trip() {
        let mut a = LossyCounting::new(Variant::Beamline, 0.01, 0);
        a.observe("1", "A");
        a.observe("1", "B");
        let mut back = a.clone();
        back.observe("1", "C");
        a.observe("1", "C");
        assert_eq!(back.counts(), a.counts());
        let mut m = a.counts();
        m.merge(&a.counts());
        assert_eq!(m.relation("A", "B"), 2);
        assert_eq!(m.events, 6);
    }
}
