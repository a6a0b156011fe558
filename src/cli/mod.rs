//! Command-line pieces shared by several commands: the pipeline options (`run`, `experiment run`) and
//! the experiment and fault commands.

pub mod experiment;
pub mod fault;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use chaoslab::kernel::trace::TraceLevel;
use chaoslab::runner::SimRun;
use chaoslab::topology::flow::{Flow, PoisonMode, PublishMode};

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
    /// Override the sensor's publish interval in milliseconds (0 = as fast as possible).
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
    /// Run the order services on a real Kafka cluster (host:port,…) instead of the embedded bus (needs the
    /// `kafka` build feature).
    #[arg(long)]
    pub kafka_brokers: Option<String>,
}

impl PipelineArgs {
    /// The flow with these options applied.
    pub fn flow(&self) -> anyhow::Result<Flow> {
        let mut flow = match &self.flow {
            Some(p) => Flow::load(p)?,
            None => Flow::reference()?,
        };
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
        Ok(flow)
    }

    /// A sim run of `flow` with these options.
    pub fn sim(&self, flow: Flow) -> SimRun {
        SimRun::new(flow, &self.out)
            .seed(self.seed.unwrap_or(0))
            .dataset(self.dataset.clone())
            .rate_ms(self.rate_ms)
            .trace_level(self.trace)
            .database_url(self.database_url.clone())
    }
}
