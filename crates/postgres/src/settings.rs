//! [`PgSettings`]: what the instance is configured with, and the small vocabulary types around it ([`Role`],
//! [`ProcessState`], [`ReplicaMethod`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::binaries::Binaries;
use crate::callbacks::CallbackScripts;
use crate::conf::ConfigFiles;
use crate::conninfo::Credentials;
use crate::parameters::Parameters;

/// Options of one custom replica creation method (`postgresql.<method>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaMethod {
    /// Command line; the method name when absent.
    pub command: Option<String>,
    pub no_leader: bool,
    pub keep_data: bool,
    pub no_params: bool,
    /// Other keys, passed as `--key=value` in configuration order.
    pub options: Vec<(String, String)>,
}

/// Everything about the local instance that comes from `patroni.yml` (and the dynamic configuration for
/// `parameters`). Build it directly or from the config crate's types.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// Member name (`name`), also `application_name` of the replication connection and the slot name.
    pub name: String,
    /// Cluster name (`scope`), also `cluster_name`.
    pub scope: String,
    pub data_dir: PathBuf,
    pub config_dir: Option<PathBuf>,
    pub config_base_name: String,
    pub custom_conf: Option<PathBuf>,
    pub pgpass: PathBuf,
    pub binaries: Binaries,
    /// `postgresql.listen`.
    pub listen: String,
    pub connect_address: Option<String>,
    pub use_unix_socket: bool,
    pub use_unix_socket_repl: bool,
    pub superuser: Credentials,
    pub replication: Credentials,
    /// The pg_rewind role; the superuser when `None`.
    pub rewind: Option<Credentials>,
    /// Database for local connections.
    pub database: String,
    /// Effective parameters (see [`crate::parameters::effective_parameters`]).
    pub parameters: Parameters,
    pub pg_hba: Vec<String>,
    pub pg_ident: Vec<String>,
    pub recovery_conf: Parameters,
    pub pg_ctl_timeout: Duration,
    pub callbacks: CallbackScripts,
    pub create_replica_methods: Vec<String>,
    pub replica_methods: BTreeMap<String, ReplicaMethod>,
    /// `pg_basebackup` arguments from `postgresql.basebackup` (`--max-rate=100M`, `--verbose`).
    pub basebackup: Vec<String>,
    pub use_pg_rewind: bool,
    pub remove_data_directory_on_rewind_failure: bool,
    pub remove_data_directory_on_diverged_timelines: bool,
    pub use_slots: bool,
    pub pre_promote: Option<String>,
    pub before_stop: Option<String>,
    /// Where PostgreSQL's own stdout/stderr go; the agent's when `None`.
    pub log_file: Option<PathBuf>,
    /// Bound for each SQL statement and connection attempt.
    pub query_timeout: Duration,
    /// Bound for one replica creation method (pg_basebackup or a script). `None` (Patroni's behaviour): no
    /// bound, since copying a large cluster legitimately takes hours; the caller can still cancel by dropping
    /// the future, which kills the tool with its whole process group.
    pub replica_creation_timeout: Option<Duration>,
}

impl PgSettings {
    /// Minimal settings with Patroni's defaults; tests and simple callers fill in the rest.
    pub fn new(name: &str, scope: &str, data_dir: impl Into<PathBuf>, listen: &str) -> Self {
        let data_dir = data_dir.into();
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
        PgSettings {
            name: name.to_string(),
            scope: scope.to_string(),
            pgpass: home.join("pgpass"),
            data_dir,
            config_dir: None,
            config_base_name: "postgresql".into(),
            custom_conf: None,
            binaries: Binaries::default(),
            listen: listen.to_string(),
            connect_address: None,
            use_unix_socket: false,
            use_unix_socket_repl: false,
            superuser: Credentials::new("postgres", None),
            replication: Credentials::new("replicator", None),
            rewind: None,
            database: "postgres".into(),
            parameters: Parameters::new(),
            pg_hba: Vec::new(),
            pg_ident: Vec::new(),
            recovery_conf: Parameters::new(),
            pg_ctl_timeout: Duration::from_secs(60),
            callbacks: CallbackScripts::default(),
            create_replica_methods: Vec::new(),
            replica_methods: BTreeMap::new(),
            basebackup: Vec::new(),
            use_pg_rewind: false,
            remove_data_directory_on_rewind_failure: false,
            remove_data_directory_on_diverged_timelines: false,
            use_slots: true,
            pre_promote: None,
            before_stop: None,
            log_file: None,
            query_timeout: Duration::from_secs(10),
            replica_creation_timeout: None,
        }
    }

    pub fn config_files(&self) -> ConfigFiles {
        ConfigFiles {
            data_dir: self.data_dir.clone(),
            config_dir: self.config_dir.clone().unwrap_or_else(|| self.data_dir.clone()),
            base_name: self.config_base_name.clone(),
            custom_conf: self.custom_conf.clone(),
            pgpass: self.pgpass.clone(),
        }
    }

    /// The rewind role (the superuser when none is configured).
    pub fn rewind_credentials(&self) -> &Credentials {
        self.rewind.as_ref().unwrap_or(&self.superuser)
    }
}

/// The role PostgreSQL is running in, as callbacks name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Primary,
    Replica,
    StandbyLeader,
    Demoted,
    Uninitialized,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::StandbyLeader => "standby_leader",
            Role::Demoted => "demoted",
            Role::Uninitialized => "uninitialized",
        }
    }
}

/// Process state as Patroni reports it in the REST API and member key (`state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessState {
    Stopped,
    /// Running, not yet accepting connections (e.g. a standby before consistency).
    Starting,
    Running,
    /// The postmaster died without being asked to.
    Crashed,
}

impl ProcessState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Stopped => "stopped",
            ProcessState::Starting => "starting",
            ProcessState::Running => "running",
            ProcessState::Crashed => "crashed",
        }
    }
}

/// Patroni's slot name for a member: lower case, anything outside `[a-z0-9_]` replaced by `_`.
pub fn slot_name_from_member_name(name: &str) -> String {
    let s: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' { c } else { '_' })
        .collect();
    s.chars().take(63).collect()
}
