//! The Exhibitor backend (Patroni's `exhibitor` section): ZooKeeper whose server list comes from Exhibitor's REST
//! endpoint `/exhibitor/v1/cluster/list` (`{"servers": ["h1", "h2"], "port": 2181}`), asked again every
//! `poll_interval` when the cluster is read. Everything else is the [`ZooKeeper`] backend.
//!
//! As in Patroni, the first list is waited for (the agent cannot do anything without it), the known Exhibitor
//! servers are asked in random order, the configured ones again when none of those answers, and a changed list
//! goes to the ZooKeeper client: the current session keeps its connection, a new one uses the new servers.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset};
use rand::seq::SliceRandom;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, info};

use crate::dcs::Dcs;
use crate::error::{DcsError, DcsResult};
use crate::model::{Cluster, Failsafe, Leader, MemberData, Status, SyncState, Version};
use crate::zookeeper::{ZooKeeper, ZooKeeperSettings};

const LIST_PATH: &str = "/exhibitor/v1/cluster/list";
/// Patroni's per-request timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(3100);

/// The `exhibitor` section (with the `zookeeper` settings that also apply: ACLs, auth).
#[derive(Debug, Clone, PartialEq)]
pub struct ExhibitorSettings {
    /// Exhibitor servers (host names) to ask first.
    pub hosts: Vec<String>,
    pub port: u16,
    pub poll_interval: Duration,
    /// ZooKeeper settings; its `hosts` are replaced by Exhibitor's list.
    pub zookeeper: ZooKeeperSettings,
}

impl ExhibitorSettings {
    pub fn from_config(config: &patroni_config::Config, x: &patroni_config::ExhibitorConfig, name: &str) -> Self {
        let zk = match &config.zookeeper {
            Some(z) => ZooKeeperSettings::from_config(config, z, name),
            None => {
                let mut s = ZooKeeperSettings::new(config.scope.clone().unwrap_or_default(), name);
                s.namespace = config.namespace.clone();
                s.citus_group = config.citus.as_ref().and_then(|c| c.group).and_then(|g| u32::try_from(g).ok());
                s
            }
        };
        ExhibitorSettings {
            hosts: x
                .hosts
                .iter()
                .flat_map(|h| h.0.iter())
                .flat_map(|h| h.split(','))
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect(),
            port: x.port.unwrap_or(8181),
            poll_interval: x.poll_interval.map(|d| d.0).unwrap_or(Duration::from_secs(300)),
            zookeeper: zk,
        }
    }
}

struct Provider {
    exhibitors: Vec<String>,
    zookeeper_hosts: String,
    next_poll: Option<Instant>,
}

/// Where the ZooKeeper servers are learnt from.
struct Ensemble {
    http: reqwest::Client,
    boot: Vec<String>,
    port: u16,
    poll_interval: Duration,
    provider: Mutex<Provider>,
}

/// ZooKeeper found through Exhibitor.
pub struct Exhibitor {
    zk: ZooKeeper,
    ensemble: Ensemble,
}

impl Exhibitor {
    /// Asks Exhibitor for the ZooKeeper servers, every 5 s until one answers (as Patroni does), then connects.
    pub async fn new(settings: ExhibitorSettings) -> DcsResult<Self> {
        if settings.hosts.is_empty() {
            return Err(DcsError::Config("exhibitor.hosts is required".into()));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| DcsError::Config(format!("cannot build the Exhibitor HTTP client: {e}")))?;
        let ensemble = Ensemble {
            http,
            boot: settings.hosts.clone(),
            port: settings.port,
            poll_interval: settings.poll_interval,
            provider: Mutex::new(Provider {
                exhibitors: settings.hosts,
                zookeeper_hosts: String::new(),
                next_poll: None,
            }),
        };
        while !ensemble.poll().await {
            info!("waiting on exhibitor");
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let zk =
            ZooKeeper::new(ZooKeeperSettings { hosts: vec![ensemble.zookeeper_hosts()], ..settings.zookeeper }).await?;
        Ok(Exhibitor { zk, ensemble })
    }

    /// The ZooKeeper connect string Exhibitor gave last.
    pub fn zookeeper_hosts(&self) -> String {
        self.ensemble.zookeeper_hosts()
    }
}

impl Ensemble {
    /// The ZooKeeper connect string Exhibitor gave last.
    pub fn zookeeper_hosts(&self) -> String {
        self.provider.lock().map(|p| p.zookeeper_hosts.clone()).unwrap_or_default()
    }

    /// Asks Exhibitor when the poll interval has passed; true when the server list changed.
    async fn poll(&self) -> bool {
        let (due, mut known) = match self.provider.lock() {
            Ok(p) => (p.next_poll.is_none_or(|t| Instant::now() >= t), p.exhibitors.clone()),
            Err(_) => return false,
        };
        if !due {
            return false;
        }
        let mut answer = self.ask_exhibitors(&mut known).await;
        if answer.is_none() {
            let mut boot = self.boot.clone();
            answer = self.ask_exhibitors(&mut boot).await;
        }
        let Some((servers, port)) = answer else { return false };
        let mut sorted = servers.clone();
        sorted.sort();
        let hosts = sorted.iter().map(|h| format!("{h}:{port}")).collect::<Vec<_>>().join(",");
        let Ok(mut p) = self.provider.lock() else { return false };
        p.next_poll = Some(Instant::now() + self.poll_interval);
        if p.zookeeper_hosts == hosts {
            return false;
        }
        info!("ZooKeeper connection string has changed: {} => {hosts}", p.zookeeper_hosts);
        p.zookeeper_hosts = hosts;
        p.exhibitors = servers;
        true
    }

    /// The first answer of `exhibitors` (in random order): `servers` and `port`.
    async fn ask_exhibitors(&self, exhibitors: &mut [String]) -> Option<(Vec<String>, String)> {
        exhibitors.shuffle(&mut rand::thread_rng());
        for host in exhibitors.iter() {
            let url = if host.contains(':') && !host.starts_with('[') {
                format!("http://[{host}]:{}{LIST_PATH}", self.port)
            } else {
                format!("http://{host}:{}{LIST_PATH}", self.port)
            };
            let answer = async {
                let v: Value = self.http.get(&url).timeout(REQUEST_TIMEOUT).send().await.ok()?.json().await.ok()?;
                let servers: Vec<String> =
                    v.get("servers")?.as_array()?.iter().filter_map(|s| s.as_str().map(String::from)).collect();
                let port = match v.get("port")? {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Some((servers, port))
            };
            match answer.await {
                Some(a) => return Some(a),
                None => debug!("Request to {host} failed"),
            }
        }
        None
    }
}

#[async_trait]
impl Dcs for Exhibitor {
    fn name(&self) -> &str {
        self.zk.name()
    }
    fn ttl(&self) -> Duration {
        Dcs::ttl(&self.zk)
    }
    fn set_ttl(&self, ttl: Duration) {
        self.zk.set_ttl(ttl)
    }
    fn retry_timeout(&self) -> Duration {
        self.zk.retry_timeout()
    }
    fn set_retry_timeout(&self, retry_timeout: Duration) {
        self.zk.set_retry_timeout(retry_timeout)
    }
    async fn get_cluster(&self) -> DcsResult<Cluster> {
        if self.ensemble.poll().await {
            self.zk.set_hosts(&self.ensemble.zookeeper_hosts());
        }
        self.zk.get_cluster().await
    }
    async fn attempt_to_acquire_leader(&self) -> DcsResult<()> {
        self.zk.attempt_to_acquire_leader().await
    }
    async fn take_leader(&self) -> DcsResult<()> {
        self.zk.take_leader().await
    }
    async fn update_leader(&self, c: &Cluster, s: Option<&Status>, f: Option<&Failsafe>) -> DcsResult<()> {
        self.zk.update_leader(c, s, f).await
    }
    async fn delete_leader(&self, leader: &Leader, last_lsn: Option<u64>) -> DcsResult<()> {
        self.zk.delete_leader(leader, last_lsn).await
    }
    async fn touch_member(&self, data: &MemberData) -> DcsResult<()> {
        self.zk.touch_member(data).await
    }
    async fn initialize(&self, create_new: bool, sysid: &str) -> DcsResult<()> {
        self.zk.initialize(create_new, sysid).await
    }
    async fn cancel_initialization(&self) -> DcsResult<()> {
        self.zk.cancel_initialization().await
    }
    async fn set_config_value(&self, value: &str, version: Option<Version>) -> DcsResult<()> {
        self.zk.set_config_value(value, version).await
    }
    async fn set_failover_value(&self, value: &str, version: Option<Version>) -> DcsResult<()> {
        self.zk.set_failover_value(value, version).await
    }
    async fn delete_failover(&self, version: Option<Version>) -> DcsResult<()> {
        self.zk.delete_failover(version).await
    }
    async fn set_sync_state_value(&self, value: &str, version: Option<Version>) -> DcsResult<Version> {
        self.zk.set_sync_state_value(value, version).await
    }
    async fn delete_sync_state(&self, version: Option<Version>) -> DcsResult<()> {
        self.zk.delete_sync_state(version).await
    }
    async fn set_history_value(&self, value: &str) -> DcsResult<()> {
        self.zk.set_history_value(value).await
    }
    async fn write_status(&self, status: &Status) -> DcsResult<()> {
        self.zk.write_status(status).await
    }
    async fn write_failsafe(&self, failsafe: &Failsafe) -> DcsResult<()> {
        self.zk.write_failsafe(failsafe).await
    }
    async fn delete_cluster(&self) -> DcsResult<()> {
        self.zk.delete_cluster().await
    }
    async fn watch(&self, leader_version: Option<Version>, timeout: Duration) -> DcsResult<bool> {
        self.zk.watch(leader_version, timeout).await
    }
    fn wakeup(&self) {
        self.zk.wakeup()
    }
    async fn manual_failover(
        &self,
        leader: Option<&str>,
        candidate: Option<&str>,
        scheduled_at: Option<&DateTime<FixedOffset>>,
        version: Option<Version>,
    ) -> DcsResult<()> {
        self.zk.manual_failover(leader, candidate, scheduled_at, version).await
    }
    async fn write_sync_state(
        &self,
        leader: Option<&str>,
        sync_standby: &[String],
        quorum: u32,
        version: Option<Version>,
    ) -> DcsResult<SyncState> {
        self.zk.write_sync_state(leader, sync_standby, quorum, version).await
    }
    async fn write_leader_optime(&self, last_lsn: u64) -> DcsResult<()> {
        self.zk.write_leader_optime(last_lsn).await
    }
}
