//! The verifiers against certificates made by `openssl req -x509` (CA:TRUE, SAN IP:127.0.0.1) and by a test CA.

use super::*;
use patroni_testkit::{TestCerts, TestDir};
use std::path::Path;

fn read_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    pem_certs(&std::fs::read(path).unwrap()).unwrap()
}

fn anchors(path: &Path) -> TrustAnchors {
    TrustAnchors::from_pem(&std::fs::read(path).unwrap()).unwrap()
}

fn openssl_cert(dir: &TestDir, sub: &str) -> TestCerts {
    TestCerts::openssl_self_signed(&dir.create_dir(sub, 0o755).unwrap(), "patroni").unwrap()
}

fn server(anchors: &TrustAnchors, hostname: Hostname) -> ServerVerifier {
    ServerVerifier::new(anchors, hostname, provider()).unwrap()
}

fn client(anchors: &TrustAnchors) -> ClientVerifier {
    ClientVerifier::new(anchors, ClientAuth::Required, provider()).unwrap()
}

fn name(n: &str) -> ServerName<'static> {
    ServerName::try_from(n.to_string()).unwrap()
}

fn verify_server(v: &ServerVerifier, cert: &CertificateDer<'_>, host: &str) -> Result<(), rustls::Error> {
    v.verify_server_cert(cert, &[], &name(host), &[], UnixTime::now()).map(drop)
}

#[test]
fn openssl_self_signed_certificate_is_trusted_when_it_is_the_ca() {
    let dir = TestDir::new().unwrap();
    let certs = openssl_cert(&dir, "a");
    let anchors = anchors(&certs.ca_cert);
    let presented = &read_certs(&certs.server_cert)[0];
    // What rustls alone says: the reason this crate exists.
    let webpki = WebPkiServerVerifier::builder_with_provider(anchors.roots(), provider()).build().unwrap();
    let err = webpki.verify_server_cert(presented, &[], &name("127.0.0.1"), &[], UnixTime::now()).unwrap_err();
    assert!(format!("{err:?}").contains("CaUsedAsEndEntity"), "{err:?}");

    verify_server(&server(&anchors, Hostname::Checked), presented, "127.0.0.1").unwrap();
    verify_server(&server(&anchors, Hostname::Ignored), presented, "127.0.0.1").unwrap();
    client(&anchors).verify_client_cert(presented, &[], UnixTime::now()).unwrap();
}

#[test]
fn another_self_signed_certificate_is_refused() {
    let dir = TestDir::new().unwrap();
    let trusted = anchors(&openssl_cert(&dir, "a").ca_cert);
    let other = &read_certs(&openssl_cert(&dir, "b").server_cert)[0];
    for hostname in [Hostname::Checked, Hostname::Ignored] {
        let err = verify_server(&server(&trusted, hostname), other, "127.0.0.1").unwrap_err();
        assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{hostname:?}: {err:?}");
    }
    let err = client(&trusted).verify_client_cert(other, &[], UnixTime::now()).unwrap_err();
    assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err:?}");
}

#[test]
fn hostname_is_checked_where_it_should_be() {
    let dir = TestDir::new().unwrap();
    let certs = openssl_cert(&dir, "a");
    let anchors = anchors(&certs.ca_cert);
    let presented = &read_certs(&certs.server_cert)[0];
    // The certificate names IP 127.0.0.1 only.
    for host in ["localhost", "10.0.0.1"] {
        let err = verify_server(&server(&anchors, Hostname::Checked), presented, host).unwrap_err();
        assert!(is_name_mismatch(&err), "{host}: {err:?}");
        verify_server(&server(&anchors, Hostname::Ignored), presented, host).unwrap();
    }
}

#[test]
fn expired_trusted_copy_is_refused() {
    let dir = TestDir::new().unwrap();
    let certs = openssl_cert(&dir, "a");
    let anchors = anchors(&certs.ca_cert);
    let presented = &read_certs(&certs.server_cert)[0];
    // Made for 30 days.
    let later = UnixTime::since_unix_epoch(Duration::from_secs(UnixTime::now().as_secs() + 60 * 86400));
    let err = server(&anchors, Hostname::Ignored)
        .verify_server_cert(presented, &[], &name("127.0.0.1"), &[], later)
        .unwrap_err();
    assert!(matches!(err, rustls::Error::InvalidCertificate(CertificateError::Expired)), "{err:?}");
    let err = client(&anchors).verify_client_cert(presented, &[], later).unwrap_err();
    assert!(matches!(err, rustls::Error::InvalidCertificate(CertificateError::Expired)), "{err:?}");
    let earlier = UnixTime::since_unix_epoch(Duration::from_secs(UnixTime::now().as_secs() - 86400));
    let err = check_validity(presented, earlier).unwrap_err();
    assert!(matches!(err, rustls::Error::InvalidCertificate(CertificateError::NotValidYet)), "{err:?}");
}

#[test]
fn ca_signed_leaves_still_work() {
    let dir = TestDir::new().unwrap();
    let certs = TestCerts::generate(&dir.create_dir("ca", 0o755).unwrap()).unwrap();
    let anchors = anchors(&certs.ca_cert);
    let leaf = &read_certs(&certs.server_cert)[0];
    verify_server(&server(&anchors, Hostname::Checked), leaf, "localhost").unwrap();
    let err = verify_server(&server(&anchors, Hostname::Checked), leaf, "db.example.com").unwrap_err();
    assert!(is_name_mismatch(&err), "{err:?}");
    verify_server(&server(&anchors, Hostname::Ignored), leaf, "db.example.com").unwrap();
    client(&anchors).verify_client_cert(&read_certs(&certs.client_cert)[0], &[], UnixTime::now()).unwrap();
    // A leaf of another CA is not trusted, even though the other CA's own certificate would not be either.
    let other = TestCerts::generate(&dir.create_dir("other", 0o755).unwrap()).unwrap();
    let err = verify_server(&server(&anchors, Hostname::Ignored), &read_certs(&other.server_cert)[0], "localhost")
        .unwrap_err();
    assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err:?}");
    // The CA certificate itself, presented by a server, is a trusted copy too (OpenSSL accepts it).
    verify_server(&server(&anchors, Hostname::Ignored), &read_certs(&certs.ca_cert)[0], "localhost").unwrap();
}

#[test]
fn empty_or_malformed_ca_files_are_errors() {
    assert!(matches!(TrustAnchors::from_pem(b""), Err(TlsError::NoCertificate)));
    assert!(TrustAnchors::from_pem(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n").is_err());
    assert!(validity(b"\x30\x03\x02\x01\x00").is_err());
}
