//! `chaoslab bench mining`: the Heuristics Miner with Lossy Counting, alone and on the bus.
//!
//! 1. The miner alone: events per wall second through the Lossy Counting tables, with a model refresh
//!    every 1000 events, over an interleaved stream of the `order-to-cash` model (target ≥ 1 M/s/core).
//! 2. The same stream through pybeamline's Heuristics Miner with Lossy Counting (its operator's per-event
//!    call, the stream plumbing left out) when a Python with
//!    `pybeamline` is found (`CHAOSLAB_PYBEAMLINE_PYTHON`, or `python3`), and the ratio.
//! 3. Memory of the tables against ε: the largest table sizes, their approximate bytes, and edge recall.
//! 4. The whole path in sim: `EVENT-SOURCE → input → HEURISTICS-MINER` (service rate unlimited), events
//!    mined per wall second.

use std::io::Write as _;
use std::time::{Duration, Instant};

use rand::Rng as _;
use rand::SeedableRng as _;

use crate::process_mining::heuristics::{DependencyGraph, Thresholds, edge_quality};
use crate::process_mining::lossy_counting::{LossyCounting, Variant};
use crate::process_mining::tree::ProcessTree;

/// An interleaved stream of `n` events from `open` cases of `tree`.
pub fn stream(tree: &ProcessTree, n: usize, open: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut next = 0usize;
    let mut fresh = |rng: &mut rand_xoshiro::Xoshiro256PlusPlus| {
        let mut t = Vec::new();
        tree.generate(rng, &mut t);
        next += 1;
        (format!("case-{next}"), t, 0usize)
    };
    let mut cases: Vec<(String, Vec<String>, usize)> = (0..open.max(1)).map(|_| fresh(&mut rng)).collect();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let i = rng.gen_range(0..cases.len());
        let (id, t, pos) = &mut cases[i];
        out.push((id.clone(), t[*pos].clone()));
        *pos += 1;
        if *pos == t.len() {
            cases[i] = fresh(&mut rng);
        }
    }
    out
}

/// Runs the mining benchmarks and prints their figures.
pub fn run(events: usize, sim_for: Duration) -> anyhow::Result<()> {
    println!("chaoslab bench mining ({} build)", if cfg!(debug_assertions) { "debug" } else { "release" });
    let tree = ProcessTree::builtin("order-to-cash").ok_or_else(|| anyhow::anyhow!("no built-in model"))?;
    let data = stream(&tree, events, 200, 1);
    let thresholds = Thresholds::defaults(Variant::Beamline);

    let started = Instant::now();
    let mut lc = LossyCounting::new(Variant::Beamline, 1e-4, 0);
    let mut refreshes = 0;
    for (i, (c, a)) in data.iter().enumerate() {
        lc.observe(c, a);
        if (i + 1) % 1000 == 0 {
            let g = DependencyGraph::mine(&lc.counts(), Variant::Beamline, &thresholds);
            refreshes += usize::from(!g.edges.is_empty());
        }
    }
    let ours = data.len() as f64 / started.elapsed().as_secs_f64();
    println!(
        "miner alone:       {} events (order-to-cash, 200 open cases, ε 1e-4, a model every 1000) in {:.3} s = {:.0} events/s on one core (target >= 1000000); {refreshes} models",
        data.len(),
        started.elapsed().as_secs_f64(),
        ours
    );

    match pybeamline(&data)? {
        Some(rate) => println!(
            "pybeamline:        heuristics_miner_lossy_counting on the same events = {rate:.0} events/s; chaoslab/pybeamline = {:.1}x",
            ours / rate
        ),
        None => println!(
            "pybeamline:        not measured (no Python with pybeamline; set CHAOSLAB_PYBEAMLINE_PYTHON)"
        ),
    }

    for epsilon in [1e-2, 1e-3, 1e-4, 1e-5] {
        let mut lc = LossyCounting::new(Variant::Beamline, epsilon, 0);
        let mut max = (0usize, 0usize, 0usize);
        for (c, a) in &data {
            lc.observe(c, a);
            let s = lc.sizes();
            max = (max.0.max(s.activities), max.1.max(s.cases), max.2.max(s.relations));
        }
        // An activity entry ~24 B, a case entry ~(id + 32) B, a relation entry ~32 B, plus map overhead.
        let bytes = max.0 * 24 + max.1 * (12 + 48) + max.2 * 48;
        let g = DependencyGraph::mine(&lc.counts(), Variant::Beamline, &thresholds);
        let q = edge_quality(&g.edge_set(), &tree.causal_edges());
        println!(
            "tables at ε {epsilon:<7} at most {} activities, {} cases, {} relations (~{:.1} KB); edge recall {:.3}",
            max.0,
            max.1,
            max.2,
            bytes as f64 / 1024.0,
            q.recall
        );
    }

    let (mined, wall, simulated) = sim_path(sim_for)?;
    println!(
        "sim path:          {mined} events EVENT-SOURCE -> input -> HEURISTICS-MINER in {wall:.3} s wall ({simulated:.0} s simulated) = {:.0} events/s",
        mined as f64 / wall
    );
    Ok(())
}

/// The whole path in sim for `duration` at 20 000 events per second, the miner unthrottled.
fn sim_path(duration: Duration) -> anyhow::Result<(u64, f64, f64)> {
    let mut flow =
        crate::catalog::parse_flow(crate::catalog::PROCESS_MINING_FLOW, "process-mining.toml", None)?;
    flow.without(&["CONFORMANCE"]);
    flow.configure::<crate::process_mining::event_source::EventSourceConfig>(|s| {
        s.rate_start = 20_000;
        s.rate_end = 20_000;
    });
    flow.configure::<crate::process_mining::heuristics_miner::HeuristicsMinerConfig>(|m| m.throughput = 0);
    let dir = std::env::temp_dir().join(format!("chaoslab-bench-mining-{}", std::process::id()));
    let s = crate::runner::Run::new(flow)
        .out(&dir)
        .seed(1)
        .trace_in_memory()
        .history(false)
        .trace_level(crate::kernel::trace::TraceLevel::Lifecycle)
        .sim(duration)?;
    let _ = std::fs::remove_dir_all(&dir);
    let mined = s.process_models.values().map(|m| m.events).sum();
    Ok((mined, s.wall_secs, s.simulated_secs))
}

const PEER: &str = r#"
import sys, time
from pybeamline.bevent import BEvent
from pybeamline.algorithms.discovery.heuristics_miner_lossy_counting import HeuristicsMinerLossyCountingMapper
events = [BEvent(a, c) for c, a in (line.rstrip("\n").split("\t") for line in open(sys.argv[1]))]
# The same work as ours: ε 1e-4, a model every 1000 events; the operator's per-event call, without the
# stream plumbing around it.
miner = HeuristicsMinerLossyCountingMapper(model_update_frequency=1000, max_approx_error=0.0001,
                                           dependency_threshold=0.9, and_threshold=0.1)
start = time.perf_counter()
for e in events:
    miner.transform(e)
print(len(events) / (time.perf_counter() - start))
"#;

/// pybeamline's rate on the same events, when a Python with it is around.
fn pybeamline(data: &[(String, String)]) -> anyhow::Result<Option<f64>> {
    let python = std::env::var("CHAOSLAB_PYBEAMLINE_PYTHON").unwrap_or_else(|_| "python3".into());
    let has = std::process::Command::new(&python).args(["-c", "import pybeamline"]).output();
    if !has.is_ok_and(|o| o.status.success()) {
        return Ok(None);
    }
    let dir = tempfile_path("pybeamline");
    std::fs::create_dir_all(&dir)?;
    let (events, script) = (dir.join("events.tsv"), dir.join("peer.py"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&events)?);
    for (c, a) in data {
        writeln!(f, "{c}\t{a}")?;
    }
    f.flush()?;
    std::fs::write(&script, PEER)?;
    let out = std::process::Command::new(&python).arg(&script).arg(&events).output()?;
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        anyhow::bail!("pybeamline peer failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse().ok())
}

fn tempfile_path(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("chaoslab-bench-{what}-{}", std::process::id()))
}
