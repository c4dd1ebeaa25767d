//! The HA loop: observe, ask the core, carry out its plan, publish, sleep until something happens.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use patroni_api::{NodeStatus, PatroniInfo};
use patroni_config::{Config, DynamicConfig};
use patroni_dcs::{Cluster, Dcs};
use patroni_ha::{Busy, Ha, LocalState, LogLevel, Observation, Outcome, PeerStatus, Plan, Settings, Time};
use serde_json::{Map, Value};
use std::path::PathBuf;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::core_view::cluster_view;
use crate::executor::changes_view;
use crate::member::{member_data, Addresses, LocalDetails};
use crate::node::{Node, NodeError, Stop};
use crate::rest_control::Request;
use crate::settings::ha_settings;

/// What the loop publishes after every cycle, for the REST API and for tests.
#[derive(Clone, Debug, Default)]
pub struct Published {
    pub local: LocalState,
    pub details: LocalDetails,
    pub cluster: Option<Arc<Cluster>>,
    pub status: String,
    pub dynamic: DynamicConfig,
    /// Unix seconds of the last successful DCS read.
    pub dcs_last_seen: i64,
    /// When the loop last completed a cycle (for `/liveness`).
    pub heartbeat: Option<SystemTime>,
    pub is_leader: bool,
    /// Failsafe mode is what keeps things going: we run as primary on our members' confirmations, or a leader
    /// asked us to confirm it less than a ttl ago (`failsafe_mode_is_active`).
    pub failsafe_active: bool,
    /// A `required` watchdog is not usable (`watchdog_failed` of `/patroni`).
    pub watchdog_failed: bool,
}

/// Why the loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum Exit {
    #[error("{0}")]
    Fatal(String),
}

/// Answers owed to the REST API once the current cycle has been published.
type RestartReply = tokio::sync::oneshot::Sender<(bool, String)>;

pub(crate) struct LongAction {
    pub(crate) busy: Busy,
    pub(crate) handle: JoinHandle<Result<(), NodeError>>,
    /// Set by the action itself as it ends, just before it wakes the loop: the woken cycle must see it over even
    /// though the task is not yet marked finished (or it reports the action in progress for another second).
    pub(crate) ended: Arc<std::sync::atomic::AtomicBool>,
}

pub struct Runtime<N: Node> {
    pub(crate) name: String,
    pub(crate) config: Config,
    pub(crate) dcs: Arc<dyn Dcs>,
    pub(crate) node: Arc<N>,
    pub(crate) ha: Ha,
    pub(crate) long: Option<LongAction>,
    pub(crate) last_failure: Option<Busy>,
    pub(crate) dynamic: DynamicConfig,
    pub(crate) addresses: Addresses,
    /// Woken by the REST API, the end of a long action or a signal.
    pub(crate) wake: Arc<Notify>,
    /// The last `POST /failsafe` we accepted (leader name, unix millis), written by the REST API.
    pub(crate) failsafe_heartbeat: crate::rest_control::SharedHeartbeat,
    /// Every failsafe member confirmed us after the DCS became unreachable (cleared by a DCS read or a refusal).
    pub(crate) failsafe_confirmed: bool,
    /// A DCS call of this cycle went unanswered: the cycle's other writes (status, member key) are skipped, as
    /// Patroni's cycle ends at its first DCS error, so a hung DCS costs one retry_timeout per cycle, not three.
    pub(crate) dcs_unanswered: bool,
    pub(crate) http: reqwest::Client,
    pub(crate) publish: watch::Sender<Published>,
    /// `failsafe` as last read: member name → api_url, for checks while the DCS is down.
    pub(crate) failsafe: Map<String, Value>,
    pub(crate) dcs_last_seen: i64,
    pub(crate) requests: Option<mpsc::Receiver<Request>>,
    pub(crate) api: Option<ApiPublisher>,
    /// Where the configuration came from, for SIGHUP / `POST /reload`.
    pub(crate) config_path: Option<PathBuf>,
    /// The caller of a running restart, answered when it ends.
    pub(crate) restart_reply: Option<RestartReply>,
    /// Answers ready to go out after the next publish.
    pub(crate) due_replies: Vec<(RestartReply, (bool, String))>,
    /// `patroni.dynamic.json`, rewritten when the DCS `config` key changes.
    pub(crate) dynamic_cache: Option<crate::dynamic_cache::DynamicCache>,
    /// Slot state between loops (retained member slots, the last slot observation).
    pub(crate) slots: crate::slots::SlotKeeper,
    /// The dynamic configuration has been handed to the node at least once.
    pub(crate) dynamic_applied: bool,
    /// The watchdog device and the guardian: armed while leading, kept alive after each leader-key refresh.
    pub(crate) watchdog: Option<crate::watchdog::Watchdog>,
}

/// Publishes each cycle's state to the REST API.
pub struct ApiPublisher {
    pub tx: watch::Sender<Arc<NodeStatus>>,
    pub info: PatroniInfo,
    pub schedule: crate::rest_control::SharedSchedule,
}

pub(crate) fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub(crate) fn millis(d: patroni_ha::Millis) -> Duration {
    Duration::from_millis(d.0)
}

impl<N: Node> Runtime<N> {
    pub fn new(
        name: String,
        config: Config,
        dcs: Arc<dyn Dcs>,
        node: Arc<N>,
        addresses: Addresses,
        http: reqwest::Client,
    ) -> (Runtime<N>, watch::Receiver<Published>) {
        let dynamic = config.bootstrap_dcs();
        let (publish, rx) = watch::channel(Published::default());
        let rt = Runtime {
            name,
            config,
            dcs,
            node,
            ha: Ha::new(),
            long: None,
            last_failure: None,
            dynamic,
            addresses,
            wake: Arc::new(Notify::new()),
            failsafe_heartbeat: crate::rest_control::SharedHeartbeat::default(),
            failsafe_confirmed: false,
            dcs_unanswered: false,
            http,
            publish,
            failsafe: Map::new(),
            dcs_last_seen: 0,
            requests: None,
            api: None,
            config_path: None,
            restart_reply: None,
            due_replies: Vec::new(),
            dynamic_cache: None,
            slots: crate::slots::SlotKeeper::default(),
            dynamic_applied: false,
            watchdog: None,
        };
        (rt, rx)
    }

    /// Serve the REST API from this loop: its requests come in on `requests`, its snapshots go out via `api`.
    pub fn with_api(mut self, requests: mpsc::Receiver<Request>, api: ApiPublisher) -> Self {
        self.requests = Some(requests);
        self.api = Some(api);
        self
    }

    /// Keep `patroni.dynamic.json` up to date; the configuration it held at start is the effective one until
    /// the DCS says otherwise.
    pub fn with_dynamic_cache(mut self, cache: crate::dynamic_cache::DynamicCache) -> Self {
        if let Some(initial) = cache.initial() {
            self.dynamic = initial;
        }
        self.dynamic_cache = Some(cache);
        self
    }

    /// Arm a watchdog (or the guardian) while leading, as the HA core asks.
    pub fn with_watchdog(mut self, watchdog: crate::watchdog::Watchdog) -> Self {
        self.watchdog = Some(watchdog);
        self
    }

    /// The configuration file or directory to re-read on reload.
    pub fn with_config_path(mut self, path: Option<PathBuf>) -> Self {
        self.config_path = path;
        self
    }

    /// Wakes the loop before `loop_wait` ends (REST requests, signals).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Where the REST API records the failsafe heartbeats it accepts, for the core to honour.
    pub fn failsafe_heartbeat(&self) -> crate::rest_control::SharedHeartbeat {
        self.failsafe_heartbeat.clone()
    }

    fn settings(&self) -> Settings {
        ha_settings(&self.name, &self.config, &self.dynamic)
    }

    /// Runs until `shutdown` turns true, then stops gracefully.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), Exit> {
        let crash = self.node.crash_notify();
        loop {
            let started = tokio::time::Instant::now();
            let (plan, leader_version) = self.cycle().await?;
            let settings = self.settings();
            let mut sleep = millis(settings.loop_wait).saturating_sub(started.elapsed());
            if let Some(at) = plan.wake_at {
                let until = Duration::from_millis(u64::try_from(at.0 - now_millis()).unwrap_or(0));
                sleep = sleep.min(until);
            }
            if self.long.is_some() || self.awaiting_stream() {
                // Keep an eye on long actions (their end changes what to do next) and on a freshly started replica
                // (HAProxy's `/replica` check and peers should see it streaming within a second, not a loop).
                sleep = sleep.min(Duration::from_secs(1));
            }
            let dcs = self.dcs.clone();
            tokio::select! {
                _ = dcs.watch(leader_version, sleep) => {}
                _ = self.wake.notified() => {}
                _ = crash.notified() => { info!("postmaster exited, acting at once"); }
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                self.shutdown().await;
                return Ok(());
            }
        }
    }

    /// A replica whose PostgreSQL started less than a minute ago and does not stream yet: the one state where the
    /// next observation is likely to differ soon (a replica that cannot stream for longer goes back to loop_wait).
    fn awaiting_stream(&self) -> bool {
        let published = self.publish.borrow();
        let (local, details) = (&published.local, &published.details);
        let young =
            details.postmaster_start_time.is_some_and(|t| chrono::Utc::now() - t < chrono::TimeDelta::seconds(60));
        local.role == patroni_ha::PgRole::Replica
            && local.process.is_running()
            && details.replication_state.as_deref() != Some("streaming")
            && young
    }

    /// One HA cycle. Returns the last plan and the leader key version to watch.
    async fn cycle(&mut self) -> Result<(Plan, Option<i64>), Exit> {
        self.reap_long().await;
        self.handle_requests().await;
        self.dcs_unanswered = false;
        let mut cluster = self.read_cluster().await;
        let settings = self.settings();
        let (mut local, mut details) = self.observe().await;
        // Peers racing for a free leader key read our WAL position from the REST API right now: publish it
        // before deciding anything, so their comparison is not a whole loop stale.
        let status = self.publish.borrow().status.clone();
        self.publish_state(local.clone(), details.clone(), cluster.clone().map(Arc::new), status);
        let mut outcomes = Vec::new();
        let mut peers: Option<Vec<PeerStatus>> = None;
        let mut plan: Plan;
        let mut rounds = patroni_ha::rounds::Rounds::new();
        // Whether this cycle wrote keys the published view shows (sync, failover, history…) after last reading them.
        let mut view_stale = false;
        loop {
            let obs = Observation {
                now: Time(now_millis()),
                cluster: cluster.as_ref().map(cluster_view),
                local: local.clone(),
                peers: peers.take(),
                outcomes: std::mem::take(&mut outcomes),
                failsafe_heartbeat: self.last_heartbeat().map(|(leader, at)| (leader, Time(at))),
                scheduled_restart: self.scheduled_restart_at(),
            };
            plan = self.ha.step(&settings, &obs);
            for (level, line) in &plan.log {
                match level {
                    LogLevel::Info => info!("{line}"),
                    LogLevel::Warning => warn!("{line}"),
                }
            }
            if rounds.round() > 0 {
                // A round after a race or a bootstrap sees keys this cycle wrote (our new leader key): the REST
                // API shows them now, as Patroni's does the moment it holds the lock, not at the end of the cycle.
                self.publish_state(local.clone(), details.clone(), cluster.clone().map(Arc::new), plan.status.clone());
            }
            let result = self.execute(&plan, cluster.as_ref(), &settings).await?;
            view_stale |= plan.actions.iter().any(changes_view);
            outcomes = result.outcomes;
            peers = result.peers;
            let reread = match rounds.after(&plan, &outcomes) {
                patroni_ha::rounds::Next::Sleep => break,
                patroni_ha::rounds::Next::Again { reread } => reread,
            };
            debug!("{}", plan.status);
            if reread {
                cluster = self.read_cluster().await;
                view_stale = false;
            } else if result.refresh_unreachable {
                self.dcs_unanswered = true;
                // As in Patroni, a refresh the DCS did not answer is the DCS being down, decided as if the read had
                // failed (failsafe mode applies), not as a key someone else took.
                outcomes.retain(|o| *o != Outcome::LeaderRefresh { ok: false });
                cluster = None;
            }
            (local, details) = self.observe().await;
        }
        if crate::standby::role_changed_inline(&plan, &local) {
            // The role is published as it is now (Patroni sets it the moment it changes), not a loop later.
            (local, details) = self.observe().await;
        }
        crate::logging::heartbeat(&plan.status);
        // Member, permanent and logical slots, as the slot plan of `patroni_ha::slots` says.
        self.sync_slots(cluster.as_ref(), &local).await;
        if cluster.is_some() && !self.dcs_unanswered {
            let tags = self.config.tags.to_value().as_object().cloned().unwrap_or_default();
            let mut data = member_data(&local, &details, &self.addresses, tags, settings.pause);
            data.scheduled_restart = self.scheduled_restart_json();
            if let Err(e) = self.dcs.touch_member(&data).await {
                self.dcs_unanswered |= e.is_unreachable();
                warn!("failed to update member key: {e}");
            }
        }
        if view_stale && cluster.is_some() && !self.dcs_unanswered {
            // The REST API serves this view (`/cluster`, sync roles, the scheduled switchover) until the next cycle,
            // a whole loop_wait away when nothing wakes us: show what we just wrote, as Patroni's fresh read does.
            if let Some(fresh) = self.read_cluster().await {
                cluster = Some(fresh);
            }
        }
        let leader_version = cluster.as_ref().and_then(|c| c.leader.as_ref()).map(|l| l.version);
        self.publish_state(local, details, cluster.map(Arc::new), plan.status.clone());
        for (reply, answer) in self.due_replies.drain(..) {
            let _ = reply.send(answer);
        }
        Ok((plan, leader_version))
    }

    /// Every member of `cluster` but us: whose replication slots we keep as primary.
    pub(crate) fn other_members(&self, cluster: Option<&Cluster>) -> Vec<String> {
        cluster
            .map(|c| c.members.iter().filter(|m| m.name != self.name).map(|m| m.name.clone()).collect())
            .unwrap_or_default()
    }

    /// The last failsafe heartbeat the REST API accepted: from whom, and when (unix millis).
    pub(crate) fn last_heartbeat(&self) -> Option<(String, i64)> {
        self.failsafe_heartbeat.lock().ok().and_then(|h| h.clone())
    }

    /// `member`'s REST URL as the `failsafe` key last listed it.
    pub(crate) fn failsafe_url(&self, member: &str) -> Option<String> {
        self.failsafe.get(member).and_then(Value::as_str).map(str::to_owned)
    }

    /// When the scheduled restart is due, for the core.
    fn scheduled_restart_at(&self) -> Option<Time> {
        let api = self.api.as_ref()?;
        let at = api.schedule.lock().ok()?.as_ref()?.shown.schedule;
        Some(Time(at.timestamp_millis()))
    }

    /// Takes the scheduled restart out of the schedule (it is due, or stale).
    pub(crate) fn take_scheduled_restart(&self) -> Option<crate::rest_control::PendingRestart> {
        self.api.as_ref()?.schedule.lock().ok()?.take()
    }

    /// `scheduled_restart` of the member key, as Patroni writes it (the request's keys, then `schedule`).
    fn scheduled_restart_json(&self) -> Option<Value> {
        let api = self.api.as_ref()?;
        let sr = api.schedule.lock().ok()?.clone()?.shown;
        let mut m = sr.conditions.clone();
        m.insert("schedule".into(), Value::from(patroni_pycompat::isoformat(&sr.schedule)));
        Some(Value::Object(m))
    }

    fn publish_state(&self, local: LocalState, details: LocalDetails, cluster: Option<Arc<Cluster>>, status: String) {
        let ttl = i64::try_from(self.settings().ttl.0).unwrap_or(i64::MAX);
        let confirming = self.last_heartbeat().is_some_and(|(_, at)| now_millis() - at < ttl);
        let failsafe_active = self.dynamic.failsafe_mode() && (self.failsafe_confirmed || confirming);
        let published = Published {
            failsafe_active,
            local,
            details,
            is_leader: self.ha.holds_lock(),
            cluster,
            status,
            dynamic: self.dynamic.clone(),
            dcs_last_seen: self.dcs_last_seen,
            heartbeat: Some(SystemTime::now()),
            watchdog_failed: self.watchdog.as_ref().is_some_and(|w| w.failed()),
        };
        if let Some(api) = &self.api {
            let tags = self.config.tags.to_value().as_object().cloned().unwrap_or_default();
            let mut status = crate::rest_status::node_status(&published, &api.info, &tags);
            status.scheduled_restart = api.schedule.lock().ok().and_then(|s| s.as_ref().map(|p| p.shown.clone()));
            api.tx.send_replace(Arc::new(status));
        }
        self.publish.send_replace(published);
    }

    async fn read_cluster(&mut self) -> Option<Cluster> {
        let retry = self.dcs.retry_timeout() + Duration::from_secs(1);
        match tokio::time::timeout(retry, self.dcs.get_cluster()).await {
            Ok(Ok(c)) => {
                self.dcs_last_seen = now_millis() / 1000;
                self.failsafe_confirmed = false;
                for p in &c.problems {
                    warn!("unexpected content in the DCS key {}: {}", p.key, p.message);
                }
                if let Some(f) = &c.failsafe {
                    self.failsafe = f.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
                }
                self.apply_dynamic(&c).await;
                Some(c)
            }
            Ok(Err(e)) => {
                self.dcs_unanswered |= e.is_unreachable();
                error!("Error communicating with DCS: {e}");
                None
            }
            Err(_) => {
                self.dcs_unanswered = true;
                error!("Error communicating with DCS: no answer within retry_timeout");
                None
            }
        }
    }

    /// A changed `config` key takes effect at once: timeouts on the DCS client, parameters on PostgreSQL.
    async fn apply_dynamic(&mut self, c: &Cluster) {
        let Some(cfg) = &c.config else { return };
        if let Some(cache) = &mut self.dynamic_cache {
            cache.store(&cfg.data);
        }
        let (dynamic, problems) = DynamicConfig::from_value_lossy(&Value::Object(cfg.data.clone()));
        for p in problems {
            warn!("config key: {p:?}");
        }
        // The configuration cached at start (patroni.dynamic.json) is `self.dynamic` before PostgreSQL ever got
        // it: the first DCS read applies it even when it equals the cache.
        if dynamic == self.dynamic && self.dynamic_applied {
            return;
        }
        self.dynamic_applied = true;
        let t = dynamic.timeouts();
        self.dcs.set_ttl(Duration::from_secs(u64::try_from(t.ttl).unwrap_or(30)));
        self.dcs.set_retry_timeout(Duration::from_secs(u64::try_from(t.retry_timeout).unwrap_or(10)));
        if let Err(e) = self.node.configure(&self.config, &dynamic).await {
            warn!("failed to apply the dynamic configuration to PostgreSQL: {e}");
        }
        self.dynamic = dynamic;
    }

    async fn observe(&self) -> (LocalState, LocalDetails) {
        let (mut local, details) = self.node.observe().await;
        local.busy = self.long.as_ref().map(|l| l.busy.clone());
        local.last_failure = self.last_failure.clone();
        local.watchdog = self.watchdog.as_ref().map(|w| w.state()).unwrap_or_default();
        (local, details)
    }

    /// Carries out what the REST API asked for since the last cycle.
    async fn handle_requests(&mut self) {
        let Some(rx) = self.requests.as_mut() else { return };
        let mut pending = Vec::new();
        while let Ok(r) = rx.try_recv() {
            pending.push(r);
        }
        for r in pending {
            match r {
                Request::Reload => self.reload_config().await,
                Request::Restart { req, reply } => {
                    if self.long.is_some() {
                        let _ = reply.send((false, "restart failed: another action is in progress".into()));
                        continue;
                    }
                    let _ = req;
                    let node = self.node.clone();
                    self.spawn_long(Busy::Restarting, async move { node.restart().await });
                    // Answered once the restart is over and published, so a caller that then reads `/patroni`
                    // (patronictl, a switchover) sees the member running again.
                    self.restart_reply = Some(reply);
                }
                Request::Reinitialize { req, reply } => {
                    let cluster = self.read_cluster().await;
                    let settings = self.settings();
                    let view = cluster.as_ref().map(cluster_view);
                    let busy = self.long.as_ref().map(|l| &l.busy);
                    let action = match self.ha.reinitialize_request(&settings, view.as_ref(), busy, req.force) {
                        Ok(action) => action,
                        Err(why) => {
                            let _ = reply.send(Err(why));
                            continue;
                        }
                    };
                    if let Some(running) = self.long.take() {
                        // `force`: what runs is interrupted, as Patroni cancels its async action.
                        info!("interrupting {} to reinitialize", running.busy.action_text());
                        running.handle.abort();
                        let _ = running.handle.await;
                    }
                    let mut done = crate::executor::Executed::default();
                    match self.execute_one(&action, cluster.as_ref(), &settings, &mut done).await {
                        Ok(()) => {
                            let _ = reply.send(Ok(()));
                        }
                        Err(crate::executor::Failure::Failed(why) | crate::executor::Failure::Fatal(why)) => {
                            let _ = reply.send(Err(why));
                        }
                    }
                }
            }
        }
    }

    /// SIGHUP / `POST /reload`: read the configuration again and apply what changed.
    async fn reload_config(&mut self) {
        let env = patroni_config::process_env();
        match patroni_config::load(self.config_path.as_deref(), &env) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    warn!("{w}");
                }
                // As Patroni, re-checked whenever the local configuration changed.
                if loaded.config != self.config {
                    for w in loaded.config.tags.conflicts() {
                        warn!("{w}");
                    }
                }
                self.config = loaded.config;
                if let Some(w) = &mut self.watchdog {
                    w.reload(&self.config);
                }
                if let Err(e) = self.node.configure(&self.config, &self.dynamic).await {
                    warn!("failed to apply the reloaded configuration: {e}");
                }
                info!("Reloaded configuration");
            }
            Err(e) => error!("configuration not reloaded, it is invalid: {e}"),
        }
    }

    /// SIGTERM: stop PostgreSQL with a checkpoint and hand the leader key over at once, unless paused.
    async fn shutdown(&mut self) {
        let settings = self.settings();
        if let Some(long) = self.long.take() {
            info!("waiting for {} to finish before shutting down", long.busy.action_text());
            let _ = tokio::time::timeout(Duration::from_secs(30), long.handle).await;
        }
        let plan = self.ha.shutdown(&settings);
        if !plan.stop_postgres {
            if let Some(line) = plan.log {
                info!("{line}");
            }
            if let Some(w) = &mut self.watchdog {
                w.disarm();
            }
            return;
        }
        // Peers racing for the key we are about to release ask our REST API: it must not still say "running
        // primary", or they wait a whole loop for a member that is going away. (They read each other's WAL
        // positions fresh from PostgreSQL, so racing at once compares the final positions, not snapshots.)
        let (mut local, details) = self.observe().await;
        local.busy = Some(patroni_ha::Busy::Stopping);
        let cluster = self.publish.borrow().cluster.clone();
        self.publish_state(local, details, cluster, "shutting down".into());
        let lsn = match self.node.stop(Stop::FastWithCheckpoint).await {
            Ok(lsn) => lsn,
            Err(e) => {
                let running = self.watchdog.as_ref().is_some_and(|w| w.state().active);
                let leaving = if running { " Leaving watchdog running." } else { "" };
                error!("failed to stop PostgreSQL: {e}");
                error!("PostgreSQL shutdown failed, leader key not removed.{leaving}");
                return;
            }
        };
        // PostgreSQL is down: nothing left for a watchdog or the guardian to stop.
        if let Some(w) = &mut self.watchdog {
            w.disarm();
        }
        if plan.release_key {
            if let Ok(c) = self.dcs.get_cluster().await {
                if let Some(leader) = c.leader.as_ref().filter(|l| l.name == self.name) {
                    match self.dcs.delete_leader(leader, lsn).await {
                        Ok(()) => info!("Leader key released"),
                        Err(e) => warn!("failed to release the leader key: {e}"),
                    }
                }
            }
        }
        let (local, details) = self.observe().await;
        let tags = self.config.tags.to_value().as_object().cloned().unwrap_or_default();
        let _ = self.dcs.touch_member(&member_data(&local, &details, &self.addresses, tags, false)).await;
    }
}
