//! Quorum commit (`synchronous_mode: quorum`) on real clusters of 3 and 4 members, under write load: the `sync`
//! key and `synchronous_standby_names = ANY k (…)` agree on the voters, and when the primary dies in the middle of
//! a stream of commits, the member that takes over has every row whose COMMIT had returned.
//!
//! The resolver's transitions and the leader race's quorum rule are unit- and simulation-tested in `crates/ha`;
//! these tests prove the promise a DBA relies on, end to end: an acknowledged commit survives a failover.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{name, Cluster, Options, LOOP_WAIT, POLL, START_TIMEOUT, TTL, WAIT};
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio_postgres::NoTls;

const SYNC_KEY: &str = "/service/demo/sync";

/// The `sync` key as Patroni writes it in quorum mode: (leader, voters, quorum).
async fn sync_key(c: &Cluster) -> Option<(String, BTreeSet<String>, u64)> {
    let text = c.etcd.get(SYNC_KEY).await.ok().flatten()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let leader = v["leader"].as_str()?.to_owned();
    let voters = v["sync_standby"].as_str().unwrap_or("").split(',').filter(|n| !n.is_empty()).map(str::to_owned);
    Some((leader, voters.collect(), v["quorum"].as_u64()?))
}

/// `SHOW synchronous_standby_names` on member `i`.
async fn ssn(c: &Cluster, i: usize) -> Option<String> {
    c.sql(i, "SHOW synchronous_standby_names").await.ok()?.first()?.first()?.clone()
}

/// Streaming standbys that `pg_stat_replication` on `primary` shows with `sync_state = 'quorum'`.
async fn quorum_states(c: &Cluster, primary: usize) -> BTreeSet<String> {
    let sql = "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = 'quorum'";
    c.sql(primary, sql).await.unwrap_or_default().into_iter().filter_map(|r| r[0].clone()).collect()
}

/// Waits until the `sync` key names `primary` as leader with `voters` and quorum `voters - k`, PostgreSQL on the
/// primary waits for `ANY k` of exactly them, and every voter streams as a quorum standby.
async fn wait_quorum(c: &Cluster, primary: usize, voters: &[usize], k: usize) {
    let want: BTreeSet<String> = voters.iter().map(|i| name(*i)).collect();
    let want_ssn = format!("ANY {k} ({})", want.iter().cloned().collect::<Vec<_>>().join(","));
    let want_quorum = (voters.len() - k) as u64;
    let deadline = Instant::now() + WAIT;
    loop {
        let key = sync_key(c).await;
        let names = ssn(c, primary).await;
        let states = quorum_states(c, primary).await;
        let key_ok = key.as_ref().is_some_and(|(l, v, q)| *l == name(primary) && *v == want && *q == want_quorum);
        if key_ok && names.as_deref() == Some(want_ssn.as_str()) && states == want {
            return;
        }
        if Instant::now() >= deadline {
            c.dump_dcs().await;
            c.dump("quorum never settled");
            panic!(
                "no settled quorum on {} within {WAIT:?}: want key ({want:?}, quorum {want_quorum}) and {want_ssn:?}; \
                 have key {key:?}, synchronous_standby_names {names:?}, quorum standbys {states:?}",
                name(primary)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A writer on its own connection to member `i`: one row per transaction (`w-0`, `w-1`, …), each value recorded
/// once its COMMIT has returned, until a statement fails (the primary died) or `stop` is set.
fn start_writer(c: &Cluster, i: usize, acked: Arc<Mutex<Vec<String>>>) -> tokio::task::JoinHandle<Option<String>> {
    let connstr = format!(
        "host=127.0.0.1 port={} user=postgres password={} dbname=postgres connect_timeout=3",
        c.pg_port(i),
        patroni_testkit::SUPERUSER_PASSWORD
    );
    tokio::spawn(async move {
        let (client, connection) = match tokio_postgres::connect(&connstr, NoTls).await {
            Ok(pair) => pair,
            Err(e) => return Some(format!("connect: {e}")),
        };
        tokio::spawn(async move {
            let _ = connection.await;
        });
        for n in 0.. {
            let value = format!("w-{n}");
            match client.simple_query(&format!("INSERT INTO t VALUES ('{value}')")).await {
                Ok(_) => acked.lock().expect("writer list").push(value),
                Err(e) => return Some(e.to_string()),
            }
        }
        None
    })
}

fn quorum_options(members: usize, k: usize) -> Options {
    Options {
        members,
        dcs_extra: vec!["synchronous_mode: quorum".into(), format!("synchronous_node_count: {k}")],
        ..Options::default()
    }
}

/// The scenario for `members` members waiting for `k` of the others: settle, write continuously, kill the primary
/// (agent SIGKILLed, PostgreSQL stopped immediately) mid-stream, and check the new primary has every acknowledged
/// row; then the survivors form a new quorum and writes succeed again.
async fn primary_dies_under_write_load(members: usize, k: usize) {
    let mut c = Cluster::start(quorum_options(members, k)).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let others: Vec<usize> = (0..members).filter(|i| *i != p).collect();
    wait_quorum(&c, p, &others, k).await;
    eprintln!("primary {}, voters {:?}, ANY {k}", name(p), others.iter().map(|i| name(*i)).collect::<Vec<_>>());
    c.insert(p, "before").await;

    let acked = Arc::new(Mutex::new(Vec::new()));
    let writer = start_writer(&c, p, acked.clone());
    // Enough commits that the kill lands in the middle of the stream, not before it.
    let streaming =
        patroni_testkit::wait_until(WAIT, POLL, || async { acked.lock().expect("list").len() >= 200 }).await;
    assert!(
        streaming.is_ok(),
        "the writer did not get 200 commits acknowledged: {:?}",
        acked.lock().expect("list").len()
    );

    c.nodes[p].kill(Signal::SIGKILL).unwrap();
    c.nodes[p].wait_exit(WAIT).await.unwrap();
    c.pg_stop_immediate(p);
    let died = Instant::now();
    let ended = tokio::time::timeout(WAIT, writer).await.expect("the writer ends with its primary").unwrap();
    let acked: Vec<String> = acked.lock().expect("list").clone();
    eprintln!("{} commits acknowledged before the primary died; the writer ended with {ended:?}", acked.len());

    let np = c.wait_primary_among(Duration::from_secs(TTL + LOOP_WAIT + 30), &others).await;
    eprintln!("new primary {} after {:?}", name(np), died.elapsed());
    let rows = c.sql(np, "SELECT v FROM t WHERE v LIKE 'w-%'").await.expect("reads the new primary");
    let present: BTreeSet<String> = rows.into_iter().filter_map(|r| r[0].clone()).collect();
    let lost: Vec<&String> = acked.iter().filter(|v| !present.contains(*v)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged commits are missing on the new primary {}: first {:?}",
        lost.len(),
        acked.len(),
        name(np),
        lost.iter().take(5).collect::<Vec<_>>()
    );

    // The survivors other than the new primary form its quorum (the dead member's key may linger until its ttl,
    // but it does not stream, so it is never a voter), and a commit is acknowledged again.
    let rest: Vec<usize> = others.iter().copied().filter(|i| *i != np).collect();
    c.wait_streaming(&rest, np, START_TIMEOUT).await;
    wait_quorum(&c, np, &rest, k.min(rest.len())).await;
    c.insert(np, "after").await;
    for r in rest {
        c.wait_row(r, "after", WAIT).await;
    }
}

/// 3 members, `ANY 1` of the two replicas (quorum 1 in the `sync` key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_keep_every_acknowledged_commit_when_the_primary_dies() {
    primary_dies_under_write_load(3, 1).await;
}

/// 4 members, `ANY 2` of the three replicas (quorum 1): after the failover, `ANY 2` of the two that are left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_members_keep_every_acknowledged_commit_when_the_primary_dies() {
    primary_dies_under_write_load(4, 2).await;
}

/// `PATCH /config` of `synchronous_mode` on a live cluster.
async fn set_mode(c: &Cluster, primary: usize, mode: Value) {
    let patch = serde_json::json!({ "synchronous_mode": mode });
    let (code, body) = c.node(primary).request(reqwest::Method::PATCH, "/config", Some(&patch)).await.unwrap();
    assert_eq!(code, 200, "PATCH /config {patch}: {body}");
}

/// Synchronous replication switched live between `on`, `quorum` and `off` (PATCH /config, as `patronictl
/// edit-config` does): each time the `sync` key and `synchronous_standby_names` converge to what the mode asks for —
/// one standby by name with quorum 0, `ANY 1` of both with quorum 1, no key and no names — and commits go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_mode_switches_live_between_on_quorum_and_off() {
    let c = Cluster::start(Options { dcs_extra: vec!["synchronous_mode: true".into()], ..Options::default() }).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let others: Vec<usize> = (0..3).filter(|i| *i != p).collect();
    let settled_on = || async {
        let key = sync_key(&c).await;
        let names = ssn(&c, p).await.unwrap_or_default();
        key.is_some_and(|(l, v, q)| l == name(p) && v.len() == 1 && q == 0 && v.contains(&names))
    };
    assert!(patroni_testkit::wait_until(WAIT, POLL, settled_on).await.is_ok(), "mode on never settled");
    c.insert(p, "on").await;

    set_mode(&c, p, "quorum".into()).await;
    wait_quorum(&c, p, &others, 1).await;
    c.insert(p, "quorum").await;

    set_mode(&c, p, false.into()).await;
    let settled_off = || async { sync_key(&c).await.is_none() && ssn(&c, p).await.as_deref() == Some("") };
    if patroni_testkit::wait_until(WAIT, POLL, settled_off).await.is_err() {
        c.dump_dcs().await;
        c.dump("mode off never settled");
        panic!("off: sync key {:?}, synchronous_standby_names {:?}", sync_key(&c).await, ssn(&c, p).await);
    }
    c.insert(p, "off").await;

    set_mode(&c, p, true.into()).await;
    assert!(patroni_testkit::wait_until(WAIT, POLL, settled_on).await.is_ok(), "mode on never settled again");
    c.insert(p, "on-again").await;
    for r in others {
        for v in ["on", "quorum", "off", "on-again"] {
            c.wait_row(r, v, WAIT).await;
        }
    }
}
