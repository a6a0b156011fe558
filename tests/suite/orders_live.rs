//! Live-mode integration tests of the Pokémon order services: the reference's API contract
//! (`seed001-orders-and-ctk.md`, Part A.1) over real HTTP, the fraud decisions that follow an order, the
//! HTML pages, outages of the database and of the API, the metrics, a real PostgreSQL store and the
//! `chaoslab load` command.
//!
//! Every run binds free ports only (`127.0.0.1:0`) and writes into its own temporary directory; the IoT
//! components are left out and `OCTILLERY`'s load is off, so the only orders are the ones a test places.
//! HTTP goes over a bare `TcpStream`, one request per connection. Every wait is bounded, so a broken
//! service fails a test instead of hanging it; no test asserts how fast anything is.

use crate::common;

use common::http::{HttpResponse, WAIT, eventually, request};

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chaoslab::orders::fraud::is_fraud;
use chaoslab::orders::model::{Order, OrderState, parse_timestamp};
use chaoslab::orders::store::OrderStore;
use chaoslab::runner::{LiveHandle, Run};
use chaoslab::topology::flow::Flow;
use serde_json::{Value, json};
use tokio::time::timeout;

/// The components of the IoT path, left out of these runs.
const IOT_COMPONENTS: [&str; 7] = ["SENSOR", "FLINK", "NIFI", "HADOOP", "NODE-RED", "SPARK", "ELASTICSEARCH"];
/// The order database component.
const DB: &str = "POKE-ORDERS-DB";
/// The order API component.
const API: &str = "POKE-ORDER-API";

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The reference flow with the order services only, and no load.
fn orders_flow() -> Flow {
    let mut flow = chaoslab::catalog::reference_flow().unwrap();
    flow.without(&IOT_COMPONENTS);
    assert!(flow.components.contains_key("POKE-ORDER-API"), "the reference flow runs the order services");
    flow.without(&["OCTILLERY"]);
    flow
}

/// Starts `flow` live on free ports and waits until the order API serves; its API is open, as the
/// reference's was (`--open-order-api`), so these tests speak the original's contract.
async fn start(flow: Flow, out: &Path, database_url: Option<String>) -> LiveHandle {
    start_with(flow, out, database_url, true).await
}

async fn start_with(flow: Flow, out: &Path, database_url: Option<String>, open: bool) -> LiveHandle {
    let mut run = Run::new(flow)
        .out(out)
        .seed(11)
        .open_order_api(open)
        .http_listen(any_port())
        .mqtt_listen(any_port())
        .forward_listen(any_port())
        .log_http_listen(any_port());
    if let Some(url) = &database_url {
        run = run.database_url(url);
    }
    let handle = timeout(WAIT, run.live()).await.expect("live run did not start in time").unwrap();
    let addr = handle.http_addr;
    eventually("the order API to serve", async || {
        (request(addr, "GET", "/orders/?limit=1", None).await.status == 200).then_some(())
    })
    .await;
    handle
}

async fn stop(handle: LiveHandle) {
    timeout(WAIT, handle.stop()).await.expect("live run did not stop in time").unwrap();
}

/// The order bodies of a response.
trait OrderBody {
    /// The body as an order, after checking the status is 200.
    fn order(&self) -> Order;
    /// The body as a list of orders, after checking the status is 200.
    fn orders(&self) -> Vec<Order>;
}

impl OrderBody for HttpResponse {
    fn order(&self) -> Order {
        assert_eq!(self.status, 200, "{}", self.body);
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not an order ({e}): {}", self.body))
    }

    fn orders(&self) -> Vec<Order> {
        assert_eq!(self.status, 200, "{}", self.body);
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not orders ({e}): {}", self.body))
    }
}

async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    request(addr, "GET", path, None).await
}

async fn send_json(addr: SocketAddr, method: &str, path: &str, body: &Value) -> HttpResponse {
    request(addr, method, path, Some(("application/json", body.to_string().as_bytes()))).await
}

/// `POST /orders/` with these fields; the created order.
async fn place(addr: SocketAddr, user_id: i64, pokemon: &str, price: f64) -> Order {
    let body = json!({"user_id": user_id, "pokemon": pokemon, "country": "Chile", "price": price});
    send_json(addr, "POST", "/orders/", &body).await.order()
}

/// Polls `GET /orders/{id}` until the order is no longer pending; returns it.
async fn decided(addr: SocketAddr, id: i64) -> Order {
    eventually(&format!("order {id} to be decided"), async || {
        let order = get(addr, &format!("/orders/{id}")).await.order();
        (order.state != OrderState::Pending).then_some(order)
    })
    .await
}

/// The state the fraud rule gives an order.
fn verdict(order: &Order) -> OrderState {
    if is_fraud(order.user_id, &order.pokemon, order.price) {
        OrderState::Rejected
    } else {
        OrderState::Success
    }
}

/// The single entry of a FastAPI 422 body, after checking status and shape.
fn one_error(response: &HttpResponse) -> Value {
    let errors = field_errors(response);
    assert_eq!(errors.len(), 1, "{}", response.body);
    errors.into_iter().next().unwrap()
}

/// The entries of a FastAPI 422 body (pydantic v2: `{"detail": [{"type", "loc", "msg", "input", "ctx"?}, …]}`),
/// each checked for shape.
fn field_errors(response: &HttpResponse) -> Vec<Value> {
    assert_eq!(response.status, 422, "{}", response.body);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let detail = response.json()["detail"].as_array().cloned().unwrap_or_default();
    assert!(!detail.is_empty(), "no detail: {}", response.body);
    for e in &detail {
        let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(
            keys == ["type", "loc", "msg", "input"] || keys == ["type", "loc", "msg", "input", "ctx"],
            "{e}"
        );
        // FastAPI names a JSON syntax error's place by its character offset, a number.
        let loc = e["loc"].as_array().unwrap_or_else(|| panic!("loc is not a list: {e}"));
        assert!(["body", "query", "path"].contains(&loc[0].as_str().unwrap_or_default()), "{e}");
        assert!(loc.iter().all(|part| part.is_string() || part.is_u64()), "{e}");
        assert!(e["msg"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    }
    detail
}

// ---------------------------------------------------------------------------------------------------
// The API contract
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_start_pending_and_are_decided_by_the_fraud_rule() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(orders_flow(), dir.path(), None).await;
    let addr = handle.http_addr;

    let body = json!({"user_id": 1, "pokemon": "pikachu", "country": "Chile", "price": 100.0});
    let response = send_json(addr, "POST", "/orders/", &body).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let v = response.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["id", "user_id", "pokemon", "country", "price", "state", "timestamp"], "{v}");
    assert!(v["id"].as_i64().is_some_and(|id| id > 0), "{v}");
    assert_eq!(
        (&v["user_id"], &v["pokemon"], &v["country"], &v["price"], &v["state"]),
        (&json!(1), &json!("pikachu"), &json!("Chile"), &json!(100.0), &json!("pending"))
    );
    // FastAPI's ISO timestamp of the creation, in naive UTC.
    let stamp = v["timestamp"].as_str().unwrap();
    assert_eq!(stamp.as_bytes().get(10), Some(&b'T'), "{stamp}");
    let created = parse_timestamp(stamp).unwrap();
    let skew = (chrono::Utc::now().naive_utc() - created).num_seconds().abs();
    assert!(skew < 600, "the timestamp {stamp} is not the current UTC time");
    let benign: Order = serde_json::from_value(v).unwrap();

    // Every rule of the detective is applied. (`POST /orders` without the slash is 405, as in the
    // original: only `DELETE /orders` exists there.)
    let mut cases = vec![
        (benign, OrderState::Success),
        (place(addr, 2, "ditto", 10.0).await, OrderState::Rejected),
        (place(addr, 5, "pikachu", 10.0).await, OrderState::Rejected),
        (place(addr, 3, "pikachu", 250.0).await, OrderState::Rejected),
        (place(addr, 3, "pikachu", 200.0).await, OrderState::Success),
    ];
    let no_slash = json!({"user_id": 4, "pokemon": "abra", "country": "Peru", "price": 1.5});
    assert_eq!(send_json(addr, "POST", "/orders", &no_slash).await.status, 405);
    let abra = place(addr, 4, "abra", 1.5).await;
    assert_eq!((abra.state, abra.pokemon.as_str(), abra.price), (OrderState::Pending, "abra", 1.5));
    cases.push((abra, OrderState::Rejected));
    let mut ids = BTreeSet::new();
    for (order, expected) in &cases {
        assert_eq!(order.state, OrderState::Pending, "{order:?}");
        assert_eq!(verdict(order), *expected, "the fraud rule: {order:?}");
        let after = decided(addr, order.id).await;
        assert_eq!(after.state, *expected, "{after:?}");
        assert_eq!(Order { state: order.state, ..after }, *order, "only the state changed");
        assert!(ids.insert(order.id), "ids are unique");
    }
    stop(handle).await;
}

/// FastAPI 0.111 (the original's pin) answers a method a route lacks with 405, `application/json`
/// `{"detail":"Method Not Allowed"}` and, as Starlette does, the methods of the *first* route on that
/// path in `Allow` (issue 17, item 6; the contract test replays the original's recorded answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_a_route_lacks_gets_fastapis_405() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(orders_flow(), dir.path(), None).await;
    let addr = handle.http_addr;
    for (method, path, allowed) in [
        ("PATCH", "/orders/1", ["GET"]),
        ("DELETE", "/orders/", ["POST"]),
        ("GET", "/orders", ["DELETE"]),
        ("PUT", "/list_orders", ["GET"]),
    ] {
        let r = request(addr, method, path, None).await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{method} {path}");
        assert_eq!(r.json(), json!({"detail": "Method Not Allowed"}), "{method} {path}");
        let allow = r.header("allow").unwrap_or_else(|| panic!("{method} {path}: no Allow header"));
        assert_eq!(allow, allowed.join(", "), "{method} {path}");
    }
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_fastapi_errors_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(orders_flow(), dir.path(), None).await;
    let addr = handle.http_addr;

    let missing = json!({"user_id": 1, "pokemon": "mew", "country": "Chile"});
    let e = one_error(&send_json(addr, "POST", "/orders/", &missing).await);
    assert_eq!((&e["loc"], &e["type"]), (&json!(["body", "price"]), &json!("missing")), "{e}");
    let all = field_errors(&send_json(addr, "POST", "/orders/", &json!({})).await);
    let locs: Vec<&Value> = all.iter().map(|e| &e["loc"]).collect();
    assert_eq!(
        locs,
        [
            &json!(["body", "user_id"]),
            &json!(["body", "pokemon"]),
            &json!(["body", "country"]),
            &json!(["body", "price"])
        ]
    );

    let wrong = json!({"user_id": "one", "pokemon": 25, "country": "Chile", "price": "cheap"});
    let errors: Vec<(Value, Value)> = field_errors(&send_json(addr, "POST", "/orders/", &wrong).await)
        .into_iter()
        .map(|e| (e["loc"].clone(), e["type"].clone()))
        .collect();
    assert_eq!(
        errors,
        [
            (json!(["body", "user_id"]), json!("int_parsing")),
            (json!(["body", "pokemon"]), json!("string_type")),
            (json!(["body", "price"]), json!("float_parsing")),
        ]
    );

    let not_json = request(addr, "POST", "/orders/", Some(("application/json", b"{\"user_id\": 1,"))).await;
    let e = one_error(&not_json);
    assert_eq!((&e["loc"], &e["type"]), (&json!(["body", 14]), &json!("json_invalid")), "{e}");
    let e = one_error(&send_json(addr, "POST", "/orders/", &json!([1, 2])).await);
    assert_eq!((&e["loc"], &e["type"]), (&json!(["body"]), &json!("model_attributes_type")), "{e}");

    for (query, field) in
        [("state=nope", "state"), ("skip=-1", "skip"), ("limit=0", "limit"), ("limit=x", "limit")]
    {
        let e = one_error(&get(addr, &format!("/orders/?{query}")).await);
        assert_eq!(e["loc"], json!(["query", field]), "{query}: {e}");
    }

    let order = place(addr, 1, "mew", 10.0).await;
    let path_error = json!(["path", "order_id"]);
    assert_eq!(one_error(&get(addr, "/orders/abc").await)["loc"], path_error);
    let e = one_error(&send_json(addr, "PUT", "/orders/1.5", &json!({"state": "success"})).await);
    assert_eq!((&e["loc"], &e["type"]), (&path_error, &json!("int_parsing")), "{e}");
    let one = format!("/orders/{}", order.id);
    for (body, kind) in [
        (json!({"state": "shipped"}), "enum"),
        (json!({"state": "Success"}), "enum"),
        (json!({"state": 3}), "enum"),
        (json!({}), "missing"),
    ] {
        let e = one_error(&send_json(addr, "PUT", &one, &body).await);
        assert_eq!((&e["loc"], &e["type"]), (&json!(["body", "state"]), &json!(kind)), "{body}: {e}");
    }

    let absent = order.id + 1000;
    for response in [
        get(addr, &format!("/orders/{absent}")).await,
        send_json(addr, "PUT", &format!("/orders/{absent}"), &json!({"state": "success"})).await,
    ] {
        assert_eq!(response.status, 404, "{}", response.body);
        assert_eq!(response.json(), json!({"detail": "Order not found"}));
    }

    // A body over 64 KiB is refused whole, even a well-formed one.
    let big = json!({"user_id": 1, "pokemon": "m".repeat(70 * 1024), "country": "Chile", "price": 1.0});
    let response = send_json(addr, "POST", "/orders/", &big).await;
    assert_eq!(response.status, 413, "{}", response.body);
    let form = format!("user_id=1&pokemon={}&country=Chile&price=1", "m".repeat(70 * 1024));
    let response =
        request(addr, "POST", "/create_order", Some(("application/x-www-form-urlencoded", form.as_bytes())))
            .await;
    assert_eq!(response.status, 413, "the form too: {}", response.body);
    // A name over 100 characters but a small body: 422.
    let long = json!({"user_id": 1, "pokemon": "m".repeat(101), "country": "Chile", "price": 1.0});
    let e = one_error(&send_json(addr, "POST", "/orders/", &long).await);
    assert_eq!(e["loc"], json!(["body", "pokemon"]), "{e}");

    // None of the refused requests created or changed anything.
    let all = get(addr, "/orders/").await.orders();
    assert_eq!(all.iter().map(|o| o.id).collect::<Vec<_>>(), [order.id]);
    assert_eq!(Order { state: OrderState::Pending, ..all[0].clone() }, order);
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_filters_pages_updates_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(orders_flow(), dir.path(), None).await;
    let addr = handle.http_addr;

    // 23 orders, some of them fraudulent by each rule, all decided before the listings are read.
    let names = ["pikachu", "ditto", "mew", "abra", "eevee", "farfetchd", "onix"];
    let mut placed = Vec::new();
    for i in 0..23_i64 {
        placed.push(place(addr, i % 6 + 1, names[i as usize % names.len()], (i * 15) as f64).await);
    }
    let ids: Vec<i64> = placed.iter().map(|o| o.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let mut expected: BTreeMap<OrderState, Vec<i64>> = BTreeMap::new();
    for order in &placed {
        assert_eq!(decided(addr, order.id).await.state, verdict(order), "{order:?}");
        expected.entry(verdict(order)).or_default().push(order.id);
    }
    assert!(expected.len() == 2, "both verdicts occur: {expected:?}");

    let listed = |path: &str| {
        let path = path.to_string();
        async move { get(addr, &path).await.orders().iter().map(|o| o.id).collect::<Vec<i64>>() }
    };
    assert_eq!(listed("/orders/").await, ids[..20], "the default limit is 20, by increasing id");
    assert_eq!(listed("/orders/?limit=100").await, ids);
    assert_eq!(listed("/orders/?skip=3&limit=4").await, ids[3..7]);
    assert_eq!(listed("/orders/?skip=20").await, ids[20..]);
    assert_eq!(listed("/orders/?skip=23").await, Vec::<i64>::new());
    assert_eq!(listed("/orders/?state=").await, ids[..20], "an empty state is no filter");
    for (state, want) in &expected {
        assert_eq!(listed(&format!("/orders/?state={state}&limit=100")).await, *want, "{state}");
        assert_eq!(listed(&format!("/orders/?state={state}&skip=1&limit=2")).await, want[1..3], "{state}");
    }
    assert_eq!(listed("/orders/?state=reversed").await, Vec::<i64>::new());

    // Any state may be set from any state, as in the reference.
    let target = expected[&OrderState::Success][0];
    let path = format!("/orders/{target}");
    for state in ["reversed", "pending", "failed", "rejected", "success", "failed"] {
        let after = send_json(addr, "PUT", &path, &json!({"state": state})).await.order();
        assert_eq!((after.id, after.state.as_str()), (target, state));
        assert_eq!(get(addr, &path).await.order().state.as_str(), state);
    }
    assert_eq!(listed("/orders/?state=failed").await, [target]);
    // Only the state changes.
    let before = placed.iter().find(|o| o.id == target).unwrap();
    assert_eq!(Order { state: OrderState::Pending, ..get(addr, &path).await.order() }, *before);

    let response = request(addr, "DELETE", "/orders", None).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json(), json!({"detail": "All orders deleted"}));
    assert_eq!(listed("/orders/").await, Vec::<i64>::new());
    assert_eq!(get(addr, &path).await.status, 404);
    // Ids are not reused after a delete.
    assert!(place(addr, 1, "mew", 1.0).await.id > ids[22]);
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_pages_create_and_list_orders_and_escape_names() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(orders_flow(), dir.path(), None).await;
    let addr = handle.http_addr;
    let is_html = |r: &HttpResponse| r.header("content-type").is_some_and(|t| t.starts_with("text/html"));

    let form = get(addr, "/create_order").await;
    assert_eq!(form.status, 200);
    assert!(is_html(&form), "{:?}", form.header("content-type"));
    // The original's page (issue 17, item 8): its title, labels, and a price in cents.
    assert!(form.body.contains("<title>Create Poke Order</title>"), "{}", form.body);
    assert!(form.body.contains("<form action=\"/create_order\" method=\"post\""), "{}", form.body);
    for (field, label) in [
        ("user_id", "User ID"),
        ("pokemon", "pokemon"),
        ("country", "Country"),
        ("price", "Price (in dollars)"),
    ] {
        assert!(form.body.contains(&format!("name=\"{field}\"")), "{field}: {}", form.body);
        assert!(
            form.body.contains(&format!("<label for=\"{field}\">{label}</label>")),
            "{label}: {}",
            form.body
        );
    }
    assert!(form.body.contains("type=\"number\" step=\"0.01\""), "{}", form.body);

    let fields = "user_id=3&pokemon=%3Cb%3Emew%3C%2Fb%3E&country=C%C3%B4te+d%27Ivoire&price=12.5";
    let created = request(
        addr,
        "POST",
        "/create_order",
        Some(("application/x-www-form-urlencoded", fields.as_bytes())),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(is_html(&created));
    assert!(created.body.contains("&lt;b&gt;mew&lt;/b&gt;"), "{}", created.body);
    assert!(created.body.contains("C\u{f4}te d&#39;Ivoire"), "{}", created.body);
    assert!(!created.body.contains("<b>mew"), "{}", created.body);
    // The order is stored with the name as typed.
    let stored = get(addr, "/orders/").await.orders();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let order = &stored[0];
    assert_eq!(
        (order.user_id, order.pokemon.as_str(), order.country.as_str(), order.price),
        (3, "<b>mew</b>", "C\u{f4}te d'Ivoire", 12.5)
    );
    assert!(created.body.contains("<title>Order Created</title>"), "{}", created.body);
    for (label, value) in [
        ("Order ID", order.id.to_string()),
        ("User ID", "3".into()),
        ("Price", "12.5".into()),
        ("State", "pending".into()),
        // Python's str(datetime): a space, not a T.
        ("Timestamp", order.timestamp.format("%Y-%m-%d %H:%M:%S").to_string()),
    ] {
        let item = format!("<strong>{label}:</strong> {value}");
        assert!(created.body.contains(&item), "{item}: {}", created.body);
    }

    let bad = request(
        addr,
        "POST",
        "/create_order",
        Some(("application/x-www-form-urlencoded", b"user_id=x&pokemon=mew&country=Chile")),
    )
    .await;
    let locs: Vec<Value> = field_errors(&bad).into_iter().map(|e| e["loc"].clone()).collect();
    assert_eq!(locs, [json!(["body", "user_id"]), json!(["body", "price"])]);

    // Decided like any other order; then the table shows it, filtered by its state or not.
    assert_eq!(decided(addr, order.id).await.state, OrderState::Success);
    for path in ["/list_orders", "/list_orders?state=nope", "/list_orders?state=success&skip=0&limit=5"] {
        let list = get(addr, path).await;
        assert_eq!(list.status, 200, "{path}: {}", list.body);
        assert!(is_html(&list));
        assert!(list.body.contains("<title>List Poke Orders</title>"), "{path}: {}", list.body);
        let headers = "<th>Order ID</th>\n<th>User ID</th>\n<th>Pokemon</th>\n<th>Country</th>\n<th>Price</th>\n<th>State</th>\n<th>Timestamp</th>";
        assert!(list.body.contains(headers), "{path}: {}", list.body);
        let row = format!("<tr>\n<td>{}</td>\n<td>3</td>\n<td>&lt;b&gt;mew&lt;/b&gt;</td>", order.id);
        assert!(list.body.contains(&row), "{path}: {}", list.body);
        assert!(list.body.contains("<td>success</td>"), "{path}: {}", list.body);
        assert!(list.body.contains("<td>&lt;b&gt;mew&lt;/b&gt;</td>"), "{path}: {}", list.body);
        assert!(!list.body.contains("<b>"), "{path}: {}", list.body);
    }
    for path in ["/list_orders?state=pending", "/list_orders?skip=1"] {
        let none = get(addr, path).await;
        assert_eq!(none.status, 200, "{path}: {}", none.body);
        assert!(
            none.body.contains("<tbody>\n</tbody>") && !none.body.contains("mew"),
            "{path}: {}",
            none.body
        );
    }
    // The state filter offers All and the four states the original lists, the chosen one selected;
    // Previous shows once a page is past the first, and both links keep the filter.
    let page = get(addr, "/list_orders?state=success&skip=5&limit=5").await.body;
    for option in [
        "<option value=\"\">All</option>",
        "<option value=\"pending\">pending</option>",
        "<option value=\"success\" selected>success</option>",
        "<option value=\"reversed\">reversed</option>",
    ] {
        assert!(page.contains(option), "{option}: {page}");
    }
    assert!(page.contains("href=\"?skip=0&limit=5&state=success\">Previous</a>"), "{page}");
    assert!(page.contains("href=\"?skip=10&limit=5&state=success\">Next</a>"), "{page}");
    assert!(!get(addr, "/list_orders?skip=4&limit=5").await.body.contains("Previous"));
    assert_eq!(one_error(&get(addr, "/list_orders?limit=0").await)["loc"], json!(["query", "limit"]));

    let openapi = get(addr, "/openapi.json").await;
    assert_eq!(openapi.status, 200);
    assert_eq!(openapi.header("content-type"), Some("application/json"));
    let doc = openapi.json();
    assert_eq!(doc["openapi"], "3.1.0", "{doc}");
    assert!(doc["paths"]["/orders/"]["post"].is_object(), "{doc}");
    assert!(doc["paths"]["/orders/"]["get"].is_object(), "{doc}");
    assert!(doc["paths"]["/orders/{order_id}"]["put"].is_object(), "{doc}");
    assert!(doc["paths"]["/orders/{order_id}"]["get"].is_object(), "{doc}");

    let docs = get(addr, "/docs").await;
    assert_eq!(docs.status, 200);
    assert!(is_html(&docs));
    assert!(docs.body.contains("/openapi.json"), "{}", docs.body);
    assert!(!docs.body.contains("https://"), "the docs page loads nothing from elsewhere: {}", docs.body);
    // Swagger UI's files come from the same server, and chaoslab's own document is in the page's list.
    // (The text ones: the test client reads bodies as UTF-8.)
    let assets: Vec<&str> = docs
        .body
        .split('"')
        .filter(|s| s.starts_with("/api/docs/") && (s.ends_with(".js") || s.ends_with(".css")))
        .collect();
    assert!(assets.len() >= 3, "{}", docs.body);
    for asset in assets {
        let file = get(addr, asset).await;
        assert_eq!(file.status, 200, "{asset}");
        assert!(file.body.len() > 100, "{asset}: {} bytes", file.body.len());
    }
    assert!(docs.body.contains("/api/openapi.json"), "{}", docs.body);
    let ours = get(addr, "/api/openapi.json").await;
    assert_eq!(ours.status, 200);
    assert!(ours.json()["paths"]["/api/faults"]["post"].is_object(), "{}", ours.body);
    let page = get(addr, "/api/docs").await;
    assert!(
        page.status == 200 && is_html(&page) && page.body.contains("swagger-ui-bundle.js"),
        "{}",
        page.body
    );
    assert_eq!(get(addr, "/api/docs/no-such-file.js").await.status, 404);
    stop(handle).await;
}

// ---------------------------------------------------------------------------------------------------
// Outages, invariants, metrics
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_and_api_outages_answer_503_then_recover() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(orders_flow(), dir.path(), None).await;
    let addr = handle.http_addr;
    let supervisor = &handle.pipeline.supervisor;
    let mut placed = vec![place(addr, 1, "pikachu", 10.0).await, place(addr, 2, "ditto", 10.0).await];
    let known = format!("/orders/{}", placed[0].id);
    let body = json!({"user_id": 1, "pokemon": "mew", "country": "Chile", "price": 1.0});

    supervisor.stop(DB).unwrap();
    let refused = eventually("the API to notice the database is down", async || {
        let r = send_json(addr, "POST", "/orders/", &body).await;
        match r.status {
            503 => Some(r),
            200 => {
                placed.push(r.order());
                None
            }
            other => panic!("POST while the database stops: {other} {}", r.body),
        }
    })
    .await;
    assert_eq!(refused.json(), json!({"detail": "Database unavailable"}));
    for path in ["/orders/", known.as_str(), "/list_orders"] {
        let r = get(addr, path).await;
        assert_eq!(r.status, 503, "GET {path} with the database down: {}", r.body);
    }
    let r = send_json(addr, "PUT", &known, &json!({"state": "failed"})).await;
    assert_eq!(r.status, 503, "{}", r.body);

    supervisor.start(DB).unwrap();
    eventually("the API to reach the database again", async || {
        (get(addr, &known).await.status == 200).then_some(())
    })
    .await;
    placed.push(place(addr, 3, "mew", 20.0).await);

    supervisor.stop(API).unwrap();
    let refused = eventually("the API to stop", async || {
        let r = get(addr, "/orders/").await;
        (r.status == 503).then_some(r)
    })
    .await;
    assert_eq!(refused.json(), json!({"detail": "Service Unavailable"}));
    assert_eq!(send_json(addr, "POST", "/orders/", &body).await.status, 503);
    assert_eq!(get(addr, "/create_order").await.status, 503);
    // The rest of the HTTP API is not the order API: it still answers.
    assert_eq!(get(addr, "/metrics").await.status, 200);

    supervisor.start(API).unwrap();
    eventually("the API to serve again", async || (get(addr, "/orders/").await.status == 200).then_some(()))
        .await;
    placed.push(place(addr, 5, "mew", 20.0).await);

    // Every order placed, before or between the outages, is decided as the rule says.
    for order in &placed {
        assert_eq!(decided(addr, order.id).await.state, verdict(order), "{order:?}");
    }
    let listed: Vec<i64> = get(addr, "/orders/?limit=100").await.orders().iter().map(|o| o.id).collect();
    assert_eq!(listed, placed.iter().map(|o| o.id).collect::<Vec<_>>(), "nothing refused was stored");

    let r = get(addr, "/api/orders/invariants").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let inv = r.json();
    assert_eq!(inv["ok"], true, "{inv}");
    assert_eq!(inv["created"], placed.len(), "{inv}");
    assert_eq!(
        (&inv["in_flight"], &inv["missing"], &inv["wrong_decision"]),
        (&json!(0), &json!([]), &json!([]))
    );
    let rejected = placed.iter().filter(|o| verdict(o) == OrderState::Rejected).count();
    assert_eq!(inv["by_state"]["rejected"], rejected, "{inv}");
    assert_eq!(inv["by_state"]["success"], placed.len() - rejected, "{inv}");
    stop(handle).await;
}

/// The value of the metric line `name{labels} value` whose labels include all of `labels`.
fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (labelset, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        let all = labels.iter().all(|(k, v)| labelset.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
        all.then(|| value.trim().parse().ok()).flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_requests_orders_by_state_and_consumer_lag() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(orders_flow(), dir.path(), None).await;
    let addr = handle.http_addr;
    let order = place(addr, 1, "pikachu", 10.0).await;
    assert_eq!(decided(addr, order.id).await.state, OrderState::Success);

    let scrape = async || {
        let r = get(addr, "/metrics").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
        r.body
    };
    let text = scrape().await;
    let post = [("method", "POST"), ("route", "/orders/"), ("status", "200")];
    let buckets = metric_value(&text, "poke_order_api_request_duration_seconds_bucket", &[("le", "+Inf")]);
    assert!(buckets.is_some_and(|n| n >= 1.0), "{text}");
    assert_eq!(
        metric_value(&text, "poke_order_api_request_duration_seconds_count", &post),
        Some(1.0),
        "{text}"
    );
    // The database component refreshes the per-state gauge every few seconds.
    eventually("poke_orders to count the decided order", async || {
        let text = scrape().await;
        let pending = metric_value(&text, "poke_orders", &[("state", "pending")]);
        let success = metric_value(&text, "poke_orders", &[("state", "success")]);
        (pending == Some(0.0) && success == Some(1.0)).then_some(())
    })
    .await;
    eventually("bus_consumer_lag of the detectives' group", async || {
        let text = scrape().await;
        metric_value(&text, "bus_consumer_lag", &[("group", "poke-order-consumer"), ("topic", "poke-orders")])
    })
    .await;
    // A refused request is measured under its route and status as well.
    assert_eq!(get(addr, "/orders/?limit=0").await.status, 422);
    let text = scrape().await;
    let refused = [("method", "GET"), ("route", "/orders/"), ("status", "422")];
    assert_eq!(metric_value(&text, "poke_order_api_request_duration_seconds_count", &refused), Some(1.0));
    stop(handle).await;
}

// ---------------------------------------------------------------------------------------------------
// PostgreSQL and the command line
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_go_through_a_real_postgresql_store() {
    const TEST: &str = "orders_go_through_a_real_postgresql_store";
    let Some(url) = std::env::var("CHAOSLAB_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        common::skip(TEST, "CHAOSLAB_TEST_DATABASE_URL is not set (source .ci/postgres.sh)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut flow = orders_flow();
    // Other tests may share this database: never reverse their pending orders (ten years, the most a flow
    // allows).
    flow.configure::<chaoslab::orders::order_reverser::OrderReverserConfig>(|r| {
        r.expired_order_minutes = 10 * 365 * 24 * 60
    });
    let handle = start(flow, dir.path(), Some(url.clone())).await;
    let addr = handle.http_addr;

    let mut placed = Vec::new();
    for (user, pokemon, price) in
        [(1, "pikachu", 10.0), (2, "ditto", 10.0), (5, "mew", 1.0), (3, "onix", 250.5)]
    {
        placed.push(place(addr, user, pokemon, price).await);
    }
    let html = "user_id=4&pokemon=eevee&country=Chile&price=99.25";
    let created =
        request(addr, "POST", "/create_order", Some(("application/x-www-form-urlencoded", html.as_bytes())))
            .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let mut orders = Vec::new();
    for order in &placed {
        orders.push(decided(addr, order.id).await);
    }
    // The form's answer names the new order's id.
    let id_text =
        created.body.split_once("<strong>Order ID:</strong>").and_then(|(_, rest)| rest.split_once("</li>"));
    let form_id: i64 =
        id_text.and_then(|(id, _)| id.trim().parse().ok()).unwrap_or_else(|| panic!("{}", created.body));
    let form_order = decided(addr, form_id).await;
    assert_eq!(
        (form_order.user_id, form_order.pokemon.as_str(), form_order.country.as_str(), form_order.price),
        (4, "eevee", "Chile", 99.25)
    );
    orders.push(form_order);
    let ids: BTreeSet<i64> = orders.iter().map(|o| o.id).collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
    for order in &orders {
        assert_eq!(order.state, verdict(order), "{order:?}");
    }

    // The rows are in PostgreSQL, as the API showed them.
    let store = OrderStore::open(&url, true).await.unwrap();
    assert_eq!(store.backend(), "postgres");
    for order in &orders {
        assert_eq!(store.get(order.id).await.unwrap().as_ref(), Some(order));
    }
    let counts = store.counts_by_state().await.unwrap();
    for state in [OrderState::Success, OrderState::Rejected] {
        let mine: Vec<i64> = orders.iter().filter(|o| o.state == state).map(|o| o.id).collect();
        assert!(counts[&state] >= mine.len() as u64, "{state}: {counts:?}");
        let mut listed = Vec::new();
        let mut skip = 0;
        loop {
            let page = store.list(Some(state), skip, 500).await.unwrap();
            if page.is_empty() {
                break;
            }
            skip += page.len() as u64;
            assert!(page.iter().all(|o| o.state == state), "{state}");
            listed.extend(page.into_iter().map(|o| o.id).filter(|id| ids.contains(id)));
        }
        assert_eq!(listed, mine, "{state}: list filters by state, by increasing id");
    }
    stop(handle).await;

    // Clean up only what this test created.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let mut deleted = 0;
    for id in &ids {
        let done =
            sqlx::query("DELETE FROM poke_orders WHERE id = $1").bind(*id).execute(&pool).await.unwrap();
        deleted += done.rows_affected();
    }
    pool.close().await;
    assert_eq!(deleted, ids.len() as u64);
    for id in &ids {
        assert_eq!(store.get(*id).await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_command_places_orders_against_a_live_api() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(orders_flow(), dir.path(), None).await;
    let addr = handle.http_addr;
    let url = format!("http://{addr}");

    let child = crate::common::chaoslab_async()
        .args(["load", "--url", &url, "--users", "2", "--orders", "3", "--delay", "10ms", "--seed", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("chaoslab load did not end in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}:\n{stdout}\n{stderr}", output.status);
    let report: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("the report is not JSON ({e}): {stdout}"));
    assert_eq!(report, json!({"placed": 6, "failed": 0, "statuses": {"200": 6}}));

    let orders = get(addr, "/orders/?limit=100").await.orders();
    assert_eq!(orders.len(), 6, "{orders:?}");
    let mut per_user: BTreeMap<i64, usize> = BTreeMap::new();
    for order in &orders {
        *per_user.entry(order.user_id).or_default() += 1;
        assert!((0.0..=300.0).contains(&order.price) && order.price.fract() == 0.0, "{order:?}");
        assert!(!order.pokemon.is_empty() && !order.country.is_empty(), "{order:?}");
    }
    assert_eq!(per_user, BTreeMap::from([(1, 3), (2, 3)]));
    for order in &orders {
        assert_eq!(decided(addr, order.id).await.state, verdict(order), "{order:?}");
    }

    // Against an address where nothing listens it fails, saying so.
    let closed = std::net::TcpListener::bind(any_port()).unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let child = crate::common::chaoslab_async()
        .args(["load", "--url", &dead, "--users", "1", "--orders", "1", "--delay", "0s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("chaoslab load did not end in time")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("no order was placed"), "{stderr}");
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_api_shows_offline_partitions_while_a_broker_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(orders_flow(), dir.path(), None).await;
    let addr = handle.http_addr;
    let topic = get(addr, "/api/bus/topics/poke-orders").await.json();
    let partitions = topic["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 3);
    assert!(partitions.iter().all(|p| p["replicas"].as_array().unwrap().len() == 1), "{topic}");
    assert_eq!(topic["has_offline_partitions"], false);
    let led_by_1: Vec<u64> =
        partitions.iter().filter(|p| p["leader"] == 1).map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(led_by_1.len(), 1, "initial configuration: one partition per broker");

    handle.pipeline.supervisor.stop("KAFKA-1").unwrap();
    let down = eventually("broker 1 down", async || {
        let t = get(addr, "/api/bus/topics/poke-orders").await.json();
        (t["has_offline_partitions"] == true).then_some(t)
    })
    .await;
    let offline: Vec<u64> = down["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["leader"].is_null())
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(offline, led_by_1);
    let brokers = get(addr, "/api/bus/brokers").await.json();
    assert_eq!(brokers["brokers"][0]["up"], false, "{brokers}");
    // The replicated topic keeps every partition led.
    let state = get(addr, "/api/bus/topics/poke-orders-state").await.json();
    assert_eq!(state["has_offline_partitions"], false);
    assert_eq!(state["all_replicas_in_sync"], false);

    handle.pipeline.supervisor.start("KAFKA-1").unwrap();
    eventually("broker 1 back", async || {
        (get(addr, "/api/bus/topics/poke-orders").await.json()["has_offline_partitions"] == false)
            .then_some(())
    })
    .await;
    let groups: Vec<String> = serde_json::from_value(get(addr, "/api/bus/groups").await.json()).unwrap();
    assert!(groups.contains(&"poke-order-consumer".to_string()), "{groups:?}");
    let group = get(addr, "/api/bus/groups/poke-order-consumer").await.json();
    assert_eq!(group["members"].as_array().unwrap().len(), 3, "{group}");
    assert_eq!(get(addr, "/api/bus/topics/nope").await.status, 404);
    assert_eq!(get(addr, "/api/bus/groups/nope").await.status, 404);
    stop(handle).await;
}

/// By default the destructive routes need credentials: `DELETE /orders` and `PUT /orders/{id}` answer 401
/// without a token and work with the control plane's; reads and creates stay open; and the run's own
/// ORDER-UPDATER, which PUTs every decision over HTTP, still decides orders (it presents the run's key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destructive_routes_need_credentials_unless_the_api_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start_with(orders_flow(), dir.path(), None, false).await;
    let addr = handle.http_addr;
    let order = place(addr, 1, "pikachu", 10.0).await;
    assert_eq!(decided(addr, order.id).await.state, OrderState::Success, "ORDER-UPDATER's PUT went through");
    let path = format!("/orders/{}", order.id);
    let put = send_json(addr, "PUT", &path, &json!({"state": "reversed"})).await;
    assert_eq!(put.status, 401, "{}", put.body);
    assert_eq!(request(addr, "DELETE", "/orders", None).await.status, 401);
    let bearer = format!("Bearer {}", handle.control_token.clone().unwrap());
    let auth = [("Authorization", bearer.as_str())];
    let body = json!({"state": "reversed"}).to_string();
    let put =
        common::http::request_with(addr, "PUT", &path, &auth, Some(("application/json", body.as_bytes())))
            .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(common::http::request_with(addr, "DELETE", "/orders", &auth, None).await.status, 200);
    assert_eq!(get(addr, "/orders/").await.orders().len(), 0, "deleted with credentials");
    stop(handle).await;
}
