//! Finding chaos events in a captured metric, as the ChaosMeshWizard's notebook does
//! (`identify_chaos_around_maxima` and `find_number_of_chaos_groups` in its `chaos_lib_utils/reporting.py`),
//! and checking what it found against the faults that were really injected.
//!
//! The wizard finds the series' local maxima with `scipy.signal.find_peaks(prominence=…)`, walks out from
//! each peak to the first sample below `median × median_fraction` on either side (the walk to the left
//! stops at the first sample without checking it), marks the samples in between, and calls each run of
//! marked samples an event lasting from its first to its last sample's time. [`local_maxima`] and
//! [`prominence`] follow scipy's documented algorithm (`_local_maxima_1d`, `_peak_prominences`): plateaus
//! count once at their middle, and a peak's prominence is its height over the higher of the lowest
//! points between it and the nearest higher sample on each side. (The `find_peaks` crate was not used:
//! it takes the other middle of even plateaus, counts plateaus at the series' edges as peaks and panics
//! on series of fewer than two samples — and the wizard's results are defined by scipy's.)

use serde::{Deserialize, Serialize};

/// The detector's settings (the notebook used `prominence=50` and the default `median_fraction=1`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Detector {
    /// Least prominence of a peak (scipy's `prominence`).
    pub prominence: f64,
    /// The threshold an event's ends fall below, as a share of the series' median.
    pub median_fraction: f64,
    /// Keep only this many peaks, the highest (the wizard's `num_peaks`); none: all.
    pub num_peaks: Option<usize>,
}

impl Default for Detector {
    fn default() -> Self {
        Detector { prominence: 50.0, median_fraction: 1.0, num_peaks: None }
    }
}

/// A detected event: sample indices (inclusive) and times.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// First sample.
    pub start: usize,
    /// Last sample.
    pub end: usize,
    /// Its time (seconds, as the series').
    pub start_time: f64,
    /// Its time.
    pub end_time: f64,
    /// The highest value inside.
    pub peak: f64,
}

impl Event {
    /// The recovery time the wizard reports: last sample's time minus the first's.
    pub fn duration(&self) -> f64 {
        self.end_time - self.start_time
    }
}

/// scipy's `_local_maxima_1d`: indices of samples higher than their left neighbour and than the first
/// different sample to their right (a plateau counts once, at its middle, rounded down); never the ends.
pub fn local_maxima(x: &[f64]) -> Vec<usize> {
    let mut out = Vec::new();
    let n = x.len();
    if n < 3 {
        return out;
    }
    let last = n - 1;
    let mut i = 1;
    while i < last {
        if x[i - 1] < x[i] {
            let mut ahead = i + 1;
            while ahead < last && x[ahead] == x[i] {
                ahead += 1;
            }
            if x[ahead] < x[i] {
                out.push((i + ahead - 1) / 2);
                i = ahead;
            }
        }
        i += 1;
    }
    out
}

/// scipy's `_peak_prominences` without a window: the peak's height over the higher of the lowest samples
/// on each side before a higher sample (or the series' end).
pub fn prominence(x: &[f64], peak: usize) -> f64 {
    let top = x[peak];
    let lowest = |range: &mut dyn Iterator<Item = usize>| {
        let mut min = top;
        for i in range {
            if x[i] > top {
                break;
            }
            min = min.min(x[i]);
        }
        min
    };
    let left = lowest(&mut (0..=peak).rev());
    let right = lowest(&mut (peak..x.len()));
    top - left.max(right)
}

/// The median (the mean of the middle two for an even count, as pandas'); none for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) { (v[mid - 1] + v[mid]) / 2.0 } else { v[mid] })
}

impl Detector {
    /// The wizard's events in `(time, value)` samples.
    pub fn detect(&self, times: &[f64], values: &[f64]) -> Vec<Event> {
        let n = values.len().min(times.len());
        let (times, values) = (&times[..n], &values[..n]);
        let Some(median) = median(values) else { return Vec::new() };
        let threshold = median * self.median_fraction;
        // Where the series rests at its floor most of the time (a lag of 0 between faults), the median is
        // that floor and nothing is below it: an event then ends back at the floor. Otherwise the floor is
        // below the median and this changes nothing.
        let floor = values.iter().copied().fold(f64::INFINITY, f64::min);
        let below = |v: f64| v < threshold || v <= floor;
        let mut peaks: Vec<usize> =
            local_maxima(values).into_iter().filter(|&p| prominence(values, p) >= self.prominence).collect();
        if let Some(keep) = self.num_peaks
            && peaks.len() > keep
        {
            // The highest `keep`, back in time order.
            peaks.sort_by(|a, b| values[*a].total_cmp(&values[*b]).then(a.cmp(b)));
            peaks.drain(..peaks.len() - keep);
            peaks.sort_unstable();
        }
        let mut chaos = vec![false; n];
        for peak in peaks {
            let mut start = peak;
            while start > 0 && !below(values[start]) {
                start -= 1;
            }
            let mut end = peak;
            while end < n - 1 && !below(values[end]) {
                end += 1;
            }
            if start != end {
                chaos[start..=end].iter_mut().for_each(|c| *c = true);
            }
        }
        // Runs of marked samples. (The wizard's grouping closes a run at the sample before the first
        // unmarked one, and one reaching the end at the sample before the last.)
        let mut events = Vec::new();
        let mut open: Option<usize> = None;
        for (i, &marked) in chaos.iter().enumerate() {
            match (marked, open) {
                (true, None) => open = Some(i),
                (false, Some(s)) => {
                    events.push(self.event(times, values, s, i - 1));
                    open = None;
                }
                _ => {}
            }
            if i == n - 1
                && marked
                && let Some(s) = open.take()
            {
                events.push(self.event(times, values, s, i.saturating_sub(1).max(s)));
            }
        }
        events
    }

    fn event(&self, times: &[f64], values: &[f64], start: usize, end: usize) -> Event {
        let peak = values[start..=end].iter().copied().fold(f64::MIN, f64::max);
        Event { start, end, start_time: times[start], end_time: times[end], peak }
    }
}

/// A fault window of the ground truth, in the series' time base (seconds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// The fault (its record id).
    pub fault: String,
    /// Its kind.
    pub kind: String,
    /// When it was applied.
    pub start: f64,
    /// When it ended (none: it lasted to the end).
    pub end: Option<f64>,
}

/// How the detected events compare with the injected faults: an event is true when a fault window
/// started inside it or within `slack` seconds before it; a fault is found when such an event exists.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// Events explained by a fault.
    pub true_events: usize,
    /// Events no fault explains.
    pub false_events: usize,
    /// Faults some event follows.
    pub found_faults: usize,
    /// Faults no event follows.
    pub missed_faults: usize,
    /// `true_events / events` (none without events).
    pub precision: Option<f64>,
    /// `found_faults / faults` (none without faults).
    pub recall: Option<f64>,
    /// Per event: the time from the fault's start to the event's end (the recovery as the ground truth
    /// sees it), for explained events.
    pub recovery_from_fault: Vec<f64>,
    /// Events that more than one fault explains (not recovered before the next fault came).
    #[serde(default)]
    pub merged_events: usize,
}

/// Matches `events` against `faults` (see [`Match`]).
pub fn match_truth(events: &[Event], faults: &[Window], slack: f64) -> Match {
    let explains = |f: &Window, e: &Event| f.start >= e.start_time - slack && f.start <= e.end_time;
    let mut m = Match::default();
    for e in events {
        m.merged_events += usize::from(faults.iter().filter(|f| explains(f, e)).count() > 1);
        match faults.iter().filter(|f| explains(f, e)).map(|f| f.start).reduce(f64::min) {
            Some(start) => {
                m.true_events += 1;
                m.recovery_from_fault.push(e.end_time - start);
            }
            None => m.false_events += 1,
        }
    }
    for f in faults {
        if events.iter().any(|e| explains(f, e)) {
            m.found_faults += 1;
        } else {
            m.missed_faults += 1;
        }
    }
    m.precision = (!events.is_empty()).then(|| m.true_events as f64 / events.len() as f64);
    m.recall = (!faults.is_empty()).then(|| m.found_faults as f64 / faults.len() as f64);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxima_follow_scipy_with_plateaus_and_edges() {
        assert_eq!(local_maxima(&[1.0, 3.0, 1.0, 2.0, 2.0, 1.0, 5.0]), [1, 3]);
        assert_eq!(local_maxima(&[1.0, 2.0, 2.0, 2.0, 1.0]), [2]);
        assert_eq!(local_maxima(&[2.0, 2.0, 1.0]), Vec::<usize>::new(), "an edge plateau is no peak");
        assert_eq!(local_maxima(&[1.0, 2.0, 2.0]), Vec::<usize>::new());
        assert!(local_maxima(&[]).is_empty() && local_maxima(&[1.0]).is_empty());
        // The 3 stands 2 over its higher base (the 1 before the 6); the 6 over the lowest point, 0.
        let x = [0.0, 1.0, 0.0, 3.0, 1.0, 6.0, 0.0];
        assert_eq!(local_maxima(&x), [1, 3, 5]);
        assert_eq!([prominence(&x, 1), prominence(&x, 3), prominence(&x, 5)], [1.0, 2.0, 6.0]);
    }

    #[test]
    fn events_span_from_below_the_median_to_below_the_median() {
        let values = [1.0, 1.0, 1.0, 9.0, 7.0, 5.0, 1.0, 1.0, 1.0, 1.0];
        let times: Vec<f64> = (0..12).map(|i| i as f64 * 2.0).collect();
        let d = Detector { prominence: 5.0, ..Detector::default() };
        let events = d.detect(&times, &values);
        assert_eq!(events.len(), 1);
        assert_eq!((events[0].start, events[0].end, events[0].duration(), events[0].peak), (2, 6, 8.0, 9.0));
        assert!(Detector { prominence: 9.0, ..d }.detect(&times, &values).is_empty(), "not prominent enough");
        // A series resting at 0 (a lag between faults): events end back at 0.
        let values = [0.0, 0.0, 0.0, 0.0, 5.0, 9.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let events = d.detect(&times, &values);
        assert_eq!(events.iter().map(|e| (e.start, e.end)).collect::<Vec<_>>(), [(3, 7)]);
    }

    #[test]
    fn truth_matching_counts_explained_events_and_found_faults() {
        let e = |s: f64, t: f64| Event { start: 0, end: 0, start_time: s, end_time: t, peak: 0.0 };
        let w = |s: f64| Window { fault: "f".into(), kind: "k".into(), start: s, end: Some(s + 30.0) };
        let m = match_truth(&[e(100.0, 160.0), e(400.0, 420.0)], &[w(98.0), w(250.0)], 5.0);
        assert_eq!((m.true_events, m.false_events, m.found_faults, m.missed_faults), (1, 1, 1, 1));
        assert_eq!(m.merged_events, 0);
        let merged = match_truth(&[e(100.0, 300.0)], &[w(98.0), w(250.0)], 5.0);
        assert_eq!((merged.merged_events, merged.found_faults, merged.true_events), (1, 2, 1));
        assert_eq!((m.precision, m.recall, m.recovery_from_fault), (Some(0.5), Some(0.5), vec![62.0]));
    }
}
