//! The component kinds a flow may use: the one list that dispatches a `kind = "…"` to its config type.
//!
//! Adding a kind: write its file (config type implementing [`ComponentKind`](crate::topology::component::ComponentKind), build, runtime, metrics,
//! tests), add one line here, and use it in a flow file. Nothing else names it.
//!
//! Also the flows compiled into the binary, and the entry points that read flows with this catalog.

use std::path::{Path, PathBuf};

use crate::config::ProblemsError;
use crate::topology::component::KindEntry;
use crate::topology::flow::Flow;

/// Every kind, one line each.
pub const KINDS: &[KindEntry] = &[
    KindEntry::of::<crate::sources::sensor_replay::SensorReplayConfig>(),
    KindEntry::of::<crate::transport::mqtt::mqtt_broker::MqttBrokerConfig>(),
    KindEntry::of::<crate::transforms::count_window_average::CountWindowAverageConfig>(),
    KindEntry::of::<crate::transforms::mqtt_ingest::MqttIngestConfig>(),
    KindEntry::of::<crate::sinks::file_store::FileStoreConfig>(),
    KindEntry::of::<crate::sinks::quality_gate::QualityGateConfig>(),
    KindEntry::of::<crate::sinks::document_index::DocumentIndexConfig>(),
    KindEntry::of::<crate::analytics::kmeans::KmeansConfig>(),
    KindEntry::of::<crate::bus::kafka_cluster::KafkaClusterConfig>(),
    KindEntry::of::<crate::orders::order_store::OrderStoreConfig>(),
    KindEntry::of::<crate::orders::order_api::OrderApiConfig>(),
    KindEntry::of::<crate::orders::outbox_relay::OutboxRelayConfig>(),
    KindEntry::of::<crate::orders::fraud_detector::FraudDetectorConfig>(),
    KindEntry::of::<crate::orders::order_updater::OrderUpdaterConfig>(),
    KindEntry::of::<crate::orders::order_reverser::OrderReverserConfig>(),
    KindEntry::of::<crate::orders::load_generator::LoadGeneratorConfig>(),
    KindEntry::of::<crate::monitoring::log_router::LogRouterConfig>(),
    KindEntry::of::<crate::monitoring::metrics_store::MetricsStoreConfig>(),
    KindEntry::of::<crate::reasoning::incident_reasoner::IncidentReasonerConfig>(),
    KindEntry::of::<crate::process_mining::event_source::EventSourceConfig>(),
    KindEntry::of::<crate::process_mining::heuristics_miner::HeuristicsMinerConfig>(),
    KindEntry::of::<crate::process_mining::conformance::ConformanceConfig>(),
];

/// The reference pipeline, compiled into the binary.
pub const REFERENCE_FLOW: &str = include_str!("../flows/reference.toml");

/// The process-mining study's flow, compiled into the binary.
pub const PROCESS_MINING_FLOW: &str = include_str!("../flows/process-mining.toml");

/// Flows an `extends` may name without a path.
pub const BUILTIN_FLOWS: &[(&str, &str)] =
    &[("reference.toml", REFERENCE_FLOW), ("process-mining.toml", PROCESS_MINING_FLOW)];

/// The built-in reference pipeline.
pub fn reference_flow() -> Result<Flow, ProblemsError> {
    parse_flow(REFERENCE_FLOW, "flows/reference.toml (built in)", None)
}

/// Reads and checks a flow file.
pub fn load_flow(path: &Path) -> Result<Flow, ProblemsError> {
    Flow::load(path, &KINDS, BUILTIN_FLOWS)
}

/// Parses and checks flow text (`base_dir` resolves its relative paths).
pub fn parse_flow(text: &str, source: &str, base_dir: Option<PathBuf>) -> Result<Flow, ProblemsError> {
    Flow::parse(text, source, base_dir, &KINDS, BUILTIN_FLOWS)
}

#[cfg(test)]
mod tests {
    //! Flow files read with the shipped kinds: wiring, every problem at once, `extends`, edits.

    use super::{REFERENCE_FLOW, load_flow, parse_flow};
    use crate::config::ProblemsError;

    fn problems(text: &str) -> Vec<String> {
        match parse_flow(text, "x.toml", None) {
            Ok(_) => Vec::new(),
            Err(ProblemsError(all)) => all.iter().map(ToString::to_string).collect(),
        }
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.trim_start().starts_with(needle)).unwrap() + 1
    }

    #[test]
    fn reference_flow_parses_and_wires() {
        let flow = crate::catalog::reference_flow().unwrap();
        let edges: Vec<String> = flow.edges().into_iter().map(|(f, t)| format!("{f}->{t}")).collect();
        for e in [
            "SENSOR->MQTT_BROKER",
            "MQTT_BROKER->FLINK",
            "MQTT_BROKER->NIFI",
            "MQTT_BROKER->NODE-RED",
            "FLINK->ELASTICSEARCH",
            "NIFI->HADOOP",
            "HADOOP->SPARK",
            "POKE-ORDER-API->POKE-ORDERS-DB",
            "KAFKA->DETECTIVE-PIKACHU-2",
            "DETECTIVE-PIKACHU-2->KAFKA",
            "ORDER-UPDATER->POKE-ORDER-API",
            "FLUENTD->ELASTICSEARCH",
            "KAFKA->REASONER",
        ] {
            assert!(edges.contains(&e.to_string()), "missing {e} in {edges:?}");
        }
        let all = flow.all_components();
        for c in ["KAFKA-1", "KAFKA-3", "KAFKA", "DETECTIVE-PIKACHU-0", "OCTILLERY", "REASONER"] {
            assert!(all.contains(&c.to_string()), "{c} in {all:?}");
        }
        assert_eq!(flow.kind_of("KAFKA-2"), Some("kafka-cluster"));
        let order = flow.start_order();
        let pos = |n: &str| order.iter().position(|o| *o == n).unwrap();
        assert!(pos("MQTT_BROKER") < pos("FLINK") && pos("ELASTICSEARCH") < pos("FLINK"));
        assert!(pos("KAFKA") < pos("POKE-ORDER-API") && pos("POKE-ORDER-API") < pos("ORDER-UPDATER"));
        assert_eq!(&order[order.len() - 2..], ["OCTILLERY", "SENSOR"], "sources start last");
    }

    #[test]
    fn every_problem_is_reported_at_once_with_file_line_and_key() {
        let text = REFERENCE_FLOW
            .replace("window = 10", "window = 0\nwindw = 3")
            .replace("output = \"ELASTICSEARCH\"", "output = \"HADOOP\"")
            .replace("dir = \"hdfs/nifi\"", "dir = \"../elsewhere\"")
            .replace("rate_ms = 1000", "rate_ms = \"fast\"");
        let text = format!("{text}\n[links.\"FLINK->NIFI\"]\nloss = 0.5\n\n[bus]\nbrokers = 3\n");
        let found = problems(&text);
        let expect = [
            format!(
                "x.toml:{}:components.FLINK.windw: unknown key for a count-window-average",
                line_of(&text, "windw")
            ),
            format!("x.toml:{}:components.FLINK.window: must be at least 1", line_of(&text, "window = 0")),
            format!(
                "x.toml:{}:components.FLINK.output: \"HADOOP\" is a file-store, expected a document-index",
                line_of(&text, "output = \"HADOOP\"")
            ),
            format!(
                "x.toml:{}:components.HADOOP.dir: \"../elsewhere\" must be a relative path inside the output directory",
                line_of(&text, "dir = \"../elsewhere\"")
            ),
            format!(
                "x.toml:{}:components.HADOOP: more than one writer (FLINK->HADOOP, NIFI->HADOOP)",
                line_of(&text, "[components.HADOOP]")
            ),
            format!("x.toml:{}:components.SENSOR.rate_ms: invalid type", line_of(&text, "rate_ms")),
            format!(
                "x.toml:{}:links.\"FLINK->NIFI\": no such link in this flow",
                line_of(&text, "[links.\"FLINK->NIFI\"]")
            ),
            format!(
                "x.toml:{}:bus: this section is now a `kafka-cluster` component",
                line_of(&text, "[bus]")
            ),
        ];
        for e in &expect {
            assert!(
                found.iter().any(|f| f.starts_with(e.as_str())),
                "missing {e:?} in\n{}",
                found.join("\n")
            );
        }
        assert_eq!(found.len(), expect.len(), "{}", found.join("\n"));
    }

    #[test]
    fn schedule_and_link_problems_name_their_entry() {
        let text = format!(
            "{REFERENCE_FLOW}\n[links.\"MQTT_BROKER->FLINK\"]\nloss = 1.5\n\n[[schedule]]\nat = \"1m\"\naction = \"crash\"\ntarget = \"FLINK\"\nfor = \"1m\"\n\n[[schedule]]\nat = \"1m\"\naction = \"stop\"\ntarget = \"NOBODY\"\n"
        );
        let found = problems(&text);
        let at = |needle: &str, nth: usize| {
            text.lines().enumerate().filter(|(_, l)| l.starts_with(needle)).nth(nth).unwrap().0 + 1
        };
        assert!(
            found.iter().any(|f| f.starts_with(&format!(
                "x.toml:{}:links.\"MQTT_BROKER->FLINK\": loss must be between 0 and 1",
                at("[links.", 0)
            ))),
            "{found:?}"
        );
        assert!(
            found.iter().any(|f| f.starts_with(&format!(
                "x.toml:{}:schedule[0].for: only stop and link-faults",
                at("for = ", 0)
            ))),
            "{found:?}"
        );
        assert!(
            found.iter().any(|f| f.starts_with(&format!(
                "x.toml:{}:schedule[1].target: no component named \"NOBODY\"",
                at("target = \"NOBODY\"", 0)
            ))),
            "{found:?}"
        );
        let text = format!("{REFERENCE_FLOW}\n[links.\"MQTT_BROKER->FLINK\"]\nlatency = \"400000years\"\n");
        assert!(problems(&text).iter().any(|p| p.contains("latency must be at most")));
        let text = REFERENCE_FLOW.replace("topic = \"customTopic\"\nwindow", "topic = \"a/#/b\"\nwindow");
        assert!(problems(&text).iter().any(|p| p.contains("components.FLINK.topic")));
    }

    #[test]
    fn extends_merges_tables_and_lines_point_into_the_right_file() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.toml");
        std::fs::write(&base, REFERENCE_FLOW).unwrap();
        let fixed = dir.path().join("fixed.toml");
        std::fs::write(
            &fixed,
            "extends = \"base.toml\"\n[pipeline]\nname = \"fixed\"\n[components.KAFKA.topics.poke-orders]\nreplication_factor = 3\nmin_insync_replicas = 2\nreplica_assignment = [[1,2,3],[3,1,2],[2,3,1]]\n",
        )
        .unwrap();
        let flow = load_flow(&fixed).unwrap();
        assert_eq!(flow.pipeline.name, "fixed");
        let kafka = flow.components["KAFKA"].get::<crate::bus::kafka_cluster::KafkaClusterConfig>().unwrap();
        let t = &kafka.topics["poke-orders"];
        assert_eq!((t.partitions, t.replication_factor, t.min_insync_replicas), (3, 3, 2));
        assert_eq!(flow.components.len(), crate::catalog::reference_flow().unwrap().components.len());

        std::fs::write(
            &fixed,
            "extends = \"base.toml\"\n[components.KAFKA.topics.poke-orders]\nreplication_factor = 4\n",
        )
        .unwrap();
        let err = load_flow(&fixed).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{}:3:components.KAFKA.topics.poke-orders.replication_factor: must be between 1 and the 3 brokers", fixed.display())),
            "{err}"
        );
        // A mistake in the base file is reported in the base file.
        std::fs::write(&base, REFERENCE_FLOW.replace("window = 10", "window = 0")).unwrap();
        std::fs::write(&fixed, "extends = \"base.toml\"\n").unwrap();
        let err = load_flow(&fixed).unwrap_err().to_string();
        let line = line_of(REFERENCE_FLOW, "window = 10");
        assert!(err.contains(&format!("{}:{line}:components.FLINK.window", base.display())), "{err}");
        std::fs::write(&fixed, "extends = \"missing.toml\"\n").unwrap();
        assert!(load_flow(&fixed).unwrap_err().to_string().contains("cannot find \"missing.toml\""));
        std::fs::write(&fixed, "extends = \"fixed.toml\"\n").unwrap();
        assert!(load_flow(&fixed).unwrap_err().to_string().contains("too deep"));
        std::fs::write(&fixed, "extends = \"reference.toml\"\n[components.OCTILLERY]\nwhat = 1\n").unwrap();
        let err = load_flow(&fixed).unwrap_err().to_string();
        assert!(err.contains("components.OCTILLERY.what: unknown key"), "{err}");
    }

    #[test]
    fn removing_a_component_takes_what_needs_it_and_spares_what_can_do_without() {
        let mut flow = crate::catalog::reference_flow().unwrap();
        let mut removed = flow.without(&["ELASTICSEARCH"]);
        removed.sort();
        assert_eq!(removed, ["ELASTICSEARCH", "FLINK"], "FLUENTD and REASONER only lose their index");
        assert!(flow.components.contains_key("REASONER"));
        let mut removed = flow.without(&["KAFKA"]);
        removed.sort();
        assert!(
            removed.contains(&"OCTILLERY".to_string()) && removed.contains(&"FLUENTD".to_string()),
            "{removed:?}"
        );
        assert!(flow.components.contains_key("POKE-ORDERS-DB"), "the store names no bus");
        flow.validate().unwrap();
    }

    #[test]
    fn components_carry_a_namespace_and_labels_like_pods() {
        let flow = crate::catalog::reference_flow().unwrap();
        let flink = &flow.components["FLINK"];
        assert_eq!((flink.namespace.as_str(), flink.labels["app"].as_str()), ("iot", "flink"));
        assert_eq!(flow.components["KAFKA"].namespace, "kafka");
        assert_eq!(flow.components["REASONER"].namespace, "monitoring");
        let pm = parse_flow(super::PROCESS_MINING_FLOW, "pm.toml", None).unwrap();
        let miner = &pm.components["HEURISTICS-MINER"];
        assert_eq!(
            (miner.namespace.as_str(), miner.labels["app"].as_str()),
            ("kafka", "heuristics-miner-flink")
        );
        let text = REFERENCE_FLOW.replace(
            "[components.FLINK]\n",
            "[components.FLINK]\nnamespace = \"Bad_NS\"\nlabels = { tier = \"-x\", app = \"flink-job\" }\n",
        );
        let found = problems(&text);
        assert!(
            found
                .iter()
                .any(|p| p.contains("components.FLINK.namespace: \"Bad_NS\" is not a namespace name")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.contains("components.FLINK.labels.tier: \"-x\" is not a label value")),
            "{found:?}"
        );
    }

    #[test]
    fn name_collisions_and_cycles_are_refused() {
        let text =
            format!("{REFERENCE_FLOW}\n[components.KAFKA-1]\nkind = \"document-index\"\ndir = \"x\"\n");
        assert!(
            problems(&text).iter().any(|p| p.contains("\"KAFKA-1\" is also one of KAFKA's")),
            "{:?}",
            problems(&text)
        );
        let text =
            "[pipeline]\nname = \"c\"\n[components.A]\nkind = \"order-updater\"\nbus = \"K\"\napi = \"A\"\n";
        assert!(problems(text).iter().any(|p| p.contains("no component named \"K\"")));
    }
}
