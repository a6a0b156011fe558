//! What a component kind is to the topology: a config type that knows its kind name, the other components
//! it names, how to check itself and how to build itself.
//!
//! A kind lives in one file (or folder) with its config, its build, its runtime, its metrics and its tests,
//! as Vector's `src/transforms/filter.rs` does. It implements [`ComponentKind`]; the catalog
//! (`crate::catalog`) lists it in one line; the topology never names it.

use std::any::Any;
use std::fmt;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;

use super::build::{BuildCx, InputCx};
use super::check::CheckCx;
use crate::kernel::component::RestartPolicy;

/// Which hops a reference implies between the referring component (each of its instances) and the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// A name only; no link.
    None,
    /// The component sends to the target: a link `self->target`.
    To,
    /// The target delivers to the component (a subscription, a fetch, a read): a link `target->self`.
    From,
    /// Both ways (a consumer that also produces).
    Both,
}

/// A field that names another component.
#[derive(Clone, Debug)]
pub struct Reference<'a> {
    /// The field, as written in the flow (`broker`, `output`).
    pub field: &'static str,
    /// The component it names.
    pub target: &'a str,
    /// The kinds the target may have.
    pub kinds: &'static [&'static str],
    /// The hops it implies.
    pub hop: Hop,
}

impl<'a> Reference<'a> {
    /// A reference to a component of one of `kinds`, with the hops `hop`.
    pub fn new(field: &'static str, target: &'a str, kinds: &'static [&'static str], hop: Hop) -> Self {
        Reference { field, target, kinds, hop }
    }
}

/// A component kind: implemented by its config type (`#[serde(deny_unknown_fields)]` is not needed; the
/// flow reports every unknown key itself).
pub trait ComponentKind: DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static {
    /// The kind as written in flow files; the file and the config type carry the same name
    /// (`count-window-average`, `count_window_average.rs`, `CountWindowAverageConfig`).
    const KIND: &'static str;

    /// A source generates work (sensors, load): it starts after every other component and is the first
    /// to stop when a run drains.
    const SOURCE: bool = false;

    /// The namespace its components get when the flow gives none (`iot`, `kafka`, `orders`, `monitoring`),
    /// as pods have one in the reference deployments.
    const NAMESPACE: &'static str = "default";

    /// The restart policy when the flow gives none.
    fn default_restart() -> RestartPolicy {
        RestartPolicy::default()
    }

    /// The supervised components this one becomes (default: one, named like it), in start order.
    fn instances(&self, name: &str) -> Vec<String> {
        vec![name.to_string()]
    }

    /// The other components it names.
    fn references(&self) -> Vec<Reference<'_>> {
        Vec::new()
    }

    /// Lets go of an optional reference to `target` (a component being removed from the flow); false when
    /// it cannot do without it, so it goes too.
    fn forget(&mut self, _target: &str) -> bool {
        false
    }

    /// Checks its settings, recording every problem (the flow's wiring is checked already).
    fn check(&self, _cx: &mut CheckCx<'_>) {}

    /// The hosts outside chaoslab it talks to in its place (an external MQTT broker, a PostgreSQL server,
    /// a Kafka cluster): what Chaos Mesh's `externalTargets` name.
    fn external_hosts(&self) -> Vec<String> {
        Vec::new()
    }

    /// Reads and checks its inputs (datasets, rule files…) before the run writes anything.
    fn check_inputs(&self, _name: &str, _cx: &InputCx<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    /// Registers its instances with the supervisor (nothing starts yet) and provides its handles.
    fn build(&self, name: &str, cx: &mut BuildCx<'_>) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The object-safe face of a [`ComponentKind`], which flows hold.
pub trait DynComponent: Send + Sync + fmt::Debug {
    /// [`ComponentKind::KIND`].
    fn kind(&self) -> &'static str;
    /// [`ComponentKind::SOURCE`].
    fn is_source(&self) -> bool;
    /// [`ComponentKind::NAMESPACE`].
    fn namespace(&self) -> &'static str;
    /// [`ComponentKind::default_restart`].
    fn default_restart(&self) -> RestartPolicy;
    /// [`ComponentKind::instances`].
    fn instances(&self, name: &str) -> Vec<String>;
    /// [`ComponentKind::references`].
    fn references(&self) -> Vec<Reference<'_>>;
    /// [`ComponentKind::forget`].
    fn forget(&mut self, target: &str) -> bool;
    /// [`ComponentKind::check`].
    fn check(&self, cx: &mut CheckCx<'_>);
    /// [`ComponentKind::external_hosts`].
    fn external_hosts(&self) -> Vec<String>;
    /// [`ComponentKind::check_inputs`].
    fn check_inputs(&self, name: &str, cx: &InputCx<'_>) -> anyhow::Result<()>;
    /// [`ComponentKind::build`].
    fn build<'a>(&'a self, name: &'a str, cx: &'a mut BuildCx<'_>) -> BoxFuture<'a, anyhow::Result<()>>;
    /// A boxed copy.
    fn clone_box(&self) -> Box<dyn DynComponent>;
    /// For typed access (`Flow::configure`).
    fn as_any(&self) -> &dyn Any;
    /// For typed edits (`Flow::configure`).
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: ComponentKind> DynComponent for T {
    fn kind(&self) -> &'static str {
        T::KIND
    }
    fn is_source(&self) -> bool {
        T::SOURCE
    }
    fn namespace(&self) -> &'static str {
        T::NAMESPACE
    }
    fn default_restart(&self) -> RestartPolicy {
        T::default_restart()
    }
    fn instances(&self, name: &str) -> Vec<String> {
        ComponentKind::instances(self, name)
    }
    fn references(&self) -> Vec<Reference<'_>> {
        ComponentKind::references(self)
    }
    fn forget(&mut self, target: &str) -> bool {
        ComponentKind::forget(self, target)
    }
    fn check(&self, cx: &mut CheckCx<'_>) {
        ComponentKind::check(self, cx)
    }
    fn external_hosts(&self) -> Vec<String> {
        ComponentKind::external_hosts(self)
    }
    fn check_inputs(&self, name: &str, cx: &InputCx<'_>) -> anyhow::Result<()> {
        ComponentKind::check_inputs(self, name, cx)
    }
    fn build<'a>(&'a self, name: &'a str, cx: &'a mut BuildCx<'_>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(ComponentKind::build(self, name, cx))
    }
    fn clone_box(&self) -> Box<dyn DynComponent> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl Clone for Box<dyn DynComponent> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// What reading a component table gives: the config, or the key path and message of the first error;
/// either way every key it did not know.
pub type Parsed = (Result<Box<dyn DynComponent>, (String, String)>, Vec<String>);

/// How a catalog entry reads a component table (without `kind` and the common keys).
pub type ParseFn = fn(toml::Value) -> Parsed;

/// One kind the flow parser knows.
#[derive(Clone, Copy)]
pub struct KindEntry {
    /// The kind name.
    pub kind: &'static str,
    /// Reads its table.
    pub parse: ParseFn,
}

impl KindEntry {
    /// The entry of `T`.
    pub const fn of<T: ComponentKind>() -> KindEntry {
        KindEntry { kind: T::KIND, parse: parse_kind::<T> }
    }
}

fn parse_kind<T: ComponentKind>(value: toml::Value) -> Parsed {
    let mut unknown = Vec::new();
    let mut note = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let de = serde_ignored::Deserializer::new(value, &mut note);
    let result = match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(config) => Ok(Box::new(config) as Box<dyn DynComponent>),
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            Err((path, e.into_inner().message().trim().to_string()))
        }
    };
    (result, unknown)
}

/// The kinds a flow may use.
pub trait Catalog: Sync {
    /// Every kind, in the order `chaoslab flow kinds` lists them.
    fn kinds(&self) -> &[KindEntry];

    /// The entry for `kind`.
    fn find(&self, kind: &str) -> Option<&KindEntry> {
        self.kinds().iter().find(|k| k.kind == kind)
    }

    /// The kind names, comma-separated (for messages).
    fn names(&self) -> String {
        self.kinds().iter().map(|k| k.kind).collect::<Vec<_>>().join(", ")
    }
}

impl Catalog for &[KindEntry] {
    fn kinds(&self) -> &[KindEntry] {
        self
    }
}

/// The host of a URL (`postgres://user@db.example:5432/orders` → `db.example`), for
/// [`ComponentKind::external_hosts`]; none for file URLs and what does not parse.
pub fn url_host(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}
