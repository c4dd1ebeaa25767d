//! Our SQL connections speak TLS with libpq's sslmode semantics.

mod common;

use std::time::Duration;

use common::*;
use patroni_postgres::{BootstrapSettings, Db, Postgres};

#[tokio::test]
async fn sslmodes_against_a_tls_only_server() {
    if !patroni_testkit::run_unprivileged("sslmodes_against_a_tls_only_server") {
        return;
    }
    init_logging();
    let (dir, _leftovers) = test_dir();
    let certs = patroni_testkit::TestCerts::generate(dir.path()).unwrap();
    let mut s = settings(&dir, "node1");
    s.parameters.insert("ssl".into(), "on".into());
    s.parameters.insert("ssl_cert_file".into(), certs.server_cert.display().to_string());
    s.parameters.insert("ssl_key_file".into(), certs.server_key.display().to_string());
    s.pg_hba = vec![
        "local all all trust".into(),
        "hostssl all all 127.0.0.1/32 md5".into(),
        "hostnossl all all 127.0.0.1/32 reject".into(),
    ];
    let mut pg = Postgres::new(s).await.unwrap();
    // The agent's own connections (default sslmode=prefer) negotiate TLS.
    pg.bootstrap(&BootstrapSettings::initdb(vec![])).await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node1")));

    let base = tcp_params(&pg, "postgres", SU_PASSWORD);
    let timeout = Duration::from_secs(10);
    let ssl_in_use = |db: Db| async move {
        let on: bool =
            db.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
        on
    };
    for mode in ["prefer", "require"] {
        let db = Db::connect(&base.clone().with("sslmode", mode), timeout).await.unwrap();
        assert!(ssl_in_use(db).await, "{mode}");
    }
    let ca = certs.ca_cert.display().to_string();
    for mode in ["verify-ca", "verify-full"] {
        let db = Db::connect(&base.clone().with("sslmode", mode).with("sslrootcert", &ca), timeout).await.unwrap();
        assert!(ssl_in_use(db).await, "{mode}");
    }
    let err = Db::connect(&base.clone().with("sslmode", "disable"), timeout).await.unwrap_err().to_string();
    assert!(err.contains("pg_hba.conf rejects connection"), "{err}");
    // A CA that did not sign the server certificate fails verification.
    let other = patroni_testkit::TestCerts::generate(&dir.create_dir("other", 0o755).unwrap()).unwrap();
    let err = Db::connect(
        &base.clone().with("sslmode", "verify-full").with("sslrootcert", other.ca_cert.display().to_string()),
        timeout,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}
