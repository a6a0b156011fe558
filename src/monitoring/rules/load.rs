//! Loading rule files: `marked-yaml` parses each file with positions, typed `serde` structs read the
//! values, and the checks below run over them, recording every problem of every file in one
//! [`Problems`] (`file:line:key: message`).
//!
//! Refused, as Prometheus would: unknown or repeated keys, wrong types, bad durations, invalid names,
//! alert names repeated within a group, group names repeated within a file, `for` /
//! `keep_firing_for` / `annotations` on a recording rule. Refused because our evaluator cannot run it:
//! the group fields `limit` and `query_offset`, expressions using unsupported PromQL, and templates
//! beyond [`Template`]'s subset.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use marked_yaml::Node;
use serde::Deserialize;

use super::template::Template;
use super::{AlertingRule, Group, RecordingRule, Rule, RuleSet, RulesError, parse_duration};
use crate::config::Problems;
use crate::config::locate::YamlLines;
use crate::config::problems::{FileProblems, KeyPath};
use crate::config::yaml::{from_node, is_null, unknown_key_message};
use crate::monitoring::promql::{self, Expr, PromqlError};
use crate::monitoring::tsdb::{METRIC_NAME, is_valid_label_name, is_valid_metric_name};

/// Keys of the file.
const FILE_KEYS: &[&str] = &["groups"];
/// Keys of a group.
const GROUP_KEYS: &[&str] = &["name", "interval", "rules"];
/// Prometheus group keys this engine does not implement: refused by name.
const GROUP_UNSUPPORTED: &[&str] = &["limit", "query_offset"];
/// Keys of a rule.
const RULE_KEYS: &[&str] = &["alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"];

/// A group's own values (its rules are read one by one).
#[derive(Default, Deserialize)]
struct GroupFields {
    name: Option<String>,
    interval: Option<String>,
}

/// A rule as written.
#[derive(Deserialize)]
struct RuleFields {
    alert: Option<String>,
    record: Option<String>,
    expr: Option<String>,
    #[serde(rename = "for")]
    for_: Option<String>,
    keep_firing_for: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

impl RuleSet {
    /// Parses one rule file's text; `path` only names the file in problems.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<RuleSet, RulesError> {
        let mut problems = Problems::new();
        let groups = parse_file(text, path.as_ref(), &mut problems);
        problems.sort_by_line();
        problems.check().map_err(RulesError::Invalid)?;
        Ok(RuleSet::from_groups(groups))
    }

    /// Loads one rule file.
    pub fn load_file(path: impl AsRef<Path>) -> Result<RuleSet, RulesError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| RulesError::Io { path: path.to_path_buf(), source })?;
        RuleSet::parse(&text, path)
    }

    /// Loads every `*.yml` / `*.yaml` file of a directory, in file-name order, reporting the problems of
    /// all files together.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<RuleSet, RulesError> {
        let dir = dir.as_ref();
        let io = |source| RulesError::Io { path: dir.to_path_buf(), source };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.is_file() && path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                files.push(path);
            }
        }
        files.sort();
        let mut groups = Vec::new();
        let mut problems = Problems::new();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(|source| RulesError::Io { path: file.clone(), source })?;
            groups.extend(parse_file(&text, &file, &mut problems));
        }
        problems.sort_by_line();
        problems.check().map_err(RulesError::Invalid)?;
        Ok(RuleSet::from_groups(groups))
    }
}

/// Reads one file's groups, recording its problems; the groups are only usable when none was recorded.
fn parse_file(text: &str, path: &Path, problems: &mut Problems) -> Vec<Group> {
    let name = path.display().to_string();
    let Some(doc) = YamlLines::load(&name, text, problems) else { return Vec::new() };
    let Some(root) = doc.root() else { return Vec::new() };
    let mut reader = Reader { problems: problems.in_file(&name, &doc), file: path.to_path_buf() };
    reader.file(root)
}

/// Reads one file, recording its problems.
struct Reader<'a> {
    problems: FileProblems<'a>,
    file: PathBuf,
}

impl Reader<'_> {
    fn file(&mut self, root: &Node) -> Vec<Group> {
        let at = KeyPath::root();
        self.check_keys(root, &at, FILE_KEYS, &[]);
        let Some(groups) = self.list(root, &at, "groups", "a list of rule groups") else {
            return Vec::new();
        };
        let mut names = BTreeSet::new();
        let mut out = Vec::new();
        for (i, node) in groups.iter().enumerate() {
            out.extend(self.group(node, &at.key("groups").index(i), &mut names));
        }
        out
    }

    /// The sequence at `name` of the mapping `parent` (at `at`): none when absent or null, else it must be
    /// a list.
    fn list<'n>(&mut self, parent: &'n Node, at: &KeyPath, name: &str, what: &str) -> Option<&'n [Node]> {
        let node = parent.as_mapping()?.get_node(name).filter(|n| !is_null(n))?;
        match node.as_sequence() {
            Some(items) => Some(items.as_slice()),
            None => {
                self.problems.error(at.key(name), format!("expected {what}"));
                None
            }
        }
    }

    /// Records unknown keys of a mapping, and keys this engine refuses by name.
    fn check_keys(&mut self, node: &Node, at: &KeyPath, known: &[&str], unsupported: &[&str]) {
        let Some(map) = node.as_mapping() else { return };
        for key in map.keys().map(|k| k.as_str()) {
            if unsupported.contains(&key) {
                self.problems
                    .error(at.key(key), format!("field `{key}` is not supported by this rule engine"));
            } else if !known.contains(&key) {
                self.problems.error(at.key(key), unknown_key_message(key, known));
            }
        }
    }

    fn duration(&mut self, text: Option<&str>, at: KeyPath) -> Option<i64> {
        match parse_duration(text?) {
            Ok(ms) => Some(ms),
            Err(reason) => {
                self.problems.error(at, format!("invalid duration `{}`: {reason}", text.unwrap_or_default()));
                None
            }
        }
    }

    fn group(&mut self, node: &Node, at: &KeyPath, names: &mut BTreeSet<String>) -> Option<Group> {
        if node.as_mapping().is_none() {
            self.problems.error(at.clone(), "expected a rule group (a mapping with `name` and `rules`)");
            return None;
        }
        self.check_keys(node, at, GROUP_KEYS, GROUP_UNSUPPORTED);
        let fields: GroupFields = from_node(node, at, &mut self.problems).unwrap_or_default();
        match &fields.name {
            None => self.problems.error(at.clone(), "rule group has no `name`"),
            Some(name) if name.is_empty() => {
                self.problems.error(at.key("name"), "group name must not be empty")
            }
            Some(name) if !names.insert(name.clone()) => self
                .problems
                .error(at.key("name"), format!("group name `{name}` is repeated in the same file")),
            Some(_) => {}
        }
        let interval_ms = self.duration(fields.interval.as_deref(), at.key("interval"));
        let mut rules = Vec::new();
        let mut alert_names = BTreeSet::new();
        if let Some(items) = self.list(node, at, "rules", "a list of rules") {
            for (i, rule) in items.iter().enumerate() {
                rules.extend(self.rule(rule, &at.key("rules").index(i), &mut alert_names));
            }
        }
        Some(Group {
            name: fields.name.unwrap_or_default(),
            file: self.file.clone(),
            interval_ms,
            rules,
            next_eval: None,
        })
    }

    fn rule(&mut self, node: &Node, at: &KeyPath, alert_names: &mut BTreeSet<String>) -> Option<Rule> {
        if node.as_mapping().is_none() {
            self.problems
                .error(at.clone(), "expected a rule (a mapping with `alert` or `record`, and `expr`)");
            return None;
        }
        self.check_keys(node, at, RULE_KEYS, &[]);
        let r: RuleFields = from_node(node, at, &mut self.problems)?;
        if let Some(name) = &r.alert {
            if name.is_empty() {
                self.problems.error(at.key("alert"), "alert name must not be empty");
            } else if !alert_names.insert(name.clone()) {
                self.problems.error(
                    at.key("alert"),
                    format!("alert `{name}` is defined more than once in this group"),
                );
            }
        }
        if let Some(name) = &r.record
            && !is_valid_metric_name(name)
        {
            self.problems.error(
                at.key("record"),
                format!("invalid recording rule name `{name}` (must be a metric name)"),
            );
        }
        match (&r.alert, &r.record) {
            (Some(_), Some(_)) => {
                self.problems.error(at.clone(), "only one of `alert` and `record` may be set")
            }
            (None, None) => self.problems.error(at.clone(), "one of `alert` or `record` must be set"),
            (None, Some(_)) => {
                for (present, field) in [
                    (r.for_.is_some(), "for"),
                    (r.keep_firing_for.is_some(), "keep_firing_for"),
                    (r.annotations.is_some(), "annotations"),
                ] {
                    if present {
                        self.problems
                            .error(at.key(field), format!("invalid field `{field}` in a recording rule"));
                    }
                }
            }
            (Some(_), None) => {}
        }
        let expr = match &r.expr {
            None => {
                self.problems.error(at.clone(), "field `expr` must be set");
                None
            }
            Some(text) => match parse_expr(text) {
                Ok(expr) => Some(expr),
                Err(message) => {
                    self.problems.error(at.key("expr"), message);
                    None
                }
            },
        };
        let for_ms = self.duration(r.for_.as_deref(), at.key("for"));
        let keep_firing_for_ms = self.duration(r.keep_firing_for.as_deref(), at.key("keep_firing_for"));
        let raw_labels = r.labels.unwrap_or_default();
        let labels = self.templates(&raw_labels, &at.key("labels"), "label");
        let annotations =
            self.templates(&r.annotations.unwrap_or_default(), &at.key("annotations"), "annotation");
        let expr = expr?;
        match (r.alert, r.record) {
            (Some(name), None) => Some(Rule::Alerting(AlertingRule {
                name,
                expr,
                for_ms: for_ms.unwrap_or(0),
                keep_firing_for_ms: keep_firing_for_ms.unwrap_or(0),
                labels,
                annotations,
                active: BTreeMap::new(),
                previous_series: BTreeSet::new(),
            })),
            (None, Some(name)) => Some(Rule::Recording(RecordingRule {
                name,
                expr,
                labels: raw_labels,
                previous_series: BTreeSet::new(),
            })),
            _ => None,
        }
    }

    /// Checks the names and templates of a `labels:` or `annotations:` mapping.
    fn templates(
        &mut self,
        map: &BTreeMap<String, String>,
        at: &KeyPath,
        kind: &str,
    ) -> Vec<(String, Template)> {
        let mut out = Vec::new();
        for (name, value) in map {
            let invalid_name = !is_valid_label_name(name) || (kind == "label" && name == METRIC_NAME);
            if invalid_name {
                self.problems.error(at.key(name.as_str()), format!("invalid {kind} name `{name}`"));
                continue;
            }
            match Template::parse(value) {
                Ok(template) => out.push((name.clone(), template)),
                Err(e) => self.problems.error(at.key(name.as_str()), format!("invalid template: {e}")),
            }
        }
        out
    }
}

/// Parses a rule expression, refusing what the evaluator cannot run and what does not give an instant
/// vector or a scalar.
fn parse_expr(text: &str) -> Result<Expr, String> {
    use promql_parser::parser::value::ValueType;
    if text.trim().is_empty() {
        return Err("field `expr` must not be empty".to_string());
    }
    let expr = match promql::parse(text) {
        Err(PromqlError::Parse { reason, .. }) => {
            return Err(format!("could not parse expression: {reason}"));
        }
        Err(e) => return Err(e.to_string()),
        Ok(expr) => expr,
    };
    promql::check_supported(&expr).map_err(|e| e.to_string())?;
    match expr.value_type() {
        ValueType::Vector | ValueType::Scalar => Ok(expr),
        other => Err(format!("expression must return an instant vector or a scalar, not a {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str, file: &str) -> Vec<crate::config::Problem> {
        match RuleSet::parse(text, file) {
            Err(RulesError::Invalid(e)) => e.0,
            Err(e) => panic!("{e}"),
            Ok(_) => Vec::new(),
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "\
groups:
  - name: g
    intervall: 10s
    limit: 5
    rules:
      - alert: A
        expr: up == 0
        for: 5 minutes
      - alert: A
        expr: rate(up[5m]
      - alert: B
        expr: histogram_quantile(0.9, rate(x[5m]))
        annotations:
          summary: \"{{ $labels.x \"
      - record: bad-name
        expr: up
        for: 1m
      - alert: C
        labels:
          __name__: x
  - name: g
    rules: []
";
        let found = problems(text, "rules/bad.yml");
        let expect = [
            (3, "groups[0].intervall", "unknown field `intervall`"),
            (4, "groups[0].limit", "field `limit` is not supported by this rule engine"),
            (8, "groups[0].rules[0].for", "invalid duration `5 minutes`"),
            (9, "groups[0].rules[1].alert", "alert `A` is defined more than once"),
            (10, "groups[0].rules[1].expr", "could not parse expression"),
            (12, "groups[0].rules[2].expr", "unsupported PromQL construct: function `histogram_quantile`"),
            (14, "groups[0].rules[2].annotations.summary", "invalid template"),
            (15, "groups[0].rules[3].record", "invalid recording rule name `bad-name`"),
            (17, "groups[0].rules[3].for", "invalid field `for` in a recording rule"),
            (18, "groups[0].rules[4]", "field `expr` must be set"),
            (20, "groups[0].rules[4].labels.__name__", "invalid label name `__name__`"),
            (21, "groups[1].name", "group name `g` is repeated"),
        ];
        let listed: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), expect.len(), "{listed:#?}");
        for (problem, (line, key, message)) in found.iter().zip(expect) {
            assert_eq!(problem.line, Some(line), "{problem}");
            assert_eq!(problem.key.to_string(), key, "{problem}");
            assert!(problem.message.contains(message), "{problem} lacks `{message}`");
            assert_eq!(problem.file, "rules/bad.yml");
        }
        assert_eq!(
            listed[0],
            "rules/bad.yml:3:groups[0].intervall: unknown field `intervall`, expected one of `name`, `interval`, \
             `rules`"
        );
    }

    #[test]
    fn yaml_and_type_errors_carry_positions() {
        let found = problems("groups:\n  - name: g\n    rules: [\n", "s.yml");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, Some(4));
        let found =
            problems("groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: [1]\n", "t.yml");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].to_string(),
            "t.yml:5:groups[0].rules[0].expr: invalid type: sequence, expected a string"
        );
        let found = problems("groups:\n  - name: g\n    name: h\n", "d.yml");
        assert_eq!(found[0].to_string(), "d.yml:3:groups[0].name: duplicate key `name` (first at line 2)");
        // An empty file holds no groups; null lists are empty.
        assert!(RuleSet::parse("# nothing\n", "e.yml").unwrap().rule_names().is_empty());
        assert!(
            RuleSet::parse("groups:\n  - name: g\n    rules:\n", "n.yml").unwrap().rule_names().is_empty()
        );
    }

    #[test]
    fn problems_of_all_files_are_reported_together() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yml"), "groups:\n  - name: a\n    rules:\n      - alert: X\n")
            .unwrap();
        std::fs::write(dir.path().join("b.yaml"), "groups:\n  - name: b\n    colour: red\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a rule file").unwrap();
        let err = RuleSet::load_dir(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("invalid rule files:\n2 problems:\n"), "{text}");
        assert!(text.contains("a.yml:4:groups[0].rules[0]: field `expr` must be set"), "{text}");
        assert!(text.contains("b.yaml:3:groups[0].colour: unknown field `colour`"), "{text}");
    }
}
