//! Issue #5 on real 3-member clusters: the DCS goes away and comes back.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Options, LOOP_WAIT, POLL, RETRY_TIMEOUT, START_TIMEOUT, WAIT};

/// etcd stopped: the primary cannot refresh its key and demotes itself (no more writes, `GET /primary` not 200)
/// within retry_timeout + loop_wait; etcd back: one primary again and the others streaming from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcs_outage_demotes_the_primary_and_the_cluster_recovers() {
    let mut c = Cluster::start(Options::default()).await;
    let p = c.wait_primary(WAIT, &[]).await;
    c.insert(p, "before").await;

    // etcd frozen (SIGSTOP) for less than retry_timeout: the primary rides it out.
    c.etcd.pause().unwrap();
    tokio::time::sleep(Duration::from_secs(RETRY_TIMEOUT / 2)).await;
    c.etcd.resume().unwrap();
    assert_rides_out(&c, p, "etcd frozen for half of retry_timeout").await;

    let stopped = Instant::now();
    c.etcd.stop().await.unwrap();
    eprintln!("etcd stopped in {:?}", stopped.elapsed());
    // retry_timeout for the failing refresh, loop_wait for the loop to get there, plus a margin for a loaded CI.
    let bound = Duration::from_secs(RETRY_TIMEOUT + LOOP_WAIT + 10);
    let demoted = patroni_testkit::wait_until(bound, POLL, || async {
        c.status(p, "/primary").await != Some(200) && !c.writable(p).await
    })
    .await;
    if demoted.is_err() {
        c.dump("primary not demoted without DCS");
        panic!("the primary still accepts writes {bound:?} after etcd stopped");
    }
    eprintln!("primary demoted {:?} after etcd stopped", stopped.elapsed());
    // Nobody is primary while the DCS is gone.
    tokio::time::sleep(Duration::from_secs(LOOP_WAIT)).await;
    assert_eq!(c.primaries().await, Vec::<usize>::new(), "no primary without the DCS");
    for i in 0..3 {
        assert!(!c.writable(i).await, "pg{i} accepts writes without the DCS");
    }

    c.etcd.start_again().await.unwrap();
    let np = c.wait_primary(START_TIMEOUT, &[]).await;
    c.insert(np, "after").await;
    let others: Vec<usize> = (0..3).filter(|r| *r != np).collect();
    c.wait_streaming(&others, np, START_TIMEOUT).await;
    for r in others {
        c.wait_row(r, "before", WAIT).await;
        c.wait_row(r, "after", WAIT).await;
    }
}

/// Checks for a few loops that `p` is still the primary, holds the key and accepts writes.
async fn assert_rides_out(c: &Cluster, p: usize, what: &str) {
    for _ in 0..(3 * LOOP_WAIT * 5) {
        if c.status(p, "/primary").await != Some(200) || !c.writable(p).await {
            c.dump("demoted on a short DCS blip");
            panic!("the primary demoted after {what} (retry_timeout {RETRY_TIMEOUT} s)");
        }
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(c.leader().await.as_deref(), Some(common::name(p).as_str()));
}

/// etcd restarted (killed, started again) in less than retry_timeout: the primary rides it out, as Python Patroni
/// does (its etcd client retries until retry_timeout). Killed rather than stopped gracefully: a graceful stop with
/// watchers open can take seconds on a loaded machine, and this test is about the blip, not etcd's shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restart_shorter_than_retry_timeout_is_ridden_out() {
    let mut c = Cluster::start(Options::default()).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let blip = Instant::now();
    c.etcd.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.etcd.start_again().await.unwrap();
    let blip = blip.elapsed();
    assert!(blip < Duration::from_secs(RETRY_TIMEOUT - 1), "etcd restart took {blip:?}, too long for this check");
    assert_rides_out(&c, p, &format!("etcd was restarted in {blip:?}")).await;
}

/// etcd frozen (SIGSTOP: requests hang rather than fail) for longer than retry_timeout: the primary's refresh
/// times out and it demotes within retry_timeout + loop_wait, long before its key could expire for others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_dcs_demotes_the_primary_before_the_key_expires() {
    let mut c = Cluster::start(Options::default()).await;
    let p = c.wait_primary(WAIT, &[]).await;
    c.etcd.pause().unwrap();
    let frozen = Instant::now();
    let bound = Duration::from_secs(RETRY_TIMEOUT + LOOP_WAIT + 10);
    let demoted = patroni_testkit::wait_until(bound, POLL, || async {
        c.status(p, "/primary").await != Some(200) && !c.writable(p).await
    })
    .await;
    let took = frozen.elapsed();
    c.etcd.resume().unwrap();
    if demoted.is_err() {
        c.dump("primary not demoted with a frozen DCS");
        panic!("the primary still accepts writes {bound:?} after etcd froze");
    }
    eprintln!("primary demoted {took:?} after etcd froze");
    let np = c.wait_primary(START_TIMEOUT, &[]).await;
    let others: Vec<usize> = (0..3).filter(|r| *r != np).collect();
    c.wait_streaming(&others, np, START_TIMEOUT).await;
}

/// failsafe_mode, one member, etcd frozen (SIGSTOP: calls hang until retry_timeout), a permanent logical slot that
/// cannot be created (wal_level replica) so every cycle has a status write to make: the lone primary keeps taking
/// writes past the ttl and says `failsafe_mode_is_active` on `GET /primary`, as Patroni's dcs_failsafe_mode feature
/// checks. A cycle ends its DCS calls at the first unanswered one, so the failsafe decision is not held up by the
/// status and member writes behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_failsafe_primary_rides_out_a_frozen_dcs() {
    let mut c = Cluster::start(Options {
        members: 1,
        dcs_extra: vec![
            "failsafe_mode: true".into(),
            "slots: {stuck: {type: logical, database: postgres, plugin: test_decoding}}".into(),
        ],
        ..Options::default()
    })
    .await;
    let p = c.wait_primary(WAIT, &[]).await;
    let listed = patroni_testkit::wait_until(WAIT, POLL, || async {
        let key = c.etcd.get("/service/demo/failsafe").await.ok().flatten().unwrap_or_default();
        key.contains("pg0")
    })
    .await;
    assert!(listed.is_ok(), "the leader writes the failsafe key");
    c.etcd.pause().unwrap();
    let until = Instant::now() + Duration::from_secs(common::TTL + RETRY_TIMEOUT + LOOP_WAIT);
    let mut active_after = None;
    let frozen = Instant::now();
    while Instant::now() < until {
        if !c.writable(p).await {
            c.etcd.resume().unwrap();
            c.dump("lone failsafe primary demoted");
            panic!("the lone primary stopped taking writes while failsafe mode covers it");
        }
        if active_after.is_none() {
            if let Ok((200, body)) = c.node(p).get("/primary").await {
                if body.contains("failsafe_mode_is_active") {
                    active_after = Some(frozen.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    c.etcd.resume().unwrap();
    let Some(took) = active_after else {
        c.dump("failsafe never active");
        panic!("GET /primary never said failsafe_mode_is_active while etcd was frozen");
    };
    eprintln!("failsafe mode active {took:?} after etcd froze");
    let np = c.wait_primary(START_TIMEOUT, &[]).await;
    assert_eq!(np, p);
}

/// failsafe_mode: with etcd gone the primary keeps taking writes as long as every member of the `failsafe` key
/// confirms it over the REST API (`POST /failsafe`), and says so (`failsafe_mode_is_active`); once one member stops
/// answering, it demotes. etcd back: one primary again. The REST APIs require authentication for unsafe requests,
/// so the confirmations only count if the primary sends the credentials, as Patroni does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failsafe_mode_keeps_the_primary_while_every_member_confirms_it() {
    let mut c = Cluster::start(Options {
        dcs_extra: vec!["failsafe_mode: true".into()],
        restapi_extra: vec!["authentication: {username: admin, password: s3cret}".into()],
        ..Options::default()
    })
    .await;
    let p = c.wait_primary(WAIT, &[]).await;
    c.insert(p, "before").await;
    let listed = patroni_testkit::wait_until(WAIT, POLL, || async {
        let key = c.etcd.get("/service/demo/failsafe").await.ok().flatten().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&key).unwrap_or_default();
        v.as_object().is_some_and(|m| m.len() == 3)
    })
    .await;
    assert!(listed.is_ok(), "the leader writes the failsafe key with all three members");

    c.etcd.stop().await.unwrap();
    // Well past the point where a primary without failsafe mode demotes (see the test above), and past the ttl.
    let until = Instant::now() + Duration::from_secs(RETRY_TIMEOUT + LOOP_WAIT + common::TTL);
    let mut active = false;
    let mut confirming = false;
    let replica = (0..3).find(|r| *r != p).unwrap();
    while Instant::now() < until {
        if !c.writable(p).await {
            c.dump("failsafe primary demoted");
            panic!("the primary stopped taking writes while every member could confirm it");
        }
        if let Ok((200, body)) = c.node(p).get("/patroni").await {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            active |= v["failsafe_mode_is_active"] == true;
        }
        // A replica that confirmed the primary less than a ttl ago says so too (and will not race for the key).
        if let Ok((200, body)) = c.node(replica).get("/patroni").await {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            confirming |= v["failsafe_mode_is_active"] == true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(active, "/patroni said failsafe_mode_is_active while etcd was away");
    assert!(confirming, "the replica said failsafe_mode_is_active while it confirmed the primary");
    assert_eq!(c.primaries().await, vec![p], "no replica promoted itself meanwhile");
    // Beyond Patroni, the confirmation is on disk too: an agent restarted after it still holds back.
    let remembered = c.nodes[replica].context().data_dir().join("patroni.failsafe.json");
    let text = std::fs::read_to_string(&remembered).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    assert_eq!(v["leader"], c.nodes[p].context().name.as_str(), "{}: {text}", remembered.display());
    assert!(v["at"].as_i64().is_some(), "{}: {text}", remembered.display());

    // One member stops answering: the primary can no longer be sure it is alone, and demotes.
    let gone = (0..3).find(|r| *r != p).unwrap();
    c.nodes[gone].kill(nix::sys::signal::Signal::SIGKILL).unwrap();
    let bound = Duration::from_secs(RETRY_TIMEOUT + 2 * LOOP_WAIT + 10);
    let demoted = patroni_testkit::wait_until(bound, POLL, || async { !c.writable(p).await }).await;
    if demoted.is_err() {
        c.dump("failsafe primary kept running without a confirmation");
        panic!("the primary still takes writes {bound:?} after a failsafe member stopped answering");
    }

    c.etcd.start_again().await.unwrap();
    c.nodes[gone].restart().unwrap();
    let np = c.wait_primary(START_TIMEOUT, &[]).await;
    c.insert(np, "after").await;
    let others: Vec<usize> = (0..3).filter(|r| *r != np).collect();
    c.wait_streaming(&others, np, START_TIMEOUT).await;
}
