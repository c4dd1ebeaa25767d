//! The ZooKeeper backend (Patroni's `zookeeper` section), with the znode layout and values Python Patroni (kazoo)
//! uses: persistent znodes for `config`, `initialize`, `status`, `failover`, `sync`, `history`, `failsafe`;
//! *ephemeral* znodes for `leader` and `members/<name>`, so the session is the liveness: they vanish when the
//! session expires (the session timeout is the dynamic `ttl`). Versioned writes compare the znode `version`.
//!
//! Client: `zookeeper-client` (tokio, pure Rust, maintained; sessions, watches, multi-reads, ACLs, auth). Its
//! session task (pings, reconnects to another server of the ensemble) is spawned by the crate itself and ends when
//! the client is dropped. A session that expired or was closed is replaced by a new one on the next call; the
//! leader then finds its ephemeral key gone (or owned by the dead session) and takes it again only if nobody else
//! did, as Patroni does.

mod dcs_impl;
mod settings;
mod tls;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use zookeeper_client as zk;

pub use settings::ZooKeeperSettings;

use crate::error::{DcsError, DcsResult};
use crate::keys::{self, ClusterPath};
use crate::model::{Cluster, Failsafe, ParseProblem, RawNode, Status, Version};

/// The citus coordinator's group.
const COORDINATOR_GROUP: u32 = 0;

#[derive(Default)]
struct Observed {
    /// Our member znode in the last snapshot: (owner session, value).
    member: Option<(Option<String>, String)>,
    status: Option<Status>,
    failsafe: Option<Failsafe>,
    write_legacy_optime: bool,
    problems: Vec<ParseProblem>,
}

/// One node's client of a ZooKeeper ensemble.
pub struct ZooKeeper {
    name: String,
    path: ClusterPath,
    /// Servers to connect to; Exhibitor replaces them when the ensemble changes.
    hosts: Mutex<String>,
    auth_data: Vec<(String, String)>,
    /// `use_ssl`: every server of the ensemble is reached through a TLS relay.
    tls: Option<tls::TlsRelays>,
    acls: Vec<zk::Acl>,
    session: tokio::sync::Mutex<Option<zk::Client>>,
    ttl_ms: AtomicU64,
    retry_timeout_ms: AtomicU64,
    observed: Mutex<Observed>,
    wake: Notify,
}

/// What one attempt of an operation ended in.
enum Failure {
    /// The session is gone (expired, closed, authentication failed): open a new one and try again.
    Session(String),
    /// The connection dropped or the server did not answer: try again until the deadline.
    Retry(String),
    /// Final.
    Fail(DcsError),
}

impl ZooKeeper {
    pub async fn new(settings: ZooKeeperSettings) -> DcsResult<Self> {
        if settings.scope.is_empty() || (settings.name.is_empty() && !settings.ctl) {
            return Err(DcsError::Config("zookeeper needs a scope and a member name".into()));
        }
        let tls = tls::TlsRelays::new(&settings)?;
        let hosts = settings.connect_string()?;
        let mut acls = Vec::new();
        for (principal, words) in &settings.set_acls {
            acls.push(zk::Acl::new(permission(words), zk::AuthId::new("x509", principal)));
        }
        Ok(ZooKeeper {
            name: settings.name.clone(),
            path: ClusterPath::new(&settings.namespace, &settings.scope, settings.citus_group),
            hosts: Mutex::new(hosts),
            auth_data: settings.auth_data.clone(),
            tls,
            acls,
            session: tokio::sync::Mutex::new(None),
            ttl_ms: AtomicU64::new(millis(settings.ttl).max(1000)),
            retry_timeout_ms: AtomicU64::new(millis(settings.retry_timeout)),
            observed: Mutex::new(Observed::default()),
            wake: Notify::new(),
        })
    }

    /// Replaces the server list (Exhibitor). The current session keeps its connection; a new session (after an
    /// expiry, or when the current server goes away) uses the new list.
    pub fn set_hosts(&self, hosts: &str) {
        if let Ok(mut h) = self.hosts.lock() {
            if *h != hosts {
                info!("ZooKeeper servers: {hosts}");
                *h = hosts.to_string();
            }
        }
    }

    pub fn hosts(&self) -> String {
        self.hosts.lock().map(|h| h.clone()).unwrap_or_default()
    }

    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.retry_timeout_ms.load(Ordering::Relaxed))
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed))
    }

    fn is_coordinator(&self) -> bool {
        self.path.group() == Some(COORDINATOR_GROUP)
    }

    /// The znode of a key relative to this cluster.
    fn znode(&self, relative: &str) -> String {
        self.path.key(relative)
    }

    /// The session's id as the model stores sessions (the owner of our ephemeral znodes).
    fn session_of(client: &zk::Client) -> String {
        client.session_id().0.to_string()
    }

    /// The live session, opened (within `deadline`) when there is none or the last one ended.
    async fn client(&self, deadline: Instant) -> Result<zk::Client, Failure> {
        let mut guard = self.session.lock().await;
        if let Some(c) = guard.as_ref() {
            if !c.state().is_terminated() {
                return Ok(c.clone());
            }
            warn!("ZooKeeper session {} ended ({}); opening a new one", Self::session_of(c), c.state());
            *guard = None;
        }
        let hosts = self.hosts();
        let ttl = self.ttl();
        // Find a dead server well within the session timeout (Patroni reads with max(loop_wait - 2, 2) s for the
        // same reason): the default takes two thirds of it.
        let mut connector = zk::Client::connector()
            .with_session_timeout(ttl)
            .with_connection_timeout((ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(10)));
        for (scheme, cred) in &self.auth_data {
            connector = connector.with_auth(scheme, cred.as_bytes());
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let dial = match &self.tls {
            Some(relays) => relays.local_hosts(&hosts).await.map_err(Failure::Retry)?,
            None => hosts.clone(),
        };
        let failed = match tokio::time::timeout(remaining, connector.connect(&dial)).await {
            Ok(Ok(c)) => {
                debug!("ZooKeeper session {} (timeout {:?})", Self::session_of(&c), c.session_timeout());
                *guard = Some(c.clone());
                return Ok(c);
            }
            Ok(Err(e)) => format!("cannot connect to ZooKeeper {hosts}: {e}"),
            Err(_) => format!("no ZooKeeper session with {hosts} in time"),
        };
        Err(Failure::Retry(self.with_tls_cause(failed)))
    }

    /// Through TLS the client sees only a dropped connection; the relay knows why the last one failed.
    fn with_tls_cause(&self, what: String) -> String {
        match self.tls.as_ref().and_then(|t| t.last_error()) {
            Some(cause) => format!("{what} ({cause})"),
            None => what,
        }
    }

    /// The current session without opening one.
    async fn current(&self) -> Option<zk::Client> {
        self.session.lock().await.as_ref().filter(|c| !c.state().is_terminated()).cloned()
    }

    /// Closes the session (its ephemeral znodes go at once); the next call opens a new one.
    async fn drop_session(&self) {
        self.session.lock().await.take();
    }

    /// Runs `op` on the session until it succeeds, fails for good, or `deadline` passes (`Unreachable`).
    async fn run<T, F, Fut>(&self, deadline: Instant, what: &str, op: F) -> DcsResult<T>
    where
        F: Fn(zk::Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let mut backoff = Duration::from_millis(50);
        let mut last = String::from("no attempt");
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(DcsError::Unreachable(format!("ZooKeeper {what}: {last}")));
            }
            let attempt = async {
                let c = self.client(deadline).await?;
                op(c).await
            };
            match tokio::time::timeout(remaining, attempt).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(Failure::Fail(e))) => return Err(e),
                Ok(Err(Failure::Session(why))) => {
                    last = why;
                    self.drop_session().await;
                }
                Ok(Err(Failure::Retry(why))) => last = why,
                Err(_) => last = self.with_tls_cause("no answer in time".into()),
            }
            debug!("ZooKeeper {what}: {last}");
            let pause = backoff.min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// The ACL of znodes we create: `set_acls` as x509 principals, else open to everyone (kazoo's default).
    fn create_options(&self, ephemeral: bool) -> zk::CreateOptions<'_> {
        let mode = if ephemeral { zk::CreateMode::Ephemeral } else { zk::CreateMode::Persistent };
        if self.acls.is_empty() {
            mode.with_acls(zk::Acls::anyone_all())
        } else {
            mode.with_acls(zk::Acls::new(&self.acls))
        }
    }

    /// Creates `path` (and, like kazoo's `makepath`, its missing parents).
    async fn create(&self, c: &zk::Client, path: &str, value: &[u8], ephemeral: bool) -> Result<zk::Stat, Failure> {
        let opts = self.create_options(ephemeral);
        match c.create(path, value, &opts).await {
            Ok((stat, _)) => Ok(stat),
            Err(zk::Error::NoNode) => {
                if let Some((parent, _)) = path.rsplit_once('/').filter(|(p, _)| !p.is_empty()) {
                    match c.mkdir(parent, &self.create_options(false)).await {
                        Ok(()) | Err(zk::Error::NodeExists) => {}
                        Err(e) => return Err(classify(e, parent)),
                    }
                }
                c.create(path, value, &opts).await.map(|(stat, _)| stat).map_err(|e| classify(e, path))
            }
            Err(e) => Err(classify(e, path)),
        }
    }

    /// Sets a persistent znode; with `version` only while it has that version; creates it when absent and no
    /// version was asked for. Returns the new version.
    async fn set_or_create(&self, relative: &str, value: &str, version: Option<Version>) -> DcsResult<Version> {
        let path = self.znode(relative);
        let expected = match version {
            // ZooKeeper reads -1 as "any version": a negative (or too large) one can never match.
            Some(v) => {
                Some(i32::try_from(v).ok().filter(|v| *v >= 0).ok_or(DcsError::CompareFailed { key: path.clone() })?)
            }
            None => None,
        };
        self.run(self.deadline(), relative, |c| {
            let path = path.clone();
            async move {
                match c.set_data(&path, value.as_bytes(), expected).await {
                    Ok(stat) => Ok(Version::from(stat.version)),
                    Err(zk::Error::NoNode) if expected.is_none() => {
                        match self.create(&c, &path, value.as_bytes(), false).await {
                            Ok(stat) => Ok(Version::from(stat.version)),
                            // Created by someone else meanwhile: overwrite, as asked.
                            Err(Failure::Fail(DcsError::CompareFailed { .. })) => c
                                .set_data(&path, value.as_bytes(), None)
                                .await
                                .map(|s| Version::from(s.version))
                                .map_err(|e| classify(e, &path)),
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(classify(e, &path)),
                }
            }
        })
        .await
    }

    async fn delete_maybe_cas(&self, relative: &str, version: Option<Version>) -> DcsResult<()> {
        let path = self.znode(relative);
        let expected = match version {
            // ZooKeeper reads -1 as "any version": a negative (or too large) one can never match.
            Some(v) => {
                Some(i32::try_from(v).ok().filter(|v| *v >= 0).ok_or(DcsError::CompareFailed { key: path.clone() })?)
            }
            None => None,
        };
        self.run(self.deadline(), relative, |c| {
            let path = path.clone();
            async move {
                match c.delete(&path, expected).await {
                    Ok(()) => Ok(()),
                    Err(zk::Error::NoNode) if expected.is_none() => Ok(()),
                    Err(e) => Err(classify(e, &path)),
                }
            }
        })
        .await
    }

    /// Creates the ephemeral leader znode; a znode already owned by this very session (a retried create whose
    /// answer was lost) counts as success.
    async fn acquire(&self, deadline: Instant) -> DcsResult<()> {
        let path = self.znode(keys::LEADER);
        let r = self
            .run(deadline, "leader", |c| {
                let path = path.clone();
                async move {
                    match self.create(&c, &path, self.name.as_bytes(), true).await {
                        Ok(_) => Ok(true),
                        Err(Failure::Fail(DcsError::CompareFailed { .. })) => match c.get_data(&path).await {
                            Ok((data, stat)) => {
                                Ok(stat.ephemeral_owner == c.session_id().0 && data == self.name.as_bytes())
                            }
                            Err(zk::Error::NoNode) => Err(Failure::Retry("leader znode vanished".into())),
                            Err(e) => Err(classify(e, &path)),
                        },
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        if r {
            debug!("acquired the leader lock");
            Ok(())
        } else {
            info!("Could not take out TTL lock");
            Err(DcsError::CompareFailed { key: path })
        }
    }

    async fn write_status_inner(&self, status: &Status) -> DcsResult<()> {
        let (unchanged, legacy) = match self.observed.lock() {
            Ok(o) => (o.status.as_ref() == Some(status), o.write_legacy_optime),
            Err(_) => (false, false),
        };
        if unchanged {
            return Ok(());
        }
        self.set_or_create(keys::STATUS, &status.to_json(), None).await?;
        if legacy {
            self.set_or_create(keys::LEADER_OPTIME, &status.last_lsn.to_string(), None).await?;
        }
        if let Ok(mut o) = self.observed.lock() {
            o.status = Some(status.clone());
        }
        Ok(())
    }

    async fn write_failsafe_inner(&self, failsafe: &Failsafe) -> DcsResult<()> {
        let unchanged = self.observed.lock().map(|o| o.failsafe.as_ref() == Some(failsafe)).unwrap_or(false);
        if unchanged {
            return Ok(());
        }
        self.set_or_create(keys::FAILSAFE, &crate::model::failsafe_json(failsafe), None).await?;
        if let Ok(mut o) = self.observed.lock() {
            o.failsafe = Some(failsafe.clone());
        }
        Ok(())
    }

    fn last_status_with_lsn(&self, last_lsn: u64) -> Status {
        let mut st = self.observed.lock().ok().and_then(|o| o.status.clone()).unwrap_or_default();
        st.last_lsn = last_lsn;
        st
    }

    /// Every key of one cluster directory (`dir` without a trailing slash), keys prefixed with `key_prefix`.
    async fn load_dir(c: &zk::Client, dir: &str, key_prefix: &str, out: &mut Vec<RawNode>) -> Result<(), Failure> {
        let children = match c.list_children(dir).await {
            Ok(ch) => ch,
            Err(zk::Error::NoNode) => return Ok(()),
            Err(e) => return Err(classify(e, dir)),
        };
        let mut paths: Vec<String> = Vec::new();
        for child in &children {
            match child.as_str() {
                "members" => {
                    let members_dir = format!("{dir}/members");
                    match c.list_children(&members_dir).await {
                        Ok(ms) => paths.extend(ms.iter().map(|m| format!("members/{m}"))),
                        Err(zk::Error::NoNode) => {}
                        Err(e) => return Err(classify(e, &members_dir)),
                    }
                }
                "optime" => paths.push(keys::LEADER_OPTIME.into()),
                other => paths.push(other.to_string()),
            }
        }
        if paths.is_empty() {
            return Ok(());
        }
        // One multi-read: the keys as of one moment.
        let mut reader = c.new_multi_reader();
        for p in &paths {
            reader.add_get_data(&format!("{dir}/{p}")).map_err(|e| classify(e, dir))?;
        }
        let results = reader.commit().await.map_err(|e| classify(e, dir))?;
        for (p, r) in paths.into_iter().zip(results) {
            let zk::MultiReadResult::Data { data, stat } = r else { continue };
            let version = match p.as_str() {
                // Patroni's leader and history versions are the zxid of the last change (a re-created leader znode
                // starts again at version 0, which a watcher could not tell from the old one).
                keys::LEADER | keys::HISTORY => stat.mzxid,
                _ => Version::from(stat.version),
            };
            out.push(RawNode {
                key: format!("{key_prefix}{p}"),
                value: String::from_utf8_lossy(&data).into_owned(),
                version,
                session: (stat.ephemeral_owner != 0).then(|| stat.ephemeral_owner.to_string()),
            });
        }
        Ok(())
    }

    /// Remembers what a snapshot says about our own keys.
    fn remember(&self, cluster: &Cluster) {
        let Ok(mut o) = self.observed.lock() else { return };
        o.member = cluster.get_member(&self.name).map(|m| (m.session.clone(), m.data.to_json()));
        o.status = Some(cluster.status.clone());
        o.failsafe = cluster.failsafe.clone();
        o.write_legacy_optime = cluster.min_patroni_version().is_some_and(|v| v.as_slice() < [2, 1, 0].as_slice());
        if o.problems != cluster.problems {
            for p in &cluster.problems {
                warn!("cannot fully read DCS key {}{}", self.path.prefix(), p);
            }
            o.problems = cluster.problems.clone();
        }
    }
}

/// Sorts a client error into what to do next; compare failures name the znode.
fn classify(e: zk::Error, path: &str) -> Failure {
    use zk::Error as E;
    match e {
        E::NodeExists | E::BadVersion | E::NoNode | E::NotEmpty => {
            Failure::Fail(DcsError::CompareFailed { key: path.to_string() })
        }
        E::SessionExpired | E::ClientClosed | E::AuthFailed | E::SessionMoved => Failure::Session(e.to_string()),
        E::ConnectionLoss | E::Timeout | E::NoHosts | E::Throttled | E::NotReadOnly => Failure::Retry(e.to_string()),
        E::NoAuth | E::InvalidAcl => Failure::Fail(DcsError::Rejected(format!("{path}: {e}"))),
        E::UnmarshalError { .. } | E::BadArguments(_) | E::MarshallingError | E::Unimplemented => {
            Failure::Fail(DcsError::Protocol(format!("{path}: {e}")))
        }
        // Connection trouble the client reports in its own words ("no response from connection in …").
        other => Failure::Retry(format!("{path}: {other}")),
    }
}

/// Patroni's permission words (case-insensitive) as a ZooKeeper permission set. Like Patroni, a word it does not
/// know grants nothing (with a warning here).
fn permission(words: &[String]) -> zk::Permission {
    let mut p = zk::Permission::NONE;
    for w in words {
        p = p | match w.to_ascii_uppercase().as_str() {
            "READ" => zk::Permission::READ,
            "WRITE" => zk::Permission::WRITE,
            "CREATE" => zk::Permission::CREATE,
            "DELETE" => zk::Permission::DELETE,
            "ADMIN" => zk::Permission::ADMIN,
            "ALL" => zk::Permission::ALL,
            other => {
                warn!("zookeeper.set_acls: unknown permission {other:?} ignored");
                zk::Permission::NONE
            }
        };
    }
    p
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
