//! `chaoslab bench store`: `HADOOP` and `SPARK` over many records.
//!
//! 1. Writes per wall second into a `file-store` in each layout (`segments`, and `files` — NiFi's one file
//!    per record), batches of 1 024 as the component commits them.
//! 2. The `SPARK` job end to end (read the store, fit `KMeans(k=2, seed=1)` with Spark's defaults — one
//!    initialisation, at most 20 iterations, tolerance 1e-4 —, silhouette, write the predictions) over
//!    each store.
//! 3. scikit-learn's `KMeans(n_clusters=2, random_state=1, n_init=1, max_iter=20, tol=1e-4).fit` (the
//!    same parameters) on the same points already in memory, when a Python with it is found
//!    (`CHAOSLAB_SKLEARN_PYTHON`, or `python3`), and the ratio.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use rand::Rng as _;
use rand::SeedableRng as _;

use crate::sinks::file_store::segments::SegmentWriter;

/// Runs the store benchmarks over `records` records (the `files` layout over at most `files_records`).
pub fn run(records: usize, files_records: usize) -> anyhow::Result<()> {
    println!("chaoslab bench store ({} build)", if cfg!(debug_assertions) { "debug" } else { "release" });
    let dir = super::tempfile_dir()?;
    let payloads = payloads(records, 1);

    super::reset_peak_rss();
    let root = dir.join("segments");
    let started = Instant::now();
    let mut w = SegmentWriter::open(&root, 64 << 20)?;
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(2);
    // The store's names are time-ordered: a record a millisecond, from the reference run's start.
    let start_ms = 1_582_318_800_000;
    for (i, chunk) in payloads.chunks(1024).enumerate() {
        for (j, p) in chunk.iter().enumerate() {
            let ms = start_ms + (i * 1024 + j) as u64;
            w.put("2020-02-21", &crate::kernel::seed::uuid_v7_from(&mut rng, ms).to_string(), p.as_bytes())?;
        }
        w.commit()?;
    }
    drop(w);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "HADOOP segments:   {records} records in {secs:.3} s = {:.0} records/s; {}; peak RSS {}",
        records as f64 / secs,
        disk(&root),
        super::peak_rss_text()
    );

    let files_n = files_records.min(records);
    let files_root = dir.join("files");
    let started = Instant::now();
    for p in &payloads[..files_n] {
        let name = crate::kernel::seed::uuid_from(&mut rng).to_string();
        crate::sinks::file_store::store(&files_root, "2020-02-21", &name, p.as_bytes())?;
    }
    let files_secs = started.elapsed().as_secs_f64();
    println!(
        "HADOOP files:      {files_n} records in {files_secs:.3} s = {:.0} records/s (one file each, as PutHDFS); segments/files = {:.1}x",
        files_n as f64 / files_secs,
        (records as f64 / secs) / (files_n as f64 / files_secs)
    );

    let spark = |store: &Path, label: &str| -> anyhow::Result<f64> {
        let started = Instant::now();
        let report =
            crate::analytics::kmeans::run_job(store, &dir.join(format!("spark-{label}")), "bench", 2, 1)?;
        let secs = started.elapsed().as_secs_f64();
        let silhouette = report.result.as_ref().and_then(|r| r.silhouette).unwrap_or(f64::NAN);
        println!(
            "SPARK over {label:<9} {} records read, fitted, scored and written in {secs:.3} s (silhouette {silhouette:.4})",
            report.files
        );
        Ok(secs)
    };
    let ours = spark(&root, "segments")?;
    spark(&files_root, "files")?;

    match sklearn(&payloads, &dir)? {
        Some(fit) => println!(
            "scikit-learn:      KMeans(n_clusters=2, random_state=1, n_init=1, max_iter=20, tol=1e-4).fit on the same {records} points in memory: {fit:.3} s; SPARK end to end / scikit-learn fit = {:.2}",
            ours / fit
        ),
        None => println!(
            "scikit-learn:      not measured (no Python with scikit-learn; set CHAOSLAB_SKLEARN_PYTHON)"
        ),
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `n` sensor records as the reference's sensor publishes them (values as strings, as GNFUV's CSV has them).
fn payloads(n: usize, seed: u64) -> Vec<String> {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let (h, t) = if rng.gen_bool(0.6) { (25.0, 38.0) } else { (45.0, 27.0) };
            format!(
                r#"{{"device_id":"gnfuv-bench-{}","humidity":"{:.0}","temperature":"{:.0}","time":"2020-02-21T21:{:02}:{:02}.000Z"}}"#,
                i % 4,
                h + rng.gen_range(-4.0..4.0),
                t + rng.gen_range(-3.0..3.0),
                (i / 60) % 60,
                i % 60
            )
        })
        .collect()
}

fn disk(root: &Path) -> String {
    let mut bytes = 0;
    let mut files = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => {
                    bytes += m.len();
                    files += 1;
                }
                Err(_) => {}
            }
        }
    }
    format!("{files} OS files, {:.1} MB on disk", bytes as f64 / 1e6)
}

const PEER: &str = r#"
import sys, time, numpy as np
from sklearn.cluster import KMeans
x = np.loadtxt(sys.argv[1], delimiter=",")
started = time.perf_counter()
KMeans(n_clusters=2, random_state=1, n_init=1, max_iter=20, tol=1e-4).fit(x)
print(time.perf_counter() - started)
"#;

/// scikit-learn's fit time on the points of `payloads`, when a Python with it is around.
fn sklearn(payloads: &[String], dir: &Path) -> anyhow::Result<Option<f64>> {
    let python = std::env::var("CHAOSLAB_SKLEARN_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = std::process::Command::new(&python).args(["-c", "import sklearn"]).output();
    if !has.is_ok_and(|o| o.status.success()) {
        return Ok(None);
    }
    let points = dir.join("points.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&points)?);
    for p in payloads {
        let v: serde_json::Value = serde_json::from_str(p)?;
        let num = |k: &str| v[k].as_str().and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN);
        writeln!(f, "{},{}", num("humidity"), num("temperature"))?;
    }
    f.flush()?;
    drop(f);
    let script = dir.join("peer.py");
    std::fs::write(&script, PEER)?;
    let out = std::process::Command::new(&python).arg(&script).arg(&points).output()?;
    anyhow::ensure!(
        out.status.success(),
        "scikit-learn peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse().ok())
}
