//! `log-router` (`FLUENTD`): takes every component's log records (and, in live mode, events from Forward
//! and HTTP clients), routes them with the Fluentd configuration, and writes the outputs: `signals`
//! records to the bus through its link to the `kafka-cluster`, log documents to the index through its
//! link to the `document-index`.
//!
//! The shipped configuration (`flows/logging/*.conf`, the reference's rules) is compiled in and written to
//! `<out>/flows/logging/` when the flow names no file of its own, so a run shows exactly what it used and
//! the `@include`s resolve. In live mode the component binds the Forward and HTTP inputs at build time
//! (an occupied port fails the run before anything starts); the live runner serves them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::logs::config::Config as FluentConfig;
use super::logs::event::{EventTime, LogEvent};
use super::logs::forward::ForwardStats;
use super::logs::http_input::HttpStats;
use super::logs::router::{OutputRef, Router};
use crate::bus::backend::AnyProducer;
use crate::bus::client::Acks;
use crate::bus::kafka_cluster::BusHandle;
use crate::kernel::component::Ctx;
use crate::kernel::logsink::{LogRecord, LogSink};
use crate::topology::build::InputCx;
use crate::topology::component::{ComponentKind, Hop, Reference};
use crate::topology::{BuildCx, RunMode};
use crate::transport::envelope::{Envelope, Qos};
use crate::transport::link::Link;

/// The shipped Fluentd files, written to `<out>/flows/logging/` when the flow names none.
const SHIPPED: &[(&str, &str)] = &[
    ("fluent.conf", include_str!("../../flows/logging/fluent.conf")),
    ("kafka_output.conf", include_str!("../../flows/logging/kafka_output.conf")),
    ("mqtt_signal_rules.conf", include_str!("../../flows/logging/mqtt_signal_rules.conf")),
    ("nifi_signal_rules.conf", include_str!("../../flows/logging/nifi_signal_rules.conf")),
    ("nodered_signal_rules.conf", include_str!("../../flows/logging/nodered_signal_rules.conf")),
];

/// `kind = "log-router"`.
#[derive(Clone, Debug, Deserialize)]
pub struct LogRouterConfig {
    /// The `kafka-cluster` signal records go to.
    pub bus: String,
    /// The `document-index` log documents go to, if any.
    #[serde(default)]
    pub index: Option<String>,
    /// Fluentd configuration (default: the shipped `flows/logging/fluent.conf`).
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// Live: where the Forward input listens (`--forward-listen`).
    #[serde(default = "default_forward")]
    pub forward_listen: SocketAddr,
    /// Live: where the HTTP input listens (`--log-http-listen`).
    #[serde(default = "default_http")]
    pub http_listen: SocketAddr,
}

fn default_forward() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 24224))
}
fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9880))
}

/// What a log router provides: the door for outside clients' events, their counters and, live, the
/// listeners bound for them.
#[derive(Clone)]
pub struct LogInputHandle {
    /// Events from outside clients (Forward, HTTP) enter here.
    pub external: mpsc::Sender<LogEvent>,
    /// Forward input counters.
    pub forward_stats: Arc<ForwardStats>,
    /// HTTP input counters.
    pub http_stats: Arc<HttpStats>,
    /// Live: the Forward and HTTP listeners, taken by the runner that serves them.
    pub listeners: Arc<Mutex<Option<(std::net::TcpListener, std::net::TcpListener)>>>,
    /// The Forward source's `<security>` in the Fluentd configuration: its handshake, when set.
    pub forward_security: Option<Arc<crate::monitoring::logs::config::ForwardSecurity>>,
}

fn bind(addr: SocketAddr, what: &str, flag: &str) -> anyhow::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr).with_context(|| {
        format!(
            "cannot listen for {what} on {addr} (port {} in use? choose another with {flag})",
            addr.port()
        )
    })?;
    l.set_nonblocking(true)?;
    Ok(l)
}

impl ComponentKind for LogRouterConfig {
    const KIND: &'static str = "log-router";
    const NAMESPACE: &'static str = "monitoring";

    fn references(&self) -> Vec<Reference<'_>> {
        let mut refs = vec![Reference::new("bus", &self.bus, &["kafka-cluster"], Hop::To)];
        if let Some(index) = &self.index {
            refs.push(Reference::new("index", index, &["document-index"], Hop::To));
        }
        refs
    }

    /// The index is optional: without it, nothing is indexed.
    fn forget(&mut self, target: &str) -> bool {
        if self.index.as_deref() == Some(target) {
            self.index = None;
            return true;
        }
        false
    }

    fn check_inputs(&self, _name: &str, cx: &InputCx<'_>) -> anyhow::Result<()> {
        if cx.mode == RunMode::Live {
            // The ports must be free before the run writes anything; they are bound for good at build.
            bind(self.forward_listen, "Fluentd Forward", "--forward-listen")?;
            bind(self.http_listen, "Fluentd HTTP input", "--log-http-listen")?;
        }
        if let Some(file) = &self.config {
            FluentConfig::load(&cx.flow.resolve(&file.display().to_string()))?;
        }
        Ok(())
    }

    /// Provides a [`LogInputHandle`] and becomes every component's log sink.
    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let file = match &self.config {
            Some(f) => cx.flow.resolve(&f.display().to_string()),
            None => super::materialize(&cx.out_path("flows/logging"), SHIPPED)?.join("fluent.conf"),
        };
        let fluent = FluentConfig::load(&file)?;
        for note in &fluent.notes {
            tracing::debug!("fluentd configuration: {note}");
        }
        let forward_security = fluent.sources.iter().find_map(|source| match source {
            crate::monitoring::logs::config::Source::Forward(f) => f.security.clone().map(Arc::new),
            crate::monitoring::logs::config::Source::Http(_) => None,
        });
        let router = Arc::new(Router::new(fluent));
        let listeners = match cx.mode {
            RunMode::Live => Some((
                bind(self.forward_listen, "Fluentd Forward", "--forward-listen")?,
                bind(self.http_listen, "Fluentd HTTP input", "--log-http-listen")?,
            )),
            RunMode::Sim => None,
        };
        let (sink, internal) = LogSink::new(1 << 16);
        cx.supervisor().set_log_sink(sink);
        let (external_tx, external) = mpsc::channel(1 << 14);
        cx.provide(
            name,
            LogInputHandle {
                external: external_tx,
                forward_stats: Arc::default(),
                http_stats: Arc::default(),
                listeners: Arc::new(Mutex::new(listeners)),
                forward_security,
            },
        );
        let inputs = Arc::new(LogInputs {
            internal: tokio::sync::Mutex::new(internal),
            external: tokio::sync::Mutex::new(external),
        });
        let BusHandle { client, .. } = cx.handle(&self.bus)?;
        let outputs = Arc::new(LogOutputs {
            producer: client.producer("fluentd", Acks::All)?,
            kafka: cx.link(name, &self.bus)?,
            index: match &self.index {
                Some(index) => Some(cx.link(name, index)?),
                None => None,
            },
            files: cx.out_path("fluentd"),
        });
        cx.add(name, move |ctx| run(ctx, router.clone(), inputs.clone(), outputs.clone()))
    }
}

/// Where `FLUENTD` reads from: its components' records and, live, outside clients' events.
pub struct LogInputs {
    /// Records from the pipeline's components.
    pub internal: tokio::sync::Mutex<mpsc::Receiver<LogRecord>>,
    /// Events from Forward and HTTP clients.
    pub external: tokio::sync::Mutex<mpsc::Receiver<LogEvent>>,
}

/// `FLUENTD`'s outputs.
pub struct LogOutputs {
    /// Produces to the bus.
    pub producer: Arc<AnyProducer>,
    /// `FLUENTD->KAFKA`.
    pub kafka: Arc<Link>,
    /// `FLUENTD->ELASTICSEARCH`, if the flow has the index.
    pub index: Option<Arc<Link>>,
    /// Where `file` outputs write (under the run's output directory).
    pub files: PathBuf,
}

fn event_of(r: LogRecord) -> LogEvent {
    LogEvent::new(r.tag, EventTime::from_millis(r.time.timestamp_millis()), r.record)
}

/// Runs `FLUENTD`.
pub async fn run(
    ctx: Ctx,
    router: Arc<Router>,
    inputs: Arc<LogInputs>,
    out: Arc<LogOutputs>,
) -> anyhow::Result<()> {
    ctx.health.set_ready(true, "routing");
    let mut internal = inputs.internal.lock().await;
    let mut external = inputs.external.lock().await;
    let mut external_open = true;
    loop {
        let event = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return Ok(()),
            r = internal.recv() => match r { Some(r) => event_of(r), None => return Ok(()) },
            e = external.recv(), if external_open => match e {
                Some(e) => e,
                None => {
                    external_open = false;
                    continue;
                }
            },
        };
        ctx.metrics.records_in.inc();
        for routed in router.route(event) {
            let doc = Value::Object(routed.event.record);
            match routed.output {
                OutputRef::Topic(topic) => {
                    if let Err(e) = out.kafka.gate().await {
                        ctx.drop_record(
                            "kafka_unreachable",
                            json!({"tag": routed.event.tag, "error": e.to_string()}),
                        );
                        continue;
                    }
                    let ts = ctx.clock.now().timestamp_millis();
                    // The reference's kafka2 output uses `default_message_key 0`.
                    let sent = out
                        .producer
                        .send(&topic, None, Some(Bytes::from_static(b"0")), Bytes::from(doc.to_string()), ts)
                        .await;
                    match sent {
                        Ok(_) => ctx.metrics.records_out.inc(),
                        Err(e) => ctx.drop_record(
                            "kafka_error",
                            json!({"tag": routed.event.tag, "error": e.to_string()}),
                        ),
                    }
                }
                OutputRef::Index(index) => {
                    if let Some(link) = &out.index {
                        let env = Envelope {
                            topic: index,
                            payload: Bytes::from(doc.to_string()),
                            qos: Qos::AtMostOnce,
                            retain: false,
                        };
                        // A refused send is counted by the link (down, partitioned, lost).
                        if link.send(env).await {
                            ctx.metrics.records_out.inc();
                        }
                    }
                }
                OutputRef::Stdout => {
                    tracing::info!(target: "fluentd", tag = %routed.event.tag, "{doc}");
                    ctx.metrics.records_out.inc();
                }
                OutputRef::File(path) => match append_file(&out.files, &path, &doc) {
                    Ok(()) => ctx.metrics.records_out.inc(),
                    Err(e) => ctx.drop_record("file_error", json!({"tag": routed.event.tag, "error": e})),
                },
                OutputRef::Null => {}
            }
        }
    }
}

/// Appends a record to a `file` output, kept under `root` whatever path the configuration names; the
/// error names the file.
fn append_file(root: &Path, path: &str, doc: &Value) -> Result<(), String> {
    use std::io::Write as _;
    let name: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    let file = root.join(name.trim_start_matches('.'));
    let written = std::fs::create_dir_all(root).and_then(|()| {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&file)?;
        writeln!(f, "{doc}")
    });
    written.map_err(|e| format!("{}: {e}", file.display()))
}
