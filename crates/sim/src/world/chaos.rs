//! Applying and healing faults, the simulated operator (pause/resume, failover requests), and the quiet period.

use super::*;

impl World {
    pub(super) fn kill_agent(&mut self, m: usize) {
        let agent = &mut self.agents[m];
        agent.alive = false;
        agent.gen += 1;
        agent.dcs_write = None;
        agent.phase = Phase::Sleeping;
        // Children of the agent die with it; what PostgreSQL already does on its own (start, promote) goes on.
        let pg = &mut self.pgs[m];
        if let Some(job) = &pg.job {
            let postgres_own = matches!(
                job.kind,
                JobKind::StartReplica { .. }
                    | JobKind::StartPrimary
                    | JobKind::StartStandbyLeader
                    | JobKind::Promote { .. }
            );
            if !postgres_own {
                pg.job = None;
            }
        }
    }

    pub(super) fn restart_agent(&mut self, m: usize) {
        let config = self.dcs.config.clone();
        self.last_disturbance = self.now;
        let agent = &mut self.agents[m];
        agent.alive = true;
        agent.ha = Ha::new();
        agent.outcomes.clear();
        agent.peers = None;
        agent.rounds = Rounds::new();
        agent.last_view = None;
        agent.named_candidate = false;
        agent.manual_failover = false;
        agent.lsn_when_acquired = None;
        // The heartbeat outlives the agent: the runtime keeps it in the data directory (patroni.failsafe.json).
        agent.config = config;
        agent.phase = Phase::Sleeping;
        agent.gen += 1;
        self.pgs[m].last_failure = None;
        let gen = self.agents[m].gen;
        self.note(Some(m), |_| "agent started".to_string());
        self.schedule(self.now, Ev::Wake { m, gen });
    }

    pub(super) fn crash_postgres(&mut self, m: usize) {
        let pg = &mut self.pgs[m];
        if matches!(pg.proc, Proc::Running | Proc::Starting { .. }) {
            pg.proc = Proc::Crashed { at: self.now };
            pg.pending.clear();
            pg.streaming = false;
            if pg.job.as_ref().is_some_and(|j| !matches!(j.kind, JobKind::DemoteStop { .. })) {
                pg.job = None;
            }
            self.wake(m);
        }
    }

    pub(super) fn cut_links(&mut self, member: usize, delta: i32) {
        for o in 0..self.links.len() {
            if o != member {
                self.adjust_link(member, o, delta);
            }
        }
    }

    pub(super) fn adjust_link(&mut self, a: usize, b: usize, delta: i32) {
        for (x, y) in [(a, b), (b, a)] {
            let c = &mut self.links[x][y];
            *c = c.saturating_add_signed(delta);
        }
    }

    pub(super) fn apply_fault(&mut self, i: usize) {
        let Some(fault) = self.faults.get(i).cloned() else { return };
        let kind = fault.kind;
        self.note(None, |_| format!("FAULT {kind:?}"));
        let heal_after = match kind {
            FaultKind::KillAgent { .. }
            | FaultKind::KillAgentAndGuardian { .. }
            | FaultKind::DcsPartition { .. }
            | FaultKind::Isolate { .. }
            | FaultKind::DcsOutage { .. }
            | FaultKind::SlowDcs { .. }
            | FaultKind::DegradeLeader { .. }
            | FaultKind::IsolateLeader { .. }
            | FaultKind::CutLeaderFromDcs { .. }
                if !self.opts.pause_hazards && (self.dcs.config.pause || self.now < self.resume_settles_until) =>
            {
                self.note(None, |_| "skipped: paused or just resumed (pause_hazards off)".to_string());
                None
            }
            FaultKind::Pause { .. } if !self.opts.pause_hazards && self.dcs_disturbed() => {
                self.note(None, |_| "pause skipped: a member is not settled (pause_hazards off)".to_string());
                None
            }
            FaultKind::KillAgent { member, down } => {
                if self.agents[member].alive {
                    self.kill_agent(member);
                    let gen = self.agents[member].gen;
                    self.schedule(self.now + down, Ev::AgentRestart { m: member, gen });
                }
                None
            }
            FaultKind::KillAgentAndGuardian { member, down } => {
                if self.agents[member].alive {
                    self.kill_agent(member);
                    let gen = self.agents[member].gen;
                    self.schedule(self.now + down, Ev::AgentRestart { m: member, gen });
                }
                if self.opts.guardian {
                    // A device would survive; a guardian process does not.
                    self.agents[member].watchdog = None;
                    self.agents[member].guardian_gen += 1;
                }
                None
            }
            FaultKind::CrashPostgres { member } => {
                self.crash_postgres(member);
                None
            }
            FaultKind::DcsPartition { member, lasts } => {
                self.dcs_cut[member] += 1;
                Some(lasts)
            }
            FaultKind::PeerPartition { member, lasts } => {
                self.cut_links(member, 1);
                Some(lasts)
            }
            FaultKind::LinkCut { a, b, lasts } => {
                self.adjust_link(a, b, 1);
                Some(lasts)
            }
            FaultKind::Isolate { member, lasts } => {
                self.dcs_cut[member] += 1;
                self.cut_links(member, 1);
                Some(lasts)
            }
            FaultKind::DcsOutage { lasts } => {
                self.dcs_down += 1;
                Some(lasts)
            }
            FaultKind::IsolateLeader { lasts } => match self.dcs.leader_at(self.now) {
                Some(leader) => {
                    self.fault_target[i] = Some(leader);
                    self.dcs_cut[leader] += 1;
                    self.cut_links(leader, 1);
                    Some(lasts)
                }
                None => None,
            },
            FaultKind::CutLeaderFromDcs { lasts } => match self.dcs.leader_at(self.now) {
                Some(leader) => {
                    self.fault_target[i] = Some(leader);
                    self.dcs_cut[leader] += 1;
                    Some(lasts)
                }
                None => None,
            },
            FaultKind::CutLeaderFromOnePeer { lasts } => {
                // The leader by the key, or (key expired under failsafe) whoever still runs as primary.
                let leader =
                    self.dcs.leader_at(self.now).or_else(|| (0..self.pgs.len()).find(|&p| self.pgs[p].writable()));
                match leader.and_then(|l| (0..self.pgs.len()).find(|&o| o != l).map(|o| (l, o))) {
                    Some((leader, other)) => {
                        self.fault_link[i] = Some((leader, other));
                        self.adjust_link(leader, other, 1);
                        Some(lasts)
                    }
                    None => None,
                }
            }
            FaultKind::CutCandidateFromLeader { lasts } => {
                let candidate = self.dcs.failover.as_ref().and_then(|f| f.candidate.as_deref());
                let candidate = candidate.and_then(|c| self.index(c));
                match (self.dcs.leader_at(self.now), candidate) {
                    (Some(leader), Some(candidate)) if leader != candidate => {
                        self.fault_link[i] = Some((leader, candidate));
                        self.adjust_link(leader, candidate, 1);
                        Some(lasts)
                    }
                    _ => None,
                }
            }
            FaultKind::DegradeLeader { dcs_after, lasts } => match self.dcs.leader_at(self.now) {
                Some(leader) => {
                    self.fault_target[i] = Some(leader);
                    self.cut_links(leader, 1);
                    self.schedule(self.now + dcs_after, Ev::CutFromDcs(i));
                    Some(dcs_after + lasts)
                }
                None => None,
            },
            FaultKind::SlowDcs { lasts } => {
                self.slow_dcs_until = self.slow_dcs_until.max(self.now + lasts);
                None
            }
            FaultKind::SlowDisk { member, lasts } => {
                self.pgs[member].slow_disk_until = self.now + lasts;
                None
            }
            FaultKind::StallReplication { member, lasts } => {
                self.pgs[member].stalled_until = self.now + lasts;
                None
            }
            FaultKind::FailoverKey { switchover, with_candidate, scheduled_in } => {
                self.request_failover(switchover, with_candidate, scheduled_in);
                None
            }
            FaultKind::Pause { lasts } => {
                self.dcs.config.pause = true;
                Some(lasts)
            }
            FaultKind::SyncModeChange { mode, strict, node_count } => {
                let c = &mut self.dcs.config;
                if mode == SyncMode::Off && c.sync_mode != SyncMode::Off {
                    // The operator withdraws the promise: what was acknowledged so far may be lost by an asynchronous
                    // failover from now on (writes the old standbys still acknowledge count again below).
                    self.last_sync_ack = None;
                }
                c.sync_mode = mode;
                c.sync_strict = strict;
                c.sync_node_count = node_count;
                None
            }
            FaultKind::ConfigChange { ttl, loop_wait, retry_timeout, maximum_lag_on_failover } => {
                let c = &mut self.dcs.config;
                let until = self.now + (c.loop_wait + c.retry_timeout) as i64 * 2;
                if c.maximum_lag_on_failover != maximum_lag_on_failover {
                    self.previous_max_lag = (c.maximum_lag_on_failover, until);
                }
                c.ttl = ttl;
                c.loop_wait = loop_wait;
                c.retry_timeout = retry_timeout;
                c.maximum_lag_on_failover = maximum_lag_on_failover;
                None
            }
        };
        if let Some(lasts) = heal_after {
            self.schedule(self.now + lasts, Ev::Heal(i));
        }
    }

    /// What `patronictl switchover/failover` would write, after the checks the REST API makes.
    pub(super) fn request_failover(&mut self, switchover: bool, with_candidate: bool, scheduled_in: Option<i64>) {
        let leader = self.dcs.leader_at(self.now);
        let mut eligible: Vec<usize> =
            (0..self.names.len()).filter(|&c| Some(c) != leader && self.tags[c].can_fail_over()).collect();
        if self.dcs.sync_enabled() {
            // Patroni's API requires this of a switchover only; a failover may name an asynchronous standby (allowed
            // to lose writes, see `complete_promotion`). This operator does not: once such a candidate lost its key
            // before writing the `sync` key, nobody may promote again, Patroni's documented price of synchronous
            // mode, and the convergence check would fail.
            eligible.retain(|&c| self.dcs.sync.is_sync_standby(&self.names[c]));
        }
        let candidate = if with_candidate || !switchover { self.rng.pick(&eligible) } else { None };
        if (switchover && leader.is_none()) || (!switchover && candidate.is_none()) {
            self.note(None, |_| "failover request rejected by the API".to_string());
            return;
        }
        if self.dcs.config.pause && (scheduled_in.is_some() || candidate.is_none()) {
            self.note(None, |_| "failover request rejected by the API (paused)".to_string());
            return;
        }
        self.dcs.failover = Some(FailoverRequest {
            leader: if switchover { leader.map(|l| self.names[l].clone()) } else { None },
            candidate: candidate.map(|c| self.names[c].clone()),
            scheduled_at: scheduled_in.map(|d| Time(self.now + d)),
        });
        let request = self.dcs.failover.clone();
        self.note(None, |_| format!("failover key written: {request:?}"));
        self.leader_key_changed();
    }

    pub(super) fn heal(&mut self, i: usize) {
        if i == usize::MAX {
            self.dcs.config.pause = false;
            self.note(None, |_| "resumed (quiet period)".to_string());
            return;
        }
        let Some(fault) = self.faults.get(i).cloned() else { return };
        if self.now >= self.quiet_at {
            return;
        }
        if matches!(
            fault.kind,
            FaultKind::DcsPartition { .. }
                | FaultKind::Isolate { .. }
                | FaultKind::DcsOutage { .. }
                | FaultKind::DegradeLeader { .. }
                | FaultKind::IsolateLeader { .. }
                | FaultKind::CutLeaderFromDcs { .. }
        ) {
            self.last_disturbance = self.now;
        }
        match fault.kind {
            FaultKind::DcsPartition { member, .. } => self.dcs_cut[member] = self.dcs_cut[member].saturating_sub(1),
            FaultKind::PeerPartition { member, .. } => self.cut_links(member, -1),
            FaultKind::LinkCut { a, b, .. } => self.adjust_link(a, b, -1),
            FaultKind::Isolate { member, .. } => {
                self.dcs_cut[member] = self.dcs_cut[member].saturating_sub(1);
                self.cut_links(member, -1);
            }
            FaultKind::DcsOutage { .. } => self.dcs_down = self.dcs_down.saturating_sub(1),
            FaultKind::IsolateLeader { .. } => {
                if let Some(m) = self.fault_target.get(i).copied().flatten() {
                    self.cut_links(m, -1);
                    self.dcs_cut[m] = self.dcs_cut[m].saturating_sub(1);
                }
            }
            FaultKind::CutLeaderFromDcs { .. } => {
                if let Some(m) = self.fault_target.get(i).copied().flatten() {
                    self.dcs_cut[m] = self.dcs_cut[m].saturating_sub(1);
                }
            }
            FaultKind::CutCandidateFromLeader { .. } | FaultKind::CutLeaderFromOnePeer { .. } => {
                if let Some((a, b)) = self.fault_link.get(i).copied().flatten() {
                    self.adjust_link(a, b, -1);
                }
            }
            FaultKind::DegradeLeader { .. } => {
                if let Some(m) = self.fault_target.get(i).copied().flatten() {
                    self.cut_links(m, -1);
                    self.dcs_cut[m] = self.dcs_cut[m].saturating_sub(1);
                }
            }
            FaultKind::Pause { .. } => {
                self.resume(i);
                return;
            }
            _ => {}
        }
        self.note(None, |_| format!("healed {:?}", fault.kind));
    }

    /// How long every member needs to have read the DCS at least once: the longest loop plus a slow read.
    pub(super) fn settle_time(&self) -> i64 {
        let c = std::iter::once(&self.dcs.config).chain(self.agents.iter().map(|a| &a.config));
        c.map(|c| c.loop_wait + 2 * c.retry_timeout).max().unwrap_or(0) as i64 + 1_000
    }

    /// Whether some member may hold a stale view of the DCS (cut off, slow answers, dead agent, recently so).
    pub(super) fn dcs_disturbed(&self) -> bool {
        self.dcs_down > 0
            || self.dcs_cut.iter().any(|c| *c > 0)
            || self.now < self.slow_dcs_until
            || self.agents.iter().any(|a| !a.alive && !a.fatal)
            || self.now < self.last_disturbance + self.settle_time()
    }

    /// The operator resumes (`patronictl resume`), after checking every member is there unless told to be reckless.
    pub(super) fn resume(&mut self, i: usize) {
        if !self.opts.pause_hazards && self.dcs_disturbed() {
            self.schedule(self.now + 1_000, Ev::Heal(i));
            return;
        }
        self.dcs.config.pause = false;
        self.resume_settles_until = self.now + self.settle_time() + self.dcs.config.ttl as i64;
        self.note(None, |_| "resumed".to_string());
    }

    /// Faults stop: the network heals, dead agents come back, pause ends. The cluster must converge by `end_at`.
    pub(super) fn quiet(&mut self) {
        self.dcs_down = 0;
        self.dcs_cut.iter_mut().for_each(|c| *c = 0);
        self.links.iter_mut().for_each(|row| row.iter_mut().for_each(|c| *c = 0));
        self.slow_dcs_until = 0;
        for pg in &mut self.pgs {
            pg.slow_disk_until = 0;
            pg.stalled_until = 0;
        }
        for m in 0..self.agents.len() {
            if !self.agents[m].alive && !self.agents[m].fatal {
                self.restart_agent(m);
            }
        }
        self.last_disturbance = self.now;
        let settle = self.settle_time();
        if self.dcs.config.pause {
            // Resume once everyone has read the DCS again (see `resume`); the bound below starts from there.
            let resume_at = if self.opts.pause_hazards { self.now } else { self.now + settle };
            self.schedule(resume_at, Ev::Heal(usize::MAX));
        }
        let resume_delay = if self.dcs.config.pause && !self.opts.pause_hazards { settle } else { 0 };
        let c = &self.dcs.config;
        // Old leases expire, agents notice within a loop, a race, a promotion, replicas restart and catch up.
        let bound = 3 * c.ttl + 4 * c.loop_wait + 2 * c.retry_timeout + 15_000;
        self.end_at = self.now + resume_delay + bound as i64;
        self.note(None, |_| format!("QUIET: faults stop; must converge within {}ms", bound));
    }
}
