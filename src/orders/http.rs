//! HTTP between the order services: over real sockets in live mode, in-process in sim mode.
//!
//! `ORDER-UPDATER` and `OCTILLERY` call the order API as the reference's services do. In live mode that
//! is real HTTP/1.1 to a URL (ours or anyone's). In sim mode there are no sockets: the same request is
//! handed to the API's axum router in-process, so handlers, status codes and bodies are identical and
//! the run stays deterministic. Faults on the hop are applied by the caller's link.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::ServiceExt;

/// Largest response body read.
const MAX_BODY: usize = 16 << 20;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Bad URL or path.
    #[error("invalid URL {0}: {1}")]
    Url(String, String),
    /// Connection refused, reset, timed out…
    #[error("request to {0} failed: {1}")]
    Transport(String, String),
}

/// A response.
#[derive(Debug)]
pub struct Response {
    /// Status.
    pub status: StatusCode,
    /// Body bytes.
    pub body: Bytes,
}

/// A client of the order API.
#[derive(Clone)]
pub enum ApiClient {
    /// Calls the router directly (sim mode).
    InProcess(Router),
    /// Real HTTP to `base` (live mode, or `chaoslab load --url`).
    Remote {
        /// Base URL, e.g. `http://127.0.0.1:8080`.
        base: String,
        /// Connection-pooling client.
        client: Client<HttpConnector, Full<Bytes>>,
        /// Per-request timeout.
        timeout: Duration,
        /// Sent as `Authorization: Bearer …` with every request (the run's service key).
        key: Option<String>,
    },
}

impl ApiClient {
    /// A client for a base URL such as `http://127.0.0.1:8080` (a trailing `/` is ignored).
    pub fn remote(base: &str, timeout: Duration) -> Result<ApiClient, HttpError> {
        let base = base.trim_end_matches('/').to_string();
        let uri: Uri = base
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| HttpError::Url(base.clone(), e.to_string()))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(HttpError::Url(base, "expected http://host[:port]".into()));
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(ApiClient::Remote { base, client, timeout, key: None })
    }

    /// How component `api`'s clients reach it: over real HTTP at the run's API address in live mode,
    /// through its router in-process in sim mode.
    pub fn for_component(cx: &crate::topology::BuildCx<'_>, api: &str) -> anyhow::Result<ApiClient> {
        match (cx.mode, cx.api_base) {
            (crate::topology::RunMode::Live, Some(base)) => {
                match ApiClient::remote(base, Duration::from_secs(10))? {
                    ApiClient::Remote { base, client, timeout, .. } => Ok(ApiClient::Remote {
                        base,
                        client,
                        timeout,
                        key: cx.service_key.map(str::to_owned),
                    }),
                    other => Ok(other),
                }
            }
            _ => {
                let crate::topology::build::HttpRoutes(router) = cx.handle(api)?;
                Ok(ApiClient::InProcess(router))
            }
        }
    }

    /// Sends a request with an optional JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Result<Response, HttpError> {
        self.send_with_headers(method, path, json, &[]).await
    }

    /// [`ApiClient::send`] with extra headers (e.g. `authorization`).
    pub async fn send_with_headers(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
        headers: &[(hyper::header::HeaderName, String)],
    ) -> Result<Response, HttpError> {
        let mut builder = Request::builder().method(method);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        if json.is_some() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let body = Bytes::from(json.unwrap_or_default());
        match self {
            ApiClient::InProcess(router) => {
                let req = builder
                    .uri(path)
                    .body(Body::from(body))
                    .map_err(|e| HttpError::Url(path.to_string(), e.to_string()))?;
                let resp = router
                    .clone()
                    .oneshot(req)
                    .await
                    .map_err(|e| HttpError::Transport(path.into(), e.to_string()))?;
                let status = resp.status();
                let bytes = axum::body::to_bytes(resp.into_body(), MAX_BODY)
                    .await
                    .map_err(|e| HttpError::Transport(path.into(), e.to_string()))?;
                Ok(Response { status, body: bytes })
            }
            ApiClient::Remote { base, client, timeout, key } => {
                let url = format!("{base}{path}");
                if let Some(key) = key {
                    builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {key}"));
                }
                let req = builder
                    .uri(&url)
                    .body(Full::new(body))
                    .map_err(|e| HttpError::Url(url.clone(), e.to_string()))?;
                let call = async {
                    let resp = client
                        .request(req)
                        .await
                        .map_err(|e| HttpError::Transport(url.clone(), e.to_string()))?;
                    let status = resp.status();
                    let limited = http_body_util::Limited::new(resp.into_body(), MAX_BODY);
                    let bytes = limited
                        .collect()
                        .await
                        .map_err(|e| HttpError::Transport(url.clone(), e.to_string()))?
                        .to_bytes();
                    Ok(Response { status, body: bytes })
                };
                tokio::time::timeout(*timeout, call).await.map_err(|_| {
                    HttpError::Transport(url.clone(), format!("no response within {timeout:?}"))
                })?
            }
        }
    }
}
