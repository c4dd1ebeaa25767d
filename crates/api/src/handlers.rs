//! Request routing and the endpoints. Read-only answers come from the published snapshot;
//! actions go through [`Control`](crate::control::Control).

use crate::access::{allowed, api_url_host, check_basic_auth, resolve_host, IpNet};
use crate::config_patch::merge_patch;
use crate::control::{
    failover_outcome_response, no_good_candidates, parse_reinitialize, validate_failover, validate_restart,
    CancelSwitchover, FailoverAction, FailsafeReply,
};
use crate::health::{health_check, liveness, readiness, Query};
use crate::metrics;
use crate::model::check_dynamic_config;
use crate::server::{Runtime, Shared};
use crate::status::NodeStatus;
use crate::tls::VerifyClient;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, SERVER, TRANSFER_ENCODING, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Facts about the connection a request came in on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    pub client_cert: bool,
}

/// A response before the server-wide headers are added.
struct Reply {
    status: u16,
    content_type: Option<&'static str>,
    body: Bytes,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn status_only(status: u16) -> Self {
        Self { status, content_type: None, body: Bytes::new(), headers: Vec::new() }
    }

    fn text(status: u16, text: impl Into<String>) -> Self {
        Self {
            status,
            content_type: Some("text/plain; charset=utf-8"),
            body: Bytes::from(text.into()),
            headers: Vec::new(),
        }
    }

    fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            content_type: Some("application/json"),
            body: Bytes::from(patroni_pycompat::json_dumps(value)),
            headers: Vec::new(),
        }
    }

    fn bad_request(reason: impl std::fmt::Display) -> Self {
        Self::text(400, format!("Bad request: {reason}"))
    }
}

fn finish(rt: &Runtime, reply: Reply, head: bool) -> Response<Full<Bytes>> {
    let mut builder =
        Response::builder().status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    if let Some(h) = &rt.server_header {
        builder = builder.header(SERVER, h.clone());
    }
    if let Some(ct) = reply.content_type {
        builder = builder.header(CONTENT_TYPE, ct);
    }
    for (name, value) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            builder = builder.header(name, v);
        }
    }
    for (name, value) in &rt.headers {
        builder = builder.header(name.clone(), value.clone());
    }
    let body = if head { Bytes::new() } else { reply.body };
    builder = builder.header(CONTENT_LENGTH, body.len());
    builder.body(Full::new(body)).unwrap_or_else(|_| {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// Entry point for every request on every connection.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let rt = shared.runtime();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let head = method == Method::HEAD;
    let reply = route(&shared, &rt, conn, req).await;
    tracing::debug!(
        "API thread: {} - - \"{} {}\" {} - latency: {:.3} ms",
        conn.peer.ip(),
        method,
        path,
        reply.status,
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(finish(&rt, reply, head))
}

fn first_segment(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or("")
}

fn snapshot(shared: &Shared) -> Arc<NodeStatus> {
    shared.status.borrow().clone()
}

async fn route(shared: &Shared, rt: &Runtime, conn: ConnInfo, req: Request<Incoming>) -> Reply {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = Query::parse(req.uri().query());
    let endpoint = first_segment(&path).to_owned();

    if rt.verify_client == VerifyClient::Required && conn.tls && !conn.client_cert {
        // The handshake already insists on a certificate; this is a second line of defence.
        return Reply::text(403, "client certificate required");
    }
    match method {
        Method::GET if endpoint == "patroni" => patroni_status(shared).await,
        Method::GET | Method::HEAD | Method::OPTIONS => {
            let status_only = method != Method::GET;
            read_only(shared, &endpoint, &path, &query, status_only)
        }
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
            let check_members = !(method == Method::POST && endpoint == "failsafe");
            if let Some(refusal) = check_access(shared, rt, conn, &req, check_members).await {
                return refusal;
            }
            unsafe_request(shared, rt, method, &endpoint, req).await
        }
        other => Reply::text(501, format!("Unsupported method ('{other}')")),
    }
}

/// How long `GET /patroni` waits for fresh WAL positions before it answers from the snapshot.
const FRESH_XLOG_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

/// `GET /patroni` with the WAL positions PostgreSQL reports now, when it answers quickly; the rest from the
/// snapshot. Only a running PostgreSQL is asked, and only for the same kind of position (a promotion or demotion
/// in between is the loop's to publish).
async fn patroni_status(shared: &Shared) -> Reply {
    let status = snapshot(shared);
    let running = status.state == crate::status::PostgresState::Running;
    let Some(pg) = status.postgres.as_ref().filter(|_| running) else {
        return Reply::json(200, &status.to_json());
    };
    let fresh = tokio::time::timeout(FRESH_XLOG_WAIT, shared.control.fresh_xlog()).await.ok().flatten();
    match fresh {
        Some(xlog) if std::mem::discriminant(&xlog) == std::mem::discriminant(&pg.xlog) => {
            let mut status = (*status).clone();
            if let Some(pg) = status.postgres.as_mut() {
                pg.xlog = xlog;
            }
            Reply::json(200, &status.to_json())
        }
        _ => Reply::json(200, &status.to_json()),
    }
}

fn read_only(shared: &Shared, endpoint: &str, path: &str, query: &Query, status_only: bool) -> Reply {
    let status = snapshot(shared);
    let reply = match endpoint {
        "liveness" => Reply::status_only(liveness(&status, SystemTime::now())),
        "readiness" => match readiness(&status, query) {
            Ok(None) => Reply::status_only(200),
            Ok(Some(reason)) => {
                tracing::debug!("Readiness check failure: {reason}");
                Reply::status_only(503)
            }
            Err(e) => Reply::bad_request(e),
        },
        "patroni" => Reply::json(200, &status.to_json()),
        "metrics" => Reply {
            status: 200,
            content_type: Some("text/plain; version=0.0.4; charset=utf-8"),
            body: Bytes::from(metrics::render(&status)),
            headers: Vec::new(),
        },
        "cluster" => match &status.cluster {
            Some(c) => Reply::json(200, &c.to_json(&status.patroni.scope)),
            None => Reply::text(503, "Cluster state is not available: DCS is not accessible"),
        },
        "history" => match &status.cluster {
            Some(c) => Reply::json(200, &Value::Array(c.history.clone())),
            None => Reply::text(503, "Cluster state is not available: DCS is not accessible"),
        },
        "config" => match status.cluster.as_ref().and_then(|c| c.config.as_ref()) {
            Some(cfg) => Reply::json(200, cfg),
            None => Reply::text(502, "Bad Gateway: the dynamic configuration is not available"),
        },
        "failsafe" => match &status.failsafe_members {
            Some(m) => Reply::json(200, &Value::Object(m.clone())),
            None => Reply::text(502, "Bad Gateway: failsafe_mode is not enabled"),
        },
        _ => match health_check(&status, path, query) {
            Ok(code) if status_only => Reply::status_only(code),
            Ok(code) => Reply::json(code, &status.to_json()),
            Err(e) => Reply::bad_request(e),
        },
    };
    if status_only {
        Reply::status_only(reply.status)
    } else {
        reply
    }
}

async fn check_access(
    shared: &Shared,
    rt: &Runtime,
    conn: ConnInfo,
    req: &Request<Incoming>,
    check_members: bool,
) -> Option<Reply> {
    let include_members = check_members && rt.include_members;
    if !rt.allowlist.is_empty() || include_members {
        let ip = conn.peer.ip();
        let mut ok = allowed(&rt.allowlist, ip);
        if !ok && include_members {
            ok = member_networks(shared).await.iter().any(|n| n.contains(ip));
        }
        if !ok {
            return Some(Reply::text(403, "Access is denied"));
        }
    }
    if conn.tls && !conn.client_cert && rt.verify_client != VerifyClient::None {
        return Some(Reply::text(403, "client certificate required"));
    }
    let auth = req.headers().get(hyper::header::AUTHORIZATION).and_then(|h| h.to_str().ok());
    if let Err(reason) = check_basic_auth(rt.credentials.as_ref(), auth) {
        let mut r = Reply::text(401, reason);
        r.headers.push((WWW_AUTHENTICATE.as_str(), "Basic realm=\"Patroni\"".into()));
        return Some(r);
    }
    None
}

async fn member_networks(shared: &Shared) -> Vec<IpNet> {
    let hosts: Vec<String> = {
        let status = snapshot(shared);
        status
            .cluster
            .as_ref()
            .map(|c| c.members.iter().filter_map(|m| m.api_url.as_deref().and_then(api_url_host)).collect())
            .unwrap_or_default()
    };
    let mut nets = Vec::new();
    for h in hosts {
        nets.extend(resolve_host(&h).await);
    }
    nets
}

/// Reads a JSON object body. `optional`: an absent or empty body is `{}`.
async fn read_json(rt: &Runtime, req: Request<Incoming>, optional: bool) -> Result<Map<String, Value>, Reply> {
    let has_length = req.headers().contains_key(CONTENT_LENGTH);
    let chunked = req.headers().contains_key(TRANSFER_ENCODING);
    if !has_length && !chunked {
        return if optional { Ok(Map::new()) } else { Err(Reply::text(411, "Length Required")) };
    }
    let limit = rt.body_limit;
    let bytes = match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                return Err(Reply::text(413, format!("Request body is larger than {limit} bytes")));
            }
            return Err(Reply::bad_request(format!("cannot read the body: {e}")));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return if optional {
            Ok(Map::new())
        } else {
            Err(Reply::bad_request("empty body, a JSON object is expected"))
        };
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) if !m.is_empty() || optional => Ok(m),
        Ok(Value::Object(_)) => Err(Reply::bad_request("empty JSON object")),
        Ok(other) => Err(Reply::bad_request(format!("a JSON object is expected, got {}", json_kind(&other)))),
        Err(e) => Err(Reply::bad_request(format!("invalid JSON: {e}"))),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

async fn unsafe_request(
    shared: &Shared,
    rt: &Runtime,
    method: Method,
    endpoint: &str,
    req: Request<Incoming>,
) -> Reply {
    let control = &shared.control;
    match (method.clone(), endpoint) {
        (Method::POST, "switchover") => failover(shared, rt, FailoverAction::Switchover, req).await,
        (Method::POST, "failover") => failover(shared, rt, FailoverAction::Failover, req).await,
        (Method::POST, "restart") => {
            let body = match read_json(rt, req, true).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let paused = paused(&snapshot(shared));
            let request = match validate_restart(&body, paused, chrono::Utc::now()) {
                Ok(r) => r,
                Err(refusal) => return Reply::text(refusal.status, refusal.message),
            };
            if request.schedule.is_some() {
                if control.schedule_restart(request).await {
                    Reply::text(202, "Restart scheduled")
                } else {
                    Reply::text(409, "Another restart is already scheduled")
                }
            } else {
                match control.restart(request).await {
                    Ok((true, text)) => Reply::text(200, text),
                    Ok((false, text)) => Reply::text(503, text),
                    Err(e) => {
                        tracing::error!("Exception during restart: {e}");
                        Reply::text(400, "restart failed")
                    }
                }
            }
        }
        (Method::DELETE, "restart") => {
            if control.delete_scheduled_restart().await {
                Reply::text(200, "scheduled restart deleted")
            } else {
                Reply::text(404, "no restarts are scheduled")
            }
        }
        (Method::DELETE, "switchover") => match control.cancel_scheduled_switchover().await {
            CancelSwitchover::Deleted => Reply::text(200, "scheduled switchover deleted"),
            CancelSwitchover::NotScheduled => Reply::text(404, "no switchover is scheduled"),
            CancelSwitchover::Conflict => Reply::text(409, "Conflict: the failover key changed meanwhile"),
        },
        (Method::POST, "reload") => {
            control.reload().await;
            Reply::text(202, "reload scheduled")
        }
        (Method::POST, "reinitialize") => {
            let body = match read_json(rt, req, true).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match control.reinitialize(parse_reinitialize(&body)).await {
                Ok(()) => Reply::text(200, "reinitialize started"),
                Err(reason) => Reply::text(503, reason),
            }
        }
        (Method::PATCH, "config") => patch_config(shared, rt, req).await,
        (Method::PUT, "config") => put_config(shared, rt, req).await,
        (Method::POST, "failsafe") => {
            if !snapshot(shared).failsafe_mode_enabled {
                return Reply::text(502, "Bad Gateway: failsafe_mode is not enabled");
            }
            let body = match read_json(rt, req, false).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            match control.update_failsafe(&body).await {
                FailsafeReply::Accepted { lsn } => {
                    let mut r = Reply::text(200, "Accepted");
                    if let Some(lsn) = lsn {
                        r.headers.push(("lsn", lsn.to_string()));
                    }
                    r
                }
                FailsafeReply::Refused(reason) => Reply::text(500, reason),
            }
        }
        (Method::POST, "mpp" | "citus") => match read_json(rt, req, false).await {
            // Citus coordination is not supported; acknowledge as a non-coordinator does.
            Ok(_) => Reply::text(200, "OK"),
            Err(r) => r,
        },
        (Method::POST, "sigterm") => Reply::text(202, "shutdown scheduled"),
        (m, _) => Reply::text(501, format!("Unsupported method ('{m}')")),
    }
}

fn paused(status: &NodeStatus) -> bool {
    status.cluster.as_ref().map_or(status.paused, |c| c.paused)
}

async fn failover(shared: &Shared, rt: &Runtime, action: FailoverAction, req: Request<Incoming>) -> Reply {
    let body = match read_json(rt, req, false).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let status = snapshot(shared);
    let show = |v: Option<&Value>| v.map_or_else(|| "None".to_owned(), |v| v.to_string());
    let (leader, candidate, at) =
        (show(body.get("leader")), show(body.get("candidate").or(body.get("member"))), show(body.get("scheduled_at")));
    tracing::info!("received {} request with leader={leader} candidate={candidate} scheduled_at={at}", action.as_str());
    // Pause is judged on the configuration as the DCS has it now, as Patroni reads the cluster afresh here: a
    // `resume` a moment ago must not refuse a scheduled switchover because our snapshot predates it.
    let paused = match shared.control.read_config().await {
        Ok(Some(c)) => c.data.get("pause").and_then(patroni_pycompat::parse_bool_value).unwrap_or(false),
        _ => paused(&status),
    };
    let plan = match validate_failover(action, &body, status.cluster.as_deref(), paused, chrono::Utc::now()) {
        Ok(p) => p,
        Err(refusal) => return Reply::text(refusal.status, refusal.message),
    };
    drop(status);
    if !plan.candidates_to_check.is_empty() && !shared.control.any_healthy_candidate(&plan.candidates_to_check).await {
        return Reply::text(412, no_good_candidates(&plan));
    }
    let outcome = shared.control.manual_failover(&plan).await;
    let (code, text) = failover_outcome_response(&plan, &outcome);
    Reply::text(code, text)
}

async fn patch_config(shared: &Shared, rt: &Runtime, req: Request<Incoming>) -> Reply {
    let patch = match read_json(rt, req, false).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let current = match shared.control.read_config().await {
        Ok(Some(c)) => c,
        Ok(None) => return Reply::text(503, "Service Unavailable: the dynamic configuration does not exist"),
        Err(e) => return Reply::text(503, format!("Service Unavailable: {e}")),
    };
    let Value::Object(mut data) = current.data else {
        return Reply::text(503, "Service Unavailable: the stored dynamic configuration is not a JSON object");
    };
    let changed = merge_patch(&mut data, &patch);
    let merged = Value::Object(data);
    if changed {
        if let Err(errors) = check_dynamic_config(&merged) {
            return Reply::bad_request(format!("invalid dynamic configuration: {}", errors.join("; ")));
        }
        match shared.control.write_config(&merged, Some(&current.version)).await {
            Ok(true) => {}
            Ok(false) => return Reply::text(409, "Conflict: the configuration was changed meanwhile, retry"),
            Err(e) => return Reply::text(503, format!("Service Unavailable: {e}")),
        }
    }
    shared.control.wakeup().await;
    Reply::json(200, &merged)
}

async fn put_config(shared: &Shared, rt: &Runtime, req: Request<Incoming>) -> Reply {
    let body = match read_json(rt, req, false).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let value = Value::Object(body);
    if let Err(errors) = check_dynamic_config(&value) {
        return Reply::bad_request(format!("invalid dynamic configuration: {}", errors.join("; ")));
    }
    let unchanged = matches!(shared.control.read_config().await, Ok(Some(c)) if c.data == value);
    if !unchanged {
        match shared.control.write_config(&value, None).await {
            Ok(true) => {}
            Ok(false) => return Reply::text(502, "Bad Gateway: failed to write the configuration"),
            Err(e) => return Reply::text(502, format!("Bad Gateway: {e}")),
        }
        shared.control.wakeup().await;
    }
    Reply::json(200, &value)
}
