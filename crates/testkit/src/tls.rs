//! Throw-away certificates for TLS tests: a CA, a server leaf and a client leaf.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::dir::write_file;
use crate::error::{Error, Result};

/// PEM files written by [`TestCerts::generate`]. Leaf certificates carry `CA:FALSE` (rustls rejects a CA
/// certificate used as a server certificate); the server certificate is valid for `localhost`, `127.0.0.1` and
/// `::1`, and for client auth too (etcd presents it to its peers). The client certificate's common name is `root`,
/// which etcd maps to its root user under `--client-cert-auth`.
/// Keys are mode 600 and owned by the unprivileged user when root, as PostgreSQL requires.
#[derive(Debug, Clone)]
pub struct TestCerts {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    ca_pem: String,
    client_identity_pem: String,
}

impl TestCerts {
    /// Writes `ca.crt`, `server.crt`, `server.key`, `client.crt`, `client.key` into `dir` (which must exist).
    pub fn generate(dir: &Path) -> Result<Self> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name = common_name("patroni-testkit CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate()?;
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])?;
        server_params.distinguished_name = common_name("localhost");
        server_params.is_ca = IsCa::ExplicitNoCa;
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        server_params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let server_cert = server_params.signed_by(&server_key, &issuer)?;

        let client_key = KeyPair::generate()?;
        let mut client_params = CertificateParams::new(Vec::<String>::new())?;
        client_params.distinguished_name = common_name("root");
        client_params.is_ca = IsCa::ExplicitNoCa;
        client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params.signed_by(&client_key, &issuer)?;

        if !dir.is_dir() {
            return Err(Error::NotFound {
                what: format!("certificate directory {}", dir.display()),
                hint: "create it first (TestDir::create_dir)".to_string(),
            });
        }
        let certs = TestCerts {
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            ca_pem: ca_cert.pem(),
            client_identity_pem: format!("{}{}", client_cert.pem(), client_key.serialize_pem()),
        };
        write_file(&certs.ca_cert, certs.ca_pem.as_bytes(), 0o644)?;
        write_file(&certs.server_cert, server_cert.pem().as_bytes(), 0o644)?;
        write_file(&certs.server_key, server_key.serialize_pem().as_bytes(), 0o600)?;
        write_file(&certs.client_cert, client_cert.pem().as_bytes(), 0o644)?;
        write_file(&certs.client_key, client_key.serialize_pem().as_bytes(), 0o600)?;
        Ok(certs)
    }

    /// One certificate made the way DBAs and Patroni's own acceptance suite make it:
    /// `openssl req -x509 -nodes -newkey rsa:2048 -subj /CN=<common_name> -addext subjectAltName=IP:127.0.0.1`.
    /// OpenSSL marks it `CA:TRUE`, and it serves as CA, server and client certificate at once: every path of the
    /// result (`ca_cert`, `server_cert`, `client_cert`) is `cert.pem`, both keys are `key.pem`. Needs `openssl`
    /// on PATH.
    pub fn openssl_self_signed(dir: &Path, common_name: &str) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::NotFound {
                what: format!("certificate directory {}", dir.display()),
                hint: "create it first (TestDir::create_dir)".to_string(),
            });
        }
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        let mut cmd = std::process::Command::new("openssl");
        cmd.args(["req", "-x509", "-nodes", "-newkey", "rsa:2048", "-days", "30"])
            .arg("-subj")
            .arg(format!("/CN={common_name}"))
            .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert);
        let command = format!("{cmd:?}");
        let out = cmd.output().map_err(|source| Error::Io { context: format!("running {command}"), source })?;
        if !out.status.success() {
            return Err(Error::Command {
                command,
                status: out.status.to_string(),
                output: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
            });
        }
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .map_err(|source| Error::Io { context: format!("reading {}", path.display()), source })
        };
        let cert_pem = read(&cert)?;
        let key_pem = read(&key)?;
        // Rewritten through write_file for the modes and owner PostgreSQL insists on (key 600, not root's).
        write_file(&cert, cert_pem.as_bytes(), 0o644)?;
        write_file(&key, key_pem.as_bytes(), 0o600)?;
        Ok(TestCerts {
            ca_cert: cert.clone(),
            server_cert: cert.clone(),
            server_key: key.clone(),
            client_cert: cert,
            client_key: key,
            client_identity_pem: format!("{cert_pem}{key_pem}"),
            ca_pem: cert_pem,
        })
    }

    /// Writes `key` encrypted with `password` to `out`, as DBAs make such keys (`openssl pkcs8 -topk8 -v2
    /// aes-256-cbc`: PKCS#8, PBES2), for the `key_password` settings. Needs `openssl` on PATH.
    pub fn encrypt_key(key: &Path, out: &Path, password: &str) -> Result<()> {
        let mut cmd = std::process::Command::new("openssl");
        cmd.args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout"])
            .arg(format!("pass:{password}"))
            .arg("-in")
            .arg(key)
            .arg("-out")
            .arg(out);
        let command = format!("{cmd:?}");
        let o = cmd.output().map_err(|source| Error::Io { context: format!("running {command}"), source })?;
        if !o.status.success() {
            return Err(Error::Command {
                command,
                status: o.status.to_string(),
                output: format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
            });
        }
        Ok(())
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Client certificate followed by its key, the form `reqwest::Identity::from_pem` takes.
    pub fn client_identity_pem(&self) -> &str {
        &self.client_identity_pem
    }
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}
