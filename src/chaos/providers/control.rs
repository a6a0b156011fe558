//! The controls chaoslab implements: `chaoskafka.controls.get_production_offsets` and
//! `chaosaddons.controls.safeguards` (see [`super::safeguards`]).
//!
//! `get_production_offsets`'s `after_activity_control` reads the produce result (`state.output`, a
//! list of `{topic, partition, offset}`) and writes `partition` (the first message's), `earliest` (the
//! lowest offset) and `num_messages` into the live configuration, for the rollback to substitute.

use std::ops::ControlFlow;
use std::sync::Arc;

use serde_json::{Value, json};

use super::safeguards::{self, SAFEGUARDS};
use crate::chaos::experiment::config::Vars;
use crate::chaos::experiment::control::{Controls, Hook, Interrupt};
use crate::chaos::experiment::model::{ControlDecl, ControlLevel, ControlScope};
use crate::chaos::experiment::provider::{BoxFuture, PythonProviders};
use crate::chaos::experiment::validate::{ValidationError, validate_activity};
use crate::chaos::experiment::watch::{Probing, Watch};

/// The module name of the control.
pub const GET_PRODUCTION_OFFSETS: &str = "chaoskafka.controls.get_production_offsets";

/// chaoslab's controls.
#[derive(Clone, Copy, Debug, Default)]
pub struct NativeControls;

impl Controls for NativeControls {
    fn knows(&self, module: &str) -> bool {
        module == GET_PRODUCTION_OFFSETS || module == SAFEGUARDS
    }

    fn apply<'a>(&'a self, hook: Hook<'a>, vars: &'a mut Vars) -> BoxFuture<'a, ControlFlow<Interrupt>> {
        Box::pin(async move {
            if hook.control.module == GET_PRODUCTION_OFFSETS
                && hook.level == ControlLevel::Activity
                && hook.scope == ControlScope::After
                && let Some(records) = hook.state.and_then(|s| s.get("output")).and_then(Value::as_array)
                && let Some(first) = records.first()
            {
                let offsets: Vec<u64> =
                    records.iter().filter_map(|r| r.get("offset").and_then(Value::as_u64)).collect();
                vars.configuration
                    .insert("partition".into(), first.get("partition").cloned().unwrap_or(Value::Null));
                vars.configuration.insert("earliest".into(), json!(offsets.iter().min()));
                vars.configuration.insert("num_messages".into(), json!(records.len()));
            }
            // The safeguards' hooks only start and stop their guardian: see `watch`.
            ControlFlow::Continue(())
        })
    }

    fn validate(&self, raw: &Value, path: &str, providers: &dyn PythonProviders) -> Vec<ValidationError> {
        match raw.pointer("/provider/module").and_then(Value::as_str) {
            Some(SAFEGUARDS) => {
                safeguards::validate(raw, path, &|probe, at| validate_activity(probe, at, providers))
            }
            _ => Vec::new(),
        }
    }

    fn watch<'a>(
        &'a self,
        control: &ControlDecl,
        probing: Arc<dyn Probing + 'a>,
        watch: Watch,
    ) -> Option<BoxFuture<'a, ()>> {
        if control.module == SAFEGUARDS { safeguards::guardian(control, probing, watch) } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_its_modules() {
        assert!(NativeControls.knows(GET_PRODUCTION_OFFSETS));
        assert!(NativeControls.knows(SAFEGUARDS));
        assert!(!NativeControls.knows("chaosaddons.controls.repeat"));
    }
}
