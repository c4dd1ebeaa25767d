//! Control and config endpoints through the typed client, and malformed requests, each with
//! its documented answer.

mod common;

use common::*;
use patroni_api::client::{ApiClient, ClientSettings};
use patroni_api::*;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

fn client() -> ApiClient {
    ApiClient::new(&ClientSettings::default()).unwrap()
}

fn paused_primary() -> NodeStatus {
    let mut s = primary();
    let mut c = cluster();
    c.paused = true;
    s.paused = true;
    s.cluster = Some(Arc::new(c));
    s
}

#[tokio::test]
async fn switchover_and_failover_flows() {
    let server = TestServer::start(primary()).await;
    let c = client();
    let api = server.api_url();

    let r = c.switchover(&api, "patroni1", None, None).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "Successfully switched over to \"patroni2\""));
    let r = c.switchover(&api, "patroni1", Some("patroni3"), None).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "Successfully switched over to \"patroni3\""));
    let r = c.failover(&api, "patroni3", None).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "Successfully failed over to \"patroni3\""));
    assert!(server.control.calls().contains(&"check patroni2,patroni3".to_string()));

    server.control.0.lock().unwrap().outcome = Some(FailoverOutcome::Completed { new_leader: "patroni2".into() });
    let r = c.failover(&api, "patroni3", Some("patroni1")).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "Switched over to \"patroni2\" instead of \"patroni3\""));
    server.control.0.lock().unwrap().outcome = Some(FailoverOutcome::Failed);
    let r = c.failover(&api, "patroni3", None).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (503, "Failover failed"));
    server.control.0.lock().unwrap().outcome = Some(FailoverOutcome::WriteFailed);
    let r = c.switchover(&api, "patroni1", None, None).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (503, "failed to write failover key into DCS"));

    server.control.0.lock().unwrap().healthy_candidates = false;
    let r = c.switchover(&api, "patroni1", None, None).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (412, "switchover is not possible: no good candidates have been found"));

    // Scheduling, then cancelling.
    let r = c.switchover(&api, "patroni1", None, Some("2099-09-24T12:00+00")).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (202, "Switchover scheduled"));
    let r = c.cancel_switchover(&api).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "scheduled switchover deleted"));
    let r = c.cancel_switchover(&api).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (404, "no switchover is scheduled"));

    // Paused: a switchover to a named candidate still works.
    server.publish(paused_primary());
    server.control.0.lock().unwrap().healthy_candidates = true;
    server.control.0.lock().unwrap().outcome = None;
    let r = c.switchover(&api, "patroni1", Some("patroni2"), None).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    server.stop().await;
}

#[tokio::test]
async fn restart_reload_reinitialize() {
    let server = TestServer::start(primary()).await;
    let c = client();
    let api = server.api_url();
    let r = c.restart(&api, &Map::new()).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "restarted successfully"));
    let conds = json!({"role": "primary", "postgres_version": "15.5"}).as_object().cloned().unwrap();
    assert_eq!(c.restart(&api, &conds).await.unwrap().status, 200);
    assert!(server.control.calls().contains(&"restart role=Some(Primary) version=Some(150005)".to_string()));

    let sched = json!({"schedule": "2099-01-01T00:00:00+00:00"}).as_object().cloned().unwrap();
    let r = c.restart(&api, &sched).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (202, "Restart scheduled"));
    let r = c.restart(&api, &sched).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (409, "Another restart is already scheduled"));
    let r = c.cancel_restart(&api).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "scheduled restart deleted"));
    let r = c.cancel_restart(&api).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (404, "no restarts are scheduled"));

    let r = c.reload(&api).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (202, "reload scheduled"));

    let r = c.reinitialize(&api, true, true).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "reinitialize started"));
    assert!(server.control.calls().contains(&"reinitialize force=true from_leader=true".to_string()));
    server.control.0.lock().unwrap().reinit_error = Some("I am the leader, can not reinitialize".into());
    let r = c.reinitialize(&api, false, false).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (503, "I am the leader, can not reinitialize"));
    // An empty body is fine for reinitialize and restart.
    let r = http().post(server.url("/reinitialize")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    server.stop().await;
}

#[tokio::test]
async fn config_patch_put_get() {
    let server = TestServer::start(primary()).await;
    let c = client();
    let api = server.api_url();
    let (code, cfg) = c.get_config(&api).await.unwrap();
    assert_eq!((code, cfg["ttl"].clone()), (200, json!(30)));

    let r = c
        .patch_config(
            &api,
            &json!({"loop_wait": 5, "ttl": 20, "postgresql": {"parameters": {"max_connections": "101"}}}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["ttl"], 20);
    assert_eq!(v["retry_timeout"], 10);
    assert_eq!(v["postgresql"]["parameters"]["max_connections"], "101");
    assert!(server.control.calls().contains(&"write_config version=Some(\"7\")".to_string()));
    assert!(server.control.calls().contains(&"wakeup".to_string()));

    let r = c.patch_config(&api, &json!({"postgresql": {"parameters": {"max_connections": null}}})).await.unwrap();
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert!(v["postgresql"]["parameters"].get("max_connections").is_none());
    assert_eq!(v["postgresql"]["use_slots"], true);

    // Someone else wrote in between: compare-and-set fails.
    server.control.0.lock().unwrap().race_next_write = true;
    let r = c.patch_config(&api, &json!({"ttl": 25})).await.unwrap();
    assert_eq!(r.status, 409, "{}", r.body);

    let new = json!({"ttl": 20, "loop_wait": 3, "retry_timeout": 10, "postgresql": {"use_slots": true}});
    let r = c.put_config(&api, &new).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(serde_json::from_str::<Value>(&r.body).unwrap(), new);
    assert_eq!(server.control.0.lock().unwrap().config.as_ref().unwrap().0, new);

    // No config key at all.
    server.control.0.lock().unwrap().config = None;
    assert_eq!(c.patch_config(&api, &json!({"ttl": 25})).await.unwrap().status, 503);
    server.stop().await;
}

#[tokio::test]
async fn failsafe_endpoint() {
    let server = TestServer::start(replica(0)).await;
    let c = client();
    let body = json!({"name": "patroni1", "conn_url": "postgres://x", "api_url": "http://x/patroni", "slots": {}});
    let r = c.failsafe(&server.api_url(), &body, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.status, 502);
    let mut s = replica(0);
    s.failsafe_mode_enabled = true;
    s.failsafe_members = Some(json!({"patroni1": "http://x/patroni"}).as_object().cloned().unwrap());
    server.publish(s);
    let r = c.failsafe(&server.api_url(), &body, Duration::from_secs(5)).await.unwrap();
    assert_eq!((r.status, r.body.as_str(), r.lsn), (200, "Accepted", Some(67_395_656)));
    let (code, v) = c.get(&server.api_url(), "failsafe").await.unwrap();
    assert_eq!((code, v), (200, json!({"patroni1": "http://x/patroni"})));
    server.stop().await;
}

#[tokio::test]
async fn member_status_call() {
    let server = TestServer::start(replica(100)).await;
    let c = client();
    let st = c.member_status(&server.api_url(), Duration::from_secs(2)).await.unwrap();
    assert_eq!(st.role.as_deref(), Some("replica"));
    assert_eq!(st.wal_position(), 67_395_556);
    assert_eq!(st.patroni.unwrap().name, "patroni2");
    // A dead peer fails fast with an error naming the URL.
    let addr = server.addr;
    server.stop().await;
    let err = c.member_status(&format!("http://{addr}/patroni"), Duration::from_secs(2)).await.unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

struct Case {
    name: &'static str,
    status: fn() -> NodeStatus,
    method: &'static str,
    path: &'static str,
    body: Option<Vec<u8>>,
    want: u16,
    text: &'static str,
}

fn case(
    name: &'static str,
    method: &'static str,
    path: &'static str,
    body: &str,
    want: u16,
    text: &'static str,
) -> Case {
    Case { name, status: primary, method, path, body: Some(body.as_bytes().to_vec()), want, text }
}

#[tokio::test]
async fn malformed_requests_get_their_documented_answers() {
    let mut cases = vec![
        case("bad json", "POST", "/switchover", "{bad json", 400, "Bad request: invalid JSON"),
        case("json array", "POST", "/switchover", "[1,2]", 400, "a JSON object is expected, got an array"),
        case("empty object", "POST", "/switchover", "{}", 400, "empty JSON object"),
        case("blank body", "POST", "/failover", "   ", 400, "empty body"),
        case(
            "no leader",
            "POST",
            "/switchover",
            r#"{"candidate":"patroni2"}"#,
            400,
            "Switchover could be performed only from a specific leader",
        ),
        case(
            "no candidate",
            "POST",
            "/failover",
            r#"{"leader":"patroni1"}"#,
            400,
            "Failover could be performed only to a specific candidate",
        ),
        case(
            "scheduled failover",
            "POST",
            "/failover",
            r#"{"candidate":"patroni2","scheduled_at":"2099-01-01T00:00+00"}"#,
            400,
            "Failover can't be scheduled",
        ),
        case(
            "past",
            "POST",
            "/switchover",
            r#"{"leader":"patroni1","scheduled_at":"2019-09-24T12:00+00"}"#,
            422,
            "Cannot schedule switchover in the past",
        ),
        case(
            "no timezone",
            "POST",
            "/switchover",
            r#"{"leader":"patroni1","scheduled_at":"2099-09-24T12:00"}"#,
            400,
            "Timezone information is mandatory for the scheduled switchover",
        ),
        case(
            "garbage time",
            "POST",
            "/switchover",
            r#"{"leader":"patroni1","scheduled_at":"next tuesday"}"#,
            422,
            "Unable to parse scheduled timestamp",
        ),
        case(
            "unknown candidate",
            "POST",
            "/switchover",
            r#"{"leader":"patroni1","candidate":"nobody"}"#,
            412,
            "candidate does not exists",
        ),
        case("wrong leader", "POST", "/switchover", r#"{"leader":"patroni2"}"#, 412, "leader name does not match"),
        case(
            "same member",
            "POST",
            "/switchover",
            r#"{"leader":"patroni1","candidate":"patroni1"}"#,
            400,
            "Switchover target and source are the same",
        ),
        case("leader not a string", "POST", "/switchover", r#"{"leader":1}"#, 400, "\"leader\" must be a string"),
        case(
            "bad role",
            "POST",
            "/restart",
            r#"{"role":"leader"}"#,
            400,
            "PostgreSQL role should be either primary, standby_leader, or replica",
        ),
        case(
            "bad version",
            "POST",
            "/restart",
            r#"{"postgres_version":"9.6"}"#,
            400,
            "Invalid PostgreSQL version format",
        ),
        case(
            "bad timeout",
            "POST",
            "/restart",
            r#"{"timeout":"never"}"#,
            400,
            "Timeout should be a positive number of seconds",
        ),
        case(
            "unknown filter",
            "POST",
            "/restart",
            r#"{"foo":1}"#,
            400,
            "Unknown filter for the scheduled restart: foo",
        ),
        case(
            "restart in the past",
            "POST",
            "/restart",
            r#"{"schedule":"2001-01-01T00:00+00"}"#,
            422,
            "Cannot schedule restart in the past",
        ),
        case("restart not json", "POST", "/restart", "restart please", 400, "invalid JSON"),
        case(
            "bad config type",
            "PATCH",
            "/config",
            r#"{"ttl":"thirty"}"#,
            400,
            "invalid dynamic configuration: ttl: must be a positive integer",
        ),
        case("config not object", "PUT", "/config", r#""ttl""#, 400, "a JSON object is expected, got a string"),
        case("empty patch", "PATCH", "/config", "{}", 400, "empty JSON object"),
        case("bad postgresql section", "PUT", "/config", r#"{"postgresql":[]}"#, 400, "postgresql: must be an object"),
        // Like Patroni: an unparsable lag is no limit, so the answer is the plain check's (503: not a replica).
        case("bad lag unit", "GET", "/replica?lag=10XB", "", 503, "\"role\""),
        case("negative lag", "GET", "/replica?lag=-1", "", 400, "must not be negative"),
        case("lag not a number", "GET", "/async?lag=abc", "", 503, "\"role\""),
        case("readiness mode", "GET", "/readiness?mode=fast", "", 400, "invalid mode"),
        case("unsupported PUT", "PUT", "/switchover", "{}", 501, "Unsupported method ('PUT')"),
        case("unsupported DELETE", "DELETE", "/config", "", 501, "Unsupported method ('DELETE')"),
    ];
    cases.push(Case {
        name: "invalid utf-8",
        status: primary,
        method: "POST",
        path: "/switchover",
        body: Some(vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}']),
        want: 400,
        text: "invalid JSON",
    });
    cases.push(Case {
        name: "huge body",
        status: primary,
        method: "PATCH",
        path: "/config",
        body: Some(format!("{{\"x\":\"{}\"}}", "a".repeat(2 * 1024 * 1024)).into_bytes()),
        want: 413,
        text: "Request body is larger than",
    });
    for (name, path, body, text) in [
        (
            "switchover to any while paused",
            "/switchover",
            r#"{"leader":"patroni1"}"#,
            "Switchover is possible only to a specific candidate in a paused state",
        ),
        (
            "scheduled while paused",
            "/switchover",
            r#"{"leader":"patroni1","candidate":"patroni2","scheduled_at":"2099-01-01T00:00+00"}"#,
            "Can't schedule switchover in the paused state",
        ),
    ] {
        cases.push(Case {
            name,
            status: paused_primary,
            method: "POST",
            path,
            body: Some(body.as_bytes().to_vec()),
            want: 400,
            text,
        });
    }
    cases.push(Case {
        name: "scheduled restart while paused",
        status: paused_primary,
        method: "POST",
        path: "/restart",
        body: Some(br#"{"schedule":"2099-01-01T00:00+00"}"#.to_vec()),
        want: 500,
        text: "Can't schedule restart in the paused state",
    });
    assert!(cases.len() >= 25);

    let server = TestServer::start(primary()).await;
    let c = http();
    for case in cases {
        let status = (case.status)();
        // The DCS says what the snapshot says: POST /switchover reads the pause flag from the DCS afresh.
        if let Some((Value::Object(config), _)) = server.control.0.lock().unwrap().config.as_mut() {
            config.insert("pause".into(), Value::Bool(status.paused));
        }
        server.publish(status);
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut req = c.request(method, server.url(case.path));
        if let Some(b) = case.body.clone().filter(|b| !b.is_empty()) {
            req = req.body(b);
        }
        let r = req.send().await.unwrap();
        let code = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(code, case.want, "{}: {text}", case.name);
        assert!(text.contains(case.text), "{}: {text:?} lacks {:?}", case.name, case.text);
    }
    // Nothing reached the agent.
    assert!(
        server.control.calls().iter().all(|c| !c.starts_with("manual_failover") && !c.starts_with("write_config")),
        "{:?}",
        server.control.calls()
    );

    // Protocol-level garbage: answered with 400 or 411 and the connection closed, never a crash.
    let resp = raw(server.addr, b"POST /switchover HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(status_line(&resp).contains(" 411 "), "{resp}");
    let resp = raw(server.addr, b"GARBAGE\r\n\r\n").await;
    assert!(status_line(&resp).contains(" 400 "), "{resp}");
    let resp = raw(server.addr, b"POST /restart HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n").await;
    assert!(status_line(&resp).contains(" 400 "), "{resp}");
    // A chunked body is read like a sized one.
    let resp = raw(
        server.addr,
        b"PATCH /config HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nb\r\n{\"ttl\": 25}\r\n0\r\n\r\n",
    )
    .await;
    assert!(status_line(&resp).contains(" 200 "), "{resp}");
    assert!(body_of(&resp).contains("\"ttl\": 25"), "{resp}");
    // Still serving.
    assert_eq!(c.get(server.url("/primary")).send().await.unwrap().status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn read_only_endpoints_answer_while_an_action_is_stuck() {
    let server = TestServer::start(primary()).await;
    server.control.0.lock().unwrap().hang_restart = true;
    let url = server.url("/restart");
    let stuck = tokio::spawn(async move { http().post(url).send().await });
    // Wait until the restart reached the agent and hangs there.
    for _ in 0..100 {
        if server.control.calls().iter().any(|c| c.starts_with("restart")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.control.calls().iter().any(|c| c.starts_with("restart")));
    let c = http();
    for path in ["/primary", "/liveness", "/readiness", "/patroni", "/metrics", "/cluster"] {
        let r = c.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    // Other actions are not queued behind it either.
    assert_eq!(c.post(server.url("/reload")).send().await.unwrap().status(), 202);
    assert!(!stuck.is_finished());
    stuck.abort();
    server.stop().await;
}
