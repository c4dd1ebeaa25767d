//! Parameter changes (reload vs pending restart, decided by PostgreSQL) and callbacks with documented arguments.

mod common;

use std::time::Duration;

use common::*;
use patroni_postgres::{CallbackScripts, Postgres, StopMode};

#[tokio::test]
async fn reload_applies_and_restart_only_parameters_are_pending() {
    if !patroni_testkit::run_unprivileged("reload_applies_and_restart_only_parameters_are_pending") {
        return;
    }
    init_logging();
    let (dir, _leftovers) = test_dir();
    let mut pg = bootstrap_primary(&dir, "node1").await;
    let su = tcp_params(&pg, "postgres", SU_PASSWORD);
    let show = |name: &'static str| {
        let su = su.clone();
        async move {
            let db = connect(&su).await;
            let v: String = db.query_one(&format!("SHOW {name}"), &[]).await.unwrap().get(0);
            v
        }
    };
    assert_eq!(show("work_mem").await, "4MB");

    let hba = pg.settings().pg_hba.clone();
    let ident = vec!["map1 sysuser pguser".to_string()];
    let mut params = pg.settings().parameters.clone();
    params.insert("work_mem".into(), "8MB".into());
    let out = pg.update_config(params.clone(), hba.clone(), ident).await.unwrap();
    assert!(out.reloaded);
    assert!(out.pending_restart.is_empty(), "{:?}", out.pending_restart);
    assert_eq!(show("work_mem").await, "8MB");
    assert!(std::fs::read_to_string(pg.data_dir().join("pg_ident.conf")).unwrap().contains("map1 sysuser pguser"));

    // Unchanged configuration: nothing to reload.
    let out = pg.update_config(params.clone(), hba.clone(), vec!["map1 sysuser pguser".into()]).await.unwrap();
    assert!(!out.reloaded);

    params.insert("shared_buffers".into(), "32MB".into());
    let out = pg.update_config(params.clone(), hba.clone(), vec!["map1 sysuser pguser".into()]).await.unwrap();
    assert!(out.reloaded);
    assert_eq!(out.pending_restart.len(), 1, "{:?}", out.pending_restart);
    assert_eq!(out.pending_restart[0].name, "shared_buffers");
    assert_eq!(out.pending_restart[0].new_value, "32MB");
    assert!(pg.cluster_info().await.unwrap().pending_restart);
    assert_eq!(show("shared_buffers").await, "16MB");

    // A controlled parameter lives on the postmaster command line: reported by comparison.
    params.insert("max_connections".into(), "40".into());
    let out = pg.update_config(params.clone(), hba.clone(), vec!["map1 sysuser pguser".into()]).await.unwrap();
    let names: Vec<&str> = out.pending_restart.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["max_connections", "shared_buffers"]);
    assert_eq!(out.pending_restart[0].old_value, "30");
    assert_eq!(out.pending_restart[0].new_value, "40");

    pg.restart(StopMode::Fast).await.unwrap();
    assert_eq!(show("shared_buffers").await, "32MB");
    assert_eq!(show("max_connections").await, "40");
    assert!(!pg.cluster_info().await.unwrap().pending_restart);
}

#[tokio::test]
async fn every_callback_fires_with_documented_arguments() {
    if !patroni_testkit::run_unprivileged("every_callback_fires_with_documented_arguments") {
        return;
    }
    init_logging();
    let (dir, _leftovers) = test_dir();
    let log = dir.join("callbacks.log");
    let script = write_script(&dir.join("cb.sh"), &format!("echo \"$@\" >> {}\n", log.display()));
    let cb = script.display().to_string();
    let scripts = CallbackScripts {
        on_start: Some(cb.clone()),
        on_stop: Some(cb.clone()),
        on_restart: Some(cb.clone()),
        on_reload: Some(cb.clone()),
        on_role_change: Some(cb.clone()),
    };
    let mut s1 = settings(&dir, "node1");
    s1.callbacks = scripts.clone();
    let mut primary = Postgres::new(s1).await.unwrap();
    primary
        .bootstrap(&patroni_postgres::BootstrapSettings::initdb(vec![]))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node1")));
    primary.wait_for_callbacks().await;
    primary.reload().await.unwrap();
    primary.wait_for_callbacks().await;
    primary.restart(StopMode::Fast).await.unwrap();
    primary.wait_for_callbacks().await;
    primary.db().await.unwrap().create_physical_slot("node2").await.unwrap();

    let mut s2 = settings(&dir, "node2");
    s2.callbacks = scripts;
    let fence_ok = dir.join("fence-ok");
    let before_stop_log = dir.join("before_stop.log");
    s2.pre_promote =
        Some(write_script(&dir.join("fence.sh"), &format!("test -f {}\n", fence_ok.display())).display().to_string());
    s2.before_stop = Some(
        write_script(&dir.join("before_stop.sh"), &format!("echo ran >> {}\n", before_stop_log.display()))
            .display()
            .to_string(),
    );
    let mut replica = Postgres::new(s2).await.unwrap();
    replica.create_replica(Some(&member_address(&primary)), false).await.unwrap();
    let rec = replica.follow_settings(Some(&member_address(&primary)));
    replica.start(Some(rec)).await.unwrap();
    replica.wait_for_callbacks().await;
    // A failing pre_promote (fencing) script aborts the promotion.
    let err = replica.promote().await.unwrap_err().to_string();
    assert!(err.starts_with("pre_promote script failed, not promoting"), "{err}");
    assert!(replica.db().await.unwrap().in_recovery().await.unwrap());
    std::fs::write(&fence_ok, "").unwrap();
    replica.promote().await.unwrap();
    replica.wait_for_callbacks().await;
    replica.stop(StopMode::Fast).await.unwrap();
    replica.wait_for_callbacks().await;
    primary.stop(StopMode::Fast).await.unwrap();
    primary.wait_for_callbacks().await;

    assert_eq!(std::fs::read_to_string(&before_stop_log).unwrap(), "ran\n", "before_stop runs before stopping");
    let got = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        got,
        "on_start primary demo\non_reload primary demo\non_restart primary demo\non_start replica demo\n\
         on_role_change primary demo\non_stop primary demo\non_stop primary demo\n"
    );
    let _ = Duration::ZERO;
}
