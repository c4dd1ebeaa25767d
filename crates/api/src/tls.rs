//! TLS for the REST API: `certfile`, `keyfile` (optionally encrypted, `keyfile_password`),
//! `cafile` + `verify_client` for client certificates, and an OpenSSL-style `ciphers` list.

use rustls::crypto::CryptoProvider;
use rustls::{ServerConfig, SupportedCipherSuite};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `restapi.verify_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyClient {
    /// Client certificates are not asked for.
    #[default]
    None,
    /// Asked for; required only for unsafe methods.
    Optional,
    /// Required to connect at all.
    Required,
}

impl VerifyClient {
    /// Parses `none` / `optional` / `required` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Some(Self::None),
            "optional" => Some(Self::Optional),
            "required" => Some(Self::Required),
            _ => None,
        }
    }
}

/// TLS settings of the REST API server.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// Server certificate chain (PEM).
    pub certfile: PathBuf,
    /// Private key (PEM); the certificate file when absent.
    pub keyfile: Option<PathBuf>,
    /// Password of an encrypted PKCS#8 key.
    pub keyfile_password: Option<String>,
    /// CA bundle to verify client certificates.
    pub cafile: Option<PathBuf>,
    /// OpenSSL cipher list restricting TLS 1.2 suites.
    pub ciphers: Option<String>,
    /// Client certificate policy.
    pub verify_client: VerifyClient,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("certfile", &self.certfile)
            .field("keyfile", &self.keyfile)
            .field("keyfile_password", &self.keyfile_password.as_ref().map(|_| "<hidden>"))
            .field("cafile", &self.cafile)
            .field("ciphers", &self.ciphers)
            .field("verify_client", &self.verify_client)
            .finish()
    }
}

/// A TLS setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("restapi.{setting}: cannot read {path}: {source}")]
    Read {
        /// Which setting.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds nothing usable.
    #[error("restapi.{setting}: {path}: {reason}")]
    Content {
        /// Which setting.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The combination of settings is not usable.
    #[error("restapi: {0}")]
    Config(String),
    /// rustls refused the certificate, key or verifier.
    #[error("restapi TLS: {0}")]
    Rustls(String),
}

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { setting, path: path.to_owned(), source })
}

/// Reads every certificate of a PEM file.
pub fn load_certs(setting: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(setting, path)?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut BufReader::new(pem.as_slice())).collect();
    let certs =
        certs.map_err(|e| TlsError::Content { setting, path: path.to_owned(), reason: format!("invalid PEM: {e}") })?;
    if certs.is_empty() {
        return Err(TlsError::Content { setting, path: path.to_owned(), reason: "no certificate found".into() });
    }
    Ok(certs)
}

/// Reads a private key, decrypting an `ENCRYPTED PRIVATE KEY` (PKCS#8) with `password`.
pub fn load_key(path: &Path, password: Option<&str>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("keyfile", path)?;
    let content_err = |reason: String| TlsError::Content { setting: "keyfile", path: path.to_owned(), reason };
    let text = String::from_utf8_lossy(&pem);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let Some(password) = password else {
            return Err(content_err("the key is encrypted and restapi.keyfile_password is not set".into()));
        };
        let (label, der) = pkcs8::der::pem::decode_vec(text.trim().as_bytes())
            .map_err(|e| content_err(format!("invalid PEM: {e}")))?;
        if label != "ENCRYPTED PRIVATE KEY" {
            return Err(content_err(format!("unexpected PEM section {label}")));
        }
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
            .map_err(|e| content_err(format!("invalid encrypted key: {e}")))?;
        let doc = info
            .decrypt(password)
            .map_err(|_| content_err("cannot decrypt the key: wrong restapi.keyfile_password?".into()))?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(doc.as_bytes().to_vec())));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(content_err(
            "legacy OpenSSL-encrypted keys are not supported; convert with `openssl pkcs8 -topk8`".into(),
        ));
    }
    rustls_pemfile::private_key(&mut BufReader::new(pem.as_slice()))
        .map_err(|e| content_err(format!("invalid PEM: {e}")))?
        .ok_or_else(|| content_err("no private key found".into()))
}

/// Suites allowed by an OpenSSL cipher list. TLS 1.3 suites are always kept (OpenSSL's
/// `set_ciphers` does not touch them either); TLS 1.2 suites are kept when named or covered by
/// a keyword (`ALL`, `HIGH`, `DEFAULT`, `ECDHE`, `AESGCM`, `CHACHA20`, …).
pub fn select_cipher_suites(list: &str, all: &[SupportedCipherSuite]) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    const NAMES: [(&str, &str); 6] = [
        ("ECDHE-ECDSA-AES256-GCM-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
        ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
        ("ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
        ("ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
        ("ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        ("ECDHE-RSA-CHACHA20-POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    ];
    let suite_name = |s: &SupportedCipherSuite| format!("{:?}", s.suite());
    let mut wanted: Vec<String> = Vec::new();
    let mut excluded: Vec<String> = Vec::new();
    for token in list.split([':', ',', ' ']).map(str::trim).filter(|t| !t.is_empty()) {
        let (negated, name) = match token.strip_prefix(['!', '-']) {
            Some(n) => (true, n),
            None => (false, token.strip_prefix('+').unwrap_or(token)),
        };
        let upper = name.to_ascii_uppercase();
        let matches: Vec<String> = match upper.as_str() {
            "ALL" | "HIGH" | "DEFAULT" | "ECDHE" | "EECDH" | "KECDHE" | "AEAD" | "TLSV1.2" => {
                NAMES.iter().map(|(_, r)| (*r).to_owned()).collect()
            }
            "AESGCM" | "AES" => NAMES.iter().filter(|(o, _)| o.contains("GCM")).map(|(_, r)| (*r).to_owned()).collect(),
            "AES256" => NAMES.iter().filter(|(o, _)| o.contains("AES256")).map(|(_, r)| (*r).to_owned()).collect(),
            "AES128" => NAMES.iter().filter(|(o, _)| o.contains("AES128")).map(|(_, r)| (*r).to_owned()).collect(),
            "CHACHA20" => NAMES.iter().filter(|(o, _)| o.contains("CHACHA")).map(|(_, r)| (*r).to_owned()).collect(),
            "ECDSA" | "AECDSA" => {
                NAMES.iter().filter(|(o, _)| o.contains("ECDSA")).map(|(_, r)| (*r).to_owned()).collect()
            }
            "RSA" | "ARSA" => NAMES.iter().filter(|(o, _)| o.contains("-RSA-")).map(|(_, r)| (*r).to_owned()).collect(),
            _ => NAMES.iter().filter(|(o, r)| *o == upper || *r == upper).map(|(_, r)| (*r).to_owned()).collect(),
        };
        if negated {
            excluded.extend(matches);
        } else {
            wanted.extend(matches);
        }
    }
    let tls12: Vec<SupportedCipherSuite> = all
        .iter()
        .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
        .filter(|s| {
            let n = suite_name(s);
            wanted.contains(&n) && !excluded.contains(&n)
        })
        .copied()
        .collect();
    if tls12.is_empty() {
        return Err(TlsError::Config(format!(
            "ciphers {list:?} names no cipher suite this server supports (e.g. ECDHE-RSA-AES256-GCM-SHA384)"
        )));
    }
    let mut out: Vec<SupportedCipherSuite> =
        all.iter().filter(|s| matches!(s, SupportedCipherSuite::Tls13(_))).copied().collect();
    out.extend(tls12);
    Ok(out)
}

/// Builds the rustls server configuration.
pub fn server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(ciphers) = settings.ciphers.as_deref().filter(|c| !c.trim().is_empty()) {
        provider.cipher_suites = select_cipher_suites(ciphers, &provider.cipher_suites)?;
    }
    let provider: Arc<CryptoProvider> = Arc::new(provider);
    let certs = load_certs("certfile", &settings.certfile)?;
    let key_path = settings.keyfile.as_deref().unwrap_or(&settings.certfile);
    let key = load_key(key_path, settings.keyfile_password.as_deref())?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match settings.verify_client {
        VerifyClient::None => builder.with_no_client_auth(),
        mode => {
            let Some(cafile) = &settings.cafile else {
                return Err(TlsError::Config(
                    "verify_client needs cafile: the CA bundle to check client certificates against".into(),
                ));
            };
            let anchors = patroni_tls::TrustAnchors::from_certs(load_certs("cafile", cafile)?)
                .map_err(|e| TlsError::Content { setting: "cafile", path: cafile.clone(), reason: e.to_string() })?;
            let auth = if mode == VerifyClient::Optional {
                patroni_tls::ClientAuth::Optional
            } else {
                patroni_tls::ClientAuth::Required
            };
            let verifier = patroni_tls::ClientVerifier::new(&anchors, auth, provider)
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(Arc::new(verifier))
        }
    };
    let mut config =
        builder.with_single_cert(certs, key).map_err(|e| TlsError::Rustls(format!("certfile/keyfile: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_lists() {
        let all = rustls::crypto::ring::default_provider().cipher_suites;
        let doc = "ECDHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256:!SSLv1:!SSLv2:!SSLv3:!TLSv1:!TLSv1.1";
        let s = select_cipher_suites(doc, &all).unwrap();
        let names: Vec<String> = s.iter().map(|s| format!("{:?}", s.suite())).collect();
        assert!(names.contains(&"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_string()));
        assert!(names.contains(&"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()));
        assert!(!names.contains(&"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256".to_string()));
        assert!(names.iter().any(|n| n.starts_with("TLS13_")));
        let high = select_cipher_suites("HIGH:!CHACHA20", &all).unwrap();
        assert!(!high.iter().any(|s| format!("{:?}", s.suite()).contains("CHACHA20_POLY1305_SHA256")
            && matches!(s, SupportedCipherSuite::Tls12(_))));
        assert!(select_cipher_suites("DHE-RSA-AES256-SHA:RC4", &all).is_err());
    }

    #[test]
    fn verify_client_values() {
        assert_eq!(VerifyClient::parse("Required"), Some(VerifyClient::Required));
        assert_eq!(VerifyClient::parse("maybe"), None);
    }
}
