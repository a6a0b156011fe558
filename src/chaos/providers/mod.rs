//! chaoslab's `python` providers and controls, implemented natively.
//!
//! Experiments stay valid Chaos Toolkit files: our actions and probes are written as `type: python`
//! providers (`module: chaoslab.actions`, `func: apply_fault`, …). The native runner resolves them
//! here; the Python package in `ext/python` implements the same functions for the real `chaos run` by
//! calling `POST /api/chaos/call`, which lands here too. The seed experiments' `chaoskafka.*` probes,
//! actions and control and `chaosaws.msk.actions.reboot_msk_broker` map onto the embedded bus with the
//! same arguments and return shapes ([`kafka`], [`aws`]).
//!
//! A [`NativeProviders`] either acts on a pipeline in this process ([`Backend::Local`]) or forwards every
//! call to a running chaoslab ([`Backend::Remote`]).

pub mod aws;
pub mod chaoslab;
pub mod control;
pub mod kafka;
pub mod safeguards;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::chaos::experiment::model::{Configuration, Secrets};
use crate::chaos::experiment::{ActivityError, PythonProviders};
use crate::orders::http::ApiClient;
use crate::topology::Pipeline;

/// One parameter of a provider function.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Param {
    /// Name.
    pub name: &'static str,
    /// Python type as `discover` shows it.
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// Without a default.
    pub required: bool,
}

/// One provider function.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Function {
    /// Python module.
    pub module: &'static str,
    /// Function name.
    pub func: &'static str,
    /// `action` or `probe`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Parameters.
    pub params: &'static [Param],
    /// What it returns.
    pub returns: &'static str,
    /// One line on what it does.
    pub doc: &'static str,
}

const fn req(name: &'static str, ty: &'static str) -> Param {
    Param { name, ty, required: true }
}
const fn opt(name: &'static str, ty: &'static str) -> Param {
    Param { name, ty, required: false }
}

/// Every function chaoslab provides, by module.
pub const FUNCTIONS: &[Function] = &[
    Function {
        module: "chaoslab.actions",
        func: "apply_fault",
        kind: "action",
        params: &[
            req("kind", "str"),
            opt("target", "str"),
            opt("mode", "str"),
            opt("value", "str"),
            opt("duration", "str"),
            opt("parameters", "Dict[str, Any]"),
        ],
        returns: "Dict[str, Any]",
        doc: "Applies a fault from the catalogue (see `chaoslab fault kinds`); returns its record.",
    },
    Function {
        module: "chaoslab.actions",
        func: "remove_fault",
        kind: "action",
        params: &[req("fault_id", "str")],
        returns: "Dict[str, Any]",
        doc: "Removes an active fault.",
    },
    Function {
        module: "chaoslab.actions",
        func: "remove_all_faults",
        kind: "action",
        params: &[],
        returns: "List[Dict[str, Any]]",
        doc: "Removes every active fault.",
    },
    Function {
        module: "chaoslab.actions",
        func: "stop_component",
        kind: "action",
        params: &[req("name", "str")],
        returns: "Dict[str, Any]",
        doc: "Stops a component until started.",
    },
    Function {
        module: "chaoslab.actions",
        func: "start_component",
        kind: "action",
        params: &[req("name", "str")],
        returns: "Dict[str, Any]",
        doc: "Starts a stopped component.",
    },
    Function {
        module: "chaoslab.actions",
        func: "crash_component",
        kind: "action",
        params: &[req("name", "str")],
        returns: "Dict[str, Any]",
        doc: "Crashes a component; its restart policy decides what follows.",
    },
    Function {
        module: "chaoslab.actions",
        func: "restart_component",
        kind: "action",
        params: &[req("name", "str")],
        returns: "Dict[str, Any]",
        doc: "Restarts a component.",
    },
    Function {
        module: "chaoslab.probes",
        func: "query_metric",
        kind: "probe",
        params: &[req("query", "str")],
        returns: "Any",
        doc: "Evaluates a PromQL expression now: a number for a single sample or scalar, else a list of {metric, value}.",
    },
    Function {
        module: "chaoslab.probes",
        func: "component_health",
        kind: "probe",
        params: &[req("name", "str")],
        returns: "Dict[str, Any]",
        doc: "State, readiness, restarts of a component.",
    },
    Function {
        module: "chaoslab.probes",
        func: "component_up",
        kind: "probe",
        params: &[req("name", "str")],
        returns: "bool",
        doc: "True when the component runs and is ready.",
    },
    Function {
        module: "chaoslab.probes",
        func: "list_faults",
        kind: "probe",
        params: &[],
        returns: "List[Dict[str, Any]]",
        doc: "The faults in force.",
    },
    Function {
        module: "chaoslab.probes",
        func: "describe_topic",
        kind: "probe",
        params: &[req("topic", "str")],
        returns: "Dict[str, Any]",
        doc: "Partitions, leaders, replicas and ISR of a bus topic.",
    },
    Function {
        module: "chaoslab.probes",
        func: "consumer_lag",
        kind: "probe",
        params: &[req("group", "str"), opt("topic", "str")],
        returns: "int",
        doc: "Total lag of a consumer group (on one topic, or all it has offsets on).",
    },
    Function {
        module: "chaoslab.probes",
        func: "incidents",
        kind: "probe",
        params: &[opt("name", "str")],
        returns: "List[Dict[str, Any]]",
        doc: "Incidents the reasoner reported so far (all, or those of one name).",
    },
    Function {
        module: "chaoslab.probes",
        func: "order_counts",
        kind: "probe",
        params: &[],
        returns: "Dict[str, int]",
        doc: "Orders in each state.",
    },
    Function {
        module: "chaoskafka.probes",
        func: "describe_kafka_topic",
        kind: "probe",
        params: &[req("bootstrap_servers", "str"), req("topic", "str")],
        returns: "str",
        doc: "chaostoolkit-kafka: the topic as a JSON string.",
    },
    Function {
        module: "chaoskafka.probes",
        func: "all_replicas_in_sync",
        kind: "probe",
        params: &[req("bootstrap_servers", "str"), req("topic", "str")],
        returns: "bool",
        doc: "chaostoolkit-kafka: ISR equals replicas for every partition.",
    },
    Function {
        module: "chaoskafka.probes",
        func: "topic_has_no_offline_partitions",
        kind: "probe",
        params: &[req("bootstrap_servers", "str"), req("topic", "str")],
        returns: "bool",
        doc: "chaostoolkit-kafka: every partition has a leader and an ISR.",
    },
    Function {
        module: "chaoskafka.probes",
        func: "cluster_doesnt_have_under_replicated_partitions",
        kind: "probe",
        params: &[req("bootstrap_servers", "str")],
        returns: "bool",
        doc: "chaostoolkit-kafka: no partition of any topic is under-replicated.",
    },
    Function {
        module: "chaoskafka.probes",
        func: "check_consumer_lag_under_threshold",
        kind: "probe",
        params: &[
            req("bootstrap_servers", "str"),
            req("group_id", "str"),
            req("topic", "str"),
            opt("threshold", "int"),
            opt("partition", "int"),
        ],
        returns: "bool",
        doc: "chaostoolkit-kafka: threshold > lag, for all partitions or one.",
    },
    Function {
        module: "chaoskafka.actions",
        func: "delete_kafka_topic",
        kind: "action",
        params: &[req("bootstrap_servers", "str"), req("topic", "str")],
        returns: "bool",
        doc: "chaostoolkit-kafka: deletes a topic.",
    },
    Function {
        module: "chaoskafka.actions",
        func: "rebalance_consumer_group",
        kind: "action",
        params: &[req("bootstrap_servers", "str"), req("topic", "str"), req("group_id", "str")],
        returns: "bool",
        doc: "chaostoolkit-kafka: joins the group for 3 s, forcing a rebalance.",
    },
    Function {
        module: "chaoskafka.actions",
        func: "delete_consumer_group",
        kind: "action",
        params: &[req("bootstrap_servers", "str"), req("group_id", "str")],
        returns: "bool",
        doc: "chaostoolkit-kafka: deletes an empty group.",
    },
    Function {
        module: "chaoskafka.actions",
        func: "produce_messages",
        kind: "action",
        params: &[
            req("bootstrap_servers", "str"),
            opt("client_id", "str"),
            req("topic", "str"),
            opt("messages", "List[str]"),
            opt("partition", "int"),
        ],
        returns: "List[Dict[str, Any]]",
        doc: "chaostoolkit-kafka: produces UTF-8 strings to one partition.",
    },
    Function {
        module: "chaoskafka.actions",
        func: "consume_messages",
        kind: "action",
        params: &[
            req("bootstrap_servers", "str"),
            opt("group_id", "str"),
            req("topic", "str"),
            opt("partition", "int"),
            opt("offset", "int"),
            opt("num_messages", "int"),
        ],
        returns: "List[Dict[str, Any]]",
        doc: "chaostoolkit-kafka: consumes and commits messages of one partition as the group.",
    },
    Function {
        module: "chaosaws.msk.actions",
        func: "reboot_msk_broker",
        kind: "action",
        params: &[req("cluster_arn", "str"), req("broker_ids", "List[str]"), opt("client", "Any")],
        returns: "Dict[str, Any]",
        doc: "chaostoolkit-aws: reboots brokers (here: KAFKA-<id> of the embedded bus).",
    },
];

/// Looks a function up.
pub fn function(module: &str, func: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.module == module && f.func == func)
}

/// Where calls go.
#[derive(Clone)]
pub enum Backend {
    /// A pipeline in this process.
    Local(Arc<Pipeline>),
    /// A running chaoslab, through `POST /api/chaos/call`.
    Remote {
        /// Client for its base URL.
        client: ApiClient,
        /// Bearer token, if the control plane needs one.
        token: Option<String>,
    },
}

/// chaoslab's [`PythonProviders`].
#[derive(Clone)]
pub struct NativeProviders {
    backend: Backend,
}

impl NativeProviders {
    /// Providers over `backend`.
    pub fn new(backend: Backend) -> Self {
        NativeProviders { backend }
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }
}

/// Reads arguments the way a Python function receives them.
pub(crate) struct Args<'a>(pub &'a Map<String, Value>);

impl Args<'_> {
    pub fn str(&self, name: &str) -> Result<String, ActivityError> {
        match self.0.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(other) => {
                Err(ActivityError::failed(format!("argument {name}: expected a string, got {other}")))
            }
            None => Err(ActivityError::failed(format!("missing argument {name}"))),
        }
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<String>, ActivityError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.str(name).map(Some),
        }
    }

    /// An integer, also from a string (substituted `${…}` values often are strings).
    pub fn int(&self, name: &str, default: Option<i64>) -> Result<i64, ActivityError> {
        match self.0.get(name) {
            None | Some(Value::Null) => {
                default.ok_or_else(|| ActivityError::failed(format!("missing argument {name}")))
            }
            Some(Value::Number(n)) => n
                .as_i64()
                .ok_or_else(|| ActivityError::failed(format!("argument {name}: {n} is not an integer"))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map_err(|_| ActivityError::failed(format!("argument {name}: {s:?} is not an integer"))),
            Some(other) => {
                Err(ActivityError::failed(format!("argument {name}: expected an integer, got {other}")))
            }
        }
    }

    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, ActivityError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.int(name, None).map(Some),
        }
    }

    pub fn strings(&self, name: &str) -> Result<Vec<String>, ActivityError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(ActivityError::failed(format!("argument {name}: {other} is not a string"))),
                })
                .collect(),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(other) => {
                Err(ActivityError::failed(format!("argument {name}: expected a list, got {other}")))
            }
        }
    }
}

/// Runs a function against a pipeline in this process (also what `/api/chaos/call` does).
pub async fn call_local(
    p: &Pipeline,
    module: &str,
    func: &str,
    args: &Map<String, Value>,
) -> Result<Value, ActivityError> {
    let a = Args(args);
    match module {
        "chaoslab.actions" | "chaoslab.probes" => chaoslab::call(p, func, &a).await,
        "chaoskafka.probes" | "chaoskafka.actions" => kafka::call(p, module, func, &a).await,
        "chaosaws.msk.actions" => aws::call(p, func, &a).await,
        _ => Err(ActivityError::UnknownFunction { module: module.to_owned(), func: func.to_owned() }),
    }
}

async fn call_remote(
    client: &ApiClient,
    token: Option<&str>,
    module: &str,
    func: &str,
    args: &Value,
) -> Result<Value, ActivityError> {
    let body = json!({"module": module, "func": func, "arguments": args});
    let headers: Vec<(hyper::header::HeaderName, String)> =
        token.map(|t| (hyper::header::AUTHORIZATION, format!("Bearer {t}"))).into_iter().collect();
    let response = client
        .send_with_headers(
            hyper::Method::POST,
            "/api/chaos/call",
            Some(body.to_string().into_bytes()),
            &headers,
        )
        .await
        .map_err(|e| ActivityError::failed(e.to_string()))?;
    let parsed: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    if response.status.is_success() {
        Ok(parsed.get("output").cloned().unwrap_or(Value::Null))
    } else {
        let why = parsed
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&response.body).into_owned());
        Err(ActivityError::failed(format!("{module}.{func}: HTTP {}: {why}", response.status.as_u16())))
    }
}

impl PythonProviders for NativeProviders {
    fn call(
        &self,
        module: &str,
        func: &str,
        args: &Value,
        _config: &Configuration,
        _secrets: &Secrets,
    ) -> Pin<Box<dyn Future<Output = Result<Value, ActivityError>> + Send + '_>> {
        let (module, func, args) = (module.to_owned(), func.to_owned(), args.clone());
        Box::pin(async move {
            let empty = Map::new();
            match &self.backend {
                Backend::Local(p) => call_local(p, &module, &func, args.as_object().unwrap_or(&empty)).await,
                Backend::Remote { client, token } => {
                    call_remote(client, token.as_deref(), &module, &func, &args).await
                }
            }
        })
    }

    fn knows(&self, module: &str, func: &str) -> bool {
        function(module, func).is_some()
    }

    fn check_arguments(
        &self,
        module: &str,
        func: &str,
        arguments: &Map<String, Value>,
    ) -> Result<(), String> {
        let Some(f) = function(module, func) else { return Ok(()) };
        let mut problems = Vec::new();
        for name in arguments.keys() {
            if !f.params.iter().any(|p| p.name == name) {
                problems.push(format!("argument '{name}' is not part of the function signature"));
            }
        }
        for p in f.params.iter().filter(|p| p.required) {
            if !arguments.contains_key(p.name) {
                problems.push(format!("required argument '{}' is missing", p.name));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
    }
}

/// The discovery document (`chaos discover`'s shape): our activities, with their arguments.
pub fn discovery() -> Value {
    let activities: Vec<Value> = FUNCTIONS
        .iter()
        .map(|f| {
            let arguments: Vec<Value> = f
                .params
                .iter()
                .map(|p| {
                    let mut a = json!({"name": p.name, "type": p.ty});
                    if !p.required {
                        a["default"] = Value::Null;
                    }
                    a
                })
                .collect();
            json!({
                "type": f.kind,
                "name": f.func,
                "module": f.module,
                "doc": f.doc,
                "arguments": arguments,
                "return_type": f.returns,
                "mod": f.module,
            })
        })
        .collect();
    let faults: Vec<Value> = crate::chaos::faults::CATALOGUE
        .iter()
        .map(|k| serde_json::to_value(k).unwrap_or(Value::Null))
        .collect();
    json!({
        "chaoslib_version": format!("chaoslab-{}", env!("CARGO_PKG_VERSION")),
        "target": "chaoslab",
        "discovery": {
            "extensions": [{
                "name": "chaostoolkit-chaoslab",
                "version": env!("CARGO_PKG_VERSION"),
                "summary": "chaoslab's actions and probes, and the chaoskafka / chaosaws.msk functions it maps onto its bus",
            }],
        },
        "activities": activities,
        "system": {"faults": faults},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_like_python() {
        let p = NativeProviders::new(Backend::Remote {
            client: ApiClient::remote("http://127.0.0.1:9", std::time::Duration::from_secs(1)).unwrap(),
            token: None,
        });
        assert!(p.knows("chaoskafka.probes", "check_consumer_lag_under_threshold"));
        assert!(!p.knows("chaoskafka.probes", "nope"));
        let mut args = Map::new();
        args.insert("bootstrap_servers".into(), json!("x"));
        args.insert("topic".into(), json!("t"));
        args.insert("colour".into(), json!("red"));
        let err =
            p.check_arguments("chaoskafka.probes", "check_consumer_lag_under_threshold", &args).unwrap_err();
        assert!(err.contains("argument 'colour' is not part of the function signature"), "{err}");
        assert!(err.contains("required argument 'group_id' is missing"), "{err}");
    }

    #[test]
    fn discovery_lists_every_function_and_fault_kind() {
        let d = discovery();
        assert_eq!(d["activities"].as_array().unwrap().len(), FUNCTIONS.len());
        assert!(d["system"]["faults"].as_array().unwrap().iter().any(|k| k["name"] == "network-delay"));
    }
}
