//! Running a pipeline: one builder, [`Run`], finished in virtual time ([`Run::sim`]) or for real
//! ([`Run::live`]).
//!
//! A sim run is a single-threaded tokio runtime with a paused clock and no I/O driver: time jumps from
//! timer to timer, and any attempt to open a real socket fails loudly instead of silently breaking
//! determinism. A live run is a multi-threaded runtime with real sockets (the embedded MQTT broker, the
//! HTTP API, the log inputs) and signal handling. Both build the same [`Pipeline`]. Options that are
//! settings of components (a dataset, a rate, a database, listen addresses) are applied to the flow's
//! components of that kind, so a flow and the command line mean the same thing.

pub mod determinism;
pub mod summary;
pub mod swarm;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use self::summary::{OrdersSummary, RunSummary};
use crate::api::control::ControlConfig;
use crate::chaos::experiment::provider::process::ProcessAllow;
use crate::kernel::seed::Seed;
use crate::kernel::trace::{TraceLevel, TraceSummary};
use crate::monitoring::log_router::{LogInputHandle, LogRouterConfig};
use crate::orders::order_store::OrderStoreConfig;
use crate::reasoning::incident_reasoner::IncidentReasonerConfig;
use crate::sources::sensor_replay::SensorReplayConfig;
use crate::topology::flow::Flow;
use crate::topology::{Pipeline, PipelineOptions, RunMode, TraceSink};
use crate::transport::mqtt::MqttConnector;
use crate::transport::mqtt::client::BrokerUrl;
use crate::transport::mqtt::mqtt_broker::MqttBrokerConfig;

/// How long the end of a sim run waits for messages in flight.
const SIM_DRAIN: Duration = Duration::from_secs(60);
/// How long the end of a live run waits for messages in flight.
const LIVE_DRAIN: Duration = Duration::from_secs(5);

/// A run being set up: plain setters, finished by [`Run::sim`], [`Run::sim_with`], [`Run::live`] or
/// [`Run::live_until_signal`].
#[derive(Clone)]
pub struct Run {
    flow: Flow,
    out: PathBuf,
    seed: Option<u64>,
    trace: TraceSink,
    trace_level: TraceLevel,
    http_listen: Option<SocketAddr>,
    credentials: Option<PathBuf>,
    control: ControlConfig,
    allow_process: Vec<String>,
    open_order_api: bool,
    command: Option<String>,
    history: bool,
    progress: Option<ProgressFn>,
    store: Option<PathBuf>,
}

/// Told how a sim run advances, a hundred times per run: the virtual time reached, the whole, and the
/// records the components have received so far.
pub type ProgressFn = Arc<dyn Fn(Duration, Duration, u64) + Send + Sync>;

/// A sim run advances in this many steps (whether or not anybody is told), so that its bytes never depend
/// on whether a progress bar is shown.
const SIM_STEPS: u32 = 100;

impl Run {
    /// A run of `flow` writing to `./out`, seed 0 in sim mode (random in live mode).
    pub fn new(flow: Flow) -> Run {
        Run {
            flow,
            out: PathBuf::from("out"),
            seed: None,
            trace: TraceSink::File,
            trace_level: TraceLevel::Records,
            http_listen: None,
            credentials: None,
            control: ControlConfig::default(),
            allow_process: Vec::new(),
            open_order_api: false,
            command: None,
            history: true,
            progress: None,
            store: None,
        }
    }

    /// The command line that reproduces this run, shown by the dashboard (default: one built from the
    /// seed and the flow).
    pub fn command(mut self, command: impl Into<String>) -> Run {
        self.command = Some(command.into());
        self
    }

    /// Live: keep the experiments run over HTTP in the execution store at `path` (the dashboard's Runs tab
    /// lists it).
    pub fn execution_store(mut self, path: impl Into<PathBuf>) -> Run {
        self.store = Some(path.into());
        self
    }

    /// Calls `f` as a sim run advances (a terminal's progress bar).
    pub fn progress(mut self, f: ProgressFn) -> Run {
        self.progress = Some(f);
        self
    }

    /// Whether the run records the dashboard's metric history (`<out>/history.jsonl`; on by default). Many
    /// short runs that nobody replays (campaigns, benchmarks) turn it off.
    pub fn history(mut self, on: bool) -> Run {
        self.history = on;
        self
    }

    /// The output directory (trace, stores, indices, results).
    pub fn out(mut self, dir: impl Into<PathBuf>) -> Run {
        self.out = dir.into();
        self
    }

    /// The root seed (live runs: ids and fault decisions; timing stays real).
    pub fn seed(mut self, seed: u64) -> Run {
        self.seed = Some(seed);
        self
    }

    /// Every sensor replays this CSV (relative to the working directory).
    pub fn dataset(mut self, path: impl Into<PathBuf>) -> Run {
        let path = path.into();
        let path = std::path::absolute(&path).unwrap_or(path).display().to_string();
        self.flow.configure::<SensorReplayConfig>(|s| s.dataset = path.clone());
        self
    }

    /// Every sensor publishes one row per `rate` milliseconds (0 = as fast as possible).
    pub fn rate_ms(mut self, rate: u64) -> Run {
        self.flow.configure::<SensorReplayConfig>(|s| s.rate_ms = rate);
        self
    }

    /// The order store at `url` (`postgres://…`, `sqlite://…`); a PostgreSQL URL also holds the signal
    /// history.
    pub fn database_url(mut self, url: &str) -> Run {
        self.flow.configure::<OrderStoreConfig>(|s| s.url = Some(url.to_string()));
        if url.starts_with("postgres") {
            self.flow.configure::<IncidentReasonerConfig>(|r| r.url = Some(url.to_string()));
        }
        self
    }

    /// Keeps the trace in memory only (hash and counts).
    pub fn trace_in_memory(mut self) -> Run {
        self.trace = TraceSink::Memory;
        self
    }

    /// How much goes into the trace.
    pub fn trace_level(mut self, level: TraceLevel) -> Run {
        self.trace_level = level;
        self
    }

    /// Live: the MQTT broker component fronts this external broker instead of the embedded one.
    pub fn mqtt_url(mut self, url: &BrokerUrl) -> Run {
        self.flow.configure::<MqttBrokerConfig>(|b| b.external = Some(url.to_string()));
        self
    }

    /// Live: where the embedded MQTT broker listens.
    pub fn mqtt_listen(mut self, addr: SocketAddr) -> Run {
        self.flow.configure::<MqttBrokerConfig>(|b| b.listen = addr);
        self
    }

    /// Live: where the HTTP API listens (default from the flow's `[http]`).
    pub fn http_listen(mut self, addr: SocketAddr) -> Run {
        self.http_listen = Some(addr);
        self
    }

    /// Live: where the Fluentd Forward input listens.
    pub fn forward_listen(mut self, addr: SocketAddr) -> Run {
        self.flow.configure::<LogRouterConfig>(|l| l.forward_listen = addr);
        self
    }

    /// Live: where the Fluentd HTTP input listens.
    pub fn log_http_listen(mut self, addr: SocketAddr) -> Run {
        self.flow.configure::<LogRouterConfig>(|l| l.http_listen = addr);
        self
    }

    /// Live: the control plane's credentials file; without one a token is generated and written to
    /// `<out>/control-token`.
    pub fn credentials(mut self, path: impl Into<PathBuf>) -> Run {
        self.credentials = Some(path.into());
        self
    }

    /// Live: executables submitted experiments may run through `process` providers.
    pub fn allow_process(mut self, names: Vec<String>) -> Run {
        self.allow_process = names;
        self
    }

    /// Live: leave the order API's destructive routes (`DELETE /orders`, `PUT /orders/{id}`) open to
    /// anybody, as the reference's were; by default they need the control plane's credentials (the run's
    /// own services present a key of their own).
    pub fn open_order_api(mut self, open: bool) -> Run {
        self.open_order_api = open;
        self
    }

    /// Live: experiments `/execute_experiment` runs at once (default 1).
    pub fn max_experiments(mut self, n: usize) -> Run {
        self.control.max_concurrent = n;
        self
    }

    /// The flow as the options left it.
    pub fn flow(&self) -> &Flow {
        &self.flow
    }

    fn options(&self, mode: RunMode) -> PipelineOptions {
        let seed = match (self.seed, mode) {
            (Some(s), _) => Seed(s),
            (None, RunMode::Sim) => Seed(0),
            (None, RunMode::Live) => Seed::from_entropy(),
        };
        PipelineOptions {
            mode,
            seed,
            out: self.out.clone(),
            trace: self.trace,
            trace_level: self.trace_level,
            api_base: None,
            service_key: None,
        }
    }

    /// Runs for `duration` of virtual time and returns the summary.
    pub fn sim(self, duration: Duration) -> anyhow::Result<RunSummary> {
        let progress = self.progress.clone();
        self.sim_with(move |p| async move {
            let start = tokio::time::Instant::now();
            for step in 1..=SIM_STEPS {
                tokio::time::sleep_until(start + duration * step / SIM_STEPS).await;
                if let Some(f) = &progress {
                    f(
                        duration * step / SIM_STEPS,
                        duration,
                        p.metrics.total("chaoslab_records_in_total") as u64,
                    );
                }
            }
            Ok(())
        })
    }

    /// Runs `script` against the started pipeline in virtual time (it can sleep, crash components, set
    /// faults…); when it returns, the run drains and ends.
    pub fn sim_with<F, Fut>(self, script: F) -> anyhow::Result<RunSummary>
    where
        F: FnOnce(Arc<Pipeline>) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .context("cannot build the sim runtime")?;
        let opts = self.options(RunMode::Sim);
        // Wall time is measured around the simulation for the summary only; nothing inside reads it.
        let wall = std::time::Instant::now();
        let mesh = load_flow_mesh(&self.flow)?;
        let (command, history) = (self.command.clone(), self.history);
        rt.block_on(async move {
            let pipeline = Arc::new(Pipeline::build(self.flow, opts).await?);
            let _log_time = crate::kernel::clock::log_with(pipeline.clock.clone());
            pipeline.start();
            let recorder = history.then(|| Recorder::start(&pipeline, command.as_deref())).transpose()?;
            create_mesh(&pipeline, &mesh);
            script(pipeline.clone()).await?;
            let (drained, orders, trace) = finish(&pipeline, SIM_DRAIN).await?;
            if let Some(r) = recorder {
                r.finish(&pipeline).await?;
            }
            pipeline.out_dir.finish()?;
            Ok(RunSummary::collect(&pipeline, wall.elapsed().as_secs_f64(), drained, orders, trace))
        })
    }

    /// Binds the ports, builds and starts the pipeline and serves the HTTP API. Must run inside a
    /// multi-threaded tokio runtime.
    pub async fn live(self) -> anyhow::Result<LiveHandle> {
        let started = std::time::Instant::now();
        let http_addr = self.http_listen.unwrap_or(self.flow.http.listen);
        if !http_addr.ip().is_loopback() {
            anyhow::ensure!(
                self.credentials.is_some(),
                "--http-listen {http_addr} is reachable from the network: the control plane (faults, \
                 experiments) and the order API would be open to it; give --credentials FILE to require a \
                 token, or listen on 127.0.0.1"
            );
            tracing::warn!(
                "HTTP on {http_addr}: the control plane and the order API are reachable from the network \
                 (the control plane needs a token from --credentials; the order API's reads and creates are \
                 open, as the reference's are)"
            );
        }
        let http_listener = std::net::TcpListener::bind(http_addr).with_context(|| {
            format!(
                "cannot listen for HTTP on {http_addr} (port {} in use? choose another with --http-listen)",
                http_addr.port()
            )
        })?;
        http_listener.set_nonblocking(true)?;
        let http_addr = http_listener.local_addr()?;
        let mut control = self.control.clone();
        control.process_allow = ProcessAllow::resolve(&self.allow_process).map_err(|e| anyhow::anyhow!(e))?;
        let mut opts = self.options(RunMode::Live);
        opts.api_base = Some(format!("http://{http_addr}"));
        let service_key = hex::encode(rand::Rng::r#gen::<[u8; 32]>(&mut rand::thread_rng()));
        opts.service_key = Some(service_key.clone());
        let out = opts.out.clone();
        let mesh = load_flow_mesh(&self.flow)?;
        let pipeline = Arc::new(Pipeline::build(self.flow, opts).await?);
        let mqtt_url = pipeline.handles.first::<MqttConnector>().and_then(|c| match c {
            MqttConnector::Live(url) => Some(url.clone()),
            MqttConnector::Sim(_) => None,
        });
        tracing::info!(seed = pipeline.seed.0, "live run: HTTP at http://{http_addr}");
        let (credentials, control_token) = control_credentials(self.credentials.as_deref(), &out)?;
        pipeline.start();
        let recorder = Recorder::start(&pipeline, self.command.as_deref())?;
        pipeline.mesh.set_process_allow(control.process_allow.clone());
        create_mesh(&pipeline, &mesh);
        let http_stop = tokio_util::sync::CancellationToken::new();
        let store = match &self.store {
            Some(path) => match crate::executions::Store::open(path) {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    tracing::warn!("runs will not be kept: {e:#}");
                    None
                }
            },
            None => None,
        };
        control.journal_dir = Some(out.join("experiments"));
        control.store = store.clone();
        control.api_base = Some(format!("http://{http_addr}"));
        let dashboard = crate::dashboard::live::Live::new(
            pipeline.clone(),
            recorder.history.clone(),
            recorder.run.clone(),
        );
        let app = crate::api::router(pipeline.clone())
            .merge(crate::api::control::router(
                pipeline.clone(),
                credentials.clone(),
                control,
                http_stop.child_token(),
            ))
            .merge(crate::dashboard::router(
                Arc::new(dashboard),
                crate::dashboard::Options {
                    credentials: Some(credentials.clone()),
                    pipeline: Some(pipeline.clone()),
                    store,
                },
            ));
        let app = if self.open_order_api {
            app
        } else {
            let guard = crate::api::guards::OrderGuard { credentials: credentials.clone(), service_key };
            app.layer(axum::middleware::from_fn_with_state(
                Arc::new(guard),
                crate::api::guards::guard_order_writes,
            ))
        };
        // With --credentials, what would let a forged incident in (an alert, a log line) needs them too.
        let ingest_auth = self.credentials.is_some().then(|| credentials.clone());
        let app = match &ingest_auth {
            Some(creds) => app.layer(axum::middleware::from_fn_with_state(
                creds.clone(),
                crate::api::guards::require_auth_on_alerts,
            )),
            None => app,
        };
        let app = if http_addr.ip().is_loopback() { crate::api::loopback_hosts_only(app) } else { app };
        let app = crate::api::catch_panics(app);
        let log_stop = tokio_util::sync::CancellationToken::new();
        let (log_inputs, forward_addr, log_http_addr) =
            serve_log_inputs(&pipeline, &log_stop, ingest_auth, &out)?;
        let listener = tokio::net::TcpListener::from_std(http_listener)?;
        let stop = http_stop.clone();
        let http = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let serve =
                axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!("HTTP API failed: {e}");
            }
        });
        Ok(LiveHandle {
            pipeline,
            recorder,
            http_addr,
            mqtt_url,
            control_token,
            forward_addr,
            log_http_addr,
            log_inputs,
            log_stop,
            http,
            http_stop,
            started,
        })
    }

    /// Runs live until Ctrl-C / SIGTERM or `duration`, then drains and returns the summary.
    pub fn live_until_signal(self, duration: Option<Duration>) -> anyhow::Result<RunSummary> {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        rt.block_on(async move {
            let handle = self.live().await?;
            let mqtt = handle.mqtt_url.as_ref().map(|u| format!("MQTT at {u}, ")).unwrap_or_default();
            println!("chaoslab live: {mqtt}HTTP at http://{} (Ctrl-C to stop)", handle.http_addr);
            println!("Dashboard: {}", handle.dashboard_url());
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

/// The objects of the flow's `[[mesh]]` files, read and checked before anything is built: every problem
/// of every file is reported at once.
fn load_flow_mesh(flow: &Flow) -> anyhow::Result<Vec<crate::mesh::Loaded>> {
    if flow.mesh.is_empty() {
        return Ok(Vec::new());
    }
    let files: Vec<std::path::PathBuf> = flow.mesh.iter().map(|m| flow.resolve(&m.file)).collect();
    let mut problems = crate::config::Problems::new();
    let loaded =
        crate::mesh::load_files(&files, Some(&crate::mesh::select::pods_of_flow(flow)), &mut problems);
    for w in problems.warnings() {
        tracing::warn!("{w}");
    }
    problems.check()?;
    Ok(loaded)
}

/// Creates the flow's Chaos Mesh objects in the started pipeline.
fn create_mesh(p: &Arc<Pipeline>, loaded: &[crate::mesh::Loaded]) {
    for l in loaded {
        if let Err(e) = p.mesh.create(p, l) {
            tracing::warn!("{}: {e}", l.object.origin);
        }
    }
}

/// Drains the pipeline, takes the order summary while the store still runs, then stops everything.
async fn finish(p: &Pipeline, max: Duration) -> anyhow::Result<(bool, Option<OrdersSummary>, TraceSummary)> {
    p.mesh.shutdown().await;
    let drained = p.drain(max).await;
    let orders = OrdersSummary::collect(p).await?;
    p.stop(drained).await?;
    let trace = p.trace.finish()?;
    Ok((drained, orders, trace))
}

/// Serves the log router's Forward and HTTP inputs on the listeners it bound (live, monitoring on). With
/// `auth` (`--credentials`) both take events only from who proves it may: the HTTP input wants the token,
/// the Forward input the shared-key handshake — with the `<security>` of its `<source>`, or else a key
/// generated now and written to `<out>/forward-shared-key` (owner-only).
#[allow(clippy::type_complexity)]
fn serve_log_inputs(
    p: &Pipeline,
    stop: &tokio_util::sync::CancellationToken,
    auth: Option<Arc<crate::api::auth::Credentials>>,
    out: &std::path::Path,
) -> anyhow::Result<(Vec<tokio::task::JoinHandle<()>>, Option<SocketAddr>, Option<SocketAddr>)> {
    let mut tasks = Vec::new();
    // One generated key for every Forward input that needs one: they share its file.
    let mut generated = None;
    let (mut forward_addr, mut http_addr) = (None, None);
    for (_, input) in p.handles.all::<LogInputHandle>() {
        let taken = input.listeners.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let Some((fwd, http)) = taken else { continue };
        forward_addr = forward_addr.or(Some(fwd.local_addr()?));
        http_addr = http_addr.or(Some(http.local_addr()?));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let fwd = tokio::net::TcpListener::from_std(fwd)?;
        let security = match (&input.forward_security, &auth) {
            (Some(configured), _) => Some(configured.clone()),
            (None, Some(_)) => {
                if generated.is_none() {
                    generated = Some(Arc::new(generated_forward_security(out)?));
                }
                generated.clone()
            }
            (None, None) => None,
        };
        tasks.push(tokio::spawn(crate::monitoring::logs::forward::serve(
            fwd,
            input.external.clone(),
            input.forward_stats.clone(),
            stop_rx.clone(),
            security,
        )));
        let app =
            crate::monitoring::logs::http_input::router(input.external.clone(), input.http_stats.clone());
        let app = match &auth {
            Some(creds) => {
                app.layer(axum::middleware::from_fn_with_state(creds.clone(), crate::api::auth::require_auth))
            }
            None => app,
        };
        let app =
            if http.local_addr()?.ip().is_loopback() { crate::api::loopback_hosts_only(app) } else { app };
        let app = crate::api::catch_panics(app);
        let http = tokio::net::TcpListener::from_std(http)?;
        let mut stopped = stop_rx;
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(http, app).with_graceful_shutdown(shutdown).await {
                tracing::error!("Fluentd HTTP input failed: {e}");
            }
        }));
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            stop.cancelled().await;
            stop_tx.send_replace(true);
        }));
    }
    Ok((tasks, forward_addr, http_addr))
}

/// A started live pipeline.
pub struct LiveHandle {
    /// The pipeline.
    pub pipeline: Arc<Pipeline>,
    recorder: Recorder,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// Where MQTT clients connect (the embedded broker's port, or the external broker), when the flow
    /// has a broker.
    pub mqtt_url: Option<BrokerUrl>,
    /// The control plane's bearer token, when it was generated at start-up (no credentials file).
    pub control_token: Option<String>,
    /// Where the Fluentd Forward input listens (a log router runs).
    pub forward_addr: Option<SocketAddr>,
    /// Where the Fluentd HTTP input listens (a log router runs).
    pub log_http_addr: Option<SocketAddr>,
    log_inputs: Vec<tokio::task::JoinHandle<()>>,
    log_stop: tokio_util::sync::CancellationToken,
    http: tokio::task::JoinHandle<()>,
    http_stop: tokio_util::sync::CancellationToken,
    started: std::time::Instant,
}

impl LiveHandle {
    /// The dashboard's address, with the generated token when there is one (as Jupyter prints its link):
    /// opening it keeps the token in the browser's session cookie.
    pub fn dashboard_url(&self) -> String {
        match &self.control_token {
            Some(token) => format!("http://{}/?token={token}", self.http_addr),
            None => format!("http://{}/", self.http_addr),
        }
    }

    /// Drains and stops the pipeline and the HTTP API.
    pub async fn stop(self) -> anyhow::Result<RunSummary> {
        self.log_stop.cancel();
        for t in self.log_inputs {
            let _ = t.await;
        }
        self.pipeline.mesh.shutdown().await;
        let drained = self.pipeline.drain(LIVE_DRAIN).await;
        let orders = OrdersSummary::collect(&self.pipeline).await?;
        self.pipeline.stop(drained).await?;
        self.http_stop.cancel();
        let _ = self.http.await;
        self.recorder.finish(&self.pipeline).await?;
        let trace = self.pipeline.trace.finish()?;
        self.pipeline.out_dir.finish()?;
        Ok(RunSummary::collect(&self.pipeline, self.started.elapsed().as_secs_f64(), drained, orders, trace))
    }
}

/// The dashboard's record of a run: `run.json` written at the start, the metric history sampled beside the
/// pipeline and written to `history.jsonl` at the end.
struct Recorder {
    run: crate::dashboard::view::RunInfo,
    history: crate::dashboard::history::History,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    fn start(p: &Arc<Pipeline>, command: Option<&str>) -> anyhow::Result<Recorder> {
        use crate::dashboard::{history, view};
        let default_command = || {
            let mode = if p.clock.is_sim() { "--sim " } else { "" };
            format!("chaoslab run {mode}--seed {} --flow {}", p.seed.0, p.flow.source)
        };
        let run = crate::dashboard::live::run_info(p, &command.map_or_else(default_command, str::to_owned));
        let path = p.out.join(view::RUN_FILE);
        std::fs::write(&path, serde_json::to_vec_pretty(&run)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let history = history::History::new(run.start_ms, history::DEFAULT_INTERVAL);
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(history.clone().record(p.metrics.clone(), p.clock.clone(), stop.clone()));
        Ok(Recorder { run, history, stop, task })
    }

    async fn finish(self, p: &Pipeline) -> anyhow::Result<()> {
        self.stop.cancel();
        let _ = self.task.await;
        self.history.write(&p.out.join(crate::dashboard::history::HISTORY_FILE))
    }
}

/// Name of the file that holds the Forward input's generated shared key.
pub const FORWARD_KEY_FILE: &str = "forward-shared-key";

/// The Forward input's handshake when `--credentials` guards the run and the Fluentd `<source>` has no
/// `<security>`: `self_hostname chaoslab` and a 256-bit key from the OS, written owner-only to
/// `<out>/forward-shared-key` for the clients to configure (Fluent Bit's `Shared_Key`, Fluentd's
/// `<security>` of `out_forward`).
fn generated_forward_security(
    out: &std::path::Path,
) -> anyhow::Result<crate::monitoring::logs::config::ForwardSecurity> {
    let key = hex::encode(rand::Rng::r#gen::<[u8; 32]>(&mut rand::thread_rng()));
    let path = out.join(FORWARD_KEY_FILE);
    write_private(&path, &key).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(
        "the Fluentd Forward input needs the shared-key handshake (--credentials and no <security> in the \
         Fluentd configuration): self_hostname chaoslab, shared_key in {}",
        path.display()
    );
    Ok(crate::monitoring::logs::config::ForwardSecurity {
        self_hostname: "chaoslab".to_owned(),
        shared_key: key,
        users: Vec::new(),
    })
}

/// The control plane's credentials: the file given, or a token generated now (written to
/// `<out>/control-token`, readable by the owner only, so local tools find it).
fn control_credentials(
    file: Option<&std::path::Path>,
    out: &std::path::Path,
) -> anyhow::Result<(Arc<crate::api::auth::Credentials>, Option<String>)> {
    use crate::api::auth::{Credentials, hash_generated_token};
    if let Some(path) = file {
        return Ok((Arc::new(Credentials::load(path)?), None));
    }
    let token = hex::encode(rand::Rng::r#gen::<[u8; 32]>(&mut rand::thread_rng()));
    let hash = hash_generated_token(&token)?;
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

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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
