//! A 3-member cluster whose members run Python Patroni or patroni-rs, switchable one at a time with the same
//! `patroni.yml`, data directory and ports, as a DBA migrating member by member would do; and both
//! implementations' `patronictl` to compare what they show.

#![allow(dead_code)]

pub mod load;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use patroni_testkit::{pg_bin_dir, AgentProcess, EtcdServer, TestCerts, TestDir, UnprivilegedCommand, ZooKeeperServer};
use serde_json::Value;

pub const SCOPE: &str = "mig";
const LEADER_KEY: &str = "/service/mig/leader";
/// Bootstrap, base backups, a rewind: generous for a loaded 2-core machine, but finite.
pub const WAIT: Duration = Duration::from_secs(150);
const POLL: Duration = Duration::from_millis(500);

/// The DCS section both implementations (and both patronictls) are given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    Etcd3,
    /// etcd's v2 API (Python Patroni's `etcd` section, python-etcd).
    EtcdV2,
    /// ZooKeeper (Python Patroni's `zookeeper` section, kazoo).
    ZooKeeper,
    /// ZooKeeper found through Exhibitor (Python Patroni's `exhibitor` section, kazoo): the members are given only
    /// the Exhibitor stand-in's address, which answers `/exhibitor/v1/cluster/list` with the ZooKeeper server.
    Exhibitor,
    /// ZooKeeper over TLS with client certificates required (Python Patroni's `zookeeper` section with `use_ssl`,
    /// `cacert`, `cert`, `key`, kazoo): one `openssl req -x509` certificate (CA:TRUE, `CN=localhost`) is CA, server
    /// and client certificate, and `set_acls` gives only its subject (`x509`, `CN=localhost`) rights on the znodes
    /// either implementation creates, so each reads the other's znodes only by authenticating with it.
    ZooKeeperTls,
}

/// The `x509` principal of [`Store::ZooKeeperTls`]'s certificate, the only one `set_acls` gives rights to.
pub const TLS_PRINCIPAL: &str = "CN=localhost";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    Python,
    Rust,
}

/// The two implementations' executables.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub py_agent: PathBuf,
    pub py_ctl: PathBuf,
    pub rs_agent: PathBuf,
    pub rs_ctl: PathBuf,
}

impl Binaries {
    /// Python Patroni from `PYTHON_PATRONI` / `PYTHON_PATRONICTL` (scripts/test.sh sets them), ours from the build;
    /// None (with the reason printed) when one is missing.
    pub fn find() -> Option<Binaries> {
        let env = |name: &str| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_file());
        let (Some(py_agent), Some(py_ctl)) = (env("PYTHON_PATRONI"), env("PYTHON_PATRONICTL")) else {
            eprintln!("SKIPPED: set PYTHON_PATRONI and PYTHON_PATRONICTL (scripts/test.sh installs Python Patroni)");
            return None;
        };
        let rs_agent = PathBuf::from(env!("CARGO_BIN_EXE_patroni"));
        // patronictl is another package's binary: built beside ours by any workspace build (`cargo build --bins`).
        let rs_ctl = rs_agent.with_file_name("patronictl");
        if !rs_ctl.is_file() {
            eprintln!("SKIPPED: no {} (build it with `cargo build --bins`)", rs_ctl.display());
            return None;
        }
        Some(Binaries { py_agent, py_ctl, rs_agent, rs_ctl })
    }

    pub fn agent(&self, which: Impl) -> &PathBuf {
        match which {
            Impl::Python => &self.py_agent,
            Impl::Rust => &self.rs_agent,
        }
    }

    pub fn ctl(&self, which: Impl) -> &PathBuf {
        match which {
            Impl::Python => &self.py_ctl,
            Impl::Rust => &self.rs_ctl,
        }
    }
}

pub fn name(i: usize) -> String {
    format!("m{}", i + 1)
}

/// One `patroni.yml` that both implementations run unchanged. Synchronous mode with both replicas synchronous: an
/// acknowledged commit is on every healthy replica, so a failover to either loses no acknowledged write, and
/// either may be named in a switchover (Patroni accepts only a synchronous standby as candidate).
fn member_config(dcs: &str, bin: &str, name: &str, ctx: &patroni_testkit::AgentContext) -> String {
    format!(
        r#"scope: {SCOPE}
name: {name}
{restapi}{dcs}bootstrap:
  dcs:
    ttl: 20
    loop_wait: 2
    retry_timeout: 5
    synchronous_mode: true
    synchronous_node_count: 2
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: "on"
  initdb:
  - encoding: UTF8
  - data-checksums
{postgresql}"#,
        restapi = ctx.restapi_yaml(),
        postgresql = ctx.postgresql_yaml(bin, &ctx.data_dir()),
    )
}

pub struct Member {
    pub agent: AgentProcess,
    pub runs: Impl,
}

pub struct MixedCluster {
    pub bins: Binaries,
    pub members: Vec<Member>,
    pub etcd: EtcdServer,
    pub zookeeper: Option<ZooKeeperServer>,
    /// The certificate of [`Store::ZooKeeperTls`] (its directory lives as long as the cluster).
    pub certs: Option<TestCerts>,
    _certs_dir: Option<TestDir>,
    /// The Exhibitor stand-in's port on [`Store::Exhibitor`] (it serves for the life of the test's runtime).
    pub exhibitor_port: Option<u16>,
    pub store: Store,
    ctl_dir: TestDir,
    started: Instant,
}

impl MixedCluster {
    /// Starts etcd and one member per entry of `impls` at once, and waits for a healthy cluster.
    pub async fn start(bins: Binaries, impls: &[Impl]) -> MixedCluster {
        Self::start_on(Store::Etcd3, bins, impls).await
    }

    /// [`MixedCluster::start`] on another DCS. Call it inside the test's runtime: on [`Store::Exhibitor`] the
    /// stand-in is a task of that runtime.
    pub async fn start_on(store: Store, bins: Binaries, impls: &[Impl]) -> MixedCluster {
        let mut builder = EtcdServer::builder();
        if store == Store::EtcdV2 {
            builder = builder.enable_v2();
        }
        let etcd = builder.start().await.expect("etcd starts");
        // Readable by the unprivileged user running the members (PostgreSQL's and Patroni's user), key mode 600.
        let certs_dir = (store == Store::ZooKeeperTls).then(|| TestDir::with_prefix("zk-tls-mig-").expect("temp dir"));
        let certs = certs_dir.as_ref().map(|d| {
            let tls = d.create_dir("tls", 0o755).expect("certificate dir");
            TestCerts::openssl_self_signed(&tls, "localhost").expect("openssl req -x509")
        });
        let zookeeper = match (store, &certs) {
            (Store::ZooKeeper | Store::Exhibitor, _) => Some(ZooKeeperServer::start().await.expect("ZooKeeper starts")),
            (Store::ZooKeeperTls, Some(certs)) => {
                Some(ZooKeeperServer::start_tls(certs, true).await.expect("ZooKeeper with TLS starts"))
            }
            _ => None,
        };
        let exhibitor_port = match (store, &zookeeper) {
            (Store::Exhibitor, Some(zk)) => {
                let servers = format!(r#"{{"servers":["127.0.0.1"],"port":{}}}"#, zk.client_port());
                let answer = std::sync::Arc::new(std::sync::Mutex::new(servers));
                Some(patroni_testkit::exhibitor_stand_in(answer).await.expect("the Exhibitor stand-in listens"))
            }
            _ => None,
        };
        let dcs = match (store, &zookeeper, exhibitor_port) {
            (Store::ZooKeeper, Some(zk), _) => format!("zookeeper:\n  hosts: [{}]\n", zk.endpoint()),
            (Store::ZooKeeperTls, Some(zk), _) => {
                let certs = certs.as_ref().expect("certificates");
                format!(
                    "zookeeper:\n  hosts: [{}]\n  use_ssl: true\n  cacert: {}\n  cert: {}\n  key: {}\n  \
                     set_acls:\n    \"{TLS_PRINCIPAL}\": [ALL]\n",
                    zk.tls_endpoint().expect("a TLS port"),
                    certs.ca_cert.display(),
                    certs.client_cert.display(),
                    certs.client_key.display(),
                )
            }
            (Store::Exhibitor, _, Some(port)) => {
                format!("exhibitor:\n  hosts: [127.0.0.1]\n  port: {port}\n  poll_interval: 300\n")
            }
            (Store::EtcdV2, _, _) => format!("etcd:\n  host: {}\n", etcd.endpoint()),
            _ => format!("etcd3:\n  hosts: {}\n", etcd.endpoint()),
        };
        let bin = pg_bin_dir().expect("PostgreSQL binaries").display().to_string();
        let mut members = Vec::new();
        for (i, &runs) in impls.iter().enumerate() {
            let (dcs, bin, n) = (dcs.clone(), bin.clone(), name(i));
            let agent = AgentProcess::builder(bins.agent(runs))
                .name(n.clone())
                .config(move |ctx| member_config(&dcs, &bin, &n, ctx))
                .start()
                .expect("agent starts");
            members.push(Member { agent, runs });
        }
        let ctl_dir = TestDir::with_prefix("patronictl-mig-").expect("temp dir");
        ctl_dir.write_file("patronictl.yaml", format!("scope: {SCOPE}\n{dcs}"), 0o644).expect("patronictl.yaml");
        let cluster = MixedCluster {
            bins,
            members,
            etcd,
            zookeeper,
            certs,
            _certs_dir: certs_dir,
            exhibitor_port,
            store,
            ctl_dir,
            started: Instant::now(),
        };
        cluster.wait_healthy("bootstrap").await;
        cluster
    }

    /// Prints a step of the scenario with the seconds since the start, so a failure's log tells where it was.
    pub fn step(&self, what: &str) {
        let runs: Vec<String> =
            self.members.iter().enumerate().map(|(i, m)| format!("{}={:?}", name(i), m.runs)).collect();
        eprintln!("[{:7.1}s] {what} ({})", self.started.elapsed().as_secs_f64(), runs.join(" "));
    }

    pub fn pg_ports(&self) -> Vec<u16> {
        self.members.iter().map(|m| m.agent.context().pg_port).collect()
    }

    fn ctl_config(&self) -> String {
        self.ctl_dir.join("patronictl.yaml").display().to_string()
    }

    /// `patronictl -c <config> args…` of one implementation: exit code, stdout, stderr.
    pub fn ctl(&self, which: Impl, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(self.bins.ctl(which))
            .arg("-c")
            .arg(self.ctl_config())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bins.ctl(which).display()));
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    /// `list -f json` by our patronictl.
    pub fn members_json(&self) -> Vec<Value> {
        serde_json::from_str::<Value>(&self.ctl(Impl::Rust, &["list", "-f", "json"]).1)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// The member index holding the leader key (in etcd's v3 keys; on another DCS, as our patronictl lists it).
    pub async fn leader(&self) -> Option<usize> {
        let holder = match self.store {
            Store::Etcd3 => self.etcd.get(LEADER_KEY).await.ok().flatten()?,
            _ => self
                .members_json()
                .iter()
                .find(|m| m["Role"] == "Leader")
                .and_then(|m| m["Member"].as_str().map(str::to_owned))?,
        };
        (0..self.members.len()).find(|i| name(*i) == holder)
    }

    /// Waits for every member listed, one leader running, every other member streaming as a synchronous standby;
    /// returns the leader.
    pub async fn wait_healthy(&self, what: &str) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.members_json();
            let healthy = m.len() == self.members.len()
                && m.iter().filter(|x| x["Role"] == "Leader" && x["State"] == "running").count() == 1
                && m.iter().filter(|x| x["Role"] == "Sync Standby" && x["State"] == "streaming").count() == m.len() - 1;
            if healthy {
                if let Some(leader) = self.leader().await {
                    if m.iter().any(|x| x["Role"] == "Leader" && x["Member"] == name(leader).as_str()) {
                        return leader;
                    }
                }
            }
            if Instant::now() > deadline {
                self.dump(what);
                self.dump_dcs().await;
                panic!("{what}: cluster not healthy within {WAIT:?}; list -f json: {m:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until one of `candidates` holds the leader key and says it is the primary; returns it.
    pub async fn wait_leader_among(&self, candidates: &[usize], what: &str) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(l) = self.leader().await {
                if candidates.contains(&l) {
                    if let Ok((200, _)) = self.members[l].agent.get("/primary").await {
                        return l;
                    }
                }
            }
            if Instant::now() > deadline {
                self.dump(what);
                self.dump_dcs().await;
                panic!("{what}: none of {candidates:?} became the leader within {WAIT:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Member `i` is switched to `to`: its agent gets SIGTERM (a graceful stop: PostgreSQL is shut down with it),
    /// and once it has exited the other implementation starts with the same `patroni.yml`.
    pub async fn replace(&mut self, i: usize, to: Impl) {
        let agent = &mut self.members[i].agent;
        agent.kill(Signal::SIGTERM).expect("SIGTERM");
        if let Err(e) = agent.wait_exit(WAIT).await {
            self.dump("graceful stop");
            panic!("{} did not stop on SIGTERM: {e}", name(i));
        }
        self.start_as(i, to);
    }

    /// Starts member `i` (stopped or dead) with implementation `to`.
    pub fn start_as(&mut self, i: usize, to: Impl) {
        let binary = self.bins.agent(to).clone();
        self.members[i].agent.restart_with(&binary).expect("agent starts again");
        self.members[i].runs = to;
    }

    /// Node death: SIGKILL to the agent, then `pg_ctl stop -m immediate` (as if the machine had gone away).
    pub fn kill(&mut self, i: usize) {
        self.members[i].agent.kill(Signal::SIGKILL).expect("SIGKILL");
        let data_dir = self.members[i].agent.context().data_dir();
        let bin = pg_bin_dir().expect("PostgreSQL binaries");
        let status = Command::new(bin.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-t", "30", "-D"])
            .arg(&data_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .unprivileged()
            .status()
            .expect("pg_ctl runs");
        assert!(status.success(), "pg_ctl stop -m immediate on {}: {status}", name(i));
    }

    /// Both patronictls, run back to back on the same cluster, print the same `args` output. Positions move
    /// between two reads (a member publishes its WAL position every loop), so the Python run is compared with ours
    /// right before and right after it; a difference that holds while ours reads the same twice is a real one.
    pub async fn same_output(&self, args: &[&str], what: &str) {
        let mut real_differences = 0;
        for _ in 0..30 {
            let before = self.ctl(Impl::Rust, args);
            let python = self.ctl(Impl::Python, args);
            let after = self.ctl(Impl::Rust, args);
            if python == before || python == after {
                return;
            }
            if before == after {
                real_differences += 1;
                if real_differences == 3 {
                    panic!(
                        "{what}: patronictl {args:?} differs\n--- ours (exit {}) ---\n{}{}\n--- Python (exit {}) ---\n{}{}",
                        before.0, before.1, before.2, python.0, python.1, python.2
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        panic!("{what}: patronictl {args:?} never read a stable cluster");
    }

    /// Prints the tail of every member's log and the cluster's keys.
    pub fn dump(&self, why: &str) {
        eprintln!("==== {why}: member logs ====");
        for (i, m) in self.members.iter().enumerate() {
            let log = m.agent.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!("---- {} ({:?}) ----\n{}", name(i), m.runs, tail.join("\n"));
        }
    }

    pub async fn dump_dcs(&self) {
        eprintln!("==== DCS ====");
        if let Ok(keys) = self.etcd.get_prefix(&format!("/service/{SCOPE}/")).await {
            for (k, v) in keys {
                eprintln!("{k} = {v}");
            }
        }
    }
}

impl Drop for MixedCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump("test failed");
        }
        for m in &mut self.members {
            let _ = m.agent.kill(Signal::SIGTERM);
        }
    }
}
