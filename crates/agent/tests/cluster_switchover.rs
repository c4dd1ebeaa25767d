//! Issue #5 on real 3-member clusters: switchover through the REST API, immediate and scheduled.

mod common;

use std::time::{Duration, Instant};

use common::{name, Cluster, Options, POLL, START_TIMEOUT, WAIT};
use reqwest::Method;
use serde_json::json;

/// POST /switchover to a named candidate: 200 with Patroni's text, the candidate is the primary and the old
/// leader streams from it; then to "any" (no candidate): some other member takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_to_a_named_candidate_and_to_any() {
    let callbacks = "callbacks: {on_start: \"true\", on_stop: \"true\", on_role_change: \"true\"}";
    let c = Cluster::start(Options { postgresql_extra: vec![callbacks.into()], ..Options::default() }).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let x = (0..3).find(|r| *r != p).unwrap();
    let body = json!({"leader": name(p), "candidate": name(x)});
    let (code, text) = c.node(p).request(Method::POST, "/switchover", Some(&body)).await.unwrap();
    if code != 200 {
        c.dump("switchover refused");
    }
    assert_eq!(code, 200, "switchover answered {code}: {text}");
    assert_eq!(text.trim(), format!("Successfully switched over to \"{}\"", name(x)));
    let np = c.wait_primary(WAIT, &[p]).await;
    assert_eq!(np, x, "the named candidate is the primary");
    c.insert(x, "after-named").await;
    let others: Vec<usize> = (0..3).filter(|r| *r != x).collect();
    c.wait_streaming(&others, x, START_TIMEOUT).await;
    for r in &others {
        c.wait_row(*r, "after-named", WAIT).await;
    }
    assert_eq!(c.etcd.get("/service/demo/failover").await.unwrap(), None, "the failover key is cleared");
    // The old primary stepped down as Patroni reports it: on_stop as primary, then on_role_change to replica (a
    // role change, not a plain on_start); the new one reports on_role_change to primary.
    let calls = |i: usize| -> Vec<String> {
        c.node(i)
            .log()
            .lines()
            .filter_map(|l| l.split_once("calling callback: true ").map(|(_, call)| call.to_string()))
            .collect()
    };
    let old = calls(p);
    let stop = old.iter().position(|l| l == "on_stop primary demo");
    let change = old.iter().position(|l| l == "on_role_change replica demo");
    assert!(stop.is_some() && change > stop, "{} callbacks: {old:?}", name(p));
    let between = &old[stop.unwrap_or(0)..change.unwrap_or(0)];
    assert!(!between.iter().any(|l| l.starts_with("on_start")), "{old:?}");
    assert!(calls(x).contains(&"on_role_change primary demo".to_string()), "{}: {:?}", name(x), calls(x));

    // To any member: asked on a replica this time (any member may take the request).
    let asked = others[0];
    let body = json!({"leader": name(x)});
    let (code, text) = c.node(asked).request(Method::POST, "/switchover", Some(&body)).await.unwrap();
    assert_eq!(code, 200, "switchover to any answered {code}: {text}");
    assert!(text.starts_with("Successfully switched over to "), "{text}");
    let np = c.wait_primary(WAIT, &[x]).await;
    assert_ne!(np, x);
    assert_eq!(text.trim(), format!("Successfully switched over to \"{}\"", name(np)));
    c.insert(np, "after-any").await;
    let others: Vec<usize> = (0..3).filter(|r| *r != np).collect();
    c.wait_streaming(&others, np, START_TIMEOUT).await;
    for r in &others {
        c.wait_row(*r, "after-any", WAIT).await;
    }
    // Replicas follow a new leader the moment its key appears; the slots they stream through were there already
    // (a missing one costs each replica a failed start and wal_retrieve_retry_interval, 5 s, before it retries).
    for i in 0..3 {
        let log = c.node(i).log();
        let missing = log.lines().find(|l| l.contains("replication slot") && l.contains("does not exist"));
        assert_eq!(missing, None, "{} hit a missing replication slot", name(i));
    }
}

/// A switchover scheduled a few seconds ahead (ISO 8601 with an offset) is accepted with 202 and happens after
/// that time, not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_switchover_happens_after_the_time() {
    let c = Cluster::start(Options::default()).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let x = (0..3).find(|r| *r != p).unwrap();
    // Scheduled, then cancelled (DELETE /switchover): the failover key goes away and nothing happens.
    let far = chrono::Local::now().fixed_offset() + chrono::Duration::hours(1);
    let body = json!({"leader": name(p), "candidate": name(x),
        "scheduled_at": far.format("%Y-%m-%dT%H:%M:%S%:z").to_string()});
    let (code, text) = c.node(p).request(Method::POST, "/switchover", Some(&body)).await.unwrap();
    assert_eq!(code, 202, "scheduled switchover answered {code}: {text}");
    assert!(c.etcd.get("/service/demo/failover").await.unwrap().is_some());
    let (code, text) = c.node(x).request(Method::DELETE, "/switchover", None).await.unwrap();
    assert_eq!(code, 200, "DELETE /switchover answered {code}: {text}");
    assert_eq!(c.etcd.get("/service/demo/failover").await.unwrap(), None, "the cancelled switchover is gone");

    let delay = Duration::from_secs(10);
    let at = chrono::Local::now().fixed_offset() + chrono::Duration::from_std(delay).unwrap();
    let at_text = at.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string();
    let body = json!({"leader": name(p), "candidate": name(x), "scheduled_at": at_text});
    let (code, text) = c.node(p).request(Method::POST, "/switchover", Some(&body)).await.unwrap();
    assert_eq!(code, 202, "scheduled switchover answered {code}: {text}");
    assert!(text.contains("Switchover scheduled"), "{text}");
    let failover = c.etcd.get("/service/demo/failover").await.unwrap();
    assert!(failover.as_deref().is_some_and(|f| f.contains("scheduled_at")), "failover key: {failover:?}");

    // Before the time: nothing changes.
    let deadline = at - chrono::Duration::milliseconds(500);
    while chrono::Local::now().fixed_offset() < deadline {
        assert_eq!(c.leader().await.as_deref(), Some(name(p).as_str()), "switched over before {at_text}");
        tokio::time::sleep(POLL).await;
    }
    let started = Instant::now();
    let mut changed_at = None;
    while started.elapsed() < WAIT {
        if c.leader().await.as_deref() != Some(name(p).as_str()) {
            changed_at = Some(chrono::Local::now().fixed_offset());
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let Some(changed_at) = changed_at else {
        c.dump("scheduled switchover did not happen");
        panic!("no switchover within {WAIT:?} after {at_text}");
    };
    assert!(changed_at >= at, "the leader changed at {changed_at}, before {at}");
    let np = c.wait_primary(WAIT, &[p]).await;
    assert_eq!(np, x);
    c.wait_streaming(&[p], x, START_TIMEOUT).await;
    assert_eq!(c.etcd.get("/service/demo/failover").await.unwrap(), None, "the failover key is cleared");
}

/// A switchover to a candidate that cannot take over (its agent is dead) is refused by the leader after checking:
/// the answer is not a success, the leader stays primary and the failover key is cleared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_to_an_unhealthy_candidate_is_refused() {
    let mut c = Cluster::start(Options::default()).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let x = (0..3).find(|r| *r != p).unwrap();
    c.nodes[x].kill(nix::sys::signal::Signal::SIGKILL).unwrap();
    c.nodes[x].wait_exit(WAIT).await.unwrap();
    // x's PostgreSQL keeps running and its member key stays until the ttl: only asking it shows it is unfit.
    let body = json!({"leader": name(p), "candidate": name(x)});
    let (code, text) = c.node(p).request(Method::POST, "/switchover", Some(&body)).await.unwrap();
    assert_ne!(code, 200, "switchover to a dead candidate answered {code}: {text}");
    eprintln!("refused with {code}: {text}");
    wait(&c, "the failover key to be cleared", || async {
        c.etcd.get("/service/demo/failover").await.ok().flatten().is_none()
    })
    .await;
    assert_eq!(c.wait_primary(WAIT, &[]).await, p, "the leader stays");
    c.insert(p, "still-here").await;
}

async fn wait<F, Fut>(c: &Cluster, what: &str, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    if patroni_testkit::wait_until(WAIT, POLL, f).await.is_err() {
        c.dump(what);
        panic!("timed out after {WAIT:?} waiting for {what}");
    }
}

/// A switchover to a candidate lagging past `maximum_lag_on_failover` is refused by the leader after asking the
/// candidate: not a success, the leader stays and the failover key is cleared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_to_a_lagging_candidate_is_refused() {
    let o = Options { dcs_extra: vec!["maximum_lag_on_failover: 65536".into()], ..Options::default() };
    let c = Cluster::start(o).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let x = (0..3).find(|r| *r != p).unwrap();
    c.sql(x, "ALTER SYSTEM SET primary_conninfo = ''").await.unwrap();
    c.sql(x, "SELECT pg_reload_conf()").await.unwrap();
    wait(&c, "the candidate's walreceiver to stop", || async {
        matches!(c.sql(x, "SELECT count(*) FROM pg_stat_wal_receiver").await.as_deref(),
            Ok([row]) if row[0].as_deref() == Some("0"))
    })
    .await;
    c.sql(p, "CREATE TABLE big AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 20000) g").await.unwrap();

    let body = json!({"leader": name(p), "candidate": name(x)});
    let (code, text) = c.node(p).request(Method::POST, "/switchover", Some(&body)).await.unwrap();
    eprintln!("refused with {code}: {text}");
    assert_ne!(code, 200, "switchover to a lagging candidate answered {code}: {text}");
    wait(&c, "the failover key to be cleared", || async {
        c.etcd.get("/service/demo/failover").await.ok().flatten().is_none()
    })
    .await;
    assert_eq!(c.wait_primary(WAIT, &[]).await, p, "the leader stays");
    let in_recovery = c.sql(x, "SELECT pg_is_in_recovery()").await.unwrap();
    assert_eq!(in_recovery[0][0].as_deref(), Some("t"), "the lagging candidate was not promoted");
    let log = c.node(p).log();
    assert!(log.contains("exceeds maximum replication lag"), "the leader says why it refused");
}
