//! The decision table. Each branch is named after the situation, in the words Patroni logs for it.

use crate::action::{Action, DemoteMode, LogLevel, Outcome, Plan};
use crate::election;
use crate::rewind::{Rejoin, RewindState};
use crate::time::Time;
use crate::view::{ClusterView, ControlState, DataDir, LocalState, Name, PeerStatus, PgRole, Process, Settings};

/// Everything one step looks at, gathered by the runtime just before the step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    pub now: Time,
    /// `None` when the DCS could not be read within `retry_timeout`.
    pub cluster: Option<ClusterView>,
    pub local: LocalState,
    /// Peers' answers, present only on the step right after a [`Action::FetchPeers`].
    pub peers: Option<Vec<PeerStatus>>,
    /// Results of the previous plan's actions that matter to this decision.
    pub outcomes: Vec<Outcome>,
    /// The last failsafe heartbeat (`POST /failsafe`) this member accepted: from whom, and when. Kept across agent
    /// restarts (beyond Patroni, which keeps it in memory): a member that forgot confirming a failsafe leader could
    /// promote next to it (simulator, `--failsafe`, seed 8313).
    pub failsafe_heartbeat: Option<(Name, Time)>,
    /// When the restart scheduled through the REST API (`POST /restart` with `schedule`) is due.
    pub scheduled_restart: Option<Time>,
}

impl Observation {
    pub(crate) fn outcome(&self, pred: impl Fn(&Outcome) -> bool) -> bool {
        self.outcomes.iter().any(pred)
    }
}

/// The HA core of one member: the little it must remember between steps, and the decision function.
///
/// Everything else is re-read every step, so a restarted agent decides the same way as one that ran all along.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ha {
    /// We created the `initialize` key and so must bootstrap the cluster.
    won_initialize: bool,
    /// When PostgreSQL was first seen down while we held the leader key (for `primary_start_timeout`).
    primary_down_since: Option<Time>,
    /// The `failsafe` key as last read, for decisions while the DCS is unreachable.
    failsafe_members: Vec<Name>,
    /// Whether the last successful read showed us holding the leader key.
    pub(crate) held_lock: bool,
    /// We asked for PostgreSQL to be started after it was found down; once that start is over, whether it came up
    /// decides what next (a primary that failed to start gives the key away).
    pub(crate) recovering: bool,
    /// The longest `ttl` seen since this core started: how long a failsafe heartbeat holds us back (see
    /// `failsafe_leader`).
    pub(crate) ttl_high: crate::time::Millis,
    /// Synchronous replication upkeep while we lead.
    sync: crate::sync::SyncTracker,
    /// A primary is being turned into the standby leader (`DemoteCluster`): the key stays ours meanwhile.
    pub(crate) demoting_cluster: bool,
    /// The running start is `StartPrimary`: PostgreSQL comes up writable when it ends, so it must not outlive our
    /// key (Patroni stops a starting primary that lost its key or timed out).
    starting_primary: bool,
    /// Whether our WAL history must be (or was) compared with the primary's before streaming (rewind.rs).
    pub(crate) rewind: RewindState,
    /// The last step saw the cluster paused: on resume, what was checked during the pause is forgotten.
    was_paused: bool,
    /// The leader a running replica last saw (a change of leader is a moment its history may have forked).
    seen_leader: Option<Name>,
}

impl Ha {
    pub fn new() -> Ha {
        Ha::default()
    }

    /// Whether the last successful DCS read showed this member as the leader.
    pub fn holds_lock(&self) -> bool {
        self.held_lock
    }

    /// Decide what to do now. Pure: the same `Ha`, settings and observation always give the same plan.
    pub fn step(&mut self, s: &Settings, obs: &Observation) -> Plan {
        // A standby cluster runs without synchronous mode, and no plan of one may make PostgreSQL writable; the
        // watchdog is armed (or not) for what remains of the plan.
        let effective = crate::standby::effective(s);
        let s: &Settings = &effective;
        if let Some(plan) = crate::watchdog::activation_failed(s, obs) {
            self.held_lock = false;
            let plan = crate::standby::never_writable(s, plan);
            return crate::watchdog::arm_or_disarm(s, obs, false, plan);
        }
        self.ttl_high = self.ttl_high.max(s.ttl);
        let plan = self.decide(s, obs);
        if plan.actions.contains(&Action::StartPrimary) {
            self.starting_primary = true;
        }
        for action in &plan.actions {
            match action {
                // A former primary may hold WAL the next primary never gets (Patroni's demote triggers the check).
                Action::Demote { .. } | Action::DemoteCluster => self.rewind.trigger(s),
                Action::Promote => self.rewind = RewindState::Initial,
                _ => {}
            }
        }
        let plan = self.scheduled_restart(s, obs, plan);
        let plan = crate::standby::never_writable(s, plan);
        crate::watchdog::arm_or_disarm(s, obs, self.held_lock, plan)
    }

    /// Patroni's `evaluate_scheduled_restart`: a healthy member with nothing else to do restarts when the schedule
    /// is due (woken for it, as for a scheduled switchover), and forgets one that went stale.
    fn scheduled_restart(&self, s: &Settings, obs: &Observation, plan: Plan) -> Plan {
        let Some(at) = obs.scheduled_restart else { return plan };
        let healthy = obs.local.process.is_running() && obs.local.busy.is_none();
        let leader_known = obs.cluster.as_ref().is_some_and(|c| c.leader.is_some());
        let idle = !plan.again && plan.actions.iter().all(|a| !a.is_long());
        if s.pause || !healthy || !leader_known || !idle {
            return plan;
        }
        if at > obs.now {
            return plan.wake(at);
        }
        let late = obs.now - at;
        if late.0 > s.loop_wait.0 * 3 / 2 {
            return plan
                .log(LogLevel::Warning, "Found a stale restart value, cleaning up")
                .with(Action::ClearScheduledRestart);
        }
        plan.with(Action::ScheduledRestart)
    }

    fn decide(&mut self, s: &Settings, obs: &Observation) -> Plan {
        let Some(cluster) = &obs.cluster else {
            return self.dcs_unreachable(s, obs);
        };
        self.held_lock = cluster.leader.as_deref() == Some(s.name.as_str());
        if !self.held_lock {
            self.sync.reset();
        }
        if let Some(members) = &cluster.failsafe {
            self.failsafe_members = members.clone();
        }
        if s.pause {
            self.was_paused = true;
        } else if std::mem::take(&mut self.was_paused) {
            // People may have done anything by hand meanwhile: check what the next decisions need afresh.
            self.rewind = RewindState::Initial;
        }
        let local = &obs.local;

        if let (Some(theirs), DataDir::Initialized { sysid: ours }) = (&cluster.initialize, &local.data_dir) {
            if !theirs.is_empty() && theirs != ours {
                let reason = format!(
                    "system ID mismatch, node {} belongs to a different cluster: {} != {}",
                    s.name, ours, theirs
                );
                return Plan::status(reason.clone()).with(Action::Fatal { reason });
            }
        }

        if local.busy.is_none() {
            self.demoting_cluster = false;
            self.starting_primary = false;
            if self.rewind == RewindState::Rewinding {
                self.rewind = if local.last_failure == Some(crate::view::Busy::Rewinding) {
                    RewindState::Failed
                } else {
                    RewindState::Initial
                };
            }
        }
        if let Some(busy) = &local.busy {
            return self.while_busy(s, cluster, obs, busy.action_text());
        }
        if self.recovering && !matches!(local.process, Process::Starting { .. }) {
            self.recovering = false;
            if !local.process.is_running() && local.data_dir != DataDir::Empty {
                return self.failed_to_start(local);
            }
        }
        if cluster.initialize.as_deref().is_none_or(str::is_empty) && cluster.leader.is_none() {
            return self.uninitialized(s, cluster, obs);
        }
        if local.data_dir == DataDir::Empty {
            return self.empty_data_dir(s, cluster, obs);
        }
        match local.process {
            Process::Running => self.running(s, cluster, obs),
            Process::Stopped | Process::Crashed { .. } | Process::Starting { .. } => self.not_running(s, cluster, obs),
        }
    }

    /// A long action runs; the leader keeps its key meanwhile so nobody takes over because we are busy.
    fn while_busy(&mut self, s: &Settings, cluster: &ClusterView, obs: &Observation, doing: &str) -> Plan {
        if self.starting_primary && !self.held_lock && !s.pause {
            // The start would end with a writable PostgreSQL beside whoever takes the key now.
            self.starting_primary = false;
            return Plan::status("stopped PostgreSQL while starting up because leader key was lost")
                .log(LogLevel::Info, "Lost lock while starting up. Demoting self.")
                .with(Action::Demote { mode: DemoteMode::ImmediateNoLock, follow: None });
        }
        let mut plan = Plan::status(format!("{doing} in progress"));
        if self.held_lock && (obs.local.busy != Some(crate::view::Busy::Demoting) || self.demoting_cluster) {
            if let Some(expired) = self.primary_start_expired(s, obs) {
                return expired;
            }
            plan = Plan::status(format!("updated leader lock during {doing}"))
                .with(Action::UpdateLeader { lsn: obs.local.lsn });
        }
        let _ = cluster;
        plan
    }

    fn dcs_unreachable(&mut self, s: &Settings, obs: &Observation) -> Plan {
        let local = &obs.local;
        let primary = local.process.is_running() && local.role == PgRole::Primary;
        if !primary || s.pause {
            return Plan::status("DCS is not accessible");
        }
        if s.failsafe_mode && !self.failsafe_members.is_empty() {
            for o in &obs.outcomes {
                if let Outcome::Failsafe { confirmed } = o {
                    if *confirmed {
                        return Plan::status(
                            "continue to run as a leader because failsafe mode is enabled and all members are accessible",
                        );
                    }
                    self.held_lock = false;
                    return Plan::status("demoting self because DCS is not accessible and I was a leader")
                        .with(Action::Demote { mode: DemoteMode::Offline, follow: None });
                }
            }
            let members = self.failsafe_members.iter().filter(|m| **m != s.name).cloned().collect();
            return Plan::status("DCS is not accessible, checking failsafe members")
                .with(Action::CheckFailsafe { members })
                .again();
        }
        self.held_lock = false;
        Plan::status("demoted self because DCS is not accessible and I was a leader")
            .with(Action::Demote { mode: DemoteMode::Offline, follow: None })
    }

    /// No `initialize` key (or a bootstrap in progress) and no leader.
    fn uninitialized(&mut self, s: &Settings, cluster: &ClusterView, obs: &Observation) -> Plan {
        let local = &obs.local;
        if local.last_failure == Some(crate::view::Busy::Bootstrapping) && self.won_initialize {
            self.won_initialize = false;
            return Plan::status("removing initialize key after failed attempt to bootstrap the cluster")
                .with(Action::CancelInitialize)
                .with(Action::Fatal { reason: "Failed to bootstrap cluster".into() });
        }
        if self.won_initialize {
            if let DataDir::Initialized { sysid } = &local.data_dir {
                let bootstrapped = match local.role {
                    PgRole::Primary => true,
                    PgRole::StandbyLeader => s.standby_cluster,
                    _ => false,
                };
                if local.process.is_running() && bootstrapped {
                    self.won_initialize = false;
                    return Plan::status("initialized a new cluster")
                        .with(Action::AcquireLeader)
                        .with(Action::SetInitialize { sysid: sysid.clone() })
                        .again();
                }
            }
            return Plan::status("waiting for bootstrap to finish");
        }
        // The outcome comes first: after winning, the re-read cluster already shows the (empty) key we created.
        for o in &obs.outcomes {
            if let Outcome::InitializeRace { won } = o {
                if !won {
                    return Plan::status("failed to acquire initialize lock");
                }
                return match &local.data_dir {
                    DataDir::Empty if s.standby_cluster => {
                        self.won_initialize = true;
                        Plan::status("trying to bootstrap a new standby leader").with(Action::BootstrapStandby)
                    }
                    DataDir::Empty => {
                        self.won_initialize = true;
                        Plan::status("trying to bootstrap a new cluster").with(Action::Bootstrap)
                    }
                    // A DCS emptied under a live cluster: claim it with the data we have.
                    DataDir::Initialized { sysid } => {
                        Plan::status("initialized the cluster with the existing data directory")
                            .with(Action::SetInitialize { sysid: sysid.clone() })
                            .again()
                    }
                };
            }
        }
        if cluster.initialize.is_some() {
            return Plan::status("waiting for leader to bootstrap");
        }
        if local.data_dir == DataDir::Empty && !s.tags.can_fail_over() {
            return Plan::status("waiting for leader to bootstrap");
        }
        Plan::status("trying to acquire initialize lock").with(Action::AttemptInitialize).again()
    }

    fn empty_data_dir(&mut self, s: &Settings, cluster: &ClusterView, _obs: &Observation) -> Plan {
        // A new copy has the source's history by construction.
        self.rewind = RewindState::Initial;
        let Some(leader) = &cluster.leader else {
            // A replica method that needs no running leader (a restore from backup) can make this member now; the
            // leader race that follows decides whether it may promote.
            if s.replica_without_leader && cluster.initialize.as_deref().is_some_and(|i| !i.is_empty()) {
                return Plan::status("trying to bootstrap (without leader)").with(Action::CreateReplica { from: None });
            }
            if s.standby_cluster {
                return Plan::status("waiting for standby_leader to bootstrap");
            }
            return Plan::status("waiting for leader to bootstrap");
        };
        if *leader == s.name {
            // Our data vanished while we hold the key: let someone with data take over.
            return Plan::status("released leader key voluntarily as data dir empty and currently leader")
                .with(Action::ReleaseLeader { lsn: None });
        }
        let from = clone_source(s, cluster).unwrap_or_else(|| leader.clone());
        Plan::status(format!("trying to bootstrap from leader '{from}'"))
            .with(Action::CreateReplica { from: Some(from) })
    }

    /// The start asked for after PostgreSQL was found down is over, and PostgreSQL does not run.
    fn failed_to_start(&mut self, local: &LocalState) -> Plan {
        if !self.held_lock {
            return Plan::status("failed to start postgres");
        }
        // A primary that cannot start must not hold the cluster hostage for primary_start_timeout: the key goes,
        // so a replica can take over now.
        self.held_lock = false;
        self.primary_down_since = None;
        let mut plan = Plan::status("removed leader key after trying and failing to start postgres");
        if matches!(local.role, PgRole::Primary | PgRole::StandbyLeader) {
            plan = plan.with(Action::MarkDemoted);
        }
        plan.with(Action::ReleaseLeader { lsn: None })
    }

    /// PostgreSQL has data but is not running (stopped, crashed, or still starting).
    fn not_running(&mut self, s: &Settings, cluster: &ClusterView, obs: &Observation) -> Plan {
        let local = &obs.local;
        let starting = matches!(local.process, Process::Starting { .. });
        if self.held_lock && s.standby_cluster && !s.pause {
            return self.standby_leader_down(s, obs);
        }
        if self.held_lock {
            if s.pause {
                if starting {
                    return Plan::status("PostgreSQL is starting").with(Action::UpdateLeader { lsn: local.lsn });
                }
                // Paused, nothing is restarted: a key on a member without a running PostgreSQL would only hide
                // that the cluster has no primary.
                self.held_lock = false;
                return Plan::status("removed leader lock because postgres is not running")
                    .with(Action::ReleaseLeader { lsn: None });
            }
            let crashed = matches!(local.process, Process::Crashed { .. });
            if crashed && s.primary_start_timeout.0 == 0 {
                // The operator prefers a failover to a restart, if anyone can take over.
                let others = race_members(s, cluster);
                if !others.is_empty() {
                    let Some(peers) = &obs.peers else {
                        return Plan::status("checking whether failover is possible after a crash")
                            .with(Action::UpdateLeader { lsn: local.lsn })
                            .with(Action::FetchPeers { members: others })
                            .again();
                    };
                    let possible = election::failover_possible(
                        s,
                        cluster,
                        peers.iter().map(|p| (p.name.as_str(), p.reply.as_ref())),
                        false,
                    );
                    if possible {
                        self.held_lock = false;
                        return Plan::status("stopped PostgreSQL to fail over after a crash")
                            .log(LogLevel::Info, "Primary crashed. Failing over.")
                            .with(Action::Demote { mode: DemoteMode::Immediate, follow: None });
                    }
                }
            } else if let Some(expired) = self.primary_start_expired(s, obs) {
                return expired;
            }
            self.primary_down_since.get_or_insert(obs.now);
            let wake = self.primary_down_since.map(|t| t + s.primary_start_timeout);
            let refresh = Action::UpdateLeader { lsn: local.lsn };
            let plan = if starting {
                let left = wake.map_or(0, |at| (at - obs.now).0 / 1000);
                Plan::status(format!("PostgreSQL is still starting up, {left} seconds until timeout")).with(refresh)
            } else if crashed
                && s.primary_start_timeout.0 > 0
                && local.role == PgRole::Primary
                && local.control_state.is_some_and(ControlState::was_primary)
                && !local.recovery_configured
            {
                // It ran as our primary a moment ago: start it as one again. No promotion, so no new timeline,
                // and the replicas keep streaming from where they were.
                self.recovering = true;
                Plan::status("starting primary after failure").with(refresh).with(Action::StartPrimary)
            } else {
                // Read-only first: the key may be lost while PostgreSQL starts; `lock_but_replica` promotes it once
                // a later step has refreshed the key again.
                self.recovering = true;
                Plan::status("starting as readonly because i had the session lock")
                    .with(refresh)
                    .with(Action::StartReplica { follow: None })
            };
            return match wake {
                Some(at) if s.primary_start_timeout.0 > 0 => plan.wake(at),
                _ => plan,
            };
        }
        self.primary_down_since = None;
        if s.pause {
            return Plan::status("postgres is not running");
        }
        if starting {
            return Plan::status("waiting for PostgreSQL to start");
        }
        let follow = follow_target(s, cluster);
        let mut plan = Plan::status("starting as a secondary");
        if let (false, Some(leader)) = (s.standby_cluster, &cluster.leader) {
            if !self.rewind.executed() {
                self.rewind.trigger(s);
            }
            match self.rejoin(s, obs, Some(leader.clone())) {
                Rejoin::Act(plan) => return plan,
                // A former primary starts read-only and following nobody until the check can be made: streaming a
                // forked history would fail for good. A replica streams meanwhile, as in Patroni.
                Rejoin::Unchecked if was_primary(local) => {
                    self.recovering = true;
                    return plan
                        .log(LogLevel::Warning, not_checked(leader))
                        .with(Action::StartReplica { follow: None });
                }
                Rejoin::Unchecked => {}
                Rejoin::Follow(line) => plan.log.extend(line),
            }
        }
        self.recovering = true;
        plan.with(Action::StartReplica { follow })
    }

    /// We hold the key, PostgreSQL is down, and it has stayed down longer than `primary_start_timeout`.
    pub(crate) fn primary_start_expired(&mut self, s: &Settings, obs: &Observation) -> Option<Plan> {
        if s.pause || obs.local.process.is_running() {
            return None;
        }
        let since = *self.primary_down_since.get_or_insert(obs.now);
        if obs.now - since < s.primary_start_timeout {
            return None;
        }
        self.primary_down_since = None;
        self.held_lock = false;
        let writable_soon = self.starting_primary && obs.local.busy == Some(crate::view::Busy::Starting);
        if writable_soon || matches!(obs.local.process, Process::Starting { .. }) {
            // Giving the key away while a start goes on would let it end as a second primary: stop it first
            // (the demotion releases the key once PostgreSQL is down).
            self.starting_primary = false;
            return Some(
                Plan::status("stopped PostgreSQL because of startup timeout")
                    .log(LogLevel::Info, "Demoting self because primary startup is taking too long")
                    .with(Action::Demote { mode: DemoteMode::Immediate, follow: None }),
            );
        }
        Some(
            Plan::status("primary start has timed out, releasing the leader key")
                .with(Action::ReleaseLeader { lsn: obs.local.lsn }),
        )
    }

    fn running(&mut self, s: &Settings, cluster: &ClusterView, obs: &Observation) -> Plan {
        let local = &obs.local;
        if self.held_lock {
            self.primary_down_since = None;
            if s.standby_cluster {
                return self.standby_leader(s, cluster, obs);
            }
            return match local.role {
                PgRole::Primary => self.leader_with_lock(s, cluster, obs),
                // A standby leader whose cluster stopped being a standby cluster is promoted, on purpose.
                PgRole::StandbyLeader | PgRole::Replica | PgRole::Demoted | PgRole::Unknown => {
                    self.lock_but_replica(s, cluster, obs)
                }
            };
        }
        match &cluster.leader {
            Some(leader) => {
                if local.role == PgRole::Primary {
                    if s.pause {
                        return Plan::status(format!(
                            "PAUSE: continue to run as primary without lock, {leader} holds the leader key"
                        ));
                    }
                    let why = if s.standby_cluster {
                        "cannot be a real primary in a standby cluster"
                    } else {
                        "demoting self because I do not have the lock and I was a leader"
                    };
                    // When our history must be checked first, PostgreSQL comes back following nobody.
                    let follow = (!RewindState::allowed(s)).then(|| leader.clone());
                    return Plan::status(why).with(Action::Demote { mode: DemoteMode::ImmediateNoLock, follow });
                }
                let target = follow_target(s, cluster);
                let mut note = None;
                if !s.standby_cluster {
                    // Patroni's `follow`: a replica on an older timeline than its leader's may have forked from it.
                    let leader_tl = cluster.member(leader).and_then(|m| m.timeline).or(cluster.timeline);
                    let behind = matches!((local.timeline, leader_tl), (Some(mine), Some(theirs)) if mine < theirs);
                    // Beyond Patroni: a new leader, even one on the same timeline number or while we cascade from
                    // a member that did not change (its own history may have been rewound under us). The first
                    // leader this agent sees counts as new: PostgreSQL ran on while the agent was down, and the
                    // leader may have changed meanwhile (simulator, a cascading replica whose agent was killed).
                    let new_leader = self.seen_leader.as_ref() != Some(leader);
                    self.seen_leader = Some(leader.clone());
                    if behind || new_leader {
                        self.rewind.trigger(s);
                    }
                    // A replica streaming from someone else is pointed at the leader first and checked afterwards
                    // (Patroni's order): checked while the old upstream still sends, it could fork after the check.
                    let repoint = local.following.is_some() && local.following != target;
                    if !repoint && matches!(self.rewind, RewindState::Check | RewindState::Need { .. }) {
                        match self.rejoin(s, obs, Some(leader.clone())) {
                            Rejoin::Act(plan) => return plan,
                            // A former primary came back following nobody: it stays so until checked. A replica
                            // already streaming goes on (PostgreSQL itself refuses a forked history).
                            Rejoin::Unchecked if local.following.is_none() => {
                                return Plan::status(format!(
                                    "no action. I am ({}), a secondary, and not following {leader} until our history \
                                     is checked",
                                    s.name
                                ))
                                .log(LogLevel::Warning, not_checked(leader));
                            }
                            Rejoin::Unchecked => {}
                            Rejoin::Follow(line) => note = line,
                        }
                    }
                }
                let mut plan = if local.following != target {
                    let who = target.as_deref().unwrap_or("nobody");
                    // Patroni checks the history again after pointing a replica elsewhere (unless it just did).
                    if !s.standby_cluster && !obs.outcome(|o| matches!(o, Outcome::Divergence { .. })) {
                        self.rewind.trigger(s);
                    }
                    Plan::status(format!("following new leader ({who})")).with(Action::Follow { leader: target })
                } else {
                    let kind = if s.standby_cluster { "a standby leader" } else { "a leader" };
                    Plan::status(format!("no action. I am ({}), a secondary, and following {kind} ({leader})", s.name))
                };
                plan.log.extend(note);
                // We asked the peers for a race someone else won meanwhile: say why we would have let the better
                // one win, as Patroni logs it while comparing, before its own lock attempt fails.
                match obs.peers.as_deref().and_then(|peers| election::better_peer(s, cluster, local, peers)) {
                    Some((level, why)) => plan.log(level, why),
                    None => plan,
                }
            }
            None => self.leader_race(s, cluster, obs),
        }
    }

    /// We hold the leader key and run as primary: refresh, then honour a switchover request.
    fn leader_with_lock(&mut self, s: &Settings, cluster: &ClusterView, obs: &Observation) -> Plan {
        let local = &obs.local;
        if obs.outcome(|o| *o == Outcome::LeaderRefresh { ok: false }) {
            if s.pause {
                // Pause means PostgreSQL is left alone, whatever happens to the key.
                return Plan::status("continue to run as primary after failing to update leader lock in DCS");
            }
            self.held_lock = false;
            return Plan::status("demoted self because failed to update leader lock in DCS")
                .with(Action::Demote { mode: DemoteMode::ImmediateNoLock, follow: None });
        }
        let mut plan = Plan::status(format!("no action. I am ({}), the leader with the lock", s.name))
            .with(Action::UpdateLeader { lsn: local.lsn });
        if let (Some(mine), Some(known)) = (local.timeline, cluster.timeline) {
            if mine > known {
                plan = plan.with(Action::UpdateHistory);
            }
        } else if local.timeline.is_some_and(|t| t > 1) && cluster.timeline.is_none() {
            plan = plan.with(Action::UpdateHistory);
        }
        if s.failsafe_mode {
            let mut members: Vec<Name> = cluster.members.iter().map(|m| m.name.clone()).collect();
            members.sort();
            if cluster.failsafe.as_ref() != Some(&members) {
                plan = plan.with(Action::WriteFailsafe { members: members.clone() });
            }
            // Confirmations during a DCS outage are asked of the members we last wrote, not of those we last read:
            // a member that joined in the last loop before the outage must be asked too.
            self.failsafe_members = members;
        }
        let sync = self.sync.leader_round(s, cluster, local, obs.now);
        plan.actions.extend(sync.actions);
        plan.log.extend(sync.log);
        if sync.soon {
            plan = plan.wake(obs.now + crate::time::Millis::from_secs(1));
        }
        if cluster.failover.is_some() {
            if !s.pause && obs.outcome(|o| *o == Outcome::LeaderRace { won: true }) {
                // Taken back as the running primary: Patroni drops a pending request on acquiring the lock, since it
                // was made for a cluster that had lost its leader and now has it back.
                plan.status = "Cleaning up failover key after acquiring leader lock".into();
                return plan.with(Action::ClearFailover);
            }
            return self.switchover_as_leader(s, cluster, obs, plan);
        }
        plan
    }

    /// A failover key is present and we are the leader.
    pub(crate) fn switchover_as_leader(
        &mut self,
        s: &Settings,
        cluster: &ClusterView,
        obs: &Observation,
        plan: Plan,
    ) -> Plan {
        let Some(f) = &cluster.failover else { return plan };
        if let Some(l) = &f.leader {
            if *l != s.name {
                return Plan::status(format!("manual failover: leader name does not match: {l} != {}", s.name))
                    .with(Action::UpdateLeader { lsn: obs.local.lsn })
                    .with(Action::ClearFailover);
            }
        }
        if let Some(at) = f.scheduled_at {
            if s.pause {
                return Plan::status("Scheduled switchover is not allowed in pause, cancelling it")
                    .with(Action::UpdateLeader { lsn: obs.local.lsn })
                    .with(Action::ClearFailover);
            }
            if at > obs.now {
                let mut waiting = plan;
                waiting.status = format!("Awaiting failover at {} (in {} seconds)", at.0, (at - obs.now).0 / 1000);
                return waiting.wake(at);
            }
        }
        if f.candidate.as_deref() == Some(s.name.as_str()) {
            return Plan::status("manual failover: I am already the leader, no need to failover")
                .with(Action::UpdateLeader { lsn: obs.local.lsn })
                .with(Action::ClearFailover);
        }
        if f.candidate.is_none() && s.pause {
            return Plan::status("manual failover: switchover without a candidate is not allowed in pause")
                .with(Action::UpdateLeader { lsn: obs.local.lsn })
                .with(Action::ClearFailover);
        }
        let candidates: Vec<Name> = match &f.candidate {
            Some(c) => vec![c.clone()],
            None => cluster.members.iter().filter(|m| m.name != s.name).map(|m| m.name.clone()).collect(),
        };
        let Some(peers) = &obs.peers else {
            return plan.with(Action::FetchPeers { members: candidates }).again();
        };
        let mut problems = Vec::new();
        let able = candidates.iter().filter(|name| {
            let reply = peers.iter().find(|p| p.name == **name).and_then(|p| p.reply.as_ref());
            let named = f.candidate.is_some();
            match election::candidate_fit(s, cluster, obs.local.lsn, name, reply) {
                Ok(()) if named || reply.is_some_and(|r| r.tags.can_fail_over()) => true,
                Ok(()) => false,
                Err(e) => {
                    problems.push(e);
                    false
                }
            }
        });
        let able = able.count();
        // Quorum mode without a named candidate: enough voters must be fit to reach the quorum in the race.
        let fit =
            able >= 1 && (f.candidate.is_some() || !election::quorum_active(s, cluster) || able > cluster.sync.quorum);
        if !fit {
            let why = match &f.candidate {
                Some(_) => format!("manual failover: {}", problems.join("; ")),
                None => "manual failover: no healthy members found, failover is not possible".to_string(),
            };
            return Plan::status(why).with(Action::UpdateLeader { lsn: obs.local.lsn }).with(Action::ClearFailover);
        }
        self.held_lock = false;
        Plan::status("manual failover: demoting myself")
            .with(Action::Demote { mode: DemoteMode::Graceful, follow: None })
    }

    /// We hold the key but PostgreSQL is a replica: we just won a race, or someone demoted it by hand.
    fn lock_but_replica(&mut self, s: &Settings, cluster: &ClusterView, obs: &Observation) -> Plan {
        let won_now = obs.outcome(|o| *o == Outcome::LeaderRace { won: true });
        let named = cluster.failover.as_ref().and_then(|f| f.candidate.as_deref()) == Some(s.name.as_str());
        if s.pause && !named {
            self.held_lock = false;
            return Plan::status("PAUSE: released the leader key because PostgreSQL is not the primary")
                .with(Action::ReleaseLeader { lsn: obs.local.lsn });
        }
        let status = if won_now {
            "promoted self to leader by acquiring session lock"
        } else {
            "promoted self to leader because I had the session lock"
        };
        let mut plan = Plan::status(status).with(Action::UpdateLeader { lsn: obs.local.lsn });
        if cluster.failover.is_some() {
            plan = plan.with(Action::ClearFailover);
        }
        // A failed write of the `sync` key stops the plan before the promotion: someone else wrote it, maybe a new
        // leader after we lost ours.
        plan.actions.extend(crate::sync::before_promote(s, cluster));
        plan.with(Action::Promote)
    }
}

/// PostgreSQL last ran here as a primary (its role, or `pg_control` of a stopped or crashed one).
fn was_primary(local: &LocalState) -> bool {
    local.role == PgRole::Primary || local.control_state.is_some_and(ControlState::was_primary)
}

/// The warning of a member that does not stream from `leader` yet because its history could not be compared.
fn not_checked(leader: &str) -> String {
    format!("not following {leader} yet: could not check whether our history diverged from it")
}

/// Everyone to ask before taking a free key: the members with a key, and those in `failsafe` — a leader cut off
/// from the DCS may keep running on its peers' confirmation after its own member key expired.
pub(crate) fn race_members(s: &Settings, cluster: &ClusterView) -> Vec<Name> {
    let mut names: Vec<Name> = cluster.members.iter().map(|m| m.name.clone()).collect();
    for n in cluster.failsafe.iter().flatten() {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    names.retain(|n| *n != s.name);
    names
}

/// A primary on an older timeline than the `history` key shows: someone was promoted since, and taking the key back
/// would discard that promotion.
pub(crate) fn timeline_behind(local: &LocalState, cluster: &ClusterView) -> bool {
    matches!((local.timeline, cluster.timeline), (Some(mine), Some(known)) if mine < known)
}

/// Whom a replica should stream from: its `replicatefrom` member when that one runs, else the leader.
fn follow_target(s: &Settings, cluster: &ClusterView) -> Option<Name> {
    if let Some(upstream) = &s.tags.replicatefrom {
        if *upstream != s.name && cluster.member(upstream).is_some_and(|m| m.running) {
            return Some(upstream.clone());
        }
    }
    cluster.leader.clone()
}

/// A running replica tagged `clonefrom`, preferred over the leader as the source of a new replica.
fn clone_source(s: &Settings, cluster: &ClusterView) -> Option<Name> {
    cluster
        .members
        .iter()
        .find(|m| m.name != s.name && m.tags.clonefrom && m.running && m.role == PgRole::Replica)
        .map(|m| m.name.clone())
}
