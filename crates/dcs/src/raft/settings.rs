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
    /// `raft.password`: encrypts and authenticates peer traffic (AES-256-GCM under a key derived from it) and
    /// makes peers refuse replayed requests.
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

    /// Settings from the `raft` section of `patroni.yml`, for member `name` of the configuration's cluster (the
    /// agent; `name` is `""` for the witness). `ttl` and `retry_timeout` stay at Patroni's defaults: set them from
    /// the dynamic configuration.
    pub fn from_config(config: &patroni_config::Config, r: &patroni_config::RaftConfig, name: &str) -> Self {
        let mut s = RaftSettings::new(
            config.scope.clone().unwrap_or_default(),
            name,
            r.self_addr.as_deref().map(str::trim).unwrap_or_default(),
        );
        s.namespace = config.namespace.clone();
        s.citus_group = config.citus.as_ref().and_then(|c| c.group).and_then(|g| u32::try_from(g).ok());
        s.bind_addr = r.bind_addr.clone().filter(|a| !a.trim().is_empty());
        s.partner_addrs = r.partner_addrs.as_ref().map(|p| p.0.clone()).unwrap_or_default();
        s.data_dir = r.data_dir.as_ref().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        s.password = r.password.clone().filter(|p| !p.is_empty());
        s
    }

    /// The same settings for `patronictl` (or any tool next to a running member): a client of every member,
    /// never a voter and never listening, as Patroni's ctl does (`self_addr` joins the partners).
    pub fn into_client(mut self) -> Self {
        if !self.self_addr.is_empty() && !self.partner_addrs.contains(&self.self_addr) {
            self.partner_addrs.push(std::mem::take(&mut self.self_addr));
        }
        self.self_addr.clear();
        self.bind_addr = None;
        self
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_patroni_yml_and_as_a_client() {
        let config = patroni_config::Config {
            scope: Some("demo".into()),
            namespace: "/ns/".into(),
            ..patroni_config::Config::default()
        };
        let r = patroni_config::RaftConfig {
            self_addr: Some("127.0.0.1:5010".into()),
            partner_addrs: Some(patroni_config::StringList(vec!["127.0.0.1:5011".into(), "127.0.0.1:5012".into()])),
            data_dir: Some("/var/lib/raft".into()),
            password: Some("pw".into()),
            ..patroni_config::RaftConfig::default()
        };
        let s = RaftSettings::from_config(&config, &r, "n1");
        assert_eq!((s.scope.as_str(), s.namespace.as_str(), s.name.as_str()), ("demo", "/ns/", "n1"));
        assert_eq!(s.self_addr, "127.0.0.1:5010");
        assert_eq!(s.partner_addrs, ["127.0.0.1:5011", "127.0.0.1:5012"]);
        assert_eq!(s.data_dir, PathBuf::from("/var/lib/raft"));
        assert_eq!(s.password.as_deref(), Some("pw"));
        let c = s.into_client();
        assert_eq!(c.self_addr, "");
        assert_eq!(c.partner_addrs, ["127.0.0.1:5011", "127.0.0.1:5012", "127.0.0.1:5010"]);
    }
}
