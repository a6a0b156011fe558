//! Components seen as pods, and Chaos Mesh's selectors over them.
//!
//! Every instance a component runs is a pod: its name is the instance's name lower-cased, `_` read as
//! `-` (Kubernetes names are DNS names; `FLINK` is pod `flink`, `MQTT_BROKER` pod `mqtt-broker`), its
//! namespace and labels are the component's (flow keys `namespace` and `labels`), and it carries the
//! annotation `chaoslab.io/kind: <kind>`. Its phase follows the supervisor's state: `Pending` before the
//! first start or while restarting, `Running` while it runs — and while it is stopped or crashed, as a
//! Kubernetes pod whose container is down stays `Running` — `Succeeded` when it exited, `Failed` when the
//! supervisor gave up.
//!
//! Selection follows Chaos Mesh's order: `pods` alone when given (then only the phase filter applies);
//! otherwise the namespaces (the object's own when none are listed, as Chaos Mesh's defaulting webhook
//! sets them), labels, expressions, annotations, fields and phases must all hold. Then the mode picks,
//! from a random stream the caller derives from the run's seed and the object's name.

use std::collections::BTreeMap;

use rand::Rng as _;
use rand::seq::SliceRandom as _;
use serde::Serialize;

use super::schema::{Mode, PodSelector, SelectorSpec};
use crate::kernel::seed::Rng;
use crate::kernel::supervisor::{State, Supervisor};
use crate::topology::flow::Flow;

/// The annotation every pod carries with its component kind.
pub const KIND_ANNOTATION: &str = "chaoslab.io/kind";

/// A component instance as a pod.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pod {
    /// Pod name: the instance name, lower-case.
    pub name: String,
    /// The instance (the supervisor's name, which faults target).
    pub instance: String,
    /// The flow component it belongs to.
    pub component: String,
    /// Namespace.
    pub namespace: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// `Pending`, `Running`, `Succeeded` or `Failed`.
    pub phase: &'static str,
    /// The hosts outside chaoslab it talks to in its place (an external broker, a database server).
    pub external_hosts: Vec<String>,
}

impl Pod {
    /// Whether `target` — an IP address, a CIDR block or a domain name, as Chaos Mesh's
    /// `externalTargets` are — names one of its external hosts.
    pub fn has_external(&self, target: &str) -> bool {
        let target = target.trim().trim_end_matches('.').to_ascii_lowercase();
        self.external_hosts.iter().any(|host| {
            let ip = host.parse::<std::net::IpAddr>().ok();
            match (target.parse::<ipnet::IpNet>(), target.parse::<std::net::IpAddr>(), ip) {
                (Ok(net), _, Some(ip)) => net.contains(&ip),
                (_, Ok(t), Some(ip)) => t == ip,
                _ => host.trim_end_matches('.') == target,
            }
        })
    }
}

/// Whether `target` is an IP address, a CIDR block or a domain name.
pub fn valid_external(target: &str) -> bool {
    let t = target.trim().trim_end_matches('.');
    t.parse::<ipnet::IpNet>().is_ok()
        || t.parse::<std::net::IpAddr>().is_ok()
        || (!t.is_empty()
            && t.len() <= 253
            && t.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }))
}

/// The pods of a flow, all `Running` (for checks before a run).
pub fn pods_of_flow(flow: &Flow) -> Vec<Pod> {
    pods(flow, |_| "Running")
}

/// The pods of a running pipeline, with phases from the supervisor.
pub fn pods_of_run(flow: &Flow, supervisor: &Supervisor) -> Vec<Pod> {
    pods(flow, |instance| match supervisor.health(instance).map(|h| h.state) {
        None | Some(State::Created | State::Restarting) => "Pending",
        Some(State::Running | State::Stopped | State::Crashed) => "Running",
        Some(State::Exited) => "Succeeded",
        Some(State::Failed) => "Failed",
    })
}

fn pods(flow: &Flow, phase: impl Fn(&str) -> &'static str) -> Vec<Pod> {
    let mut out = Vec::new();
    for (name, entry) in &flow.components {
        for instance in entry.config.instances(name) {
            out.push(Pod {
                name: instance.to_lowercase().replace('_', "-"),
                phase: phase(&instance),
                instance,
                component: name.clone(),
                namespace: entry.namespace.clone(),
                labels: entry.labels.clone(),
                annotations: [(KIND_ANNOTATION.to_string(), entry.kind().to_string())].into(),
                external_hosts: entry.config.external_hosts(),
            });
        }
    }
    out
}

/// The field selectors chaoslab can evaluate.
pub const FIELD_SELECTORS: [&str; 3] = ["metadata.name", "metadata.namespace", "status.phase"];

/// Problems with a selector that make it unusable, whatever the pods (checked at load time).
pub fn check(sel: &SelectorSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, r) in sel.expression_selectors.iter().enumerate() {
        let at = format!("expressionSelectors[{i}]");
        match r.operator.as_str() {
            "In" | "NotIn" if r.values.is_empty() => {
                out.push((format!("{at}.values"), format!("operator {} needs values", r.operator)))
            }
            "Exists" | "DoesNotExist" if !r.values.is_empty() => {
                out.push((format!("{at}.values"), format!("operator {} takes no values", r.operator)))
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => out.push((
                format!("{at}.operator"),
                format!("unknown operator {other:?} (In, NotIn, Exists, DoesNotExist)"),
            )),
        }
    }
    for key in sel.field_selectors.keys() {
        if !FIELD_SELECTORS.contains(&key.as_str()) {
            out.push((
                format!("fieldSelectors.{key}"),
                format!("chaoslab evaluates only {}", FIELD_SELECTORS.join(", ")),
            ));
        }
    }
    for (i, phase) in sel.pod_phase_selectors.iter().enumerate() {
        if !["Pending", "Running", "Succeeded", "Failed", "Unknown"].contains(&phase.as_str()) {
            out.push((
                format!("podPhaseSelectors[{i}]"),
                format!("unknown phase {phase:?} (Pending, Running, Succeeded, Failed, Unknown)"),
            ));
        }
    }
    out
}

/// The pods `sel` selects, for an object in namespace `own`, in name order.
pub fn filter<'a>(sel: &SelectorSpec, own: &str, pods: &'a [Pod]) -> Vec<&'a Pod> {
    let phase_ok =
        |p: &Pod| sel.pod_phase_selectors.is_empty() || sel.pod_phase_selectors.iter().any(|s| s == p.phase);
    let mut out: Vec<&Pod> = if !sel.pods.is_empty() {
        pods.iter()
            .filter(|p| {
                sel.pods
                    .get(&p.namespace)
                    .is_some_and(|names| names.iter().any(|n| n.eq_ignore_ascii_case(&p.name)))
            })
            .filter(|p| phase_ok(p))
            .collect()
    } else {
        let namespaces: Vec<&str> = if sel.namespaces.is_empty() {
            vec![own]
        } else {
            sel.namespaces.iter().map(String::as_str).collect()
        };
        pods.iter()
            .filter(|p| namespaces.contains(&p.namespace.as_str()))
            .filter(|p| sel.label_selectors.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
            .filter(|p| {
                sel.expression_selectors.iter().all(|r| {
                    let value = p.labels.get(&r.key);
                    match r.operator.as_str() {
                        "In" => value.is_some_and(|v| r.values.contains(v)),
                        "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                        "Exists" => value.is_some(),
                        "DoesNotExist" => value.is_none(),
                        _ => false,
                    }
                })
            })
            .filter(|p| sel.annotation_selectors.iter().all(|(k, v)| p.annotations.get(k) == Some(v)))
            .filter(|p| {
                sel.field_selectors.iter().all(|(k, v)| match k.as_str() {
                    "metadata.name" => p.name.eq_ignore_ascii_case(v),
                    "metadata.namespace" => &p.namespace == v,
                    "status.phase" => p.phase == v,
                    _ => false,
                })
            })
            .filter(|p| phase_ok(p))
            .filter(|_| sel.nodes.is_empty() && sel.node_selectors.is_empty())
            .collect()
    };
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Why a mode's value is unusable, if it is.
pub fn check_mode(mode: Mode, value: Option<&str>) -> Result<(), String> {
    mode_count(mode, value, 1, None).map(|_| ())
}

/// How many of `n` pods the mode takes (`rng` draws for `random-max-percent`; `None`: the largest).
fn mode_count(mode: Mode, value: Option<&str>, n: usize, rng: Option<&mut Rng>) -> Result<usize, String> {
    let number = |what: &str| -> Result<i64, String> {
        let v = value.map(str::trim).filter(|v| !v.is_empty());
        let v = v.ok_or_else(|| format!("mode {what} needs a value"))?;
        v.parse::<i64>().map_err(|_| format!("{v:?} is not a whole number"))
    };
    let percent = |what: &str| -> Result<i64, String> {
        let p = number(what)?;
        if (0..=100).contains(&p) { Ok(p) } else { Err(format!("{p} is not a percentage between 0 and 100")) }
    };
    Ok(match mode {
        Mode::One => 1.min(n),
        Mode::All => n,
        Mode::Fixed => {
            let k = number("fixed")?;
            if k < 1 {
                return Err(format!("fixed needs at least 1, got {k}"));
            }
            (k as usize).min(n)
        }
        Mode::FixedPercent => (n as f64 * percent("fixed-percent")? as f64 / 100.0).floor() as usize,
        Mode::RandomMaxPercent => {
            let max = percent("random-max-percent")?;
            let p = match rng {
                Some(rng) => rng.gen_range(0..=max),
                None => max,
            };
            (n as f64 * p as f64 / 100.0).floor() as usize
        }
    })
}

/// Selects and picks: the instances `sel` takes, for an object in namespace `own`. Errors name what
/// exists when nothing is selected.
pub fn pick(sel: &PodSelector, own: &str, pods: &[Pod], rng: &mut Rng) -> Result<Vec<Pod>, String> {
    let mut matched: Vec<Pod> = filter(&sel.selector, own, pods).into_iter().cloned().collect();
    if matched.is_empty() {
        return Err(format!("no pod is selected ({})", describe_pods(pods)));
    }
    let count = mode_count(sel.mode, sel.value.as_deref(), matched.len(), Some(rng))?;
    if count == 0 {
        return Err(format!(
            "no pod is selected: mode {} with value {} takes none of {} pods",
            mode_name(sel.mode),
            sel.value.as_deref().unwrap_or(""),
            matched.len()
        ));
    }
    if count < matched.len() {
        matched.shuffle(rng);
        matched.truncate(count);
        matched.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(matched)
}

/// `one`, `fixed-percent`, …
pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::One => "one",
        Mode::All => "all",
        Mode::Fixed => "fixed",
        Mode::FixedPercent => "fixed-percent",
        Mode::RandomMaxPercent => "random-max-percent",
    }
}

/// `iot: flink, sensor; kafka: …` — what there is, for messages.
pub fn describe_pods(pods: &[Pod]) -> String {
    let mut by_ns: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for p in pods {
        let labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        by_ns.entry(&p.namespace).or_default().push(format!("{} [{}]", p.name, labels.join(",")));
    }
    let parts: Vec<String> = by_ns.iter().map(|(ns, names)| format!("{ns}: {}", names.join(", "))).collect();
    format!("pods are {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::seed::Seed;
    use crate::mesh::schema::LabelRequirement;

    fn pod(name: &str, ns: &str, app: &str) -> Pod {
        Pod {
            name: name.to_lowercase(),
            instance: name.into(),
            component: name.into(),
            namespace: ns.into(),
            labels: [("app".to_string(), app.to_string())].into(),
            annotations: [(KIND_ANNOTATION.to_string(), "k".to_string())].into(),
            phase: "Running",
            external_hosts: Vec::new(),
        }
    }

    #[test]
    fn external_targets_match_hosts_addresses_and_blocks() {
        let mut p = pod("MQTT_BROKER", "iot", "mqtt-broker");
        p.external_hosts = vec!["mosquitto.lab.example".into()];
        assert!(p.has_external("Mosquitto.Lab.Example."));
        assert!(!p.has_external("lab.example"));
        p.external_hosts = vec!["10.1.2.3".into(), "::1".into()];
        assert!(p.has_external("10.0.0.0/8") && p.has_external("10.1.2.3") && p.has_external("::1/128"));
        assert!(!p.has_external("10.1.2.4") && !p.has_external("192.168.0.0/16"));
        for ok in ["db.example", "10.0.0.0/8", "fe80::1", "localhost"] {
            assert!(valid_external(ok), "{ok}");
        }
        for bad in ["", "-x.example", "a b", "http://db.example", "10.0.0.0/33"] {
            assert!(!valid_external(bad), "{bad}");
        }
    }

    fn world() -> Vec<Pod> {
        vec![
            pod("HEURISTICS-MINER", "kafka", "heuristics-miner-flink"),
            pod("KAFKA", "kafka", "kafka"),
            pod("CONFORMANCE", "kafka", "conformance"),
            pod("FLINK", "iot", "flink"),
        ]
    }

    fn names(p: &[&Pod]) -> Vec<String> {
        p.iter().map(|p| p.name.clone()).collect()
    }

    #[test]
    fn filters_like_chaos_mesh() {
        let pods = world();
        let mut sel = SelectorSpec { namespaces: vec!["kafka".into()], ..Default::default() };
        assert_eq!(names(&filter(&sel, "default", &pods)), ["conformance", "heuristics-miner", "kafka"]);
        sel.label_selectors.insert("app".into(), "heuristics-miner-flink".into());
        assert_eq!(names(&filter(&sel, "default", &pods)), ["heuristics-miner"]);
        // No namespaces: the object's own.
        let only_labels = SelectorSpec { label_selectors: sel.label_selectors.clone(), ..Default::default() };
        assert!(filter(&only_labels, "default", &pods).is_empty());
        assert_eq!(names(&filter(&only_labels, "kafka", &pods)), ["heuristics-miner"]);
        let expr = SelectorSpec {
            namespaces: vec!["kafka".into(), "iot".into()],
            expression_selectors: vec![LabelRequirement {
                key: "app".into(),
                operator: "NotIn".into(),
                values: vec!["kafka".into(), "flink".into()],
            }],
            ..Default::default()
        };
        assert_eq!(names(&filter(&expr, "default", &pods)), ["conformance", "heuristics-miner"]);
        // `pods` alone decides.
        let by_name = SelectorSpec {
            pods: [("iot".to_string(), vec!["flink".to_string()])].into(),
            namespaces: vec!["kafka".into()],
            ..Default::default()
        };
        assert_eq!(names(&filter(&by_name, "default", &pods)), ["flink"]);
        let fields = SelectorSpec {
            namespaces: vec!["kafka".into()],
            field_selectors: [("metadata.name".to_string(), "kafka".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(names(&filter(&fields, "default", &pods)), ["kafka"]);
        let nodes =
            SelectorSpec { namespaces: vec!["kafka".into()], nodes: vec!["n1".into()], ..Default::default() };
        assert!(filter(&nodes, "default", &pods).is_empty());
    }

    #[test]
    fn modes_pick_deterministically() {
        let pods = world();
        let sel = |mode, value: Option<&str>| PodSelector {
            selector: SelectorSpec { namespaces: vec!["kafka".into()], ..Default::default() },
            mode,
            value: value.map(str::to_owned),
        };
        let mut rng = Seed(1).stream("t");
        assert_eq!(pick(&sel(Mode::All, None), "x", &pods, &mut rng).unwrap().len(), 3);
        assert_eq!(pick(&sel(Mode::One, None), "x", &pods, &mut rng).unwrap().len(), 1);
        assert_eq!(pick(&sel(Mode::Fixed, Some("2")), "x", &pods, &mut rng).unwrap().len(), 2);
        assert_eq!(pick(&sel(Mode::Fixed, Some("9")), "x", &pods, &mut rng).unwrap().len(), 3);
        assert_eq!(pick(&sel(Mode::FixedPercent, Some("67")), "x", &pods, &mut rng).unwrap().len(), 2);
        let e = pick(&sel(Mode::FixedPercent, Some("10")), "x", &pods, &mut rng).unwrap_err();
        assert!(e.contains("takes none of 3"), "{e}");
        let a = pick(&sel(Mode::One, None), "x", &pods, &mut Seed(7).stream("s")).unwrap();
        let b = pick(&sel(Mode::One, None), "x", &pods, &mut Seed(7).stream("s")).unwrap();
        assert_eq!(a, b);
        assert!(check_mode(Mode::Fixed, None).unwrap_err().contains("needs a value"));
        assert!(check_mode(Mode::FixedPercent, Some("150")).unwrap_err().contains("between 0 and 100"));
        let none = PodSelector {
            selector: SelectorSpec { namespaces: vec!["nowhere".into()], ..Default::default() },
            mode: Mode::All,
            value: None,
        };
        let e = pick(&none, "x", &pods, &mut rng).unwrap_err();
        assert!(e.contains("no pod is selected") && e.contains("kafka: "), "{e}");
    }
}
