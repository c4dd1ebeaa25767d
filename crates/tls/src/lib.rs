//! Certificate verification for every TLS connection patroni-rs makes or accepts: the REST API server checking
//! client certificates, the REST client (patronictl, the agent calling its peers), etcd and PostgreSQL
//! connections.
//!
//! It is webpki's verification (rustls) plus the one case where OpenSSL — and so Python Patroni, etcd's clients
//! and libpq — accepts what webpki refuses: the peer presents exactly a certificate of the trust store. The usual
//! self-signed certificate (`openssl req -x509 …`) is marked `CA:TRUE`; deployments use it as CA file, server and
//! client certificate at once, and webpki refuses a CA certificate as the end entity (`CaUsedAsEndEntity`). Such
//! a certificate is accepted when its DER is byte-identical to a configured trust anchor, it is within its
//! validity period and, where hostnames are checked, it names the server. Handshake signatures are always
//! checked.

use std::sync::Arc;
use std::time::Duration;

use der::asn1::{AnyRef, GeneralizedTime, UtcTime};
use der::{Decode, Reader, SliceReader, Tag, TagNumber};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// TLS material that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The PEM text is malformed.
    #[error("invalid PEM: {0}")]
    Pem(#[source] std::io::Error),
    /// A CA file holds no certificate.
    #[error("no certificate found")]
    NoCertificate,
    /// A key file holds no private key.
    #[error("no private key found")]
    NoPrivateKey,
    /// A certificate cannot serve as a trust anchor.
    #[error("not usable as a CA certificate: {0}")]
    Anchor(#[source] rustls::Error),
    /// rustls refused to build a verifier from the trust anchors.
    #[error("cannot build a certificate verifier: {0}")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    /// rustls refused the protocol versions, client certificate or key.
    #[error("{0}")]
    Rustls(#[source] rustls::Error),
}

/// The ring crypto provider, the only one this workspace builds.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM text.
pub fn pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    rustls_pemfile::certs(&mut &*pem).collect::<Result<Vec<_>, _>>().map_err(TlsError::Pem)
}

/// The first private key of a PEM text (PKCS#8, PKCS#1 or SEC1; decrypt encrypted keys first).
pub fn pem_private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut &*pem).map_err(TlsError::Pem)?.ok_or(TlsError::NoPrivateKey)
}

/// The certificates of a CA file, both as webpki trust anchors and as the DER they were read from: a peer
/// presenting one of them exactly is trusted, as OpenSSL does.
#[derive(Debug, Clone)]
pub struct TrustAnchors {
    roots: Arc<RootCertStore>,
    certs: Arc<[CertificateDer<'static>]>,
}

impl TrustAnchors {
    /// From the certificates of a CA file; at least one.
    pub fn from_certs(certs: Vec<CertificateDer<'static>>) -> Result<Self, TlsError> {
        if certs.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        let mut roots = RootCertStore::empty();
        for cert in &certs {
            roots.add(cert.clone()).map_err(TlsError::Anchor)?;
        }
        Ok(TrustAnchors { roots: Arc::new(roots), certs: certs.into() })
    }

    /// From the PEM text of a CA file.
    pub fn from_pem(pem: &[u8]) -> Result<Self, TlsError> {
        Self::from_certs(pem_certs(pem)?)
    }

    /// The webpki root store.
    pub fn roots(&self) -> Arc<RootCertStore> {
        self.roots.clone()
    }

    fn contains(&self, cert: &CertificateDer<'_>) -> bool {
        self.certs.iter().any(|c| c.as_ref() == cert.as_ref())
    }

    /// What webpki refused (`refused`) is accepted when `end_entity` is one of the anchors byte for byte, valid
    /// at `now`, and — when `name` is given — valid for that name. Otherwise the reason it is not.
    fn accept_trusted_copy(
        &self,
        end_entity: &CertificateDer<'_>,
        name: Option<&ServerName<'_>>,
        now: UnixTime,
        refused: rustls::Error,
    ) -> Result<(), rustls::Error> {
        if !self.contains(end_entity) {
            return Err(refused);
        }
        // The anchor's own signature needs no check: it is trusted because it is this very certificate.
        check_validity(end_entity, now)?;
        if let Some(name) = name {
            rustls::client::verify_server_name(&ParsedCertificate::try_from(end_entity)?, name)?;
        }
        tracing::debug!("accepted the peer's certificate: it is one of the trusted CA certificates ({refused})");
        Ok(())
    }
}

/// The validity period as seconds since the epoch: `tbsCertificate.validity` (RFC 5280 4.1).
fn validity(cert: &[u8]) -> der::Result<(Duration, Duration)> {
    fn time<'a, R: Reader<'a>>(r: &mut R) -> der::Result<Duration> {
        if r.peek_tag()? == Tag::UtcTime {
            Ok(UtcTime::decode(r)?.to_unix_duration())
        } else {
            Ok(GeneralizedTime::decode(r)?.to_unix_duration())
        }
    }
    fn skip_rest<'a, R: Reader<'a>>(r: &mut R) -> der::Result<()> {
        let rest = r.remaining_len();
        r.read_slice(rest).map(drop)
    }
    let mut reader = SliceReader::new(cert)?;
    reader.sequence(|certificate| {
        let period = certificate.sequence(|tbs| {
            if tbs.peek_tag()? == (Tag::ContextSpecific { constructed: true, number: TagNumber::N0 }) {
                AnyRef::decode(tbs)?; // version
            }
            AnyRef::decode(tbs)?; // serialNumber
            AnyRef::decode(tbs)?; // signature
            AnyRef::decode(tbs)?; // issuer
            let period = tbs.sequence(|v| Ok((time(v)?, time(v)?)))?;
            skip_rest(tbs)?;
            Ok(period)
        })?;
        skip_rest(certificate)?;
        Ok(period)
    })
}

fn check_validity(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let (not_before, not_after) = validity(cert).map_err(|_| CertificateError::BadEncoding)?;
    let now = Duration::from_secs(now.as_secs());
    if now < not_before {
        return Err(CertificateError::NotValidYet.into());
    }
    if now > not_after {
        return Err(CertificateError::Expired.into());
    }
    Ok(())
}

/// Whether a client checks that the server certificate names the host it connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostname {
    /// libpq's `verify-full`, HTTPS clients.
    Checked,
    /// libpq's `verify-ca` (and `require` with a root certificate): the chain alone.
    Ignored,
}

/// Verifies server certificates: webpki, plus a trust anchor presented as the server certificate.
#[derive(Debug)]
pub struct ServerVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    anchors: TrustAnchors,
    hostname: Hostname,
}

impl ServerVerifier {
    /// A verifier trusting `anchors`.
    pub fn new(anchors: &TrustAnchors, hostname: Hostname, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let webpki = WebPkiServerVerifier::builder_with_provider(anchors.roots(), provider)
            .build()
            .map_err(TlsError::Verifier)?;
        Ok(ServerVerifier { webpki, anchors: anchors.clone(), hostname })
    }
}

fn is_name_mismatch(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
            | rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })
    )
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Ok(v) => Ok(v),
            // webpki checks the name only once the chain is good, so this is a trusted certificate for another name.
            Err(e) if self.hostname == Hostname::Ignored && is_name_mismatch(&e) => Ok(ServerCertVerified::assertion()),
            Err(refused) => {
                let name = (self.hostname == Hostname::Checked).then_some(server_name);
                self.anchors.accept_trusted_copy(end_entity, name, now, refused)?;
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Whether a server lets clients in without a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `verify_client: required`.
    Required,
    /// `verify_client: optional`: asked for, checked when presented.
    Optional,
}

/// Verifies client certificates: webpki, plus a trust anchor presented as the client certificate. Hostnames are
/// never checked for clients (OpenSSL does not either).
#[derive(Debug)]
pub struct ClientVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    anchors: TrustAnchors,
}

impl ClientVerifier {
    /// A verifier trusting `anchors`.
    pub fn new(anchors: &TrustAnchors, auth: ClientAuth, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let builder = WebPkiClientVerifier::builder_with_provider(anchors.roots(), provider);
        let builder = match auth {
            ClientAuth::Required => builder,
            ClientAuth::Optional => builder.allow_unauthenticated(),
        };
        Ok(ClientVerifier { webpki: builder.build().map_err(TlsError::Verifier)?, anchors: anchors.clone() })
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.webpki.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.webpki.verify_client_cert(end_entity, intermediates, now) {
            Ok(v) => Ok(v),
            Err(refused) => {
                self.anchors.accept_trusted_copy(end_entity, None, now, refused)?;
                Ok(ClientCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Accepts any server certificate but still checks the handshake's signatures: libpq's `sslmode=require` and
/// `prefer`, kazoo's `verify_certs=False` (ZooKeeper's `verify: false`).
#[derive(Debug)]
pub struct AcceptAnyServer(Arc<CryptoProvider>);

impl AcceptAnyServer {
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        AcceptAnyServer(provider)
    }
}

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client configuration verifying servers with `verifier` and presenting `identity` (certificate chain and
/// key) when given: what reqwest takes through `tls_backend_preconfigured`, since its own builder cannot take a
/// custom verifier.
pub fn client_config(
    provider: Arc<CryptoProvider>,
    verifier: Arc<dyn ServerCertVerifier>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match identity {
        Some((certs, key)) => builder.with_client_auth_cert(certs, key).map_err(TlsError::Rustls),
        None => Ok(builder.with_no_client_auth()),
    }
}

#[cfg(test)]
mod tests;
