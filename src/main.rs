//! The `chaoslab` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use chaoslab::kernel::seed::Seed;
use chaoslab::kernel::trace::TraceLevel;
use chaoslab::orders::http::ApiClient;
use chaoslab::orders::load::run_users;
use chaoslab::runner::{LiveRun, SimRun};
use chaoslab::sources::dataset::Dataset;
use chaoslab::sources::synth::{SynthParams, synthesize};
use chaoslab::topology::flow::{Flow, LoadSection, PoisonMode, PublishMode};
use chaoslab::transport::mqtt::client::BrokerUrl;

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
    /// Root seed (sim default 0; live default random).
    #[arg(long)]
    seed: Option<u64>,
    /// How long to run (e.g. 30m). Required with --sim; live runs until Ctrl-C without it.
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Output directory (trace, index, file store, flat file, k-means results).
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Pipeline definition (default: the built-in flows/reference.toml).
    #[arg(long)]
    flow: Option<PathBuf>,
    /// Sensor CSV in GNFUV format (device_id,humidity,temperature,time).
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Override the sensor's publish interval in milliseconds (0 = as fast as possible).
    #[arg(long)]
    rate_ms: Option<u64>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// What the trace records: every record at every hop, or only lifecycle events (states, faults, drops, windows).
    #[arg(long, value_enum, default_value = "records")]
    trace: TraceLevel,
    /// Live: use this external MQTT broker (mqtt://host:port) instead of the embedded one.
    #[arg(long)]
    mqtt_url: Option<BrokerUrl>,
    /// Live: where the embedded MQTT broker listens (default from the flow: 127.0.0.1:1883).
    #[arg(long)]
    mqtt_listen: Option<SocketAddr>,
    /// Live: where the HTTP API listens (default from the flow: 127.0.0.1:8080).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Order store: postgres://user:pass@host/db or sqlite://path (default: <out>/orders.db).
    #[arg(long)]
    database_url: Option<String>,
    /// Run without OCTILLERY's load.
    #[arg(long)]
    no_load: bool,
    /// OCTILLERY users placing orders in parallel (reference: 5).
    #[arg(long)]
    load_users: Option<u32>,
    /// Orders per user (reference: 1000).
    #[arg(long)]
    load_orders: Option<u32>,
    /// Pause after each order (reference: 2s).
    #[arg(long, value_parser = humantime::parse_duration)]
    load_delay: Option<Duration>,
    /// How the API publishes new orders: direct (the reference's dual write) or outbox.
    #[arg(long, value_enum)]
    publish: Option<PublishMode>,
    /// What the fraud detector does with an unparsable message: retry (the reference) or dlq.
    #[arg(long, value_enum)]
    poison: Option<PoisonMode>,
    /// Run the IoT path only, without the order services.
    #[arg(long)]
    no_orders: bool,
    /// Run the order services on a real Kafka cluster (host:port,…) instead of the embedded bus (needs the
    /// `kafka` build feature).
    #[arg(long)]
    kafka_brokers: Option<String>,
}

impl RunArgs {
    /// Applies the order-service options to a flow.
    fn apply(&self, flow: &mut Flow) {
        let o = &mut flow.orders;
        if self.no_orders {
            o.enabled = false;
        }
        if self.no_load {
            o.load.enabled = false;
        }
        if let Some(n) = self.load_users {
            o.load.users = n;
        }
        if let Some(n) = self.load_orders {
            o.load.orders = n;
        }
        if let Some(d) = self.load_delay {
            o.load.delay = d;
        }
        if let Some(p) = self.publish {
            o.publish = p;
        }
        if let Some(p) = self.poison {
            o.poison = p;
        }
        if let Some(servers) = &self.kafka_brokers {
            flow.bus.bootstrap = Some(servers.clone());
        }
    }
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
    /// Parse and check a flow file, then list its components and links.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Sim throughput and time compression, live MQTT throughput, start-up time, memory.
    Pipeline {
        /// Records for the sim throughput run.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Messages for the live MQTT run.
        #[arg(long, default_value_t = 50_000)]
        messages: u64,
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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let sim = matches!(&cli.command, Command::Run(a) if a.sim);
    init_logging(if sim { "warn" } else { "info" });
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},rumqttd=warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(chaoslab::kernel::clock::LogTime)
        .with_writer(std::io::stderr)
        .init();
}

fn load_flow(path: &Option<PathBuf>) -> anyhow::Result<Flow> {
    Ok(match path {
        Some(p) => Flow::load(p)?,
        None => Flow::reference()?,
    })
}

fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(a) => {
            let mut flow = load_flow(&a.flow)?;
            a.apply(&mut flow);
            let summary = if a.sim {
                let duration = a.duration.context("--sim needs --for, e.g. --for 30m")?;
                SimRun::new(flow, &a.out)
                    .seed(a.seed.unwrap_or(0))
                    .dataset(a.dataset)
                    .rate_ms(a.rate_ms)
                    .trace_level(a.trace)
                    .database_url(a.database_url)
                    .run_for(duration)?
            } else {
                LiveRun::new(flow, &a.out)
                    .seed(a.seed)
                    .dataset(a.dataset)
                    .rate_ms(a.rate_ms)
                    .trace_level(a.trace)
                    .database_url(a.database_url)
                    .mqtt_url(a.mqtt_url)
                    .mqtt_listen(a.mqtt_listen)
                    .http_listen(a.http_listen)
                    .run_blocking(a.duration)?
            };
            if a.json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!("{}", summary.render());
            }
            Ok(())
        }
        Command::Kmeans(a) => {
            let store = a.out.join(&a.store);
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
            let report =
                chaoslab::analytics::spark::run_job(&store, &a.out.join("spark"), &stamp, a.k, a.seed)?;
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
            let plan = LoadSection {
                enabled: true,
                users: a.users,
                orders: a.orders,
                delay: a.delay,
                initial_delay: a.initial_delay,
            };
            let seed = a.seed.map_or_else(Seed::from_entropy, Seed);
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let report =
                rt.block_on(run_users(client, &plan, seed.shared_stream("component:OCTILLERY"), None));
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
            let flow = Flow::load(&file)?;
            println!("{}: pipeline '{}' is valid", file.display(), flow.pipeline.name);
            for (name, c) in &flow.components {
                println!("  component {name}: {}", c.kind());
            }
            for (from, to) in flow.edges() {
                println!("  link {from}->{to}");
            }
            Ok(())
        }
        Command::Bench { command: BenchCommand::Pipeline { records, messages } } => {
            chaoslab::bench::pipeline(records, messages)
        }
        Command::Bench { command: BenchCommand::Orders { requests, concurrency, sim_orders } } => {
            chaoslab::bench::orders(requests, concurrency, sim_orders.max(1))
        }
    }
}
