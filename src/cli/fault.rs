//! `chaoslab fault apply|list|remove|kinds` against a running instance's control plane, and
//! `chaoslab auth hash`.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use hyper::Method;
use hyper::header::{AUTHORIZATION, HeaderName};
use serde_json::{Map, Value, json};

use chaoslab::chaos::faults::{CATALOGUE, FaultRequest};
use chaoslab::orders::http::ApiClient;
use chaoslab::runner::CONTROL_TOKEN_FILE;

/// Which instance, and how to authenticate.
#[derive(Args, Clone, Debug)]
pub struct Target {
    /// Base URL of a live chaoslab.
    #[arg(long = "target", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Bearer token (default: $CHAOSLAB_TOKEN, else the file given by --token-file).
    #[arg(long)]
    pub token: Option<String>,
    /// File holding the token (default: out/control-token, written by `chaoslab run`).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

impl Target {
    /// A client for the URL.
    pub fn client(&self) -> anyhow::Result<ApiClient> {
        Ok(ApiClient::remote(&self.url, Duration::from_secs(600))?)
    }

    /// The token: flag, environment, then file.
    pub fn token(&self) -> anyhow::Result<Option<String>> {
        if let Some(t) = &self.token {
            return Ok(Some(t.clone()));
        }
        if let Ok(t) = std::env::var("CHAOSLAB_TOKEN")
            && !t.is_empty()
        {
            return Ok(Some(t));
        }
        let (file, explicit) = match &self.token_file {
            Some(f) => (f.clone(), true),
            None => (PathBuf::from("out").join(CONTROL_TOKEN_FILE), false),
        };
        match std::fs::read_to_string(&file) {
            Ok(t) => Ok(Some(t.trim().to_owned())),
            Err(e) if explicit => Err(e).with_context(|| format!("cannot read {}", file.display())),
            Err(_) => Ok(None),
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        self.request(method, path, body.map(|b| b.to_string().into_bytes())).await
    }

    /// Sends `body` as it is (JSON or YAML text) with the token; the answer as JSON (or as a string).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<(u16, Value)> {
        let headers: Vec<(HeaderName, String)> =
            self.token()?.map(|t| (AUTHORIZATION, format!("Bearer {t}"))).into_iter().collect();
        let r = self.client()?.send_with_headers(method, path, body, &headers).await?;
        let value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&r.body).into_owned()));
        Ok((r.status.as_u16(), value))
    }
}

/// The subcommands.
#[derive(Subcommand)]
pub enum FaultCommand {
    /// Apply a fault.
    Apply(ApplyArgs),
    /// List active and ended faults.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Remove a fault by id, or all with --all.
    Remove {
        /// The fault id (f-0001, …).
        id: Option<String>,
        /// Remove every active fault.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Print the catalogue of fault kinds (no instance needed).
    Kinds,
}

/// `fault apply`.
#[derive(Args)]
pub struct ApplyArgs {
    /// The kind (see `chaoslab fault kinds`).
    #[arg(long)]
    kind: Option<String>,
    /// Target: a name, a glob (KAFKA-*), or kind:<component kind>.
    #[arg(long = "on")]
    on: Option<String>,
    /// Selector mode: one, all, fixed, fixed-percent, random-max-percent.
    #[arg(long)]
    mode: Option<String>,
    /// The mode's value (a count or a percentage).
    #[arg(long)]
    value: Option<String>,
    /// How long it lasts (e.g. 30s); without it, until removed.
    #[arg(long)]
    duration: Option<String>,
    /// A parameter `key=value` (the value is read as JSON when it parses, else as text); repeatable.
    #[arg(short = 'p', long = "param")]
    params: Vec<String>,
    /// A whole fault request as a JSON file instead of the flags above.
    #[arg(long, conflicts_with_all = ["kind", "on", "mode", "value", "duration", "params"])]
    file: Option<PathBuf>,
    #[command(flatten)]
    target: Target,
}

impl ApplyArgs {
    fn request(&self) -> anyhow::Result<FaultRequest> {
        if let Some(file) = &self.file {
            let text =
                std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            return serde_json::from_str(&text)
                .with_context(|| format!("{}: not a fault request", file.display()));
        }
        let kind = self.kind.clone().context("--kind is required (or --file)")?;
        let mut parameters = Map::new();
        for p in &self.params {
            let (k, v) = p.split_once('=').with_context(|| format!("--param {p:?}: expected key=value"))?;
            let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
            parameters.insert(k.trim().to_owned(), value);
        }
        Ok(FaultRequest {
            kind,
            target: self.on.clone(),
            mode: self.mode.clone(),
            value: self.value.clone(),
            duration: self.duration.clone().map(Value::String),
            parameters,
        })
    }
}

fn finish(status: u16, body: &Value) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(body)?);
    if (200..300).contains(&status) {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: HTTP {status}");
        Ok(ExitCode::from(1))
    }
}

/// Runs one subcommand.
pub fn execute(command: FaultCommand) -> anyhow::Result<ExitCode> {
    if let FaultCommand::Kinds = command {
        for k in CATALOGUE {
            println!("{:<22} {:<8} {}", k.name, k.category, k.description);
            if !k.parameters.is_empty() {
                println!("{:<31} parameters: {}", "", k.parameters.join(", "));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, body) = rt.block_on(async {
        match &command {
            FaultCommand::Apply(a) => {
                a.target.send(Method::POST, "/api/faults", Some(serde_json::to_value(a.request()?)?)).await
            }
            FaultCommand::List { target } => target.send(Method::GET, "/api/faults", None).await,
            FaultCommand::Remove { id: Some(id), target, .. } => {
                target.send(Method::DELETE, &format!("/api/faults/{id}"), None).await
            }
            FaultCommand::Remove { id: None, all: true, target } => {
                target.send(Method::DELETE, "/api/faults", None).await
            }
            FaultCommand::Remove { id: None, all: false, .. } => {
                Err(anyhow::anyhow!("give a fault id or --all"))
            }
            FaultCommand::Kinds => Ok((200, json!(null))),
        }
    })?;
    finish(status, &body)
}

/// `chaoslab auth hash`: one line from standard input → its argon2 PHC string.
pub fn hash_from_stdin() -> anyhow::Result<ExitCode> {
    let mut secret = String::new();
    std::io::stdin().read_to_string(&mut secret).context("cannot read standard input")?;
    let secret = secret.trim_end_matches(['\n', '\r']);
    println!("{}", chaoslab::api::auth::hash_secret(secret)?);
    Ok(ExitCode::SUCCESS)
}
