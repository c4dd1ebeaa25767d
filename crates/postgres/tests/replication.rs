//! Replicas: pg_basebackup and streaming, custom replica methods with fallback, promotion, split brain, rewind.

mod common;

use std::time::Duration;

use common::*;
use patroni_postgres::{Postgres, ReplicaMethod, Role, StopMode};

async fn count_rows(pg: &Postgres, marker: &str) -> i64 {
    match pg.db().await {
        Ok(db) => db
            .query_one("SELECT count(*) FROM t WHERE v = $1", &[&marker])
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(-1),
        Err(_) => -1,
    }
}

async fn insert(pg: &Postgres, marker: &str) {
    pg.db().await.unwrap().query("INSERT INTO t VALUES ($1)", &[&marker]).await.unwrap();
}

#[tokio::test]
async fn basebackup_replica_streams_then_promote_split_and_rewind() {
    if !patroni_testkit::run_unprivileged("basebackup_replica_streams_then_promote_split_and_rewind") {
        return;
    }
    init_logging();
    let (dir, _leftovers) = test_dir();
    let mut primary = bootstrap_primary(&dir, "node1").await;
    primary.db().await.unwrap().execute("CREATE TABLE t (v text)").await.unwrap();
    primary.db().await.unwrap().create_physical_slot("node2").await.unwrap();

    let mut s2 = settings(&dir, "node2");
    s2.use_pg_rewind = true;
    s2.basebackup = vec!["--checkpoint=fast".into()];
    let mut replica = Postgres::new(s2).await.unwrap();
    let method = replica.create_replica(Some(&member_address(&primary)), false).await.unwrap();
    assert_eq!(method, "basebackup");
    let recovery = replica.follow_settings(Some(&member_address(&primary)));
    replica.start(Some(recovery)).await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node2")));
    assert_eq!(replica.role(), Role::Replica);
    let conf = std::fs::read_to_string(replica.data_dir().join("postgresql.conf")).unwrap();
    assert!(conf.contains("primary_slot_name = 'node2'"), "{conf}");
    assert!(conf.contains("passfile="), "{conf}");
    assert!(!conf.contains(REPL_PASSWORD));
    assert!(replica.data_dir().join("standby.signal").exists());

    insert(&primary, "before-failover").await;
    wait_until("row on replica", Duration::from_secs(30), || async {
        count_rows(&replica, "before-failover").await == 1
    })
    .await;
    let info = replica.cluster_info().await.unwrap();
    assert!(info.in_recovery);
    assert_eq!(info.wal_receiver.as_ref().map(|w| w.status.as_str()), Some("streaming"));
    assert_eq!(info.wal_receiver.as_ref().and_then(|w| w.slot_name.as_deref()), Some("node2"));
    assert!(info.received_lsn.is_some() && info.replayed_lsn.is_some());
    let pinfo = primary.cluster_info().await.unwrap();
    assert_eq!(pinfo.replication.len(), 1);
    assert_eq!(pinfo.replication[0].application_name, "node2");
    assert_eq!(pinfo.replication[0].state.as_deref(), Some("streaming"));
    let slots = primary.db().await.unwrap().replication_slots().await.unwrap();
    assert!(slots.iter().any(|s| s.slot_name == "node2" && s.active));
    // The one-query positions agree with the full observation (same units: bytes from 0/0).
    let now = replica.db().await.unwrap().wal_positions().await.unwrap();
    assert!(now.in_recovery && now.flushed.is_none() && !now.replay_paused);
    assert!(now.received >= info.received_lsn.map(|l| l.0) && now.replayed >= info.replayed_lsn.map(|l| l.0));
    let pnow = primary.db().await.unwrap().wal_positions().await.unwrap();
    assert!(!pnow.in_recovery && pnow.received.is_none());
    assert!(pnow.flushed.is_some_and(|f| f >= pinfo.wal_position().0), "{pnow:?} vs {pinfo:?}");

    // An agent restarting next to a running replica adopts it, and a restart keeps it a streaming standby.
    let mut adopted = Postgres::new(replica.settings().clone()).await.unwrap();
    assert!(adopted.adopt().await.unwrap());
    assert_eq!(adopted.role(), Role::Replica);
    adopted.restart(StopMode::Fast).await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node2")));
    assert!(adopted.db().await.unwrap().in_recovery().await.unwrap());
    let conf = std::fs::read_to_string(adopted.data_dir().join("postgresql.conf")).unwrap();
    assert!(conf.contains("primary_slot_name = 'node2'"), "{conf}");
    insert(&primary, "after-adoption").await;
    wait_until("adopted replica streams", Duration::from_secs(30), || async {
        count_rows(&adopted, "after-adoption").await == 1
    })
    .await;
    drop(adopted);
    assert!(replica.adopt().await.unwrap());

    // Failover without stopping the old primary: both sides write.
    replica.promote().await.unwrap();
    assert_eq!(replica.role(), Role::Primary);
    assert!(!replica.data_dir().join("standby.signal").exists());
    assert!(!replica.db().await.unwrap().in_recovery().await.unwrap());
    assert_eq!(replica.cluster_info().await.unwrap().timeline, 2);
    let history = replica.timeline_history().await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].parent_timeline, 1);
    replica.set_synchronous_standby_names(Some("node1".into())).await.unwrap();
    let ssn: String =
        replica.db().await.unwrap().query_one("SHOW synchronous_standby_names", &[]).await.unwrap().get(0);
    assert_eq!(ssn, "node1");
    replica.set_synchronous_standby_names(None).await.unwrap();
    insert(&replica, "new-primary").await;
    insert(&primary, "old-primary-only").await;

    // The old primary rejoins: stop, compare stopped and again running read-only (following nobody, as the agent
    // brings a demoted primary back), rewind, follow.
    primary.stop(StopMode::Fast).await.unwrap();
    let new_leader = member_address(&replica);
    match primary.check_divergence(&new_leader).await.unwrap() {
        patroni_postgres::Divergence::Diverged { leader_timeline, .. } => assert_eq!(leader_timeline, 2),
        other => panic!("expected divergence, got {other:?}"),
    }
    let alone = primary.follow_settings(None);
    primary.start(Some(alone)).await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node1")));
    match primary.check_divergence(&new_leader).await.unwrap() {
        patroni_postgres::Divergence::Diverged { local, leader_timeline, .. } => {
            assert_eq!(leader_timeline, 2);
            assert!(local.in_recovery && local.timeline == 1, "{local:?}");
        }
        other => panic!("expected divergence while running, got {other:?}"),
    }
    primary.stop(StopMode::Fast).await.unwrap();
    let mut s1 = primary.settings().clone();
    s1.use_pg_rewind = true;
    let mut old = Postgres::new(s1).await.unwrap();
    assert!(old.rewind_possible().await.unwrap(), "the test cluster has data checksums or wal_log_hints");
    old.rewind(&new_leader).await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node1")));
    replica.db().await.unwrap().create_physical_slot("node1").await.unwrap();
    old.follow(Some(&new_leader)).await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node1")));
    assert_eq!(old.role(), Role::Replica);
    insert(&replica, "after-rewind").await;
    wait_until("row on rewound node", Duration::from_secs(30), || async {
        count_rows(&old, "after-rewind").await == 1
    })
    .await;
    assert_eq!(count_rows(&old, "new-primary").await, 1);
    assert_eq!(count_rows(&old, "old-primary-only").await, 0, "rewind discards the split-brain write");
    // A second check finds nothing to do, running and stopped.
    assert_eq!(old.check_divergence(&new_leader).await.unwrap(), patroni_postgres::Divergence::NotDiverged);
    old.stop(StopMode::Fast).await.unwrap();
    assert_eq!(old.check_divergence(&new_leader).await.unwrap(), patroni_postgres::Divergence::NotDiverged);
}

#[tokio::test]
async fn custom_replica_methods_documented_arguments_and_fallback() {
    if !patroni_testkit::run_unprivileged("custom_replica_methods_documented_arguments_and_fallback") {
        return;
    }
    init_logging();
    let (dir, _leftovers) = test_dir();
    let primary = bootstrap_primary(&dir, "node1").await;

    let record = dir.join("args");
    let broken = write_script(
        &dir.join("broken.sh"),
        &format!(
            "for a in \"$@\"; do echo \"$a\" >> {}; done\necho PGPASSFILE=$PGPASSFILE >> {}\nexit 3\n",
            record.display(),
            record.display()
        ),
    );
    let mut s2 = settings(&dir, "node2");
    s2.create_replica_methods = vec!["broken".into(), "basebackup".into()];
    s2.replica_methods.insert(
        "broken".into(),
        ReplicaMethod::from_options(vec![
            ("command".into(), broken.display().to_string()),
            ("envdir".into(), "/etc/wal-e".into()),
            ("use_iam".into(), "1".into()),
        ]),
    );
    let data_dir = s2.data_dir.clone();
    let pgpass = s2.pgpass.clone();
    let mut replica = Postgres::new(s2.clone()).await.unwrap();
    let method = replica.create_replica(Some(&member_address(&primary)), false).await.unwrap();
    assert_eq!(method, "basebackup", "falls back after the failing method");
    let args = std::fs::read_to_string(&record).unwrap();
    let expected = format!(
        "--envdir=/etc/wal-e\n--use_iam=1\n--scope=demo\n--role=replica\n--datadir={}\n--connstring=dbname=postgres \
         user=replicator host=127.0.0.1 port={}\nPGPASSFILE={}\n",
        data_dir.display(),
        primary.port(),
        pgpass.display()
    );
    assert_eq!(args, expected);
    assert!(replica.is_initialized());

    // Without a source only no_leader methods run; the connection string is then empty.
    std::fs::remove_file(&record).unwrap();
    let mut s3 = s2.clone();
    s3.replica_methods.insert(
        "broken".into(),
        ReplicaMethod::from_options(vec![
            ("command".into(), broken.display().to_string()),
            ("no_leader".into(), "1".into()),
            ("keep_data".into(), "True".into()),
        ]),
    );
    let mut r3 = Postgres::new(s3).await.unwrap();
    let err = r3.create_replica(None, false).await.unwrap_err().to_string();
    assert!(err.contains("broken"), "{err}");
    assert!(r3.is_initialized(), "keep_data leaves the data directory alone");
    let args = std::fs::read_to_string(&record).unwrap();
    assert!(args.starts_with("--no_leader=1\n--keep_data=True\n--scope=demo\n--role=replica\n"), "{args}");
    assert!(args.contains("\n--connstring=\n"), "{args}");
    let mut s4 = s2;
    s4.create_replica_methods = vec!["basebackup".into()];
    let mut r4 = Postgres::new(s4).await.unwrap();
    let err = r4.create_replica(None, false).await.unwrap_err().to_string();
    assert!(err.contains("no_leader"), "{err}");
}
