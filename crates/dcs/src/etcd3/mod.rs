//! The etcd v3 backend, over etcd's JSON gateway (`/v3/kv/range`, `/v3/kv/txn`, `/v3/lease/*`, `/v3/watch`).
//!
//! Why the gateway and not gRPC: it is what Python Patroni uses, so both see the same server behaviour (and a
//! proxy that works for one works for the other); it needs no `protoc` at build time; and it adds nothing to the
//! dependency set beyond the HTTP client the project already has. The costs — base64 keys and values, 64-bit
//! integers as strings, default-valued fields omitted (a failed txn has no `succeeded`) — are handled in
//! `etcd3/client.rs`. See also `crates/dcs/README.md`.
//!
//! Leader and member keys are bound to one lease per node, granted with the TTL of the dynamic configuration and
//! kept alive by every `touch_member`/`update_leader` call; a TTL change grants a new lease and rebinds the keys
//! on their next write. Every call has one deadline, `retry_timeout` from its start, across all endpoints.

mod cache;
pub(crate) mod client;
mod dcs_impl;
mod lease;
pub(crate) mod settings;
pub(crate) mod srv;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use settings::Etcd3Settings;

use cache::KvCache;
use client::{b64, b64_bytes, int, prefix_end, unb64, RpcError, Transport};
use lease::LeaseState;

use crate::dcs::Dcs;
use crate::error::{DcsError, DcsResult};
use crate::keys::{self, ClusterPath};
use crate::model::{failsafe_json, Cluster, Failsafe, Leader, MemberData, ParseProblem, RawNode, Status, Version};

/// How long the discovered member list of the etcd cluster is trusted before it is asked for again.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(300);

/// The citus coordinator's group.
const COORDINATOR_GROUP: u32 = 0;

/// How long a cached read waits for the watch to deliver the revision etcd just reported before reading through a
/// Range instead. The event of a write is normally on the stream before the writer even has its answer; a cache
/// still behind after this is lagging or stuck, or other keys of a shared etcd moved the revision (see README).
const CATCH_UP: Duration = Duration::from_millis(50);

/// A cached read keeps the lease alive (its liveness proof), which must only stand in for the HA loop's own
/// refresh: it does so only while `watch` runs or returned this recently, i.e. while the HA loop is alive. A REST
/// request reading the cluster while the loop hangs must not keep a hung leader's key alive.
const LOOP_GATE: Duration = Duration::from_secs(2);

/// What the last snapshot (and our own writes since) told us; used to skip unchanged writes and to decide which
/// watch events matter.
#[derive(Default)]
struct Observed {
    revision: Option<i64>,
    /// Absolute key to (value, lease) for this cluster's keys.
    values: HashMap<String, (String, i64)>,
    leader_version: Option<Version>,
    status: Option<Status>,
    failsafe: Option<Failsafe>,
    /// Members older than Patroni 2.1 read `optime/leader` rather than `status`.
    write_legacy_optime: bool,
    problems: Vec<ParseProblem>,
    /// When the last snapshot was taken (reads only; our own writes do not count).
    read_at: Option<Instant>,
}

/// Whether the HA loop is alive, judged by its calls of `watch` (see [`LOOP_GATE`]).
#[derive(Default)]
struct LoopGate {
    watching: usize,
    last_watch: Option<Instant>,
}

/// Marks a running `watch`; the HA loop may drop the future at any point, so the exit is recorded on drop.
struct WatchMark<'a>(&'a Mutex<LoopGate>);

impl<'a> WatchMark<'a> {
    fn enter(gate: &'a Mutex<LoopGate>) -> Self {
        if let Ok(mut g) = gate.lock() {
            g.watching += 1;
            g.last_watch = Some(Instant::now());
        }
        WatchMark(gate)
    }
}

impl Drop for WatchMark<'_> {
    fn drop(&mut self) {
        if let Ok(mut g) = self.0.lock() {
            g.watching = g.watching.saturating_sub(1);
            g.last_watch = Some(Instant::now());
        }
    }
}

/// An etcd v3 DCS client for one node.
///
/// Unless in `ctl` mode, the first `get_cluster` starts one background task that keeps a watch-fed copy of the
/// cluster's keys (`etcd3/cache.rs`); it stops when the client is dropped.
pub struct Etcd3 {
    name: String,
    path: ClusterPath,
    proxies_only: bool,
    ctl: bool,
    transport: Arc<Transport>,
    ttl_secs: AtomicU64,
    retry_timeout_ms: Arc<AtomicU64>,
    lease: tokio::sync::Mutex<LeaseState>,
    observed: Mutex<Observed>,
    discovered_at: Mutex<Option<Instant>>,
    wake: Notify,
    cache: Arc<KvCache>,
    cache_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The highest revision one of our own writes created: a cached read waits until the cache has applied it, so
    /// we never read something older than what we wrote.
    write_floor: AtomicI64,
    loop_gate: Mutex<LoopGate>,
}

impl Drop for Etcd3 {
    fn drop(&mut self) {
        if let Some(task) = self.cache_task.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

impl Etcd3 {
    /// Builds the client. Only `srv` settings cause IO here (a DNS lookup); etcd itself is contacted on the first
    /// call, so a node can start while etcd is down.
    pub async fn new(settings: Etcd3Settings) -> DcsResult<Self> {
        if settings.name.is_empty() || settings.scope.is_empty() {
            return Err(DcsError::Config("etcd3 needs a scope and a member name".into()));
        }
        let mut endpoints = settings.static_endpoints()?;
        if endpoints.is_empty() {
            if let Some(domain) = &settings.srv {
                endpoints = srv::discover(domain, settings.srv_suffix.as_deref(), settings.retry_timeout).await?;
            }
        }
        let transport = Transport::new(&settings, endpoints)?;
        let path = ClusterPath::new(&settings.namespace, &settings.scope, settings.citus_group);
        Ok(Etcd3 {
            name: settings.name.clone(),
            path,
            proxies_only: settings.proxies_only(),
            ctl: settings.ctl,
            transport: Arc::new(transport),
            ttl_secs: AtomicU64::new(settings.ttl.as_secs().max(1)),
            retry_timeout_ms: Arc::new(AtomicU64::new(millis(settings.retry_timeout))),
            lease: tokio::sync::Mutex::new(LeaseState::default()),
            observed: Mutex::new(Observed::default()),
            discovered_at: Mutex::new(None),
            wake: Notify::new(),
            cache: Arc::new(KvCache::new()),
            cache_task: Mutex::new(None),
            write_floor: AtomicI64::new(0),
            loop_gate: Mutex::new(LoopGate::default()),
        })
    }

    /// Requests sent to etcd so far, by gateway method (`/kv/range`, `/watch`, `/lease/keepalive`, ...), the
    /// cluster cache's included. For measuring how many calls an HA loop costs.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.transport.sent()
    }

    /// Whether the watch-fed cluster cache is built and following etcd (it may still not be used for a read: see
    /// `get_cluster`).
    pub fn cache_ready(&self) -> bool {
        self.cache.is_ready()
    }

    /// Starts the cache task once; needs to run inside a tokio runtime (every call does).
    fn start_cache(&self) {
        let Ok(mut task) = self.cache_task.lock() else {
            return;
        };
        if task.is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let follow = cache::Follow {
            cache: self.cache.clone(),
            transport: self.transport.clone(),
            prefix: self.read_prefix(),
            retry_timeout_ms: self.retry_timeout_ms.clone(),
        };
        *task = Some(runtime.spawn(follow.run()));
    }

    fn loop_alive(&self) -> bool {
        self.loop_gate
            .lock()
            .map(|g| g.watching > 0 || g.last_watch.is_some_and(|t| t.elapsed() < LOOP_GATE))
            .unwrap_or(false)
    }

    /// The cache's keys when they may answer this read: the cache follows etcd, etcd answered a keep-alive of our
    /// lease just now (so an outage is not hidden: a stopped or hung etcd fails that call), and the cache has
    /// applied every change up to the revision of that answer and of our own last write. `Ok(None)`: read through a
    /// Range. `Err`: etcd did not answer within the deadline.
    async fn verified_cache(&self, deadline: Instant) -> DcsResult<Option<(Vec<Kv>, i64)>> {
        if !self.cache.is_ready() || !self.loop_alive() {
            return Ok(None);
        }
        let Some(revision) = self.probe_lease(deadline).await? else {
            return Ok(None);
        };
        let floor = revision.max(self.write_floor.load(Ordering::Relaxed));
        if !self.cache.wait_for_revision(floor, deadline.min(Instant::now() + CATCH_UP)).await {
            debug!("etcd cluster cache at {:?}, etcd at {floor}: reading through a range", self.cache.revision());
            // Our calls went elsewhere (the watch's endpoint may be cut off from the cluster): follow them.
            if self.cache.endpoint() != self.transport.current_endpoint() {
                self.cache.request_restart();
            }
            return Ok(None);
        }
        Ok(self.cache.snapshot().filter(|(_, r)| *r >= floor))
    }

    /// Whether the cache, compared with the last snapshot we returned, shows a change `watch` wakes up for.
    fn cache_shows_relevant_change(&self) -> bool {
        let Ok(o) = self.observed.lock() else {
            return false;
        };
        let Some(snapshot) = o.revision else {
            return false;
        };
        // A cache behind our last snapshot or our last write would show their older values as changes: wait until
        // it has caught up (every applied event wakes the caller to look again).
        let floor = snapshot.max(self.write_floor.load(Ordering::Relaxed));
        if self.cache.revision().is_none_or(|r| r < floor) {
            return false;
        }
        let leader_key = self.path.key(keys::LEADER);
        let Some(leader) = self.cache.value(&leader_key) else {
            return false;
        };
        let known = |k: &str| o.values.get(k).map(|(v, _)| v.clone());
        let mut keys = vec![leader_key.clone(), self.path.key(keys::CONFIG), self.path.key(keys::FAILOVER)];
        keys.push(self.path.key(keys::INITIALIZE));
        // The leader's own status writes must not wake the leader.
        if leader.as_deref() != Some(self.name.as_str()) {
            keys.extend([self.path.key(keys::STATUS), self.path.key(keys::LEADER_OPTIME)]);
        }
        keys.iter().any(|k| match self.cache.value(k) {
            Some(now) if now != known(k) => {
                debug!("{k} changed");
                true
            }
            _ => false,
        })
    }

    /// Waits on the cache for a relevant change, `wakeup` or the timeout.
    async fn watch_cache(
        &self,
        notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
        timeout: Duration,
    ) -> bool {
        let mut notified = notified;
        let mut changes = self.cache.subscribe();
        let sleep = tokio::time::sleep(timeout);
        tokio::pin!(sleep);
        loop {
            // A rebuild in between is covered too: the comparison is with our last snapshot, not with events.
            if self.cache_shows_relevant_change() {
                return true;
            }
            tokio::select! {
                _ = &mut notified => return true,
                _ = &mut sleep => return false,
                r = changes.changed() => {
                    if r.is_err() {
                        (&mut sleep).await;
                        return false;
                    }
                }
            }
        }
    }

    /// The endpoints currently in use (configured plus discovered), first the one that answered last.
    pub fn endpoints(&self) -> Vec<String> {
        self.transport.endpoints()
    }

    /// The lease this node's keys are bound to, if one was granted.
    pub async fn lease_id(&self) -> Option<i64> {
        self.lease.lock().await.id
    }

    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.retry_timeout_ms.load(Ordering::Relaxed))
    }

    fn is_coordinator(&self) -> bool {
        self.path.group() == Some(COORDINATOR_GROUP)
    }

    /// The range a snapshot reads: the whole scope on a Citus coordinator (to see its workers), else the cluster.
    fn read_prefix(&self) -> String {
        if self.is_coordinator() {
            self.path.scope_prefix()
        } else {
            self.path.prefix()
        }
    }

    async fn call(&self, method: &str, body: Value, deadline: Instant) -> Result<Value, RpcError> {
        let v = self.transport.call(method, &body, deadline).await?;
        let wrote = match method {
            "/kv/put" => true,
            "/kv/deleterange" => int(v.get("deleted")) > 0,
            // Our transactions write whenever they (or update_leader's nested re-create) succeed.
            "/kv/txn" => {
                succeeded(&v)
                    || v.pointer("/responses/0/response_txn/succeeded").and_then(Value::as_bool).unwrap_or(false)
            }
            _ => false,
        };
        if wrote {
            self.write_floor.fetch_max(header_revision(&v), Ordering::Relaxed);
        }
        Ok(v)
    }

    async fn txn(&self, body: Value, deadline: Instant) -> Result<Value, RpcError> {
        self.call("/kv/txn", body, deadline).await
    }

    async fn put(&self, key: &str, value: &str, lease: Option<i64>, deadline: Instant) -> Result<Value, RpcError> {
        self.call("/kv/put", put_request(key, value, lease), deadline).await
    }

    /// Put only if the key's `mod_revision` is `version`.
    async fn put_if_version(&self, key: &str, value: &str, version: Version, deadline: Instant) -> DcsResult<i64> {
        let body = json!({
            "compare": [{"key": b64(key), "target": "MOD", "mod_revision": version.to_string()}],
            "success": [{"request_put": put_request(key, value, None)}],
        });
        let v = self.txn(body, deadline).await?;
        if succeeded(&v) {
            Ok(header_revision(&v))
        } else {
            Err(DcsError::CompareFailed { key: key.into() })
        }
    }

    async fn put_maybe_cas(
        &self,
        key: &str,
        value: &str,
        version: Option<Version>,
        deadline: Instant,
    ) -> DcsResult<i64> {
        match version {
            Some(v) => self.put_if_version(key, value, v, deadline).await,
            None => Ok(header_revision(&self.put(key, value, None, deadline).await?)),
        }
    }

    async fn delete_maybe_cas(&self, key: &str, version: Option<Version>, deadline: Instant) -> DcsResult<()> {
        match version {
            None => {
                self.call("/kv/deleterange", json!({"key": b64(key)}), deadline).await?;
                Ok(())
            }
            Some(v) => {
                let body = json!({
                    "compare": [{"key": b64(key), "target": "MOD", "mod_revision": v.to_string()}],
                    "success": [{"request_delete_range": {"key": b64(key)}}],
                });
                if succeeded(&self.txn(body, deadline).await?) {
                    Ok(())
                } else {
                    Err(DcsError::CompareFailed { key: key.into() })
                }
            }
        }
    }

    /// Learns the etcd cluster's client URLs so that losing the configured endpoint does not lose etcd.
    async fn maybe_discover(&self, deadline: Instant) {
        if self.proxies_only {
            return;
        }
        let due = match self.discovered_at.lock() {
            Ok(at) => at.is_none_or(|t| t.elapsed() >= DISCOVERY_INTERVAL),
            Err(_) => false,
        };
        if !due {
            return;
        }
        // Discovery is an optimisation: give it little of the caller's budget.
        let short = deadline.min(Instant::now() + Duration::from_secs(1));
        match self.call("/cluster/member/list", json!({}), short).await {
            Ok(v) => {
                let urls: Vec<String> = v
                    .get("members")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .flat_map(|m| m.get("clientURLs").and_then(Value::as_array).cloned().unwrap_or_default())
                    .filter_map(|u| u.as_str().map(String::from))
                    .collect();
                self.transport.merge_endpoints(urls);
            }
            Err(e) => debug!("etcd member discovery failed: {e:?}"),
        }
        // Also after a failure: a proxy or a restricted user may never answer it, and it must not cost every read.
        if let Ok(mut at) = self.discovered_at.lock() {
            *at = Some(Instant::now());
        }
    }

    fn remember_snapshot(&self, cluster: &Cluster, kvs: &[(String, String, i64)]) {
        let Ok(mut o) = self.observed.lock() else {
            return;
        };
        o.revision = cluster.revision;
        o.read_at = Some(Instant::now());
        o.values = kvs.iter().map(|(k, v, l)| (k.clone(), (v.clone(), *l))).collect();
        o.leader_version = cluster.leader.as_ref().map(|l| l.version);
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

    /// Whether a snapshot read moments ago showed the leader key as ours and bound to `lease`, which `lease()` has
    /// just kept alive: then the key lives as long as the lease and the keep-alive is the whole refresh (as in
    /// Patroni), one etcd call per loop instead of two. Anything else (no recent read, another lease after a TTL
    /// change or an expiry, the key gone or someone else's) goes through the compare-and-put.
    fn leader_key_bound_to(&self, key: &str, lease: i64) -> bool {
        let ttl = self.ttl_secs.load(Ordering::Relaxed);
        self.observed
            .lock()
            .map(|o| {
                o.read_at.is_some_and(|t| t.elapsed() < lease::fresh_window(ttl))
                    && o.values.get(key).is_some_and(|(name, l)| *name == self.name && *l == lease)
            })
            .unwrap_or(false)
    }

    /// Refreshes the leader key by compare-and-put and binds it to our current lease.
    async fn rebind_leader_key(&self, key: &str, deadline: Instant) -> DcsResult<()> {
        let (v, lease) = self
            .with_lease(true, deadline, |lease| {
                let put = json!({"request_put": put_request(key, &self.name, Some(lease))});
                // Ours by name: refresh and rebind to the current lease. Gone: take it again, still atomically,
                // as no one else holds it. Anyone else's: change nothing.
                let body = json!({
                    "compare": [{"key": b64(key), "target": "VALUE", "value": b64(&self.name)}],
                    "success": [put.clone()],
                    "failure": [{"request_txn": {
                        "compare": [{"key": b64(key), "target": "CREATE", "create_revision": "0"}],
                        "success": [put],
                    }}],
                });
                async move { self.txn(body, deadline).await.map(|v| (v, lease)) }
            })
            .await?;
        let recreated = v.pointer("/responses/0/response_txn/succeeded").and_then(Value::as_bool).unwrap_or(false);
        if !succeeded(&v) && !recreated {
            return Err(DcsError::CompareFailed { key: key.to_string() });
        }
        if recreated {
            warn!("the leader key had expired; took it again");
        }
        self.note_written(key, &self.name, lease);
        Ok(())
    }

    fn observed_value(&self, key: &str) -> Option<(String, i64)> {
        self.observed.lock().ok().and_then(|o| o.values.get(key).cloned())
    }

    fn note_written(&self, key: &str, value: &str, lease: i64) {
        if let Ok(mut o) = self.observed.lock() {
            o.values.insert(key.to_string(), (value.to_string(), lease));
        }
    }

    async fn write_status_inner(&self, status: &Status, deadline: Instant) -> DcsResult<()> {
        let (unchanged, legacy) = match self.observed.lock() {
            Ok(o) => (o.status.as_ref() == Some(status), o.write_legacy_optime),
            Err(_) => (false, false),
        };
        if unchanged {
            return Ok(());
        }
        self.put(&self.path.key(keys::STATUS), &status.to_json(), None, deadline).await?;
        if legacy {
            self.put(&self.path.key(keys::LEADER_OPTIME), &status.last_lsn.to_string(), None, deadline).await?;
        }
        if let Ok(mut o) = self.observed.lock() {
            o.status = Some(status.clone());
        }
        Ok(())
    }

    async fn write_failsafe_inner(&self, failsafe: &Failsafe, deadline: Instant) -> DcsResult<()> {
        let unchanged = self.observed.lock().map(|o| o.failsafe.as_ref() == Some(failsafe)).unwrap_or(false);
        if unchanged {
            return Ok(());
        }
        self.put(&self.path.key(keys::FAILSAFE), &failsafe_json(failsafe), None, deadline).await?;
        if let Ok(mut o) = self.observed.lock() {
            o.failsafe = Some(failsafe.clone());
        }
        Ok(())
    }

    /// Builds the snapshot from `(key, value, lease, mod_revision)` of the read prefix at `revision` and remembers
    /// what it says.
    async fn snapshot_from(&self, kvs: Vec<Kv>, revision: i64, deadline: Instant) -> DcsResult<Cluster> {
        let prefix = self.read_prefix();
        let nodes = kvs.iter().filter_map(|(k, val, lease, rev)| {
            Some(RawNode {
                key: k.strip_prefix(&prefix)?.to_string(),
                value: val.clone(),
                version: *rev,
                session: (*lease != 0).then(|| lease.to_string()),
            })
        });
        let mut cluster = if self.is_coordinator() {
            Cluster::from_mpp_nodes(nodes, COORDINATOR_GROUP)
        } else {
            Cluster::from_nodes(nodes)
        };
        cluster.revision = Some(revision);
        let own: Vec<(String, String, i64)> = kvs
            .into_iter()
            .filter(|(k, ..)| k.starts_with(&self.path.prefix()))
            .map(|(k, v, l, _)| (k, v, l))
            .collect();
        self.remember_snapshot(&cluster, &own);
        if !self.ctl {
            if let Some(l) = cluster.leader.as_ref().filter(|l| l.name == self.name) {
                let ours = self.lease.lock().await.id.map(|i| i.to_string());
                if ours.is_some() && l.session != ours {
                    warn!("I am the leader but not owner of the lease");
                }
            }
        }
        self.maybe_discover(deadline).await;
        Ok(cluster)
    }

    fn last_status_with_lsn(&self, last_lsn: u64) -> Status {
        let mut st = self.observed.lock().ok().and_then(|o| o.status.clone()).unwrap_or_default();
        st.last_lsn = last_lsn;
        st
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn put_request(key: &str, value: &str, lease: Option<i64>) -> Value {
    let mut v = json!({"key": b64(key), "value": b64(value)});
    if let Some(l) = lease {
        v["lease"] = json!(l.to_string());
    }
    v
}

/// A failed txn has no `succeeded` field at all (default values are omitted).
fn succeeded(v: &Value) -> bool {
    v.get("succeeded").and_then(Value::as_bool).unwrap_or(false)
}

fn header_revision(v: &Value) -> i64 {
    int(v.get("header").and_then(|h| h.get("revision")))
}

/// `(key, value, lease, mod_revision)` of one key.
type Kv = (String, String, i64, i64);

/// `(key, value, lease, mod_revision)` of each kv in a range answer.
fn read_kvs(v: &Value) -> Result<Vec<Kv>, RpcError> {
    let mut out = Vec::new();
    for kv in v.get("kvs").and_then(Value::as_array).into_iter().flatten() {
        out.push((unb64(kv.get("key"))?, unb64(kv.get("value"))?, int(kv.get("lease")), int(kv.get("mod_revision"))));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
