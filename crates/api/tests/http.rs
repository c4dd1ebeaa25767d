//! Read-only endpoints over real HTTP: health checks (GET/HEAD/OPTIONS), `/patroni`,
//! `/metrics`, `/cluster`, `/history`, `/config`, and the HTTP protocol itself.

mod common;

use common::*;
use patroni_api::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn sync_replica() -> NodeStatus {
    let mut s = replica(0);
    s.sync_standby = true;
    s
}

fn quorum_replica() -> NodeStatus {
    let mut s = replica(0);
    s.quorum_standby = true;
    s
}

fn standby_leader() -> NodeStatus {
    let mut s = replica(0);
    s.is_leader = true;
    s.is_standby_cluster = true;
    s.role = PostgresRole::StandbyLeader;
    if let Some(p) = s.postgres.as_mut() {
        p.role = PostgresRole::StandbyLeader;
    }
    s
}

fn paused_without_dcs() -> NodeStatus {
    let mut s = primary();
    s.is_leader = false;
    s.paused = true;
    s.cluster = None;
    s
}

fn stopped_replica() -> NodeStatus {
    let mut s = replica(0);
    s.state = PostgresState::Stopped;
    s.postgres = None;
    s
}

fn noloadbalance() -> NodeStatus {
    let mut s = replica(0);
    s.tags.insert("noloadbalance".into(), json!(true));
    s
}

#[tokio::test]
async fn health_checks_table() {
    let mb20 = 20 * 1024 * 1024;
    type Checks = Vec<(&'static str, u16)>;
    let cases: Vec<(&str, NodeStatus, Checks)> = vec![
        (
            "primary",
            primary(),
            vec![
                ("/", 200),
                ("/primary", 200),
                ("/master", 200),
                ("/read-write", 200),
                ("/leader", 200),
                ("/standby-leader", 503),
                ("/standby_leader", 503),
                ("/replica", 503),
                ("/read-only", 200),
                ("/sync", 503),
                ("/synchronous", 503),
                ("/quorum", 503),
                ("/read-only-sync", 200),
                ("/read-only-quorum", 200),
                ("/async", 503),
                ("/asynchronous", 503),
                ("/health", 200),
                ("/liveness", 200),
                ("/readiness", 200),
                ("/primary?tag_clonefrom=false", 200),
                ("/unknown-endpoint", 503),
            ],
        ),
        (
            "replica",
            replica(0),
            vec![
                ("/", 503),
                ("/primary", 503),
                ("/leader", 503),
                ("/replica", 200),
                ("/replica?lag=1MB", 200),
                ("/replica?lag=1048576", 200),
                ("/read-only", 200),
                ("/async", 200),
                ("/asynchronous?lag=1024kB", 200),
                ("/sync", 503),
                ("/read-only-sync", 503),
                ("/health", 200),
                ("/replica?tag_clonefrom=true", 200),
                ("/replica?tag_clonefrom=false", 503),
                ("/replica?tag_missing=x", 503),
                ("/replica?replication_state=streaming", 200),
                ("/replica?replication_state=in%20archive%20recovery", 503),
                ("/readiness", 200),
                ("/readiness?mode=write", 200),
            ],
        ),
        (
            "lagging replica",
            replica(mb20),
            vec![
                ("/replica", 200),
                ("/replica?lag=10MB", 503),
                ("/replica?lag=1GB", 200),
                ("/async?lag=10MB", 503),
                ("/read-only?lag=10MB", 503),
                ("/readiness", 503),
                ("/readiness?lag=1GB", 200),
            ],
        ),
        (
            "sync replica",
            sync_replica(),
            vec![("/sync", 200), ("/synchronous", 200), ("/async", 503), ("/read-only-sync", 200), ("/quorum", 503)],
        ),
        (
            "quorum replica",
            quorum_replica(),
            vec![("/quorum", 200), ("/read-only-quorum", 200), ("/sync", 503), ("/async", 503)],
        ),
        ("noloadbalance", noloadbalance(), vec![("/replica", 503), ("/read-only", 503), ("/health", 200)]),
        (
            "standby leader",
            standby_leader(),
            vec![
                ("/standby-leader", 200),
                ("/standby_leader", 200),
                ("/leader", 200),
                ("/primary", 503),
                ("/replica", 503),
                ("/read-only", 200),
            ],
        ),
        (
            "paused without DCS",
            paused_without_dcs(),
            vec![("/primary", 200), ("/leader", 200), ("/standby-leader", 503), ("/liveness", 200)],
        ),
        (
            "stopped replica",
            stopped_replica(),
            vec![("/health", 503), ("/replica", 503), ("/readiness", 503), ("/read-only", 503)],
        ),
    ];
    let server = TestServer::start(primary()).await;
    let c = http();
    for (name, status, checks) in cases {
        server.publish(status);
        for (path, want) in checks {
            for method in [reqwest::Method::GET, reqwest::Method::HEAD, reqwest::Method::OPTIONS] {
                let r = c.request(method.clone(), server.url(path)).send().await.unwrap();
                assert_eq!(r.status().as_u16(), want, "{name}: {method} {path}");
                let body = r.text().await.unwrap();
                let probe = path.starts_with("/liveness") || path.starts_with("/readiness");
                if method == reqwest::Method::GET && !probe {
                    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{name} {path}: {e}: {body}"));
                    assert!(v.get("state").is_some() && v.get("patroni").is_some(), "{name} {path}: {body}");
                } else {
                    assert!(body.is_empty(), "{name}: {method} {path} has a body: {body}");
                }
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn liveness_fails_only_when_the_loop_is_stuck_longer_than_ttl() {
    let mut s = primary();
    s.next_run = SystemTime::now() - Duration::from_secs(31);
    let server = TestServer::start(s.clone()).await;
    let c = http();
    assert_eq!(c.get(server.url("/liveness")).send().await.unwrap().status(), 503);
    // A replica gets twice the ttl.
    let mut r = replica(0);
    r.next_run = SystemTime::now() - Duration::from_secs(31);
    server.publish(r.clone());
    assert_eq!(c.get(server.url("/liveness")).send().await.unwrap().status(), 200);
    r.next_run = SystemTime::now() - Duration::from_secs(61);
    server.publish(r);
    assert_eq!(c.get(server.url("/liveness")).send().await.unwrap().status(), 503);
    // Maintenance mode tolerates a stuck loop.
    s.paused = true;
    server.publish(s);
    assert_eq!(c.get(server.url("/liveness")).send().await.unwrap().status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn patroni_endpoint_matches_the_documented_examples() {
    let server = TestServer::start(primary()).await;
    let c = http();
    let r = c.get(server.url("/patroni")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let text = r.text().await.unwrap();
    // Python's json.dumps layout, keys in Patroni's order.
    assert!(text.starts_with(r#"{"state": "running", "postmaster_start_time": "2023-08-18 11:03:37.966359+00:00", "role": "primary", "server_version": 150004, "xlog": {"location": 67395656}, "timeline": 1, "replication": [{"usename": "replicator""#), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        json!({
            "state": "running",
            "postmaster_start_time": "2023-08-18 11:03:37.966359+00:00",
            "role": "primary",
            "server_version": 150004,
            "xlog": {"location": 67395656},
            "timeline": 1,
            "replication": [
                {"usename": "replicator", "application_name": "patroni2", "client_addr": "10.89.0.6",
                 "state": "streaming", "sync_state": "async", "sync_priority": 0},
                {"usename": "replicator", "application_name": "patroni3", "client_addr": "10.89.0.2",
                 "state": "streaming", "sync_state": "async", "sync_priority": 0}
            ],
            "dcs_last_seen": 1692356718,
            "tags": {"clonefrom": true},
            "database_system_identifier": "7268616322854375442",
            "patroni": {"version": "3.1.0", "scope": "demo", "name": "patroni1"}
        })
    );

    // Unlocked cluster, replica.
    let mut r = replica(0);
    r.cluster = Some(Arc::new(cluster::ClusterDocument { leader: None, ..cluster() }));
    server.publish(r);
    let v: Value = c.get(server.url("/patroni")).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        v["xlog"],
        json!({"received_location": 67395656, "replayed_location": 67395656, "replayed_timestamp": null, "paused": false})
    );
    assert_eq!(v["cluster_unlocked"], true);
    assert_eq!(v["replication_state"], "streaming");

    // Failsafe, pause, pending restart, scheduled restart.
    let mut p = primary();
    p.cluster = None;
    p.failsafe_mode_is_active = true;
    p.paused = true;
    p.pending_restart_reason =
        json!({"max_connections": {"old_value": "100", "new_value": "101"}}).as_object().cloned().unwrap();
    p.scheduled_restart = Some(ScheduledRestart {
        schedule: ts("2030-01-01T10:00:00+02:00"),
        conditions: json!({"postmaster_start_time": "x", "role": "primary"}).as_object().cloned().unwrap(),
    });
    server.publish(p);
    let v: Value = c.get(server.url("/patroni")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["cluster_unlocked"], true);
    assert_eq!(v["failsafe_mode_is_active"], true);
    assert_eq!(v["pause"], true);
    assert_eq!(v["pending_restart"], true);
    assert_eq!(v["pending_restart_reason"]["max_connections"]["new_value"], "101");
    assert_eq!(v["scheduled_restart"], json!({"role": "primary", "schedule": "2030-01-01T10:00:00+02:00"}));

    // PostgreSQL not answering: only state and role.
    server.publish(stopped_replica());
    let v: Value = c.get(server.url("/patroni")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["state"], "stopped");
    assert_eq!(v["role"], "replica");
    assert!(v.get("xlog").is_none());
    server.stop().await;
}

const DOCUMENTED_METRICS: [&str; 23] = [
    "patroni_version",
    "patroni_postgres_running",
    "patroni_postmaster_start_time",
    "patroni_master",
    "patroni_primary",
    "patroni_xlog_location",
    "patroni_standby_leader",
    "patroni_replica",
    "patroni_sync_standby",
    "patroni_quorum_standby",
    "patroni_xlog_received_location",
    "patroni_xlog_replayed_location",
    "patroni_xlog_replayed_timestamp",
    "patroni_xlog_paused",
    "patroni_postgres_streaming",
    "patroni_postgres_in_archive_recovery",
    "patroni_postgres_server_version",
    "patroni_cluster_unlocked",
    "patroni_failsafe_mode_is_active",
    "patroni_postgres_timeline",
    "patroni_dcs_last_seen",
    "patroni_pending_restart",
    "patroni_is_paused",
];

#[tokio::test]
async fn metrics_parse_and_carry_every_documented_metric() {
    let server = TestServer::start(primary()).await;
    let c = http();
    for status in [primary(), replica(1000), stopped_replica()] {
        let running = status.state == PostgresState::Running;
        server.publish(status);
        let r = c.get(server.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = r.text().await.unwrap();
        let lines: Vec<std::io::Result<String>> = text.lines().map(|l| Ok(l.to_owned())).collect();
        let scrape = prometheus_parse::Scrape::parse(lines.into_iter()).expect("parses");
        let names: Vec<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
        for m in DOCUMENTED_METRICS {
            // Streaming metrics only exist while PostgreSQL (9.6+) answers, as in Patroni.
            if !running && (m.starts_with("patroni_postgres_streaming") || m.contains("archive")) {
                continue;
            }
            assert!(names.contains(&m), "{m} missing in\n{text}");
            assert!(text.contains(&format!("# TYPE {m} ")), "{m} TYPE missing");
            assert!(text.contains(&format!("# HELP {m} ")), "{m} HELP missing");
        }
        for s in &scrape.samples {
            assert_eq!(s.labels.get("scope"), Some("demo"), "{}", s.metric);
        }
    }
    server.publish(primary());
    let text = c.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        "# HELP patroni_version Patroni semver without periods.",
        "patroni_version{scope=\"demo\",name=\"patroni1\"} 030100",
        "patroni_postgres_running{scope=\"demo\",name=\"patroni1\"} 1",
        "patroni_postmaster_start_time{scope=\"demo\",name=\"patroni1\"} 1692356617.966359",
        "patroni_primary{scope=\"demo\",name=\"patroni1\"} 1",
        "# TYPE patroni_xlog_location counter",
        "patroni_xlog_location{scope=\"demo\",name=\"patroni1\"} 67395656",
        "# HELP patroni_xlog_replayed_timestamp Current timestamp of the replayed Postgres transaction log, 0 if null.",
        "patroni_postgres_server_version{scope=\"demo\",name=\"patroni1\"} 150004",
        "patroni_cluster_unlocked{scope=\"demo\",name=\"patroni1\"} 0",
        "patroni_dcs_last_seen{scope=\"demo\",name=\"patroni1\"} 1692356718",
        "# HELP patroni_is_paused Value is 1 if auto failover is disabled, 0 otherwise.",
        "patroni_postgres_state{scope=\"demo\",name=\"patroni1\"} 5",
    ] {
        assert!(text.lines().any(|l| l == line), "missing line {line:?} in\n{text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn cluster_history_and_config_views() {
    let server = TestServer::start(primary()).await;
    let c = http();
    let v: Value = c.get(server.url("/cluster")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["scope"], "demo");
    assert_eq!(v["members"].as_array().unwrap().len(), 3);
    assert_eq!(v["members"][0]["role"], "leader");
    assert_eq!(v["members"][1]["state"], "streaming");
    assert_eq!(v["members"][1]["lag"], 656);
    let h: Value = c.get(server.url("/history")).send().await.unwrap().json().await.unwrap();
    assert_eq!(h, json!([[1, 25623960, "no recovery target specified", "2019-09-23T16:57:57+02:00"]]));
    let cfg: Value = c.get(server.url("/config")).send().await.unwrap().json().await.unwrap();
    assert_eq!(cfg["ttl"], 30);
    let mut no_dcs = primary();
    no_dcs.cluster = None;
    server.publish(no_dcs);
    assert_eq!(c.get(server.url("/config")).send().await.unwrap().status(), 502);
    assert_eq!(c.get(server.url("/cluster")).send().await.unwrap().status(), 503);
    assert_eq!(c.get(server.url("/failsafe")).send().await.unwrap().status(), 502);
    server.stop().await;
}

#[tokio::test]
async fn http_1_0_and_keep_alive_clients() {
    let server = TestServer::start(primary()).await;
    // HTTP/1.0 without Host: answered, then closed.
    let resp = raw(server.addr, b"GET /primary HTTP/1.0\r\n\r\n").await;
    assert!(status_line(&resp).starts_with("HTTP/1.0 200"), "{resp}");
    assert!(body_of(&resp).contains("\"role\": \"primary\""));
    // HAProxy-style OPTIONS check over HTTP/1.0.
    let resp = raw(server.addr, b"OPTIONS /replica HTTP/1.0\r\n\r\n").await;
    assert!(status_line(&resp).starts_with("HTTP/1.0 503"), "{resp}");
    // Two requests pipelined on one HTTP/1.1 connection, the second closing it.
    let resp = raw(
        server.addr,
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nHEAD /leader HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.matches("HTTP/1.1 200 OK").count(), 2, "{resp}");
    // A pooled client reuses its connection for many requests.
    let c = http();
    for _ in 0..20 {
        assert_eq!(c.get(server.url("/primary")).send().await.unwrap().status(), 200);
    }
    server.stop().await;
}

#[tokio::test]
async fn server_tokens_and_extra_headers() {
    let c = http();
    let server = TestServer::start(primary()).await;
    let r = c.get(server.url("/health")).send().await.unwrap();
    assert_eq!(r.headers()["server"], server::ORIGINAL_SERVER_HEADER);
    server.stop().await;

    let mut settings = ServerSettings::new("127.0.0.1:0");
    settings.server_tokens = Some("ProductOnly".into());
    settings.http_extra_headers = vec![("X-Frame-Options".into(), "SAMEORIGIN".into())];
    settings.https_extra_headers = vec![("Strict-Transport-Security".into(), "max-age=31536000".into())];
    let server = TestServer::start_with(primary(), settings.clone()).await;
    let r = c.get(server.url("/patroni")).send().await.unwrap();
    assert_eq!(r.headers()["server"], "Patroni");
    assert_eq!(r.headers()["x-frame-options"], "SAMEORIGIN");
    // https_extra_headers only apply with TLS.
    assert!(r.headers().get("strict-transport-security").is_none());
    let r = c.head(server.url("/replica")).send().await.unwrap();
    assert_eq!(r.headers()["x-frame-options"], "SAMEORIGIN");

    settings.server_tokens = Some("Minimal".into());
    server.handle.reload(&settings).await.unwrap();
    let r = c.get(server.url("/patroni")).send().await.unwrap();
    assert_eq!(r.headers()["server"], "Patroni/3.1.0");
    server.stop().await;

    let mut bad = ServerSettings::new("127.0.0.1:0");
    bad.http_extra_headers = vec![("Bad Header".into(), "x".into())];
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(primary()));
    let err = ApiServer::bind(&bad, rx, Arc::new(RecordingControl::new())).await.err().unwrap();
    assert!(err.to_string().contains("http_extra_headers"), "{err}");
}

#[tokio::test]
async fn bind_errors_name_the_setting() {
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(primary()));
    let err = ApiServer::bind(&ServerSettings::new("nonsense"), rx.clone(), Arc::new(RecordingControl::new()))
        .await
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "Invalid \"restapi\" config: expected <HOST>:<PORT> for \"listen\", but got \"nonsense\""
    );
    let taken = TestServer::start(primary()).await;
    let err = ApiServer::bind(&ServerSettings::new(taken.addr.to_string()), rx, Arc::new(RecordingControl::new()))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("Couldn't start a service on"), "{err}");
    taken.stop().await;
}

#[tokio::test]
async fn listens_on_any_address_and_ipv6() {
    let c = http();
    // `*` binds every address (dual-stack where the host has IPv6).
    let any = TestServer::start_with(primary(), ServerSettings::new("*:0")).await;
    let port = any.addr.port();
    let r = c.get(format!("http://127.0.0.1:{port}/primary")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    any.stop().await;
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback: IPv6 case skipped");
        return;
    }
    let v6 = TestServer::start_with(primary(), ServerSettings::new("[::1]:0")).await;
    let r = c.get(format!("http://[::1]:{}/primary", v6.addr.port())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    v6.stop().await;
}

/// `GET /patroni` shows the WAL positions PostgreSQL reports at request time (racing members compare them), falls
/// back to the loop's snapshot when they are not available quickly or PostgreSQL changed role meanwhile, and never
/// asks a PostgreSQL that is not running. Health checks keep answering from the snapshot.
#[tokio::test]
async fn patroni_endpoint_reads_fresh_wal_positions() {
    let server = TestServer::start(replica(0)).await;
    let http = http();
    let received = |v: &Value| v["xlog"]["received_location"].as_u64();
    let get = |path: &'static str| {
        let (http, url) = (http.clone(), server.url(path));
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let snapshot = received(&get("/patroni").await.1);

    let fresh = Xlog::Replica {
        received_location: 99_000_000,
        replayed_location: 98_000_000,
        replayed_timestamp: None,
        paused: false,
    };
    server.control.0.lock().unwrap().fresh_xlog = Some(fresh);
    let (code, v) = get("/patroni").await;
    assert_eq!(code, 200);
    assert_eq!(received(&v), Some(99_000_000), "{v}");
    assert_eq!(v["xlog"]["replayed_location"], 98_000_000);
    assert_eq!(received(&get("/replica").await.1), snapshot, "health checks answer from the snapshot");

    // Promoted meanwhile: the loop publishes the new role; until then the snapshot stands.
    server.control.0.lock().unwrap().fresh_xlog = Some(Xlog::Primary { location: 1 });
    assert_eq!(received(&get("/patroni").await.1), snapshot);

    // PostgreSQL hangs: the answer comes from the snapshot, promptly.
    server.control.0.lock().unwrap().hang_fresh_xlog = true;
    let asked = std::time::Instant::now();
    assert_eq!(received(&get("/patroni").await.1), snapshot);
    assert!(asked.elapsed() < Duration::from_secs(5), "waited {:?}", asked.elapsed());

    // Not running: PostgreSQL is not asked at all.
    let mut stopped = replica(0);
    stopped.state = PostgresState::Stopped;
    stopped.postgres = None;
    server.publish(stopped);
    let before = server.control.calls().iter().filter(|c| *c == "fresh_xlog").count();
    assert_eq!(get("/patroni").await.1["state"], "stopped");
    let after = server.control.calls().iter().filter(|c| *c == "fresh_xlog").count();
    assert_eq!(before, after, "a stopped PostgreSQL is not queried");
    server.stop().await;
}
