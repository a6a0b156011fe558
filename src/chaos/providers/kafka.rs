//! chaostoolkit-kafka 0.1.3's probes and actions, against the bus the order services use.
//!
//! Same arguments, same return shapes, same quirks (documented in the reference, Part B): the topic
//! description is a JSON *string*; the lag check is strict (`threshold > lag`); `consume_messages`
//! commits as the group, so the stuck consumer finds its committed offset past the poison pill.
//! `bootstrap_servers` is accepted and ignored: the bus is the pipeline's.

use bytes::Bytes;
use serde_json::{Value, json};

use super::Args;
use crate::bus::backend::BusClient;
use crate::bus::client::Acks;
use crate::chaos::experiment::ActivityError;
use crate::topology::Pipeline;

fn failed(e: impl std::fmt::Display) -> ActivityError {
    ActivityError::failed(e.to_string())
}

fn bus(p: &Pipeline) -> Result<&BusClient, ActivityError> {
    p.handles
        .first::<BusClient>()
        .ok_or_else(|| failed("the order services (and their bus) are off in this flow"))
}

/// Dispatches one chaoskafka function.
pub(crate) async fn call(
    p: &Pipeline,
    module: &str,
    func: &str,
    a: &Args<'_>,
) -> Result<Value, ActivityError> {
    let bus = bus(p)?;
    let _ = a.opt_str("bootstrap_servers")?;
    match func {
        "describe_kafka_topic" => {
            let topic = a.str("topic")?;
            let d = bus
                .describe_topic(&topic)
                .await
                .map_err(|_| failed(format!("Topic '{topic}' does not exist")))?;
            let info: serde_json::Map<String, Value> = d
                .partitions
                .iter()
                .map(|p| {
                    (p.id.to_string(), json!({"leader": p.leader_id(), "replicas": p.replicas, "isr": p.isr}))
                })
                .collect();
            let doc = json!({"topic": topic, "partitions": d.partitions.len(), "partitions_info": info});
            Ok(Value::String(doc.to_string()))
        }
        "all_replicas_in_sync" => {
            let d = bus.describe_topic(&a.str("topic")?).await.map_err(failed)?;
            Ok(Value::Bool(d.all_replicas_in_sync()))
        }
        "topic_has_no_offline_partitions" => {
            let d = bus.describe_topic(&a.str("topic")?).await.map_err(failed)?;
            Ok(Value::Bool(!d.has_offline_partitions()))
        }
        "cluster_doesnt_have_under_replicated_partitions" => {
            let embedded =
                bus.embedded().ok_or_else(|| failed("listing all topics needs the embedded bus"))?;
            let admin = embedded.admin();
            for topic in admin.list_topics() {
                let d = admin.describe_topic(&topic).map_err(failed)?;
                if d.partitions.iter().any(|p| p.isr.len() != p.replicas.len()) {
                    return Ok(Value::Bool(false));
                }
            }
            Ok(Value::Bool(true))
        }
        "check_consumer_lag_under_threshold" => {
            let (group, topic) = (a.str("group_id")?, a.str("topic")?);
            let threshold = a.int("threshold", Some(0))?;
            let lags = bus.consumer_lag(&group, &topic).await.map_err(failed)?;
            let under = |lag: u64| threshold > lag as i64;
            match a.opt_int("partition")? {
                None => Ok(Value::Bool(lags.iter().all(|l| under(l.lag)))),
                Some(p) => {
                    let lag = lags
                        .iter()
                        .find(|l| i64::from(l.partition) == p)
                        .ok_or_else(|| failed(format!("partition {p} of {topic} not found")))?;
                    Ok(Value::Bool(under(lag.lag)))
                }
            }
        }
        "delete_kafka_topic" => {
            let embedded = bus.embedded().ok_or_else(|| failed("deleting topics needs the embedded bus"))?;
            embedded.admin().delete_topic(&a.str("topic")?).map_err(failed)?;
            Ok(Value::Bool(true))
        }
        "rebalance_consumer_group" => {
            let (topic, group) = (a.str("topic")?, a.str("group_id")?);
            let mut consumer = bus.consumer(&group, "chaostoolkit", false).map_err(failed)?;
            consumer.subscribe(&[topic.as_str()]).map_err(failed)?;
            // One poll joins the group (it returns at the rebalance), as the Python consumer's poll does.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(3), consumer.poll(1)).await;
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            consumer.close();
            Ok(Value::Bool(true))
        }
        "delete_consumer_group" => {
            let embedded = bus.embedded().ok_or_else(|| failed("deleting groups needs the embedded bus"))?;
            embedded.admin().delete_group(&a.str("group_id")?).map_err(failed)?;
            Ok(Value::Bool(true))
        }
        "produce_messages" => {
            let client_id = a.opt_str("client_id")?.unwrap_or_else(|| "chaostoolkit".into());
            let topic = a.str("topic")?;
            let partition = u32::try_from(a.int("partition", Some(0))?).map_err(failed)?;
            let producer = bus.producer(&client_id, Acks::All).map_err(failed)?;
            let ts = p.clock.now().timestamp_millis();
            let mut out = Vec::new();
            for m in a.strings("messages")? {
                let meta =
                    producer.send(&topic, Some(partition), None, Bytes::from(m), ts).await.map_err(failed)?;
                out.push(json!({"topic": meta.topic, "partition": meta.partition, "offset": meta.offset}));
            }
            p.trace.emit("chaoslab", "experiment.produced", &json!({"topic": topic, "records": out}));
            Ok(Value::Array(out))
        }
        "consume_messages" => consume(p, bus, a).await,
        _ => Err(ActivityError::UnknownFunction { module: module.to_owned(), func: func.to_owned() }),
    }
}

/// `consume_messages`: joins the group, reads `num_messages` records of `partition` from `offset`, and
/// commits each as a member of the group (Kafka accepts a current member's commit for any partition).
/// Leaving again triggers a rebalance, after which the partition's owner resumes from the new offset.
async fn consume(p: &Pipeline, bus: &BusClient, a: &Args<'_>) -> Result<Value, ActivityError> {
    let group = a.opt_str("group_id")?.unwrap_or_else(|| "chaostoolkit".into());
    let topic = a.str("topic")?;
    let partition = a.int("partition", Some(0))?;
    let offset = u64::try_from(a.int("offset", Some(0))?).map_err(failed)?;
    let num = usize::try_from(a.int("num_messages", Some(1))?).map_err(failed)?;
    let embedded = bus.embedded().ok_or_else(|| failed("consume_messages needs the embedded bus"))?;
    let partitions = embedded.admin().describe_topic(&topic).map_err(failed)?.partitions.len() as i64;
    // chaostoolkit-kafka's check is off by one (`partition > partitions` fails; `==` passes).
    if partition > partitions || partition < 0 {
        return Err(failed(format!("partition {partition} does not exist in topic {topic}")));
    }
    let partition = partition as u32;
    let records = embedded.admin().read(&topic, partition, offset, num).map_err(failed)?;
    let mut consumer = embedded.consumer(crate::bus::client::ConsumerConfig::new(&group, "0_asign_client"));
    consumer.subscribe(&[topic.as_str()]).map_err(failed)?;
    let mut out = Vec::new();
    for r in &records {
        // A commit needs the current generation: poll (which returns at a rebalance) until it is taken.
        let mut attempts = 0;
        loop {
            match consumer.commit(&topic, partition, r.offset + 1) {
                Ok(()) => break,
                Err(e) if attempts >= 10 => return Err(failed(e)),
                Err(_) => {
                    attempts += 1;
                    let polled =
                        tokio::time::timeout(std::time::Duration::from_secs(3), consumer.poll(1)).await;
                    if let Ok(Err(e)) = polled {
                        return Err(failed(e));
                    }
                }
            }
        }
        out.push(
            json!({"partition": r.partition, "offset": r.offset, "value": String::from_utf8_lossy(&r.value)}),
        );
    }
    consumer.close();
    p.trace.emit(
        "chaoslab",
        "experiment.consumed",
        &json!({"topic": topic, "group": group, "records": out.len()}),
    );
    Ok(Value::Array(out))
}
