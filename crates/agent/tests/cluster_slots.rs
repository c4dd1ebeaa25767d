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

/// The changes a logical slot hands out on member `i` (consumed), as text: `pgoutput`, built into every server
/// (the PostgreSQL 16 and 18 of the test matrix come without the `test_decoding` module).
async fn changes(c: &Cluster, i: usize, slot: &str) -> Vec<String> {
    let rows = c
        .sql(
            i,
            &format!(
                "SELECT encode(data, 'escape') FROM pg_logical_slot_get_binary_changes('{slot}', NULL, NULL, \
                 'proto_version', '1', 'publication_names', 'every_table')"
            ),
        )
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
        "slots": {"perm_phys": null, "perm_logical": {"type": "logical", "database": "postgres", "plugin": "pgoutput"}},
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

    // What pgoutput decodes: every table, from before the first change the test reads.
    c.sql(p, "CREATE PUBLICATION every_table FOR ALL TABLES").await.expect("creates the publication");
    // The primary: permanent slots, the replica's member slot; a hand-made slot goes, an ignored one stays.
    wait_slot(&c, p, "perm_phys", Some(("physical", None))).await;
    wait_slot(&c, p, "perm_logical", Some(("logical", Some("pgoutput")))).await;
    wait_slot(&c, p, &name(r), Some(("physical", None))).await;
    c.sql(p, "SELECT pg_create_physical_replication_slot('keep_me', true)").await.unwrap();
    c.sql(p, "SELECT pg_create_physical_replication_slot('drop_me', true)").await.unwrap();
    wait_slot(&c, p, "drop_me", None).await;
    assert!(slot(&c, p, "keep_me").await.is_some(), "the ignored slot keep_me was dropped");

    // The replica: the permanent slots, the logical one copied from the primary, and a slot for the primary.
    wait_slot(&c, r, "perm_phys", Some(("physical", None))).await;
    wait_slot(&c, r, "perm_logical", Some(("logical", Some("pgoutput")))).await;
    wait_slot(&c, r, &name(p), Some(("physical", None))).await;

    // Consume on the primary: the replica's copy follows.
    c.insert(p, "before").await;
    let got = changes(&c, p, "perm_logical").await;
    assert!(got.iter().any(|l| l.contains("before")), "changes: {got:?}");
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
    assert!(got.iter().any(|l| l.contains("after")), "changes after failover: {got:?}");
    assert!(!got.iter().any(|l| l.contains("before")), "already consumed changes came again: {got:?}");
    assert!(slot(&c, r, "perm_phys").await.is_some(), "perm_phys gone after failover");
}

/// The `retain_slots` list of the `status` key the leader publishes.
async fn retained(c: &Cluster) -> Vec<String> {
    let text = c.etcd.get("/service/demo/status").await.ok().flatten().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["retain_slots"].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
}

/// `member_slots_ttl`: a member that disappears (agent killed, PostgreSQL stopped, its member key expired) keeps its
/// slot on the primary and on the other replica, listed in `retain_slots`, for `member_slots_ttl` after the leader
/// last saw it; then the slot is dropped everywhere and leaves `retain_slots`. Physical slots only, so it runs on
/// every PostgreSQL major of the matrix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_members_slot_is_kept_for_member_slots_ttl_then_dropped() {
    const MEMBER_SLOTS_TTL: u64 = 30;
    let o = Options { dcs_extra: vec![format!("member_slots_ttl: {MEMBER_SLOTS_TTL}")], ..Options::default() };
    let mut c = Cluster::start(o).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let (r1, gone) = match p {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    wait_slot(&c, p, &name(gone), Some(("physical", None))).await;
    wait_slot(&c, r1, &name(gone), Some(("physical", None))).await;
    let listed = wait_until(SLOT_WAIT, POLL, || async { retained(&c).await.contains(&name(gone)) }).await;
    assert!(listed.is_ok(), "retain_slots {:?} does not list {}", retained(&c).await, name(gone));

    c.nodes[gone].kill(Signal::SIGKILL).unwrap();
    c.nodes[gone].wait_exit(WAIT).await.unwrap();
    c.pg_stop_immediate(gone);
    let key = format!("/service/demo/members/{}", name(gone));
    let expired = wait_until(WAIT, POLL, || async { c.etcd.get(&key).await.ok().flatten().is_none() }).await;
    assert!(expired.is_ok(), "the member key of {} never expired", name(gone));
    let key_gone = std::time::Instant::now();
    // The leader has seen it gone (a loop); the slot is retained, not dropped with the member.
    tokio::time::sleep(Duration::from_secs(2 * common::LOOP_WAIT + 1)).await;
    assert!(slot(&c, p, &name(gone)).await.is_some(), "{}'s slot dropped on the primary at once", name(gone));
    assert!(retained(&c).await.contains(&name(gone)), "retain_slots {:?} forgot {}", retained(&c).await, name(gone));

    wait_slot(&c, p, &name(gone), None).await;
    let kept = key_gone.elapsed();
    eprintln!("{}'s slot dropped on the primary {kept:?} after its member key expired", name(gone));
    // Last seen at most a loop (and a slow read) before its key expired: never dropped much before the ttl.
    assert!(
        kept >= Duration::from_secs(MEMBER_SLOTS_TTL - 5),
        "dropped {kept:?} after the member key expired, member_slots_ttl is {MEMBER_SLOTS_TTL} s"
    );
    wait_slot(&c, r1, &name(gone), None).await;
    let forgotten = wait_until(SLOT_WAIT, POLL, || async { !retained(&c).await.contains(&name(gone)) }).await;
    assert!(forgotten.is_ok(), "retain_slots {:?} still lists {}", retained(&c).await, name(gone));
    // The members that stay keep theirs.
    assert!(slot(&c, p, &name(r1)).await.is_some(), "{}'s slot on the primary went too", name(r1));
}
