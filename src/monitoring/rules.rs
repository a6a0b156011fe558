//! Prometheus rule files: strict loading and evaluation (alerting and recording rules).
//!
//! Loading reads the rule-file YAML (`groups: [{name, interval?, rules: [...]}]`) and refuses anything
//! Prometheus would refuse plus anything our evaluator cannot run: unknown or duplicate keys, bad
//! durations, invalid names, alert names repeated within a group, expressions that do not parse or use
//! unsupported PromQL, and templates we cannot expand. Every problem is reported with its file, line
//! and column, all of them at once.
//!
//! Evaluation follows Prometheus' rule manager: each group runs at its interval; an alerting rule's
//! alerts go inactive → pending → firing once `for` has elapsed (at once without `for`), stay firing
//! for `keep_firing_for` after the condition clears, and are resolved (kept 15 minutes to report the
//! resolution) when it is false. [`RuleSet::evaluate`] returns what Prometheus would send to
//! Alertmanager at that instant (firing and resolved alerts, re-sent at most once a minute).
//! Recording rules and the `ALERTS` series are written back into the [`Tsdb`], with staleness markers
//! for series that disappear. Labels and annotations are Go-template-expanded with `$labels`, `$value`
//! and the `humanize*` functions.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::monitoring::promql::{self, Expr, PromqlError, Sample, Value};
use crate::monitoring::tsdb::{
    Labels, METRIC_NAME, Tsdb, format_float_g, format_labels, is_valid_label_name, is_valid_metric_name,
};

/// Group interval when a group sets none (the reference `prometheus.yml`'s `evaluation_interval`).
pub const DEFAULT_EVALUATION_INTERVAL_MS: i64 = 10_000;
/// Minimum time before Prometheus re-sends an unchanged alert (`--rules.alert.resend-delay`).
pub const RESEND_DELAY_MS: i64 = 60_000;
/// How long a resolved alert is kept (and re-sent as resolved).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60_000;
/// Prometheus' external URL used in `generatorURL` unless set otherwise.
pub const DEFAULT_EXTERNAL_URL: &str = "http://prometheus:9090";

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong, prefixed with the YAML path (e.g. `groups[0].rules[1].expr: ...`).
    pub message: String,
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "{}:{line}:{column}: {}", self.file.display(), self.message)
            }
            _ => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Why rule files could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// A file or directory could not be read.
    #[error("cannot read rule files at {path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// One or more files are invalid; every problem found is listed.
    #[error("invalid rule files ({} problem(s)):\n{}", .0.len(), list_problems(.0))]
    Invalid(Vec<RuleProblem>),
}

fn list_problems(problems: &[RuleProblem]) -> String {
    problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}

/// State of an alert, as in Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    /// Resolved: the condition no longer holds (kept for a while to report the resolution).
    Inactive,
    /// The condition holds but not yet for the rule's `for` duration.
    Pending,
    /// The condition has held for `for`.
    Firing,
}

impl AlertState {
    /// Prometheus' name for the state (`inactive`, `pending`, `firing`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert instance of an alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Identifying labels: the result series' labels without `__name__`, the rule's labels and
    /// `alertname`.
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: Labels,
    /// Current state.
    pub state: AlertState,
    /// When the condition started to hold (epoch ms).
    pub active_at: i64,
    /// When the alert started firing.
    pub fired_at: Option<i64>,
    /// When it was resolved.
    pub resolved_at: Option<i64>,
    /// The expression's value at the last evaluation where it held.
    pub value: f64,
    /// `endsAt` as sent to Alertmanager: the resolution time, or a validity horizon (4 × the larger of
    /// the group interval and the resend delay) for a firing alert. `None` until first sent.
    pub ends_at: Option<i64>,
    /// Link back to the expression on Prometheus (`<external URL>/graph?g0.expr=...&g0.tab=1`).
    pub generator_url: String,
}

/// A loaded set of rule groups and their evaluation state.
#[derive(Debug, Clone)]
pub struct RuleSet {
    groups: Vec<Group>,
    default_interval_ms: i64,
    external_url: String,
}

#[derive(Debug, Clone)]
struct Group {
    name: String,
    file: PathBuf,
    interval_ms: Option<i64>,
    rules: Vec<Rule>,
    /// When the group is next due; `None` before its first evaluation. Stays on the grid set by the
    /// first evaluation, skipping missed slots like Prometheus does.
    next_eval: Option<i64>,
}

#[derive(Debug, Clone)]
enum Rule {
    Alerting(AlertingRule),
    Recording(RecordingRule),
}

#[derive(Debug, Clone)]
struct AlertingRule {
    name: String,
    expr: Expr,
    for_ms: i64,
    keep_firing_for_ms: i64,
    labels: Vec<(String, Template)>,
    annotations: Vec<(String, Template)>,
    active: BTreeMap<Labels, ActiveAlert>,
    /// `ALERTS` series written at the previous evaluation (for staleness).
    previous_series: BTreeSet<Labels>,
}

#[derive(Debug, Clone)]
struct ActiveAlert {
    alert: Alert,
    last_sent_at: Option<i64>,
    keep_firing_since: Option<i64>,
}

#[derive(Debug, Clone)]
struct RecordingRule {
    name: String,
    expr: Expr,
    labels: Labels,
    previous_series: BTreeSet<Labels>,
}

impl RuleSet {
    /// Parses one rule file's text; `path` only names the file in problems.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<RuleSet, RulesError> {
        let groups = parse_file(text, path.as_ref()).map_err(RulesError::Invalid)?;
        Ok(RuleSet::from_groups(groups))
    }

    /// Loads one rule file.
    pub fn load_file(path: impl AsRef<Path>) -> Result<RuleSet, RulesError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| RulesError::Io { path: path.to_path_buf(), source })?;
        RuleSet::parse(&text, path)
    }

    /// Loads every `*.yml` / `*.yaml` file of a directory, in file-name order, reporting the problems of
    /// all files together.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<RuleSet, RulesError> {
        let dir = dir.as_ref();
        let io = |source| RulesError::Io { path: dir.to_path_buf(), source };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.is_file() && path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                files.push(path);
            }
        }
        files.sort();
        let mut groups = Vec::new();
        let mut problems = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(|source| RulesError::Io { path: file.clone(), source })?;
            match parse_file(&text, &file) {
                Ok(g) => groups.extend(g),
                Err(p) => problems.extend(p),
            }
        }
        if problems.is_empty() {
            Ok(RuleSet::from_groups(groups))
        } else {
            Err(RulesError::Invalid(problems))
        }
    }

    fn from_groups(groups: Vec<Group>) -> RuleSet {
        RuleSet {
            groups,
            default_interval_ms: DEFAULT_EVALUATION_INTERVAL_MS,
            external_url: DEFAULT_EXTERNAL_URL.to_string(),
        }
    }

    /// Sets the interval for groups that do not set their own (the global `evaluation_interval`).
    pub fn with_default_interval(mut self, interval: std::time::Duration) -> RuleSet {
        self.default_interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
        self
    }

    /// Sets the external URL `generatorURL`s point to.
    pub fn with_external_url(mut self, url: impl Into<String>) -> RuleSet {
        self.external_url = url.into();
        self
    }

    /// `(group, rule)` names in load order.
    pub fn rule_names(&self) -> Vec<(&str, &str)> {
        self.groups
            .iter()
            .flat_map(|g| {
                g.rules.iter().map(move |r| {
                    let name = match r {
                        Rule::Alerting(a) => a.name.as_str(),
                        Rule::Recording(r) => r.name.as_str(),
                    };
                    (g.name.as_str(), name)
                })
            })
            .collect()
    }

    /// The earliest time at or after `now_ms` when [`RuleSet::evaluate`] would evaluate a group.
    pub fn next_due(&self, now_ms: i64) -> Option<i64> {
        self.groups.iter().map(|g| g.next_eval.map_or(now_ms, |next| next.max(now_ms))).min()
    }

    fn interval_of(&self, group: &Group) -> i64 {
        group.interval_ms.filter(|i| *i > 0).unwrap_or(self.default_interval_ms)
    }

    /// Evaluates every group that is due at `t_ms` (never evaluated yet, or its next slot on the
    /// `interval` grid started by its first evaluation has come) and returns the alerts Prometheus would send to Alertmanager now: firing and
    /// resolved alerts not sent within the last minute (pending ones are never sent). Recording-rule
    /// results and `ALERTS` series are appended to `db`. A rule whose query fails is logged, keeps its
    /// previous state and sends nothing at this evaluation (as in Prometheus).
    pub fn evaluate(&mut self, db: &mut Tsdb, t_ms: i64) -> Vec<Alert> {
        let mut to_send = Vec::new();
        for gi in 0..self.groups.len() {
            let interval = self.interval_of(&self.groups[gi]);
            let group = &mut self.groups[gi];
            group.next_eval = match group.next_eval {
                Some(next) if t_ms < next => continue,
                Some(next) => Some(next + interval * ((t_ms - next) / interval + 1)),
                None => Some(t_ms + interval),
            };
            for rule in &mut group.rules {
                match rule {
                    Rule::Alerting(rule) => match rule.eval(db, t_ms, &self.external_url) {
                        Ok(()) => {
                            rule.write_alerts_series(db, t_ms);
                            to_send.extend(rule.alerts_to_send(t_ms, interval));
                        }
                        Err(e) => {
                            let (file, name) = (group.file.display(), &group.name);
                            tracing::warn!(group = %name, %file, alert = %rule.name, "rule failed: {e}");
                        }
                    },
                    Rule::Recording(rule) => {
                        if let Err(e) = rule.eval(db, t_ms) {
                            let (file, name) = (group.file.display(), &group.name);
                            tracing::warn!(group = %name, %file, record = %rule.name, "rule failed: {e}");
                        }
                    }
                }
            }
        }
        to_send
    }

    /// All pending and firing alerts, in (group, rule, labels) order.
    pub fn active_alerts(&self) -> Vec<Alert> {
        self.groups
            .iter()
            .flat_map(|g| &g.rules)
            .filter_map(|r| match r {
                Rule::Alerting(a) => Some(a),
                Rule::Recording(_) => None,
            })
            .flat_map(|a| a.active.values())
            .filter(|a| a.alert.state != AlertState::Inactive)
            .map(|a| a.alert.clone())
            .collect()
    }
}

/// Instant-vector result of a rule's expression (a scalar becomes one sample without labels).
fn rule_samples(expr: &Expr, db: &Tsdb, t_ms: i64) -> Result<Vec<Sample>, PromqlError> {
    match promql::eval_instant(expr, db, t_ms)? {
        Value::Vector(v) => Ok(v),
        Value::Scalar(value) => Ok(vec![Sample { labels: Labels::new(), value }]),
        Value::String(_) => Err(PromqlError::Eval("rule expression returned a string".into())),
    }
}

impl AlertingRule {
    fn eval(&mut self, db: &Tsdb, t_ms: i64, external_url: &str) -> Result<(), PromqlError> {
        let samples = rule_samples(&self.expr, db, t_ms)?;
        let mut results: BTreeMap<Labels, (Labels, f64)> = BTreeMap::new();
        for sample in samples {
            let expand = |t: &Template| t.render(&sample.labels, sample.value);
            let mut labels = sample.labels.clone();
            labels.remove(METRIC_NAME);
            for (name, template) in &self.labels {
                let value = expand(template);
                if value.is_empty() {
                    labels.remove(name);
                } else {
                    labels.insert(name.clone(), value);
                }
            }
            labels.insert("alertname".to_string(), self.name.clone());
            let annotations = self.annotations.iter().map(|(k, t)| (k.clone(), expand(t))).collect();
            if results.insert(labels.clone(), (annotations, sample.value)).is_some() {
                return Err(PromqlError::Eval(format!(
                    "vector contains metrics with the same labelset after applying alert labels: {}",
                    format_labels(&labels)
                )));
            }
        }
        for (labels, (annotations, value)) in &results {
            if let Some(active) = self.active.get_mut(labels)
                && active.alert.state != AlertState::Inactive
            {
                active.alert.value = *value;
                active.alert.annotations = annotations.clone();
                continue;
            }
            let alert = Alert {
                labels: labels.clone(),
                annotations: annotations.clone(),
                state: AlertState::Pending,
                active_at: t_ms,
                fired_at: None,
                resolved_at: None,
                value: *value,
                ends_at: None,
                generator_url: generator_url(external_url, &self.expr),
            };
            self.active
                .insert(labels.clone(), ActiveAlert { alert, last_sent_at: None, keep_firing_since: None });
        }
        let mut expired = Vec::new();
        for (labels, active) in &mut self.active {
            let alert = &mut active.alert;
            if !results.contains_key(labels) {
                let mut keep_firing = false;
                if alert.state == AlertState::Firing && self.keep_firing_for_ms > 0 {
                    let since = *active.keep_firing_since.get_or_insert(t_ms);
                    keep_firing = t_ms - since < self.keep_firing_for_ms;
                }
                if alert.state == AlertState::Pending
                    || alert.resolved_at.is_some_and(|r| t_ms - r > RESOLVED_RETENTION_MS)
                {
                    expired.push(labels.clone());
                }
                if alert.state != AlertState::Inactive && !keep_firing {
                    alert.state = AlertState::Inactive;
                    alert.resolved_at = Some(t_ms);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                active.keep_firing_since = None;
            }
            if alert.state == AlertState::Pending && t_ms - alert.active_at >= self.for_ms {
                alert.state = AlertState::Firing;
                alert.fired_at = Some(t_ms);
            }
        }
        for labels in expired {
            self.active.remove(&labels);
        }
        Ok(())
    }

    /// Writes `ALERTS{alertname, alertstate, ...} 1` for pending and firing alerts.
    fn write_alerts_series(&mut self, db: &mut Tsdb, t_ms: i64) {
        let mut current = BTreeSet::new();
        for active in self.active.values().filter(|a| a.alert.state != AlertState::Inactive) {
            let mut labels = active.alert.labels.clone();
            labels.insert(METRIC_NAME.to_string(), "ALERTS".to_string());
            labels.insert("alertstate".to_string(), active.alert.state.as_str().to_string());
            if let Err(e) = db.append(labels.clone(), t_ms, 1.0) {
                tracing::warn!(alert = %self.name, "ALERTS sample refused: {e}");
            }
            current.insert(labels);
        }
        for gone in self.previous_series.difference(&current) {
            if let Err(e) = db.append_stale(gone, t_ms) {
                tracing::warn!(alert = %self.name, "ALERTS staleness marker refused: {e}");
            }
        }
        self.previous_series = current;
    }

    /// Firing and resolved alerts due to be (re-)sent at `t_ms`; marks them sent.
    fn alerts_to_send(&mut self, t_ms: i64, interval_ms: i64) -> Vec<Alert> {
        let mut out = Vec::new();
        for active in self.active.values_mut() {
            if active.alert.state == AlertState::Pending {
                continue;
            }
            let resolved_since_sent = match (active.alert.resolved_at, active.last_sent_at) {
                (Some(resolved), Some(sent)) => resolved > sent,
                (Some(_), None) => true,
                (None, _) => false,
            };
            let resend_due = active.last_sent_at.is_none_or(|sent| sent + RESEND_DELAY_MS < t_ms);
            if !(resolved_since_sent || resend_due) {
                continue;
            }
            active.last_sent_at = Some(t_ms);
            let valid_until = t_ms + 4 * interval_ms.max(RESEND_DELAY_MS);
            active.alert.ends_at = Some(active.alert.resolved_at.unwrap_or(valid_until));
            out.push(active.alert.clone());
        }
        out
    }
}

impl RecordingRule {
    fn eval(&mut self, db: &mut Tsdb, t_ms: i64) -> Result<(), PromqlError> {
        let samples = rule_samples(&self.expr, db, t_ms)?;
        let mut out: BTreeMap<Labels, f64> = BTreeMap::new();
        for sample in samples {
            let mut labels = sample.labels;
            labels.insert(METRIC_NAME.to_string(), self.name.clone());
            for (k, v) in &self.labels {
                if v.is_empty() {
                    labels.remove(k);
                } else {
                    labels.insert(k.clone(), v.clone());
                }
            }
            if out.insert(labels.clone(), sample.value).is_some() {
                return Err(PromqlError::Eval(format!(
                    "vector contains metrics with the same labelset after applying rule labels: {}",
                    format_labels(&labels)
                )));
            }
        }
        for (labels, value) in &out {
            if let Err(e) = db.append(labels.clone(), t_ms, *value) {
                tracing::warn!(record = %self.name, "recording rule sample refused: {e}");
            }
        }
        let current: BTreeSet<Labels> = out.into_keys().collect();
        for gone in self.previous_series.difference(&current) {
            if let Err(e) = db.append_stale(gone, t_ms) {
                tracing::warn!(record = %self.name, "staleness marker refused: {e}");
            }
        }
        self.previous_series = current;
        Ok(())
    }
}

/// `<external URL>/graph?g0.expr=<query-escaped expr>&g0.tab=1`, as Prometheus builds it.
fn generator_url(external_url: &str, expr: &Expr) -> String {
    format!(
        "{}/graph?g0.expr={}&g0.tab=1",
        external_url.trim_end_matches('/'),
        query_escape(&expr.to_string())
    )
}

/// Go's `url.QueryEscape`: everything but letters, digits and `-_.~` percent-encoded, spaces as `+`.
fn query_escape(s: &str) -> String {
    const QUERY: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    // A literal `%20` in the text has its `%` encoded, so every `%20` here is a space.
    percent_encoding::utf8_percent_encode(s, QUERY).to_string().replace("%20", "+")
}

// ---------------------------------------------------------------------------------------------------
// Durations

/// Parses a Prometheus duration (`1y2w3d4h5m6s7ms`, units in that order, each at most once; `0`).
pub fn parse_duration(s: &str) -> Result<i64, String> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(0);
    }
    let mut rest = s;
    let mut total: i64 = 0;
    let mut previous_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err("expected a number followed by a unit (y, w, d, h, m, s, ms)".into());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| "number too large".to_string())?;
        rest = &rest[digits..];
        let unit = if rest.starts_with("ms") {
            6
        } else {
            match rest.chars().next() {
                Some('y') => 0,
                Some('w') => 1,
                Some('d') => 2,
                Some('h') => 3,
                Some('m') => 4,
                Some('s') => 5,
                _ => return Err("missing or unknown unit (use y, w, d, h, m, s, ms)".into()),
            }
        };
        if previous_unit.is_some_and(|p| p >= unit) {
            return Err("units must appear in the order y, w, d, h, m, s, ms, each at most once".into());
        }
        previous_unit = Some(unit);
        rest = &rest[UNITS[unit].0.len()..];
        total = n
            .checked_mul(UNITS[unit].1)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| "duration too large".to_string())?;
    }
    Ok(total)
}

// ---------------------------------------------------------------------------------------------------
// Loading: a strict seeded deserializer that records every problem. To give each problem its exact
// line, the file is deserialized again once per problem with that problem turned into an error:
// serde_norway then attaches the position of the YAML node being read.

struct Ctx {
    fail_at: Option<usize>,
    problems: RefCell<Vec<String>>,
    group_names: RefCell<BTreeSet<String>>,
    alert_names: RefCell<BTreeSet<String>>,
}

impl Ctx {
    fn new(fail_at: Option<usize>) -> Ctx {
        Ctx {
            fail_at,
            problems: RefCell::new(Vec::new()),
            group_names: RefCell::new(BTreeSet::new()),
            alert_names: RefCell::new(BTreeSet::new()),
        }
    }

    /// Records a problem; in the pass that locates problem `fail_at`, returns it as an error.
    fn report<E: de::Error>(&self, message: String) -> Result<(), E> {
        let mut problems = self.problems.borrow_mut();
        let index = problems.len();
        problems.push(message.clone());
        if self.fail_at == Some(index) { Err(E::custom(message)) } else { Ok(()) }
    }
}

#[derive(Default)]
struct RawGroup {
    name: String,
    interval_ms: Option<i64>,
    rules: Vec<RawRule>,
}

#[derive(Default)]
struct RawRule {
    alert: Option<String>,
    record: Option<String>,
    expr: Option<Expr>,
    expr_seen: bool,
    for_ms: Option<Option<i64>>,
    keep_firing_for_ms: Option<Option<i64>>,
    labels: BTreeMap<String, String>,
    annotations: Option<BTreeMap<String, String>>,
}

fn parse_file(text: &str, path: &Path) -> Result<Vec<Group>, Vec<RuleProblem>> {
    match serde_norway::from_str::<serde_norway::Value>(text) {
        Err(e) => return Err(vec![yaml_problem(path, &e)]),
        Ok(serde_norway::Value::Null) => return Ok(Vec::new()),
        Ok(_) => {}
    }
    let ctx = Ctx::new(None);
    let result = FileSeed { ctx: &ctx }.deserialize(serde_norway::Deserializer::from_str(text));
    let messages = ctx.problems.take();
    let mut problems: Vec<RuleProblem> = messages
        .into_iter()
        .enumerate()
        .map(|(index, message)| {
            let locate = Ctx::new(Some(index));
            match (FileSeed { ctx: &locate }).deserialize(serde_norway::Deserializer::from_str(text)) {
                Err(e) if e.location().is_some() => yaml_problem(path, &e),
                _ => RuleProblem { file: path.to_path_buf(), line: None, column: None, message },
            }
        })
        .collect();
    let raw = match result {
        Ok(raw) => raw,
        Err(e) => {
            problems.push(yaml_problem(path, &e));
            Vec::new()
        }
    };
    if !problems.is_empty() {
        problems.sort_by_key(|p| (p.line, p.column));
        return Err(problems);
    }
    build_groups(raw, path)
}

fn yaml_problem(path: &Path, e: &serde_norway::Error) -> RuleProblem {
    let text = e.to_string();
    let location = e.location();
    let message = location
        .as_ref()
        .and_then(|l| text.strip_suffix(&format!(" at line {} column {}", l.line(), l.column())))
        .unwrap_or(&text)
        .to_string();
    RuleProblem {
        file: path.to_path_buf(),
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
        message,
    }
}

/// Turns validated raw groups into rules (templates were already checked while reading).
fn build_groups(raw: Vec<RawGroup>, path: &Path) -> Result<Vec<Group>, Vec<RuleProblem>> {
    let mut problems = Vec::new();
    let mut groups = Vec::new();
    let problem =
        |message: String| RuleProblem { file: path.to_path_buf(), line: None, column: None, message };
    let templates = |map: BTreeMap<String, String>, problems: &mut Vec<RuleProblem>| {
        let mut out = Vec::new();
        for (k, v) in map {
            match Template::parse(&v) {
                Ok(t) => out.push((k, t)),
                Err(e) => problems.push(problem(format!("invalid template in `{k}`: {e}"))),
            }
        }
        out
    };
    for g in raw {
        let mut rules = Vec::new();
        for r in g.rules {
            let Some(expr) = r.expr else { continue };
            match (r.alert, r.record) {
                (Some(name), None) => rules.push(Rule::Alerting(AlertingRule {
                    name,
                    expr,
                    for_ms: r.for_ms.flatten().unwrap_or(0),
                    keep_firing_for_ms: r.keep_firing_for_ms.flatten().unwrap_or(0),
                    labels: templates(r.labels, &mut problems),
                    annotations: templates(r.annotations.unwrap_or_default(), &mut problems),
                    active: BTreeMap::new(),
                    previous_series: BTreeSet::new(),
                })),
                (None, Some(name)) => rules.push(Rule::Recording(RecordingRule {
                    name,
                    expr,
                    labels: r.labels,
                    previous_series: BTreeSet::new(),
                })),
                _ => {
                    problems.push(problem(format!("group `{}`: a rule is neither alert nor record", g.name)))
                }
            }
        }
        groups.push(Group {
            name: g.name,
            file: path.to_path_buf(),
            interval_ms: g.interval_ms,
            rules,
            next_eval: None,
        });
    }
    if problems.is_empty() { Ok(groups) } else { Err(problems) }
}

#[derive(Clone, Copy)]
enum KeyKind {
    Field { allowed: &'static [&'static str], unsupported: &'static [&'static str] },
    LabelName,
    AnnotationName,
}

const FILE_KEYS: KeyKind = KeyKind::Field { allowed: &["groups"], unsupported: &[] };
const GROUP_KEYS: KeyKind =
    KeyKind::Field { allowed: &["name", "interval", "rules"], unsupported: &["limit", "query_offset"] };
const RULE_KEYS: KeyKind = KeyKind::Field {
    allowed: &["alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"],
    unsupported: &[],
};

/// Reads a mapping key, reporting unknown, unsupported, invalid and duplicate keys (then `None`).
struct KeySeed<'a> {
    ctx: &'a Ctx,
    kind: KeyKind,
    seen: &'a mut BTreeSet<String>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        if !self.seen.insert(key.to_string()) {
            self.ctx.report(format!("duplicate key `{key}`"))?;
            return Ok(None);
        }
        let problem = match self.kind {
            KeyKind::Field { allowed, unsupported } => {
                if unsupported.contains(&key) {
                    Some(format!("field `{key}` is not supported by this rule engine"))
                } else if !allowed.contains(&key) {
                    let expected: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
                    Some(format!("unknown field `{key}`, expected one of {}", expected.join(", ")))
                } else {
                    None
                }
            }
            KeyKind::LabelName if key == METRIC_NAME || !is_valid_label_name(key) => {
                Some(format!("invalid label name `{key}`"))
            }
            KeyKind::AnnotationName if !is_valid_label_name(key) => {
                Some(format!("invalid annotation name `{key}`"))
            }
            KeyKind::LabelName | KeyKind::AnnotationName => None,
        };
        match problem {
            Some(message) => {
                self.ctx.report(message)?;
                Ok(None)
            }
            None => Ok(Some(key.to_string())),
        }
    }
}

struct FileSeed<'a> {
    ctx: &'a Ctx,
}

impl<'de> DeserializeSeed<'de> for FileSeed<'_> {
    type Value = Vec<RawGroup>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_> {
    type Value = Vec<RawGroup>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a rule file: a mapping with `groups`")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = BTreeSet::new();
        let mut groups = Vec::new();
        while let Some(key) =
            map.next_key_seed(KeySeed { ctx: self.ctx, kind: FILE_KEYS, seen: &mut seen })?
        {
            match key.as_deref() {
                Some("groups") => groups = map.next_value_seed(SeqSeed { ctx: self.ctx, item: GroupSeed })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(groups)
    }
}

/// A sequence (or null) of items read with a per-item seed.
struct SeqSeed<'a, S> {
    ctx: &'a Ctx,
    item: S,
}

/// Builds the seed for one item of a sequence.
trait ItemSeed: Copy {
    type Item;
    fn read<'de, A: SeqAccess<'de>>(self, ctx: &Ctx, seq: &mut A) -> Result<Option<Self::Item>, A::Error>;
    fn expecting() -> &'static str;
}

impl<'de, S: ItemSeed> DeserializeSeed<'de> for SeqSeed<'_, S> {
    type Value = Vec<S::Item>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, S: ItemSeed> Visitor<'de> for SeqSeed<'_, S> {
    type Value = Vec<S::Item>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(S::expecting())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = self.item.read(self.ctx, &mut seq)? {
            out.push(item);
        }
        Ok(out)
    }
}

#[derive(Clone, Copy)]
struct GroupSeed;

impl ItemSeed for GroupSeed {
    type Item = RawGroup;
    fn read<'de, A: SeqAccess<'de>>(self, ctx: &Ctx, seq: &mut A) -> Result<Option<RawGroup>, A::Error> {
        seq.next_element_seed(GroupVisitor { ctx })
    }
    fn expecting() -> &'static str {
        "a list of rule groups"
    }
}

struct GroupVisitor<'a> {
    ctx: &'a Ctx,
}

impl<'de> DeserializeSeed<'de> for GroupVisitor<'_> {
    type Value = RawGroup;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for GroupVisitor<'_> {
    type Value = RawGroup;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a rule group (a mapping with `name` and `rules`)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        ctx.alert_names.borrow_mut().clear();
        let mut seen = BTreeSet::new();
        let mut group = RawGroup::default();
        let mut has_name = false;
        while let Some(key) = map.next_key_seed(KeySeed { ctx, kind: GROUP_KEYS, seen: &mut seen })? {
            match key.as_deref() {
                Some("name") => {
                    has_name = true;
                    group.name = map.next_value_seed(NameSeed { ctx, kind: NameKind::Group })?;
                }
                Some("interval") => group.interval_ms = map.next_value_seed(DurationSeed { ctx })?,
                Some("rules") => group.rules = map.next_value_seed(SeqSeed { ctx, item: RuleItem })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !has_name {
            ctx.report("rule group has no `name`".to_string())?;
        }
        Ok(group)
    }
}

#[derive(Clone, Copy)]
struct RuleItem;

impl ItemSeed for RuleItem {
    type Item = RawRule;
    fn read<'de, A: SeqAccess<'de>>(self, ctx: &Ctx, seq: &mut A) -> Result<Option<RawRule>, A::Error> {
        seq.next_element_seed(RuleVisitor { ctx })
    }
    fn expecting() -> &'static str {
        "a list of rules"
    }
}

struct RuleVisitor<'a> {
    ctx: &'a Ctx,
}

impl<'de> DeserializeSeed<'de> for RuleVisitor<'_> {
    type Value = RawRule;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RuleVisitor<'_> {
    type Value = RawRule;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a rule (a mapping with `alert` or `record`, and `expr`)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        let mut seen = BTreeSet::new();
        let mut rule = RawRule::default();
        while let Some(key) = map.next_key_seed(KeySeed { ctx, kind: RULE_KEYS, seen: &mut seen })? {
            match key.as_deref() {
                Some("alert") => {
                    rule.alert = Some(map.next_value_seed(NameSeed { ctx, kind: NameKind::Alert })?)
                }
                Some("record") => {
                    rule.record = Some(map.next_value_seed(NameSeed { ctx, kind: NameKind::Record })?)
                }
                Some("expr") => {
                    rule.expr_seen = true;
                    rule.expr = map.next_value_seed(ExprSeed { ctx })?;
                }
                Some("for") => rule.for_ms = Some(map.next_value_seed(DurationSeed { ctx })?),
                Some("keep_firing_for") => {
                    rule.keep_firing_for_ms = Some(map.next_value_seed(DurationSeed { ctx })?)
                }
                Some("labels") => {
                    rule.labels = map.next_value_seed(MapSeed { ctx, kind: KeyKind::LabelName })?
                }
                Some("annotations") => {
                    rule.annotations =
                        Some(map.next_value_seed(MapSeed { ctx, kind: KeyKind::AnnotationName })?)
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match (&rule.alert, &rule.record) {
            (Some(_), Some(_)) => ctx.report("only one of `alert` and `record` may be set".to_string())?,
            (None, None) => ctx.report("one of `alert` or `record` must be set".to_string())?,
            (None, Some(_)) => {
                for (present, field) in [
                    (rule.for_ms.is_some(), "for"),
                    (rule.keep_firing_for_ms.is_some(), "keep_firing_for"),
                    (rule.annotations.is_some(), "annotations"),
                ] {
                    if present {
                        ctx.report(format!("invalid field `{field}` in a recording rule"))?;
                    }
                }
            }
            (Some(_), None) => {}
        }
        if !rule.expr_seen {
            ctx.report("field `expr` must be set".to_string())?;
        }
        Ok(rule)
    }
}

#[derive(Clone, Copy)]
enum NameKind {
    Group,
    Alert,
    Record,
}

struct NameSeed<'a> {
    ctx: &'a Ctx,
    kind: NameKind,
}

impl<'de> DeserializeSeed<'de> for NameSeed<'_> {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NameSeed<'_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a name")
    }
    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        let ctx = self.ctx;
        match self.kind {
            NameKind::Group if name.is_empty() => ctx.report("group name must not be empty".to_string())?,
            NameKind::Group if !ctx.group_names.borrow_mut().insert(name.to_string()) => {
                ctx.report(format!("group name `{name}` is repeated in the same file"))?
            }
            NameKind::Alert if name.is_empty() => ctx.report("alert name must not be empty".to_string())?,
            NameKind::Alert if !ctx.alert_names.borrow_mut().insert(name.to_string()) => {
                ctx.report(format!("alert `{name}` is defined more than once in this group"))?
            }
            NameKind::Record if !is_valid_metric_name(name) => {
                ctx.report(format!("invalid recording rule name `{name}` (must be a metric name)"))?
            }
            _ => {}
        }
        Ok(name.to_string())
    }
}

struct DurationSeed<'a> {
    ctx: &'a Ctx,
}

impl<'de> DeserializeSeed<'de> for DurationSeed<'_> {
    type Value = Option<i64>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DurationSeed<'_> {
    type Value = Option<i64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration such as `30s` or `1h5m`")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        match parse_duration(s) {
            Ok(ms) => Ok(Some(ms)),
            Err(reason) => {
                self.ctx.report(format!("invalid duration `{s}`: {reason}"))?;
                Ok(None)
            }
        }
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        self.visit_str(&n.to_string())
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        self.visit_str(&n.to_string())
    }
}

struct ExprSeed<'a> {
    ctx: &'a Ctx,
}

impl<'de> DeserializeSeed<'de> for ExprSeed<'_> {
    type Value = Option<Expr>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ExprSeed<'_> {
    type Value = Option<Expr>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a PromQL expression")
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        use promql_parser::parser::value::ValueType;
        if text.trim().is_empty() {
            self.ctx.report("field `expr` must not be empty".to_string())?;
            return Ok(None);
        }
        let problem = match promql::parse(text) {
            Err(PromqlError::Parse { reason, .. }) => format!("could not parse expression: {reason}"),
            Err(e) => e.to_string(),
            Ok(expr) => match promql::check_supported(&expr) {
                Err(e) => e.to_string(),
                Ok(()) if matches!(expr.value_type(), ValueType::Vector | ValueType::Scalar) => {
                    return Ok(Some(expr));
                }
                Ok(()) => format!(
                    "expression must return an instant vector or a scalar, not a {}",
                    expr.value_type()
                ),
            },
        };
        self.ctx.report(problem)?;
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        self.visit_str(&n.to_string())
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        self.visit_str(&n.to_string())
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
        self.visit_str(&n.to_string())
    }
}

/// A `labels:` / `annotations:` mapping; values are checked as templates.
struct MapSeed<'a> {
    ctx: &'a Ctx,
    kind: KeyKind,
}

impl<'de> DeserializeSeed<'de> for MapSeed<'_> {
    type Value = BTreeMap<String, String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MapSeed<'_> {
    type Value = BTreeMap<String, String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping of names to strings")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = BTreeSet::new();
        let mut out = BTreeMap::new();
        while let Some(key) =
            map.next_key_seed(KeySeed { ctx: self.ctx, kind: self.kind, seen: &mut seen })?
        {
            let value = map.next_value_seed(TemplateSeed { ctx: self.ctx })?;
            if let Some(key) = key {
                out.insert(key, value);
            }
        }
        Ok(out)
    }
}

struct TemplateSeed<'a> {
    ctx: &'a Ctx,
}

impl<'de> DeserializeSeed<'de> for TemplateSeed<'_> {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TemplateSeed<'_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        if let Err(e) = Template::parse(s) {
            self.ctx.report(format!("invalid template: {e}"))?;
        }
        Ok(s.to_string())
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(b.to_string())
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        Ok(n.to_string())
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        Ok(n.to_string())
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
        Ok(format_float_g(n, None))
    }
}

// ---------------------------------------------------------------------------------------------------
// Templates: the part of Go's text/template that alert rules use.

/// A parsed label/annotation template.
#[derive(Debug, Clone, PartialEq)]
struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action(Vec<Command>),
}

/// One stage of a pipeline: an operand, or a function applied to its arguments (plus the piped value).
#[derive(Debug, Clone, PartialEq)]
enum Command {
    Operand(Operand),
    Call(Func, Vec<Operand>),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Value,
    Label(String),
    Str(String),
    Num(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Humanize,
    Humanize1024,
    HumanizePercentage,
    HumanizeDuration,
    ToUpper,
    ToLower,
    Printf,
}

#[derive(Debug, Clone, PartialEq)]
enum Datum {
    Num(f64),
    Str(String),
}

impl Datum {
    fn render(&self) -> String {
        match self {
            Datum::Num(v) => format_float_g(*v, None),
            Datum::Str(s) => s.clone(),
        }
    }

    fn to_float(&self) -> Result<f64, String> {
        match self {
            Datum::Num(v) => Ok(*v),
            Datum::Str(s) => s.trim().parse().map_err(|_| format!("cannot convert {s:?} to a number")),
        }
    }
}

impl Template {
    fn parse(src: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = src;
        let mut trim_next_text = false;
        while !rest.is_empty() {
            let Some(open) = rest.find("{{") else {
                parts.push(Part::Text(trim_start_if(rest, trim_next_text).to_string()));
                break;
            };
            let mut text = trim_start_if(&rest[..open], trim_next_text);
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| "unclosed action (missing `}}`)".to_string())?;
            let mut action = &after[..close];
            if let Some(a) = action.strip_prefix('-').filter(|a| a.starts_with(char::is_whitespace)) {
                text = text.trim_end();
                action = a;
            }
            trim_next_text = false;
            if let Some(a) = action.strip_suffix('-').filter(|a| a.ends_with(char::is_whitespace)) {
                trim_next_text = true;
                action = a;
            }
            if !text.is_empty() {
                parts.push(Part::Text(text.to_string()));
            }
            let action = action.trim();
            if !(action.starts_with("/*") && action.ends_with("*/")) {
                parts.push(Part::Action(parse_pipeline(action)?));
            }
            rest = &after[close + 2..];
        }
        Ok(Template { parts })
    }

    /// Expands the template for one result sample. An expansion error yields Prometheus' text
    /// `<error expanding template: ...>`.
    fn render(&self, labels: &Labels, value: f64) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Action(commands) => match run_pipeline(commands, labels, value) {
                    Ok(d) => out.push_str(&d.render()),
                    Err(e) => {
                        tracing::warn!("template expansion failed: {e}");
                        return format!("<error expanding template: {e}>");
                    }
                },
            }
        }
        out
    }
}

fn trim_start_if(s: &str, trim: bool) -> &str {
    if trim { s.trim_start() } else { s }
}

fn tokenize(action: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = action.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '|' {
            chars.next();
            tokens.push("|".to_string());
        } else if c == '"' || c == '`' {
            chars.next();
            let mut s = String::from('"');
            loop {
                match chars.next() {
                    None => return Err("unterminated string".into()),
                    Some(q) if q == c => break,
                    Some('\\') if c == '"' => match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(other) => s.push(other),
                        None => return Err("unterminated string".into()),
                    },
                    Some(other) => s.push(other),
                }
            }
            tokens.push(s);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '|' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push(word);
        }
    }
    Ok(tokens)
}

fn parse_operand(token: &str) -> Result<Operand, String> {
    if let Some(s) = token.strip_prefix('"') {
        return Ok(Operand::Str(s.to_string()));
    }
    match token {
        "$value" | ".Value" => return Ok(Operand::Value),
        _ => {}
    }
    if let Some(name) = token.strip_prefix("$labels.").or_else(|| token.strip_prefix(".Labels.")) {
        return if is_valid_label_name(name) {
            Ok(Operand::Label(name.to_string()))
        } else {
            Err(format!("invalid label reference `{token}`"))
        };
    }
    if let Ok(n) = token.parse::<f64>() {
        return Ok(Operand::Num(n));
    }
    Err(format!(
        "unsupported template operand `{token}` (supported: $value, $labels.<name>, strings, numbers)"
    ))
}

fn parse_func(token: &str) -> Option<Func> {
    Some(match token {
        "humanize" => Func::Humanize,
        "humanize1024" => Func::Humanize1024,
        "humanizePercentage" => Func::HumanizePercentage,
        "humanizeDuration" => Func::HumanizeDuration,
        "toUpper" => Func::ToUpper,
        "toLower" => Func::ToLower,
        "printf" => Func::Printf,
        _ => return None,
    })
}

fn parse_pipeline(action: &str) -> Result<Vec<Command>, String> {
    if action.is_empty() {
        return Err("empty action `{{ }}`".into());
    }
    let tokens = tokenize(action)?;
    let mut commands = Vec::new();
    for (i, stage) in tokens.split(|t| t == "|").enumerate() {
        let Some((head, args)) = stage.split_first() else {
            return Err(format!("missing command in pipeline `{action}`"));
        };
        let command = match parse_func(head) {
            Some(func) => {
                let args = args.iter().map(|a| parse_operand(a)).collect::<Result<Vec<_>, _>>()?;
                let arity = args.len() + usize::from(i > 0);
                let ok = if func == Func::Printf {
                    arity >= 1 && matches!(args.first(), Some(Operand::Str(_)))
                } else {
                    arity == 1
                };
                if !ok {
                    return Err(format!("wrong number or type of arguments for `{head}` in `{action}`"));
                }
                Command::Call(func, args)
            }
            None if i > 0 => return Err(format!("`{head}` is not a supported template function")),
            None if !args.is_empty() => return Err(format!("`{head}` is not a supported template function")),
            None => Command::Operand(parse_operand(head)?),
        };
        commands.push(command);
    }
    Ok(commands)
}

fn run_pipeline(commands: &[Command], labels: &Labels, value: f64) -> Result<Datum, String> {
    let resolve = |o: &Operand| match o {
        Operand::Value => Datum::Num(value),
        Operand::Label(name) => Datum::Str(labels.get(name).cloned().unwrap_or_default()),
        Operand::Str(s) => Datum::Str(s.clone()),
        Operand::Num(n) => Datum::Num(*n),
    };
    let mut piped: Option<Datum> = None;
    for command in commands {
        let result = match command {
            Command::Operand(o) => resolve(o),
            Command::Call(func, args) => {
                let mut args: Vec<Datum> = args.iter().map(resolve).collect();
                args.extend(piped.take());
                call(*func, &args)?
            }
        };
        piped = Some(result);
    }
    piped.ok_or_else(|| "empty pipeline".to_string())
}

fn call(func: Func, args: &[Datum]) -> Result<Datum, String> {
    let one = || args.first().ok_or_else(|| "missing argument".to_string());
    let g4 = |v: f64| format_float_g(v, Some(4));
    Ok(Datum::Str(match func {
        Func::Humanize => {
            let v = one()?.to_float()?;
            humanize(v)
        }
        Func::Humanize1024 => {
            let mut v = one()?.to_float()?;
            if v.abs() <= 1.0 || !v.is_finite() {
                return Ok(Datum::Str(g4(v)));
            }
            let mut prefix = "";
            for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
                if v.abs() < 1024.0 {
                    break;
                }
                prefix = p;
                v /= 1024.0;
            }
            format!("{}{prefix}", g4(v))
        }
        Func::HumanizePercentage => format!("{}%", g4(one()?.to_float()? * 100.0)),
        Func::HumanizeDuration => humanize_duration(one()?.to_float()?),
        Func::ToUpper | Func::ToLower => match one()? {
            Datum::Str(s) if func == Func::ToUpper => s.to_uppercase(),
            Datum::Str(s) => s.to_lowercase(),
            Datum::Num(_) => return Err("toUpper/toLower need a string".into()),
        },
        Func::Printf => match args.split_first() {
            Some((Datum::Str(format), rest)) => go_sprintf(format, rest),
            _ => return Err("printf needs a format string".into()),
        },
    }))
}

/// Prometheus' `humanize`: SI prefixes, 4 significant digits.
fn humanize(mut v: f64) -> String {
    let g4 = |v: f64| format_float_g(v, Some(4));
    if v == 0.0 || !v.is_finite() {
        return g4(v);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", g4(v))
}

/// Prometheus' `humanizeDuration` (seconds in, `1d 2h 3m 4s` out).
fn humanize_duration(mut v: f64) -> String {
    let g4 = |v: f64| format_float_g(v, Some(4));
    if !v.is_finite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let total = v as i64;
        let (days, hours, minutes, seconds) =
            (total / 86_400, (total / 3600) % 24, (total / 60) % 60, total % 60);
        return if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", g4(v))
        };
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// Go's `fmt.Sprintf` for the verbs alert templates use: `%s %v %d %f %g %e` with an optional
/// `.precision`, and `%%`. A mismatched argument prints like Go (`%!d(float64=1.5)`).
fn go_sprintf(format: &str, args: &[Datum]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            precision = Some(digits.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let bad = |arg: &Datum| match arg {
            Datum::Num(v) => format!("%!{verb}(float64={})", format_float_g(*v, None)),
            Datum::Str(s) => format!("%!{verb}(string={s})"),
        };
        out.push_str(&match (verb, arg) {
            ('s' | 'v', Datum::Str(s)) => s.clone(),
            ('v', Datum::Num(v)) => format_float_g(*v, None),
            ('f' | 'F', Datum::Num(v)) => format!("{v:.*}", precision.unwrap_or(6)),
            ('g', Datum::Num(v)) => format_float_g(*v, precision),
            ('e', Datum::Num(v)) => {
                let s = format!("{v:.*e}", precision.unwrap_or(6));
                match s.split_once('e') {
                    Some((m, e)) => {
                        let e: i32 = e.parse().unwrap_or(0);
                        format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
                    }
                    None => s,
                }
            }
            _ => bad(arg),
        });
    }
    let extra: Vec<String> = args.map(|a| a.render()).collect();
    if !extra.is_empty() {
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::promql::query;
    use prometheus::{Gauge, IntCounter, Registry};
    use std::time::Duration;

    const S: i64 = 1000;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn reference_rules() -> RuleSet {
        RuleSet::load_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/rules")).unwrap()
    }

    /// The reference pipeline's two scrape targets, exposing the metrics the two rules watch.
    struct Targets {
        mqtt: Registry,
        uptime: Gauge,
        nodered: Registry,
        packets: IntCounter,
    }

    impl Targets {
        fn new() -> Targets {
            let mqtt = Registry::new();
            let uptime = Gauge::new("broker_uptime", "Broker uptime in seconds.").unwrap();
            mqtt.register(Box::new(uptime.clone())).unwrap();
            let nodered = Registry::new();
            let packets = IntCounter::new("mqtt_received_data_packets_total", "Received packets.").unwrap();
            nodered.register(Box::new(packets.clone())).unwrap();
            Targets { mqtt, uptime, nodered, packets }
        }

        fn scrape(&self, db: &mut Tsdb, t: i64) {
            db.ingest_families(
                &self.mqtt.gather(),
                &[("job", "mqtt"), ("instance", "mosquitto-exporter:9234")],
                t,
            );
            db.ingest_families(
                &self.nodered.gather(),
                &[("job", "node-red"), ("instance", "nodered:1881")],
                t,
            );
        }
    }

    /// Broker outage at t0 = 100 s: until then every 10 s scrape sees uptime +10 and 10 new packets;
    /// from t0 both stand still. Returns (evaluation time, alert names sent) for every evaluation that
    /// sent something, evaluating `eval_lag` after each scrape.
    fn outage(eval_lag: i64, until: i64) -> (Vec<(i64, Vec<String>)>, RuleSet) {
        let targets = Targets::new();
        let mut rules = reference_rules();
        let mut db = Tsdb::new(Duration::from_secs(3600));
        let mut sent = Vec::new();
        for step in 0..=until / 10 {
            let t = step * 10 * S;
            if t > 0 && t <= 100 * S {
                targets.uptime.add(10.0);
                targets.packets.inc_by(10);
            }
            targets.scrape(&mut db, t);
            let alerts = rules.evaluate(&mut db, t + eval_lag);
            if !alerts.is_empty() {
                sent.push((t + eval_lag, alerts.iter().map(|a| a.labels["alertname"].clone()).collect()));
            }
        }
        (sent, rules)
    }

    #[test]
    fn engine_types_can_move_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RuleSet>();
        assert_send_sync::<Tsdb>();
        assert_send_sync::<crate::monitoring::alertmanager::Alertmanager>();
    }

    #[test]
    fn shipped_rule_files_load() {
        let rules = reference_rules();
        assert_eq!(
            rules.rule_names(),
            vec![("MQTT_BROKER", "MqttInstanceDownAlert"), ("NODE-RED", "NotReceivingSensorData")]
        );
    }

    #[test]
    fn reference_alerts_fire_when_the_30s_window_is_flat() {
        // Evaluating right after each scrape: the last increase is the 100 s sample, so [t-30s, t] holds
        // only flat samples first at t = 130 s (100, 110, 120, 130). At 120 s it still holds 90 → 100.
        let (sent, rules) = outage(0, 200);
        assert_eq!(sent[0].0, 130 * S);
        assert_eq!(sent[0].1, vec!["MqttInstanceDownAlert", "NotReceivingSensorData"]);
        // Re-sent only after the 1-minute resend delay has strictly passed: 200 s > 130 s + 60 s.
        assert_eq!(sent.iter().map(|(t, _)| *t).collect::<Vec<_>>(), vec![130 * S, 200 * S]);
        let active = rules.active_alerts();
        assert_eq!(active.len(), 2);
        let mqtt = &active[0];
        assert_eq!(
            mqtt.labels,
            labels(&[
                ("alertname", "MqttInstanceDownAlert"),
                ("instance", "mosquitto-exporter:9234"),
                ("job", "mqtt"),
                ("pipeline_component", "MQTT_BROKER"),
                ("severity", "critical"),
            ])
        );
        assert_eq!(mqtt.annotations["summary"], "MQTT not reachable");
        assert_eq!(
            mqtt.annotations["description"],
            "mosquitto-exporter:9234 of job mqtt has not been receiving any increase in the broker's \
             uptime for half a minute."
        );
        assert_eq!(active[1].annotations["summary"], "Instance nodered:1881 is not receiving sensor data");
        // No `for:`: fires at the first true evaluation.
        assert_eq!((mqtt.state, mqtt.active_at, mqtt.fired_at), (AlertState::Firing, 130 * S, Some(130 * S)));
        assert_eq!(mqtt.value, 0.0);
        assert_eq!(
            mqtt.generator_url,
            concat!(
                "http://prometheus:9090/graph?g0.expr=",
                "increase%28broker_uptime%7Bjob%3D%22mqtt%22%7D%5B30s%5D%29+%3D%3D+0&g0.tab=1"
            )
        );
    }

    #[test]
    fn evaluation_between_scrapes_fires_at_first_flat_window() {
        // Evaluating 5 s after each scrape: at 125 s the window [95, 125] holds 100, 110, 120, all flat;
        // at 115 s it holds 90 → 100.
        let (sent, _) = outage(5 * S, 150);
        assert_eq!(sent[0].0, 125 * S);
    }

    #[test]
    fn pending_for_keep_firing_and_resolution() {
        let text = r#"
groups:
  - name: g
    interval: 10s
    rules:
      - alert: High
        expr: level > 5
        for: 20s
        keep_firing_for: 15s
        labels: {severity: warning}
"#;
        let mut rules = RuleSet::parse(text, "g.yml").unwrap();
        let mut db = Tsdb::new(Duration::from_secs(3600));
        let level = labels(&[("__name__", "level"), ("job", "j")]);
        // level: 0 s → 1, 10..40 s → 9, from 50 s → 1.
        let values = [1.0, 9.0, 9.0, 9.0, 9.0, 1.0, 1.0, 1.0, 1.0];
        let mut states = Vec::new();
        let mut sent = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let t = i as i64 * 10 * S;
            db.append(level.clone(), t, *v).unwrap();
            for a in rules.evaluate(&mut db, t) {
                sent.push((t, a.state, a.ends_at));
            }
            states.push(rules.active_alerts().first().map(|a| a.state));
        }
        use AlertState::{Firing, Pending};
        // Pending from 10 s; `for: 20s` is reached at 30 s; the condition clears at 50 s but
        // keep_firing_for keeps it firing at 50 and 60 s (< 15 s since 50 s); resolved at 70 s.
        assert_eq!(
            states,
            vec![
                None,
                Some(Pending),
                Some(Pending),
                Some(Firing),
                Some(Firing),
                Some(Firing),
                Some(Firing),
                None,
                None
            ]
        );
        // Sent when it fires (ends_at = 30 s + 4 × max(10 s, 60 s)) and once resolved (ends_at = 70 s).
        assert_eq!(sent, vec![(30 * S, Firing, Some(270 * S)), (70 * S, AlertState::Inactive, Some(70 * S))]);
        // ALERTS series: pending at 20 s, firing at 40 s, stale once resolved.
        let alerts = |t| query("ALERTS", &db, t).unwrap();
        let state_at = |t| match alerts(t) {
            Value::Vector(v) => v.iter().map(|s| s.labels["alertstate"].clone()).collect::<Vec<_>>(),
            _ => panic!("vector expected"),
        };
        assert_eq!(state_at(20 * S), vec!["pending"]);
        assert_eq!(state_at(40 * S), vec!["firing"]);
        assert!(state_at(75 * S).is_empty());
    }

    #[test]
    fn recording_rules_write_back_and_go_stale() {
        let text = r#"
groups:
  - name: rec
    rules:
      - record: job:temp:sum
        expr: sum by (job) (temp)
        labels: {source: rule}
      - alert: SumHigh
        expr: job:temp:sum > 10
"#;
        let mut rules = RuleSet::parse(text, "rec.yml").unwrap();
        let mut db = Tsdb::new(Duration::from_secs(3600));
        db.append(labels(&[("__name__", "temp"), ("job", "a"), ("i", "1")]), 0, 4.0).unwrap();
        db.append(labels(&[("__name__", "temp"), ("job", "a"), ("i", "2")]), 0, 8.0).unwrap();
        db.append(labels(&[("__name__", "temp"), ("job", "b"), ("i", "3")]), 0, 1.0).unwrap();
        // The alert, evaluated after the recording rule in the same group, already sees its output.
        let sent = rules.evaluate(&mut db, 0);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].labels, labels(&[("alertname", "SumHigh"), ("job", "a"), ("source", "rule")]));
        assert_eq!(sent[0].value, 12.0);
        let recorded = labels(&[("__name__", "job:temp:sum"), ("job", "b"), ("source", "rule")]);
        assert_eq!(db.points(&recorded).unwrap()[0].v, 1.0);
        // job b disappears: its recorded series gets a staleness marker at the next evaluation.
        db.append(
            labels(&[("__name__", "temp"), ("job", "b"), ("i", "3")]),
            10 * S,
            crate::monitoring::tsdb::stale_nan(),
        )
        .unwrap();
        rules.evaluate(&mut db, 10 * S);
        assert!(crate::monitoring::tsdb::is_stale_nan(db.points(&recorded).unwrap()[1].v));
        // Groups stay on their 10 s grid: not due before 20 s; a late call at 23 s evaluates and the
        // next slot is 30 s, not 33 s.
        assert_eq!(rules.next_due(15 * S), Some(20 * S));
        let job_a = labels(&[("__name__", "job:temp:sum"), ("job", "a"), ("source", "rule")]);
        let times = |db: &Tsdb| db.points(&job_a).unwrap().iter().map(|p| p.t).collect::<Vec<_>>();
        rules.evaluate(&mut db, 19 * S);
        assert_eq!(times(&db), vec![0, 10 * S]);
        rules.evaluate(&mut db, 23 * S);
        assert_eq!(times(&db), vec![0, 10 * S, 23 * S]);
        assert_eq!(rules.next_due(23 * S), Some(30 * S));
    }

    #[test]
    fn templates_expand_like_prometheus() {
        let data = labels(&[("instance", "host:9100"), ("job", "node")]);
        let render = |src: &str, value: f64| Template::parse(src).unwrap().render(&data, value);
        assert_eq!(
            render("{{ $labels.instance }} / {{ .Labels.job }} = {{ $value }}", 0.25),
            "host:9100 / node = 0.25"
        );
        assert_eq!(render("{{ $labels.missing }}|", 1.0), "|");
        assert_eq!(render("{{ $value }}", 1234567.0), "1.234567e+06");
        assert_eq!(render("{{ humanize $value }}", 1234567.0), "1.235M");
        assert_eq!(render("{{ $value | humanize }}", 0.0012), "1.2m");
        assert_eq!(render("{{ humanize 0 }}", 0.0), "0");
        assert_eq!(render("{{ humanize1024 $value }}", 2048.0), "2ki");
        assert_eq!(render("{{ humanizePercentage $value }}", 0.1234), "12.34%");
        assert_eq!(render("{{ humanizeDuration $value }}", 93784.0), "1d 2h 3m 4s");
        assert_eq!(render("{{ humanizeDuration $value }}", 0.25), "250ms");
        assert_eq!(render(r#"{{ printf "%.2f" $value }} {{ $labels.job | toUpper }}"#, 1.23456), "1.23 NODE");
        assert_eq!(render("a  {{- $labels.job -}}  b{{/* note */}}", 0.0), "anodeb");
        assert_eq!(
            render("{{ humanize $labels.job }}", 0.0),
            "<error expanding template: cannot convert \"node\" to a number>"
        );
        assert!(Template::parse("{{ $labels.job ").is_err());
        assert!(Template::parse("{{ range $labels }}").is_err());
        assert!(Template::parse("{{ $externalLabels.x }}").is_err());
    }

    #[test]
    fn templated_rule_labels() {
        let text = r#"
groups:
  - name: t
    rules:
      - alert: A
        expr: vector(1234)
        labels:
          where: "at-{{ $labels.nope }}{{ humanize $value }}"
        annotations:
          text: "value {{ $value }}"
"#;
        let mut rules = RuleSet::parse(text, "t.yml").unwrap();
        let mut db = Tsdb::new(Duration::from_secs(60));
        let sent = rules.evaluate(&mut db, 0);
        assert_eq!(sent[0].labels["where"], "at-1.234k");
        assert_eq!(sent[0].annotations["text"], "value 1234");
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "\
groups:
  - name: g
    intervall: 10s
    rules:
      - alert: A
        expr: up == 0
        for: 5 minutes
      - alert: A
        expr: rate(up[5m]
      - alert: B
        expr: histogram_quantile(0.9, rate(x[5m]))
        annotations:
          summary: \"{{ $labels.x \"
      - record: bad-name
        expr: up
        for: 1m
      - alert: C
        labels:
          __name__: x
  - name: g
    rules: []
";
        let err = RuleSet::parse(text, "rules/bad.yml").unwrap_err();
        let RulesError::Invalid(problems) = &err else { panic!("{err}") };
        let found: Vec<(Option<usize>, &str)> =
            problems.iter().map(|p| (p.line, p.message.as_str())).collect();
        let expect = [
            (3, "unknown field `intervall`"),
            (7, "invalid duration `5 minutes`"),
            (8, "alert `A` is defined more than once"),
            (9, "could not parse expression"),
            (11, "unsupported PromQL construct: function `histogram_quantile`"),
            (13, "invalid template"),
            (14, "invalid field `for` in a recording rule"),
            (14, "invalid recording rule name `bad-name`"),
            (17, "field `expr` must be set"),
            (19, "invalid label name `__name__`"),
            (20, "group name `g` is repeated"),
        ];
        assert_eq!(found.len(), expect.len(), "{err}");
        for ((line, message), (want_line, want)) in found.iter().zip(expect) {
            assert_eq!(*line, Some(want_line), "{message}");
            assert!(message.contains(want), "line {want_line}: `{message}` lacks `{want}`");
        }
        assert!(
            problems[0].to_string().starts_with("rules/bad.yml:3:5: groups[0]: unknown field"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn yaml_and_type_errors_carry_positions() {
        let err = RuleSet::parse("groups:\n  - name: g\n    rules: [\n", "s.yml").unwrap_err();
        let RulesError::Invalid(problems) = err else { panic!("expected problems") };
        assert!(problems[0].line.is_some());
        let err = RuleSet::parse(
            "groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: [1]\n",
            "t.yml",
        )
        .unwrap_err();
        let RulesError::Invalid(problems) = err else { panic!("expected problems") };
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(5));
        // An empty file holds no groups.
        assert!(RuleSet::parse("# nothing\n", "e.yml").unwrap().rule_names().is_empty());
    }

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration("30s"), Ok(30_000));
        assert_eq!(parse_duration("1h5m"), Ok(3_900_000));
        assert_eq!(parse_duration("1d2h"), Ok(93_600_000));
        assert_eq!(parse_duration("1w"), Ok(604_800_000));
        assert_eq!(parse_duration("1y"), Ok(31_536_000_000));
        assert_eq!(parse_duration("1m500ms"), Ok(60_500));
        assert_eq!(parse_duration("0"), Ok(0));
        for bad in ["", "5", "5m1h", "1s1s", "1.5s", "10x", "m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
