//! Running a Chaos Toolkit experiment against chaoslab: what `experiment run`, `experiment verify` and
//! `POST /execute_experiment` share.
//!
//! Validation (every problem, with its JSON path), variable resolution (environment, `--var`,
//! `--var-file`; the seed experiments' `BOOTSTRAP_SERVERS` and `MSK_CLUSTER_ARN` are satisfied by the
//! simulator when the environment lacks them), run settings, then the engine with chaoslab's native
//! providers and controls.

use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::experiment::config::process_env;
use super::experiment::model::Runtime;
use super::experiment::verify::{VerificationSummary, run_verification, verification_of};
use super::experiment::{
    Experiment, Journal, Now, RunOptions, RunSettings, ValidationError, VarOverrides, resolve_vars,
    run_experiment, validate::validate_with_controls,
};
use super::providers::NativeProviders;
use super::providers::control::NativeControls;

/// What the simulator puts in place of environment variables the seed experiments expect.
#[derive(Clone, Debug)]
pub struct SimEnv {
    /// `BOOTSTRAP_SERVERS`.
    pub bootstrap_servers: String,
    /// `MSK_CLUSTER_ARN`.
    pub msk_cluster_arn: String,
}

impl SimEnv {
    /// Values naming the embedded bus of a run with `seed`.
    pub fn for_bus(bootstrap: Option<&str>, seed: u64) -> Self {
        SimEnv {
            bootstrap_servers: bootstrap.unwrap_or("chaoslab://KAFKA-1,KAFKA-2,KAFKA-3").to_owned(),
            msk_cluster_arn: format!("arn:aws:kafka:local:000000000000:cluster/chaoslab/{seed}"),
        }
    }

    /// The environment of a run of `flow`: its cluster's `bootstrap` when it names a real one.
    pub fn for_flow(flow: &crate::topology::flow::Flow, seed: u64) -> Self {
        let bootstrap = flow
            .each::<crate::bus::kafka_cluster::KafkaClusterConfig>()
            .find_map(|(_, c)| c.bootstrap.clone());
        SimEnv::for_bus(bootstrap.as_deref(), seed)
    }

    fn lookup(&self, name: &str) -> Option<String> {
        process_env(name).or_else(|| match name {
            "BOOTSTRAP_SERVERS" => Some(self.bootstrap_servers.clone()),
            "MSK_CLUSTER_ARN" => Some(self.msk_cluster_arn.clone()),
            _ => None,
        })
    }
}

/// Validates `raw` with chaoslab's providers and controls.
pub fn validate(raw: &Value, providers: &NativeProviders) -> Result<Experiment, Vec<ValidationError>> {
    validate_with_controls(raw, providers, &NativeControls)
}

/// Validates and prepares settings; errors list every problem.
pub fn prepare(
    raw: &Value,
    providers: &NativeProviders,
    options: &RunOptions,
    overrides: &VarOverrides,
    env: &SimEnv,
) -> Result<(Experiment, RunSettings), Vec<ValidationError>> {
    let experiment = validate(raw, providers)?;
    let vars = resolve_vars(&experiment, overrides, &|name| env.lookup(name))?;
    let settings = RunSettings::resolve(&experiment, options, &Runtime::default(), vars);
    Ok((experiment, settings))
}

/// Runs a prepared experiment.
pub async fn run(
    experiment: &Experiment,
    settings: RunSettings,
    providers: &NativeProviders,
    cancel: CancellationToken,
    now: Now,
) -> Journal {
    run_experiment(experiment, settings, providers, &NativeControls, cancel, now).await
}

/// Runs a prepared experiment's ChaosIQ verification.
pub async fn verify(
    experiment: &Experiment,
    settings: RunSettings,
    providers: &NativeProviders,
    cancel: CancellationToken,
    now: Now,
) -> Result<(Journal, VerificationSummary), Vec<ValidationError>> {
    let verification = verification_of(experiment)?;
    Ok(run_verification(experiment, &verification, settings, providers, &NativeControls, cancel, now).await)
}

/// The calendar clock of a pipeline, for journals.
pub fn now_of(clock: &crate::kernel::clock::Clock) -> Now {
    let clock = clock.clone();
    Arc::new(move || clock.now())
}

/// A skeleton experiment for `experiment init`: valid as is, and showing each part of the format with
/// chaoslab's providers.
pub fn template() -> Value {
    serde_json::json!({
        "title": "FLINK keeps averaging while MQTT_BROKER->FLINK is slow",
        "description": "Adds 500 ms of latency between the broker and FLINK for 30 s; FLINK must stay up throughout.",
        "tags": ["chaoslab", "network"],
        "steady-state-hypothesis": {
            "title": "FLINK and the broker are up",
            "probes": [
                {"type": "probe", "name": "flink-up", "tolerance": true,
                 "provider": {"type": "python", "module": "chaoslab.probes", "func": "component_up", "arguments": {"name": "FLINK"}}},
                {"type": "probe", "name": "broker-up", "tolerance": true,
                 "provider": {"type": "python", "module": "chaoslab.probes", "func": "component_up", "arguments": {"name": "MQTT_BROKER"}}}
            ]
        },
        "method": [
            {"type": "action", "name": "slow-broker-to-flink",
             "provider": {"type": "python", "module": "chaoslab.actions", "func": "apply_fault",
                          "arguments": {"kind": "network-delay", "target": "MQTT_BROKER->FLINK", "duration": "30s",
                                        "parameters": {"latency": "500ms"}}},
             "pauses": {"after": 35}}
        ],
        "rollbacks": [
            {"type": "action", "name": "remove-faults",
             "provider": {"type": "python", "module": "chaoslab.actions", "func": "remove_all_faults"}}
        ]
    })
}
