//! Command-line pieces shared by several commands: the pipeline options (`run`, `experiment run`) and
//! the experiment and fault commands.

pub mod campaign;
pub mod experiment;
pub mod fault;
pub mod hdfs;
pub mod mesh;
pub mod progress;
pub mod serve;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use chaoslab::bus::kafka_cluster::KafkaClusterConfig;
use chaoslab::catalog;
use chaoslab::kernel::trace::TraceLevel;
use chaoslab::orders::fraud_detector::{FraudDetectorConfig, PoisonMode};
use chaoslab::orders::load_generator::LoadGeneratorConfig;
use chaoslab::orders::order_api::PublishMode;
use chaoslab::orders::order_store::OrderStoreConfig;
use chaoslab::runner::Run;
use chaoslab::topology::flow::Flow;

/// What pipeline to run and how.
#[derive(Args, Clone, Debug)]
pub struct PipelineArgs {
    /// Root seed (sim default 0; live default random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output directory (trace, index, file store, flat file, k-means results).
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Pipeline definition (default: the built-in flows/reference.toml).
    #[arg(long)]
    pub flow: Option<PathBuf>,
    /// Sensor CSV in GNFUV format (device_id,humidity,temperature,time).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Override the sensor's publish interval in milliseconds (0 = as fast as possible; in sim, 64 records per
    /// virtual millisecond).
    #[arg(long)]
    pub rate_ms: Option<u64>,
    /// What the trace records: every record at every hop, or only lifecycle events (states, faults, drops, windows).
    #[arg(long, value_enum, default_value = "records")]
    pub trace: TraceLevel,
    /// Order store: postgres://user:pass@host/db or sqlite://path (default: <out>/orders.db).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Run without OCTILLERY's load.
    #[arg(long)]
    pub no_load: bool,
    /// OCTILLERY users placing orders in parallel (reference: 5).
    #[arg(long)]
    pub load_users: Option<u32>,
    /// Orders per user (reference: 1000).
    #[arg(long)]
    pub load_orders: Option<u32>,
    /// Pause after each order (reference: 2s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub load_delay: Option<Duration>,
    /// How the API publishes new orders: direct (the reference's dual write) or outbox.
    #[arg(long, value_enum)]
    pub publish: Option<PublishMode>,
    /// What the fraud detector does with an unparsable message: retry (the reference) or dlq.
    #[arg(long, value_enum)]
    pub poison: Option<PoisonMode>,
    /// Run the IoT path only, without the order services.
    #[arg(long)]
    pub no_orders: bool,
    /// How HADOOP keeps its records: segments (append-only segment files, the default) or files (one real
    /// file per record, as NiFi's PutHDFS writes them).
    #[arg(long, value_enum)]
    pub hdfs_layout: Option<chaoslab::sinks::file_store::Layout>,
    /// Run the order services on a real Kafka cluster (host:port,…) instead of the embedded bus (needs the
    /// `kafka` build feature).
    #[arg(long)]
    pub kafka_brokers: Option<String>,
}

impl PipelineArgs {
    /// The flow with these options applied to its components.
    pub fn flow(&self) -> anyhow::Result<Flow> {
        let mut flow = match &self.flow {
            Some(p) => catalog::load_flow(p)?,
            None => catalog::reference_flow()?,
        };
        if self.no_orders {
            // Every order service and the monitoring stack name the bus or the store: removing those
            // removes them.
            let mut gone: Vec<String> = flow.each::<KafkaClusterConfig>().map(|(n, _)| n.clone()).collect();
            gone.extend(flow.each::<OrderStoreConfig>().map(|(n, _)| n.clone()));
            flow.without(&gone.iter().map(String::as_str).collect::<Vec<_>>());
        }
        if self.no_load {
            let loads: Vec<String> = flow.each::<LoadGeneratorConfig>().map(|(n, _)| n.clone()).collect();
            flow.without(&loads.iter().map(String::as_str).collect::<Vec<_>>());
        }
        flow.configure::<LoadGeneratorConfig>(|l| {
            if let Some(n) = self.load_users {
                l.users = n;
            }
            if let Some(n) = self.load_orders {
                l.orders = n;
            }
            if let Some(d) = self.load_delay {
                l.delay = d;
            }
        });
        if let Some(p) = self.publish {
            chaoslab::orders::outbox_relay::set_publish(&mut flow, p);
        }
        if let Some(p) = self.poison {
            flow.configure::<FraudDetectorConfig>(|d| d.poison = p);
        }
        if let Some(layout) = self.hdfs_layout {
            flow.configure::<chaoslab::sinks::file_store::FileStoreConfig>(|s| s.layout = layout);
        }
        if let Some(servers) = &self.kafka_brokers {
            flow.configure::<KafkaClusterConfig>(|k| k.bootstrap = Some(servers.clone()));
        }
        flow.validate()?;
        Ok(flow)
    }

    /// A run of `flow` with these options.
    pub fn run(&self, flow: Flow) -> Run {
        let mut run = Run::new(flow)
            .out(&self.out)
            .trace_level(self.trace)
            .command(chaoslab::executions::this_command());
        if let Some(seed) = self.seed {
            run = run.seed(seed);
        }
        if let Some(path) = &self.dataset {
            run = run.dataset(path);
        }
        if let Some(rate) = self.rate_ms {
            run = run.rate_ms(rate);
        }
        if let Some(url) = &self.database_url {
            run = run.database_url(url);
        }
        run
    }
}
