//! FP-growth frequent-itemset mining and association rules with the semantics of Spark MLlib's
//! `FPGrowth` (Spark 2.4/3.x `ml.fpm`), which the reference's pattern-analysis job uses (rdsea/bigdataincidentanalytics, `reasoning/pattern-analysis`).
//!
//! Written here rather than taken from crates.io: the `fp-growth` crate (last release 0.1.6, April 2021)
//! is unmaintained, takes an absolute support count and produces no association rules.
//!
//! Semantics, as Spark:
//! - `minSupport` and `minConfidence` are fractions in [0, 1]. An itemset is frequent when it occurs in at
//!   least `ceil(minSupport · n)` of the `n` transactions, with the product computed in `f64` (so
//!   `ceil(0.55 · 100)` is 56, as in Spark).
//! - Items within a transaction must be unique (Spark fails the job otherwise).
//! - Rules have a non-empty antecedent and a single-item consequent: for every frequent itemset `I` and
//!   item `y ∈ I` with `I ∖ {y}` non-empty, `confidence = freq(I) / freq(I ∖ {y})`, kept when
//!   `≥ minConfidence`; `lift = confidence / (freq({y}) / n)` and `support = freq(I) / n`.
//! - [`FpGrowthModel::predict`] is `FPGrowthModel.transform`: the consequents of every rule whose
//!   antecedent is contained in the given items, minus those items, without duplicates.
//!
//! Spark's output order depends on partitioning; here it is fixed: items inside an itemset or rule side
//! ascending, itemsets by (size, items), rules by (antecedent size, antecedent, consequent), predictions
//! ascending.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// Invalid mining input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FpGrowthError {
    /// `minSupport` outside [0, 1].
    #[error("minSupport must be in [0, 1], got {0}")]
    MinSupport(f64),
    /// `minConfidence` outside [0, 1].
    #[error("minConfidence must be in [0, 1], got {0}")]
    MinConfidence(f64),
    /// A transaction lists an item twice.
    #[error("items in a transaction must be unique, but transaction {0} repeats an item")]
    DuplicateItem(usize),
}

/// A frequent itemset and the number of transactions that contain it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FrequentItemset<T> {
    /// Items, ascending.
    pub items: Vec<T>,
    /// Number of transactions containing all of them.
    pub freq: u64,
}

/// An association rule `antecedent → consequent`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AssociationRule<T> {
    /// Items on the left, ascending.
    pub antecedent: Vec<T>,
    /// The single item on the right (a list, as in Spark).
    pub consequent: Vec<T>,
    /// `freq(antecedent ∪ consequent) / freq(antecedent)`.
    pub confidence: f64,
    /// `confidence / (freq(consequent) / n)`.
    pub lift: f64,
    /// `freq(antecedent ∪ consequent) / n`.
    pub support: f64,
}

/// The result of [`fp_growth`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FpGrowthModel<T> {
    /// Number of transactions mined.
    pub num_transactions: u64,
    /// The support count threshold, `ceil(minSupport · n)`.
    pub min_count: u64,
    /// All frequent itemsets.
    pub itemsets: Vec<FrequentItemset<T>>,
    /// All rules with confidence ≥ minConfidence.
    pub rules: Vec<AssociationRule<T>>,
}

impl<T: Ord + Clone> FpGrowthModel<T> {
    /// Items the rules predict for a transaction (Spark's `transform`), ascending.
    pub fn predict(&self, items: &[T]) -> Vec<T> {
        let present: BTreeSet<&T> = items.iter().collect();
        let mut predicted = BTreeSet::new();
        for rule in &self.rules {
            if rule.antecedent.iter().all(|item| present.contains(item)) {
                predicted.extend(rule.consequent.iter().filter(|item| !present.contains(item)));
            }
        }
        predicted.into_iter().cloned().collect()
    }
}

/// Mines `transactions` for itemsets with support ≥ `min_support` and rules with confidence ≥
/// `min_confidence` (see the module doc).
pub fn fp_growth<T: Ord + Clone>(
    transactions: &[Vec<T>],
    min_support: f64,
    min_confidence: f64,
) -> Result<FpGrowthModel<T>, FpGrowthError> {
    if !(0.0..=1.0).contains(&min_support) {
        return Err(FpGrowthError::MinSupport(min_support));
    }
    if !(0.0..=1.0).contains(&min_confidence) {
        return Err(FpGrowthError::MinConfidence(min_confidence));
    }
    let num_transactions = transactions.len() as u64;
    let min_count = (min_support * num_transactions as f64).ceil() as u64;

    let mut counts: BTreeMap<&T, u64> = BTreeMap::new();
    for (index, transaction) in transactions.iter().enumerate() {
        let distinct: BTreeSet<&T> = transaction.iter().collect();
        if distinct.len() != transaction.len() {
            return Err(FpGrowthError::DuplicateItem(index));
        }
        for item in distinct {
            *counts.entry(item).or_default() += 1;
        }
    }

    // Rank frequent items by descending count (ties by item), as FP-growth orders tree paths.
    let mut frequent: Vec<(&T, u64)> = counts.into_iter().filter(|&(_, count)| count >= min_count).collect();
    frequent.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let rank: BTreeMap<&T, usize> =
        frequent.iter().enumerate().map(|(rank, &(item, _))| (item, rank)).collect();

    let mut tree = FpTree::default();
    for transaction in transactions {
        let mut path: Vec<usize> = transaction.iter().filter_map(|item| rank.get(item).copied()).collect();
        path.sort_unstable();
        tree.insert(&path, 1);
    }
    let mut found: Vec<(Vec<usize>, u64)> = Vec::new();
    mine(&tree, min_count, &mut Vec::new(), &mut found);

    let items_of = |ranks: &[usize]| -> Vec<T> {
        let mut items: Vec<T> = ranks.iter().map(|&rank| frequent[rank].0.clone()).collect();
        items.sort();
        items
    };
    let mut itemsets: Vec<FrequentItemset<T>> =
        found.iter().map(|(ranks, freq)| FrequentItemset { items: items_of(ranks), freq: *freq }).collect();
    itemsets.sort_by(|a, b| a.items.len().cmp(&b.items.len()).then_with(|| a.items.cmp(&b.items)));

    let freq_of: BTreeMap<&[T], u64> = itemsets.iter().map(|set| (set.items.as_slice(), set.freq)).collect();
    let n = num_transactions as f64;
    let mut rules = Vec::new();
    for itemset in itemsets.iter().filter(|set| set.items.len() > 1) {
        for (position, consequent) in itemset.items.iter().enumerate() {
            let mut antecedent = itemset.items.clone();
            antecedent.remove(position);
            // Every subset of a frequent itemset is frequent, so both look-ups succeed.
            let (Some(&antecedent_freq), Some(&consequent_freq)) =
                (freq_of.get(antecedent.as_slice()), freq_of.get(std::slice::from_ref(consequent)))
            else {
                continue;
            };
            let confidence = itemset.freq as f64 / antecedent_freq as f64;
            if confidence >= min_confidence {
                rules.push(AssociationRule {
                    antecedent,
                    consequent: vec![consequent.clone()],
                    confidence,
                    lift: confidence / (consequent_freq as f64 / n),
                    support: itemset.freq as f64 / n,
                });
            }
        }
    }
    rules.sort_by(|a, b| {
        a.antecedent
            .len()
            .cmp(&b.antecedent.len())
            .then_with(|| a.antecedent.cmp(&b.antecedent))
            .then_with(|| a.consequent.cmp(&b.consequent))
    });

    Ok(FpGrowthModel { num_transactions, min_count, itemsets, rules })
}

/// An FP-tree over item ranks: paths hold ranks in ascending order (most frequent first).
#[derive(Default)]
struct FpTree {
    /// Node 0 is the root once anything was inserted.
    nodes: Vec<FpNode>,
    /// For each rank, the nodes holding it.
    header: BTreeMap<usize, Vec<usize>>,
}

struct FpNode {
    rank: usize,
    count: u64,
    parent: usize,
    children: BTreeMap<usize, usize>,
}

impl FpTree {
    fn insert(&mut self, path: &[usize], count: u64) {
        if self.nodes.is_empty() {
            self.nodes.push(FpNode { rank: usize::MAX, count: 0, parent: 0, children: BTreeMap::new() });
        }
        let mut at = 0;
        for &rank in path {
            at = match self.nodes[at].children.get(&rank) {
                Some(&child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(FpNode { rank, count: 0, parent: at, children: BTreeMap::new() });
                    self.nodes[at].children.insert(rank, child);
                    self.header.entry(rank).or_default().push(child);
                    child
                }
            };
            self.nodes[at].count += count;
        }
    }

    /// The prefix paths (ranks, ascending) above each node of `rank`, with that node's count.
    fn prefix_paths(&self, rank: usize) -> Vec<(Vec<usize>, u64)> {
        let mut paths = Vec::new();
        for &node in self.header.get(&rank).map(Vec::as_slice).unwrap_or_default() {
            let mut path = Vec::new();
            let mut at = self.nodes[node].parent;
            while at != 0 {
                path.push(self.nodes[at].rank);
                at = self.nodes[at].parent;
            }
            path.reverse();
            paths.push((path, self.nodes[node].count));
        }
        paths
    }
}

/// Appends every frequent itemset of `tree` (extended by `suffix`) to `found`.
fn mine(tree: &FpTree, min_count: u64, suffix: &mut Vec<usize>, found: &mut Vec<(Vec<usize>, u64)>) {
    for (&rank, nodes) in tree.header.iter().rev() {
        let support: u64 = nodes.iter().map(|&node| tree.nodes[node].count).sum();
        if support < min_count {
            continue;
        }
        suffix.push(rank);
        found.push((suffix.clone(), support));

        let paths = tree.prefix_paths(rank);
        let mut counts: BTreeMap<usize, u64> = BTreeMap::new();
        for (path, count) in &paths {
            for &item in path {
                *counts.entry(item).or_default() += count;
            }
        }
        let mut conditional = FpTree::default();
        for (path, count) in &paths {
            let kept: Vec<usize> = path
                .iter()
                .copied()
                .filter(|item| counts.get(item).is_some_and(|&c| c >= min_count))
                .collect();
            if !kept.is_empty() {
                conditional.insert(&kept, *count);
            }
        }
        if !conditional.header.is_empty() {
            mine(&conditional, min_count, suffix, found);
        }
        suffix.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transactions(rows: &[&str]) -> Vec<Vec<String>> {
        rows.iter().map(|row| row.split_whitespace().map(str::to_string).collect()).collect()
    }

    fn sets(model: &FpGrowthModel<String>) -> Vec<(String, u64)> {
        model.itemsets.iter().map(|set| (set.items.join(" "), set.freq)).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    // Hand computation for the 5 transactions below (n = 5):
    //   T1 = {a b c}, T2 = {a b}, T3 = {a c}, T4 = {b c}, T5 = {a b c d}
    //   item counts: a = 4 (T1 T2 T3 T5), b = 4 (T1 T2 T4 T5), c = 4 (T1 T3 T4 T5), d = 1 (T5)
    //   pairs: ab = 3 (T1 T2 T5), ac = 3 (T1 T3 T5), bc = 3 (T1 T4 T5); triple abc = 2 (T1 T5)
    //   minSupport 0.4: minCount = ceil(0.4 * 5) = 2, so d (1) is dropped and 7 itemsets remain.
    //   Rules: x -> y for a pair: confidence 3/4 = 0.75, lift 0.75 / (4/5) = 0.9375, support 3/5 = 0.6
    //          (6 rules); xy -> z: confidence 2/3, lift (2/3) / (4/5) = 5/6, support 2/5 = 0.4 (3 rules).
    //   minConfidence 0.7 keeps only the 6 pair rules; 0.6 keeps all 9.
    const HAND: [&str; 5] = ["a b c", "a b", "a c", "b c", "a b c d"];

    #[test]
    fn matches_the_hand_computed_example() {
        let model = fp_growth(&transactions(&HAND), 0.4, 0.6).unwrap();
        assert_eq!(model.num_transactions, 5);
        assert_eq!(model.min_count, 2);
        let expected: Vec<(String, u64)> =
            [("a", 4), ("b", 4), ("c", 4), ("a b", 3), ("a c", 3), ("b c", 3), ("a b c", 2)]
                .iter()
                .map(|&(items, freq)| (items.to_string(), freq))
                .collect();
        assert_eq!(sets(&model), expected);

        assert_eq!(model.rules.len(), 9);
        for rule in &model.rules[..6] {
            assert_eq!(rule.antecedent.len(), 1);
            assert!(close(rule.confidence, 0.75) && close(rule.lift, 0.9375) && close(rule.support, 0.6));
        }
        for rule in &model.rules[6..] {
            assert_eq!(rule.antecedent.len(), 2);
            assert!(
                close(rule.confidence, 2.0 / 3.0) && close(rule.lift, 5.0 / 6.0) && close(rule.support, 0.4)
            );
        }
        let first = &model.rules[0];
        assert_eq!(
            (first.antecedent.as_slice(), first.consequent.as_slice()),
            (&["a".to_string()][..], &["b".to_string()][..])
        );
        let last = &model.rules[8];
        assert_eq!(last.antecedent, ["b", "c"]);
        assert_eq!(last.consequent, ["a"]);

        let strict = fp_growth(&transactions(&HAND), 0.4, 0.7).unwrap();
        assert_eq!(strict.rules.len(), 6);
        assert_eq!(strict.itemsets, model.itemsets, "confidence does not change itemsets");
    }

    #[test]
    fn predicts_missing_consequents() {
        let model = fp_growth(&transactions(&HAND), 0.4, 0.6).unwrap();
        let items = |text: &str| text.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(model.predict(&items("a")), ["b", "c"]);
        assert_eq!(model.predict(&items("a b")), ["c"]);
        assert!(model.predict(&items("a b c")).is_empty());
        assert!(model.predict(&items("d")).is_empty());
    }

    #[test]
    fn min_count_uses_f64_ceil_like_spark() {
        // 0.55 * 100 = 55.00000000000001 in f64, so Spark's minCount is 56: an item in 55 of 100
        // transactions is not frequent, one in 56 is.
        let mut rows: Vec<Vec<String>> = Vec::new();
        for index in 0..100 {
            let mut row = vec![format!("t{index}")];
            if index < 55 {
                row.push("x".into());
            }
            if index < 56 {
                row.push("y".into());
            }
            rows.push(row);
        }
        let model = fp_growth(&rows, 0.55, 0.0).unwrap();
        assert_eq!(model.min_count, 56);
        assert_eq!(sets(&model), [("y".to_string(), 56)]);
    }

    #[test]
    fn agrees_with_brute_force_on_a_larger_example() {
        let rows = transactions(&[
            "f a c d g i m p",
            "a b c f l m o",
            "b f h j o",
            "b c k s p",
            "a f c e l p m n",
            "a c m",
            "c f m p",
            "a b",
        ]);
        let model = fp_growth(&rows, 0.25, 0.0).unwrap();
        let universe: BTreeSet<&String> = rows.iter().flatten().collect();
        let universe: Vec<&String> = universe.into_iter().collect();
        // Brute force over all subsets of the items seen in at least min_count transactions.
        let frequent_items: Vec<&String> = universe
            .iter()
            .copied()
            .filter(|item| rows.iter().filter(|row| row.contains(item)).count() as u64 >= model.min_count)
            .collect();
        let mut expected = Vec::new();
        for mask in 1u32..(1 << frequent_items.len()) {
            let subset: Vec<String> = frequent_items
                .iter()
                .enumerate()
                .filter(|(bit, _)| mask & (1 << bit) != 0)
                .map(|(_, item)| (*item).clone())
                .collect();
            let freq = rows.iter().filter(|row| subset.iter().all(|item| row.contains(item))).count() as u64;
            if freq >= model.min_count {
                expected.push(FrequentItemset { items: subset, freq });
            }
        }
        expected.sort_by(|a, b| a.items.len().cmp(&b.items.len()).then_with(|| a.items.cmp(&b.items)));
        assert_eq!(model.itemsets, expected);
        assert!(model.itemsets.iter().any(|set| set.items == ["a", "c", "m"] && set.freq == 4));
    }

    #[test]
    fn rejects_bad_input() {
        let rows = transactions(&["a b a"]);
        assert_eq!(fp_growth(&rows, 0.1, 0.1).unwrap_err(), FpGrowthError::DuplicateItem(0));
        assert_eq!(fp_growth(&transactions(&HAND), 1.5, 0.1).unwrap_err(), FpGrowthError::MinSupport(1.5));
        assert!(matches!(
            fp_growth(&transactions(&HAND), 0.1, f64::NAN),
            Err(FpGrowthError::MinConfidence(_))
        ));
        let empty: Vec<Vec<String>> = Vec::new();
        let model = fp_growth(&empty, 0.1, 0.1).unwrap();
        assert!(model.itemsets.is_empty() && model.rules.is_empty());
    }
}
