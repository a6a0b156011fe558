//! Reading Chaos Mesh files: YAML (one or more documents, `---` between them), JSON, or Jsonnet (rendered
//! first, see [`super::jsonnet`]), every object checked
//! against its kind's schema and compiled into a [`Plan`], with every problem of every file collected and
//! reported with its file, line and key — nothing starts while one error remains.

use std::collections::BTreeMap;
use std::path::Path;

use marked_yaml::Node;

use super::plan::{self, Plan};
use super::schema::{
    API_VERSION, ChaosSpec, Metadata, Object, Origin, SUPPORTED_KINDS, ScheduleSpec, Spec, StatusCheckSpec,
    UNSUPPORTED_KINDS, WorkflowSpec,
};
use super::select::Pod;
use crate::config::locate::YamlLines;
use crate::config::problems::FileProblems;
use crate::config::yaml::{check_keys, from_node};
use crate::config::{KeyPath, Problems};

/// An object read and compiled.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The object as written.
    pub object: Object,
    /// What it does.
    pub plan: Plan,
}

/// Reads every file; problems (errors and warnings) go to `problems`. With `pods`, each selector is also
/// resolved against them and a selector matching none is a warning.
pub fn load_files(paths: &[impl AsRef<Path>], pods: Option<&[Pod]>, problems: &mut Problems) -> Vec<Loaded> {
    let mut out = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let file = path.display().to_string();
        if path.extension().is_some_and(|e| e == "jsonnet") {
            match super::jsonnet::render(path) {
                Ok(documents) => {
                    for (label, json) in documents {
                        out.extend(load_text(&format!("{file} ({label})"), &json, pods, problems));
                    }
                }
                Err(e) => problems.error(&file, None, KeyPath::root(), e),
            }
            continue;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => out.extend(load_text(&file, &text, pods, problems)),
            Err(e) => problems.error(&file, None, KeyPath::root(), format!("cannot read: {e}")),
        }
    }
    check_unique(&out, problems);
    out
}

/// Reads the objects of one file's text.
pub fn load_text(file: &str, text: &str, pods: Option<&[Pod]>, problems: &mut Problems) -> Vec<Loaded> {
    let mut out = Vec::new();
    for (first_line, doc) in documents(text) {
        // Leading newlines keep the lines of a later document equal to the file's.
        let padded = format!("{}{doc}", "\n".repeat(first_line - 1));
        let Some(lines) = YamlLines::load(file, &padded, problems) else { continue };
        let Some(root) = lines.root() else { continue };
        let mut p = problems.in_file(file, &lines);
        if let Some(loaded) = read_object(file, first_line, root, pods, &mut p) {
            out.push(loaded);
        }
    }
    out
}

/// The documents of a YAML stream with the line each starts on; documents holding only comments and
/// blank lines are left out.
fn documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut start = 1;
    let mut current = String::new();
    let flush = |docs: &mut Vec<(usize, String)>, start: usize, current: &mut String| {
        let meaningful = current.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        });
        if meaningful {
            docs.push((start, std::mem::take(current)));
        }
        current.clear();
    };
    for (i, line) in text.lines().enumerate() {
        let marker = line == "---" || line.starts_with("--- ") || line == "..." || line.starts_with("---\t");
        if marker {
            flush(&mut docs, start, &mut current);
            start = i + 2;
            // Content after `--- ` on the marker line is part of the next document.
            if let Some(rest) = line.strip_prefix("--- ").filter(|r| !r.trim().is_empty()) {
                start = i + 1;
                current.push_str(rest);
                current.push('\n');
            }
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(&mut docs, start, &mut current);
    docs
}

const TOP_KEYS: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

fn read_object(
    file: &str,
    first_line: usize,
    root: &Node,
    pods: Option<&[Pod]>,
    p: &mut FileProblems<'_>,
) -> Option<Loaded> {
    let top = KeyPath::root();
    check_keys(root, &top, &TOP_KEYS, p);
    let map = root.as_mapping()?;
    let text = |key: &str| map.get_node(key).and_then(Node::as_scalar).map(|s| s.as_str().to_string());
    match text("apiVersion") {
        Some(v) if v == API_VERSION => {}
        Some(v) => {
            p.error(top.key("apiVersion"), format!("{v:?} is not Chaos Mesh's API version ({API_VERSION})"))
        }
        None => p.error(top.key("apiVersion"), format!("required ({API_VERSION})")),
    }
    let kind = match text("kind") {
        Some(kind) if SUPPORTED_KINDS.contains(&kind.as_str()) => kind,
        Some(kind) if UNSUPPORTED_KINDS.contains(&kind.as_str()) => {
            p.error(
                top.key("kind"),
                format!(
                    "{kind} acts on what one process does not have (a JVM, DNS, a kernel, devices, clouds or \
                     machines) and is not supported; chaoslab runs {}",
                    SUPPORTED_KINDS.join(", ")
                ),
            );
            return None;
        }
        Some(kind) => {
            p.error(
                top.key("kind"),
                format!("unknown kind {kind:?}; chaoslab runs {}", SUPPORTED_KINDS.join(", ")),
            );
            return None;
        }
        None => {
            p.error(top.key("kind"), format!("required (one of {})", SUPPORTED_KINDS.join(", ")));
            return None;
        }
    };
    let metadata: Metadata = match map.get_node("metadata") {
        Some(node) => from_node(node, &top.key("metadata"), p)?,
        None => {
            p.error(top.key("metadata"), "required (with a `name`)");
            return None;
        }
    };
    check_metadata(&metadata, p);
    let spec_at = top.key("spec");
    let Some(spec_node) = map.get_node("spec") else {
        p.error(spec_at, "required");
        return None;
    };
    let spec = match kind.as_str() {
        "Schedule" => Spec::Schedule(Box::new(from_node::<ScheduleSpec>(spec_node, &spec_at, p)?)),
        "Workflow" => {
            let templates =
                spec_node.as_mapping().and_then(|m| m.get_node("templates")).and_then(Node::as_mapping);
            if templates
                .is_some_and(|t| t.get_node("parent").is_some() && t.get_node("childConfigs").is_some())
            {
                p.error(
                    spec_at.key("templates"),
                    "a mapping of `parent` and `childConfigs` (what ChaosMeshWizard's workflow.jsonnet helper renders, \
                     \"semi-valid\" in its own words) where Chaos Mesh takes a list of templates: write \
                     `[parent] + [c.config for c in childConfigs]`",
                );
                return None;
            }
            Spec::Workflow(from_node::<WorkflowSpec>(spec_node, &spec_at, p)?)
        }
        "StatusCheck" => Spec::StatusCheck(from_node::<StatusCheckSpec>(spec_node, &spec_at, p)?),
        _ => Spec::Chaos(chaos_spec(&kind, spec_node, &spec_at, p)?),
    };
    let line = map.get_node("kind").and_then(|n| n.span().start()).map_or(first_line, |m| m.line());
    let object = Object { kind, metadata, spec, origin: Origin { file: file.to_string(), line } };
    let plan = plan::compile(&object, pods, p)?;
    Some(Loaded { object, plan })
}

/// A chaos kind's spec read from `node`.
pub(super) fn chaos_spec(
    kind: &str,
    node: &Node,
    at: &KeyPath,
    p: &mut FileProblems<'_>,
) -> Option<ChaosSpec> {
    Some(match kind {
        "NetworkChaos" => ChaosSpec::Network(from_node(node, at, p)?),
        "PodChaos" => ChaosSpec::Pod(from_node(node, at, p)?),
        "TimeChaos" => ChaosSpec::Time(from_node(node, at, p)?),
        "StressChaos" => ChaosSpec::Stress(from_node(node, at, p)?),
        "IOChaos" => ChaosSpec::Io(from_node(node, at, p)?),
        "HTTPChaos" => ChaosSpec::Http(from_node(node, at, p)?),
        _ => return None,
    })
}

/// Names as Kubernetes takes them: the name a DNS subdomain, the namespace a DNS label.
fn check_metadata(m: &Metadata, p: &mut FileProblems<'_>) {
    let at = KeyPath::root().key("metadata");
    match (&m.name, &m.generate_name) {
        (Some(name), _) => {
            if let Err(e) = dns_subdomain(name) {
                p.error(at.key("name"), e);
            }
        }
        (None, Some(_)) => p.error(
            at.key("generateName"),
            "a generated name changes on every run; give a `name` so that events and ground truth can be compared",
        ),
        (None, None) => p.error(at.key("name"), "required"),
    }
    if let Some(ns) = &m.namespace
        && let Err(e) = crate::topology::flow::check_dns_label(ns)
    {
        p.error(at.key("namespace"), e);
    }
    if let Some(v) = m.annotations.get(super::schema::PAUSE_ANNOTATION)
        && v != "true"
        && v != "false"
    {
        p.error(
            at.key("annotations").key(super::schema::PAUSE_ANNOTATION),
            format!("{v:?}: the pause annotation is \"true\" or \"false\""),
        );
    }
}

/// A DNS subdomain: lower-case letters, digits, `-` and `.`, at most 253, starting and ending alphanumeric.
pub fn dns_subdomain(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an object name (lower-case letters, digits, '-' and '.', at most 253, starting and \
             ending with a letter or digit)"
        ))
    }
}

/// Two objects of one kind with one `namespace/name`: the second would replace the first.
fn check_unique(loaded: &[Loaded], problems: &mut Problems) {
    let mut seen: BTreeMap<(String, String), &Origin> = BTreeMap::new();
    for l in loaded {
        let key = (l.object.kind.clone(), l.object.key());
        match seen.get(&key) {
            Some(first) => problems.error(
                &l.object.origin.file,
                Some(l.object.origin.line),
                KeyPath::root().key("metadata").key("name"),
                format!("{} {} is defined twice (first at {first})", key.0, key.1),
            ),
            None => {
                seen.insert(key, &l.object.origin);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(text: &str) -> (Vec<Loaded>, Vec<String>) {
        let mut problems = Problems::new();
        let loaded = load_text("f.yaml", text, None, &mut problems);
        (loaded, problems.all().iter().map(ToString::to_string).collect())
    }

    const POD_KILL: &str = "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata:\n  name: kill\n  \
                            namespace: kafka\nspec:\n  action: pod-kill\n  mode: one\n  selector:\n    \
                            labelSelectors:\n      app: heuristics-miner-flink\n";

    #[test]
    fn documents_keep_their_lines() {
        let docs = documents("# head\n---\na: 1\n---\n# only a comment\n---\nb: 2\n...\n");
        assert_eq!(docs, vec![(3, "a: 1\n".to_string()), (7, "b: 2\n".to_string())]);
        let (loaded, problems) =
            problems_of(&format!("{POD_KILL}---\n{}", POD_KILL.replace("name: kill\n", "name: kill2\n")));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].object.origin.line, 2);
        assert_eq!(loaded[1].object.origin.line, 14);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "apiVersion: chaos-mesh.org/v1\nkind: PodChaos\nmetadata:\n  name: Bad_Name\nspec:\n  \
                    action: pod-kill\n  mode: sometimes\n  selector: {}\n---\nkind: JVMChaos\n---\n\
                    apiVersion: chaos-mesh.org/v1alpha1\nkind: Wat\n";
        let (loaded, problems) = problems_of(text);
        assert!(loaded.is_empty());
        let joined = problems.join("\n");
        assert!(joined.contains("f.yaml:1:apiVersion: \"chaos-mesh.org/v1\" is not"), "{joined}");
        assert!(joined.contains("f.yaml:4:metadata.name: \"Bad_Name\" is not an object name"), "{joined}");
        assert!(joined.contains("f.yaml:7:spec.mode: unknown variant `sometimes`"), "{joined}");
        assert!(joined.contains("f.yaml:10:kind: JVMChaos acts on"), "{joined}");
        assert!(
            joined.contains("f.yaml:13:kind: unknown kind \"Wat\"; chaoslab runs NetworkChaos"),
            "{joined}"
        );
    }

    #[test]
    fn the_same_object_twice_is_an_error() {
        let mut problems = Problems::new();
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.yaml");
        std::fs::write(&a, POD_KILL).unwrap();
        let loaded = load_files(&[&a, &a], None, &mut problems);
        assert_eq!(loaded.len(), 2);
        let messages: Vec<String> = problems.errors().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("PodChaos kafka/kill is defined twice (first at"), "{messages:?}");
    }
}
