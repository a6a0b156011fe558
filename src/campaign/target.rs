//! Where a campaign's runs happen: a sim pipeline in this process (`Local`), or a live chaoslab over
//! HTTP ([`Remote`], `campaign run --target URL`) — the wizard's setting, where the chaos is posted to the
//! instance's Chaos Mesh API, the faults to its control plane, and the series are read from a
//! Prometheus-compatible `/api/v1/query` (the instance's own, or a real Prometheus scraping it).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hyper::Method;
use hyper::header::{AUTHORIZATION, HeaderName};
use serde_json::Value;

use super::detect::Window;
use crate::chaos::execute::SimEnv;
use crate::chaos::experiment::Now;
use crate::chaos::faults::FaultRequest;
use crate::chaos::providers::{Backend, NativeProviders};
use crate::mesh::load::Loaded;
use crate::orders::http::ApiClient;
use crate::topology::Pipeline;

/// One chaos document of a run: its text as posted (YAML or JSON) and what it loaded as.
pub struct ChaosDoc {
    /// Where it came from (file, and the Jsonnet document).
    pub origin: String,
    /// The text with the point's values in.
    pub text: String,
    /// Its objects.
    pub objects: Vec<Loaded>,
}

/// What a campaign run needs of the system under test.
pub(crate) trait Target {
    /// Now on the target's clock.
    fn now(&self) -> DateTime<Utc>;
    /// The clock Chaos Toolkit journals are stamped with.
    fn journal_clock(&self) -> Now;
    /// Creates a document's Chaos Mesh objects.
    async fn create(&mut self, doc: &ChaosDoc) -> Result<(), String>;
    /// Applies a catalogue fault.
    async fn apply(&mut self, request: &FaultRequest) -> Result<(), String>;
    /// Evaluates a PromQL query that must give one number; none when it gives no series yet (a metric
    /// not reported yet, as Prometheus answers before the first scrape).
    async fn query(&self, query: &str) -> Result<Option<f64>, String>;
    /// The providers Chaos Toolkit experiments act through.
    fn providers(&self) -> NativeProviders;
    /// The environment experiments resolve `env` configuration from.
    fn env(&self) -> SimEnv;
    /// Ends the run's chaos (objects deleted, faults removed); what did not work, as warnings.
    async fn finish(&mut self) -> Vec<String>;
    /// The faults applied since `since`, as windows.
    async fn truth(&self, since: DateTime<Utc>) -> Result<Vec<Window>, String>;
}

fn unix(t: &str) -> Option<f64> {
    DateTime::parse_from_rfc3339(t).ok().map(|d| d.timestamp_millis() as f64 / 1000.0)
}

/// One number out of a query's value (none for no series), or why not.
fn one_number(query: &str, v: &crate::monitoring::promql::Value) -> Result<Option<f64>, String> {
    use crate::monitoring::promql::Value as V;
    match v {
        V::Scalar(x) => Ok(Some(*x)),
        V::Vector(s) if s.is_empty() => Ok(None),
        V::Vector(s) if s.len() == 1 => Ok(Some(s[0].value)),
        V::Vector(s) => Err(format!("{query} gives {} series, not one number", s.len())),
        V::String(_) => Err(format!("{query} gives a string, not a number")),
    }
}

/// A sim pipeline in this process.
pub(crate) struct Local {
    /// The run's pipeline.
    pub p: Arc<Pipeline>,
    /// The run's seed (the experiments' `BOOTSTRAP_SERVERS` name it).
    pub env: SimEnv,
    /// Every query the run samples: a scrape keeps only the families they name.
    pub queries: Vec<String>,
    /// The last scrape and its time: the queries due at one instant share one scrape.
    pub scrape: std::sync::Mutex<Option<(i64, Arc<crate::monitoring::tsdb::Tsdb>)>>,
}

impl Local {
    /// A target over the run's pipeline, sampling `queries`.
    pub fn new(p: Arc<Pipeline>, env: SimEnv, queries: Vec<String>) -> Local {
        Local { p, env, queries, scrape: std::sync::Mutex::default() }
    }
}

impl Target for Local {
    fn now(&self) -> DateTime<Utc> {
        self.p.clock.now()
    }

    fn journal_clock(&self) -> Now {
        crate::chaos::execute::now_of(&self.p.clock)
    }

    async fn create(&mut self, doc: &ChaosDoc) -> Result<(), String> {
        let mut errors = Vec::new();
        for l in &doc.objects {
            if let Err(e) = self.p.mesh.create(&self.p, l) {
                errors.push(format!("{}: {e}", l.object.origin));
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    async fn apply(&mut self, request: &FaultRequest) -> Result<(), String> {
        self.p.faults.apply(request).await.map(|_| ()).map_err(|e| e.to_string())
    }

    async fn query(&self, query: &str) -> Result<Option<f64>, String> {
        if crate::monitoring::has_metrics_store(&self.p) {
            return one_number(query, &crate::monitoring::query_at(&self.p, query)?);
        }
        let now = self.p.clock.now().timestamp_millis();
        let db = {
            let mut last = self.scrape.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match &*last {
                Some((at, db)) if *at == now => db.clone(),
                _ => {
                    let db = Arc::new(crate::monitoring::scrape_now(&self.p, Some(&self.queries)));
                    *last = Some((now, db.clone()));
                    db
                }
            }
        };
        let value = crate::monitoring::promql::query(query, &db, now).map_err(|e| e.to_string())?;
        one_number(query, &value)
    }

    fn providers(&self) -> NativeProviders {
        NativeProviders::new(Backend::Local(self.p.clone()))
    }

    fn env(&self) -> SimEnv {
        self.env.clone()
    }

    async fn finish(&mut self) -> Vec<String> {
        self.p.mesh.shutdown().await;
        Vec::new()
    }

    /// Every fault of the run: the pipeline is the run's own.
    async fn truth(&self, _since: DateTime<Utc>) -> Result<Vec<Window>, String> {
        Ok(self
            .p
            .faults
            .all()
            .iter()
            .filter_map(|r| {
                Some(Window {
                    fault: r.id.clone(),
                    kind: r.kind.clone(),
                    start: unix(&r.applied_at)?,
                    end: r.ended_at.as_deref().and_then(unix),
                })
            })
            .collect())
    }
}

/// A live chaoslab at a URL (`--target`), with the series read from `--prometheus` (default: the same URL).
#[derive(Clone)]
pub struct Remote {
    client: ApiClient,
    prometheus: ApiClient,
    token: Option<String>,
    /// What the current run created: (API collection, uid) of objects, ids of faults.
    created: Vec<(&'static str, String)>,
    faults: Vec<String>,
}

impl Remote {
    /// A target at `url`, querying `prometheus` (default: `url`), authenticating with `token`.
    pub fn new(url: &str, prometheus: Option<&str>, token: Option<String>) -> anyhow::Result<Remote> {
        let timeout = Duration::from_secs(30);
        let client = ApiClient::remote(url, timeout)?;
        let prometheus = match prometheus {
            Some(p) => ApiClient::remote(p, timeout)?,
            None => client.clone(),
        };
        Ok(Remote { client, prometheus, token, created: Vec::new(), faults: Vec::new() })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<(u16, Value), String> {
        let headers: Vec<(HeaderName, String)> =
            self.token.iter().map(|t| (AUTHORIZATION, format!("Bearer {t}"))).collect();
        let r =
            self.client.send_with_headers(method, path, body, &headers).await.map_err(|e| e.to_string())?;
        let value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&r.body).into_owned()));
        Ok((r.status.as_u16(), value))
    }

    /// Whether the target answers, and what it runs (its component names).
    pub async fn check(&self) -> anyhow::Result<Vec<String>> {
        let (status, body) =
            self.call(Method::GET, "/api/components", None).await.map_err(anyhow::Error::msg)?;
        anyhow::ensure!(status == 200, "GET /api/components answered {status}: {body}");
        let names = body
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        Ok(names)
    }
}

/// The message of an error answer.
fn refusal(status: u16, body: &Value) -> String {
    let mut text = body["error"].as_str().map_or_else(|| body.to_string(), str::to_string);
    if let Some(problems) = body["problems"].as_array() {
        let listed: Vec<&str> = problems.iter().filter_map(Value::as_str).collect();
        if !listed.is_empty() {
            text = format!("{text}: {}", listed.join("; "));
        }
    }
    format!("{status} {text}")
}

impl Target for Remote {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn journal_clock(&self) -> Now {
        Arc::new(Utc::now)
    }

    async fn create(&mut self, doc: &ChaosDoc) -> Result<(), String> {
        let (status, body) =
            self.call(Method::POST, "/api/schedules", Some(doc.text.clone().into_bytes())).await?;
        if status != 201 {
            return Err(format!("{}: {}", doc.origin, refusal(status, &body)));
        }
        for o in body["created"].as_array().into_iter().flatten() {
            let collection = match o["kind"].as_str() {
                Some("Schedule") => "schedules",
                Some("Workflow") => "workflows",
                _ => "experiments",
            };
            if let Some(uid) = o["uid"].as_str() {
                self.created.push((collection, uid.to_string()));
            }
        }
        Ok(())
    }

    async fn apply(&mut self, request: &FaultRequest) -> Result<(), String> {
        let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        let (status, answer) = self.call(Method::POST, "/api/faults", Some(body)).await?;
        if status != 201 {
            return Err(refusal(status, &answer));
        }
        if let Some(id) = answer["id"].as_str() {
            self.faults.push(id.to_string());
        }
        Ok(())
    }

    async fn query(&self, query: &str) -> Result<Option<f64>, String> {
        let path = format!(
            "/api/v1/query?{}",
            form_urlencoded::Serializer::new(String::new()).append_pair("query", query).finish()
        );
        let r = self.prometheus.send(Method::GET, &path, None).await.map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_slice(&r.body)
            .map_err(|_| format!("{path} answered {} with no JSON", r.status.as_u16()))?;
        if body["status"] != "success" {
            return Err(format!("{query}: {}", body["error"].as_str().unwrap_or("query failed")));
        }
        let number = |v: &Value| v.get(1).and_then(Value::as_str).and_then(|s| s.parse::<f64>().ok());
        let data = &body["data"];
        match (data["resultType"].as_str(), &data["result"]) {
            (Some("scalar"), v) => {
                number(v).map(Some).ok_or_else(|| format!("{query}: a scalar without a number"))
            }
            (Some("vector"), Value::Array(a)) if a.is_empty() => Ok(None),
            (Some("vector"), Value::Array(a)) if a.len() == 1 => {
                number(&a[0]["value"]).map(Some).ok_or_else(|| format!("{query}: a sample without a number"))
            }
            (Some("vector"), Value::Array(a)) => {
                Err(format!("{query} gives {} series, not one number", a.len()))
            }
            (t, _) => Err(format!("{query} gives a {}, not one number", t.unwrap_or("nothing"))),
        }
    }

    fn providers(&self) -> NativeProviders {
        NativeProviders::new(Backend::Remote { client: self.client.clone(), token: self.token.clone() })
    }

    fn env(&self) -> SimEnv {
        SimEnv::for_bus(None, 0)
    }

    async fn finish(&mut self) -> Vec<String> {
        let mut warnings = Vec::new();
        for (collection, uid) in std::mem::take(&mut self.created) {
            match self.call(Method::DELETE, &format!("/api/{collection}/{uid}"), None).await {
                Ok((s, _)) if s < 300 || s == 404 => {}
                Ok((s, body)) => {
                    warnings.push(format!("DELETE /api/{collection}/{uid}: {}", refusal(s, &body)))
                }
                Err(e) => warnings.push(format!("DELETE /api/{collection}/{uid}: {e}")),
            }
        }
        for id in std::mem::take(&mut self.faults) {
            // A fault that already ended answers 404; that is fine.
            match self.call(Method::DELETE, &format!("/api/faults/{id}"), None).await {
                Ok((s, _)) if s < 300 || s == 404 => {}
                Ok((s, body)) => warnings.push(format!("DELETE /api/faults/{id}: {}", refusal(s, &body))),
                Err(e) => warnings.push(format!("DELETE /api/faults/{id}: {e}")),
            }
        }
        warnings
    }

    async fn truth(&self, since: DateTime<Utc>) -> Result<Vec<Window>, String> {
        let (status, body) = self.call(Method::GET, "/api/faults", None).await?;
        if status != 200 {
            return Err(format!("GET /api/faults: {}", refusal(status, &body)));
        }
        let since = since.timestamp_millis() as f64 / 1000.0;
        let records = body["active"].as_array().into_iter().chain(body["ended"].as_array()).flatten();
        let mut windows: Vec<Window> = records
            .filter_map(|r| {
                Some(Window {
                    fault: r["id"].as_str()?.to_string(),
                    kind: r["kind"].as_str()?.to_string(),
                    start: unix(r["applied_at"].as_str()?)?,
                    end: r["ended_at"].as_str().and_then(unix),
                })
            })
            .filter(|w| w.start >= since)
            .collect();
        windows.sort_by(|a, b| a.start.total_cmp(&b.start).then_with(|| a.fault.cmp(&b.fault)));
        Ok(windows)
    }
}
