//! The executor of plans: DCS writes run inline (each bounded by `retry_timeout`); long PostgreSQL actions
//! (bootstrap, clone, start, promote, demote, rewind) run as one background task whose state is reported to the core
//! as `busy`, so the leader keeps refreshing its key meanwhile.

use std::sync::Arc;
use std::time::Duration;

use patroni_dcs::{Cluster, DcsError, TimelineHistory};
use patroni_ha::{Action, Busy, DemoteMode, Outcome, PeerStatus, Plan, Settings};
use serde_json::Value;
use tracing::{error, info, warn};

use crate::node::{HistorySource, Node, NodeError, Stop, Upstream};
use crate::peers;
use crate::runtime::{millis, Exit, LongAction, Runtime};

impl<N: Node> Runtime<N> {
    /// Collects a finished long action: its failure is reported to the core once, in `last_failure`.
    pub(crate) async fn reap_long(&mut self) {
        let finished = self
            .long
            .as_ref()
            .is_some_and(|l| l.handle.is_finished() || l.ended.load(std::sync::atomic::Ordering::Acquire));
        if !finished {
            return;
        }
        let Some(long) = self.long.take() else { return };
        let result = match long.handle.await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(format!("panicked: {e}")),
        };
        if long.busy == Busy::Restarting {
            if let Some(reply) = self.restart_reply.take() {
                let answer = match &result {
                    Ok(()) => (true, "restarted successfully".to_owned()),
                    Err(e) => (false, format!("restart failed: {e}")),
                };
                self.due_replies.push((reply, answer));
            }
        }
        self.last_failure = match result {
            Ok(()) => None,
            Err(e) => {
                error!("{} failed: {e}", long.busy.action_text());
                Some(long.busy)
            }
        };
    }

    pub(crate) fn spawn_long<F>(&mut self, busy: Busy, fut: F)
    where
        F: std::future::Future<Output = Result<(), NodeError>> + Send + 'static,
    {
        if self.long.is_some() {
            warn!("not starting {}: another action is in progress", busy.action_text());
            return;
        }
        self.last_failure = None;
        let wake = self.wake.clone();
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ended.clone();
        let handle = tokio::spawn(async move {
            let r = fut.await;
            flag.store(true, std::sync::atomic::Ordering::Release);
            wake.notify_one();
            r
        });
        self.long = Some(LongAction { busy, handle, ended });
    }

    pub(crate) fn upstream(&self, cluster: Option<&Cluster>, name: Option<&str>) -> Option<Upstream> {
        let name = name?;
        let member = cluster?.get_member_or_leader(name)?;
        let conn_url = member.conn_url()?.to_owned();
        Some(Upstream { name: name.to_owned(), conn_url })
    }

    /// The leader `name`, or with `None` the remote primary of a standby cluster.
    fn history_source(&self, cluster: Option<&Cluster>, name: Option<&str>) -> Result<HistorySource, Failure> {
        match name {
            Some(name) => self
                .upstream(cluster, Some(name))
                .map(HistorySource::Member)
                .ok_or_else(|| Failure::Failed(format!("no connection address known for {name}"))),
            None => patroni_postgres::standby::RemotePrimary::from_config(&self.dynamic)
                .map(HistorySource::Remote)
                .ok_or_else(|| Failure::Failed("no remote primary: this is not a standby cluster".into())),
        }
    }

    pub(crate) async fn execute(
        &mut self,
        plan: &Plan,
        cluster: Option<&Cluster>,
        s: &Settings,
    ) -> Result<Executed, Exit> {
        let mut done = Executed::default();
        for action in &plan.actions {
            match self.execute_one(action, cluster, s, &mut done).await {
                Ok(()) => {}
                Err(Failure::Fatal(reason)) => return Err(Exit::Fatal(reason)),
                Err(Failure::Failed(msg)) => {
                    warn!("{msg}");
                    break;
                }
            }
        }
        Ok(done)
    }

    pub(crate) async fn execute_one(
        &mut self,
        action: &Action,
        cluster: Option<&Cluster>,
        s: &Settings,
        done: &mut Executed,
    ) -> Result<(), Failure> {
        let dcs = self.dcs.clone();
        match action {
            Action::AttemptInitialize => match dcs.initialize(true, "").await {
                Ok(()) => done.outcomes.push(Outcome::InitializeRace { won: true }),
                Err(DcsError::CompareFailed { .. }) => done.outcomes.push(Outcome::InitializeRace { won: false }),
                Err(e) => return Err(Failure::Failed(format!("failed to initialize the cluster: {e}"))),
            },
            Action::SetInitialize { sysid } => {
                if cluster.is_some_and(|c| c.config.is_none()) {
                    // The bootstrap winner publishes `bootstrap.dcs` as the cluster's dynamic configuration.
                    let value = self.config.bootstrap_dcs().to_json();
                    dcs.set_config_value(&value, None).await.map_err(|e| Failure::dcs("write config", e))?;
                }
                dcs.initialize(false, sysid).await.map_err(|e| Failure::dcs("write initialize", e))?;
            }
            Action::CancelInitialize => {
                dcs.cancel_initialization().await.map_err(|e| Failure::dcs("cancel initialization", e))?
            }
            Action::Bootstrap | Action::Promote | Action::StartPrimary if self.dynamic.is_standby_cluster() => {
                // The second line behind the core: nothing in a standby cluster is made writable.
                return Err(Failure::Failed(format!(
                    "refusing {action:?}: standby_cluster is set in the dynamic configuration (remove it to promote \
                     the cluster)"
                )));
            }
            Action::BootstrapStandby | Action::StartStandbyLeader | Action::FollowRemote | Action::DemoteCluster => {
                self.execute_standby(action, cluster).await?
            }
            Action::Bootstrap => {
                let node = self.node.clone();
                self.spawn_long(Busy::Bootstrapping, async move { node.bootstrap().await });
            }
            Action::CreateReplica { from } => {
                let up = match from {
                    Some(name) => match self.upstream(cluster, Some(name)) {
                        Some(up) => Some(up),
                        None => return Err(Failure::Failed(format!("no connection address known for {name}"))),
                    },
                    None => None,
                };
                let node = self.node.clone();
                self.spawn_long(Busy::CreatingReplica, async move { node.create_replica(up.as_ref()).await });
            }
            Action::StartPrimary => {
                let node = self.node.clone();
                self.spawn_long(Busy::Starting, async move { node.start_primary().await });
            }
            Action::MarkDemoted => self.node.mark_demoted().await,
            Action::StartReplica { follow } => {
                let up = self.upstream(cluster, follow.as_deref());
                let node = self.node.clone();
                self.spawn_long(Busy::Starting, async move { node.start_replica(up.as_ref()).await });
            }
            Action::Follow { leader } => {
                let up = self.upstream(cluster, leader.as_deref());
                self.node.follow(up.as_ref()).await.map_err(|e| Failure::Failed(e.0))?;
            }
            Action::CheckDivergence { against } => {
                let result = match self.history_source(cluster, against.as_deref()) {
                    Ok(source) => self.node.check_divergence(&source).await,
                    Err(Failure::Failed(why) | Failure::Fatal(why)) => {
                        warn!("cannot compare our history: {why}");
                        patroni_ha::Divergence::Unknown
                    }
                };
                info!("history compared with {}: {result:?}", against.as_deref().unwrap_or("the remote primary"));
                done.outcomes.push(Outcome::Divergence { against: against.clone(), result });
            }
            Action::Rewind { from } => {
                let source = self.history_source(cluster, from.as_deref())?;
                let node = self.node.clone();
                self.spawn_long(Busy::Rewinding, async move { node.rewind(&source).await });
            }
            Action::Reinitialize { from } => {
                let Some(up) = self.upstream(cluster, from.as_deref()) else {
                    return Err(Failure::Failed(format!("no connection address known for {from:?}")));
                };
                let node = self.node.clone();
                self.spawn_long(Busy::Reinitializing, async move { node.reinitialize(&up).await });
            }
            Action::Promote => {
                let node = self.node.clone();
                let others = self.other_members(cluster);
                self.spawn_long(Busy::Promoting, async move {
                    node.promote().await?;
                    if let Err(e) = node.ensure_slots(&others).await {
                        warn!("failed to create replication slots after promotion: {e}");
                    }
                    Ok(())
                });
            }
            Action::Demote { mode, follow } => {
                // The core stops a start that would end as a primary without our key: interrupt it (the postmaster
                // it launched keeps running and is found again from postmaster.pid by the stop below).
                if let Some(start) = self.long.take_if(|l| l.busy == Busy::Starting) {
                    start.handle.abort();
                    let _ = start.handle.await;
                    info!("interrupted the start of PostgreSQL");
                }
                let node = self.node.clone();
                let leader = cluster.and_then(|c| c.leader.clone()).filter(|l| l.name == self.name);
                let up = self.upstream(cluster, follow.as_deref());
                let mode = *mode;
                self.spawn_long(Busy::Demoting, async move {
                    let how = match mode {
                        DemoteMode::Graceful => Stop::FastWithCheckpoint,
                        DemoteMode::Offline => Stop::Fast,
                        DemoteMode::Immediate | DemoteMode::ImmediateNoLock => Stop::Immediate,
                    };
                    let lsn = node.stop(how).await?;
                    if mode.releases_key() {
                        if let Some(leader) = &leader {
                            if let Err(e) = dcs.delete_leader(leader, lsn).await {
                                warn!("failed to release the leader key: {e}");
                            } else {
                                info!("released the leader key");
                            }
                        }
                    }
                    // Back as a read-only standby; offline (no DCS) it follows nobody until the DCS answers again.
                    node.start_replica(up.as_ref()).await
                });
            }
            Action::Restart => {
                let node = self.node.clone();
                self.spawn_long(Busy::Restarting, async move { node.restart().await });
            }
            Action::ScheduledRestart => {
                let Some(pending) = self.take_scheduled_restart() else { return Ok(()) };
                info!("Manual scheduled restart at {}", patroni_pycompat::isoformat(&pending.shown.schedule));
                let met = self.api.as_ref().is_some_and(|api| pending.req.conditions_met(&api.tx.borrow()));
                if !met {
                    info!("scheduled restart: restart conditions are not satisfied");
                    return Ok(());
                }
                let node = self.node.clone();
                self.spawn_long(Busy::Restarting, async move { node.restart().await });
            }
            Action::ClearScheduledRestart => {
                self.take_scheduled_restart();
            }
            Action::Reload => self.node.reload().await.map_err(|e| Failure::Failed(e.0))?,
            Action::AcquireLeader => {
                // The others follow as soon as they see our key, before our promotion ends: their slots must be
                // there by then, or each replica fails once and retries only after wal_retrieve_retry_interval.
                // Unreserved, they cost nothing if we lose the race.
                let others = self.other_members(cluster);
                if let Err(e) = self.node.prepare_slots(&others).await {
                    warn!("failed to prepare replication slots: {e}");
                }
                match dcs.attempt_to_acquire_leader().await {
                    Ok(()) => {
                        self.slots_on_leader_acquired(cluster, patroni_ha::Time(crate::runtime::now_millis()));
                        done.outcomes.push(Outcome::LeaderRace { won: true })
                    }
                    Err(DcsError::CompareFailed { .. }) => done.outcomes.push(Outcome::LeaderRace { won: false }),
                    Err(e) => {
                        done.outcomes.push(Outcome::LeaderRace { won: false });
                        return Err(Failure::dcs("acquire the leader key", e));
                    }
                }
            }
            Action::UpdateLeader { lsn } => {
                let Some(c) = cluster else { return Err(Failure::Failed("no cluster view".into())) };
                let now = patroni_ha::Time(crate::runtime::now_millis());
                let status = lsn.map(|l| self.leader_status(l, c, now));
                let started = crate::guardian::boottime_ms();
                if let Err(e) = dcs.update_leader(c, status.as_ref(), None).await {
                    done.refresh_unreachable = e.is_unreachable();
                    done.outcomes.push(Outcome::LeaderRefresh { ok: false });
                    return Err(Failure::dcs("update the leader key", e));
                }
                if let Some(w) = &mut self.watchdog {
                    w.renewed(started, patroni_ha::watchdog::guardian_timeout_ms(s));
                }
            }
            Action::ReleaseLeader { lsn } => {
                if let Some(leader) = cluster.and_then(|c| c.leader.as_ref()) {
                    dcs.delete_leader(leader, *lsn).await.map_err(|e| Failure::dcs("release the leader key", e))?;
                }
            }
            Action::FetchPeers { members } => {
                let targets: Vec<(String, Option<String>)> = members
                    .iter()
                    .map(|m| {
                        // A member whose key expired may still be listed, with its URL, in `failsafe`.
                        let url = cluster
                            .and_then(|c| c.get_member(m))
                            .and_then(|m| m.api_url())
                            .map(str::to_owned)
                            .or_else(|| self.failsafe_url(m));
                        (m.clone(), url)
                    })
                    .collect();
                done.peers = Some(peers::fetch(&self.http, targets, Duration::from_secs(2)).await);
            }
            Action::ClearFailover => {
                let version = cluster.and_then(|c| c.failover.as_ref()).map(|f| f.version);
                dcs.delete_failover(version).await.map_err(|e| Failure::dcs("clear the failover key", e))?;
            }
            Action::UpdateHistory => {
                let mut lines = self.node.timeline_history().await.map_err(|e| Failure::Failed(e.0))?;
                let known = cluster.and_then(|c| c.history.as_ref()).map(|h| h.lines.clone()).unwrap_or_default();
                let now = chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string();
                let last = lines.len().saturating_sub(1);
                for (i, line) in lines.iter_mut().enumerate() {
                    // Keep what was recorded when the switch happened; the newest switch is ours, now.
                    if let Some(k) = known.iter().find(|k| k.timeline == line.timeline) {
                        line.timestamp = k.timestamp.clone();
                        line.new_leader = k.new_leader.clone();
                    } else if i == last {
                        line.timestamp = Some(now.clone());
                        line.new_leader = Some(self.name.clone());
                    }
                }
                let history = TimelineHistory { version: 0, lines };
                dcs.set_history_value(&history.to_json()).await.map_err(|e| Failure::dcs("write history", e))?;
            }
            Action::SetSyncState { leader, standbys, quorum } => {
                // Compare-and-set on what we read, or on what an earlier step of this plan wrote.
                let version = done.sync_version.unwrap_or_else(|| cluster.and_then(|c| c.sync.version));
                let quorum = u32::try_from(*quorum).unwrap_or(u32::MAX);
                let written = dcs
                    .write_sync_state(Some(leader), standbys, quorum, version)
                    .await
                    .map_err(|e| Failure::dcs("write the sync key", e))?;
                done.sync_version = Some(written.version);
            }
            Action::DeleteSyncState => {
                let version = done.sync_version.unwrap_or_else(|| cluster.and_then(|c| c.sync.version));
                dcs.delete_sync_state(version).await.map_err(|e| Failure::dcs("delete the sync key", e))?;
                done.sync_version = Some(None);
            }
            Action::SetSyncStandbys { names, num, any } => {
                self.node.set_sync_standbys(names, *num, *any).await.map_err(|e| Failure::Failed(e.0))?
            }
            Action::WriteFailsafe { members } => {
                let map = members
                    .iter()
                    .filter_map(|m| {
                        let url = cluster?.get_member(m)?.api_url()?.to_owned();
                        Some((m.clone(), url))
                    })
                    .collect();
                dcs.write_failsafe(&map).await.map_err(|e| Failure::dcs("write failsafe", e))?;
                // Asked for confirmations if the DCS goes away before we read the key back.
                self.failsafe = map.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            }
            Action::CheckFailsafe { members } => {
                let targets: Vec<(String, Option<String>)> =
                    members.iter().map(|m| (m.clone(), self.failsafe_url(m))).collect();
                let started = crate::guardian::boottime_ms();
                let slots = self.failsafe_slot_positions();
                let (confirmed, member_lsns) = peers::failsafe_confirm(
                    &self.http,
                    &self.name,
                    &self.addresses,
                    targets,
                    millis(s.loop_wait),
                    slots.as_deref(),
                )
                .await;
                if confirmed {
                    // Every member accepted our heartbeat: none races for the key within a ttl of it.
                    if let Some(w) = &mut self.watchdog {
                        w.renewed(started, patroni_ha::watchdog::guardian_timeout_ms(s));
                    }
                }
                self.failsafe_confirmed = confirmed;
                if confirmed {
                    self.slots.failsafe_member_lsns = member_lsns;
                }
                done.outcomes.push(Outcome::Failsafe { confirmed });
            }
            Action::ArmWatchdog { timeout } => {
                let secs = |m: patroni_ha::Millis| i64::try_from(m.0 / 1000).unwrap_or(i64::MAX);
                let guardian = patroni_ha::watchdog::guardian_timeout_ms(s);
                let ok =
                    self.watchdog.as_mut().is_none_or(|w| w.arm(*timeout, guardian, secs(s.loop_wait), secs(s.ttl)));
                done.outcomes.push(Outcome::WatchdogArmed { ok });
                if !ok {
                    return Err(Failure::Failed("watchdog could not be activated".into()));
                }
            }
            Action::DisarmWatchdog => {
                if let Some(w) = &mut self.watchdog {
                    w.disarm();
                }
            }
            Action::Fatal { reason } => {
                error!("{reason}");
                return Err(Failure::Fatal(reason.clone()));
            }
        }
        Ok(())
    }
}

/// Actions that write keys other members and the REST API read from the cluster view (the leader key's own
/// refresh and the member key are not among them: the view already says what they say).
pub(crate) fn changes_view(action: &Action) -> bool {
    matches!(
        action,
        Action::SetInitialize { .. }
            | Action::CancelInitialize
            | Action::AcquireLeader
            | Action::ReleaseLeader { .. }
            | Action::ClearFailover
            | Action::UpdateHistory
            | Action::SetSyncState { .. }
            | Action::DeleteSyncState
            | Action::WriteFailsafe { .. }
    )
}

#[derive(Default)]
pub(crate) struct Executed {
    pub(crate) outcomes: Vec<Outcome>,
    pub(crate) peers: Option<Vec<PeerStatus>>,
    /// The leader refresh failed because the DCS did not answer (not because someone else holds the key): Patroni
    /// handles that as the DCS being down (failsafe mode, or demotion), not as a lost key.
    pub(crate) refresh_unreachable: bool,
    /// The `sync` key's version after a write of this plan (`Some(None)`: deleted), for the next write's
    /// compare-and-set.
    pub(crate) sync_version: Option<Option<patroni_dcs::Version>>,
}

pub(crate) enum Failure {
    Failed(String),
    Fatal(String),
}

impl Failure {
    fn dcs(what: &str, e: DcsError) -> Failure {
        Failure::Failed(format!("failed to {what}: {e}"))
    }
}
