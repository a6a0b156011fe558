//! Reading the store for `SPARK`: the `[humidity, temperature]` of every stored record, tolerant of what
//! chaos left there (Spark-style: a record that does not cast is skipped and counted), in memory bounded by
//! a sample size whatever the store holds.
//!
//! A scan keeps every point up to [`SAMPLE_POINTS`]; past that it keeps a uniform sample of that size
//! (reservoir sampling, Algorithm R, drawn from the job's seed), so the same store and seed always give the
//! same sample. [`for_each_point`] reads the store once more, point by point, to label every record with
//! the model fitted on the sample. Both stop promptly when their `cancel` flag is raised.
//!
//! Records are parsed into just the two fields (other fields are skipped, not built into a map); only a
//! record that fails that fast path is parsed again as a whole JSON value to say why.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::Rng as _;
use serde::de::{self, Deserializer, Visitor};
use serde_json::{Map, Value};

use super::model::KMeansError;
use crate::kernel::seed::{Rng, Seed};
use crate::sinks::file_store::read::{self, Next};

/// How many `"path: reason"` lines a [`StoreScan`] keeps; further skips are only counted.
pub const MAX_PROBLEMS: usize = 10;

/// Most points a job holds in memory (3.2 MB): a store with more is fitted on a uniform sample of this
/// many, then labelled record by record.
pub const SAMPLE_POINTS: usize = 200_000;

/// What a scan found. Every record is counted once: `files == usable + skipped`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreScan {
    /// `[humidity, temperature]` of the usable records in the store's reading order, or, when there were
    /// more than the sample size, a uniform sample of them.
    pub points: Vec<[f64; 2]>,
    /// Usable records found (`points.len()` unless sampled).
    pub usable: usize,
    /// Number of records found.
    pub files: usize,
    /// Records that gave no point (not JSON, a value missing or not castable to a number, file vanished).
    pub skipped: usize,
    /// The first [`MAX_PROBLEMS`] skips as `"path: reason"`.
    pub problems: Vec<String>,
}

impl StoreScan {
    /// Whether `points` is a sample rather than every usable record.
    pub fn sampled(&self) -> bool {
        self.usable > self.points.len()
    }

    fn skip(&mut self, path: &Path, reason: &str) {
        self.skipped += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(format!("{}: {reason}", path.display()));
        }
    }
}

/// How much a scan keeps, and what stops it.
#[derive(Clone, Copy, Debug)]
pub struct ScanLimits<'a> {
    /// Most points kept; past it, a uniform sample of this many.
    pub sample: usize,
    /// Seed of the sample (with the stream name `spark-sample`).
    pub seed: u64,
    /// Raised to stop the scan; it then fails with [`KMeansError::Cancelled`].
    pub cancel: Option<&'a AtomicBool>,
}

impl ScanLimits<'_> {
    /// Keep every point, never cancelled.
    pub fn everything() -> ScanLimits<'static> {
        ScanLimits { sample: usize::MAX, seed: 0, cancel: None }
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }
}

/// Reads every record of the store at `root`, in either layout, in a fixed order (determinism; see
/// [`read::walk`]), keeping every point. Values may be JSON numbers or strings holding a number
/// (surrounding whitespace allowed); fractional values are kept, not truncated as Spark's `cast("int")`
/// would. A missing root gives an empty scan, a file that vanishes or a frame that is torn while scanning
/// is skipped; any other I/O failure is an error naming the path.
pub fn scan_store(root: &Path) -> Result<StoreScan, KMeansError> {
    scan_store_with(root, &ScanLimits::everything())
}

/// [`scan_store`] keeping at most `limits.sample` points (a seeded reservoir sample past that).
pub fn scan_store_with(root: &Path, limits: &ScanLimits<'_>) -> Result<StoreScan, KMeansError> {
    let mut scan = StoreScan::default();
    let mut sample = Reservoir::new(limits.sample, limits.seed);
    read::walk(root, &mut |path, bytes| {
        if limits.cancelled() {
            return Next::Break(());
        }
        scan.files += 1;
        match bytes.and_then(parse_point) {
            Ok(point) => sample.offer(point),
            Err(reason) => scan.skip(path, &reason),
        }
        Next::Continue(())
    })
    .map_err(|source| KMeansError::Io { action: "read", path: root.to_path_buf(), source })?;
    if limits.cancelled() {
        return Err(KMeansError::Cancelled);
    }
    scan.usable = sample.seen;
    scan.points = sample.points;
    if scan.skipped > 0 {
        tracing::info!(root = %root.display(), files = scan.files, skipped = scan.skipped,
            first = ?scan.problems.first(), "k-means store scan skipped unusable records");
    }
    tracing::debug!(root = %root.display(), files = scan.files, usable = scan.usable, kept = scan.points.len(),
        "k-means store scanned");
    Ok(scan)
}

/// Calls `each` with the point of every usable record among the first `files` records of the store, in
/// the scan's order (records stored after a scan come later, so they are left out), and returns how many
/// there were. An error from `each` stops the walk and is returned; so is a raised `cancel`.
pub fn for_each_point(
    root: &Path,
    files: usize,
    cancel: Option<&AtomicBool>,
    each: &mut dyn FnMut([f64; 2]) -> std::io::Result<()>,
) -> Result<usize, KMeansError> {
    let (mut visited, mut points) = (0usize, 0usize);
    let mut failed = None;
    read::walk(root, &mut |_, bytes| {
        if visited == files || cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Next::Break(());
        }
        visited += 1;
        if let Ok(point) = bytes.and_then(parse_point) {
            points += 1;
            if let Err(e) = each(point) {
                failed = Some(e);
                return Next::Break(());
            }
        }
        Next::Continue(())
    })
    .map_err(|source| KMeansError::Io { action: "read", path: root.to_path_buf(), source })?;
    if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
        return Err(KMeansError::Cancelled);
    }
    match failed {
        Some(source) => Err(KMeansError::Io { action: "write predictions from", path: root.into(), source }),
        None => Ok(points),
    }
}

/// Algorithm R: the first `cap` points in order, then each later point replaces a random one with
/// probability `cap / seen`. No number is drawn until the sample is full, so a store that fits is kept
/// whole and in order.
struct Reservoir {
    cap: usize,
    seen: usize,
    points: Vec<[f64; 2]>,
    rng: Option<Rng>,
    seed: u64,
}

impl Reservoir {
    fn new(cap: usize, seed: u64) -> Reservoir {
        Reservoir { cap, seen: 0, points: Vec::new(), rng: None, seed }
    }

    fn offer(&mut self, point: [f64; 2]) {
        if self.points.len() < self.cap {
            self.points.push(point);
        } else {
            let seed = self.seed;
            let j =
                self.rng.get_or_insert_with(|| Seed(seed).stream("spark-sample")).gen_range(0..=self.seen);
            if let Some(slot) = self.points.get_mut(j) {
                *slot = point;
            }
        }
        self.seen += 1;
    }
}

/// `[humidity, temperature]` of one record, or why it has none.
pub(super) fn parse_point(bytes: &[u8]) -> Result<[f64; 2], String> {
    // The fast path reads only the two fields. A struct also deserialises from a JSON array, which is not
    // a record: only objects take it.
    let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if object
        && let Ok(Fields { humidity: Some(Cast(Some(h))), temperature: Some(Cast(Some(t))) }) =
            serde_json::from_slice(bytes)
    {
        return Ok([h, t]);
    }
    parse_record(bytes)
}

/// The two fields a record needs; anything else in it is skipped unread.
#[derive(serde::Deserialize)]
struct Fields {
    humidity: Option<Cast>,
    temperature: Option<Cast>,
}

/// A field cast to a finite number, `None` when it does not cast (the slow path then says why).
struct Cast(Option<f64>);

impl<'de> serde::Deserialize<'de> for Cast {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cast, D::Error> {
        struct Number;
        impl Visitor<'_> for Number {
            type Value = Cast;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string holding one")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cast, E> {
                Ok(Cast(Some(v).filter(|x| x.is_finite())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cast, E> {
                Ok(Cast(Some(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cast, E> {
                Ok(Cast(Some(v as f64)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cast, E> {
                Ok(Cast(cast_number(v)))
            }
        }
        d.deserialize_any(Number)
    }
}

/// The slow path: the record as a whole JSON value, and the reason it gives no point.
fn parse_record(bytes: &[u8]) -> Result<[f64; 2], String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|err| format!("not JSON ({err})"))?;
    let Value::Object(fields) = value else {
        return Err("not a JSON object".to_owned());
    };
    Ok([cast_field(&fields, "humidity")?, cast_field(&fields, "temperature")?])
}

/// The field `name` as a finite number: a JSON number or a string holding one.
fn cast_field(fields: &Map<String, Value>, name: &str) -> Result<f64, String> {
    let value = fields.get(name).ok_or_else(|| format!("{name} is missing"))?;
    let number = match value {
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite()),
        Value::String(s) => cast_number(s),
        _ => None,
    };
    number.ok_or_else(|| {
        let shown: String = value.to_string().chars().take(40).collect();
        format!("{name} {shown} does not cast to a number")
    })
}

/// A string as a finite number (` None`, `NaN`, `inf` and garbage give `None`).
pub(super) fn cast_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn put(root: &Path, rel: &str, content: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    #[test]
    fn scan_store_keeps_castable_records_and_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let rec = |h: &str, t: &str| {
            format!(
                r#"{{"device_id":"d","humidity":{h},"temperature":{t},"time":"2020-02-18T21:23:32.106Z"}}"#
            )
        };
        put(root, "2020-02-18/a.json", &rec(r#""21""#, r#""40""#));
        put(root, "2020-02-18/b.json", &rec("22.5", "39"));
        put(root, "2020-02-18/c.json", &rec(r#"" None""#, r#"" None""#));
        put(root, "2020-02-19/d.json", "not json {");
        put(root, "2020-02-19/e.json", r#"{"device_id":"d","humidity":"21"}"#);
        put(root, "2020-02-19/f.json", &rec(r#"" 23 ""#, r#""38""#));
        put(root, "2020-02-19/g.json", "[21, 40]");
        put(root, "2020-02-19/h.json", &rec(r#""NaN""#, r#""40""#));
        put(root, "2020-02-19/i.json", &rec("null", "true"));
        put(root, "2020-02-19/nested/deeper/j.json", &rec("24", r#""37""#));
        put(root, "2020-02-19/notes.txt", &rec("1", "1"));

        let scan = scan_store(root).unwrap();
        assert_eq!(scan.points, vec![[21.0, 40.0], [22.5, 39.0], [23.0, 38.0], [24.0, 37.0]]);
        assert_eq!((scan.files, scan.usable, scan.skipped, scan.sampled()), (10, 4, 6, false));
        let problems: Vec<&str> =
            scan.problems.iter().map(|p| p.strip_prefix(&*root.to_string_lossy()).unwrap()).collect();
        assert_eq!(
            problems,
            [
                r#"/2020-02-18/c.json: humidity " None" does not cast to a number"#,
                "/2020-02-19/d.json: not JSON (expected ident at line 1 column 2)",
                "/2020-02-19/e.json: temperature is missing",
                "/2020-02-19/g.json: not a JSON object",
                r#"/2020-02-19/h.json: humidity "NaN" does not cast to a number"#,
                "/2020-02-19/i.json: humidity null does not cast to a number",
            ]
        );
    }

    #[test]
    fn the_fast_path_agrees_with_the_whole_value_parse() {
        let cases = [
            r#"{"humidity":"21","temperature":40}"#,
            r#" {"temperature":-3.5e1, "x":[1,{"y":2}], "humidity":18446744073709551615}"#,
            r#"{"humidity":"2\u0031","temperature":"4"}"#,
            r#"{"humidity":1,"humidity":2,"temperature":3}"#,
            r#"{"humidity":1e999,"temperature":3}"#,
            r#"{"humidity":{},"temperature":3}"#,
            r#"{"humidity":"1","temperature":"2"} x"#,
            r#"[1,2]"#,
            r#""{}""#,
            "",
        ];
        for case in cases {
            assert_eq!(parse_point(case.as_bytes()), parse_record(case.as_bytes()), "{case}");
        }
        assert_eq!(
            parse_point(br#"{"humidity":1,"humidity":2,"temperature":3}"#),
            Ok([2.0, 3.0]),
            "last wins"
        );
    }

    #[test]
    fn scan_store_handles_missing_root_and_caps_problems() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(scan_store(&dir.path().join("absent")).unwrap(), StoreScan::default());

        for i in 0..MAX_PROBLEMS + 3 {
            put(dir.path(), &format!("2020-02-18/{i:02}.json"), "garbage");
        }
        let scan = scan_store(dir.path()).unwrap();
        assert_eq!(
            (scan.files, scan.skipped, scan.problems.len()),
            (MAX_PROBLEMS + 3, MAX_PROBLEMS + 3, MAX_PROBLEMS)
        );
        assert!(scan.problems[0].contains("00.json: not JSON"), "{}", scan.problems[0]);
    }

    /// A store of `n` records `{"humidity": i, "temperature": 0}`, one bad record every tenth.
    fn numbered(root: &Path, n: usize) {
        for i in 0..n {
            let body =
                if i % 10 == 9 { "bad".to_owned() } else { format!(r#"{{"humidity":{i},"temperature":0}}"#) };
            put(root, &format!("2020-02-18/{i:04}.json"), &body);
        }
    }

    #[test]
    fn a_scan_past_its_sample_size_keeps_a_uniform_seeded_sample() {
        let dir = tempfile::tempdir().unwrap();
        numbered(dir.path(), 1000);
        let limits = |seed| ScanLimits { sample: 100, seed, cancel: None };
        let scan = scan_store_with(dir.path(), &limits(1)).unwrap();
        assert_eq!((scan.files, scan.usable, scan.skipped, scan.points.len()), (1000, 900, 100, 100));
        assert!(scan.sampled());
        assert_eq!(scan, scan_store_with(dir.path(), &limits(1)).unwrap(), "the same seed, the same sample");
        assert_ne!(scan.points, scan_store_with(dir.path(), &limits(2)).unwrap().points);
        let mut ids: Vec<u64> = scan.points.iter().map(|p| p[0] as u64).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 100, "distinct records");
        // Uniform: about as many from the second half of the store as from the first (binomial, sd 5).
        let late = ids.iter().filter(|&&i| i >= 500).count();
        assert!((35..=65).contains(&late), "{late} of 100 from the second half");

        let whole = scan_store_with(dir.path(), &ScanLimits { sample: 900, seed: 1, cancel: None }).unwrap();
        assert_eq!(whole, scan_store(dir.path()).unwrap(), "a store that fits is kept whole, in order");
    }

    #[test]
    fn for_each_point_labels_the_scanned_records_and_stops_when_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        numbered(dir.path(), 50);
        let mut seen = Vec::new();
        let n = for_each_point(dir.path(), 20, None, &mut |p| {
            seen.push(p[0]);
            Ok(())
        })
        .unwrap();
        let want: Vec<f64> = (0..20).filter(|i| i % 10 != 9).map(|i| i as f64).collect();
        assert_eq!((n, seen), (18, want), "the first 20 records, bad ones skipped");

        let failed = for_each_point(dir.path(), 50, None, &mut |_| Err(std::io::Error::other("disk full")));
        assert!(matches!(failed, Err(KMeansError::Io { .. })), "{failed:?}");

        let cancel = AtomicBool::new(false);
        let mut count = 0;
        let stopped = for_each_point(dir.path(), 50, Some(&cancel), &mut |_| {
            count += 1;
            if count == 5 {
                cancel.store(true, Ordering::Relaxed);
            }
            Ok(())
        });
        assert!(matches!(stopped, Err(KMeansError::Cancelled)), "{stopped:?}");
        assert_eq!(count, 5);
        let limits = ScanLimits { sample: 10, seed: 1, cancel: Some(&cancel) };
        assert!(matches!(scan_store_with(dir.path(), &limits), Err(KMeansError::Cancelled)));
    }
}
