use std::path::PathBuf;
use std::time::Duration;

/// Everything the Raft backend needs: the cluster path, this member, the timeouts of the dynamic configuration,
/// and the `raft` section of `patroni.yml`.
#[derive(Debug, Clone)]
pub struct RaftSettings {
    pub scope: String,
    /// `namespace` (default `/service/`).
    pub namespace: String,
    /// Member name (`name`); empty for the witness, which only votes.
    pub name: String,
    /// Citus group of this cluster, if any.
    pub citus_group: Option<u32>,
    /// Lifetime of the leader and member keys (dynamic `ttl`).
    pub ttl: Duration,
    /// Bound of every call (dynamic `retry_timeout`).
    pub retry_timeout: Duration,
    /// `raft.data_dir`: log, vote and snapshot (Patroni's default is the working directory).
    pub data_dir: PathBuf,
    /// `raft.self_addr`: `host:port` other nodes reach this one on.
    pub self_addr: String,
    /// `raft.bind_addr`: `host:port` to listen on; `self_addr` when absent.
    pub bind_addr: Option<String>,
    /// `raft.partner_addrs`: the other nodes.
    pub partner_addrs: Vec<String>,
    /// `raft.password`: encrypts and authenticates peer traffic (AES-256-GCM under a key derived from it).
    pub password: Option<String>,
    /// Log entries between snapshots (the log before a snapshot is then purged); not a Patroni setting.
    pub snapshot_logs: u64,
}

impl RaftSettings {
    /// Settings with Patroni's defaults (`ttl` 30 s, `retry_timeout` 10 s, namespace `/service/`, data in the
    /// working directory).
    pub fn new(scope: impl Into<String>, name: impl Into<String>, self_addr: impl Into<String>) -> Self {
        RaftSettings {
            scope: scope.into(),
            namespace: "/service/".into(),
            name: name.into(),
            citus_group: None,
            ttl: Duration::from_secs(30),
            retry_timeout: Duration::from_secs(10),
            data_dir: PathBuf::from("."),
            self_addr: self_addr.into(),
            bind_addr: None,
            partner_addrs: Vec::new(),
            password: None,
            snapshot_logs: 1000,
        }
    }

    pub fn with_partners<I: IntoIterator<Item = S>, S: Into<String>>(mut self, partners: I) -> Self {
        self.partner_addrs = partners.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = dir.into();
        self
    }
}
