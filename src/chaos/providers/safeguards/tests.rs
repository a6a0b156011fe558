use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::SAFEGUARDS;
use crate::chaos::experiment::exit::run_exit_code;
use crate::chaos::experiment::journal::{ActivityRun, Journal, JournalStatus};
use crate::chaos::experiment::model::{Dry, RollbackStrategy};
use crate::chaos::experiment::testkit::{FakePython, action, experiment_doc, probe, run_doc, since};
use crate::chaos::experiment::validate::validate_with_controls;
use crate::chaos::providers::control::NativeControls;

fn python() -> FakePython {
    FakePython::new()
        .returning("sys", "healthy", json!(true))
        .returning("sys", "unhealthy", json!(false))
        .returning("sys", "act", json!("done"))
        .returning("sys", "undo", json!("undone"))
}

/// `doc` with a safeguards control over `probes`.
fn guarded(mut doc: Value, probes: Vec<Value>) -> Value {
    doc["controls"] = json!([{"name": "safeguard",
        "provider": {"type": "python", "module": SAFEGUARDS, "arguments": {"probes": probes}}}]);
    doc
}

fn every(mut probe: Value, seconds: Value) -> Value {
    probe["frequency"] = seconds;
    probe
}

fn background(mut probe: Value) -> Value {
    probe["background"] = json!(true);
    probe
}

fn paused(mut activity: Value, after: u64) -> Value {
    activity["pauses"] = json!({"after": after});
    activity
}

async fn run(
    doc: &Value,
    py: &FakePython,
    tune: impl FnOnce(&mut crate::chaos::experiment::RunSettings),
) -> Journal {
    run_doc(doc, py, &NativeControls, &[], CancellationToken::new(), tune).await
}

fn calls(py: &FakePython, func: &str) -> usize {
    py.call_names().iter().filter(|f| *f == func).count()
}

fn names(runs: &[ActivityRun]) -> Vec<&str> {
    runs.iter().map(ActivityRun::name).collect()
}

#[tokio::test(start_paused = true)]
async fn a_failing_now_safeguard_interrupts_before_anything_runs() {
    for (strategy, rollbacks) in [(RollbackStrategy::Default, 0), (RollbackStrategy::Always, 1)] {
        let start = Instant::now();
        let py = python().delayed("sys", "healthy", 3).delayed("sys", "unhealthy", 3);
        let doc = guarded(
            experiment_doc(
                vec![probe("p", "healthy", json!(true))],
                vec![action("a", "act")],
                vec![action("u", "undo")],
            ),
            vec![probe("warmed up", "healthy", json!(true)), probe("no incident", "unhealthy", json!(true))],
        );
        let j = run(&doc, &py, |s| s.rollback_strategy = strategy).await;
        assert_eq!(j.status, JournalStatus::Interrupted, "{strategy}");
        assert!(j.steady_states.before.is_none() && j.steady_states.after.is_none());
        assert!(j.run.is_empty(), "nothing of the method ran");
        assert_eq!(j.rollbacks.len(), rollbacks, "{strategy}");
        let mut expected = vec!["healthy", "unhealthy"];
        expected.extend(if rollbacks == 1 { vec!["undo"] } else { vec![] });
        assert_eq!(py.call_names(), expected, "only the pre-checks ran (and the rollback, if played)");
        assert_eq!(j.duration, 3.0, "the pre-checks run side by side");
        assert_eq!(since(start), 3);
        assert_eq!(run_exit_code(&j), 1);
    }
}

/// `sys.degrade` breaks the service; `sys.service_ok` says whether it is still up.
fn degrading_python() -> FakePython {
    let degraded = Arc::new(AtomicBool::new(false));
    let seen = degraded.clone();
    python()
        .with("sys", "degrade", move |_| {
            degraded.store(true, Ordering::SeqCst);
            Ok(json!("degraded"))
        })
        .with("sys", "service_ok", move |_| Ok(json!(!seen.load(Ordering::SeqCst))))
}

#[tokio::test(start_paused = true)]
async fn a_frequency_safeguard_interrupts_the_method_midway_and_rollbacks_follow_the_strategy() {
    for (strategy, rollbacks) in [(RollbackStrategy::Default, vec![]), (RollbackStrategy::Always, vec!["u"])]
    {
        let start = Instant::now();
        let py = degrading_python();
        let doc = guarded(
            experiment_doc(
                vec![],
                vec![
                    paused(action("a1", "act"), 10),
                    paused(action("degrade", "degrade"), 60),
                    action("a3", "act"),
                ],
                vec![action("u", "undo")],
            ),
            vec![every(probe("service up", "service_ok", json!(true)), json!(4))],
        );
        let j = run(&doc, &py, |s| s.rollback_strategy = strategy).await;
        // Probe runs at 0, 4, 8, 12 (already degraded at 10), 16; each judged 4 s later: the run taken at
        // 12 interrupts at 16, in the middle of `degrade`'s 60 s pause.
        assert_eq!(j.status, JournalStatus::Interrupted, "{strategy}");
        assert_eq!(names(&j.run), ["a1"], "the activity interrupted in its pause is not recorded");
        assert_eq!(calls(&py, "degrade"), 1);
        assert_eq!(calls(&py, "act"), 1, "a3 never ran");
        assert_eq!((j.duration, j.end.as_str()), (16.0, "2024-01-01T00:00:16"));
        assert_eq!(names(&j.rollbacks), rollbacks, "{strategy}");
        assert_eq!(calls(&py, "service_ok"), 5);
        assert_eq!(since(start), 16, "the guardian stopped at once: its probe was between two runs");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(calls(&py, "service_ok"), 5, "no safeguard runs after the experiment");
    }
}

#[tokio::test(start_paused = true)]
async fn a_background_safeguard_interrupts_when_it_returns() {
    let py = python().returning("sys", "slow_check", json!(false)).delayed("sys", "slow_check", 5);
    let doc = guarded(
        experiment_doc(vec![], vec![paused(action("a1", "act"), 3), paused(action("a2", "act"), 10)], vec![]),
        vec![background(probe("slow check", "slow_check", json!(true)))],
    );
    let j = run(&doc, &py, |_| {}).await;
    assert_eq!(j.status, JournalStatus::Interrupted);
    assert_eq!(names(&j.run), ["a1"]);
    assert_eq!(j.duration, 5.0, "the method did not wait for the background safeguard");
}

#[tokio::test(start_paused = true)]
async fn when_every_safeguard_holds_the_run_completes_and_the_guardian_stops_with_it() {
    let start = Instant::now();
    let py = python()
        .returning("sys", "pre", json!(true))
        .delayed("sys", "pre", 2)
        .returning("sys", "bg", json!({"status": 200}))
        .delayed("sys", "bg", 7)
        .returning("sys", "tick", json!(0.5));
    let doc = guarded(
        experiment_doc(
            vec![probe("p", "healthy", json!(true))],
            vec![paused(action("a", "act"), 12)],
            vec![action("u", "undo")],
        ),
        vec![
            probe("pre-check", "pre", json!(true)),
            background(probe("api answers", "bg", json!(200))),
            every(probe("error rate", "tick", json!([0, 1])), json!(5)),
        ],
    );
    let j = run(&doc, &py, |_| {}).await;
    assert_eq!((j.status, j.deviated), (JournalStatus::Completed, false));
    assert_eq!(names(&j.run), ["a"]);
    assert_eq!(j.run[0].start, "2024-01-01T00:00:02", "the method waited for the pre-check only");
    assert_eq!(names(&j.steady_states.after.as_ref().unwrap().probes), ["p"], "safeguards are not journaled");
    assert_eq!(names(&j.rollbacks), ["u"]);
    assert_eq!(j.duration, 14.0);
    assert_eq!((calls(&py, "pre"), calls(&py, "bg"), calls(&py, "tick")), (1, 1, 3), "tick at 0, 5, 10");
    assert_eq!(since(start), 14, "the after-experiment hook stopped the repeating safeguard in its wait");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(calls(&py, "tick"), 3, "no safeguard runs after the experiment");
    assert_eq!(run_exit_code(&j), 0);
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_does_not_skip_safeguards_as_in_the_addon() {
    let py = python();
    let doc = guarded(
        experiment_doc(vec![], vec![action("a", "act")], vec![]),
        vec![probe("no incident", "unhealthy", json!(true))],
    );
    let j = run(&doc, &py, |s| s.dry = Some(Dry::Activities)).await;
    assert_eq!((j.status, py.call_names()), (JournalStatus::Interrupted, vec!["unhealthy".to_owned()]));
}

#[tokio::test(start_paused = true)]
async fn bad_arguments_are_validation_problems_with_their_paths() {
    let py = python();
    let declare = |args: Value| {
        let provider = json!({"type": "python", "module": SAFEGUARDS, "arguments": args});
        json!({"name": "safeguard", "provider": provider})
    };
    let mut doc = experiment_doc(vec![], vec![action("a", "act")], vec![]);
    doc["controls"] = json!([
        {"name": "bare", "provider": {"type": "python", "module": SAFEGUARDS}},
        declare(json!({"probes": []})),
        declare(json!({"probes": "healthy"})),
        declare(json!({"probes": [
            action("act", "act"),
            probe("no tolerance", "healthy", Value::Null),
            every(probe("zero", "healthy", json!(true)), json!(0)),
            every(probe("negative", "healthy", json!(true)), json!(-1)),
            every(probe("words", "healthy", json!(true)), json!("often")),
            probe("ghost", "nope", json!(true)),
            {"ref": "a"},
            every(background(probe("fine", "healthy", json!(true))), json!(2.5)),
        ]})),
    ]);
    let errors = validate_with_controls(&doc, &py, &NativeControls).unwrap_err();
    let found: Vec<(&str, &str)> = errors.iter().map(|e| (e.path.as_str(), e.message.as_str())).collect();
    let at = |i: usize, rest: &str| format!("$.controls[3].provider.arguments.probes[{i}]{rest}");
    let positive = "safeguard probe frequency must be a positive number of seconds";
    assert_eq!(
        found,
        [
            ("$.controls[0].provider.arguments.probes", "safeguard control must have at least one probe"),
            ("$.controls[1].provider.arguments.probes", "safeguard control must have at least one probe"),
            ("$.controls[2].provider.arguments.probes", "safeguard control probes must be a list"),
            (at(0, ".type").as_str(), "safeguard control 'act' should be of type 'probe' not 'action'"),
            (
                at(1, ".tolerance").as_str(),
                "safeguard control is invalid as the probe 'no tolerance' is missing a tolerance property"
            ),
            (at(2, ".frequency").as_str(), positive),
            (at(3, ".frequency").as_str(), positive),
            (at(4, ".frequency").as_str(), positive),
            (at(5, ".provider.func").as_str(), "could not find Python function 'nope' in module 'sys'"),
            (at(6, ".ref").as_str(), "a reference is not allowed here, declare the activity in place"),
        ]
    );

    // Unvalidated, a misconfigured safeguard is left out of the run (the lib logs its failure).
    let doc = guarded(experiment_doc(vec![], vec![action("a", "act")], vec![]), vec![]);
    let j = run(&doc, &py, |_| {}).await;
    assert_eq!((j.status, names(&j.run)), (JournalStatus::Completed, vec!["a"]));
}

#[tokio::test(start_paused = true)]
async fn a_safeguard_first_tripping_during_rollbacks_marks_the_run_interrupted_and_lets_them_finish() {
    let py = degrading_python();
    let doc = guarded(
        experiment_doc(
            vec![],
            vec![paused(action("a", "act"), 5)],
            vec![paused(action("degrade", "degrade"), 10), action("u", "undo")],
        ),
        vec![every(probe("service up", "service_ok", json!(true)), json!(2))],
    );
    let j = run(&doc, &py, |_| {}).await;
    // Rollbacks start at 5; the run taken at 6 misses and is judged at 8, in `degrade`'s pause.
    assert_eq!(j.status, JournalStatus::Interrupted);
    assert_eq!(names(&j.run), ["a"]);
    assert_eq!(names(&j.rollbacks), ["degrade", "u"], "unlike the lib's signal, the rollbacks finish");
    assert_eq!(j.duration, 15.0);
}
