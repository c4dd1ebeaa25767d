//! Rejoining after a crash (single-user crash recovery before pg_rewind), and a failed pg_rewind: data kept unless
//! `remove_data_directory_on_rewind_failure` says otherwise.

mod common;

use std::time::Duration;

use common::*;
use patroni_postgres::{Postgres, StopMode};

async fn rows(pg: &Postgres, v: &str) -> i64 {
    match pg.db().await {
        Ok(db) => db.query_one("SELECT count(*) FROM t WHERE v = $1", &[&v]).await.map(|r| r.get(0)).unwrap_or(-1),
        Err(_) => -1,
    }
}

#[tokio::test]
async fn crashed_primary_is_recovered_then_rewound_and_a_failed_rewind_is_handled() {
    if !patroni_testkit::run_unprivileged("crashed_primary_is_recovered_then_rewound_and_a_failed_rewind_is_handled") {
        return;
    }
    init_logging();
    let (dir, _leftovers) = test_dir();
    // Archiving fails until `archive-ok` exists, so segments pile up as .ready on the primary.
    let archive = dir.create_dir("archive", 0o755).unwrap();
    let ok_flag = dir.join("archive-ok");
    let mut s1 = settings(&dir, "node1");
    s1.parameters.insert("archive_mode".into(), "on".into());
    s1.parameters
        .insert("archive_command".into(), format!("test -f {} && cp %p {}/%f", ok_flag.display(), archive.display()));
    let mut n1 = Postgres::new(s1).await.unwrap();
    n1.bootstrap(&patroni_postgres::BootstrapSettings::initdb(vec!["--data-checksums".into()]))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node1")));
    n1.db().await.unwrap().execute("CREATE TABLE t (v text)").await.unwrap();
    n1.db().await.unwrap().create_physical_slot("node2").await.unwrap();
    let mut n2 = Postgres::new(settings(&dir, "node2")).await.unwrap();
    n2.create_replica(Some(&member_address(&n1)), false).await.unwrap();
    let rec = n2.follow_settings(Some(&member_address(&n1)));
    n2.start(Some(rec)).await.unwrap();
    n1.db().await.unwrap().execute("INSERT INTO t VALUES ('base')").await.unwrap();
    wait_until("replica caught up", Duration::from_secs(30), || async { rows(&n2, "base").await == 1 }).await;

    // The primary crashes after a last write the replica may or may not have; the replica is promoted.
    n1.db().await.unwrap().execute("INSERT INTO t VALUES ('lost')").await.unwrap();
    n1.stop(StopMode::Immediate).await.unwrap();
    assert!(!n1.controldata().await.unwrap().cluster_state.is_clean_shutdown());
    n2.promote().await.unwrap();
    n2.db().await.unwrap().execute("INSERT INTO t VALUES ('tl2')").await.unwrap();

    let mut s1 = n1.settings().clone();
    s1.use_pg_rewind = true;
    let mut n1 = Postgres::new(s1).await.unwrap();
    let status = n1.data_dir().join("pg_wal/archive_status");
    let ready = |suffix: &'static str| {
        let status = status.clone();
        move || {
            std::fs::read_dir(&status)
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(suffix))
                .count()
        }
    };
    assert!(ready(".ready")() > 0, "segments waiting for the archiver");
    std::fs::write(&ok_flag, "").unwrap();
    // The rewind runs crash recovery in single-user mode first: pg_rewind refuses an unclean cluster, so its
    // success shows it happened.
    n1.rewind(&member_address(&n2)).await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node1")));
    assert!(std::fs::read_dir(&archive).unwrap().count() > 0, "ready segments were archived before the rewind");
    n2.db().await.unwrap().create_physical_slot("node1").await.unwrap();
    n1.follow(Some(&member_address(&n2))).await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node1")));
    n2.db().await.unwrap().execute("INSERT INTO t VALUES ('after')").await.unwrap();
    wait_until("node1 follows node2", Duration::from_secs(30), || async { rows(&n1, "after").await == 1 }).await;
    assert_eq!(rows(&n1, "tl2").await, 1);

    // Now node2 diverges: node1 is promoted while node2, stopped, is started alone and writes.
    n2.stop(StopMode::Fast).await.unwrap();
    n1.promote().await.unwrap();
    n1.db().await.unwrap().execute("INSERT INTO t VALUES ('tl3')").await.unwrap();
    n2.start(None).await.unwrap();
    n2.db().await.unwrap().execute("INSERT INTO t VALUES ('split')").await.unwrap();
    n2.stop(StopMode::Fast).await.unwrap();

    // pg_rewind itself failing (a stand-in that exits 1) keeps the data unless configured otherwise.
    let fakebin = dir.create_dir("fakebin", 0o755).unwrap();
    for e in std::fs::read_dir(bin_dir()).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "pg_rewind" {
            std::os::unix::fs::symlink(e.path(), fakebin.join(e.file_name())).unwrap();
        }
    }
    write_script(&fakebin.join("pg_rewind"), "echo 'pg_rewind: error: simulated failure' >&2\nexit 1\n");
    let mut s_fail = n2.settings().clone();
    s_fail.use_pg_rewind = true;
    s_fail.binaries = patroni_postgres::Binaries::in_dir(&fakebin);
    let mut failing = Postgres::new(s_fail).await.unwrap();
    let error = failing.rewind(&member_address(&n1)).await.unwrap_err().to_string();
    assert!(error.contains("simulated failure"), "{error}");
    assert!(failing.is_initialized(), "data kept when removal is not configured");

    let mut s_remove = failing.settings().clone();
    s_remove.remove_data_directory_on_rewind_failure = true;
    let mut remove = Postgres::new(s_remove).await.unwrap();
    let error = remove.rewind(&member_address(&n1)).await.unwrap_err().to_string();
    assert!(error.contains("remove_data_directory_on_rewind_failure"), "{error}");
    assert!(remove.data_directory_empty());
    assert!(remove.data_dir().exists(), "the directory itself stays, emptied");
    let mut s2 = remove.settings().clone();
    s2.binaries = n1.settings().binaries.clone();
    let mut remove = Postgres::new(s2).await.unwrap();
    n1.db().await.unwrap().create_physical_slot("node2").await.ok();
    remove.create_replica(Some(&member_address(&n1)), false).await.unwrap();
    remove.follow(Some(&member_address(&n1))).await.unwrap();
    wait_until("rebuilt node2 streams", Duration::from_secs(30), || async { rows(&remove, "tl3").await == 1 }).await;
    assert_eq!(rows(&remove, "split").await, 0);
}
