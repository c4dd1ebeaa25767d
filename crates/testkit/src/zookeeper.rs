//! A real ZooKeeper (Debian's `zookeeper` package, run as `java … ZooKeeperServerMain` / `QuorumPeerMain`) on free
//! loopback ports: one standalone server, or an ensemble of several.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::dir::TestDir;
use crate::error::{Error, Result};
use crate::port::try_free_port;
use crate::process::Supervised;
use crate::user::UnprivilegedCommand;

/// Where the ZooKeeper jar is (the Debian package); `ZOOKEEPER_CLASSPATH` overrides the whole class path.
const DEBIAN_JAR: &str = "/usr/share/java/zookeeper.jar";
const DEBIAN_CONF: &str = "/etc/zookeeper/conf";
pub const ZOOKEEPER_CLASSPATH_ENV: &str = "ZOOKEEPER_CLASSPATH";

/// A JVM needs a few seconds; a loaded CI machine more.
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn classpath() -> Result<String> {
    if let Ok(cp) = std::env::var(ZOOKEEPER_CLASSPATH_ENV) {
        return Ok(cp);
    }
    if !Path::new(DEBIAN_JAR).exists() {
        return Err(Error::NotFound {
            what: "ZooKeeper".into(),
            hint: format!("install Debian's zookeeper package ({DEBIAN_JAR}) or set {ZOOKEEPER_CLASSPATH_ENV}"),
        });
    }
    // The jar's manifest lists the Netty jars its plain server needs; the TLS handler also needs the codec and
    // resolver jars, which Debian ships beside them.
    let mut cp = format!("{DEBIAN_CONF}:{DEBIAN_JAR}");
    for extra in NETTY_TLS_JARS {
        if Path::new(extra).exists() {
            cp.push(':');
            cp.push_str(extra);
        }
    }
    Ok(cp)
}

const NETTY_TLS_JARS: [&str; 2] = ["/usr/share/java/netty-codec.jar", "/usr/share/java/netty-resolver.jar"];

/// One ZooKeeper server process (standalone or one member of an ensemble).
pub struct ZooKeeperServer {
    id: usize,
    client_port: u16,
    /// `server.N=…` lines of the ensemble (empty when standalone).
    ensemble: Vec<String>,
    process: Option<Supervised>,
    dir: TestDir,
    _shared: Option<Arc<TestDir>>,
    tls: Option<TlsPort>,
}

/// The TLS client port of a server started by [`ZooKeeperServer::start_tls`].
struct TlsPort {
    port: u16,
    /// The server's certificate and key in one PEM file (ZooKeeper's `PEM` key store type).
    key_store: PathBuf,
    trust_store: PathBuf,
    client_auth: bool,
}

impl ZooKeeperServer {
    /// A standalone server; waits until it answers `ruok`.
    pub async fn start() -> Result<Self> {
        let mut server = ZooKeeperServer {
            id: 1,
            client_port: try_free_port()?,
            ensemble: vec![],
            process: None,
            dir: TestDir::with_prefix("patroni-zk-")?,
            _shared: None,
            tls: None,
        };
        server.launch().await?;
        Ok(server)
    }

    /// A standalone server that also serves TLS on [`Self::tls_endpoint`] (Netty, PEM stores) with `certs`' server
    /// certificate. With `client_auth` it demands a client certificate signed by the CA and authenticates it as
    /// the `x509` scheme (the certificate's subject, e.g. `CN=root`), which `set_acls` grants rights to. The plain
    /// port stays for the four-letter checks and for a client without a certificate.
    pub async fn start_tls(certs: &crate::TestCerts, client_auth: bool) -> Result<Self> {
        let dir = TestDir::with_prefix("patroni-zk-")?;
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .map_err(|source| Error::Io { context: format!("reading {}", path.display()), source })
        };
        let key_store = dir.join("server-keystore.pem");
        let pem = format!("{}{}", read(&certs.server_cert)?, read(&certs.server_key)?);
        crate::dir::write_file(&key_store, pem.as_bytes(), 0o600)?;
        let mut server = ZooKeeperServer {
            id: 1,
            client_port: try_free_port()?,
            ensemble: vec![],
            process: None,
            dir,
            _shared: None,
            tls: Some(TlsPort { port: try_free_port()?, key_store, trust_store: certs.ca_cert.clone(), client_auth }),
        };
        server.launch().await?;
        Ok(server)
    }

    /// `127.0.0.1:PORT` of the TLS client port (a server of [`Self::start_tls`]).
    pub fn tls_endpoint(&self) -> Option<String> {
        self.tls.as_ref().map(|t| format!("127.0.0.1:{}", t.port))
    }

    /// `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Supervised::pid)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("zookeeper.log")
    }

    fn write_config(&self) -> Result<PathBuf> {
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data)
            .map_err(|source| Error::Io { context: format!("creating {}", data.display()), source })?;
        let mut cfg = format!(
            "tickTime=250\ninitLimit=40\nsyncLimit=20\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\nminSessionTimeout=1000\nmaxSessionTimeout=60000\n\
             4lw.commands.whitelist=ruok,srvr\n",
            data.display(),
            self.client_port
        );
        if let Some(t) = &self.tls {
            // Netty serves TLS; PEM stores need no keytool. Hostnames are not checked (the client connects by IP).
            cfg.push_str(&format!(
                "secureClientPort={}\nsecureClientPortAddress=127.0.0.1\n\
                 serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
                 ssl.keyStore.location={}\nssl.keyStore.type=PEM\n\
                 ssl.trustStore.location={}\nssl.trustStore.type=PEM\n\
                 ssl.clientAuth={}\nssl.hostnameVerification=false\n\
                 authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider\n",
                t.port,
                t.key_store.display(),
                t.trust_store.display(),
                if t.client_auth { "need" } else { "none" },
            ));
        }
        for line in &self.ensemble {
            cfg.push_str(line);
            cfg.push('\n');
        }
        if !self.ensemble.is_empty() {
            crate::dir::write_file(&data.join("myid"), format!("{}\n", self.id).as_bytes(), 0o644)?;
        }
        let path = self.dir.join("zoo.cfg");
        crate::dir::write_file(&path, cfg.as_bytes(), 0o644)?;
        Ok(path)
    }

    fn command(&self, config: &Path) -> Result<std::process::Command> {
        let main = if self.ensemble.is_empty() {
            "org.apache.zookeeper.server.ZooKeeperServerMain"
        } else {
            "org.apache.zookeeper.server.quorum.QuorumPeerMain"
        };
        let mut cmd = std::process::Command::new("java");
        cmd.arg("-Xmx128m")
            .arg("-XX:+UseSerialGC")
            .arg("-XX:TieredStopAtLevel=1")
            .arg("-Dzookeeper.admin.enableServer=false")
            .arg("-cp")
            .arg(classpath()?)
            .arg(main)
            .arg(config);
        cmd.die_with_parent();
        Ok(cmd)
    }

    async fn launch(&mut self) -> Result<()> {
        let config = self.write_config()?;
        let cmd = self.command(&config)?;
        self.process = Some(Supervised::spawn(&format!("zookeeper {}", self.id), cmd, &self.log_path(), false)?);
        self.wait_serving().await
    }

    /// The four-letter answer of `word` (`ruok`, `srvr`), or an error.
    pub async fn four_letter(&self, word: &str) -> std::result::Result<String, String> {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.client_port)).await.map_err(|e| e.to_string())?;
        s.write_all(word.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// Serving clients: `srvr` names a mode (standalone, leader or follower).
    async fn wait_serving(&mut self) -> Result<()> {
        let start = tokio::time::Instant::now();
        loop {
            if let Some(p) = self.process.as_mut() {
                if let Some(status) = p.exit_status() {
                    let err = p.failure(format!("ZooKeeper exited during startup ({status})"));
                    self.process = None;
                    return Err(err);
                }
            }
            let last = match tokio::time::timeout(Duration::from_secs(2), self.four_letter("srvr")).await {
                Ok(Ok(answer)) if answer.contains("Mode:") => return Ok(()),
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => e,
                Err(_) => "srvr timed out".into(),
            };
            if start.elapsed() > START_TIMEOUT {
                if let Some(mut p) = self.process.take() {
                    p.kill_now();
                    return Err(p.failure(format!("not serving after {START_TIMEOUT:?}: {last}")));
                }
                return Err(Error::Timeout {
                    what: "ZooKeeper".into(),
                    timeout: START_TIMEOUT,
                    last_error: Some(last),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Graceful stop; data stays for [`Self::start_again`].
    pub async fn stop(&mut self) -> Result<()> {
        self.resume()?;
        if let Some(mut p) = self.process.take() {
            p.stop(Signal::SIGTERM, Duration::from_secs(10)).await?;
        }
        Ok(())
    }

    /// SIGSTOP: the server keeps its sockets but answers nothing.
    pub fn pause(&mut self) -> Result<()> {
        match self.process.as_mut() {
            Some(p) => p.signal(Signal::SIGSTOP),
            None => Ok(()),
        }
    }

    pub fn resume(&mut self) -> Result<()> {
        match self.process.as_mut() {
            Some(p) => p.signal(Signal::SIGCONT),
            None => Ok(()),
        }
    }

    /// Starts the server again on the same port and data; waits until it serves.
    pub async fn start_again(&mut self) -> Result<()> {
        if self.process.is_some() {
            return Ok(());
        }
        self.launch().await
    }
}

/// Several servers forming one ensemble (a majority must be up to serve).
pub struct ZooKeeperEnsemble {
    pub servers: Vec<ZooKeeperServer>,
}

impl ZooKeeperEnsemble {
    pub async fn start(size: usize) -> Result<Self> {
        let shared = Arc::new(TestDir::with_prefix("patroni-zk-ensemble-")?);
        let mut ports = Vec::new();
        for _ in 0..size {
            ports.push((try_free_port()?, try_free_port()?, try_free_port()?));
        }
        let lines: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, quorum, election))| format!("server.{}=127.0.0.1:{quorum}:{election}", i + 1))
            .collect();
        let mut servers = Vec::new();
        for (i, (client, _, _)) in ports.iter().enumerate() {
            let mut s = ZooKeeperServer {
                id: i + 1,
                client_port: *client,
                ensemble: lines.clone(),
                process: None,
                dir: TestDir::with_prefix("patroni-zk-")?,
                _shared: Some(shared.clone()),
                tls: None,
            };
            let config = s.write_config()?;
            let cmd = s.command(&config)?;
            s.process = Some(Supervised::spawn(&format!("zookeeper {}", i + 1), cmd, &s.log_path(), false)?);
            servers.push(s);
        }
        // The members elect a leader together: wait for each only once all run.
        for s in &mut servers {
            s.wait_serving().await?;
        }
        Ok(ZooKeeperEnsemble { servers })
    }

    /// `h1:p1,h2:p2,…` of every member.
    pub fn connect_string(&self) -> String {
        self.servers.iter().map(ZooKeeperServer::endpoint).collect::<Vec<_>>().join(",")
    }
}

/// A stand-in for Exhibitor's REST endpoint on a free loopback port, for the life of the calling tokio runtime:
/// `GET /exhibitor/v1/cluster/list` answers with the JSON `answer` holds at the time (Exhibitor is only discovery:
/// Patroni asks it for the ZooKeeper server list), anything else 404. Returns the port.
pub async fn exhibitor_stand_in(answer: std::sync::Arc<std::sync::Mutex<String>>) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let body = answer.lock().map(|a| a.clone()).unwrap_or_default();
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let (status, body) = if buf[..n].starts_with(b"GET /exhibitor/v1/cluster/list ") {
                ("200 OK", body)
            } else {
                ("404 Not Found", String::new())
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    Ok(port)
}
