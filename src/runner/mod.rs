//! Running a pipeline: in virtual time ([`SimRun`]) or for real ([`LiveRun`]).
//!
//! A sim run is a single-threaded tokio runtime with a paused clock and no I/O driver: time jumps from
//! timer to timer, and any attempt to open a real socket fails loudly instead of silently breaking
//! determinism. A live run is a multi-threaded runtime with the embedded MQTT broker (or an external
//! one), the HTTP API, and signal handling. Both build the same [`Pipeline`].

pub mod summary;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;

use self::summary::RunSummary;
use crate::kernel::seed::Seed;
use crate::kernel::trace::TraceLevel;
use crate::topology::flow::{ComponentConfig, Flow};
use crate::topology::{LiveMqtt, Mode, Pipeline, RunOptions, TraceSink};
use crate::transport::mqtt::client::BrokerUrl;
use crate::transport::mqtt::embedded::{EmbeddedBroker, EmbeddedConfig, ProxyStats};

/// How long the end of a run waits for messages in flight.
const DRAIN: Duration = Duration::from_secs(60);

/// A run in virtual time.
pub struct SimRun {
    flow: Flow,
    opts: RunOptions,
}

impl SimRun {
    /// A sim run of `flow` writing to `out`, seed 0.
    pub fn new(flow: Flow, out: impl Into<PathBuf>) -> SimRun {
        let opts = RunOptions {
            mode: Mode::Sim,
            seed: Seed(0),
            out: out.into(),
            dataset: None,
            rate_ms: None,
            live_mqtt: None,
            trace: TraceSink::File,
            trace_level: TraceLevel::Records,
            database_url: None,
            api_base: None,
        };
        SimRun { flow, opts }
    }

    /// Sets the root seed.
    pub fn seed(mut self, seed: u64) -> SimRun {
        self.opts.seed = Seed(seed);
        self
    }

    /// Replaces the sensors' dataset.
    pub fn dataset(mut self, path: Option<PathBuf>) -> SimRun {
        self.opts.dataset = path;
        self
    }

    /// Replaces the sensors' rate.
    pub fn rate_ms(mut self, rate: Option<u64>) -> SimRun {
        self.opts.rate_ms = rate;
        self
    }

    /// Keeps the trace in memory only (hash and counts).
    pub fn trace_in_memory(mut self) -> SimRun {
        self.opts.trace = TraceSink::Memory;
        self
    }

    /// How much goes into the trace.
    pub fn trace_level(mut self, level: TraceLevel) -> SimRun {
        self.opts.trace_level = level;
        self
    }

    /// The order store's URL (sim mode accepts SQLite only).
    pub fn database_url(mut self, url: Option<String>) -> SimRun {
        self.opts.database_url = url;
        self
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for(self, duration: Duration) -> anyhow::Result<RunSummary> {
        self.run(move |_| async move {
            tokio::time::sleep(duration).await;
            Ok(())
        })
    }

    /// Runs `script` against the started pipeline (it can sleep, crash components, set faults…); when it
    /// returns, the run drains and ends.
    pub fn run<F, Fut>(self, script: F) -> anyhow::Result<RunSummary>
    where
        F: FnOnce(Arc<Pipeline>) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .context("cannot build the sim runtime")?;
        // Wall time is measured around the simulation for the summary only; nothing inside reads it.
        let wall = std::time::Instant::now();
        rt.block_on(async move {
            let pipeline = Arc::new(Pipeline::build(self.flow, self.opts).await?);
            let _log_time = crate::kernel::clock::log_with(pipeline.clock.clone());
            pipeline.start();
            script(pipeline.clone()).await?;
            let (drained, orders) = pipeline.finish(DRAIN).await?;
            let trace = pipeline.trace.finish()?;
            Ok(RunSummary::collect(&pipeline, wall.elapsed().as_secs_f64(), drained, orders, trace))
        })
    }
}

/// A run in real time on real sockets.
pub struct LiveRun {
    flow: Flow,
    opts: RunOptions,
    mqtt_url: Option<BrokerUrl>,
    mqtt_listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    credentials: Option<PathBuf>,
    control: crate::api::control::ControlConfig,
    forward_listen: Option<SocketAddr>,
    log_http_listen: Option<SocketAddr>,
}

/// A started live pipeline.
pub struct LiveHandle {
    /// The pipeline.
    pub pipeline: Arc<Pipeline>,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// Where MQTT clients connect (the embedded broker's port, or the external broker).
    pub mqtt_url: BrokerUrl,
    /// The control plane's bearer token, when it was generated at start-up (no credentials file).
    pub control_token: Option<String>,
    /// Where the Fluentd Forward input listens (monitoring on).
    pub forward_addr: Option<SocketAddr>,
    /// Where the Fluentd HTTP input listens (monitoring on).
    pub log_http_addr: Option<SocketAddr>,
    log_inputs_stop: Option<tokio::sync::watch::Sender<bool>>,
    http: tokio::task::JoinHandle<()>,
    http_stop: tokio_util::sync::CancellationToken,
    started: std::time::Instant,
    _broker: Option<EmbeddedBroker>,
}

fn bind(addr: SocketAddr, what: &str, flag: &str) -> anyhow::Result<TcpListener> {
    let l = TcpListener::bind(addr).with_context(|| {
        format!(
            "cannot listen for {what} on {addr} (port {} in use? choose another with {flag})",
            addr.port()
        )
    })?;
    l.set_nonblocking(true)?;
    Ok(l)
}

impl LiveRun {
    /// A live run of `flow` writing to `out`.
    pub fn new(flow: Flow, out: impl Into<PathBuf>) -> LiveRun {
        let opts = RunOptions {
            mode: Mode::Live,
            seed: Seed::from_entropy(),
            out: out.into(),
            dataset: None,
            rate_ms: None,
            live_mqtt: None,
            trace: TraceSink::File,
            trace_level: TraceLevel::Records,
            database_url: None,
            api_base: None,
        };
        LiveRun {
            flow,
            opts,
            mqtt_url: None,
            mqtt_listen: None,
            http_listen: None,
            credentials: None,
            control: crate::api::control::ControlConfig::default(),
            forward_listen: None,
            log_http_listen: None,
        }
    }

    /// Sets the root seed (ids and fault decisions; timing stays real).
    pub fn seed(mut self, seed: Option<u64>) -> LiveRun {
        if let Some(s) = seed {
            self.opts.seed = Seed(s);
        }
        self
    }

    /// Replaces the sensors' dataset.
    pub fn dataset(mut self, path: Option<PathBuf>) -> LiveRun {
        self.opts.dataset = path;
        self
    }

    /// Replaces the sensors' rate.
    pub fn rate_ms(mut self, rate: Option<u64>) -> LiveRun {
        self.opts.rate_ms = rate;
        self
    }

    /// How much goes into the trace.
    pub fn trace_level(mut self, level: TraceLevel) -> LiveRun {
        self.opts.trace_level = level;
        self
    }

    /// The order store's URL (`postgres://…` or `sqlite://…`).
    pub fn database_url(mut self, url: Option<String>) -> LiveRun {
        self.opts.database_url = url;
        self
    }

    /// Uses an external broker instead of the embedded one.
    pub fn mqtt_url(mut self, url: Option<BrokerUrl>) -> LiveRun {
        self.mqtt_url = url;
        self
    }

    /// Overrides the embedded broker's listen address.
    pub fn mqtt_listen(mut self, addr: Option<SocketAddr>) -> LiveRun {
        self.mqtt_listen = addr;
        self
    }

    /// The control plane's credentials file; without one a token is generated and written to
    /// `<out>/control-token`.
    pub fn credentials(mut self, path: Option<PathBuf>) -> LiveRun {
        self.credentials = path;
        self
    }

    /// Executables submitted experiments may run through `process` providers.
    pub fn allow_process(mut self, names: Vec<String>) -> LiveRun {
        self.control.process_allow = names;
        self
    }

    /// Experiments `/execute_experiment` runs at once (default 1).
    pub fn max_experiments(mut self, n: usize) -> LiveRun {
        self.control.max_concurrent = n;
        self
    }

    /// Overrides where the Fluentd Forward input listens.
    pub fn forward_listen(mut self, addr: Option<SocketAddr>) -> LiveRun {
        self.forward_listen = addr;
        self
    }

    /// Overrides where the Fluentd HTTP input listens.
    pub fn log_http_listen(mut self, addr: Option<SocketAddr>) -> LiveRun {
        self.log_http_listen = addr;
        self
    }

    /// Overrides the HTTP listen address.
    pub fn http_listen(mut self, addr: Option<SocketAddr>) -> LiveRun {
        self.http_listen = addr;
        self
    }

    /// Binds the ports, starts the broker, the pipeline and the HTTP API. Must run inside a
    /// multi-threaded tokio runtime.
    pub async fn start(mut self) -> anyhow::Result<LiveHandle> {
        let started = std::time::Instant::now();
        let http_addr = self.http_listen.unwrap_or(self.flow.http.listen);
        let http_listener = bind(http_addr, "HTTP", "--http-listen")?;
        let http_addr = http_listener.local_addr()?;
        let log_listeners = if self.flow.monitoring_on() {
            let m = &self.flow.monitoring;
            let fwd =
                bind(self.forward_listen.unwrap_or(m.forward_listen), "Fluentd Forward", "--forward-listen")?;
            let http = bind(
                self.log_http_listen.unwrap_or(m.http_input_listen),
                "Fluentd HTTP input",
                "--log-http-listen",
            )?;
            Some((fwd, http))
        } else {
            None
        };
        let mut broker = None;
        let mqtt_url = match self.mqtt_url.clone() {
            Some(url) => {
                self.opts.live_mqtt = Some(LiveMqtt::External(url.clone()));
                url
            }
            None => {
                let configured = self.flow.components.values().find_map(|c| match c {
                    ComponentConfig::MqttBroker(b) => Some(b.listen),
                    _ => None,
                });
                let listen =
                    self.mqtt_listen.or(configured).unwrap_or(SocketAddr::from(([127, 0, 0, 1], 1883)));
                let listener = bind(listen, "MQTT", "--mqtt-listen")?;
                let listen = listener.local_addr()?;
                // Starting rumqttd waits until it accepts connections: keep that off the async workers.
                let embedded =
                    tokio::task::spawn_blocking(|| EmbeddedBroker::start(EmbeddedConfig::default()))
                        .await
                        .context("embedded broker start-up panicked")??;
                self.opts.live_mqtt = Some(LiveMqtt::Embedded {
                    internal: embedded.internal_addr(),
                    listen,
                    listener: Arc::new(Mutex::new(Some(listener))),
                    stats: Arc::new(ProxyStats::default()),
                });
                broker = Some(embedded);
                BrokerUrl { host: listen.ip().to_string(), port: listen.port() }
            }
        };
        tracing::info!(seed = self.opts.seed.0, "live run: MQTT at {mqtt_url}, HTTP at http://{http_addr}");
        self.opts.api_base = Some(format!("http://{http_addr}"));
        let out = self.opts.out.clone();
        let pipeline = Arc::new(Pipeline::build(self.flow, self.opts).await?);
        let (credentials, control_token) = control_credentials(self.credentials.as_deref(), &out)?;
        pipeline.start();
        let http_stop = tokio_util::sync::CancellationToken::new();
        let mut control = self.control;
        control.journal_dir = Some(out.join("experiments"));
        let app = crate::api::router(pipeline.clone()).merge(crate::api::control::router(
            pipeline.clone(),
            credentials,
            control,
            http_stop.child_token(),
        ));
        let (mut forward_addr, mut log_http_addr, mut log_inputs_stop) = (None, None, None);
        if let (Some((fwd, http)), Some(m)) = (log_listeners, pipeline.monitoring.as_ref()) {
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            forward_addr = Some(fwd.local_addr()?);
            log_http_addr = Some(http.local_addr()?);
            let fwd = tokio::net::TcpListener::from_std(fwd)?;
            tokio::spawn(crate::monitoring::logs::forward::serve(
                fwd,
                m.external_logs.clone(),
                m.forward_stats.clone(),
                stop_rx.clone(),
            ));
            let app =
                crate::monitoring::logs::http_input::router(m.external_logs.clone(), m.http_stats.clone());
            let http = tokio::net::TcpListener::from_std(http)?;
            let mut stop = stop_rx;
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = axum::serve(http, app).with_graceful_shutdown(shutdown).await {
                    tracing::error!("Fluentd HTTP input failed: {e}");
                }
            });
            log_inputs_stop = Some(stop_tx);
        }
        let listener = tokio::net::TcpListener::from_std(http_listener)?;
        let stop = http_stop.clone();
        let http = tokio::spawn(async move {
            let serve =
                axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!("HTTP API failed: {e}");
            }
        });
        Ok(LiveHandle {
            pipeline,
            http_addr,
            mqtt_url,
            control_token,
            forward_addr,
            log_http_addr,
            log_inputs_stop,
            http,
            http_stop,
            started,
            _broker: broker,
        })
    }

    /// Runs until Ctrl-C / SIGTERM or `duration`, then drains and returns the summary.
    pub fn run_blocking(self, duration: Option<Duration>) -> anyhow::Result<RunSummary> {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        rt.block_on(async move {
            let handle = self.start().await?;
            println!(
                "chaoslab live: MQTT at {}, HTTP at http://{} (Ctrl-C to stop)",
                handle.mqtt_url, handle.http_addr
            );
            let until = async {
                match duration {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = shutdown_signal() => tracing::info!("signal received; stopping"),
                _ = until => {}
            }
            handle.stop().await
        })
    }
}

impl LiveHandle {
    /// Drains and stops the pipeline and the HTTP API.
    pub async fn stop(self) -> anyhow::Result<RunSummary> {
        if let Some(stop) = &self.log_inputs_stop {
            stop.send_replace(true);
        }
        let (drained, orders) = self.pipeline.finish(Duration::from_secs(5)).await?;
        self.http_stop.cancel();
        let _ = self.http.await;
        let trace = self.pipeline.trace.finish()?;
        Ok(RunSummary::collect(&self.pipeline, self.started.elapsed().as_secs_f64(), drained, orders, trace))
    }
}

/// The control plane's credentials: the file given, or a token generated now (written to
/// `<out>/control-token`, readable by the owner only, so local tools find it).
fn control_credentials(
    file: Option<&std::path::Path>,
    out: &std::path::Path,
) -> anyhow::Result<(Arc<crate::api::auth::Credentials>, Option<String>)> {
    use crate::api::auth::{Credentials, hash_secret};
    if let Some(path) = file {
        return Ok((Arc::new(Credentials::load(path)?), None));
    }
    let token = hex::encode(rand::Rng::r#gen::<[u8; 32]>(&mut rand::thread_rng()));
    let hash = hash_secret(&token)?;
    let text = format!("[[token]]\nname = \"generated\"\ntoken_hash = \"{hash}\"\n");
    let creds = Credentials::parse(&text, "<generated>")?;
    let path = out.join(CONTROL_TOKEN_FILE);
    write_private(&path, &token).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!("control plane token written to {} (or pass --credentials FILE)", path.display());
    Ok((Arc::new(creds), Some(token)))
}

/// Where a live run leaves its generated control-plane token.
pub const CONTROL_TOKEN_FILE: &str = "control-token";

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    biased;
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
