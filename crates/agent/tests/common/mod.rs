//! A real 3-member cluster for the integration tests: one etcd, three `patroni` agents (each with its own
//! PostgreSQL), SQL and REST helpers, and bounded waits for roles.
//!
//! Every test builds its own cluster (own etcd, own ports and dirs), so tests can run in parallel; everything is
//! stopped on drop, and when a test panics the tail of every agent's log is printed to explain why.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use patroni_testkit::{
    pg_bin_dir, wait_until, AgentProcess, EtcdServer, TestCerts, UnprivilegedCommand, ZooKeeperServer,
};
use tokio_postgres::{NoTls, SimpleQueryMessage};

pub const TTL: u64 = 20;
pub const LOOP_WAIT: u64 = 2;
pub const RETRY_TIMEOUT: u64 = 5;
pub const SCOPE: &str = "demo";
pub const LEADER_KEY: &str = "/service/demo/leader";
const PASSWORD: &str = patroni_testkit::SUPERUSER_PASSWORD;

/// Generous but finite: bootstrap plus two base backups on a loaded 2-core machine.
pub const START_TIMEOUT: Duration = Duration::from_secs(120);
pub const WAIT: Duration = Duration::from_secs(60);
pub const POLL: Duration = Duration::from_millis(200);

/// What differs between the clusters of the tests.
#[derive(Clone, Debug)]
pub struct Options {
    pub members: usize,
    /// Extra `bootstrap.dcs` entries, one `key: value` per line (e.g. `maximum_lag_on_failover: 65536`).
    pub dcs_extra: Vec<String>,
    /// Per member: the `tags` section as a YAML flow mapping (`{nofailover: true}`).
    pub tags: Vec<Option<String>>,
    /// `loop_wait` in `bootstrap.dcs` (default [`LOOP_WAIT`]).
    pub loop_wait: u64,
    /// `ttl` in `bootstrap.dcs` (default [`TTL`]).
    pub ttl: u64,
    /// The guardian fences a primary whose agent stops renewing the key (default on, as in production).
    pub guardian: bool,
    /// Per member: a data directory other than `<agent dir>/data`.
    pub data_dirs: Vec<Option<PathBuf>>,
    /// Extra `restapi` entries for every member, one `key: value` per line (e.g. `allowlist: [10.0.0.1]`).
    pub restapi_extra: Vec<String>,
    /// Extra `postgresql` entries for every member, one line each, indented as inside the section
    /// (e.g. `callbacks: {on_role_change: "true"}`).
    pub postgresql_extra: Vec<String>,
    /// TLS everywhere with one `openssl req -x509` certificate ([`TestCerts::openssl_self_signed`], CA:TRUE) as
    /// CA, server and client certificate: etcd over https with client certificates, the REST API over https
    /// with `verify_client: required`, the agents calling their peers with it (`ctl` section), PostgreSQL with
    /// `ssl: on` and replication allowed over TLS only, members connecting with `sslmode: verify-ca`.
    pub tls: bool,
    /// `scope` of the members (default [`SCOPE`]): a second cluster on the same etcd (a standby cluster) has its own.
    pub scope: Option<String>,
    /// The DCS the agents use (etcd v3 by default; the test kit's etcd is started whatever it is).
    pub dcs: Backend,
    /// Per member: the `watchdog` section as a YAML flow mapping (`{mode: required, driver: testing, …}`).
    pub watchdog: Vec<Option<String>>,
}

/// Which DCS section the members get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    #[default]
    Etcd3,
    /// etcd's v2 API (the `etcd` section).
    Etcd,
    ZooKeeper,
    /// ZooKeeper found through Exhibitor (the `exhibitor` section): a stand-in for Exhibitor's REST endpoint
    /// answers `/exhibitor/v1/cluster/list` with the test's ZooKeeper server.
    Exhibitor,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            members: 3,
            dcs_extra: Vec::new(),
            tags: Vec::new(),
            loop_wait: LOOP_WAIT,
            ttl: TTL,
            guardian: true,
            data_dirs: Vec::new(),
            restapi_extra: Vec::new(),
            postgresql_extra: Vec::new(),
            tls: false,
            dcs: Backend::Etcd3,
            scope: None,
            watchdog: Vec::new(),
        }
    }
}

pub struct Cluster {
    pub nodes: Vec<AgentProcess>,
    pub etcd: EtcdServer,
    /// The ZooKeeper of [`Backend::ZooKeeper`] and [`Backend::Exhibitor`].
    pub zookeeper: Option<ZooKeeperServer>,
    /// The port of the Exhibitor stand-in of [`Backend::Exhibitor`].
    exhibitor_port: Option<u16>,
    options: Options,
}

pub fn name(i: usize) -> String {
    format!("pg{i}")
}

fn config(
    dcs: &str,
    bin: &str,
    name: &str,
    ctx: &patroni_testkit::AgentContext,
    o: &Options,
    i: usize,
    certs: Option<&TestCerts>,
) -> String {
    let data_dir = o.data_dirs.get(i).cloned().flatten().unwrap_or_else(|| ctx.data_dir());
    let extra: String = o.dcs_extra.iter().map(|l| format!("    {l}\n")).collect();
    let tags = o.tags.get(i).cloned().flatten().unwrap_or_else(|| "{}".to_string());
    let restapi: String = o.restapi_extra.iter().map(|l| format!("  {l}\n")).collect();
    let postgresql: String = o.postgresql_extra.iter().map(|l| format!("  {l}\n")).collect();
    let (restapi, etcd3, postgresql) = match certs {
        None => (ctx.restapi_yaml() + &restapi, dcs.to_string(), ctx.postgresql_yaml(bin, &data_dir) + &postgresql),
        Some(certs) => {
            let (cert, key) = copy_certs(certs, &ctx.dir);
            (
                tls_restapi_yaml(ctx, &cert, &key) + &restapi,
                format!("{dcs}  protocol: https\n  cacert: {cert}\n  cert: {cert}\n  key: {key}\n"),
                tls_postgresql_yaml(ctx, bin, &data_dir, &cert, &key) + &postgresql,
            )
        }
    };
    let scope = o.scope.as_deref().unwrap_or(SCOPE);
    format!(
        r#"scope: {scope}
name: {name}
{restapi}{etcd3}bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {RETRY_TIMEOUT}
{extra}    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: "on"
  initdb:
  - encoding: UTF8
  - data-checksums
{postgresql}tags: {tags}
{watchdog}"#,
        loop_wait = o.loop_wait,
        ttl = o.ttl,
        watchdog = match (o.watchdog.get(i).cloned().flatten(), o.guardian) {
            (Some(section), _) => format!("watchdog: {section}\n"),
            (None, true) => String::new(),
            (None, false) => "watchdog:\n  guardian: false\n".to_string(),
        },
    )
}

/// Copies the certificate and its key into `<agent dir>/tls` for the agent and its PostgreSQL, which run as the
/// unprivileged user: PostgreSQL and libpq refuse a key file that user does not own or that others may read, and
/// the certificates' own directory (etcd's) need not be reachable for it. Returns (certificate, key) paths.
fn copy_certs(certs: &TestCerts, agent_dir: &Path) -> (String, String) {
    let dir = agent_dir.join("tls");
    std::fs::create_dir_all(&dir).expect("tls dir");
    patroni_testkit::give_to_unprivileged(&dir).expect("tls dir owner");
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    patroni_testkit::write_file(&cert, &read(&certs.server_cert), 0o644).expect("cert.pem");
    patroni_testkit::write_file(&key, &read(&certs.server_key), 0o600).expect("key.pem");
    (cert.display().to_string(), key.display().to_string())
}

/// The `restapi` and `ctl` sections over TLS: https with the client certificate required, and peers (leader races,
/// switchover checks) called with the same certificate, as Patroni agents authenticate to each other.
fn tls_restapi_yaml(ctx: &patroni_testkit::AgentContext, cert: &str, key: &str) -> String {
    format!(
        "{restapi}  certfile: {cert}\n  keyfile: {key}\n  cafile: {cert}\n  verify_client: required\n\
         ctl:\n  certfile: {cert}\n  keyfile: {key}\n  cacert: {cert}\n",
        restapi = ctx.restapi_yaml()
    )
}

/// [`patroni_testkit::AgentContext::postgresql_yaml`] with TLS: the server presents the certificate, replication
/// connections without TLS are rejected, and members connect to each other (replication, rewind) verifying the
/// server against the same certificate as CA and presenting it as client certificate.
fn tls_postgresql_yaml(
    ctx: &patroni_testkit::AgentContext,
    bin: &str,
    data_dir: &Path,
    cert: &str,
    key: &str,
) -> String {
    let dir = ctx.dir.display();
    let ssl = format!("sslmode: verify-ca, sslrootcert: {cert}, sslcert: {cert}, sslkey: {key}");
    format!(
        r#"postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {data}
  bin_dir: {bin}
  pgpass: {dir}/pgpass
  authentication:
    superuser: {{username: postgres, password: {PASSWORD}, {ssl}}}
    replication: {{username: replicator, password: rep-pass, {ssl}}}
  parameters:
    unix_socket_directories: {dir}
    ssl: "on"
    ssl_cert_file: {cert}
    ssl_key_file: {key}
    ssl_ca_file: {cert}
  pg_hba:
  - local all all trust
  - hostnossl replication all 127.0.0.1/32 reject
  - hostssl replication replicator 127.0.0.1/32 md5
  - host all all 127.0.0.1/32 md5
"#,
        pg = ctx.pg_port,
        data = data_dir.display(),
    )
}

impl Cluster {
    /// Starts etcd and all members at once (they race for `initialize`), then waits for one primary and every
    /// other member streaming from it.
    pub async fn start(o: Options) -> Cluster {
        Cluster::start_with(o, true).await
    }

    /// [`Cluster::start`]; `wait_replicas: false` stops after the primary (for tests that check whom each replica
    /// streams from themselves).
    pub async fn start_with(o: Options, wait_replicas: bool) -> Cluster {
        let mut builder = EtcdServer::builder();
        if o.tls {
            builder = builder.openssl_self_signed();
        }
        if o.dcs == Backend::Etcd {
            builder = builder.enable_v2();
        }
        let etcd = builder.start().await.expect("etcd starts");
        let zookeeper = match o.dcs {
            Backend::ZooKeeper | Backend::Exhibitor => Some(ZooKeeperServer::start().await.expect("ZooKeeper starts")),
            _ => None,
        };
        let exhibitor_port = match (o.dcs, &zookeeper) {
            (Backend::Exhibitor, Some(zk)) => {
                let servers = format!(r#"{{"servers":["127.0.0.1"],"port":{}}}"#, zk.client_port());
                let answer = std::sync::Arc::new(std::sync::Mutex::new(servers));
                Some(patroni_testkit::exhibitor_stand_in(answer).await.expect("the Exhibitor stand-in listens"))
            }
            _ => None,
        };
        let mut cluster = Cluster { nodes: Vec::new(), etcd, zookeeper, exhibitor_port, options: o.clone() };
        for i in 0..o.members {
            let agent = cluster.spawn(i, &o);
            cluster.nodes.push(agent);
        }
        for node in &mut cluster.nodes {
            node.wait_for_api("/liveness", START_TIMEOUT).await.expect("REST API up");
        }
        let primary = cluster.wait_primary(START_TIMEOUT, &[]).await;
        if !wait_replicas {
            return cluster;
        }
        let replicas: Vec<usize> = (0..o.members).filter(|i| *i != primary).collect();
        cluster.wait_streaming(&replicas, primary, START_TIMEOUT).await;
        cluster
    }

    /// Starts the agent of member `i` (`pg<i>`) with the options `o` (not waiting for anything).
    pub fn spawn(&self, i: usize, o: &Options) -> AgentProcess {
        let bin = pg_bin_dir().expect("PostgreSQL binaries").display().to_string();
        let endpoint = self.etcd.endpoint();
        let dcs = match (o.dcs, &self.zookeeper) {
            (Backend::ZooKeeper, Some(zk)) => format!("zookeeper:\n  hosts: {}\n", zk.endpoint()),
            (Backend::Exhibitor, _) => format!(
                "exhibitor:\n  hosts: [127.0.0.1]\n  port: {}\n  poll_interval: 300\n",
                self.exhibitor_port.unwrap_or_default()
            ),
            (Backend::Etcd, _) => format!("etcd:\n  hosts: {endpoint}\n"),
            _ => format!("etcd3:\n  hosts: {endpoint}\n"),
        };
        let (opts, n) = (o.clone(), name(i));
        let certs = self.certs().cloned();
        let mut builder = AgentProcess::builder(env!("CARGO_BIN_EXE_patroni")).name(n.clone());
        if let Some(c) = &certs {
            builder = builder.https(c.client_identity_pem());
        }
        builder.config(move |ctx| config(&dcs, &bin, &n, ctx, &opts, i, certs.as_ref())).start().expect("agent starts")
    }

    /// The one certificate (and key) of everything when started with [`Options::tls`]: etcd's, copied to every
    /// agent.
    pub fn certs(&self) -> Option<&TestCerts> {
        self.etcd.certs()
    }

    /// The options the cluster was started with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    pub fn node(&self, i: usize) -> &AgentProcess {
        &self.nodes[i]
    }

    pub fn pg_port(&self, i: usize) -> u16 {
        self.nodes[i].context().pg_port
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].context().data_dir()
    }

    /// HTTP status of `GET path` on member `i`, None when its API does not answer.
    pub async fn status(&self, i: usize, path: &str) -> Option<u16> {
        self.nodes[i].get(path).await.ok().map(|(code, _)| code)
    }

    /// Members whose `GET /primary` answers 200.
    pub async fn primaries(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for i in 0..self.nodes.len() {
            if self.status(i, "/primary").await == Some(200) {
                out.push(i);
            }
        }
        out
    }

    /// Waits until exactly one member (not in `exclude`) says it is the primary, holds the leader key, and
    /// accepts a write; returns it.
    pub async fn wait_primary(&self, timeout: Duration, exclude: &[usize]) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let primaries = self.primaries().await;
            if let [p] = primaries[..] {
                if !exclude.contains(&p)
                    && self.leader().await.as_deref() == Some(name(p).as_str())
                    && self.writable(p).await
                {
                    return p;
                }
            }
            if Instant::now() >= deadline {
                self.dump_dcs().await;
                self.dump("no single writable primary");
                panic!("no single writable primary (excluding {exclude:?}) within {timeout:?}; /primary 200 on {primaries:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until one of `candidates` holds the leader key, says it is the primary and accepts a write (other
    /// members are not asked: an orphaned old primary may still run); returns it.
    pub async fn wait_primary_among(&self, timeout: Duration, candidates: &[usize]) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let leader = self.leader().await;
            for &i in candidates {
                if leader.as_deref() == Some(name(i).as_str())
                    && self.status(i, "/primary").await == Some(200)
                    && self.writable(i).await
                {
                    return i;
                }
            }
            if Instant::now() >= deadline {
                self.dump_dcs().await;
                self.dump("no new primary");
                panic!("none of {candidates:?} became a writable primary within {timeout:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether member `i` accepts a write right now.
    pub async fn writable(&self, i: usize) -> bool {
        self.sql(i, "CREATE TABLE IF NOT EXISTS probe(id int); INSERT INTO probe VALUES (1)").await.is_ok()
    }

    /// Waits until each of `replicas` answers `GET /replica` 200 and streams from `primary`
    /// (`pg_stat_wal_receiver` on the replica shows it connected to the primary's port).
    pub async fn wait_streaming(&self, replicas: &[usize], primary: usize, timeout: Duration) {
        let port = self.pg_port(primary).to_string();
        for &r in replicas {
            let ok = wait_until(timeout, POLL, || async {
                if self.status(r, "/replica").await != Some(200) {
                    return false;
                }
                let sql = "SELECT status, sender_port FROM pg_stat_wal_receiver";
                matches!(self.sql(r, sql).await.as_deref(),
                    Ok([row]) if row[0].as_deref() == Some("streaming") && row[1].as_deref() == Some(port.as_str()))
            })
            .await;
            if ok.is_err() {
                self.dump_dcs().await;
                self.dump("replica not streaming");
                panic!("{} does not stream from {} within {timeout:?}", name(r), name(primary));
            }
        }
    }

    /// The holder of the leader key, read from etcd.
    pub async fn leader(&self) -> Option<String> {
        match (self.options.dcs, &self.zookeeper) {
            (Backend::Etcd, _) => {
                let url = format!("{}/v2/keys{LEADER_KEY}", self.etcd.client_url());
                let v: serde_json::Value = self.etcd.http_client().get(url).send().await.ok()?.json().await.ok()?;
                v.pointer("/node/value").and_then(|v| v.as_str()).map(String::from)
            }
            (Backend::ZooKeeper | Backend::Exhibitor, Some(zk)) => {
                let mut s = patroni_dcs::zookeeper::ZooKeeperSettings::new(SCOPE, "").with_hosts([zk.endpoint()]);
                s.ctl = true;
                s.retry_timeout = Duration::from_secs(3);
                let client = patroni_dcs::zookeeper::ZooKeeper::new(s).await.ok()?;
                patroni_dcs::Dcs::get_cluster(&client).await.ok()?.leader_name().map(String::from)
            }
            _ => self.etcd.get(LEADER_KEY).await.ok().flatten(),
        }
    }

    /// Runs `sql` (simple protocol) on member `i` as the superuser over TCP; rows as text.
    pub async fn sql(&self, i: usize, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let connstr = format!(
            "host=127.0.0.1 port={} user=postgres password={PASSWORD} dbname=postgres connect_timeout=3",
            self.pg_port(i)
        );
        let run = async {
            let (client, connection) = tokio_postgres::connect(&connstr, NoTls).await.map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let messages = client.simple_query(sql).await.map_err(|e| e.to_string())?;
            Ok(messages
                .into_iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(row) => {
                        Some((0..row.len()).map(|c| row.get(c).map(str::to_string)).collect())
                    }
                    _ => None,
                })
                .collect())
        };
        match tokio::time::timeout(Duration::from_secs(10), run).await {
            Ok(r) => r,
            Err(_) => Err(format!("query on {} timed out", name(i))),
        }
    }

    /// Inserts `value` into table `t` on member `i` (creating the table), panicking with the logs on failure.
    pub async fn insert(&self, i: usize, value: &str) {
        let sql = format!("CREATE TABLE IF NOT EXISTS t(v text); INSERT INTO t VALUES ('{value}')");
        if let Err(e) = self.sql(i, &sql).await {
            self.dump("insert failed");
            panic!("insert {value:?} on {}: {e}", name(i));
        }
    }

    /// Waits until member `i` can read the row `value` from table `t`.
    pub async fn wait_row(&self, i: usize, value: &str, timeout: Duration) {
        let sql = format!("SELECT count(*) FROM t WHERE v = '{value}'");
        let ok = wait_until(timeout, POLL, || async {
            matches!(self.sql(i, &sql).await.as_deref(), Ok([row]) if row[0].as_deref() == Some("1"))
        })
        .await;
        if ok.is_err() {
            self.dump("row not replicated");
            panic!("{} does not show row {value:?} within {timeout:?}", name(i));
        }
    }

    /// `pg_ctl stop -m immediate` on member `i`'s PostgreSQL, as the unprivileged user, bounded.
    pub fn pg_stop_immediate(&self, i: usize) {
        let bin = pg_bin_dir().expect("PostgreSQL binaries");
        let status = std::process::Command::new(bin.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-t", "30", "-D"])
            .arg(self.data_dir(i))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .unprivileged()
            .status()
            .expect("pg_ctl runs");
        assert!(status.success(), "pg_ctl stop -m immediate on {}: {status}", name(i));
    }

    /// The postmaster pid of member `i` from `postmaster.pid`, when the file exists.
    pub fn postmaster_pid(&self, i: usize) -> Option<i32> {
        let text = std::fs::read_to_string(self.data_dir(i).join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Prints every key of the cluster in etcd.
    pub async fn dump_dcs(&self) {
        match self.etcd.get_prefix("/service/demo/").await {
            Ok(keys) => {
                eprintln!("==== DCS ====");
                for (k, v) in keys {
                    eprintln!("{k} = {v}");
                }
            }
            Err(e) => eprintln!("==== DCS not readable: {e} ===="),
        }
    }

    /// Prints the tail of every agent's log (called before a failing assertion).
    pub fn dump(&self, why: &str) {
        eprintln!("==== {why}: agent logs ====");
        for (i, n) in self.nodes.iter().enumerate() {
            let log = n.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!("---- {} ----\n{}", name(i), tail.join("\n"));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump("test failed");
        }
        // Stop every agent at once: one by one, the replicas still running would race for the key each departing
        // primary releases, promote and then stop again — seconds per test for nothing.
        for node in &mut self.nodes {
            let _ = node.kill(nix::sys::signal::Signal::SIGTERM);
        }
    }
}
