//! The `postgresql` section.

use crate::convert::{section, Cx, FromTree};
use crate::units::Duration;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

section! {
    /// Credentials and libpq TLS options of one database user (`postgresql.authentication.<kind>`).
    #[derive(Default)]
    pub struct UserAuth {
        /// Role name.
        username: Option<String>,
        /// Password (absent means peer/cert/trust authentication).
        password: Option<String>,
        /// libpq `sslmode` (default `prefer`).
        sslmode: Option<String>,
        /// libpq `sslkey`.
        sslkey: Option<String>,
        /// libpq `sslpassword`.
        sslpassword: Option<String>,
        /// libpq `sslcert`.
        sslcert: Option<String>,
        /// libpq `sslrootcert`.
        sslrootcert: Option<String>,
        /// libpq `sslcrl`.
        sslcrl: Option<String>,
        /// libpq `sslcrldir`.
        sslcrldir: Option<String>,
        /// libpq `gssencmode`.
        gssencmode: Option<String>,
        /// libpq `channel_binding`.
        channel_binding: Option<String>,
    }
}

impl BinName {
    /// The configured name of `pg_controldata`, under either spelling.
    pub fn pg_controldata_name(&self) -> Option<&str> {
        self.pg_controldata.as_deref().or(self.pgcontroldata.as_deref())
    }
}

impl UserAuth {
    /// The libpq connection keywords set for this user, in a stable order, password excluded.
    pub fn ssl_params(&self) -> Vec<(&'static str, &str)> {
        let fields: [(&'static str, &Option<String>); 9] = [
            ("sslmode", &self.sslmode),
            ("sslkey", &self.sslkey),
            ("sslpassword", &self.sslpassword),
            ("sslcert", &self.sslcert),
            ("sslrootcert", &self.sslrootcert),
            ("sslcrl", &self.sslcrl),
            ("sslcrldir", &self.sslcrldir),
            ("gssencmode", &self.gssencmode),
            ("channel_binding", &self.channel_binding),
        ];
        fields.into_iter().filter_map(|(k, v)| v.as_deref().map(|v| (k, v))).collect()
    }
}

section! {
    /// `postgresql.authentication`.
    #[derive(Default)]
    pub struct Authentication {
        /// The superuser Patroni connects as; created by initdb.
        superuser: Option<UserAuth>,
        /// The replication user replicas stream with.
        replication: Option<UserAuth>,
        /// The user pg_rewind connects as (PostgreSQL 11+); the superuser when absent.
        rewind: Option<UserAuth>,
    }
}

section! {
    /// `postgresql.bin_name`: custom names of the PostgreSQL executables.
    #[derive(Default)]
    pub struct BinName {
        /// `pg_ctl`.
        pg_ctl: Option<String>,
        /// `initdb`.
        initdb: Option<String>,
        /// `pg_controldata`.
        pg_controldata: Option<String>,
        /// `pg_basebackup`.
        pg_basebackup: Option<String>,
        /// `postgres`.
        postgres: Option<String>,
        /// `pg_isready`.
        pg_isready: Option<String>,
        /// `pg_rewind`.
        pg_rewind: Option<String>,
        /// The documentation's spelling of `pg_controldata`.
        pgcontroldata: Option<String>,
    }
}

section! {
    /// `postgresql.callbacks`: scripts run on state changes with `action role scope` arguments.
    #[derive(Default)]
    pub struct Callbacks {
        /// After a configuration reload.
        on_reload: Option<String>,
        /// After a restart without role change.
        on_restart: Option<String>,
        /// After promotion or demotion.
        on_role_change: Option<String>,
        /// After start.
        on_start: Option<String>,
        /// After stop.
        on_stop: Option<String>,
    }
}

/// One option for a tool that takes `--flag` or `--name=value` arguments (`initdb`, `pg_basebackup`):
/// written in YAML as a plain string or a single-key mapping.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolOption {
    /// `- data-checksums` → `--data-checksums`.
    Flag(String),
    /// `- encoding: UTF8` → `--encoding=UTF8`.
    Value(String, Value),
}

impl ToolOption {
    /// The command-line argument, e.g. `--encoding=UTF8`.
    pub fn to_arg(&self) -> String {
        match self {
            ToolOption::Flag(f) => format!("--{f}"),
            ToolOption::Value(k, Value::String(s)) => format!("--{k}={s}"),
            ToolOption::Value(k, v) => format!("--{k}={v}"),
        }
    }
}

impl Serialize for ToolOption {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ToolOption::Flag(f) => s.serialize_str(f),
            ToolOption::Value(k, v) => {
                let mut m = Map::new();
                m.insert(k.clone(), v.clone());
                m.serialize(s)
            }
        }
    }
}

impl FromTree for ToolOption {
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
        match v {
            Value::String(s) => Some(ToolOption::Flag(s.clone())),
            Value::Object(m) if m.len() == 1 => {
                let (k, val) = m.iter().next()?;
                if val.is_object() || val.is_array() {
                    cx.error_at(k, "expected a scalar option value");
                    return None;
                }
                Some(ToolOption::Value(k.clone(), val.clone()))
            }
            _ => {
                cx.error("expected a string or a mapping with exactly one key");
                None
            }
        }
    }
}

/// `postgresql.basebackup`: a list of options or a mapping of option → value.
#[derive(Clone, Debug, PartialEq)]
pub enum BasebackupOptions {
    /// `- verbose`, `- max-rate: 100M`.
    List(Vec<ToolOption>),
    /// `max-rate: 100M`, `checkpoint: fast`.
    Map(Map<String, Value>),
}

impl BasebackupOptions {
    /// The arguments passed to `pg_basebackup`.
    pub fn to_args(&self) -> Vec<String> {
        match self {
            BasebackupOptions::List(l) => l.iter().map(ToolOption::to_arg).collect(),
            BasebackupOptions::Map(m) => {
                m.iter().map(|(k, v)| ToolOption::Value(k.clone(), v.clone()).to_arg()).collect()
            }
        }
    }
}

impl Serialize for BasebackupOptions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BasebackupOptions::List(l) => l.serialize(s),
            BasebackupOptions::Map(m) => m.serialize(s),
        }
    }
}

impl FromTree for BasebackupOptions {
    fn from_tree(v: &Value, cx: &mut Cx) -> Option<Self> {
        match v {
            Value::Object(m) => Some(BasebackupOptions::Map(m.clone())),
            Value::Array(_) => Vec::<ToolOption>::from_tree(v, cx).map(BasebackupOptions::List),
            _ => {
                cx.error("expected a list or a mapping");
                None
            }
        }
    }
}

section! {
    /// `postgresql` section. Custom replica-creation methods named in `create_replica_methods` live in
    /// [`extra`](Self::extra) under their own names; see [`PostgresqlConfig::replica_method`].
    #[derive(Default)]
    pub struct PostgresqlConfig {
        /// `addr[,addr...]:port` PostgreSQL listens on; sets `listen_addresses` and `port`.
        listen: Option<String>,
        /// `host:port` other members and clients use to reach PostgreSQL.
        connect_address: Option<String>,
        /// `host:port` of a connection pooler next to PostgreSQL (published as `proxy_url`).
        proxy_address: Option<String>,
        /// The data directory.
        data_dir: Option<String>,
        /// Directory of the PostgreSQL binaries; `PATH` when empty or absent.
        bin_dir: Option<String>,
        /// Custom executable names.
        bin_name: Option<BinName>,
        /// Configuration directory (default: the data directory).
        config_dir: Option<String>,
        /// Path of the `.pgpass` file Patroni writes.
        pgpass: Option<String>,
        /// Users Patroni connects as.
        authentication: Option<Authentication>,
        /// Callback scripts.
        callbacks: Option<Callbacks>,
        /// Ordered replica creation methods (`basebackup` by default).
        create_replica_methods: Option<Vec<String>>,
        /// Older spelling of `create_replica_methods`, used when that is absent.
        create_replica_method: Option<Vec<String>>,
        /// Kerberos service name for libpq connections.
        krbsrvname: Option<String>,
        /// Options for `pg_basebackup`.
        basebackup: Option<BasebackupOptions>,
        /// PostgreSQL parameters (GUCs).
        parameters: Option<Map<String, Value>>,
        /// Lines of `pg_hba.conf`.
        pg_hba: Option<Vec<String>>,
        /// Lines of `pg_ident.conf`.
        pg_ident: Option<Vec<String>>,
        /// Recovery settings for replicas.
        recovery_conf: Option<Map<String, Value>>,
        /// A custom base configuration file used instead of `postgresql.base.conf`.
        custom_conf: Option<String>,
        /// How long `pg_ctl` waits on start/stop/restart (default 60 s).
        pg_ctl_timeout: Option<Duration>,
        /// Use pg_rewind on a former leader.
        use_pg_rewind: Option<bool>,
        /// Replication slots (a dynamic setting; ignored locally, accepted for compatibility).
        use_slots: Option<bool>,
        /// Remove the data directory when pg_rewind fails.
        remove_data_directory_on_rewind_failure: Option<bool>,
        /// Remove the data directory when timelines diverged and rewind is impossible.
        remove_data_directory_on_diverged_timelines: Option<bool>,
        /// Prefer unix sockets for local connections.
        use_unix_socket: Option<bool>,
        /// Prefer unix sockets for the replication user.
        use_unix_socket_repl: Option<bool>,
        /// Fencing script run before promotion; non-zero exit aborts the promotion.
        pre_promote: Option<String>,
        /// Script run synchronously before stopping PostgreSQL.
        before_stop: Option<String>,
        /// Base name of the generated configuration file (default `postgresql`).
        config_base_name: Option<String>,
        /// Pre-`authentication` layout: credentials of the pg_rewind user (kept readable).
        pg_rewind: Option<UserAuth>,
    }
}

impl PostgresqlConfig {
    /// Replica creation methods in order; `["basebackup"]` when none are configured.
    pub fn replica_methods(&self) -> Vec<String> {
        match self.create_replica_methods.as_ref().or(self.create_replica_method.as_ref()) {
            Some(m) if !m.is_empty() => m.clone(),
            _ => vec!["basebackup".to_owned()],
        }
    }

    /// The option map of a custom replica creation method (`postgresql.<name>`), if present.
    pub fn replica_method(&self, name: &str) -> Option<&Map<String, Value>> {
        self.extra.get(name).and_then(Value::as_object)
    }

    /// Every section shaped like a replica creation method (a mapping with a `command`), named or not by
    /// `create_replica_methods`: `standby_cluster.create_replica_methods` of the dynamic configuration, which can
    /// change at run time, picks its methods from here too (Patroni reads `postgresql.<method>` by name).
    pub fn method_sections(&self) -> impl Iterator<Item = (&String, &Map<String, Value>)> {
        self.extra.iter().filter_map(|(k, v)| v.as_object().filter(|m| m.contains_key("command")).map(|m| (k, m)))
    }

    /// `pg_ctl` timeout with Patroni's default of 60 seconds.
    pub fn pg_ctl_timeout(&self) -> std::time::Duration {
        self.pg_ctl_timeout.map_or(std::time::Duration::from_secs(60), Duration::as_std)
    }

    /// Host part(s) and port of `listen`: `"127.0.0.1,127.0.0.2:5432"` → (["127.0.0.1", "127.0.0.2"], 5432).
    pub fn listen_addresses(&self) -> Option<(Vec<String>, u16)> {
        let listen = self.listen.as_deref()?;
        split_listen(listen)
    }
}

/// Splits `addr[,addr...]:port`; the port is optional (5432).
pub fn split_listen(listen: &str) -> Option<(Vec<String>, u16)> {
    let (hosts, port) = match listen.rsplit_once(':') {
        // An IPv6 address without port such as `::1` has colons but no port after them.
        Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => (h, p.parse().ok()?),
        _ => (listen, 5432),
    };
    let addrs: Vec<String> = hosts.split(',').map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect();
    if addrs.is_empty() {
        return None;
    }
    Some((addrs, port))
}
