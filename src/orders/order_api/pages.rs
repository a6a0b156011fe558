//! The order API's HTML pages (`/create_order`, `/list_orders`, the order-created page, `/docs`), laid
//! out as the original's templates are: its titles, labels, column headers, filter and paging links.
//!
//! Everything user-supplied that lands in HTML is escaped.

use crate::orders::model::Order;

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

/// Python's `repr(float)`: the shortest digits that read back the same, in fixed notation from 1e-4 up
/// to 1e16 (always with a fraction, `10.0`) and in scientific notation outside it (`1e-07`,
/// `1.2345678901234567e+19`) — how the original's templates print a price.
pub fn py_float(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "nan".into()
        } else if f > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let fixed = format!("{f}");
        if fixed.contains('.') { fixed } else { format!("{fixed}.0") }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

/// Python's `str(datetime)`: a space between date and time, microseconds only when there are some.
pub fn py_datetime(t: &chrono::NaiveDateTime) -> String {
    use chrono::Timelike as _;
    if t.nanosecond() / 1000 == 0 {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em}\
    table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
    tbody tr:nth-child(odd){background:#f6f6f6}.form-group{margin:.6em 0}label{display:block}\
    .pagination{list-style:none;display:flex;gap:1em;justify-content:center;padding:0}\
    .list-group{list-style:none;padding:0}.alert{border:1px solid #9c9;background:#efe;padding:1em}";

/// A page as the original's templates lay it out (Bootstrap's class names kept; the stylesheet is
/// ours and inline — nothing is fetched from a CDN).
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n    <title>{t}</title>\n    <style>{STYLE}</style>\n</head>\n<body>\n\
         <div class=\"container mt-4\">\n{body}</div>\n</body>\n</html>\n",
        t = escape(title)
    )
}

/// `GET /create_order`: the original's form (labels, `step="0.01"` on the price).
pub fn create_form() -> String {
    let field = |id: &str, label: &str, input: &str| {
        format!(
            "<div class=\"form-group\">\n<label for=\"{id}\">{label}</label>\n\
             <input {input} class=\"form-control\" id=\"{id}\" name=\"{id}\" required>\n\
             <div class=\"invalid-feedback\">Please provide a valid {}.</div>\n</div>\n",
            label.trim_end_matches(" (in dollars)")
        )
    };
    page(
        "Create Poke Order",
        &format!(
            "<h1 class=\"mb-4\">Create Order</h1>\n\
             <form action=\"/create_order\" method=\"post\" class=\"needs-validation\">\n{}{}{}{}\
             <button type=\"submit\" class=\"btn btn-primary\">Create Order</button>\n</form>\n",
            field("user_id", "User ID", "type=\"number\""),
            field("pokemon", "pokemon", "type=\"text\""),
            field("country", "Country", "type=\"text\""),
            field("price", "Price (in dollars)", "type=\"number\" step=\"0.01\""),
        ),
    )
}

/// `POST /create_order`'s answer: every field of the order, its timestamp included.
pub fn order_created(o: &Order) -> String {
    let items = [
        ("Order ID", o.id.to_string()),
        ("User ID", o.user_id.to_string()),
        ("pokemon", escape(&o.pokemon)),
        ("Country", escape(&o.country)),
        ("Price", py_float(o.price)),
        ("State", o.state.as_str().to_owned()),
        ("Timestamp", py_datetime(&o.timestamp)),
    ];
    let list: String = items
        .iter()
        .map(|(label, value)| {
            format!("<li class=\"list-group-item\"><strong>{label}:</strong> {value}</li>\n")
        })
        .collect();
    page(
        "Order Created",
        &format!(
            "<div class=\"alert alert-success\" role=\"alert\">\n\
             <h4 class=\"alert-heading\">Order Created Successfully!</h4>\n\
             <p>Your order has been created with the following details:</p>\n<hr>\n\
             <ul class=\"list-group\">\n{list}</ul>\n<hr>\n<p class=\"mb-0\">\n\
             <a href=\"/create_order\" class=\"btn btn-primary\">Create Another Order</a>\n\
             <a href=\"/list_orders\" class=\"btn btn-secondary\">View All Orders</a>\n</p>\n</div>\n"
        ),
    )
}

/// The states `/list_orders` offers as filters (the original's select has no `failed`).
const FILTERS: [&str; 4] = ["pending", "rejected", "success", "reversed"];

/// `GET /list_orders`: the state filter, the table, and Previous (when `skip >= limit`) and Next links
/// that keep the filter. `state` is the query's text, echoed (escaped) as the original does.
pub fn order_list(orders: &[Order], state: &str, skip: u64, limit: u64) -> String {
    let options: String = std::iter::once(("", "All"))
        .chain(FILTERS.iter().map(|s| (*s, *s)))
        .map(|(value, label)| {
            let selected = if value == state { " selected" } else { "" };
            format!("<option value=\"{value}\"{selected}>{label}</option>\n")
        })
        .collect();
    let rows: String = orders
        .iter()
        .map(|o| {
            format!(
                "<tr>\n<td>{}</td>\n<td>{}</td>\n<td>{}</td>\n<td>{}</td>\n<td>{}</td>\n<td>{}</td>\n<td>{}</td>\n</tr>\n",
                o.id,
                o.user_id,
                escape(&o.pokemon),
                escape(&o.country),
                py_float(o.price),
                o.state.as_str(),
                py_datetime(&o.timestamp)
            )
        })
        .collect();
    let link = |skip: u64, label: &str| {
        let filter = if state.is_empty() { String::new() } else { format!("&state={}", escape(state)) };
        format!(
            "<li class=\"page-item\">\n<a class=\"page-link\" href=\"?skip={skip}&limit={limit}{filter}\">{label}</a>\n</li>\n"
        )
    };
    let previous = if skip >= limit { link(skip - limit, "Previous") } else { String::new() };
    let next = link(skip.saturating_add(limit), "Next");
    page(
        "List Poke Orders",
        &format!(
            "<h1 class=\"mb-4\">List Poke Orders</h1>\n\
             <form action=\"/list_orders\" method=\"get\" class=\"form-inline mb-4\">\n\
             <label for=\"state\" class=\"mr-2\">Filter by State:</label>\n\
             <select id=\"state\" name=\"state\" class=\"form-control mr-2\">\n{options}</select>\n\
             <input type=\"submit\" value=\"Filter\" class=\"btn btn-primary\">\n</form>\n\
             <table class=\"table table-striped table-bordered\">\n<thead>\n<tr>\n<th>Order ID</th>\n<th>User ID</th>\n\
             <th>Pokemon</th>\n<th>Country</th>\n<th>Price</th>\n<th>State</th>\n<th>Timestamp</th>\n</tr>\n</thead>\n\
             <tbody>\n{rows}</tbody>\n</table>\n<nav aria-label=\"Page navigation\">\n\
             <ul class=\"pagination justify-content-center\">\n{previous}{next}</ul>\n</nav>\n"
        ),
    )
}

/// `GET /docs`: Swagger UI over `/openapi.json`, as FastAPI serves it, with chaoslab's own document in its
/// list; Swagger UI's files come from the binary (nothing is fetched at run time).
pub fn docs() -> String {
    crate::api::docs::page("FastAPI - Swagger UI", &crate::api::docs::ORDER_API_FIRST)
}

/// `GET /docs/oauth2-redirect`: the page Swagger UI's OAuth2 flow returns to (FastAPI's title), running
/// Swagger UI's own redirect script from the binary; the API itself has no OAuth2 flow.
pub fn oauth2_redirect() -> String {
    format!(
        "<!doctype html>\n<html lang=\"en-US\">\n<head>\n<title>Swagger UI: OAuth2 Redirect</title>\n</head>\n\
         <body>\n<script src=\"{}/oauth2-redirect.js\"></script>\n</body>\n</html>\n",
        crate::api::docs::ASSETS
    )
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
            state: crate::orders::model::OrderState::Pending,
            timestamp: chrono::NaiveDateTime::default(),
        };
        let page = order_list(&[o], "<x>", 20, 20);
        assert!(page.contains("&lt;b&gt;ditto&lt;/b&gt;"));
        assert!(page.contains("href=\"?skip=0&limit=20&state=&lt;x&gt;\">Previous"), "{page}");
        assert!(docs().contains(r#""urls.primaryName":"POKE-ORDER-API""#), "{}", docs());
        assert!(!docs().contains("https://"), "nothing is fetched from elsewhere");
        let redirect = oauth2_redirect();
        assert!(redirect.contains("<title>Swagger UI: OAuth2 Redirect</title>"), "{redirect}");
        let script = redirect.split('"').find(|s| s.ends_with("oauth2-redirect.js")).unwrap();
        let file = script.strip_prefix("/api/docs/").unwrap();
        assert!(crate::api::docs::swagger_file(file).is_some_and(|(_, js)| js.len() > 500), "{script}");
    }

    #[test]
    fn prices_and_times_print_as_python_does() {
        for (f, text) in [
            (10.0, "10.0"),
            (12.5, "12.5"),
            (1e-7, "1e-07"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (1.2345678901234567e19, "1.2345678901234567e+19"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-2.5, "-2.5"),
        ] {
            assert_eq!(py_float(f), text);
        }
        let t = chrono::NaiveDate::from_ymd_opt(2026, 12, 7)
            .unwrap()
            .and_hms_micro_opt(3, 19, 40, 995_857)
            .unwrap();
        assert_eq!(py_datetime(&t), "2026-12-07 03:19:40.995857");
        let whole = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap().and_hms_opt(3, 19, 40).unwrap();
        assert_eq!(py_datetime(&whole), "2026-12-07 03:19:40");
    }
}
