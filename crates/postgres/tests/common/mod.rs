//! Shared helpers for the integration tests: a PostgreSQL instance in a test dir on a free port.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use patroni_postgres::{Binaries, BootstrapSettings, ConnParams, Credentials, Db, PgSettings, PgVersion, Postgres};
use patroni_testkit::TestDir;

pub const SU_PASSWORD: &str = "su-secret";
pub const REPL_PASSWORD: &str = "rep-secret";
pub const REWIND_PASSWORD: &str = "rw-secret";

/// The PostgreSQL binaries under test: `$PG_BIN_DIR`, else the newest under /usr/lib/postgresql (15 on the image).
pub fn bin_dir() -> String {
    patroni_testkit::pg_bin_dir().expect("PostgreSQL binaries").display().to_string()
}

/// The server version of the binaries under test.
pub fn pg_version() -> PgVersion {
    let run = std::process::Command::new(Path::new(&bin_dir()).join("postgres")).arg("--version").output();
    let out = run.expect("postgres --version");
    PgVersion::parse_version_output(&String::from_utf8_lossy(&out.stdout)).expect("a version")
}

pub fn init_logging() {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
}

/// PgSettings for member `name` with its data dir under `dir`, md5 auth for everything over TCP.
pub fn settings(dir: &TestDir, name: &str) -> PgSettings {
    let port = patroni_testkit::free_port();
    let mut s = PgSettings::new(name, "demo", dir.join(name), &format!("127.0.0.1:{port}"));
    s.binaries = Binaries::in_dir(bin_dir());
    s.pgpass = dir.join(format!("pgpass-{name}"));
    s.superuser = Credentials::new("postgres", Some(SU_PASSWORD));
    s.replication = Credentials::new("replicator", Some(REPL_PASSWORD));
    s.rewind = Some(Credentials::new("rewind_user", Some(REWIND_PASSWORD)));
    s.pg_hba = vec![
        "local all all trust".into(),
        "host all all 127.0.0.1/32 md5".into(),
        "host replication replicator 127.0.0.1/32 md5".into(),
    ];
    s.parameters.insert("unix_socket_directories".into(), dir.path().display().to_string());
    s.parameters.insert("shared_buffers".into(), "16MB".into());
    s.parameters.insert("max_connections".into(), "30".into());
    s.parameters.insert("fsync".into(), "off".into());
    s.log_file = Some(dir.join(format!("{name}.log")));
    s.pg_ctl_timeout = Duration::from_secs(30);
    s
}

pub async fn bootstrap_primary(dir: &TestDir, name: &str) -> Postgres {
    let s = settings(dir, name);
    let mut pg = Postgres::new(s).await.expect("binaries");
    pg.bootstrap(&BootstrapSettings::initdb(vec!["--data-checksums".into()]))
        .await
        .unwrap_or_else(|e| panic!("bootstrap: {e}\n{}", log_of(dir, name)));
    pg
}

pub fn log_of(dir: &TestDir, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

/// Connection params for `pg`'s TCP address as `user`/`password`.
pub fn tcp_params(pg: &Postgres, user: &str, password: &str) -> ConnParams {
    ConnParams::new()
        .with("host", "127.0.0.1")
        .with("port", pg.port().to_string())
        .with("user", user)
        .with("password", password)
        .with("dbname", "postgres")
}

pub async fn connect(params: &ConnParams) -> Db {
    Db::connect(params, Duration::from_secs(10)).await.expect("connect")
}

/// The member's address as the HA loop would hand it over (host and port of its conn_url).
pub fn member_address(pg: &Postgres) -> ConnParams {
    ConnParams::new().with("host", "127.0.0.1").with("port", pg.port().to_string())
}

pub fn write_script(path: &Path, body: &str) -> PathBuf {
    patroni_testkit::write_file(path, format!("#!/bin/sh\n{body}").as_bytes(), 0o755).expect("script");
    path.to_path_buf()
}

pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills every PostgreSQL left running under the test dir when a test fails half-way (the library deliberately
/// never stops PostgreSQL on drop). Declare it after the `TestDir` so it runs first.
pub struct KillLeftovers(pub PathBuf);

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.0) else { return };
        for e in entries.flatten() {
            let pidfile = e.path().join("postmaster.pid");
            let pid = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
            if let Some(pid) = pid {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGQUIT);
            }
        }
    }
}

pub fn test_dir() -> (TestDir, KillLeftovers) {
    let dir = TestDir::new().expect("test dir");
    let guard = KillLeftovers(dir.path().to_path_buf());
    (dir, guard)
}
