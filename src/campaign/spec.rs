//! A campaign file (TOML): the flow, the chaos, the parameter grid, the runs, what to capture and how to
//! analyse it. Every problem is reported at once with `file:line:key`.
//!
//! ```toml
//! name = "hmlc-study"
//! flow = "../process-mining.toml"            # relative to this file
//! [chaos]
//! mesh = ["hmlc/pod-failure.yaml", "hmlc/delay.yaml"]   # Chaos Mesh files (or .jsonnet); ${latency} substituted
//! [grid]
//! latency = "0ms..400ms/20ms"                # or a list: ["0ms", "100ms"]; numbers: "1..5/1"
//! [runs]
//! seeds = "1..3"                             # or [1, 2, 3]
//! number = 2                                 # the wizard's NUMBER_OF_RUNS
//! offset = "2m"                              # its OFFSET_IN_MINUTES
//! [[capture]]
//! name = "Lag_Input_Topic"
//! query = "sum(Lag_Input_Topic)"
//! interval = "2s"
//! [analysis]
//! metric = "Lag_Input_Topic"
//! prominence = 50
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::detect::Detector;
use super::grid::{Grid, Values};
use crate::chaos::faults::FaultRequest;
use crate::config::locate::TomlLines;
use crate::config::{KeyPath, Problem, Problems, ProblemsError};

/// The most runs a campaign may have.
pub const MAX_RUNS: usize = 100_000;

/// A campaign.
#[derive(Clone, Debug, Deserialize)]
pub struct Campaign {
    /// Its name (file names start with it).
    pub name: String,
    /// One line on what it studies.
    #[serde(default)]
    pub description: String,
    /// The flow file, relative to the campaign file.
    pub flow: PathBuf,
    /// What breaks things.
    pub chaos: Chaos,
    /// The parameters and their values; every combination is a point.
    #[serde(default)]
    pub grid: BTreeMap<String, Values>,
    /// How many runs, how long.
    #[serde(default)]
    pub runs: Runs,
    /// The series captured during each run.
    pub capture: Vec<Capture>,
    /// How the runs are analysed.
    pub analysis: Analysis,
    /// The probes of the resilience score (`[[probe]]`).
    #[serde(default, rename = "probe")]
    pub probes: Vec<Probe>,
    /// The file's directory (set when loaded).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// The chaos of each run.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Chaos {
    /// Chaos Mesh files (YAML, JSON or Jsonnet), relative to the campaign file; `${name}` is replaced by
    /// the point's value of grid parameter `name`.
    #[serde(default)]
    pub mesh: Vec<PathBuf>,
    /// Chaos Toolkit experiments (JSON or YAML), relative to the campaign file, run natively from the
    /// chaos's start; the point's values are configuration overrides, as `chaos run --var name=value`.
    #[serde(default)]
    pub experiments: Vec<PathBuf>,
    /// Catalogue faults at times after the chaos's start (`[[chaos.schedule]]`), as a flow's
    /// `[[schedule]]` but with the fault catalogue's kinds, which leave ground truth; `${name}` in any
    /// string is replaced by the point's value (a number where the whole string is one placeholder).
    #[serde(default)]
    pub schedule: Vec<ScheduledFault>,
}

/// One fault of a campaign's schedule.
///
/// ```toml
/// [[chaos.schedule]]
/// at = "0s"                  # after the chaos's start
/// every = "2m"               # repeated until the capture ends (optional)
/// kind = "process-kill"
/// target = "heuristics-miner"
/// [[chaos.schedule]]
/// kind = "network-delay"
/// target = "kafka-*"
/// parameters = { latency = "${latency}" }
/// ```
#[derive(Clone, Debug, Deserialize)]
pub struct ScheduledFault {
    /// When, after the chaos's start.
    #[serde(default, with = "humantime_serde")]
    pub at: Duration,
    /// Repeated this often until the capture ends.
    #[serde(default, with = "humantime_serde::option")]
    pub every: Option<Duration>,
    /// A kind of the fault catalogue.
    pub kind: String,
    /// What it acts on (a name, a glob, `kind:<component kind>`).
    #[serde(default)]
    pub target: Option<String>,
    /// The selector's mode (`one`, `all`, `fixed`, …).
    #[serde(default)]
    pub mode: Option<String>,
    /// The mode's value.
    #[serde(default)]
    pub value: Option<String>,
    /// How long it lasts (`30s`); without it, until the run ends.
    #[serde(default)]
    pub duration: Option<String>,
    /// The kind's parameters.
    #[serde(default)]
    pub parameters: toml::Table,
}

impl ScheduledFault {
    /// The request with the point's values in (`names` and `point` in grid order).
    pub fn request(&self, names: &[String], point: &[super::grid::Value]) -> Result<FaultRequest, String> {
        let request = json!({
            "kind": self.kind,
            "target": self.target,
            "mode": self.mode,
            "value": self.value,
            "duration": self.duration,
            "parameters": self.parameters,
        });
        let request = super::grid::substitute_json(request, names, point);
        serde_json::from_value(request).map_err(|e| e.to_string())
    }
}

/// The runs of each point, timed as the ChaosMeshWizard times them: the chaos is applied after `warmup`
/// (for files with a cron schedule, at the next minute divisible by `offset` plus 2 s, as the wizard
/// waits for "a good time"), and the series is captured until `(number + 2) × offset` after that — the
/// wizard's first offset, its `number` runs and its closing offset.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct Runs {
    /// The seeds every point runs with.
    pub seeds: Seeds,
    /// The wizard's NUMBER_OF_RUNS.
    pub number: u32,
    /// The wizard's OFFSET_IN_MINUTES (whole minutes when the chaos has a cron schedule; any length
    /// otherwise, e.g. seconds for a quick live check).
    #[serde(with = "humantime_serde")]
    pub offset: Duration,
    /// Time before the chaos.
    #[serde(with = "humantime_serde")]
    pub warmup: Duration,
}

impl Default for Runs {
    fn default() -> Self {
        Runs {
            seeds: Seeds::List(vec![1]),
            number: 2,
            offset: Duration::from_secs(120),
            warmup: Duration::from_secs(60),
        }
    }
}

/// Seeds: a list or a range `"1..3"` (both ends included).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Seeds {
    /// `[1, 2, 3]`.
    List(Vec<u64>),
    /// `"1..3"`.
    Range(String),
}

impl Seeds {
    /// The seeds, or why not.
    pub fn expand(&self) -> Result<Vec<u64>, String> {
        match self {
            Seeds::List(v) if v.is_empty() => Err("no seeds".into()),
            Seeds::List(v) => Ok(v.clone()),
            Seeds::Range(text) => {
                let (a, b) =
                    text.split_once("..").ok_or_else(|| format!("{text:?} is not a range such as 1..3"))?;
                let (a, b) = (a.trim().parse::<u64>(), b.trim().trim_start_matches('=').parse::<u64>());
                match (a, b) {
                    (Ok(a), Ok(b)) if a <= b && b - a < 10_000 => Ok((a..=b).collect()),
                    _ => Err(format!("{text:?} is not a range of at most 10000 seeds such as 1..3")),
                }
            }
        }
    }
}

/// A series to capture.
#[derive(Clone, Debug, Deserialize)]
pub struct Capture {
    /// The metric name in the CSV (`Lag_Input_Topic`).
    pub name: String,
    /// PromQL over the run's metrics; it must give one number.
    pub query: String,
    /// How often.
    #[serde(with = "humantime_serde", default = "two_seconds")]
    pub interval: Duration,
}

fn two_seconds() -> Duration {
    Duration::from_secs(2)
}

/// A probe of the resilience score, as Litmus's Prometheus probe: a query compared with a value, judged
/// over the whole run (`continuous`: every sample must pass), at its start (`sot`), at its end (`eot`) or
/// both (`edge`); a run's score is `Σ weight × passed × 100 / Σ weight`.
#[derive(Clone, Debug, Deserialize)]
pub struct Probe {
    /// Its name.
    pub name: String,
    /// PromQL giving one number.
    pub query: String,
    /// `==`, `!=`, `<`, `<=`, `>`, `>=`.
    pub criteria: String,
    /// What the query is compared with.
    pub value: f64,
    /// When it is judged.
    #[serde(default)]
    pub mode: ProbeMode,
    /// Its weight in the score.
    #[serde(default = "one")]
    pub weight: f64,
    /// How often it is evaluated.
    #[serde(with = "humantime_serde", default = "two_seconds")]
    pub interval: Duration,
}

/// When a probe is judged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeMode {
    /// Every sample of the run.
    #[default]
    Continuous,
    /// The first sample (before the chaos).
    Sot,
    /// The last sample.
    Eot,
    /// The first and the last.
    Edge,
}

impl Probe {
    /// Whether `v` passes.
    pub fn passes(&self, v: f64) -> bool {
        match self.criteria.as_str() {
            "==" => v == self.value,
            "!=" => v != self.value,
            "<" => v < self.value,
            "<=" => v <= self.value,
            ">" => v > self.value,
            ">=" => v >= self.value,
            _ => false,
        }
    }

    /// The name of its series in the run's CSV.
    pub fn series(&self) -> String {
        format!("probe:{}", self.name)
    }
}

/// How runs are analysed.
#[derive(Clone, Debug, Deserialize)]
pub struct Analysis {
    /// The captured series events are found in.
    pub metric: String,
    /// Least prominence of a peak (the notebook's 50).
    #[serde(default = "default_prominence")]
    pub prominence: f64,
    /// Where events end: below this share of the median (the wizard's default 1).
    #[serde(default = "one")]
    pub median_fraction: f64,
    /// Keep only this many peaks, the highest (none: all).
    #[serde(default)]
    pub num_peaks: Option<usize>,
    /// How long before an event a fault may start and still explain it.
    #[serde(with = "humantime_serde", default = "ten_seconds")]
    pub slack: Duration,
    /// The fault kinds events should follow (none: every kind); a fault lasting past the capture (the
    /// swept network delay) is a condition, not an event, and is never counted.
    #[serde(default)]
    pub faults: Vec<String>,
}

fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}

fn default_prominence() -> f64 {
    Detector::default().prominence
}

fn one() -> f64 {
    1.0
}

impl Analysis {
    /// The detector these settings make.
    pub fn detector(&self) -> Detector {
        Detector {
            prominence: self.prominence,
            median_fraction: self.median_fraction,
            num_peaks: self.num_peaks,
        }
    }
}

impl Campaign {
    /// Reads and checks a campaign file; every problem at once.
    pub fn load(path: &Path) -> Result<(Campaign, Vec<Problem>), ProblemsError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ProblemsError::one(&name, KeyPath::root(), format!("cannot read: {e}")))?;
        let mut campaign = Campaign::parse(&text, &name)?;
        campaign.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let lines = TomlLines::new(&text);
        let mut problems = Problems::new();
        campaign.check(&mut problems.in_file(&name, &lines));
        problems.finish(campaign)
    }

    /// Parses the text (syntax and schema; unknown keys are errors).
    pub fn parse(text: &str, name: &str) -> Result<Campaign, ProblemsError> {
        let lines = TomlLines::new(text);
        let mut problems = Problems::new();
        let mut p = problems.in_file(name, &lines);
        let value: toml::Value = match toml::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                p.error_at(line, KeyPath::root(), e.message().trim().to_string());
                return Err(ProblemsError(problems.all().to_vec()));
            }
        };
        let mut unknown = Vec::new();
        let mut note = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let de = serde_ignored::Deserializer::new(value, &mut note);
        let parsed: Result<Campaign, _> = serde_path_to_error::deserialize(de);
        for key in unknown {
            p.error(KeyPath::parse(&key), "unknown key");
        }
        match parsed {
            Ok(c) if !problems.has_errors() => Ok(c),
            Ok(_) => Err(ProblemsError(problems.all().to_vec())),
            Err(e) => {
                let key = KeyPath::parse(&e.path().to_string());
                let mut p = problems.in_file(name, &lines);
                p.error(key, e.into_inner().message().trim().to_string());
                Err(ProblemsError(problems.all().to_vec()))
            }
        }
    }

    fn check(&self, p: &mut crate::config::problems::FileProblems<'_>) {
        if self.name.is_empty()
            || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            p.error(
                "name",
                format!("{:?}: letters, digits, - and _ only (file names start with it)", self.name),
            );
        }
        if !self.dir.join(&self.flow).is_file() {
            p.error("flow", format!("{} is not a file", self.dir.join(&self.flow).display()));
        }
        if self.chaos.mesh.is_empty() && self.chaos.experiments.is_empty() && self.chaos.schedule.is_empty() {
            p.error(
                "chaos",
                "no chaos: name Chaos Mesh files (mesh), Chaos Toolkit experiments (experiments) or faults \
                 ([[chaos.schedule]])",
            );
        }
        self.check_schedule(p);
        for (i, f) in self.chaos.experiments.iter().enumerate() {
            let path = self.dir.join(f);
            if let Err(e) = crate::chaos::experiment::load(&path) {
                p.error(KeyPath::parse("chaos.experiments").index(i), e.to_string());
            }
        }
        for (i, f) in self.chaos.mesh.iter().enumerate() {
            let path = self.dir.join(f);
            match std::fs::read_to_string(&path) {
                Err(e) => p.error(KeyPath::parse("chaos.mesh").index(i), format!("{}: {e}", path.display())),
                Ok(text) => {
                    for var in super::grid::placeholders(&text) {
                        if !self.grid.contains_key(&var) {
                            p.error(
                                KeyPath::parse("chaos.mesh").index(i),
                                format!("{} uses ${{{var}}}, which the grid does not give", path.display()),
                            );
                        }
                    }
                }
            }
        }
        let points = match Grid::new(&self.grid) {
            Ok(g) => g.points.len(),
            Err(e) => {
                p.error(KeyPath::parse("grid").key(&e.0), e.1);
                0
            }
        };
        match self.runs.seeds.expand() {
            Err(e) => p.error("runs.seeds", e),
            Ok(seeds) if points.saturating_mul(seeds.len()) > MAX_RUNS => p.error(
                "runs.seeds",
                format!("{points} points × {} seeds is more than {MAX_RUNS} runs", seeds.len()),
            ),
            Ok(_) => {}
        }
        // Whole minutes are needed only for the wizard's wait for a cron schedule (checked per run).
        if self.runs.offset < Duration::from_secs(1) {
            p.error("runs.offset", "at least 1s (the wizard's OFFSET_IN_MINUTES is in minutes)");
        }
        if self.runs.number == 0 {
            p.error("runs.number", "at least 1 run");
        }
        if self.capture.is_empty() {
            p.error("capture", "capture at least one series");
        }
        for (i, c) in self.capture.iter().enumerate() {
            let at = KeyPath::parse("capture").index(i);
            if let Err(e) = crate::monitoring::promql::parse(&c.query) {
                p.error(at.key("query"), format!("{:?} does not parse: {e}", c.query));
            }
            if c.interval.is_zero() {
                p.error(at.key("interval"), "must be more than 0");
            }
            if c.name.is_empty() || c.name.contains([',', '\n', '"']) {
                p.error(at.key("name"), format!("{:?}: a CSV field without commas or quotes", c.name));
            }
        }
        if !self.capture.iter().any(|c| c.name == self.analysis.metric) {
            let names: Vec<&str> = self.capture.iter().map(|c| c.name.as_str()).collect();
            p.error(
                "analysis.metric",
                format!("{:?} is not captured (captured: {})", self.analysis.metric, names.join(", ")),
            );
        }
        for (i, probe) in self.probes.iter().enumerate() {
            let at = KeyPath::parse("probe").index(i);
            if let Err(e) = crate::monitoring::promql::parse(&probe.query) {
                p.error(at.key("query"), format!("{:?} does not parse: {e}", probe.query));
            }
            if !["==", "!=", "<", "<=", ">", ">="].contains(&probe.criteria.as_str()) {
                p.error(
                    at.key("criteria"),
                    format!("{:?} is not one of ==, !=, <, <=, >, >=", probe.criteria),
                );
            }
            if probe.weight.is_nan() || probe.weight <= 0.0 {
                p.error(at.key("weight"), "must be more than 0");
            }
            if probe.interval.is_zero() {
                p.error(at.key("interval"), "must be more than 0");
            }
            if self.probes[..i].iter().any(|q| q.name == probe.name) || probe.name.contains([',', '\n', '"'])
            {
                p.error(at.key("name"), format!("{:?}: unique, without commas or quotes", probe.name));
            }
        }
        let d = self.analysis.detector();
        if d.prominence.is_nan()
            || d.prominence < 0.0
            || d.median_fraction.is_nan()
            || d.median_fraction <= 0.0
        {
            p.error("analysis", "prominence ≥ 0 and median_fraction > 0");
        }
    }

    /// Each scheduled fault with the grid's first point in, checked against the catalogue.
    fn check_schedule(&self, p: &mut crate::config::problems::FileProblems<'_>) {
        let Ok(grid) = Grid::new(&self.grid) else { return };
        let first = grid.points.first().cloned().unwrap_or_default();
        for (i, f) in self.chaos.schedule.iter().enumerate() {
            let at = KeyPath::parse("chaos.schedule").index(i);
            let text =
                serde_json::to_string(&json!([f.kind, f.target, f.mode, f.value, f.duration, f.parameters]))
                    .unwrap_or_default();
            let missing: Vec<String> =
                super::grid::placeholders(&text).into_iter().filter(|v| !self.grid.contains_key(v)).collect();
            if !missing.is_empty() {
                p.error(at, format!("uses ${{{}}}, which the grid does not give", missing.join("}, ${")));
                continue;
            }
            if f.every.is_some_and(|e| e < Duration::from_secs(1)) {
                p.error(at.key("every"), "at least 1s");
            }
            match f.request(&grid.names, &first) {
                Err(e) => p.error(at, e),
                Ok(request) => {
                    if let Err(e) = crate::chaos::faults::Fault::parse(&request) {
                        p.error(at, e.to_string());
                    }
                }
            }
        }
    }

    /// What each run samples: the captures, then each probe's query as `probe:<name>`.
    pub fn captures(&self) -> Vec<Capture> {
        let probes = self.probes.iter().map(|p| Capture {
            name: p.series(),
            query: p.query.clone(),
            interval: p.interval,
        });
        self.capture.iter().cloned().chain(probes).collect()
    }

    /// How long each run is: the warm-up, up to an offset's wait for a good time, and the capture.
    pub fn run_length(&self) -> Duration {
        self.runs.warmup + self.runs.offset + self.runs.offset * (self.runs.number + 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_runs_are_refused_before_anything_is_planned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.toml");
        std::fs::write(
            &path,
            "name = \"big\"\nflow = \"f.toml\"\n[chaos]\nmesh = []\n[grid]\nn = \"0..9999/1\"\n[runs]\nseeds = \"1..11\"\n\
             [[capture]]\nname = \"x\"\nquery = \"up\"\n[analysis]\nmetric = \"x\"\n",
        )
        .unwrap();
        let problems = Campaign::load(&path).unwrap_err().to_string();
        assert!(
            problems.contains("big.toml:8:runs.seeds: 10000 points × 11 seeds is more than 100000 runs"),
            "{problems}"
        );
    }

    #[test]
    fn scheduled_faults_are_checked_against_the_grid_and_the_catalogue() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.toml"), "").unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(
            &path,
            "name = \"s\"\nflow = \"f.toml\"\n[grid]\nlatency = [\"10ms\"]\n\
             [[chaos.schedule]]\nkind = \"network-delay\"\nparameters = { latency = \"${jitter}\" }\n\
             [[chaos.schedule]]\nkind = \"no-such-kind\"\n\
             [[chaos.schedule]]\nkind = \"process-kill\"\ntarget = \"FLINK\"\nevery = \"10ms\"\n\
             [[chaos.schedule]]\nkind = \"network-delay\"\ntarget = \"*->FLINK\"\nparameters = { latency = \"${latency}\" }\n\
             [[capture]]\nname = \"x\"\nquery = \"up\"\n[analysis]\nmetric = \"x\"\n",
        )
        .unwrap();
        let problems = Campaign::load(&path).unwrap_err().to_string();
        assert!(
            problems.contains("s.toml:5:chaos.schedule[0]: uses ${jitter}, which the grid does not give"),
            "{problems}"
        );
        assert!(
            problems.contains("s.toml:8:chaos.schedule[1]:") && problems.contains("no-such-kind"),
            "{problems}"
        );
        assert!(problems.contains("s.toml:13:chaos.schedule[2].every: at least 1s"), "{problems}");
        assert!(!problems.contains("chaos.schedule[3]"), "{problems}");
        assert_eq!(problems.lines().filter(|l| l.contains("s.toml:")).count(), 3, "{problems}");
    }
}
