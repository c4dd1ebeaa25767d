//! Issue #20 on real 3-member clusters over the other DCS backends (etcd's v2 API, ZooKeeper): node death, a
//! switchover through the REST API, and a primary whose agent froze longer than the TTL (its key expired, or its
//! ZooKeeper session did) demotes when it wakes and follows the new leader.

mod common;

use std::time::{Duration, Instant};

use common::{name, Backend, Cluster, Options, LOOP_WAIT, START_TIMEOUT, TTL, WAIT};
use nix::sys::signal::Signal;
use reqwest::Method;
use serde_json::json;

async fn survives_node_death_switchover_and_a_frozen_primary(dcs: Backend) {
    let mut c = Cluster::start(Options { dcs, ..Options::default() }).await;
    let p = c.wait_primary(WAIT, &[]).await;
    c.insert(p, "before").await;

    // Node death: agent and PostgreSQL gone; the key (or the session) expires, a replica takes over.
    c.nodes[p].kill(Signal::SIGKILL).unwrap();
    c.nodes[p].wait_exit(WAIT).await.unwrap();
    c.pg_stop_immediate(p);
    let died = Instant::now();
    let np = c.wait_primary(Duration::from_secs(TTL + LOOP_WAIT + 15), &[p]).await;
    eprintln!("{dcs:?}: new primary {} after {:?}", name(np), died.elapsed());
    c.insert(np, "after").await;
    c.nodes[p].restart().unwrap();
    c.wait_streaming(&[p], np, START_TIMEOUT).await;
    c.wait_row(p, "after", WAIT).await;

    // Switchover back to the old primary, once the leader lists it: the restarted member writes its key at the end
    // of its first cycle, which can come after its PostgreSQL already streams (a switchover to a member the leader
    // does not list is refused 412, by Patroni too).
    let listed = Instant::now();
    loop {
        let (_, cluster) = c.node(np).request(Method::GET, "/cluster", None).await.unwrap_or_default();
        let members = serde_json::from_str::<serde_json::Value>(&cluster).unwrap_or_default();
        let has = |m: &serde_json::Value| m["name"] == name(p) && m["state"] == "streaming";
        if members["members"].as_array().is_some_and(|ms| ms.iter().any(has)) {
            break;
        }
        assert!(listed.elapsed() < WAIT, "{} never listed {} as streaming: {cluster}", name(np), name(p));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let body = json!({"leader": name(np), "candidate": name(p)});
    let (code, text) = c.node(np).request(Method::POST, "/switchover", Some(&body)).await.unwrap();
    if code != 200 {
        c.dump("switchover refused");
    }
    assert_eq!(code, 200, "switchover answered {code}: {text}");
    assert_eq!(c.wait_primary(WAIT, &[np]).await, p, "the named candidate is the primary");

    // The primary's agent frozen past the TTL: another member takes over; woken up, the old one finds its key
    // gone and demotes rather than running a second primary.
    c.nodes[p].kill(Signal::SIGSTOP).unwrap();
    let frozen = Instant::now();
    let others: Vec<usize> = (0..3).filter(|r| *r != p).collect();
    let np = c.wait_primary_among(Duration::from_secs(TTL + LOOP_WAIT + 20), &others).await;
    eprintln!("{dcs:?}: {} took over from frozen {} after {:?}", name(np), name(p), frozen.elapsed());
    c.nodes[p].kill(Signal::SIGCONT).unwrap();
    c.wait_streaming(&[p], np, START_TIMEOUT).await;
    assert!(!c.writable(p).await, "the frozen primary must come back read-only");
    assert_eq!(c.primaries().await, vec![np], "one primary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_v2_cluster_survives_node_death_switchover_and_a_frozen_primary() {
    survives_node_death_switchover_and_a_frozen_primary(Backend::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_cluster_survives_node_death_switchover_and_a_frozen_primary() {
    survives_node_death_switchover_and_a_frozen_primary(Backend::ZooKeeper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhibitor_cluster_survives_node_death_switchover_and_a_frozen_primary() {
    survives_node_death_switchover_and_a_frozen_primary(Backend::Exhibitor).await;
}
