//! The fault catalogue: every kind chaoslab injects, with its family, what it acts on, its default
//! target and its parameters.

use serde::Serialize;

use super::http::FILTER;

/// The parameters every I/O kind takes.
const IO_SCOPE: &str = "methods (read, write; write), path (a glob over the store's paths: HADOOP's DAY/FILE, \
                        NODE-RED's file, ELASTICSEARCH's indices, the order store's orders and outbox tables)";

/// What a kind acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// Links (`FROM->TO`), or a component's links in a direction.
    Link,
    /// Any component.
    Component,
    /// Stores and sinks (components that write).
    Store,
    /// The order API (HTTP).
    Api,
    /// A Kafka broker of the embedded bus (`KAFKA-n`).
    KafkaBroker,
    /// The bus itself (a topic or group named in the parameters).
    Bus,
    /// The MQTT broker.
    MqttBroker,
}

/// One entry of the catalogue.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct KindInfo {
    /// The kind's name.
    pub name: &'static str,
    /// Its family (network, process, time, io, http, kafka, mqtt, data).
    pub category: &'static str,
    /// What it acts on.
    pub target: TargetKind,
    /// The target used when none is given: every component of a kind (`kind:order-api`).
    pub default_target: Option<&'static str>,
    /// True when the fault happens once (a kill, a deletion) instead of lasting.
    pub instant: bool,
    /// Parameters, `name=meaning` with defaults.
    pub parameters: &'static [&'static str],
    /// One line on what it does.
    pub description: &'static str,
}

const fn kind(
    name: &'static str,
    category: &'static str,
    target: TargetKind,
    default_target: Option<&'static str>,
    instant: bool,
    parameters: &'static [&'static str],
    description: &'static str,
) -> KindInfo {
    KindInfo { name, category, target, default_target, instant, parameters, description }
}

use TargetKind as T;

/// Every fault kind chaoslab injects.
pub const CATALOGUE: &[KindInfo] = &[
    kind(
        "network-delay",
        "network",
        T::Link,
        None,
        false,
        &["latency (e.g. 200ms)", "jitter (0)", "correlation (0-100, 0)", "direction (to|from|both, both)"],
        "Delays every message (netem delay).",
    ),
    kind(
        "network-loss",
        "network",
        T::Link,
        None,
        false,
        &["percent (0-100)", "direction"],
        "Drops messages at random.",
    ),
    kind(
        "network-duplicate",
        "network",
        T::Link,
        None,
        false,
        &["percent (0-100)", "direction"],
        "Delivers messages twice.",
    ),
    kind(
        "network-corrupt",
        "network",
        T::Link,
        None,
        false,
        &["percent (0-100)", "direction"],
        "Flips a bit in message payloads.",
    ),
    kind(
        "network-reorder",
        "network",
        T::Link,
        None,
        false,
        &["percent (0-100)", "latency (10ms)", "direction"],
        "Lets messages jump ahead of delayed ones.",
    ),
    kind(
        "network-partition",
        "network",
        T::Link,
        None,
        false,
        &["direction (to|from|both, both)"],
        "Cuts the links off completely.",
    ),
    kind(
        "network-bandwidth",
        "network",
        T::Link,
        None,
        false,
        &["rate (bytes/s, or 1kbps, 10mbps …)", "direction"],
        "Caps throughput.",
    ),
    kind(
        "process-kill",
        "process",
        T::Component,
        None,
        true,
        &["grace (0: a crash)"],
        "Crashes the component, and its restart policy brings it back; with a grace, stops it gracefully (killed after the grace) and starts it again, as Kubernetes deletes a pod and recreates it.",
    ),
    kind(
        "process-failure",
        "process",
        T::Component,
        None,
        false,
        &[],
        "Stops the component for the duration, then starts it.",
    ),
    kind(
        "process-pause",
        "process",
        T::Component,
        None,
        false,
        &[],
        "Freezes the component; it resumes with its backlog.",
    ),
    kind(
        "clock-offset",
        "time",
        T::Component,
        None,
        false,
        &["offset (e.g. -5m, 30s)"],
        "Shifts the component's calendar clock.",
    ),
    kind(
        "cpu-stress",
        "stress",
        T::Component,
        None,
        false,
        &["workers (1)", "load (0-100, 100)"],
        "CPU stressors beside the component: the work it models (a service rate) slows to 1/(1 + workers × load/100).",
    ),
    kind(
        "memory-stress",
        "stress",
        T::Component,
        None,
        false,
        &["megabytes (64)"],
        "Memory stressors beside the component: the process holds that much more memory for the duration.",
    ),
    kind(
        "io-latency",
        "io",
        T::Store,
        None,
        false,
        &["delay (e.g. 100ms)", "percent (100)", IO_SCOPE],
        "Slows down writes (or reads).",
    ),
    kind(
        "io-error",
        "io",
        T::Store,
        None,
        false,
        &["percent (0-100, 100)", "errno (5: EIO; 13: EACCES, …)", IO_SCOPE],
        "Fails writes (or reads) with an I/O error.",
    ),
    kind(
        "disk-full",
        "io",
        T::Store,
        None,
        false,
        &[IO_SCOPE],
        "Fails every write with 'No space left on device'.",
    ),
    kind(
        "io-mistake",
        "io",
        T::Store,
        None,
        false,
        &["filling (zero|random, zero)", "occurrences (1)", "length (1)", "percent (100)", IO_SCOPE],
        "Writes wrong data: up to `occurrences` runs of at most `length` bytes overwritten (where bytes are written).",
    ),
    kind(
        "http-abort",
        "http",
        T::Api,
        Some("kind:order-api"),
        false,
        &["code (500)", FILTER],
        "Answers with an error status instead of the handler (target request) or in place of its answer (target response).",
    ),
    kind(
        "http-delay",
        "http",
        T::Api,
        Some("kind:order-api"),
        false,
        &["delay (e.g. 2s)", FILTER],
        "Delays requests (or responses).",
    ),
    kind(
        "http-replace-body",
        "http",
        T::Api,
        Some("kind:order-api"),
        false,
        &["body (text or JSON)", FILTER],
        "Replaces response bodies.",
    ),
    kind(
        "http-replace",
        "http",
        T::Api,
        Some("kind:order-api"),
        false,
        &[
            "set-path, set-method, set-queries ({name: value}; requests)",
            "set-code (responses)",
            "set-body (text or JSON)",
            "set-headers ({name: value})",
            FILTER,
        ],
        "Chaos Mesh's HTTP replace: sets parts of requests (routed again when the path or method changes) or responses.",
    ),
    kind(
        "http-patch",
        "http",
        T::Api,
        Some("kind:order-api"),
        false,
        &[
            "merge-body (a JSON merge patch)",
            "add-headers ([[name, value]])",
            "add-queries (requests)",
            FILTER,
        ],
        "Chaos Mesh's HTTP patch: merges into JSON bodies and appends headers or query parameters.",
    ),
    kind(
        "assault-latency",
        "http",
        T::Api,
        Some("kind:order-api"),
        false,
        &["min (1s)", "max (3s)", FILTER],
        "Chaos Monkey latency assault: a random delay per request.",
    ),
    kind(
        "assault-exception",
        "http",
        T::Api,
        Some("kind:order-api"),
        false,
        &["code (500)", FILTER],
        "Chaos Monkey exception assault: the handler throws.",
    ),
    kind(
        "assault-kill",
        "http",
        T::Api,
        Some("kind:order-api"),
        false,
        &[],
        "Chaos Monkey kill-application assault: the service is down for the duration.",
    ),
    kind(
        "assault-memory",
        "http",
        T::Api,
        Some("kind:order-api"),
        false,
        &["megabytes (64)"],
        "Chaos Monkey memory assault: holds memory for the duration.",
    ),
    kind(
        "kafka-broker-down",
        "kafka",
        T::KafkaBroker,
        None,
        false,
        &[],
        "Stops a bus broker for the duration.",
    ),
    kind(
        "kafka-broker-reboot",
        "kafka",
        T::KafkaBroker,
        None,
        true,
        &["downtime (5s)"],
        "Reboots a bus broker (down, then up).",
    ),
    kind("kafka-delete-topic", "kafka", T::Bus, None, true, &["topic"], "Deletes a topic."),
    kind(
        "kafka-produce",
        "kafka",
        T::Bus,
        None,
        true,
        &["topic", "partition (0)", "messages (list of strings)"],
        "Produces raw bytes to a partition.",
    ),
    kind(
        "kafka-rebalance-group",
        "kafka",
        T::Bus,
        None,
        true,
        &["group", "topic"],
        "Joins the group briefly, forcing a rebalance.",
    ),
    kind(
        "kafka-delete-group",
        "kafka",
        T::Bus,
        None,
        true,
        &["group"],
        "Deletes a consumer group (it must be empty).",
    ),
    kind(
        "mqtt-broker-down",
        "mqtt",
        T::MqttBroker,
        Some("kind:mqtt-broker"),
        false,
        &[],
        "Stops the MQTT broker for the duration.",
    ),
    kind(
        "mqtt-broker-restart",
        "mqtt",
        T::MqttBroker,
        Some("kind:mqtt-broker"),
        true,
        &[],
        "Restarts the MQTT broker.",
    ),
    kind(
        "mqtt-drop-session",
        "mqtt",
        T::MqttBroker,
        Some("kind:mqtt-broker"),
        true,
        &["client_id"],
        "Closes one client's connection from the broker side.",
    ),
    kind(
        "data-drop-fields",
        "data",
        T::Link,
        Some("kind:sensor-replay"),
        false,
        &["fields (list, [humidity])", "percent (100)"],
        "Removes fields from sensor records.",
    ),
    kind(
        "data-none-values",
        "data",
        T::Link,
        Some("kind:sensor-replay"),
        false,
        &["fields (list, [humidity, temperature])", "percent (100)"],
        "Replaces values with the dataset's ' None'.",
    ),
    kind(
        "data-missing-time",
        "data",
        T::Link,
        Some("kind:sensor-replay"),
        false,
        &["percent (100)"],
        "Removes the time field.",
    ),
    kind(
        "data-out-of-order",
        "data",
        T::Link,
        Some("kind:sensor-replay"),
        false,
        &["shift (e.g. 1m)", "percent (100)"],
        "Moves timestamps into the past.",
    ),
];

/// Looks a kind up by name.
pub fn kind_info(name: &str) -> Option<&'static KindInfo> {
    CATALOGUE.iter().find(|k| k.name == name)
}
