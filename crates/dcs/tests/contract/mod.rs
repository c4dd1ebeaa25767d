//! The DCS contract, written once over `dyn Dcs` so every backend (etcd now, Raft later) runs the same checks.
//! Each function takes clients already connected to one store; the backend's test file starts the store.
//! Waits are bounded; timing assertions are generous upper bounds, never performance targets.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use patroni_dcs::{Cluster, Dcs, DcsError, Failover, HistoryLine, MemberData, Status, TimelineHistory};

pub fn member_data(name: &str) -> MemberData {
    MemberData {
        conn_url: Some(format!("postgres://127.0.0.1:5432/postgres?name={name}")),
        api_url: Some(format!("http://127.0.0.1:8008/{name}")),
        state: Some("running".into()),
        role: Some("replica".into()),
        version: Some("4.1.5".into()),
        xlog_location: Some(100),
        timeline: Some(1),
        ..MemberData::default()
    }
}

/// Polls `get_cluster` until `pred` holds or `limit` passes; returns how long it took.
pub async fn wait_cluster(dcs: &dyn Dcs, limit: Duration, pred: impl Fn(&Cluster) -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(c) = dcs.get_cluster().await {
            if pred(&c) {
                return Some(start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Two clients race for the leader key `rounds` times: exactly one wins each time and the loser sees the winner.
pub async fn leader_race(a: &dyn Dcs, b: &dyn Dcs, rounds: usize) {
    for round in 0..rounds {
        let (ra, rb) = tokio::join!(a.attempt_to_acquire_leader(), b.attempt_to_acquire_leader());
        let (winner, loser) = match (&ra, &rb) {
            (Ok(()), Err(e)) if e.is_compare_failed() => (a, b),
            (Err(e), Ok(())) if e.is_compare_failed() => (b, a),
            other => panic!("round {round}: expected exactly one winner, got {other:?}"),
        };
        let seen = loser.get_cluster().await.expect("loser reads the cluster");
        assert_eq!(seen.leader_name(), Some(winner.name()), "round {round}");
        // the loser cannot take it either way
        assert!(loser.attempt_to_acquire_leader().await.unwrap_err().is_compare_failed());
        let leader = seen.leader.clone().expect("leader");
        winner.delete_leader(&leader, None).await.expect("winner releases");
        assert!(winner.get_cluster().await.unwrap().is_unlocked(), "round {round}");
    }
}

/// The leader key of an owner that stops refreshing disappears within ttl + 1 s; so does its member key.
pub async fn keys_expire_with_ttl(owner: &dyn Dcs, observer: &dyn Dcs) {
    let ttl = owner.ttl();
    owner.touch_member(&member_data(owner.name())).await.unwrap();
    owner.attempt_to_acquire_leader().await.unwrap();
    // The last refresh: from here on the owner is silent.
    let cluster = owner.get_cluster().await.unwrap();
    owner.update_leader(&cluster, None, None).await.unwrap();
    let silent_since = Instant::now();
    let c = observer.get_cluster().await.unwrap();
    assert_eq!(c.leader_name(), Some(owner.name()));
    assert!(c.has_member(owner.name()));
    let gone =
        wait_cluster(observer, ttl + Duration::from_secs(5), |c| c.is_unlocked() && !c.has_member(owner.name())).await;
    assert!(gone.is_some(), "keys did not expire");
    let after = silent_since.elapsed();
    assert!(after <= ttl + Duration::from_secs(1), "keys expired {after:?} after the last refresh, ttl {ttl:?}");
    // and not too early: the lease really had the TTL
    assert!(after + Duration::from_secs(1) >= ttl, "keys expired after only {after:?}");
}

/// Refreshing keeps the keys well past the TTL.
pub async fn refreshing_keeps_keys(owner: &dyn Dcs, observer: &dyn Dcs) {
    let ttl = owner.ttl();
    owner.attempt_to_acquire_leader().await.unwrap();
    let start = Instant::now();
    while start.elapsed() < ttl * 2 {
        let c = owner.get_cluster().await.unwrap();
        owner.update_leader(&c, None, None).await.unwrap();
        owner.touch_member(&member_data(owner.name())).await.unwrap();
        tokio::time::sleep(ttl / 3).await;
    }
    let c = observer.get_cluster().await.unwrap();
    assert_eq!(c.leader_name(), Some(owner.name()));
    assert!(c.has_member(owner.name()));
}

/// Update and delete of a leader key owned by someone else fail and change nothing.
pub async fn foreign_leader_is_untouchable(owner: &dyn Dcs, other: &dyn Dcs) {
    owner.attempt_to_acquire_leader().await.unwrap();
    let before = other.get_cluster().await.unwrap();
    let leader = before.leader.clone().unwrap();
    assert_eq!(leader.name, owner.name());

    let e = other.update_leader(&before, Some(&Status { last_lsn: 42, ..Status::default() }), None).await;
    assert!(matches!(e, Err(DcsError::CompareFailed { .. })), "{e:?}");
    let e = other.delete_leader(&leader, Some(43)).await;
    assert!(matches!(e, Err(DcsError::CompareFailed { .. })), "{e:?}");
    // even when it claims the leader is itself
    let mut forged = leader.clone();
    forged.name = other.name().to_string();
    let e = other.delete_leader(&forged, None).await;
    assert!(matches!(e, Err(DcsError::CompareFailed { .. })), "{e:?}");

    let after = other.get_cluster().await.unwrap();
    let l = after.leader.unwrap();
    assert_eq!((l.name.as_str(), l.version, &l.session), (owner.name(), leader.version, &leader.session));
    assert_ne!(after.status.last_lsn, 42);
    // the owner still can
    owner.update_leader(&after_cluster(owner).await, None, None).await.unwrap();
    owner.delete_leader(&l, None).await.unwrap();
    assert!(other.get_cluster().await.unwrap().is_unlocked());
}

async fn after_cluster(dcs: &dyn Dcs) -> Cluster {
    dcs.get_cluster().await.unwrap()
}

/// Config compare-and-set: a stale version fails and leaves the value alone.
pub async fn config_cas(a: &dyn Dcs, b: &dyn Dcs) {
    a.set_config_value(r#"{"ttl":30}"#, None).await.unwrap();
    let v1 = a.get_cluster().await.unwrap().config.unwrap().version;
    b.set_config_value(r#"{"ttl":31}"#, Some(v1)).await.unwrap();
    let e = a.set_config_value(r#"{"ttl":32}"#, Some(v1)).await;
    assert!(matches!(e, Err(DcsError::CompareFailed { .. })), "{e:?}");
    let c = a.get_cluster().await.unwrap().config.unwrap();
    assert_eq!(c.data["ttl"], 31);
    assert_ne!(c.version, v1);
    a.set_config_value(r#"{"ttl":33}"#, Some(c.version)).await.unwrap();
    assert_eq!(b.get_cluster().await.unwrap().config.unwrap().data["ttl"], 33);
}

/// Initialize is a create-if-absent race; sync and failover CAS behave like config.
pub async fn initialize_sync_failover(a: &dyn Dcs, b: &dyn Dcs) {
    a.initialize(true, "").await.unwrap();
    assert!(b.initialize(true, "").await.unwrap_err().is_compare_failed());
    a.initialize(false, "7300000000000000001").await.unwrap();
    assert_eq!(b.get_cluster().await.unwrap().initialize.as_deref(), Some("7300000000000000001"));
    a.cancel_initialization().await.unwrap();
    assert_eq!(b.get_cluster().await.unwrap().initialize, None);

    let s = a.write_sync_state(Some(a.name()), &["zz".into(), "b".into()], 1, None).await.unwrap();
    let seen = b.get_cluster().await.unwrap().sync;
    assert_eq!(seen.version, s.version);
    assert_eq!(seen.sync_standby, vec!["b", "zz"]);
    assert!(b.write_sync_state(Some("x"), &[], 0, Some(s.version.unwrap() - 1)).await.unwrap_err().is_compare_failed());
    assert!(b.delete_sync_state(Some(s.version.unwrap() - 1)).await.unwrap_err().is_compare_failed());
    b.delete_sync_state(s.version).await.unwrap();
    assert!(a.get_cluster().await.unwrap().sync.is_empty());

    a.manual_failover(Some(a.name()), Some(b.name()), None, None).await.unwrap();
    let f = b.get_cluster().await.unwrap().failover.unwrap();
    assert_eq!(f.candidate.as_deref(), Some(b.name()));
    assert!(b.delete_failover(Some(f.version - 1)).await.unwrap_err().is_compare_failed());
    b.delete_failover(Some(f.version)).await.unwrap();
    assert!(a.get_cluster().await.unwrap().failover.is_none());
}

/// Every key kind written through the trait reads back into the same model.
pub async fn every_key_round_trips(dcs: &dyn Dcs) {
    let data = MemberData {
        tags: serde_json::from_str(r#"{"nofailover":true,"custom":"x"}"#).unwrap(),
        extra: serde_json::from_str(r#"{"future":[1,2]}"#).unwrap(),
        ..member_data(dcs.name())
    };
    dcs.touch_member(&data).await.unwrap();
    dcs.initialize(true, "7300000000000000001").await.unwrap();
    dcs.set_config_value(r#"{"ttl":30,"postgresql":{"parameters":{"max_connections":100}}}"#, None).await.unwrap();
    dcs.attempt_to_acquire_leader().await.unwrap();
    let status = Status {
        last_lsn: 50331968,
        slots: Some([("perm".to_string(), 50331800u64)].into_iter().collect()),
        retain_slots: vec!["old_member".into()],
    };
    let failsafe = [(dcs.name().to_string(), "http://127.0.0.1:8008/patroni".to_string())].into_iter().collect();
    let c = dcs.get_cluster().await.unwrap();
    dcs.update_leader(&c, Some(&status), Some(&failsafe)).await.unwrap();
    let when = patroni_dcs::model::parse_timestamp("2026-11-22T01:30:00+02:00").unwrap();
    dcs.manual_failover(Some(dcs.name()), Some("other"), Some(&when), None).await.unwrap();
    dcs.write_sync_state(Some(dcs.name()), &["other".into()], 0, None).await.unwrap();
    let history = TimelineHistory {
        version: 0,
        lines: vec![HistoryLine {
            timeline: 1,
            lsn: 25165984,
            reason: "no recovery target specified".into(),
            timestamp: Some("2026-11-21T23:40:01.123456+00:00".into()),
            new_leader: Some(dcs.name().into()),
        }],
    };
    dcs.set_history_value(&history.to_json()).await.unwrap();

    let c = dcs.get_cluster().await.unwrap();
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert_eq!(c.get_member(dcs.name()).unwrap().data, data);
    assert_eq!(c.leader.as_ref().unwrap().member.data, data);
    assert_eq!(c.initialize.as_deref(), Some("7300000000000000001"));
    assert_eq!(c.config.as_ref().unwrap().data["postgresql"]["parameters"]["max_connections"], 100);
    assert_eq!(c.status, status);
    assert_eq!(c.failsafe.as_ref(), Some(&failsafe));
    let f: &Failover = c.failover.as_ref().unwrap();
    assert_eq!(
        (f.leader.as_deref(), f.candidate.as_deref(), f.scheduled_at),
        (Some(dcs.name()), Some("other"), Some(when))
    );
    assert_eq!(c.sync.leader.as_deref(), Some(dcs.name()));
    assert_eq!(c.sync.sync_standby, vec!["other"]);
    assert_eq!(c.history.as_ref().unwrap().lines, history.lines);
    assert_eq!(c.leader_optime(), 50331968);

    // write_leader_optime keeps the slots
    dcs.write_leader_optime(50331999).await.unwrap();
    let c = dcs.get_cluster().await.unwrap();
    assert_eq!(c.status.last_lsn, 50331999);
    assert_eq!(c.status.slots, status.slots);

    // delete_leader writes the last position first
    let leader = c.leader.clone().unwrap();
    dcs.delete_leader(&leader, Some(50332000)).await.unwrap();
    let c = dcs.get_cluster().await.unwrap();
    assert!(c.is_unlocked());
    assert_eq!(c.leader_optime(), 50332000);

    dcs.delete_cluster().await.unwrap();
    assert!(dcs.get_cluster().await.unwrap().is_empty());
}

/// A watch returns soon after the leader key changes (and after, not before, the change).
pub async fn watch_wakes_on_leader_change(watcher: &dyn Dcs, changer: &dyn Dcs) {
    changer.attempt_to_acquire_leader().await.unwrap();
    let c = watcher.get_cluster().await.unwrap();
    let version = c.leader.as_ref().map(|l| l.version);
    let timeout = Duration::from_secs(10);
    let started = Instant::now();
    let change = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let leader = changer.get_cluster().await.unwrap().leader.unwrap();
        changer.delete_leader(&leader, None).await.unwrap();
        Instant::now()
    };
    let (woke, changed_at) = tokio::join!(
        async {
            let r = watcher.watch(version, timeout).await;
            (r, Instant::now())
        },
        change
    );
    let (result, returned_at) = woke;
    assert_eq!(result, Ok(true));
    assert!(returned_at >= changed_at - Duration::from_millis(50), "watch returned before the change");
    let lag = returned_at.saturating_duration_since(changed_at);
    assert!(lag < Duration::from_secs(1), "watch returned {lag:?} after the change");
    assert!(started.elapsed() < timeout);
}

/// A watch with nothing relevant changing returns at the timeout, not before, even while members keep writing.
pub async fn watch_times_out(watcher: &dyn Dcs, other: &dyn Dcs) {
    other.attempt_to_acquire_leader().await.unwrap();
    let c = watcher.get_cluster().await.unwrap();
    let version = c.leader.as_ref().map(|l| l.version);
    let timeout = Duration::from_millis(1500);
    let started = Instant::now();
    let noise = async {
        for _ in 0..5 {
            other.touch_member(&member_data(other.name())).await.unwrap();
            let mut d = member_data(other.name());
            d.xlog_location = Some(rand_lsn());
            other.touch_member(&d).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (result, ()) = tokio::join!(watcher.watch(version, timeout), noise);
    let took = started.elapsed();
    assert_eq!(result, Ok(false));
    assert!(took + Duration::from_millis(50) >= timeout, "returned after {took:?}");
    assert!(took < timeout + Duration::from_secs(2), "returned after {took:?}");
}

fn rand_lsn() -> u64 {
    u64::from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(7))
}

/// `wakeup` ends a watch early.
pub async fn wakeup_ends_watch(dcs: &dyn Dcs) {
    let started = Instant::now();
    let (r, ()) = tokio::join!(dcs.watch(None, Duration::from_secs(10)), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        dcs.wakeup();
    });
    assert_eq!(r, Ok(true));
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// With the store down, every call returns `Unreachable` within `retry_timeout` + 1 s.
pub async fn every_call_unreachable(dcs: &dyn Dcs, cluster: &Cluster) {
    let limit = dcs.retry_timeout() + Duration::from_secs(1);
    let leader = cluster.leader.clone().expect("a leader owned by this client");
    assert_eq!(leader.name, dcs.name());
    let status = Status { last_lsn: 777, ..Status::default() };
    let failsafe = [("x".to_string(), "http://x".to_string())].into_iter().collect();
    macro_rules! unreachable_within {
        ($what:expr, $call:expr) => {{
            let start = Instant::now();
            let r = $call.await;
            let took = start.elapsed();
            match r {
                Err(DcsError::Unreachable(_)) => {}
                other => panic!("{}: expected Unreachable, got {:?}", $what, other),
            }
            assert!(took <= limit, "{} took {:?}", $what, took);
        }};
    }
    unreachable_within!("get_cluster", dcs.get_cluster());
    unreachable_within!("attempt_to_acquire_leader", dcs.attempt_to_acquire_leader());
    unreachable_within!("take_leader", dcs.take_leader());
    unreachable_within!("update_leader", dcs.update_leader(cluster, Some(&status), None));
    unreachable_within!("delete_leader", dcs.delete_leader(&leader, None));
    unreachable_within!("touch_member", dcs.touch_member(&member_data("changed")));
    unreachable_within!("initialize", dcs.initialize(true, "1"));
    unreachable_within!("cancel_initialization", dcs.cancel_initialization());
    unreachable_within!("set_config_value", dcs.set_config_value("{}", Some(1)));
    unreachable_within!("set_failover_value", dcs.set_failover_value("{}", None));
    unreachable_within!("delete_failover", dcs.delete_failover(None));
    unreachable_within!("set_sync_state_value", dcs.set_sync_state_value("{}", None));
    unreachable_within!("delete_sync_state", dcs.delete_sync_state(None));
    unreachable_within!("set_history_value", dcs.set_history_value("[]"));
    unreachable_within!("write_status", dcs.write_status(&Status { last_lsn: 778, ..Status::default() }));
    unreachable_within!("write_failsafe", dcs.write_failsafe(&failsafe));
    unreachable_within!("delete_cluster", dcs.delete_cluster());
    // a watch just sleeps out its timeout
    let start = Instant::now();
    assert_eq!(dcs.watch(Some(leader.version), Duration::from_millis(500)).await, Ok(false));
    assert!(start.elapsed() < Duration::from_secs(2));
}
