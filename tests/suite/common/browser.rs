//! A real headless Chromium driven through ChromeDriver (WebDriver, `fantoccini`): started per test on a
//! port ChromeDriver picks itself, with a fresh profile, and shut down through `/shutdown` (a plain kill
//! would leave the browser running).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::http::Method;
use fantoccini::error::CmdError;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// A running ChromeDriver.
pub struct Driver {
    child: Child,
    port: u16,
    profiles: tempfile::TempDir,
    sessions: usize,
}

/// The Chromium binary: Debian's real one (its `/usr/bin/chromium` wrapper sources scripts we do not need).
fn chromium() -> Option<PathBuf> {
    ["/usr/lib/chromium/chromium"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| super::find_on_path("chromium"))
}

impl Driver {
    /// Starts ChromeDriver, or says why the test skips (neither program installed).
    pub fn start(test: &str) -> Option<Driver> {
        let (Some(driver), Some(_)) = (super::find_on_path("chromedriver"), chromium()) else {
            super::skip(
                test,
                "chromium and chromedriver are not installed (Debian: chromium chromium-driver)",
            );
            return None;
        };
        let mut child = Command::new(driver)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let mut port = None;
        for line in &mut lines {
            let line = line.expect("chromedriver's output");
            if let Some(p) = line.strip_prefix("ChromeDriver was started successfully on port ") {
                port = p.trim_end_matches('.').parse().ok();
                break;
            }
        }
        let port = port.expect("chromedriver said which port it listens on");
        std::thread::spawn(move || lines.for_each(drop));
        Some(Driver { child, port, profiles: tempfile::tempdir().expect("temp dir"), sessions: 0 })
    }

    /// A new browser session with its own profile (no cookies shared with other sessions).
    pub async fn session(&mut self) -> Client {
        self.sessions += 1;
        let profile = self.profiles.path().join(format!("profile-{}", self.sessions));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium().expect("checked at start"),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,960",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--no-first-run", "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.display())]
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session starts")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                s,
                "GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                self.port
            );
            let _ = s.read_to_end(&mut Vec::new());
        }
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ChromeDriver's (non-W3C but supported) browser log: console messages, uncaught exceptions, failed loads.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// The browser log's SEVERE entries since the last call (console errors, uncaught exceptions, failed
/// loads), as `source: message`.
pub async fn console_errors(c: &Client) -> Vec<String> {
    let entries = c.issue_cmd(BrowserLog).await.expect("the browser log is readable");
    entries
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| format!("{}: {}", e["source"].as_str().unwrap_or("?"), e["message"].as_str().unwrap_or("?")))
        .collect()
}

/// Where the tests' screenshots go: `target/dashboard-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// Saves a screenshot of the page as `<name>.png`.
pub async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("a screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("screenshot written");
}

/// Waits (up to 20 s) for a CSS selector to match.
pub async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
}

/// Runs `script` (a function body that `return`s) until it returns something truthy, up to 20 s.
pub async fn wait_until(c: &Client, what: &str, script: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..80 {
        match c.execute(script, vec![]).await {
            Ok(v) if !v.is_null() && v != json!(false) && v != json!("") => return v,
            Ok(v) => last = v,
            Err(CmdError::Standard(e)) => last = json!(e.to_string()),
            Err(e) => panic!("{what}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{what}: not true after 20 s (last: {last})")
}
