//! Interoperability of the Forward server with a real Fluentd client: Python's `fluent-logger`.
//!
//! Needs a Python interpreter with `fluent-logger` installed, named by `FLUENT_LOGGER_PYTHON` (`.ci/run`
//! sets it up); without it the test is skipped, or fails under `CHAOSLAB_REQUIRE_EXTERNALS=1`:
//!
//! ```text
//! python3 -m venv .venv && .venv/bin/pip install fluent-logger
//! FLUENT_LOGGER_PYTHON=.venv/bin/python cargo test --test forward_fluent_logger
//! ```

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use chaoslab::monitoring::logs::event::EventTime;
use chaoslab::monitoring::logs::forward::{ForwardStats, serve};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

const CLIENT: &str = r#"
import sys
from fluent import sender

port = int(sys.argv[1])
precise = sender.FluentSender("com.chaoslab", host="127.0.0.1", port=port, nanosecond_precision=True)
if not precise.emit_with_time("nifi.platform", sender.EventTime(1582320002, nanoseconds=991000000),
                              {"message": "Connection to tcp://mqtt:1883 lost", "level": "ERROR", "n": 3}):
    sys.exit("precise emit failed: %r" % (precise.last_error,))
precise.close()
plain = sender.FluentSender("com.chaoslab", host="127.0.0.1", port=port)
if not plain.emit_with_time("nodered.platform", 1582320000, {"message": "Disconnected from broker"}):
    sys.exit("plain emit failed: %r" % (plain.last_error,))
plain.close()
"#;

#[tokio::test]
async fn fluent_logger_records_arrive_with_tag_time_and_fields() {
    let Some(python) = std::env::var("FLUENT_LOGGER_PYTHON").ok().filter(|p| !p.is_empty()) else {
        common::skip(
            "fluent_logger_records_arrive",
            "FLUENT_LOGGER_PYTHON (a Python with fluent-logger) is not set",
        );
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut rx) = mpsc::channel(8);
    let stats = Arc::new(ForwardStats::default());
    let (stop, shutdown) = watch::channel(false);
    let server = tokio::spawn(serve(listener, tx, stats.clone(), shutdown, None));

    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&python).arg("-c").arg(CLIENT).arg(port.to_string()).output(),
    )
    .await
    .expect("the Python client finishes")
    .expect("the Python client starts");
    assert!(output.status.success(), "client failed: {}", String::from_utf8_lossy(&output.stderr));

    let first = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    assert_eq!(first.tag, "com.chaoslab.nifi.platform");
    assert_eq!(first.time, EventTime::new(1_582_320_002, 991_000_000));
    assert_eq!(first.record["message"], "Connection to tcp://mqtt:1883 lost");
    assert_eq!(first.record["level"], "ERROR");
    assert_eq!(first.record["n"], 3);

    let second = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    assert_eq!(second.tag, "com.chaoslab.nodered.platform");
    assert_eq!(second.time, EventTime::new(1_582_320_000, 0));
    assert_eq!(second.record["message"], "Disconnected from broker");

    let snapshot = stats.snapshot();
    assert_eq!((snapshot.connections, snapshot.events, snapshot.decode_errors), (2, 2, 0));
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
}
