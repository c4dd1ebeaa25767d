//! HTTP transport to etcd's JSON gateway: endpoint failover, API prefix detection, authentication, deadlines
//! and error classification. Knows nothing about Patroni keys.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use url::Url;

use super::settings::{base_str, Etcd3Settings};
use crate::error::DcsError;

/// gRPC status codes etcd puts in gateway error bodies.
mod code {
    pub const CANCELED: i64 = 1;
    pub const UNKNOWN: i64 = 2;
    pub const INVALID_ARGUMENT: i64 = 3;
    pub const DEADLINE_EXCEEDED: i64 = 4;
    pub const NOT_FOUND: i64 = 5;
    pub const FAILED_PRECONDITION: i64 = 9;
    pub const UNAVAILABLE: i64 = 14;
    pub const UNAUTHENTICATED: i64 = 16;
}

/// Why a request failed, as far as the retry logic is concerned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RpcError {
    /// No endpoint answered usefully before the deadline.
    Unreachable(String),
    /// The lease we used does not exist (expired or revoked).
    LeaseNotFound,
    /// etcd refused the request for a reason retrying will not fix.
    Rejected(String),
    /// The answer was not what the gateway documents.
    Protocol(String),
}

impl From<RpcError> for DcsError {
    fn from(e: RpcError) -> Self {
        match e {
            RpcError::Unreachable(m) => DcsError::Unreachable(m),
            RpcError::LeaseNotFound => DcsError::Rejected("etcd lease not found".into()),
            RpcError::Rejected(m) => DcsError::Rejected(m),
            RpcError::Protocol(m) => DcsError::Protocol(m),
        }
    }
}

/// What one attempt against one endpoint came to.
enum Attempt {
    Ok(Value),
    /// Try another endpoint (or the same one later).
    Retry(String),
    /// Our token is not (or no longer) accepted: authenticate and repeat.
    Reauthenticate(String),
    Fail(RpcError),
}

struct Endpoints {
    list: Vec<String>,
    /// Index of the endpoint that answered last; tried first.
    current: usize,
}

pub(crate) struct Transport {
    http: reqwest::Client,
    endpoints: Mutex<Endpoints>,
    configured: Vec<String>,
    credentials: Option<(String, String)>,
    token: Mutex<Option<String>>,
    /// `/v3`, `/v3beta` or `/v3alpha`, learnt from `/version`.
    prefix: Mutex<Option<String>>,
    /// Requests sent, by gateway method: what the benchmark's "DCS calls per loop" counts, and what the cache
    /// tests check to prove a read did not go to etcd.
    sent: Mutex<BTreeMap<String, u64>>,
    /// The endpoint of the last failed attempt, announced on `trouble`: the cache's stream to that endpoint is
    /// probably dead too (etcd shutting down, frozen, cut off) and is dropped at once rather than kept open —
    /// an open stream also holds up a graceful etcd shutdown for seconds.
    troubled: Mutex<Option<String>>,
    trouble: tokio::sync::Notify,
}

pub(crate) fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

pub(crate) fn b64_bytes(b: &[u8]) -> String {
    B64.encode(b)
}

/// Decodes a base64 field the gateway sent; absent means empty (default values are omitted).
pub(crate) fn unb64(v: Option<&Value>) -> Result<String, RpcError> {
    let Some(s) = v.and_then(Value::as_str) else {
        return Ok(String::new());
    };
    let bytes = B64.decode(s).map_err(|e| RpcError::Protocol(format!("bad base64 from etcd: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Reads a 64-bit integer the gateway sent as a string (or, from proxies, as a number); absent means 0.
pub(crate) fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// The exclusive end of a prefix range: the prefix with its last byte incremented.
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut b = prefix.as_bytes().to_vec();
    while let Some(last) = b.pop() {
        if last < 0xff {
            b.push(last + 1);
            return b;
        }
    }
    vec![0]
}

/// The HTTP client of the etcd section's TLS settings (`cacert`, `cert`, `key`, `key_password`); shared by the v3
/// and the v2 backends, which take the same section keys.
pub(crate) fn http_client(settings: &Etcd3Settings) -> Result<reqwest::Client, DcsError> {
    // reqwest is built without a default crypto provider; installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_keepalive(Duration::from_secs(5));
    let identity = match &settings.cert {
        Some(cert) => Some((cert, identity_pem(cert, settings.key.as_deref(), settings.key_password.as_deref())?)),
        None => None,
    };
    if let Some(ca) = &settings.cacert {
        builder = builder.tls_backend_preconfigured(verifying_config(ca, identity)?);
    } else if let Some((cert, pem)) = identity {
        builder = builder.identity(
            reqwest::Identity::from_pem(&pem)
                .map_err(|e| DcsError::Config(format!("etcd client certificate/key {}: {e}", cert.display())))?,
        );
    }
    builder.build().map_err(|e| DcsError::Config(format!("cannot build the etcd HTTP client: {e}")))
}

impl Transport {
    pub(crate) fn new(settings: &Etcd3Settings, endpoints: Vec<Url>) -> Result<Self, DcsError> {
        let http = http_client(settings)?;
        let list: Vec<String> = endpoints.iter().map(base_str).collect();
        Ok(Transport {
            http,
            configured: list.clone(),
            endpoints: Mutex::new(Endpoints { list, current: 0 }),
            credentials: settings.credentials(),
            token: Mutex::new(None),
            prefix: Mutex::new(None),
            sent: Mutex::new(BTreeMap::new()),
            troubled: Mutex::new(None),
            trouble: tokio::sync::Notify::new(),
        })
    }

    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.endpoints.lock().map(|e| e.list.clone()).unwrap_or_default()
    }

    /// Replaces the endpoint list with the configured endpoints plus `discovered` ones (the cluster's member
    /// client URLs), keeping the one that answered last first.
    pub(crate) fn merge_endpoints(&self, discovered: Vec<String>) {
        let Ok(mut e) = self.endpoints.lock() else {
            return;
        };
        let current = e.list.get(e.current).cloned();
        let mut list = self.configured.clone();
        for d in discovered {
            let d = d.trim_end_matches('/').to_string();
            if !list.contains(&d) {
                list.push(d);
            }
        }
        e.current = current.and_then(|c| list.iter().position(|x| *x == c)).unwrap_or(0);
        if list != e.list {
            debug!(endpoints = ?list, "etcd endpoints");
        }
        e.list = list;
    }

    /// Requests sent so far, by gateway method (`/kv/range`, `/watch`, ...).
    pub(crate) fn sent(&self) -> BTreeMap<String, u64> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Resolves with the endpoint of the next failed attempt (only failures after the call count).
    pub(crate) async fn next_trouble(&self) -> Option<String> {
        self.trouble.notified().await;
        self.troubled.lock().ok().and_then(|t| t.clone())
    }

    fn report_trouble(&self, endpoint: &str) {
        if let Ok(mut t) = self.troubled.lock() {
            *t = Some(endpoint.to_string());
        }
        self.trouble.notify_waiters();
    }

    fn count(&self, method: &str) {
        if let Ok(mut s) = self.sent.lock() {
            *s.entry(method.to_string()).or_insert(0) += 1;
        }
    }

    /// The endpoint that answered last (tried first by the next call).
    pub(crate) fn current_endpoint(&self) -> Option<String> {
        self.endpoints.lock().ok().and_then(|e| e.list.get(e.current).cloned())
    }

    /// Drops the token so that the next call authenticates again (a watch refused for auth reasons says so).
    pub(crate) fn invalidate_token(&self) {
        if self.credentials.is_some() {
            self.set_token(None);
        }
    }

    fn ordered_endpoints(&self) -> (Vec<String>, usize) {
        match self.endpoints.lock() {
            Ok(e) => (e.list.clone(), e.current),
            Err(_) => (vec![], 0),
        }
    }

    fn mark_good(&self, endpoint: &str) {
        if let Ok(mut e) = self.endpoints.lock() {
            if let Some(i) = e.list.iter().position(|x| x == endpoint) {
                if e.current != i {
                    info!("switched to etcd endpoint {endpoint}");
                }
                e.current = i;
            }
        }
    }

    fn token(&self) -> Option<String> {
        self.token.lock().ok().and_then(|t| t.clone())
    }

    fn set_token(&self, token: Option<String>) {
        if let Ok(mut t) = self.token.lock() {
            *t = token;
        }
    }

    fn cached_prefix(&self) -> Option<String> {
        self.prefix.lock().ok().and_then(|p| p.clone())
    }

    /// Calls a gateway method (`/kv/range`, ...) on the first endpoint that answers, retrying until `deadline`.
    pub(crate) async fn call(&self, method: &str, body: &Value, deadline: Instant) -> Result<Value, RpcError> {
        let mut last_error = String::from("no etcd endpoint configured");
        let mut backoff = Duration::from_millis(100);
        let mut reauthenticated = false;
        loop {
            let (list, start) = self.ordered_endpoints();
            let n = list.len();
            for i in 0..n {
                let endpoint = &list[(start + i) % n];
                let now = Instant::now();
                if now >= deadline {
                    return Err(RpcError::Unreachable(last_error));
                }
                match self.attempt(endpoint, method, body, deadline, n).await {
                    Attempt::Ok(v) => {
                        self.mark_good(endpoint);
                        return Ok(v);
                    }
                    Attempt::Retry(why) => {
                        debug!("etcd {endpoint}{method}: {why}");
                        self.report_trouble(endpoint);
                        last_error = format!("{endpoint}: {why}");
                    }
                    Attempt::Reauthenticate(why) => {
                        if reauthenticated || self.credentials.is_none() {
                            return Err(RpcError::Rejected(why));
                        }
                        warn!("etcd refused our token ({why}); authenticating again");
                        self.set_token(None);
                        reauthenticated = true;
                        // Retry the same endpoint at once: authentication happens inside `attempt`.
                        match self.attempt(endpoint, method, body, deadline, n).await {
                            Attempt::Ok(v) => {
                                self.mark_good(endpoint);
                                return Ok(v);
                            }
                            Attempt::Fail(e) => return Err(e),
                            Attempt::Retry(why) | Attempt::Reauthenticate(why) => {
                                last_error = format!("{endpoint}: {why}")
                            }
                        }
                    }
                    Attempt::Fail(e) => return Err(e),
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RpcError::Unreachable(last_error));
            }
            tokio::time::sleep(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// Per-attempt budget: a share of what is left so that one hung endpoint cannot eat the whole deadline when
    /// there are others, but at least a second.
    fn attempt_timeout(deadline: Instant, endpoints: usize) -> Duration {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let share = remaining / u32::try_from(endpoints.max(1)).unwrap_or(1);
        share.max(Duration::from_secs(1)).min(remaining)
    }

    async fn attempt(&self, endpoint: &str, method: &str, body: &Value, deadline: Instant, n: usize) -> Attempt {
        let prefix = match self.cached_prefix() {
            Some(p) => p,
            None => match self.detect_prefix(endpoint, deadline, n).await {
                Ok(p) => p,
                Err(a) => return a,
            },
        };
        if self.credentials.is_some() && self.token().is_none() {
            if let Err(a) = self.authenticate(endpoint, &prefix, deadline, n).await {
                return a;
            }
        }
        let url = format!("{endpoint}{prefix}{method}");
        self.count(method);
        let mut req = self.http.post(&url).json(body).timeout(Self::attempt_timeout(deadline, n));
        if let Some(t) = self.token() {
            req = req.header("Authorization", t);
        }
        send_and_classify(req).await
    }

    async fn detect_prefix(&self, endpoint: &str, deadline: Instant, n: usize) -> Result<String, Attempt> {
        self.count("/version");
        let resp = self
            .http
            .get(format!("{endpoint}/version"))
            .timeout(Self::attempt_timeout(deadline, n))
            .send()
            .await
            .map_err(|e| Attempt::Retry(describe(&e)))?;
        let status = resp.status();
        let v: Value = resp.json().await.map_err(|e| Attempt::Retry(format!("/version: {}", describe(&e))))?;
        if !status.is_success() {
            return Err(Attempt::Retry(format!("/version answered {status}")));
        }
        let parse = |f: &str| -> Option<Vec<u32>> { v.get(f)?.as_str()?.split('.').map(|p| p.parse().ok()).collect() };
        let cluster = parse("etcdcluster").or_else(|| parse("etcdserver")).unwrap_or_default();
        let prefix = if cluster.as_slice() >= [3, 4].as_slice() || cluster.is_empty() {
            "/v3"
        } else if cluster.as_slice() >= [3, 3].as_slice() {
            "/v3beta"
        } else {
            "/v3alpha"
        };
        debug!("etcd {endpoint} reports {v}, using {prefix}");
        if let Ok(mut p) = self.prefix.lock() {
            *p = Some(prefix.to_string());
        }
        Ok(prefix.to_string())
    }

    async fn authenticate(&self, endpoint: &str, prefix: &str, deadline: Instant, n: usize) -> Result<(), Attempt> {
        let Some((user, password)) = &self.credentials else {
            return Ok(());
        };
        self.count("/auth/authenticate");
        let req = self
            .http
            .post(format!("{endpoint}{prefix}/auth/authenticate"))
            .json(&json!({"name": user, "password": password}))
            .timeout(Self::attempt_timeout(deadline, n));
        match send_and_classify(req).await {
            Attempt::Ok(v) => {
                let token = v.get("token").and_then(Value::as_str).map(String::from);
                if token.is_none() {
                    return Err(Attempt::Fail(RpcError::Protocol(
                        "etcd authentication answered without a token".into(),
                    )));
                }
                info!("authenticated on etcd as {user}");
                self.set_token(token);
                Ok(())
            }
            Attempt::Fail(RpcError::Rejected(m)) if m.contains("authentication is not enabled") => {
                info!("etcd authentication is not enabled; continuing without a token");
                Ok(())
            }
            Attempt::Fail(RpcError::Rejected(m)) | Attempt::Reauthenticate(m) => {
                Err(Attempt::Fail(RpcError::Rejected(format!("etcd authentication as {user:?} failed: {m}"))))
            }
            other => Err(other),
        }
    }

    /// Opens a streamed `/watch` on the endpoint that answered last. The caller reads and bounds it.
    pub(crate) async fn open_watch(&self, body: &Value, timeout: Duration) -> Result<reqwest::Response, String> {
        let (list, current) = self.ordered_endpoints();
        let endpoint = list.get(current).ok_or("no etcd endpoint configured")?;
        let deadline = Instant::now() + timeout;
        let prefix = match self.cached_prefix() {
            Some(p) => p,
            None => self
                .detect_prefix(endpoint, deadline, 1)
                .await
                .map_err(|_| format!("{endpoint}: cannot read /version"))?,
        };
        self.count("/watch");
        let mut req = self.http.post(format!("{endpoint}{prefix}/watch")).json(body).timeout(timeout);
        if let Some(t) = self.token() {
            req = req.header("Authorization", t);
        }
        let resp = req.send().await.map_err(|e| describe(&e))?;
        if !resp.status().is_success() {
            return Err(format!("watch answered {}", resp.status()));
        }
        Ok(resp)
    }

    /// Opens a long-lived streamed `/watch` on the endpoint that answered last, for the cluster cache. Unlike
    /// [`Transport::open_watch`] the body has no overall time limit (the stream lives as long as etcd keeps it):
    /// only getting the response headers is bounded by `timeout`. Returns the endpoint used with the response.
    pub(crate) async fn open_stream(
        &self,
        body: &Value,
        timeout: Duration,
    ) -> Result<(reqwest::Response, String), String> {
        let (list, current) = self.ordered_endpoints();
        let endpoint = list.get(current).ok_or("no etcd endpoint configured")?.clone();
        let deadline = Instant::now() + timeout;
        let prefix = match self.cached_prefix() {
            Some(p) => p,
            None => self
                .detect_prefix(&endpoint, deadline, 1)
                .await
                .map_err(|_| format!("{endpoint}: cannot read /version"))?,
        };
        self.count("/watch");
        let mut req = self.http.post(format!("{endpoint}{prefix}/watch")).json(body);
        if let Some(t) = self.token() {
            req = req.header("Authorization", t);
        }
        let resp = match tokio::time::timeout_at(deadline, req.send()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(describe(&e)),
            Err(_) => return Err(format!("{endpoint}: no watch response within {timeout:?}")),
        };
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            self.invalidate_token();
        }
        if !resp.status().is_success() {
            return Err(format!("{endpoint}: watch answered {}", resp.status()));
        }
        Ok((resp, endpoint))
    }
}

pub(crate) fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

async fn send_and_classify(req: reqwest::RequestBuilder) -> Attempt {
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Attempt::Retry(describe(&e)),
    };
    let status = resp.status();
    let text = match resp.text().await {
        Ok(t) => t,
        Err(e) => return Attempt::Retry(describe(&e)),
    };
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    if status.is_success() {
        return match parsed {
            Some(v) => Attempt::Ok(v),
            None => Attempt::Fail(RpcError::Protocol(format!("etcd answered non-JSON: {text:.200}"))),
        };
    }
    let (grpc_code, message) = match &parsed {
        Some(v) => (
            v.get("code").and_then(Value::as_i64).unwrap_or(code::UNKNOWN),
            v.get("error").or_else(|| v.get("message")).and_then(Value::as_str).unwrap_or(&text).trim().to_string(),
        ),
        None => (code::UNKNOWN, format!("HTTP {status}: {text:.200}")),
    };
    classify(status.as_u16(), grpc_code, message)
}

fn classify(http_status: u16, grpc_code: i64, message: String) -> Attempt {
    let m = message.as_str();
    if m.contains("invalid auth token")
        || m.contains("user name is empty")
        || m.contains("revision of auth store is old")
        || grpc_code == code::UNAUTHENTICATED
    {
        return Attempt::Reauthenticate(message);
    }
    if m.contains("requested lease not found") || (grpc_code == code::NOT_FOUND && m.contains("lease")) {
        return Attempt::Fail(RpcError::LeaseNotFound);
    }
    // Cluster-side trouble that another member (or a moment later) may not have.
    // A member shutting down answers CANCELED / "the client connection is closing": a restart, not a refusal.
    if matches!(grpc_code, code::UNAVAILABLE | code::DEADLINE_EXCEEDED | code::CANCELED)
        || m.contains("client connection is closing")
        || m.contains("not a primary lessor")
        || m.contains("leader changed")
        || m.contains("no leader")
        || m.contains("request timed out")
        || m.contains("too many requests")
        || http_status >= 500 && grpc_code == code::UNKNOWN && m.starts_with("HTTP")
    {
        return Attempt::Retry(message);
    }
    if grpc_code == code::FAILED_PRECONDITION || grpc_code == code::INVALID_ARGUMENT {
        return Attempt::Fail(RpcError::Rejected(message));
    }
    Attempt::Fail(RpcError::Rejected(message))
}

/// The rustls configuration trusting `cacert` alone, through the verifier shared with the other TLS clients: reqwest's
/// own refuses a server presenting exactly the CA certificate (the `openssl req -x509` self-signed one, CA:TRUE),
/// which etcd's other clients (OpenSSL, Go) accept.
fn verifying_config(
    ca: &std::path::Path,
    identity: Option<(&std::path::PathBuf, Vec<u8>)>,
) -> Result<rustls::ClientConfig, DcsError> {
    let pem =
        std::fs::read(ca).map_err(|e| DcsError::Config(format!("cannot read etcd3 cacert {}: {e}", ca.display())))?;
    let anchors = patroni_tls::TrustAnchors::from_pem(&pem)
        .map_err(|e| DcsError::Config(format!("bad etcd3 cacert {}: {e}", ca.display())))?;
    let provider = patroni_tls::provider();
    let verifier = patroni_tls::ServerVerifier::new(&anchors, patroni_tls::Hostname::Checked, provider.clone())
        .map_err(|e| DcsError::Config(format!("bad etcd3 cacert {}: {e}", ca.display())))?;
    let identity = match identity {
        Some((cert, pem)) => {
            let bad = |e: patroni_tls::TlsError| {
                DcsError::Config(format!("etcd3 client certificate/key {}: {e}", cert.display()))
            };
            let certs = patroni_tls::pem_certs(&pem).map_err(bad)?;
            if certs.is_empty() {
                return Err(bad(patroni_tls::TlsError::NoCertificate));
            }
            Some((certs, patroni_tls::pem_private_key(&pem).map_err(bad)?))
        }
        None => None,
    };
    patroni_tls::client_config(provider, Arc::new(verifier), identity)
        .map_err(|e| DcsError::Config(format!("etcd3 TLS: {e}")))
}

/// A PEM client identity (certificate, then key, decrypted); the key may be in the certificate file.
fn identity_pem(
    cert: &std::path::Path,
    key: Option<&std::path::Path>,
    key_password: Option<&str>,
) -> Result<Vec<u8>, DcsError> {
    let read = |p: &std::path::Path, what: &str| {
        std::fs::read(p).map_err(|e| DcsError::Config(format!("cannot read etcd3 {what} {}: {e}", p.display())))
    };
    let mut pem = read(cert, "cert")?;
    if let Some(k) = key {
        let key_pem = read(k, "key")?;
        let key_pem = crate::tls_key::decrypt_if_needed(&key_pem, key_password)
            .map_err(|e| DcsError::Config(format!("etcd3 key {}: {e}", k.display())))?;
        pem.push(b'\n');
        pem.extend_from_slice(&key_pem);
    } else {
        pem = crate::tls_key::decrypt_if_needed(&pem, key_password)
            .map_err(|e| DcsError::Config(format!("etcd3 cert {}: {e}", cert.display())))?;
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end("/service/a/"), b"/service/a0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }

    #[test]
    fn gateway_integers_are_strings_or_absent() {
        assert_eq!(int(Some(&json!("4111120157477666565"))), 4111120157477666565);
        assert_eq!(int(Some(&json!(7))), 7);
        assert_eq!(int(None), 0);
        assert_eq!(unb64(Some(&json!(b64("node1")))).unwrap(), "node1");
        assert_eq!(unb64(None).unwrap(), "");
        assert!(unb64(Some(&json!("!!!"))).is_err());
    }

    #[test]
    fn errors_are_classified() {
        assert!(matches!(classify(401, 16, "etcdserver: invalid auth token".into()), Attempt::Reauthenticate(_)));
        assert!(matches!(classify(400, 3, "etcdserver: user name is empty".into()), Attempt::Reauthenticate(_)));
        assert!(matches!(
            classify(404, 5, "etcdserver: requested lease not found".into()),
            Attempt::Fail(RpcError::LeaseNotFound)
        ));
        assert!(matches!(classify(503, 14, "etcdserver: request timed out".into()), Attempt::Retry(_)));
        assert!(matches!(classify(500, 2, "not a primary lessor".into()), Attempt::Retry(_)));
        assert!(matches!(
            classify(403, 7, "etcdserver: permission denied".into()),
            Attempt::Fail(RpcError::Rejected(_))
        ));
    }
}
