//! The typed model of `patroni.yml`.

mod dcs;
mod postgresql;
mod restapi;
mod tags;

pub use dcs::{ConsulConfig, Etcd3Config, EtcdConfig, ExhibitorConfig, KubernetesConfig, RaftConfig, ZooKeeperConfig};
pub use postgresql::{
    split_listen, Authentication, BasebackupOptions, BinName, Callbacks, PostgresqlConfig, ToolOption, UserAuth,
};
pub use restapi::{BasicAuth, CtlConfig, RestApiConfig, VerifyClient};
pub use tags::Tags;

use crate::convert::{section, string_enum, Cx, FromTree};
use crate::dynamic::DynamicConfig;
use crate::units::Size;
use indexmap::IndexMap;
use serde_json::{Map, Value};

/// Patroni's default `namespace`.
pub const DEFAULT_NAMESPACE: &str = "/service/";

string_enum! {
    /// `log.type`.
    pub enum LogType ("one of") {
        /// `2024-01-01 12:00:00,123 INFO: message` lines.
        Plain = "plain",
        /// One JSON object per line.
        Json = "json",
    }
}

string_enum! {
    /// Python logging level names, as Patroni accepts them.
    pub enum LogLevel ("a log level, one of") {
        /// DEBUG.
        Debug = "DEBUG",
        /// INFO.
        Info = "INFO",
        /// WARNING (also WARN).
        Warning = "WARNING" | "warn",
        /// ERROR.
        Error = "ERROR",
        /// CRITICAL (also FATAL).
        Critical = "CRITICAL" | "fatal",
    }
}

section! {
    /// `log` section.
    #[derive(Default)]
    pub struct LogConfig {
        /// `plain` (default) or `json`.
        r#type: Option<LogType> = "type",
        /// Log level (default INFO).
        level: Option<LogLevel>,
        /// Level from which tracebacks are shown (default ERROR).
        traceback_level: Option<LogLevel>,
        /// Python-style format string, or a list of fields for `json` (default `%(asctime)s %(levelname)s: %(message)s`).
        format: Option<Value>,
        /// strftime-style date format.
        dateformat: Option<String>,
        /// Fields added to every JSON record.
        static_fields: Option<Map<String, Value>>,
        /// Capacity of the in-memory log queue (default 1000).
        max_queue_size: Option<u64>,
        /// Directory for `patroni.log`; stderr when absent.
        dir: Option<String>,
        /// Permissions of log files (octal in YAML: `0640`).
        mode: Option<u32>,
        /// Rotated files kept (default 4).
        file_num: Option<u32>,
        /// Size that triggers rotation (default 25000000 bytes).
        file_size: Option<Size>,
        /// Per-module levels.
        loggers: Option<IndexMap<String, LogLevel>>,
        /// Log the "no action" heartbeat line only when it changes.
        deduplicate_heartbeat_logs: Option<bool>,
    }
}

section! {
    /// A user created at bootstrap (`bootstrap.users`, deprecated in Patroni but still read).
    #[derive(Default)]
    pub struct BootstrapUser {
        /// Password.
        password: Option<String>,
        /// `CREATE ROLE` options such as `createdb`.
        options: Option<Vec<String>>,
    }
}

section! {
    /// `bootstrap` section. A custom method named by `method` lives in [`extra`](Self::extra) under its
    /// own name; see [`BootstrapConfig::method_config`].
    #[derive(Default)]
    pub struct BootstrapConfig {
        /// Dynamic configuration written to the DCS when the cluster is initialized.
        dcs: Option<DynamicConfig>,
        /// Custom bootstrap method name (`initdb` when absent).
        method: Option<String>,
        /// Options passed to initdb.
        initdb: Option<Vec<ToolOption>>,
        /// Script run after initialization with a connection URL.
        post_bootstrap: Option<String>,
        /// Older spelling of `post_bootstrap`.
        post_init: Option<String>,
        /// Users created after initialization.
        users: Option<IndexMap<String, BootstrapUser>>,
        /// Older place for `pg_hba` lines used while bootstrapping.
        pg_hba: Option<Vec<String>>,
    }
}

impl BootstrapConfig {
    /// The option map of the custom bootstrap method, when `method` names one that is configured.
    pub fn method_config(&self) -> Option<&Map<String, Value>> {
        let m = self.method.as_deref()?;
        if m == "initdb" {
            return None;
        }
        self.extra.get(m).and_then(Value::as_object)
    }

    /// `post_bootstrap`, or `post_init` when only that is set.
    pub fn post_bootstrap_script(&self) -> Option<&str> {
        self.post_bootstrap.as_deref().or(self.post_init.as_deref())
    }
}

section! {
    /// `citus` section.
    #[derive(Default)]
    pub struct CitusConfig {
        /// Citus group: 0 for the coordinator, 1.. for workers.
        group: Option<i64>,
        /// Database holding the citus extension.
        database: Option<String>,
    }
}

/// `watchdog.mode`. YAML `off` is a boolean false, so booleans are accepted as Patroni does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WatchdogMode {
    /// Disabled.
    Off,
    /// Used when available (default).
    #[default]
    Automatic,
    /// Leadership requires a working watchdog.
    Required,
}

impl WatchdogMode {
    /// Canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WatchdogMode::Off => "off",
            WatchdogMode::Automatic => "automatic",
            WatchdogMode::Required => "required",
        }
    }
}

impl serde::Serialize for WatchdogMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl FromTree for WatchdogMode {
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
        let r = match v {
            Value::Bool(false) => Some(WatchdogMode::Off),
            Value::Bool(true) => Some(WatchdogMode::Automatic),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "off" | "false" | "no" => Some(WatchdogMode::Off),
                "auto" | "automatic" | "on" | "true" | "yes" => Some(WatchdogMode::Automatic),
                "require" | "required" => Some(WatchdogMode::Required),
                _ => None,
            },
            _ => None,
        };
        if r.is_none() {
            cx.error("expected one of: off, automatic, required");
        }
        r
    }
}

section! {
    /// `watchdog` section.
    #[derive(Default)]
    pub struct WatchdogConfig {
        /// off, automatic (default) or required.
        mode: Option<WatchdogMode>,
        /// Device path (default `/dev/watchdog`).
        device: Option<String>,
        /// Seconds between watchdog expiry and leader key expiry (default 5; -1 means ttl/2).
        safety_margin: Option<i64>,
        /// Driver name (`default` or `testing`).
        driver: Option<String>,
        /// patroni-rs: the guardian process that stops PostgreSQL when the leader key is not renewed in time
        /// (default on; used while no watchdog device is active).
        guardian: Option<bool>,
    }
}

impl WatchdogConfig {
    /// Device with Patroni's default.
    pub fn device(&self) -> &str {
        self.device.as_deref().unwrap_or("/dev/watchdog")
    }

    /// Whether the guardian is wanted (default on).
    pub fn guardian(&self) -> bool {
        self.guardian.unwrap_or(true)
    }
}

section! {
    /// The whole local configuration (`patroni.yml`).
    pub struct Config {
        /// Cluster name.
        scope: Option<String>,
        /// DCS path prefix (default `/service/`).
        namespace: String,
        /// Member name, unique in the cluster.
        name: Option<String>,
        /// Logging.
        log: Option<LogConfig>,
        /// Cluster initialization.
        bootstrap: Option<BootstrapConfig>,
        /// Citus integration.
        citus: Option<CitusConfig>,
        /// Consul DCS.
        consul: Option<ConsulConfig>,
        /// etcd v2 DCS.
        etcd: Option<EtcdConfig>,
        /// etcd v3 DCS.
        etcd3: Option<Etcd3Config>,
        /// ZooKeeper DCS.
        zookeeper: Option<ZooKeeperConfig>,
        /// Exhibitor DCS.
        exhibitor: Option<ExhibitorConfig>,
        /// Kubernetes DCS.
        kubernetes: Option<KubernetesConfig>,
        /// Raft DCS (deprecated).
        raft: Option<RaftConfig>,
        /// PostgreSQL.
        postgresql: PostgresqlConfig,
        /// REST API.
        restapi: RestApiConfig,
        /// patronictl settings.
        ctl: Option<CtlConfig>,
        /// Watchdog.
        watchdog: Option<WatchdogConfig>,
        /// Member tags.
        tags: Tags,
        /// Python Patroni's thread pool size; accepted so existing files load, it has no effect here.
        thread_pool_size: Option<u32>,
        /// Python Patroni's thread stack size; accepted so existing files load, it has no effect here.
        thread_stack_size: Option<crate::units::Size>,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            scope: None,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            name: None,
            log: None,
            bootstrap: None,
            citus: None,
            consul: None,
            etcd: None,
            etcd3: None,
            zookeeper: None,
            exhibitor: None,
            kubernetes: None,
            raft: None,
            postgresql: PostgresqlConfig::default(),
            restapi: RestApiConfig::default(),
            ctl: None,
            watchdog: None,
            tags: Tags::default(),
            thread_pool_size: None,
            thread_stack_size: None,
            extra: Map::new(),
        }
    }
}

/// Which DCS a configuration selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DcsKind {
    /// `etcd` (API v2).
    Etcd,
    /// `etcd3`.
    Etcd3,
    /// `consul`.
    Consul,
    /// `zookeeper`.
    ZooKeeper,
    /// `exhibitor`.
    Exhibitor,
    /// `kubernetes`.
    Kubernetes,
    /// `raft`.
    Raft,
}

impl DcsKind {
    /// The section name.
    pub fn as_str(self) -> &'static str {
        match self {
            DcsKind::Etcd => "etcd",
            DcsKind::Etcd3 => "etcd3",
            DcsKind::Consul => "consul",
            DcsKind::ZooKeeper => "zookeeper",
            DcsKind::Exhibitor => "exhibitor",
            DcsKind::Kubernetes => "kubernetes",
            DcsKind::Raft => "raft",
        }
    }
}

impl Config {
    /// DCS sections present, in the order Patroni tries them.
    pub fn dcs_kinds(&self) -> Vec<DcsKind> {
        let mut v = Vec::new();
        if self.consul.is_some() {
            v.push(DcsKind::Consul);
        }
        if self.etcd.is_some() {
            v.push(DcsKind::Etcd);
        }
        if self.etcd3.is_some() {
            v.push(DcsKind::Etcd3);
        }
        if self.exhibitor.is_some() {
            v.push(DcsKind::Exhibitor);
        }
        if self.kubernetes.is_some() {
            v.push(DcsKind::Kubernetes);
        }
        if self.raft.is_some() {
            v.push(DcsKind::Raft);
        }
        if self.zookeeper.is_some() {
            v.push(DcsKind::ZooKeeper);
        }
        v
    }

    /// The dynamic configuration from `bootstrap.dcs` (empty when absent). As in Patroni, a Citus cluster
    /// bootstraps with `synchronous_mode: quorum` unless `bootstrap.dcs` says otherwise.
    pub fn bootstrap_dcs(&self) -> DynamicConfig {
        let mut dcs = self.bootstrap.as_ref().and_then(|b| b.dcs.clone()).unwrap_or_default();
        if self.citus.is_some() && dcs.synchronous_mode.is_none() {
            dcs.synchronous_mode = Some(crate::dynamic::SynchronousMode::Quorum);
        }
        dcs
    }

    /// The effective configuration as a value tree (what `show-config`-like output prints).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Local configuration merged over the cluster's dynamic configuration (see [`crate::EffectiveConfig`]).
    pub fn effective(&self, dynamic: &DynamicConfig) -> crate::EffectiveConfig {
        crate::EffectiveConfig::new(self, dynamic)
    }

    /// The DCS key prefix for this cluster: `<namespace>/<scope>/` with single slashes.
    pub fn cluster_prefix(&self) -> String {
        let ns = self.namespace.trim_matches('/');
        let scope = self.scope.as_deref().unwrap_or("");
        if ns.is_empty() {
            format!("/{scope}/")
        } else {
            format!("/{ns}/{scope}/")
        }
    }
}
