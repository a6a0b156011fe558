//! `/api/openapi.json` and `/api/docs`: the whole HTTP API, described and browsable.
//!
//! The document is `openapi.json` beside this file, written against the routes. Tests keep it honest:
//! every route the source registers is in it with its methods, and nothing else is; CI validates it
//! with `openapi-spec-validator`. The order API keeps its own FastAPI-exact document at `/openapi.json`;
//! both pages list both documents.
//!
//! The pages are Swagger UI, whose files come from the binary (utoipa-swagger-ui's vendored copy,
//! extracted at build time): nothing is fetched from the internet, at build or at run time.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// The document as written (its `info.version` is set to the crate's when served).
const DOCUMENT: &str = include_str!("openapi.json");

/// Where the pages' Swagger UI files are served from.
pub const ASSETS: &str = "/api/docs";

/// The document of chaoslab's own API, as `/api/openapi.json` serves it.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        // The file is part of the binary and a test parses it: it cannot fail here unless the build is
        // broken, and then the page says so instead of panicking.
        let mut doc = serde_json::from_str::<Value>(DOCUMENT).unwrap_or_else(
            |e| json!({"openapi": "3.1.0", "info": {"title": format!("broken document: {e}")}}),
        );
        doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
        doc
    })
}

/// The routes: the document, the page, and Swagger UI's files.
pub fn routes() -> Router {
    Router::new()
        .route("/api/openapi.json", get(|| async { axum::Json(document()) }))
        .route("/api/docs", get(|| async { Html(page("chaoslab HTTP API - Swagger UI", &CHAOSLAB_FIRST)) }))
        .route("/api/docs/{file}", get(asset))
}

/// A spec in a page's list: its name and URL.
pub type Spec = (&'static str, &'static str);

/// chaoslab's document first, then the order API's.
pub const CHAOSLAB_FIRST: [Spec; 2] =
    [("chaoslab", "/api/openapi.json"), ("POKE-ORDER-API", "/openapi.json")];

/// The order API's document first (its `/docs`, as FastAPI serves it), then chaoslab's.
pub const ORDER_API_FIRST: [Spec; 2] =
    [("POKE-ORDER-API", "/openapi.json"), ("chaoslab", "/api/openapi.json")];

/// A Swagger UI page titled `title` over `specs` (the first one open; the others in the top bar's list).
pub fn page(title: &str, specs: &[Spec]) -> String {
    let urls: Vec<Value> = specs.iter().map(|(name, url)| json!({"name": name, "url": url})).collect();
    let config = json!({
        "urls": urls,
        "urls.primaryName": specs.first().map_or("", |(name, _)| name),
        "dom_id": "#swagger-ui",
        "layout": "StandaloneLayout",
        "deepLinking": true,
        "showExtensions": true,
        "showCommonExtensions": true,
    });
    // JSON inside <script>: `<` is escaped so no string in it can close the element.
    let config = config.to_string().replace('<', "\\u003c");
    let title = title.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <link type=\"text/css\" rel=\"stylesheet\" href=\"{ASSETS}/swagger-ui.css\">\n\
         <link rel=\"icon\" type=\"image/png\" href=\"{ASSETS}/favicon-32x32.png\">\n</head>\n<body>\n\
         <div id=\"swagger-ui\"></div>\n\
         <script src=\"{ASSETS}/swagger-ui-bundle.js\"></script>\n\
         <script src=\"{ASSETS}/swagger-ui-standalone-preset.js\"></script>\n\
         <script>\nconst config = {config};\n\
         config.presets = [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset];\n\
         config.oauth2RedirectUrl = window.location.origin + '/docs/oauth2-redirect';\n\
         window.ui = SwaggerUIBundle(config);\n</script>\n</body>\n</html>\n"
    )
}

/// One of Swagger UI's files: its content type and bytes, or `None` for a name it does not have.
/// (`swagger-initializer.js` and `index.html` are Swagger UI's own start-up, which [`page`] replaces.)
pub fn swagger_file(name: &str) -> Option<(String, Cow<'static, [u8]>)> {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    if name.is_empty() || matches!(name, "/" | "index.html" | "swagger-initializer.js") {
        return None;
    }
    let config = CONFIG.get_or_init(|| Arc::new(utoipa_swagger_ui::Config::new(["/api/openapi.json"])));
    match utoipa_swagger_ui::serve(name, config.clone()) {
        // The files are borrowed from the binary: a request copies none of them.
        Ok(Some(file)) => Some((file.content_type, file.bytes)),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(file = name, "Swagger UI file unreadable: {e}");
            None
        }
    }
}

async fn asset(Path(file): Path<String>) -> Response {
    match swagger_file(&file) {
        Some((content_type, bytes)) => {
            let body = match bytes {
                Cow::Borrowed(b) => bytes::Bytes::from_static(b),
                Cow::Owned(v) => bytes::Bytes::from(v),
            };
            let mut resp = body.into_response();
            let headers = resp.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&content_type) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            // The files change only with the binary.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
            resp
        }
        None => {
            (StatusCode::NOT_FOUND, axum::Json(json!({"error": format!("no file {file:?} in Swagger UI")})))
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_document_parses_and_says_what_it_is() {
        let doc: Value = serde_json::from_str(DOCUMENT).expect("src/api/openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(document()["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(document()["paths"].as_object().is_some_and(|p| p.len() > 40));
    }

    #[test]
    fn the_page_loads_swagger_ui_from_the_binary_with_both_documents() {
        let html = page("chaoslab <API>", &CHAOSLAB_FIRST);
        assert!(html.contains("<title>chaoslab &lt;API&gt;</title>"));
        assert!(!html.contains("http://") && !html.contains("https://"), "nothing from the internet: {html}");
        for file in
            ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"]
        {
            assert!(html.contains(&format!("{ASSETS}/{file}")), "{file}");
            let (content_type, bytes) =
                swagger_file(file).unwrap_or_else(|| panic!("{file} is not in the binary"));
            assert!(bytes.len() > 100, "{file}: {} bytes", bytes.len());
            let want = if file.ends_with(".js") {
                "javascript"
            } else if file.ends_with(".css") {
                "text/css"
            } else {
                "image/png"
            };
            assert!(content_type.contains(want), "{file}: {content_type}");
        }
        assert!(html.contains(r#""urls.primaryName":"chaoslab""#), "{html}");
        assert!(html.contains(r#"{"name":"POKE-ORDER-API","url":"/openapi.json"}"#), "{html}");
        for missing in ["", "index.html", "swagger-initializer.js", "../Cargo.toml", "nope.js"] {
            assert!(swagger_file(missing).is_none(), "{missing}");
        }
    }

    /// `(METHOD, path)` of every `.route(…)` the source registers outside tests, read from the files
    /// that build the HTTP listeners; the order API's routes are documented by its own document.
    fn registered_routes() -> BTreeSet<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let files = [
            "api/mod.rs",
            "api/control.rs",
            "api/mesh.rs",
            "api/reasoning.rs",
            "api/query.rs",
            "api/docs.rs",
            "process_mining/heuristics_miner.rs",
            "dashboard/routes.rs",
            "monitoring/logs/http_input.rs",
        ];
        let method = regex::Regex::new(r"\b(get|post|put|delete|patch)\(").unwrap();
        let mut found = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            // Only the code before the file's test module.
            let code = text.split("#[cfg(test)]").next().unwrap_or(&text);
            for (at, _) in code.match_indices(".route(") {
                // The call's arguments: up to the parenthesis that closes it.
                let args = &code[at + ".route(".len()..];
                let mut depth = 1;
                let end = args
                    .char_indices()
                    .find(|&(_, c)| {
                        depth += match c {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map_or(args.len(), |(i, _)| i);
                let args = &args[..end];
                let Some(path) = args.trim_start().strip_prefix('"').and_then(|a| a.split('"').next()) else {
                    continue;
                };
                let path = path.replace("{*", "{");
                for verb in method.captures_iter(args) {
                    found.insert((verb[1].to_ascii_uppercase(), path.clone()));
                }
            }
        }
        found
    }

    #[test]
    fn every_registered_route_is_documented_and_nothing_else() {
        let registered = registered_routes();
        assert!(registered.len() > 60, "the route scan found only {registered:?}");
        let mut documented = BTreeSet::new();
        for (path, item) in document()["paths"].as_object().unwrap() {
            for verb in ["get", "post", "put", "delete", "patch"] {
                if item.get(verb).is_some() {
                    documented.insert((verb.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        let undocumented: Vec<_> = registered.difference(&documented).collect();
        let stale: Vec<_> = documented.difference(&registered).collect();
        assert!(undocumented.is_empty(), "routes missing from src/api/openapi.json: {undocumented:?}");
        assert!(stale.is_empty(), "documented but not registered: {stale:?}");
    }

    #[test]
    fn operations_have_ids_summaries_and_answers() {
        let mut ids = BTreeSet::new();
        for (path, item) in document()["paths"].as_object().unwrap() {
            for (verb, op) in item.as_object().unwrap() {
                if !["get", "post", "put", "delete", "patch"].contains(&verb.as_str()) {
                    continue;
                }
                let id =
                    op["operationId"].as_str().unwrap_or_else(|| panic!("{verb} {path}: no operationId"));
                assert!(ids.insert(id.to_owned()), "{id} twice");
                assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{verb} {path}: no summary");
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{verb} {path}: no responses"
                );
            }
        }
    }
}
