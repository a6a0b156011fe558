//! Authentication of the control plane (fault API, experiment execution): the credentials file, the check of
//! an `Authorization` header against it, and the axum middleware that guards the routes.
//!
//! The credentials file is TOML with `[[user]]` (`name`, `password_hash`) and `[[token]]` (`name`,
//! `token_hash`) entries. Only argon2 PHC strings are accepted, so a plain-text secret in the file is refused at
//! load, naming the file, the line and the reason. Users authenticate with `Basic`, tokens with `Bearer`.
//!
//! Argon2 is slow by design, so successful checks are remembered in a bounded in-memory cache keyed by the
//! SHA-256 of the presented header value (never the secret itself); failed checks are never cached and always
//! pay the full hash. The middleware runs cache misses on the blocking pool, a few at a time, because each
//! check takes tens of milliseconds and ~19 MiB of memory. Secrets never reach logs, errors or `Debug` output.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::Error as HashError;
use argon2::{Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use toml::Spanned;

/// Value of the `WWW-Authenticate` header on every 401 answer.
pub const WWW_AUTHENTICATE: &str = "Basic realm=\"chaoslab\", Bearer";

/// How many successful verifications the cache remembers; the oldest is forgotten first.
pub const CACHE_CAPACITY: usize = 1024;

/// How many argon2 checks the middleware runs at once (each holds ~19 MiB for tens of milliseconds).
pub const MAX_CONCURRENT_CHECKS: usize = 4;

/// A PHC hash of a fixed throwaway secret with the default parameters: an unknown user (or a bearer token when
/// no token is configured) is checked against it so that the answer takes as long as for a known one.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$Y2hhb3NsYWItZHVtbXk$bxAicfiMQbl2pisDHP0c8OH/CZfFHQRyY52R7ZDCeDo";

/// Whether a principal authenticated as a user (`Basic`) or with an API token (`Bearer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PrincipalKind {
    /// A `[[user]]` entry, authenticated with `Authorization: Basic`.
    User,
    /// A `[[token]]` entry, authenticated with `Authorization: Bearer`.
    Token,
}

impl fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrincipalKind::User => "user",
            PrincipalKind::Token => "token",
        })
    }
}

/// Who made a request: inserted into the request extensions by [`require_auth`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The `name` of the matching `[[user]]` or `[[token]]` entry.
    pub name: String,
    /// Which kind of entry matched.
    pub kind: PrincipalKind,
}

/// Everything that can go wrong loading credentials, hashing a secret or checking a request.
///
/// No variant ever carries a secret, a hash or a header value.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The credentials file could not be read.
    #[error("cannot read credentials file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not have the expected shape.
    #[error("{}:{line}: {reason}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem (1 when the parser gives no position).
        line: usize,
        /// What is wrong (values are never quoted).
        reason: String,
    },
    /// A `password_hash` or `token_hash` is not an argon2 PHC string.
    #[error("{}:{line}: `{field}` of {kind} `{name}` refused: {reason}", path.display())]
    BadHash {
        /// The file.
        path: PathBuf,
        /// 1-based line of the value.
        line: usize,
        /// Kind of the entry.
        kind: PrincipalKind,
        /// Name of the entry.
        name: String,
        /// `password_hash` or `token_hash`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An entry's name is empty or unusable.
    #[error("{}:{line}: {kind} name refused: {reason}", path.display())]
    BadName {
        /// The file.
        path: PathBuf,
        /// 1-based line of the name.
        line: usize,
        /// Kind of the entry.
        kind: PrincipalKind,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two entries of the same kind share a name.
    #[error("{}:{line}: {kind} `{name}` is defined twice (first at line {first_line})", path.display())]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// 1-based line of the second definition.
        line: usize,
        /// 1-based line of the first definition.
        first_line: usize,
        /// Kind of both entries.
        kind: PrincipalKind,
        /// The shared name.
        name: String,
    },
    /// The file defines nobody, so nothing could ever authenticate.
    #[error("{}: defines no [[user]] and no [[token]]", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// [`hash_secret`] was given an empty secret.
    #[error("refusing to hash an empty secret")]
    EmptySecret,
    /// Argon2 failed to hash a secret (OS randomness or parameters).
    #[error("cannot hash the secret: {0}")]
    Hash(HashError),
    /// The request has no `Authorization` header.
    #[error("authentication required")]
    Missing,
    /// The `Authorization` header cannot be decoded.
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    /// The `Authorization` header uses a scheme other than `Basic` or `Bearer`.
    #[error("unsupported authorization scheme (use Basic or Bearer)")]
    UnsupportedScheme,
    /// Unknown user, wrong password or unknown token (deliberately not told apart).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The session cookie came with a state-changing request from another origin.
    #[error("{0}")]
    CrossOrigin(String),
    /// The check itself could not run (the blocking task failed).
    #[error("credential check failed: {0}")]
    Internal(String),
    /// This peer failed too many checks lately.
    #[error("too many failed credential checks from this address; retry in {0} s")]
    TooManyFailures(u64),
}

impl AuthError {
    /// The HTTP status the middleware answers this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Missing
            | AuthError::Malformed(_)
            | AuthError::UnsupportedScheme
            | AuthError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            AuthError::CrossOrigin(_) => StatusCode::FORBIDDEN,
            AuthError::TooManyFailures(_) => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Json(json!({ "error": self.to_string() }));
        if status == StatusCode::UNAUTHORIZED {
            (status, [(header::WWW_AUTHENTICATE, WWW_AUTHENTICATE)], body).into_response()
        } else {
            (status, body).into_response()
        }
    }
}

/// Hashes `secret` into an argon2id PHC string (default parameters, 16-byte salt from OS randomness), the
/// form the credentials file expects. Live mode / CLI only: it reads OS randomness.
pub fn hash_secret(secret: &str) -> Result<String, AuthError> {
    if secret.is_empty() {
        return Err(AuthError::EmptySecret);
    }
    let hash: PasswordHash = Argon2::default().hash_password(secret.as_bytes()).map_err(AuthError::Hash)?;
    Ok(hash.to_string())
}

/// Hashes a token chaoslab generated itself (256 bits from OS randomness) with argon2id at its lightest
/// (64 KiB, one pass). argon2's memory-hardness slows the guessing of secrets people choose; against 2^256
/// candidates it adds nothing, and at the default 19 MiB it was the largest allocation of a live start-up.
/// Checks against it cost microseconds, failed ones included.
pub fn hash_generated_token(token: &str) -> Result<String, AuthError> {
    if token.is_empty() {
        return Err(AuthError::EmptySecret);
    }
    let params = Params::new(64, 1, 1, None).map_err(|e| AuthError::Hash(e.into()))?;
    let light = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let hash: PasswordHash = light.hash_password(token.as_bytes()).map_err(AuthError::Hash)?;
    Ok(hash.to_string())
}

/// One `[[user]]` entry as written in the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: Spanned<String>,
    password_hash: Spanned<String>,
}

/// One `[[token]]` entry as written in the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: Spanned<String>,
    token_hash: Spanned<String>,
}

/// The whole file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    user: Vec<RawUser>,
    #[serde(default)]
    token: Vec<RawToken>,
}

/// A loaded entry: its name, its parsed hash and where it was defined.
struct Entry {
    name: String,
    hash: PasswordHash,
    line: usize,
}

/// The bounded memory of successful verifications, keyed by SHA-256 of the header value.
struct VerifiedCache {
    capacity: usize,
    entries: BTreeMap<[u8; 32], Principal>,
    /// Keys in insertion order, oldest first, for eviction.
    order: VecDeque<[u8; 32]>,
}

impl VerifiedCache {
    fn new(capacity: usize) -> Self {
        VerifiedCache { capacity, entries: BTreeMap::new(), order: VecDeque::new() }
    }

    fn get(&self, key: &[u8; 32]) -> Option<Principal> {
        self.entries.get(key).cloned()
    }

    fn insert(&mut self, key: [u8; 32], principal: Principal) {
        if self.capacity == 0 || self.entries.contains_key(&key) {
            return;
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
        self.entries.insert(key, principal);
        self.order.push_back(key);
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The users and tokens allowed on the control plane, with the cache of recent successful checks.
pub struct Credentials {
    path: PathBuf,
    /// By name, so a `Basic` check finds its user directly.
    users: BTreeMap<String, Entry>,
    /// In file order; a `Bearer` token is tried against each (salted hashes cannot be looked up).
    tokens: Vec<Entry>,
    cache: Mutex<VerifiedCache>,
    /// Bounds the argon2 checks the middleware runs at once.
    checks: Semaphore,
    /// Failed checks per peer.
    failures: super::limiter::FailureLimiter,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tokens: Vec<&str> = self.tokens.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("Credentials")
            .field("path", &self.path)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("tokens", &tokens)
            .field("cached", &self.lock_cache().len())
            .finish()
    }
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// A TOML/serde message without the offending value: serde's "invalid type: string \"…\", expected …" quotes
/// the value, which could be a secret written in the wrong place.
fn redact(message: &str) -> String {
    let message = message.trim();
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        match message.split_once(", expected ") {
            Some((_, expected)) => format!("wrong type of value, expected {expected}"),
            None => "wrong type of value".to_owned(),
        }
    } else {
        message.to_owned()
    }
}

/// Parses and checks one hash value; the reason is for [`AuthError::BadHash`].
fn parse_hash(value: &str) -> Result<PasswordHash, String> {
    if !value.starts_with('$') {
        return Err("not a PHC string: this looks like a plain-text secret; store the argon2 hash of it \
                    (hash_secret) instead"
            .to_owned());
    }
    let hash = PasswordHash::new(value).map_err(|e| format!("not a valid PHC string: {e}"))?;
    let algorithm = hash.algorithm.as_str();
    if !algorithm.starts_with("argon2") || argon2::Algorithm::try_from(algorithm).is_err() {
        return Err(format!("algorithm `{algorithm}` is not argon2 (argon2id, argon2i or argon2d)"));
    }
    if let Some(version) = hash.version {
        argon2::Version::try_from(version).map_err(|e| format!("unsupported argon2 version: {e}"))?;
    }
    Params::try_from(&hash).map_err(|e| format!("invalid argon2 parameters: {e}"))?;
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("PHC string has no salt or no hash output".to_owned());
    }
    Ok(hash)
}

/// Checks `secret` against `hash` with the hash's own algorithm, version and parameters; the output
/// comparison inside argon2 is constant-time.
fn matches(secret: &[u8], hash: &PasswordHash) -> bool {
    Argon2::default().verify_password(secret, hash).is_ok()
}

/// Keeps the cost of a failed check the same whether or not the name exists.
fn burn_dummy_check(secret: &[u8]) {
    if let Ok(dummy) = PasswordHash::new(DUMMY_HASH) {
        let _ = matches(secret, &dummy);
    }
}

/// Cache key of a header value.
fn cache_key(header: &HeaderValue) -> [u8; 32] {
    Sha256::digest(header.as_bytes()).into()
}

impl Credentials {
    /// Reads and checks the credentials file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Credentials, AuthError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| AuthError::Read { path: path.to_path_buf(), source })?;
        Credentials::parse(&text, path)
    }

    /// Checks credentials given as TOML `text`; `path` only names the source in errors.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Credentials, AuthError> {
        let path = path.as_ref().to_path_buf();
        let raw: RawFile = toml::from_str(text).map_err(|e| AuthError::Syntax {
            path: path.clone(),
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            reason: redact(e.message()),
        })?;
        if raw.user.is_empty() && raw.token.is_empty() {
            return Err(AuthError::Empty { path });
        }

        let entry = |kind: PrincipalKind,
                     name: &Spanned<String>,
                     field: &'static str,
                     value: &Spanned<String>|
         -> Result<Entry, AuthError> {
            let line = line_of(text, name.span().start);
            let reason = if name.get_ref().is_empty() {
                Some("the name is empty")
            } else if name.get_ref().chars().any(char::is_control) {
                Some("the name contains a control character")
            } else if kind == PrincipalKind::User && name.get_ref().contains(':') {
                Some("a user name cannot contain `:` (Basic authentication separates it with one)")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(AuthError::BadName { path: path.clone(), line, kind, reason });
            }
            let hash = parse_hash(value.get_ref()).map_err(|reason| AuthError::BadHash {
                path: path.clone(),
                line: line_of(text, value.span().start),
                kind,
                name: name.get_ref().clone(),
                field,
                reason,
            })?;
            Ok(Entry { name: name.get_ref().clone(), hash, line })
        };
        let duplicate = |kind: PrincipalKind, first: &Entry, again: &Entry| AuthError::Duplicate {
            path: path.clone(),
            line: again.line,
            first_line: first.line,
            kind,
            name: again.name.clone(),
        };

        let mut users: BTreeMap<String, Entry> = BTreeMap::new();
        for raw_user in &raw.user {
            let user = entry(PrincipalKind::User, &raw_user.name, "password_hash", &raw_user.password_hash)?;
            if let Some(first) = users.get(&user.name) {
                return Err(duplicate(PrincipalKind::User, first, &user));
            }
            users.insert(user.name.clone(), user);
        }
        let mut tokens: Vec<Entry> = Vec::with_capacity(raw.token.len());
        for raw_token in &raw.token {
            let token = entry(PrincipalKind::Token, &raw_token.name, "token_hash", &raw_token.token_hash)?;
            if let Some(first) = tokens.iter().find(|t| t.name == token.name) {
                return Err(duplicate(PrincipalKind::Token, first, &token));
            }
            tokens.push(token);
        }

        tracing::info!(path = %path.display(), users = users.len(), tokens = tokens.len(), "credentials loaded");
        Ok(Credentials {
            path,
            users,
            tokens,
            cache: Mutex::new(VerifiedCache::new(CACHE_CAPACITY)),
            checks: Semaphore::new(MAX_CONCURRENT_CHECKS),
            failures: super::limiter::FailureLimiter::default(),
        })
    }

    /// Checks an `Authorization` header (`Basic` for users, `Bearer` for tokens) and tells who it is.
    ///
    /// A cache miss runs argon2 and blocks the calling thread for tens of milliseconds per candidate hash; in
    /// async code go through [`require_auth`], which runs it on the blocking pool.
    pub fn verify(&self, header: Option<&HeaderValue>) -> Result<Principal, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let key = cache_key(header);
        if let Some(principal) = self.lock_cache().get(&key) {
            return Ok(principal);
        }
        let principal = self.verify_uncached(header)?;
        self.lock_cache().insert(key, principal.clone());
        Ok(principal)
    }

    /// The principal a header was already verified as, if the cache remembers it.
    fn cached(&self, header: &HeaderValue) -> Option<Principal> {
        self.lock_cache().get(&cache_key(header))
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, VerifiedCache> {
        // The cache holds no invariant a panicking holder could break half-way that matters for safety:
        // at worst an entry is missing from `order` and is never evicted.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn verify_uncached(&self, header: &HeaderValue) -> Result<Principal, AuthError> {
        let value =
            header.to_str().map_err(|_| AuthError::Malformed("the value is not visible ASCII"))?.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim_start();
        if scheme.eq_ignore_ascii_case("basic") {
            self.verify_basic(rest)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            self.verify_bearer(rest)
        } else {
            Err(AuthError::UnsupportedScheme)
        }
    }

    fn verify_basic(&self, encoded: &str) -> Result<Principal, AuthError> {
        if encoded.is_empty() {
            return Err(AuthError::Malformed("Basic without credentials"));
        }
        let decoded =
            BASE64.decode(encoded).map_err(|_| AuthError::Malformed("Basic credentials are not base64"))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| AuthError::Malformed("Basic credentials are not UTF-8"))?;
        let (name, password) = decoded
            .split_once(':')
            .ok_or(AuthError::Malformed("Basic credentials have no `:` between user and password"))?;
        match self.users.get(name) {
            Some(user) if matches(password.as_bytes(), &user.hash) => {
                Ok(Principal { name: user.name.clone(), kind: PrincipalKind::User })
            }
            Some(_) => Err(AuthError::InvalidCredentials),
            None => {
                burn_dummy_check(password.as_bytes());
                Err(AuthError::InvalidCredentials)
            }
        }
    }

    fn verify_bearer(&self, token: &str) -> Result<Principal, AuthError> {
        if token.is_empty() || token.contains(char::is_whitespace) {
            return Err(AuthError::Malformed("Bearer needs exactly one token"));
        }
        if self.tokens.is_empty() {
            burn_dummy_check(token.as_bytes());
            return Err(AuthError::InvalidCredentials);
        }
        self.tokens
            .iter()
            .find(|t| matches(token.as_bytes(), &t.hash))
            .map(|t| Principal { name: t.name.clone(), kind: PrincipalKind::Token })
            .ok_or(AuthError::InvalidCredentials)
    }
}

/// Checks a header through the cache, or on the blocking pool under the concurrency bound.
async fn check(creds: &Arc<Credentials>, header: HeaderValue) -> Result<Principal, AuthError> {
    if let Some(principal) = creds.cached(&header) {
        return Ok(principal);
    }
    let _permit = creds.checks.acquire().await.map_err(|e| AuthError::Internal(e.to_string()))?;
    let worker = Arc::clone(creds);
    tokio::task::spawn_blocking(move || worker.verify(Some(&header)))
        .await
        .map_err(|e| AuthError::Internal(e.to_string()))?
}

/// The credentials a request presents: its `Authorization` header, or else the dashboard's session cookie
/// (see [`super::session`]: for a request that changes state, only from this server's own origin).
fn presented(method: &axum::http::Method, headers: &axum::http::HeaderMap) -> Result<HeaderValue, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (Some(_), Some(_)) => Err(AuthError::Malformed("more than one Authorization header")),
        (Some(value), None) => Ok(value.clone()),
        (None, _) => {
            let token = super::session::token(headers).ok_or(AuthError::Missing)?;
            super::session::same_origin(method, headers).map_err(AuthError::CrossOrigin)?;
            HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| AuthError::Malformed("the session cookie is not visible ASCII"))
        }
    }
}

/// Who the request's credentials (header or session cookie) belong to, if anyone: for pages that show
/// what a visitor may do, without refusing anything.
pub async fn principal_of(
    creds: &Arc<Credentials>,
    method: &axum::http::Method,
    headers: &axum::http::HeaderMap,
) -> Option<Principal> {
    check(creds, presented(method, headers).ok()?).await.ok()
}

/// Checks a bare token (the dashboard link's `?token=`).
pub async fn check_token(creds: &Arc<Credentials>, token: &str) -> Result<Principal, AuthError> {
    let value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| AuthError::Malformed("the token is not visible ASCII"))?;
    check(creds, value).await
}

/// Axum middleware guarding the control plane: answers 401 (with `WWW-Authenticate` and a JSON
/// `{"error": ...}` body) unless the request carries valid `Basic` or `Bearer` credentials, and otherwise
/// inserts the [`Principal`] into the request extensions for the handlers.
///
/// Use with `axum::middleware::from_fn_with_state(Arc<Credentials>, require_auth)`.
pub async fn require_auth(State(creds): State<Arc<Credentials>>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let now = std::time::Instant::now();
    let result = match presented(req.method(), req.headers()) {
        // A peer that failed too often is answered before any argon2 runs; a cached (valid) credential
        // still passes.
        Ok(value) => match peer.and_then(|ip| creds.failures.blocked(ip, now)) {
            Some(left) if creds.cached(&value).is_none() => {
                Err(AuthError::TooManyFailures(left.as_secs().max(1)))
            }
            _ => check(&creds, value).await,
        },
        Err(e) => Err(e),
    };
    if let (Err(AuthError::InvalidCredentials), Some(ip)) = (&result, peer) {
        creds.failures.failed(ip, now);
    }
    match result {
        Ok(principal) => {
            tracing::debug!(principal = %principal.name, kind = %principal.kind, path = %req.uri().path(),
                "authenticated");
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(err) => {
            tracing::warn!(method = %req.method(), path = %req.uri().path(), reason = %err,
                "request refused");
            err.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Extension;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use std::sync::OnceLock;
    use tower::ServiceExt;

    const ADMIN_PASSWORD: &str = "correct horse: battery staple";
    const CI_TOKEN: &str = "tok_5f1c9a1e2b7d4c08";

    /// Hashing is slow, so the fixture's hashes are made once for the whole test binary.
    fn fixture() -> &'static (String, String) {
        static HASHES: OnceLock<(String, String)> = OnceLock::new();
        HASHES.get_or_init(|| (hash_secret(ADMIN_PASSWORD).unwrap(), hash_secret(CI_TOKEN).unwrap()))
    }

    fn creds_text() -> String {
        let (admin, ci) = fixture();
        format!(
            "# control plane\n[[user]]\nname = \"admin\"\npassword_hash = \"{admin}\"\n\n\
             [[token]]\nname = \"ci\"\ntoken_hash = \"{ci}\"\n"
        )
    }

    fn creds() -> Credentials {
        Credentials::parse(&creds_text(), "creds.toml").unwrap()
    }

    fn basic(user: &str, password: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Basic {}", BASE64.encode(format!("{user}:{password}")))).unwrap()
    }

    fn bearer(token: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
    }

    #[test]
    fn hash_then_verify_roundtrip() {
        let (admin, _) = fixture();
        assert!(admin.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let hash = PasswordHash::new(admin).unwrap();
        assert!(matches(ADMIN_PASSWORD.as_bytes(), &hash));
        assert!(!matches(b"correct horse: battery stapler", &hash));
        // A fresh salt every time.
        assert_ne!(hash_secret(ADMIN_PASSWORD).unwrap(), *admin);
        assert!(matches!(hash_secret(""), Err(AuthError::EmptySecret)));

        let principal = creds().verify(Some(&basic("admin", ADMIN_PASSWORD))).unwrap();
        assert_eq!(principal, Principal { name: "admin".into(), kind: PrincipalKind::User });
    }

    #[test]
    fn wrong_password_and_unknown_user_are_the_same_error() {
        let c = creds();
        let wrong = c.verify(Some(&basic("admin", "hunter2"))).unwrap_err();
        assert!(matches!(wrong, AuthError::InvalidCredentials));
        let unknown = c.verify(Some(&basic("root", ADMIN_PASSWORD))).unwrap_err();
        assert!(matches!(unknown, AuthError::InvalidCredentials));
        assert_eq!(wrong.to_string(), unknown.to_string());
        // A user's password is no token, and a token is no user's password.
        assert!(matches!(c.verify(Some(&bearer("correct"))), Err(AuthError::InvalidCredentials)));
        assert!(matches!(c.verify(Some(&basic("ci", CI_TOKEN))), Err(AuthError::InvalidCredentials)));
        assert_eq!(c.lock_cache().len(), 0, "failures are never cached");
    }

    #[test]
    fn a_generated_token_is_hashed_at_argon2s_lightest_and_verifies() {
        let light = parse_hash(&hash_generated_token("0123abcd").unwrap()).unwrap();
        let params = Params::try_from(&light).unwrap();
        assert_eq!((light.algorithm.as_str(), params.m_cost(), params.t_cost()), ("argon2id", 64, 1));
        assert!(matches(b"0123abcd", &light) && !matches(b"0123abce", &light));
        assert!(hash_generated_token("").is_err());
    }

    #[test]
    fn dummy_hash_is_a_valid_default_argon2id_hash() {
        let dummy = parse_hash(DUMMY_HASH).unwrap();
        assert_eq!(dummy.algorithm.as_str(), "argon2id");
        assert_eq!(Params::try_from(&dummy).unwrap().m_cost(), Params::default().m_cost());
        assert_eq!(Params::try_from(&dummy).unwrap().t_cost(), Params::default().t_cost());
    }

    #[test]
    fn malformed_headers_are_refused_without_hashing() {
        let c = creds();
        let cases: [(&[u8], &str); 7] = [
            (b"Basic", "Basic without credentials"),
            (b"Basic !!!not-base64!!!", "not base64"),
            (b"Basic YWRtaW4=", "no `:`"),
            (b"Basic //79/Q==", "not UTF-8"),
            (b"Bearer", "exactly one token"),
            (b"Bearer two tokens", "exactly one token"),
            (b"Basic \xff\xfe", "not visible ASCII"),
        ];
        for (raw, reason) in cases {
            let value = HeaderValue::from_bytes(raw).unwrap();
            match c.verify(Some(&value)) {
                Err(AuthError::Malformed(why)) => assert!(why.contains(reason), "{why} vs {reason}"),
                other => panic!("{raw:?}: {other:?}"),
            }
        }
        let digest = HeaderValue::from_static("Digest username=\"admin\"");
        assert!(matches!(c.verify(Some(&digest)), Err(AuthError::UnsupportedScheme)));
        assert!(matches!(c.verify(None), Err(AuthError::Missing)));
    }

    #[test]
    fn bearer_token_and_case_insensitive_schemes() {
        let c = creds();
        let principal = c.verify(Some(&bearer(CI_TOKEN))).unwrap();
        assert_eq!(principal, Principal { name: "ci".into(), kind: PrincipalKind::Token });
        assert!(matches!(c.verify(Some(&bearer("tok_wrong"))), Err(AuthError::InvalidCredentials)));
        let lower = HeaderValue::from_str(&format!("bearer  {CI_TOKEN}")).unwrap();
        assert_eq!(c.verify(Some(&lower)).unwrap().name, "ci");
    }

    #[test]
    fn bearer_without_configured_tokens_is_refused() {
        let (admin, _) = fixture();
        let text = format!("[[user]]\nname = \"admin\"\npassword_hash = \"{admin}\"\n");
        let c = Credentials::parse(&text, "users-only.toml").unwrap();
        assert!(matches!(c.verify(Some(&bearer(CI_TOKEN))), Err(AuthError::InvalidCredentials)));
    }

    #[test]
    fn plain_text_password_is_refused_with_file_and_line() {
        let text = "[[user]]\nname = \"admin\"\npassword_hash = \"hunter2\"\n";
        let err = Credentials::parse(text, "/etc/chaoslab/creds.toml").unwrap_err();
        match &err {
            AuthError::BadHash { line, kind, name, field, reason, .. } => {
                assert_eq!(
                    (*line, *kind, name.as_str(), *field),
                    (3, PrincipalKind::User, "admin", "password_hash")
                );
                assert!(reason.contains("plain-text"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let shown = err.to_string();
        assert!(shown.starts_with("/etc/chaoslab/creds.toml:3: "), "{shown}");
        assert!(!shown.contains("hunter2") && !format!("{err:?}").contains("hunter2"), "{shown}");
    }

    #[test]
    fn other_bad_hashes_are_refused() {
        let (_, ci) = fixture();
        let cases = [
            ("$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", "not a valid PHC"),
            ("$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "not argon2"),
            ("$argon2id$v=19$m=19456,t=2,p=1", "no salt"),
            ("$argon2id$v=19$m=1,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "parameters"),
        ];
        for (value, reason) in cases {
            let text = format!(
                "[[token]]\nname = \"ci\"\ntoken_hash = \"{ci}\"\n[[token]]\nname = \"x\"\n\
                                token_hash = \"{value}\"\n"
            );
            match Credentials::parse(&text, "t.toml") {
                Err(AuthError::BadHash { line: 6, field: "token_hash", reason: why, .. }) => {
                    assert!(why.contains(reason), "{value}: {why}")
                }
                other => panic!("{value}: {other:?}"),
            }
        }
    }

    #[test]
    fn file_shape_errors_name_the_line_and_never_the_value() {
        let (admin, _) = fixture();
        // A `password` field instead of `password_hash`.
        let text = format!(
            "[[user]]\nname = \"a\"\npassword_hash = \"{admin}\"\n[[user]]\nname = \"b\"\n\
                            password = \"hunter2\"\n"
        );
        match Credentials::parse(&text, "c.toml").unwrap_err() {
            AuthError::Syntax { line, reason, .. } => {
                assert_eq!(line, 6);
                assert!(
                    reason.contains("unknown field `password`") && !reason.contains("hunter2"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        // A value of the wrong type: serde would quote it.
        let text = "[[user]]\nname = \"a\"\npassword_hash = 12345678\n";
        let err = Credentials::parse(text, "c.toml").unwrap_err();
        assert!(matches!(err, AuthError::Syntax { line: 3, .. }), "{err:?}");
        assert!(!err.to_string().contains("12345678"), "{err}");
        // Broken TOML.
        let text = "[[user]]\nname = \"a\"\npassword_hash = hunter2\n";
        let err = Credentials::parse(text, "c.toml").unwrap_err();
        assert!(matches!(err, AuthError::Syntax { line: 3, .. }), "{err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        // Nobody defined.
        assert!(matches!(Credentials::parse("# empty\n", "c.toml"), Err(AuthError::Empty { .. })));
    }

    #[test]
    fn duplicate_and_bad_names_are_refused() {
        let (admin, ci) = fixture();
        let text = format!(
            "[[user]]\nname = \"admin\"\npassword_hash = \"{admin}\"\n\n[[user]]\n\
                            name = \"admin\"\npassword_hash = \"{admin}\"\n"
        );
        match Credentials::parse(&text, "c.toml").unwrap_err() {
            AuthError::Duplicate { line, first_line, kind, name, .. } => {
                assert_eq!((line, first_line, kind, name.as_str()), (6, 2, PrincipalKind::User, "admin"));
            }
            other => panic!("{other:?}"),
        }
        let text = format!(
            "[[token]]\nname = \"ci\"\ntoken_hash = \"{ci}\"\n[[token]]\nname = \"ci\"\n\
                            token_hash = \"{ci}\"\n"
        );
        assert!(matches!(
            Credentials::parse(&text, "c.toml"),
            Err(AuthError::Duplicate { line: 5, first_line: 2, kind: PrincipalKind::Token, .. })
        ));
        // A user and a token may share a name: the principal's kind tells them apart.
        let text = format!(
            "[[user]]\nname = \"ci\"\npassword_hash = \"{admin}\"\n[[token]]\nname = \"ci\"\n\
                            token_hash = \"{ci}\"\n"
        );
        assert!(Credentials::parse(&text, "c.toml").is_ok());
        let text = format!("[[user]]\nname = \"a:b\"\npassword_hash = \"{admin}\"\n");
        assert!(matches!(Credentials::parse(&text, "c.toml"), Err(AuthError::BadName { line: 2, .. })));
        let text = format!("[[user]]\nname = \"\"\npassword_hash = \"{admin}\"\n");
        assert!(matches!(Credentials::parse(&text, "c.toml"), Err(AuthError::BadName { line: 2, .. })));
    }

    #[test]
    fn load_reads_the_file_and_names_it_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.toml");
        std::fs::write(&path, creds_text()).unwrap();
        let c = Credentials::load(&path).unwrap();
        assert_eq!(c.verify(Some(&bearer(CI_TOKEN))).unwrap().name, "ci");
        let missing = dir.path().join("missing.toml");
        let err = Credentials::load(&missing).unwrap_err();
        assert!(matches!(err, AuthError::Read { .. }));
        assert!(err.to_string().contains("missing.toml"), "{err}");
    }

    #[test]
    fn debug_output_shows_names_but_no_hashes() {
        let c = creds();
        let shown = format!("{c:?}");
        assert!(shown.contains("\"admin\"") && shown.contains("\"ci\""), "{shown}");
        assert!(!shown.contains("$argon2"), "{shown}");
    }

    #[test]
    fn cache_remembers_successes_by_header_digest() {
        let c = creds();
        let header = basic("admin", ADMIN_PASSWORD);
        assert!(c.cached(&header).is_none());
        let first = c.verify(Some(&header)).unwrap();
        {
            let cache = c.lock_cache();
            assert_eq!(cache.len(), 1);
            let key: [u8; 32] = Sha256::digest(header.as_bytes()).into();
            assert_eq!(cache.get(&key), Some(first.clone()));
        }
        assert_eq!(c.cached(&header), Some(first.clone()));
        assert_eq!(c.verify(Some(&header)).unwrap(), first);
        assert_eq!(c.lock_cache().len(), 1);

        // A hit never reaches argon2: a header planted in the cache is accepted although no hash matches it.
        let planted = bearer("never-hashed");
        let principal = Principal { name: "planted".into(), kind: PrincipalKind::Token };
        c.lock_cache().insert(cache_key(&planted), principal.clone());
        assert_eq!(c.verify(Some(&planted)).unwrap(), principal);
    }

    #[test]
    fn cache_is_bounded_and_forgets_the_oldest() {
        let p = |n: &str| Principal { name: n.into(), kind: PrincipalKind::User };
        let mut cache = VerifiedCache::new(2);
        cache.insert([1; 32], p("a"));
        cache.insert([2; 32], p("b"));
        cache.insert([2; 32], p("b"));
        cache.insert([3; 32], p("c"));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&[1; 32]), None);
        assert_eq!(cache.get(&[2; 32]), Some(p("b")));
        assert_eq!(cache.get(&[3; 32]), Some(p("c")));
        let mut off = VerifiedCache::new(0);
        off.insert([1; 32], p("a"));
        assert_eq!(off.len(), 0);
    }

    fn app(c: Arc<Credentials>) -> Router {
        Router::new()
            .route(
                "/api/faults",
                get(|Extension(p): Extension<Principal>| async move { format!("{}:{}", p.kind, p.name) }),
            )
            .layer(axum::middleware::from_fn_with_state(c, require_auth))
    }

    async fn call(router: Router, auth: &[HeaderValue]) -> (StatusCode, Option<String>, String) {
        let mut req = Request::builder().uri("/api/faults");
        for value in auth {
            req = req.header(header::AUTHORIZATION, value.clone());
        }
        let resp = router.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let challenge = resp.headers().get(header::WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        (status, challenge, String::from_utf8(body.to_vec()).unwrap())
    }

    fn error_of(body: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["error"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn middleware_refuses_missing_and_wrong_and_admits_right() {
        let c = Arc::new(creds());

        let (status, challenge, body) = call(app(c.clone()), &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge.as_deref(), Some(WWW_AUTHENTICATE));
        assert_eq!(error_of(&body), "authentication required");

        let (status, challenge, body) = call(app(c.clone()), &[basic("admin", "hunter2")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge.as_deref(), Some(WWW_AUTHENTICATE));
        assert_eq!(error_of(&body), "invalid credentials");
        assert!(!body.contains("hunter2"));

        let (status, _, body) = call(app(c.clone()), &[HeaderValue::from_static("Basic %%%")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(error_of(&body).starts_with("malformed Authorization header"), "{body}");

        let two = [bearer(CI_TOKEN), bearer(CI_TOKEN)];
        let (status, _, body) = call(app(c.clone()), &two).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(error_of(&body).contains("more than one"), "{body}");

        let (status, challenge, body) = call(app(c.clone()), &[basic("admin", ADMIN_PASSWORD)]).await;
        assert_eq!((status, challenge, body.as_str()), (StatusCode::OK, None, "user:admin"));

        let (status, _, body) = call(app(c.clone()), &[bearer(CI_TOKEN)]).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "token:ci"));
        assert_eq!(c.lock_cache().len(), 2);

        // Served from the cache the second time: a planted entry proves the cache is consulted first.
        let planted = bearer("planted-token");
        c.lock_cache()
            .insert(cache_key(&planted), Principal { name: "from-cache".into(), kind: PrincipalKind::Token });
        let (status, _, body) = call(app(c.clone()), &[planted]).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "token:from-cache"));
    }
}
