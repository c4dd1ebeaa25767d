//! Custom bootstrap methods: a failed one is moved aside (never deleted), a good one gets roles, post_bootstrap,
//! the configured pg_hba back, and honours `recovery_conf`.

mod common;

use std::path::PathBuf;

use common::*;
use patroni_postgres::{BootstrapMethod, BootstrapSettings, CustomBootstrap, Postgres};

#[tokio::test]
async fn failed_custom_bootstrap_is_moved_aside_and_a_good_one_works() {
    if !patroni_testkit::run_unprivileged("failed_custom_bootstrap_is_moved_aside_and_a_good_one_works") {
        return;
    }
    init_logging();
    let bin = bin_dir();
    let (dir, _leftovers) = test_dir();
    let args = dir.join("bootstrap-args");
    let failing = write_script(
        &dir.join("failing.sh"),
        &format!(
            "echo \"$@\" > {}\nfor a in \"$@\"; do case $a in --datadir=*) d=${{a#--datadir=}};; esac; done\n\
             mkdir -p $d && echo half-made > $d/partial\nexit 1\n",
            args.display()
        ),
    );
    let s = settings(&dir, "node1");
    let data_dir = s.data_dir.clone();
    let mut pg = Postgres::new(s.clone()).await.unwrap();
    let bootstrap = BootstrapSettings {
        method: BootstrapMethod::Custom(CustomBootstrap {
            command: failing.display().to_string(),
            options: vec![("arg1".into(), "value1".into())],
            ..Default::default()
        }),
        ..BootstrapSettings::initdb(vec![])
    };
    let err = pg.bootstrap(&bootstrap).await.unwrap_err().to_string();
    assert!(err.contains("failing.sh failed (exit code 1)"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&args).unwrap(),
        format!("--scope=demo --datadir={} --arg1=value1\n", data_dir.display())
    );
    assert!(!data_dir.exists(), "the half-made data directory is moved away");
    let moved: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("node1_"))
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(std::fs::read_to_string(moved[0].join("partial")).unwrap(), "half-made\n");

    // A custom method that clones another cluster with pg_basebackup (the usual "restore a backup" shape),
    // plus a post_bootstrap script that receives a connection string and a PGPASSFILE.
    let source = bootstrap_primary(&dir, "source").await;
    let post_log = dir.join("post");
    let clone = write_script(
        &dir.join("clone.sh"),
        &format!(
            "for a in \"$@\"; do case $a in --datadir=*) d=${{a#--datadir=}};; esac; done\n\
             PGPASSWORD={REPL_PASSWORD} {bin}/pg_basebackup -D $d -X stream -h 127.0.0.1 -p {} -U replicator\n",
            source.port()
        ),
    );
    let post = write_script(
        &dir.join("post.sh"),
        &format!(
            "echo \"$1\" > {0}\necho \"$PGPASSFILE\" >> {0}\n{bin}/psql \"$1\" -Atc 'select 42' >> {0}\n",
            post_log.display()
        ),
    );
    let mut s2 = s.clone();
    // The clone carries the source's role passwords; ours are set again by the bootstrap.
    s2.superuser.password = Some("new-su-password".into());
    let mut cloned = Postgres::new(s2).await.unwrap();
    let bootstrap = BootstrapSettings {
        method: BootstrapMethod::Custom(CustomBootstrap { command: clone.display().to_string(), ..Default::default() }),
        post_bootstrap: Some(post.display().to_string()),
        ..BootstrapSettings::initdb(vec![])
    };
    cloned.bootstrap(&bootstrap).await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node1")));
    let post_out = std::fs::read_to_string(&post_log).unwrap();
    let lines: Vec<&str> = post_out.lines().collect();
    assert_eq!(lines[0], format!("dbname=postgres user=postgres host=127.0.0.1 port={}", cloned.port()));
    assert_eq!(lines[1], s.pgpass.display().to_string());
    assert_eq!(lines[2], "42");
    let db = connect(&tcp_params(&cloned, "postgres", "new-su-password")).await;
    assert!(!db.in_recovery().await.unwrap());
    assert_eq!(
        db.system_identifier().await.unwrap(),
        source.db().await.unwrap().system_identifier().await.unwrap(),
        "same cluster"
    );
    let hba = std::fs::read_to_string(cloned.data_dir().join("pg_hba.conf")).unwrap();
    assert!(!hba.contains("trust\n") || hba.contains("local all all trust"), "temporary trust rules are gone: {hba}");
    assert!(!hba.contains("\ttrust"), "{hba}");
}

#[tokio::test]
async fn custom_bootstrap_with_recovery_conf_promotes_at_target() {
    if !patroni_testkit::run_unprivileged("custom_bootstrap_with_recovery_conf_promotes_at_target") {
        return;
    }
    init_logging();
    let bin = bin_dir();
    let (dir, _leftovers) = test_dir();
    let source = bootstrap_primary(&dir, "source").await;
    let clone = write_script(
        &dir.join("clone.sh"),
        &format!(
            "for a in \"$@\"; do case $a in --datadir=*) d=${{a#--datadir=}};; esac; done\n\
             PGPASSWORD={REPL_PASSWORD} {bin}/pg_basebackup -D $d -X stream -h 127.0.0.1 -p {} -U replicator\n",
            source.port()
        ),
    );
    let s = settings(&dir, "node1");
    let mut pg = Postgres::new(s).await.unwrap();
    let recovery_conf =
        [("restore_command", "false"), ("recovery_target", "immediate"), ("recovery_target_action", "promote")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let bootstrap = BootstrapSettings {
        method: BootstrapMethod::Custom(CustomBootstrap {
            command: clone.display().to_string(),
            recovery_conf: Some(recovery_conf),
            ..Default::default()
        }),
        ..BootstrapSettings::initdb(vec![])
    };
    pg.bootstrap(&bootstrap).await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node1")));
    let info = pg.cluster_info().await.unwrap();
    assert!(!info.in_recovery);
    assert_eq!(info.timeline, 2, "promoted at the recovery target onto a new timeline");
    assert!(!pg.data_dir().join("recovery.signal").exists());
    let conf = std::fs::read_to_string(pg.data_dir().join("postgresql.conf")).unwrap();
    assert!(!conf.contains("recovery.conf"), "a primary has no recovery section: {conf}");
}

#[tokio::test]
async fn custom_bootstrap_keeps_existing_recovery_conf_and_no_params() {
    if !patroni_testkit::run_unprivileged("custom_bootstrap_keeps_existing_recovery_conf_and_no_params") {
        return;
    }
    init_logging();
    let bin = bin_dir();
    let (dir, _leftovers) = test_dir();
    let source = bootstrap_primary(&dir, "source").await;
    let s = settings(&dir, "node1");
    let argc = dir.join("argc");
    // A backup tool that writes its own recovery configuration, as pgBackRest does; with no_params it gets no
    // --scope/--datadir, so the data directory is baked into the command line.
    let restore = write_script(
        &dir.join("restore.sh"),
        &format!(
            "echo $# > {argc}\nd={data}\n\
             PGPASSWORD={REPL_PASSWORD} {bin}/pg_basebackup -D $d -X stream -h 127.0.0.1 -p {port} -U replicator\n\
             touch $d/recovery.signal\n\
             printf \"restore_command = 'false'\\nrecovery_target = 'immediate'\\nrecovery_target_action = 'promote'\\n\" \
             >> $d/postgresql.auto.conf\n",
            argc = argc.display(),
            data = s.data_dir.display(),
            port = source.port()
        ),
    );
    let mut pg = Postgres::new(s).await.unwrap();
    let bootstrap = BootstrapSettings {
        method: BootstrapMethod::Custom(CustomBootstrap {
            command: restore.display().to_string(),
            no_params: true,
            keep_existing_recovery_conf: true,
            ..Default::default()
        }),
        ..BootstrapSettings::initdb(vec![])
    };
    pg.bootstrap(&bootstrap).await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node1")));
    assert_eq!(std::fs::read_to_string(&argc).unwrap(), "0\n");
    let info = pg.cluster_info().await.unwrap();
    assert!(!info.in_recovery);
    assert_eq!(info.timeline, 2, "the tool's own recovery settings were used");
    let auto = std::fs::read_to_string(pg.data_dir().join("postgresql.auto.conf")).unwrap();
    assert!(!auto.contains("recovery_target"), "recovery settings are cleaned up once promoted: {auto}");
}

/// As with Patroni, the custom method creates the data directory itself: a tool that refuses an existing one
/// works, and a directory it creates with a loose mode is tightened so PostgreSQL starts.
#[tokio::test]
async fn custom_bootstrap_creates_the_data_directory_itself() {
    if !patroni_testkit::run_unprivileged("custom_bootstrap_creates_the_data_directory_itself") {
        return;
    }
    init_logging();
    let bin = bin_dir();
    let (dir, _leftovers) = test_dir();
    let source = bootstrap_primary(&dir, "source").await;
    let restore = write_script(
        &dir.join("restore.sh"),
        &format!(
            "for a in \"$@\"; do case $a in --datadir=*) d=${{a#--datadir=}};; esac; done\n\
             if [ -e \"$d\" ]; then echo \"$d already exists\" >&2; exit 3; fi\n\
             mkdir -m 0755 \"$d\"\n\
             PGPASSWORD={REPL_PASSWORD} {bin}/pg_basebackup -D \"$d\" -X stream -h 127.0.0.1 -p {} -U replicator\n",
            source.port()
        ),
    );
    let s = settings(&dir, "node1");
    let data_dir = s.data_dir.clone();
    assert!(!data_dir.exists());
    let mut pg = Postgres::new(s).await.unwrap();
    let bootstrap = BootstrapSettings {
        method: BootstrapMethod::Custom(CustomBootstrap {
            command: restore.display().to_string(),
            ..Default::default()
        }),
        ..BootstrapSettings::initdb(vec![])
    };
    pg.bootstrap(&bootstrap).await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node1")));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&data_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "mode {mode:o}");
    let db = connect(&tcp_params(&pg, "postgres", SU_PASSWORD)).await;
    assert!(!db.in_recovery().await.unwrap());
}
