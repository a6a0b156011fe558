//! A seeded generator of a synthetic, GNFUV-shaped sensor dataset that the project can ship in place of the
//! real `pi2.csv` (whose license is unverified).
//!
//! Nothing here is copied or derived from the real rows; the generator only mimics the published shape of
//! that file (rdsea/bigdataincidentanalytics, `pipeline/sensors/simplesensor/pi2.csv`):
//! - header `device_id,humidity,temperature,time`, LF line endings, sorted by device id, then time;
//! - device ids shaped like Kubernetes pod names, `gnfuv-synth-exp1-<10 chars>-<5 chars>`, all distinct;
//! - one contiguous session per device, of uneven length (tens to a few hundred rows), sessions placed at
//!   different times of the same day, the earliest reading exactly at [`SynthParams::start`];
//! - gaps between readings mostly 5–11 s (median ≈ 6.6 s), never below 3.5 s, rarely up to ~51 s, with
//!   microsecond precision written as 9 fractional digits (`2018-03-26 17:19:17.406089000`);
//! - per device a base humidity (15–57) and temperature (19–45), drawn anti-correlated as in the real
//!   data, followed by a small random walk of integers; at most one low temperature outlier (3–9);
//! - rows whose humidity and temperature are both ` None` (leading space), over a few devices.
//!
//! The output is a pure function of [`SynthParams`]: the same parameters give byte-identical text.

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Characters Kubernetes uses in generated pod name suffixes (no vowels, no easily confused digits).
const POD_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// The most distinct 5-character suffixes, hence the most devices one dataset can have.
const MAX_DEVICES: usize = 27usize.pow(5);
/// Range of the per-device base humidity and of every humidity value.
const HUMIDITY: (i64, i64) = (15, 57);
/// Range of the per-device base temperature and of every temperature value except the outlier.
const TEMPERATURE: (i64, i64) = (19, 45);
/// How far a device's random walk may stray from its base value (humidity, temperature).
const WALK_SPREAD: (i64, i64) = (8, 5);
/// How much of the day the sessions are spread over (the real file spans about 9 hours).
const DAY_SPAN: TimeDelta = TimeDelta::hours(9);

/// The first reading of the real file: 2018-03-26 10:26:34 (checked at compile time).
const DEFAULT_START: NaiveDateTime = match NaiveDate::from_ymd_opt(2018, 3, 26) {
    Some(day) => match day.and_hms_opt(10, 26, 34) {
        Some(start) => start,
        None => panic!("10:26:34 is a valid time"),
    },
    None => panic!("2018-03-26 is a valid date"),
};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthParams {
    /// Seed of the random generator; the output depends on nothing else but the other fields.
    pub seed: u64,
    /// Number of devices (at most `rows` of them get a session, since each needs one row).
    pub devices: usize,
    /// Total number of data rows.
    pub rows: usize,
    /// How many of the rows have both values ` None` (at most `rows`).
    pub none_rows: usize,
    /// Time of the earliest reading; sessions are placed within the 9 hours after it, on the same day
    /// when there is room before midnight.
    pub start: NaiveDateTime,
}

impl Default for SynthParams {
    /// The shape of the real file: seed 2018, 9 devices, 1546 rows, 14 ` None` rows, from 2018-03-26 10:26:34.
    fn default() -> Self {
        SynthParams { seed: 2018, devices: 9, rows: 1546, none_rows: 14, start: DEFAULT_START }
    }
}

/// One reading of a session; `None` values are written as ` None`.
struct Reading {
    /// Time since the start of the session.
    at: TimeDelta,
    humidity: Option<i64>,
    temperature: Option<i64>,
}

/// The contiguous run of readings of one device.
struct Session {
    device_id: String,
    /// Time from [`SynthParams::start`] to the first reading.
    offset: TimeDelta,
    readings: Vec<Reading>,
}

/// Generates the dataset as CSV text with a header, LF line endings and a trailing newline.
///
/// Timestamps that would overflow chrono's range are clamped to its maximum.
pub fn synthesize(p: &SynthParams) -> String {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(p.seed);
    let n = p.devices.min(p.rows).min(MAX_DEVICES);
    let ids = device_ids(&mut rng, n);
    let sizes = session_sizes(&mut rng, n, p.rows);
    let mut sessions: Vec<Session> =
        ids.into_iter().zip(sizes).map(|(id, size)| session(&mut rng, id, size)).collect();
    place_sessions(&mut rng, &mut sessions, p.start);
    mark_none_rows(&mut rng, &mut sessions, p.none_rows.min(p.rows));
    add_outlier(&mut rng, &mut sessions);

    let mut out = String::from("device_id,humidity,temperature,time\n");
    let value = |v: Option<i64>| v.map_or_else(|| " None".to_owned(), |v| v.to_string());
    for s in &sessions {
        for r in &s.readings {
            let time = p.start.checked_add_signed(s.offset + r.at).unwrap_or(NaiveDateTime::MAX);
            out.push_str(&format!(
                "{},{},{},{}\n",
                s.device_id,
                value(r.humidity),
                value(r.temperature),
                time.format("%Y-%m-%d %H:%M:%S%.9f")
            ));
        }
    }
    tracing::debug!(seed = p.seed, devices = n, rows = p.rows, "synthetic dataset generated");
    out
}

/// `n` distinct, sorted pod-like ids sharing one replica-set hash: `gnfuv-synth-exp1-<10>-<5>`.
fn device_ids(rng: &mut Xoshiro256PlusPlus, n: usize) -> Vec<String> {
    let mut word = |len: usize| -> String {
        (0..len).map(|_| char::from(POD_ALPHABET[rng.gen_range(0..POD_ALPHABET.len())])).collect()
    };
    let hash = word(10);
    let mut ids = std::collections::BTreeSet::new();
    while ids.len() < n {
        ids.insert(format!("gnfuv-synth-exp1-{hash}-{}", word(5)));
    }
    ids.into_iter().collect()
}

/// Splits `rows` over `n` devices, at least one each, with weights spread from ~0.05 to ~1 in random order
/// (for the defaults: sessions of roughly 20 to 330 rows).
fn session_sizes(rng: &mut Xoshiro256PlusPlus, n: usize, rows: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let mut weights: Vec<f64> =
        (0..n).map(|i| 0.05 + (i as f64 + rng.gen_range(0.0..1.0)) / n as f64).collect();
    weights.shuffle(rng);
    let total: f64 = weights.iter().sum();
    let spare = rows - n;
    let shares: Vec<f64> = weights.iter().map(|w| w / total * spare as f64).collect();
    let mut sizes: Vec<usize> = shares.iter().map(|s| 1 + s.floor() as usize).collect();
    // Largest remainder first; ties go to the lower index so the result is fully determined.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| shares[b].fract().total_cmp(&shares[a].fract()).then(a.cmp(&b)));
    let missing = rows - sizes.iter().sum::<usize>();
    for &i in order.iter().cycle().take(missing) {
        sizes[i] += 1;
    }
    sizes
}

/// One inter-arrival gap: mostly 5–11 s skewed low (median ≈ 6.6 s), some 3.5–5 s, rarely 11–51 s.
fn gap(rng: &mut Xoshiro256PlusPlus) -> TimeDelta {
    let u: f64 = rng.gen_range(0.0..1.0);
    let secs = match rng.gen_range(0..100) {
        0..7 => 3.5 + 1.5 * u,
        7..97 => 5.0 + 6.0 * u.powf(1.8),
        _ => 11.0 + 40.0 * u.powi(3),
    };
    TimeDelta::microseconds((secs * 1e6).round() as i64)
}

/// A session of `size` readings: anti-correlated base values, then a bounded integer random walk.
fn session(rng: &mut Xoshiro256PlusPlus, device_id: String, size: usize) -> Session {
    let dryness: f64 = rng.gen_range(0.0..=1.0);
    let span = |(lo, hi): (i64, i64)| (hi - lo) as f64;
    let humid_base = (HUMIDITY.1 - (dryness * span(HUMIDITY)).round() as i64 + rng.gen_range(-2..=2))
        .clamp(HUMIDITY.0, HUMIDITY.1);
    let temp_base = (TEMPERATURE.0 + (dryness * span(TEMPERATURE)).round() as i64 + rng.gen_range(-2..=2))
        .clamp(TEMPERATURE.0, TEMPERATURE.1);
    let bounds =
        |base: i64, spread: i64, (lo, hi): (i64, i64)| ((base - spread).max(lo), (base + spread).min(hi));
    let humid_bounds = bounds(humid_base, WALK_SPREAD.0, HUMIDITY);
    let temp_bounds = bounds(temp_base, WALK_SPREAD.1, TEMPERATURE);
    let step = |rng: &mut Xoshiro256PlusPlus, v: i64, (lo, hi): (i64, i64)| {
        let delta = match rng.gen_range(0..100) {
            0..12 => -1,
            12..24 => 1,
            _ => 0,
        };
        (v + delta).clamp(lo, hi)
    };
    let (mut humidity, mut temperature, mut at) = (humid_base, temp_base, TimeDelta::zero());
    let mut readings = Vec::with_capacity(size);
    for i in 0..size {
        if i > 0 {
            at += gap(rng);
            humidity = step(rng, humidity, humid_bounds);
            temperature = step(rng, temperature, temp_bounds);
        }
        readings.push(Reading { at, humidity: Some(humidity), temperature: Some(temperature) });
    }
    Session { device_id, offset: TimeDelta::zero(), readings }
}

/// Gives each session a random start within the day window after `start`, the earliest exactly at `start`.
fn place_sessions(rng: &mut Xoshiro256PlusPlus, sessions: &mut [Session], start: NaiveDateTime) {
    let to_midnight = start
        .date()
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(DAY_SPAN, |midnight| midnight - start - TimeDelta::seconds(1));
    let window = DAY_SPAN.min(to_midnight).num_microseconds().unwrap_or(0);
    for s in sessions.iter_mut() {
        let length = s.readings.last().and_then(|r| r.at.num_microseconds()).unwrap_or(0);
        s.offset = TimeDelta::microseconds(rng.gen_range(0..=(window - length).max(0)));
    }
    let earliest = sessions.iter().map(|s| s.offset).min().unwrap_or_default();
    for s in sessions.iter_mut() {
        s.offset -= earliest;
    }
}

/// Blanks `count` readings (both values), drawn from a few randomly chosen devices (one per ~4 blanks,
/// at most 4, more only if they lack rows).
fn mark_none_rows(rng: &mut Xoshiro256PlusPlus, sessions: &mut [Session], count: usize) {
    if count == 0 {
        return;
    }
    let wanted = count.div_ceil(4).clamp(1, 4);
    let mut order: Vec<usize> = (0..sessions.len()).collect();
    order.shuffle(rng);
    let mut pool = Vec::new();
    for (taken, &s) in order.iter().enumerate() {
        if taken >= wanted && pool.len() >= count {
            break;
        }
        pool.extend((0..sessions[s].readings.len()).map(|r| (s, r)));
    }
    pool.sort_unstable();
    for i in rand::seq::index::sample(rng, pool.len(), count.min(pool.len())) {
        let (s, r) = pool[i];
        let reading = &mut sessions[s].readings[r];
        reading.humidity = None;
        reading.temperature = None;
    }
}

/// With probability 1/2, turns one non-blank temperature into a low outlier (3–9), as seen once in the
/// real data.
fn add_outlier(rng: &mut Xoshiro256PlusPlus, sessions: &mut [Session]) {
    if !rng.gen_bool(0.5) {
        return;
    }
    let mut candidates: Vec<&mut Reading> =
        sessions.iter_mut().flat_map(|s| s.readings.iter_mut()).filter(|r| r.temperature.is_some()).collect();
    if candidates.is_empty() {
        return;
    }
    let pick = rng.gen_range(0..candidates.len());
    candidates[pick].temperature = Some(rng.gen_range(3..=9));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::dataset::Dataset;

    fn load(p: &SynthParams) -> Dataset {
        Dataset::from_reader("synth", synthesize(p).as_bytes()).unwrap()
    }

    #[test]
    fn same_params_give_identical_bytes_and_seeds_differ() {
        let p = SynthParams::default();
        let a = synthesize(&p);
        assert_eq!(a, synthesize(&p));
        assert_ne!(a, synthesize(&SynthParams { seed: 2019, ..p.clone() }));
        assert!(a.starts_with("device_id,humidity,temperature,time\n"));
        assert!(a.ends_with('\n') && !a.contains('\r'));
    }

    #[test]
    fn default_output_has_the_gnfuv_shape() {
        let p = SynthParams::default();
        let ds = load(&p);
        assert_eq!(ds.rows.len(), 1546);
        let devices = ds.devices();
        assert_eq!(devices.len(), 9);
        for id in &devices {
            let parts: Vec<&str> = id.strip_prefix("gnfuv-synth-exp1-").unwrap().split('-').collect();
            assert_eq!(parts.iter().map(|s| s.len()).collect::<Vec<_>>(), vec![10, 5], "{id}");
            assert!(parts.concat().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{id}");
        }

        // Sorted by device id, then time; each device one contiguous block.
        assert!(ds.rows.windows(2).all(|w| (&w[0].device_id, w[0].time) < (&w[1].device_id, w[1].time)));
        let by_device = ds.by_device();
        let sizes: Vec<usize> = by_device.values().map(Vec::len).collect();
        assert!(sizes.iter().min().unwrap() <= &60 && sizes.iter().max().unwrap() >= &250, "{sizes:?}");

        // ` None` rows: both values, raw with a leading space, over a few devices.
        let nones: Vec<_> = ds.rows.iter().filter(|r| r.humidity_value().is_none()).collect();
        assert_eq!(nones.len(), 14);
        assert!(nones.iter().all(|r| r.humidity == " None" && r.temperature == " None"));
        let none_devices: std::collections::BTreeSet<_> = nones.iter().map(|r| &r.device_id).collect();
        assert!((2..=4).contains(&none_devices.len()), "{none_devices:?}");

        // Integer values inside the ranges, at most one low temperature outlier.
        let valued: Vec<_> = ds.rows.iter().filter(|r| r.humidity_value().is_some()).collect();
        assert!(
            valued.iter().all(|r| r.humidity.parse::<i64>().is_ok() && r.temperature.parse::<i64>().is_ok())
        );
        assert!(valued.iter().all(|r| (15.0..=57.0).contains(&r.humidity_value().unwrap())));
        let temps: Vec<f64> = valued.iter().map(|r| r.temperature_value().unwrap()).collect();
        assert!(temps.iter().all(|t| (3.0..=45.0).contains(t)));
        assert!(temps.iter().filter(|t| **t < 19.0).count() <= 1);

        // Same day, starting exactly at `start`, 9 fractional digits.
        let first = ds.rows.iter().map(|r| r.time).min().unwrap();
        assert_eq!(first, p.start);
        assert!(ds.rows.iter().all(|r| r.time.date() == p.start.date()));
        let line = synthesize(&p).lines().nth(1).unwrap().to_owned();
        assert_eq!(line.rsplit(',').next().unwrap().len(), 29, "{line}");
    }

    #[test]
    fn gaps_follow_the_real_distribution() {
        for seed in [1, 2018, 77] {
            let ds = load(&SynthParams { seed, ..SynthParams::default() });
            let mut gaps: Vec<f64> = ds
                .by_device()
                .values()
                .flat_map(|rows| rows.windows(2).map(|w| (w[1].time - w[0].time).as_seconds_f64()))
                .collect();
            gaps.sort_by(f64::total_cmp);
            let median = gaps[gaps.len() / 2];
            assert!((5.0..=9.0).contains(&median), "seed {seed}: median gap {median}");
            assert!(gaps[0] >= 3.5 && gaps[gaps.len() - 1] <= 51.0, "seed {seed}: {gaps:?}");
            let usual = gaps.iter().filter(|g| (5.0..=11.0).contains(*g)).count();
            assert!(
                usual * 10 >= gaps.len() * 8,
                "seed {seed}: only {usual} of {} gaps in 5–11 s",
                gaps.len()
            );
        }
    }

    #[test]
    fn requested_counts_are_honoured() {
        let start = SynthParams::default().start;
        for (devices, rows, none_rows) in [(3, 40, 5), (12, 600, 0), (5, 5, 5)] {
            let ds = load(&SynthParams { seed: 9, devices, rows, none_rows, start });
            assert_eq!(ds.rows.len(), rows);
            assert_eq!(ds.devices().len(), devices);
            assert_eq!(ds.rows.iter().filter(|r| r.temperature == " None").count(), none_rows);
        }
        // More devices than rows: one row per device that fits.
        let ds = load(&SynthParams { seed: 9, devices: 10, rows: 4, none_rows: 0, start });
        assert_eq!((ds.rows.len(), ds.devices().len()), (4, 4));
    }
}
