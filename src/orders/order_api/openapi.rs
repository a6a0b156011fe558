//! `/openapi.json`: the OpenAPI 3.1.0 document FastAPI 0.111 generates for the original, so clients and
//! code generated from either are the same — operation ids, titles, the form body of `/create_order`,
//! HTML responses typed `text/html`, `HTTPValidationError` and `ValidationError`. chaoslab's own
//! refusals add to it only what they check: `maxLength` on the names and the `user_id` range.

use serde_json::{Value, json};

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_ok(schema: Value) -> Value {
    json!({"description": "Successful Response", "content": {"application/json": {"schema": schema}}})
}

fn html_ok() -> Value {
    json!({"description": "Successful Response", "content": {"text/html": {"schema": {"type": "string"}}}})
}

fn invalid() -> Value {
    json!({"description": "Validation Error", "content": {"application/json": {"schema": schema("HTTPValidationError")}}})
}

/// `summary`, `operationId`, its responses (`200` and, when it validates anything, `422`).
fn operation(summary: &str, id: &str, ok: Value, validates: bool) -> Value {
    let mut responses = json!({ "200": ok });
    if validates {
        responses["422"] = invalid();
    }
    json!({"summary": summary, "operationId": id, "responses": responses})
}

fn listing_parameters() -> Value {
    json!([
        {"name": "state", "in": "query", "required": false,
         "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "State"}},
        {"name": "skip", "in": "query", "required": false,
         "schema": {"type": "integer", "minimum": 0, "default": 0, "title": "Skip"}},
        {"name": "limit", "in": "query", "required": false,
         "schema": {"type": "integer", "exclusiveMinimum": 0, "default": 20, "title": "Limit"}}
    ])
}

fn order_id() -> Value {
    json!([{"name": "order_id", "in": "path", "required": true, "schema": {"type": "integer", "title": "Order Id"}}])
}

fn body(content_type: &str, schema_name: &str) -> Value {
    json!({"required": true, "content": { content_type: {"schema": schema(schema_name)} }})
}

/// The fields of a new order, as `PokeOrderCreate` and the form body declare them.
fn new_order_schema(title: &str) -> Value {
    json!({
        "properties": {
            "user_id": {"type": "integer", "title": "User Id", "minimum": i32::MIN, "maximum": i32::MAX},
            "pokemon": {"type": "string", "title": "Pokemon", "maxLength": super::MAX_NAME},
            "country": {"type": "string", "title": "Country", "maxLength": super::MAX_NAME},
            "price": {"type": "number", "title": "Price"}
        },
        "type": "object",
        "required": ["user_id", "pokemon", "country", "price"],
        "title": title
    })
}

/// The document.
pub fn document() -> Value {
    let mut create_form = operation("Create Order", "create_order_create_order_post", html_ok(), true);
    create_form["requestBody"] =
        body("application/x-www-form-urlencoded", "Body_create_order_create_order_post");
    let mut list_html = operation("List Orders", "list_orders_list_orders_get", html_ok(), true);
    list_html["parameters"] = listing_parameters();
    let mut new_order = operation("New Order", "new_order_orders__post", json_ok(schema("PokeOrder")), true);
    new_order["requestBody"] = body("application/json", "PokeOrderCreate");
    let orders =
        json!({"type": "array", "items": schema("PokeOrder"), "title": "Response Read Orders Orders  Get"});
    let mut read_orders = operation("Read Orders", "read_orders_orders__get", json_ok(orders), true);
    read_orders["parameters"] = listing_parameters();
    let mut get_order = operation(
        "Get Order By Id",
        "get_order_by_id_orders__order_id__get",
        json_ok(schema("PokeOrder")),
        true,
    );
    get_order["parameters"] = order_id();
    let mut put_order = operation(
        "Update Order State",
        "update_order_state_orders__order_id__put",
        json_ok(schema("PokeOrder")),
        true,
    );
    put_order["parameters"] = order_id();
    put_order["requestBody"] = body("application/json", "PokeOrderUpdate");
    json!({
        "openapi": "3.1.0",
        "info": {"title": "FastAPI", "version": "0.1.0"},
        "paths": {
            "/create_order": {
                "get": operation("Create Order Form", "create_order_form_create_order_get", html_ok(), false),
                "post": create_form
            },
            "/list_orders": {"get": list_html},
            "/orders/": {"post": new_order, "get": read_orders},
            "/orders/{order_id}": {"get": get_order, "put": put_order},
            "/orders": {"delete": operation("Delete All Orders", "delete_all_orders_orders_delete", html_ok(), false)}
        },
        "components": {"schemas": {
            "Body_create_order_create_order_post": new_order_schema("Body_create_order_create_order_post"),
            "HTTPValidationError": {
                "properties": {"detail": {"items": schema("ValidationError"), "type": "array", "title": "Detail"}},
                "type": "object",
                "title": "HTTPValidationError"
            },
            "OrderState": {
                "type": "string",
                "enum": ["pending", "rejected", "failed", "success", "reversed"],
                "title": "OrderState"
            },
            "PokeOrder": {
                "properties": {
                    "id": {"type": "integer", "title": "Id"},
                    "user_id": {"type": "integer", "title": "User Id"},
                    "pokemon": {"type": "string", "title": "Pokemon"},
                    "country": {"type": "string", "title": "Country"},
                    "price": {"type": "number", "title": "Price"},
                    "state": schema("OrderState"),
                    "timestamp": {"type": "string", "format": "date-time", "title": "Timestamp"}
                },
                "type": "object",
                "required": ["id", "user_id", "pokemon", "country", "price", "state", "timestamp"],
                "title": "PokeOrder"
            },
            "PokeOrderCreate": new_order_schema("PokeOrderCreate"),
            "PokeOrderUpdate": {
                "properties": {"state": schema("OrderState")},
                "type": "object",
                "required": ["state"],
                "title": "PokeOrderUpdate"
            },
            "ValidationError": {
                "properties": {
                    "loc": {"items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}, "type": "array", "title": "Location"},
                    "msg": {"type": "string", "title": "Message"},
                    "type": {"type": "string", "title": "Error Type"}
                },
                "type": "object",
                "required": ["loc", "msg", "type"],
                "title": "ValidationError"
            }
        }}
    })
}
