//! `chaosaws.msk.actions.reboot_msk_broker`, against the embedded bus.
//!
//! MSK reboots a broker in place: it goes down and comes back after a while. Here broker id `n` is the
//! component `KAFKA-n`; it is stopped and started again after a reboot time (default 10 s, or the
//! `downtime` of a `kafka-broker-reboot` fault). The return value has boto3's `reboot_broker` shape.

use serde_json::{Value, json};

use super::Args;
use crate::chaos::experiment::ActivityError;
use crate::chaos::faults::FaultRequest;
use crate::topology::Pipeline;

/// How long a rebooted broker stays down.
pub const REBOOT_DOWNTIME: &str = "10s";

/// Dispatches one function.
pub(crate) async fn call(p: &Pipeline, func: &str, a: &Args<'_>) -> Result<Value, ActivityError> {
    match func {
        "reboot_msk_broker" => {
            let arn = a.str("cluster_arn")?;
            let ids = a.strings("broker_ids")?;
            if ids.is_empty() {
                return Err(ActivityError::failed("broker_ids: at least one broker id"));
            }
            let mut rebooted = Vec::new();
            // MSK's broker ids are the cluster's broker components `<cluster>-<id>`.
            let cluster = p
                .flow
                .each::<crate::bus::kafka_cluster::KafkaClusterConfig>()
                .next()
                .map_or("KAFKA", |(name, _)| name.as_str());
            for id in &ids {
                let request = FaultRequest {
                    kind: "kafka-broker-reboot".into(),
                    target: Some(format!("{cluster}-{id}")),
                    parameters: [("downtime".to_owned(), json!(REBOOT_DOWNTIME))].into_iter().collect(),
                    ..Default::default()
                };
                let record = p
                    .faults
                    .apply(&request)
                    .await
                    .map_err(|e| ActivityError::failed(format!("broker {id}: {e}")))?;
                rebooted.push(record.id);
            }
            Ok(json!({
                "ClusterArn": arn,
                "ClusterOperationArn": format!("{arn}/operation/{}", rebooted.join("-")),
            }))
        }
        _ => Err(ActivityError::UnknownFunction {
            module: "chaosaws.msk.actions".into(),
            func: func.to_owned(),
        }),
    }
}
