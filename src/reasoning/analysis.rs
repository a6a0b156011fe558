//! One pattern-analysis run, as the reference's `spark-submit` job did it: read the signal history, mine
//! it, and write the predictions to the index `correlated-signal-predictions`, each marked with whether
//! the knowledge graph already links those signals through a CompositeSignal.

use serde_json::{Value, json};

use super::graph::KnowledgeGraph;
use super::mining::{MiningParams, analysis_id, mark_linked, mine};
use super::store::SignalStore;
use crate::sinks::document_index::IndexStore;

/// The index predictions go to.
pub const PREDICTION_INDEX: &str = "correlated-signal-predictions";

/// Runs one analysis at `now_ms`; returns `{analysisId, transactions, itemsets, rules, predictions}`.
pub async fn run_analysis(
    store: &SignalStore,
    graph: Option<&KnowledgeGraph>,
    index: &IndexStore,
    params: MiningParams,
    rng: &mut impl rand::RngCore,
    now_ms: i64,
) -> anyhow::Result<Value> {
    let rows = store.all().await?;
    let signals: Vec<(i64, String, String)> =
        rows.into_iter().map(|r| (r.timestamp_ms, r.name, r.component)).collect();
    let id = analysis_id(rng);
    let mut result = mine(&signals, params, id, now_ms)?;
    if let Some(graph) = graph {
        mark_linked(&mut result.predictions, graph);
    }
    for p in &result.predictions {
        index.append_json(PREDICTION_INDEX, serde_json::to_string(p)?.as_bytes())?;
    }
    index.flush()?;
    tracing::info!(
        signals = signals.len(),
        transactions = result.transactions.len(),
        rules = result.rules.len(),
        predictions = result.predictions.len(),
        "pattern analysis {id} done"
    );
    Ok(json!({
        "analysisId": id,
        "signals": signals.len(),
        "transactions": result.transactions.len(),
        "itemsets": result.itemsets,
        "rules": result.rules,
        "predictions": result.predictions,
    }))
}
