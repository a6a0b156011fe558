//! Batch analytics of the `SPARK` component: k-means over the `[humidity, temperature]` of the records held by
//! the HDFS-like file store, as the reference pipeline's `kmeans_sensors.py` does with Spark MLlib
//! (`KMeans(k=2, seed=1)`, predictions to `predictions_<ts>.csv`, centres and silhouette reported).
//!
//! This module owns the fit (linfa KMeans++ seeded with `Xoshiro256Plus`, centres put in a canonical
//! order), the silhouette score and writing the outputs atomically; reading the store is in
//! [`scan`](super::scan). It reads no clock, uses no OS randomness and iterates no hash map, so the same points and
//! seed always give a bit-identical result, in sim mode as in live mode.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use linfa::DatasetBase;
use linfa::traits::{Fit, Predict};
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::Array2;
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;
use serde::Serialize;

/// What can go wrong in the k-means batch job.
#[derive(Debug, thiserror::Error)]
pub enum KMeansError {
    /// A real I/O failure on a file or directory of the store or of the output directory.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `k` was 0.
    #[error("k-means needs k >= 1")]
    ZeroK,
    /// Fewer points than clusters.
    #[error("k-means with k={k} needs at least {k} points, got {points}")]
    TooFewPoints { k: usize, points: usize },
    /// A point with a NaN or infinite coordinate.
    #[error("point {index} is not finite: {point:?}")]
    NonFinitePoint { index: usize, point: [f64; 2] },
    /// linfa rejected the parameters or could not fit.
    #[error("k-means fit failed")]
    Fit(#[from] linfa_clustering::KMeansError),
    /// The output stamp would not make a plain file name.
    #[error("output stamp {0:?} must be non-empty and contain no path separator")]
    BadStamp(String),
    /// `write_outputs` got a result whose labels do not match the points.
    #[error("result has {labels} labels for {points} points")]
    LabelCount { labels: usize, points: usize },
    /// The job was stopped while it ran (its component stopped); nothing was written.
    #[error("stopped before it finished")]
    Cancelled,
}

/// Parameters of one k-means run; the defaults are the reference job's (`KMeans(k=2, seed=1)`) with
/// the rest of Spark MLlib's defaults: one initialisation (Spark has no `n_init`), at most 20 iterations
/// (`maxIter`), tolerance 1e-4 (`tol`). Spark initialises with k-means||; linfa's KMeans++ is used here.
#[derive(Clone, Debug, PartialEq)]
pub struct FitParams {
    /// Number of clusters.
    pub k: usize,
    /// Seed of the `Xoshiro256Plus` generator that drives KMeans++ initialisation.
    pub seed: u64,
    /// Independent initialisations; the one with the lowest inertia wins.
    pub n_runs: usize,
    /// Iteration cap of each run.
    pub max_iterations: u64,
    /// A run stops when the centres move less than this.
    pub tolerance: f64,
}

impl Default for FitParams {
    fn default() -> Self {
        Self { k: 2, seed: 1, n_runs: 1, max_iterations: 20, tolerance: 1e-4 }
    }
}

/// Outcome of [`fit`]. Centres are sorted by humidity, then temperature, and `labels` (one per point, in
/// input order) index into them, so equal inputs give equal results whatever order linfa found the clusters in.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct KMeansResult {
    /// Number of clusters asked for.
    pub k: usize,
    /// Seed used.
    pub seed: u64,
    /// Number of points clustered (labelled).
    pub points: usize,
    /// Number of points the model was fitted on: `points`, or the size of the sample a large store was
    /// fitted on.
    pub fitted_on: usize,
    /// `[humidity, temperature]` of each centre, sorted. linfa updates centres m_k-means style (the old
    /// centre weighs in as one more point), so they end within about `tolerance` of their cluster means.
    pub centres: Vec<[f64; 2]>,
    /// Cluster of each point fitted on, indexing `centres` (every point's is in the predictions file).
    #[serde(skip)]
    pub labels: Vec<usize>,
    /// Number of points in each cluster (may hold 0 when points coincide).
    pub cluster_sizes: Vec<usize>,
    /// Mean silhouette coefficient (Euclidean; over an evenly spaced sample of at most
    /// [`SILHOUETTE_SAMPLE`] points); `None` when undefined (fewer than two non-empty clusters, or every point
    /// alone in its cluster).
    pub silhouette: Option<f64>,
    /// Sum of squared distances of the points to their centres (Spark's training cost).
    pub inertia: f64,
}

/// Clusters `points` with linfa's KMeans (KMeans++ init, `Xoshiro256Plus::seed_from_u64(cfg.seed)`).
/// Errors if `k == 0`, if there are fewer points than `k`, if a point is not finite, or if linfa rejects
/// the other parameters.
pub fn fit(points: &[[f64; 2]], cfg: &FitParams) -> Result<KMeansResult, KMeansError> {
    if cfg.k == 0 {
        return Err(KMeansError::ZeroK);
    }
    if points.len() < cfg.k {
        return Err(KMeansError::TooFewPoints { k: cfg.k, points: points.len() });
    }
    if let Some(index) = points.iter().position(|p| !p.iter().all(|x| x.is_finite())) {
        return Err(KMeansError::NonFinitePoint { index, point: points[index] });
    }

    let dataset = DatasetBase::from(Array2::from_shape_fn((points.len(), 2), |(i, j)| points[i][j]));
    let model = KMeans::params_with_rng(cfg.k, Xoshiro256Plus::seed_from_u64(cfg.seed))
        .init_method(KMeansInit::KMeansPlusPlus)
        .n_runs(cfg.n_runs)
        .max_n_iterations(cfg.max_iterations)
        .tolerance(cfg.tolerance)
        .fit(&dataset)?;
    let raw_labels = model.predict(dataset.records());
    let raw_centres: Vec<[f64; 2]> = model.centroids().rows().into_iter().map(|c| [c[0], c[1]]).collect();

    // Canonical order: by humidity, then temperature; `rank[old]` is the new index of linfa's centre `old`.
    let mut order: Vec<usize> = (0..raw_centres.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (raw_centres[a], raw_centres[b]);
        a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1]))
    });
    let mut rank = vec![0; order.len()];
    for (new, &old) in order.iter().enumerate() {
        rank[old] = new;
    }
    let centres: Vec<[f64; 2]> = order.iter().map(|&old| raw_centres[old]).collect();
    let labels: Vec<usize> = raw_labels.iter().map(|&old| rank[old]).collect();

    let mut cluster_sizes = vec![0; centres.len()];
    let mut inertia = 0.0;
    for (point, &label) in points.iter().zip(&labels) {
        cluster_sizes[label] += 1;
        inertia += squared_distance(*point, centres[label]);
    }
    // The exact coefficient is O(n²): beyond SILHOUETTE_SAMPLE points it is computed over an evenly
    // spaced, deterministic sample, which keeps long runs linear.
    let stride = points.len().div_ceil(SILHOUETTE_SAMPLE).max(1);
    let sample: Vec<[f64; 2]> = points.iter().step_by(stride).copied().collect();
    let sample_labels: Vec<usize> = labels.iter().step_by(stride).copied().collect();
    let silhouette = silhouette(&sample, &sample_labels, centres.len());
    tracing::info!(
        k = cfg.k,
        seed = cfg.seed,
        points = points.len(),
        ?centres,
        ?cluster_sizes,
        ?silhouette,
        inertia,
        "k-means fitted"
    );
    Ok(KMeansResult {
        k: cfg.k,
        seed: cfg.seed,
        points: points.len(),
        fitted_on: points.len(),
        centres,
        labels,
        cluster_sizes,
        silhouette,
        inertia,
    })
}

fn squared_distance(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)
}

/// Most points the silhouette coefficient is computed over.
pub const SILHOUETTE_SAMPLE: usize = 4000;

/// Mean silhouette coefficient (Euclidean) of `labels` (each `< k`), in O(n²) time and O(n·k) memory.
/// A point alone in its cluster scores 0 (Rousseeuw's convention, as scikit-learn). linfa's
/// `SilhouetteScore` is not used: it scores such points 1, a single cluster 1, and coinciding points NaN.
fn silhouette(points: &[[f64; 2]], labels: &[usize], k: usize) -> Option<f64> {
    let n = points.len();
    let mut sizes = vec![0usize; k];
    for &label in labels {
        *sizes.get_mut(label)? += 1;
    }
    let clusters = sizes.iter().filter(|&&size| size > 0).count();
    if labels.len() != n || clusters < 2 || clusters == n {
        return None;
    }
    // sums[i * k + c]: total distance from point i to the points of cluster c.
    let mut sums = vec![0.0; n * k];
    for i in 0..n {
        for j in i + 1..n {
            let d = squared_distance(points[i], points[j]).sqrt();
            sums[i * k + labels[j]] += d;
            sums[j * k + labels[i]] += d;
        }
    }
    let total: f64 = (0..n)
        .map(|i| {
            let own = labels[i];
            if sizes[own] == 1 {
                return 0.0;
            }
            let a = sums[i * k + own] / (sizes[own] - 1) as f64;
            let b = (0..k)
                .filter(|&c| c != own && sizes[c] > 0)
                .map(|c| sums[i * k + c] / sizes[c] as f64)
                .fold(f64::INFINITY, f64::min);
            let scale = a.max(b);
            if scale > 0.0 { (b - a) / scale } else { 0.0 }
        })
        .sum();
    Some(total / n as f64)
}

/// The `centres_<stamp>.json` document.
#[derive(Serialize)]
struct CentresDoc<'a> {
    k: usize,
    seed: u64,
    points: usize,
    fitted_on: usize,
    centres: &'a [[f64; 2]],
    cluster_sizes: &'a [usize],
    silhouette: Option<f64>,
    inertia: f64,
}

/// Writes `predictions_<stamp>.csv` in `dir` (header `humidity,temperature,prediction`, one row per point) and
/// `centres_<stamp>.json` (k, seed, points, fitted_on, centres, cluster_sizes, silhouette, inertia), creating `dir` if
/// needed, and returns their paths. Each file is written under a hidden temporary name, synced, then renamed,
/// so readers never see half a file.
pub fn write_outputs(
    dir: &Path,
    stamp: &str,
    points: &[[f64; 2]],
    result: &KMeansResult,
) -> Result<Vec<PathBuf>, KMeansError> {
    if result.labels.len() != points.len() {
        return Err(KMeansError::LabelCount { labels: result.labels.len(), points: points.len() });
    }
    let predictions = write_predictions(dir, stamp, |out| {
        for (point, label) in points.iter().zip(&result.labels) {
            write_prediction(out, *point, *label)?;
        }
        Ok(())
    })?;
    let centres = write_centres(dir, stamp, result)?;
    Ok(vec![predictions, centres])
}

/// Writes `predictions_<stamp>.csv` in `dir` (created if needed): the header, then what `rows` writes
/// (with [`write_prediction`]). Atomic like [`write_outputs`]: if `rows` fails, no file is left.
pub fn write_predictions(
    dir: &Path,
    stamp: &str,
    rows: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<PathBuf, KMeansError> {
    if stamp.is_empty() || stamp.contains(['/', '\\', '\0']) {
        return Err(KMeansError::BadStamp(stamp.to_owned()));
    }
    fs::create_dir_all(dir).map_err(|source| KMeansError::Io {
        action: "create",
        path: dir.into(),
        source,
    })?;
    write_atomically(dir, &format!("predictions_{stamp}.csv"), |out| {
        writeln!(out, "humidity,temperature,prediction")?;
        rows(out)
    })
}

/// One row of a predictions file.
pub fn write_prediction(out: &mut dyn Write, point: [f64; 2], label: usize) -> io::Result<()> {
    writeln!(out, "{},{},{label}", point[0], point[1])
}

/// Writes `centres_<stamp>.json` in `dir` (which [`write_predictions`] made), atomically.
pub fn write_centres(dir: &Path, stamp: &str, result: &KMeansResult) -> Result<PathBuf, KMeansError> {
    let doc = CentresDoc {
        k: result.k,
        seed: result.seed,
        points: result.points,
        fitted_on: result.fitted_on,
        centres: &result.centres,
        cluster_sizes: &result.cluster_sizes,
        silhouette: result.silhouette,
        inertia: result.inertia,
    };
    let centres = write_atomically(dir, &format!("centres_{stamp}.json"), |out| {
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)
    })?;
    tracing::info!(centres = %centres.display(), "k-means outputs written");
    Ok(centres)
}

/// The label of the centre nearest to `point` (the first on a tie), and the squared distance to it.
pub fn nearest(centres: &[[f64; 2]], point: [f64; 2]) -> (usize, f64) {
    centres.iter().enumerate().fold((0, f64::INFINITY), |best, (i, &c)| {
        let d = squared_distance(point, c);
        if d < best.1 { (i, d) } else { best }
    })
}

/// Writes `dir/name` through `dir/.name.tmp`; on failure the temporary file is removed.
fn write_atomically(
    dir: &Path,
    name: &str,
    body: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<PathBuf, KMeansError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = File::create(&tmp).and_then(|file| {
        let mut out = BufWriter::new(file);
        body(&mut out)?;
        out.into_inner().map_err(io::IntoInnerError::into_error)?.sync_all()?;
        fs::rename(&tmp, &path)
    });
    match written {
        Ok(()) => Ok(path),
        Err(source) => {
            // Best effort: the write already failed, and that is the error worth reporting.
            let _ = fs::remove_file(&tmp);
            Err(KMeansError::Io { action: "write", path, source })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    /// `n` points uniformly within ±`spread` of each centre, blob after blob.
    fn blobs(centres: &[[f64; 2]], n: usize, spread: f64, seed: u64) -> Vec<[f64; 2]> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        centres
            .iter()
            .flat_map(|c| {
                (0..n)
                    .map(|_| [c[0] + rng.gen_range(-spread..spread), c[1] + rng.gen_range(-spread..spread)])
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn two_separated_blobs_give_their_means_as_centres() {
        // Listed high-humidity first, to check the canonical (humidity-sorted) order.
        let points = blobs(&[[50.0, 20.0], [20.0, 40.0]], 60, 2.0, 7);
        let result = fit(&points, &FitParams::default()).unwrap();

        assert_eq!((result.k, result.seed, result.points), (2, 1, 120));
        let [low, high] = [result.centres[0], result.centres[1]];
        assert!((low[0] - 20.0).abs() < 0.6 && (low[1] - 40.0).abs() < 0.6, "{low:?}");
        assert!((high[0] - 50.0).abs() < 0.6 && (high[1] - 20.0).abs() < 0.6, "{high:?}");
        assert!(result.labels[..60].iter().all(|&l| l == 1));
        assert!(result.labels[60..].iter().all(|&l| l == 0));
        assert_eq!(result.cluster_sizes, vec![60, 60]);
        assert!(result.silhouette.unwrap() > 0.8, "{:?}", result.silhouette);
        // Every point lies within 2·√2 of its blob's true centre.
        assert!(result.inertia > 0.0 && result.inertia < 120.0 * 8.0, "{}", result.inertia);
    }

    #[test]
    fn same_seed_gives_bit_identical_results() {
        let points = blobs(&[[20.0, 40.0], [25.0, 36.0], [30.0, 40.0]], 200, 4.0, 3);
        let cfg = FitParams { k: 3, seed: 11, ..FitParams::default() };
        let (a, b) = (fit(&points, &cfg).unwrap(), fit(&points, &cfg).unwrap());
        let bits = |r: &KMeansResult| -> Vec<u64> {
            r.centres
                .iter()
                .flatten()
                .chain([&r.inertia, &r.silhouette.unwrap()])
                .map(|x| x.to_bits())
                .collect()
        };
        assert_eq!(bits(&a), bits(&b));
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.cluster_sizes, b.cluster_sizes);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let two = [[1.0, 2.0], [3.0, 4.0]];
        let k3 = FitParams { k: 3, ..FitParams::default() };
        assert!(matches!(fit(&two, &k3), Err(KMeansError::TooFewPoints { k: 3, points: 2 })));
        let k0 = FitParams { k: 0, ..FitParams::default() };
        assert!(matches!(fit(&two, &k0), Err(KMeansError::ZeroK)));
        let nan = [[1.0, 2.0], [3.0, f64::NAN], [5.0, 6.0]];
        assert!(matches!(
            fit(&nan, &FitParams::default()),
            Err(KMeansError::NonFinitePoint { index: 1, .. })
        ));
        let no_runs = FitParams { n_runs: 0, ..FitParams::default() };
        assert!(matches!(fit(&two, &no_runs), Err(KMeansError::Fit(_))));
    }

    #[test]
    fn silhouette_matches_hand_computation_and_is_none_when_undefined() {
        // A and B in cluster 0, C alone in cluster 1 (scores 0).
        let points = [[0.0, 0.0], [0.0, 1.0], [3.0, 0.0]];
        let s_a = (3.0 - 1.0) / 3.0;
        let s_b = (10f64.sqrt() - 1.0) / 10f64.sqrt();
        let got = silhouette(&points, &[0, 0, 1], 2).unwrap();
        assert!((got - (s_a + s_b) / 3.0).abs() < 1e-12, "{got}");

        assert_eq!(silhouette(&points, &[1, 1, 1], 2), None, "one cluster");
        assert_eq!(silhouette(&points, &[0, 1, 2], 3), None, "every point alone");
        assert_eq!(silhouette(&[[1.0, 1.0]; 4], &[0, 0, 1, 1], 2), Some(0.0), "coinciding points");
    }

    #[test]
    fn write_outputs_writes_both_files_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let out_dir = dir.path().join("predictions");
        let points = [[10.0, 20.0], [1.0, 2.0], [1.5, 2.0], [10.0, 21.0]];
        let result = fit(&points, &FitParams::default()).unwrap();
        // linfa (m_k-means) stops within its tolerance of the exact cluster means.
        assert!((result.inertia - 0.625).abs() < 1e-6, "{}", result.inertia);

        let paths = write_outputs(&out_dir, "20200218T212332", &points, &result).unwrap();
        assert_eq!(
            paths,
            [out_dir.join("predictions_20200218T212332.csv"), out_dir.join("centres_20200218T212332.json")]
        );
        assert_eq!(
            fs::read_to_string(&paths[0]).unwrap(),
            "humidity,temperature,prediction\n10,20,1\n1,2,0\n1.5,2,0\n10,21,1\n"
        );
        let doc: serde_json::Value = serde_json::from_str(&fs::read_to_string(&paths[1]).unwrap()).unwrap();
        let centres: Vec<[f64; 2]> = serde_json::from_value(doc["centres"].clone()).unwrap();
        let expected = [[1.25, 2.0], [10.0, 20.5]];
        for (got, (want, ours)) in centres.iter().zip(expected.iter().zip(&result.centres)) {
            for i in 0..2 {
                assert!((got[i] - want[i]).abs() < 1e-4 && (got[i] - ours[i]).abs() < 1e-9, "{centres:?}");
            }
        }
        assert_eq!(doc["cluster_sizes"], serde_json::json!([2, 2]));
        assert_eq!(
            (doc["k"].as_u64(), doc["seed"].as_u64(), doc["points"].as_u64()),
            (Some(2), Some(1), Some(4))
        );
        let silhouette = doc["silhouette"].as_f64().unwrap();
        assert!((silhouette - result.silhouette.unwrap()).abs() < 1e-9 && silhouette > 0.9, "{silhouette}");

        let mut names: Vec<String> = fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["centres_20200218T212332.json", "predictions_20200218T212332.csv"]);

        assert!(matches!(write_outputs(&out_dir, "a/b", &points, &result), Err(KMeansError::BadStamp(_))));
        assert!(matches!(
            write_outputs(&out_dir, "x", &points[..3], &result),
            Err(KMeansError::LabelCount { labels: 4, points: 3 })
        ));
    }

    #[test]
    fn gnfuv_pi2_splits_into_two_clusters() {
        let Some(path) =
            crate::testing::shared_file("gnfuv_pi2_splits_into_two_clusters", "datasets/gnfuv/pi2.csv")
        else {
            return;
        };
        let mut reader = csv::Reader::from_path(path).unwrap();
        let points: Vec<[f64; 2]> = reader
            .records()
            .filter_map(|row| {
                let row = row.unwrap();
                Some([super::super::scan::cast_number(&row[1])?, super::super::scan::cast_number(&row[2])?])
            })
            .collect();
        assert_eq!(points.len(), 1546 - 14, "valid rows");

        let result = fit(&points, &FitParams::default()).unwrap();
        println!(
            "pi2 k=2 seed=1: centres {:?} sizes {:?} silhouette {:?}",
            result.centres, result.cluster_sizes, result.silhouette
        );
        assert!(result.cluster_sizes.iter().all(|&size| size > 0));
        let silhouette = result.silhouette.unwrap();
        assert!(silhouette > 0.0 && silhouette <= 1.0, "{silhouette}");
    }
}
