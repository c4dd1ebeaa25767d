//! Building [`PgSettings`] and [`BootstrapSettings`] from the config crate's typed `patroni.yml` model.

use std::collections::BTreeMap;
use std::path::PathBuf;

use patroni_config::{BootstrapConfig, PostgresqlConfig, UserAuth};
use serde_json::{Map, Value};

use crate::binaries::Binaries;
use crate::bootstrap::{BootstrapMethod, BootstrapSettings, CustomBootstrap};
use crate::callbacks::CallbackScripts;
use crate::conninfo::Credentials;
use crate::error::{Error, Result};
use crate::instance::{PgSettings, ReplicaMethod};
use crate::parameters::{value_to_string, Parameters};
// Options reach scripts as Patroni renders them, with Python's `str()` (`--keep_data=True`).
use patroni_pycompat::py_str;

/// A method of `create_replica_methods` works without a running member to copy from (`no_leader`), so a replica
/// can be made while the cluster has no leader.
pub fn replica_without_leader(pg: &PostgresqlConfig) -> bool {
    pg.replica_methods().iter().filter(|m| *m != "basebackup").any(|m| {
        let options =
            pg.replica_method(m).map(|o| o.iter().map(|(k, v)| (k.clone(), py_str(v))).collect()).unwrap_or_default();
        ReplicaMethod::from_options(options).no_leader
    })
}

fn parameters(map: Option<&Map<String, Value>>) -> Parameters {
    map.into_iter().flatten().filter_map(|(k, v)| value_to_string(v).map(|s| (k.to_ascii_lowercase(), s))).collect()
}

fn credentials(auth: Option<&UserAuth>, default_user: Option<&str>) -> Option<Credentials> {
    let username = auth.and_then(|a| a.username.clone()).or_else(|| default_user.map(str::to_string))?;
    let mut c = Credentials::new(username, auth.and_then(|a| a.password.as_deref()));
    if let Some(a) = auth {
        for (k, v) in a.ssl_params() {
            c.options.insert(k.to_string(), v.to_string());
        }
    }
    Some(c)
}

/// The OS user, which is what libpq (and initdb) use when no user name is given.
fn os_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "postgres".into())
}

impl PgSettings {
    /// PgSettings for member `name` of cluster `scope` from its effective `postgresql` section
    /// (`patroni_config::EffectiveConfig::postgresql`, local over dynamic, parameters already combined).
    pub fn from_config(name: &str, scope: &str, pg: &PostgresqlConfig, use_slots: bool) -> Result<PgSettings> {
        let listen = pg.listen.clone().ok_or_else(|| Error::Config("postgresql.listen is not set".into()))?;
        let data_dir = pg.data_dir.clone().ok_or_else(|| Error::Config("postgresql.data_dir is not set".into()))?;
        let mut s = PgSettings::new(name, scope, PathBuf::from(&data_dir), &listen);
        s.binaries = Binaries::from_config(pg)?;
        s.config_dir = pg.config_dir.as_ref().filter(|d| !d.is_empty()).map(PathBuf::from);
        if let Some(base) = &pg.config_base_name {
            s.config_base_name = base.clone();
        }
        s.custom_conf = pg.custom_conf.as_ref().filter(|c| !c.is_empty()).map(PathBuf::from);
        if let Some(p) = &pg.pgpass {
            s.pgpass = PathBuf::from(p);
        }
        s.connect_address = pg.connect_address.clone();
        s.use_unix_socket = pg.use_unix_socket.unwrap_or(false);
        s.use_unix_socket_repl = pg.use_unix_socket_repl.unwrap_or(false);

        let auth = pg.authentication.as_ref();
        let os = os_user();
        s.superuser = credentials(auth.and_then(|a| a.superuser.as_ref()), Some(&os)).unwrap_or_default();
        s.replication = credentials(auth.and_then(|a| a.replication.as_ref()), None)
            .ok_or_else(|| Error::Config("postgresql.authentication.replication.username is not set".into()))?;
        s.rewind = credentials(auth.and_then(|a| a.rewind.as_ref()).or(pg.pg_rewind.as_ref()), None);

        s.parameters = parameters(pg.parameters.as_ref());
        s.pg_hba = pg.pg_hba.clone().unwrap_or_default();
        s.pg_ident = pg.pg_ident.clone().unwrap_or_default();
        s.recovery_conf = parameters(pg.recovery_conf.as_ref());
        s.pg_ctl_timeout = pg.pg_ctl_timeout();
        if let Some(cb) = &pg.callbacks {
            s.callbacks = CallbackScripts {
                on_start: cb.on_start.clone(),
                on_stop: cb.on_stop.clone(),
                on_restart: cb.on_restart.clone(),
                on_reload: cb.on_reload.clone(),
                on_role_change: cb.on_role_change.clone(),
            };
        }
        s.create_replica_methods = pg.create_replica_methods.clone().unwrap_or_default();
        for method in pg.replica_methods() {
            if method == "basebackup" {
                continue;
            }
            let options = pg
                .replica_method(&method)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), py_str(v))).collect())
                .unwrap_or_default();
            s.replica_methods.insert(method, ReplicaMethod::from_options(options));
        }
        // A method may be named elsewhere than `create_replica_methods` (`standby_cluster`'s list).
        for (name, map) in pg.method_sections() {
            if name == "basebackup" || s.replica_methods.contains_key(name) {
                continue;
            }
            let options = map.iter().map(|(k, v)| (k.clone(), py_str(v))).collect();
            s.replica_methods.insert(name.clone(), ReplicaMethod::from_options(options));
        }
        s.basebackup = pg.basebackup.as_ref().map(|b| b.to_args()).unwrap_or_default();
        s.use_pg_rewind = pg.use_pg_rewind.unwrap_or(false);
        s.remove_data_directory_on_rewind_failure = pg.remove_data_directory_on_rewind_failure.unwrap_or(false);
        s.remove_data_directory_on_diverged_timelines = pg.remove_data_directory_on_diverged_timelines.unwrap_or(false);
        s.use_slots = use_slots;
        s.pre_promote = pg.pre_promote.clone();
        s.before_stop = pg.before_stop.clone();
        Ok(s)
    }
}

impl BootstrapSettings {
    /// From the `bootstrap` section: initdb with its options, or the custom method `method` names.
    pub fn from_config(b: &BootstrapConfig) -> Result<BootstrapSettings> {
        let method = match (b.method.as_deref(), b.method_config()) {
            (Some(name), Some(cfg)) if name != "initdb" => {
                let command = cfg
                    .get("command")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::Config(format!("bootstrap.{name}.command is not set")))?;
                let flag = |k: &str| cfg.get(k).is_some_and(patroni_pycompat::py_bool);
                let recovery_conf = cfg.get("recovery_conf").and_then(Value::as_object).map(|m| parameters(Some(m)));
                let options = cfg
                    .iter()
                    .filter(|(k, _)| {
                        !matches!(
                            k.as_str(),
                            "command"
                                | "no_params"
                                | "keep_existing_recovery_conf"
                                | "recovery_conf"
                                | "scope"
                                | "datadir"
                        )
                    })
                    .map(|(k, v)| (k.clone(), py_str(v)))
                    .collect();
                BootstrapMethod::Custom(CustomBootstrap {
                    command: command.to_string(),
                    no_params: flag("no_params"),
                    keep_existing_recovery_conf: flag("keep_existing_recovery_conf"),
                    recovery_conf,
                    options,
                })
            }
            (Some(name), None) if name != "initdb" => {
                return Err(Error::Config(format!(
                    "bootstrap.method is `{name}` but there is no bootstrap.{name} section with a command"
                )))
            }
            _ => BootstrapMethod::Initdb(b.initdb.iter().flatten().map(|o| o.to_arg()).collect()),
        };
        if let BootstrapMethod::Initdb(opts) = &method {
            crate::bootstrap::check_initdb_options(opts)?;
        }
        Ok(BootstrapSettings {
            method,
            post_bootstrap: b.post_bootstrap_script().map(str::to_string),
            ..BootstrapSettings::initdb(Vec::new())
        })
    }
}

impl Binaries {
    /// The programs `postgresql.bin_dir` and `postgresql.bin_name` name.
    pub fn from_config(pg: &PostgresqlConfig) -> Result<Binaries> {
        let mut bin_name = BTreeMap::new();
        if let Some(b) = &pg.bin_name {
            for (k, v) in [
                ("pg_ctl", &b.pg_ctl),
                ("initdb", &b.initdb),
                ("pg_controldata", &b.pg_controldata),
                ("pg_basebackup", &b.pg_basebackup),
                ("postgres", &b.postgres),
                ("pg_isready", &b.pg_isready),
                ("pg_rewind", &b.pg_rewind),
            ] {
                if let Some(v) = v {
                    bin_name.insert(k.to_string(), v.clone());
                }
            }
        }
        Binaries::new(pg.bin_dir.as_ref().map(PathBuf::from), &bin_name)
    }
}

/// `pg_ctl` as `postgresql.bin_dir` and `bin_name` name it, if it can be found (for the guardian, which stops
/// PostgreSQL without the rest of the agent).
pub fn pg_ctl_path(pg: &PostgresqlConfig) -> Option<PathBuf> {
    let mut names = BTreeMap::new();
    if let Some(n) = pg.bin_name.as_ref().and_then(|b| b.pg_ctl.clone()) {
        names.insert("pg_ctl".to_string(), n);
    }
    Binaries::new(pg.bin_dir.as_ref().map(PathBuf::from), &names).ok()?.path(crate::binaries::Tool::PgCtl).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
scope: demo
name: node1
restapi: {listen: ':8008', connect_address: 'h:8008'}
etcd3: {host: 'h:2379'}
bootstrap:
  method: clone
  clone:
    command: /usr/local/bin/clone --fast
    keep_existing_recovery_conf: true
    recovery_conf: {recovery_target_action: promote, recovery_target_timeline: latest}
    arg1: value1
  post_init: /usr/local/bin/post
postgresql:
  listen: 127.0.0.1,10.0.0.1:5433
  connect_address: 10.0.0.1:5433
  data_dir: /data/pg
  bin_dir: /usr/lib/postgresql/15/bin
  pgpass: /tmp/pgpass0
  authentication:
    superuser: {username: postgres, password: zalando}
    replication: {username: replicator, password: rep-pass, sslmode: require}
    rewind: {username: rewind_user, password: rewind_password}
  parameters: {work_mem: 8MB, hot_standby_feedback: true}
  pg_hba: [host all all 0.0.0.0/0 md5]
  create_replica_methods: [wal_e, basebackup]
  wal_e: {command: patroni_wale_restore, no_leader: 1, envdir: /etc/wal-e, use_iam: true}
  basebackup: [verbose, {max-rate: 100M}]
  callbacks: {on_start: /bin/cb}
  use_pg_rewind: true
"#;

    /// A method only `standby_cluster.create_replica_methods` names (not `postgresql.create_replica_methods`) is
    /// loaded from its section, and its section is not reported as an unknown key.
    #[test]
    fn a_method_named_only_by_the_standby_cluster_is_loaded() {
        let yaml = YAML.replace(
            "  use_pg_rewind: true\n",
            "  use_pg_rewind: true\n  restore_backup: {command: /bin/restore, no_leader: true}\n",
        );
        let loaded = patroni_config::load_str(&yaml, &Default::default()).unwrap();
        assert!(
            !loaded.warnings.iter().any(|w| w.path == "postgresql.restore_backup"),
            "warnings: {:?}",
            loaded.warnings
        );
        let s = PgSettings::from_config("node1", "demo", &loaded.config.postgresql, true).unwrap();
        assert!(s.replica_methods["restore_backup"].no_leader);
        assert_eq!(s.create_replica_methods, vec!["wal_e", "basebackup"]);
    }

    #[test]
    fn settings_from_patroni_yml() {
        let cfg = patroni_config::load_str(YAML, &Default::default()).unwrap().config;
        let s = PgSettings::from_config("node1", "demo", &cfg.postgresql, true).unwrap();
        assert_eq!(s.listen, "127.0.0.1,10.0.0.1:5433");
        assert_eq!(s.data_dir, PathBuf::from("/data/pg"));
        assert_eq!(s.pgpass, PathBuf::from("/tmp/pgpass0"));
        assert_eq!(s.superuser.password.as_deref(), Some("zalando"));
        assert_eq!(s.replication.options.get("sslmode").map(String::as_str), Some("require"));
        assert_eq!(s.rewind.as_ref().unwrap().username, "rewind_user");
        assert_eq!(s.parameters["hot_standby_feedback"], "on");
        assert_eq!(s.create_replica_methods, vec!["wal_e", "basebackup"]);
        let wal_e = &s.replica_methods["wal_e"];
        assert!(wal_e.no_leader);
        assert_eq!(
            wal_e.arguments("demo", "/data/pg", ""),
            vec![
                "--no_leader=1",
                "--envdir=/etc/wal-e",
                "--use_iam=True",
                "--scope=demo",
                "--role=replica",
                "--datadir=/data/pg",
                "--connstring="
            ]
        );
        assert_eq!(s.basebackup, vec!["--verbose", "--max-rate=100M"]);
        assert_eq!(s.callbacks.on_start.as_deref(), Some("/bin/cb"));
        assert!(s.use_pg_rewind);

        let b = BootstrapSettings::from_config(cfg.bootstrap.as_ref().unwrap()).unwrap();
        assert_eq!(b.post_bootstrap.as_deref(), Some("/usr/local/bin/post"));
        match b.method {
            BootstrapMethod::Custom(c) => {
                assert_eq!(c.command, "/usr/local/bin/clone --fast");
                assert!(c.keep_existing_recovery_conf && !c.no_params);
                assert_eq!(c.options, vec![("arg1".to_string(), "value1".to_string())]);
                assert_eq!(c.recovery_conf.unwrap()["recovery_target_action"], "promote");
            }
            other => panic!("{other:?}"),
        }
    }
}
