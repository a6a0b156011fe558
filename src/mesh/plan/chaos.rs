//! The chaos kinds compiled: `NetworkChaos` (actions, delay traps, tc rates), `PodChaos`, `TimeChaos`.
//! `StressChaos`, `IOChaos` and `HTTPChaos` have files of their own.

use serde_json::json;

use super::{Cx, Direction, Effect, PlannedFault, fault};
use crate::config::KeyPath;
use crate::mesh::duration::{self, GoDuration};
use crate::mesh::schema::chaos::{DelaySpec, NetworkChaosSpec, PodChaosSpec, TimeChaosSpec};
use crate::mesh::select;

impl Cx<'_, '_> {
    pub(super) fn network(&mut self, n: &NetworkChaosSpec, at: &KeyPath) -> Option<(String, Effect)> {
        let direction = match n.direction.as_deref() {
            None | Some("to") => Direction::To,
            Some("from") => Direction::From,
            Some("both") => Direction::Both,
            Some(other) => {
                self.error(at.key("direction"), format!("{other:?} is not one of to, from, both"));
                Direction::To
            }
        };
        if direction != Direction::To && !n.external_targets.is_empty() && n.action != "partition" {
            self.error(
                at.key("direction"),
                "external targets cannot be used with `from` and `both` outside partitions (as Chaos Mesh refuses)",
            );
        }
        if direction != Direction::To && n.target.is_none() && n.action != "partition" {
            self.error(
                at.key("direction"),
                "`from` and `both` need a `target` (Chaos Mesh refuses them without one)",
            );
        }
        if let Some(t) = &n.target {
            self.selector(t, &at.key("target"));
        }
        for (i, t) in n.external_targets.iter().enumerate() {
            let at = at.key("externalTargets").index(i);
            if !select::valid_external(t) {
                self.error(at, format!("{t:?} is not an IP address, a CIDR block or a domain name"));
            } else if let Some(pods) = self.pods
                && !pods.iter().any(|p| p.has_external(t))
            {
                self.warning(
                    at,
                    format!(
                        "{t:?} is no external host of this flow (an mqtt-broker's `external` / --mqtt-url, an \
                         order store's or reasoner's PostgreSQL `url` / --database-url, a kafka-cluster's \
                         `bootstrap` / --kafka-brokers): it cuts nothing here"
                    ),
                );
            }
        }
        let mut faults = Vec::new();
        let wants = |what: &str| n.action == what || n.action == "netem";
        let missing = |cx: &mut Self, what: &str| {
            if n.action == what {
                cx.error(at.key(what), format!("action {what} needs `{what}`"));
            }
        };
        match n.action.as_str() {
            "netem" | "delay" | "loss" | "duplicate" | "corrupt" | "partition" | "bandwidth" | "rate" => {}
            other => {
                self.error(
                    at.key("action"),
                    format!("{other:?} is not one of netem, delay, loss, duplicate, corrupt, partition, bandwidth, rate"),
                );
                return None;
            }
        }
        if wants("delay") {
            match &n.delay {
                Some(d) => faults.extend(self.delay(d, &at.key("delay"))),
                None => missing(self, "delay"),
            }
        }
        if wants("loss") {
            match &n.loss {
                Some(l) => {
                    let percent = self.percent(&l.loss, at.key("loss").key("loss"));
                    faults.push(fault("network-loss", json!({ "percent": percent })));
                }
                None => missing(self, "loss"),
            }
        }
        if wants("duplicate") {
            match &n.duplicate {
                Some(d) => {
                    let percent = self.percent(&d.duplicate, at.key("duplicate").key("duplicate"));
                    faults.push(fault("network-duplicate", json!({ "percent": percent })));
                }
                None => missing(self, "duplicate"),
            }
        }
        if wants("corrupt") {
            match &n.corrupt {
                Some(c) => {
                    let percent = self.percent(&c.corrupt, at.key("corrupt").key("corrupt"));
                    faults.push(fault("network-corrupt", json!({ "percent": percent })));
                }
                None => missing(self, "corrupt"),
            }
        }
        if n.action == "bandwidth" {
            match &n.bandwidth {
                Some(b) => {
                    if let Some(rate) = self.rate(&b.rate, at.key("bandwidth").key("rate")) {
                        faults.push(fault("network-bandwidth", json!({ "rate": rate })));
                    }
                }
                None => missing(self, "bandwidth"),
            }
        }
        if wants("rate") {
            match &n.rate {
                Some(r) => {
                    if let Some(rate) = self.rate(&r.rate, at.key("rate").key("rate")) {
                        faults.push(fault("network-bandwidth", json!({ "rate": rate })));
                    }
                }
                None => missing(self, "rate"),
            }
        }
        if n.action == "partition" {
            faults.push(fault("network-partition", json!({})));
        }
        if n.action == "netem" && faults.is_empty() && self.errors == 0 {
            self.warning(
                at.key("action"),
                "netem without delay, loss, duplicate, corrupt or rate injects nothing",
            );
        }
        let (target, external) = (n.target.clone(), n.external_targets.clone());
        Some((n.action.clone(), Effect::Links { direction, target, external, faults }))
    }

    /// `delay`: a zero delay injects nothing (a warning); the unit traps are warnings.
    pub(super) fn delay(&mut self, d: &DelaySpec, at: &KeyPath) -> Vec<PlannedFault> {
        let value = |cx: &mut Self, text: &str, key: &str| -> Option<GoDuration> {
            match duration::parse(text) {
                Ok(v) if v.nanos < 0 => {
                    cx.error(at.key(key), format!("{text:?} is negative"));
                    None
                }
                Ok(v) => {
                    if v.unitless {
                        cx.warning(
                            at.key(key),
                            format!(
                                "{text:?} has no unit: Chaos Mesh 2.7 accepts it, 2.8 and later reject it (the CRD \
                                 requires ns, us, ms, s, m or h); write \"0ms\""
                            ),
                        );
                    }
                    Some(v)
                }
                Err(e) => {
                    cx.error(at.key(key), e);
                    None
                }
            }
        };
        let latency = value(self, &d.latency, "latency");
        let jitter = d.jitter.as_deref().and_then(|j| value(self, j, "jitter"));
        let correlation = d.correlation.as_deref().map_or(0.0, |c| self.percent(c, at.key("correlation")));
        let (Some(latency), jitter) = (latency, jitter) else { return Vec::new() };
        let jitter_nanos = jitter.map_or(0, |j| j.nanos);
        let mut out = Vec::new();
        if latency.nanos == 0 && jitter_nanos == 0 {
            self.warning(at.key("latency"), "a delay of 0 with no jitter injects nothing");
        } else {
            self.warning(
                at.key("latency"),
                format!(
                    "Chaos Mesh 2.7.0 to 2.7.3 passed delays to tc without units (chaos-mesh#4545, fixed in 2.8.0): \
                     a study run on those versions had about 1000 times less than the {} configured; chaoslab \
                     applies it as written",
                    d.latency
                ),
            );
            out.push(fault(
                "network-delay",
                json!({
                    "latency": latency.nanos as f64 / 1e9,
                    "jitter": jitter_nanos as f64 / 1e9,
                    "correlation": correlation,
                }),
            ));
        }
        if let Some(r) = &d.reorder {
            let percent = self.percent(&r.reorder, at.key("reorder").key("reorder"));
            if let Some(c) = &r.correlation {
                self.percent(c, at.key("reorder").key("correlation"));
            }
            if latency.nanos == 0 {
                self.error(
                    at.key("reorder"),
                    "reordering needs a latency (netem holds the other packets back by it)",
                );
            }
            out.push(fault(
                "network-reorder",
                json!({ "percent": percent, "latency": latency.nanos as f64 / 1e9 }),
            ));
        }
        out
    }

    /// A tc rate (`100kbps`, `1mbit`, `10bps`) in bytes per second. As in tc, `bit` units count bits and
    /// `bps` units count bytes.
    pub(super) fn rate(&mut self, text: &str, at: KeyPath) -> Option<u64> {
        let lower = text.trim().to_ascii_lowercase();
        let split = lower.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(lower.len());
        let (num, unit) = lower.split_at(split);
        let bytes_per = |unit: &str| -> Option<f64> {
            Some(match unit {
                "bit" => 1.0 / 8.0,
                "kbit" => 1e3 / 8.0,
                "mbit" => 1e6 / 8.0,
                "gbit" => 1e9 / 8.0,
                "tbit" => 1e12 / 8.0,
                "bps" => 1.0,
                "kbps" => 1e3,
                "mbps" => 1e6,
                "gbps" => 1e9,
                "tbps" => 1e12,
                _ => return None,
            })
        };
        match (num.parse::<f64>(), bytes_per(unit)) {
            (Ok(n), Some(f)) if n > 0.0 => Some(((n * f).round() as u64).max(1)),
            _ => {
                self.error(
                    at,
                    format!("{text:?} is not a tc rate (a number and a unit: bit, kbit, mbit, gbit, bps, kbps, mbps, gbps)"),
                );
                None
            }
        }
    }

    pub(super) fn pod(&mut self, s: &PodChaosSpec, at: &KeyPath) -> Option<(String, Effect)> {
        if let Some(g) = s.grace_period
            && g < 0
        {
            self.error(at.key("gracePeriod"), format!("{g} is negative"));
        }
        // Kubernetes deletes a pod with a grace period (SIGTERM, SIGKILL after it), then recreates it.
        let grace = match s.grace_period {
            Some(g) if g > 0 && s.action == "pod-kill" => json!({ "grace": g }),
            _ => json!({}),
        };
        let kind = match s.action.as_str() {
            "pod-kill" => "process-kill",
            "pod-failure" => "process-failure",
            "container-kill" => {
                if s.container_names.is_empty() {
                    self.error(at.key("containerNames"), "container-kill needs containerNames");
                }
                "process-kill"
            }
            other => {
                self.error(
                    at.key("action"),
                    format!("{other:?} is not one of pod-kill, pod-failure, container-kill"),
                );
                return None;
            }
        };
        let params = if kind == "process-kill" { grace } else { json!({}) };
        Some((s.action.clone(), Effect::Pods { faults: vec![fault(kind, params)] }))
    }

    pub(super) fn time(&mut self, t: &TimeChaosSpec, at: &KeyPath) -> (String, Effect) {
        let offset = match duration::parse(&t.time_offset) {
            Ok(d) => d.nanos as f64 / 1e9,
            Err(e) => {
                self.error(at.key("timeOffset"), e);
                0.0
            }
        };
        for (i, id) in t.clock_ids.iter().enumerate() {
            if id != "CLOCK_REALTIME" {
                self.warning(
                    at.key("clockIds").index(i),
                    format!(
                        "chaoslab shifts a component's calendar clock (CLOCK_REALTIME); {id} is treated as it"
                    ),
                );
            }
        }
        let faults = vec![fault("clock-offset", json!({ "offset": offset }))];
        ("time-offset".into(), Effect::Pods { faults })
    }
}
