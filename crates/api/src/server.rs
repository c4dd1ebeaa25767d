//! The listener: TCP (+TLS), HTTP/1.0 and HTTP/1.1 keep-alive, settings that can be reloaded
//! without dropping the socket.

use crate::access::{resolve_allowlist, Credentials, IpNet};
use crate::control::Control;
use crate::handlers::{handle, ConnInfo};
use crate::status::NodeStatus;
use crate::tls::{server_config, TlsError, TlsSettings, VerifyClient};
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// `Server` header Python Patroni sends with `server_tokens: original` (its default).
pub const ORIGINAL_SERVER_HEADER: &str = "BaseHTTP/0.6 Python/3.11.2";

/// Connections served at once; more wait in the listen backlog rather than exhaust descriptors.
pub const MAX_CONNECTIONS: usize = 1024;

/// Default limit of a request body; dynamic configurations are a few kB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Everything the server needs from `restapi`, already typed.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    /// `host:port` to listen on (`*` or an empty host: every address).
    pub listen: String,
    /// Basic auth for unsafe methods.
    pub credentials: Option<Credentials>,
    /// TLS; plain HTTP when `None`.
    pub tls: Option<TlsSettings>,
    /// Addresses, networks and host names allowed to call unsafe endpoints (empty: everyone).
    pub allowlist: Vec<String>,
    /// Also allow the hosts of the members' `api_url`s.
    pub allowlist_include_members: bool,
    /// Headers added to every response.
    pub http_extra_headers: Vec<(String, String)>,
    /// Headers added to every response when TLS is on.
    pub https_extra_headers: Vec<(String, String)>,
    /// `original`, `productonly` or `minimal`.
    pub server_tokens: Option<String>,
    /// Largest accepted request body, bytes.
    pub body_limit: usize,
    /// Listen backlog (`request_queue_size`); `None` for a generous default.
    pub request_queue_size: Option<u32>,
}

impl ServerSettings {
    /// Plain HTTP on `listen`, no restrictions.
    pub fn new(listen: impl Into<String>) -> Self {
        Self {
            listen: listen.into(),
            credentials: None,
            tls: None,
            allowlist: Vec::new(),
            allowlist_include_members: false,
            http_extra_headers: Vec::new(),
            https_extra_headers: Vec::new(),
            server_tokens: None,
            body_limit: DEFAULT_BODY_LIMIT,
            request_queue_size: None,
        }
    }
}

/// Why the server could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `restapi.listen` is missing.
    #[error("Can not find \"restapi.listen\" config")]
    MissingListen,
    /// `listen` is not `host:port`.
    #[error("Invalid \"restapi\" config: expected <HOST>:<PORT> for \"listen\", but got \"{0}\"")]
    Listen(String),
    /// The address could not be bound.
    #[error("Couldn't start a service on '{addr}', please check your `restapi.listen` configuration: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// TLS settings are unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// An extra header is not a valid HTTP header.
    #[error("restapi.{setting}: invalid header {name:?}: {value:?}")]
    Header {
        /// `http_extra_headers` or `https_extra_headers`.
        setting: &'static str,
        /// Header name.
        name: String,
        /// Header value.
        value: String,
    },
}

/// Settings in their ready-to-use form; replaced as a whole on reload.
pub(crate) struct Runtime {
    pub credentials: Option<Credentials>,
    pub allowlist: Vec<IpNet>,
    pub include_members: bool,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub server_header: Option<HeaderValue>,
    pub tls: Option<TlsAcceptor>,
    pub verify_client: VerifyClient,
    pub body_limit: usize,
}

fn server_header(tokens: Option<&str>, version: &str) -> Option<HeaderValue> {
    let v = match tokens.map(str::to_ascii_lowercase).as_deref() {
        Some("productonly") => "Patroni".to_owned(),
        Some("minimal") => format!("Patroni/{version}"),
        None | Some("original") => ORIGINAL_SERVER_HEADER.to_owned(),
        Some(other) => {
            tracing::warn!(
                "restapi.server_tokens is set to \"{other}\". Patroni will not modify the Server header. Valid values are: \"Minimal\", \"ProductOnly\"."
            );
            ORIGINAL_SERVER_HEADER.to_owned()
        }
    };
    HeaderValue::from_str(&v).ok()
}

fn headers(setting: &'static str, list: &[(String, String)]) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
    list.iter()
        .map(|(n, v)| {
            let err = || ApiError::Header { setting, name: n.clone(), value: v.clone() };
            Ok((HeaderName::from_bytes(n.as_bytes()).map_err(|_| err())?, HeaderValue::from_str(v).map_err(|_| err())?))
        })
        .collect()
}

async fn build_runtime(settings: &ServerSettings, version: &str) -> Result<Runtime, ApiError> {
    let tls = match &settings.tls {
        Some(t) => Some(TlsAcceptor::from(server_config(t)?)),
        None => None,
    };
    let mut hdrs = headers("http_extra_headers", &settings.http_extra_headers)?;
    if tls.is_some() {
        hdrs.extend(headers("https_extra_headers", &settings.https_extra_headers)?);
    }
    Ok(Runtime {
        credentials: settings.credentials.clone(),
        allowlist: resolve_allowlist(&settings.allowlist).await,
        include_members: settings.allowlist_include_members,
        headers: hdrs,
        server_header: server_header(settings.server_tokens.as_deref(), version),
        verify_client: settings.tls.as_ref().map_or(VerifyClient::None, |t| t.verify_client),
        tls,
        body_limit: settings.body_limit,
    })
}

/// What every connection shares.
pub(crate) struct Shared {
    pub runtime: RwLock<Arc<Runtime>>,
    pub status: watch::Receiver<Arc<NodeStatus>>,
    pub control: Arc<dyn Control>,
}

impl Shared {
    pub fn runtime(&self) -> Arc<Runtime> {
        match self.runtime.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Splits `host:port`; `[v6]:port`, `*:port` and `:port` are accepted.
pub fn split_listen(listen: &str) -> Result<(String, u16), ApiError> {
    let err = || ApiError::Listen(listen.to_owned());
    let (host, port) = listen.trim().rsplit_once(':').ok_or_else(err)?;
    let port: u16 = port.parse().map_err(|_| err())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_owned(), port))
}

async fn bind(listen: &str, backlog: u32) -> Result<TcpListener, ApiError> {
    let (host, port) = split_listen(listen)?;
    let bind_err = |source| ApiError::Bind { addr: listen.to_owned(), source };
    let candidates: Vec<SocketAddr> = if host.is_empty() || host == "*" {
        // Dual-stack first, as Patroni prefers; IPv4 when the host has no IPv6.
        vec![
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
        ]
    } else {
        tokio::net::lookup_host((host.as_str(), port)).await.map_err(bind_err)?.collect()
    };
    let mut last = std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address to bind");
    for addr in candidates {
        let socket = match if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() } {
            Ok(s) => s,
            Err(e) => {
                last = e;
                continue;
            }
        };
        // Lets a restarted agent rebind while old connections linger in TIME_WAIT.
        let _ = socket.set_reuseaddr(true);
        if let Err(e) = socket.bind(addr) {
            last = e;
            continue;
        }
        match socket.listen(backlog) {
            Ok(l) => return Ok(l),
            Err(e) => last = e,
        }
    }
    Err(bind_err(last))
}

/// A bound REST API server; [`ApiServer::run`] serves until the shutdown future completes.
pub struct ApiServer {
    listener: TcpListener,
    shared: Arc<Shared>,
    version: String,
}

/// Reloads the settings of a running server (certificates, auth, allowlist, headers).
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    version: String,
}

impl ServerHandle {
    /// Applies new settings to new requests; `listen` changes need a new server.
    pub async fn reload(&self, settings: &ServerSettings) -> Result<(), ApiError> {
        let rt = Arc::new(build_runtime(settings, &self.version).await?);
        match self.shared.runtime.write() {
            Ok(mut g) => *g = rt,
            Err(poisoned) => *poisoned.into_inner() = rt,
        }
        Ok(())
    }
}

impl ApiServer {
    /// Binds the socket and prepares TLS; fails with a message naming the bad setting.
    pub async fn bind(
        settings: &ServerSettings,
        status: watch::Receiver<Arc<NodeStatus>>,
        control: Arc<dyn Control>,
    ) -> Result<Self, ApiError> {
        let version = status.borrow().patroni.version.clone();
        let runtime = build_runtime(settings, &version).await?;
        let listener = bind(&settings.listen, settings.request_queue_size.unwrap_or(1024)).await?;
        Ok(Self {
            listener,
            shared: Arc::new(Shared { runtime: RwLock::new(Arc::new(runtime)), status, control }),
            version,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle to reload settings later.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle { shared: self.shared.clone(), version: self.version.clone() }
    }

    /// Accepts connections until `shutdown` completes, then lets open requests finish (bounded).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(shutdown);
        let scheme = if self.shared.runtime().tls.is_some() { "https" } else { "http" };
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!("REST API listening on {scheme}://{addr}");
        }
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                () = &mut shutdown => break,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("REST API accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let shared = self.shared.clone();
            let rt = shared.runtime();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let _permit = permit;
                let builder = {
                    let mut b = http1::Builder::new();
                    b.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30)).keep_alive(true);
                    b
                };
                match &rt.tls {
                    None => {
                        let info = ConnInfo { peer, tls: false, client_cert: false };
                        let svc = service_fn(move |req| handle(shared.clone(), info, req));
                        let conn = builder.serve_connection(TokioIo::new(stream), svc);
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!("REST API connection from {peer}: {e}");
                        }
                    }
                    Some(acceptor) => {
                        let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!("REST API TLS handshake with {peer} failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("REST API TLS handshake with {peer} timed out");
                                return;
                            }
                        };
                        let client_cert = tls.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                        let info = ConnInfo { peer, tls: true, client_cert };
                        let svc = service_fn(move |req| handle(shared.clone(), info, req));
                        let conn = builder.serve_connection(TokioIo::new(tls), svc);
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!("REST API connection from {peer}: {e}");
                        }
                    }
                }
            });
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(split_listen("127.0.0.1:8008").unwrap(), ("127.0.0.1".into(), 8008));
        assert_eq!(split_listen("*:8008").unwrap(), ("*".into(), 8008));
        assert_eq!(split_listen(":8008").unwrap(), ("".into(), 8008));
        assert_eq!(split_listen("[::1]:8008").unwrap(), ("::1".into(), 8008));
        assert!(split_listen("8008").is_err());
        assert!(split_listen("host:http").is_err());
    }

    #[test]
    fn server_tokens() {
        assert_eq!(server_header(None, "4.1.5").unwrap(), ORIGINAL_SERVER_HEADER);
        assert_eq!(server_header(Some("ProductOnly"), "4.1.5").unwrap(), "Patroni");
        assert_eq!(server_header(Some("Minimal"), "4.1.5").unwrap(), "Patroni/4.1.5");
        assert_eq!(server_header(Some("weird"), "4.1.5").unwrap(), ORIGINAL_SERVER_HEADER);
    }
}
