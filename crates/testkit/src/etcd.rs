//! A real single-node etcd (3.4+, Debian `etcd-server`), with helpers over its v3 JSON gateway.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::dir::TestDir;
use crate::error::{Error, Result};
use crate::port::try_free_port;
use crate::process::Supervised;
use crate::tls::TestCerts;
use crate::user::UnprivilegedCommand;

/// Path of the etcd binary, when not `etcd` on PATH.
pub const ETCD_BIN_ENV: &str = "ETCD_BIN";

const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(15);
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
const PORT_ATTEMPTS: u32 = 3;
/// Short, so that an exit of etcd is noticed even while something else's listener holds the port and hangs.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How to start an [`EtcdServer`]; `EtcdServer::builder()...start().await`.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    enable_v2: bool,
    tls: bool,
    client_cert_auth: bool,
    openssl_self_signed: bool,
    root_password: Option<String>,
    extra_args: Vec<String>,
    start_timeout: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            enable_v2: false,
            tls: false,
            client_cert_auth: false,
            openssl_self_signed: false,
            root_password: None,
            extra_args: Vec::new(),
            start_timeout: DEFAULT_START_TIMEOUT,
        }
    }
}

impl EtcdOptions {
    /// Serves the v2 API too (`--enable-v2=true`).
    pub fn enable_v2(mut self) -> Self {
        self.enable_v2 = true;
        self
    }

    /// Clients connect over https with certificates from [`EtcdServer::certs`].
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// TLS, and clients must present a certificate signed by the test CA (`--client-cert-auth`).
    pub fn client_cert_auth(mut self) -> Self {
        self.tls = true;
        self.client_cert_auth = true;
        self
    }

    /// Client certificate auth with one `openssl req -x509` certificate (CA:TRUE, CN `root`) as etcd's
    /// certificate, trusted CA file and the clients' certificate ([`TestCerts::openssl_self_signed`]).
    /// [`EtcdServer::http_client`] then does not verify etcd's certificate: reqwest refuses a CA certificate as
    /// a server certificate, and that client only drives the test.
    pub fn openssl_self_signed(self) -> Self {
        let mut options = self.client_cert_auth();
        options.openssl_self_signed = true;
        options
    }

    /// Creates the `root` user with this password (and the `root` role) and enables authentication once started.
    pub fn auth(mut self, root_password: impl Into<String>) -> Self {
        self.root_password = Some(root_password.into());
        self
    }

    /// An extra etcd command-line argument, e.g. `--auto-compaction-retention=1`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    pub async fn start(self) -> Result<EtcdServer> {
        EtcdServer::start_with(self).await
    }

    /// `members` etcd processes forming one cluster (certificates and auth shared).
    pub async fn start_cluster(self, members: usize) -> Result<EtcdCluster> {
        EtcdCluster::start_with(self, members).await
    }
}

/// A running etcd: own client and peer ports on 127.0.0.1, data and log (`etcd.log`) in its own [`TestDir`].
/// Killed on drop.
pub struct EtcdServer {
    options: EtcdOptions,
    /// Member name and the `--initial-cluster` value (used on first start only; etcd ignores it afterwards).
    name: String,
    initial_cluster: String,
    cluster_token: String,
    client_port: u16,
    peer_port: u16,
    binary: PathBuf,
    certs: Option<TestCerts>,
    http: reqwest::Client,
    process: Option<Supervised>,
    // Last: removed after the process is gone.
    dir: TestDir,
    /// A cluster's shared certificates live here; dropped after every member.
    _shared: Option<Arc<TestDir>>,
}

impl std::fmt::Debug for EtcdServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdServer")
            .field("client_url", &self.client_url())
            .field("dir", &self.dir.path())
            .field("pid", &self.pid())
            .finish()
    }
}

/// Finds the etcd binary: `$ETCD_BIN`, else `etcd` on PATH, else `/usr/bin/etcd`.
pub fn etcd_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(ETCD_BIN_ENV) {
        return Ok(PathBuf::from(path));
    }
    if let Ok(path) = which::which("etcd") {
        return Ok(path);
    }
    let fallback = PathBuf::from("/usr/bin/etcd");
    if fallback.exists() {
        return Ok(fallback);
    }
    Err(Error::NotFound {
        what: "etcd".to_string(),
        hint: format!("install Debian's etcd-server (scripts/test.sh does), or set {ETCD_BIN_ENV}"),
    })
}

impl EtcdServer {
    pub fn builder() -> EtcdOptions {
        EtcdOptions::default()
    }

    /// Plain http, no auth.
    pub async fn start() -> Result<Self> {
        Self::start_with(EtcdOptions::default()).await
    }

    pub async fn start_with(options: EtcdOptions) -> Result<Self> {
        crate::install_crypto_provider();
        let dir = TestDir::with_prefix("patroni-etcd-")?;
        let certs = if options.tls {
            let tls_dir = dir.create_dir("tls", 0o755)?;
            Some(test_certs(&options, &tls_dir)?)
        } else {
            None
        };
        let (client_port, peer_port) = (try_free_port()?, try_free_port()?);
        let name = "testkit".to_string();
        let initial_cluster = format!("{name}=http://127.0.0.1:{peer_port}");
        let mut server = EtcdServer::new(options, name, initial_cluster, (client_port, peer_port), certs, dir, None)?;
        server.first_launch().await?;
        if let Some(password) = server.options.root_password.clone() {
            server.enable_auth(&password).await?;
        }
        Ok(server)
    }

    fn new(
        options: EtcdOptions,
        name: String,
        initial_cluster: String,
        (client_port, peer_port): (u16, u16),
        certs: Option<TestCerts>,
        dir: TestDir,
        shared: Option<Arc<TestDir>>,
    ) -> Result<Self> {
        Ok(EtcdServer {
            http: http_client(certs.as_ref(), options.openssl_self_signed)?,
            binary: etcd_binary()?,
            cluster_token: cluster_token(&initial_cluster),
            options,
            name,
            initial_cluster,
            client_port,
            peer_port,
            certs,
            process: None,
            dir,
            _shared: shared,
        })
    }

    async fn first_launch(&mut self) -> Result<()> {
        let mut attempt = 1;
        loop {
            match self.launch().await {
                // Another program took a port between reservation and bind: start afresh on new ones.
                Err(e) if attempt < PORT_ATTEMPTS && crate::process::is_port_conflict(&e) => {
                    attempt += 1;
                    self.move_to_new_ports()?;
                }
                result => return result,
            }
        }
    }

    fn move_to_new_ports(&mut self) -> Result<()> {
        let data = self.data_dir();
        if data.exists() {
            std::fs::remove_dir_all(&data)
                .map_err(|source| Error::Io { context: format!("removing {}", data.display()), source })?;
        }
        self.client_port = try_free_port()?;
        self.peer_port = try_free_port()?;
        self.initial_cluster = format!("{}=http://127.0.0.1:{}", self.name, self.peer_port);
        self.cluster_token = cluster_token(&self.initial_cluster);
        Ok(())
    }

    fn scheme(&self) -> &'static str {
        if self.options.tls {
            "https"
        } else {
            "http"
        }
    }

    /// `http://127.0.0.1:PORT` (https with TLS).
    pub fn client_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.client_port)
    }

    /// `127.0.0.1:PORT`, the form of Patroni's `etcd3.host` / `hosts`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    pub fn peer_port(&self) -> u16 {
        self.peer_port
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    /// The CA and certificates when started with TLS.
    pub fn certs(&self) -> Option<&TestCerts> {
        self.certs.as_ref()
    }

    pub fn root_password(&self) -> Option<&str> {
        self.options.root_password.as_deref()
    }

    /// A client that trusts this server's CA and presents the client certificate; no proxy.
    pub fn http_client(&self) -> &reqwest::Client {
        &self.http
    }

    /// The pid while running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Supervised::pid)
    }

    /// True while the process runs (it may still be starting).
    pub fn is_running(&mut self) -> bool {
        match self.process.as_mut() {
            Some(p) => p.exit_status().is_none(),
            None => false,
        }
    }

    fn command(&self) -> std::process::Command {
        let client_url = self.client_url();
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let mut cmd = std::process::Command::new(&self.binary);
        cmd.arg(format!("--name={}", self.name))
            .arg(format!("--data-dir={}", self.data_dir().display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={}", self.initial_cluster))
            .arg("--initial-cluster-state=new")
            .arg(format!("--initial-cluster-token={}", self.cluster_token))
            .arg("--logger=zap")
            .arg("--log-outputs=stderr");
        if self.options.enable_v2 {
            cmd.arg("--enable-v2=true");
        }
        if let Some(certs) = &self.certs {
            cmd.arg(format!("--cert-file={}", certs.server_cert.display()))
                .arg(format!("--key-file={}", certs.server_key.display()))
                .arg(format!("--trusted-ca-file={}", certs.ca_cert.display()));
            if self.options.client_cert_auth {
                cmd.arg("--client-cert-auth=true");
            }
        }
        cmd.args(&self.options.extra_args);
        // etcd does not mind root; only tie its life to ours.
        cmd.die_with_parent();
        cmd
    }

    async fn launch(&mut self) -> Result<()> {
        self.spawn_process()?;
        self.wait_healthy().await
    }

    fn spawn_process(&mut self) -> Result<()> {
        let process = Supervised::spawn(&format!("etcd {}", self.name), self.command(), &self.log_path(), false)?;
        self.process = Some(process);
        Ok(())
    }

    /// Waits until `/health` says true (a leader is known), failing at once if the process exits.
    async fn wait_healthy(&mut self) -> Result<()> {
        let health = format!("{}/health", self.client_url());
        let timeout = self.options.start_timeout;
        let http = self.http.clone();
        let Some(process) = self.process.as_mut() else {
            return Err(Error::NotFound {
                what: format!("etcd {} process", self.name),
                hint: "not started".to_string(),
            });
        };
        let mut last_error = String::from("no answer yet");
        let probing = async {
            loop {
                if let Some(status) = process.exit_status() {
                    return Err(format!("etcd exited during startup ({status})"));
                }
                match http.get(&health).timeout(PROBE_TIMEOUT).send().await {
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        if status.is_success() && body.contains("true") {
                            return Ok(());
                        }
                        last_error = format!("{status}: {body}");
                    }
                    Err(e) => last_error = e.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let outcome = match tokio::time::timeout(timeout, probing).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("{health} not healthy after {timeout:?} (last answer: {last_error})")),
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(reason) => {
                // Kill before quoting the log so the tail is complete.
                process.kill_now();
                let err = process.failure(reason);
                self.process = None;
                Err(err)
            }
        }
    }

    /// Graceful stop (SIGTERM, then SIGKILL after 10 s), waiting for the exit. Data stays for [`Self::start_again`].
    pub async fn stop(&mut self) -> Result<()> {
        // A paused etcd would only see the SIGTERM once resumed.
        self.resume()?;
        if let Some(mut process) = self.process.take() {
            process.stop(Signal::SIGTERM, Duration::from_secs(10)).await?;
        }
        Ok(())
    }

    /// SIGKILL and reap: etcd vanishes as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill_now();
        }
    }

    /// SIGSTOP: etcd keeps its sockets but answers nothing, so clients see timeouts rather than refusals.
    pub fn pause(&mut self) -> Result<()> {
        match self.process.as_mut() {
            Some(p) => p.signal(Signal::SIGSTOP),
            None => Ok(()),
        }
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&mut self) -> Result<()> {
        match self.process.as_mut() {
            Some(p) => p.signal(Signal::SIGCONT),
            None => Ok(()),
        }
    }

    /// Starts etcd again on the same ports and data (after [`Self::stop`] or [`Self::kill`]); waits until healthy.
    pub async fn start_again(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        self.launch().await
    }

    // ---- v3 JSON gateway helpers (what Python Patroni uses too) ----

    /// POSTs `body` to `/v3/<path>` (e.g. `kv/put`), authenticating as root when auth is enabled.
    pub async fn v3(&self, path: &str, body: Value) -> Result<Value> {
        let token = match &self.options.root_password {
            Some(password) => Some(self.authenticate("root", password).await?),
            None => None,
        };
        self.v3_with_token(path, body, token.as_deref()).await
    }

    async fn v3_with_token(&self, path: &str, body: Value, token: Option<&str>) -> Result<Value> {
        let url = format!("{}/v3/{path}", self.client_url());
        let mut request = self.http.post(&url).timeout(HTTP_TIMEOUT).json(&body);
        if let Some(token) = token {
            request = request.header("Authorization", token);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(Error::Etcd { endpoint: url, status: status.as_u16(), body: text });
        }
        serde_json::from_str(&text).map_err(|e| Error::Protocol { what: url, detail: format!("{e}: {text}") })
    }

    /// A token for `user` from `/v3/auth/authenticate`.
    pub async fn authenticate(&self, user: &str, password: &str) -> Result<String> {
        let answer = self.v3_with_token("auth/authenticate", json!({"name": user, "password": password}), None).await?;
        match answer.get("token").and_then(Value::as_str) {
            Some(token) => Ok(token.to_string()),
            None => Err(Error::Protocol {
                what: "etcd auth/authenticate".to_string(),
                detail: format!("no token in {answer}"),
            }),
        }
    }

    /// What etcdctl's `user add root` + `auth enable` do: root user, root role, grant, enable.
    async fn enable_auth(&self, root_password: &str) -> Result<()> {
        self.v3_with_token("auth/user/add", json!({"name": "root", "password": root_password}), None).await?;
        self.v3_with_token("auth/role/add", json!({"name": "root"}), None).await?;
        self.v3_with_token("auth/user/grant", json!({"user": "root", "role": "root"}), None).await?;
        self.v3_with_token("auth/enable", json!({}), None).await?;
        Ok(())
    }

    /// Adds `user` with read-write access to keys under `prefix` (needs [`EtcdOptions::auth`]).
    pub async fn add_user(&self, user: &str, password: &str, prefix: &str) -> Result<()> {
        self.v3("auth/user/add", json!({"name": user, "password": password})).await?;
        self.v3("auth/role/add", json!({"name": user})).await?;
        let perm = json!({"permType": "READWRITE", "key": b64(prefix), "range_end": b64(prefix_end(prefix))});
        self.v3("auth/role/grant", json!({"name": user, "perm": perm})).await?;
        self.v3("auth/user/grant", json!({"user": user, "role": user})).await?;
        Ok(())
    }

    pub async fn put(&self, key: &str, value: &str) -> Result<()> {
        self.v3("kv/put", json!({"key": b64(key), "value": b64(value)})).await?;
        Ok(())
    }

    /// The value of `key`, None when absent.
    pub async fn get(&self, key: &str) -> Result<Option<String>> {
        let answer = self.v3("kv/range", json!({"key": b64(key)})).await?;
        Ok(decode_kvs(&answer)?.into_iter().next().map(|(_, v)| v))
    }

    /// Every `(key, value)` under `prefix`, sorted by key.
    pub async fn get_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let answer = self.v3("kv/range", json!({"key": b64(prefix), "range_end": b64(prefix_end(prefix))})).await?;
        decode_kvs(&answer)
    }

    /// Deletes `key`; true when it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let answer = self.v3("kv/deleterange", json!({"key": b64(key)})).await?;
        // 64-bit integers come as strings from the gateway, and zero values are omitted.
        let deleted = answer.get("deleted").map(|d| match d {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        Ok(deleted.is_some_and(|d| d != "0"))
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // Resume first: a stopped process cannot be reaped until it runs again (SIGKILL does that, but be explicit).
        let _ = self.resume();
        self.kill();
    }
}

/// Several etcd members forming one cluster, each an [`EtcdServer`] with its own ports, dir and log, for tests
/// where one DCS node goes away. Members are stopped and started again individually through [`Self::member`].
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<EtcdServer>,
}

impl EtcdCluster {
    /// `members` plain-http members.
    pub async fn start(members: usize) -> Result<Self> {
        Self::start_with(EtcdOptions::default(), members).await
    }

    pub async fn start_with(options: EtcdOptions, members: usize) -> Result<Self> {
        crate::install_crypto_provider();
        if members == 0 {
            return Err(Error::Protocol {
                what: "EtcdCluster::start".to_string(),
                detail: "a cluster needs at least one member".to_string(),
            });
        }
        let shared = Arc::new(TestDir::with_prefix("patroni-etcd-cluster-")?);
        let certs = if options.tls {
            let tls_dir = shared.create_dir("tls", 0o755)?;
            Some(test_certs(&options, &tls_dir)?)
        } else {
            None
        };
        let mut ports = Vec::with_capacity(members);
        for _ in 0..members {
            ports.push((try_free_port()?, try_free_port()?));
        }
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("etcd{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster { members: Vec::with_capacity(members) };
        for (i, member_ports) in ports.into_iter().enumerate() {
            let member = EtcdServer::new(
                options.clone(),
                format!("etcd{i}"),
                initial_cluster.clone(),
                member_ports,
                certs.clone(),
                TestDir::with_prefix("patroni-etcd-")?,
                Some(shared.clone()),
            )?;
            cluster.members.push(member);
        }
        // All must run before any is healthy: a member has no leader until a quorum has started.
        for member in &mut cluster.members {
            member.spawn_process()?;
        }
        for member in &mut cluster.members {
            member.wait_healthy().await?;
        }
        if let Some(password) = options.root_password {
            cluster.members[0].enable_auth(&password).await?;
        }
        Ok(cluster)
    }

    pub fn members(&self) -> &[EtcdServer] {
        &self.members
    }

    /// Member `index` (0-based), to stop, kill, pause or start again.
    pub fn member(&mut self, index: usize) -> Option<&mut EtcdServer> {
        self.members.get_mut(index)
    }

    /// `127.0.0.1:PORT` of every member, the form of Patroni's `etcd3.hosts`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdServer::endpoint).collect()
    }

    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(EtcdServer::client_url).collect()
    }

    /// Puts through the first member that answers.
    pub async fn put(&self, key: &str, value: &str) -> Result<()> {
        let mut last = None;
        for member in &self.members {
            match member.put(key, value).await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(no_member))
    }

    /// Reads through the first member that answers.
    pub async fn get(&self, key: &str) -> Result<Option<String>> {
        let mut last = None;
        for member in &self.members {
            match member.get(key).await {
                Ok(value) => return Ok(value),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(no_member))
    }
}

fn no_member() -> Error {
    Error::Protocol { what: "etcd cluster".to_string(), detail: "no member".to_string() }
}

/// Same for every member of one cluster (it is derived from the shared `--initial-cluster`), distinct between
/// clusters (their ports differ).
fn cluster_token(initial_cluster: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    initial_cluster.hash(&mut hasher);
    format!("testkit-{:016x}", hasher.finish())
}

fn test_certs(options: &EtcdOptions, dir: &Path) -> Result<TestCerts> {
    if options.openssl_self_signed {
        TestCerts::openssl_self_signed(dir, "root")
    } else {
        TestCerts::generate(dir)
    }
}

fn http_client(certs: Option<&TestCerts>, unverified: bool) -> Result<reqwest::Client> {
    crate::install_crypto_provider();
    // Test traffic to 127.0.0.1 must never go through a proxy from the environment.
    let mut builder = reqwest::Client::builder().no_proxy().connect_timeout(Duration::from_secs(2));
    if let Some(certs) = certs {
        builder = builder.identity(reqwest::Identity::from_pem(certs.client_identity_pem().as_bytes())?);
        builder = if unverified {
            builder.danger_accept_invalid_certs(true)
        } else {
            builder.tls_certs_only([reqwest::Certificate::from_pem(certs.ca_pem().as_bytes())?])
        };
    }
    Ok(builder.build()?)
}

fn b64(s: impl AsRef<[u8]>) -> String {
    B64.encode(s.as_ref())
}

/// The range end that selects every key starting with `prefix` (etcdctl's `--prefix`).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xff {
            bytes.push(last + 1);
            return bytes;
        }
    }
    // Empty prefix: the whole keyspace from the key on, which etcd spells "\0".
    vec![0]
}

fn decode_kvs(answer: &Value) -> Result<Vec<(String, String)>> {
    let Some(kvs) = answer.get("kvs").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let field = |kv: &Value, name: &str| -> Result<String> {
        let encoded = kv.get(name).and_then(Value::as_str).unwrap_or("");
        let bytes = B64.decode(encoded).map_err(|e| Error::Protocol {
            what: "etcd kv/range".to_string(),
            detail: format!("{name} is not base64 ({e}): {encoded}"),
        })?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    kvs.iter().map(|kv| Ok((field(kv, "key")?, field(kv, "value")?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_replaced_on_first_start() {
        let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        let peer_port = try_free_port().unwrap();
        let dir = TestDir::with_prefix("patroni-etcd-").unwrap();
        let initial_cluster = format!("testkit=http://127.0.0.1:{peer_port}");
        let mut server = EtcdServer::new(
            EtcdOptions::default(),
            "testkit".to_string(),
            initial_cluster,
            (taken_port, peer_port),
            None,
            dir,
            None,
        )
        .unwrap();
        server.first_launch().await.unwrap();
        assert_ne!(server.client_port(), taken_port);
        server.put("/k", "v").await.unwrap();
    }

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("/service/a/"), b"/service/a0");
        assert_eq!(prefix_end("a"), b"b");
        assert_eq!(prefix_end(""), b"\0");
    }
}
