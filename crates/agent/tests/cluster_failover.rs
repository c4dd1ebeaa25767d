//! Issue #5 on real 3-member clusters: automatic failover (node death, graceful handover, nofailover,
//! maximum_lag_on_failover) and a PostgreSQL crash under a live agent.

mod common;

use std::time::{Duration, Instant};

use common::{name, Cluster, Options, LEADER_KEY, LOOP_WAIT, POLL, START_TIMEOUT, TTL, WAIT};
use nix::sys::signal::Signal;
use patroni_testkit::UnprivilegedCommand;

/// Kill the primary's agent (SIGKILL) and its PostgreSQL (`pg_ctl stop -m immediate`): a replica takes over within
/// ttl + loop_wait, and the old primary, restarted, rejoins as a replica and receives new rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_death_fails_over_and_the_old_primary_rejoins() {
    let mut c = Cluster::start(Options::default()).await;
    let p = c.wait_primary(WAIT, &[]).await;
    c.insert(p, "before").await;
    for r in (0..3).filter(|r| *r != p) {
        c.wait_row(r, "before", WAIT).await;
    }

    c.nodes[p].kill(Signal::SIGKILL).unwrap();
    c.nodes[p].wait_exit(WAIT).await.unwrap();
    c.pg_stop_immediate(p);
    let died = Instant::now();
    // The key expires after ttl at most; the next loop (loop_wait) notices; 15 s margin for a loaded 2-core CI.
    let np = c.wait_primary(Duration::from_secs(TTL + LOOP_WAIT + 15), &[p]).await;
    eprintln!("new primary {} after {:?}", name(np), died.elapsed());
    c.insert(np, "after").await;
    // The promotion is recorded in the `history` key: timeline 1 ended, the new leader named.
    let recorded = patroni_testkit::wait_until(WAIT, POLL, || async {
        let history = c.etcd.get("/service/demo/history").await.ok().flatten().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&history).unwrap_or_default();
        v.as_array().and_then(|lines| lines.last()).is_some_and(|line| {
            line[0].as_u64() == Some(1) && line[1].as_u64().is_some() && line.get(4) == Some(&name(np).into())
        })
    })
    .await;
    if recorded.is_err() {
        let history = c.etcd.get("/service/demo/history").await;
        c.dump("history not recorded");
        panic!("no history line for timeline 1 naming {}: {history:?}", name(np));
    }

    c.nodes[p].restart().unwrap();
    c.wait_streaming(&[p], np, START_TIMEOUT).await;
    assert_eq!(c.status(p, "/replica").await, Some(200));
    assert!(!c.writable(p).await, "the old primary must come back read-only");
    c.wait_row(p, "after", WAIT).await;
    c.wait_row(p, "before", WAIT).await;
    let third = (0..3).find(|r| *r != p && *r != np).unwrap();
    c.wait_streaming(&[third], np, WAIT).await;
    c.wait_row(third, "after", WAIT).await;
}

/// SIGTERM to the primary's agent: it stops PostgreSQL and releases the key, so a replica takes over at once,
/// far below the TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_hands_over_far_below_the_ttl() {
    let mut c = Cluster::start(Options::default()).await;
    let p = c.wait_primary(WAIT, &[]).await;
    c.insert(p, "before").await;
    for r in (0..3).filter(|r| *r != p) {
        c.wait_row(r, "before", WAIT).await;
    }
    let asked = Instant::now();
    c.nodes[p].kill(Signal::SIGTERM).unwrap();
    let np = c.wait_primary(Duration::from_secs(TTL), &[p]).await;
    let took = asked.elapsed();
    eprintln!("new primary {} {took:?} after SIGTERM", name(np));
    assert!(took < Duration::from_secs(TTL), "handover took {took:?}, not below the ttl");
    let status = c.nodes[p].wait_exit(WAIT).await.unwrap();
    assert!(status.success(), "graceful stop exits 0, got {status}");
    c.insert(np, "after").await;
    c.wait_row(np, "before", WAIT).await;
}

/// A `nofailover` member is never promoted, even as the only survivor; a normal member that comes back takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nofailover_member_is_never_promoted() {
    let o = Options { tags: vec![None, None, Some("{nofailover: true}".into())], ..Options::default() };
    let mut c = Cluster::start(o).await;
    let p = c.wait_primary(WAIT, &[]).await;
    assert_ne!(p, 2, "a nofailover member must not bootstrap the cluster");
    let other = if p == 0 { 1 } else { 0 };
    c.insert(p, "before").await;
    c.wait_row(2, "before", WAIT).await;
    c.wait_row(other, "before", WAIT).await;

    // The other eligible replica goes away (gracefully, PostgreSQL stopped with it).
    c.nodes[other].kill(Signal::SIGTERM).unwrap();
    c.nodes[other].wait_exit(WAIT).await.unwrap();
    // The primary dies.
    c.nodes[p].kill(Signal::SIGKILL).unwrap();
    c.nodes[p].wait_exit(WAIT).await.unwrap();
    c.pg_stop_immediate(p);

    // ttl for the key to expire, then several loops in which pg2 could (wrongly) take it.
    let until = Instant::now() + Duration::from_secs(TTL + 5 * LOOP_WAIT + 5);
    while Instant::now() < until {
        let leader = c.leader().await;
        if leader.as_deref() == Some(&name(2)) || c.status(2, "/primary").await == Some(200) {
            c.dump("nofailover member promoted");
            panic!("the nofailover member took over (leader key {leader:?})");
        }
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(c.leader().await, None, "the dead primary's key expired and nobody took it");
    let in_recovery = c.sql(2, "SELECT pg_is_in_recovery()").await.unwrap();
    assert_eq!(in_recovery[0][0].as_deref(), Some("t"), "pg2 still a replica");
    let why = "following a different leader because I am not allowed to promote";
    assert!(c.node(2).log().contains(why), "pg2 logs Patroni's reason: {why}");

    c.nodes[other].restart().unwrap();
    let np = c.wait_primary(START_TIMEOUT, &[]).await;
    assert_eq!(np, other, "the eligible member takes over once back");
    c.insert(np, "after").await;
    c.wait_row(2, "after", WAIT).await;
}

/// A replica lagging by more than `maximum_lag_on_failover` is not promoted when the primary dies; the replica
/// that is caught up is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_lagging_past_maximum_lag_is_not_promoted() {
    let o = Options { dcs_extra: vec!["maximum_lag_on_failover: 65536".into()], ..Options::default() };
    let mut c = Cluster::start(o).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let replicas: Vec<usize> = (0..3).filter(|r| *r != p).collect();
    let (lagging, good) = (replicas[0], replicas[1]);

    // Stop the lagging replica's streaming.
    c.sql(lagging, "ALTER SYSTEM SET primary_conninfo = ''").await.unwrap();
    c.sql(lagging, "SELECT pg_reload_conf()").await.unwrap();
    wait_for(&c, "the walreceiver to stop", WAIT, || async {
        matches!(c.sql(lagging, "SELECT count(*) FROM pg_stat_wal_receiver").await.as_deref(),
            Ok([row]) if row[0].as_deref() == Some("0"))
    })
    .await;
    // Far more than 64 kB of WAL.
    c.sql(p, "CREATE TABLE big AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 20000) g").await.unwrap();
    c.insert(p, "last").await;
    c.wait_row(good, "last", WAIT).await;
    let lsn = c.sql(p, "SELECT pg_current_wal_lsn() - '0/0'").await.unwrap()[0][0].clone().unwrap();
    let lsn: u64 = lsn.parse().unwrap();
    // The leader publishes its position every loop: wait until the DCS knows how far it got.
    wait_for(&c, "the leader's optime in the DCS", WAIT, || async {
        let status = c.etcd.get("/service/demo/status").await.ok().flatten().unwrap_or_default();
        let optime =
            serde_json::from_str::<serde_json::Value>(&status).ok().and_then(|v| v["optime"].as_u64()).unwrap_or(0);
        optime >= lsn
    })
    .await;
    let stale = c.sql(lagging, "SELECT count(*) FROM pg_stat_wal_receiver").await.unwrap();
    assert_eq!(stale[0][0].as_deref(), Some("0"), "the lagging replica still does not stream");
    let lag_rows = c.sql(lagging, "SELECT to_regclass('big') IS NULL").await.unwrap();
    assert_eq!(lag_rows[0][0].as_deref(), Some("t"), "the lagging replica has not received the big table");

    // The caught-up replica's agent dies (its PostgreSQL keeps running, caught up), so that the lag rule alone must
    // keep the lagging replica from taking over: it cannot just defer to a better peer.
    c.nodes[good].kill(Signal::SIGKILL).unwrap();
    c.nodes[good].wait_exit(WAIT).await.unwrap();
    c.nodes[p].kill(Signal::SIGKILL).unwrap();
    c.nodes[p].wait_exit(WAIT).await.unwrap();
    c.pg_stop_immediate(p);

    let until = Instant::now() + Duration::from_secs(TTL + 5 * LOOP_WAIT + 5);
    while Instant::now() < until {
        let leader = c.leader().await;
        if leader.as_deref() == Some(&name(lagging)) || c.status(lagging, "/primary").await == Some(200) {
            c.dump("lagging replica promoted");
            panic!("the lagging replica {} took over (leader key {leader:?})", name(lagging));
        }
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(c.leader().await, None, "nobody took the expired key");
    assert!(
        c.node(lagging).log().contains("exceeds maximum replication lag"),
        "the lagging replica says why it does not take over"
    );

    c.nodes[good].restart().unwrap();
    let np = c.wait_primary(START_TIMEOUT, &[p, lagging]).await;
    assert_eq!(np, good, "the caught-up replica is promoted, not the lagging {}", name(lagging));
    c.wait_row(np, "last", WAIT).await;
}

/// `kill -9` of the primary's postmaster with the agent alive: the agent notices at once (not at its next loop:
/// loop_wait is long here) and starts PostgreSQL again as the primary it was (no promotion, so the timeline stays),
/// writes succeed again well before the ttl, and the leader key never changes hands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crash_on_the_primary_is_restarted_in_place() {
    let loop_wait = 10;
    let c = Cluster::start(Options { loop_wait, ..Options::default() }).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let leader = name(p);
    let timeline_sql = "SELECT timeline_id FROM pg_control_checkpoint()";
    let timeline = c.sql(p, timeline_sql).await.unwrap()[0][0].clone();
    let old = c.postmaster_pid(p).expect("postmaster.pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(old), Signal::SIGKILL).unwrap();
    let crashed = Instant::now();
    let mut seen = Vec::new();
    let mut restarted_after = None;
    loop {
        let holder = c.leader().await;
        if holder.as_deref() != Some(leader.as_str()) {
            seen.push(holder);
        }
        if restarted_after.is_none() && c.postmaster_pid(p).is_some_and(|pid| pid != old) {
            restarted_after = Some(crashed.elapsed());
        }
        if restarted_after.is_some() && c.writable(p).await {
            break;
        }
        if crashed.elapsed() > Duration::from_secs(TTL) {
            c.dump("no restart in place");
            panic!("PostgreSQL not writable again within the ttl after a crash");
        }
        tokio::time::sleep(POLL).await;
    }
    let restarted_after = restarted_after.unwrap_or_default();
    assert!(
        restarted_after < Duration::from_secs(loop_wait),
        "the restart began {restarted_after:?} after the crash: the agent waited for its next loop"
    );
    let took = crashed.elapsed();
    eprintln!("writable again {took:?} after the crash");
    assert!(seen.is_empty(), "the leader key changed hands: {seen:?}");
    assert!(c.node(p).log().contains("starting primary after failure"), "started as the primary it was");
    assert_eq!(c.sql(p, timeline_sql).await.unwrap()[0][0], timeline, "no promotion, no new timeline");
    // A few more loops: still the same leader, nobody else promoted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(c.etcd.get(LEADER_KEY).await.unwrap().as_deref(), Some(leader.as_str()));
    assert_eq!(c.primaries().await, vec![p]);
    let replicas: Vec<usize> = (0..3).filter(|r| *r != p).collect();
    c.insert(p, "after-crash").await;
    c.wait_streaming(&replicas, p, WAIT).await;
    for r in replicas {
        c.wait_row(r, "after-crash", WAIT).await;
    }
}

async fn wait_for<F, Fut>(c: &Cluster, what: &str, timeout: Duration, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    if patroni_testkit::wait_until(timeout, POLL, f).await.is_err() {
        c.dump(what);
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

/// The primary's agent dies but its PostgreSQL keeps running and takes writes the new primary never sees (a
/// diverged timeline). Restarted, the old primary rewinds (`use_pg_rewind`) and follows the new one: its
/// diverged row is gone and new rows arrive. Also: a replica whose agent was SIGKILLed and restarted adopts its
/// running PostgreSQL and keeps streaming. Without the guardian, which would fence the orphan before the takeover
/// (tests/cluster_fencing.rs): the divergence comes from an installation that turned it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diverged_old_primary_rewinds_and_follows() {
    let mut c = Cluster::start(Options { guardian: false, ..Options::default() }).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let replicas: Vec<usize> = (0..3).filter(|r| *r != p).collect();

    // A replica's agent dies and comes back: PostgreSQL kept running and is adopted as it is.
    let r = replicas[0];
    let pid = c.postmaster_pid(r);
    c.nodes[r].kill(Signal::SIGKILL).unwrap();
    c.nodes[r].wait_exit(WAIT).await.unwrap();
    c.nodes[r].restart().unwrap();
    c.nodes[r].wait_for_api("/liveness", WAIT).await.unwrap();
    c.wait_streaming(&[r], p, WAIT).await;
    assert_eq!(c.postmaster_pid(r), pid, "the running replica was adopted, not restarted");
    c.insert(p, "before").await;
    for &r in &replicas {
        c.wait_row(r, "before", WAIT).await;
    }

    c.nodes[p].kill(Signal::SIGKILL).unwrap();
    c.nodes[p].wait_exit(WAIT).await.unwrap();
    let np = c.wait_primary_among(Duration::from_secs(TTL + LOOP_WAIT + 15), &replicas).await;
    c.insert(np, "after").await;
    // The orphaned old primary still takes writes: they exist nowhere else.
    c.sql(p, "INSERT INTO t VALUES ('diverged')").await.unwrap();
    c.sql(p, "CHECKPOINT").await.unwrap();
    c.pg_stop_immediate(p);

    c.nodes[p].restart().unwrap();
    c.wait_streaming(&[p], np, START_TIMEOUT).await;
    c.wait_row(p, "after", WAIT).await;
    let diverged = c.sql(p, "SELECT count(*) FROM t WHERE v = 'diverged'").await.unwrap();
    assert_eq!(diverged[0][0].as_deref(), Some("0"), "the diverged row was rewound away");
    c.insert(np, "later").await;
    c.wait_row(p, "later", WAIT).await;
}

/// Failover picks the replica with the highest `failover_priority` among the equally advanced ones, twice in a row
/// (the old primary rejoins in between), with Patroni's default loop_wait of 10 s: racing replicas read each
/// other's final WAL positions fresh from PostgreSQL and the departing primary says it is stopping, so the handover
/// does not wait for anyone's next loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_prefers_the_highest_failover_priority() {
    let tags = (1..=3).map(|prio| Some(format!("{{failover_priority: {prio}}}"))).collect();
    let loop_wait = 10;
    let mut c = Cluster::start(Options { tags, loop_wait, ..Options::default() }).await;
    for round in 0..2 {
        let p = c.wait_primary(WAIT, &[]).await;
        let value = format!("before-{round}");
        c.insert(p, &value).await;
        let replicas: Vec<usize> = (0..3).filter(|r| *r != p).collect();
        for &r in &replicas {
            c.wait_row(r, &value, WAIT).await;
        }
        let best = replicas.iter().copied().max().unwrap();
        // A graceful stop: both replicas end at the same position, so the priority decides.
        let asked = Instant::now();
        c.nodes[p].kill(Signal::SIGTERM).unwrap();
        let np = c.wait_primary(WAIT, &[p]).await;
        let took = asked.elapsed();
        eprintln!("round {round}: {} took over {took:?} after SIGTERM", name(np));
        assert_eq!(np, best, "{} has the highest failover_priority", name(best));
        assert!(took < Duration::from_secs(loop_wait), "the handover waited for a loop: {took:?}");
        c.nodes[p].wait_exit(WAIT).await.unwrap();
        let restarted = Instant::now();
        c.nodes[p].restart().unwrap();
        c.wait_streaming(&[p], np, START_TIMEOUT).await;
        eprintln!("round {round}: {} streams again {:?} after its agent restarted", name(p), restarted.elapsed());
    }
}

/// The primary's agent freezes (SIGSTOP) past the ttl: its key expires and a replica takes over. Thawed, the old
/// agent sees another leader, demotes its still-running primary at once and follows the new one. Without the
/// guardian (turned off here): with it, the frozen primary is fenced before the takeover (tests/cluster_fencing.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_primary_that_lost_its_key_demotes_when_it_wakes() {
    let mut c = Cluster::start(Options { guardian: false, ..Options::default() }).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let replicas: Vec<usize> = (0..3).filter(|r| *r != p).collect();
    c.nodes[p].kill(Signal::SIGSTOP).unwrap();
    let np = c.wait_primary_among(Duration::from_secs(TTL + LOOP_WAIT + 15), &replicas).await;
    c.insert(np, "new-leader").await;
    assert!(c.writable(p).await, "the frozen agent's PostgreSQL still runs as a primary (split brain to end)");

    c.nodes[p].kill(Signal::SIGCONT).unwrap();
    let thawed = Instant::now();
    wait_for(&c, "the old primary to stop taking writes", Duration::from_secs(LOOP_WAIT + 15), || async {
        !c.writable(p).await
    })
    .await;
    eprintln!("old primary read-only {:?} after waking", thawed.elapsed());
    assert_eq!(c.leader().await.as_deref(), Some(name(np).as_str()), "the new leader keeps its key");
    c.wait_streaming(&[p], np, START_TIMEOUT).await;
    c.wait_row(p, "new-leader", WAIT).await;
}

/// The primary's PostgreSQL crashes and cannot start again (a broken `postgresql.auto.conf`): the agent gives the
/// key away at once instead of holding it for primary_start_timeout, reports the role `demoted` to
/// `on_role_change`, and a replica takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_primary_that_cannot_start_hands_over_as_demoted() {
    let o = Options {
        postgresql_extra: vec!["callbacks: {on_role_change: \"true\", on_start: \"true\"}".into()],
        ..Options::default()
    };
    let c = Cluster::start(o).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let auto_conf = c.data_dir(p).join("postgresql.auto.conf");
    std::fs::write(&auto_conf, "foo=bar\n").unwrap();
    let pid = c.postmaster_pid(p).expect("postmaster.pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let others: Vec<usize> = (0..3).filter(|r| *r != p).collect();
    // Well below primary_start_timeout (300 s by default): the key goes as soon as the start failed.
    let np = c.wait_primary_among(Duration::from_secs(TTL + 30), &others).await;
    let log = c.node(p).log();
    assert!(log.contains("removed leader key after trying and failing to start postgres"), "{}", name(p));
    assert!(log.contains("on_role_change demoted demo"), "on_role_change fired with the role demoted");
    c.insert(np, "after-failed-start").await;
}

/// With no leader and an empty data directory, a member whose `create_replica_methods` has a method marked
/// `no_leader` (here a copy of a base backup) creates its replica with it, starts, and — alone — takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_method_with_no_leader_bootstraps_without_a_leader() {
    let mut c = Cluster::start(Options { members: 1, ..Options::default() }).await;
    c.insert(0, "in-the-backup").await;
    let backup = c.node(0).dir().join("backup");
    let bin = patroni_testkit::pg_bin_dir().unwrap();
    let status = std::process::Command::new(bin.join("pg_basebackup"))
        .arg("-D")
        .arg(&backup)
        .args(["-X", "stream", "-c", "fast", "-h", "127.0.0.1", "-U", "replicator"])
        .arg("-p")
        .arg(c.pg_port(0).to_string())
        .env("PGPASSWORD", "rep-pass")
        .unprivileged()
        .status()
        .unwrap();
    assert!(status.success(), "pg_basebackup: {status}");
    c.nodes[0].kill(Signal::SIGTERM).unwrap();
    c.nodes[0].wait_exit(WAIT).await.unwrap();
    assert_eq!(c.leader().await, None, "the only member released the key");

    // Member 1 with the restore method only; it must not wait for a leader.
    let script = c.node(0).dir().join("restore.sh");
    std::fs::write(&script, "#!/bin/sh\nset -e\nfor a; do case $a in --datadir=*) d=${a#--datadir=};; esac; done\nmkdir -p \"$d\"\ncp -a \"$BACKUP\"/. \"$d\"/\nchmod 700 \"$d\"\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = Options {
        members: 2,
        postgresql_extra: vec![
            "create_replica_methods: [restore]".into(),
            format!("restore: {{command: \"env BACKUP={} {}\", no_leader: 1}}", backup.display(), script.display()),
        ],
        ..Options::default()
    };
    let node = c.spawn(1, &o);
    c.nodes.push(node);
    let np = c.wait_primary_among(START_TIMEOUT, &[1]).await;
    assert!(c.node(np).log().contains("trying to bootstrap (without leader)"), "used the no_leader method");
    c.wait_row(np, "in-the-backup", WAIT).await;
}
