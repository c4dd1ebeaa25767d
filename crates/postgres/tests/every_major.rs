//! What differs by PostgreSQL major, against a real server of the major under test (`PG_BIN_DIR`; CI runs this
//! file on every supported major, 12 to 18). Only `initdb`, `pg_ctl` and `postgres` are used, so it runs on the
//! server-only builds as well: the standby is a cold copy of the stopped primary instead of a pg_basebackup.

mod common;

use std::time::Duration;

use common::*;
use patroni_postgres::{Postgres, Role, StopMode, WalKeep};

async fn setting(pg: &Postgres, name: &str) -> Option<String> {
    let db = pg.db().await.unwrap();
    let rows = db.query("SELECT setting || COALESCE(unit, '') FROM pg_settings WHERE name = $1", &[&name]).await;
    rows.unwrap().first().map(|r| r.get(0))
}

#[tokio::test]
async fn state_queries_configuration_files_and_start_stop_on_this_major() {
    if !patroni_testkit::run_unprivileged("state_queries_configuration_files_and_start_stop_on_this_major") {
        return;
    }
    init_logging();
    let major = pg_version().major();
    let (dir, _leftovers) = test_dir();
    let mut primary = bootstrap_primary(&dir, "node1").await;
    assert_eq!(primary.version().major(), major);

    // The state query as a primary.
    let info = primary.cluster_info().await.unwrap();
    assert!(!info.in_recovery && info.wal_receiver.is_none() && info.replication.is_empty());
    assert_eq!((info.server_version / 10000, info.timeline), (major, 1));
    assert!(info.wal_position().as_u64() > 0 && !info.pending_restart);

    // The wal_keep parameter this major has, with Patroni's default (128MB, or 8 segments of 16MB).
    match primary.features().wal_keep() {
        WalKeep::Segments => {
            assert_eq!(major, 12);
            assert_eq!(setting(&primary, "wal_keep_segments").await.as_deref(), Some("8"));
            assert_eq!(setting(&primary, "wal_keep_size").await, None);
        }
        WalKeep::Size => {
            assert!(major >= 13);
            assert_eq!(setting(&primary, "wal_keep_size").await.as_deref(), Some("128MB"));
            assert_eq!(setting(&primary, "wal_keep_segments").await, None);
        }
    }
    primary.db().await.unwrap().execute("CREATE TABLE t (v text); INSERT INTO t VALUES ('a')").await.unwrap();
    assert!(primary.db().await.unwrap().create_physical_slot("node2").await.unwrap());

    // A standby from a cold copy of the cleanly stopped primary.
    primary.stop(StopMode::Fast).await.unwrap();
    let s2 = settings(&dir, "node2");
    let copied = std::process::Command::new("cp").arg("-a").arg(primary.data_dir()).arg(&s2.data_dir).status();
    assert!(copied.unwrap().success());
    primary.start(None).await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node1")));
    let mut standby = Postgres::new(s2).await.unwrap();
    let recovery = standby.follow_settings(Some(&member_address(&primary)));
    standby.start(Some(recovery)).await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node2")));
    assert_eq!(standby.role(), Role::Replica);
    assert!(standby.data_dir().join("standby.signal").exists());

    // primary_conninfo with the keywords this major's libpq knows, and no others.
    let conf = std::fs::read_to_string(standby.data_dir().join("postgresql.conf")).unwrap();
    let conninfo = conf.lines().find(|l| l.starts_with("primary_conninfo = ")).unwrap().to_string();
    assert!(conninfo.contains("gssencmode=prefer") && conninfo.contains("application_name=node2"), "{conninfo}");
    assert_eq!(conninfo.contains("channel_binding=prefer"), major >= 13, "{conninfo}");
    assert_eq!(conninfo.contains("sslnegotiation=postgres"), major >= 17, "{conninfo}");
    assert!(conf.contains("primary_slot_name = 'node2'") && conf.contains("recovery_target_timeline = 'latest'"));

    // The state query as a streaming standby (pg_stat_wal_receiver has no written_lsn before 13), and the
    // primary's view of it.
    primary.db().await.unwrap().execute("INSERT INTO t VALUES ('b')").await.unwrap();
    wait_until("the standby streaming the new row", Duration::from_secs(60), || async {
        let rows = match standby.db().await {
            Ok(db) => db.query("SELECT 1 FROM t WHERE v = 'b'", &[]).await.map(|r| r.len()).unwrap_or(0),
            Err(_) => 0,
        };
        let streaming =
            standby.cluster_info().await.is_ok_and(|i| i.wal_receiver.is_some_and(|w| w.status == "streaming"));
        rows == 1 && streaming
    })
    .await;
    let info = standby.cluster_info().await.unwrap();
    assert!(info.in_recovery && info.received_lsn.is_some() && info.replayed_lsn.is_some());
    assert_eq!(info.timeline, 1);
    let receiver = info.wal_receiver.clone().unwrap();
    assert_eq!((receiver.received_tli, receiver.slot_name.as_deref()), (Some(1), Some("node2")));
    assert!(receiver.flushed_lsn.is_some() && receiver.latest_end_lsn.is_some(), "{receiver:?}");
    assert_eq!(receiver.written_lsn.is_some(), major >= 13, "{receiver:?}");
    assert_eq!(receiver.sender_port, Some(i32::from(primary.port())));
    let positions = standby.db().await.unwrap().wal_positions().await.unwrap();
    assert!(positions.in_recovery && positions.received.is_some());
    let pinfo = primary.cluster_info().await.unwrap();
    assert_eq!(pinfo.replication.len(), 1, "{pinfo:?}");
    assert_eq!(pinfo.replication[0].application_name, "node2");
    assert_eq!(pinfo.replication[0].state.as_deref(), Some("streaming"));
    let slots = primary.db().await.unwrap().replication_slots().await.unwrap();
    assert!(slots.iter().any(|s| s.slot_name == "node2" && s.active), "{slots:?}");

    // A new primary_conninfo: a reload applies it from 13, 12 needs a restart.
    let started = info.postmaster_start_time;
    let mut recovery = standby.follow_settings(Some(&member_address(&primary)));
    if let Some(ci) = recovery.primary_conninfo.as_mut() {
        ci.set("sslmode", "disable");
    }
    standby.follow_with(recovery).await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node2")));
    wait_until("the WAL receiver using the new conninfo", Duration::from_secs(60), || async {
        standby
            .cluster_info()
            .await
            .is_ok_and(|i| i.wal_receiver.is_some_and(|w| w.conninfo.is_some_and(|c| c.contains("sslmode=disable"))))
    })
    .await;
    let restarted = standby.cluster_info().await.unwrap().postmaster_start_time != started;
    assert_eq!(restarted, major < 13, "restart for a primary_conninfo change on {major}");

    // Promotion, then both stop cleanly.
    standby.promote().await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node2")));
    assert_eq!(standby.role(), Role::Primary);
    let promoted = standby.cluster_info().await.unwrap();
    assert!(!promoted.in_recovery && promoted.wal_receiver.is_none());
    assert_eq!(promoted.timeline, 2);
    for pg in [&mut standby, &mut primary] {
        pg.stop(StopMode::Fast).await.unwrap();
        assert!(!pg.is_running());
    }
}
