//! A typed client of Patroni's REST API, for the HA loop (member status during leader races,
//! failsafe heartbeats) and `patronictl` (switchover, restart, config…).
//!
//! Endpoints are resolved against a member's `api_url` the way Patroni does
//! (`http://h:8008/patroni` + `switchover` → `http://h:8008/switchover`).

use crate::access::{basic_auth_header, Credentials};
use crate::tls::{load_certs, load_key};
use reqwest::{Identity, Method};
use rustls_pki_types::PrivateKeyDer;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Duration;

/// How to reach and authenticate to REST APIs (`ctl` section, falling back to `restapi`).
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    /// Basic auth sent with unsafe requests.
    pub credentials: Option<Credentials>,
    /// CA bundle to verify servers with (instead of the system roots, as in Python Patroni).
    pub cacert: Option<PathBuf>,
    /// Client certificate for mutual TLS.
    pub certfile: Option<PathBuf>,
    /// Its key (the certificate file when absent).
    pub keyfile: Option<PathBuf>,
    /// Password of an encrypted key.
    pub keyfile_password: Option<String>,
    /// Skip server certificate verification (`ctl.insecure`).
    pub insecure: bool,
    /// Default timeout of one request.
    pub timeout: Option<Duration>,
}

/// A call that could not be made or whose answer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The credentials cannot be sent in an HTTP header.
    #[error("REST API client credentials: {0}")]
    Credentials(String),
    /// TLS material could not be loaded.
    #[error("REST API client TLS: {0}")]
    Tls(String),
    /// The URL is not usable.
    #[error("invalid REST API url {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Connection, timeout or protocol failure.
    #[error("request to {url} failed: {source}")]
    Http {
        /// The URL.
        url: String,
        /// The underlying error.
        source: reqwest::Error,
    },
    /// The body is not the expected JSON.
    #[error("unexpected answer from {url} (HTTP {status}): {reason}")]
    Decode {
        /// The URL.
        url: String,
        /// Status code received.
        status: u16,
        /// What was wrong.
        reason: String,
    },
}

/// Status code and text body of an action endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// Body as text.
    pub body: String,
    /// The `lsn` header (failsafe answers).
    pub lsn: Option<u64>,
}

/// `xlog` object of `/patroni`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct XlogStatus {
    /// Primary's flush position.
    pub location: Option<u64>,
    /// Replica's received position.
    pub received_location: Option<u64>,
    /// Replica's replayed position.
    pub replayed_location: Option<u64>,
    /// Last replayed transaction time.
    pub replayed_timestamp: Option<String>,
    /// WAL replay paused.
    pub paused: Option<bool>,
}

/// A peer's `/patroni` document, as the HA loop reads it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct MemberStatus {
    /// PostgreSQL state (`running`, …).
    pub state: Option<String>,
    /// `primary` / `master`, `replica`, `standby_leader`, …
    pub role: Option<String>,
    /// `server_version_num`.
    pub server_version: Option<u64>,
    /// WAL positions.
    #[serde(default)]
    pub xlog: XlogStatus,
    /// Timeline.
    pub timeline: Option<u64>,
    /// `streaming` / `in archive recovery`.
    pub replication_state: Option<String>,
    /// Maintenance mode.
    #[serde(default)]
    pub pause: bool,
    /// The peer sees no leader.
    #[serde(default)]
    pub cluster_unlocked: bool,
    /// The peer runs in failsafe mode.
    #[serde(default)]
    pub failsafe_mode_is_active: bool,
    /// Epoch seconds of its last DCS contact.
    pub dcs_last_seen: Option<i64>,
    /// Its tags.
    #[serde(default)]
    pub tags: Map<String, Value>,
    /// Its watchdog could not be armed.
    #[serde(default)]
    pub watchdog_failed: bool,
    /// Restart pending.
    #[serde(default)]
    pub pending_restart: bool,
    /// System identifier.
    pub database_system_identifier: Option<String>,
    /// Listed in `/sync`.
    #[serde(default)]
    pub sync_standby: bool,
    /// Listed in `/sync` in quorum mode.
    #[serde(default)]
    pub quorum_standby: bool,
    /// Version, scope, name.
    pub patroni: Option<crate::status::PatroniInfo>,
}

impl MemberStatus {
    /// The WAL position that ranks candidates: the primary's location, or the furthest of
    /// received and replayed on a replica.
    pub fn wal_position(&self) -> u64 {
        self.xlog
            .location
            .unwrap_or_else(|| self.xlog.received_location.unwrap_or(0).max(self.xlog.replayed_location.unwrap_or(0)))
    }

    /// Runs as a primary.
    pub fn is_primary(&self) -> bool {
        matches!(self.role.as_deref(), Some("primary" | "master"))
    }

    /// Tagged `nofailover`.
    pub fn nofailover(&self) -> bool {
        patroni_dcs::model::tags::nofailover(&self.tags).0
    }

    /// Why this member cannot be promoted (Patroni's wording), `None` when it can.
    pub fn failover_limitation(&self) -> Option<&'static str> {
        if self.nofailover() {
            Some("not allowed to promote")
        } else if self.watchdog_failed {
            Some("not watchdog capable")
        } else {
            None
        }
    }
}

/// The client; cheap to clone (connections are pooled and reused).
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    auth: Option<String>,
}

fn identity(settings: &ClientSettings) -> Result<Option<Identity>, ClientError> {
    let Some(cert) = &settings.certfile else {
        return Ok(None);
    };
    let tls = |e: String| ClientError::Tls(e);
    let cert_pem = std::fs::read(cert).map_err(|e| tls(format!("cannot read {}: {e}", cert.display())))?;
    let key_path = settings.keyfile.as_ref().unwrap_or(cert);
    let key = load_key(key_path, settings.keyfile_password.as_deref()).map_err(|e| tls(e.to_string()))?;
    let key_pem = match &key {
        PrivateKeyDer::Pkcs8(k) => pem_encode("PRIVATE KEY", k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => pem_encode("RSA PRIVATE KEY", k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => pem_encode("EC PRIVATE KEY", k.secret_sec1_der()),
        _ => return Err(tls("unsupported private key format".into())),
    };
    let mut buf = key_pem.into_bytes();
    buf.push(b'\n');
    buf.extend_from_slice(&cert_pem);
    Identity::from_pem(&buf).map(Some).map_err(|e| tls(format!("client certificate: {e}")))
}

/// The rustls configuration of a client trusting `ca` (hostnames checked) and presenting `ctl.certfile`.
fn verifying_config(ca: &std::path::Path, settings: &ClientSettings) -> Result<rustls::ClientConfig, ClientError> {
    let tls = |e: String| ClientError::Tls(e);
    let pem = std::fs::read(ca).map_err(|e| tls(format!("cannot read {}: {e}", ca.display())))?;
    let anchors = patroni_tls::TrustAnchors::from_pem(&pem).map_err(|e| tls(format!("{}: {e}", ca.display())))?;
    let provider = patroni_tls::provider();
    let verifier = patroni_tls::ServerVerifier::new(&anchors, patroni_tls::Hostname::Checked, provider.clone())
        .map_err(|e| tls(format!("{}: {e}", ca.display())))?;
    let identity = match &settings.certfile {
        Some(cert) => {
            let certs = load_certs("certfile", cert).map_err(|e| tls(e.to_string()))?;
            let key_path = settings.keyfile.as_ref().unwrap_or(cert);
            Some((certs, load_key(key_path, settings.keyfile_password.as_deref()).map_err(|e| tls(e.to_string()))?))
        }
        None => None,
    };
    patroni_tls::client_config(provider, std::sync::Arc::new(verifier), identity)
        .map_err(|e| tls(format!("client certificate: {e}")))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl ApiClient {
    /// Builds a client (installs the ring crypto provider if none is installed yet).
    pub fn new(settings: &ClientSettings) -> Result<Self, ClientError> {
        let http = Self::builder(settings)?.build().map_err(|e| ClientError::Tls(e.to_string()))?;
        Ok(Self { http, auth: settings.credentials.as_ref().map(|c| basic_auth_header(&c.username, &c.password)) })
    }

    /// The HTTP client an agent calls its peers with (`GET /patroni` in leader races, `POST /failsafe`): the same
    /// CA, client certificate and credentials as `patronictl`, as Patroni's agent uses them. The credentials go
    /// with every request, so a peer with `restapi.authentication` accepts the failsafe heartbeat.
    pub fn peer_http(settings: &ClientSettings) -> Result<reqwest::Client, ClientError> {
        let mut b = Self::builder(settings)?;
        if let Some(c) = &settings.credentials {
            let mut value = reqwest::header::HeaderValue::from_str(&basic_auth_header(&c.username, &c.password))
                .map_err(|e| ClientError::Credentials(e.to_string()))?;
            value.set_sensitive(true);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, value);
            b = b.default_headers(headers);
        }
        b.build().map_err(|e| ClientError::Tls(e.to_string()))
    }

    fn builder(settings: &ClientSettings) -> Result<reqwest::ClientBuilder, ClientError> {
        // Another part of the process may have installed it already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::Client::builder()
            .timeout(settings.timeout.unwrap_or(Duration::from_secs(30)))
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(30));
        if settings.insecure {
            // Nothing is verified, so reqwest's own TLS setup does; the client certificate is still presented.
            if let Some(id) = identity(settings)? {
                b = b.identity(id);
            }
            return Ok(b.danger_accept_invalid_certs(true).danger_accept_invalid_hostnames(true));
        }
        match &settings.cacert {
            // As urllib3 does for Python Patroni: a CA file replaces the system roots. The shared verifier
            // also trusts a server presenting that very CA certificate (OpenSSL's rule), which reqwest's own
            // verifier refuses.
            Some(ca) => b = b.tls_backend_preconfigured(verifying_config(ca, settings)?),
            None => {
                if let Some(id) = identity(settings)? {
                    b = b.identity(id);
                }
            }
        }
        Ok(b)
    }

    /// `endpoint` resolved against `api_url` (`…/patroni` + `restart` → `…/restart`).
    pub fn endpoint_url(api_url: &str, endpoint: &str) -> Result<url::Url, ClientError> {
        let err = |reason: String| ClientError::Url { url: api_url.to_owned(), reason };
        let base = url::Url::parse(api_url).map_err(|e| err(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(err("scheme must be http or https".into()));
        }
        base.join(endpoint).map_err(|e| err(e.to_string()))
    }

    async fn send(
        &self,
        method: Method,
        api_url: &str,
        endpoint: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<ApiResponse, ClientError> {
        let url = Self::endpoint_url(api_url, endpoint)?;
        let shown = url.to_string();
        let mut req = self.http.request(method.clone(), url);
        if method != Method::GET {
            if let Some(a) = &self.auth {
                req = req.header(reqwest::header::AUTHORIZATION, a);
            }
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(b).unwrap_or_default());
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let resp = req.send().await.map_err(|source| ClientError::Http { url: shown.clone(), source })?;
        let status = resp.status().as_u16();
        let lsn = resp.headers().get("lsn").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let body = resp.text().await.map_err(|source| ClientError::Http { url: shown, source })?;
        Ok(ApiResponse { status, body, lsn })
    }

    async fn json(
        &self,
        api_url: &str,
        endpoint: &str,
        timeout: Option<Duration>,
    ) -> Result<(u16, Value), ClientError> {
        let r = self.send(Method::GET, api_url, endpoint, None, timeout).await?;
        let v = serde_json::from_str(&r.body).map_err(|e| ClientError::Decode {
            url: api_url.to_owned(),
            status: r.status,
            reason: e.to_string(),
        })?;
        Ok((r.status, v))
    }

    /// A peer's `/patroni` (its `api_url` as registered), within `timeout`: the member-status
    /// call of leader races and failsafe checks.
    pub async fn member_status(&self, api_url: &str, timeout: Duration) -> Result<MemberStatus, ClientError> {
        let (status, v) = self.json(api_url, "patroni", Some(timeout)).await?;
        serde_json::from_value(v).map_err(|e| ClientError::Decode {
            url: api_url.to_owned(),
            status,
            reason: e.to_string(),
        })
    }

    /// Any read-only JSON endpoint (`cluster`, `history`, `config`, a health check).
    pub async fn get(&self, api_url: &str, endpoint: &str) -> Result<(u16, Value), ClientError> {
        self.json(api_url, endpoint, None).await
    }

    /// `POST /switchover`.
    pub async fn switchover(
        &self,
        api_url: &str,
        leader: &str,
        candidate: Option<&str>,
        scheduled_at: Option<&str>,
    ) -> Result<ApiResponse, ClientError> {
        let mut b = Map::new();
        b.insert("leader".into(), Value::from(leader));
        if let Some(c) = candidate {
            b.insert("candidate".into(), Value::from(c));
        }
        if let Some(s) = scheduled_at {
            b.insert("scheduled_at".into(), Value::from(s));
        }
        self.send(Method::POST, api_url, "switchover", Some(&Value::Object(b)), None).await
    }

    /// `POST /failover`.
    pub async fn failover(
        &self,
        api_url: &str,
        candidate: &str,
        leader: Option<&str>,
    ) -> Result<ApiResponse, ClientError> {
        let mut b = Map::new();
        if let Some(l) = leader {
            b.insert("leader".into(), Value::from(l));
        }
        b.insert("candidate".into(), Value::from(candidate));
        self.send(Method::POST, api_url, "failover", Some(&Value::Object(b)), None).await
    }

    /// `DELETE /switchover`.
    pub async fn cancel_switchover(&self, api_url: &str) -> Result<ApiResponse, ClientError> {
        self.send(Method::DELETE, api_url, "switchover", None, None).await
    }

    /// `POST /restart` with optional conditions (`schedule`, `role`, `postgres_version`, `timeout`, `restart_pending`).
    pub async fn restart(&self, api_url: &str, conditions: &Map<String, Value>) -> Result<ApiResponse, ClientError> {
        self.send(Method::POST, api_url, "restart", Some(&Value::Object(conditions.clone())), None).await
    }

    /// `DELETE /restart`.
    pub async fn cancel_restart(&self, api_url: &str) -> Result<ApiResponse, ClientError> {
        self.send(Method::DELETE, api_url, "restart", None, None).await
    }

    /// `POST /reload`.
    pub async fn reload(&self, api_url: &str) -> Result<ApiResponse, ClientError> {
        self.send(Method::POST, api_url, "reload", None, None).await
    }

    /// `POST /reinitialize`.
    pub async fn reinitialize(
        &self,
        api_url: &str,
        force: bool,
        from_leader: bool,
    ) -> Result<ApiResponse, ClientError> {
        let mut b = Map::new();
        b.insert("force".into(), Value::Bool(force));
        if from_leader {
            b.insert("from_leader".into(), Value::Bool(true));
        }
        self.send(Method::POST, api_url, "reinitialize", Some(&Value::Object(b)), None).await
    }

    /// `GET /config`.
    pub async fn get_config(&self, api_url: &str) -> Result<(u16, Value), ClientError> {
        self.json(api_url, "config", None).await
    }

    /// `PATCH /config` (JSON merge; `null` removes a key).
    pub async fn patch_config(&self, api_url: &str, patch: &Value) -> Result<ApiResponse, ClientError> {
        self.send(Method::PATCH, api_url, "config", Some(patch), None).await
    }

    /// `PUT /config` (replace).
    pub async fn put_config(&self, api_url: &str, config: &Value) -> Result<ApiResponse, ClientError> {
        self.send(Method::PUT, api_url, "config", Some(config), None).await
    }

    /// `POST /failsafe` from the primary to a replica, within `timeout`.
    pub async fn failsafe(&self, api_url: &str, body: &Value, timeout: Duration) -> Result<ApiResponse, ClientError> {
        self.send(Method::POST, api_url, "failsafe", Some(body), Some(timeout)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_resolve_like_urljoin() {
        let u = ApiClient::endpoint_url("http://10.0.0.1:8008/patroni", "switchover").unwrap();
        assert_eq!(u.as_str(), "http://10.0.0.1:8008/switchover");
        let u = ApiClient::endpoint_url("https://h:8008/", "patroni").unwrap();
        assert_eq!(u.as_str(), "https://h:8008/patroni");
        assert!(ApiClient::endpoint_url("ftp://h/", "patroni").is_err());
        assert!(ApiClient::endpoint_url("not a url", "patroni").is_err());
    }

    #[test]
    fn member_status_from_documented_examples() {
        let primary: MemberStatus = serde_json::from_value(json!({
            "state": "running", "postmaster_start_time": "2023-08-18 11:03:37.966359+00:00",
            "role": "master", "server_version": 150004, "xlog": {"location": 67395656}, "timeline": 1,
            "dcs_last_seen": 1692356718, "tags": {"clonefrom": true},
            "database_system_identifier": "7268616322854375442",
            "patroni": {"version": "3.1.0", "scope": "demo", "name": "patroni1"}}))
        .unwrap();
        assert!(primary.is_primary());
        assert_eq!(primary.wal_position(), 67_395_656);
        let replica: MemberStatus = serde_json::from_value(json!({
            "state": "running", "role": "replica",
            "xlog": {"received_location": 67419744, "replayed_location": 67419000, "replayed_timestamp": null, "paused": false},
            "cluster_unlocked": true, "tags": {"nofailover": "true"}}))
        .unwrap();
        assert_eq!(replica.wal_position(), 67_419_744);
        assert!(replica.cluster_unlocked);
        assert_eq!(replica.failover_limitation(), Some("not allowed to promote"));
    }
}
