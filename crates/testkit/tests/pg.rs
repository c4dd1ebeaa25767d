//! Real PostgreSQL servers: start (as the unprivileged user when root), query, stop/start again, replica, cleanup.

use std::time::Duration;

use patroni_testkit::{pid_alive, PgServer, StopMode};

#[tokio::test]
async fn select_one_and_a_table() {
    let pg = PgServer::start().await.unwrap();
    assert_eq!(pg.query("select 1").await.unwrap(), vec![vec![Some("1".to_string())]]);

    pg.execute("create table t (id int primary key, name text); insert into t values (1, 'a'), (2, null)")
        .await
        .unwrap();
    let rows = pg.query("select id, name from t order by id").await.unwrap();
    assert_eq!(rows, vec![vec![Some("1".into()), Some("a".into())], vec![Some("2".into()), None]]);
    assert_eq!(pg.query_value("select count(*) from t").await.unwrap().as_deref(), Some("2"));

    // Runs as the unprivileged user when root.
    let owner = pg.query_value("select current_setting('data_directory')").await.unwrap().unwrap();
    assert_eq!(std::path::PathBuf::from(owner), pg.data_dir());
    assert!(pg.connstr().contains(&format!("port={}", pg.port())));
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    assert_eq!(client.query_one("select current_user::text", &[]).await.unwrap().get::<_, String>(0), "postgres");
}

#[tokio::test]
async fn socket_connections_are_trusted_and_passwords_are_checked() {
    let pg = PgServer::builder().password("s3cret").setting("application_name", "kit").start().await.unwrap();
    let (client, connection) = tokio_postgres::connect(&pg.socket_connstr(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let row = client.query_one("show application_name", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "kit");

    let wrong = format!("host=127.0.0.1 port={} user=postgres password=nope dbname=postgres", pg.port());
    assert!(tokio_postgres::connect(&wrong, tokio_postgres::NoTls).await.is_err());
}

#[tokio::test]
async fn stop_and_start_again_keeps_data() {
    let mut pg = PgServer::start().await.unwrap();
    pg.execute("create table kept (x int); insert into kept values (42)").await.unwrap();
    let first = pg.pid().unwrap();

    pg.stop(StopMode::Fast).await.unwrap();
    assert!(!pid_alive(first));
    assert!(pg.query("select 1").await.is_err());

    pg.start_again().await.unwrap();
    assert_eq!(pg.query_value("select x from kept").await.unwrap().as_deref(), Some("42"));

    // Crash recovery after an immediate stop.
    pg.stop(StopMode::Immediate).await.unwrap();
    pg.start_again().await.unwrap();
    assert_eq!(pg.query_value("select x from kept").await.unwrap().as_deref(), Some("42"));
}

#[tokio::test]
async fn drop_stops_postmaster_and_backends() {
    let pg = PgServer::start().await.unwrap();
    let client = pg.client().await.unwrap();
    let backend: i32 = client.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    let postmaster = pg.pid().unwrap();
    let data = pg.data_dir();
    drop(pg);
    assert!(!pid_alive(postmaster), "postmaster {postmaster} survived drop");
    assert!(!pid_alive(backend as u32), "backend {backend} survived drop");
    assert!(!data.exists());
}

#[tokio::test]
async fn a_streaming_replica() {
    let primary = PgServer::start().await.unwrap();
    primary.execute("create table r (x int); insert into r values (7)").await.unwrap();
    let replica = primary.start_replica().await.unwrap();
    assert_ne!(replica.port(), primary.port());
    assert_eq!(replica.query_value("select pg_is_in_recovery()").await.unwrap().as_deref(), Some("t"));
    assert_eq!(replica.query_value("select x from r").await.unwrap().as_deref(), Some("7"));

    primary.execute("insert into r values (8)").await.unwrap();
    patroni_testkit::wait_for("the row to replicate", Duration::from_secs(10), Duration::from_millis(50), || async {
        match replica.query_value("select count(*) from r").await {
            Ok(Some(n)) if n == "2" => Ok(()),
            Ok(other) => Err(format!("{other:?} rows")),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn init_only_leaves_it_stopped() {
    let mut pg = PgServer::builder().initdb_arg("--data-checksums").init().await.unwrap();
    assert!(pg.data_dir().join("PG_VERSION").exists());
    assert!(pg.pid().is_none());
    let control =
        pg.run_tool("pg_controldata", &[pg.data_dir().to_str().unwrap()], Duration::from_secs(10)).await.unwrap();
    assert!(control.contains("Data page checksum version:           1"), "{control}");
    pg.start_again().await.unwrap();
    assert_eq!(pg.query_value("show data_checksums").await.unwrap().as_deref(), Some("on"));
}

#[tokio::test]
async fn startup_failure_quotes_the_log() {
    let err = PgServer::builder().setting("shared_buffers", "not-a-size").start().await.unwrap_err().to_string();
    assert!(err.contains("exited during startup"), "{err}");
    assert!(err.contains("shared_buffers"), "{err}");
}

#[tokio::test]
async fn test_dir_drop_stops_a_postgres_started_by_code_under_test() {
    let pg = PgServer::builder().init().await.unwrap();
    let dir = patroni_testkit::TestDir::new().unwrap();
    let data = dir.join("node1");
    assert!(std::process::Command::new("cp").arg("-a").arg(pg.data_dir()).arg(&data).status().unwrap().success());
    // As code under test would: pg_ctl, which detaches the postmaster from us.
    let mut pg_ctl = std::process::Command::new(pg.bin_dir().join("pg_ctl"));
    pg_ctl
        .args(["start", "-w", "-t", "30", "-s", "-l"])
        .arg(dir.join("pg.log"))
        .arg("-D")
        .arg(&data)
        .args(["-o", &format!("-p {} -k {}", patroni_testkit::free_port(), dir.path().display())])
        .stdout(std::process::Stdio::null());
    patroni_testkit::UnprivilegedCommand::unprivileged(&mut pg_ctl);
    assert!(pg_ctl.status().unwrap().success());
    let pid: u32 =
        std::fs::read_to_string(data.join("postmaster.pid")).unwrap().lines().next().unwrap().parse().unwrap();
    assert!(pid_alive(pid));
    drop(dir);
    assert!(!pid_alive(pid), "postmaster {pid} survived TestDir drop");
}

#[tokio::test]
async fn tls_verify_full_with_the_test_ca() {
    let pg = PgServer::builder().tls().start().await.unwrap();
    assert_eq!(pg.query_value("show ssl").await.unwrap().as_deref(), Some("on"));
    let ca = pg.certs().unwrap().ca_cert.display().to_string();
    let conninfo =
        format!("host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={ca}", pg.port());
    let out = pg
        .run_tool(
            "psql",
            &[&conninfo, "-tAc", "select ssl from pg_stat_ssl where pid = pg_backend_pid()"],
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(out.trim(), "t");
}
