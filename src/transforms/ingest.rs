//! `NIFI`: the "IoT Sensor Data Storage" flow — `ConsumeMQTT` on `customTopic`, then `PutHDFS`.
//!
//! Records are forwarded unchanged through the `NIFI->HADOOP` link. While the broker is unreachable
//! the processor logs NiFi's own error line about once a second, which the log routing of the
//! monitoring pipeline turns into the `MqttConnectionError` signal.

use std::sync::Arc;

use serde_json::json;

use crate::kernel::component::Ctx;
use crate::kernel::logsink::LogStyle;
use crate::topology::flow::IngestConfig;
use crate::transport::link::Link;
use crate::transport::mqtt::MqttConnector;
use crate::transport::mqtt::pump::{ConnectionLog, SessionOptions};

/// Runs one incarnation of the flow.
pub async fn run(
    ctx: Ctx,
    cfg: IngestConfig,
    connector: MqttConnector,
    inbound: Arc<Link>,
    outbound: Arc<Link>,
) -> anyhow::Result<()> {
    let id = &cfg.processor_id;
    let log = ConnectionLog {
        style: LogStyle::Logback {
            logger: "org.apache.nifi.processors.mqtt.ConsumeMQTT".into(),
            thread: "Timer-Driven Process Thread-1".into(),
        },
        connected: format!("ConsumeMQTT[id={id}] Connected to tcp://{{host_port}} as {{client}}"),
        lost: format!(
            "ConsumeMQTT[id={id}] Connection to tcp://{{host_port}} lost due to: Connection lost: {{reason}}"
        ),
        failed: format!(
            "ConsumeMQTT[id={id}] Connection to tcp://{{host_port}} lost (or was never connected) and connection \
             failed. Yielding processor: {{reason}}"
        ),
    };
    let _consume = SessionOptions::clean(&cfg.client_id, cfg.retry, log)
        .subscribe(&ctx, connector, &cfg.topic, cfg.qos, &inbound);
    let mut rx = inbound.receiver().await;
    while let Some(env) = rx.recv_until(&ctx.shutdown).await {
        ctx.metrics.records_in.inc();
        ctx.trace_record("record.received", &json!({"bytes": env.payload.len()}));
        let bytes = env.payload.len();
        if outbound.send(env).await {
            ctx.metrics.records_out.inc();
            let event = json!({"message": "FlowFile transferred to PutHDFS", "bytes": bytes});
            ctx.app_log("mqtt.app.dataAsset", crate::monitoring::stack::object(event));
        }
    }
    Ok(())
}
