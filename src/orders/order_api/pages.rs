//! The order API's HTML pages (`/create_order`, `/list_orders`, `/docs`) and its OpenAPI document.
//!
//! Everything user-supplied that lands in HTML is escaped.

use serde_json::{Value, json};

use crate::orders::model::{Order, OrderState};

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.3em .6em}}label{{display:block;margin:.4em 0}}</style></head>\
         <body><h1>{t}</h1>{body}<p><a href=\"/create_order\">Create order</a> · <a href=\"/list_orders\">List orders</a> \
         · <a href=\"/docs\">API docs</a></p></body></html>\n",
        t = escape(title)
    )
}

/// `GET /create_order`.
pub fn create_form() -> String {
    page(
        "Create a Pokémon order",
        "<form method=\"post\" action=\"/create_order\">\
         <label>User id <input name=\"user_id\" type=\"number\" required></label>\
         <label>Pokémon <input name=\"pokemon\" required maxlength=\"100\"></label>\
         <label>Country <input name=\"country\" required maxlength=\"100\"></label>\
         <label>Price <input name=\"price\" type=\"number\" step=\"any\" required></label>\
         <button type=\"submit\">Order</button></form>",
    )
}

/// `POST /create_order`'s answer.
pub fn order_created(o: &Order) -> String {
    page(
        "Order created",
        &format!(
            "<p>Order <strong>{}</strong>: {} for user {} in {} at {}, state <strong>{}</strong>.</p>",
            o.id,
            escape(&o.pokemon),
            o.user_id,
            escape(&o.country),
            o.price,
            o.state.as_str()
        ),
    )
}

/// `GET /list_orders`.
pub fn order_list(orders: &[Order], state: Option<OrderState>, skip: u64, limit: u64) -> String {
    let mut rows = String::new();
    for o in orders {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            o.id,
            o.user_id,
            escape(&o.pokemon),
            escape(&o.country),
            o.price,
            o.state.as_str(),
            o.timestamp
        ));
    }
    let filter = state.map_or(String::new(), |s| format!(" in state {}", s.as_str()));
    let next = format!(
        "/list_orders?skip={}&limit={limit}{}",
        skip + limit,
        state.map_or(String::new(), |s| format!("&state={}", s.as_str()))
    );
    page(
        "Orders",
        &format!(
            "<p>{} orders{filter}, from {skip}.</p><table><tr><th>id</th><th>user</th><th>pokemon</th><th>country</th>\
             <th>price</th><th>state</th><th>timestamp</th></tr>{rows}</table><p><a href=\"{}\">next</a></p>",
            orders.len(),
            escape(&next)
        ),
    )
}

/// `GET /docs`: Swagger UI over `/openapi.json` when the browser can load it, and a plain list anyway.
pub fn docs() -> String {
    let mut list = String::new();
    if let Some(paths) = openapi()["paths"].as_object() {
        for (path, ops) in paths {
            for (method, op) in ops.as_object().into_iter().flatten() {
                list.push_str(&format!(
                    "<li><code>{} {}</code> — {}</li>",
                    method.to_uppercase(),
                    escape(path),
                    escape(op["summary"].as_str().unwrap_or(""))
                ));
            }
        }
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Poke order API</title>\
         <link rel=\"stylesheet\" href=\"https://unpkg.com/swagger-ui-dist@5/swagger-ui.css\"></head><body>\
         <div id=\"swagger-ui\"><h1>Poke order API</h1><p>OpenAPI document: <a href=\"/openapi.json\">/openapi.json</a></p>\
         <ul>{list}</ul></div>\
         <script src=\"https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js\"></script>\
         <script>if (window.SwaggerUIBundle) SwaggerUIBundle({{url: '/openapi.json', dom_id: '#swagger-ui'}});</script>\
         </body></html>\n"
    )
}

fn order_schema() -> Value {
    json!({"type": "object", "required": ["id", "price", "state"], "properties": {
        "id": {"type": "integer"}, "user_id": {"type": "integer"}, "pokemon": {"type": "string"},
        "country": {"type": "string"}, "price": {"type": "number"},
        "state": {"$ref": "#/components/schemas/OrderState"}, "timestamp": {"type": "string", "format": "date-time"}}})
}

/// The OpenAPI 3.0 document of the order API.
pub fn openapi() -> Value {
    let order = json!({"$ref": "#/components/schemas/PokeOrder"});
    let ok = |schema: Value| json!({"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}});
    let invalid = json!({"description": "Validation Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}});
    let not_found = json!({"description": "Order not found"});
    let unavailable = json!({"description": "Database unavailable"});
    let id = json!({"name": "order_id", "in": "path", "required": true, "schema": {"type": "integer"}});
    let listing = json!([
        {"name": "state", "in": "query", "required": false, "schema": {"$ref": "#/components/schemas/OrderState"}},
        {"name": "skip", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0, "default": 0}},
        {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "default": 20}}
    ]);
    let mut create = ok(order.clone());
    create["422"] = invalid.clone();
    create["503"] = unavailable.clone();
    let mut list = ok(json!({"type": "array", "items": order}));
    list["422"] = invalid.clone();
    let mut one = ok(order.clone());
    one["404"] = not_found.clone();
    one["422"] = invalid.clone();
    let mut update = one.clone();
    update["503"] = unavailable;
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Poke order API (chaoslab)", "version": env!("CARGO_PKG_VERSION")},
        "paths": {
            "/orders/": {
                "post": {"summary": "Create an order (published to poke-orders)", "requestBody": {"required": true,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PokeOrderCreate"}}}},
                    "responses": create},
                "get": {"summary": "List orders", "parameters": listing, "responses": list}
            },
            "/orders/{order_id}": {
                "get": {"summary": "Get an order", "parameters": [id], "responses": one},
                "put": {"summary": "Set an order's state", "parameters": [id], "requestBody": {"required": true,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PokeOrderUpdate"}}}},
                    "responses": update}
            },
            "/orders": {"delete": {"summary": "Delete all orders", "responses": ok(json!({"type": "object"}))}},
            "/create_order": {
                "get": {"summary": "Order form (HTML)", "responses": {"200": {"description": "HTML"}}},
                "post": {"summary": "Create an order from the form (HTML)", "responses": {"200": {"description": "HTML"}, "422": invalid}}
            },
            "/list_orders": {"get": {"summary": "Orders table (HTML)", "responses": {"200": {"description": "HTML"}}}}
        },
        "components": {"schemas": {
            "OrderState": {"type": "string", "enum": ["pending", "rejected", "failed", "success", "reversed"]},
            "PokeOrder": order_schema(),
            "PokeOrderCreate": {"type": "object", "required": ["user_id", "pokemon", "country", "price"], "properties": {
                "user_id": {"type": "integer"}, "pokemon": {"type": "string", "maxLength": 100},
                "country": {"type": "string", "maxLength": 100}, "price": {"type": "number"}}},
            "PokeOrderUpdate": {"type": "object", "required": ["state"], "properties": {"state": {"$ref": "#/components/schemas/OrderState"}}},
            "HTTPValidationError": {"type": "object", "properties": {"detail": {"type": "array", "items": {"type": "object",
                "properties": {"loc": {"type": "array", "items": {"type": "string"}}, "msg": {"type": "string"}, "type": {"type": "string"}}}}}}
        }}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_users_send() {
        assert_eq!(
            escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
        let o = Order {
            id: 1,
            user_id: 2,
            pokemon: "<b>ditto</b>".into(),
            country: "Chad".into(),
            price: 3.0,
            state: OrderState::Pending,
            timestamp: chrono::NaiveDateTime::default(),
        };
        assert!(order_list(&[o], None, 0, 20).contains("&lt;b&gt;ditto&lt;/b&gt;"));
        assert!(docs().contains("<code>POST /orders/</code>"));
    }
}
