//! The two connection loops of an MQTT component, with reconnects and reference-style log lines.
//!
//! [`subscribe_into`] keeps a session subscribed and pushes every message through a link to the
//! component; [`publish_from`] drains a link into a session. Both reconnect forever with the component's
//! retry interval and report readiness to the supervisor. What they log is data ([`ConnectionLog`]), so
//! each component speaks like the real thing (NiFi's `ConsumeMQTT[id=…] Connection to … lost …`,
//! Node-RED's `Disconnected from broker: …`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{MqttConnector, MqttSession};
use crate::kernel::component::Ctx;
use crate::kernel::logsink::LogStyle;
use crate::kernel::task::ChildTask;
use crate::kernel::trace::Trace;
use crate::transport::envelope::Qos;
use crate::transport::link::Link;

/// Log lines for connection events. `{broker}`, `{host_port}`, `{client}` and `{reason}` are replaced.
#[derive(Clone, Debug)]
pub struct ConnectionLog {
    /// How the component's platform logger shapes its records.
    pub style: LogStyle,
    /// After a successful connect.
    pub connected: String,
    /// When an established connection is lost.
    pub lost: String,
    /// When a connection attempt fails.
    pub failed: String,
}

impl Default for ConnectionLog {
    fn default() -> Self {
        ConnectionLog {
            style: LogStyle::Logback { logger: "chaoslab.mqtt".into(), thread: "main".into() },
            connected: "Connected to broker: {client}@{broker}".into(),
            lost: "Disconnected from broker: {client}@{broker}".into(),
            failed: "Connection to {broker} failed: {reason}".into(),
        }
    }
}

impl ConnectionLog {
    fn render(template: &str, broker: &str, host_port: &str, client: &str, reason: &str) -> String {
        template
            .replace("{broker}", broker)
            .replace("{host_port}", host_port)
            .replace("{client}", client)
            .replace("{reason}", reason)
    }
}

/// How a component connects.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// MQTT client id.
    pub client_id: String,
    /// Clean session flag.
    pub clean_session: bool,
    /// Pause between connection attempts.
    pub retry: Duration,
    /// What to log.
    pub log: ConnectionLog,
}

impl SessionOptions {
    /// A clean session for `client_id`, retrying every `retry`, logging as `log` says.
    pub fn clean(client_id: &str, retry: Duration, log: ConnectionLog) -> SessionOptions {
        SessionOptions { client_id: client_id.to_string(), clean_session: true, retry, log }
    }

    /// Starts the component's subscription to `topic` feeding `link`, as a child task of the component.
    pub fn subscribe(
        self,
        ctx: &Ctx,
        connector: MqttConnector,
        topic: &str,
        qos: Qos,
        link: &Arc<Link>,
    ) -> ChildTask {
        ChildTask::spawn(subscribe_into(ctx.clone(), connector, self, topic.to_string(), qos, link.clone()))
    }
}

fn note(ctx: &Ctx, style: &LogStyle, trace: &Trace, kind: &str, line: &str, error: bool) {
    ctx.platform_log(style, if error { "ERROR" } else { "INFO" }, line);
    trace.emit(&ctx.name, kind, &json!({"log": line}));
}

/// Connects, subscribes to `filter`, and forwards every message through `link`; reconnects forever.
/// Run it as a task owned by the component so it dies with it.
pub async fn subscribe_into(
    ctx: Ctx,
    connector: MqttConnector,
    opts: SessionOptions,
    filter: String,
    qos: Qos,
    link: Arc<Link>,
) {
    let (broker, host_port) = (connector.address(), connector.host_port());
    let render =
        |t: &str, reason: &str| ConnectionLog::render(t, &broker, &host_port, &opts.client_id, reason);
    let style = &opts.log.style;
    loop {
        match connector.connect(&opts.client_id, opts.clean_session).await {
            Ok(mut session) => match session.subscribe(&filter, qos).await {
                Ok(()) => {
                    ctx.health.set_ready(true, "connected");
                    note(&ctx, style, &ctx.trace, "mqtt.connected", &render(&opts.log.connected, ""), false);
                    let reason = forward(&mut session, &link).await;
                    ctx.health.set_ready(false, "disconnected");
                    note(
                        &ctx,
                        style,
                        &ctx.trace,
                        "mqtt.disconnected",
                        &render(&opts.log.lost, &reason),
                        false,
                    );
                }
                Err(e) => note(
                    &ctx,
                    style,
                    &ctx.trace,
                    "mqtt.error",
                    &render(&opts.log.failed, &e.to_string()),
                    true,
                ),
            },
            Err(e) => {
                ctx.health.set_ready(false, "broker unreachable");
                note(&ctx, style, &ctx.trace, "mqtt.error", &render(&opts.log.failed, &e.to_string()), true);
            }
        }
        tokio::time::sleep(opts.retry).await;
    }
}

async fn forward(session: &mut MqttSession, link: &Link) -> String {
    loop {
        match session.recv().await {
            Ok(env) => {
                link.send(env).await;
            }
            Err(e) => return e.to_string(),
        }
    }
}

/// Drains `link` into a session, publishing each message; connects lazily and reconnects after failures.
/// A message that cannot be published (no connection) is dropped and counted as `broker_unavailable`.
/// `on_published` is called for each message the broker took.
pub async fn publish_from(
    ctx: Ctx,
    connector: MqttConnector,
    opts: SessionOptions,
    link: Arc<Link>,
    on_published: impl Fn(&Ctx, &crate::transport::envelope::Envelope),
) {
    let (broker, host_port) = (connector.address(), connector.host_port());
    let render =
        |t: &str, reason: &str| ConnectionLog::render(t, &broker, &host_port, &opts.client_id, reason);
    let style = &opts.log.style;
    let mut rx = link.receiver().await;
    let mut session: Option<MqttSession> = None;
    let mut next_attempt = tokio::time::Instant::now();
    while let Some(env) = rx.recv().await {
        if session.is_none() && tokio::time::Instant::now() >= next_attempt {
            match connector.connect(&opts.client_id, opts.clean_session).await {
                Ok(s) => {
                    ctx.health.set_ready(true, "connected");
                    note(&ctx, style, &ctx.trace, "mqtt.connected", &render(&opts.log.connected, ""), false);
                    session = Some(s);
                }
                Err(e) => {
                    ctx.health.set_ready(false, "broker unreachable");
                    note(
                        &ctx,
                        style,
                        &ctx.trace,
                        "mqtt.error",
                        &render(&opts.log.failed, &e.to_string()),
                        true,
                    );
                    next_attempt = tokio::time::Instant::now() + opts.retry;
                }
            }
        }
        let Some(s) = session.as_mut() else {
            ctx.drop_record("broker_unavailable", json!({"topic": env.topic}));
            continue;
        };
        let env_for_cb = env.clone();
        match s.publish(env).await {
            Ok(()) => on_published(&ctx, &env_for_cb),
            Err(e) => {
                session = None;
                ctx.health.set_ready(false, "disconnected");
                note(
                    &ctx,
                    style,
                    &ctx.trace,
                    "mqtt.disconnected",
                    &render(&opts.log.lost, &e.to_string()),
                    false,
                );
                ctx.drop_record("broker_unavailable", json!({"topic": env_for_cb.topic}));
                next_attempt = tokio::time::Instant::now() + opts.retry;
            }
        }
    }
}
