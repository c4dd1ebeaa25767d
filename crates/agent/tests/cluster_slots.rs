//! Replication slots on a real 2-member cluster: permanent physical (a `null` value) and logical slots are created
//! on the primary and kept on the replica (the logical one copied from the primary and advanced as it is
//! consumed), a slot created by hand is dropped unless `ignore_slots` matches it, the leader publishes slot
//! positions in `status`, and a logical consumer reads on from the new primary after a failover without a gap.

mod common;

use std::time::Duration;

use common::{name, Cluster, Options, POLL, WAIT};
use nix::sys::signal::Signal;
use patroni_testkit::wait_until;
use reqwest::Method;
use serde_json::json;

/// Slot waits: each takes a loop or two (`loop_wait` 2 s), a copy also a restart of the replica.
const SLOT_WAIT: Duration = Duration::from_secs(60);

/// `(slot_type, plugin)` of slot `slot` on member `i`, when it exists.
async fn slot(c: &Cluster, i: usize, slot: &str) -> Option<(String, Option<String>)> {
    let rows = c
        .sql(i, &format!("SELECT slot_type::text, plugin::text FROM pg_replication_slots WHERE slot_name = '{slot}'"))
        .await
        .ok()?;
    let row = rows.first()?;
    Some((row.first()?.clone()?, row.get(1)?.clone()))
}

async fn wait_slot(c: &Cluster, i: usize, name_: &str, want: Option<(&str, Option<&str>)>) {
    let ok = wait_until(SLOT_WAIT, POLL, || async {
        let have = slot(c, i, name_).await;
        have.as_ref().map(|(t, p)| (t.as_str(), p.as_deref())) == want
    })
    .await;
    if ok.is_err() {
        c.dump("slot state");
        panic!("slot {name_} on {}: wanted {want:?}, have {:?}", name(i), slot(c, i, name_).await);
    }
}

/// `confirmed_flush_lsn` of a logical slot on member `i`.
async fn confirmed(c: &Cluster, i: usize, slot: &str) -> Option<String> {
    let rows = c
        .sql(i, &format!("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{slot}'"))
        .await
        .ok()?;
    rows.first()?.first()?.clone()
}

/// The changes a logical slot hands out on member `i` (consumed).
async fn changes(c: &Cluster, i: usize, slot: &str) -> Vec<String> {
    let rows = c
        .sql(i, &format!("SELECT data FROM pg_logical_slot_get_changes('{slot}', NULL, NULL)"))
        .await
        .unwrap_or_else(|e| panic!("consuming {slot} on {}: {e}", name(i)));
    rows.into_iter().filter_map(|r| r.into_iter().next().flatten()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_and_logical_slots_survive_a_failover() {
    let mut c = Cluster::start(Options { members: 2, ..Options::default() }).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let r = 1 - p;
    c.wait_streaming(&[r], p, WAIT).await;

    let patch = json!({
        "postgresql": {"parameters": {"wal_level": "logical"}},
        "slots": {"perm_phys": null, "perm_logical": {"type": "logical", "database": "postgres", "plugin": "test_decoding"}},
        "ignore_slots": [{"name": "keep_me"}],
    });
    let (code, text) = c.node(p).request(Method::PATCH, "/config", Some(&patch)).await.unwrap();
    assert_eq!(code, 200, "PATCH /config: {text}");
    // wal_level needs a restart: the primary first, then the replica (a logical slot copied to a standby needs
    // wal_level logical there too).
    // (The replica may already be restarting to install the copied logical slot, which applies it too: a refused
    // POST /restart is asked again until the setting shows.)
    for i in [p, r] {
        let ok = wait_until(WAIT, POLL, || async {
            let now = c.sql(i, "SHOW wal_level").await.ok().and_then(|rows| rows.first()?.first()?.clone());
            if now.as_deref() == Some("logical") {
                return true;
            }
            let _ = c.node(i).request(Method::POST, "/restart", Some(&json!({}))).await;
            false
        })
        .await;
        assert!(ok.is_ok(), "{} never ran with wal_level logical", name(i));
    }

    // The primary: permanent slots, the replica's member slot; a hand-made slot goes, an ignored one stays.
    wait_slot(&c, p, "perm_phys", Some(("physical", None))).await;
    wait_slot(&c, p, "perm_logical", Some(("logical", Some("test_decoding")))).await;
    wait_slot(&c, p, &name(r), Some(("physical", None))).await;
    c.sql(p, "SELECT pg_create_physical_replication_slot('keep_me', true)").await.unwrap();
    c.sql(p, "SELECT pg_create_physical_replication_slot('drop_me', true)").await.unwrap();
    wait_slot(&c, p, "drop_me", None).await;
    assert!(slot(&c, p, "keep_me").await.is_some(), "the ignored slot keep_me was dropped");

    // The replica: the permanent slots, the logical one copied from the primary, and a slot for the primary.
    wait_slot(&c, r, "perm_phys", Some(("physical", None))).await;
    wait_slot(&c, r, "perm_logical", Some(("logical", Some("test_decoding")))).await;
    wait_slot(&c, r, &name(p), Some(("physical", None))).await;

    // Consume on the primary: the replica's copy follows.
    c.insert(p, "before").await;
    let got = changes(&c, p, "perm_logical").await;
    assert!(got.iter().any(|l| l.contains("'before'")), "changes: {got:?}");
    let primary_at = confirmed(&c, p, "perm_logical").await;
    let ok = wait_until(SLOT_WAIT, POLL, || async { confirmed(&c, r, "perm_logical").await == primary_at }).await;
    assert!(ok.is_ok(), "replica slot at {:?}, primary at {primary_at:?}", confirmed(&c, r, "perm_logical").await);

    // A change not yet consumed when the primary goes is read from the new primary.
    c.insert(p, "after").await;
    c.wait_row(r, "after", WAIT).await;
    c.nodes[p].kill(Signal::SIGTERM).unwrap();
    c.nodes[p].wait_exit(WAIT).await.unwrap();
    let np = c.wait_primary(WAIT, &[p]).await;
    assert_eq!(np, r);
    let got = changes(&c, r, "perm_logical").await;
    assert!(got.iter().any(|l| l.contains("'after'")), "changes after failover: {got:?}");
    assert!(!got.iter().any(|l| l.contains("'before'")), "already consumed changes came again: {got:?}");
    assert!(slot(&c, r, "perm_phys").await.is_some(), "perm_phys gone after failover");
}
