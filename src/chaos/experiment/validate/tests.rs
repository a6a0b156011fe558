//! Tests of the experiment validator.

use std::path::Path;

use serde_json::json;

use super::*;
use crate::chaos::experiment::model::{HypothesisStrategy, Tolerance};
use crate::chaos::experiment::testkit::{FakePython, RecordingControls};

fn providers() -> FakePython {
    FakePython::new().returning("chaoskafka.probes", "topic_has_no_offline_partitions", json!(true))
}

fn paths(errors: &[ValidationError]) -> Vec<&str> {
    errors.iter().map(|e| e.path.as_str()).collect()
}

#[test]
fn a_minimal_experiment_is_valid() {
    let exp = validate(&json!({"title": "t", "description": "d", "method": []}), &providers()).unwrap();
    assert!(exp.method.is_empty() && !exp.has_steady_state_probes());
    assert_eq!(exp.runtime, Runtime::default());
}

#[test]
fn every_problem_is_listed_with_its_path() {
    let doc = json!({
        "title": "",
        "tags": ["kafka", ""],
        "contributions": {"availability": "huge"},
        "extensions": [{"name": ""}],
        "configuration": {"servers": {"type": "env"}, "kind": {"type": "env", "key": "K", "env_var_type": "list"}},
        "secrets": {"kafka": "not-a-mapping"},
        "controls": [{"name": "c", "provider": {"type": "python", "module": "m"}, "scope": "during"}],
        "runtime": {"rollbacks": {"strategy": "sometimes"}},
        "steady-state-hypothesis": {
            "title": "h",
            "probes": [
                {"type": "probe", "name": "no tolerance",
                 "provider": {"type": "python", "module": "chaoskafka.probes", "func": "topic_has_no_offline_partitions"}},
                {"type": "probe", "name": "float", "tolerance": 0.5,
                 "provider": {"type": "python", "module": "chaoskafka.probes", "func": "topic_has_no_offline_partitions"}},
                {"type": "probe", "name": "bad regex", "tolerance": {"type": "regex", "pattern": "(unclosed"},
                 "provider": {"type": "python", "module": "chaoskafka.probes", "func": "topic_has_no_offline_partitions"}},
                {"type": "probe", "name": "bad range", "tolerance": {"type": "range", "range": [1]},
                 "provider": {"type": "http", "url": "http://x", "timeout": "soon"}}
            ]
        },
        "method": [
            {"type": "action", "name": "ok",
             "provider": {"type": "python", "module": "chaoskafka.probes", "func": "topic_has_no_offline_partitions"}},
            {"type": "action", "name": "unknown func",
             "provider": {"type": "python", "module": "chaoskafka.actions", "func": "delete_everything"}},
            {"type": "sabotage", "name": "x", "provider": {"type": "process", "path": "no-such-binary-anywhere"},
             "pauses": {"after": "later"}, "background": "yes"},
            {"ref": "ghost"},
            {"type": "probe", "provider": {"type": "ssh"}}
        ]
    });
    let errors = validate(&doc, &providers()).unwrap_err();
    assert_eq!(
        paths(&errors),
        [
            "$.title",
            "$.description",
            "$.tags[1]",
            "$.contributions.availability",
            "$.extensions[0].name",
            "$.configuration.servers.key",
            "$.configuration.kind.env_var_type",
            "$.secrets.kafka",
            "$.controls[0].scope",
            "$.steady-state-hypothesis.probes[0].tolerance",
            "$.steady-state-hypothesis.probes[1].tolerance",
            "$.steady-state-hypothesis.probes[2].tolerance.pattern",
            "$.steady-state-hypothesis.probes[3].provider.timeout",
            "$.steady-state-hypothesis.probes[3].tolerance.range",
            "$.method[1].provider.func",
            "$.method[2].type",
            "$.method[2].provider.path",
            "$.method[2].background",
            "$.method[2].pauses.after",
            "$.method[4].name",
            "$.method[4].provider.type",
            "$.runtime.rollbacks.strategy",
            "$.method[3].ref",
        ]
    );
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(text.contains(&"$.method[1].provider.func: could not find Python function 'delete_everything' in module 'chaoskafka.actions'".to_owned()));
    assert!(text.contains(
        &"$.method[3].ref: referenced activity 'ghost' could not be found in the experiment".to_owned()
    ));
    assert!(
        text.contains(
            &"$.steady-state-hypothesis.probes[0].tolerance: hypothesis probe must have a tolerance entry"
                .to_owned()
        )
    );
}

#[test]
fn missing_method_and_non_object_documents() {
    let errors = validate(&json!({"title": "t", "description": "d"}), &providers()).unwrap_err();
    assert_eq!(paths(&errors), ["$.method"]);
    assert_eq!(paths(&validate(&json!([]), &providers()).unwrap_err()), ["$"]);
}

#[test]
fn references_wait_until_runtime_and_tolerances_are_typed() {
    let probe = json!({"type": "probe", "name": "no offline", "tolerance": [200, 204],
        "provider": {"type": "python", "module": "chaoskafka.probes", "func": "topic_has_no_offline_partitions"}});
    let doc = json!({
        "title": "t", "description": "d",
        "runtime": {"hypothesis": {"strategy": "continously"}, "rollbacks": {"strategy": "deviated"}},
        "steady-state-hypothesis": {"title": "h", "probes": [probe]},
        "method": [
            {"type": "action", "name": "reboot", "provider": {"type": "process", "path": "true", "arguments": ["x"]},
             "pauses": {"before": "${delay}", "after": {"wait-until": {"probe": {"ref": "no offline"}, "timeout": 60}}}},
            {"ref": "no offline"}
        ],
        "rollbacks": [{"ref": "reboot"}]
    });
    let exp = validate(&doc, &providers()).unwrap();
    assert_eq!(exp.runtime.hypothesis_strategy, Some(HypothesisStrategy::Continuously));
    let reboot = exp.method[0].inline().unwrap();
    assert_eq!(reboot.pauses.before, Some(Pause::Template("${delay}".into())));
    let Some(Pause::WaitUntil(w)) = &reboot.pauses.after else { panic!("{:?}", reboot.pauses) };
    assert_eq!((w.timeout, w.frequency), (60.0, 1.0));
    assert_eq!(
        exp.steady_state_hypothesis.as_ref().unwrap().probes[0].tolerance,
        Some(Tolerance::List(vec![json!(200), json!(204)]))
    );
    assert_eq!(exp.find_activity("reboot").map(|a| a.name.as_str()), Some("reboot"));
}

#[test]
fn wait_until_references_need_a_tolerance() {
    let doc = json!({"title": "t", "description": "d", "method": [
        {"type": "action", "name": "a", "provider": {"type": "process", "path": "true"},
         "pauses": {"after": {"wait-until": {"probe": {"ref": "a"}, "timeout": 0}}}}]});
    let errors = validate(&doc, &providers()).unwrap_err();
    assert_eq!(paths(&errors), ["$.method[0].pauses.after.wait-until.timeout"]);
    let doc = json!({"title": "t", "description": "d", "method": [
        {"type": "action", "name": "a", "provider": {"type": "process", "path": "true"},
         "pauses": {"after": {"wait-until": {"probe": {"ref": "a"}, "timeout": 5}}}}]});
    let errors = validate(&doc, &providers()).unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "$.method[0].pauses.after.wait-until.probe.ref: referenced activity 'a' has no tolerance to wait for"
    );
}

#[test]
fn controls_are_checked_against_the_known_modules() {
    let doc = json!({"title": "t", "description": "d", "method": [
        {"type": "action", "name": "a", "provider": {"type": "process", "path": "true"},
         "controls": [{"name": "offsets", "provider": {"type": "python", "module": "chaoskafka.controls.get_production_offsets"}},
                      {"ref": "missing"}]}]});
    let errors = validate(&doc, &providers()).unwrap_err();
    assert_eq!(errors[0].message, "Control reference 'missing' declaration cannot be found");
    let mut fixed = doc.clone();
    fixed["method"][0]["controls"].as_array_mut().unwrap().pop();
    let unknown = validate_with_controls(&fixed, &providers(), &RecordingControls::new()).unwrap_err();
    assert_eq!(paths(&unknown), ["$.method[0].controls[0].provider.module"]);
    let known = RecordingControls::new()
        .on("chaoskafka.controls.get_production_offsets", |_, _| std::ops::ControlFlow::Continue(()));
    assert!(validate_with_controls(&fixed, &providers(), &known).is_ok());
}

#[test]
fn problems_carry_file_line_and_json_path_in_yaml_and_json() {
    let yaml = "title: ''\ndescription: d\nmethod:\n  - type: action\n    name: a\n    provider:\n      type: process\n      path: true\n      weird key: 1\n";
    let raw = crate::chaos::experiment::load::parse(
        yaml,
        crate::chaos::experiment::load::Format::Yaml,
        Path::new("e.yaml"),
    )
    .unwrap();
    let mut errors = validate(&raw, &providers()).unwrap_err();
    errors.push(ValidationError::new("$.method[0].provider['weird key']", "made up"));
    let lines: Vec<String> =
        problems_in("e.yaml", yaml, &errors).all().iter().map(ToString::to_string).collect();
    assert_eq!(lines[0], "e.yaml:1:$.title: experiment requires a title");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("e.yaml:9:$.method[0].provider.\"weird key\": made up")
    );

    let json = "{\n  \"title\": \"t\",\n  \"description\": \"d\",\n  \"method\": [\n    {\"type\": \"action\",\n     \"name\": \"a\",\n     \"provider\": {\"type\": \"python\", \"module\": \"m\"}}\n  ]\n}\n";
    let raw: Value = serde_json::from_str(json).unwrap();
    let errors = validate(&raw, &providers()).unwrap_err();
    let problems = problems_in("e.json", json, &errors);
    let first = &problems.all()[0];
    assert_eq!(
        (first.line, first.key.to_string()),
        (Some(7), "$.method[0].provider.func".to_string()),
        "{first}"
    );
    assert!(first.to_string().starts_with("e.json:7:$.method[0].provider.func: "), "{first}");
}
