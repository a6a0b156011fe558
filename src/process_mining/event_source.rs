//! `event-source` (`EVENT-SOURCE`): the seed study's load generator. It runs `cases` cases at once, each a
//! trace of the process model (a built-in, a process-tree file, or the cases of an XES log replayed in
//! order), and every tick emits the tick's number of events from randomly chosen open cases, as
//! `{case, activity, timestamp}` records keyed by case to `topic`. Every `validation_split`-th case goes to
//! `validation_topic` instead, its last event marked, for the conformance checker.
//!
//! The rate ramps linearly from `rate_start` to `rate_end` events per tick over `ramp_ticks` ticks, then
//! holds (the seed's profile is 20 000 → 50 000 per tick over 50 ticks). Noise, per event of a case:
//! `drop` leaves it out, `swap` exchanges it with the next one, `random` replaces its activity with one of
//! the model's. It provides the generating model's causal edges as a [`GeneratingModel`] and writes the
//! cases it completed to `<out>/events.xes` when the run stops (at most `xes_cases`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset};
use rand::Rng as _;
use serde::Deserialize;
use serde_json::json;

use super::event::ProcessEvent;
use super::tree::{BUILTIN, ProcessTree, causal, log_follows};
use super::xes;
use crate::bus::backend::AnyProducer;
use crate::bus::client::Acks;
use crate::bus::kafka_cluster::BusHandle;
use crate::kernel::clock::iso_millis;
use crate::kernel::component::Ctx;
use crate::topology::build::InputCx;
use crate::topology::check::CheckCx;
use crate::topology::component::{ComponentKind, Hop, Reference};
use crate::topology::{BuildCx, Flush};
use crate::transport::link::Link;

/// `kind = "event-source"`.
#[derive(Clone, Debug, Deserialize)]
pub struct EventSourceConfig {
    /// The `kafka-cluster` it produces to.
    pub bus: String,
    /// Topic of the stream to mine.
    #[serde(default = "input")]
    pub topic: String,
    /// Topic of the held-out cases.
    #[serde(default = "validation")]
    pub validation_topic: String,
    /// Every n-th case is held out (0: none).
    #[serde(default = "five")]
    pub validation_split: u64,
    /// A built-in model (`sequence`, `xor`, `and`, `loop`, `order-to-cash`, `poke-order`).
    #[serde(default)]
    pub model: Option<String>,
    /// A process tree in pm4py's notation, in a file (relative to the flow).
    #[serde(default)]
    pub model_file: Option<PathBuf>,
    /// An XES log whose cases are replayed in order, looping (relative to the flow).
    #[serde(default)]
    pub log: Option<PathBuf>,
    /// Cases open at once.
    #[serde(default = "hundred")]
    pub cases: usize,
    /// Events in the first tick.
    #[serde(default = "rate_start")]
    pub rate_start: u64,
    /// Events per tick at the end of the ramp.
    #[serde(default = "rate_end")]
    pub rate_end: u64,
    /// Ticks the ramp takes.
    #[serde(default = "fifty")]
    pub ramp_ticks: u64,
    /// Length of a tick.
    #[serde(default = "one_second", with = "humantime_serde")]
    pub tick: Duration,
    /// Noise.
    #[serde(default)]
    pub noise: Noise,
    /// Most completed cases written to `<out>/events.xes`.
    #[serde(default = "xes_cases")]
    pub xes_cases: usize,
}

/// Noise added to each case's events (probabilities per event).
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
pub struct Noise {
    /// Leave the event out.
    #[serde(default)]
    pub drop: f64,
    /// Swap it with the next event of its case.
    #[serde(default)]
    pub swap: f64,
    /// Replace its activity with a random one of the model.
    #[serde(default)]
    pub random: f64,
}

fn input() -> String {
    "input".into()
}
fn validation() -> String {
    "validation".into()
}
fn five() -> u64 {
    5
}
fn hundred() -> usize {
    100
}
fn rate_start() -> u64 {
    200
}
fn rate_end() -> u64 {
    500
}
fn fifty() -> u64 {
    50
}
fn one_second() -> Duration {
    Duration::from_secs(1)
}
fn xes_cases() -> usize {
    10_000
}

/// What the generating model is, for quality checks.
#[derive(Clone, Debug)]
pub struct GeneratingModel {
    /// A short description (`built-in order-to-cash`, a file name).
    pub name: String,
    /// Its causal edges.
    pub edges: BTreeSet<(String, String)>,
    /// Its activities.
    pub activities: BTreeSet<String>,
}

/// Where traces come from.
#[derive(Clone, Debug)]
enum Traces {
    Tree(ProcessTree),
    Log(Arc<Vec<xes::Case>>),
}

impl EventSourceConfig {
    fn traces(&self, cx: &InputCx<'_>) -> anyhow::Result<(Traces, GeneratingModel)> {
        let given = [self.model.is_some(), self.model_file.is_some(), self.log.is_some()];
        let tree = match (&self.model, &self.model_file, &self.log) {
            (Some(name), _, _) => ProcessTree::builtin(name).ok_or_else(|| {
                let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
                anyhow::anyhow!("model: no built-in model {name:?}; one of {}", names.join(", "))
            })?,
            (None, Some(file), _) => {
                let path = cx.flow.resolve(&file.display().to_string());
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("model_file: cannot read {}: {e}", path.display()))?;
                ProcessTree::parse(&text).map_err(|e| {
                    anyhow::anyhow!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message)
                })?
            }
            (None, None, Some(log)) => {
                let cases = xes::read(&cx.flow.resolve(&log.display().to_string()))?;
                let follows = log_follows(cases.iter().map(|(_, t)| t));
                let activities = cases.iter().flat_map(|(_, t)| t.iter().cloned()).collect();
                let model =
                    GeneratingModel { name: log.display().to_string(), edges: causal(&follows), activities };
                return Ok((Traces::Log(Arc::new(cases)), model));
            }
            (None, None, None) => unreachable!("checked: one of model, model_file, log"),
        };
        debug_assert!(given.iter().filter(|g| **g).count() == 1);
        let name = self
            .model
            .clone()
            .unwrap_or_else(|| self.model_file.as_ref().map(|f| f.display().to_string()).unwrap_or_default());
        let model = GeneratingModel { name, edges: tree.causal_edges(), activities: tree.activities() };
        Ok((Traces::Tree(tree), model))
    }
}

impl ComponentKind for EventSourceConfig {
    const KIND: &'static str = "event-source";
    const NAMESPACE: &'static str = "kafka";
    const SOURCE: bool = true;

    fn references(&self) -> Vec<Reference<'_>> {
        vec![Reference::new("bus", &self.bus, &["kafka-cluster"], Hop::To)]
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        let given = [self.model.is_some(), self.model_file.is_some(), self.log.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            cx.error(
                "",
                "give exactly one of model (a built-in), model_file (a process tree) or log (an XES file)",
            );
        }
        cx.require(self.cases > 0, "cases", "must be at least 1");
        cx.require(!self.tick.is_zero(), "tick", "must be more than 0");
        cx.require(
            self.rate_start.max(self.rate_end) <= 10_000_000,
            "rate_end",
            "at most 10 000 000 events per tick",
        );
        for (field, p) in [
            ("noise.drop", self.noise.drop),
            ("noise.swap", self.noise.swap),
            ("noise.random", self.noise.random),
        ] {
            cx.require((0.0..=1.0).contains(&p), field, format!("must be between 0 and 1, got {p}"));
        }
        cx.require(self.topic != self.validation_topic, "validation_topic", "must differ from topic");
    }

    fn check_inputs(&self, _name: &str, cx: &InputCx<'_>) -> anyhow::Result<()> {
        self.traces(cx).map(|_| ())
    }

    /// Provides the [`GeneratingModel`] and a flush writing `<out>/events.xes`.
    async fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> anyhow::Result<()> {
        let (traces, model) = self.traces(&InputCx { mode: cx.mode, flow: cx.flow })?;
        cx.provide(name, model.clone());
        let BusHandle { client, .. } = cx.handle(&self.bus)?;
        let producer = client.producer("event-source", Acks::All)?;
        let link = cx.link(name, &self.bus)?;
        let done: Arc<Mutex<Vec<Completed>>> = Arc::default();
        let path = cx.out_path("events.xes");
        let written = done.clone();
        cx.provide(
            name,
            Flush(Arc::new(move || {
                let cases = written.lock().unwrap_or_else(PoisonError::into_inner);
                if cases.is_empty() {
                    return Ok(());
                }
                xes::write(&path, &cases).map_err(anyhow::Error::from)
            })),
        );
        let next_case = Arc::new(AtomicU64::new(0));
        let alphabet: Vec<String> = model.activities.iter().cloned().collect();
        let parts = Arc::new(Parts { cfg: self.clone(), traces, alphabet, producer, link, done, next_case });
        cx.add(name, move |ctx| run(ctx, parts.clone()))
    }
}

type Completed = xes::TimedCase;

struct Parts {
    cfg: EventSourceConfig,
    traces: Traces,
    alphabet: Vec<String>,
    producer: Arc<AnyProducer>,
    link: Arc<Link>,
    done: Arc<Mutex<Vec<Completed>>>,
    next_case: Arc<AtomicU64>,
}

struct OpenCase {
    id: String,
    trace: Vec<String>,
    next: usize,
    held_out: bool,
    emitted: Vec<(String, DateTime<FixedOffset>)>,
}

impl Parts {
    fn open(&self, ctx: &Ctx) -> OpenCase {
        let n = self.next_case.fetch_add(1, Ordering::SeqCst);
        let mut rng = ctx.rng.lock();
        let mut trace = match &self.traces {
            Traces::Tree(t) => {
                let mut v = Vec::new();
                t.generate(&mut *rng, &mut v);
                v
            }
            Traces::Log(cases) => cases[(n as usize) % cases.len()].1.clone(),
        };
        let noise = self.cfg.noise;
        if noise != Noise::default() {
            let mut i = 0;
            while i < trace.len() {
                if rng.gen_bool(noise.drop) {
                    trace.remove(i);
                    continue;
                }
                if i + 1 < trace.len() && rng.gen_bool(noise.swap) {
                    trace.swap(i, i + 1);
                }
                if !self.alphabet.is_empty() && rng.gen_bool(noise.random) {
                    trace[i] = self.alphabet[rng.gen_range(0..self.alphabet.len())].clone();
                }
                i += 1;
            }
        }
        let split = self.cfg.validation_split;
        OpenCase {
            id: format!("case-{n}"),
            trace,
            next: 0,
            held_out: split > 0 && n % split == split - 1,
            emitted: Vec::new(),
        }
    }
}

/// Events in tick `tick` (from 0) of the ramp.
fn rate(cfg: &EventSourceConfig, tick: u64) -> u64 {
    let (a, b, n) = (cfg.rate_start as f64, cfg.rate_end as f64, cfg.ramp_ticks.max(1) as f64);
    let share = (tick as f64 / n).min(1.0);
    (a + (b - a) * share).round() as u64
}

/// Steps per tick (the tick's events are spread over them).
const STEPS: u64 = 10;

/// Produce requests in flight at once, as a Kafka producer's `max.in.flight.requests.per.connection`.
const MAX_IN_FLIGHT: usize = 5;

/// One step's events: one produce request, as a Kafka producer batches what `linger.ms` collects.
struct Batch {
    /// Topic, key, value, timestamp, and the case and activity for the trace.
    records: Vec<(String, Bytes, Bytes, i64, String, String)>,
}

/// Sends a batch whose request crossed the link (or drops it with why not).
async fn send_batch(ctx: &Ctx, parts: &Parts, batch: Batch, crossed: Result<(), String>) {
    for (topic, key, value, ts, case, activity) in batch.records {
        let sent = match &crossed {
            Ok(()) => {
                parts.producer.send(&topic, None, Some(key), value, ts).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.clone()),
        };
        match sent {
            Ok(_) => {
                ctx.metrics.records_out.inc();
                ctx.trace_record("event.produced", &json!({"case": case, "activity": activity}));
            }
            Err(e) => ctx.drop_record("produce_failed", json!({"case": case, "error": e})),
        }
    }
}

/// Generates each step's events as one batch and produces the batches pipelined: up to
/// [`MAX_IN_FLIGHT`] requests cross the link at once and are written in order, so a network delay adds
/// latency, not a throughput limit (as with a Kafka producer), until more than that many are waiting.
async fn run(ctx: Ctx, parts: Arc<Parts>) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    use futures::stream::FuturesOrdered;
    ctx.health.set_ready(true, "generating");
    let mut open: Vec<OpenCase> = (0..parts.cfg.cases).map(|_| parts.open(&ctx)).collect();
    let step = parts.cfg.tick / STEPS as u32;
    let mut next = tokio::time::Instant::now();
    let mut tick = 0u64;
    let mut in_flight = FuturesOrdered::new();
    loop {
        let rate = rate(&parts.cfg, tick);
        for s in 0..STEPS {
            // The tick's events, spread evenly over its steps.
            let due = rate * (s + 1) / STEPS - rate * s / STEPS;
            let mut batch = Batch { records: Vec::with_capacity(due as usize) };
            for _ in 0..due {
                let i = ctx.rng.lock().gen_range(0..open.len());
                if open[i].next >= open[i].trace.len() {
                    // An empty trace (all dropped by noise): start another case.
                    open[i] = parts.open(&ctx);
                    continue;
                }
                let case = &mut open[i];
                let activity = case.trace[case.next].clone();
                case.next += 1;
                let last = case.next == case.trace.len();
                let now = ctx.clock.now();
                let event = ProcessEvent {
                    case: case.id.clone(),
                    activity: activity.clone(),
                    timestamp: iso_millis(now),
                    last: last && case.held_out,
                };
                let topic = if case.held_out { &parts.cfg.validation_topic } else { &parts.cfg.topic };
                ctx.metrics.records_in.inc();
                batch.records.push((
                    topic.clone(),
                    Bytes::from(case.id.clone()),
                    Bytes::from(event.to_bytes()),
                    now.timestamp_millis(),
                    case.id.clone(),
                    activity.clone(),
                ));
                case.emitted.push((activity, now.fixed_offset()));
                if last {
                    let finished = std::mem::replace(&mut open[i], parts.open(&ctx));
                    let mut done = parts.done.lock().unwrap_or_else(PoisonError::into_inner);
                    if done.len() < parts.cfg.xes_cases {
                        done.push((finished.id, finished.emitted));
                    }
                }
            }
            if !batch.records.is_empty() {
                // A full pipeline blocks the generator, as a producer's full buffer blocks `send`.
                while in_flight.len() >= MAX_IN_FLIGHT {
                    let Some((batch, crossed)) = in_flight.next().await else { break };
                    send_batch(&ctx, &parts, batch, crossed).await;
                }
                let link = parts.link.clone();
                in_flight.push_back(async move {
                    let crossed = link.gate().await.map_err(|e| e.to_string());
                    (batch, crossed)
                });
            }
            next += step;
            loop {
                tokio::select! {
                    biased;
                    _ = ctx.shutdown.cancelled() => {
                        // A graceful stop flushes what is in flight, as a producer's close does.
                        while let Some((batch, crossed)) = in_flight.next().await {
                            send_batch(&ctx, &parts, batch, crossed).await;
                        }
                        return Ok(());
                    }
                    Some((batch, crossed)) = in_flight.next(), if !in_flight.is_empty() => {
                        send_batch(&ctx, &parts, batch, crossed).await;
                    }
                    _ = tokio::time::sleep_until(next) => break,
                }
            }
            if ctx.hooks.is_paused() && ctx.sleep_or_stop(Duration::ZERO).await {
                return Ok(());
            }
        }
        tick += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_ramps_then_holds() {
        let cfg: EventSourceConfig =
            toml::from_str("bus = \"K\"\nmodel = \"xor\"\nrate_start = 20000\nrate_end = 50000").unwrap();
        assert_eq!(
            (rate(&cfg, 0), rate(&cfg, 25), rate(&cfg, 50), rate(&cfg, 500)),
            (20_000, 35_000, 50_000, 50_000)
        );
        assert_eq!((cfg.topic.as_str(), cfg.validation_split, cfg.cases), ("input", 5, 100));
    }
}
