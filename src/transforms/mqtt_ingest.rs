//! `mqtt-ingest` (`NIFI`): the "IoT Sensor Data Storage" flow — `ConsumeMQTT` on `customTopic`, then `PutHDFS`.
//!
//! Records are forwarded unchanged through the `NIFI->HADOOP` link. While the broker is unreachable
//! the processor logs NiFi's own error line about once a second, which the log routing of the
//! monitoring pipeline turns into the `MqttConnectionError` signal.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::kernel::component::Ctx;
use crate::kernel::logsink::LogStyle;
use crate::topology::BuildCx;
use crate::topology::check::CheckCx;
use crate::topology::component::{ComponentKind, Hop, Reference};
use crate::transport::envelope::Qos;
use crate::transport::link::Link;
use crate::transport::mqtt::MqttConnector;
use crate::transport::mqtt::pump::{ConnectionLog, SessionOptions};

/// `kind = "mqtt-ingest"`.
#[derive(Clone, Debug, Deserialize)]
pub struct MqttIngestConfig {
    /// Broker to subscribe through.
    pub broker: String,
    /// Topic filter.
    pub topic: String,
    /// Store component that receives the records.
    pub output: String,
    /// Subscription QoS.
    #[serde(default, with = "crate::transport::envelope::qos_level")]
    pub qos: Qos,
    /// MQTT client id.
    #[serde(default = "default_client")]
    pub client_id: String,
    /// Processor id shown in log lines (`ConsumeMQTT[id=…]`).
    #[serde(default = "default_processor_id")]
    pub processor_id: String,
    /// Reconnect interval (NiFi yields for about a second).
    #[serde(default = "one_second", with = "humantime_serde")]
    pub retry: Duration,
}

fn default_client() -> String {
    "nifi".into()
}
fn default_processor_id() -> String {
    "74042ed4-0170-1000-0000-00000000c001".into()
}
fn one_second() -> Duration {
    Duration::from_secs(1)
}

impl ComponentKind for MqttIngestConfig {
    const KIND: &'static str = "mqtt-ingest";
    const NAMESPACE: &'static str = "iot";

    fn references(&self) -> Vec<Reference<'_>> {
        vec![
            Reference::new("broker", &self.broker, &["mqtt-broker"], Hop::From),
            Reference::new("output", &self.output, &["file-store"], Hop::To),
        ]
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.topic_filter("topic", &self.topic);
    }

    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let connector: MqttConnector = cx.handle(&self.broker)?;
        let (inbound, outbound) = (cx.link(&self.broker, name)?, cx.link(name, &self.output)?);
        let cfg = self.clone();
        cx.add(name, move |ctx| run(ctx, cfg.clone(), connector.clone(), inbound.clone(), outbound.clone()))
    }
}

/// Runs one incarnation of the flow.
pub async fn run(
    ctx: Ctx,
    cfg: MqttIngestConfig,
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
            ctx.app_log("mqtt.app.dataAsset", crate::kernel::logsink::object(event));
        }
    }
    Ok(())
}
