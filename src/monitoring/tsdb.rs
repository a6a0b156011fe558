//! The embedded in-memory time-series store behind chaoslab's Prometheus stand-in.
//!
//! It owns what Prometheus' head block owns for the reference pipeline: series identified by their sorted
//! label set (metric name in `__name__`), samples in time order, scrape ingestion from `prometheus`
//! metric families (with the synthetic `up` series), staleness markers for series that vanish from a
//! scrape, and retention-based pruning. Time is always passed in (epoch milliseconds, UTC), so the store
//! behaves identically in live and sim mode. All maps are `BTreeMap`s, so iteration order is the label
//! order and runs are deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use prometheus::proto::{Metric, MetricFamily, MetricType};

/// A series' identity: label name → value, always sorted, never holding empty values.
pub type Labels = BTreeMap<String, String>;

/// The label that carries the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Bit pattern of Prometheus' staleness marker (a signalling NaN distinct from ordinary NaN).
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The value Prometheus writes to end a series: a NaN with a reserved bit pattern.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is the staleness marker (and not an ordinary NaN sample).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One sample of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Timestamp, epoch milliseconds.
    pub t: i64,
    /// Value (may be the staleness marker, see [`is_stale_nan`]).
    pub v: f64,
}

/// Why a sample was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TsdbError {
    /// The label set has no `__name__`.
    #[error("series {series} has no metric name (label `__name__`)")]
    MissingName {
        /// The offending label set, rendered.
        series: String,
    },
    /// A label name is not a valid Prometheus label name.
    #[error("series {series} has the invalid label name `{name}`")]
    InvalidLabelName {
        /// The offending label set, rendered.
        series: String,
        /// The bad name.
        name: String,
    },
    /// The sample is older than the newest sample of its series.
    #[error("out-of-order sample for {series}: t={t} ms is before the newest sample at t={newest} ms")]
    OutOfOrder {
        /// The series, rendered.
        series: String,
        /// The refused timestamp.
        t: i64,
        /// The series' newest timestamp.
        newest: i64,
    },
    /// A different value was appended at a timestamp the series already has.
    #[error("duplicate sample for {series} at t={t} ms with a different value")]
    Duplicate {
        /// The series, rendered.
        series: String,
        /// The timestamp both samples have.
        t: i64,
    },
}

/// What one scrape did to the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrapeStats {
    /// Samples stored (including `up`).
    pub appended: usize,
    /// Samples refused (out of order or duplicate); each is logged.
    pub rejected: usize,
    /// Series of the previous scrape that got a staleness marker.
    pub stale_marked: usize,
}

/// The store. See the module docs.
#[derive(Debug, Clone)]
pub struct Tsdb {
    retention_ms: i64,
    /// metric name → label set → samples in time order.
    series: BTreeMap<String, BTreeMap<Labels, Vec<Point>>>,
    /// Highest timestamp ever appended; retention is measured back from it.
    newest: Option<i64>,
    /// Target label set → series that target's last successful scrape produced.
    targets: BTreeMap<Labels, BTreeSet<Labels>>,
}

impl Tsdb {
    /// An empty store keeping samples for `retention` behind the newest sample. Retention should be
    /// at least the longest range any rule queries plus the 5-minute lookback.
    pub fn new(retention: Duration) -> Tsdb {
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        Tsdb { retention_ms, series: BTreeMap::new(), newest: None, targets: BTreeMap::new() }
    }

    /// The configured retention.
    pub fn retention(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.retention_ms).unwrap_or(0))
    }

    /// Appends one sample. Empty label values are dropped (Prometheus treats them as absent).
    /// Appending the same value again at the newest timestamp is a no-op.
    pub fn append(&mut self, labels: Labels, t_ms: i64, value: f64) -> Result<(), TsdbError> {
        let labels: Labels = labels.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        if let Some(bad) = labels.keys().find(|k| !is_valid_label_name(k)) {
            return Err(TsdbError::InvalidLabelName { series: format_labels(&labels), name: bad.clone() });
        }
        let Some(name) = labels.get(METRIC_NAME).cloned() else {
            return Err(TsdbError::MissingName { series: format_labels(&labels) });
        };
        let newest = self.newest.map_or(t_ms, |n| n.max(t_ms));
        let cutoff = newest.saturating_sub(self.retention_ms);
        let by_name = self.series.entry(name).or_default();
        if let Some(points) = by_name.get_mut(&labels) {
            if let Some(last) = points.last() {
                if t_ms < last.t {
                    return Err(TsdbError::OutOfOrder {
                        series: format_labels(&labels),
                        t: t_ms,
                        newest: last.t,
                    });
                }
                if t_ms == last.t {
                    return if last.v.to_bits() == value.to_bits() {
                        Ok(())
                    } else {
                        Err(TsdbError::Duplicate { series: format_labels(&labels), t: t_ms })
                    };
                }
            }
            points.push(Point { t: t_ms, v: value });
            let expired = points.partition_point(|p| p.t < cutoff);
            points.drain(..expired);
        } else {
            by_name.insert(labels, vec![Point { t: t_ms, v: value }]);
        }
        self.newest = Some(newest);
        Ok(())
    }

    /// Appends a staleness marker to a series (a no-op for a series the store does not hold).
    pub fn append_stale(&mut self, labels: &Labels, t_ms: i64) -> Result<(), TsdbError> {
        let known = labels
            .get(METRIC_NAME)
            .and_then(|name| self.series.get(name))
            .and_then(|by_labels| by_labels.get(labels))
            .is_some_and(|points| points.last().is_some_and(|p| !is_stale_nan(p.v)));
        if known { self.append(labels.clone(), t_ms, stale_nan()) } else { Ok(()) }
    }

    /// Stores one scrape of a target: every metric of `families` becomes samples at `t_ms` (counter,
    /// gauge and untyped as-is; histograms as `_bucket{le}`, `_sum`, `_count`; summaries as
    /// `{quantile}`, `_sum`, `_count`). `target_labels` (normally `job` and `instance`) are added where
    /// the metric lacks them: scraped labels win, like `honor_labels: true`. Exposition timestamps are
    /// ignored; the scrape time is used. Series the target's previous scrape had but this one lacks get a
    /// staleness marker. `up{target_labels}` is set to 1. Retention is applied afterwards.
    pub fn ingest_families(
        &mut self,
        families: &[MetricFamily],
        target_labels: &[(&str, &str)],
        t_ms: i64,
    ) -> ScrapeStats {
        let target = labels_from_pairs(target_labels);
        let mut stats = ScrapeStats::default();
        let mut seen = BTreeSet::new();
        let mut first_refusal = None;
        for family in families {
            for metric in family.get_metric() {
                for (labels, value) in expand_metric(family, metric, &target) {
                    match self.append(labels.clone(), t_ms, value) {
                        Ok(()) => {
                            stats.appended += 1;
                            seen.insert(labels);
                        }
                        Err(e) => {
                            stats.rejected += 1;
                            first_refusal.get_or_insert(e);
                        }
                    }
                }
            }
        }
        // One line per scrape, as Prometheus logs it, not one per sample.
        if let Some(e) = first_refusal {
            tracing::warn!(
                target = %format_labels(&target),
                "scrape at t={t_ms} ms: {} samples refused; the first: {e}",
                stats.rejected
            );
        }
        let previous = self.targets.insert(target.clone(), seen.clone()).unwrap_or_default();
        stats.stale_marked = self.mark_gone(previous.difference(&seen), t_ms);
        stats.appended += self.append_up(&target, t_ms, 1.0);
        self.prune();
        stats
    }

    /// Records a failed scrape of a target: `up{target_labels}` = 0 and every series of its previous
    /// scrape gets a staleness marker (what Prometheus does when a target stops answering).
    pub fn scrape_failed(&mut self, target_labels: &[(&str, &str)], t_ms: i64) -> ScrapeStats {
        let target = labels_from_pairs(target_labels);
        let previous = self.targets.insert(target.clone(), BTreeSet::new()).unwrap_or_default();
        let stale_marked = self.mark_gone(previous.iter(), t_ms);
        let appended = self.append_up(&target, t_ms, 0.0);
        self.prune();
        ScrapeStats { appended, rejected: 0, stale_marked }
    }

    /// The samples of every series called `name`, in label order.
    pub fn series_named<'a>(&'a self, name: &str) -> impl Iterator<Item = (&'a Labels, &'a [Point])> + 'a {
        self.series.get(name).into_iter().flat_map(|m| m.iter().map(|(l, p)| (l, p.as_slice())))
    }

    /// The samples of every series, in (name, labels) order.
    pub fn all_series(&self) -> impl Iterator<Item = (&Labels, &[Point])> + '_ {
        self.series.values().flat_map(|m| m.iter().map(|(l, p)| (l, p.as_slice())))
    }

    /// The samples of one series, if the store holds it.
    pub fn points(&self, labels: &Labels) -> Option<&[Point]> {
        let name = labels.get(METRIC_NAME)?;
        self.series.get(name)?.get(labels).map(Vec::as_slice)
    }

    /// Number of series held.
    pub fn num_series(&self) -> usize {
        self.series.values().map(BTreeMap::len).sum()
    }

    /// Highest timestamp appended so far.
    pub fn newest(&self) -> Option<i64> {
        self.newest
    }

    /// Drops samples older than the retention window (measured back from the newest sample) and
    /// series left without samples.
    pub fn prune(&mut self) {
        let Some(cutoff) = self.cutoff() else { return };
        for by_labels in self.series.values_mut() {
            for points in by_labels.values_mut() {
                let expired = points.partition_point(|p| p.t < cutoff);
                points.drain(..expired);
            }
            by_labels.retain(|_, points| !points.is_empty());
        }
        self.series.retain(|_, by_labels| !by_labels.is_empty());
    }

    /// Drops every other sample of every series, keeping the newest of each; returns the samples left.
    /// (A store that must stay within a number of samples trades resolution for length this way.)
    pub fn thin(&mut self) -> usize {
        let mut left = 0;
        for points in self.series.values_mut().flat_map(BTreeMap::values_mut) {
            let n = points.len();
            let mut i = 0;
            points.retain(|_| {
                let keep = (n - 1 - i) % 2 == 0;
                i += 1;
                keep
            });
            left += points.len();
        }
        left
    }

    fn cutoff(&self) -> Option<i64> {
        self.newest.map(|n| n.saturating_sub(self.retention_ms))
    }

    fn mark_gone<'a>(&mut self, gone: impl Iterator<Item = &'a Labels>, t_ms: i64) -> usize {
        let mut marked = 0;
        for labels in gone {
            match self.append_stale(labels, t_ms) {
                Ok(()) => marked += 1,
                Err(e) => tracing::warn!("staleness marker refused: {e}"),
            }
        }
        marked
    }

    fn append_up(&mut self, target: &Labels, t_ms: i64, value: f64) -> usize {
        let mut up = target.clone();
        up.insert(METRIC_NAME.to_string(), "up".to_string());
        match self.append(up, t_ms, value) {
            Ok(()) => 1,
            Err(e) => {
                tracing::warn!("`up` sample refused: {e}");
                0
            }
        }
    }
}

/// Turns one exposed metric into its (labels, value) samples.
fn expand_metric(family: &MetricFamily, metric: &Metric, target: &Labels) -> Vec<(Labels, f64)> {
    let mut base: Labels = metric
        .get_label()
        .iter()
        .filter(|l| !l.name().is_empty() && !l.value().is_empty())
        .map(|l| (l.name().to_string(), l.value().to_string()))
        .collect();
    for (k, v) in target {
        base.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let name = family.name();
    let with = |suffix: &str, extra: Option<(&str, String)>| -> Labels {
        let mut l = base.clone();
        l.insert(METRIC_NAME.to_string(), format!("{name}{suffix}"));
        if let Some((k, v)) = extra {
            l.insert(k.to_string(), v);
        }
        l
    };
    match family.get_field_type() {
        MetricType::COUNTER => vec![(with("", None), metric.get_counter().get_value())],
        MetricType::GAUGE => vec![(with("", None), metric.get_gauge().get_value())],
        #[allow(deprecated)] // The plain (non-protobuf) model still calls this accessor deprecated.
        MetricType::UNTYPED => vec![(with("", None), metric.get_untyped().get_value())],
        MetricType::HISTOGRAM => {
            let h = metric.get_histogram();
            let mut out = Vec::with_capacity(h.get_bucket().len() + 3);
            let mut has_inf = false;
            for b in h.get_bucket() {
                has_inf |= b.upper_bound() == f64::INFINITY;
                let le = format_float_g(b.upper_bound(), None);
                out.push((with("_bucket", Some(("le", le))), b.cumulative_count() as f64));
            }
            if !has_inf {
                out.push((with("_bucket", Some(("le", "+Inf".to_string()))), h.get_sample_count() as f64));
            }
            out.push((with("_sum", None), h.get_sample_sum()));
            out.push((with("_count", None), h.get_sample_count() as f64));
            out
        }
        MetricType::SUMMARY => {
            let s = metric.get_summary();
            let mut out = Vec::with_capacity(s.get_quantile().len() + 2);
            for q in s.get_quantile() {
                let quantile = format_float_g(q.quantile(), None);
                out.push((with("", Some(("quantile", quantile))), q.value()));
            }
            out.push((with("_sum", None), s.sample_sum()));
            out.push((with("_count", None), s.sample_count() as f64));
            out
        }
    }
}

fn labels_from_pairs(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Whether `name` is a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `name` is a valid Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Renders a label set the way Prometheus prints series: `name{a="x", b="y"}`.
pub fn format_labels(labels: &Labels) -> String {
    let name = labels.get(METRIC_NAME).map(String::as_str).unwrap_or("");
    let rest: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k.as_str() != METRIC_NAME)
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    if rest.is_empty() && !name.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", rest.join(", "))
    }
}

/// Quotes a string like Go's `strconv.Quote` does for printable text (`"`, `\` and control characters
/// escaped).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Formats a float like Go's `%g` verb: `precision: None` is the shortest representation
/// (`strconv.FormatFloat(v, 'g', -1, 64)`, which is also what `{{ $value }}` prints), `Some(p)` is
/// `%.<p>g`. Prometheus renders `le`/`quantile` labels and template numbers this way, e.g. `1e+06`,
/// `0.005`, `+Inf`.
pub fn format_float_g(v: f64, precision: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    let a = v.abs();
    // Decimal digits (no trailing zeros) and the position of the decimal point, like Go's `decimalSlice`.
    let (digits, dp): (Vec<u8>, i32) = if a == 0.0 {
        (Vec::new(), 0)
    } else {
        let sci = match precision {
            None => format!("{a:e}"),
            Some(p) => format!("{a:.*e}", p.max(1) - 1),
        };
        let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
        while digits.len() > 1 && digits.last() == Some(&b'0') {
            digits.pop();
        }
        (digits, exp + 1)
    };
    let nd = digits.len() as i32;
    let mut prec = match precision {
        None => nd,
        Some(p) => p.max(1) as i32,
    };
    let mut eprec = prec;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if precision.is_none() {
        eprec = 6;
    }
    let digit = |i: i32| -> char { if i >= 0 && i < nd { digits[i as usize] as char } else { '0' } };
    let exp = dp - 1;
    let mut out = String::from(sign);
    if exp < -4 || exp >= eprec {
        if prec > nd {
            prec = nd;
        }
        out.push(if nd == 0 { '0' } else { digit(0) });
        if prec > 1 {
            out.push('.');
            (1..prec).for_each(|i| out.push(digit(i)));
        }
        let e = if nd == 0 { 0 } else { exp };
        out.push_str(&format!("e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs()));
    } else {
        if prec > dp {
            prec = nd;
        }
        let decimals = (prec - dp).max(0);
        if dp > 0 {
            (0..dp).for_each(|i| out.push(digit(i)));
        } else {
            out.push('0');
        }
        if decimals > 0 {
            out.push('.');
            (0..decimals).for_each(|i| out.push(digit(dp + i)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::core::Collector;
    use prometheus::{Counter, Gauge, Histogram, HistogramOpts, IntCounterVec, Opts};

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn values(db: &Tsdb, l: &Labels) -> Vec<(i64, f64)> {
        db.points(l).unwrap_or(&[]).iter().map(|p| (p.t, p.v)).collect()
    }

    #[test]
    fn stale_marker_is_a_distinct_nan() {
        assert!(is_stale_nan(stale_nan()));
        assert!(stale_nan().is_nan());
        assert!(!is_stale_nan(f64::NAN));
        assert!(!is_stale_nan(1.0));
    }

    #[test]
    fn append_orders_and_refuses_out_of_order_and_conflicting_duplicates() {
        let mut db = Tsdb::new(Duration::from_secs(3600));
        let l = labels(&[("__name__", "m"), ("a", "1"), ("empty", "")]);
        db.append(l.clone(), 1000, 1.0).unwrap();
        db.append(l.clone(), 2000, 2.0).unwrap();
        db.append(l.clone(), 2000, 2.0).unwrap();
        let stored = labels(&[("__name__", "m"), ("a", "1")]);
        assert_eq!(values(&db, &stored), vec![(1000, 1.0), (2000, 2.0)]);
        assert!(matches!(db.append(l.clone(), 1500, 3.0), Err(TsdbError::OutOfOrder { newest: 2000, .. })));
        assert!(matches!(db.append(l, 2000, 5.0), Err(TsdbError::Duplicate { t: 2000, .. })));
        assert!(matches!(db.append(labels(&[("a", "1")]), 1, 1.0), Err(TsdbError::MissingName { .. })));
        assert!(matches!(
            db.append(labels(&[("__name__", "m"), ("bad-name", "x")]), 1, 1.0),
            Err(TsdbError::InvalidLabelName { .. })
        ));
    }

    #[test]
    fn retention_prunes_old_samples_and_dead_series() {
        let mut db = Tsdb::new(Duration::from_secs(60));
        let old = labels(&[("__name__", "old")]);
        let live = labels(&[("__name__", "live")]);
        db.append(old.clone(), 0, 1.0).unwrap();
        for t in (0..=120_000).step_by(10_000) {
            db.append(live.clone(), t, t as f64).unwrap();
        }
        // Cutoff = 120 s - 60 s = 60 s: samples before 60 s are gone from `live` already.
        assert_eq!(db.points(&live).unwrap().first().map(|p| p.t), Some(60_000));
        assert!(db.points(&old).is_some());
        db.prune();
        assert!(db.points(&old).is_none());
        assert_eq!(db.num_series(), 1);
    }

    #[test]
    fn ingest_expands_types_adds_target_labels_and_up() {
        let counter = IntCounterVec::new(Opts::new("msgs_total", "m"), &["instance"]).unwrap();
        counter.with_label_values(&["own:1"]).inc_by(3);
        let gauge = Gauge::new("temp", "t").unwrap();
        gauge.set(21.5);
        let hist = Histogram::with_opts(HistogramOpts::new("lat", "l").buckets(vec![0.5, 1.0])).unwrap();
        hist.observe(0.2);
        hist.observe(0.7);
        hist.observe(3.0);
        let plain = Counter::new("plain_total", "p").unwrap();
        plain.inc();
        let mut families = Vec::new();
        for c in [counter.collect(), gauge.collect(), hist.collect(), plain.collect()] {
            families.extend(c);
        }
        let mut db = Tsdb::new(Duration::from_secs(600));
        let stats =
            db.ingest_families(&families, &[("job", "node-red"), ("instance", "nodered:1881")], 10_000);
        assert_eq!(stats, ScrapeStats { appended: 1 + 1 + 5 + 1 + 1, rejected: 0, stale_marked: 0 });
        // honor_labels: the scraped `instance` wins, `job` is added.
        let msgs = labels(&[("__name__", "msgs_total"), ("instance", "own:1"), ("job", "node-red")]);
        assert_eq!(values(&db, &msgs), vec![(10_000, 3.0)]);
        let target = [("instance", "nodered:1881"), ("job", "node-red")];
        let with = |name: &str, extra: &[(&str, &str)]| {
            let mut l = labels(&target);
            l.insert("__name__".into(), name.into());
            l.extend(labels(extra));
            l
        };
        assert_eq!(values(&db, &with("temp", &[])), vec![(10_000, 21.5)]);
        assert_eq!(values(&db, &with("lat_bucket", &[("le", "0.5")])), vec![(10_000, 1.0)]);
        assert_eq!(values(&db, &with("lat_bucket", &[("le", "1")])), vec![(10_000, 2.0)]);
        assert_eq!(values(&db, &with("lat_bucket", &[("le", "+Inf")])), vec![(10_000, 3.0)]);
        assert_eq!(values(&db, &with("lat_sum", &[])), vec![(10_000, 3.9)]);
        assert_eq!(values(&db, &with("lat_count", &[])), vec![(10_000, 3.0)]);
        assert_eq!(values(&db, &with("up", &[])), vec![(10_000, 1.0)]);
    }

    #[test]
    fn vanished_series_and_failed_scrapes_get_staleness_markers() {
        let a = Gauge::new("a", "a").unwrap();
        let b = Gauge::new("b", "b").unwrap();
        let target = [("job", "mqtt"), ("instance", "x:1")];
        let mut db = Tsdb::new(Duration::from_secs(600));
        let both: Vec<_> = a.collect().into_iter().chain(b.collect()).collect();
        db.ingest_families(&both, &target, 0);
        let stats = db.ingest_families(&a.collect(), &target, 10_000);
        assert_eq!(stats.stale_marked, 1);
        let b_labels = labels(&[("__name__", "b"), ("job", "mqtt"), ("instance", "x:1")]);
        let b_points = db.points(&b_labels).unwrap();
        assert_eq!(b_points.len(), 2);
        assert!(is_stale_nan(b_points[1].v) && b_points[1].t == 10_000);
        let stats = db.scrape_failed(&target, 20_000);
        assert_eq!(stats, ScrapeStats { appended: 1, rejected: 0, stale_marked: 1 });
        let up = labels(&[("__name__", "up"), ("job", "mqtt"), ("instance", "x:1")]);
        assert_eq!(values(&db, &up), vec![(0, 1.0), (10_000, 1.0), (20_000, 0.0)]);
        // A second failure does not mark again.
        assert_eq!(db.scrape_failed(&target, 30_000).stale_marked, 0);
    }

    #[test]
    fn go_float_formatting_matches_go() {
        let g = |v: f64| format_float_g(v, None);
        assert_eq!(g(0.0), "0");
        assert_eq!(g(1.0), "1");
        assert_eq!(g(0.005), "0.005");
        assert_eq!(g(0.0001), "0.0001");
        assert_eq!(g(0.00001), "1e-05");
        assert_eq!(g(123456.0), "123456");
        assert_eq!(g(1e6), "1e+06");
        assert_eq!(g(1234567.0), "1.234567e+06");
        assert_eq!(g(-2.5), "-2.5");
        assert_eq!(g(f64::INFINITY), "+Inf");
        assert_eq!(g(f64::NAN), "NaN");
        let g4 = |v: f64| format_float_g(v, Some(4));
        assert_eq!(g4(0.0), "0");
        assert_eq!(g4(100.0), "100");
        assert_eq!(g4(1234.0), "1234");
        assert_eq!(g4(12346.0), "1.235e+04");
        assert_eq!(g4(1.5), "1.5");
        assert_eq!(g4(1.23456), "1.235");
        assert_eq!(g4(10000.0), "1e+04");
        assert_eq!(g4(0.000012346), "1.235e-05");
    }
}
