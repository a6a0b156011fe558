//! The dashboard's metric history: every series of the run's registry, sampled at a fixed interval of the
//! run's clock (virtual in sim mode), kept whole for the run and written to `<out>/history.jsonl` at its end
//! so that `chaoslab serve --out DIR` can replay it.
//!
//! The flow's own `PROMETHEUS` keeps what its rules need for ten minutes; the dashboard needs every metric
//! for the whole run, with or without a metrics store, so it records its own. Memory is bounded: past
//! [`MAX_POINTS`] samples the history halves its resolution (every other sample of every series is
//! dropped and the interval doubles), as a long run's chart has no use for more points than pixels.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::kernel::clock::Clock;
use crate::kernel::metrics::Metrics;
use crate::monitoring::tsdb::{Labels, Tsdb};

/// The file a run's history is written to, under its output directory.
pub const HISTORY_FILE: &str = "history.jsonl";

/// Default sampling interval: the reference Prometheus's `scrape_interval`. (At 5 s the recording cost a
/// 30-minute sim run a third more time.)
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Most samples the history holds before it halves its resolution.
pub const MAX_POINTS: usize = 2_000_000;

/// Long enough that the TSDB never drops a sample by age: the bound is [`MAX_POINTS`].
const RETENTION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The recorded series. Cheap to clone; clones share the store.
#[derive(Clone)]
pub struct History {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    db: Tsdb,
    points: usize,
    interval: Duration,
    /// Epoch milliseconds of the run's start.
    start_ms: i64,
    /// When the last sample was taken: a second one at the same instant (the run's end falling on a
    /// tick) is skipped, as Prometheus never scrapes a target twice in one millisecond.
    last_ms: Option<i64>,
}

/// One line of `history.jsonl`: a series and its samples as `[epoch ms, value]` pairs.
#[derive(Serialize, Deserialize)]
struct Line {
    labels: Labels,
    points: Vec<(i64, f64)>,
}

/// The first line of `history.jsonl`.
#[derive(Serialize, Deserialize)]
struct Header {
    /// Epoch milliseconds of the run's start.
    start_ms: i64,
    /// Sampling interval in milliseconds at the end of the run.
    interval_ms: u64,
}

impl History {
    /// An empty history for a run that started at `start_ms` (epoch milliseconds).
    pub fn new(start_ms: i64, interval: Duration) -> History {
        let inner = Inner { db: Tsdb::new(RETENTION), points: 0, interval, start_ms, last_ms: None };
        History { inner: Arc::new(Mutex::new(inner)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Epoch milliseconds of the run's start.
    pub fn start_ms(&self) -> i64 {
        self.lock().start_ms
    }

    /// The current sampling interval (it doubles each time the history thins itself).
    pub fn interval(&self) -> Duration {
        self.lock().interval
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.lock().points
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes one sample of every series of `metrics` at `t_ms` (epoch milliseconds).
    pub fn sample(&self, metrics: &Metrics, t_ms: i64) {
        let families = metrics.registry().gather();
        let mut inner = self.lock();
        if inner.last_ms.is_some_and(|last| t_ms <= last) {
            return;
        }
        inner.last_ms = Some(t_ms);
        let stats =
            inner.db.ingest_families(&families, &[("job", "chaoslab"), ("instance", "chaoslab")], t_ms);
        inner.points += stats.appended + stats.stale_marked;
        if inner.points > MAX_POINTS {
            inner.points = inner.db.thin();
            inner.interval *= 2;
        }
    }

    /// Runs `f` over the recorded store (PromQL evaluates against it).
    pub fn with_db<T>(&self, f: impl FnOnce(&Tsdb) -> T) -> T {
        f(&self.lock().db)
    }

    /// Runs `f` over the store with write access (tests, loading).
    #[cfg(test)]
    pub(crate) fn with_db_mut<T>(&self, f: impl FnOnce(&mut Tsdb) -> T) -> T {
        f(&mut self.lock().db)
    }

    /// Samples `metrics` every interval of `clock` until `stop` is cancelled, then once more.
    pub async fn record(self, metrics: Metrics, clock: Clock, stop: tokio_util::sync::CancellationToken) {
        loop {
            self.sample(&metrics, clock.now().timestamp_millis());
            let interval = self.interval();
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
        }
        self.sample(&metrics, clock.now().timestamp_millis());
    }

    /// Writes the history to `path` (JSON lines: a header, then one series per line).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let inner = self.lock();
        let file =
            std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = BufWriter::new(file);
        let header = Header { start_ms: inner.start_ms, interval_ms: inner.interval.as_millis() as u64 };
        serde_json::to_writer(&mut out, &header)?;
        out.write_all(b"\n")?;
        for (labels, points) in inner.db.all_series() {
            let line = Line { labels: labels.clone(), points: points.iter().map(|p| (p.t, p.v)).collect() };
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
        }
        out.flush().with_context(|| format!("cannot write {}", path.display()))
    }

    /// Reads a history written by [`History::write`]; a malformed line is named.
    pub fn load(path: &Path) -> anyhow::Result<History> {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut lines = std::io::BufReader::new(file).lines();
        let first =
            lines.next().transpose()?.with_context(|| format!("{}: the file is empty", path.display()))?;
        let header: Header = serde_json::from_str(&first)
            .with_context(|| format!("{}:1: not a history header", path.display()))?;
        let history = History::new(header.start_ms, Duration::from_millis(header.interval_ms.max(1)));
        {
            let mut inner = history.lock();
            for (i, line) in lines.enumerate() {
                let line = line.with_context(|| format!("cannot read {}", path.display()))?;
                if line.trim().is_empty() {
                    continue;
                }
                let series: Line = serde_json::from_str(&line)
                    .with_context(|| format!("{}:{}: not a series", path.display(), i + 2))?;
                for (t, v) in series.points {
                    inner
                        .db
                        .append(series.labels.clone(), t, v)
                        .with_context(|| format!("{}:{}", path.display(), i + 2))?;
                    inner.points += 1;
                }
            }
        }
        Ok(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics_with(counter: &str) -> Metrics {
        let m = Metrics::new().unwrap();
        let c = prometheus::IntCounter::new(counter, "help").unwrap();
        m.registry().register(Box::new(c.clone())).unwrap();
        c.inc_by(3);
        m
    }

    #[test]
    fn samples_write_and_load_round_trip() {
        let m = metrics_with("demo_total");
        let h = History::new(1_000, DEFAULT_INTERVAL);
        h.sample(&m, 1_000);
        h.sample(&m, 6_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        h.write(&path).unwrap();
        let back = History::load(&path).unwrap();
        assert_eq!(back.start_ms(), 1_000);
        assert_eq!(back.len(), h.len());
        let v = back.with_db(|db| crate::monitoring::promql::query("demo_total", db, 6_000).unwrap());
        assert!(format!("{v:?}").contains("3.0"), "{v:?}");
    }

    #[test]
    fn a_malformed_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        std::fs::write(&path, "{\"start_ms\":0,\"interval_ms\":5000}\n{\"labels\":{},\"points\":[]}\nnope\n")
            .unwrap();
        let err = format!("{:#}", History::load(&path).err().unwrap());
        assert!(err.contains("history.jsonl:3: not a series"), "{err}");
    }

    #[test]
    fn thinning_halves_the_samples_and_keeps_the_newest() {
        let mut db = Tsdb::new(RETENTION);
        let labels: Labels = [("__name__".to_owned(), "x".to_owned())].into();
        for t in 0..10 {
            db.append(labels.clone(), t * 1000, t as f64).unwrap();
        }
        assert_eq!(db.thin(), 5);
        let kept: Vec<i64> = db.points(&labels).unwrap().iter().map(|p| p.t).collect();
        assert_eq!(kept, vec![1000, 3000, 5000, 7000, 9000]);
    }
}
