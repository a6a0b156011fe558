//! Prometheus rule files: strict loading and evaluation (alerting and recording rules).
//!
//! Loading (`load.rs`) reads the rule-file YAML (`groups: [{name, interval?, rules: [...]}]`) and refuses
//! anything Prometheus would refuse plus anything our evaluator cannot run: unknown or duplicate keys,
//! bad durations, invalid names, alert names repeated within a group, expressions that do not parse or
//! use unsupported PromQL, and templates we cannot expand. Every problem is reported at once, each as
//! `file:line:key: message`.
//!
//! Evaluation follows Prometheus' rule manager: each group runs at its interval; an alerting rule's
//! alerts go inactive → pending → firing once `for` has elapsed (at once without `for`), stay firing
//! for `keep_firing_for` after the condition clears, and are resolved (kept 15 minutes to report the
//! resolution) when it is false. [`RuleSet::evaluate`] returns what Prometheus would send to
//! Alertmanager at that instant (firing and resolved alerts, re-sent at most once a minute).
//! Recording rules and the `ALERTS` series are written back into the [`Tsdb`], with staleness markers
//! for series that disappear. Labels and annotations are Go-template-expanded (`template.rs`) with
//! `$labels`, `$value` and the `humanize*` functions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::config::ProblemsError;
use crate::monitoring::promql::{self, Expr, PromqlError, Sample, Value};
use crate::monitoring::tsdb::{Labels, METRIC_NAME, Tsdb, format_labels};

mod load;
mod template;

use template::Template;

/// Group interval when a group sets none (the reference `prometheus.yml`'s `evaluation_interval`).
pub const DEFAULT_EVALUATION_INTERVAL_MS: i64 = 10_000;
/// Minimum time before Prometheus re-sends an unchanged alert (`--rules.alert.resend-delay`).
pub const RESEND_DELAY_MS: i64 = 60_000;
/// How long a resolved alert is kept (and re-sent as resolved).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60_000;
/// Prometheus' external URL used in `generatorURL` unless set otherwise.
pub const DEFAULT_EXTERNAL_URL: &str = "http://prometheus:9090";

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
    /// One or more files are invalid; every problem found is listed, one `file:line:key: message` a line.
    #[error("invalid rule files:\n{0}")]
    Invalid(ProblemsError),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::promql::query;
    use prometheus::{Gauge, IntCounter, Registry};
    use std::path::Path;
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
