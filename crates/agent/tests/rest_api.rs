//! Issue #6 on a live 3-member cluster in synchronous mode (a primary, a sync standby, an async replica): every
//! health check answers GET, HEAD and OPTIONS with the documented code for each role, before and while the cluster
//! is paused; `/patroni`, `/cluster`, `/history`, `/config` and the health checks' bodies have the documented JSON
//! shapes; `/metrics` parses as Prometheus text with HELP and TYPE for every sample; the control endpoints refuse
//! bad requests with Patroni's texts and codes, and a scheduled switchover or restart can be cancelled.
//!
//! The expected codes and texts are the ones Python Patroni 4.1.5 gives for the same situations (crates/api tests
//! compare them with Python itself on fake nodes; this test proves the agent publishes the state that makes them
//! true on real PostgreSQL).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use common::{name, Cluster, Options, POLL, WAIT};
use patroni_testkit::wait_until;
use prometheus_parse::LineInfo;
use reqwest::Method;
use serde_json::{json, Value};

/// The three roles of a synchronous-mode cluster, by member index.
#[derive(Clone, Copy, Debug)]
struct Roles {
    primary: usize,
    sync: usize,
    asynchronous: usize,
}

impl Roles {
    /// Column of the expectation tables for member `i`.
    fn column(&self, i: usize) -> usize {
        if i == self.primary {
            0
        } else if i == self.sync {
            1
        } else {
            2
        }
    }

    /// Role and state of member `i` in `/cluster` (`patronictl list`) once the cluster has settled.
    fn listed_as(&self, i: usize) -> (&'static str, &'static str) {
        match self.column(i) {
            0 => ("leader", "running"),
            1 => ("sync_standby", "streaming"),
            _ => ("replica", "streaming"),
        }
    }
}

/// Health checks and the code each role answers: [primary, sync standby, async replica]. Every member carries the
/// tag `dc: east`, so tag filters are role-independent. Leader checks ignore tag filters, as in Patroni.
const HEALTH: &[(&str, [u16; 3])] = &[
    ("/", [200, 503, 503]),
    ("/primary", [200, 503, 503]),
    ("/leader", [200, 503, 503]),
    ("/read-write", [200, 503, 503]),
    ("/standby-leader", [503, 503, 503]),
    ("/standby_leader", [503, 503, 503]),
    ("/replica", [503, 200, 200]),
    ("/replica?lag=1MB", [503, 200, 200]),
    ("/replica?lag=16777216", [503, 200, 200]),
    ("/replica?replication_state=streaming", [503, 200, 200]),
    ("/replica?tag_dc=east", [503, 200, 200]),
    ("/replica?tag_dc=west", [503, 503, 503]),
    ("/replica?tag_rack=1", [503, 503, 503]),
    ("/primary?tag_dc=west", [200, 503, 503]),
    ("/read-only", [200, 200, 200]),
    ("/read-only?tag_dc=west", [503, 503, 503]),
    ("/synchronous", [503, 200, 503]),
    ("/sync", [503, 200, 503]),
    ("/quorum", [503, 503, 503]),
    ("/read-only-sync", [200, 200, 503]),
    ("/read-only-quorum", [200, 503, 503]),
    ("/asynchronous", [503, 503, 200]),
    ("/async", [503, 503, 200]),
    ("/async?lag=1MB", [503, 503, 200]),
    ("/health", [200, 200, 200]),
    ("/liveness", [200, 200, 200]),
    ("/readiness", [200, 200, 200]),
    ("/readiness?lag=1MB", [200, 200, 200]),
    ("/readiness?lag=1MB&mode=write", [200, 200, 200]),
];

fn options() -> Options {
    Options {
        dcs_extra: vec!["synchronous_mode: true".into()],
        // The predefined tags that are off are left out of what members publish, as Patroni does: `/patroni`
        // and `/cluster` show `{dc: east}` alone.
        tags: (0..3)
            .map(|_| Some("{dc: east, nofailover: false, clonefrom: false, nostream: false}".to_string()))
            .collect(),
        ..Options::default()
    }
}

async fn get_json(c: &Cluster, i: usize, path: &str) -> Option<Value> {
    match c.node(i).get(path).await {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// The roles, when the primary's `pg_stat_replication` shows one sync and one async standby and the standbys' own
/// `/patroni` agrees (the sync key and `synchronous_standby_names` have both caught up).
async fn current_roles(c: &Cluster, primary: usize) -> Option<Roles> {
    let replicas: Vec<usize> = (0..3).filter(|i| *i != primary).collect();
    let status = get_json(c, primary, "/patroni").await?;
    let rows = status["replication"].as_array().cloned().unwrap_or_default();
    let sync_of = |r: usize| {
        rows.iter()
            .find(|row| row["application_name"] == name(r).as_str())
            .and_then(|row| row["sync_state"].as_str().map(str::to_owned))
    };
    let (a, b) = (replicas[0], replicas[1]);
    let (sync, asynchronous) = match (sync_of(a).as_deref(), sync_of(b).as_deref()) {
        (Some("sync"), Some("async")) => (a, b),
        (Some("async"), Some("sync")) => (b, a),
        _ => return None,
    };
    let flag = |v: Option<Value>| v.and_then(|v| v["sync_standby"].as_bool()).unwrap_or(false);
    let agreed = flag(get_json(c, sync, "/patroni").await) && !flag(get_json(c, asynchronous, "/patroni").await);
    (agreed && c.status(sync, "/replica").await == Some(200)).then_some(Roles { primary, sync, asynchronous })
}

async fn wait_roles(c: &Cluster) -> Roles {
    let primary = c.wait_primary(WAIT, &[]).await;
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(roles) = current_roles(c, primary).await {
            return roles;
        }
        if Instant::now() >= deadline {
            c.dump_dcs().await;
            c.dump("sync roles never settled");
            panic!("no sync + async standby within {WAIT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until every member's `/cluster` shows each member in its role and state (leader running, standbys
/// streaming) and the pause state. A member serves the member keys it last read, and a replica writes its own key
/// at the end of its cycle, so a view can trail what `/patroni` already says by a loop or two, as in Patroni.
async fn wait_views(c: &Cluster, roles: Roles, paused: bool) {
    let expected = |v: &Value| {
        let members = v["members"].as_array().cloned().unwrap_or_default();
        let in_place = (0..3).all(|i| {
            let (role, state) = roles.listed_as(i);
            members.iter().any(|m| m["name"] == name(i).as_str() && m["role"] == role && m["state"] == state)
        });
        in_place && v.get("pause").and_then(Value::as_bool).unwrap_or(false) == paused
    };
    for i in 0..3 {
        let agreed =
            wait_until(WAIT, POLL, || async { get_json(c, i, "/cluster").await.is_some_and(|v| expected(&v)) });
        if agreed.await.is_err() {
            c.dump_dcs().await;
            c.dump("views never agreed");
            let last = get_json(c, i, "/cluster").await;
            panic!("{}'s /cluster never showed roles {roles:?} with pause={paused}: {last:?}", name(i));
        }
    }
}

/// Asks every member every health check with GET, HEAD and OPTIONS; returns the mismatches as readable lines.
async fn health_mismatches(c: &Cluster, roles: Roles) -> Vec<String> {
    let mut wrong = Vec::new();
    for i in 0..3 {
        let col = roles.column(i);
        for (path, want) in HEALTH {
            let want = want[col];
            for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
                match c.node(i).request(method.clone(), path, None).await {
                    Ok((code, body)) => {
                        if code != want {
                            wrong.push(format!("{method} {path} on {} ({col}): {code}, expected {want}", name(i)));
                        }
                        if method == Method::HEAD && !body.is_empty() {
                            wrong.push(format!("HEAD {path} on {} has a body", name(i)));
                        }
                        // Health checks answer with the member's status document (not for /liveness and
                        // /readiness, which have none in Patroni either).
                        let documented = !path.starts_with("/liveness") && !path.starts_with("/readiness");
                        if method == Method::GET && documented {
                            match serde_json::from_str::<Value>(&body) {
                                Ok(v) if v["patroni"]["name"] == name(i).as_str() => {}
                                _ => wrong.push(format!("GET {path} on {}: body is not its status: {body}", name(i))),
                            }
                        }
                    }
                    Err(e) => wrong.push(format!("{method} {path} on {}: {e}", name(i))),
                }
            }
        }
    }
    wrong
}

/// Waits (bounded) until the health table holds everywhere: right after a change (pause, a role change) a member
/// may answer from the previous loop's snapshot.
async fn assert_health_table(c: &Cluster, roles: Roles, when: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let wrong = health_mismatches(c, roles).await;
        if wrong.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            c.dump(&format!("health checks {when}"));
            panic!("health checks {when} ({roles:?}) differ from the documented codes:\n{}", wrong.join("\n"));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// `/patroni` has the documented keys for each role, and they agree with the cluster.
async fn assert_status_documents(c: &Cluster, roles: Roles, paused: bool) {
    let mut sysids = BTreeSet::new();
    for i in 0..3 {
        let v = get_json(c, i, "/patroni").await.unwrap_or_else(|| panic!("GET /patroni on {}", name(i)));
        let mut want = set(&[
            "state",
            "postmaster_start_time",
            "role",
            "server_version",
            "xlog",
            "timeline",
            "dcs_last_seen",
            "tags",
            "database_system_identifier",
            "patroni",
        ]);
        if paused {
            want.insert("pause".into());
        }
        if i == roles.primary {
            want.insert("replication".into());
        } else {
            want.insert("replication_state".into());
            // Only once the sender has reported its end position (a keepalive), as in Patroni.
            if v.get("latest_end_lsn").is_some() {
                want.insert("latest_end_lsn".into());
            }
        }
        if i == roles.sync {
            want.insert("sync_standby".into());
        }
        assert_eq!(keys(&v), want, "/patroni keys on {} ({roles:?}): {v}", name(i));
        assert_eq!(v["state"], "running");
        assert_eq!(v["patroni"]["scope"], "demo");
        assert_eq!(v["patroni"]["name"], name(i).as_str());
        assert_eq!(keys(&v["patroni"]), set(&["version", "scope", "name"]));
        assert_eq!(v["tags"], json!({"dc": "east"}));
        assert!(v["server_version"].as_u64().is_some_and(|s| (150000..160000).contains(&s)), "{v}");
        assert!(v["dcs_last_seen"].as_u64().is_some_and(|t| t > 1_600_000_000), "{v}");
        assert_eq!(v["timeline"], 1);
        // Python's str(datetime): `2023-08-18 11:03:37.966359+00:00`.
        let started = v["postmaster_start_time"].as_str().unwrap_or_default();
        assert!(chrono::DateTime::parse_from_str(started, "%Y-%m-%d %H:%M:%S%.f%:z").is_ok(), "{started}");
        sysids.insert(v["database_system_identifier"].as_str().unwrap_or_default().to_owned());
        if i == roles.primary {
            assert_eq!(v["role"], "primary");
            assert_eq!(keys(&v["xlog"]), set(&["location"]));
            let rows = v["replication"].as_array().cloned().unwrap_or_default();
            assert_eq!(rows.len(), 2, "{v}");
            let mut states = BTreeMap::new();
            for row in &rows {
                assert_eq!(
                    keys(row),
                    set(&["usename", "application_name", "client_addr", "state", "sync_state", "sync_priority"])
                );
                assert_eq!(row["usename"], "replicator");
                assert_eq!(row["client_addr"], "127.0.0.1");
                assert_eq!(row["state"], "streaming");
                assert!(row["sync_priority"].is_u64(), "{row}");
                states
                    .insert(row["application_name"].as_str().unwrap_or_default().to_owned(), row["sync_state"].clone());
            }
            assert_eq!(states.get(&name(roles.sync)), Some(&json!("sync")), "{v}");
            assert_eq!(states.get(&name(roles.asynchronous)), Some(&json!("async")), "{v}");
        } else {
            assert_eq!(v["role"], "replica");
            assert_eq!(
                keys(&v["xlog"]),
                set(&["received_location", "replayed_location", "replayed_timestamp", "paused"])
            );
            assert!(v["xlog"]["received_location"].as_u64().is_some_and(|l| l > 0), "{v}");
            assert_eq!(v["xlog"]["paused"], false);
            assert_eq!(v["replication_state"], "streaming");
            if let Some(lsn) = v.get("latest_end_lsn") {
                assert!(lsn.as_u64().is_some_and(|l| l > 0), "{v}");
            }
        }
    }
    assert_eq!(sysids.len(), 1, "one system identifier: {sysids:?}");
    assert!(sysids.iter().all(|s| s.len() >= 16 && s.chars().all(|c| c.is_ascii_digit())), "{sysids:?}");
}

/// `/cluster` as `patronictl list` reads it; `/history` as `patronictl history` reads it.
async fn assert_cluster_documents(c: &Cluster, roles: Roles, paused: bool) {
    for i in 0..3 {
        let v = get_json(c, i, "/cluster").await.unwrap_or_else(|| panic!("GET /cluster on {}", name(i)));
        let members = v["members"].as_array().cloned().unwrap_or_default();
        assert_eq!(members.len(), 3, "{v}");
        for m in &members {
            let n = m["name"].as_str().unwrap_or_default();
            let idx = (0..3).find(|j| name(*j) == n).unwrap_or_else(|| panic!("unknown member {n} in {v}"));
            let (role, state) = roles.listed_as(idx);
            assert_eq!(m["role"], role, "{v}");
            assert_eq!(m["state"], state, "{v}");
            assert_eq!(m["host"], "127.0.0.1");
            assert_eq!(m["port"], c.pg_port(idx));
            assert_eq!(m["timeline"], 1);
            assert_eq!(m["tags"], json!({"dc": "east"}), "{v}");
            assert_eq!(m["api_url"], format!("{}/patroni", c.node(idx).api_url()).as_str());
            if idx == roles.primary {
                assert!(m.get("lag").is_none(), "the leader has no lag: {m}");
            } else {
                // A number, or "unknown" while the member has not reported its positions yet.
                for key in ["lag", "receive_lag", "replay_lag", "lsn", "receive_lsn", "replay_lsn"] {
                    assert!(m.get(key).is_some(), "{key} missing: {m}");
                }
            }
        }
        assert_eq!(v["scope"], "demo", "{v}");
        assert_eq!(v.get("pause").and_then(Value::as_bool).unwrap_or(false), paused, "{v}");
        let history = get_json(c, i, "/history").await.unwrap_or_else(|| panic!("GET /history on {}", name(i)));
        assert_eq!(history, json!([]), "no failover yet, so no history");
    }
}

/// `/metrics` is Prometheus text: every line is a HELP, a TYPE or a sample a Prometheus parser accepts; every sample
/// has HELP and TYPE before it, labels `scope` and `name`; and the values say what this member is.
async fn assert_metrics(c: &Cluster, roles: Roles, paused: bool) {
    for i in 0..3 {
        let (code, text) = c.node(i).get("/metrics").await.expect("GET /metrics");
        assert_eq!(code, 200);
        let (mut helped, mut typed) = (BTreeSet::new(), BTreeSet::new());
        let mut values = BTreeMap::new();
        for line in text.lines() {
            match LineInfo::parse(line) {
                LineInfo::Doc { metric_name, .. } => {
                    helped.insert(metric_name.to_owned());
                }
                LineInfo::Type { metric_name, .. } => {
                    typed.insert(metric_name);
                }
                LineInfo::Sample { metric_name, labels, value, timestamp } => {
                    assert!(timestamp.is_none(), "{line}");
                    assert!(helped.contains(metric_name) && typed.contains(metric_name), "no HELP/TYPE before {line}");
                    let labels = labels.unwrap_or_default();
                    let want = format!("scope=\"demo\",name=\"{}\"", name(i));
                    assert!(labels.starts_with(&want), "labels of {line}");
                    let v: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
                    if labels == want {
                        values.insert(metric_name.to_owned(), v);
                    }
                }
                // A plain comment is valid text format (Patroni explains patroni_postgres_state's values in one).
                LineInfo::Ignored if line.starts_with("# ") => {}
                LineInfo::Empty | LineInfo::Ignored => panic!("not Prometheus text: {line:?} in\n{text}"),
            }
        }
        // The whole document through the parser's own scrape as well.
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("scrape parses");
        let sample_lines = text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count();
        assert_eq!(scrape.samples.len(), sample_lines, "the parser kept every sample");
        assert!(sample_lines >= 20, "{sample_lines} samples");
        let col = roles.column(i);
        let want: &[(&str, f64)] = &[
            ("patroni_postgres_running", 1.0),
            ("patroni_primary", if col == 0 { 1.0 } else { 0.0 }),
            ("patroni_master", if col == 0 { 1.0 } else { 0.0 }),
            ("patroni_replica", if col == 0 { 0.0 } else { 1.0 }),
            ("patroni_sync_standby", if col == 1 { 1.0 } else { 0.0 }),
            ("patroni_quorum_standby", 0.0),
            ("patroni_standby_leader", 0.0),
            ("patroni_postgres_streaming", if col == 0 { 0.0 } else { 1.0 }),
            ("patroni_postgres_in_archive_recovery", 0.0),
            ("patroni_cluster_unlocked", 0.0),
            ("patroni_failsafe_mode_is_active", 0.0),
            ("patroni_postgres_timeline", 1.0),
            ("patroni_pending_restart", 0.0),
            ("patroni_is_paused", if paused { 1.0 } else { 0.0 }),
            ("patroni_xlog_paused", 0.0),
        ];
        for (metric, value) in want {
            assert_eq!(values.get(*metric), Some(value), "{metric} on {} ({roles:?})\n{text}", name(i));
        }
        for metric in ["patroni_version", "patroni_postmaster_start_time", "patroni_dcs_last_seen"] {
            assert!(values.get(metric).is_some_and(|v| *v > 0.0), "{metric} on {}\n{text}", name(i));
        }
        let location = if col == 0 { "patroni_xlog_location" } else { "patroni_xlog_replayed_location" };
        assert!(values.get(location).is_some_and(|v| *v > 0.0), "{location} on {}\n{text}", name(i));
    }
}

async fn call(c: &Cluster, i: usize, method: Method, path: &str, body: Value) -> (u16, String) {
    c.node(i).request(method.clone(), path, Some(&body)).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Control requests the cluster must refuse (nothing changes) with Patroni's code and text, in synchronous mode.
async fn assert_refusals(c: &Cluster, roles: Roles, paused: bool) {
    let (p, s, a) = (name(roles.primary), name(roles.sync), name(roles.asynchronous));
    let mut table: Vec<(&str, Value, u16, &str)> = vec![
        // Patroni refuses an empty body before looking at it (send_error(400)).
        ("switchover", json!({}), 400, "Bad request: empty JSON object"),
        ("switchover", json!({"candidate": s}), 400, "Switchover could be performed only from a specific leader"),
        ("switchover", json!({"leader": p, "candidate": p}), 400, "Switchover target and source are the same"),
        ("switchover", json!({"leader": s, "candidate": a}), 412, "leader name does not match"),
        ("failover", json!({"leader": p}), 400, "Failover could be performed only to a specific candidate"),
        ("failover", json!({"candidate": "nobody"}), 412, "candidate does not exists"),
        (
            "failover",
            json!({"candidate": s, "scheduled_at": "2099-09-24T12:00+00"}),
            400,
            "Failover can't be scheduled",
        ),
        (
            "restart",
            json!({"role": "leader"}),
            400,
            "PostgreSQL role should be either primary, standby_leader, or replica",
        ),
        (
            "restart",
            json!({"postgres_version": "9.6"}),
            400,
            "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6",
        ),
        ("restart", json!({"postgres_version": "x.y"}), 400, "Invalid PostgreSQL version: x.y"),
        ("restart", json!({"timeout": 0}), 400, "Timeout should be a positive number of seconds"),
        ("restart", json!({"bogus": 1}), 400, "Unknown filter for the scheduled restart: bogus"),
    ];
    if paused {
        table.extend([
            (
                "switchover",
                json!({"leader": p}),
                400,
                "Switchover is possible only to a specific candidate in a paused state",
            ),
            (
                "switchover",
                json!({"leader": p, "scheduled_at": "2099-09-24T12:00+00"}),
                400,
                "Can't schedule switchover in the paused state",
            ),
            // Patroni refuses any scheduled restart in pause before it looks at the time.
            (
                "restart",
                json!({"schedule": "2099-01-01T00:00:00+00:00"}),
                500,
                "Can't schedule restart in the paused state",
            ),
            ("restart", json!({"schedule": "garbage"}), 500, "Can't schedule restart in the paused state"),
        ]);
    } else {
        table.extend([
            ("restart", json!({"schedule": "2001-01-01T00:00:00+00:00"}), 422, "Cannot schedule restart in the past"),
            (
                "restart",
                json!({"schedule": "2099-01-01T00:00:00"}),
                400,
                "Timezone information is mandatory for the scheduled restart",
            ),
            (
                "restart",
                json!({"schedule": "garbage"}),
                422,
                "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601",
            ),
            // Synchronous mode: only the sync standby may take over by switchover.
            (
                "switchover",
                json!({"leader": p, "candidate": a}),
                412,
                "candidate name does not match with sync_standby",
            ),
            (
                "switchover",
                json!({"leader": p, "candidate": "nobody"}),
                412,
                "candidate name does not match with sync_standby",
            ),
            ("failover", json!({"leader": p, "candidate": a}), 412, "candidate name does not match with sync_standby"),
            (
                "switchover",
                json!({"leader": p, "scheduled_at": "2019-09-24T12:00+00"}),
                422,
                "Cannot schedule switchover in the past",
            ),
            (
                "switchover",
                json!({"leader": p, "scheduled_at": "2099-09-24T12:00"}),
                400,
                "Timezone information is mandatory for the scheduled switchover",
            ),
            (
                "switchover",
                json!({"leader": p, "scheduled_at": "whenever"}),
                422,
                "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601",
            ),
        ]);
    }
    let mut wrong = Vec::new();
    // Every member validates the same way: a request may land on any of them.
    for i in 0..3 {
        for (endpoint, body, code, text) in &table {
            let (got, got_text) = call(c, i, Method::POST, &format!("/{endpoint}"), body.clone()).await;
            if (got, got_text.as_str()) != (*code, *text) {
                wrong.push(format!(
                    "POST /{endpoint} {body} on {}: {got} {got_text:?}, expected {code} {text:?}",
                    name(i)
                ));
            }
        }
    }
    // The leader does not reinitialize itself (Patroni's text); failsafe endpoints answer 502 while failsafe_mode
    // is off; a reload is accepted on every member.
    let (code, text) = call(c, roles.primary, Method::POST, "/reinitialize", json!({})).await;
    if (code, text.as_str()) != (503, "I am the leader, can not reinitialize") {
        wrong.push(format!("POST /reinitialize on the primary: {code} {text:?}"));
    }
    for i in 0..3 {
        let (code, _) = c.node(i).get("/failsafe").await.expect("GET /failsafe");
        if code != 502 {
            wrong.push(format!("GET /failsafe on {} with failsafe_mode off: {code}", name(i)));
        }
        let (code, _) = call(c, i, Method::POST, "/failsafe", json!({"name": p})).await;
        if code != 502 {
            wrong.push(format!("POST /failsafe on {} with failsafe_mode off: {code}", name(i)));
        }
        let (code, text) = call(c, i, Method::POST, "/reload", json!({})).await;
        if (code, text.as_str()) != (202, "reload scheduled") {
            wrong.push(format!("POST /reload on {}: {code} {text:?}", name(i)));
        }
    }
    assert!(wrong.is_empty(), "refusals differ from Patroni's:\n{}", wrong.join("\n"));
    assert_eq!(c.leader().await.as_deref(), Some(p.as_str()), "a refused request moved the leader");
}

/// Scheduling and cancelling: a switchover in the far future is accepted (202), stored in the failover key, and
/// `DELETE /switchover` removes it; a scheduled restart likewise with `DELETE /restart`.
async fn assert_schedule_and_cancel(c: &Cluster, roles: Roles) {
    let p = name(roles.primary);
    let body = json!({"leader": p, "candidate": name(roles.sync), "scheduled_at": "2099-09-24T12:00:00+02:00"});
    assert_eq!(call(c, roles.primary, Method::POST, "/switchover", body).await, (202, "Switchover scheduled".into()));
    let key = c.etcd.get("/service/demo/failover").await.expect("etcd").expect("failover key written");
    let failover: Value = serde_json::from_str(&key).expect("failover key is JSON");
    assert_eq!(failover["leader"], p.as_str(), "{failover}");
    assert_eq!(failover["scheduled_at"], "2099-09-24T12:00:00+02:00", "{failover}");
    let (code, text) = call(c, roles.sync, Method::DELETE, "/switchover", json!({})).await;
    assert_eq!((code, text.as_str()), (200, "scheduled switchover deleted"));
    assert_eq!(c.etcd.get("/service/demo/failover").await.expect("etcd"), None, "failover key removed");
    let (code, text) = call(c, roles.primary, Method::DELETE, "/switchover", json!({})).await;
    assert_eq!((code, text.as_str()), (404, "no switchover is scheduled"));

    for i in [roles.primary, roles.asynchronous] {
        let body = json!({"schedule": "2099-01-01T00:00:00+00:00"});
        assert_eq!(call(c, i, Method::POST, "/restart", body).await, (202, "Restart scheduled".into()));
        let status = get_json(c, i, "/patroni").await.expect("/patroni");
        assert_eq!(status["scheduled_restart"]["schedule"], "2099-01-01T00:00:00+00:00", "{status}");
        let (code, text) = call(c, i, Method::DELETE, "/restart", json!({})).await;
        assert_eq!((code, text.as_str()), (200, "scheduled restart deleted"));
        let (code, text) = call(c, i, Method::DELETE, "/restart", json!({})).await;
        assert_eq!((code, text.as_str()), (404, "no restarts are scheduled"));
    }
    assert_eq!(c.leader().await.as_deref(), Some(p.as_str()));
}

/// `PATCH /config` merges (null removes), `GET /config` on every member shows the result, `PUT` replaces.
async fn assert_config_round_trip(c: &Cluster, roles: Roles) {
    let before = get_json(c, roles.sync, "/config").await.expect("GET /config");
    assert_eq!(before["synchronous_mode"], true, "{before}");
    assert_eq!(before["ttl"], common::TTL);

    let patch = json!({"postgresql": {"parameters": {"work_mem": "8MB"}}, "maximum_lag_on_failover": 2097152});
    let (code, text) = call(c, roles.asynchronous, Method::PATCH, "/config", patch).await;
    assert_eq!(code, 200, "{text}");
    let answered: Value = serde_json::from_str(&text).expect("PATCH answers the new config");
    assert_eq!(answered["postgresql"]["parameters"]["work_mem"], "8MB");
    assert_eq!(answered["postgresql"]["parameters"]["wal_log_hints"], "on", "merge keeps siblings: {answered}");
    // Like Patroni, a member answers GET /config from the cluster it last read, so it may lag by one loop.
    for i in 0..3 {
        let seen = wait_until(WAIT, POLL, || async { get_json(c, i, "/config").await.as_ref() == Some(&answered) });
        assert!(seen.await.is_ok(), "GET /config on {} never showed {answered}", name(i));
    }

    let remove = json!({"postgresql": {"parameters": {"work_mem": null}}, "maximum_lag_on_failover": null});
    let (code, text) = call(c, roles.primary, Method::PATCH, "/config", remove).await;
    assert_eq!(code, 200, "{text}");
    let answered: Value = serde_json::from_str(&text).expect("JSON");
    assert!(answered["postgresql"]["parameters"].get("work_mem").is_none(), "null removes: {answered}");
    assert!(answered.get("maximum_lag_on_failover").is_none(), "null removes: {answered}");

    let (code, text) = call(c, roles.sync, Method::PUT, "/config", before.clone()).await;
    assert_eq!(code, 200, "{text}");
    let replaced =
        wait_until(WAIT, POLL, || async { get_json(c, roles.primary, "/config").await == Some(before.clone()) });
    assert!(replaced.await.is_ok(), "PUT replaced it all: {before}");

    // As Patroni: no Content-Length is 411, a body that is not a JSON object is 400; nothing is written.
    let (code, _) = c.node(roles.primary).request(Method::PATCH, "/config", None).await.expect("PATCH");
    assert_eq!(code, 411, "PATCH /config without a body");
    let http = reqwest::Client::new();
    for bad in ["{not json", "[1, 2]", "\"pause\""] {
        let url = format!("{}/config", c.node(roles.primary).api_url());
        let response = http.patch(&url).body(bad).send().await.expect("PATCH");
        assert_eq!(response.status().as_u16(), 400, "PATCH /config with {bad}");
    }
    assert_eq!(get_json(c, roles.primary, "/config").await, Some(before), "refused patches changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_as_documented_on_a_live_sync_cluster() {
    let c = Cluster::start(options()).await;
    let roles = wait_roles(&c).await;
    eprintln!("roles: {roles:?}");
    wait_views(&c, roles, false).await;
    assert_health_table(&c, roles, "in synchronous mode").await;
    assert_status_documents(&c, roles, false).await;
    assert_cluster_documents(&c, roles, false).await;
    assert_metrics(&c, roles, false).await;
    assert_refusals(&c, roles, false).await;
    assert_schedule_and_cancel(&c, roles).await;
    assert_config_round_trip(&c, roles).await;

    // Paused: the same health answers (Patroni changes nothing there), `pause` everywhere, and the pause-mode
    // refusals.
    let (code, text) = call(&c, roles.primary, Method::PATCH, "/config", json!({"pause": true})).await;
    assert_eq!(code, 200, "{text}");
    let paused = wait_until(WAIT, POLL, || async {
        let mut all = true;
        for i in 0..3 {
            all &= get_json(&c, i, "/patroni").await.is_some_and(|v| v["pause"] == true);
        }
        all
    })
    .await;
    assert!(paused.is_ok(), "every member reports pause");
    wait_views(&c, roles, true).await;
    assert_health_table(&c, roles, "while paused").await;
    assert_status_documents(&c, roles, true).await;
    assert_cluster_documents(&c, roles, true).await;
    assert_metrics(&c, roles, true).await;
    assert_refusals(&c, roles, true).await;
}
