//! Our SQL connections speak TLS with libpq's sslmode semantics.

mod common;

use std::time::Duration;

use common::*;
use patroni_postgres::{BootstrapSettings, ConnParams, Db, Postgres};

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

/// One `openssl req -x509` certificate (CA:TRUE, SAN IP:127.0.0.1) as the server's certificate, its CA file and
/// the client certificate, as Patroni's acceptance suite and many deployments set it up. libpq (OpenSSL) trusts
/// a server presenting exactly the root certificate; so must we, for verify-ca and verify-full, and the server
/// must take the same certificate as a client certificate.
#[tokio::test]
async fn openssl_self_signed_certificate_as_server_root_and_client_certificate() {
    if !patroni_testkit::run_unprivileged("openssl_self_signed_certificate_as_server_root_and_client_certificate") {
        return;
    }
    init_logging();
    let (dir, _leftovers) = test_dir();
    // Its CN is the role `cert` authentication logs in.
    let certs =
        patroni_testkit::TestCerts::openssl_self_signed(&dir.create_dir("tls", 0o755).unwrap(), "certuser").unwrap();
    let mut s = settings(&dir, "node1");
    s.parameters.insert("ssl".into(), "on".into());
    s.parameters.insert("ssl_cert_file".into(), certs.server_cert.display().to_string());
    s.parameters.insert("ssl_key_file".into(), certs.server_key.display().to_string());
    s.parameters.insert("ssl_ca_file".into(), certs.ca_cert.display().to_string());
    s.pg_hba = vec![
        "local all all trust".into(),
        "hostssl all certuser 127.0.0.1/32 cert".into(),
        "hostssl all all 127.0.0.1/32 md5".into(),
        "hostnossl all all 127.0.0.1/32 reject".into(),
    ];
    let mut pg = Postgres::new(s).await.unwrap();
    pg.bootstrap(&BootstrapSettings::initdb(vec![])).await.unwrap_or_else(|e| panic!("{e}\n{}", log_of(&dir, "node1")));

    let base = tcp_params(&pg, "postgres", SU_PASSWORD);
    let timeout = Duration::from_secs(10);
    let root = certs.ca_cert.display().to_string();
    let ssl_in_use = |db: Db| async move {
        let on: bool =
            db.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
        on
    };
    for mode in ["verify-ca", "verify-full", "require"] {
        let db = Db::connect(&base.clone().with("sslmode", mode).with("sslrootcert", &root), timeout)
            .await
            .unwrap_or_else(|e| panic!("sslmode={mode}: {e}"));
        assert!(ssl_in_use(db).await, "{mode}");
    }
    // The certificate names IP 127.0.0.1, not localhost: verify-full by that name fails, verify-ca does not.
    let by_name = base.clone().with("host", "localhost").with("sslrootcert", &root);
    let err = Db::connect(&by_name.clone().with("sslmode", "verify-full"), timeout).await.unwrap_err().to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    Db::connect(&by_name.with("sslmode", "verify-ca"), timeout).await.unwrap();
    // Another self-signed certificate as root: not trusted.
    let other = patroni_testkit::TestCerts::openssl_self_signed(&dir.create_dir("other", 0o755).unwrap(), "x").unwrap();
    for mode in ["verify-ca", "verify-full"] {
        let params = base.clone().with("sslmode", mode).with("sslrootcert", other.ca_cert.display().to_string());
        let err = Db::connect(&params, timeout).await.unwrap_err().to_string();
        assert!(err.to_lowercase().contains("certificate"), "{mode}: {err}");
    }

    // Client certificate authentication with the same certificate: no password.
    let su =
        Db::connect(&base.clone().with("sslmode", "verify-full").with("sslrootcert", &root), timeout).await.unwrap();
    su.execute("CREATE ROLE certuser LOGIN").await.unwrap();
    let certuser = ConnParams::new()
        .with("host", "127.0.0.1")
        .with("port", pg.port().to_string())
        .with("user", "certuser")
        .with("dbname", "postgres")
        .with("sslrootcert", &root)
        .with("sslcert", certs.client_cert.display().to_string())
        .with("sslkey", certs.client_key.display().to_string());
    for mode in ["verify-ca", "verify-full"] {
        let db = Db::connect(&certuser.clone().with("sslmode", mode), timeout)
            .await
            .unwrap_or_else(|e| panic!("certuser sslmode={mode}: {e}\n{}", log_of(&dir, "node1")));
        let user: String = db.query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
        assert_eq!(user, "certuser");
        assert!(ssl_in_use(db).await, "{mode}");
    }
    // Without the client certificate `cert` authentication refuses.
    let anonymous = ConnParams::new()
        .with("host", "127.0.0.1")
        .with("port", pg.port().to_string())
        .with("user", "certuser")
        .with("dbname", "postgres")
        .with("sslmode", "verify-full")
        .with("sslrootcert", &root);
    assert!(Db::connect(&anonymous, timeout).await.is_err());
    // Another self-signed client certificate is not trusted by the server.
    let stranger = certuser
        .with("sslmode", "verify-full")
        .with("sslcert", other.client_cert.display().to_string())
        .with("sslkey", other.client_key.display().to_string());
    assert!(Db::connect(&stranger, timeout).await.is_err());
}
