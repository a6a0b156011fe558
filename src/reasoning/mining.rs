//! Frequent-pattern mining over recorded signals: chaoslab's version of the reference's Spark job
//! `pattern-analysis` (rdsea/bigdataincidentanalytics, `reasoning/pattern-analysis`), which predicts signals that tend to come with others.
//!
//! Steps, as the Spark job does them:
//! 1. Each recorded signal becomes the item `name#component` at its time.
//! 2. Items are grouped into Spark's epoch-aligned sliding windows `[k·slide, k·slide + window)`: an item
//!    at time `t` lands in every window with `k·slide ≤ t < k·slide + window` (`window / slide` of them
//!    when the slide divides the window). Each non-empty window is one transaction, its items without
//!    duplicates (`array_distinct`, first occurrence kept); transactions are in window order, and items
//!    within a window in time order (ties in input order).
//! 3. FP-growth ([`super::fpgrowth`]) with `minSupport` and `minConfidence` gives itemsets and rules.
//! 4. For each transaction, the rules predict the items it lacks (`transform`); transactions without a
//!    prediction are dropped, the items are sorted (`sort_array`) and duplicate rows dropped
//!    (`dropDuplicates`), keeping the first in window order.
//! 5. Each row becomes a [`Prediction`] document for the `correlated-signal-predictions` index:
//!    `{"analysisId", "analysisTimestamp", "signals", "predictedSignals"}`.
//!
//! The reference never checks its predictions against the knowledge graph; [`mark_linked`] adds that:
//! it lists the CompositeSignals that already have every signal of a prediction as a part.
//! The analysis id and time are passed in (build the id from seeded randomness with [`analysis_id`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::NaiveDateTime;
use serde::Serialize;
use uuid::Uuid;

use super::fpgrowth::{AssociationRule, FpGrowthError, FrequentItemset, fp_growth};
use super::graph::KnowledgeGraph;
use super::signal::{serialize_time, time_from_epoch_millis};

/// Most windows one signal may fall into (`window / slide`), to keep memory bounded.
pub const MAX_WINDOWS_PER_SIGNAL: u64 = 10_000;

/// Window and FP-growth settings. The default is the reference's compose setup: 1 minute windows
/// sliding by 15 seconds, minSupport 0.1, minConfidence 0.3.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MiningParams {
    /// Window length (whole milliseconds count).
    pub window: Duration,
    /// Distance between window starts (whole milliseconds count); ≤ `window`.
    pub slide: Duration,
    /// Minimum fraction of transactions an itemset must occur in.
    pub min_support: f64,
    /// Minimum confidence of a rule.
    pub min_confidence: f64,
}

impl Default for MiningParams {
    fn default() -> Self {
        MiningParams {
            window: Duration::from_secs(60),
            slide: Duration::from_secs(15),
            min_support: 0.1,
            min_confidence: 0.3,
        }
    }
}

/// Invalid mining input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MiningError {
    /// Window or slide shorter than a millisecond (Spark: "must be greater than 0").
    #[error("the {0} duration must be at least 1 ms")]
    NotPositive(&'static str),
    /// Slide longer than the window (Spark refuses it too).
    #[error(
        "the slide duration ({slide_ms} ms) must be less than or equal to the window duration ({window_ms} ms)"
    )]
    SlideLongerThanWindow {
        /// Slide in ms.
        slide_ms: i64,
        /// Window in ms.
        window_ms: i64,
    },
    /// Too many overlapping windows per signal.
    #[error("window / slide is {0}, more than {MAX_WINDOWS_PER_SIGNAL} windows per signal")]
    TooManyWindows(u64),
    /// A time chrono cannot represent or whose windows overflow.
    #[error("timestamp {0} ms is out of range")]
    TimestampOutOfRange(i64),
    /// FP-growth refused the parameters.
    #[error(transparent)]
    FpGrowth(#[from] FpGrowthError),
}

/// One window's transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// Window start, epoch ms (inclusive).
    pub window_start: i64,
    /// Window end, epoch ms (exclusive).
    pub window_end: i64,
    /// Distinct items, in time order.
    pub items: Vec<String>,
}

/// One document of `correlated-signal-predictions`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Prediction {
    /// The run's id.
    pub analysis_id: Uuid,
    /// The run's time.
    #[serde(serialize_with = "serialize_time")]
    pub analysis_timestamp: NaiveDateTime,
    /// Items of the transaction, ascending.
    pub signals: Vec<String>,
    /// Items the rules predict, ascending.
    pub predicted_signals: Vec<String>,
    /// Set by [`mark_linked`]: CompositeSignals that have all of `signals` and `predicted_signals` as parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linked_composite_signals: Option<Vec<String>>,
}

/// Everything one mining run produces.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MiningResult {
    /// Transactions, in window order.
    pub transactions: Vec<Transaction>,
    /// Frequent itemsets.
    pub itemsets: Vec<FrequentItemset<String>>,
    /// Association rules.
    pub rules: Vec<AssociationRule<String>>,
    /// Predictions, deduplicated.
    pub predictions: Vec<Prediction>,
}

/// A version-4 UUID from seeded random bytes (never the OS generator).
pub fn analysis_id<R: rand::RngCore>(rng: &mut R) -> Uuid {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Starts (epoch ms) of the windows `[k·slide, k·slide + window)` containing `timestamp`, ascending.
pub fn window_starts(timestamp: i64, window_ms: i64, slide_ms: i64) -> Vec<i64> {
    let (t, window, slide) = (i128::from(timestamp), i128::from(window_ms), i128::from(slide_ms));
    if window <= 0 || slide <= 0 {
        return Vec::new();
    }
    let last = t.div_euclid(slide);
    let first = (t - window).div_euclid(slide) + 1;
    (first..=last).filter_map(|k| i64::try_from(k * slide).ok()).collect()
}

/// Mines `signals` (`(epoch ms, name, component)`) for predictions (see the module doc).
pub fn mine(
    signals: &[(i64, String, String)],
    params: MiningParams,
    analysis_id: Uuid,
    analysis_ts: i64,
) -> Result<MiningResult, MiningError> {
    let millis = |duration: Duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    let (window_ms, slide_ms) = (millis(params.window), millis(params.slide));
    if window_ms < 1 {
        return Err(MiningError::NotPositive("window"));
    }
    if slide_ms < 1 {
        return Err(MiningError::NotPositive("slide"));
    }
    if slide_ms > window_ms {
        return Err(MiningError::SlideLongerThanWindow { slide_ms, window_ms });
    }
    // Both are at least 1 here.
    let per_signal = window_ms.unsigned_abs().div_ceil(slide_ms.unsigned_abs());
    if per_signal > MAX_WINDOWS_PER_SIGNAL {
        return Err(MiningError::TooManyWindows(per_signal));
    }
    let analysis_timestamp =
        time_from_epoch_millis(analysis_ts).ok_or(MiningError::TimestampOutOfRange(analysis_ts))?;

    let mut ordered: Vec<&(i64, String, String)> = signals.iter().collect();
    ordered.sort_by_key(|(timestamp, _, _)| *timestamp);
    let mut windows: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (timestamp, name, component) in ordered {
        let item = format!("{name}#{component}");
        let starts = window_starts(*timestamp, window_ms, slide_ms);
        if starts.is_empty() || starts.iter().any(|start| start.checked_add(window_ms).is_none()) {
            return Err(MiningError::TimestampOutOfRange(*timestamp));
        }
        for start in starts {
            let items = windows.entry(start).or_default();
            if !items.contains(&item) {
                items.push(item.clone());
            }
        }
    }
    let transactions: Vec<Transaction> = windows
        .into_iter()
        .map(|(start, items)| Transaction { window_start: start, window_end: start + window_ms, items })
        .collect();

    let item_lists: Vec<Vec<String>> = transactions.iter().map(|t| t.items.clone()).collect();
    let model = fp_growth(&item_lists, params.min_support, params.min_confidence)?;

    let mut seen: BTreeSet<(Vec<String>, Vec<String>)> = BTreeSet::new();
    let mut predictions = Vec::new();
    for transaction in &transactions {
        let predicted = model.predict(&transaction.items);
        if predicted.is_empty() {
            continue;
        }
        let mut items = transaction.items.clone();
        items.sort();
        if seen.insert((items.clone(), predicted.clone())) {
            predictions.push(Prediction {
                analysis_id,
                analysis_timestamp,
                signals: items,
                predicted_signals: predicted,
                linked_composite_signals: None,
            });
        }
    }
    tracing::info!(
        transactions = transactions.len(),
        itemsets = model.itemsets.len(),
        rules = model.rules.len(),
        predictions = predictions.len(),
        "frequent-pattern mining done"
    );
    Ok(MiningResult { transactions, itemsets: model.itemsets, rules: model.rules, predictions })
}

/// Sets each prediction's `linked_composite_signals` to the CompositeSignals (graph order) whose parts
/// include every item of its `signals` and `predicted_signals`; empty when the graph links none.
pub fn mark_linked(predictions: &mut [Prediction], graph: &KnowledgeGraph) {
    let parts: Vec<(&str, BTreeSet<String>)> = graph
        .composites()
        .iter()
        .map(|composite| {
            (composite.name.as_str(), composite.parts.iter().map(|part| part.signal.to_string()).collect())
        })
        .collect();
    for prediction in predictions {
        let linked = parts
            .iter()
            .filter(|(_, items)| {
                prediction
                    .signals
                    .iter()
                    .chain(&prediction.predicted_signals)
                    .all(|item| items.contains(item))
            })
            .map(|(name, _)| name.to_string())
            .collect();
        prediction.linked_composite_signals = Some(linked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    const E: &str = "MqttConnectionError#NIFI";
    const D: &str = "MqttInstanceDownAlert#MQTT_BROKER";
    const R: &str = "NotReceivingSensorData#NODE-RED";
    const F: &str = "MqttConnectionFailureLog#NODE-RED";

    fn ms(h: u32, m: u32, s: u32, milli: u32) -> i64 {
        let time = NaiveDate::from_ymd_opt(2020, 2, 23).unwrap().and_hms_milli_opt(h, m, s, milli).unwrap();
        time.and_utc().timestamp_millis()
    }

    fn record(at: i64, item: &str) -> (i64, String, String) {
        let (name, component) = item.split_once('#').unwrap();
        (at, name.to_string(), component.to_string())
    }

    /// One broker outage with the sample's rhythm, starting at base = 21:19:55.000:
    /// F at base+2.991, E every second from base+2.224 to base+33.224, R at base+7.183, D at base+41.617.
    fn outage() -> Vec<(i64, String, String)> {
        let base = ms(21, 19, 55, 0);
        let mut signals = vec![record(base + 2_991, F), record(base + 7_183, R), record(base + 41_617, D)];
        signals.extend((0..32).map(|i| record(base + 2_224 + i * 1_000, E)));
        signals
    }

    #[test]
    fn windows_are_epoch_aligned_and_end_exclusive() {
        assert_eq!(window_starts(70_000, 60_000, 15_000), [15_000, 30_000, 45_000, 60_000]);
        assert_eq!(
            window_starts(60_000, 60_000, 15_000),
            [15_000, 30_000, 45_000, 60_000],
            "[0, 60 s) excludes 60 s"
        );
        assert_eq!(window_starts(59_999, 60_000, 15_000), [0, 15_000, 30_000, 45_000]);
        assert_eq!(window_starts(-1, 60_000, 15_000), [-60_000, -45_000, -30_000, -15_000]);
        assert_eq!(window_starts(61_000, 60_000, 60_000), [60_000], "tumbling");
        assert_eq!(window_starts(50_000, 60_000, 40_000), [0, 40_000], "slide not dividing the window");
        assert_eq!(window_starts(10_000, 60_000, 40_000), [-40_000, 0]);
    }

    #[test]
    fn transactions_are_distinct_items_per_window() {
        let signals = vec![record(70_000, E), record(71_000, E), record(80_000, D), record(10_000, F)];
        let result = mine(&signals, MiningParams::default(), Uuid::nil(), 0).unwrap();
        let rows: Vec<(i64, Vec<&str>)> = result
            .transactions
            .iter()
            .map(|t| (t.window_start, t.items.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            rows,
            [
                (-45_000, vec![F]),
                (-30_000, vec![F]),
                (-15_000, vec![F]),
                (0, vec![F]),
                (15_000, vec![E]),
                (30_000, vec![E, D]),
                (45_000, vec![E, D]),
                (60_000, vec![E, D]),
                (75_000, vec![D]),
            ]
        );
        assert_eq!(result.transactions[4].window_end, 75_000);
        assert_eq!(result.transactions[5].items, [E, D], "E twice in the window, kept once");
    }

    // Hand computation for `outage()` with 60 s windows sliding by 15 s (times 21:MM:SS):
    //   start 19:00 {E F}      (E from 19:57.224, F 19:57.991)
    //   start 19:15 {E F R}    (R 20:02.183)
    //   start 19:30 {E F R}
    //   start 19:45 {E F R D}  (D 20:36.617)
    //   start 20:00 {E R D}    (F 19:57.991 is before the window)
    //   start 20:15 {E D}      (E until 20:28.224)
    //   start 20:30 {D}
    // n = 7, minCount = ceil(0.1 * 7) = 1; counts E 6, F 4, R 4, D 4.
    // Rules into F (confidence ≥ 0.3): E→F 4/6, R→F 3/4, E R→F 3/4, E D→F 1/3, R D→F 1/2, E R D→F 1/2;
    // D→F is 1/4 and dropped. So {E R D} predicts F: the FP_Mining_Prediction.png row.
    // Other rows: {E F} → D (E→D 3/6), R (E→R 4/6); {E F R} → D; {E D} → F, R; {D} → E (3/4), R (2/4).
    #[test]
    fn reproduces_the_fp_mining_prediction_example() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let id = analysis_id(&mut rng);
        let analysis_ts = ms(22, 0, 0, 123);
        let result = mine(&outage(), MiningParams::default(), id, analysis_ts).unwrap();
        assert_eq!(result.transactions.len(), 7);
        assert_eq!(result.transactions[4].items, [E, R, D]);
        let rows: Vec<(Vec<&str>, Vec<&str>)> = result
            .predictions
            .iter()
            .map(|p| {
                (
                    p.signals.iter().map(String::as_str).collect(),
                    p.predicted_signals.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (vec![E, F], vec![D, R]),
                (vec![E, F, R], vec![D]),
                (vec![E, D, R], vec![F]),
                (vec![E, D], vec![F, R]),
                (vec![D], vec![E, R]),
            ],
            "items sorted, the second {{E F R}} row dropped as a duplicate"
        );
        let d_to_f = result.rules.iter().find(|r| r.antecedent == [D] && r.consequent == [F]);
        assert!(d_to_f.is_none(), "confidence 1/4 < 0.3");
        let rd_to_f = result.rules.iter().find(|r| r.antecedent == [D, R] && r.consequent == [F]).unwrap();
        assert_eq!((rd_to_f.confidence, rd_to_f.support), (0.5, 1.0 / 7.0));
        assert_eq!(rd_to_f.lift, 0.5 / (4.0 / 7.0));

        let document = serde_json::to_value(&result.predictions[2]).unwrap();
        let keys: Vec<&str> = document.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["analysisId", "analysisTimestamp", "signals", "predictedSignals"]);
        assert_eq!(document["analysisTimestamp"], "2020-02-23T22:00:00.123Z");
        assert_eq!(document["signals"], serde_json::json!([E, D, R]));
        assert_eq!(document["predictedSignals"], serde_json::json!([F]));
        let id_text = document["analysisId"].as_str().unwrap();
        assert_eq!(Uuid::parse_str(id_text).unwrap().get_version_num(), 4);
        assert!(result.predictions.iter().all(|p| p.analysis_id == id));
    }

    #[test]
    fn analysis_ids_come_from_the_seed() {
        let first = analysis_id(&mut Xoshiro256PlusPlus::seed_from_u64(1));
        assert_eq!(first, analysis_id(&mut Xoshiro256PlusPlus::seed_from_u64(1)));
        assert_ne!(first, analysis_id(&mut Xoshiro256PlusPlus::seed_from_u64(2)));
    }

    #[test]
    fn marks_predictions_linked_by_a_composite_signal() {
        let graph =
            KnowledgeGraph::from_yaml_str(include_str!("../../flows/knowledge.yaml"), "knowledge").unwrap();
        let mut result = mine(&outage(), MiningParams::default(), Uuid::nil(), 0).unwrap();
        result.predictions.push(Prediction {
            analysis_id: Uuid::nil(),
            analysis_timestamp: NaiveDateTime::default(),
            signals: vec![E.to_string()],
            predicted_signals: vec!["MissingTimeInformation#NODE-RED".to_string()],
            linked_composite_signals: None,
        });
        mark_linked(&mut result.predictions, &graph);
        let last = result.predictions.len() - 1;
        for prediction in &result.predictions[..last] {
            assert_eq!(
                prediction.linked_composite_signals.as_deref(),
                Some(&["MqttUnavailable".to_string()][..])
            );
        }
        assert_eq!(result.predictions[last].linked_composite_signals, Some(Vec::new()));
        let document = serde_json::to_value(&result.predictions[0]).unwrap();
        assert_eq!(document["linkedCompositeSignals"], serde_json::json!(["MqttUnavailable"]));
    }

    #[test]
    fn rejects_bad_parameters() {
        let signals = outage();
        let with = |window: u64, slide: u64| MiningParams {
            window: Duration::from_millis(window),
            slide: Duration::from_millis(slide),
            ..MiningParams::default()
        };
        assert_eq!(
            mine(&signals, with(60_000, 0), Uuid::nil(), 0).unwrap_err(),
            MiningError::NotPositive("slide")
        );
        assert!(matches!(
            mine(&signals, with(10_000, 15_000), Uuid::nil(), 0),
            Err(MiningError::SlideLongerThanWindow { .. })
        ));
        assert_eq!(
            mine(&signals, with(86_400_000, 1), Uuid::nil(), 0).unwrap_err(),
            MiningError::TooManyWindows(86_400_000)
        );
        let params = MiningParams { min_support: 2.0, ..MiningParams::default() };
        assert!(matches!(mine(&signals, params, Uuid::nil(), 0), Err(MiningError::FpGrowth(_))));
        assert!(matches!(
            mine(&signals, MiningParams::default(), Uuid::nil(), i64::MAX),
            Err(MiningError::TimestampOutOfRange(_))
        ));
        let empty = mine(&[], MiningParams::default(), Uuid::nil(), 0).unwrap();
        assert!(empty.transactions.is_empty() && empty.predictions.is_empty());
    }
}
