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

    /// `IOChaos` on the stores and sinks. `methods` are grouped into reads and writes (the operations the
    /// stores do), `path` is a glob under `volumePath` matched against the store's paths (HADOOP's
    /// `DAY/FILE`, NODE-RED's file, ELASTICSEARCH's indices, the order store's `orders` and `outbox`),
    /// `percent` the share of operations hit. `attrOverride` acts through the one attribute the stores
    /// depend on: a `perm` without the owner's write (read) bit fails writes (reads) with EACCES.
    pub(super) fn io(&mut self, io: &IoChaosSpec, at: &KeyPath) -> Option<(String, Effect)> {
        let errors = self.errors;
        let percent = match io.percent {
            None => 100.0,
            Some(p) if (0..=100).contains(&p) => p as f64,
            Some(p) => {
                self.error(at.key("percent"), format!("{p} is not a percentage (0 to 100)"));
                100.0
            }
        };
        let mut methods: Vec<&str> = Vec::new();
        for (i, m) in io.methods.iter().enumerate() {
            match io_method(m) {
                Some(class) => methods.push(class),
                None => self.error(
                    at.key("methods").index(i),
                    format!("{m:?} is not a FUSE operation Chaos Mesh names"),
                ),
            }
        }
        methods.sort_unstable();
        methods.dedup();
        let path = self.io_path(io, at);
        let scope = |mut v: Value, methods: &[&str]| {
            if let Value::Object(m) = &mut v {
                m.insert(
                    "methods".into(),
                    json!(if methods.is_empty() { vec!["read", "write"] } else { methods.to_vec() }),
                );
                if let Some(p) = &path {
                    m.insert("path".into(), json!(p));
                }
            }
            v
        };
        let f = match io.action.as_str() {
            "latency" => match self.duration(io.delay.as_deref(), at.key("delay")) {
                Some(d) => fault(
                    "io-latency",
                    scope(json!({ "delay": d.as_secs_f64(), "percent": percent }), &methods),
                ),
                None => {
                    if io.delay.is_none() {
                        self.error(at.key("delay"), "action latency needs `delay`");
                    }
                    return None;
                }
            },
            "fault" => match io.errno {
                Some(28) => fault("disk-full", scope(json!({}), &methods)),
                Some(errno @ 1..=133) => {
                    fault("io-error", scope(json!({ "percent": percent, "errno": errno }), &methods))
                }
                Some(errno) => {
                    self.error(at.key("errno"), format!("{errno} is not an error number (1 to 133)"));
                    return None;
                }
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
                if methods.contains(&"read") && !methods.contains(&"write") {
                    self.warning(
                        at.key("methods"),
                        "wrong data is written, not read: a read-only mistake injects nothing",
                    );
                }
                let params = json!({ "filling": filling, "occurrences": occurrences, "length": length, "percent": percent });
                fault("io-mistake", scope(params, &["write"]))
            }
            "attrOverride" => return self.attr_override(io, at, percent, scope),
            other => {
                self.error(
                    at.key("action"),
                    format!("{other:?} is not one of latency, fault, attrOverride, mistake"),
                );
                return None;
            }
        };
        (self.errors == errors).then(|| (io.action.clone(), Effect::Pods { faults: vec![f] }))
    }

    /// `path` relative to `volumePath`, as the stores' paths are; `**/` is any depth, the root included.
    fn io_path(&mut self, io: &IoChaosSpec, at: &KeyPath) -> Option<String> {
        let glob = io.path.as_deref()?.trim();
        let volume = io.volume_path.trim_end_matches('/');
        let Some(rel) = glob.strip_prefix(volume).filter(|r| r.is_empty() || r.starts_with('/')) else {
            self.error(at.key("path"), format!("{glob:?} is not under volumePath {:?}", io.volume_path));
            return None;
        };
        let rel = rel.trim_start_matches('/').replace("**/", "*");
        (!rel.is_empty() && rel != "*" && rel != "**").then_some(rel)
    }

    fn attr_override(
        &mut self,
        io: &IoChaosSpec,
        at: &KeyPath,
        percent: f64,
        scope: impl Fn(Value, &[&str]) -> Value,
    ) -> Option<(String, Effect)> {
        let errors = self.errors;
        let aat = at.key("attr");
        let Some(Value::Object(attr)) = &io.attr else {
            self.error(aat, "action attrOverride needs `attr` (perm, size, …)");
            return None;
        };
        let mut faults = Vec::new();
        for (key, value) in attr {
            match key.as_str() {
                "perm" => {
                    let Some(perm) = perm_value(value).filter(|p| *p <= 0o7777) else {
                        self.error(
                            aat.key("perm"),
                            format!("{value} is not a permission (0 to 4095, e.g. 292 for 0444)"),
                        );
                        continue;
                    };
                    let mut denied = Vec::new();
                    if perm & 0o400 == 0 {
                        denied.push("read");
                    }
                    if perm & 0o200 == 0 {
                        denied.push("write");
                    }
                    if denied.is_empty() {
                        self.warning(
                            aat.key("perm"),
                            format!("{perm:#o} lets the owner read and write: it injects nothing"),
                        );
                    } else {
                        faults.push(fault(
                            "io-error",
                            scope(json!({ "percent": percent, "errno": 13 }), &denied),
                        ));
                    }
                }
                "ino" | "size" | "blocks" | "atime" | "mtime" | "ctime" | "kind" | "nlink" | "uid"
                | "gid" | "rdev" => {
                    self.warning(
                        aat.key(key),
                        format!("the stores never read a file's {key}: overriding it injects nothing"),
                    );
                }
                other => self
                    .error(aat.key(other), format!("{other:?} is not a file attribute Chaos Mesh overrides")),
            }
        }
        (self.errors == errors).then(|| ("attrOverride".into(), Effect::Pods { faults }))
    }

    /// `HTTPChaos` on the HTTP services (see `chaos::faults::http`): each action of the object becomes one
    /// fault with the object's side and filter — `path` (a glob), `method`, `code` (the response status),
    /// `request_headers`, `response_headers` — applied in Chaos Mesh's order (abort, delay, replace,
    /// patch). `abort` answers 503 (one process has no connection to cut); `replace.body` is base64 (Go's
    /// `[]byte`); `patch.body` is a JSON merge patch.
    pub(super) fn http(&mut self, h: &HttpChaosSpec, at: &KeyPath) -> Option<(String, Effect)> {
        let errors = self.errors;
        let response = match h.target.as_str() {
            "Request" => false,
            "Response" => true,
            other => {
                self.error(at.key("target"), format!("{other:?} is not Request or Response"));
                false
            }
        };
        let mut filter = serde_json::Map::new();
        filter.insert("target".into(), json!(if response { "response" } else { "request" }));
        if let Some(glob) = h.path.as_deref().map(str::trim).filter(|g| !g.is_empty() && *g != "*") {
            if !glob.starts_with(['/', '*']) {
                self.error(at.key("path"), format!("{glob:?} is not a path glob (such as /api/*)"));
            }
            filter.insert("path-glob".into(), json!(glob));
        }
        if let Some(m) = &h.method
            && self.method(m, at.key("method"))
        {
            filter.insert("method".into(), json!(m.to_ascii_uppercase()));
        }
        if let Some(code) = h.code {
            if !response {
                self.error(at.key("code"), "`code` selects responses: it needs target: Response");
            }
            if self.status(code, at.key("code")) {
                filter.insert("status".into(), json!(code));
            }
        }
        if !h.response_headers.is_empty() && !response {
            self.error(
                at.key("response_headers"),
                "`response_headers` select responses: it needs target: Response",
            );
        }
        for (key, headers) in
            [("request_headers", &h.request_headers), ("response_headers", &h.response_headers)]
        {
            if !headers.is_empty() {
                self.headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())), &at.key(key));
                filter.insert(key.replace('_', "-"), json!(headers));
            }
        }
        if let Some(port) = h.port
            && !(1..=65535).contains(&port)
        {
            self.error(at.key("port"), format!("{port} is not a port"));
        }
        if h.tls.is_some() {
            self.error(at.key("tls"), "chaoslab's services speak plain HTTP: there is no TLS to intercept");
        }
        let with_filter = |v: Value| {
            let mut m = filter.clone();
            if let Value::Object(own) = v {
                m.extend(own);
            }
            Value::Object(m)
        };
        let mut faults = Vec::new();
        let mut actions = Vec::new();
        if h.abort == Some(true) {
            actions.push("abort");
            faults.push(fault("http-abort", with_filter(json!({ "code": 503 }))));
        }
        if let Some(d) = self.duration(h.delay.as_deref(), at.key("delay")) {
            actions.push("delay");
            faults.push(fault("http-delay", with_filter(json!({ "delay": d.as_secs_f64() }))));
        }
        if let Some(r) = &h.replace {
            actions.push("replace");
            let rat = at.key("replace");
            let mut set = serde_json::Map::new();
            for (key, present) in [
                ("path", r.path.is_some()),
                ("method", r.method.is_some()),
                ("queries", !r.queries.is_empty()),
            ] {
                if present && response {
                    self.error(
                        rat.key(key),
                        format!("`replace.{key}` changes requests: it needs target: Request"),
                    );
                }
            }
            if let Some(path) = &r.path {
                if !path.starts_with('/') {
                    self.error(rat.key("path"), format!("{path:?} is not a path"));
                }
                set.insert("set-path".into(), json!(path));
            }
            if let Some(m) = &r.method
                && self.method(m, rat.key("method"))
            {
                set.insert("set-method".into(), json!(m.to_ascii_uppercase()));
            }
            if let Some(code) = r.code {
                if !response {
                    self.error(
                        rat.key("code"),
                        "`replace.code` changes responses: it needs target: Response",
                    );
                }
                if self.status(code, rat.key("code")) {
                    set.insert("set-code".into(), json!(code));
                }
            }
            if let Some(body) = &r.body {
                use base64::Engine as _;
                match base64::engine::general_purpose::STANDARD.decode(body.trim()) {
                    Ok(bytes) => {
                        set.insert("set-body".into(), json!(String::from_utf8_lossy(&bytes)));
                    }
                    Err(e) => self.error(rat.key("body"), format!("not base64 (Chaos Mesh's []byte): {e}")),
                }
            }
            if !r.queries.is_empty() {
                set.insert("set-queries".into(), json!(r.queries));
            }
            if !r.headers.is_empty() {
                self.headers(r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())), &rat.key("headers"));
                set.insert("set-headers".into(), json!(r.headers));
            }
            if set.is_empty() {
                self.warning(rat, "an empty replace changes nothing");
            } else {
                faults.push(fault("http-replace", with_filter(Value::Object(set))));
            }
        }
        if let Some(p) = &h.patch {
            actions.push("patch");
            let pat = at.key("patch");
            let mut add = serde_json::Map::new();
            if let Some(b) = &p.body {
                if b.kind != "JSON" {
                    self.error(
                        pat.key("body").key("type"),
                        format!("{:?}: Chaos Mesh patches JSON bodies only", b.kind),
                    );
                }
                match serde_json::from_str::<Value>(&b.value) {
                    Ok(v) => {
                        add.insert("merge-body".into(), v);
                    }
                    Err(e) => self.error(pat.key("body").key("value"), format!("not JSON: {e}")),
                }
            }
            for (key, pairs) in [("queries", &p.queries), ("headers", &p.headers)] {
                for (i, pair) in pairs.iter().enumerate() {
                    if pair.len() != 2 {
                        self.error(pat.key(key).index(i), "a pair is [name, value]");
                    }
                }
                if !pairs.is_empty() {
                    add.insert(format!("add-{key}"), json!(pairs));
                }
            }
            if !p.queries.is_empty() && response {
                self.error(pat.key("queries"), "`patch.queries` changes requests: it needs target: Request");
            }
            self.headers(
                p.headers.iter().filter_map(|kv| Some((kv.first()?.as_str(), kv.get(1)?.as_str()))),
                &pat.key("headers"),
            );
            if add.is_empty() {
                self.warning(pat, "an empty patch changes nothing");
            } else {
                faults.push(fault("http-patch", with_filter(Value::Object(add))));
            }
        }
        if actions.is_empty() && self.errors == errors {
            self.error(at.clone(), "an HTTPChaos needs abort, delay, replace or patch");
        }
        (self.errors == errors).then(|| (actions.join("+"), Effect::Pods { faults }))
    }

    fn method(&mut self, m: &str, at: KeyPath) -> bool {
        let ok = axum::http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()).is_ok() && !m.is_empty();
        if !ok {
            self.error(at, format!("{m:?} is not an HTTP method"));
        }
        ok
    }

    fn status(&mut self, code: i64, at: KeyPath) -> bool {
        let ok = (100..=599).contains(&code);
        if !ok {
            self.error(at, format!("{code} is not an HTTP status"));
        }
        ok
    }

    fn headers<'h>(&mut self, headers: impl Iterator<Item = (&'h str, &'h str)>, at: &KeyPath) {
        use axum::http::{HeaderName, HeaderValue};
        for (k, v) in headers {
            if HeaderName::from_bytes(k.as_bytes()).is_err() || HeaderValue::from_str(v).is_err() {
                self.error(at.key(k), format!("{k:?}: {v:?} is not a valid header"));
            }
        }
    }
}

/// A `perm`: a number, or in YAML text a decimal, or octal with a leading `0` (YAML 1.1, as Kubernetes
/// reads it) or `0o`.
fn perm_value(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let s = s.trim();
            match s.strip_prefix("0o").or_else(|| s.strip_prefix('0').filter(|r| !r.is_empty())) {
                Some(octal) => u64::from_str_radix(octal, 8).ok(),
                None => s.parse().ok(),
            }
        }
        _ => None,
    }
}

/// The class of a FUSE operation Chaos Mesh's IOChaos names (`api/v1alpha1/iochaos_types.go`).
fn io_method(m: &str) -> Option<&'static str> {
    Some(match m {
        "lookup" | "forget" | "getattr" | "readlink" | "open" | "read" | "release" | "opendir"
        | "readdir" | "releasedir" | "statfs" | "getxattr" | "listxattr" | "access" | "getlk" | "bmap" => {
            "read"
        }
        "setattr" | "mknod" | "mkdir" | "unlink" | "rmdir" | "symlink" | "rename" | "link" | "write"
        | "flush" | "fsync" | "fsyncdir" | "setxattr" | "removexattr" | "create" | "setlk" | "setlkw"
        | "fallocate" => "write",
        _ => return None,
    })
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
