//! `kmeans` (`SPARK`): the k-means batch job over what a `file-store` (`HADOOP`) holds, on a schedule and
//! at the end of a run; the algorithm and the output files are in [`model`], reading the store in
//! [`scan`].
//!
//! The job's memory is bounded whatever the store holds: up to [`SAMPLE_POINTS`] points it fits and labels
//! everything in memory, as Spark would; past that it fits on a seeded uniform sample of that many, then
//! reads the store once more to label every record into the predictions file (cluster sizes and inertia
//! are over every record). A job is cancellable: when its component is stopped while it runs (the final
//! job at shutdown outlasting the supervisor's grace), it stops within a record and writes nothing.
//!
//! Like `kmeans_sensors.py`: read every stored record, keep humidity and temperature, `KMeans(k=2,
//! seed=1)`, write `predictions_<time>.csv`, and report the centres and the silhouette score — here as
//! files, metrics and a trace event. The read goes through the `HADOOP->SPARK` link, so a partition or
//! latency there fails or slows the job.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub mod model;
pub mod scan;

use std::time::Duration;

use prometheus::{Gauge, GaugeVec, IntCounterVec};
use serde::{Deserialize, Serialize};
use serde_json::json;

use self::model::{FitParams, KMeansError, KMeansResult};
pub use self::scan::SAMPLE_POINTS;
use self::scan::ScanLimits;
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

/// Runs the job once: scan `store`, fit, write outputs under `out_dir` stamped with `stamp`; at most
/// [`SAMPLE_POINTS`] points in memory.
pub fn run_job(store: &Path, out_dir: &Path, stamp: &str, k: usize, seed: u64) -> anyhow::Result<JobReport> {
    let cfg = FitParams { k, seed, ..FitParams::default() };
    Ok(run_job_with(store, out_dir, stamp, &cfg, SAMPLE_POINTS, None)?)
}

/// [`run_job`] with the fit's parameters, the most points held in memory, and a flag that stops it.
pub fn run_job_with(
    store: &Path,
    out_dir: &Path,
    stamp: &str,
    cfg: &FitParams,
    sample: usize,
    cancel: Option<&AtomicBool>,
) -> Result<JobReport, KMeansError> {
    let scan = scan::scan_store_with(store, &ScanLimits { sample, seed: cfg.seed, cancel })?;
    let (files, skipped) = (scan.files, scan.skipped);
    if scan.usable < cfg.k {
        return Ok(JobReport { files, skipped, result: None, outputs: vec![] });
    }
    let mut result = model::fit(&scan.points, cfg)?;
    if !scan.sampled() {
        let outputs = model::write_outputs(out_dir, stamp, &scan.points, &result)?;
        return Ok(JobReport { files, skipped, result: Some(result), outputs });
    }
    // Fitted on a sample: label every record, in a second read of the store.
    let mut sizes = vec![0usize; result.centres.len()];
    let mut inertia = 0.0;
    let mut pass = Ok(0);
    let predictions = model::write_predictions(out_dir, stamp, |out| {
        pass = scan::for_each_point(store, files, cancel, &mut |point| {
            let (label, distance) = model::nearest(&result.centres, point);
            sizes[label] += 1;
            inertia += distance;
            model::write_prediction(out, point, label)
        });
        pass.as_ref().map(|_| ()).map_err(|_| std::io::Error::other("the labelling pass failed"))
    });
    let labelled = pass?;
    let predictions = predictions?;
    tracing::info!(
        points = labelled,
        sample = scan.points.len(),
        ?sizes,
        inertia,
        "k-means fitted on a sample, every record labelled"
    );
    result.points = labelled;
    result.cluster_sizes = sizes;
    result.inertia = inertia;
    let centres = model::write_centres(out_dir, stamp, &result)?;
    Ok(JobReport { files, skipped, result: Some(result), outputs: vec![predictions, centres] })
}

/// The job's metrics and its latest result.
#[derive(Clone)]
pub struct SparkProbe {
    runs: IntCounterVec,
    silhouette: Gauge,
    centre: GaugeVec,
    latest: Arc<Mutex<Option<JobReport>>>,
    problem: Arc<Mutex<Option<String>>>,
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
            problem: Default::default(),
            files_seen: Default::default(),
        })
    }

    /// The latest successful report.
    pub fn latest(&self) -> Option<JobReport> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Why the last run of the job gave no model, when it failed or was cut off (cleared by a run that
    /// finishes): so a summary never blames too few records for a job that did not finish.
    pub fn problem(&self) -> Option<String> {
        self.problem.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_problem(&self, problem: Option<String>) {
        *self.problem.lock().unwrap_or_else(PoisonError::into_inner) = problem;
    }

    fn record(&self, report: &JobReport) {
        self.set_problem(None);
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
        probe.set_problem(Some(format!("its last job could not read the store: {e}")));
        return;
    }
    let stamp = ctx.clock.now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let (store, out_dir) = (store.to_path_buf(), out_dir.to_path_buf());
    let params = FitParams { k: cfg.k, seed: cfg.seed, ..FitParams::default() };
    // Raised when this future is dropped: the supervisor gave up waiting (a stop outlasting its grace), and
    // the blocking job, which an abort cannot reach, stops at its next record.
    let cancel = CancelOnDrop::new(probe.clone());
    let flag = cancel.flag.clone();
    let job = move || {
        run_job_with(&store, &out_dir, &stamp, &params, SAMPLE_POINTS, Some(&flag))
            .map_err(anyhow::Error::from)
    };
    // In sim mode the job runs inline: virtual time stands still while it computes, which keeps runs
    // reproducible. In live mode it must not block the runtime's worker.
    let outcome = if ctx.clock.is_sim() {
        job()
    } else {
        tokio::task::spawn_blocking(job).await.unwrap_or_else(|e| Err(anyhow::anyhow!("job panicked: {e}")))
    };
    cancel.disarm();
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
            probe.set_problem(Some(format!("its last job failed: {e:#}")));
        }
    }
}

/// Raises its flag when dropped unless disarmed, and says so.
struct CancelOnDrop {
    flag: Arc<AtomicBool>,
    armed: bool,
    probe: SparkProbe,
}

impl CancelOnDrop {
    fn new(probe: SparkProbe) -> CancelOnDrop {
        CancelOnDrop { flag: Arc::new(AtomicBool::new(false)), armed: true, probe }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.flag.store(true, Ordering::Relaxed);
            self.probe.set_problem(Some("its last job was cut off: SPARK was stopped while it ran".into()));
            tracing::warn!("k-means job cut off: SPARK was stopped while it ran; its last model stands");
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Two blobs of records, `n` in all, around (20, 40) and (60, 20), every seventh record unusable.
    fn two_blobs(root: &Path, n: usize) {
        let mut w = crate::sinks::file_store::segments::SegmentWriter::open(root, 1 << 20).unwrap();
        for i in 0..n {
            let (h, t) = if i % 3 == 0 { (60.0, 20.0) } else { (20.0, 40.0) };
            let jitter = (i % 11) as f64 * 0.5 - 2.5;
            let body = if i % 7 == 6 {
                r#"{"humidity":"None"}"#.to_owned()
            } else {
                format!(r#"{{"humidity":"{}","temperature":{}}}"#, h + jitter, t - jitter)
            };
            w.put("2020-02-18", &format!("{i:05}"), body.as_bytes()).unwrap();
        }
        w.commit().unwrap();
    }

    fn predictions(path: &Path) -> Vec<([f64; 2], usize)> {
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("humidity,temperature,prediction"));
        lines
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                ([f[0].parse().unwrap(), f[1].parse().unwrap()], f[2].parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn a_store_past_the_sample_is_fitted_on_the_sample_and_labelled_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        two_blobs(&store, 700);
        let cfg = FitParams::default();
        let whole = run_job_with(&store, &dir.path().join("whole"), "a", &cfg, usize::MAX, None).unwrap();
        let sampled = run_job_with(&store, &dir.path().join("sampled"), "a", &cfg, 60, None).unwrap();
        let (w, s) = (whole.result.unwrap(), sampled.result.unwrap());
        assert_eq!((w.points, w.fitted_on, s.points, s.fitted_on), (600, 600, 600, 60));
        assert_eq!((sampled.files, sampled.skipped), (700, 100));
        for (a, b) in w.centres.iter().zip(&s.centres) {
            assert!(
                (a[0] - b[0]).abs() < 1.0 && (a[1] - b[1]).abs() < 1.0,
                "{:?} vs {:?}",
                w.centres,
                s.centres
            );
        }

        // Every usable record is in the predictions, in store order, nearest its centre; the sizes and the
        // inertia are over all of them.
        let rows = predictions(&sampled.outputs[0]);
        assert_eq!(rows.len(), 600);
        assert_eq!(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            predictions(&whole.outputs[0]).iter().map(|r| r.0).collect::<Vec<_>>()
        );
        let mut sizes = vec![0; 2];
        let mut inertia = 0.0;
        for (p, label) in &rows {
            let d: Vec<f64> =
                s.centres.iter().map(|c| (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2)).collect();
            assert!(d[*label] <= d[1 - label], "{p:?} labelled {label}");
            sizes[*label] += 1;
            inertia += d[*label];
        }
        assert_eq!(s.cluster_sizes, sizes);
        assert!((s.inertia - inertia).abs() < 1e-6 * inertia, "{} vs {inertia}", s.inertia);
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&sampled.outputs[1]).unwrap()).unwrap();
        assert_eq!((doc["points"].as_u64(), doc["fitted_on"].as_u64()), (Some(600), Some(60)));

        // The same seed gives the same files.
        let again = run_job_with(&store, &dir.path().join("again"), "a", &cfg, 60, None).unwrap();
        for (a, b) in again.outputs.iter().zip(&sampled.outputs) {
            assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
        }
    }

    #[test]
    fn a_cancelled_job_writes_nothing_and_a_dropped_guard_cancels() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        two_blobs(&store, 100);
        let probe =
            SparkProbe::register(&crate::kernel::metrics::Metrics::new().unwrap().scope("SPARK")).unwrap();
        let guard = CancelOnDrop::new(probe.clone());
        let flag = guard.flag.clone();
        drop(guard);
        assert!(flag.load(Ordering::Relaxed), "dropping the guard raises the flag");
        assert!(probe.problem().is_some_and(|p| p.contains("cut off")), "and says why there is no new model");
        let out = dir.path().join("out");
        let job = run_job_with(&store, &out, "a", &FitParams::default(), 10, Some(&flag));
        assert!(matches!(job, Err(KMeansError::Cancelled)), "{job:?}");
        assert!(!out.exists(), "nothing written");

        let kept = CancelOnDrop::new(probe.clone());
        let flag = kept.flag.clone();
        kept.disarm();
        assert_eq!(Arc::strong_count(&flag), 1, "a disarmed guard lets go of the flag");
        assert!(!flag.load(Ordering::Relaxed), "a disarmed guard leaves the flag down");
    }
}
