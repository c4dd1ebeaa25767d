//! The etcd v2 backend (Patroni's `etcd` section), over etcd's v2 keys API as Python Patroni (python-etcd) uses it.
//!
//! Leader and member keys carry a TTL (`ttl=` on every write) instead of a lease: the leader refreshes its key
//! with a compare-and-swap on its own name (`prevValue`), takes a free one with `prevExist=false`, and versioned
//! keys (`config`, `failover`, `sync`) are compared on `prevIndex` (the key's `modifiedIndex`). A snapshot is one
//! recursive read of the cluster directory. `watch` long-polls the leader key with `wait=true&waitIndex=` from the
//! snapshot's index, as Patroni does, so a replica wakes as soon as the leader key changes or expires.
//! Endpoints: `host`/`hosts`/`url`/`proxy`/`srv` as for etcd3; unless `use_proxies`, the etcd cluster's members
//! (`/v2/members`) are learnt and tried in turn. Every call has one deadline, `retry_timeout` from its start.

mod client;
mod dcs_impl;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, warn};

pub use crate::etcd3::Etcd3Settings as EtcdSettings;

use client::{code, leaves, Request, V2Answer, V2Client, V2Error};

use crate::error::{DcsError, DcsResult};
use crate::keys::{self, ClusterPath};
use crate::model::{failsafe_json, Cluster, Failsafe, ParseProblem, RawNode, Status, Version};

/// How long the discovered member list of the etcd cluster is trusted before it is asked for again.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(300);

/// The citus coordinator's group.
const COORDINATOR_GROUP: u32 = 0;

/// What the last snapshot (and our own writes since) told us.
#[derive(Default)]
struct Observed {
    /// Who held the leader key in the last snapshot.
    leader_name: Option<String>,
    status: Option<Status>,
    failsafe: Option<Failsafe>,
    /// Members older than Patroni 2.1 read `optime/leader` rather than `status`.
    write_legacy_optime: bool,
    problems: Vec<ParseProblem>,
}

/// One node's client of an etcd cluster through the v2 API.
pub struct Etcd {
    name: String,
    path: ClusterPath,
    ctl: bool,
    proxies_only: bool,
    client: V2Client,
    ttl_secs: AtomicU64,
    retry_timeout_ms: AtomicU64,
    observed: Mutex<Observed>,
    discovered_at: Mutex<Option<Instant>>,
    wake: Notify,
}

impl Etcd {
    /// Connects lazily: nothing is sent until the first call. Settings errors (no endpoint, a bad URL, an
    /// unreadable certificate) are reported here.
    pub async fn new(settings: EtcdSettings) -> DcsResult<Self> {
        if settings.scope.is_empty() || (settings.name.is_empty() && !settings.ctl) {
            return Err(DcsError::Config("etcd needs a scope and a member name".into()));
        }
        let mut endpoints = settings.static_endpoints()?;
        if endpoints.is_empty() {
            if let Some(domain) = &settings.srv {
                endpoints =
                    crate::etcd3::srv::discover(domain, settings.srv_suffix.as_deref(), settings.retry_timeout).await?;
            }
        }
        let client = V2Client::new(&settings, endpoints)?;
        Ok(Etcd {
            name: settings.name.clone(),
            path: ClusterPath::new(&settings.namespace, &settings.scope, settings.citus_group),
            ctl: settings.ctl,
            proxies_only: settings.proxies_only(),
            client,
            ttl_secs: AtomicU64::new(settings.ttl.as_secs().max(1)),
            retry_timeout_ms: AtomicU64::new(millis(settings.retry_timeout)),
            observed: Mutex::new(Observed::default()),
            discovered_at: Mutex::new(None),
            wake: Notify::new(),
        })
    }

    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.retry_timeout_ms.load(Ordering::Relaxed))
    }

    fn ttl_secs(&self) -> u64 {
        self.ttl_secs.load(Ordering::Relaxed)
    }

    fn is_coordinator(&self) -> bool {
        self.path.group() == Some(COORDINATOR_GROUP)
    }

    /// The directory a snapshot reads: the whole scope on a Citus coordinator (to see its workers), else the cluster.
    fn read_dir(&self) -> String {
        let p = if self.is_coordinator() { self.path.scope_prefix() } else { self.path.prefix() };
        p.trim_end_matches('/').to_string()
    }

    async fn call(&self, req: Request<'_>, deadline: Instant) -> Result<V2Answer, V2Error> {
        self.call_counted(req, deadline).await.0
    }

    async fn call_counted(&self, req: Request<'_>, deadline: Instant) -> (Result<V2Answer, V2Error>, usize) {
        self.client.call(&req, deadline).await
    }

    /// `PUT key` with the given conditions; returns the written node's `modifiedIndex`.
    async fn put(
        &self,
        key: &str,
        value: &str,
        extra: Vec<(&'static str, String)>,
        deadline: Instant,
    ) -> Result<Version, V2Error> {
        let mut params = vec![("value", value.to_string())];
        params.extend(extra);
        let a = self.call(Request { method: reqwest::Method::PUT, key, params }, deadline).await?;
        Ok(modified_index(&a.body))
    }

    async fn delete(&self, key: &str, params: Vec<(&'static str, String)>, deadline: Instant) -> Result<(), V2Error> {
        self.call(Request { method: reqwest::Method::DELETE, key, params }, deadline).await.map(drop)
    }

    /// Writes `value` to a versioned key: with `version`, only while its `modifiedIndex` is still that.
    async fn put_maybe_cas(&self, relative: &str, value: &str, version: Option<Version>) -> DcsResult<Version> {
        let key = self.path.key(relative);
        let cond = version.map(|v| vec![("prevIndex", v.to_string())]).unwrap_or_default();
        self.put(&key, value, cond, self.deadline()).await.map_err(|e| e.into_dcs(&key))
    }

    async fn delete_maybe_cas(&self, relative: &str, version: Option<Version>) -> DcsResult<()> {
        let key = self.path.key(relative);
        let cond = version.map(|v| vec![("prevIndex", v.to_string())]).unwrap_or_default();
        match self.delete(&key, cond, self.deadline()).await {
            // Deleting what is already gone is done, unless a version was asked for.
            Err(V2Error::Etcd(code::KEY_NOT_FOUND, _)) if version.is_none() => Ok(()),
            r => r.map_err(|e| e.into_dcs(&key)),
        }
    }

    /// Creates the leader key with our name and the TTL, only if absent (`prevExist=false`).
    async fn acquire(&self, deadline: Instant) -> DcsResult<()> {
        let key = self.path.key(keys::LEADER);
        let params =
            vec![("value", self.name.clone()), ("ttl", self.ttl_secs().to_string()), ("prevExist", "false".into())];
        let (r, attempts) =
            self.call_counted(Request { method: reqwest::Method::PUT, key: &key, params }, deadline).await;
        match r {
            Ok(_) => {
                debug!("acquired the leader lock");
                self.note_leader(Some(self.name.clone()));
                Ok(())
            }
            Err(V2Error::Etcd(code::NODE_EXIST, _)) => {
                // A retried request whose first try succeeded but whose answer was lost finds our own key.
                if attempts > 1 && self.leader_holder(deadline).await.as_deref() == Some(self.name.as_str()) {
                    self.note_leader(Some(self.name.clone()));
                    return Ok(());
                }
                tracing::info!("Could not take out TTL lock");
                Err(DcsError::CompareFailed { key })
            }
            Err(e) => Err(e.into_dcs(&key)),
        }
    }

    async fn leader_holder(&self, deadline: Instant) -> Option<String> {
        let key = self.path.key(keys::LEADER);
        let a = self.call(Request { method: reqwest::Method::GET, key: &key, params: vec![] }, deadline).await.ok()?;
        a.body.pointer("/node/value").and_then(Value::as_str).map(String::from)
    }

    fn note_leader(&self, holder: Option<String>) {
        if let Ok(mut o) = self.observed.lock() {
            o.leader_name = holder;
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
        let key = self.path.key(keys::STATUS);
        self.put(&key, &status.to_json(), vec![], deadline).await.map_err(|e| e.into_dcs(&key))?;
        if legacy {
            let key = self.path.key(keys::LEADER_OPTIME);
            self.put(&key, &status.last_lsn.to_string(), vec![], deadline).await.map_err(|e| e.into_dcs(&key))?;
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
        let key = self.path.key(keys::FAILSAFE);
        self.put(&key, &failsafe_json(failsafe), vec![], deadline).await.map_err(|e| e.into_dcs(&key))?;
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

    /// Builds the snapshot from one recursive read and remembers what it says.
    fn snapshot_from(&self, answer: &V2Answer) -> Cluster {
        let dir = format!("{}/", self.read_dir());
        let mut nodes = Vec::new();
        if let Some(root) = answer.body.get("node") {
            leaves(root, &mut nodes);
        }
        let etcd_index = answer.etcd_index;
        let raw = nodes.iter().filter_map(|n| {
            let key = n.get("key")?.as_str()?.strip_prefix(&dir)?.to_string();
            let value = n.get("value").and_then(Value::as_str).unwrap_or("").to_string();
            let modified = modified_index(n);
            // Patroni's leader version: the index to watch the leader key from, so that no change after this
            // snapshot is missed (the snapshot's index when the key is older, else the index after its last write).
            let is_leader = key == keys::LEADER
                || key.split_once('/').is_some_and(|(g, rest)| rest == keys::LEADER && g.parse::<u32>().is_ok());
            let version = if is_leader && etcd_index <= modified {
                modified + 1
            } else if is_leader {
                etcd_index
            } else {
                modified
            };
            Some(RawNode { key, value, version, session: None })
        });
        let mut cluster = if self.is_coordinator() {
            Cluster::from_mpp_nodes(raw, COORDINATOR_GROUP)
        } else {
            Cluster::from_nodes(raw)
        };
        cluster.revision = Some(etcd_index);
        if let Ok(mut o) = self.observed.lock() {
            o.leader_name = cluster.leader.as_ref().map(|l| l.name.clone());
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
        cluster
    }

    /// Learns the etcd cluster's client URLs every [`DISCOVERY_INTERVAL`] (not with `use_proxies`/`proxy`).
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
        match self.client.members(short).await {
            Ok(urls) => {
                debug!("etcd cluster members: {urls:?}");
                self.client.merge_endpoints(urls);
                if let Ok(mut at) = self.discovered_at.lock() {
                    *at = Some(Instant::now());
                }
            }
            Err(e) => debug!("could not list the etcd cluster members: {e}"),
        }
    }
}

fn modified_index(node_or_answer: &Value) -> Version {
    let n = node_or_answer.get("node").unwrap_or(node_or_answer);
    n.get("modifiedIndex").and_then(Value::as_i64).unwrap_or(0)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
