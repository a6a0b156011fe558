//! The `chaoslab` command line.

/// mimalloc: runs allocate and free millions of small records (events, messages, their keys), and glibc's
/// allocator spends a third of a campaign run in malloc and free; mimalloc makes such a run 25 % faster.
/// The `system-alloc` feature leaves it out, so that heap profilers which hook `malloc` (heaptrack,
/// valgrind's massif) see every allocation.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use chaoslab::catalog;
use chaoslab::kernel::seed::Seed;
use chaoslab::orders::http::ApiClient;
use chaoslab::orders::load_generator::{LoadGeneratorConfig, run_users};
use chaoslab::runner::Run;
use chaoslab::sources::dataset::Dataset;
use chaoslab::sources::synth::{SynthParams, synthesize};
use chaoslab::transport::mqtt::client::BrokerUrl;

mod cli;
use cli::PipelineArgs;

/// A whole reference data pipeline in one process, with chaos engineering built in.
#[derive(Parser)]
#[command(name = "chaoslab", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline: live (default) or in virtual time with --sim.
    Run(Box<RunArgs>),
    /// Run the SPARK k-means job once over the records a run stored.
    Kmeans(KmeansArgs),
    /// The logical files of a run's HADOOP store: list, print, export as real files.
    Hdfs {
        #[command(subcommand)]
        command: cli::hdfs::HdfsCommand,
    },
    /// OCTILLERY on its own: place orders against any order API.
    Load(LoadArgs),
    /// Synthetic datasets and dataset checks.
    Dataset {
        #[command(subcommand)]
        command: DatasetCommand,
    },
    /// Check a flow file.
    Flow {
        #[command(subcommand)]
        command: FlowCommand,
    },
    /// Chaos Toolkit experiments, run natively (sim in-process, or against a live instance).
    Experiment {
        #[command(subcommand)]
        command: cli::experiment::ExperimentCommand,
    },
    /// Chaos Mesh files (NetworkChaos, PodChaos, …, Schedule, Workflow): check them, run them in virtual time.
    Mesh {
        #[command(subcommand)]
        command: cli::mesh::MeshCommand,
    },
    /// Campaigns: a parameter grid over Chaos Mesh files, many seeds, captured series, the ChaosMeshWizard's
    /// recovery analysis.
    Campaign {
        #[command(subcommand)]
        command: cli::campaign::CampaignCommand,
    },
    /// Apply, list and remove faults on a running instance.
    Fault {
        #[command(subcommand)]
        command: cli::fault::FaultCommand,
    },
    /// Frequent-pattern mining over a run's signal history (the reference's pattern-analysis job).
    Mine(Box<MineArgs>),
    /// Credentials for the control plane.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// The dashboard over a finished sim run: scrub through its virtual time.
    Serve(cli::serve::ServeArgs),
    /// Swarm testing: per seed, a fault schedule drawn from the seed, a quiet phase, the invariants.
    Swarm(Box<SwarmArgs>),
    /// Benchmarks; they print their figures.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Run in virtual time: in-process transports, deterministic for the seed.
    #[arg(long)]
    sim: bool,
    /// How long to run (e.g. 30m). Required with --sim; live runs until Ctrl-C without it.
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// Sim: no progress bar (there is none anyway when stdout is not a terminal).
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Sim: record no metric history (`history.jsonl` and `run.json`, which `chaoslab serve` needs); the
    /// recording costs a 30-minute sim run about a sixth of its time. A live run always records (its
    /// dashboard charts the history).
    #[arg(long)]
    no_history: bool,
    /// Sim: run the scenario twice (outputs in <out>/run-1 and <out>/run-2) and compare the traces; print
    /// `deterministic: <digest>` or the first line that differs (exit 1).
    #[arg(long)]
    check_determinism: bool,
    /// Live: use this external MQTT broker (mqtt://host:port) instead of the embedded one.
    #[arg(long)]
    mqtt_url: Option<BrokerUrl>,
    /// Live: where the embedded MQTT broker listens (default from the flow: 127.0.0.1:1883).
    #[arg(long)]
    mqtt_listen: Option<SocketAddr>,
    /// Live: where the HTTP API listens (default from the flow: 127.0.0.1:8080).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Live: the control plane's credentials file (TOML, argon2 hashes; see `chaoslab auth hash`).
    /// Without it a token is generated and written to <out>/control-token. With it, `POST /alerts` and
    /// the log inputs need credentials too (the Forward input the shared-key handshake: its <security>,
    /// or a key written to <out>/forward-shared-key).
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Live: where the Fluentd Forward input listens (default from the flow: 127.0.0.1:24224).
    #[arg(long)]
    forward_listen: Option<SocketAddr>,
    /// Live: where the Fluentd HTTP input listens (default from the flow: 127.0.0.1:9880).
    #[arg(long)]
    log_http_listen: Option<SocketAddr>,
    /// Live: an executable that experiments submitted over HTTP may run as a `process` provider
    /// (repeatable; nothing is allowed by default).
    #[arg(long = "allow-process")]
    allow_process: Vec<String>,
    /// Live: leave DELETE /orders and PUT /orders/{id} open to anybody, as the reference's API was (by
    /// default they need the control plane's credentials).
    #[arg(long)]
    open_order_api: bool,
    /// Live: experiments POST /execute_experiment may run at once.
    #[arg(long, default_value_t = 1)]
    max_experiments: usize,
    /// Live: the execution store experiments run over HTTP are kept in (default: $CHAOSLAB_STORE,
    /// $CHAOSLAB_HOME/executions.db, or ~/.local/share/chaoslab/executions.db).
    #[arg(long)]
    store: Option<PathBuf>,
}

impl RunArgs {
    /// The run these options describe (the command line maps onto the run builder here, and only here).
    fn run(&self) -> anyhow::Result<Run> {
        let mut run = self.pipeline.run(self.pipeline.flow()?);
        if let Some(url) = &self.mqtt_url {
            run = run.mqtt_url(url);
        }
        if let Some(addr) = self.mqtt_listen {
            run = run.mqtt_listen(addr);
        }
        if let Some(addr) = self.http_listen {
            run = run.http_listen(addr);
        }
        if let Some(path) = &self.credentials {
            run = run.credentials(path);
        }
        if let Some(addr) = self.forward_listen {
            run = run.forward_listen(addr);
        }
        if let Some(addr) = self.log_http_listen {
            run = run.log_http_listen(addr);
        }
        if let Some(path) = self.store.clone().or_else(chaoslab::executions::Store::default_path) {
            run = run.execution_store(path);
        }
        Ok(run
            .allow_process(self.allow_process.clone())
            .open_order_api(self.open_order_api)
            .max_experiments(self.max_experiments)
            .history(!self.no_history))
    }
}

#[derive(Args)]
struct SwarmArgs {
    /// Seeds: a range `1..100` (inclusive), one seed, or a list `1,5,9`.
    #[arg(long, default_value = "1..20")]
    seeds: String,
    /// Virtual time per seed: faults in the first half, quiet in the second (at least 4m).
    #[arg(long = "for", default_value = "10m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Seeds run at once (default: one per core).
    #[arg(short = 'j', long)]
    jobs: Option<usize>,
    #[command(flatten)]
    pipeline: PipelineArgs,
}

/// An exit code for a command whose outcome is already printed.
#[derive(Debug, thiserror::Error)]
#[error("exit code {0}")]
struct Exit(u8);

#[derive(Args)]
struct MineArgs {
    /// The run's output directory (signals.db, knowledge.yaml; predictions go to its index).
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// The signal history in PostgreSQL instead of <out>/signals.db.
    #[arg(long)]
    database_url: Option<String>,
    /// Window length.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    window: Duration,
    /// Distance between window starts.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    slide: Duration,
    /// Minimum support of an itemset (fraction of windows).
    #[arg(long, default_value_t = 0.1)]
    min_support: f64,
    /// Minimum confidence of a rule.
    #[arg(long, default_value_t = 0.3)]
    min_confidence: f64,
    /// Seed of the analysis id (default: random).
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Reads a password or token from standard input and prints its argon2 hash for a credentials file.
    Hash,
}

#[derive(Args)]
struct LoadArgs {
    /// Base URL of an order API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Users placing orders in parallel (user ids 1..=users).
    #[arg(long, default_value_t = 5)]
    users: u32,
    /// Orders per user.
    #[arg(long, default_value_t = 1000)]
    orders: u32,
    /// Pause after each order.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    delay: Duration,
    /// Pause before the first order.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    initial_delay: Duration,
    /// Seed of the generated orders (default: random).
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Args)]
struct KmeansArgs {
    /// A run's output directory.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// The file store under it.
    #[arg(long, default_value = "hdfs/nifi")]
    store: PathBuf,
    /// Clusters.
    #[arg(long, default_value_t = 2)]
    k: usize,
    /// Initialisation seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Write the seeded synthetic GNFUV-shaped dataset (the shipped datasets/gnfuv-synth.csv is seed 2018).
    Synth {
        /// Seed.
        #[arg(long, default_value_t = 2018)]
        seed: u64,
        /// Rows in all.
        #[arg(long, default_value_t = 1546)]
        rows: usize,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Validate a dataset and print its shape.
    Check {
        /// The CSV file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum FlowCommand {
    /// Parse and check a flow file (every problem at once), then list its components and links.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
    /// List the component kinds a flow may use.
    Kinds,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The Heuristics Miner with Lossy Counting alone (and pybeamline beside it), its memory against ε, and
    /// the mining path in sim.
    Mining {
        /// Events for the miner-alone run.
        #[arg(long, default_value_t = 2_000_000)]
        events: usize,
        /// Virtual time of the sim-path run (20 000 events per second).
        #[arg(long = "sim-for", default_value = "60s", value_parser = humantime::parse_duration)]
        sim_for: Duration,
    },
    /// The embedded MQTT broker beside Mosquitto (when installed): the same clients, throughput, CPU and
    /// memory of each broker process, and the ratios.
    Mqtt {
        /// Messages per QoS level.
        #[arg(long, default_value_t = 200_000)]
        messages: u64,
        /// Publishing connections.
        #[arg(long, default_value_t = 1)]
        publishers: u32,
        /// QoS levels (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "0,1", value_parser = parse_qos)]
        qos: Vec<chaoslab::transport::envelope::Qos>,
        /// Only the embedded broker, even when Mosquitto is installed.
        #[arg(long)]
        no_peer: bool,
    },
    /// Sim throughput and time compression, live MQTT throughput, start-up time, memory.
    Pipeline {
        /// Records for the sim throughput run.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Messages for the live MQTT run.
        #[arg(long, default_value_t = 50_000)]
        messages: u64,
    },
    /// The pipeline live for a while at full sensor rate, its memory printed over time.
    Soak {
        /// How long.
        #[arg(long = "for", default_value = "10m", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// How often memory is sampled.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        every: Duration,
        /// Sensor interval (0: as fast as the broker takes them).
        #[arg(long, default_value_t = 0)]
        rate_ms: u64,
        /// Without the order services.
        #[arg(long)]
        no_orders: bool,
        /// Without these components (comma-separated), and whatever needs them.
        #[arg(long, value_delimiter = ',')]
        without: Vec<String>,
        /// What the trace records (at full rate the full trace alone writes about 2.5 GB a minute;
        /// `lifecycle` keeps a long soak's output small).
        #[arg(long, value_enum, default_value = "records")]
        trace: chaoslab::kernel::trace::TraceLevel,
    },
    /// HADOOP's writes in each layout, and SPARK end to end against scikit-learn's fit.
    Store {
        /// Records written (segments) and clustered.
        #[arg(long, default_value_t = 200_000)]
        records: usize,
        /// Records written in the one-file-per-record layout (file creation is slow).
        #[arg(long, default_value_t = 50_000)]
        files_records: usize,
    },
    /// Order API requests per second (live, real HTTP) and orders per wall second end to end (sim).
    Orders {
        /// POST /orders/ requests in the live run.
        #[arg(long, default_value_t = 5_000)]
        requests: u64,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 8)]
        concurrency: u32,
        /// Orders per user (5 users) in the sim run.
        #[arg(long, default_value_t = 2_000)]
        sim_orders: u32,
        /// Another order API (e.g. the reference's FastAPI at http://127.0.0.1:8000) to send the same
        /// requests to, side by side.
        #[arg(long)]
        peer: Option<String>,
    },
}

/// A QoS level as MQTT numbers it: 0 or 1 (2 is served as 1, so it is not offered here).
fn parse_qos(text: &str) -> Result<chaoslab::transport::envelope::Qos, String> {
    match text.trim() {
        "0" => Ok(chaoslab::transport::envelope::Qos::AtMostOnce),
        "1" => Ok(chaoslab::transport::envelope::Qos::AtLeastOnce),
        other => Err(format!("{other:?} is not a QoS level this benchmark measures (0 or 1)")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let sim = matches!(&cli.command, Command::Run(a) if a.sim)
        || matches!(&cli.command, Command::Experiment { command } if command.is_sim())
        || matches!(&cli.command, Command::Mesh { command } if command.is_sim());
    // A swarm's runs break things on purpose: their logs would bury the one line per failing seed.
    let swarm = matches!(&cli.command, Command::Swarm(_) | Command::Campaign { .. });
    init_logging(if swarm {
        "off"
    } else if sim {
        "warn"
    } else {
        "info"
    });
    let coded = match cli.command {
        Command::Experiment { command } => Some(cli::experiment::execute(command)),
        Command::Fault { command } => Some(cli::fault::execute(command)),
        Command::Mesh { command } => Some(cli::mesh::execute(command)),
        Command::Campaign { command } => Some(cli::campaign::execute(command)),
        Command::Serve(a) => Some(cli::serve::execute(a)),
        Command::Hdfs { command } => Some(cli::hdfs::execute(command).map(|()| ExitCode::SUCCESS)),
        Command::Auth { command: AuthCommand::Hash } => Some(cli::fault::hash_from_stdin()),
        command => {
            if let Err(e) = execute(Cli { command }) {
                if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                    return ExitCode::from(*code);
                }
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
            None
        }
    };
    match coded {
        None => ExitCode::SUCCESS,
        Some(Ok(code)) => code,
        Some(Err(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default: &str) {
    // rumqttd logs ERROR for every client that disconnects (`router-drop error=Recv(Disconnected)`, or
    // "connection closed by peer"): ordinary MQTT life, not errors. MQTT_BROKER reports what matters
    // (start, stop, connections in its metrics); `RUST_LOG=rumqttd=info` brings rumqttd's own lines back.
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    use chaoslab::transport::mqtt::embedded::SkippedAheadLayer;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},rumqttd=off")));
    let log = tracing_subscriber::fmt::layer()
        .with_timer(chaoslab::kernel::clock::LogTime)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    // Counts the messages rumqttd skips, whatever the log filter lets through (MQTT_BROKER's drops).
    let skipped = SkippedAheadLayer.with_filter(SkippedAheadLayer::filter());
    tracing_subscriber::registry().with(log).with(skipped).init();
}

fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(a) => {
            let run = a.run()?;
            let summary = if a.sim {
                let duration = a.duration.context("--sim needs --for, e.g. --for 30m")?;
                if a.check_determinism {
                    let verdict = run.check_determinism(duration)?;
                    println!("{verdict}");
                    return match verdict {
                        chaoslab::runner::determinism::Determinism::Deterministic { .. } => Ok(()),
                        chaoslab::runner::determinism::Determinism::Diverged(_) => Err(Exit(1).into()),
                    };
                }
                match cli::progress::sim(a.quiet) {
                    Some((bar, f)) => {
                        let summary = run.progress(f).sim(duration);
                        bar.finish_and_clear();
                        summary?
                    }
                    None => run.sim(duration)?,
                }
            } else {
                anyhow::ensure!(!a.check_determinism, "--check-determinism needs --sim");
                run.live_until_signal(a.duration)?
            };
            if a.json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!("{}", summary.render());
            }
            Ok(())
        }
        Command::Experiment { .. }
        | Command::Fault { .. }
        | Command::Mesh { .. }
        | Command::Campaign { .. }
        | Command::Serve(_)
        | Command::Hdfs { .. }
        | Command::Auth { .. } => {
            unreachable!("handled in main")
        }
        Command::Mine(a) => {
            use rand::SeedableRng as _;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let result = rt.block_on(async {
                let store = match &a.database_url {
                    Some(url) => chaoslab::reasoning::store::SignalStore::open(url, true, "signals").await?,
                    None => {
                        let path = a.out.join("signals.db");
                        anyhow::ensure!(
                            path.is_file(),
                            "{} not found: run the pipeline with monitoring first",
                            path.display()
                        );
                        chaoslab::reasoning::store::SignalStore::open_sqlite_file(&path, true).await?
                    }
                };
                let graph_file = [a.out.join("knowledge.yaml"), a.out.join("flows/knowledge.yaml")]
                    .into_iter()
                    .find(|p| p.is_file());
                let graph =
                    graph_file.map(|p| chaoslab::reasoning::graph::KnowledgeGraph::load(&p)).transpose()?;
                let index = chaoslab::sinks::document_index::IndexStore::new(Some(a.out.join("index")));
                let params = chaoslab::reasoning::mining::MiningParams {
                    window: a.window,
                    slide: a.slide,
                    min_support: a.min_support,
                    min_confidence: a.min_confidence,
                };
                let seed = a.seed.unwrap_or_else(|| Seed::from_entropy().0);
                let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
                let now = chrono::Utc::now().timestamp_millis();
                chaoslab::reasoning::analysis::run_analysis(
                    &store,
                    graph.as_ref(),
                    &index,
                    params,
                    &mut rng,
                    now,
                )
                .await
            })?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(())
        }
        Command::Kmeans(a) => {
            let store = a.out.join(&a.store);
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
            let report =
                chaoslab::analytics::kmeans::run_job(&store, &a.out.join("spark"), &stamp, a.k, a.seed)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report.result.is_none() {
                anyhow::bail!(
                    "{} holds {} usable records; k-means needs at least {}",
                    store.display(),
                    report.files - report.skipped,
                    a.k
                );
            }
            Ok(())
        }
        Command::Load(a) => {
            let client = ApiClient::remote(&a.url, Duration::from_secs(10))?;
            let plan = LoadGeneratorConfig::plan(a.users, a.orders, a.delay, a.initial_delay);
            let seed = a.seed.map_or_else(Seed::from_entropy, Seed);
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let report =
                rt.block_on(run_users(client, &plan, seed.shared_stream("component:OCTILLERY"), None, None));
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report.placed == 0 && report.failed > 0 {
                anyhow::bail!("no order was placed at {}", a.url);
            }
            Ok(())
        }
        Command::Dataset { command: DatasetCommand::Synth { seed, rows, out } } => {
            let text = synthesize(&SynthParams { seed, rows, ..SynthParams::default() });
            match out {
                Some(path) => {
                    let tmp = path.with_extension("csv.tmp");
                    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
                    std::fs::rename(&tmp, &path)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        Command::Dataset { command: DatasetCommand::Check { file } } => {
            let ds = Dataset::load(&file)?;
            let none = ds
                .rows
                .iter()
                .filter(|r| r.humidity_value().is_none() || r.temperature_value().is_none())
                .count();
            println!(
                "{}: {} rows, {} devices, {} rows with None values",
                file.display(),
                ds.rows.len(),
                ds.devices().len(),
                none
            );
            for (device, rows) in ds.by_device() {
                println!("  {device}: {} rows", rows.len());
            }
            Ok(())
        }
        Command::Flow { command: FlowCommand::Check { file } } => {
            let flow = catalog::load_flow(&file)?;
            for w in &flow.warnings {
                println!("{w}");
            }
            println!("{}: pipeline '{}' is valid", file.display(), flow.pipeline.name);
            for name in flow.start_order() {
                let entry = &flow.components[name];
                let instances = entry.config.instances(name);
                if instances.len() == 1 && instances[0] == name {
                    println!("  component {name}: {}", entry.kind());
                } else {
                    println!("  component {name}: {} ({})", entry.kind(), instances.join(", "));
                }
            }
            for (from, to) in flow.edges() {
                println!("  link {from}->{to}");
            }
            Ok(())
        }
        Command::Flow { command: FlowCommand::Kinds } => {
            for k in catalog::KINDS {
                println!("{}", k.kind);
            }
            Ok(())
        }
        Command::Swarm(a) => {
            let seeds = chaoslab::runner::swarm::parse_seeds(&a.seeds).map_err(anyhow::Error::msg)?;
            let jobs = a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let base = a.pipeline.run(a.pipeline.flow()?);
            let outcomes = chaoslab::runner::swarm::run(&base, &seeds, a.duration, &a.pipeline.out, jobs)?;
            let mut hold = 0;
            let flow_arg =
                a.pipeline.flow.as_ref().map(|f| format!(" --flow {}", f.display())).unwrap_or_default();
            let for_arg = humantime::format_duration(a.duration);
            for o in &outcomes {
                if o.holds() {
                    hold += 1;
                    continue;
                }
                println!(
                    "seed {}: {} broken invariant(s) after {} faults",
                    o.seed,
                    o.problems.len(),
                    o.schedule.len()
                );
                for p in &o.problems {
                    println!("  {p}");
                }
                println!("  reproduce: chaoslab swarm --seeds {} --for {for_arg}{flow_arg}", o.seed);
            }
            println!("{hold}/{} seeds hold", outcomes.len());
            if hold == outcomes.len() { Ok(()) } else { Err(Exit(1).into()) }
        }
        Command::Bench { command: BenchCommand::Pipeline { records, messages } } => {
            chaoslab::bench::pipeline(records, messages)
        }
        Command::Bench { command: BenchCommand::Mqtt { messages, publishers, qos, no_peer } } => {
            chaoslab::bench::mqtt::run(&chaoslab::bench::mqtt::MqttBench {
                messages,
                publishers,
                qos,
                peer: !no_peer,
            })
        }
        Command::Bench { command: BenchCommand::Orders { requests, concurrency, sim_orders, peer } } => {
            chaoslab::bench::orders(requests, concurrency, sim_orders.max(1), peer.as_deref())
        }
        Command::Bench {
            command: BenchCommand::Soak { duration, every, rate_ms, no_orders, without, trace },
        } => {
            let every = every.max(Duration::from_millis(100));
            chaoslab::bench::soak::run(duration, every, rate_ms, !no_orders, &without, trace)
        }
        Command::Bench { command: BenchCommand::Store { records, files_records } } => {
            chaoslab::bench::store::run(records.max(2), files_records)
        }
        Command::Bench { command: BenchCommand::Mining { events, sim_for } } => {
            chaoslab::bench::mining::run(events.max(1), sim_for)
        }
    }
}
