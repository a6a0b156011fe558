//! HTTP over a bare `TcpStream` and bounded polling, for the live tests.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// The longest any single wait in a live test may take.
pub const WAIT: Duration = Duration::from_secs(30);
/// How often `eventually` probes.
pub const POLL: Duration = Duration::from_millis(100);

/// Polls `probe` until it yields a value; fails the test after [`WAIT`].
pub async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// A parsed HTTP response.
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl HttpResponse {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// One request over a fresh connection (`Connection: close`), read to EOF. `body` is its content type
/// and bytes. A reset after the response arrived (a server that answers before reading a large body)
/// still yields that response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
) -> HttpResponse {
    request_with(addr, method, path, &[], body).await
}

/// [`request`] with extra header lines (`("Authorization", "Bearer …")`).
pub async fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> HttpResponse {
    let what = format!("{method} {path}");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some((content_type, bytes)) = body {
            head.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", bytes.len()));
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body.map_or(&[][..], |(_, bytes)| bytes));
        // The server may answer and close before it read everything: what it said is still readable.
        let _ = stream.write_all(&raw).await;
        let mut received = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                Err(e) if !received.is_empty() => {
                    eprintln!("{what}: connection ended with {e} after the response");
                    break;
                }
                Err(e) => panic!("{what}: {e}"),
            }
        }
        received
    };
    let raw = timeout(WAIT, exchange).await.unwrap_or_else(|_| panic!("{what}: no response in time"));
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{what}: no header end: {text}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{what}: bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let response = HttpResponse { status, headers, body: body.to_string() };
    assert_eq!(response.header("transfer-encoding"), None, "{what}: chunked bodies are not decoded here");
    response
}

/// `GET path`.
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    request(addr, "GET", path, None).await
}
