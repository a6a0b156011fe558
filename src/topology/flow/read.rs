//! Reading a flow file: the layers an `extends` chain gives, every section and component table read with
//! every unknown key and type error collected, then the wiring, each component's own settings, the links
//! and the schedule checked — every problem with its file, line and key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::{ComponentEntry, FORMER_SECTIONS, Flow, HttpSection, MAX_RUN_TIME, MeshFile, PipelineSection};
use crate::config::locate::TomlLines;
use crate::config::{KeyPath, Problems, ProblemsError};
use crate::kernel::component::RestartPolicy;
use crate::topology::check::{self, CheckCx};
use crate::topology::component::{Catalog, Hop};
use crate::topology::schedule::{Action, ScheduledAction};
use crate::transport::link::LinkFaults;

/// The texts a flow was read from (the file, then what it `extends`), to find the line of a key.
struct Sources {
    name: String,
    files: Vec<(String, TomlLines)>,
}

impl Sources {
    /// The file and line where `key` is written (the deepest match; the extending file wins ties).
    fn locate(&self, key: &KeyPath) -> (String, Option<usize>) {
        let mut best: Option<(&str, usize, usize)> = None;
        for (name, lines) in &self.files {
            if let Some((line, depth)) = lines.find(key)
                && best.is_none_or(|(_, _, d)| depth > d)
            {
                best = Some((name, line, depth));
            }
        }
        match best {
            Some((name, line, _)) => (name.to_string(), Some(line)),
            None => (self.name.clone(), None),
        }
    }
}

/// Collects problems with their places.
struct Collector<'a> {
    sources: &'a Sources,
    problems: Problems,
}

impl Collector<'_> {
    fn error(&mut self, key: impl Into<KeyPath>, message: impl Into<String>) {
        let key = key.into();
        let (file, line) = self.sources.locate(&key);
        self.problems.error(&file, line, key, message);
    }

    fn warning(&mut self, key: impl Into<KeyPath>, message: impl Into<String>) {
        let key = key.into();
        let (file, line) = self.sources.locate(&key);
        self.problems.warning(&file, line, key, message);
    }

    /// Reads `value` as `T`, reporting a type error and every unknown key under `at`.
    fn read<T: DeserializeOwned>(&mut self, at: &KeyPath, value: toml::Value) -> Option<T> {
        let mut unknown = Vec::new();
        let mut note = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let de = serde_ignored::Deserializer::new(value, &mut note);
        let result = serde_path_to_error::deserialize::<_, T>(de);
        for key in unknown {
            self.error(join(at, &key), "unknown key");
        }
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                let path = e.path().to_string();
                self.error(join(at, &path), e.into_inner().message().trim().to_string());
                None
            }
        }
    }
}

/// `at` followed by a serde path (`.` for none).
fn join(at: &KeyPath, path: &str) -> KeyPath {
    if path.is_empty() || path == "." {
        return at.clone();
    }
    let mut key = at.clone();
    for segment in KeyPath::parse(path).segments() {
        key = match segment {
            crate::config::problems::Segment::Key(k) => key.key(k.clone()),
            crate::config::problems::Segment::Index(i) => key.index(*i),
        };
    }
    key
}

/// Merges `over` into `base`: tables key by key, anything else replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// toml's syntax error as a problem with its line.
fn syntax_problem(name: &str, text: &str, e: &toml::de::Error) -> ProblemsError {
    let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let mut p = Problems::new();
    p.error(name, line, "", e.message().trim().to_string());
    ProblemsError(p.all().to_vec())
}

/// A flow file's text; bytes that are not UTF-8 are named by their line and column.
fn read_flow_text(path: &Path) -> Result<String, ProblemsError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| ProblemsError::one(&name, "", format!("cannot read the flow: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let line_start = bytes[..at].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        let column = String::from_utf8_lossy(&bytes[line_start..at]).chars().count() + 1;
        let mut p = Problems::new();
        p.error(
            &name,
            Some(line),
            "",
            format!("column {column}: byte 0x{:02x} is not UTF-8 (a flow is UTF-8 text)", bytes[at]),
        );
        ProblemsError(p.all().to_vec())
    })
}

/// Reads a file's text and the tables it `extends` (at most 8 deep), the base first.
fn read_layers(
    text: &str,
    name: &str,
    base_dir: Option<&Path>,
    builtin: &[(&str, &str)],
    depth: u8,
    layers: &mut Vec<(String, String, toml::Table)>,
) -> Result<(), ProblemsError> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| syntax_problem(name, text, &e))?;
    if let Some(parent) = table.remove("extends") {
        let fail = |m: String| ProblemsError::one(name, "extends", m);
        let parent = parent.as_str().map(str::to_string).ok_or_else(|| fail("must be a file name".into()))?;
        if depth >= 8 {
            return Err(fail(format!("{parent:?} nests too deep (a cycle?)")));
        }
        match base_dir.map(|d| d.join(&parent)).filter(|p| p.is_file()) {
            // Only TOML files: a flow never reads (nor echoes) whatever other file a path names.
            Some(p) if p.extension().is_none_or(|e| e != "toml") => {
                return Err(fail(format!(
                    "{parent:?} is not a flow file (flows are TOML files named *.toml)"
                )));
            }
            Some(p) => {
                let t = read_flow_text(&p)?;
                read_layers(&t, &p.display().to_string(), p.parent(), builtin, depth + 1, layers)?;
            }
            None => match builtin.iter().find(|(n, _)| *n == parent) {
                Some((n, t)) => {
                    read_layers(t, &format!("flows/{n} (built in)"), None, builtin, depth + 1, layers)?
                }
                None => return Err(fail(format!("cannot find {parent:?}"))),
            },
        }
    }
    layers.push((name.to_string(), text.to_string(), table));
    Ok(())
}

impl Flow {
    /// Reads and checks a flow file; relative paths in it resolve against its directory. `builtin` are
    /// files an `extends` may name without a path (`reference.toml`).
    pub fn load(path: &Path, catalog: &dyn Catalog, builtin: &[(&str, &str)]) -> Result<Flow, ProblemsError> {
        let text = read_flow_text(path)?;
        Flow::parse(
            &text,
            &path.display().to_string(),
            path.parent().map(Path::to_path_buf),
            catalog,
            builtin,
        )
    }

    /// Parses and checks flow text, collecting every problem.
    pub fn parse(
        text: &str,
        source: &str,
        base_dir: Option<PathBuf>,
        catalog: &dyn Catalog,
        builtin: &[(&str, &str)],
    ) -> Result<Flow, ProblemsError> {
        let mut layers = Vec::new();
        read_layers(text, source, base_dir.as_deref(), builtin, 0, &mut layers)?;
        let mut table = toml::Table::new();
        let mut files = Vec::new();
        for (name, text, layer) in layers {
            merge(&mut table, layer);
            files.push((name, TomlLines::new(&text)));
        }
        files.reverse();
        let sources = Sources { name: source.to_string(), files };
        let mut c = Collector { sources: &sources, problems: Problems::new() };
        let flow = Flow::read(table, source, base_dir, catalog, &mut c);
        if let Some(flow) = &flow {
            flow.check(&mut c);
        }
        let problems = c.problems;
        match flow {
            Some(mut flow) if !problems.has_errors() => {
                flow.warnings = problems.all().to_vec();
                Ok(flow)
            }
            _ => Err(ProblemsError(problems.all().to_vec())),
        }
    }

    /// Reads the merged table into a flow; `None` when a section could not be read at all.
    fn read(
        mut table: toml::Table,
        source: &str,
        base_dir: Option<PathBuf>,
        catalog: &dyn Catalog,
        c: &mut Collector<'_>,
    ) -> Option<Flow> {
        let root = KeyPath::root();
        let pipeline = match table.remove("pipeline") {
            Some(v) => c.read::<PipelineSection>(&root.key("pipeline"), v),
            None => {
                c.error("pipeline", "missing: a [pipeline] table with at least `name`");
                None
            }
        };
        let http = match table.remove("http") {
            Some(v) => c.read::<HttpSection>(&root.key("http"), v),
            None => Some(HttpSection::default()),
        };
        let mut components = BTreeMap::new();
        match table.remove("components") {
            Some(toml::Value::Table(t)) => {
                for (name, value) in t {
                    if let Some(entry) = read_component(&name, value, catalog, c) {
                        components.insert(name, entry);
                    }
                }
            }
            Some(_) => c.error("components", "must be a table of components"),
            None => c.error("components", "missing: at least one [components.NAME] table"),
        }
        let mut links = BTreeMap::new();
        if let Some(v) = table.remove("links") {
            match v {
                toml::Value::Table(t) => {
                    for (name, v) in t {
                        let at = root.key("links").key(name.clone());
                        if let Some(f) = c.read::<LinkFaults>(&at, v) {
                            match f.validate() {
                                Ok(()) => {
                                    links.insert(name, f);
                                }
                                Err(e) => c.error(at, e),
                            }
                        }
                    }
                }
                _ => c.error("links", "must be a table of link names"),
            }
        }
        let mut schedule = Vec::new();
        if let Some(v) = table.remove("schedule") {
            match v {
                toml::Value::Array(items) => {
                    for (i, v) in items.into_iter().enumerate() {
                        if let Some(s) = c.read::<ScheduledAction>(&root.key("schedule").index(i), v) {
                            schedule.push(s);
                        }
                    }
                }
                _ => c.error("schedule", "must be an array of tables ([[schedule]])"),
            }
        }
        let mut mesh = Vec::new();
        if let Some(v) = table.remove("mesh") {
            match v {
                toml::Value::Array(items) => {
                    for (i, v) in items.into_iter().enumerate() {
                        if let Some(m) = c.read::<MeshFile>(&root.key("mesh").index(i), v) {
                            mesh.push(m);
                        }
                    }
                }
                _ => c.error("mesh", "must be an array of tables ([[mesh]] file = \"…\")"),
            }
        }
        for key in table.keys() {
            match FORMER_SECTIONS.iter().find(|(k, _)| k == key) {
                Some((_, now)) => {
                    c.error(key.as_str(), format!("this section is now {now}; see flows/reference.toml"))
                }
                None => c.error(key.as_str(), "unknown key"),
            }
        }
        Some(Flow {
            pipeline: pipeline?,
            http: http?,
            components,
            links,
            schedule,
            mesh,
            base_dir,
            source: source.to_string(),
            warnings: Vec::new(),
        })
    }

    /// Checks the flow again, after edits made by code (command-line options); problems carry no lines.
    pub fn validate(&self) -> Result<(), ProblemsError> {
        let sources = Sources { name: self.source.clone(), files: Vec::new() };
        let mut c = Collector { sources: &sources, problems: Problems::new() };
        self.check(&mut c);
        c.problems.check().map(|_| ())
    }

    /// Checks the wiring, each component's settings, the links and the schedule.
    fn check(&self, c: &mut Collector<'_>) {
        let instances = self.instances();
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for (i, comp) in &instances {
            if let Some(first) = owner.insert(i.as_str(), comp) {
                c.error(
                    format!("components.{comp}"),
                    format!("its component {i:?} is also one of {first}'s; rename one of them"),
                );
            }
        }
        for (name, entry) in &self.components {
            let at = KeyPath::root().key("components").key(name.clone());
            if name.is_empty() || name.contains("->") || name.chars().any(char::is_whitespace) {
                c.error(at.clone(), "names may not be empty or contain '->' or spaces");
            }
            for r in entry.config.references() {
                match self.kind_of(r.target) {
                    Some(k) if r.kinds.contains(&k) => {
                        if r.hop != Hop::None && !owner.contains_key(r.target) {
                            c.error(
                                at.key(r.field),
                                format!("{:?} is not a component that takes connections", r.target),
                            );
                        }
                    }
                    Some(k) => c.error(
                        at.key(r.field),
                        format!("{:?} is a {k}, expected a {}", r.target, r.kinds.join(" or ")),
                    ),
                    None => c.error(at.key(r.field), format!("no component named {:?}", r.target)),
                }
            }
            let mut found = Vec::new();
            entry.config.check(&mut CheckCx::new(name, self, &mut found));
            for (key, severity, message) in found {
                match severity {
                    check::Level::Error => c.error(key, message),
                    check::Level::Warning => c.warning(key, message),
                }
            }
        }
        if let Some(cycle) = self.reference_cycle() {
            c.error("components", format!("components name each other in a cycle: {}", cycle.join(" -> ")));
        }
        let edges: BTreeSet<String> = self.edges().into_iter().map(|(f, t)| format!("{f}->{t}")).collect();
        for name in self.links.keys() {
            if !edges.contains(name) {
                c.error(KeyPath::root().key("links").key(name.clone()), "no such link in this flow");
            }
        }
        for (i, m) in self.mesh.iter().enumerate() {
            let path = self.resolve(&m.file);
            if !path.is_file() {
                c.error(
                    KeyPath::root().key("mesh").index(i).key("file"),
                    format!("{} not found", path.display()),
                );
            }
        }
        for (i, s) in self.schedule.iter().enumerate() {
            let at = KeyPath::root().key("schedule").index(i);
            if s.at > MAX_RUN_TIME || s.duration.is_some_and(|d| d > MAX_RUN_TIME) {
                c.error(
                    at.clone(),
                    format!("times must be at most {}", humantime::format_duration(MAX_RUN_TIME)),
                );
            }
            if s.duration.is_some() && !matches!(s.action, Action::Stop | Action::LinkFaults) {
                c.error(at.key("for"), "only stop and link-faults can be undone after a while");
            }
            match s.action {
                Action::LinkFaults => {
                    if !edges.contains(&s.target) {
                        c.error(at.key("target"), format!("no link named {:?}", s.target));
                    }
                    match &s.faults {
                        Some(f) => {
                            if let Err(e) = f.validate() {
                                c.error(at.key("faults"), e);
                            }
                        }
                        None => c.error(at.key("faults"), "required for link-faults"),
                    }
                }
                _ => {
                    if !owner.contains_key(s.target.as_str()) {
                        c.error(at.key("target"), format!("no component named {:?}", s.target));
                    }
                    if s.faults.is_some() {
                        c.error(at.key("faults"), "only for link-faults");
                    }
                }
            }
        }
    }

    /// A cycle of references between components, if any (the start order needs none).
    fn reference_cycle(&self) -> Option<Vec<String>> {
        fn visit<'a>(
            flow: &'a Flow,
            name: &'a str,
            path: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) -> Option<Vec<String>> {
            if let Some(pos) = path.iter().position(|n| *n == name) {
                let mut cycle: Vec<String> = path[pos..].iter().map(|s| s.to_string()).collect();
                cycle.push(name.to_string());
                return Some(cycle);
            }
            if done.contains(name) {
                return None;
            }
            path.push(name);
            if let Some(e) = flow.components.get(name) {
                for r in e.config.references() {
                    if let Some(target) = flow.owner_of(r.target)
                        && target != name
                        && let Some(c) = visit(flow, target, path, done)
                    {
                        return Some(c);
                    }
                }
            }
            path.pop();
            done.insert(name);
            None
        }
        let mut done = BTreeSet::new();
        for name in self.components.keys() {
            if let Some(c) = visit(self, name, &mut Vec::new(), &mut done) {
                return Some(c);
            }
        }
        None
    }
}

/// Reads one `[components.NAME]` table: `kind`, the common keys, then the kind's own settings.
fn read_component(
    name: &str,
    value: toml::Value,
    catalog: &dyn Catalog,
    c: &mut Collector<'_>,
) -> Option<ComponentEntry> {
    let at = KeyPath::root().key("components").key(name);
    let toml::Value::Table(mut table) = value else {
        c.error(at, "must be a table");
        return None;
    };
    let kind = match table.remove("kind") {
        Some(toml::Value::String(k)) => k,
        Some(_) => {
            c.error(at.key("kind"), "must be a string");
            return None;
        }
        None => {
            c.error(at.key("kind"), format!("missing; one of {}", catalog.names()));
            return None;
        }
    };
    let Some(entry) = catalog.find(&kind) else {
        c.error(at.key("kind"), format!("unknown kind {kind:?}; one of {}", catalog.names()));
        return None;
    };
    let restart = match table.remove("restart") {
        Some(v) => c.read::<RestartPolicy>(&at.key("restart"), v),
        None => None,
    };
    let namespace = match table.remove("namespace") {
        Some(v) => c.read::<String>(&at.key("namespace"), v),
        None => None,
    };
    if let Some(ns) = &namespace
        && let Err(e) = check_dns_label(ns)
    {
        c.error(at.key("namespace"), e);
    }
    let labels = match table.remove("labels") {
        Some(v) => c.read::<BTreeMap<String, String>>(&at.key("labels"), v),
        None => None,
    };
    for (k, v) in labels.iter().flatten() {
        if let Err(e) = check_label(k, v) {
            c.error(at.key("labels").key(k.clone()), e);
        }
    }
    let (parsed, unknown) = (entry.parse)(toml::Value::Table(table));
    for key in unknown {
        c.error(join(&at, &key), format!("unknown key for a {kind}"));
    }
    match parsed {
        Ok(config) => {
            let mut entry = ComponentEntry::new(name, config);
            if let Some(r) = restart {
                entry.restart = r;
            }
            if let Some(ns) = namespace {
                entry.namespace = ns;
            }
            entry.labels.extend(labels.unwrap_or_default());
            Some(entry)
        }
        Err((path, message)) => {
            c.error(join(&at, &path), message);
            None
        }
    }
}

/// A namespace: a DNS label (lower-case letters, digits, `-`; at most 63; starting and ending alphanumeric).
pub(crate) fn check_dns_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("{s:?} is not a namespace name (lower-case letters, digits and '-', at most 63)"))
    }
}

/// A label as Kubernetes takes one: an optional `prefix/` and a name of letters, digits, `-_.` (at most 63),
/// and a value of the same (possibly empty).
fn check_label(key: &str, value: &str) -> Result<(), String> {
    let word = |w: &str, empty_ok: bool| {
        (empty_ok || !w.is_empty())
            && w.len() <= 63
            && w.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && w.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
            && w.chars().last().is_none_or(|c| c.is_ascii_alphanumeric())
    };
    let name = key.rsplit('/').next().unwrap_or(key);
    let prefix_ok = key.split_once('/').is_none_or(|(p, _)| !p.is_empty() && p.len() <= 253);
    if !prefix_ok || !word(name, false) {
        return Err(format!(
            "{key:?} is not a label key ([prefix/]name: letters, digits, '-', '_', '.'; at most 63)"
        ));
    }
    if !word(value, true) {
        return Err(format!("{value:?} is not a label value (letters, digits, '-', '_', '.'; at most 63)"));
    }
    Ok(())
}
