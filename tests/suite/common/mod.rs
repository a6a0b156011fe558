//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod browser;
pub mod http;

use std::path::{Path, PathBuf};

/// `../shared` beside the checkout (or `$CHAOSLAB_SHARED`), if present.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("CHAOSLAB_SHARED") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    };
    dir.is_dir().then_some(dir)
}

/// Where the binaries the tests start keep their execution store (never the user's own).
pub fn test_store() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-executions.db")
}

/// The `chaoslab` binary, with its execution store under `target/`.
pub fn chaoslab() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_chaoslab"));
    c.env("CHAOSLAB_STORE", test_store());
    c
}

/// [`chaoslab`] for tokio.
pub fn chaoslab_async() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_chaoslab"));
    c.env("CHAOSLAB_STORE", test_store());
    c
}

/// A program on `PATH`.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

/// Skips a test that needs something this machine lacks, with a message; with
/// `CHAOSLAB_REQUIRE_EXTERNALS=1` (CI sets it) a missing requirement fails the test instead.
pub fn skip(test: &str, why: &str) {
    if std::env::var_os("CHAOSLAB_REQUIRE_EXTERNALS").is_some_and(|v| v == "1") {
        panic!("{test}: {why}, and CHAOSLAB_REQUIRE_EXTERNALS=1 forbids skipping");
    }
    eprintln!("SKIP {test}: {why}");
}

/// The real GNFUV file, or `None` after printing why the caller skips.
pub fn gnfuv_pi2(test: &str) -> Option<PathBuf> {
    let path = shared_dir().map(|d| d.join("datasets/gnfuv/pi2.csv")).filter(|p| p.is_file());
    if path.is_none() {
        skip(test, "../shared/datasets/gnfuv/pi2.csv not found (set CHAOSLAB_SHARED)");
    }
    path
}

/// Every file under `dir` with its bytes, in path order.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Parsed lines of a run's trace.
pub fn trace(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("trace.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The documents of an index file.
pub fn index_docs(dir: &Path, index: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("index").join(format!("{index}.jsonl")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The flow without the order services and monitoring (they all name the bus `KAFKA` or the store): the
/// IoT path.
pub fn iot_only(mut flow: chaoslab::topology::flow::Flow) -> chaoslab::topology::flow::Flow {
    flow.without(&["KAFKA", "POKE-ORDERS-DB"]);
    flow
}

/// The flow without OCTILLERY's load.
pub fn no_load(mut flow: chaoslab::topology::flow::Flow) -> chaoslab::topology::flow::Flow {
    flow.without(&["OCTILLERY"]);
    flow
}

/// The bus the services of a running pipeline use.
pub fn bus(p: &chaoslab::topology::Pipeline) -> chaoslab::bus::backend::BusClient {
    p.handles.first::<chaoslab::bus::backend::BusClient>().expect("the flow runs a bus").clone()
}

/// The order API of a running pipeline, called in-process.
pub fn order_api(p: &chaoslab::topology::Pipeline) -> chaoslab::orders::http::ApiClient {
    let routes = p
        .handles
        .get::<chaoslab::topology::build::HttpRoutes>("POKE-ORDER-API")
        .expect("the flow runs the order API");
    chaoslab::orders::http::ApiClient::InProcess(routes.0.clone())
}

/// The order store of a running pipeline.
pub fn order_db(p: &chaoslab::topology::Pipeline) -> chaoslab::orders::service::OrderDb {
    p.handles.first::<chaoslab::orders::service::OrderDb>().expect("the flow runs an order store").clone()
}

/// The process-mining flow with a lighter load than shipped (tests run on a debug build): 400 events/s
/// from 50 open cases, a miner serving 800/s and publishing every 200 events.
pub fn light_mining(mut f: chaoslab::topology::flow::Flow) -> chaoslab::topology::flow::Flow {
    f.configure::<chaoslab::process_mining::event_source::EventSourceConfig>(|s| {
        s.rate_start = 400;
        s.rate_end = 400;
        s.cases = 50;
    });
    f.configure::<chaoslab::process_mining::heuristics_miner::HeuristicsMinerConfig>(|m| {
        m.throughput = 800;
        m.refresh = 200;
    });
    f
}

/// The first 2000 characters of a long text, for an assertion message.
pub fn cut(text: &str) -> String {
    text.chars().take(2000).collect()
}
