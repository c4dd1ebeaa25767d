//! `use_ssl`: ZooKeeper over TLS, with the rules kazoo (Python Patroni's client) applies to the `zookeeper`
//! section: the system's CA bundle plus `cacert` are trusted; the chain is checked unless `verify` is false; the
//! host name is never checked (kazoo connects with `check_hostname=False`); `cert` + `key` (decrypted with
//! `key_password`) are presented only when both are set. Like OpenSSL, the shared verifier (`patroni-tls`) also
//! accepts a server presenting exactly a trusted certificate — the `openssl req -x509` self-signed one, CA:TRUE.
//!
//! The ZooKeeper client crate has TLS of its own, but it cannot take a verifier, so none of those rules could be
//! kept (and it would pull a second crypto library). Instead each server of the ensemble gets a relay inside this
//! process: the client dials a loopback port, the relay opens the TLS connection with our configuration and copies
//! bytes both ways; either side closing closes the other, so the client sees a server going away exactly as it
//! would directly. A relay serves only sockets of this process (checked in /proc before a byte is relayed): no
//! other local user can borrow the client certificate through it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tracing::{debug, warn};

use super::ZooKeeperSettings;
use crate::error::{DcsError, DcsResult};

/// Connecting to a server and the TLS handshake each end within this; the client's own connection timeout is the
/// real bound (it gives up on the relay and tries the next server).
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// The relays of one ZooKeeper client, one per server (opened when the server first appears in the list).
pub(super) struct TlsRelays {
    connector: TlsConnector,
    /// Server `host:port` → loopback port of its relay.
    relays: Mutex<HashMap<String, Relay>>,
    /// Why the last relayed connection failed (the client itself only sees the connection drop).
    last_error: Arc<Mutex<Option<String>>>,
}

struct Relay {
    port: u16,
    task: JoinHandle<()>,
}

impl Drop for TlsRelays {
    fn drop(&mut self) {
        if let Ok(relays) = self.relays.lock() {
            for r in relays.values() {
                r.task.abort();
            }
        }
    }
}

impl TlsRelays {
    /// The relays of `settings`, or None when `use_ssl` is off (every other TLS key is then ignored, as in
    /// Patroni). Bad TLS settings fail here, naming the key.
    pub(super) fn new(settings: &ZooKeeperSettings) -> DcsResult<Option<TlsRelays>> {
        if !settings.use_ssl {
            return Ok(None);
        }
        let provider = patroni_tls::provider();
        let verifier: Arc<dyn ServerCertVerifier> = if settings.verify {
            let mut certs = Vec::new();
            if let Some(ca) = &settings.cacert {
                certs = patroni_tls::pem_certs(&read(ca, "zookeeper.cacert")?)
                    .map_err(|e| config(format!("zookeeper.cacert {}: {e}", ca.display())))?;
                if certs.is_empty() {
                    return Err(config(format!("zookeeper.cacert {}: no certificate in it", ca.display())));
                }
            }
            // kazoo's load_default_certs: the system's bundle is trusted too.
            certs.extend(rustls_native_certs::load_native_certs().certs);
            if certs.is_empty() {
                return Err(config(
                    "zookeeper.use_ssl: no CA certificate to check servers with: set zookeeper.cacert".into(),
                ));
            }
            let anchors =
                patroni_tls::TrustAnchors::from_certs(certs).map_err(|e| config(format!("zookeeper.cacert: {e}")))?;
            Arc::new(
                patroni_tls::ServerVerifier::new(&anchors, patroni_tls::Hostname::Ignored, provider.clone())
                    .map_err(|e| config(format!("zookeeper.cacert: {e}")))?,
            )
        } else {
            Arc::new(patroni_tls::AcceptAnyServer::new(provider.clone()))
        };
        let identity = match (&settings.cert, &settings.key) {
            (Some(cert), Some(key)) => {
                let chain = patroni_tls::pem_certs(&read(cert, "zookeeper.cert")?)
                    .map_err(|e| config(format!("zookeeper.cert {}: {e}", cert.display())))?;
                let pem =
                    crate::tls_key::decrypt_if_needed(&read(key, "zookeeper.key")?, settings.key_password.as_deref())
                        .map_err(|e| config(format!("zookeeper.key {}: {e}", key.display())))?;
                let key_der = patroni_tls::pem_private_key(&pem)
                    .map_err(|e| config(format!("zookeeper.key {}: {e}", key.display())))?;
                Some((chain, key_der))
            }
            (Some(_), None) | (None, Some(_)) => {
                warn!("zookeeper.cert and zookeeper.key work only together: connecting without a client certificate");
                None
            }
            (None, None) => None,
        };
        let client = patroni_tls::client_config(provider, verifier, identity)
            .map_err(|e| config(format!("zookeeper.cert/zookeeper.key: {e}")))?;
        Ok(Some(TlsRelays {
            connector: TlsConnector::from(Arc::new(client)),
            relays: Mutex::new(HashMap::new()),
            last_error: Arc::new(Mutex::new(None)),
        }))
    }

    /// The connect string the client dials for `hosts` (comma separated `host[:port]`): each server replaced by
    /// the loopback end of its relay.
    pub(super) async fn local_hosts(&self, hosts: &str) -> Result<String, String> {
        let mut local = Vec::new();
        for server in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            let target = with_port(server);
            let known = self.relays.lock().ok().and_then(|r| r.get(&target).map(|r| r.port));
            let port = match known {
                Some(port) => port,
                None => {
                    let listener = TcpListener::bind("127.0.0.1:0")
                        .await
                        .map_err(|e| format!("cannot open the TLS relay for {target}: {e}"))?;
                    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
                    let task = tokio::spawn(serve(
                        listener,
                        port,
                        target.clone(),
                        self.connector.clone(),
                        self.last_error.clone(),
                    ));
                    if let Ok(mut relays) = self.relays.lock() {
                        relays.insert(target, Relay { port, task });
                    }
                    port
                }
            };
            local.push(format!("127.0.0.1:{port}"));
        }
        Ok(local.join(","))
    }

    /// Why the last relayed connection failed, if it did (`server: cause`).
    pub(super) fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

fn config(what: String) -> DcsError {
    DcsError::Config(what)
}

fn read(path: &Path, key: &str) -> DcsResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| config(format!("{key} {}: {e}", path.display())))
}

/// `host:port`, with ZooKeeper's default port when none is given (`[v6]` addresses keep their brackets).
fn with_port(server: &str) -> String {
    let has_port = match server.rsplit_once(':') {
        Some((host, port)) => {
            !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        server.to_string()
    } else {
        format!("{server}:2181")
    }
}

/// The host part of `host:port`, without IPv6 brackets: the name the TLS handshake is made for.
fn host_of(target: &str) -> &str {
    let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

async fn serve(
    listener: TcpListener,
    port: u16,
    target: String,
    connector: TlsConnector,
    last_error: Arc<Mutex<Option<String>>>,
) {
    loop {
        let (plain, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!("TLS relay for ZooKeeper {target}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !own_socket(peer.port(), port) {
            warn!("TLS relay for ZooKeeper {target}: refused a connection from {peer}, which is not this process's");
            continue;
        }
        let (target, connector, last_error) = (target.clone(), connector.clone(), last_error.clone());
        tokio::spawn(async move {
            let outcome = relay(plain, &target, connector, || {
                if let Ok(mut e) = last_error.lock() {
                    *e = None;
                }
            })
            .await;
            if let Err(e) = outcome {
                warn!("ZooKeeper {target}: {e}");
                if let Ok(mut last) = last_error.lock() {
                    *last = Some(format!("{target}: {e}"));
                }
            }
        });
    }
}

async fn relay(
    plain: TcpStream,
    target: &str,
    connector: TlsConnector,
    connected: impl FnOnce(),
) -> Result<(), String> {
    let tcp = match tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(format!("cannot connect: {e}")),
        Err(_) => return Err("cannot connect: no answer in time".into()),
    };
    let _ = tcp.set_nodelay(true);
    let _ = plain.set_nodelay(true);
    let name = ServerName::try_from(host_of(target).to_string()).map_err(|e| format!("bad host name: {e}"))?;
    let tls = match tokio::time::timeout(STEP_TIMEOUT, connector.connect(name, tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return Err(format!("TLS handshake failed: {e}")),
        Err(_) => return Err("TLS handshake failed: no answer in time".into()),
    };
    connected();
    copy_until_either_ends(plain, tls).await;
    Ok(())
}

/// Copies both ways until one side ends, then drops both: a relay must not outlive either end (a frozen server
/// never closes, and the client gives up on it by closing its side).
async fn copy_until_either_ends<A, B>(a: A, b: B)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    tokio::select! {
        r = tokio::io::copy(&mut a_read, &mut b_write) => debug!("ZooKeeper TLS relay: client side ended ({r:?})"),
        r = tokio::io::copy(&mut b_read, &mut a_write) => debug!("ZooKeeper TLS relay: server side ended ({r:?})"),
    }
}

/// Whether the loopback connection from `peer_port` to `relay_port` was opened by this process: its socket
/// (found in /proc/net/tcp) is one of our file descriptors.
fn own_socket(peer_port: u16, relay_port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let Some(inode) = socket_inode(&table, peer_port, relay_port) else {
        return false;
    };
    let wanted = format!("socket:[{inode}]");
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == wanted.as_str()))
}

/// The inode of the socket whose local port is `local` and remote port `remote`, from a /proc/net/tcp table.
fn socket_inode(table: &str, local: u16, remote: u16) -> Option<u64> {
    let port = |addr: &str| addr.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (l, r, inode) = (f.get(1)?, f.get(2)?, f.get(9)?);
        (port(l)? == local && port(r)? == remote).then(|| inode.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_settings() -> ZooKeeperSettings {
        let mut s = ZooKeeperSettings::new("b", "n").with_hosts(["127.0.0.1:2281"]);
        s.use_ssl = true;
        s
    }

    #[test]
    fn off_ignores_every_other_key() {
        let mut s = ZooKeeperSettings::new("b", "n");
        s.cacert = Some("/nonexistent/ca.crt".into());
        s.verify = false;
        assert!(TlsRelays::new(&s).unwrap().is_none());
    }

    #[test]
    fn errors_name_the_setting() {
        let mut s = tls_settings();
        s.cacert = Some("/nonexistent/ca.crt".into());
        let e = TlsRelays::new(&s).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("zookeeper.cacert /nonexistent/ca.crt"), "{e}");

        let mut s = tls_settings();
        s.cert = Some("/nonexistent/client.crt".into());
        s.key = Some("/nonexistent/client.key".into());
        let e = TlsRelays::new(&s).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("zookeeper.cert /nonexistent/client.crt"), "{e}");
    }

    #[test]
    fn servers_get_the_default_port() {
        assert_eq!(with_port("zk1"), "zk1:2181");
        assert_eq!(with_port("zk1:2281"), "zk1:2281");
        assert_eq!(with_port("[::1]:2281"), "[::1]:2281");
        assert_eq!(with_port("::1"), "::1:2181");
        assert_eq!(host_of("[::1]:2281"), "::1");
        assert_eq!(host_of("zk1:2281"), "zk1");
    }

    #[test]
    fn socket_inode_from_the_proc_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
                     0: 0100007F:9C40 0100007F:0CEA 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0\n   \
                     1: 0100007F:0CEA 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0\n";
        assert_eq!(socket_inode(table, 0x9C40, 0x0CEA), Some(4242));
        assert_eq!(socket_inode(table, 0x0CEA, 0x9C40), Some(4343));
        assert_eq!(socket_inode(table, 1, 2), None);
    }

    /// A connection this process opens passes the check; the table is read live.
    #[tokio::test]
    async fn own_connections_are_recognised() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (_server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.port(), client.local_addr().unwrap().port());
        assert!(own_socket(peer.port(), port));
        assert!(!own_socket(peer.port().wrapping_add(1), port));
    }
}
