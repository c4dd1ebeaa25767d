//! Issue #5 on real 3-member clusters: pause (maintenance) mode.

mod common;

use std::time::{Duration, Instant};

use common::{name, Cluster, Options, LOOP_WAIT, POLL, RETRY_TIMEOUT, START_TIMEOUT, TTL, WAIT};
use reqwest::Method;
use serde_json::json;

async fn paused_everywhere(c: &Cluster, paused: bool) -> bool {
    for i in 0..c.nodes.len() {
        let Ok((200, body)) = c.node(i).get("/patroni").await else { return false };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if v["pause"].as_bool().unwrap_or(false) != paused {
            return false;
        }
    }
    true
}

/// Paused: a switchover to a named candidate still works, but a switchover to "any" is refused. PostgreSQL of the
/// primary stopped by hand (`pg_ctl stop -m immediate`) is left alone — stopped, its leader key released, no replica
/// promoted for longer than the ttl. Resumed: the members race and the cluster has a primary again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_means_no_failover_and_resume_recovers() {
    let mut c = Cluster::start(Options::default()).await;
    let first = c.wait_primary(WAIT, &[]).await;

    let (code, text) = c.node(first).request(Method::PATCH, "/config", Some(&json!({"pause": true}))).await.unwrap();
    assert_eq!(code, 200, "PATCH /config answered {code}: {text}");
    if patroni_testkit::wait_until(WAIT, POLL, || paused_everywhere(&c, true)).await.is_err() {
        c.dump("pause not seen");
        panic!("not every member reports pause within {WAIT:?}");
    }

    let body = json!({"leader": name(first)});
    let (code, text) = c.node(first).request(Method::POST, "/switchover", Some(&body)).await.unwrap();
    assert_eq!(code, 400, "switchover to any while paused answered {code}: {text}");
    let p = (0..3).find(|r| *r != first).unwrap();
    let body = json!({"leader": name(first), "candidate": name(p)});
    let (code, text) = c.node(first).request(Method::POST, "/switchover", Some(&body)).await.unwrap();
    if code != 200 {
        c.dump("switchover in pause refused");
    }
    assert_eq!(code, 200, "switchover to a named candidate while paused answered {code}: {text}");
    assert_eq!(c.wait_primary(WAIT, &[first]).await, p, "the named candidate took over while paused");
    let replicas: Vec<usize> = (0..3).filter(|r| *r != p).collect();
    c.insert(p, "paused-switchover").await;
    c.wait_streaming(&replicas, p, START_TIMEOUT).await;

    // Paused, losing the DCS for longer than retry_timeout does not demote the primary either.
    c.etcd.stop().await.unwrap();
    tokio::time::sleep(Duration::from_secs(RETRY_TIMEOUT + 2 * LOOP_WAIT)).await;
    assert!(c.writable(p).await, "the paused primary was demoted while etcd was away");
    c.etcd.start_again().await.unwrap();
    if patroni_testkit::wait_until(WAIT, POLL, || async { c.leader().await.as_deref() == Some(name(p).as_str()) })
        .await
        .is_err()
    {
        c.dump("leader lost after a DCS outage in pause");
        panic!("{} does not hold the leader key after etcd returned", name(p));
    }
    assert!(c.writable(p).await, "the paused primary still takes writes after etcd returned");

    // PostgreSQL of the paused primary stopped by hand: nothing restarts it, its member key says `stopped` and the
    // leader key goes (a key on a member without PostgreSQL would hide that the cluster has no primary), yet no
    // replica is promoted while paused.
    c.pg_stop_immediate(p);
    let stopped = || async {
        let key = c.etcd.get(&format!("/service/demo/members/{}", name(p))).await.ok().flatten().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&key).unwrap_or_default();
        v["state"] == "stopped" && c.leader().await.is_none()
    };
    if patroni_testkit::wait_until(WAIT, POLL, stopped).await.is_err() {
        c.dump("paused primary without PostgreSQL");
        panic!("{}: member key not `stopped` or the leader key not released", name(p));
    }
    assert!(c.node(p).log().contains("removed leader lock because postgres is not running"));
    let until = Instant::now() + Duration::from_secs(TTL + 5 * LOOP_WAIT);
    while Instant::now() < until {
        for &r in &replicas {
            if c.status(r, "/primary").await == Some(200) {
                c.dump("replica promoted in pause");
                panic!("{} was promoted while paused", name(r));
            }
        }
        tokio::time::sleep(POLL).await;
    }
    for &r in &replicas {
        let rows = c.sql(r, "SELECT pg_is_in_recovery()").await.unwrap();
        assert_eq!(rows[0][0].as_deref(), Some("t"), "{} still a replica", name(r));
    }
    assert!(c.postmaster_pid(p).is_none(), "PostgreSQL of the paused leader was not started by the agent");

    let (code, text) = c.node(p).request(Method::PATCH, "/config", Some(&json!({"pause": null}))).await.unwrap();
    assert_eq!(code, 200, "PATCH /config answered {code}: {text}");
    // Resumed, the members race for the free key; the old leader starts again as a replica first.
    let p = c.wait_primary(START_TIMEOUT, &[]).await;
    let replicas: Vec<usize> = (0..3).filter(|r| *r != p).collect();
    assert!(
        paused_everywhere(&c, false).await || {
            patroni_testkit::wait_until(WAIT, POLL, || paused_everywhere(&c, false)).await.is_ok()
        }
    );
    c.insert(p, "after-resume").await;
    c.wait_streaming(&replicas, p, START_TIMEOUT).await;
    for &r in &replicas {
        c.wait_row(r, "after-resume", WAIT).await;
    }
}

/// Paused, SIGTERM of the primary's agent leaves PostgreSQL running and does not release the leader key; the
/// agent started again adopts the running primary and keeps the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_in_pause_leaves_postgres_and_the_key() {
    let mut c = Cluster::start(Options::default()).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let (code, text) = c.node(p).request(Method::PATCH, "/config", Some(&json!({"pause": true}))).await.unwrap();
    assert_eq!(code, 200, "PATCH /config answered {code}: {text}");
    if patroni_testkit::wait_until(WAIT, POLL, || paused_everywhere(&c, true)).await.is_err() {
        c.dump("pause not seen");
        panic!("not every member reports pause within {WAIT:?}");
    }
    let pid = c.postmaster_pid(p);
    c.nodes[p].kill(nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = c.nodes[p].wait_exit(WAIT).await.unwrap();
    assert!(status.success(), "graceful stop exits 0, got {status}");
    assert_eq!(c.postmaster_pid(p), pid, "PostgreSQL left running");
    assert!(c.writable(p).await, "PostgreSQL still takes writes");
    assert_eq!(c.leader().await.as_deref(), Some(name(p).as_str()), "the leader key was not released");

    c.nodes[p].restart().unwrap();
    c.nodes[p].wait_for_api("/liveness", WAIT).await.unwrap();
    assert_eq!(c.wait_primary(WAIT, &[]).await, p);
    assert_eq!(c.postmaster_pid(p), pid, "the running primary was adopted, not restarted");
}
