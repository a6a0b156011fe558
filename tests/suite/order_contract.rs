//! The order API's contract: the original's recorded answers, replayed against chaoslab.
//!
//! `tests/contract/order_api/requests.json` holds 255 requests; `fastapi-0.111.json` the answers of the
//! original poke-order-api (jitapichab/kafka-chaos-experiments@c72ece1, FastAPI 0.111.0, pydantic 2.8.2,
//! pydantic-core 2.20.1, Starlette 0.37.2, SQLAlchemy 2.0.31 on PostgreSQL 15), recorded by
//! `scripts/order-api-contract/record.py` from a fresh database. The same requests go, in the same order,
//! to a fresh chaoslab; every answer must be the original's — status, `content-type`, `allow`,
//! `location`, and the body (JSON compared as values, timestamps aside; HTML by its title) — except
//! where [`DELIBERATE`] says chaoslab differs on purpose, and why.
//!
//! The corpus covers pydantic v2's 422 bodies, integer parsing of path and query values, lax coercion,
//! content types and empty bodies, JSON decode positions, 405s, routes and redirects, the pages' titles
//! and the documentation routes; the OpenAPI document has a test of its own below, and the pages'
//! labels, filter and links are checked in `orders_live::html_pages_create_and_list_orders_and_escape_names`.

use std::net::SocketAddr;
use std::path::PathBuf;

use base64::Engine as _;
use chaoslab::runner::{LiveHandle, Run};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::timeout;

use crate::common::http::WAIT;

/// How chaoslab's answer may differ from the original's, on purpose.
#[derive(Clone, Copy, Debug)]
enum Deliberate {
    /// The original failed (500) on a value its database could not hold; chaoslab refuses the value with
    /// this status and a pydantic error naming it.
    Refused(u16),
    /// The original answered 500 (NaN in a listing, an unknown `state`); chaoslab answers this status.
    Answers(u16),
    /// The original lists rows in PostgreSQL's heap order (no `ORDER BY`: an updated row moves to the
    /// end); chaoslab lists by id. The same status, and the same rows where the page holds them all.
    RowOrder,
    /// The original used ids for orders chaoslab refused (NaN prices): the same answer, ids aside.
    Ids,
    /// Routes chaoslab serves itself on the same port (its dashboard at `/`), or assets of the
    /// original's repository it does not ship (`/static/images/pokeball.png`), or Swagger's `/redoc`.
    OwnRoute,
    /// Compared by a test of its own (the OpenAPI document, with chaoslab's added constraints).
    Elsewhere,
}

/// Where chaoslab differs from the original on purpose (the README's "Where chaoslab differs" says so).
const DELIBERATE: &[(&str, Deliberate)] = &[
    ("get.id_int32_max_plus1", Deliberate::Answers(404)),
    ("get.id_int64_max", Deliberate::Answers(404)),
    ("get.id_beyond_int64", Deliberate::Refused(422)),
    ("put.id_beyond_int64", Deliberate::Refused(422)),
    ("ctype.text_plain_invalid_utf8", Deliberate::Refused(422)),
    ("list.q_limit-99999999999999999999", Deliberate::Refused(422)),
    ("list.q_state-bogus", Deliberate::Refused(422)),
    ("list.q_state-PENDING", Deliberate::Refused(422)),
    ("list.q_state-", Deliberate::Answers(200)),
    ("html.create_order_big_user_id", Deliberate::Refused(422)),
    ("html.list_orders_huge_limit", Deliberate::Refused(422)),
    ("bigint.user_id_int32_max_plus1", Deliberate::Refused(422)),
    ("bigint.user_id_int32_min_minus1", Deliberate::Refused(422)),
    ("bigint.user_id_beyond_int64", Deliberate::Refused(422)),
    ("bigint.user_id_huge_string", Deliberate::Refused(422)),
    ("bigint.user_id_float_1e400", Deliberate::Refused(422)),
    ("servererr.pokemon_nul_char", Deliberate::Refused(422)),
    ("coerce.pokemon_long", Deliberate::Refused(422)),
    ("nonfinite.price_string_nan", Deliberate::Refused(422)),
    ("list.after_nan_string", Deliberate::Answers(200)),
    ("nonfinite.price_literal_nan", Deliberate::Refused(422)),
    ("nonfinite.price_literal_infinity", Deliberate::Refused(422)),
    ("nonfinite.price_overflow_1e400", Deliberate::Refused(422)),
    ("nonfinite.price_string_inf", Deliberate::Refused(422)),
    ("nonfinite.user_id_literal_nan", Deliberate::Refused(422)),
    ("html.create_order_nan_price", Deliberate::Refused(422)),
    ("list.after_nonfinite", Deliberate::Answers(200)),
    ("list.after_nonfinite_html", Deliberate::RowOrder),
    ("list.after_coercions", Deliberate::RowOrder),
    ("list.after_bigint", Deliberate::RowOrder),
    ("list.ok_default", Deliberate::RowOrder),
    ("list.ok_skip-2_limit-3", Deliberate::RowOrder),
    ("list.ok_limit-1", Deliberate::RowOrder),
    ("list.ok_limit-9223372036854775807", Deliberate::RowOrder),
    ("list.ok_state-pending", Deliberate::RowOrder),
    ("list.ok_limit-1_limit-2", Deliberate::RowOrder),
    ("list.ok_limit-+2", Deliberate::RowOrder),
    ("list.ok_limit-pct202", Deliberate::RowOrder),
    ("delete.create_after", Deliberate::Ids),
    ("delete.list_after_create", Deliberate::Ids),
    ("route.root", Deliberate::OwnRoute),
    ("route.static_pokeball", Deliberate::OwnRoute),
    ("openapi.redoc", Deliberate::OwnRoute),
    ("openapi.json", Deliberate::Elsewhere),
];

fn contract_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/contract/order_api")
}

fn read_json(name: &str) -> Value {
    let path = contract_dir().join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One answer, in the recording's shape.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    headers: Value,
    body: Value,
}

/// Sends one request of the corpus as the recorder did: its own headers only, a body with its
/// `Content-Length` when it has one, `Host` as the original's so absolute redirects compare.
async fn send(addr: SocketAddr, host: &str, req: &Value) -> Answer {
    let method = req["method"].as_str().unwrap();
    let path = req["path"].as_str().unwrap();
    let body: Option<Vec<u8>> = match (&req["body"], req["body_b64"].as_str()) {
        (_, Some(b64)) => Some(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()),
        (Value::String(s), None) => Some(s.clone().into_bytes()),
        _ => None,
    };
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in req["headers"].as_object().into_iter().flatten() {
        head.push_str(&format!("{name}: {}\r\n", value.as_str().unwrap()));
    }
    if let Some(b) = &body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend(body.unwrap_or_default());
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(&raw).await;
        let mut got = Vec::new();
        let _ = stream.read_to_end(&mut got).await;
        got
    };
    let got = timeout(WAIT, exchange).await.unwrap_or_else(|_| panic!("{method} {path}: no answer"));
    let split =
        got.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("{method} {path}: {got:?}"));
    let head = String::from_utf8_lossy(&got[..split]).into_owned();
    let body = &got[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap();
    let mut headers = serde_json::Map::new();
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        let name = name.trim().to_ascii_lowercase();
        if ["content-type", "allow", "location"].contains(&name.as_str()) {
            headers.insert(name, value.trim().into());
        }
    }
    let is_json = headers.get("content-type").and_then(Value::as_str).is_some_and(|c| c.contains("json"));
    let body = match serde_json::from_slice::<Value>(body) {
        Ok(v) if is_json => v,
        _ => Value::String(String::from_utf8_lossy(body).into_owned()),
    };
    Answer { status, headers: Value::Object(headers), body }
}

/// Timestamps vary from run to run.
fn normalise(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "timestamp" {
                    *x = "<ts>".into();
                } else {
                    normalise(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        _ => {}
    }
}

fn title(html: &Value) -> Option<String> {
    let text = html.as_str()?;
    let start = text.find("<title>")? + 7;
    Some(text[start..start + text[start..].find("</title>")?].trim().to_owned())
}

fn sorted_ids(body: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = body.as_array().into_iter().flatten().filter_map(|o| o["id"].as_i64()).collect();
    ids.sort_unstable();
    ids
}

fn without_ids(body: &Value) -> Value {
    let mut b = body.clone();
    match &mut b {
        Value::Object(m) => {
            m.remove("id");
        }
        Value::Array(a) => a.iter_mut().for_each(|o| {
            if let Some(m) = o.as_object_mut() {
                m.remove("id");
            }
        }),
        _ => {}
    }
    b
}

/// Ids across the two runs: where chaoslab refused an order the original created (a documented
/// difference), every later id is one lower in chaoslab; orders are compared under the original's ids.
#[derive(Default)]
struct Ids {
    /// chaoslab's id → the original's.
    map: std::collections::BTreeMap<i64, i64>,
    /// Orders the original created and chaoslab refused.
    refused: std::collections::BTreeSet<i64>,
}

impl Ids {
    fn learn(&mut self, original: &Value, ours: &Value) {
        // An order in JSON, or the order-created page.
        let id = |v: &Value| {
            v["id"].as_i64().or_else(|| {
                let text = v.as_str()?;
                const LABEL: &str = "<strong>Order ID:</strong>";
                let rest = &text[text.find(LABEL)? + LABEL.len()..];
                rest.trim_start().split('<').next()?.trim().parse().ok()
            })
        };
        if let (Some(a), Some(b)) = (id(original), id(ours)) {
            self.map.entry(b).or_insert(a);
        }
    }

    fn translate(&self, body: &mut Value) {
        let one = |o: &mut Value| {
            if let Some(id) = o["id"].as_i64().and_then(|id| self.map.get(&id)) {
                o["id"] = (*id).into();
            }
        };
        match body {
            Value::Array(a) => a.iter_mut().filter(|o| o.is_object()).for_each(one),
            Value::Object(_) => one(body),
            _ => {}
        }
    }

    /// The original's list without the orders chaoslab refused.
    fn without_refused(&self, body: &Value) -> Value {
        match body {
            Value::Array(a) => Value::Array(
                a.iter()
                    .filter(|o| o["id"].as_i64().is_none_or(|id| !self.refused.contains(&id)))
                    .cloned()
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// Compares one answer; returns what differs.
fn compare(name: &str, original: &Value, mut ours: Answer, ids: &mut Ids) -> Option<String> {
    let expected_status = original["status"].as_u64().unwrap() as u16;
    let deliberate = DELIBERATE.iter().find(|(n, _)| *n == name).map(|(_, d)| *d);
    let mut expected_body = original.get("body").cloned().unwrap_or(Value::Null);
    normalise(&mut expected_body);
    normalise(&mut ours.body);
    if expected_status == 200 && ours.status == 200 && !matches!(deliberate, Some(Deliberate::Ids)) {
        ids.learn(&expected_body, &ours.body);
    }
    if matches!(deliberate, Some(Deliberate::Refused(_))) {
        ids.refused.extend(expected_body["id"].as_i64());
    }
    ids.translate(&mut ours.body);
    let page_len = expected_body.as_array().map(Vec::len);
    let expected_body = ids.without_refused(&expected_body);
    let html = ours.headers["content-type"].as_str().is_some_and(|c| c.starts_with("text/html"));
    let same_body =
        if html { title(&expected_body) == title(&ours.body) } else { expected_body == ours.body };
    // Starlette lists a documentation route's methods from a Python set: either order happens.
    let allow_set = |h: &Value| {
        let mut h = h.clone();
        if let Some(a) = h["allow"].as_str() {
            let mut methods: Vec<&str> = a.split(", ").collect();
            methods.sort_unstable();
            h["allow"] = methods.join(", ").into();
        }
        h
    };
    let same = ours.status == expected_status
        && allow_set(&ours.headers) == allow_set(&original["headers"])
        && same_body;
    let why = |what: &str| Some(format!("{name}: {what}\n  original: {original}\n  chaoslab: {ours:?}"));
    match deliberate {
        None if same => None,
        None => why("differs"),
        Some(Deliberate::Refused(status)) => {
            let named = ours.body["detail"][0]["loc"].as_array().is_some_and(|l| !l.is_empty());
            (ours.status != status || !named)
                .then(|| why(&format!("expected a {status} naming the value")).unwrap_or_default())
        }
        Some(Deliberate::Answers(status)) => {
            (ours.status != status).then(|| format!("{name}: expected {status}, got {ours:?}"))
        }
        Some(Deliberate::RowOrder) => {
            // The same rows by id; where a page cuts the list (every listing is a page: `limit` defaults
            // to 20) only as many — a row the original had and chaoslab refused is another one there.
            let (a, b) = (sorted_ids(&expected_body), sorted_ids(&ours.body));
            let rows = html || a == b || page_len == Some(b.len());
            (ours.status != expected_status || !rows)
                .then(|| why(&format!("row order aside: {a:?} vs {b:?}")).unwrap_or_default())
        }
        Some(Deliberate::Ids) => {
            let ok = ours.status == expected_status && without_ids(&expected_body) == without_ids(&ours.body);
            (!ok).then(|| why("ids aside").unwrap_or_default())
        }
        Some(Deliberate::OwnRoute | Deliberate::Elsewhere) => None,
    }
}

async fn start(out: &std::path::Path) -> LiveHandle {
    let flow = chaoslab::catalog::load_flow(&contract_dir().join("chaoslab-flow.toml")).unwrap();
    // The original's API was open: so is this one (`--open-order-api`) for its contract.
    let run = Run::new(flow)
        .out(out)
        .seed(3)
        .http_listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .open_order_api(true);
    timeout(WAIT, run.live()).await.expect("live run did not start in time").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_the_originals_or_a_documented_difference() {
    let requests = read_json("requests.json");
    let recorded = read_json("fastapi-0.111.json");
    let host = recorded["base_url"].as_str().unwrap().trim_start_matches("http://").to_owned();
    let originals: std::collections::BTreeMap<&str, &Value> =
        recorded["responses"].as_array().unwrap().iter().map(|r| (r["name"].as_str().unwrap(), r)).collect();
    let dir = tempfile::tempdir().unwrap();
    let h = start(&dir.path().join("out")).await;
    let mut problems = Vec::new();
    let mut agreed = 0;
    let mut ids = Ids::default();
    for req in requests.as_array().unwrap() {
        let name = req["name"].as_str().unwrap();
        let ours = send(h.http_addr, &host, req).await;
        match compare(name, originals[name], ours, &mut ids) {
            Some(p) => problems.push(p),
            None => agreed += 1,
        }
    }
    timeout(WAIT, h.stop()).await.expect("stop in time").unwrap();
    assert!(problems.is_empty(), "{agreed} agree; {} differ:\n{}", problems.len(), problems.join("\n"));
    // Every deliberate difference names a request of the corpus.
    for (name, _) in DELIBERATE {
        assert!(originals.contains_key(name), "{name} is not in the corpus");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_the_originals_plus_chaoslabs_constraints() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(&dir.path().join("out")).await;
    let req = serde_json::json!({"method": "GET", "path": "/openapi.json", "headers": {}, "body": null});
    let ours = send(h.http_addr, "127.0.0.1", &req).await;
    timeout(WAIT, h.stop()).await.expect("stop in time").unwrap();
    let mut ours = ours.body;
    // What chaoslab adds: the constraints it enforces where the original failed in its database.
    for schema in ["PokeOrderCreate", "Body_create_order_create_order_post"] {
        let props = &mut ours["components"]["schemas"][schema]["properties"];
        for (field, keys) in [
            ("user_id", &["minimum", "maximum"][..]),
            ("pokemon", &["maxLength"]),
            ("country", &["maxLength"]),
        ] {
            for key in keys {
                assert!(
                    props[field].as_object_mut().unwrap().remove(*key).is_some(),
                    "{schema}.{field}.{key}"
                );
            }
        }
    }
    assert_eq!(ours, read_json("openapi-fastapi-0.111.json"));
}
