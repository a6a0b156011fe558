//! `kmeans` (`SPARK`): the k-means batch job over what a `file-store` (`HADOOP`) holds, on a schedule and
//! at the end of a run; the algorithm, the store scan and the output files are in [`model`].
//!
//! Like `kmeans_sensors.py`: read every stored record, keep humidity and temperature, `KMeans(k=2,
//! seed=1)`, write `predictions_<time>.csv`, and report the centres and the silhouette score — here as
//! files, metrics and a trace event. The read goes through the `HADOOP->SPARK` link, so a partition or
//! latency there fails or slows the job.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

pub mod model;

use std::time::Duration;

use prometheus::{Gauge, GaugeVec, IntCounterVec};
use serde::{Deserialize, Serialize};
use serde_json::json;

use self::model::{FitParams, KMeansResult};
use crate::kernel::component::Ctx;
use crate::kernel::metrics::{MetricScope, MetricsError};
use crate::sinks::file_store::StoreRoot;
use crate::topology::BuildCx;
use crate::topology::check::CheckCx;
use crate::topology::component::{ComponentKind, Hop, Reference};
use crate::transport::link::Link;

/// `kind = "kmeans"`.
#[derive(Clone, Debug, Deserialize)]
pub struct KmeansConfig {
    /// File-store component to read.
    pub input: String,
    /// Clusters.
    #[serde(default = "default_k")]
    pub k: usize,
    /// Seed of the k-means initialisation (Spark's `seed=1`).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How often the job runs; it also runs once at the end of a run.
    #[serde(default = "five_minutes", with = "humantime_serde")]
    pub every: Duration,
    /// Output directory under the run's output directory.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
}

fn default_k() -> usize {
    2
}
fn default_seed() -> u64 {
    1
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}
fn default_dir() -> PathBuf {
    PathBuf::from("spark")
}

impl ComponentKind for KmeansConfig {
    const KIND: &'static str = "kmeans";
    const NAMESPACE: &'static str = "iot";

    fn references(&self) -> Vec<Reference<'_>> {
        vec![Reference::new("input", &self.input, &["file-store"], Hop::From)]
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.require(self.k > 0, "k", "must be at least 1");
        cx.require(!self.every.is_zero(), "every", "must be more than 0");
        cx.relative_path("dir", &self.dir);
    }

    /// Provides its [`SparkProbe`] (the summary's k-means results).
    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let StoreRoot(store) = cx.handle(&self.input)?;
        let out_dir = cx.out_path(&self.dir);
        let probe = SparkProbe::register(&cx.metrics(name))?;
        cx.provide(name, probe.clone());
        let read = cx.link(&self.input, name)?;
        let cfg = self.clone();
        cx.add(name, move |ctx| {
            run(ctx, cfg.clone(), store.clone(), out_dir.clone(), read.clone(), probe.clone())
        })
    }
}

/// What one job run produced.
#[derive(Clone, Debug, Serialize)]
pub struct JobReport {
    /// Stored files read.
    pub files: usize,
    /// Records without numeric values, skipped.
    pub skipped: usize,
    /// The model, when there were enough points.
    pub result: Option<KMeansResult>,
    /// Files written.
    pub outputs: Vec<PathBuf>,
}

/// Runs the job once: scan `store`, fit, write outputs under `out_dir` stamped with `stamp`.
pub fn run_job(store: &Path, out_dir: &Path, stamp: &str, k: usize, seed: u64) -> anyhow::Result<JobReport> {
    let scan = model::scan_store(store)?;
    let cfg = FitParams { k, seed, ..FitParams::default() };
    if scan.points.len() < k {
        return Ok(JobReport { files: scan.files, skipped: scan.skipped, result: None, outputs: vec![] });
    }
    let result = model::fit(&scan.points, &cfg)?;
    let outputs = model::write_outputs(out_dir, stamp, &scan.points, &result)?;
    Ok(JobReport { files: scan.files, skipped: scan.skipped, result: Some(result), outputs })
}

/// The job's metrics and its latest result.
#[derive(Clone)]
pub struct SparkProbe {
    runs: IntCounterVec,
    silhouette: Gauge,
    centre: GaugeVec,
    latest: Arc<Mutex<Option<JobReport>>>,
    files_seen: Arc<std::sync::atomic::AtomicU64>,
}

impl SparkProbe {
    /// Registers `spark_kmeans_runs_total{outcome}`, `spark_kmeans_silhouette` and
    /// `spark_kmeans_centre{cluster,feature}`.
    pub fn register(m: &MetricScope) -> Result<SparkProbe, MetricsError> {
        let runs = m.counter_vec("spark_kmeans_runs_total", "k-means job runs.", &["outcome"])?;
        let silhouette = m.float_gauge("spark_kmeans_silhouette", "Silhouette score of the last model.")?;
        let centre = m.float_gauge_vec(
            "spark_kmeans_centre",
            "Cluster centres of the last model.",
            &["cluster", "feature"],
        )?;
        Ok(SparkProbe {
            runs,
            silhouette,
            centre,
            latest: Default::default(),
            files_seen: Default::default(),
        })
    }

    /// The latest successful report.
    pub fn latest(&self) -> Option<JobReport> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn record(&self, report: &JobReport) {
        if let Some(r) = &report.result {
            if let Some(s) = r.silhouette {
                self.silhouette.set(s);
            }
            for (i, c) in r.centres.iter().enumerate() {
                self.centre.with_label_values(&[&i.to_string(), "humidity"]).set(c[0]);
                self.centre.with_label_values(&[&i.to_string(), "temperature"]).set(c[1]);
            }
        }
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(report.clone());
    }
}

/// One scheduled or final run inside the pipeline: gate on the link, run, record, trace.
pub async fn run_once(
    ctx: &Ctx,
    cfg: &KmeansConfig,
    store: &Path,
    out_dir: &Path,
    link: &Link,
    probe: &SparkProbe,
) {
    if let Err(e) = link.gate().await {
        probe.runs.with_label_values(&["failed"]).inc();
        tracing::error!(component = %ctx.name, "k-means job failed: cannot read the store: {e}");
        ctx.trace("kmeans.failed", &json!({"error": e.to_string()}));
        return;
    }
    let stamp = ctx.clock.now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let (store, out_dir, k, seed) = (store.to_path_buf(), out_dir.to_path_buf(), cfg.k, cfg.seed);
    let job = move || run_job(&store, &out_dir, &stamp, k, seed);
    // In sim mode the job runs inline: virtual time stands still while it computes, which keeps runs
    // reproducible. In live mode it must not block the runtime's worker.
    let outcome = if ctx.clock.is_sim() {
        job()
    } else {
        tokio::task::spawn_blocking(job).await.unwrap_or_else(|e| Err(anyhow::anyhow!("job panicked: {e}")))
    };
    match outcome {
        Ok(report) => {
            probe.runs.with_label_values(&["ok"]).inc();
            // Each run rereads the whole store; count each stored record once, and each model written once.
            let files = report.files as u64;
            let seen = probe.files_seen.swap(files, std::sync::atomic::Ordering::SeqCst);
            ctx.metrics.records_in.inc_by(files.saturating_sub(seen));
            if report.result.is_some() {
                ctx.metrics.records_out.inc();
            }
            let summary = match &report.result {
                Some(r) => json!({"files": report.files, "skipped": report.skipped, "points": r.points,
                                  "centres": r.centres, "sizes": r.cluster_sizes, "silhouette": r.silhouette}),
                None => json!({"files": report.files, "skipped": report.skipped, "points": 0}),
            };
            tracing::info!(component = %ctx.name, "k-means: {summary}");
            ctx.trace("kmeans.result", &summary);
            ctx.app_log("spark-kmeans.ml.app.dataAsset", crate::kernel::logsink::object(summary));
            probe.record(&report);
        }
        Err(e) => {
            probe.runs.with_label_values(&["failed"]).inc();
            tracing::error!(component = %ctx.name, "k-means job failed: {e:#}");
            ctx.trace("kmeans.failed", &json!({"error": format!("{e:#}")}));
        }
    }
}

/// Runs the job every `cfg.every` until stopped, and once more when stopped gracefully.
pub async fn run(
    ctx: Ctx,
    cfg: KmeansConfig,
    store: PathBuf,
    out_dir: PathBuf,
    link: Arc<Link>,
    probe: SparkProbe,
) -> anyhow::Result<()> {
    ctx.health.set_ready(true, "scheduled");
    let mut next = tokio::time::Instant::now() + cfg.every;
    loop {
        let stopping = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => true,
            _ = tokio::time::sleep_until(next) => false,
        };
        // A graceful stop (the end of a run) runs the job one last time over everything stored.
        run_once(&ctx, &cfg, &store, &out_dir, &link, &probe).await;
        if stopping {
            return Ok(());
        }
        next += cfg.every;
    }
}
