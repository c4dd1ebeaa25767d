//! The agent's side of the REST API's control endpoints.
//!
//! DCS writes (switchover, config) happen here directly, as in Patroni; anything that touches PostgreSQL goes to
//! the HA loop as a [`Request`], so it never races the loop's own actions.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use patroni_api::{
    await_failover, failover_wait, CancelSwitchover, Control, ControlError, FailoverOutcome, FailoverPlan,
    FailsafeReply, NodeStatus, ReinitializeRequest, RestartRequest, VersionedConfig,
};
use patroni_dcs::{Dcs, DcsError};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, watch, Notify};

/// Work the REST API hands to the HA loop.
#[derive(Debug)]
pub enum Request {
    Restart {
        req: RestartRequest,
        reply: oneshot::Sender<(bool, String)>,
    },
    Reinitialize {
        req: ReinitializeRequest,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Re-read the configuration (`POST /reload`, SIGHUP).
    Reload,
}

/// The restart scheduled through the REST API: what `/patroni` and the member key show, and the request whose
/// conditions are checked when it is due.
#[derive(Clone, Debug)]
pub struct PendingRestart {
    pub shown: patroni_api::ScheduledRestart,
    pub req: RestartRequest,
}

/// The scheduled restart, shared with the loop: the HA core decides when it is due (`Action::ScheduledRestart`).
pub type SharedSchedule = Arc<Mutex<Option<PendingRestart>>>;

/// The last failsafe heartbeat this member accepted: the leader's name and when (unix millis).
pub type SharedHeartbeat = Arc<Mutex<Option<(String, i64)>>>;

/// The slot positions the leader sent with its last failsafe heartbeat (`slots` of `POST /failsafe`): what a
/// replica advances its slots to while the DCS is down.
pub type SharedLeaderSlots = Arc<Mutex<Option<Vec<(String, u64)>>>>;

pub struct AgentControl {
    pub dcs: Arc<dyn Dcs>,
    pub wake: Arc<Notify>,
    pub requests: mpsc::Sender<Request>,
    pub status: watch::Receiver<Arc<NodeStatus>>,
    pub http: reqwest::Client,
    /// The scheduled restart, if any.
    pub schedule: SharedSchedule,
    /// Fresh WAL positions for `GET /patroni` (None: the snapshot's).
    pub probe: Option<Arc<crate::probe::WalProbe>>,
    /// Shared with the loop: whom we confirmed in failsafe mode, and when.
    pub failsafe_heartbeat: SharedHeartbeat,
    /// Where that heartbeat is kept across restarts (None: no data directory configured).
    pub heartbeat_file: Option<crate::failsafe_memory::HeartbeatFile>,
    pub failsafe_slots: SharedLeaderSlots,
}

impl AgentControl {
    pub fn new(
        dcs: Arc<dyn Dcs>,
        wake: Arc<Notify>,
        requests: mpsc::Sender<Request>,
        status: watch::Receiver<Arc<NodeStatus>>,
        http: reqwest::Client,
    ) -> AgentControl {
        AgentControl {
            dcs,
            wake,
            requests,
            status,
            http,
            schedule: SharedSchedule::default(),
            probe: None,
            failsafe_heartbeat: SharedHeartbeat::default(),
            heartbeat_file: None,
            failsafe_slots: SharedLeaderSlots::default(),
        }
    }

    /// Records a scheduled restart for the loop; `false` when one is already pending.
    fn arm_restart(&self, at: chrono::DateTime<chrono::FixedOffset>, req: RestartRequest) -> bool {
        let Ok(mut slot) = self.schedule.lock() else { return false };
        if slot.is_some() {
            return false;
        }
        let shown = patroni_api::ScheduledRestart { schedule: at, conditions: req.raw.clone() };
        *slot = Some(PendingRestart { shown, req });
        true
    }

    /// Cancels a pending scheduled restart; `false` when there is none.
    fn disarm_restart(&self) -> bool {
        self.schedule.lock().ok().and_then(|mut s| s.take()).is_some()
    }

    /// Wakes the loop and waits (bounded) until `/patroni` shows `want` as its scheduled restart: Patroni answers
    /// after the schedule is in place, so a client reading `/patroni` right after its 202 must see it.
    async fn show_schedule(&self, want: Option<chrono::DateTime<chrono::FixedOffset>>) {
        let mut rx = self.status.clone();
        self.wake.notify_one();
        let shown = rx.wait_for(|s| s.scheduled_restart.as_ref().map(|r| r.schedule) == want);
        let _ = tokio::time::timeout(Duration::from_secs(5), shown).await;
    }

    async fn send(&self, r: Request) -> bool {
        let sent = self.requests.send(r).await.is_ok();
        self.wake.notify_one();
        sent
    }
}

#[async_trait]
impl Control for AgentControl {
    async fn wakeup(&self) {
        self.wake.notify_one();
        self.dcs.wakeup();
    }

    async fn fresh_xlog(&self) -> Option<patroni_api::status::Xlog> {
        self.probe.as_ref()?.xlog().await
    }

    async fn reload(&self) {
        self.send(Request::Reload).await;
    }

    async fn restart(&self, req: RestartRequest) -> Result<(bool, String), ControlError> {
        if !req.conditions_met(&self.status.borrow()) {
            return Ok((false, "restart conditions are not satisfied".into()));
        }
        let (reply, rx) = oneshot::channel();
        if !self.send(Request::Restart { req, reply }).await {
            return Err(ControlError("the HA loop is not running".into()));
        }
        rx.await.map_err(|_| ControlError("the HA loop dropped the restart request".into()))
    }

    async fn schedule_restart(&self, req: RestartRequest) -> bool {
        let Some(at) = req.schedule else { return false };
        if !self.arm_restart(at, req) {
            return false;
        }
        self.show_schedule(Some(at)).await;
        true
    }

    async fn delete_scheduled_restart(&self) -> bool {
        if !self.disarm_restart() {
            return false;
        }
        self.show_schedule(None).await;
        true
    }

    async fn reinitialize(&self, req: ReinitializeRequest) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        if !self.send(Request::Reinitialize { req, reply }).await {
            return Err("the HA loop is not running".into());
        }
        rx.await.map_err(|_| "the HA loop dropped the request".to_string())?
    }

    async fn any_healthy_candidate(&self, members: &[String]) -> bool {
        let Some(cluster) = self.status.borrow().cluster.clone() else { return false };
        let targets: Vec<(String, Option<String>)> =
            members.iter().map(|m| (m.clone(), cluster.member(m).and_then(|c| c.api_url.clone()))).collect();
        let peers = crate::peers::fetch(&self.http, targets, Duration::from_secs(2)).await;
        peers.iter().any(|p| p.reply.as_ref().is_some_and(|r| r.running && !r.tags.nofailover))
    }

    async fn manual_failover(&self, plan: &FailoverPlan) -> FailoverOutcome {
        let version = match self.dcs.get_cluster().await {
            Ok(c) => c.failover.map(|f| f.version),
            Err(_) => return FailoverOutcome::WriteFailed,
        };
        let written = self
            .dcs
            .manual_failover(plan.leader.as_deref(), plan.candidate.as_deref(), plan.scheduled_at.as_ref(), version)
            .await;
        if written.is_err() {
            return FailoverOutcome::WriteFailed;
        }
        self.wakeup().await;
        if plan.scheduled_at.is_some() {
            return FailoverOutcome::Scheduled;
        }
        let (old_leader, loop_wait) = {
            let s = self.status.borrow();
            (s.cluster.as_ref().and_then(|c| c.leader.clone()), s.loop_wait)
        };
        await_failover(self.status.clone(), old_leader.as_deref(), failover_wait(loop_wait)).await
    }

    async fn cancel_scheduled_switchover(&self) -> CancelSwitchover {
        let Ok(cluster) = self.dcs.get_cluster().await else { return CancelSwitchover::Conflict };
        match cluster.failover.filter(|f| f.scheduled_at.is_some()) {
            None => CancelSwitchover::NotScheduled,
            Some(f) => match self.dcs.delete_failover(Some(f.version)).await {
                Ok(()) => CancelSwitchover::Deleted,
                Err(_) => CancelSwitchover::Conflict,
            },
        }
    }

    async fn read_config(&self) -> Result<Option<VersionedConfig>, ControlError> {
        let cluster = self.dcs.get_cluster().await.map_err(|e| ControlError(e.to_string()))?;
        Ok(cluster.config.map(|c| VersionedConfig { data: Value::Object(c.data), version: c.version.to_string() }))
    }

    async fn write_config(&self, data: &Value, version: Option<&str>) -> Result<bool, ControlError> {
        let version = match version {
            Some(v) => Some(v.parse::<i64>().map_err(|_| ControlError(format!("bad config version {v:?}")))?),
            None => None,
        };
        match self.dcs.set_config_value(&data.to_string(), version).await {
            Ok(()) => {
                self.wakeup().await;
                Ok(true)
            }
            Err(DcsError::CompareFailed { .. }) => Ok(false),
            Err(e) => Err(ControlError(e.to_string())),
        }
    }

    async fn update_failsafe(&self, body: &Map<String, Value>) -> FailsafeReply {
        let status = self.status.borrow().clone();
        let running = status.state == patroni_api::PostgresState::Running;
        let primary = status.postgres.as_ref().is_some_and(|p| matches!(p.xlog, patroni_api::Xlog::Primary { .. }));
        let role = if primary { patroni_ha::PgRole::Primary } else { patroni_ha::PgRole::Replica };
        if let Err(why) = patroni_ha::failsafe_confirmation(role, running) {
            return FailsafeReply::Refused(why.into());
        }
        if let Some(leader) = body.get("name").and_then(Value::as_str) {
            // Remembered for a ttl: the core does not race for the leader key while this leader may still run.
            // On disk before the answer, so that a restart of this agent cannot forget it (failsafe_memory.rs).
            let now = chrono::Utc::now().timestamp_millis();
            if let Ok(mut h) = self.failsafe_heartbeat.lock() {
                *h = Some((leader.to_owned(), now));
            }
            if let Some(file) = &self.heartbeat_file {
                if let Err(e) = file.save(leader, now) {
                    tracing::warn!("cannot record the failsafe heartbeat of {leader} on disk: {e}");
                }
            }
            let slots = body
                .get("slots")
                .and_then(Value::as_object)
                .map(|m| m.iter().filter_map(|(k, v)| v.as_u64().map(|l| (k.clone(), l))).collect::<Vec<_>>());
            if let Ok(mut s) = self.failsafe_slots.lock() {
                *s = slots;
            }
        }
        let lsn = status.postgres.as_ref().map(|p| match p.xlog {
            patroni_api::Xlog::Primary { location } => location,
            patroni_api::Xlog::Replica { received_location, replayed_location, .. } => {
                received_location.max(replayed_location)
            }
        });
        FailsafeReply::Accepted { lsn }
    }
}
