//! `chaoslab.actions` and `chaoslab.probes`: faults, components, metrics, the bus and the orders.

use serde_json::{Value, json};

use super::Args;
use crate::chaos::experiment::ActivityError;
use crate::chaos::faults::FaultRequest;
use crate::kernel::supervisor::State;
use crate::topology::Pipeline;

fn failed(e: impl std::fmt::Display) -> ActivityError {
    ActivityError::failed(e.to_string())
}

fn health(p: &Pipeline, name: &str) -> Result<Value, ActivityError> {
    let h = p.supervisor.health(name).ok_or_else(|| {
        failed(format!("no component named {name:?} (known: {})", p.supervisor.names().join(", ")))
    })?;
    serde_json::to_value(&h).map_err(failed)
}

/// Dispatches one function of either module.
pub(crate) async fn call(p: &Pipeline, func: &str, a: &Args<'_>) -> Result<Value, ActivityError> {
    let sup = &p.supervisor;
    match func {
        "apply_fault" => {
            let parameters = match a.0.get("parameters") {
                None | Some(Value::Null) => serde_json::Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(other) => {
                    return Err(failed(format!("argument parameters: expected an object, got {other}")));
                }
            };
            let request = FaultRequest {
                kind: a.str("kind")?,
                target: a.opt_str("target")?,
                mode: a.opt_str("mode")?,
                value: a.opt_str("value")?,
                duration: a.0.get("duration").cloned().filter(|v| !v.is_null()),
                parameters,
            };
            let record = p.faults.apply(&request).await.map_err(failed)?;
            serde_json::to_value(record).map_err(failed)
        }
        "remove_fault" => {
            let id = a.str("fault_id")?;
            let record = p.faults.remove(&id).ok_or_else(|| failed(format!("no active fault {id:?}")))?;
            serde_json::to_value(record).map_err(failed)
        }
        "remove_all_faults" => serde_json::to_value(p.faults.remove_all("removed")).map_err(failed),
        "stop_component" | "start_component" | "crash_component" | "restart_component" => {
            let name = a.str("name")?;
            let done = match func {
                "stop_component" => sup.stop(&name),
                "start_component" => sup.start(&name),
                "crash_component" => sup.crash(&name, "crashed by an experiment"),
                _ => sup.restart(&name),
            };
            done.map_err(failed)?;
            Ok(json!({"component": name, "requested": func.trim_end_matches("_component")}))
        }
        "component_health" => health(p, &a.str("name")?),
        "component_up" => {
            let name = a.str("name")?;
            let h = sup.health(&name).ok_or_else(|| failed(format!("no component named {name:?}")))?;
            Ok(Value::Bool(h.state == State::Running && h.ready && !h.paused))
        }
        "list_faults" => serde_json::to_value(p.faults.list().0).map_err(failed),
        "describe_topic" => {
            let bus = bus(p)?;
            let d = bus.describe_topic(&a.str("topic")?).await.map_err(failed)?;
            serde_json::to_value(d).map_err(failed)
        }
        "consumer_lag" => {
            let bus = bus(p)?;
            let group = a.str("group")?;
            let topics = match a.opt_str("topic")? {
                Some(t) => vec![t],
                None => {
                    let embedded = bus
                        .embedded()
                        .ok_or_else(|| failed("give a topic when the bus is a Kafka cluster"))?;
                    let d = embedded.admin().describe_group(&group).map_err(failed)?;
                    let mut t: Vec<String> = d.offsets.iter().map(|o| o.topic.clone()).collect();
                    t.dedup();
                    t
                }
            };
            let mut total = 0u64;
            for t in topics {
                total +=
                    bus.consumer_lag(&group, &t).await.map_err(failed)?.iter().map(|l| l.lag).sum::<u64>();
            }
            Ok(json!(total))
        }
        "order_counts" => {
            let db = p
                .handles
                .first::<crate::orders::service::OrderDb>()
                .ok_or_else(|| failed("the order services are off in this flow"))?;
            let counts = db.store.counts_by_state().await.map_err(failed)?;
            Ok(Value::Object(counts.into_iter().map(|(s, n)| (s.as_str().to_owned(), json!(n))).collect()))
        }
        "incidents" => {
            let name = a.opt_str("name")?;
            let list: Vec<_> = crate::reasoning::incident_reasoner::incidents(p)
                .into_iter()
                .filter(|i| name.as_ref().is_none_or(|n| &i.name == n))
                .collect();
            serde_json::to_value(list).map_err(failed)
        }
        "query_metric" => crate::monitoring::query_value(p, &a.str("query")?).map_err(failed),
        _ => Err(ActivityError::UnknownFunction { module: "chaoslab".into(), func: func.to_owned() }),
    }
}

fn bus(p: &Pipeline) -> Result<&crate::bus::backend::BusClient, ActivityError> {
    p.handles
        .first::<crate::bus::backend::BusClient>()
        .ok_or_else(|| failed("the order services (and their bus) are off in this flow"))
}
