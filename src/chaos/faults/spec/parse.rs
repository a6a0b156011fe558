//! Parsing a [`FaultRequest`] into a [`Fault`]: the selector, the duration and each kind's parameters,
//! with every problem reported against its field.

use std::time::Duration;

use serde_json::{Map, Value};

use super::{CATALOGUE, Direction, Effect, Fault, FaultError, FaultRequest, NetFault, TargetKind, kind_info};
use crate::chaos::faults::selector::Selector;
use crate::config::cut;
use crate::kernel::hooks::{IoFaults, IoMethod, Mistake};
use crate::topology::flow::MAX_RUN_TIME;
use crate::transport::link::{DataFaults, LinkFaults};

/// Reads parameters, collecting problems.
pub(super) struct Params<'a> {
    map: &'a Map<String, Value>,
    pub(super) errors: Vec<String>,
    used: Vec<&'static str>,
}

impl<'a> Params<'a> {
    pub(super) fn get(&mut self, name: &'static str) -> Option<&'a Value> {
        self.used.push(name);
        self.map.get(name).filter(|v| !v.is_null())
    }

    pub(super) fn duration(&mut self, name: &'static str, default: Option<Duration>) -> Duration {
        match self.get(name) {
            None => default.unwrap_or_else(|| {
                self.errors.push(format!("parameters.{name}: required"));
                Duration::ZERO
            }),
            Some(v) => parse_duration(v).unwrap_or_else(|e| {
                self.errors.push(format!("parameters.{name}: {e}"));
                Duration::ZERO
            }),
        }
    }

    pub(super) fn percent(&mut self, name: &'static str, default: Option<f64>) -> f64 {
        let value = match self.get(name) {
            None => match default {
                Some(d) => return d,
                None => {
                    self.errors.push(format!("parameters.{name}: required (0-100)"));
                    return 0.0;
                }
            },
            Some(v) => number(v),
        };
        match value {
            Some(p) if (0.0..=100.0).contains(&p) => p / 100.0,
            _ => {
                self.errors.push(format!("parameters.{name}: must be a number between 0 and 100"));
                0.0
            }
        }
    }

    pub(super) fn string(&mut self, name: &'static str, default: Option<&str>) -> String {
        match self.get(name) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                self.errors.push(format!("parameters.{name}: must be a non-empty string"));
                String::new()
            }
            None => default.map(str::to_owned).unwrap_or_else(|| {
                self.errors.push(format!("parameters.{name}: required"));
                String::new()
            }),
        }
    }

    pub(super) fn uint(&mut self, name: &'static str, default: u64) -> u64 {
        match self.get(name) {
            None => default,
            Some(v) => match number(v) {
                Some(n) if n >= 0.0 && n.fract() == 0.0 => n as u64,
                _ => {
                    self.errors.push(format!("parameters.{name}: must be a whole number ≥ 0"));
                    default
                }
            },
        }
    }

    fn strings(&mut self, name: &'static str, default: &[&str]) -> Vec<String> {
        match self.get(name) {
            None => default.iter().map(|s| s.to_string()).collect(),
            Some(Value::String(s)) => {
                s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect()
            }
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
            }
            Some(_) => {
                self.errors.push(format!("parameters.{name}: must be a list of strings"));
                Vec::new()
            }
        }
    }

    fn direction(&mut self) -> Direction {
        match self.get("direction").and_then(Value::as_str) {
            None => Direction::Both,
            Some("to") => Direction::To,
            Some("from") => Direction::From,
            Some("both") => Direction::Both,
            Some(other) => {
                self.errors.push(format!("parameters.direction: {other:?} is not one of to, from, both"));
                Direction::Both
            }
        }
    }

    fn finish(mut self) -> Vec<String> {
        for key in self.map.keys() {
            if !self.used.contains(&key.as_str()) {
                self.errors.push(format!("parameters.{key}: not a parameter of this kind"));
            }
        }
        self.errors
    }
}

/// An I/O effect with the operations it hits: `methods` (`read`, `write`; default write) and `path` (a
/// glob over the store's paths).
fn io(p: &mut Params<'_>, mut faults: IoFaults) -> Effect {
    for m in p.strings("methods", &["write"]) {
        match m.as_str() {
            "read" => faults.methods.push(IoMethod::Read),
            "write" => faults.methods.push(IoMethod::Write),
            other => p.errors.push(format!("parameters.methods: {other:?} is not read or write")),
        }
    }
    faults.methods.sort();
    faults.methods.dedup();
    faults.path = p.get("path").and_then(Value::as_str).map(str::to_owned);
    Effect::Io(faults)
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_end_matches('%').parse().ok(),
        _ => None,
    }
}

/// Parses `30s`, `1m30s`, `250ms`, or a number of seconds; a leading `-` is refused (see
/// [`parse_offset`] for signed values), and so is anything longer than [`MAX_RUN_TIME`] (ten years), the
/// longest time a flow's schedule may name — so no deadline computed from it can overflow.
pub fn parse_duration(v: &Value) -> Result<Duration, String> {
    let d = match v {
        Value::Number(n) => match n.as_f64() {
            Some(s) if s >= 0.0 && s.is_finite() => Duration::try_from_secs_f64(s).ok(),
            _ => return Err(format!("{n} is not a duration")),
        },
        Value::String(s) => {
            let parsed = humantime::parse_duration(s.trim());
            match parsed {
                Ok(d) => Some(d),
                Err(humantime::DurationError::NumberOverflow) => None,
                Err(e) => return Err(format!("{:?} is not a duration: {e}", cut(s))),
            }
        }
        other => return Err(format!("{} is not a duration", cut(&other.to_string()))),
    };
    d.filter(|d| *d <= MAX_RUN_TIME).ok_or_else(|| too_long(v))
}

fn too_long(v: &Value) -> String {
    format!("{} is longer than ten years, the longest time chaoslab takes", cut(&v.to_string()))
}

/// Parses a signed offset (`-5m`, `+30s`, `90s`) into milliseconds, at most [`MAX_RUN_TIME`] either way.
pub fn parse_offset(v: &Value) -> Result<i64, String> {
    let max = MAX_RUN_TIME.as_millis() as f64;
    let text = match v {
        Value::Number(n) => {
            return match n.as_f64().map(|s| s * 1000.0) {
                Some(ms) if ms.abs() <= max => Ok(ms as i64),
                Some(ms) if ms.is_finite() => Err(too_long(v)),
                _ => Err(format!("{n} is not an offset")),
            };
        }
        Value::String(s) => s.trim(),
        other => return Err(format!("{} is not an offset", cut(&other.to_string()))),
    };
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let d = match humantime::parse_duration(rest) {
        Ok(d) if d <= MAX_RUN_TIME => d,
        Ok(_) | Err(humantime::DurationError::NumberOverflow) => return Err(too_long(v)),
        Err(e) => return Err(format!("{:?} is not an offset: {e}", cut(text))),
    };
    Ok(sign * d.as_millis() as i64)
}

/// Parses `1000`, `1kbps`, `10mbps`, `1gbps` (bits per second as netem writes them) or `500KB/s`-style
/// bytes, into bytes per second.
fn parse_rate(v: &Value) -> Result<u64, String> {
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    let text = v.as_str().ok_or_else(|| format!("{v} is not a rate"))?.trim().to_ascii_lowercase();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{text:?} is not a rate"))?;
    let bytes = match unit.trim() {
        "" | "b/s" => n,
        "bps" | "bit" => n / 8.0,
        "kbps" | "kbit" => n * 1000.0 / 8.0,
        "mbps" | "mbit" => n * 1_000_000.0 / 8.0,
        "gbps" | "gbit" => n * 1_000_000_000.0 / 8.0,
        "kb/s" => n * 1000.0,
        "mb/s" => n * 1_000_000.0,
        other => return Err(format!("unknown rate unit {other:?} (use bps, kbps, mbps, gbps, kb/s, mb/s)")),
    };
    if bytes < 1.0 {
        return Err(format!("{text:?} is below one byte per second"));
    }
    Ok(bytes as u64)
}

impl Fault {
    /// Checks a request against the catalogue; every problem is reported.
    pub fn parse(request: &FaultRequest) -> Result<Fault, FaultError> {
        let Some(info) = kind_info(&request.kind) else {
            let known: Vec<&str> = CATALOGUE.iter().map(|k| k.name).collect();
            return Err(FaultError::one(format!(
                "kind: unknown fault kind {:?} (known: {})",
                request.kind,
                known.join(", ")
            )));
        };
        let mut errors = Vec::new();
        let selector = if info.target == TargetKind::Bus {
            // Topic and group come from the parameters.
            Some(Selector::all_of("bus"))
        } else {
            // Without a target the kind's default is every component of a kind: all of them, unless a
            // mode says otherwise.
            let defaulted =
                request.target.is_none() && request.mode.is_none() && info.default_target.is_some();
            match Selector::parse(
                request.target.as_deref().or(info.default_target),
                if defaulted { Some("all") } else { request.mode.as_deref() },
                request.value.as_deref(),
            ) {
                Ok(s) => Some(s),
                Err(e) if request.target.is_none() && e.starts_with("target") => {
                    errors.push(format!("target: {} needs a target", info.name));
                    None
                }
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        };
        let duration = match &request.duration {
            None | Some(Value::Null) => None,
            Some(v) => match parse_duration(v) {
                Ok(d) if d.is_zero() => {
                    errors.push("duration: must be more than zero".into());
                    None
                }
                Ok(d) => Some(d),
                Err(e) => {
                    errors.push(format!("duration: {e}"));
                    None
                }
            },
        };
        if info.instant && duration.is_some() {
            errors.push(format!("duration: {} happens once and takes no duration", info.name));
        }
        let mut p = Params { map: &request.parameters, errors: Vec::new(), used: Vec::new() };
        let effect = Self::effect(info.name, &mut p);
        errors.extend(p.finish());
        // A delay without a latency or a jitter is a forgotten parameter; an explicit `0ms` is a sweep's
        // baseline (as `tc qdisc … netem delay 0ms` is).
        if let Effect::Net(NetFault::Delay { .. }, _) = &effect
            && !request.parameters.contains_key("latency")
            && !request.parameters.contains_key("jitter")
        {
            errors.push("parameters.latency: a delay needs a latency or a jitter".into());
        }
        if let Effect::Net(net, _) = &effect {
            let mut probe = LinkFaults::default();
            net.overlay(&mut probe);
            if let Err(e) = probe.validate() {
                errors.push(format!("parameters: {e}"));
            }
        }
        match selector {
            Some(selector) if errors.is_empty() => Ok(Fault { info, selector, effect, duration }),
            _ => Err(FaultError(errors)),
        }
    }

    fn effect(kind: &str, p: &mut Params<'_>) -> Effect {
        if let Some(effect) = super::http::effect(kind, p) {
            return effect;
        }
        let data = |p: &mut Params<'_>, d: DataFaults| {
            let rate = p.percent("percent", Some(1.0));
            Effect::Net(NetFault::Data(DataFaults { rate, ..d }), Direction::From)
        };
        match kind {
            "network-delay" => {
                let latency = p.duration("latency", Some(Duration::ZERO));
                let jitter = p.duration("jitter", Some(Duration::ZERO));
                let correlation = p.percent("correlation", Some(0.0));
                Effect::Net(NetFault::Delay { latency, jitter, correlation }, p.direction())
            }
            "network-loss" => Effect::Net(NetFault::Loss(p.percent("percent", None)), p.direction()),
            "network-duplicate" => {
                Effect::Net(NetFault::Duplicate(p.percent("percent", None)), p.direction())
            }
            "network-corrupt" => Effect::Net(NetFault::Corrupt(p.percent("percent", None)), p.direction()),
            "network-reorder" => {
                let pct = p.percent("percent", None);
                let latency = p.duration("latency", Some(Duration::from_millis(10)));
                Effect::Net(NetFault::Reorder(pct, latency), p.direction())
            }
            "network-partition" => Effect::Net(NetFault::Partition, p.direction()),
            "network-bandwidth" => {
                let rate = match p.get("rate") {
                    Some(v) => parse_rate(v).unwrap_or_else(|e| {
                        p.errors.push(format!("parameters.rate: {e}"));
                        1
                    }),
                    None => {
                        p.errors.push("parameters.rate: required".into());
                        1
                    }
                };
                Effect::Net(NetFault::Bandwidth(rate), p.direction())
            }
            "process-kill" => match p.duration("grace", Some(Duration::ZERO)) {
                d if d.is_zero() => Effect::Kill,
                grace => Effect::Restart(Some(grace)),
            },
            "process-failure" | "kafka-broker-down" | "mqtt-broker-down" | "assault-kill" => Effect::Failure,
            "process-pause" => Effect::Pause,
            "clock-offset" => match p.get("offset") {
                Some(v) => Effect::ClockOffset(parse_offset(v).unwrap_or_else(|e| {
                    p.errors.push(format!("parameters.offset: {e}"));
                    0
                })),
                None => {
                    p.errors.push("parameters.offset: required".into());
                    Effect::ClockOffset(0)
                }
            },
            "io-latency" => {
                let latency = p.duration("delay", None);
                let rate = Some(p.percent("percent", Some(1.0))).filter(|r| *r < 1.0);
                io(p, IoFaults { latency, rate, ..Default::default() })
            }
            "io-error" => {
                let errno = p.uint("errno", 5);
                if !(1..=133).contains(&errno) {
                    p.errors.push(format!("parameters.errno: {errno} is not an error number (1 to 133)"));
                }
                let f = IoFaults {
                    error_rate: p.percent("percent", Some(1.0)),
                    errno: Some(errno as i32),
                    ..Default::default()
                };
                io(p, f)
            }
            "disk-full" => io(p, IoFaults { disk_full: true, ..Default::default() }),
            "io-mistake" => {
                let random = match p.string("filling", Some("zero")).as_str() {
                    "zero" => false,
                    "random" => true,
                    other => {
                        p.errors.push(format!("parameters.filling: {other:?} is not zero or random"));
                        false
                    }
                };
                let occurrences = p.uint("occurrences", 1);
                let length = p.uint("length", 1);
                if !(1..=1_000_000).contains(&occurrences) || !(1..=1_000_000).contains(&length) {
                    p.errors.push("parameters.occurrences and length: between 1 and 1000000".into());
                }
                let mistake = Mistake { random, occurrences: occurrences as u32, length: length as u32 };
                let rate = Some(p.percent("percent", Some(1.0))).filter(|r| *r < 1.0);
                io(p, IoFaults { mistake: Some(mistake), rate, ..Default::default() })
            }
            "assault-memory" => {
                let mb = p.uint("megabytes", 64);
                if mb == 0 || mb > 4096 {
                    p.errors.push("parameters.megabytes: must be between 1 and 4096".into());
                }
                Effect::Memory(mb as usize * 1024 * 1024)
            }
            "cpu-stress" => {
                let workers = p.uint("workers", 1);
                if workers == 0 || workers > 64 {
                    p.errors.push("parameters.workers: must be between 1 and 64".into());
                }
                let load = p.percent("load", Some(1.0));
                Effect::CpuStress(workers as f64 * load)
            }
            "memory-stress" => {
                let mb = p.uint("megabytes", 64);
                if mb == 0 || mb > 4096 {
                    p.errors.push("parameters.megabytes: must be between 1 and 4096".into());
                }
                Effect::Memory(mb as usize * 1024 * 1024)
            }
            "kafka-broker-reboot" => Effect::Reboot(p.duration("downtime", Some(Duration::from_secs(5)))),
            "kafka-delete-topic" => Effect::DeleteTopic(p.string("topic", None)),
            "kafka-produce" => {
                let topic = p.string("topic", None);
                let partition = p.uint("partition", 0) as u32;
                let messages = p.strings("messages", &[]);
                if messages.is_empty() {
                    p.errors.push("parameters.messages: at least one message".into());
                }
                Effect::Produce { topic, partition, messages }
            }
            "kafka-rebalance-group" => {
                let group = p.string("group", None);
                let topic = p.string("topic", None);
                Effect::Rebalance { group, topic }
            }
            "kafka-delete-group" => Effect::DeleteGroup(p.string("group", None)),
            "mqtt-broker-restart" => Effect::Restart(None),
            "mqtt-drop-session" => Effect::DropSession(p.string("client_id", None)),
            "data-drop-fields" => {
                let drop_fields = p.strings("fields", &["humidity"]);
                data(p, DataFaults { drop_fields, ..Default::default() })
            }
            "data-none-values" => {
                let none_fields = p.strings("fields", &["humidity", "temperature"]);
                data(p, DataFaults { none_fields, ..Default::default() })
            }
            "data-missing-time" => data(p, DataFaults { drop_time: true, ..Default::default() }),
            "data-out-of-order" => {
                let time_shift = p.duration("shift", Some(Duration::from_secs(60)));
                data(p, DataFaults { time_shift, ..Default::default() })
            }
            other => {
                p.errors.push(format!("kind: {other} has no implementation"));
                Effect::Kill
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::chaos::faults::selector::SelectorMode;

    fn req(v: Value) -> FaultRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn parses_a_delay_with_every_field() {
        let f = Fault::parse(&req(json!({
            "kind": "network-delay", "target": "MQTT_BROKER->FLINK", "duration": "30s",
            "parameters": {"latency": "200ms", "jitter": "50ms", "correlation": 25}
        })))
        .unwrap();
        assert_eq!(f.duration, Some(Duration::from_secs(30)));
        let Effect::Net(NetFault::Delay { latency, jitter, correlation }, Direction::Both) = f.effect else {
            panic!("{:?}", f.effect)
        };
        assert_eq!((latency, jitter), (Duration::from_millis(200), Duration::from_millis(50)));
        assert!((correlation - 0.25).abs() < 1e-9);
    }

    #[test]
    fn reports_every_problem_with_its_field() {
        let e = Fault::parse(&req(json!({
            "kind": "network-loss", "target": "A->B", "duration": "soon",
            "parameters": {"percent": 140, "colour": "red"}
        })))
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("duration: \"soon\" is not a duration"), "{text}");
        assert!(text.contains("parameters.percent: must be a number between 0 and 100"), "{text}");
        assert!(text.contains("parameters.colour: not a parameter of this kind"), "{text}");
    }

    #[test]
    fn unknown_kind_lists_the_catalogue() {
        let e = Fault::parse(&req(json!({"kind": "meteor-strike", "target": "FLINK"}))).unwrap_err();
        assert!(e.to_string().contains("unknown fault kind \"meteor-strike\""));
        assert!(e.to_string().contains("network-delay"));
    }

    #[test]
    fn instant_kinds_take_no_duration_and_targets_default() {
        let e = Fault::parse(&req(json!({"kind": "process-kill", "target": "FLINK", "duration": "5s"})))
            .unwrap_err();
        assert!(e.to_string().contains("happens once"));
        let f = Fault::parse(&req(json!({"kind": "mqtt-broker-down", "duration": 90}))).unwrap();
        assert_eq!(f.selector.pattern(), "kind:mqtt-broker");
        assert_eq!(f.selector.mode, SelectorMode::All, "without a target: every broker");
        assert_eq!(f.duration, Some(Duration::from_secs(90)));
        let e = Fault::parse(&req(json!({"kind": "process-pause"}))).unwrap_err();
        assert!(e.to_string().contains("target: process-pause needs a target"), "{e}");
    }

    #[test]
    fn durations_and_offsets_past_ten_years_are_refused_not_overflowed() {
        for huge in
            [json!(1e300), json!(1e20), json!(1e15), json!("300000years"), json!("99999999999999999999s")]
        {
            let e = parse_duration(&huge).unwrap_err();
            assert!(e.contains("longer than ten years"), "{huge}: {e}");
            let e = parse_offset(&huge).unwrap_err();
            assert!(e.contains("longer than ten years"), "{huge}: {e}");
        }
        assert_eq!(parse_duration(&json!("3650days")).unwrap(), MAX_RUN_TIME);
        assert!(parse_offset(&json!(-1e300)).is_err());
        assert!(parse_offset(&json!("-3651days")).is_err());
        let long = "x".repeat(10_000);
        let e = parse_duration(&json!(long)).unwrap_err();
        assert!(e.len() < 200, "the value is cut: {e}");
        let err = Fault::parse(&req(json!({"kind": "network-loss", "target": "A->B", "duration": 1e300})))
            .unwrap_err();
        assert!(err.to_string().contains("duration: 1e+300 is longer than ten years"), "{err}");
    }

    #[test]
    fn offsets_rates_and_data_faults() {
        assert_eq!(parse_offset(&json!("-5m")).unwrap(), -300_000);
        assert_eq!(parse_offset(&json!("+30s")).unwrap(), 30_000);
        assert_eq!(parse_rate(&json!("8kbps")).unwrap(), 1000);
        assert_eq!(parse_rate(&json!(512)).unwrap(), 512);
        assert!(parse_rate(&json!("3 parsecs")).is_err());
        let f = Fault::parse(&req(
            json!({"kind": "data-none-values", "parameters": {"fields": "humidity", "percent": 50}}),
        ))
        .unwrap();
        let Effect::Net(NetFault::Data(d), Direction::From) = f.effect else { panic!() };
        assert_eq!(d.none_fields, vec!["humidity"]);
        assert!((d.rate - 0.5).abs() < 1e-9);
        assert_eq!(f.selector.pattern(), "kind:sensor-replay");
    }
}
