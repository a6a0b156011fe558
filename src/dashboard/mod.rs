//! The lab's dashboard: one web page to watch, break and replay the pipeline.
//!
//! The page (`assets/`: one HTML file, one stylesheet, one script of our own, compiled into the binary) has
//! seven tabs — Pipeline, Faults, Experiments, Timeline, Incidents, Data, Runs — over two kinds of
//! [`view::Source`]: a running pipeline ([`live::Live`]) and a finished sim run read from its output
//! directory ([`replay::Replay`], `chaoslab serve --out DIR`), where every read takes an instant `?at=` and
//! a slider scrubs through the run. The diagram ([`diagram`]) and the charts ([`timeline`]) are SVG drawn
//! here; metric history comes from the [`history::History`] every run records.
//!
//! Routes (reads, `GET`): `/`, `/ui/app.js`, `/ui/app.css`, `/ui/pipeline.svg`, `/ui/api/session`,
//! `/ui/api/state`, `/ui/api/component/{name}`, `/ui/api/presets`, `/ui/api/timeline`, `/ui/api/targets`,
//! `/ui/api/indices`, `/ui/api/search`, `/ui/api/incidents`, `/ui/api/graph`, `/ui/graph.svg` ([`graph`]: the
//! knowledge graph), `/ui/api/orders`, `/ui/api/model` ([`model`]: the mined process model), `/ui/api/workflows`
//! ([`workflow`]: Chaos Mesh Workflows with their nodes' states), `/ui/api/runs`, `/ui/api/runs/{id}`, `/ui/api/stream` (Server-Sent
//! Events, live only) and `POST /ui/api/validate` (changes nothing). Actions go to the control plane
//! ([`crate::api::control`]) with the token, which `/?token=…` puts into a `SameSite=Strict` cookie
//! ([`crate::api::session`]).
//!
//! Reading needs no token from loopback (the page is for the person at the machine, as Jupyter's is);
//! from anywhere else it needs the token too. The default listen address is loopback.

pub mod diagram;
pub mod graph;
pub mod history;
pub mod live;
pub mod model;
pub mod replay;
pub mod timeline;
pub mod view;
pub mod workflow;

mod browse;
mod routes;

pub use routes::{Options, router};

/// The page.
const INDEX_HTML: &str = include_str!("assets/index.html");
/// The script.
const APP_JS: &str = include_str!("assets/app.js");
/// The stylesheet.
const APP_CSS: &str = include_str!("assets/app.css");
