//! [`PgNode`]: the [`Node`] behind a real PostgreSQL, on top of `patroni_postgres::Postgres`.
//!
//! Long operations hold the instance lock for their whole duration; observation never waits for it (it answers
//! from the last observation instead), so the HA loop keeps its rhythm while PostgreSQL starts or is cloned.

use std::sync::Arc;

use async_trait::async_trait;
use patroni_config::{Config, DynamicConfig};
use patroni_dcs::HistoryLine;
use patroni_ha::{ControlState, DataDir, LocalState, PgRole, Process, ReplicaConn, Time};
use patroni_postgres::bootstrap::BootstrapSettings;
use patroni_postgres::controldata::ClusterState;
use patroni_postgres::instance::{slot_name_from_member_name, PgSettings};
use patroni_postgres::settings::Role as PgRole_;
use patroni_postgres::{ConnParams, Postgres, StopMode};
use serde_json::{json, Map, Value};
use tokio::sync::{Mutex, Notify};
use tracing::{info, warn};

use crate::member::LocalDetails;
use crate::node::{HistorySource, Node, NodeError, NodeResult, RemotePrimary, Stop, Upstream};

pub struct PgNode {
    pub(crate) pg: Mutex<Postgres>,
    /// Reads WAL positions for `GET /patroni` on its own connection (see probe.rs).
    probe: Arc<crate::probe::WalProbe>,
    bootstrap: BootstrapSettings,
    /// The local configuration (replaced on reload), merged with each new dynamic configuration.
    config: std::sync::Mutex<Config>,
    /// Settings waiting for a restart, as Patroni shows them (`{name: {old_value, new_value}}`), and the start of
    /// the postmaster they wait on: a newer postmaster has applied them.
    pending: std::sync::Mutex<PendingRestart>,
    /// When the running postmaster started, as last observed.
    started: std::sync::Mutex<Option<chrono::DateTime<chrono::Utc>>>,
    name: String,
    crash: Arc<Notify>,
    /// The last complete observation, answered while a long action holds the instance.
    last: std::sync::Mutex<(LocalState, LocalDetails)>,
    /// The postmaster whose exit we already watch, so each gets one watcher.
    watched_pid: std::sync::Mutex<Option<i32>>,
    /// The member `primary_conninfo` points at, as we last configured it.
    following: std::sync::Mutex<Option<String>>,
    /// System identifier of the data directory, once read.
    sysid: std::sync::Mutex<Option<String>>,
}

/// The postmaster start a pending-restart reason belongs to, and the reason.
type PendingRestart = (Option<chrono::DateTime<chrono::Utc>>, Map<String, Value>);

/// `pending_restart_reason` as Patroni shows it: `{name: {old_value, new_value}}`.
fn restart_reason(pending: &[patroni_postgres::query::PendingRestart]) -> Map<String, Value> {
    pending.iter().map(|p| (p.name.clone(), json!({"old_value": p.old_value, "new_value": p.new_value}))).collect()
}

fn err(e: impl std::fmt::Display) -> NodeError {
    NodeError::new(e.to_string())
}

/// The postgres crate's settings from `patroni.yml` merged with the dynamic configuration (local over dynamic).
pub fn pg_settings(config: &Config, dynamic: &DynamicConfig, name: &str) -> Result<PgSettings, NodeError> {
    let effective = config.effective(dynamic);
    for w in &effective.warnings {
        warn!("{w}");
    }
    let scope = config.scope.clone().unwrap_or_default();
    PgSettings::from_config(name, &scope, &effective.postgresql, effective.use_slots).map_err(err)
}

/// The HA core's name for the role the postgres crate last ran PostgreSQL in.
fn pg_role(role: PgRole_) -> PgRole {
    match role {
        PgRole_::Primary => PgRole::Primary,
        PgRole_::Replica => PgRole::Replica,
        PgRole_::StandbyLeader => PgRole::StandbyLeader,
        PgRole_::Demoted => PgRole::Demoted,
        PgRole_::Uninitialized => PgRole::Unknown,
    }
}

fn control_state(state: &ClusterState) -> ControlState {
    match state {
        ClusterState::InProduction => ControlState::InProduction,
        ClusterState::InCrashRecovery => ControlState::InCrashRecovery,
        ClusterState::ShuttingDown => ControlState::ShuttingDown,
        ClusterState::ShutDown => ControlState::ShutDown,
        ClusterState::ShutDownInRecovery => ControlState::ShutDownInRecovery,
        ClusterState::InArchiveRecovery => ControlState::InArchiveRecovery,
        ClusterState::Starting | ClusterState::Other(_) => ControlState::Other,
    }
}

/// How long a crashed postmaster stays down before we start another. `pg_ctl stop -m immediate -w`, what operators
/// and tools use to kill one, polls for the pid file every 100 ms and waits out its whole timeout if a new
/// postmaster has written one in between.
const RESTART_AFTER_CRASH_DELAY: std::time::Duration = std::time::Duration::from_millis(300);

impl PgNode {
    /// What waits for a restart of the postmaster that started at `started` (nothing once a newer one runs).
    fn pending_reason(&self, started: chrono::DateTime<chrono::Utc>) -> Map<String, Value> {
        let Ok(mut pending) = self.pending.lock() else { return Map::new() };
        if pending.0.is_some_and(|at| at != started) {
            *pending = (None, Map::new());
        }
        pending.1.clone()
    }

    /// The settings PostgreSQL flags as waiting for a restart, remembered for the running postmaster.
    async fn learn_pending(&self, pg: &Postgres, started: chrono::DateTime<chrono::Utc>) -> Map<String, Value> {
        let Ok(db) = pg.db().await else { return Map::new() };
        let Ok(rows) = db.pending_restart().await else { return Map::new() };
        let reason = restart_reason(&rows);
        if let Ok(mut pending) = self.pending.lock() {
            *pending = (Some(started), reason.clone());
        }
        reason
    }

    /// A physical slot per member (reserving WAL or not), unless slots are off, PostgreSQL is down, or a long action
    /// holds it: the HA loop must never wait for one (its leader key refresh comes next).
    async fn create_slots(&self, members: &[String], reserve: bool) -> NodeResult<()> {
        let Ok(pg) = self.pg.try_lock() else { return Ok(()) };
        if !pg.settings().use_slots || !pg.is_running() {
            return Ok(());
        }
        let db = pg.db().await.map_err(err)?;
        for m in members {
            let slot = slot_name_from_member_name(m);
            if reserve {
                db.create_physical_slot(&slot).await.map_err(err)?;
            } else {
                db.create_physical_slot_unreserved(&slot).await.map_err(err)?;
            }
        }
        Ok(())
    }

    /// The on-demand WAL position reader the REST API uses.
    pub fn probe(&self) -> Arc<crate::probe::WalProbe> {
        self.probe.clone()
    }

    pub async fn new(config: &Config, name: &str) -> Result<PgNode, NodeError> {
        let dynamic = config.bootstrap_dcs();
        let settings = pg_settings(config, &dynamic, name)?;
        let bootstrap = match &config.bootstrap {
            Some(b) => BootstrapSettings::from_config(b).map_err(err)?,
            None => BootstrapSettings::initdb(Vec::new()),
        };
        let mut pg = Postgres::new(settings).await.map_err(err)?;
        // An agent restarted under a running PostgreSQL takes it over instead of starting another.
        match pg.adopt().await {
            Ok(true) => info!("found already running PostgreSQL, adopting it"),
            Ok(false) => {}
            Err(e) => warn!("could not adopt the running PostgreSQL: {e}"),
        }
        Ok(PgNode {
            pg: Mutex::new(pg),
            probe: Arc::default(),
            bootstrap,
            config: std::sync::Mutex::new(config.clone()),
            pending: std::sync::Mutex::default(),
            started: std::sync::Mutex::default(),
            name: name.to_owned(),
            crash: Arc::new(Notify::new()),
            last: std::sync::Mutex::new((LocalState::default(), LocalDetails::default())),
            watched_pid: std::sync::Mutex::new(None),
            following: std::sync::Mutex::new(None),
            sysid: std::sync::Mutex::new(None),
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

    pub(crate) fn upstream_params(up: &Upstream) -> Result<ConnParams, NodeError> {
        ConnParams::parse(&up.conn_url).ok_or_else(|| NodeError::new(format!("cannot parse conn_url of {}", up.name)))
    }

    /// Where to connect to compare histories with, or rewind from, `source`.
    fn history_params(source: &HistorySource) -> Result<ConnParams, NodeError> {
        match source {
            HistorySource::Member(up) => Self::upstream_params(up),
            HistorySource::Remote(remote) => {
                remote.conn_params().ok_or_else(|| NodeError::new("the remote primary has no address to connect to"))
            }
        }
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
        if pg.crashed().is_some() {
            local.process = Process::Crashed { at: Time(0) };
        }
        if !pg.is_running() {
            // What a decision about a PostgreSQL that is down needs: how it last ran and how it stopped.
            local.role = pg_role(pg.role());
            local.recovery_configured = pg.recovery_configured();
            // Only a crash decision reads it (start again as primary?): no pg_controldata every loop while stopped.
            if local.data_dir != DataDir::Empty && matches!(local.process, Process::Crashed { .. }) {
                local.control_state = pg.controldata().await.ok().map(|cd| control_state(&cd.cluster_state));
            }
        } else {
            match pg.cluster_info().await {
                Ok(info) => {
                    self.probe.set_params(pg.local_conn_params());
                    local.process = Process::Running;
                    local.role = match (info.in_recovery, pg.role()) {
                        (false, _) => PgRole::Primary,
                        (true, PgRole_::StandbyLeader) => PgRole::StandbyLeader,
                        (true, _) => PgRole::Replica,
                    };
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
                            write_lsn: r.write_lsn.map(|l| l.0),
                            replay_lsn: r.replay_lsn.map(|l| l.0),
                        })
                        .collect();
                    local.following = self.following.lock().ok().and_then(|f| f.clone());
                    local.sync_standby_names = sync_standby_names(&info.synchronous_standby_names);
                    details.receive_lsn = info.received_lsn.map(|l| l.0);
                    details.replay_lsn = info.replayed_lsn.map(|l| l.0);
                    details.replication_state = match (&info.wal_receiver, info.in_recovery) {
                        (Some(w), true) if w.status == "streaming" => Some("streaming".to_owned()),
                        (_, true) => Some("in archive recovery".to_owned()),
                        (_, false) => None,
                    };
                    details.latest_end_lsn = info.wal_receiver.as_ref().and_then(|w| w.latest_end_lsn).map(|l| l.0);
                    details.replication = info.replication.clone();
                    if let Ok(mut started) = self.started.lock() {
                        *started = Some(info.postmaster_start_time);
                    }
                    details.pending_restart_reason = self.pending_reason(info.postmaster_start_time);
                    if info.pending_restart && details.pending_restart_reason.is_empty() {
                        // Flagged by PostgreSQL before we changed anything (an agent restarted under it, or files
                        // edited by hand): ask which settings, once.
                        details.pending_restart_reason = self.learn_pending(pg, info.postmaster_start_time).await;
                    }
                    details.pending_restart = info.pending_restart || !details.pending_restart_reason.is_empty();
                    details.server_version = Some(info.server_version);
                    details.postmaster_start_time = Some(info.postmaster_start_time);
                    details.replay_paused = info.replay_paused;
                    details.replayed_timestamp = info.replay_timestamp;
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

    async fn configure(&self, config: &Config, dynamic: &DynamicConfig) -> NodeResult<()> {
        if let Ok(mut c) = self.config.lock() {
            *c = config.clone();
        }
        let wanted = pg_settings(config, dynamic, &self.name)?;
        let mut pg = self.pg.lock().await;
        let outcome = pg.update_config(wanted.parameters, wanted.pg_hba, wanted.pg_ident).await.map_err(err)?;
        if !outcome.pending_restart.is_empty() {
            let names: Vec<&str> = outcome.pending_restart.iter().map(|p| p.name.as_str()).collect();
            info!("PostgreSQL needs a restart for: {}", names.join(", "));
        }
        // Recomputed from what PostgreSQL reports after every change, as Patroni does on each reload.
        let reason = restart_reason(&outcome.pending_restart);
        let started = self.started.lock().ok().and_then(|s| *s);
        if let Ok(mut pending) = self.pending.lock() {
            *pending = (started, reason);
        }
        Ok(())
    }

    async fn create_replica(&self, from: Option<&Upstream>) -> NodeResult<()> {
        let source = from.map(Self::upstream_params).transpose()?;
        let mut pg = self.pg.lock().await;
        self.set_sysid(None);
        let method = pg.create_replica(source.as_ref(), false).await.map_err(err)?;
        info!("replica created with {method}, starting it");
        let recovery = pg.follow_settings(source.as_ref());
        pg.start(Some(recovery)).await.map_err(err)?;
        self.set_following(from);
        Ok(())
    }

    async fn start_primary(&self) -> NodeResult<()> {
        let mut pg = self.pg.lock().await;
        if pg.crashed().is_some() {
            tokio::time::sleep(RESTART_AFTER_CRASH_DELAY).await;
        }
        pg.start(None).await.map_err(err)?;
        self.set_following(None);
        Ok(())
    }

    async fn mark_demoted(&self) {
        self.pg.lock().await.mark_demoted();
    }

    async fn start_replica(&self, upstream: Option<&Upstream>) -> NodeResult<()> {
        let source = upstream.map(Self::upstream_params).transpose()?;
        let mut pg = self.pg.lock().await;
        if pg.crashed().is_some() {
            tokio::time::sleep(RESTART_AFTER_CRASH_DELAY).await;
        }
        let recovery = pg.follow_settings(source.as_ref());
        pg.start(Some(recovery)).await.map_err(err)?;
        self.set_following(upstream);
        Ok(())
    }

    async fn follow(&self, upstream: Option<&Upstream>) -> NodeResult<()> {
        let source = upstream.map(Self::upstream_params).transpose()?;
        let mut pg = self.pg.lock().await;
        pg.follow(source.as_ref()).await.map_err(err)?;
        self.set_following(upstream);
        Ok(())
    }

    async fn promote(&self) -> NodeResult<()> {
        let mut pg = self.pg.lock().await;
        pg.promote().await.map_err(err)?;
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

    async fn check_divergence(&self, against: &HistorySource) -> patroni_ha::Divergence {
        let params = match Self::history_params(against) {
            Ok(params) => params,
            Err(e) => {
                info!("cannot compare our history: {e}");
                return patroni_ha::Divergence::Unknown;
            }
        };
        let pg = self.pg.lock().await;
        match pg.check_divergence(&params).await {
            Ok(patroni_postgres::Divergence::NotDiverged) => patroni_ha::Divergence::NotDiverged,
            Ok(patroni_postgres::Divergence::Diverged { .. }) => {
                let rewind_possible = match pg.rewind_possible().await {
                    Ok(possible) => possible,
                    Err(e) => {
                        warn!("cannot read pg_control: {e}");
                        false
                    }
                };
                patroni_ha::Divergence::Diverged { rewind_possible }
            }
            Err(e) => {
                warn!("could not check for diverged timelines: {e}");
                patroni_ha::Divergence::Unknown
            }
        }
    }

    async fn rewind(&self, from: &HistorySource) -> NodeResult<()> {
        let params = Self::history_params(from)?;
        {
            let mut pg = self.pg.lock().await;
            if pg.is_running() {
                pg.stop(StopMode::Fast).await.map_err(err)?;
            }
            pg.rewind(&params).await.map_err(err)?;
        }
        match from {
            HistorySource::Member(up) => self.start_replica(Some(up)).await,
            HistorySource::Remote(remote) => self.follow_remote(remote).await,
        }
    }

    async fn reinitialize(&self, from: &Upstream) -> NodeResult<()> {
        {
            let mut pg = self.pg.lock().await;
            if pg.is_running() {
                pg.stop(StopMode::Immediate).await.map_err(err)?;
            }
            pg.move_data_directory_aside().map_err(err)?;
        }
        self.create_replica(Some(from)).await
    }

    async fn set_sync_standbys(&self, names: &[String], num: Option<usize>, any: bool) -> NodeResult<()> {
        let value = patroni_postgres::sync_names::format(names, num, any);
        let mut pg = self.pg.lock().await;
        pg.set_synchronous_standby_names(value).await.map_err(err)
    }

    async fn timeline_history(&self) -> NodeResult<Vec<HistoryLine>> {
        let pg = self.pg.lock().await;
        Ok(pg
            .timeline_history()
            .await
            .map_err(err)?
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
        self.create_slots(members, true).await
    }

    async fn bootstrap_standby(&self, remote: &RemotePrimary) -> NodeResult<()> {
        let source = remote.conn_params();
        let mut pg = self.pg.lock().await;
        self.set_sysid(None);
        let method = pg.create_replica_using(source.as_ref(), &remote.create_replica_methods).await.map_err(err)?;
        info!("bootstrapped clone from remote member with {method}");
        let recovery = pg.standby_leader_settings(remote);
        pg.run_in_recovery_as(recovery, PgRole_::StandbyLeader).await.map_err(err)?;
        self.set_following(None);
        Ok(())
    }

    async fn follow_remote(&self, remote: &RemotePrimary) -> NodeResult<()> {
        let mut pg = self.pg.lock().await;
        if pg.crashed().is_some() {
            tokio::time::sleep(RESTART_AFTER_CRASH_DELAY).await;
        }
        let recovery = pg.standby_leader_settings(remote);
        pg.run_in_recovery_as(recovery, PgRole_::StandbyLeader).await.map_err(err)?;
        self.set_following(None);
        Ok(())
    }

    async fn demote_cluster(&self, remote: &RemotePrimary) -> NodeResult<Option<u64>> {
        let lsn = {
            let mut pg = self.pg.lock().await;
            if pg.is_running() {
                pg.stop(StopMode::Fast).await.map_err(err)?;
            }
            if let Err(e) = pg.archive_shutdown_checkpoint_wal().await {
                warn!("failed to archive the WAL file with the shutdown checkpoint: {e}");
            }
            pg.controldata().await.ok().map(|cd| cd.checkpoint_location.0)
        };
        self.follow_remote(remote).await?;
        Ok(lsn)
    }

    async fn prepare_slots(&self, members: &[String]) -> NodeResult<()> {
        self.create_slots(members, false).await
    }

    async fn observe_slots(&self) -> NodeResult<Option<crate::slots::SlotObservation>> {
        crate::pg_slots::observe(self).await
    }

    async fn run_slot_plan(&self, plan: &patroni_ha::slots::SlotPlan) {
        crate::pg_slots::run_plan(self, plan).await
    }

    async fn copy_logical_slots(
        &self,
        from: &Upstream,
        names: &[String],
        wanted: &[(String, patroni_ha::slots::SlotKind)],
    ) -> NodeResult<()> {
        crate::pg_slots::copy_logical(self, from, names, wanted).await
    }
}

/// `synchronous_standby_names` for the HA core; a value we cannot read counts as empty, as in Patroni.
fn sync_standby_names(value: &str) -> patroni_ha::SyncStandbyNames {
    match patroni_postgres::sync_names::parse(value) {
        Ok(p) => patroni_ha::SyncStandbyNames { any: p.any, num: p.num, names: p.names, star: p.star },
        Err(e) => {
            warn!("{e}");
            patroni_ha::SyncStandbyNames::default()
        }
    }
}
