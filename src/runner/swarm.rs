//! `chaoslab swarm`: swarm testing, as TigerBeetle's VOPR does it — per seed, a fault schedule drawn from
//! the seed, a sim run through it, a quiet phase with every fault off, and the invariants checked; a
//! failing seed is printed with the command that reproduces it.
//!
//! The schedule, within these bounds: the faults start in the first half of the run (the rest is the
//! quiet phase, at least two minutes so that restart back-offs and the order reverser get their turn);
//! 3–8 faults, each lasting 5–60 s (broker outages up to 90 s): `network-delay` (10–500 ms, jitter up to
//! half), `network-loss` (1–50 %), `network-duplicate` (1–20 %) and `network-partition` on a link;
//! `process-kill` and `process-pause` (up to 30 s) of a component; `mqtt-broker-down`;
//! `kafka-broker-down` of one broker. Faults that change payloads (`network-corrupt`, `data-*`) are left
//! out: they are meant to break the data, not the plumbing.
//!
//! The invariants: every component is running again (or ended normally, like a finished load); the run
//! drained; every link adds up (`sent + duplicated = delivered + dropped`); and the order invariants
//! hold (every created order is stored, decisions follow the fraud rule, no illegal state change).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::Rng as _;
use rand::seq::SliceRandom as _;
use serde_json::{Map, Value, json};

use super::Run;
use crate::chaos::faults::FaultRequest;
use crate::kernel::seed::Seed;
use crate::kernel::supervisor::State;
use crate::topology::Pipeline;

/// Shortest run `swarm` accepts: two minutes of faults, two of quiet.
pub const MIN_DURATION: Duration = Duration::from_secs(240);

/// One fault of a drawn schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// Run time at which it is applied.
    pub at: Duration,
    /// The request (with its duration).
    pub request: FaultRequest,
}

/// What one seed did.
#[derive(Clone, Debug)]
pub struct SeedOutcome {
    /// The seed.
    pub seed: u64,
    /// The faults it drew.
    pub schedule: Vec<Planned>,
    /// Broken invariants (empty when the seed holds).
    pub problems: Vec<String>,
}

impl SeedOutcome {
    /// True when every invariant held.
    pub fn holds(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A request for `kind` on `target` lasting `secs` (instant kinds, `process-kill`, take no duration).
fn request(kind: &str, target: Option<&str>, secs: u64, parameters: Value) -> FaultRequest {
    let parameters = match parameters {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    FaultRequest {
        kind: kind.to_string(),
        target: target.map(str::to_string),
        mode: None,
        value: None,
        duration: (kind != "process-kill").then(|| json!(format!("{secs}s"))),
        parameters,
    }
}

/// Draws the fault schedule of `seed` for a run of `duration` over a flow with these links and
/// components (name, kind).
pub fn draw(
    seed: u64,
    duration: Duration,
    links: &[String],
    components: &[(String, String)],
) -> Vec<Planned> {
    let mut rng = Seed(seed).stream("swarm");
    let window = (duration / 2).as_secs().max(1);
    let brokers: Vec<&str> =
        components.iter().filter(|(_, k)| k == "kafka-broker").map(|(n, _)| n.as_str()).collect();
    let mqtt = components.iter().any(|(_, k)| k == "mqtt-broker");
    let names: Vec<&str> = components.iter().map(|(n, _)| n.as_str()).collect();
    let n = rng.gen_range(3..=8);
    let mut plan = Vec::with_capacity(n);
    for _ in 0..n {
        let at = Duration::from_secs(rng.gen_range(0..window));
        let secs = rng.gen_range(5..=60);
        let link = links.choose(&mut rng).map(String::as_str);
        let component = names.choose(&mut rng).copied();
        let request = match rng.gen_range(0..8) {
            0 => {
                let latency = rng.gen_range(10..=500);
                let jitter = rng.gen_range(0..=latency / 2);
                request(
                    "network-delay",
                    link,
                    secs,
                    json!({"latency": format!("{latency}ms"), "jitter": format!("{jitter}ms")}),
                )
            }
            1 => request("network-loss", link, secs, json!({"percent": rng.gen_range(1..=50)})),
            2 => request("network-duplicate", link, secs, json!({"percent": rng.gen_range(1..=20)})),
            3 => request("network-partition", link, secs, json!({})),
            4 => request("process-kill", component, secs, json!({})),
            5 => request("process-pause", component, secs.min(30), json!({})),
            6 if mqtt => request("mqtt-broker-down", None, rng.gen_range(10..=90), json!({})),
            7 if !brokers.is_empty() => {
                let broker = brokers.choose(&mut rng).copied();
                request("kafka-broker-down", broker, rng.gen_range(10..=90), json!({}))
            }
            _ => request("network-delay", link, secs, json!({"latency": "100ms"})),
        };
        if request.target.is_none() && !request.kind.ends_with("broker-down") {
            continue;
        }
        plan.push(Planned { at, request });
    }
    plan.sort_by_key(|p| p.at);
    plan
}

/// Runs `seed` of the swarm over `base` (the flow and options) for `duration`.
pub fn run_seed(base: &Run, seed: u64, duration: Duration, out: PathBuf) -> anyhow::Result<SeedOutcome> {
    let flow = base.flow();
    let links: Vec<String> = flow.edges().into_iter().map(|(f, t)| format!("{f}->{t}")).collect();
    let mut components = Vec::new();
    for (name, entry) in &flow.components {
        for instance in entry.config.instances(name) {
            let kind = if entry.kind() == "kafka-cluster" && instance != *name {
                "kafka-broker"
            } else {
                entry.kind()
            };
            components.push((instance, kind.to_string()));
        }
    }
    let schedule = draw(seed, duration, &links, &components);
    let problems = Arc::new(Mutex::new(Vec::<String>::new()));
    let (plan, found) = (schedule.clone(), problems.clone());
    let run = base.clone().seed(seed).out(&out).trace_in_memory();
    let summary = run.sim_with(move |p: Arc<Pipeline>| async move {
        let start = p.clock.start();
        for f in &plan {
            tokio::time::sleep_until(start + f.at).await;
            // A drawn fault the catalogue refuses is a bug of the swarm itself: report it, never skip it.
            if let Err(e) = p.faults.apply(&f.request).await {
                let mut found = found.lock().unwrap_or_else(PoisonError::into_inner);
                found.push(format!("fault {} on {:?} was refused: {e}", f.request.kind, f.request.target));
            }
        }
        tokio::time::sleep_until(start + duration / 2).await;
        p.faults.remove_all("quiet phase");
        tokio::time::sleep_until(start + duration).await;
        let mut found = found.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, h) in p.supervisor.health_all() {
            if !matches!(h.state, State::Running | State::Exited) || h.paused {
                found.push(format!("{name} is {:?} after the quiet phase ({})", h.state, h.detail));
            }
        }
        Ok(())
    })?;
    let mut problems = problems.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if !summary.drained {
        problems.push("messages were still in flight when the run ended".into());
    }
    for (name, l) in &summary.links {
        if l.sent + l.duplicated != l.delivered + l.dropped() {
            problems.push(format!(
                "link {name} does not add up: {} sent + {} duplicated != {} delivered + {} dropped",
                l.sent,
                l.duplicated,
                l.delivered,
                l.dropped()
            ));
        }
    }
    if let Some(o) = &summary.orders {
        let i = &o.invariants;
        if !i.ok {
            problems.push(format!(
                "order invariants violated: {} missing, {} decided against the fraud rule, {} illegal transitions",
                i.missing.len(),
                i.wrong_decision.len(),
                i.illegal_transitions.len()
            ));
        }
    }
    Ok(SeedOutcome { seed, schedule, problems })
}

/// Runs every seed, `jobs` at a time (each sim run on its own thread), writing under `out/seed-N`
/// (removed for seeds that hold). Outcomes come back in seed order.
pub fn run(
    base: &Run,
    seeds: &[u64],
    duration: Duration,
    out: &std::path::Path,
    jobs: usize,
) -> anyhow::Result<Vec<SeedOutcome>> {
    anyhow::ensure!(
        duration >= MIN_DURATION,
        "swarm runs need at least {} (half faults, half quiet)",
        humantime::format_duration(MIN_DURATION)
    );
    let out_dir = crate::topology::out_dir::prepare(out)?;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, anyhow::Result<SeedOutcome>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(seeds.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&seed) = seeds.get(i) else { break };
                    let dir = out.join(format!("seed-{seed}"));
                    let outcome = run_seed(base, seed, duration, dir.clone());
                    if outcome.as_ref().is_ok_and(SeedOutcome::holds) {
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                    results.lock().unwrap_or_else(PoisonError::into_inner).push((i, outcome));
                }
            });
        }
    });
    out_dir.finish()?;
    let mut results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Parses `1..100` (inclusive), `7`, or `1,5,9`.
pub fn parse_seeds(text: &str) -> Result<Vec<u64>, String> {
    let bad = |why: &str| format!("--seeds {text:?}: {why} (write 1..100, 7 or 1,5,9)");
    if let Some((a, b)) = text.split_once("..") {
        let a: u64 = a.trim().parse().map_err(|_| bad("not a number before .."))?;
        let b: u64 = b.trim().trim_start_matches('=').parse().map_err(|_| bad("not a number after .."))?;
        if b < a {
            return Err(bad("the range is empty"));
        }
        if b - a >= 1_000_000 {
            return Err(bad("more than a million seeds"));
        }
        return Ok((a..=b).collect());
    }
    text.split(',').map(|s| s.trim().parse().map_err(|_| bad("not a number"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse() {
        assert_eq!(parse_seeds("1..3").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_seeds("7").unwrap(), vec![7]);
        assert_eq!(parse_seeds("1, 5,9").unwrap(), vec![1, 5, 9]);
        assert!(parse_seeds("3..1").is_err());
        assert!(parse_seeds("x").is_err());
    }

    #[test]
    fn schedules_follow_the_seed_and_stay_in_bounds() {
        let links = vec!["A->B".to_string(), "B->C".to_string()];
        let comps =
            vec![("A".to_string(), "x".to_string()), ("KAFKA-1".to_string(), "kafka-broker".to_string())];
        let d = Duration::from_secs(600);
        let a = draw(3, d, &links, &comps);
        assert_eq!(a, draw(3, d, &links, &comps));
        assert_ne!(a, draw(4, d, &links, &comps));
        for seed in 0..50 {
            for p in draw(seed, d, &links, &comps) {
                assert!(p.at < d / 2, "{p:?}");
                assert!(p.request.kind != "network-corrupt" && !p.request.kind.starts_with("data-"));
            }
        }
    }
}
