//! The order services on a real Kafka protocol stack: librdkafka's mock cluster, reached through the
//! `kafka` feature's rdkafka backend (`--kafka-brokers`). Real produce, group consume and commit.

#![cfg(feature = "kafka")]

use std::time::Duration;

use chaoslab::bus::kafka_cluster::KafkaClusterConfig;
use chaoslab::orders::fraud::is_fraud;
use chaoslab::orders::fraud_detector::FraudDetectorConfig;
use chaoslab::runner::Run;
use hyper::{Method, StatusCode};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_decided_through_a_kafka_cluster() {
    let cluster: MockCluster<'static, DefaultProducerContext> = MockCluster::new(3).unwrap();
    let mut flow = chaoslab::catalog::reference_flow().unwrap();
    flow.without(&["SENSOR", "FLINK", "NIFI", "HADOOP", "NODE-RED", "SPARK", "ELASTICSEARCH", "OCTILLERY"]);
    let kafka = flow.components["KAFKA"].get::<KafkaClusterConfig>().unwrap().clone();
    for (name, t) in &kafka.topics {
        cluster.create_topic(name, t.partitions as i32, i32::from(t.replication_factor)).unwrap();
    }
    flow.configure::<FraudDetectorConfig>(|d| d.replicas = 1);
    flow.configure::<KafkaClusterConfig>(|k| k.bootstrap = Some(cluster.bootstrap_servers()));
    let dir = tempfile::tempdir().unwrap();
    let handle = Run::new(flow)
        .out(dir.path())
        .seed(1)
        .http_listen("127.0.0.1:0".parse().unwrap())
        .mqtt_listen("127.0.0.1:0".parse().unwrap())
        .forward_listen("127.0.0.1:0".parse().unwrap())
        .log_http_listen("127.0.0.1:0".parse().unwrap())
        .live()
        .await
        .unwrap();
    assert!(
        !handle.pipeline.supervisor.names().iter().any(|n| n.starts_with("KAFKA-")),
        "a real cluster's brokers are not components"
    );
    let api = chaoslab::orders::http::ApiClient::remote(
        &format!("http://{}", handle.http_addr),
        Duration::from_secs(10),
    )
    .unwrap();
    let orders =
        [(1, "pikachu", 10), (5, "pikachu", 10), (2, "ditto", 10), (3, "onix", 250), (4, "mew", 200)];
    let mut ids = Vec::new();
    for (user, pokemon, price) in orders {
        let body =
            format!(r#"{{"user_id": {user}, "pokemon": "{pokemon}", "country": "Chile", "price": {price}}}"#);
        let resp = api.send(Method::POST, "/orders/", Some(body.into_bytes())).await.unwrap();
        assert_eq!(resp.status, StatusCode::OK);
        let order: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        ids.push((order["id"].as_i64().unwrap(), is_fraud(user, pokemon, f64::from(price))));
    }
    // Group joins on the mock take a few seconds; everything is bounded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    for (id, fraud) in ids {
        let want = if fraud { "rejected" } else { "success" };
        loop {
            let resp = api.send(Method::GET, &format!("/orders/{id}"), None).await.unwrap();
            let order: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
            if order["state"] == want {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {id} still {} (want {want})",
                order["state"]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let summary = handle.stop().await.unwrap();
    let inv = &summary.orders.as_ref().unwrap().invariants;
    assert!(inv.ok, "{inv:?}");
    assert_eq!(inv.created, 5);
}
