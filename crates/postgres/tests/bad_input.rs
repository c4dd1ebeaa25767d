//! Bad input gets a clear error and leaves data untouched.

mod common;

use std::path::PathBuf;

use common::*;
use patroni_postgres::{Binaries, BootstrapSettings, Postgres, StopMode};

fn snapshot(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if let Ok(bytes) = std::fs::read(&p) {
            out.push((p, bytes));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn missing_binaries_foreign_data_dir_and_port_in_use() {
    if !patroni_testkit::run_unprivileged("missing_binaries_foreign_data_dir_and_port_in_use") {
        return;
    }
    init_logging();
    let (dir, _leftovers) = test_dir();

    let mut s = settings(&dir, "node1");
    s.binaries = Binaries::in_dir("/nonexistent/bin");
    let err = Postgres::new(s).await.unwrap_err().to_string();
    assert_eq!(
        err,
        "PostgreSQL binary `postgres` not found (/nonexistent/bin/postgres is missing or not executable; check \
         postgresql.bin_dir)"
    );

    // A data directory owned by someone else (root's /etc stands in for it).
    let mut s = settings(&dir, "node1");
    s.data_dir = PathBuf::from("/etc");
    let before = snapshot(&s.data_dir);
    let mut pg = Postgres::new(s).await.unwrap();
    let err = pg.start(None).await.unwrap_err().to_string();
    assert!(err.starts_with("data directory /etc: is owned by uid 0"), "{err}");
    assert_eq!(snapshot(std::path::Path::new("/etc")), before);

    // Port in use: refused before any file is written.
    let mut pg = bootstrap_primary(&dir, "node1").await;
    pg.stop(StopMode::Fast).await.unwrap();
    let blocker = std::net::TcpListener::bind(("127.0.0.1", pg.port())).unwrap();
    let before = snapshot(pg.data_dir());
    let err = pg.start(None).await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!("cannot start PostgreSQL: port {} on 127.0.0.1 is already in use (postgresql.listen)", pg.port())
    );
    assert_eq!(snapshot(pg.data_dir()), before);
    assert!(!pg.is_running());
    drop(blocker);
    pg.start(None).await.unwrap();

    // Bootstrapping over existing data is refused outright.
    let mut again = Postgres::new(pg.settings().clone()).await.unwrap();
    let err = again.bootstrap(&BootstrapSettings::initdb(vec![])).await.unwrap_err().to_string();
    assert!(err.contains("is not empty; refusing to bootstrap"), "{err}");
    assert!(pg.data_dir().join("PG_VERSION").exists());

    // A data directory we may not read is neither bootstrapped into nor moved.
    let mut s = settings(&dir, "node8");
    s.data_dir = PathBuf::from("/root/pgdata");
    let mut denied = Postgres::new(s).await.unwrap();
    let err = denied.bootstrap(&BootstrapSettings::initdb(vec![])).await.unwrap_err().to_string();
    assert!(err.starts_with("data directory /root/pgdata: Permission denied"), "{err}");

    // Bad initdb options are named.
    let s = settings(&dir, "node9");
    let mut bad = Postgres::new(s).await.unwrap();
    let err = bad.bootstrap(&BootstrapSettings::initdb(vec!["--pwfile=/x".into()])).await.unwrap_err().to_string();
    assert_eq!(err, "invalid configuration: pwfile option for initdb is not allowed");
}
