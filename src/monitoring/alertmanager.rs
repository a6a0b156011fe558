//! The in-process Alertmanager: grouping, timing and deduplication of alerts, and the webhook payload.
//!
//! It reproduces what the reference's single-route `alertmanager.yml` does: alerts pushed by the rule
//! engine are merged by fingerprint and put into aggregation groups keyed by the `group_by` labels. A new
//! group is flushed after `group_wait`, then every `group_interval`; a flush notifies only when the
//! notification log says so (a new firing alert, all alerts resolved, resolved alerts with
//! `send_resolved`, or `repeat_interval` strictly exceeded since the last notification — so with a 1 m
//! group interval a 5 m repeat lands on the 6th tick, as in the real Alertmanager). Resolved alerts are
//! dropped from their group after a flush and empty groups disappear. Inhibition, silences and
//! sub-routes are not modelled (the reference's single inhibit rule never applies to its two critical
//! alerts).
//!
//! Time is passed in (epoch ms): [`Alertmanager::push`] takes the rule engine's output,
//! [`Alertmanager::due`] runs every group timer up to a time and returns the webhook payloads
//! (Alertmanager's webhook v4 JSON), and [`Alertmanager::next_due`] tells a sim loop when to call it.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::monitoring::rules::{Alert, AlertState};
use crate::monitoring::tsdb::{Labels, go_quote};

/// Route and receiver settings; [`Default`] is the reference `alertmanager.yml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertmanagerConfig {
    /// Receiver name (`ingestion-service`).
    pub receiver: String,
    /// Where the receiver's webhook posts (`http://ingestion-service:3000/alerts`).
    pub webhook_url: String,
    /// Whether resolved alerts are sent (`false`).
    pub send_resolved: bool,
    /// Labels that form a group (`['alertname', 'instance']`); `["..."]` groups by all labels.
    pub group_by: Vec<String>,
    /// Wait before a new group's first notification (5 s).
    pub group_wait: Duration,
    /// Interval between a group's flushes (1 m).
    pub group_interval: Duration,
    /// Minimum time before an unchanged notification is repeated (5 m).
    pub repeat_interval: Duration,
    /// `endsAt` given to alerts pushed without one (Alertmanager's `resolve_timeout`, 5 m).
    pub resolve_timeout: Duration,
    /// Alertmanager's external URL, echoed in payloads.
    pub external_url: String,
    /// Maximum alerts per payload; 0 means no limit (the rest are counted in `truncatedAlerts`).
    pub max_alerts: usize,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            receiver: "ingestion-service".to_string(),
            webhook_url: "http://ingestion-service:3000/alerts".to_string(),
            send_resolved: false,
            group_by: vec!["alertname".to_string(), "instance".to_string()],
            group_wait: Duration::from_secs(5),
            group_interval: Duration::from_secs(60),
            repeat_interval: Duration::from_secs(300),
            resolve_timeout: Duration::from_secs(300),
            external_url: "http://alertmanager:9093".to_string(),
            max_alerts: 0,
        }
    }
}

/// One alert inside a webhook payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// The alert's labels.
    pub labels: Labels,
    /// The alert's annotations.
    pub annotations: Labels,
    /// RFC 3339 start time.
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// RFC 3339 end time; Go's zero time `0001-01-01T00:00:00Z` while firing.
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    /// Link to the alert's expression on Prometheus.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// 16 hex digits: the FNV-1a fingerprint of the labels.
    pub fingerprint: String,
}

/// Alertmanager's webhook body (version 4), field for field and in Go's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookPayload {
    /// Receiver name.
    pub receiver: String,
    /// `firing` if any alert fires, else `resolved`.
    pub status: String,
    /// The alerts.
    pub alerts: Vec<WebhookAlert>,
    /// The group's labels.
    #[serde(rename = "groupLabels")]
    pub group_labels: Labels,
    /// Labels all alerts share.
    #[serde(rename = "commonLabels")]
    pub common_labels: Labels,
    /// Annotations all alerts share.
    #[serde(rename = "commonAnnotations")]
    pub common_annotations: Labels,
    /// Alertmanager's external URL.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// Always `"4"`.
    pub version: String,
    /// `{}:{<group labels>}`, identifying the group.
    #[serde(rename = "groupKey")]
    pub group_key: String,
    /// Alerts left out because of `max_alerts`.
    #[serde(rename = "truncatedAlerts")]
    pub truncated_alerts: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct StoredAlert {
    labels: Labels,
    annotations: Labels,
    starts_at: i64,
    ends_at: i64,
    /// `ends_at` was filled in from `resolve_timeout`, not given by the sender.
    timeout: bool,
    generator_url: String,
    updated_at: i64,
}

impl StoredAlert {
    fn resolved_at(&self, now: i64) -> bool {
        self.ends_at <= now
    }

    /// Alertmanager's `Alert.Merge`: `newer` wins, keeping the earliest start and a later explicit end.
    fn merge(&self, newer: StoredAlert, now: i64) -> StoredAlert {
        let (old, new) =
            if newer.updated_at < self.updated_at { (&newer, self.clone()) } else { (self, newer.clone()) };
        let mut merged = new;
        merged.starts_at = merged.starts_at.min(old.starts_at);
        if merged.resolved_at(now) {
            if old.resolved_at(now) && old.ends_at > merged.ends_at {
                merged.ends_at = old.ends_at;
            }
        } else if old.ends_at > merged.ends_at && !old.timeout {
            merged.ends_at = old.ends_at;
        }
        merged
    }
}

#[derive(Debug, Clone)]
struct AggrGroup {
    labels: Labels,
    alerts: BTreeMap<u64, StoredAlert>,
    next_flush: i64,
    has_flushed: bool,
}

/// What the last notification of a group contained (Alertmanager's notification log entry).
#[derive(Debug, Clone)]
struct LogEntry {
    firing: BTreeSet<u64>,
    resolved: BTreeSet<u64>,
    at: i64,
}

/// The Alertmanager. See the module docs.
#[derive(Debug, Clone)]
pub struct Alertmanager {
    config: AlertmanagerConfig,
    /// Group key → group.
    groups: BTreeMap<String, AggrGroup>,
    /// Group key → last notification.
    log: BTreeMap<String, LogEntry>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Alertmanager {
    /// An Alertmanager with the given route/receiver settings.
    pub fn new(config: AlertmanagerConfig) -> Alertmanager {
        Alertmanager { config, groups: BTreeMap::new(), log: BTreeMap::new() }
    }

    /// The settings in use.
    pub fn config(&self) -> &AlertmanagerConfig {
        &self.config
    }

    /// Receives alerts at `t_ms` (what Prometheus posts to `/api/v2/alerts`): `startsAt` is the firing
    /// time, `endsAt` the alert's [`Alert::ends_at`] (or `t_ms` + `resolve_timeout` if unset). Pending
    /// alerts are ignored, as Prometheus never sends them.
    pub fn push(&mut self, alerts: &[Alert], t_ms: i64) {
        let group_wait = ms(self.config.group_wait);
        for alert in alerts {
            if alert.state == AlertState::Pending {
                tracing::debug!(labels = ?alert.labels, "pending alert not accepted by the alertmanager");
                continue;
            }
            let (ends_at, timeout) = match alert.ends_at.or(alert.resolved_at) {
                Some(end) => (end, false),
                None => (t_ms.saturating_add(ms(self.config.resolve_timeout)), true),
            };
            let incoming = StoredAlert {
                labels: alert.labels.clone(),
                annotations: alert.annotations.clone(),
                starts_at: alert.fired_at.unwrap_or(alert.active_at),
                ends_at,
                timeout,
                generator_url: alert.generator_url.clone(),
                updated_at: t_ms,
            };
            let group_labels = self.group_labels(&alert.labels);
            let key = format!("{{}}:{}", format_label_set(&group_labels));
            let group = self.groups.entry(key).or_insert_with(|| AggrGroup {
                labels: group_labels,
                alerts: BTreeMap::new(),
                next_flush: t_ms + group_wait,
                has_flushed: false,
            });
            let fp = fingerprint(&alert.labels);
            let stored = match group.alerts.get(&fp) {
                Some(old) if overlaps(old, &incoming) => old.merge(incoming, t_ms),
                _ => incoming,
            };
            // An alert that started more than group_wait ago is flushed at once.
            if !group.has_flushed && stored.starts_at + group_wait < t_ms {
                group.next_flush = group.next_flush.min(t_ms);
            }
            group.alerts.insert(fp, stored);
        }
    }

    /// Runs every group timer that expires at or before `t_ms`, in time order, and returns the
    /// notifications they send.
    pub fn due(&mut self, t_ms: i64) -> Vec<WebhookPayload> {
        let group_interval = ms(self.config.group_interval).max(1);
        let mut out = Vec::new();
        loop {
            let next = self
                .groups
                .iter()
                .filter(|(_, g)| g.next_flush <= t_ms)
                .min_by_key(|(key, g)| (g.next_flush, key.as_str()))
                .map(|(key, g)| (key.clone(), g.next_flush));
            let Some((key, now)) = next else { break };
            if let Some(group) = self.groups.get_mut(&key) {
                group.next_flush = now + group_interval;
                group.has_flushed = true;
            }
            out.extend(self.flush(&key, now));
            if self.groups.get(&key).is_some_and(|g| g.alerts.is_empty()) {
                self.groups.remove(&key);
            }
        }
        out
    }

    /// When the next group timer expires, if any group exists.
    pub fn next_due(&self) -> Option<i64> {
        self.groups.values().map(|g| g.next_flush).min()
    }

    /// Keys of the current aggregation groups.
    pub fn group_keys(&self) -> Vec<&str> {
        self.groups.keys().map(String::as_str).collect()
    }

    fn group_labels(&self, labels: &Labels) -> Labels {
        if self.config.group_by.iter().any(|l| l == "...") {
            return labels.clone();
        }
        self.config
            .group_by
            .iter()
            .filter_map(|name| labels.get(name).map(|v| (name.clone(), v.clone())))
            .collect()
    }

    fn flush(&mut self, key: &str, now: i64) -> Option<WebhookPayload> {
        let group = self.groups.get_mut(key)?;
        if group.alerts.is_empty() {
            return None;
        }
        let mut alerts: Vec<(u64, StoredAlert)> =
            group.alerts.iter().map(|(fp, a)| (*fp, a.clone())).collect();
        alerts.sort_by(|(_, a), (_, b)| alert_order(&a.labels, &b.labels));
        let firing: BTreeSet<u64> =
            alerts.iter().filter(|(_, a)| !a.resolved_at(now)).map(|(fp, _)| *fp).collect();
        let resolved: BTreeSet<u64> =
            alerts.iter().filter(|(_, a)| a.resolved_at(now)).map(|(fp, _)| *fp).collect();
        // Resolved alerts leave the group once flushed (a skipped notification counts as done).
        group.alerts.retain(|fp, a| !(resolved.contains(fp) && a.resolved_at(now)));
        let group_labels = group.labels.clone();
        let repeat = ms(self.config.repeat_interval);
        let needs_update = match self.log.get(key) {
            None => !firing.is_empty(),
            Some(entry) if !firing.is_subset(&entry.firing) => true,
            Some(entry) if firing.is_empty() => !entry.firing.is_empty(),
            Some(entry) if self.config.send_resolved && !resolved.is_subset(&entry.resolved) => true,
            Some(entry) => entry.at < now - repeat,
        };
        if !needs_update {
            return None;
        }
        self.log.insert(key.to_string(), LogEntry { firing: firing.clone(), resolved, at: now });
        let sent: Vec<(u64, StoredAlert)> = if self.config.send_resolved {
            alerts
        } else {
            alerts.into_iter().filter(|(fp, _)| firing.contains(fp)).collect()
        };
        if sent.is_empty() {
            return None;
        }
        tracing::debug!(group = key, alerts = sent.len(), "alertmanager notification");
        Some(self.payload(key, group_labels, sent, now))
    }

    fn payload(
        &self,
        key: &str,
        group_labels: Labels,
        mut sent: Vec<(u64, StoredAlert)>,
        now: i64,
    ) -> WebhookPayload {
        let mut truncated = 0;
        if self.config.max_alerts > 0 && sent.len() > self.config.max_alerts {
            truncated = (sent.len() - self.config.max_alerts) as u64;
            sent.truncate(self.config.max_alerts);
        }
        let any_firing = sent.iter().any(|(_, a)| !a.resolved_at(now));
        let common = |pick: fn(&StoredAlert) -> &Labels| -> Labels {
            let mut iter = sent.iter().map(|(_, a)| pick(a));
            let mut common = iter.next().cloned().unwrap_or_default();
            for labels in iter {
                common.retain(|k, v| labels.get(k) == Some(v));
            }
            common
        };
        let common_labels = common(|a| &a.labels);
        let common_annotations = common(|a| &a.annotations);
        let alerts = sent
            .iter()
            .map(|(fp, a)| {
                let resolved = a.resolved_at(now);
                WebhookAlert {
                    status: if resolved { "resolved" } else { "firing" }.to_string(),
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    starts_at: format_rfc3339(a.starts_at),
                    ends_at: if resolved { format_rfc3339(a.ends_at) } else { GO_ZERO_TIME.to_string() },
                    generator_url: a.generator_url.clone(),
                    fingerprint: format!("{fp:016x}"),
                }
            })
            .collect();
        WebhookPayload {
            receiver: self.config.receiver.clone(),
            status: if any_firing { "firing" } else { "resolved" }.to_string(),
            alerts,
            group_labels,
            common_labels,
            common_annotations,
            external_url: self.config.external_url.clone(),
            version: "4".to_string(),
            group_key: key.to_string(),
            truncated_alerts: truncated,
        }
    }
}

/// Go's zero `time.Time` in JSON, which Alertmanager sends as `endsAt` of firing alerts.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Whether two versions of an alert overlap in time (then Alertmanager merges them).
fn overlaps(old: &StoredAlert, new: &StoredAlert) -> bool {
    (new.ends_at > old.starts_at && new.ends_at < old.ends_at)
        || (new.starts_at > old.starts_at && new.starts_at < old.ends_at)
}

/// Alertmanager's (Prometheus model's) label-set fingerprint: FNV-1a 64 over sorted names and values,
/// each followed by the byte 255.
pub fn fingerprint(labels: &Labels) -> u64 {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut hash = OFFSET;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[255]);
        add(value.as_bytes());
        add(&[255]);
    }
    hash
}

/// `{a="x", b="y"}`, as Go's `model.LabelSet.String()` prints it.
fn format_label_set(labels: &Labels) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={}", go_quote(v))).collect();
    format!("{{{}}}", parts.join(", "))
}

/// Alertmanager's alert order in a notification: by `job`, then `instance` (alerts lacking one sort
/// last), then by label set (fewer labels first, then by the sorted names and values).
fn alert_order(a: &Labels, b: &Labels) -> Ordering {
    for key in ["job", "instance"] {
        match (a.get(key), b.get(key)) {
            (None, None) => continue,
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    if a.len() != b.len() {
        return a.len().cmp(&b.len());
    }
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        match (a.get(name), b.get(name)) {
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    Ordering::Equal
}

/// RFC 3339 in UTC with trailing zeros of the fraction dropped, like Go's `time.Time` JSON.
pub fn format_rfc3339(t_ms: i64) -> String {
    let Some(t) = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(t_ms) else {
        return GO_ZERO_TIME.to_string();
    };
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let millis = t_ms.rem_euclid(1000);
    if millis == 0 {
        format!("{base}Z")
    } else {
        let fraction = format!("{millis:03}");
        format!("{base}.{}Z", fraction.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::rules::RuleSet;
    use crate::monitoring::tsdb::Tsdb;
    use prometheus::{Gauge, Registry};
    use std::path::Path;

    const S: i64 = 1000;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// A firing alert as the rule engine sends it at `t` (fired at `fired`, valid for 4 minutes).
    fn firing(name: &str, instance: &str, fired: i64, t: i64) -> Alert {
        Alert {
            labels: labels(&[
                ("alertname", name),
                ("instance", instance),
                ("job", "mqtt"),
                ("severity", "critical"),
            ]),
            annotations: labels(&[("summary", "down")]),
            state: AlertState::Firing,
            active_at: fired,
            fired_at: Some(fired),
            resolved_at: None,
            value: 0.0,
            ends_at: Some(t + 240 * S),
            generator_url: "http://prometheus:9090/graph".to_string(),
        }
    }

    fn resolved(mut alert: Alert, at: i64) -> Alert {
        alert.state = AlertState::Inactive;
        alert.resolved_at = Some(at);
        alert.ends_at = Some(at);
        alert
    }

    /// Drives the alertmanager from `from` to `to`, re-pushing `alert` every 70 s like Prometheus'
    /// resend (so it stays firing), and returns the notification times.
    fn notification_times(am: &mut Alertmanager, alert: &Alert, from: i64, to: i64) -> Vec<i64> {
        let mut times = Vec::new();
        let mut next_push = from + 70 * S;
        while let Some(due) = am.next_due().filter(|d| *d <= to) {
            while next_push <= due {
                let mut again = alert.clone();
                again.ends_at = Some(next_push + 240 * S);
                am.push(&[again], next_push);
                next_push += 70 * S;
            }
            if !am.due(due).is_empty() {
                times.push(due);
            }
        }
        times
    }

    #[test]
    fn group_wait_then_repeat_on_the_first_interval_tick_past_repeat() {
        let mut am = Alertmanager::new(AlertmanagerConfig::default());
        let alert = firing("MqttInstanceDownAlert", "mosquitto-exporter:9234", 130 * S, 130 * S);
        am.push(std::slice::from_ref(&alert), 130 * S);
        assert_eq!(am.next_due(), Some(135 * S));
        assert!(am.due(134 * S).is_empty());
        // group_wait 5 s → 135 s. Then ticks every minute; the 5 m repeat is exceeded strictly only at
        // 135 + 6 × 60 = 495 s (at 435 s exactly 5 m have passed), and again at 855 s.
        let times = notification_times(&mut am, &alert, 130 * S, 900 * S);
        assert_eq!(times, vec![135 * S, 495 * S, 855 * S]);
    }

    #[test]
    fn payload_serializes_like_alertmanager_webhook_v4() {
        let mut am = Alertmanager::new(AlertmanagerConfig::default());
        // 2020-02-21T21:20:02.183Z
        let fired = 1_582_320_002_183;
        let mut alert = firing("MqttInstanceDownAlert", "mosquitto-exporter:9234", fired, fired);
        alert.labels.insert("pipeline_component".into(), "MQTT_BROKER".into());
        am.push(&[alert], fired);
        let payloads = am.due(fired + 5 * S);
        assert_eq!(payloads.len(), 1);
        let json = serde_json::to_string(&payloads[0]).unwrap();
        let expected = concat!(
            r#"{"receiver":"ingestion-service","status":"firing","alerts":[{"status":"firing","#,
            r#""labels":{"alertname":"MqttInstanceDownAlert","#,
            r#""instance":"mosquitto-exporter:9234","job":"mqtt","#,
            r#""pipeline_component":"MQTT_BROKER","severity":"critical"},"annotations":{"summary":"down"},"#,
            r#""startsAt":"2020-02-21T21:20:02.183Z","endsAt":"0001-01-01T00:00:00Z","#,
            r#""generatorURL":"http://prometheus:9090/graph","fingerprint":"944a9b9e9c3e7f0c"}],"#,
            r#""groupLabels":{"alertname":"MqttInstanceDownAlert","instance":"mosquitto-exporter:9234"},"#,
            r#""commonLabels":{"alertname":"MqttInstanceDownAlert","#,
            r#""instance":"mosquitto-exporter:9234","job":"mqtt","#,
            r#""pipeline_component":"MQTT_BROKER","severity":"critical"},"#,
            r#""commonAnnotations":{"summary":"down"},"#,
            r#""externalURL":"http://alertmanager:9093","version":"4","#,
            r#""groupKey":"{}:{alertname=\"MqttInstanceDownAlert\", instance=\"mosquitto-exporter:9234\"}","#,
            r#""truncatedAlerts":0}"#
        );
        assert_eq!(json, expected);
        let back: WebhookPayload = serde_json::from_str(&json).unwrap();
        assert_eq!(back, payloads[0]);
    }

    #[test]
    fn grouping_by_alertname_and_instance() {
        let mut am = Alertmanager::new(AlertmanagerConfig::default());
        let a = firing("Down", "x:1", 0, 0);
        let b = firing("Down", "y:1", 0, 0);
        let mut c = firing("Down", "x:1", 0, 0);
        c.labels.insert("severity".into(), "warning".into());
        c.annotations.insert("summary".into(), "other".into());
        am.push(&[a, b, c], 0);
        assert_eq!(
            am.group_keys(),
            vec![r#"{}:{alertname="Down", instance="x:1"}"#, r#"{}:{alertname="Down", instance="y:1"}"#]
        );
        let payloads = am.due(5 * S);
        assert_eq!(payloads.len(), 2);
        let x = &payloads[0];
        assert_eq!(x.alerts.len(), 2);
        // Fewer labels first, then by value: severity "critical" < "warning".
        assert_eq!(x.alerts[0].labels["severity"], "critical");
        assert!(!x.common_labels.contains_key("severity"));
        assert_eq!(x.common_labels["job"], "mqtt");
        assert!(x.common_annotations.is_empty());
        // A new alert joining a flushed group goes out at the next group_interval tick, not after group_wait.
        let d = firing("Down", "x:1", 10 * S, 10 * S);
        let mut d = d;
        d.labels.insert("extra".into(), "1".into());
        am.push(&[d], 10 * S);
        assert!(am.due(64 * S).is_empty());
        let tick = am.due(65 * S);
        assert_eq!(tick.len(), 1);
        assert_eq!(tick[0].alerts.len(), 3);
    }

    #[test]
    fn resolved_alerts_are_not_sent_without_send_resolved() {
        let mut am = Alertmanager::new(AlertmanagerConfig::default());
        let alert = firing("Down", "x:1", 0, 0);
        am.push(std::slice::from_ref(&alert), 0);
        assert_eq!(am.due(5 * S).len(), 1);
        am.push(&[resolved(alert.clone(), 30 * S)], 30 * S);
        // The next tick sees only a resolved alert: nothing is sent and the group goes away.
        assert!(am.due(65 * S).is_empty());
        assert!(am.group_keys().is_empty());
        assert_eq!(am.next_due(), None);
        // It fires again: a new group, group_wait again, and it is sent (it was not firing in the log).
        let again = firing("Down", "x:1", 100 * S, 100 * S);
        am.push(&[again], 100 * S);
        assert_eq!(am.next_due(), Some(105 * S));
        assert_eq!(am.due(105 * S).len(), 1);
    }

    #[test]
    fn send_resolved_reports_resolution() {
        let config = AlertmanagerConfig { send_resolved: true, ..AlertmanagerConfig::default() };
        let mut am = Alertmanager::new(config);
        let alert = firing("Down", "x:1", 0, 0);
        am.push(std::slice::from_ref(&alert), 0);
        am.due(5 * S);
        am.push(&[resolved(alert, 30 * S)], 30 * S);
        let payloads = am.due(65 * S);
        assert_eq!(payloads.len(), 1);
        assert_eq!(payloads[0].status, "resolved");
        assert_eq!(payloads[0].alerts[0].status, "resolved");
        assert_eq!(payloads[0].alerts[0].ends_at, "1970-01-01T00:00:30Z");
        assert_eq!(payloads[0].alerts[0].starts_at, "1970-01-01T00:00:00Z");
    }

    #[test]
    fn old_alerts_skip_group_wait_and_pending_ones_are_ignored() {
        let mut am = Alertmanager::new(AlertmanagerConfig::default());
        let mut pending = firing("Down", "x:1", 0, 0);
        pending.state = AlertState::Pending;
        am.push(&[pending], 0);
        assert_eq!(am.next_due(), None);
        // Fired at 0 s but first received at 60 s: 0 + 5 s is already past, so it is flushed at once.
        am.push(&[firing("Down", "x:1", 0, 60 * S)], 60 * S);
        assert_eq!(am.next_due(), Some(60 * S));
        assert_eq!(am.due(60 * S).len(), 1);
    }

    #[test]
    fn truncation_and_helpers() {
        let config =
            AlertmanagerConfig { max_alerts: 1, group_by: vec!["alertname".into()], ..Default::default() };
        let mut am = Alertmanager::new(config);
        am.push(&[firing("Down", "x:1", 0, 0), firing("Down", "y:1", 0, 0)], 0);
        let payloads = am.due(5 * S);
        assert_eq!((payloads[0].alerts.len(), payloads[0].truncated_alerts), (1, 1));
        assert_eq!(payloads[0].group_key, r#"{}:{alertname="Down"}"#);
        assert_eq!(fingerprint(&Labels::new()), 0xcbf2_9ce4_8422_2325);
        assert_eq!(format_rfc3339(1_582_320_007_180), "2020-02-21T21:20:07.18Z");
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn reference_outage_end_to_end() {
        // Scrape and evaluate every 10 s; the broker stops at t0 = 100 s (uptime stands still).
        let mqtt = Registry::new();
        let uptime = Gauge::new("broker_uptime", "uptime").unwrap();
        mqtt.register(Box::new(uptime.clone())).unwrap();
        let rules_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("flows/rules");
        let mut rules = RuleSet::load_dir(rules_dir).unwrap();
        let mut db = Tsdb::new(Duration::from_secs(3600));
        let mut am = Alertmanager::new(AlertmanagerConfig::default());
        let mut sent = Vec::new();
        let mut next_tick = 0;
        let end = 600 * S;
        loop {
            // Sleep exactly until the next scrape/evaluation or alertmanager timer.
            let t = am.next_due().map_or(next_tick, |d| d.min(next_tick));
            if t > end {
                break;
            }
            if t == next_tick {
                if t > 0 && t <= 100 * S {
                    uptime.add(10.0);
                }
                db.ingest_families(
                    &mqtt.gather(),
                    &[("job", "mqtt"), ("instance", "mosquitto-exporter:9234")],
                    t,
                );
                let alerts = rules.evaluate(&mut db, t);
                am.push(&alerts, t);
                next_tick += 10 * S;
            }
            for payload in am.due(t) {
                sent.push((t, payload));
            }
        }
        // Fires at t0 + 30 s, sent after group_wait (+5 s), repeated on the 6th group_interval tick.
        assert_eq!(sent.iter().map(|(t, _)| *t).collect::<Vec<_>>(), vec![135 * S, 495 * S]);
        let first = &sent[0].1;
        assert_eq!(first.alerts[0].labels["alertname"], "MqttInstanceDownAlert");
        assert_eq!(first.alerts[0].starts_at, "1970-01-01T00:02:10Z");
        assert_eq!(sent[1].1.alerts[0].starts_at, "1970-01-01T00:02:10Z");
    }
}
