//! `SPARK`: the k-means batch job over what `HADOOP` stores, on a schedule and on demand.
//!
//! Like `kmeans_sensors.py`: read every stored record, keep humidity and temperature, `KMeans(k=2,
//! seed=1)`, write `predictions_<time>.csv`, and report the centres and the silhouette score — here as
//! files, metrics and a trace event. The read goes through the `HADOOP->SPARK` link, so a partition or
//! latency there fails or slows the job.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{Gauge, GaugeVec, IntCounterVec, Opts};
use serde::Serialize;
use serde_json::json;

use super::kmeans::{self, KMeansConfig, KMeansResult};
use crate::kernel::component::Ctx;
use crate::kernel::metrics::{Metrics, MetricsError};
use crate::topology::flow::KmeansConfig;
use crate::transport::link::Link;

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
    let scan = kmeans::scan_store(store)?;
    let cfg = KMeansConfig { k, seed, ..KMeansConfig::default() };
    if scan.points.len() < k {
        return Ok(JobReport { files: scan.files, skipped: scan.skipped, result: None, outputs: vec![] });
    }
    let result = kmeans::fit(&scan.points, &cfg)?;
    let outputs = kmeans::write_outputs(out_dir, stamp, &scan.points, &result)?;
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
    pub fn register(metrics: &Metrics) -> Result<SparkProbe, MetricsError> {
        let runs =
            IntCounterVec::new(Opts::new("spark_kmeans_runs_total", "k-means job runs."), &["outcome"])?;
        let silhouette =
            Gauge::with_opts(Opts::new("spark_kmeans_silhouette", "Silhouette score of the last model."))?;
        let centre = GaugeVec::new(
            Opts::new("spark_kmeans_centre", "Cluster centres of the last model."),
            &["cluster", "feature"],
        )?;
        metrics.register(&runs)?;
        metrics.register(&silhouette)?;
        metrics.register(&centre)?;
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
            ctx.app_log("spark-kmeans.ml.app.dataAsset", crate::monitoring::stack::object(summary));
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
