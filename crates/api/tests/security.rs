//! Who may change the cluster: basic auth, allowlist (with members), TLS and mutual TLS.

mod common;

use common::*;
use patroni_api::client::{ApiClient, ClientSettings};
use patroni_api::cluster::ClusterDocument;
use patroni_api::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::TempDir;

fn creds(user: &str, pass: &str) -> Credentials {
    Credentials { username: user.into(), password: pass.into() }
}

#[tokio::test]
async fn unsafe_methods_need_basic_auth() {
    let mut settings = ServerSettings::new("127.0.0.1:0");
    settings.credentials = Some(creds("admin", "secret"));
    let server = TestServer::start_with(primary(), settings.clone()).await;
    let c = http();

    let r = c.post(server.url("/reload")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"Patroni\"");
    assert_eq!(r.text().await.unwrap(), "no auth header received");
    let r = c.post(server.url("/reload")).basic_auth("admin", Some("wrong")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (401, "not authenticated".into()));
    for (method, path) in [
        ("PATCH", "/config"),
        ("PUT", "/config"),
        ("DELETE", "/switchover"),
        ("DELETE", "/restart"),
        ("POST", "/switchover"),
        ("POST", "/unknown"),
    ] {
        let r = c
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), server.url(path))
            .body("{\"ttl\": 1}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
    }
    assert!(server.control.calls().is_empty(), "{:?}", server.control.calls());
    // Safe methods stay open.
    assert_eq!(c.get(server.url("/patroni")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(server.url("/config")).send().await.unwrap().status(), 200);

    let good =
        ApiClient::new(&ClientSettings { credentials: Some(creds("admin", "secret")), ..Default::default() }).unwrap();
    assert_eq!(good.reload(&server.api_url()).await.unwrap().status, 202);

    // Credentials change on reload.
    settings.credentials = Some(creds("admin", "rotated"));
    server.handle.reload(&settings).await.unwrap();
    assert_eq!(good.reload(&server.api_url()).await.unwrap().status, 401);
    server.stop().await;
}

#[tokio::test]
async fn allowlist_and_members() {
    let c = http();
    let mut settings = ServerSettings::new("127.0.0.1:0");
    settings.allowlist = vec!["10.0.0.0/8".into(), "192.0.2.1".into()];
    let server = TestServer::start_with(primary(), settings.clone()).await;
    let r = c.post(server.url("/reload")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (403, "Access is denied".into()));
    assert_eq!(c.get(server.url("/primary")).send().await.unwrap().status(), 200);

    // Members registered with a loopback api_url are let in when allowlist_include_members is on.
    settings.allowlist_include_members = true;
    server.handle.reload(&settings).await.unwrap();
    assert_eq!(c.post(server.url("/reload")).send().await.unwrap().status(), 202);
    let mut elsewhere = primary();
    let mut view = cluster();
    for m in &mut view.members {
        m.api_url = Some("http://10.1.1.1:8008/patroni".into());
    }
    elsewhere.cluster = Some(Arc::new(view.clone()));
    server.publish(elsewhere);
    assert_eq!(c.post(server.url("/reload")).send().await.unwrap().status(), 403);

    // Members only: POST /failsafe skips the member check (the primary calls it while the DCS is down).
    settings.allowlist.clear();
    server.handle.reload(&settings).await.unwrap();
    assert_eq!(c.post(server.url("/reload")).send().await.unwrap().status(), 403);
    let r = c.post(server.url("/failsafe")).body("{\"name\": \"x\"}").send().await.unwrap();
    assert_eq!(r.status(), 502, "reaches the handler (failsafe mode off)");

    // A loopback allowlist entry by name.
    settings.allowlist = vec!["localhost".into()];
    settings.allowlist_include_members = false;
    server.handle.reload(&settings).await.unwrap();
    assert_eq!(c.post(server.url("/reload")).send().await.unwrap().status(), 202);
    let _ = ClusterDocument::default();
    server.stop().await;
}

struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        ca.distinguished_name.push(DnType::CommonName, "patroni-rs test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        for (name, usage, sans) in [
            ("server", ExtendedKeyUsagePurpose::ServerAuth, vec!["localhost".to_string(), "127.0.0.1".to_string()]),
            ("client", ExtendedKeyUsagePurpose::ClientAuth, vec!["client".to_string()]),
        ] {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(sans).unwrap();
            p.is_ca = IsCa::ExplicitNoCa;
            p.extended_key_usages = vec![usage];
            p.distinguished_name.push(DnType::CommonName, name);
            let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        Self { dir }
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    fn tls(&self, verify: VerifyClient) -> TlsSettings {
        TlsSettings {
            certfile: self.path("server.pem"),
            keyfile: Some(self.path("server.key")),
            cafile: Some(self.path("ca.pem")),
            verify_client: verify,
            ..Default::default()
        }
    }

    fn client(&self, with_cert: bool) -> ApiClient {
        ApiClient::new(&ClientSettings {
            cacert: Some(self.path("ca.pem")),
            certfile: with_cert.then(|| self.path("client.pem")),
            keyfile: with_cert.then(|| self.path("client.key")),
            ..Default::default()
        })
        .unwrap()
    }
}

async fn tls_server(settings_tls: TlsSettings) -> (TestServer, String) {
    let mut settings = ServerSettings::new("127.0.0.1:0");
    settings.tls = Some(settings_tls);
    settings.http_extra_headers = vec![("X-Frame-Options".into(), "SAMEORIGIN".into())];
    settings.https_extra_headers = vec![("Strict-Transport-Security".into(), "max-age=31536000".into())];
    let server = TestServer::start_with(primary(), settings).await;
    let api = format!("https://127.0.0.1:{}/patroni", server.addr.port());
    (server, api)
}

#[tokio::test]
async fn tls_without_client_certificates() {
    let pki = Pki::new();
    let (server, api) = tls_server(pki.tls(VerifyClient::None)).await;
    let c = pki.client(false);
    let st = c.member_status(&api, std::time::Duration::from_secs(5)).await.unwrap();
    assert_eq!(st.role.as_deref(), Some("primary"));
    assert_eq!(c.reload(&api).await.unwrap().status, 202);
    // Both header sets with TLS.
    let raw_client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(pki.path("ca.pem")).unwrap()).unwrap())
        .build()
        .unwrap();
    let r = raw_client.get(api.replace("/patroni", "/health")).send().await.unwrap();
    assert_eq!(r.headers()["x-frame-options"], "SAMEORIGIN");
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    // Plain HTTP to the TLS port gets nowhere.
    assert!(http().get(server.url("/patroni")).send().await.is_err());
    // A client that does not trust our CA refuses the server.
    let untrusting = ApiClient::new(&ClientSettings::default()).unwrap();
    assert!(untrusting.member_status(&api, std::time::Duration::from_secs(5)).await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_required_refuses_clients_without_a_certificate() {
    let pki = Pki::new();
    let (server, api) = tls_server(pki.tls(VerifyClient::Required)).await;
    let anonymous = pki.client(false);
    let err = anonymous.member_status(&api, std::time::Duration::from_secs(5)).await;
    assert!(err.is_err(), "a client without certificate got in: {err:?}");
    let with_cert = pki.client(true);
    assert_eq!(
        with_cert.member_status(&api, std::time::Duration::from_secs(5)).await.unwrap().state.as_deref(),
        Some("running")
    );
    assert_eq!(with_cert.reload(&api).await.unwrap().status, 202);
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_optional_guards_unsafe_methods_only() {
    let pki = Pki::new();
    let (server, api) = tls_server(pki.tls(VerifyClient::Optional)).await;
    let anonymous = pki.client(false);
    assert!(anonymous.member_status(&api, std::time::Duration::from_secs(5)).await.is_ok());
    let r = anonymous.reload(&api).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (403, "client certificate required"));
    assert_eq!(pki.client(true).reload(&api).await.unwrap().status, 202);
    server.stop().await;
}

fn openssl(args: &[&str]) -> bool {
    std::process::Command::new("openssl").args(args).output().map(|o| o.status.success()).unwrap_or(false)
}

#[tokio::test]
async fn encrypted_keys_ciphers_and_bad_tls_settings() {
    let pki = Pki::new();
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(primary()));
    let bind = |tls: TlsSettings| {
        let rx = rx.clone();
        async move {
            let mut s = ServerSettings::new("127.0.0.1:0");
            s.tls = Some(tls);
            ApiServer::bind(&s, rx, Arc::new(RecordingControl::new())).await
        }
    };

    // verify_client without a CA bundle.
    let mut t = pki.tls(VerifyClient::Required);
    t.cafile = None;
    let e = bind(t).await.err().unwrap().to_string();
    assert!(e.contains("verify_client needs cafile"), "{e}");
    // Missing certificate file.
    let mut t = pki.tls(VerifyClient::None);
    t.certfile = Path::new("/nonexistent/cert.pem").to_owned();
    let e = bind(t).await.err().unwrap().to_string();
    assert!(e.starts_with("restapi.certfile: cannot read /nonexistent/cert.pem"), "{e}");
    // A key file holding no key.
    let mut t = pki.tls(VerifyClient::None);
    t.keyfile = Some(pki.path("ca.pem"));
    let e = bind(t).await.err().unwrap().to_string();
    assert!(e.contains("no private key found"), "{e}");
    // Cipher list naming nothing usable, then a usable one (the test keys are ECDSA).
    let mut t = pki.tls(VerifyClient::None);
    t.ciphers = Some("DHE-RSA-AES256-SHA".into());
    assert!(bind(t.clone()).await.is_err());
    t.ciphers = Some("ECDHE-ECDSA-AES128-GCM-SHA256:!SSLv3".into());
    assert!(bind(t).await.is_ok());

    // An encrypted PKCS#8 key (made by the openssl tool when present).
    let enc = pki.path("server-enc.key");
    if openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        pki.path("server.key").to_str().unwrap(),
        "-out",
        enc.to_str().unwrap(),
        "-passout",
        "pass:s3cret",
    ]) {
        let mut t = pki.tls(VerifyClient::None);
        t.keyfile = Some(enc.clone());
        let e = bind(t.clone()).await.err().unwrap().to_string();
        assert!(e.contains("keyfile_password is not set"), "{e}");
        t.keyfile_password = Some("wrong".into());
        let e = bind(t.clone()).await.err().unwrap().to_string();
        assert!(e.contains("wrong restapi.keyfile_password"), "{e}");
        t.keyfile_password = Some("s3cret".into());
        let mut s = ServerSettings::new("127.0.0.1:0");
        s.tls = Some(t);
        let server = TestServer::start_with(primary(), s).await;
        let api = format!("https://127.0.0.1:{}/patroni", server.addr.port());
        assert!(pki.client(false).member_status(&api, std::time::Duration::from_secs(5)).await.is_ok());
        server.stop().await;
    } else {
        eprintln!("openssl not found: encrypted key case skipped");
    }
}

/// The setup of Patroni's acceptance suite and of many deployments: one `openssl req -x509` certificate
/// (CA:TRUE) as `restapi.cafile`, server certificate and client certificate, with `verify_client: required`.
/// OpenSSL trusts a peer presenting exactly a certificate of the CA file; so must we, as server and as client.
#[tokio::test]
async fn one_openssl_self_signed_certificate_as_ca_server_and_client() {
    let dir = tempfile::tempdir().unwrap();
    let mk = |sub: &str| {
        let d = dir.path().join(sub);
        std::fs::create_dir(&d).unwrap();
        patroni_testkit::TestCerts::openssl_self_signed(&d, "patroni").unwrap()
    };
    let certs = mk("a");
    let tls = TlsSettings {
        certfile: certs.server_cert.clone(),
        keyfile: Some(certs.server_key.clone()),
        cafile: Some(certs.ca_cert.clone()),
        verify_client: VerifyClient::Required,
        ..Default::default()
    };
    let (server, api) = tls_server(tls).await;
    let settings = |c: &patroni_testkit::TestCerts, ca: &Path| ClientSettings {
        cacert: Some(ca.to_owned()),
        certfile: Some(c.client_cert.clone()),
        keyfile: Some(c.client_key.clone()),
        ..Default::default()
    };
    let timeout = std::time::Duration::from_secs(5);

    // patronictl: reads and an unsafe request.
    let c = ApiClient::new(&settings(&certs, &certs.ca_cert)).unwrap();
    assert_eq!(c.member_status(&api, timeout).await.unwrap().role.as_deref(), Some("primary"));
    assert_eq!(c.reload(&api).await.unwrap().status, 202);
    // The agent calling its peers.
    let peer = ApiClient::peer_http(&settings(&certs, &certs.ca_cert)).unwrap();
    assert_eq!(peer.get(&api).send().await.unwrap().status(), 200);
    // ctl.insecure: the server is not verified, the client certificate still gets us in.
    let insecure =
        ApiClient::new(&ClientSettings { insecure: true, cacert: None, ..settings(&certs, &certs.ca_cert) }).unwrap();
    assert_eq!(insecure.reload(&api).await.unwrap().status, 202);

    // Without a client certificate the server refuses the connection.
    let anonymous =
        ApiClient::new(&ClientSettings { certfile: None, keyfile: None, ..settings(&certs, &certs.ca_cert) }).unwrap();
    assert!(anonymous.member_status(&api, timeout).await.is_err());
    // Another self-signed certificate is not trusted: as a client certificate (the client trusts the server)…
    let other = mk("b");
    let stranger = ApiClient::new(&settings(&other, &certs.ca_cert)).unwrap();
    let err = stranger.member_status(&api, timeout).await.unwrap_err();
    assert!(matches!(err, patroni_api::client::ClientError::Http { .. }), "{err}");
    // …nor as the CA the client trusts the server with.
    let wrong_ca = ApiClient::new(&settings(&certs, &other.ca_cert)).unwrap();
    let err = format!("{:?}", wrong_ca.member_status(&api, timeout).await.unwrap_err());
    assert!(err.contains("InvalidCertificate"), "{err}");
    // The certificate names IP 127.0.0.1 only: a client connecting by another name refuses it.
    let by_name = api.replace("127.0.0.1", "localhost");
    let err = format!("{:?}", c.member_status(&by_name, timeout).await.unwrap_err());
    assert!(err.contains("NotValidForName"), "{err}");
    server.stop().await;
}
