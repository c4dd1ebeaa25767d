//! [`PgNode`]: the [`Node`] behind a real PostgreSQL, on top of `patroni_postgres::Postgres`.
//!
//! Long operations hold the instance lock for their whole duration; observation never waits for it (it answers
//! from the last observation instead), so the HA loop keeps its rhythm while PostgreSQL starts or is cloned.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use patroni_config::{Config, DynamicConfig, UserAuth};
use patroni_dcs::HistoryLine;
use patroni_ha::{DataDir, LocalState, PgRole, Process, ReplicaConn, Time};
use patroni_postgres::bootstrap::{BootstrapMethod, BootstrapSettings, CustomBootstrap};
use patroni_postgres::instance::{slot_name_from_member_name, ReplicaMethod, Settings as PgSettings};
use patroni_postgres::rewind::parse_history;
use patroni_postgres::{Binaries, ConnParams, Credentials, Parameters, Postgres, StopMode};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, Notify};
use tracing::{info, warn};

use crate::member::LocalDetails;
use crate::node::{Node, NodeError, NodeResult, Stop, Upstream};

pub struct PgNode {
    pg: Mutex<Postgres>,
    bootstrap: BootstrapSettings,
    local_parameters: Map<String, Value>,
    local_hba: Option<Vec<String>>,
    crash: Arc<Notify>,
    /// The last complete observation, answered while a long action holds the instance.
    last: std::sync::Mutex<(LocalState, LocalDetails)>,
    /// The postmaster whose exit we already watch, so each gets one watcher.
    watched_pid: std::sync::Mutex<Option<i32>>,
    /// The member `primary_conninfo` points at, as we last configured it.
    following: std::sync::Mutex<Option<String>>,
    /// System identifier of the data directory, once read.
    sysid: std::sync::Mutex<Option<String>>,
    /// This data directory has been a primary since it last proved to be on its upstream's history; it must be
    /// checked (and maybe rewound) before it follows anyone.
    was_primary: AtomicBool,
}

fn err(e: impl std::fmt::Display) -> NodeError {
    NodeError::new(e.to_string())
}

fn value_to_conf(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "on".into(),
        Value::Bool(false) => "off".into(),
        other => other.to_string(),
    }
}

fn to_parameters(map: &Map<String, Value>) -> Parameters {
    map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), value_to_conf(v))).collect()
}

fn credentials(auth: Option<&UserAuth>, default_user: &str) -> Credentials {
    let Some(a) = auth else { return Credentials::new(default_user, None) };
    let mut c = Credentials::new(a.username.clone().unwrap_or_else(|| default_user.to_owned()), a.password.as_deref());
    for (k, v) in a.ssl_params() {
        c.options.insert(k.to_owned(), v.to_owned());
    }
    c
}

fn option_pairs(map: &Map<String, Value>, skip: &[&str]) -> Vec<(String, String)> {
    map.iter().filter(|(k, _)| !skip.contains(&k.as_str())).map(|(k, v)| (k.clone(), value_to_conf(v))).collect()
}

/// The postgres crate's settings from `patroni.yml` and the dynamic configuration.
pub fn pg_settings(config: &Config, dynamic: &DynamicConfig, name: &str) -> Result<PgSettings, NodeError> {
    let p = &config.postgresql;
    let data_dir = p.data_dir.clone().ok_or_else(|| NodeError::new("postgresql.data_dir is not set"))?;
    let listen = p.listen.clone().ok_or_else(|| NodeError::new("postgresql.listen is not set"))?;
    let scope = config.scope.clone().unwrap_or_default();
    let mut s = PgSettings::new(name, &scope, PathBuf::from(&data_dir), &listen);
    let mut tools = BTreeMap::new();
    if let Some(b) = &p.bin_name {
        for (tool, v) in [
            ("pg_ctl", &b.pg_ctl),
            ("initdb", &b.initdb),
            ("pg_controldata", &b.pg_controldata),
            ("pg_basebackup", &b.pg_basebackup),
            ("postgres", &b.postgres),
            ("pg_isready", &b.pg_isready),
            ("pg_rewind", &b.pg_rewind),
        ] {
            if let Some(v) = v {
                tools.insert(tool.to_owned(), v.clone());
            }
        }
    }
    s.binaries = Binaries::new(p.bin_dir.as_ref().map(PathBuf::from), &tools).map_err(err)?;
    s.connect_address = p.connect_address.clone();
    s.config_dir = p.config_dir.as_ref().map(PathBuf::from);
    if let Some(base) = &p.config_base_name {
        s.config_base_name = base.clone();
    }
    s.custom_conf = p.custom_conf.as_ref().map(PathBuf::from);
    if let Some(pgpass) = &p.pgpass {
        s.pgpass = PathBuf::from(pgpass);
    }
    s.use_unix_socket = p.use_unix_socket.unwrap_or(false);
    s.use_unix_socket_repl = p.use_unix_socket_repl.unwrap_or(false);
    let auth = p.authentication.as_ref();
    s.superuser = credentials(auth.and_then(|a| a.superuser.as_ref()), "postgres");
    s.replication = credentials(auth.and_then(|a| a.replication.as_ref()), "replicator");
    s.rewind = auth.and_then(|a| a.rewind.as_ref()).map(|r| credentials(Some(r), "rewind_user"));
    let dynamic_pg = dynamic.postgresql.as_ref();
    s.parameters = effective_parameters(dynamic, p.parameters.as_ref());
    s.pg_hba = p.pg_hba.clone().or_else(|| dynamic_pg.and_then(|d| d.pg_hba.clone())).unwrap_or_default();
    s.pg_ident = p.pg_ident.clone().or_else(|| dynamic_pg.and_then(|d| d.pg_ident.clone())).unwrap_or_default();
    let mut recovery = dynamic_pg.and_then(|d| d.recovery_conf.as_ref()).map(to_parameters).unwrap_or_default();
    recovery.extend(p.recovery_conf.as_ref().map(to_parameters).unwrap_or_default());
    s.recovery_conf = recovery;
    s.pg_ctl_timeout = p.pg_ctl_timeout();
    if let Some(cb) = &p.callbacks {
        s.callbacks.on_start = cb.on_start.clone();
        s.callbacks.on_stop = cb.on_stop.clone();
        s.callbacks.on_restart = cb.on_restart.clone();
        s.callbacks.on_reload = cb.on_reload.clone();
        s.callbacks.on_role_change = cb.on_role_change.clone();
    }
    s.create_replica_methods = p.replica_methods();
    for method in &s.create_replica_methods {
        if method == "basebackup" {
            continue;
        }
        let opts = p.replica_method(method).cloned().unwrap_or_default();
        let flag = |k: &str| opts.get(k).is_some_and(crate::peers::truthy);
        s.replica_methods.insert(
            method.clone(),
            ReplicaMethod {
                command: opts.get("command").and_then(Value::as_str).map(str::to_owned),
                no_leader: flag("no_leader") || flag("no_master"),
                keep_data: flag("keep_data"),
                no_params: flag("no_params"),
                options: option_pairs(&opts, &["command", "no_leader", "no_master", "keep_data", "no_params"]),
            },
        );
    }
    s.basebackup = p.basebackup.as_ref().map(|b| b.to_args()).unwrap_or_default();
    s.use_pg_rewind = dynamic.use_pg_rewind() || p.use_pg_rewind.unwrap_or(false);
    s.use_slots = dynamic.use_slots();
    s.remove_data_directory_on_rewind_failure = p.remove_data_directory_on_rewind_failure.unwrap_or(false);
    s.remove_data_directory_on_diverged_timelines = p.remove_data_directory_on_diverged_timelines.unwrap_or(false);
    s.pre_promote = p.pre_promote.clone();
    s.before_stop = p.before_stop.clone();
    Ok(s)
}

/// local ← dynamic, as the documentation's "Important rules" say: local `postgresql.parameters` win.
fn effective_parameters(dynamic: &DynamicConfig, local: Option<&Map<String, Value>>) -> Parameters {
    let dyn_params = dynamic.postgresql.as_ref().and_then(|d| d.parameters.as_ref());
    let (merged, warnings) = patroni_config::params::effective_parameters(dyn_params, local);
    for w in warnings {
        warn!("{w}");
    }
    to_parameters(&merged)
}

fn bootstrap_settings(config: &Config) -> BootstrapSettings {
    let b = config.bootstrap.as_ref();
    let initdb =
        b.and_then(|b| b.initdb.as_ref()).map(|opts| opts.iter().map(|o| o.to_arg()).collect()).unwrap_or_default();
    let mut settings = BootstrapSettings::initdb(initdb);
    if let Some(method) = b.and_then(|b| b.method.as_deref()).filter(|m| *m != "initdb") {
        if let Some(m) = b.and_then(|b| b.method_config()) {
            let flag = |k: &str| m.get(k).is_some_and(crate::peers::truthy);
            settings.method = BootstrapMethod::Custom(CustomBootstrap {
                command: m.get("command").and_then(Value::as_str).unwrap_or(method).to_owned(),
                no_params: flag("no_params"),
                keep_existing_recovery_conf: flag("keep_existing_recovery_conf"),
                recovery_conf: m.get("recovery_conf").and_then(Value::as_object).map(to_parameters),
                options: option_pairs(m, &["command", "no_params", "keep_existing_recovery_conf", "recovery_conf"]),
            });
        }
    }
    settings.post_bootstrap = b.and_then(|b| b.post_bootstrap_script()).map(str::to_owned);
    settings
}

impl PgNode {
    pub async fn new(config: &Config, name: &str) -> Result<PgNode, NodeError> {
        let dynamic = config.bootstrap_dcs();
        let settings = pg_settings(config, &dynamic, name)?;
        let mut pg = Postgres::new(settings).await.map_err(err)?;
        // An agent restarted under a running PostgreSQL takes it over instead of starting another.
        match pg.adopt().await {
            Ok(true) => info!("found already running PostgreSQL, adopting it"),
            Ok(false) => {}
            Err(e) => warn!("could not adopt the running PostgreSQL: {e}"),
        }
        Ok(PgNode {
            pg: Mutex::new(pg),
            bootstrap: bootstrap_settings(config),
            local_parameters: config.postgresql.parameters.clone().unwrap_or_default(),
            local_hba: config.postgresql.pg_hba.clone(),
            crash: Arc::new(Notify::new()),
            last: std::sync::Mutex::new((LocalState::default(), LocalDetails::default())),
            watched_pid: std::sync::Mutex::new(None),
            following: std::sync::Mutex::new(None),
            sysid: std::sync::Mutex::new(None),
            was_primary: AtomicBool::new(false),
        })
    }

    /// One watcher per postmaster: its unrequested exit wakes the loop at once.
    fn watch_postmaster(&self, pg: &Postgres) {
        let Some(pm) = pg.postmaster() else { return };
        let pid = pm.pid();
        let Ok(mut watched) = self.watched_pid.lock() else { return };
        if *watched == Some(pid) {
            return;
        }
        *watched = Some(pid);
        let mut rx = pm.watch();
        let crash = self.crash.clone();
        tokio::spawn(async move {
            loop {
                if let Some(exit) = rx.borrow().clone() {
                    if exit.is_crash() {
                        crash.notify_one();
                    }
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    fn set_sysid(&self, sysid: Option<String>) {
        if let Ok(mut s) = self.sysid.lock() {
            *s = sysid;
        }
    }

    fn set_following(&self, upstream: Option<&Upstream>) {
        if let Ok(mut f) = self.following.lock() {
            *f = upstream.map(|u| u.name.clone());
        }
    }

    fn upstream_params(up: &Upstream) -> Result<ConnParams, NodeError> {
        ConnParams::parse(&up.conn_url).ok_or_else(|| NodeError::new(format!("cannot parse conn_url of {}", up.name)))
    }

    async fn observe_locked(&self, pg: &Postgres) -> (LocalState, LocalDetails) {
        let mut local = LocalState::default();
        let mut details = LocalDetails::default();
        local.data_dir = if pg.data_directory_empty() || !pg.is_initialized() {
            self.set_sysid(None);
            DataDir::Empty
        } else if let Some(sysid) = self.sysid.lock().ok().and_then(|s| s.clone()) {
            // The identifier of a data directory never changes; it is forgotten whenever the directory is replaced.
            DataDir::Initialized { sysid }
        } else {
            match pg.controldata().await {
                Ok(cd) => {
                    let sysid = cd.system_identifier.to_string();
                    self.set_sysid(Some(sysid.clone()));
                    DataDir::Initialized { sysid }
                }
                Err(e) => {
                    warn!("pg_controldata failed: {e}");
                    // Unknown identity: report it as a sysid no cluster has, so nothing is done blindly.
                    DataDir::Initialized { sysid: String::new() }
                }
            }
        };
        if let Some(exit) = pg.crashed() {
            let _ = exit;
            local.process = Process::Crashed { at: Time(0) };
        } else if pg.is_running() {
            match pg.cluster_info().await {
                Ok(info) => {
                    local.process = Process::Running;
                    local.role = if info.in_recovery { PgRole::Replica } else { PgRole::Primary };
                    if !info.in_recovery {
                        self.was_primary.store(true, Ordering::Relaxed);
                    }
                    local.lsn = Some(info.wal_position().0);
                    local.timeline = Some(info.timeline);
                    local.replication = info
                        .replication
                        .iter()
                        .map(|r| ReplicaConn {
                            name: r.application_name.clone(),
                            streaming: r.state.as_deref() == Some("streaming"),
                            synchronous: matches!(r.sync_state.as_deref(), Some("sync" | "quorum")),
                            lsn: r.flush_lsn.or(r.write_lsn).map(|l| l.0),
                        })
                        .collect();
                    local.following = self.following.lock().ok().and_then(|f| f.clone());
                    details.receive_lsn = info.received_lsn.map(|l| l.0);
                    details.replay_lsn = info.replayed_lsn.map(|l| l.0);
                    details.replication_state = match (&info.wal_receiver, info.in_recovery) {
                        (Some(w), true) if w.status == "streaming" => Some("streaming".to_owned()),
                        (_, true) => Some("in archive recovery".to_owned()),
                        (_, false) => None,
                    };
                    details.pending_restart = info.pending_restart;
                    details.server_version = Some(info.server_version);
                    details.postmaster_start_time = Some(info.postmaster_start_time.timestamp_micros() as f64 / 1e6);
                    details.replay_paused = info.replay_paused;
                    details.replayed_timestamp = info.replay_timestamp.map(|t| t.to_rfc3339());
                }
                Err(e) => {
                    // Running but not answering yet: still starting (or recovering).
                    tracing::debug!("PostgreSQL does not answer yet: {e}");
                    local.process = Process::Starting { since: Time(0) };
                }
            }
            self.watch_postmaster(pg);
        }
        (local, details)
    }
}

#[async_trait]
impl Node for PgNode {
    async fn observe(&self) -> (LocalState, LocalDetails) {
        let Ok(pg) = self.pg.try_lock() else {
            return self.last.lock().map(|l| l.clone()).unwrap_or_default();
        };
        let seen = self.observe_locked(&pg).await;
        if let Ok(mut last) = self.last.lock() {
            *last = seen.clone();
        }
        seen
    }

    fn crash_notify(&self) -> Arc<Notify> {
        self.crash.clone()
    }

    async fn bootstrap(&self) -> NodeResult<()> {
        let mut pg = self.pg.lock().await;
        self.set_sysid(None);
        pg.bootstrap(&self.bootstrap).await.map_err(err)
    }

    async fn configure(&self, dynamic: &DynamicConfig) -> NodeResult<()> {
        let mut pg = self.pg.lock().await;
        let params = effective_parameters(dynamic, Some(&self.local_parameters));
        let hba = self
            .local_hba
            .clone()
            .or_else(|| dynamic.postgresql.as_ref().and_then(|d| d.pg_hba.clone()))
            .unwrap_or_else(|| pg.settings().pg_hba.clone());
        let ident = pg.settings().pg_ident.clone();
        let outcome = pg.update_config(params, hba, ident).await.map_err(err)?;
        if !outcome.pending_restart.is_empty() {
            info!(
                "PostgreSQL needs a restart for: {:?}",
                outcome.pending_restart.iter().map(|p| &p.name).collect::<Vec<_>>()
            );
        }
        Ok(())
    }

    async fn create_replica(&self, from: &Upstream) -> NodeResult<()> {
        let source = Self::upstream_params(from)?;
        let mut pg = self.pg.lock().await;
        self.set_sysid(None);
        let method = pg.create_replica(Some(&source), false).await.map_err(err)?;
        info!("replica created with {method}, starting it");
        let recovery = pg.follow_settings(Some(&source));
        pg.start(Some(recovery)).await.map_err(err)?;
        self.set_following(Some(from));
        Ok(())
    }

    async fn start_replica(&self, upstream: Option<&Upstream>) -> NodeResult<()> {
        let source = upstream.map(Self::upstream_params).transpose()?;
        let mut pg = self.pg.lock().await;
        if let Some(src) = &source {
            match pg.rewind_or_reinit(src).await {
                Ok(outcome) => {
                    info!("before following {}: {outcome:?}", upstream.map_or("", |u| u.name.as_str()));
                    self.was_primary.store(false, Ordering::Relaxed);
                }
                Err(e) => warn!("could not check for diverged timelines: {e}"),
            }
        }
        let recovery = pg.follow_settings(source.as_ref());
        pg.start(Some(recovery)).await.map_err(err)?;
        self.set_following(upstream);
        Ok(())
    }

    async fn start_primary(&self) -> NodeResult<()> {
        let mut pg = self.pg.lock().await;
        pg.start(None).await.map_err(err)?;
        Ok(())
    }

    async fn follow(&self, upstream: Option<&Upstream>) -> NodeResult<()> {
        let source = upstream.map(Self::upstream_params).transpose()?;
        let mut pg = self.pg.lock().await;
        let was_primary = self.was_primary.load(Ordering::Relaxed);
        if let (true, Some(src)) = (was_primary, &source) {
            // WAL written while we were primary may not exist on the new leader: stop, compare histories and
            // rewind before streaming, or the replica would never catch up.
            if pg.is_running() {
                pg.stop(StopMode::Fast).await.map_err(err)?;
            }
            match pg.rewind_or_reinit(src).await {
                Ok(outcome) => info!("before following {}: {outcome:?}", upstream.map_or("", |u| u.name.as_str())),
                Err(e) => warn!("could not check for diverged timelines: {e}"),
            }
            self.was_primary.store(false, Ordering::Relaxed);
        }
        pg.follow(source.as_ref()).await.map_err(err)?;
        self.set_following(upstream);
        Ok(())
    }

    async fn promote(&self) -> NodeResult<()> {
        let mut pg = self.pg.lock().await;
        pg.promote().await.map_err(err)?;
        self.was_primary.store(true, Ordering::Relaxed);
        self.set_following(None);
        Ok(())
    }

    async fn stop(&self, how: Stop) -> NodeResult<Option<u64>> {
        let mut pg = self.pg.lock().await;
        if !pg.is_running() {
            return Ok(pg.controldata().await.ok().map(|cd| cd.checkpoint_location.0));
        }
        if how == Stop::FastWithCheckpoint {
            if let Ok(db) = pg.db().await {
                if let Err(e) = db.checkpoint().await {
                    warn!("checkpoint before stop failed: {e}");
                }
            }
        }
        let mode = match how {
            Stop::FastWithCheckpoint | Stop::Fast => StopMode::Fast,
            Stop::Immediate => StopMode::Immediate,
        };
        pg.stop(mode).await.map_err(err)?;
        Ok(pg.controldata().await.ok().map(|cd| cd.checkpoint_location.0))
    }

    async fn restart(&self) -> NodeResult<()> {
        let mut pg = self.pg.lock().await;
        pg.restart(StopMode::Fast).await.map_err(err)?;
        Ok(())
    }

    async fn reload(&self) -> NodeResult<()> {
        let mut pg = self.pg.lock().await;
        pg.reload().await.map_err(err)
    }

    async fn rewind(&self, from: &Upstream) -> NodeResult<()> {
        {
            let mut pg = self.pg.lock().await;
            if pg.is_running() {
                pg.stop(StopMode::Fast).await.map_err(err)?;
            }
        }
        self.start_replica(Some(from)).await
    }

    async fn reinitialize(&self, from: &Upstream) -> NodeResult<()> {
        {
            let mut pg = self.pg.lock().await;
            if pg.is_running() {
                pg.stop(StopMode::Immediate).await.map_err(err)?;
            }
            pg.move_data_directory_aside().map_err(err)?;
        }
        self.create_replica(from).await
    }

    async fn set_sync_standbys(&self, standbys: &[String], strict: bool) -> NodeResult<()> {
        let value = match (standbys.is_empty(), strict) {
            (true, true) => "*".to_owned(),
            (true, false) => String::new(),
            (false, _) => {
                let names: Vec<String> = standbys.iter().map(|s| format!("\"{s}\"")).collect();
                format!("{} ({})", names.len(), names.join(","))
            }
        };
        let mut pg = self.pg.lock().await;
        if pg.settings().parameters.get("synchronous_standby_names").map(String::as_str) == Some(value.as_str()) {
            return Ok(());
        }
        let mut params = pg.settings().parameters.clone();
        params.insert("synchronous_standby_names".into(), value);
        let hba = pg.settings().pg_hba.clone();
        let ident = pg.settings().pg_ident.clone();
        pg.update_config(params, hba, ident).await.map_err(err)?;
        Ok(())
    }

    async fn timeline_history(&self) -> NodeResult<Vec<HistoryLine>> {
        let pg = self.pg.lock().await;
        let info = pg.cluster_info().await.map_err(err)?;
        if info.timeline <= 1 {
            return Ok(Vec::new());
        }
        let db = pg.db().await.map_err(err)?;
        let text = db.read_data_file(&format!("pg_wal/{:08X}.history", info.timeline)).await.map_err(err)?;
        Ok(parse_history(&String::from_utf8_lossy(&text))
            .into_iter()
            .map(|e| HistoryLine {
                timeline: e.parent_timeline,
                lsn: e.switchpoint.0,
                reason: e.reason,
                timestamp: None,
                new_leader: None,
            })
            .collect())
    }

    async fn ensure_slots(&self, members: &[String]) -> NodeResult<()> {
        let pg = self.pg.lock().await;
        if !pg.settings().use_slots || !pg.is_running() {
            return Ok(());
        }
        let db = pg.db().await.map_err(err)?;
        for m in members {
            let slot = slot_name_from_member_name(m);
            db.create_physical_slot(&slot).await.map_err(err)?;
        }
        Ok(())
    }
}
