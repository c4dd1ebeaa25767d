//! The embedded Raft DCS: every agent runs one Raft node (openraft) and the agents themselves are the consensus,
//! as with Patroni's `raft` section. `patroni_raft_controller` runs a node with no PostgreSQL as a witness.
//!
//! - Data: a key/value map with per-key versions (one store revision per command, like etcd's `mod_revision`)
//!   and leases ([`kv`]). Leader and member keys are bound to this node's lease, kept alive by every write of the
//!   HA loop, with the dynamic `ttl`.
//! - Time: expiry is decided by the Raft leader's clock and replicated (the leader proposes "expire what is due
//!   at T"), so every node drops a key at the same point of the log. A new leader first gives every lease a full
//!   TTL by its own clock, so clock differences between nodes never expire a key early.
//! - Writes and reads go to the Raft leader (forwarded over HTTP when it is another node); reads are
//!   linearizable (`ensure_linearizable`: the leader confirms it still leads before answering), so a
//!   partitioned node cannot serve a stale leader key. Every call is bounded by `retry_timeout`; without a
//!   quorum calls return `Unreachable`.
//! - Watch waits for the local state machine to apply a relevant change.
//! - Persistence in `raft.data_dir` ([`log_store`], snapshot in [`state_machine`]); a restarted node catches up
//!   from its log and snapshot, then from the leader.
//! - Membership: founded from `self_addr` + `partner_addrs` when a majority of them is up and none belongs to a
//!   cluster; a node not yet in a running cluster asks it to add it (learner, then voter).
//! - Without `self_addr` the backend is a client of `partner_addrs` (Patroni's non-voting node, `patronictl`).
//!
//! ```no_run
//! use std::time::Duration;
//! use patroni_dcs::raft::{Raft, RaftSettings};
//! use patroni_dcs::Dcs;
//!
//! # async fn demo() -> Result<(), patroni_dcs::DcsError> {
//! let mut settings = RaftSettings::new("batman", "node1", "127.0.0.1:5010")
//!     .with_partners(["127.0.0.1:5011", "127.0.0.1:5012"])
//!     .with_data_dir("/var/lib/patroni/raft");
//! settings.ttl = Duration::from_secs(30);
//! settings.retry_timeout = Duration::from_secs(10);
//! settings.password = Some("secret".into());
//! let dcs = Raft::new(settings).await?; // binds 127.0.0.1:5010 now; the cluster forms in the background
//! let cluster = dcs.get_cluster().await?; // Unreachable until a Raft leader is elected
//! # let _ = cluster;
//! # Ok(())
//! # }
//! ```

mod kv;
mod log_store;
mod network;
mod node;
mod replay;
mod settings;
mod state_machine;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use settings::RaftSettings;

use kv::{Cond, Kv, Op};
use node::{Node, NodeCore, NodeOptions, ReadAnswer, Remote};

use crate::dcs::Dcs;
use crate::error::{DcsError, DcsResult};
use crate::keys::{self, ClusterPath};
use crate::model::{failsafe_json, Cluster, Failsafe, Leader, MemberData, ParseProblem, RawNode, Status, Version};

openraft::declare_raft_types!(
    /// openraft's types for the Patroni key/value store.
    pub(crate) TypeConfig:
        D = kv::Command,
        R = kv::Outcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The citus coordinator's group.
const COORDINATOR_GROUP: u32 = 0;

/// What the last snapshot told us: to skip unchanged writes and to know what a watch waits for.
#[derive(Default)]
struct Observed {
    revision: i64,
    leader_version: Option<Version>,
    /// Versions of the keys a watch wakes on, as of `revision`; `None` before the first snapshot.
    relevant: Option<Vec<(String, Option<i64>)>>,
    status: Option<Status>,
    failsafe: Option<Failsafe>,
    write_legacy_optime: bool,
    problems: Vec<ParseProblem>,
}

/// How this node reaches the consensus.
enum Backend {
    /// A Raft member (with `self_addr`).
    Member { node: tokio::sync::Mutex<Node>, core: std::sync::Arc<NodeCore> },
    /// Not a member (no `self_addr`): every call goes to `partner_addrs`.
    Client(Remote),
}

/// How often a client that is not a member looks for changes during a watch.
const CLIENT_WATCH_POLL: Duration = Duration::from_millis(250);

/// The Raft DCS of one node: an embedded Raft member (or, without `self_addr`, a client of the members) plus the
/// Patroni operations on top of it.
pub struct Raft {
    name: String,
    path: ClusterPath,
    backend: Backend,
    lease: u64,
    ttl_ms: AtomicU64,
    retry_timeout_ms: AtomicU64,
    observed: Mutex<Observed>,
    wake: Notify,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Raft {
    /// Starts this node's Raft member (listening on `bind_addr`, else `self_addr`) and returns at once: the
    /// cluster forms or is joined in the background, and calls answer `Unreachable` until it has a leader.
    pub async fn new(settings: RaftSettings) -> DcsResult<Self> {
        if settings.scope.is_empty() {
            return Err(DcsError::Config("raft needs a scope".into()));
        }
        let own = (!settings.self_addr.is_empty()).then_some(&settings.self_addr);
        for a in own.into_iter().chain(&settings.partner_addrs) {
            if !a.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) {
                return Err(DcsError::Config(format!("raft address {a:?} is not host:port")));
            }
        }
        let backend = if settings.self_addr.is_empty() {
            Backend::Client(Remote::new(settings.partner_addrs.clone(), settings.password.as_deref())?)
        } else {
            let node = Node::start(NodeOptions {
                data_dir: &settings.data_dir,
                self_addr: settings.self_addr.clone(),
                bind_addr: settings.bind_addr.clone().unwrap_or_else(|| settings.self_addr.clone()),
                partner_addrs: settings.partner_addrs.clone(),
                password: settings.password.clone(),
                snapshot_logs: settings.snapshot_logs,
            })
            .await?;
            let core = node.core.clone();
            Backend::Member { node: tokio::sync::Mutex::new(node), core }
        };
        // A lease id unique to this process: a restarted agent must not inherit the keys of its previous life.
        let lease = rand::random::<u64>() | 1;
        Ok(Raft {
            name: settings.name,
            path: ClusterPath::new(&settings.namespace, &settings.scope, settings.citus_group),
            backend,
            lease,
            ttl_ms: AtomicU64::new(millis(settings.ttl)),
            retry_timeout_ms: AtomicU64::new(millis(settings.retry_timeout)),
            observed: Mutex::new(Observed::default()),
            wake: Notify::new(),
        })
    }

    fn core(&self) -> Option<&NodeCore> {
        match &self.backend {
            Backend::Member { core, .. } => Some(core),
            Backend::Client(_) => None,
        }
    }

    /// Stops this node's Raft member and its peer server; later calls answer `Unreachable`.
    pub async fn shutdown(&self) {
        if let Backend::Member { node, .. } = &self.backend {
            node.lock().await.shutdown().await;
        }
    }

    /// This node's Raft id (a hash of `self_addr`); `None` for a client that is not a member.
    pub fn node_id(&self) -> Option<u64> {
        self.core().map(|c| c.id)
    }

    /// Whether this node is the Raft leader now.
    pub fn is_raft_leader(&self) -> bool {
        self.core().is_some_and(|c| {
            let m = c.raft.metrics();
            let m = m.borrow();
            m.current_leader == Some(c.id) && m.state == openraft::ServerState::Leader
        })
    }

    /// The voting members' addresses as this node knows them (empty for a client).
    pub fn voters(&self) -> Vec<String> {
        let Some(c) = self.core() else { return Vec::new() };
        let m = c.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        membership.voter_ids().filter_map(|id| membership.get_node(&id).map(|n| n.addr.clone())).collect()
    }

    /// The key/value pairs under this cluster's prefix as this node has applied them (not linearizable; empty
    /// for a client).
    pub fn local_keys(&self) -> Vec<(String, String)> {
        self.core()
            .and_then(|c| c.read_local(&self.path.prefix()))
            .map(|a| a.kvs.into_iter().map(|(k, kv)| (k, kv.value)).collect())
            .unwrap_or_default()
    }

    /// Removes the member reachable at `addr` (its `self_addr`) from the Raft cluster for good, like
    /// `syncobj_admin -remove` in Patroni. Only a member can do this; a client gets `Rejected`.
    pub async fn remove_member(&self, addr: &str) -> DcsResult<()> {
        match self.core() {
            Some(core) => core.remove_member(addr, self.deadline()).await,
            None => Err(DcsError::Rejected("only a Raft member can change the membership".into())),
        }
    }

    async fn write(&self, ops: Vec<Op>) -> DcsResult<kv::Outcome> {
        match &self.backend {
            Backend::Member { core, .. } => core.write(ops, self.deadline()).await,
            Backend::Client(remote) => remote.write(ops, self.deadline()).await,
        }
    }

    async fn read(&self, prefix: &str, deadline: Instant) -> DcsResult<ReadAnswer> {
        match &self.backend {
            Backend::Member { core, .. } => core.read(prefix, deadline).await,
            Backend::Client(remote) => remote.read(prefix, deadline).await,
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.retry_timeout_ms.load(Ordering::Relaxed))
    }

    fn keep_alive(&self) -> Op {
        Op::KeepAlive { lease: self.lease, ttl_ms: self.ttl_ms.load(Ordering::Relaxed) }
    }

    fn is_coordinator(&self) -> bool {
        self.path.group() == Some(COORDINATOR_GROUP)
    }

    fn read_prefix(&self) -> String {
        if self.is_coordinator() {
            self.path.scope_prefix()
        } else {
            self.path.prefix()
        }
    }

    /// Runs the ops; a failed condition is `CompareFailed` on its key.
    async fn run(&self, ops: Vec<Op>) -> DcsResult<kv::Outcome> {
        let outcome = self.write(ops).await?;
        match &outcome.failed {
            Some(f) => Err(DcsError::CompareFailed { key: f.key.clone() }),
            None => Ok(outcome),
        }
    }

    async fn put(&self, key: String, value: &str, version: Option<Version>) -> DcsResult<Version> {
        let cond = version.map(Cond::Version);
        Ok(self.run(vec![Op::Put { key, value: value.to_string(), lease: None, cond }]).await?.revision)
    }

    async fn delete(&self, key: String, version: Option<Version>) -> DcsResult<()> {
        self.run(vec![Op::Delete { key, cond: version.map(Cond::Version) }]).await.map(drop)
    }

    /// The keys a watch wakes on: the leader, config, failover request and initialize key, and — when we are not
    /// the leader — the leader's status.
    fn relevant_keys(&self, leader: Option<&str>) -> Vec<String> {
        let mut v: Vec<String> =
            [keys::LEADER, keys::CONFIG, keys::FAILOVER, keys::INITIALIZE].iter().map(|k| self.path.key(k)).collect();
        if leader != Some(self.name.as_str()) {
            v.push(self.path.key(keys::STATUS));
            v.push(self.path.key(keys::LEADER_OPTIME));
        }
        v
    }

    fn versions_of(keys: &[String], kvs: &BTreeMap<String, Kv>) -> Vec<(String, Option<i64>)> {
        keys.iter().map(|k| (k.clone(), kvs.get(k).map(|kv| kv.mod_revision))).collect()
    }

    fn remember_snapshot(&self, cluster: &Cluster, revision: i64, kvs: &BTreeMap<String, Kv>) {
        let relevant = Self::versions_of(&self.relevant_keys(cluster.leader_name()), kvs);
        let Ok(mut o) = self.observed.lock() else { return };
        o.revision = revision;
        o.leader_version = cluster.leader.as_ref().map(|l| l.version);
        o.relevant = Some(relevant);
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

    async fn write_status_inner(&self, status: &Status) -> DcsResult<()> {
        let (unchanged, legacy) = match self.observed.lock() {
            Ok(o) => (o.status.as_ref() == Some(status), o.write_legacy_optime),
            Err(_) => (false, false),
        };
        if unchanged {
            return Ok(());
        }
        let mut ops =
            vec![Op::Put { key: self.path.key(keys::STATUS), value: status.to_json(), lease: None, cond: None }];
        if legacy {
            let value = status.last_lsn.to_string();
            ops.push(Op::Put { key: self.path.key(keys::LEADER_OPTIME), value, lease: None, cond: None });
        }
        self.run(ops).await?;
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
        self.put(self.path.key(keys::FAILSAFE), &failsafe_json(failsafe), None).await?;
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

    /// Resolves when a relevant key differs from `baseline`, judged once this node has applied `since`.
    async fn wait_for_change(&self, since: i64, baseline: Vec<(String, Option<i64>)>) {
        let keys: Vec<String> = baseline.iter().map(|(k, _)| k.clone()).collect();
        let Some(core) = self.core() else {
            return self.poll_for_change(since, &keys, baseline).await;
        };
        let mut rx = core.shared.revision.subscribe();
        loop {
            let current =
                core.shared.read(|s| (s.revision >= since).then(|| Self::versions_of(&keys, &s.kvs))).flatten();
            if current.is_some_and(|c| c != baseline) {
                return;
            }
            if rx.changed().await.is_err() {
                // The node stopped: nothing will change any more; the caller's timeout ends the wait.
                std::future::pending::<()>().await;
            }
        }
    }

    /// A client has no local copy: it asks the cluster now and then.
    async fn poll_for_change(&self, since: i64, keys: &[String], baseline: Vec<(String, Option<i64>)>) {
        loop {
            tokio::time::sleep(CLIENT_WATCH_POLL).await;
            let Ok(answer) = self.read(&self.read_prefix(), Instant::now() + CLIENT_WATCH_POLL).await else {
                continue;
            };
            if answer.revision >= since {
                let kvs: BTreeMap<String, Kv> = answer.kvs.into_iter().collect();
                if Self::versions_of(keys, &kvs) != baseline {
                    return;
                }
            }
        }
    }
}

#[async_trait]
impl Dcs for Raft {
    fn name(&self) -> &str {
        &self.name
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed))
    }

    fn set_ttl(&self, ttl: Duration) {
        let ms = millis(ttl).max(1000);
        if self.ttl_ms.swap(ms, Ordering::Relaxed) != ms {
            debug!("Raft TTL set to {ms} ms");
        }
    }

    fn retry_timeout(&self) -> Duration {
        Duration::from_millis(self.retry_timeout_ms.load(Ordering::Relaxed))
    }

    fn set_retry_timeout(&self, retry_timeout: Duration) {
        self.retry_timeout_ms.store(millis(retry_timeout), Ordering::Relaxed);
    }

    async fn get_cluster(&self) -> DcsResult<Cluster> {
        let prefix = self.read_prefix();
        let answer = self.read(&prefix, self.deadline()).await?;
        let nodes = answer.kvs.iter().filter_map(|(k, kv)| {
            Some(RawNode {
                key: k.strip_prefix(&prefix)?.to_string(),
                value: kv.value.clone(),
                version: kv.mod_revision,
                session: kv.lease.map(|l| l.to_string()),
            })
        });
        let mut cluster = if self.is_coordinator() {
            Cluster::from_mpp_nodes(nodes, COORDINATOR_GROUP)
        } else {
            Cluster::from_nodes(nodes)
        };
        cluster.revision = Some(answer.revision);
        let kvs: BTreeMap<String, Kv> = answer.kvs.into_iter().collect();
        self.remember_snapshot(&cluster, answer.revision, &kvs);
        Ok(cluster)
    }

    async fn attempt_to_acquire_leader(&self) -> DcsResult<()> {
        let key = self.path.key(keys::LEADER);
        let put =
            Op::Put { key: key.clone(), value: self.name.clone(), lease: Some(self.lease), cond: Some(Cond::Absent) };
        let outcome = self.write(vec![self.keep_alive(), put]).await?;
        match outcome.failed {
            None => {
                debug!("acquired the leader lock");
                Ok(())
            }
            // A retried request whose first try succeeded finds our own key.
            Some(f) if f.current.as_ref().is_some_and(|c| c.value == self.name && c.lease == Some(self.lease)) => {
                Ok(())
            }
            Some(f) => {
                if let Some(c) = f.current {
                    debug!("leader lock is held by {}", c.value);
                }
                info!("Could not take out TTL lock");
                Err(DcsError::CompareFailed { key })
            }
        }
    }

    async fn take_leader(&self) -> DcsResult<()> {
        let put =
            Op::Put { key: self.path.key(keys::LEADER), value: self.name.clone(), lease: Some(self.lease), cond: None };
        self.run(vec![self.keep_alive(), put]).await.map(drop)
    }

    async fn update_leader(
        &self,
        _cluster: &Cluster,
        status: Option<&Status>,
        failsafe: Option<&Failsafe>,
    ) -> DcsResult<()> {
        let key = self.path.key(keys::LEADER);
        // Ours by name: refresh and rebind to our lease. Gone: take it again, atomically, as no one else holds
        // it. Anyone else's: change nothing.
        let cond = Some(Cond::ValueOrAbsent(self.name.clone()));
        let put = Op::Put { key, value: self.name.clone(), lease: Some(self.lease), cond };
        self.run(vec![self.keep_alive(), put]).await?;
        // The lock is what matters; a failed status write is repaired by the next loop.
        if let Some(st) = status {
            if let Err(e) = self.write_status_inner(st).await {
                warn!("could not write the leader status: {e}");
            }
        }
        if let Some(f) = failsafe {
            if let Err(e) = self.write_failsafe_inner(f).await {
                warn!("could not write the failsafe topology: {e}");
            }
        }
        Ok(())
    }

    async fn delete_leader(&self, leader: &Leader, last_lsn: Option<u64>) -> DcsResult<()> {
        let key = self.path.key(keys::LEADER);
        if leader.name != self.name {
            return Err(DcsError::CompareFailed { key });
        }
        if let Some(lsn) = last_lsn {
            let st = self.last_status_with_lsn(lsn);
            if let Err(e) = self.write_status_inner(&st).await {
                warn!("could not write the last leader position: {e}");
            }
        }
        self.run(vec![Op::Delete { key, cond: Some(Cond::Value(self.name.clone())) }]).await?;
        debug!("released the leader lock");
        Ok(())
    }

    async fn touch_member(&self, data: &MemberData) -> DcsResult<()> {
        let put =
            Op::Put { key: self.path.member(&self.name), value: data.to_json(), lease: Some(self.lease), cond: None };
        self.run(vec![self.keep_alive(), put]).await.map(drop)
    }

    async fn initialize(&self, create_new: bool, sysid: &str) -> DcsResult<()> {
        let cond = create_new.then_some(Cond::Absent);
        let put = Op::Put { key: self.path.key(keys::INITIALIZE), value: sysid.to_string(), lease: None, cond };
        self.run(vec![put]).await.map(drop)
    }

    async fn cancel_initialization(&self) -> DcsResult<()> {
        self.delete(self.path.key(keys::INITIALIZE), None).await
    }

    async fn set_config_value(&self, value: &str, version: Option<Version>) -> DcsResult<()> {
        self.put(self.path.key(keys::CONFIG), value, version).await.map(drop)
    }

    async fn set_failover_value(&self, value: &str, version: Option<Version>) -> DcsResult<()> {
        self.put(self.path.key(keys::FAILOVER), value, version).await.map(drop)
    }

    async fn delete_failover(&self, version: Option<Version>) -> DcsResult<()> {
        self.delete(self.path.key(keys::FAILOVER), version).await
    }

    async fn set_sync_state_value(&self, value: &str, version: Option<Version>) -> DcsResult<Version> {
        self.put(self.path.key(keys::SYNC), value, version).await
    }

    async fn delete_sync_state(&self, version: Option<Version>) -> DcsResult<()> {
        self.delete(self.path.key(keys::SYNC), version).await
    }

    async fn set_history_value(&self, value: &str) -> DcsResult<()> {
        self.put(self.path.key(keys::HISTORY), value, None).await.map(drop)
    }

    async fn write_status(&self, status: &Status) -> DcsResult<()> {
        self.write_status_inner(status).await
    }

    async fn write_failsafe(&self, failsafe: &Failsafe) -> DcsResult<()> {
        self.write_failsafe_inner(failsafe).await
    }

    async fn delete_cluster(&self) -> DcsResult<()> {
        self.run(vec![Op::DeletePrefix { prefix: self.path.prefix() }]).await?;
        if let Ok(mut o) = self.observed.lock() {
            *o = Observed::default();
        }
        Ok(())
    }

    async fn watch(&self, leader_version: Option<Version>, timeout: Duration) -> DcsResult<bool> {
        let notified = self.wake.notified();
        tokio::pin!(notified);
        // Take a wake-up that arrived while we were not waiting.
        notified.as_mut().enable();
        let (since, baseline) = match self.observed.lock() {
            Ok(o) => {
                if leader_version.is_some() && o.relevant.is_some() && o.leader_version != leader_version {
                    return Ok(true);
                }
                (o.revision, o.relevant.clone())
            }
            Err(_) => (0, None),
        };
        // Without a snapshot to compare with, compare with what this node has now.
        let baseline = match baseline {
            Some(b) => b,
            None => {
                let keys = self.relevant_keys(None);
                match self.core() {
                    Some(core) => core.shared.read(|s| Self::versions_of(&keys, &s.kvs)).unwrap_or_default(),
                    None => match self.read(&self.read_prefix(), self.deadline()).await {
                        Ok(a) => Self::versions_of(&keys, &a.kvs.into_iter().collect()),
                        Err(_) => keys.iter().map(|k| (k.clone(), None)).collect(),
                    },
                }
            }
        };
        tokio::select! {
            _ = &mut notified => Ok(true),
            () = self.wait_for_change(since, baseline) => Ok(true),
            _ = tokio::time::sleep(timeout) => Ok(false),
        }
    }

    fn wakeup(&self) {
        self.wake.notify_one();
    }

    async fn write_leader_optime(&self, last_lsn: u64) -> DcsResult<()> {
        let st = self.last_status_with_lsn(last_lsn);
        self.write_status_inner(&st).await
    }
}
