//! Analysis of captured runs: the wizard's events and recovery times per run, checked against the ground
//! truth where there is one; then per point and across the grid — summaries with confidence intervals,
//! the dose-response regression of recovery time on the first parameter, the detector's precision and
//! recall. `summary.json` is [`CampaignSummary`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::detect::{self, Event, Match, Window};
use super::run::RunId;
use super::series::Series;
use super::spec::{Analysis, Probe, ProbeMode};
use super::stats::{self, Regression, Summary};

/// One run's analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Which run.
    pub run: RunId,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// Samples of the analysed metric.
    pub samples: usize,
    /// The events found.
    pub events: Vec<Event>,
    /// Their recovery times (the wizard's durations), seconds.
    pub recoveries: Vec<f64>,
    /// The faults injected (none for CSVs captured elsewhere).
    pub faults: Option<usize>,
    /// Events against faults.
    pub truth: Option<Match>,
    /// What went wrong without failing the run.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The probes, judged.
    #[serde(default)]
    pub probes: Vec<ProbeResult>,
    /// The resilience score, 0–100 (none without probes).
    #[serde(default)]
    pub resilience: Option<f64>,
    /// How the run departs from its design: events no fault explains, faults without an event, an
    /// event not over when the capture ended. Such a run still counts; the report lists it apart.
    #[serde(default)]
    pub deviations: Vec<String>,
}

/// A probe judged over one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Its name.
    pub name: String,
    /// Its weight.
    pub weight: f64,
    /// Whether it passed in its mode.
    pub passed: bool,
    /// Samples judged.
    pub judged: usize,
    /// Samples that failed.
    pub failed: usize,
}

/// Judges `probe` over its samples in `series`, as Litmus does around the chaos that starts at
/// `chaos_from` (the first fault): `continuous` over every sample from then on, `sot` the last sample
/// before it, `eot` the last sample, `edge` both. A probe without samples fails.
fn judge(probe: &Probe, series: &BTreeMap<String, Series>, chaos_from: Option<f64>) -> ProbeResult {
    let empty = Series::default();
    let s = series.get(&probe.series()).unwrap_or(&empty);
    let from = chaos_from.unwrap_or(f64::NEG_INFINITY);
    let during: Vec<f64> =
        s.times.iter().zip(&s.values).filter(|(t, _)| **t >= from).map(|(_, v)| *v).collect();
    let before = s.times.iter().zip(&s.values).rev().find(|(t, _)| **t < from).map(|(_, v)| *v);
    let start = before.or_else(|| s.values.first().copied());
    let end = s.values.last().copied();
    let judged: Vec<f64> = match probe.mode {
        ProbeMode::Continuous => during,
        ProbeMode::Sot => start.into_iter().collect(),
        ProbeMode::Eot => end.into_iter().collect(),
        ProbeMode::Edge => start.into_iter().chain(end).collect(),
    };
    let failed = judged.iter().filter(|v| !probe.passes(**v)).count();
    ProbeResult {
        name: probe.name.clone(),
        weight: probe.weight,
        passed: !judged.is_empty() && failed == 0,
        judged: judged.len(),
        failed,
    }
}

/// Litmus's resilience score: `Σ weight × passed × 100 / Σ weight` (none without probes).
pub fn resilience(probes: &[ProbeResult]) -> Option<f64> {
    let total: f64 = probes.iter().map(|p| p.weight).sum();
    let passed: f64 = probes.iter().filter(|p| p.passed).map(|p| p.weight).fold(0.0, |a, w| a + w);
    (total > 0.0).then(|| passed * 100.0 / total)
}

impl RunResult {
    /// A run that could not be done.
    pub fn failed(run: &RunId, error: String) -> RunResult {
        RunResult {
            run: run.clone(),
            error: Some(error),
            samples: 0,
            events: Vec::new(),
            recoveries: Vec::new(),
            faults: None,
            truth: None,
            warnings: Vec::new(),
            probes: Vec::new(),
            resilience: None,
            deviations: Vec::new(),
        }
    }
}

/// How a run's events depart from its design (see [`RunResult::deviations`]).
fn deviations(events: &[Event], samples: usize, truth: Option<&Match>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(m) = truth {
        if m.false_events > 0 {
            out.push(format!("{} of {} events follow no fault", m.false_events, events.len()));
        }
        if m.merged_events > 0 {
            out.push(format!(
                "{} of {} events follow more than one fault (not recovered before the next)",
                m.merged_events,
                events.len()
            ));
        }
        if m.missed_faults > 0 {
            out.push(format!(
                "{} of {} faults are followed by no event",
                m.missed_faults,
                m.found_faults + m.missed_faults
            ));
        }
    }
    if let Some(last) = events.last().filter(|e| samples > 0 && e.end + 1 >= samples) {
        out.push(format!("the event from {:.0} s had not recovered when the capture ended", last.start_time));
    }
    out
}

/// Finds the events of `series[a.metric]` and matches them against `truth`.
pub fn analyse_run(
    a: &Analysis,
    probes: &[Probe],
    run: &RunId,
    series: &BTreeMap<String, Series>,
    truth: Option<&[Window]>,
) -> RunResult {
    let Some(s) = series.get(&a.metric).filter(|s| !s.is_empty()) else {
        let have: Vec<&str> = series.keys().map(String::as_str).collect();
        return RunResult::failed(
            run,
            format!(
                "no samples of {:?} (captured: {})",
                a.metric,
                if have.is_empty() { "nothing".into() } else { have.join(", ") }
            ),
        );
    };
    let events = a.detector().detect(&s.times, &s.values);
    let recoveries = events.iter().map(Event::duration).collect();
    // Faults lasting past the capture are conditions of the run, not events to find.
    let last = s.times.last().copied().unwrap_or(f64::MAX);
    let windows: Option<Vec<Window>> = truth.map(|t| {
        t.iter()
            .filter(|w| w.end.is_some_and(|e| e < last))
            .filter(|w| a.faults.is_empty() || a.faults.contains(&w.kind))
            .cloned()
            .collect()
    });
    let truth_match = windows.as_deref().map(|t| detect::match_truth(&events, t, a.slack.as_secs_f64()));
    let chaos_from = truth.and_then(|t| t.iter().map(|w| w.start).reduce(f64::min));
    let probes: Vec<ProbeResult> = probes.iter().map(|p| judge(p, series, chaos_from)).collect();
    RunResult {
        run: run.clone(),
        error: None,
        samples: s.len(),
        deviations: deviations(&events, s.len(), truth_match.as_ref()),
        events,
        recoveries,
        faults: windows.as_ref().map(Vec::len),
        truth: truth_match,
        warnings: Vec::new(),
        resilience: resilience(&probes),
        probes,
    }
}

/// One point of the grid across its seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointSummary {
    /// The point's values.
    pub point: BTreeMap<String, String>,
    /// The first parameter's number.
    pub x: Option<f64>,
    /// Runs (done / failed).
    pub runs: usize,
    /// Failed runs.
    pub failed: usize,
    /// Runs that deviate from the design.
    #[serde(default)]
    pub deviating: usize,
    /// Events found.
    pub events: usize,
    /// Recovery times of every event.
    pub recovery: Option<Summary>,
    /// Recovery as the ground truth sees it: from the fault's start to the event's end.
    pub truth_recovery: Option<Summary>,
    /// The runs' resilience scores.
    pub resilience: Option<Summary>,
}

/// The whole campaign (`summary.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CampaignSummary {
    /// The campaign's name.
    pub name: String,
    /// Runs.
    pub runs: usize,
    /// Failed runs, with why.
    pub failed: Vec<(String, String)>,
    /// Runs that deviate from the design, with how.
    #[serde(default)]
    pub deviating: Vec<(String, Vec<String>)>,
    /// The live instance the runs went to (`--target`); none for sim runs.
    #[serde(default)]
    pub target: Option<String>,
    /// Every recovery time (the wizard's RQ1: its mean).
    pub recovery: Option<Summary>,
    /// Recovery from each explained event's fault start to the event's end (what the wizard's start —
    /// the first sample of the walk out from the peak — only approximates).
    pub truth_recovery: Option<Summary>,
    /// Per point, in grid order.
    pub points: Vec<PointSummary>,
    /// Recovery time against the first parameter, over every event (the wizard's RQ2 and its Fig. 3).
    pub regression: Option<Regression>,
    /// The same line over the runs that do not deviate (none when no run deviates): how much of the
    /// effect the deviating runs carry.
    #[serde(default)]
    pub regression_without_deviating: Option<Regression>,
    /// The first parameter's name.
    pub parameter: Option<String>,
    /// Detection against the ground truth over all runs: (events explained, events), (faults found, faults).
    pub precision: Option<f64>,
    /// Faults found / faults.
    pub recall: Option<f64>,
    /// Every run's resilience score.
    pub resilience: Option<Summary>,
}

fn summary_has_deviating(results: &[RunResult]) -> bool {
    results.iter().any(|r| r.error.is_none() && !r.deviations.is_empty())
}

/// Summarises `results` (in plan order).
pub fn summarise(name: &str, parameter: Option<&str>, results: &[RunResult]) -> CampaignSummary {
    let mut points: Vec<PointSummary> = Vec::new();
    let mut all = Vec::new();
    let mut pairs = Vec::new();
    let mut regular = Vec::new();
    let (mut explained, mut events, mut found, mut faults) = (0usize, 0usize, 0usize, 0usize);
    let mut index: BTreeMap<&BTreeMap<String, String>, usize> = BTreeMap::new();
    for r in results {
        let idx = match index.get(&r.run.point) {
            Some(i) => *i,
            None => {
                index.insert(&r.run.point, points.len());
                points.push(PointSummary {
                    point: r.run.point.clone(),
                    x: r.run.x,
                    runs: 0,
                    failed: 0,
                    deviating: 0,
                    events: 0,
                    recovery: None,
                    truth_recovery: None,
                    resilience: None,
                });
                points.len() - 1
            }
        };
        let p = &mut points[idx];
        p.runs += 1;
        if r.error.is_some() {
            p.failed += 1;
            continue;
        }
        p.events += r.events.len();
        p.deviating += usize::from(!r.deviations.is_empty());
        all.extend(r.recoveries.iter().copied());
        if let Some(x) = r.run.x {
            pairs.extend(r.recoveries.iter().map(|y| (x, *y)));
            if r.deviations.is_empty() {
                regular.extend(r.recoveries.iter().map(|y| (x, *y)));
            }
        }
        if let Some(m) = &r.truth {
            explained += m.true_events;
            events += m.true_events + m.false_events;
            found += m.found_faults;
            faults += m.found_faults + m.missed_faults;
        }
    }
    let from_fault = |r: &RunResult| -> Vec<f64> {
        r.truth.as_ref().map(|m| m.recovery_from_fault.clone()).unwrap_or_default()
    };
    let mut by_point: Vec<Vec<&RunResult>> = vec![Vec::new(); points.len()];
    for r in results.iter().filter(|r| r.error.is_none()) {
        if let Some(i) = index.get(&r.run.point) {
            by_point[*i].push(r);
        }
    }
    for (p, done) in points.iter_mut().zip(by_point) {
        let values: Vec<f64> = done.iter().flat_map(|r| r.recoveries.iter().copied()).collect();
        p.recovery = stats::summary(&values);
        p.truth_recovery = stats::summary(&done.iter().flat_map(|r| from_fault(r)).collect::<Vec<_>>());
        p.resilience = stats::summary(&done.iter().filter_map(|r| r.resilience).collect::<Vec<_>>());
    }
    let scores: Vec<f64> =
        results.iter().filter(|r| r.error.is_none()).filter_map(|r| r.resilience).collect();
    let truth_all: Vec<f64> = results.iter().filter(|r| r.error.is_none()).flat_map(from_fault).collect();
    CampaignSummary {
        name: name.to_string(),
        runs: results.len(),
        failed: results
            .iter()
            .filter_map(|r| r.error.as_ref().map(|e| (r.run.id.clone(), e.clone())))
            .collect(),
        deviating: results
            .iter()
            .filter(|r| r.error.is_none() && !r.deviations.is_empty())
            .map(|r| (r.run.id.clone(), r.deviations.clone()))
            .collect(),
        target: None,
        recovery: stats::summary(&all),
        truth_recovery: stats::summary(&truth_all),
        points,
        regression: stats::regression(&pairs),
        regression_without_deviating: if summary_has_deviating(results) {
            stats::regression(&regular)
        } else {
            None
        },
        parameter: parameter.map(str::to_string),
        precision: (events > 0).then(|| explained as f64 / events as f64),
        recall: (faults > 0).then(|| found as f64 / faults as f64),
        resilience: stats::summary(&scores),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_judged_in_their_modes_and_weighted() {
        let mut lag = Series::default();
        for (t, v) in [(0.0, 0.0), (2.0, 900.0), (4.0, 30.0)] {
            lag.push(t, v);
        }
        let series: BTreeMap<String, Series> = [("probe:lag".to_string(), lag)].into();
        let probe = |mode, weight| Probe {
            name: "lag".into(),
            query: "sum(Lag_Input_Topic)".into(),
            criteria: "<".into(),
            value: 100.0,
            mode,
            weight,
            interval: std::time::Duration::from_secs(2),
        };
        let continuous = judge(&probe(ProbeMode::Continuous, 3.0), &series, None);
        assert_eq!((continuous.passed, continuous.judged, continuous.failed), (false, 3, 1));
        let edge = judge(&probe(ProbeMode::Edge, 1.0), &series, None);
        assert_eq!((edge.passed, edge.judged), (true, 2));
        assert!(judge(&probe(ProbeMode::Eot, 1.0), &series, None).passed);
        assert_eq!(resilience(&[continuous, edge]), Some(25.0), "1 of 4 weight units passed");
        // Judged from the chaos on: the sample before it is the start of the test.
        let late = judge(&probe(ProbeMode::Continuous, 1.0), &series, Some(3.0));
        assert_eq!((late.passed, late.judged), (true, 1));
        assert!(!judge(&probe(ProbeMode::Sot, 1.0), &series, Some(3.0)).passed, "900 before the chaos");
        let missing = judge(&probe(ProbeMode::Sot, 1.0), &BTreeMap::new(), None);
        assert!(!missing.passed, "a probe without samples fails");
        assert_eq!(resilience(&[]), None);
    }
    use crate::campaign::series;

    /// The study's own captured run, analysed as its notebook did (`prominence=50`): the expected events
    /// are what `identify_chaos_around_maxima` and `find_number_of_chaos_groups` with scipy 1.x give on
    /// this file — sample indices [0, 77], [157, 192], [265, 326], [390, 439] and durations 106.0,
    /// 44.078, 62.108 and 51.048 s.
    #[test]
    fn the_study_run_gives_the_notebooks_events() {
        let run = "reference/chaosmeshwizard/runs/single_100_2024-12-19_13-47-23.csv";
        let Some(path) = crate::testing::shared_file("the_study_run_gives_the_notebooks_events", run) else {
            return;
        };
        let s = series::read(&path).unwrap();
        let lag = &s["Lag_Input_Topic"];
        assert_eq!(lag.len(), 441);
        let events = detect::Detector::default().detect(&lag.times, &lag.values);
        let spans: Vec<(usize, usize)> = events.iter().map(|e| (e.start, e.end)).collect();
        assert_eq!(spans, [(0, 77), (157, 192), (265, 326), (390, 439)]);
        let durations: Vec<f64> = events.iter().map(|e| (e.duration() * 1000.0).round() / 1000.0).collect();
        assert_eq!(durations, [106.0, 44.078, 62.108, 51.048]);
    }
}
