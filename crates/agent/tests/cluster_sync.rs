//! Synchronous replication on real 3-member clusters (`synchronous_mode`, `synchronous_mode_strict`): the `sync`
//! key and PostgreSQL's `synchronous_standby_names` agree on one standby, a commit is flushed there before it
//! returns, only that standby may take over when the primary dies, and in strict mode writes wait while no standby
//! can acknowledge them.
//!
//! The HA core's sync rules are unit- and simulation-tested; these tests prove the agent applies them to real
//! PostgreSQL (what it writes into `synchronous_standby_names`, what `pg_stat_replication` then shows).

mod common;

use std::time::{Duration, Instant};

use common::{name, Cluster, Options, LOOP_WAIT, POLL, START_TIMEOUT, TTL, WAIT};
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio_postgres::NoTls;

const SYNC_KEY: &str = "/service/demo/sync";

fn sync_options(strict: bool) -> Options {
    let mut dcs_extra = vec!["synchronous_mode: true".to_string()];
    if strict {
        dcs_extra.push("synchronous_mode_strict: true".into());
    }
    Options { dcs_extra, ..Options::default() }
}

/// The `sync` key as (leader, sync standbys), when it exists and is JSON.
async fn sync_key(c: &Cluster) -> Option<(Option<String>, Vec<String>)> {
    let text = c.etcd.get(SYNC_KEY).await.ok().flatten()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let leader = v["leader"].as_str().map(str::to_owned);
    let standbys = v["sync_standby"]
        .as_str()
        .map(|s| s.split(',').filter(|n| !n.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    Some((leader, standbys))
}

/// One text value from member `i` (`SHOW x`, a single-column query).
async fn one(c: &Cluster, i: usize, sql: &str) -> Result<Option<String>, String> {
    let rows = c.sql(i, sql).await?;
    Ok(rows.first().and_then(|r| r.first().cloned()).flatten())
}

/// `application_name -> sync_state` of the streaming rows of `pg_stat_replication` on `primary`.
async fn sync_states(c: &Cluster, primary: usize) -> Vec<(String, String)> {
    let sql = "SELECT application_name, sync_state FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1";
    c.sql(primary, sql)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| Some((r[0].clone()?, r[1].clone()?)))
        .collect()
}

/// (sync standby, async replica) once everything agrees: the `sync` key has `primary` as leader and names exactly
/// one member, `synchronous_standby_names` on the primary is that member (bare: Patroni quotes a name only when it is not a plain identifier or is FIRST/ANY), and
/// `pg_stat_replication` shows it `sync` and the other replica `async`.
async fn settled_roles(c: &Cluster, primary: usize) -> Option<(usize, usize)> {
    let (leader, standbys) = sync_key(c).await?;
    if leader.as_deref() != Some(name(primary).as_str()) {
        return None;
    }
    let [standby] = &standbys[..] else { return None };
    let sync = (0..3).find(|i| name(*i) == *standby)?;
    let other = (0..3).find(|i| *i != primary && *i != sync)?;
    let ssn = one(c, primary, "SHOW synchronous_standby_names").await.ok()??;
    if ssn != name(sync) {
        return None;
    }
    let states = sync_states(c, primary).await;
    let want = {
        let mut w = vec![(name(sync), "sync".to_string()), (name(other), "async".to_string())];
        w.sort();
        w
    };
    (states == want).then_some((sync, other))
}

/// Waits (bounded) for [`settled_roles`]; panics with the DCS and the logs otherwise.
async fn wait_roles(c: &Cluster, primary: usize, timeout: Duration) -> (usize, usize) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(roles) = settled_roles(c, primary).await {
            return roles;
        }
        if Instant::now() >= deadline {
            let ssn = one(c, primary, "SHOW synchronous_standby_names").await;
            let states = sync_states(c, primary).await;
            c.dump_dcs().await;
            c.dump("sync roles never settled");
            panic!(
                "no settled sync standby for {} within {timeout:?}: sync key {:?}, synchronous_standby_names \
                 {ssn:?}, pg_stat_replication {states:?}",
                name(primary),
                sync_key(c).await
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether the `/patroni` document of member `i` says `sync_standby: true`.
async fn says_sync_standby(c: &Cluster, i: usize) -> bool {
    match c.node(i).get("/patroni").await {
        Ok((200, body)) => {
            serde_json::from_str::<Value>(&body).ok().and_then(|v| v["sync_standby"].as_bool()).unwrap_or(false)
        }
        _ => false,
    }
}

/// `synchronous_mode: true`: the `sync` key, `synchronous_standby_names` and `pg_stat_replication` name the same
/// single standby; a commit (`synchronous_commit = on`) has been flushed on it when COMMIT returns — its flush
/// position, both as the primary's `pg_stat_replication` and as the standby itself report it, is past the
/// transaction's WAL — and with `synchronous_commit = remote_apply` the row is readable there at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_key_and_synchronous_standby_names_name_the_standby_that_flushes_each_commit() {
    let c = Cluster::start(sync_options(false)).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let (s, a) = wait_roles(&c, p, WAIT).await;
    eprintln!("primary {}, sync {}, async {}", name(p), name(s), name(a));

    let raw = c.etcd.get(SYNC_KEY).await.unwrap().unwrap();
    let key: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(key["leader"], name(p).as_str(), "sync key {raw}");
    assert_eq!(key["sync_standby"], name(s).as_str(), "sync key {raw}");
    assert_eq!(
        one(&c, p, "SHOW synchronous_standby_names").await.unwrap(),
        Some(name(s)),
        "Patroni's form for one standby: the bare member name (quote_standby_name leaves identifiers alone)"
    );
    assert_eq!(one(&c, p, "SHOW synchronous_commit").await.unwrap().as_deref(), Some("on"));
    // The members' own status agrees (a standby learns it from the key, at most a loop later).
    let agreed = patroni_testkit::wait_until(WAIT, POLL, || async {
        says_sync_standby(&c, s).await && !says_sync_standby(&c, a).await
    })
    .await;
    assert!(agreed.is_ok(), "/patroni of {} should say sync_standby and {}'s should not", name(s), name(a));

    // The position of the transaction's own WAL (its INSERT), taken inside it: the commit record comes after, so
    // once COMMIT returns the sync standby must have flushed past this. Several commits, to not pass by luck.
    c.insert(p, "warm-up").await;
    for n in 0..5 {
        let sql =
            format!("BEGIN; INSERT INTO t VALUES ('flushed-{n}'); SELECT pg_current_wal_insert_lsn()::text; COMMIT");
        let lsn = one(&c, p, &sql).await.unwrap().expect("an LSN");
        let seen_by_primary = c
            .sql(
                p,
                &format!(
                    "SELECT flush_lsn >= '{lsn}'::pg_lsn, flush_lsn::text FROM pg_stat_replication \
                     WHERE application_name = '{}'",
                    name(s)
                ),
            )
            .await
            .unwrap();
        assert_eq!(
            seen_by_primary.first().and_then(|r| r[0].as_deref()),
            Some("t"),
            "commit {n}: the sync standby's flush_lsn on the primary {seen_by_primary:?} is not past {lsn}"
        );
        let standby_sql =
            format!("SELECT pg_last_wal_receive_lsn() >= '{lsn}'::pg_lsn, pg_last_wal_receive_lsn()::text");
        let on_standby = c.sql(s, &standby_sql).await.unwrap();
        assert_eq!(
            on_standby[0][0].as_deref(),
            Some("t"),
            "commit {n}: the sync standby's own flushed position {on_standby:?} is not past {lsn}"
        );
    }

    // remote_apply: applied (so visible) on the sync standby when COMMIT returns — read without waiting.
    c.sql(p, "SET synchronous_commit = remote_apply; INSERT INTO t VALUES ('applied')").await.unwrap();
    let seen = one(&c, s, "SELECT count(*) FROM t WHERE v = 'applied'").await.unwrap();
    assert_eq!(seen.as_deref(), Some("1"), "a remote_apply commit is visible on the sync standby at once");
    // The async replica gets everything too, eventually.
    c.wait_row(a, "applied", WAIT).await;
}

/// The primary dies (agent SIGKILLed, PostgreSQL stopped immediately) right after a commit: the sync standby — and
/// not the async replica — takes over, it has the commit, and the sync key then names the old async replica as the
/// new sync standby.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_sync_standby_takes_over_and_the_other_replica_becomes_sync() {
    let mut c = Cluster::start(sync_options(false)).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let (s, a) = wait_roles(&c, p, WAIT).await;
    eprintln!("primary {}, sync {}, async {}", name(p), name(s), name(a));

    // Committed with synchronous_commit = on, and the primary dies at once (no waiting for any replica).
    c.insert(p, "before").await;
    c.nodes[p].kill(Signal::SIGKILL).unwrap();
    c.nodes[p].wait_exit(WAIT).await.unwrap();
    c.pg_stop_immediate(p);
    let died = Instant::now();

    // Both survivors are watched: the first to become a writable primary holding the key must be the sync one.
    let np = c.wait_primary_among(Duration::from_secs(TTL + LOOP_WAIT + 20), &[s, a]).await;
    eprintln!("new primary {} after {:?}", name(np), died.elapsed());
    assert_eq!(np, s, "the sync standby {} takes over, not the async {}", name(s), name(a));
    assert_eq!(c.status(a, "/primary").await, Some(503), "the async replica is not a primary");
    let before = one(&c, np, "SELECT count(*) FROM t WHERE v = 'before'").await.unwrap();
    assert_eq!(before.as_deref(), Some("1"), "the commit acknowledged before the crash survives on the new primary");

    // The old async replica follows the new primary and becomes its sync standby (the dead member's key may
    // linger for a ttl, but it does not stream, so it is never picked).
    c.wait_streaming(&[a], np, START_TIMEOUT).await;
    let (sync, other) = wait_roles_among(&c, np, a, WAIT).await;
    assert_eq!(sync, a);
    eprintln!("{} is the new sync standby; {} is gone ({other:?})", name(a), name(p));
    c.insert(np, "after").await;
    c.wait_row(a, "after", WAIT).await;
    c.wait_row(a, "before", WAIT).await;
}

/// [`wait_roles`] for a cluster with one live replica `standby`: the sync key names it with `primary` as leader,
/// `synchronous_standby_names` is it, and `pg_stat_replication` shows it `sync`. Returns it and whatever else streams.
async fn wait_roles_among(c: &Cluster, primary: usize, standby: usize, timeout: Duration) -> (usize, Option<usize>) {
    let deadline = Instant::now() + timeout;
    loop {
        let key = sync_key(c).await;
        let ssn = one(c, primary, "SHOW synchronous_standby_names").await.ok().flatten();
        let states = sync_states(c, primary).await;
        let key_ok = key
            .as_ref()
            .is_some_and(|(l, s)| l.as_deref() == Some(name(primary).as_str()) && s[..] == [name(standby)][..]);
        let ssn_ok = ssn.as_deref() == Some(name(standby).as_str());
        let state_ok = states.iter().any(|(n, st)| *n == name(standby) && st == "sync");
        if key_ok && ssn_ok && state_ok {
            let other = (0..3).find(|i| *i != primary && *i != standby && states.iter().any(|(n, _)| *n == name(*i)));
            return (standby, other);
        }
        if Instant::now() >= deadline {
            c.dump_dcs().await;
            c.dump("new sync standby not picked");
            panic!(
                "{} never became {}'s sync standby within {timeout:?}: sync key {key:?}, \
                 synchronous_standby_names {ssn:?}, pg_stat_replication {states:?}",
                name(standby),
                name(primary)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Connects to member `i` as the superuser; the connection task runs in the background.
async fn connect(c: &Cluster, i: usize) -> tokio_postgres::Client {
    let connstr =
        format!("host=127.0.0.1 port={} user=postgres password=secret dbname=postgres connect_timeout=3", c.pg_port(i));
    let (client, connection) = tokio_postgres::connect(&connstr, NoTls).await.expect("connects");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// `synchronous_mode_strict: true`, both replicas gone (agents SIGKILLed, PostgreSQL stopped immediately): the
/// primary sets `synchronous_standby_names` to `*` (and empties the sync key's standbys) and a write does not
/// return — not even with a 3 s `statement_timeout` (PostgreSQL disables the statement timeout before the commit
/// waits for a standby, so only a standby's acknowledgement ends the wait). Once one replica's agent is back, the
/// waiting commit completes (`*` matches any standby, so as soon as it streams), the primary names it as sync
/// standby, and new writes succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_blocks_writes_without_a_standby_until_one_returns() {
    let mut c = Cluster::start(sync_options(true)).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let (s, a) = wait_roles(&c, p, WAIT).await;
    eprintln!("primary {}, sync {}, async {}", name(p), name(s), name(a));
    c.insert(p, "before").await;

    for r in [s, a] {
        c.nodes[r].kill(Signal::SIGKILL).unwrap();
        c.nodes[r].wait_exit(WAIT).await.unwrap();
        c.pg_stop_immediate(r);
    }
    let star = patroni_testkit::wait_until(WAIT, POLL, || async {
        one(&c, p, "SHOW synchronous_standby_names").await.ok().flatten().as_deref() == Some("*")
    })
    .await;
    if star.is_err() {
        c.dump_dcs().await;
        c.dump("no '*'");
        panic!("synchronous_standby_names on {} never became '*' without replicas", name(p));
    }
    eprintln!("sync key with no replica: {:?}", c.etcd.get(SYNC_KEY).await.unwrap());

    // A write on its own connection: it must still be waiting well after its 3 s statement_timeout.
    let client = connect(&c, p).await;
    let blocked = tokio::spawn(async move {
        let r = client
            .simple_query("SET statement_timeout = '3s'; INSERT INTO t VALUES ('while-alone')")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        (r, client)
    });
    tokio::time::sleep(Duration::from_secs(6)).await;
    if blocked.is_finished() {
        let (r, _) = blocked.await.unwrap();
        c.dump("write not blocked");
        panic!("a write without any standby returned within 6 s in strict mode: {r:?}");
    }
    let waiting =
        one(&c, p, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND query LIKE '%while-alone%'")
            .await
            .unwrap()
            .unwrap();
    assert_eq!(waiting, "1", "the write waits for a synchronous standby (wait_event SyncRep)");
    let visible = one(&c, p, "SELECT count(*) FROM t WHERE v = 'while-alone'").await.unwrap();
    assert_eq!(visible.as_deref(), Some("0"), "the waiting commit is not visible to others yet");

    // One replica comes back: it is picked as sync standby, acknowledges, and the waiting commit returns.
    let back = Instant::now();
    c.nodes[s].restart().unwrap();
    let (r, client) = match tokio::time::timeout(START_TIMEOUT, blocked).await {
        Ok(joined) => joined.unwrap(),
        Err(_) => {
            c.dump_dcs().await;
            c.dump("write still blocked");
            panic!("the waiting write did not complete within {START_TIMEOUT:?} of {} coming back", name(s));
        }
    };
    eprintln!("the waiting write returned {:?} after {} came back", back.elapsed(), name(s));
    r.expect("the waiting commit completes once a standby acknowledges it");
    // Released by the returned standby's acknowledgement, not by the primary giving up on synchronous replication.
    let ssn = one(&c, p, "SHOW synchronous_standby_names").await.unwrap().unwrap_or_default();
    assert!(ssn == "*" || ssn == name(s), "synchronous_standby_names {ssn:?} when released");
    let states = sync_states(&c, p).await;
    assert!(states.contains(&(name(s), "sync".to_string())), "{} is a sync standby: {states:?}", name(s));
    client.simple_query("INSERT INTO t VALUES ('after')").await.expect("new writes succeed");
    // `*` matches any standby, so the commit is released as soon as the replica streams; then the primary names it
    // in `synchronous_standby_names` and the sync key.
    wait_roles_among(&c, p, s, WAIT).await;
    c.wait_row(s, "while-alone", WAIT).await;
    c.wait_row(s, "after", WAIT).await;
    assert_eq!(c.leader().await, Some(name(p)), "the primary kept the leader key throughout");
}

/// `maximum_lag_on_syncnode` with commits waiting for replay (`synchronous_commit: remote_apply`, set through the
/// dynamic configuration): the sync standby stops replaying (`pg_wal_replay_pause()`) while a large commit waits
/// for it; once its replay lag passes the limit the primary names the healthy async replica instead, the waiting
/// commit returns, `GET /sync` and `GET /async` answer for the new roles, and after replay resumes the stuck one
/// catches up and stays asynchronous (the current sync standby is preferred). Patroni's suite covers the same swap
/// while paused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_sync_standby_is_swapped_for_the_healthy_replica() {
    let mut o = sync_options(false);
    o.dcs_extra.push("maximum_lag_on_syncnode: 1048576".into());
    let c = Cluster::start(o).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let (s, a) = wait_roles(&c, p, WAIT).await;
    eprintln!("primary {}, sync {}, async {}", name(p), name(s), name(a));

    let patch = serde_json::json!({"postgresql": {"parameters": {"synchronous_commit": "remote_apply"}}});
    let (code, body) = c.node(p).request(reqwest::Method::PATCH, "/config", Some(&patch)).await.unwrap();
    assert_eq!(code, 200, "PATCH /config: {body}");
    let applied = patroni_testkit::wait_until(WAIT, POLL, || async {
        one(&c, p, "SHOW synchronous_commit").await.ok().flatten().as_deref() == Some("remote_apply")
    })
    .await;
    assert!(applied.is_ok(), "synchronous_commit never became remote_apply on {}", name(p));
    c.insert(p, "before").await;

    c.sql(s, "SELECT pg_wal_replay_pause()").await.expect("pauses replay on the sync standby");
    // About 13 MB of WAL in one commit, which waits for the (paused) sync standby to apply it.
    let client = connect(&c, p).await;
    let load = tokio::spawn(async move {
        client
            .simple_query("CREATE TABLE big AS SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 100000) g")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });

    let swapped =
        patroni_testkit::wait_until(WAIT, POLL, || async { settled_roles(&c, p).await == Some((a, s)) }).await;
    if swapped.is_err() {
        c.dump_dcs().await;
        c.dump("stuck standby not swapped");
        panic!(
            "{} (replay paused) was not replaced by {} as sync standby: sync key {:?}, pg_stat_replication {:?}",
            name(s),
            name(a),
            sync_key(&c).await,
            sync_states(&c, p).await
        );
    }
    let done = tokio::time::timeout(WAIT, load).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "the waiting commit returns once the healthy standby applied it: {done:?}");
    assert_eq!(c.status(a, "/sync").await, Some(200), "{} answers GET /sync", name(a));
    assert_eq!(c.status(s, "/async").await, Some(200), "{} answers GET /async", name(s));

    c.sql(s, "SELECT pg_wal_replay_resume()").await.expect("resumes replay");
    let caught_up = patroni_testkit::wait_until(WAIT, POLL, || async {
        one(&c, s, "SELECT count(*) FROM big").await.ok().flatten().as_deref() == Some("100000")
    })
    .await;
    assert!(caught_up.is_ok(), "{} never replayed the large commit after resuming", name(s));
    // Two more loops: the healthy current sync standby keeps its role.
    tokio::time::sleep(Duration::from_secs(2 * LOOP_WAIT + 1)).await;
    assert_eq!(settled_roles(&c, p).await, Some((a, s)), "the current sync standby is kept once the other catches up");
}
