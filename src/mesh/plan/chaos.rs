//! The chaos kinds compiled: `NetworkChaos` (actions, delay traps, tc rates), `PodChaos`, `TimeChaos`,
//! `IOChaos`, `HTTPChaos`.

use serde_json::{Value, json};

use super::{Cx, Direction, Effect, PlannedFault, fault};
use crate::config::KeyPath;
use crate::mesh::duration::{self, GoDuration};
use crate::mesh::schema::chaos::{
    DelaySpec, HttpChaosSpec, IoChaosSpec, NetworkChaosSpec, PodChaosSpec, StressChaosSpec, TimeChaosSpec,
};

impl Cx<'_, '_> {
    /// `StressChaos`: CPU stressors slow the work the selected components model (a service rate, as the
    /// miner's `throughput`) to 1/(1 + workers × load/100) — a stressor taking `load` percent of a core
    /// beside them; memory stressors make the process hold `size` × `workers` more memory.
    pub(super) fn stress(&mut self, st: &StressChaosSpec, at: &KeyPath) -> Option<(String, Effect)> {
        let errors = self.errors;
        if st.stressng_stressors.is_some() {
            self.error(
                at.key("stressngStressors"),
                "raw stress-ng options are not supported; use `stressors`",
            );
        }
        let mut faults = Vec::new();
        let mut actions = Vec::new();
        let sat = at.key("stressors");
        if let Some(cpu) = st.stressors.as_ref().and_then(|s| s.cpu.as_ref()) {
            let load = cpu.load.unwrap_or(100);
            if !(1..=64).contains(&cpu.workers) {
                self.error(sat.key("cpu").key("workers"), format!("{} is not between 1 and 64", cpu.workers));
            }
            if !(0..=100).contains(&load) {
                self.error(sat.key("cpu").key("load"), format!("{load} is not a percentage (0 to 100)"));
            }
            actions.push("cpu");
            faults.push(fault("cpu-stress", json!({ "workers": cpu.workers, "load": load })));
        }
        if let Some(mem) = st.stressors.as_ref().and_then(|s| s.memory.as_ref()) {
            let size = mem.size.as_deref().unwrap_or("256MB");
            match memory_size(size) {
                Ok(bytes) => {
                    let mb = (bytes * mem.workers.max(1) as u64).div_ceil(1024 * 1024);
                    if mb > 4096 {
                        self.error(
                            sat.key("memory").key("size"),
                            format!("{size} × {} workers is over 4 GiB", mem.workers),
                        );
                    }
                    actions.push("memory");
                    faults.push(fault("memory-stress", json!({ "megabytes": mb.max(1) })));
                }
                Err(e) => self.error(sat.key("memory").key("size"), e),
            }
        }
        if faults.is_empty() && self.errors == errors {
            self.error(sat, "a StressChaos needs a cpu or a memory stressor");
        }
        (self.errors == errors).then(|| (actions.join("+"), Effect::Pods { faults }))
    }

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
        if direction != Direction::To && n.target.is_none() && n.action != "partition" {
            self.error(
                at.key("direction"),
                "`from` and `both` need a `target` (Chaos Mesh refuses them without one)",
            );
        }
        if let Some(t) = &n.target {
            self.selector(t, &at.key("target"));
        }
        if !n.external_targets.is_empty() {
            self.error(at.key("externalTargets"), "external targets are not supported yet");
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
        Some((n.action.clone(), Effect::Links { direction, target: n.target.clone(), faults }))
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
        Some((s.action.clone(), Effect::Pods { faults: vec![fault(kind, json!({}))] }))
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

    pub(super) fn io(&mut self, io: &IoChaosSpec, at: &KeyPath) -> Option<(String, Effect)> {
        let percent = match io.percent {
            None => 100.0,
            Some(p) if (0..=100).contains(&p) => p as f64,
            Some(p) => {
                self.error(at.key("percent"), format!("{p} is not a percentage (0 to 100)"));
                100.0
            }
        };
        let f = match io.action.as_str() {
            "latency" => match self.duration(io.delay.as_deref(), at.key("delay")) {
                Some(d) => fault("io-latency", json!({ "delay": d.as_secs_f64() })),
                None => {
                    if io.delay.is_none() {
                        self.error(at.key("delay"), "action latency needs `delay`");
                    }
                    return None;
                }
            },
            "fault" => match io.errno {
                Some(28) => fault("disk-full", json!({})),
                Some(_) => fault("io-error", json!({ "percent": percent })),
                None => {
                    self.error(at.key("errno"), "action fault needs `errno`");
                    return None;
                }
            },
            "mistake" => {
                let Some(m) = &io.mistake else {
                    self.error(at.key("mistake"), "action mistake needs `mistake`");
                    return None;
                };
                let filling = m.filling.clone().unwrap_or_else(|| "zero".into());
                if filling != "zero" && filling != "random" {
                    self.error(
                        at.key("mistake").key("filling"),
                        format!("{filling:?} is not zero or random"),
                    );
                }
                let occurrences = m.max_occurrences.unwrap_or(1);
                let length = m.max_length.unwrap_or(1);
                for (key, v) in [("maxOccurrences", occurrences), ("maxLength", length)] {
                    if !(1..=1_000_000).contains(&v) {
                        self.error(at.key("mistake").key(key), format!("{v} is not between 1 and 1000000"));
                    }
                }
                fault(
                    "io-mistake",
                    json!({ "filling": filling, "occurrences": occurrences, "length": length }),
                )
            }
            "attrOverride" => {
                self.error(at.key("action"), format!("IOChaos {} is not supported yet", io.action));
                return None;
            }
            other => {
                self.error(
                    at.key("action"),
                    format!("{other:?} is not one of latency, fault, attrOverride, mistake"),
                );
                return None;
            }
        };
        Some((io.action.clone(), Effect::Pods { faults: vec![f] }))
    }

    /// `HTTPChaos` on the HTTP services (the order API's fault middleware): `abort` answers 503 (one
    /// process has no connection to cut), `delay` holds the request, `replace.code` answers that status,
    /// `replace.body` (base64, as Chaos Mesh's `[]byte`) replaces a response's body. `path` is a prefix
    /// glob (`*`, `/api/*`).
    pub(super) fn http(&mut self, h: &HttpChaosSpec, at: &KeyPath) -> Option<(String, Effect)> {
        let errors = self.errors;
        if h.target != "Request" && h.target != "Response" {
            self.error(at.key("target"), format!("{:?} is not Request or Response", h.target));
        }
        let path = match h.path.as_deref().map(str::trim) {
            None | Some("*") | Some("") => None,
            Some(glob) => {
                let prefix = glob.strip_suffix('*').unwrap_or(glob);
                if prefix.contains(['*', '?', '[']) || !prefix.starts_with('/') {
                    self.error(
                        at.key("path"),
                        format!("{glob:?}: chaoslab takes `*` or a path prefix such as `/api/*`"),
                    );
                }
                Some(prefix.to_string())
            }
        };
        let unsupported = [
            ("method", h.method.is_some()),
            ("code", h.code.is_some()),
            ("request_headers", !h.request_headers.is_empty()),
            ("response_headers", !h.response_headers.is_empty()),
            ("patch", h.patch.is_some()),
            ("tls", h.tls.is_some()),
        ];
        for (key, present) in unsupported {
            if present {
                self.error(at.key(key), format!("HTTPChaos `{key}` is not supported yet"));
            }
        }
        let with_path = |mut v: Value| {
            if let (Some(p), Value::Object(m)) = (&path, &mut v) {
                m.insert("path".into(), Value::String(p.clone()));
            }
            v
        };
        let mut faults = Vec::new();
        let mut actions = Vec::new();
        if h.abort == Some(true) {
            actions.push("abort");
            faults.push(fault("http-abort", with_path(json!({ "code": 503 }))));
        }
        if let Some(d) = self.duration(h.delay.as_deref(), at.key("delay")) {
            actions.push("delay");
            faults.push(fault("http-delay", with_path(json!({ "delay": d.as_secs_f64() }))));
        }
        if let Some(r) = &h.replace {
            actions.push("replace");
            if let Some(code) = r.code {
                if (100..=599).contains(&code) {
                    faults.push(fault("http-abort", with_path(json!({ "code": code }))));
                } else {
                    self.error(at.key("replace").key("code"), format!("{code} is not an HTTP status"));
                }
            }
            if let Some(body) = &r.body {
                use base64::Engine as _;
                if h.target != "Response" {
                    self.error(
                        at.key("replace").key("body"),
                        "chaoslab replaces response bodies only (target: Response)",
                    );
                }
                match base64::engine::general_purpose::STANDARD.decode(body.trim()) {
                    Ok(bytes) => faults.push(fault(
                        "http-replace-body",
                        with_path(json!({ "body": String::from_utf8_lossy(&bytes) })),
                    )),
                    Err(e) => self.error(
                        at.key("replace").key("body"),
                        format!("not base64 (Chaos Mesh's []byte): {e}"),
                    ),
                }
            }
            for (key, present) in [
                ("headers", !r.headers.is_empty()),
                ("path", r.path.is_some()),
                ("method", r.method.is_some()),
                ("queries", !r.queries.is_empty()),
            ] {
                if present {
                    self.error(at.key("replace").key(key), format!("replacing `{key}` is not supported yet"));
                }
            }
        }
        if faults.is_empty() && self.errors == errors {
            self.error(at.clone(), "an HTTPChaos needs abort, delay or replace");
        }
        (self.errors == errors).then(|| (actions.join("+"), Effect::Pods { faults }))
    }
}

/// A stress-ng memory size (`256MB`, `1GB`, `512KB`, `1024`, also `MiB`/`GiB`/`KiB`) in bytes; percentages
/// of total memory are not supported (one process has no memory limit to take a share of).
fn memory_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.ends_with('%') {
        return Err(format!("{t:?}: a share of memory is not supported; give a size such as 256MB"));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{t:?} is not a memory size (such as 256MB)"))?;
    let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("{t:?}: unknown unit (B, KB, MB, GB)")),
    };
    n.checked_mul(factor).filter(|b| *b > 0).ok_or_else(|| format!("{t:?} is not a usable size"))
}
