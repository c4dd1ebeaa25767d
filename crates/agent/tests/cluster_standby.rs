//! Standby clusters (#18): a primary cluster and a standby cluster with its own scope on the same etcd. The
//! standby cluster's leader follows the remote primary as the standby leader, its other member cascades from it,
//! a switchover and a failover move the role inside it, and nothing there accepts writes until `standby_cluster`
//! is removed from its configuration, which promotes it on purpose.

mod common;

use common::{name, Cluster, Options, POLL, START_TIMEOUT, WAIT};
use nix::sys::signal::Signal;
use patroni_testkit::wait_until;
use serde_json::json;

const STANDBY_SCOPE: &str = "standby";
const STANDBY_LEADER_KEY: &str = "/service/standby/leader";

/// The standby cluster's members follow the remote `host:port` (the primary cluster's only member).
fn standby_options(c: &Cluster) -> Options {
    Options {
        scope: Some(STANDBY_SCOPE.into()),
        dcs_extra: vec![format!("standby_cluster: {{host: 127.0.0.1, port: {}}}", c.pg_port(0))],
        ..Options::default()
    }
}

/// Waits until `member` holds the standby cluster's key and answers `GET /standby-leader` 200 (and `/primary`
/// 503).
async fn wait_standby_leader(c: &Cluster, member: usize) {
    let ok = wait_until(START_TIMEOUT, POLL, || async {
        c.etcd.get(STANDBY_LEADER_KEY).await.ok().flatten().as_deref() == Some(name(member).as_str())
            && c.status(member, "/standby-leader").await == Some(200)
            && c.status(member, "/primary").await == Some(503)
    })
    .await;
    if ok.is_err() {
        c.dump_dcs().await;
        c.dump("no standby leader");
        panic!("{} did not become the standby leader", name(member));
    }
}

/// The standby cluster's key holder, once there is one.
async fn standby_leader(c: &Cluster) -> usize {
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    loop {
        if let Some(leader) = c.etcd.get(STANDBY_LEADER_KEY).await.ok().flatten() {
            if let Some(i) = (1..c.nodes.len()).find(|&i| name(i) == leader) {
                return i;
            }
        }
        if std::time::Instant::now() >= deadline {
            c.dump("no standby leader key");
            panic!("the standby cluster has no leader key");
        }
        tokio::time::sleep(POLL).await;
    }
}

fn assert_read_only(results: &[(usize, bool)]) {
    for (i, writable) in results {
        assert!(!writable, "{} accepts writes in a standby cluster", name(*i));
    }
}

async fn read_only(c: &Cluster, members: &[usize]) -> Vec<(usize, bool)> {
    let mut out = Vec::new();
    for &i in members {
        out.push((i, c.writable(i).await));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_cluster_follows_moves_its_leader_inside_and_is_promoted_on_purpose() {
    let mut c = Cluster::start(Options { members: 1, ..Options::default() }).await;
    let o = standby_options(&c);
    for i in 1..3 {
        let agent = c.spawn(i, &o);
        c.nodes.push(agent);
    }
    // Bootstrap: the winner of the initialize race clones the remote primary; the other clones from it.
    let first = standby_leader(&c).await;
    let other = if first == 1 { 2 } else { 1 };
    wait_standby_leader(&c, first).await;
    c.wait_streaming(&[other], first, START_TIMEOUT).await;
    c.insert(0, "a").await;
    c.wait_row(first, "a", WAIT).await;
    c.wait_row(other, "a", WAIT).await;
    assert_read_only(&read_only(&c, &[first, other]).await);
    let (_, member) = c.node(first).get("/patroni").await.expect("GET /patroni");
    assert!(
        member.contains("\"role\": \"standby_leader\"") || member.contains("\"role\":\"standby_leader\""),
        "{member}"
    );

    // Switchover inside the standby cluster: the role moves, the former standby leader follows the new one.
    let body = json!({"leader": name(first), "candidate": name(other)});
    let (code, text) =
        c.node(first).request(reqwest::Method::POST, "/switchover", Some(&body)).await.expect("POST /switchover");
    assert_eq!(code, 200, "switchover: {text}");
    wait_standby_leader(&c, other).await;
    c.wait_streaming(&[first], other, START_TIMEOUT).await;
    c.insert(0, "b").await;
    c.wait_row(other, "b", WAIT).await;
    c.wait_row(first, "b", WAIT).await;
    assert_read_only(&read_only(&c, &[first, other]).await);

    // Failover: the standby leader dies with its agent; the survivor takes the role and follows the remote.
    c.nodes[other].kill(Signal::SIGKILL).expect("kill agent");
    c.pg_stop_immediate(other);
    wait_standby_leader(&c, first).await;
    c.insert(0, "c").await;
    c.wait_row(first, "c", WAIT).await;
    assert_read_only(&read_only(&c, &[first]).await);

    // Promotion on purpose: removing standby_cluster makes the standby leader a primary that accepts writes.
    let patch = json!({"standby_cluster": null});
    let (code, text) =
        c.node(first).request(reqwest::Method::PATCH, "/config", Some(&patch)).await.expect("PATCH /config");
    assert_eq!(code, 200, "PATCH /config: {text}");
    let ok =
        wait_until(WAIT, POLL, || async { c.status(first, "/primary").await == Some(200) && c.writable(first).await })
            .await;
    if ok.is_err() {
        c.dump("not promoted");
        panic!("{} was not promoted after standby_cluster was removed", name(first));
    }
    c.insert(first, "written-while-promoted").await;

    // Demotion: standby_cluster added back turns this primary into the standby leader of the remote primary again,
    // rewound onto its history (the write made while promoted is gone).
    let (code, text) = c
        .node(first)
        .request(
            reqwest::Method::PATCH,
            "/config",
            Some(&json!({"standby_cluster": {"host": "127.0.0.1", "port": c.pg_port(0)}})),
        )
        .await
        .expect("PATCH /config");
    assert_eq!(code, 200, "PATCH /config: {text}");
    wait_standby_leader(&c, first).await;
    c.insert(0, "d").await;
    c.wait_row(first, "d", WAIT).await;
    let rows = c.sql(first, "SELECT count(*) FROM t WHERE v = 'written-while-promoted'").await.expect("count");
    assert_eq!(rows[0][0].as_deref(), Some("0"), "the demoted cluster kept a write the remote never had");
    assert_read_only(&read_only(&c, &[first]).await);

    // Restarted while the DCS is down, the standby leader stays in recovery: standby_cluster comes from
    // patroni.dynamic.json.
    c.nodes[first].kill(Signal::SIGKILL).expect("kill agent");
    c.etcd.stop().await.expect("etcd stops");
    c.nodes[first].restart().expect("agent restarts");
    c.nodes[first].wait_for_log("DCS is not accessible", WAIT).await.expect("agent runs without the DCS");
    let rows = c.sql(first, "SELECT pg_is_in_recovery()").await.expect("in recovery?");
    assert_eq!(rows[0][0].as_deref(), Some("t"), "{} left recovery without the DCS", name(first));
    assert_read_only(&read_only(&c, &[first]).await);
    c.etcd.start_again().await.expect("etcd starts again");
}
