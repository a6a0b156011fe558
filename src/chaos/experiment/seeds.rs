//! The two seed experiments (`corrupt_kafka_messages`, `reboot_msk_broker`) validated and run
//! against a fake of chaostoolkit-kafka 0.1.3 and chaostoolkit-aws's `reboot_msk_broker`.
//!
//! The fake keeps a little Kafka state in virtual time: producing a message that is not valid JSON
//! stalls the consumer group on that partition (the poison pill: its lag grows past any threshold)
//! until someone consumes that offset by hand; rebooting a broker takes `poke-orders` partitions
//! offline for a minute (RF=1). Functions return the shapes the reference documents, and the
//! `get_production_offsets` control writes `partition`, `earliest` and `num_messages` into the
//! configuration from the produce result, which the rollback then substitutes.

use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::Vars;
use super::control::{Controls, Hook, Interrupt};
use super::exit::run_exit_code;
use super::journal::{Journal, JournalStatus};
use super::load::{self, Format};
use super::model::{Configuration, ControlLevel, ControlScope, HypothesisStrategy, Secrets};
use super::provider::{ActivityError, BoxFuture, NoPythonProviders, PythonProviders};
use super::testkit::run_doc;
use super::validate::{validate, validate_with_controls};

const CORRUPT: &str = include_str!("fixtures/corrupt_kafka_messages.yaml");
const REBOOT: &str = include_str!("fixtures/reboot_msk_broker.yaml");
const ENV: &[(&str, &str)] = &[
    ("BOOTSTRAP_SERVERS", "b-1.kafka:9092"),
    ("MSK_CLUSTER_ARN", "arn:aws:kafka:eu-west-1:1:cluster/poke/1"),
];

/// How long `poke-orders` partitions stay offline after a broker reboot.
const REBOOT_OUTAGE: Duration = Duration::from_secs(60);

fn doc(yaml: &str, name: &str) -> Value {
    load::parse(yaml, Format::Yaml, std::path::Path::new(name)).unwrap()
}

#[derive(Default)]
struct KafkaState {
    next_offset: i64,
    poison_pill: Option<i64>,
    rebooted_at: Option<Instant>,
    calls: Vec<(String, Value)>,
}

/// chaostoolkit-kafka and chaosaws, as far as the seeds use them.
struct FakeKafka {
    state: Mutex<KafkaState>,
}

impl FakeKafka {
    fn new() -> Self {
        FakeKafka { state: Mutex::new(KafkaState { next_offset: 41, ..KafkaState::default() }) }
    }

    fn calls(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().calls.clone()
    }

    fn answer(&self, func: &str, args: &Value) -> Result<Value, ActivityError> {
        let mut s = self.state.lock().unwrap();
        s.calls.push((func.to_owned(), args.clone()));
        match func {
            "check_consumer_lag_under_threshold" => {
                let lag = if s.poison_pill.is_some() { 40 } else { 2 };
                Ok(json!(args["threshold"].as_i64().unwrap_or(0) > lag))
            }
            "produce_messages" => {
                let partition = args["partition"].as_i64().unwrap_or(0);
                let mut produced = Vec::new();
                for message in args["messages"].as_array().into_iter().flatten() {
                    let offset = s.next_offset;
                    s.next_offset += 1;
                    let unreadable =
                        message.as_str().is_none_or(|m| serde_json::from_str::<Value>(m).is_err());
                    if unreadable && s.poison_pill.is_none() {
                        s.poison_pill = Some(offset);
                    }
                    produced.push(json!({"topic": args["topic"], "partition": partition, "offset": offset}));
                }
                Ok(Value::Array(produced))
            }
            "consume_messages" => {
                let from = args["offset"]
                    .as_i64()
                    .ok_or_else(|| ActivityError::failed("offset must be an integer"))?;
                let count = args["num_messages"].as_i64().unwrap_or(1);
                if s.poison_pill.is_some_and(|pill| (from..from + count).contains(&pill)) {
                    s.poison_pill = None;
                }
                Ok(json!([{"partition": args["partition"], "offset": from, "value": "{\"id\": 4054"}]))
            }
            "topic_has_no_offline_partitions" => {
                Ok(json!(s.rebooted_at.is_none_or(|at| at.elapsed() >= REBOOT_OUTAGE)))
            }
            "reboot_msk_broker" => {
                s.rebooted_at = Some(Instant::now());
                Ok(
                    json!({"ClusterArn": args["cluster_arn"], "ClusterOperationArn": "arn:aws:kafka:op/reboot-1"}),
                )
            }
            other => Err(ActivityError::failed(format!("no fake for {other}"))),
        }
    }
}

impl PythonProviders for FakeKafka {
    fn call(
        &self,
        _module: &str,
        func: &str,
        args: &Value,
        _config: &Configuration,
        _secrets: &Secrets,
    ) -> Pin<Box<dyn Future<Output = Result<Value, ActivityError>> + Send + '_>> {
        let answer = self.answer(func, args);
        Box::pin(async move { answer })
    }

    fn knows(&self, module: &str, func: &str) -> bool {
        matches!(
            (module, func),
            ("chaoskafka.probes", "check_consumer_lag_under_threshold" | "topic_has_no_offline_partitions")
                | ("chaoskafka.actions", "produce_messages" | "consume_messages")
                | ("chaosaws.msk.actions", "reboot_msk_broker")
        )
    }
}

/// `chaoskafka.controls.get_production_offsets`: its `after_activity_control`.
struct KafkaControls;

impl Controls for KafkaControls {
    fn knows(&self, module: &str) -> bool {
        module == "chaoskafka.controls.get_production_offsets"
    }

    fn apply<'a>(&'a self, hook: Hook<'a>, vars: &'a mut Vars) -> BoxFuture<'a, ControlFlow<Interrupt>> {
        if (hook.level, hook.scope) == (ControlLevel::Activity, ControlScope::After)
            && let Some(produced) = hook.state.and_then(|s| s["output"].as_array()).filter(|p| !p.is_empty())
        {
            let earliest = produced.iter().filter_map(|m| m["offset"].as_i64()).min();
            vars.configuration.insert("partition".into(), produced[0]["partition"].clone());
            vars.configuration.insert("earliest".into(), json!(earliest));
            vars.configuration.insert("num_messages".into(), json!(produced.len()));
        }
        Box::pin(async { ControlFlow::Continue(()) })
    }
}

async fn run_seed(
    yaml: &str,
    kafka: &FakeKafka,
    tune: impl FnOnce(&mut super::settings::RunSettings),
) -> Journal {
    run_doc(&doc(yaml, "seed.yaml"), kafka, &KafkaControls, ENV, CancellationToken::new(), tune).await
}

#[test]
fn both_seeds_validate_with_the_kafka_extension_and_not_without_it() {
    for (yaml, unknown) in [(CORRUPT, 3), (REBOOT, 2)] {
        let raw = doc(yaml, "seed.yaml");
        let experiment = validate_with_controls(&raw, &FakeKafka::new(), &KafkaControls).unwrap();
        assert_eq!(experiment.steady_state_hypothesis.as_ref().unwrap().probes.len(), 1);
        let errors = validate(&raw, &NoPythonProviders).unwrap_err();
        assert_eq!(errors.len(), unknown, "{errors:?}");
        assert!(errors.iter().all(|e| e.path.ends_with(".provider.func")), "{errors:?}");
    }
    let corrupt = validate(&doc(CORRUPT, "c.yaml"), &FakeKafka::new()).unwrap();
    let message = &corrupt.method[0].inline().unwrap().raw["provider"]["arguments"]["messages"][0];
    assert!(
        message.as_str().unwrap().ends_with("\"2024-08-14 05:38:58.922008"),
        "the message is truncated JSON"
    );
}

#[tokio::test(start_paused = true)]
async fn corrupt_kafka_messages_deviates_and_its_rollback_consumes_the_poison_pill() {
    let kafka = FakeKafka::new();
    let journal = run_seed(CORRUPT, &kafka, |_| {}).await;

    let calls = kafka.calls();
    let funcs: Vec<&str> = calls.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        funcs,
        [
            "check_consumer_lag_under_threshold",
            "produce_messages",
            "check_consumer_lag_under_threshold",
            "consume_messages"
        ]
    );
    assert_eq!(
        calls[0].1,
        json!({"bootstrap_servers": "b-1.kafka:9092", "group_id": "poke-order-consumer", "topic": "poke-orders",
               "threshold": 15, "partition": 1})
    );
    assert_eq!(
        calls[3].1,
        json!({"bootstrap_servers": "b-1.kafka:9092", "topic": "poke-orders", "group_id": "poke-order-consumer",
               "partition": 1, "offset": 41, "num_messages": 1}),
        "the control's offsets reach the rollback"
    );

    assert!(journal.steady_states.before.as_ref().unwrap().steady_state_met);
    assert_eq!(journal.steady_states.after.as_ref().unwrap().probes[0].output, json!(false));
    assert_eq!((journal.status, journal.deviated), (JournalStatus::Completed, true));
    assert_eq!(journal.run[0].output, json!([{"topic": "poke-orders", "partition": 1, "offset": 41}]));
    assert_eq!(journal.rollbacks[0].output[0]["offset"], 41);
    assert_eq!(journal.duration, 120.0);
    assert_eq!(run_exit_code(&journal), 1);
    assert!(kafka.state.lock().unwrap().poison_pill.is_none(), "the rollback unstalled the partition");
}

#[tokio::test(start_paused = true)]
async fn reboot_msk_broker_passes_before_and_after_but_a_continuous_hypothesis_sees_the_outage() {
    let kafka = FakeKafka::new();
    let journal = run_seed(REBOOT, &kafka, |_| {}).await;
    let reboot = kafka.calls().into_iter().find(|(f, _)| f == "reboot_msk_broker").unwrap();
    assert_eq!(
        reboot.1,
        json!({"cluster_arn": "arn:aws:kafka:eu-west-1:1:cluster/poke/1", "broker_ids": ["1"]})
    );
    assert_eq!(
        (journal.status, journal.deviated, journal.duration),
        (JournalStatus::Completed, false, 300.0)
    );
    assert_eq!(run_exit_code(&journal), 0, "the 300 s pause hides the outage from the after hypothesis");

    let journal = run_seed(REBOOT, &FakeKafka::new(), |s| {
        s.hypothesis_strategy = HypothesisStrategy::Continuously;
        s.hypothesis_frequency = Duration::from_secs(10);
    })
    .await;
    // Samples every 10 s from t=0 (before the reboot) to t=300; offline from t=0 to t=60.
    let during: Vec<bool> = journal.steady_states.during.iter().map(|s| s.steady_state_met).collect();
    assert_eq!(during.len(), 31);
    assert_eq!(during.iter().filter(|met| !**met).count(), 5);
    assert_eq!((journal.status, journal.deviated), (JournalStatus::Completed, false));

    let journal = run_seed(REBOOT, &FakeKafka::new(), |s| {
        s.hypothesis_strategy = HypothesisStrategy::Continuously;
        s.hypothesis_frequency = Duration::from_secs(10);
        s.fail_fast = true;
    })
    .await;
    let during: Vec<bool> = journal.steady_states.during.iter().map(|s| s.steady_state_met).collect();
    assert_eq!(during, [true, false]);
    assert_eq!(journal.status, JournalStatus::Failed);
    assert_eq!(run_exit_code(&journal), 1);
}

#[tokio::test(start_paused = true)]
async fn a_missing_environment_variable_is_reported_at_its_declaration() {
    let experiment = validate(&doc(REBOOT, "r.yaml"), &FakeKafka::new()).unwrap();
    let env = |k: &str| (k == "BOOTSTRAP_SERVERS").then(|| "b:9092".to_owned());
    let errors = super::config::resolve_vars(&experiment, &Default::default(), &env).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        "$.configuration.cluster_arn: Configuration makes reference to an environment key that does not exist: MSK_CLUSTER_ARN"
    );
}

/// Runs the corrupt-message seed continuously on a fresh paused runtime.
fn seed_journal() -> String {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    runtime.block_on(async {
        run_seed(CORRUPT, &FakeKafka::new(), |s| s.hypothesis_strategy = HypothesisStrategy::Continuously)
            .await
            .to_json_pretty()
    })
}

#[test]
fn seed_journals_are_byte_identical_run_to_run() {
    let first = seed_journal();
    assert_eq!(first, seed_journal());
    let journal: Journal = serde_json::from_str(&first).unwrap();
    assert_eq!(journal.steady_states.during.len(), 121, "one sample a second over the 120 s pause");
}
