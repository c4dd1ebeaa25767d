//! etcd's v2 keys API over HTTP (`/v2/keys`, `/v2/members`): endpoint failover within one deadline, basic
//! authentication, and etcd's error codes sorted into what the caller can act on.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use tracing::debug;
use url::Url;

use crate::error::DcsError;
use crate::etcd3::client::{describe, http_client};
use crate::etcd3::settings::{base_str, Etcd3Settings};

/// etcd v2 error codes Patroni (python-etcd) reacts to.
pub(crate) mod code {
    pub const KEY_NOT_FOUND: i64 = 100;
    pub const TEST_FAILED: i64 = 101;
    pub const NODE_EXIST: i64 = 105;
    pub const RAFT_INTERNAL: i64 = 300;
    pub const LEADER_ELECT: i64 = 301;
    pub const WATCHER_CLEARED: i64 = 400;
    pub const EVENT_INDEX_CLEARED: i64 = 401;
}

/// What a v2 request can end in, before it becomes a [`DcsError`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum V2Error {
    /// No endpoint answered usefully before the deadline.
    Unreachable(String),
    /// etcd answered with an error code (`errorCode`, message).
    Etcd(i64, String),
    /// An answer we cannot read.
    Protocol(String),
}

impl V2Error {
    /// The error for a key: compare failures name the key, the rest keep etcd's words.
    pub(crate) fn into_dcs(self, key: &str) -> DcsError {
        match self {
            V2Error::Unreachable(m) => DcsError::Unreachable(m),
            V2Error::Etcd(code::TEST_FAILED | code::NODE_EXIST | code::KEY_NOT_FOUND, _) => {
                DcsError::CompareFailed { key: key.to_string() }
            }
            V2Error::Etcd(c, m) => DcsError::Rejected(format!("etcd error {c}: {m}")),
            V2Error::Protocol(m) => DcsError::Protocol(m),
        }
    }
}

/// A successful answer: the body and the store index etcd reported (`X-Etcd-Index`).
#[derive(Debug)]
pub(crate) struct V2Answer {
    pub body: Value,
    pub etcd_index: i64,
}

/// How one attempt on one endpoint ended.
enum Attempt {
    Ok(V2Answer),
    /// Connection trouble, a timeout, or an etcd member that cannot serve now: try another endpoint or later.
    Retry(String),
    Fail(V2Error),
}

struct Endpoints {
    list: Vec<String>,
    /// Index of the endpoint that answered last; tried first.
    current: usize,
}

pub(crate) struct V2Client {
    http: reqwest::Client,
    endpoints: Mutex<Endpoints>,
    configured: Vec<String>,
    credentials: Option<(String, String)>,
}

/// One request: method, key path (absolute, e.g. `/service/batman/leader`) and parameters.
pub(crate) struct Request<'a> {
    pub method: reqwest::Method,
    pub key: &'a str,
    /// Query parameters of GET/DELETE, form fields of PUT.
    pub params: Vec<(&'static str, String)>,
}

impl V2Client {
    pub(crate) fn new(settings: &Etcd3Settings, endpoints: Vec<Url>) -> Result<Self, DcsError> {
        let list: Vec<String> = endpoints.iter().map(base_str).collect();
        Ok(V2Client {
            http: http_client(settings)?,
            configured: list.clone(),
            endpoints: Mutex::new(Endpoints { list, current: 0 }),
            credentials: settings.credentials(),
        })
    }

    fn ordered(&self) -> (Vec<String>, usize) {
        match self.endpoints.lock() {
            Ok(e) => (e.list.clone(), e.current),
            Err(_) => (self.configured.clone(), 0),
        }
    }

    fn mark_good(&self, endpoint: &str) {
        if let Ok(mut e) = self.endpoints.lock() {
            if let Some(i) = e.list.iter().position(|x| x == endpoint) {
                e.current = i;
            }
        }
    }

    pub(crate) fn current_endpoint(&self) -> Option<String> {
        let (list, i) = self.ordered();
        list.get(i).cloned()
    }

    /// Replaces the endpoint list with the etcd cluster's client URLs (plus the configured ones, tried last), so a
    /// member added later is found and a configured one that left is still tried.
    pub(crate) fn merge_endpoints(&self, discovered: Vec<String>) {
        if discovered.is_empty() {
            return;
        }
        let Ok(mut e) = self.endpoints.lock() else { return };
        let current = e.list.get(e.current).cloned();
        let mut list = discovered;
        for c in &self.configured {
            if !list.contains(c) {
                list.push(c.clone());
            }
        }
        e.current = current.and_then(|c| list.iter().position(|x| *x == c)).unwrap_or(0);
        e.list = list;
    }

    /// Per-attempt budget: a share of what is left so one hung endpoint cannot eat the whole deadline, at least 1 s.
    fn attempt_timeout(deadline: Instant, endpoints: usize) -> Duration {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let share = remaining / u32::try_from(endpoints.max(1)).unwrap_or(1);
        share.max(Duration::from_secs(1)).min(remaining)
    }

    /// Runs `req` on the first endpoint that answers, retrying until `deadline`. Returns also how many attempts
    /// were sent (a retried write may have succeeded the first time with its answer lost).
    pub(crate) async fn call(&self, req: &Request<'_>, deadline: Instant) -> (Result<V2Answer, V2Error>, usize) {
        let mut last_error = String::from("no etcd endpoint configured");
        let mut backoff = Duration::from_millis(100);
        let mut attempts = 0;
        loop {
            let (list, start) = self.ordered();
            let n = list.len();
            for i in 0..n {
                let endpoint = &list[(start + i) % n];
                if Instant::now() >= deadline {
                    return (Err(V2Error::Unreachable(last_error)), attempts);
                }
                attempts += 1;
                let timeout = Self::attempt_timeout(deadline, n);
                match self.attempt(endpoint, req, timeout).await {
                    Attempt::Ok(a) => {
                        self.mark_good(endpoint);
                        return (Ok(a), attempts);
                    }
                    Attempt::Retry(why) => {
                        debug!("etcd {endpoint} {} {}: {why}", req.method, req.key);
                        last_error = format!("{endpoint}: {why}");
                    }
                    Attempt::Fail(e) => {
                        self.mark_good(endpoint);
                        return (Err(e), attempts);
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return (Err(V2Error::Unreachable(last_error)), attempts);
            }
            tokio::time::sleep(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    fn builder(&self, endpoint: &str, req: &Request<'_>, timeout: Duration) -> reqwest::RequestBuilder {
        let mut url = format!("{endpoint}/v2/keys{}", encode_key(req.key));
        let is_put = req.method == reqwest::Method::PUT;
        if !is_put && !req.params.is_empty() {
            let mut params = url::form_urlencoded::Serializer::new(String::new());
            params.extend_pairs(req.params.iter().map(|(k, v)| (*k, v.as_str())));
            url = format!("{url}?{}", params.finish());
        }
        let mut b = self.http.request(req.method.clone(), url).timeout(timeout);
        if is_put {
            b = b.form(&req.params);
        }
        if let Some((u, p)) = &self.credentials {
            b = b.basic_auth(u, Some(p));
        }
        b
    }

    async fn attempt(&self, endpoint: &str, req: &Request<'_>, timeout: Duration) -> Attempt {
        send(self.builder(endpoint, req, timeout)).await
    }

    /// A long poll (`wait=true`) on the current endpoint, without retries: `Ok(None)` when `timeout` passed
    /// without an event.
    pub(crate) async fn wait(&self, req: &Request<'_>, timeout: Duration) -> Result<Option<V2Answer>, V2Error> {
        let Some(endpoint) = self.current_endpoint() else {
            return Err(V2Error::Unreachable("no etcd endpoint configured".into()));
        };
        let resp = match self.builder(&endpoint, req, timeout).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Ok(None),
            Err(e) => return Err(V2Error::Unreachable(format!("{endpoint}: {}", describe(&e)))),
        };
        match read(resp).await {
            Attempt::Ok(a) => Ok(Some(a)),
            Attempt::Retry(why) if why.contains("timed out") => Ok(None),
            Attempt::Retry(why) => Err(V2Error::Unreachable(format!("{endpoint}: {why}"))),
            Attempt::Fail(e) => Err(e),
        }
    }

    /// Client URLs of the etcd cluster's members (`/v2/members`), from the current endpoint.
    pub(crate) async fn members(&self, deadline: Instant) -> Result<Vec<String>, String> {
        let endpoint = self.current_endpoint().ok_or("no etcd endpoint configured")?;
        let timeout = deadline.saturating_duration_since(Instant::now());
        let mut b = self.http.get(format!("{endpoint}/v2/members")).timeout(timeout);
        if let Some((u, p)) = &self.credentials {
            b = b.basic_auth(u, Some(p));
        }
        let v: Value = b
            .send()
            .await
            .map_err(|e| describe(&e))?
            .error_for_status()
            .map_err(|e| describe(&e))?
            .json()
            .await
            .map_err(|e| describe(&e))?;
        let mut out = Vec::new();
        for m in v.get("members").and_then(Value::as_array).into_iter().flatten() {
            for u in m.get("clientURLs").and_then(Value::as_array).into_iter().flatten() {
                if let Some(u) = u.as_str().and_then(|s| Url::parse(s).ok()) {
                    let s = base_str(&u);
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Percent-encodes each segment of a key path (member names may hold characters URLs reserve).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for (i, seg) in key.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.extend(url::form_urlencoded::byte_serialize(seg.as_bytes()).map(|s| s.replace('+', "%20")));
    }
    out
}

async fn send(req: reqwest::RequestBuilder) -> Attempt {
    match req.send().await {
        Ok(r) => read(r).await,
        Err(e) => Attempt::Retry(describe(&e)),
    }
}

async fn read(resp: reqwest::Response) -> Attempt {
    let status = resp.status();
    let etcd_index = resp
        .headers()
        .get("x-etcd-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    let text = match resp.text().await {
        Ok(t) => t,
        Err(e) => return Attempt::Retry(describe(&e)),
    };
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    if status.is_success() {
        return match parsed {
            Some(body) => Attempt::Ok(V2Answer { body, etcd_index }),
            None => Attempt::Fail(V2Error::Protocol(format!("etcd answered non-JSON: {text:.200}"))),
        };
    }
    let Some(v) = parsed.filter(|v| v.get("errorCode").is_some()) else {
        if status.as_u16() == 401 || status.as_u16() == 403 {
            return Attempt::Fail(V2Error::Etcd(110, format!("HTTP {status}: {}", text.trim())));
        }
        // A proxy or a member in trouble: another endpoint (or a moment later) may do.
        return Attempt::Retry(format!("HTTP {status}: {:.200}", text.trim()));
    };
    let code = v.get("errorCode").and_then(Value::as_i64).unwrap_or(0);
    let message = v.get("message").and_then(Value::as_str).unwrap_or("").to_string();
    let cause = v.get("cause").and_then(Value::as_str).unwrap_or("");
    let message = if cause.is_empty() { message } else { format!("{message} ({cause})") };
    if matches!(code, code::RAFT_INTERNAL | code::LEADER_ELECT) || status.is_server_error() {
        return Attempt::Retry(message);
    }
    Attempt::Fail(V2Error::Etcd(code, message))
}

/// Every leaf (non-directory) node under `node`, depth first.
pub(crate) fn leaves(node: &Value, out: &mut Vec<Value>) {
    if node.get("dir").and_then(Value::as_bool).unwrap_or(false) {
        for n in node.get("nodes").and_then(Value::as_array).into_iter().flatten() {
            leaves(n, out);
        }
    } else {
        out.push(node.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_segments_are_encoded() {
        assert_eq!(encode_key("/service/batman/members/node 1"), "/service/batman/members/node%201");
        assert_eq!(encode_key("/service/b/leader"), "/service/b/leader");
        assert_eq!(encode_key("/s/a?b#c"), "/s/a%3Fb%23c");
    }

    #[test]
    fn leaves_of_a_recursive_read() {
        let v: Value = serde_json::json!({"key": "/s/c", "dir": true, "nodes": [
            {"key": "/s/c/leader", "value": "n1", "modifiedIndex": 5},
            {"key": "/s/c/members", "dir": true, "nodes": [{"key": "/s/c/members/n1", "value": "{}"}]},
            {"key": "/s/c/empty", "dir": true}
        ]});
        let mut out = Vec::new();
        leaves(&v, &mut out);
        let keys: Vec<&str> = out.iter().filter_map(|n| n["key"].as_str()).collect();
        assert_eq!(keys, ["/s/c/leader", "/s/c/members/n1"]);
    }

    #[test]
    fn errors_become_dcs_errors() {
        assert!(V2Error::Etcd(code::NODE_EXIST, "x".into()).into_dcs("/k").is_compare_failed());
        assert!(V2Error::Etcd(code::TEST_FAILED, "x".into()).into_dcs("/k").is_compare_failed());
        assert!(V2Error::Unreachable("x".into()).into_dcs("/k").is_unreachable());
        assert!(
            matches!(V2Error::Etcd(110, "denied".into()).into_dcs("/k"), DcsError::Rejected(m) if m.contains("denied"))
        );
    }
}
