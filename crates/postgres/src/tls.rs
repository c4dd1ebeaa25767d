//! TLS for our SQL connections, with libpq's `sslmode` semantics: `disable` plain; `allow`/`prefer` TLS when
//! the server offers it, unverified; `require` TLS, unverified unless `sslrootcert` is given (then as
//! `verify-ca`); `verify-ca` chain checked against `sslrootcert`; `verify-full` chain and host name.
//! Client certificates come from `sslcert`/`sslkey`. Unix sockets never use TLS, as in PostgreSQL.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use crate::conninfo::ConnParams;
use crate::error::{Error, Result};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// The `sslrootcert` verifier: shared with the other TLS clients, so a server presenting exactly the root
/// certificate (the `openssl req -x509` self-signed one, CA:TRUE) is trusted, as libpq does.
fn verifier(
    path: &str,
    hostname: patroni_tls::Hostname,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>> {
    let anchors = patroni_tls::TrustAnchors::from_pem(&read_pem(path)?)
        .map_err(|e| Error::Config(format!("sslrootcert {path}: {e}")))?;
    let v = patroni_tls::ServerVerifier::new(&anchors, hostname, provider)
        .map_err(|e| Error::Config(format!("sslrootcert {path}: {e}")))?;
    Ok(Arc::new(v))
}

/// The sslmode to ask tokio-postgres for and the rustls configuration, from connection parameters.
pub(crate) fn client_config(params: &ConnParams) -> Result<(SslMode, Option<Arc<ClientConfig>>)> {
    let unix = params.get("host").is_none_or(|h| h.is_empty() || h.starts_with('/'));
    let mode = params.get("sslmode").unwrap_or("prefer");
    if unix || mode == "disable" {
        return Ok((SslMode::Disable, None));
    }
    let rootcert = params.get("sslrootcert").filter(|p| !p.is_empty() && *p != "system");
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup: {e}")))?;
    let builder = match (mode, rootcert) {
        ("verify-full", Some(root)) => builder.dangerous().with_custom_certificate_verifier(verifier(
            root,
            patroni_tls::Hostname::Checked,
            provider.clone(),
        )?),
        // verify-ca, and require with a root certificate as libpq does: the chain, not the host name.
        ("verify-ca", Some(root)) | ("require", Some(root)) => builder
            .dangerous()
            .with_custom_certificate_verifier(verifier(root, patroni_tls::Hostname::Ignored, provider.clone())?),
        ("verify-full" | "verify-ca", None) => {
            return Err(Error::Config(format!("sslmode={mode} needs sslrootcert (a CA file)")));
        }
        ("allow" | "prefer" | "require", None) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(patroni_tls::AcceptAnyServer::new(provider.clone()))),
        (other, _) => return Err(Error::Config(format!("unknown sslmode `{other}`"))),
    };
    let config = match (params.get("sslcert"), params.get("sslkey")) {
        (Some(cert), Some(key)) if !cert.is_empty() && !key.is_empty() => {
            let cert_pem = read_pem(cert)?;
            let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::io(cert, e))?;
            let key_pem = read_pem(key)?;
            let key_der: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
                .map_err(|e| Error::io(key, e))?
                .ok_or_else(|| Error::Config(format!("sslkey {key}: no private key found")))?;
            builder.with_client_auth_cert(certs, key_der).map_err(|e| Error::Config(format!("sslcert/sslkey: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    let ssl_mode = if matches!(mode, "allow" | "prefer") { SslMode::Prefer } else { SslMode::Require };
    Ok((ssl_mode, Some(Arc::new(config))))
}

/// Connects with `config` and TLS as libpq's `sslmode` (and `sslrootcert`, `sslcert`, `sslkey`) in `ssl` ask for,
/// `prefer` when unset: what an ad-hoc client (patronictl query) gets from psycopg2. The outer error is a bad TLS
/// setting, the inner one the connection attempt's, kept whole so the caller can word it as libpq does.
pub async fn connect_with_sslmode(
    config: &tokio_postgres::Config,
    ssl: &ConnParams,
) -> Result<std::result::Result<tokio_postgres::Client, tokio_postgres::Error>> {
    let (mode, tls) = client_config(ssl)?;
    let mut config = config.clone();
    config.ssl_mode(mode);
    let connected = match tls {
        Some(tls) => config.connect(MakeRustls(tls)).await.map(|(client, conn)| {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
        }),
        None => config.connect(tokio_postgres::NoTls).await.map(|(client, conn)| {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
        }),
    };
    Ok(connected)
}

/// tokio-postgres connector over rustls.
#[derive(Clone)]
pub(crate) struct MakeRustls(pub Arc<ClientConfig>);

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        // Unix sockets pass an empty name; they never negotiate TLS, so any valid name will do.
        let name = ServerName::try_from(domain.to_string())
            .or_else(|_| ServerName::try_from("localhost".to_string()))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsConnect { config: self.0.clone(), name })
    }
}

pub(crate) struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let s = tokio_rustls::TlsConnector::from(self.config).connect(self.name, stream).await?;
            Ok(RustlsStream(Box::new(s)))
        })
    }
}

pub(crate) struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // tls-server-end-point needs the certificate's hash algorithm; without it SCRAM falls back to no
        // channel binding, which channel_binding=prefer (the default) accepts.
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        let p = ConnParams::new().with("host", "/tmp").with("sslmode", "require");
        assert!(matches!(client_config(&p).unwrap(), (SslMode::Disable, None)));
        let p = ConnParams::new().with("host", "10.0.0.1");
        assert!(matches!(client_config(&p).unwrap(), (SslMode::Prefer, Some(_))));
        let p = p.with("sslmode", "require");
        assert!(matches!(client_config(&p).unwrap(), (SslMode::Require, Some(_))));
        let err = client_config(&p.clone().with("sslmode", "verify-full")).unwrap_err().to_string();
        assert!(err.contains("needs sslrootcert"), "{err}");
        assert!(client_config(&p.with("sslmode", "bogus")).is_err());
    }
}
