//! The compiler on small objects: mappings, checks and the version traps.

use super::*;
use crate::config::Problems;
use crate::mesh::load::load_text;
use serde_json::json;

fn compile_text(spec: &str, kind: &str) -> (Option<Plan>, Vec<String>) {
    let text =
        format!("apiVersion: chaos-mesh.org/v1alpha1\nkind: {kind}\nmetadata:\n  name: x\nspec:\n{spec}");
    let mut problems = Problems::new();
    let loaded = load_text("f.yaml", &text, None, &mut problems);
    (loaded.into_iter().next().map(|l| l.plan), problems.all().iter().map(ToString::to_string).collect())
}

fn faults(plan: &Option<Plan>) -> Vec<PlannedFault> {
    match plan {
        Some(Plan::Chaos(c)) => c.effect.faults().to_vec(),
        other => panic!("not a chaos: {other:?}"),
    }
}

const SEL: &str = "  mode: all\n  selector:\n    namespaces: [kafka]\n";

#[test]
fn network_actions_become_catalogue_faults_with_tc_units() {
    let (plan, problems) = compile_text(
        &format!("  action: bandwidth\n{SEL}  bandwidth: {{rate: 1mbit, limit: 1, buffer: 1}}\n"),
        "NetworkChaos",
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(faults(&plan)[0].parameters["rate"], 125_000);
    let (plan, _) =
        compile_text(&format!("  action: rate\n{SEL}  rate: {{rate: 100kbps}}\n"), "NetworkChaos");
    assert_eq!(faults(&plan)[0].parameters["rate"], 100_000);
    let (plan, problems) = compile_text(
        &format!(
            "  action: netem\n{SEL}  delay: {{latency: 1.5s, jitter: 10ms, correlation: '25'}}\n  loss: {{loss: '5'}}\n"
        ),
        "NetworkChaos",
    );
    let f = faults(&plan);
    assert_eq!((f[0].kind, f[1].kind), ("network-delay", "network-loss"));
    assert_eq!(
        (f[0].parameters["latency"].as_f64(), f[0].parameters["correlation"].as_f64()),
        (Some(1.5), Some(25.0))
    );
    assert!(
        problems.iter().any(|p| p.starts_with("warning: f.yaml:10:spec.delay.latency: Chaos Mesh 2.7.0")),
        "{problems:?}"
    );
    // A zero delay injects nothing, and the unitless jitter is a version trap.
    let (plan, problems) = compile_text(
        &format!("  action: delay\n{SEL}  delay: {{latency: 0ms, jitter: '0'}}\n"),
        "NetworkChaos",
    );
    assert!(faults(&plan).is_empty());
    assert!(problems.iter().any(|p| p.contains("spec.delay.jitter: \"0\" has no unit")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("injects nothing")), "{problems:?}");
    let (plan, problems) = compile_text(
        &format!("  action: delay\n  direction: from\n{SEL}  delay: {{latency: 5ms}}\n"),
        "NetworkChaos",
    );
    assert!(plan.is_none());
    assert!(
        problems.iter().any(|p| p.contains("spec.direction: `from` and `both` need a `target`")),
        "{problems:?}"
    );
}

#[test]
fn pod_time_and_io_chaos_map_onto_the_catalogue() {
    let (plan, _) = compile_text(&format!("  action: pod-failure\n  duration: 90s\n{SEL}"), "PodChaos");
    match &plan {
        Some(Plan::Chaos(c)) => assert_eq!(c.duration, Some(Duration::from_secs(90))),
        other => panic!("{other:?}"),
    }
    assert_eq!(faults(&plan)[0].kind, "process-failure");
    let (plan, _) = compile_text(&format!("  action: pod-kill\n  gracePeriod: 30\n{SEL}"), "PodChaos");
    let f = &faults(&plan)[0];
    assert_eq!((f.kind, &f.parameters["grace"]), ("process-kill", &json!(30)));
    let request = crate::chaos::faults::FaultRequest {
        kind: f.kind.into(),
        target: Some("FLINK".into()),
        parameters: f.parameters.clone(),
        ..Default::default()
    };
    let parsed = crate::chaos::faults::Fault::parse(&request).unwrap();
    assert_eq!(parsed.effect, crate::chaos::faults::spec::Effect::Restart(Some(Duration::from_secs(30))));
    let (plan, _) = compile_text(&format!("  timeOffset: -10m100ns\n{SEL}"), "TimeChaos");
    assert_eq!(faults(&plan)[0].parameters["offset"].as_f64(), Some(-600.0000001));
    let (plan, _) =
        compile_text(&format!("  action: fault\n  volumePath: /data\n  errno: 28\n{SEL}"), "IOChaos");
    assert_eq!(faults(&plan)[0].kind, "disk-full");
    let (plan, problems) =
        compile_text(&format!("  action: attrOverride\n  volumePath: /data\n{SEL}"), "IOChaos");
    assert!(plan.is_none() && problems[0].contains("attrOverride needs `attr`"), "{problems:?}");
    // A read-only perm fails writes with EACCES on the paths and methods chosen; other attributes warn.
    let (plan, problems) = compile_text(
        &format!(
            "  action: attrOverride\n  volumePath: /data\n  path: /data/**/*\n  methods: [write, fsync]\n  \
             percent: 50\n  attr: {{perm: 292, size: 1}}\n{SEL}"
        ),
        "IOChaos",
    );
    assert!(
        problems.len() == 1 && problems[0].contains("spec.attr.size: the stores never read"),
        "{problems:?}"
    );
    let f = faults(&plan);
    assert_eq!(
        (f[0].kind, &f[0].parameters["errno"], &f[0].parameters["methods"], &f[0].parameters["percent"]),
        ("io-error", &json!(13), &json!(["write"]), &json!(50.0))
    );
    assert!(f[0].parameters.get("path").is_none(), "/data/**/* is every path");
    let (plan, problems) = compile_text(
        &format!(
            "  action: latency\n  delay: 10ms\n  volumePath: /data\n  path: /data/2020-*/*\n  methods: [read, getattr]\n{SEL}"
        ),
        "IOChaos",
    );
    assert!(problems.is_empty(), "{problems:?}");
    let f = faults(&plan);
    assert_eq!(
        (&f[0].parameters["path"], &f[0].parameters["methods"]),
        (&json!("2020-*/*"), &json!(["read"]))
    );
    let (plan, problems) = compile_text(
        &format!(
            "  action: fault\n  errno: 5\n  volumePath: /data\n  path: /var/x\n  methods: [chmod]\n{SEL}"
        ),
        "IOChaos",
    );
    assert!(plan.is_none());
    let joined = problems.join("\n");
    assert!(joined.contains("spec.path: \"/var/x\" is not under volumePath"), "{joined}");
    assert!(joined.contains("spec.methods[0]: \"chmod\" is not a FUSE operation"), "{joined}");
    // What the plan asks, the catalogue takes.
    for fault in f {
        let request = crate::chaos::faults::FaultRequest {
            kind: fault.kind.to_owned(),
            target: Some("HADOOP".into()),
            parameters: fault.parameters.clone(),
            ..Default::default()
        };
        crate::chaos::faults::Fault::parse(&request).unwrap_or_else(|e| panic!("{}: {e:?}", fault.kind));
    }
    let (plan, problems) = compile_text(
        &format!(
            "  action: mistake\n  volumePath: /data\n  mistake: {{filling: random, maxOccurrences: 2, maxLength: 4}}\n{SEL}"
        ),
        "IOChaos",
    );
    assert!(problems.is_empty(), "{problems:?}");
    let f = faults(&plan);
    assert_eq!(f[0].kind, "io-mistake");
    assert_eq!((&f[0].parameters["filling"], &f[0].parameters["length"]), (&json!("random"), &json!(4)));
    let (plan, problems) = compile_text(&format!("  action: mistake\n  volumePath: /data\n{SEL}"), "IOChaos");
    assert!(plan.is_none() && problems[0].contains("action mistake needs `mistake`"), "{problems:?}");
}

#[test]
fn schedules_check_their_policy_and_type() {
    let pod = "  podChaos:\n    action: pod-kill\n    mode: one\n    selector: {}\n";
    let (plan, problems) = compile_text(&format!("  schedule: '@every 30s'\n{pod}"), "Schedule");
    let Some(Plan::Schedule(s)) = plan else { panic!("{problems:?}") };
    assert!(s.forbid && s.history_limit == 1);
    assert!(
        problems.iter().any(|p| p.contains("spec.type: missing") && p.contains("PodChaos")),
        "{problems:?}"
    );
    let (plan, problems) = compile_text(
        &format!(
            "  schedule: '@every 30s'\n  type: NetworkChaos\n  concurrencyPolicy: Sometimes\n  historyLimit: 0\n{pod}"
        ),
        "Schedule",
    );
    assert!(plan.is_none());
    let joined = problems.join("\n");
    for expected in [
        "spec.concurrencyPolicy: \"Sometimes\"",
        "spec.historyLimit: 0 is below 1",
        "spec.podChaos: type is NetworkChaos",
        "spec.networkChaos: type NetworkChaos needs",
    ] {
        assert!(joined.contains(expected), "{expected} in {joined}");
    }
}

#[test]
fn workflows_resolve_their_templates() {
    let (plan, problems) = compile_text(
        "  entry: a\n  templates:\n    - {name: a, templateType: Serial, children: [b, c]}\n    \
         - {name: b, templateType: Suspend, deadline: 10s}\n    - {name: c, templateType: Parallel, children: [a]}\n",
        "Workflow",
    );
    assert!(plan.is_none());
    assert!(problems.iter().any(|p| p.contains("cycle: a -> c -> a")), "{problems:?}");
    let (plan, problems) = compile_text(
        "  entry: main\n  templates:\n    - {name: main, templateType: Serial, children: [wait, nope]}\n    \
         - {name: wait, templateType: Suspend}\n    - {name: s, templateType: Schedule, deadline: 1m, \
         schedule: {schedule: '@hourly', type: Workflow}}\n",
        "Workflow",
    );
    assert!(plan.is_none());
    let joined = problems.join("\n");
    for expected in [
        "spec.templates[0].children[1]: no template is named \"nope\"",
        "spec.templates[1].deadline: a Suspend node waits for its deadline",
        "spec.templates[2].schedule.type: a workflow's Schedule node cannot create a Workflow",
    ] {
        assert!(joined.contains(expected), "{expected} in {joined}");
    }
}

#[test]
fn tasks_and_http_chaos_are_checked_up_front() {
    let (plan, problems) = compile_text(
        "  entry: t\n  templates:\n    - name: t\n      templateType: Task\n      task: {container: {name: c, \
         image: chaoslab, command: [http-get]}}\n      conditionalBranches:\n        - {target: t2, expression: \
         '(exitCode == 0'}\n        - {target: gone}\n    - {name: t2, templateType: Suspend, deadline: 1s}\n",
        "Workflow",
    );
    assert!(plan.is_none());
    let joined = problems.join("\n");
    for expected in [
        "spec.templates[0].task.container.command: http-get takes 1 argument(s), found 0",
        "spec.templates[0].conditionalBranches[0].expression: \"(exitCode == 0\" does not parse",
        "spec.templates[0].conditionalBranches[1].target: no template is named \"gone\"",
    ] {
        assert!(joined.contains(expected), "{expected} in {joined}");
    }
}

#[test]
fn http_chaos_maps_every_action_with_its_filter() {
    let sel = "  mode: all\n  selector: {labelSelectors: {app: poke-order-api}}\n";
    let (plan, problems) = compile_text(
        &format!(
            "{sel}  target: Response\n  path: /orders/*\n  method: get\n  code: 404\n  request_headers: {{x-user: ash}}\n  \
             delay: 1s\n  replace: {{code: 500, body: aGVsbG8=, headers: {{x-fault: replaced}}}}\n  \
             patch: {{body: {{type: JSON, value: '{{\"total\": 0}}'}}, headers: [[set-cookie, a=1]]}}\n"
        ),
        "HTTPChaos",
    );
    assert!(problems.is_empty(), "{problems:?}");
    let f = faults(&plan);
    let kinds: Vec<&str> = f.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, ["http-delay", "http-replace", "http-patch"]);
    for fault in &f {
        let p = &fault.parameters;
        assert_eq!(
            (&p["target"], &p["path-glob"], &p["method"], &p["status"], &p["request-headers"]),
            (&json!("response"), &json!("/orders/*"), &json!("GET"), &json!(404), &json!({"x-user": "ash"}))
        );
    }
    assert_eq!(
        (&f[1].parameters["set-code"], &f[1].parameters["set-body"], &f[1].parameters["set-headers"]),
        (&json!(500), &json!("hello"), &json!({"x-fault": "replaced"}))
    );
    assert_eq!(
        (&f[2].parameters["merge-body"], &f[2].parameters["add-headers"]),
        (&json!({"total": 0}), &json!([["set-cookie", "a=1"]]))
    );
    // Each planned fault is one the catalogue accepts.
    for fault in &f {
        let request = crate::chaos::faults::FaultRequest {
            kind: fault.kind.to_owned(),
            parameters: fault.parameters.clone(),
            ..Default::default()
        };
        crate::chaos::faults::Fault::parse(&request).unwrap_or_else(|e| panic!("{}: {e:?}", fault.kind));
    }
    let (plan, problems) = compile_text(
        &format!(
            "{sel}  target: Request\n  path: a*b\n  method: 'G T'\n  code: 200\n  replace: {{code: 99}}\n  \
             patch: {{body: {{type: XML, value: '<a/>'}}, queries: [[a]]}}\n  tls: {{secretName: s}}\n"
        ),
        "HTTPChaos",
    );
    assert!(plan.is_none());
    let joined = problems.join("\n");
    for expected in [
        "spec.path: \"a*b\" is not a path glob",
        "spec.method: \"G T\" is not an HTTP method",
        "spec.code: `code` selects responses",
        "spec.replace.code: 99 is not an HTTP status",
        "spec.patch.body.type: \"XML\": Chaos Mesh patches JSON bodies only",
        "spec.patch.body.value: not JSON",
        "spec.patch.queries[0]: a pair is [name, value]",
        "spec.tls: chaoslab's services speak plain HTTP",
    ] {
        assert!(joined.contains(expected), "{expected} in {joined}");
    }
}

#[test]
fn stress_maps_to_cpu_and_memory_stress() {
    let sel = "  mode: all\n  selector: {namespaces: [kafka]}\n";
    let (plan, problems) = compile_text(
        &format!(
            "{sel}  stressors:\n    cpu: {{workers: 2, load: 50}}\n    memory: {{workers: 4, size: 1GiB}}\n"
        ),
        "StressChaos",
    );
    assert!(problems.is_empty(), "{problems:?}");
    let f = faults(&plan);
    assert_eq!(
        (f[0].kind, &f[0].parameters["workers"], &f[0].parameters["load"]),
        ("cpu-stress", &json!(2), &json!(50))
    );
    assert_eq!((f[1].kind, &f[1].parameters["megabytes"]), ("memory-stress", &json!(4096)));
    let (plan, problems) =
        compile_text(&format!("{sel}  stressors:\n    memory: {{workers: 1, size: 50%}}\n"), "StressChaos");
    assert!(plan.is_none());
    let joined = problems.join("\n");
    assert!(
        joined.contains("spec.stressors.memory.size: \"50%\": a share of memory is not supported"),
        "{joined}"
    );
    // stress-ng's own options win over `stressors`, as in Chaos Mesh; what is not modelled is named.
    let (plan, problems) = compile_text(
        &format!(
            "{sel}  stressors: {{cpu: {{workers: 9}}}}\n  stressngStressors: '--cpu 2 --cpu-load=30 --vm 2 \
             --vm-bytes 64M --hdd 1 --timeout 60'\n"
        ),
        "StressChaos",
    );
    let f = faults(&plan);
    assert_eq!(
        (f[0].kind, &f[0].parameters["workers"], &f[0].parameters["load"]),
        ("cpu-stress", &json!(2), &json!(30))
    );
    assert_eq!((f[1].kind, &f[1].parameters["megabytes"]), ("memory-stress", &json!(128)));
    let joined = problems.join("\n");
    assert!(joined.contains("spec.stressors: stressngStressors is given too, and wins"), "{joined}");
    assert!(joined.contains("ignored: --hdd --timeout"), "{joined}");
    let (plan, problems) =
        compile_text(&format!("{sel}  stressngStressors: '--io 4 --cpu 0'\n"), "StressChaos");
    assert!(plan.is_none());
    assert!(
        problems.iter().any(|p| p.contains("spec.stressngStressors: --cpu 0: a whole number from 1 to 64")),
        "{problems:?}"
    );
}
