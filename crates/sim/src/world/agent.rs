//! The agent loop of one member (observe, step, act, sleep) and what each action does to the world.

use super::*;

impl World {
    pub(super) fn start_read(&mut self, m: usize, after: i64) {
        let (took, fails) = self.dcs_latency(m);
        let gen = self.agents[m].gen;
        self.agents[m].phase = Phase::Reading;
        self.agents[m].snapshot = None;
        if !fails {
            // The answer reflects some instant during the request, not necessarily its end: decisions can be
            // as stale as the read was slow.
            let at = self.now + after + self.rng.ms(0, took);
            self.schedule(at, Ev::Snapshot { m, gen });
        }
        self.schedule(self.now + after + took, Ev::Read { m, gen, fails });
    }

    /// The DCS answers the read as it stands now (if this member can reach it now).
    pub(super) fn take_snapshot(&mut self, m: usize) {
        if self.dcs_reachable(m) {
            self.publish_member(m);
            self.agents[m].snapshot = Some((self.dcs.view(self.now, &self.names), self.dcs.config.clone()));
        }
    }

    pub(super) fn observe_and_step(&mut self, m: usize, fails: bool) {
        let snapshot = if fails { None } else { self.agents[m].snapshot.take() };
        let cluster = snapshot.map(|(view, config)| {
            self.agents[m].config = config;
            view
        });
        let settings = self.settings(m);
        let local = self.local_state(m);
        let agent = &mut self.agents[m];
        agent.last_view = cluster.clone();
        agent.settings = settings.clone();
        let mut obs = Observation {
            now: Time(self.now),
            cluster,
            local,
            peers: agent.peers.take(),
            outcomes: std::mem::take(&mut agent.outcomes),
            failsafe_heartbeat: agent.failsafe_heartbeat.clone(),
            // The simulated operator schedules no restarts.
            scheduled_restart: None,
        };
        if let Some(mutation) = self.opts.mutation {
            mutation.observation(&mut obs, agent.ha.holds_lock());
        }
        let mut plan = agent.ha.step(&settings, &obs);
        self.steps += 1;
        if let Some(mutation) = self.opts.mutation {
            mutation.plan(&obs, &mut plan);
        }
        let agent = &mut self.agents[m];
        if let Some(c) = &obs.cluster {
            agent.saw_failover_key = c.failover.is_some();
        }
        // The core's rule (`watchdog::arm_or_disarm`): disarmed on pause and without the key, but not while
        // PostgreSQL runs as primary (stepping down disarms it on its own, in the demotion's actions below).
        let primary = self.pgs[m].proc == Proc::Running && self.role(m) == PgRole::Primary;
        let agent = &mut self.agents[m];
        if agent.config.pause || !(agent.ha.holds_lock() || primary) {
            agent.watchdog = None;
        }
        agent.plan = plan;
        agent.next = 0;
        agent.phase = Phase::Acting;
        let gen = agent.gen;
        self.note(Some(m), |w| {
            let p = &w.agents[m].plan;
            let dcs = if obs.cluster.is_some() { "" } else { "[no DCS] " };
            let again = if p.again { " (again)" } else { "" };
            // The reason lines the agent would log, after the status (the trace shows why, not only what).
            let why: String = p.log.iter().map(|(_, line)| format!(" [{line}]")).collect();
            format!("{dcs}{}{why} | {:?}{again}", p.status, p.actions)
        });
        self.schedule(self.now, Ev::Act { m, gen });
    }

    pub(super) fn act(&mut self, m: usize) {
        let next = self.agents[m].next;
        let Some(action) = self.agents[m].plan.actions.get(next).cloned() else {
            self.finish_loop(m, 0);
            return;
        };
        if is_dcs_write(&action) && self.agents[m].dcs_write.is_none() {
            // The write reaches the DCS at some instant during the request, not when it is sent: a refresh may
            // land after the lease ran out, an acquire after someone else's.
            let (took, fails) = self.dcs_latency(m);
            let lands = self.rng.ms(0, took);
            self.agents[m].dcs_write = Some((took - lands, fails));
            let gen = self.agents[m].gen;
            self.schedule(self.now + lands, Ev::Act { m, gen });
            return;
        }
        let r = self.execute(m, &action);
        if !r.ok {
            self.note(Some(m), |_| format!("action failed: {action:?}"));
        }
        let agent = &mut self.agents[m];
        if r.ok && next + 1 < agent.plan.actions.len() {
            agent.next = next + 1;
            let gen = agent.gen;
            self.schedule(self.now + r.took, Ev::Act { m, gen });
        } else {
            self.finish_loop(m, r.took);
        }
    }

    /// The plan is done (or stopped at a failure): look again at once, or sleep.
    pub(super) fn finish_loop(&mut self, m: usize, after: i64) {
        let agent = &mut self.agents[m];
        match agent.rounds.after(&agent.plan, &agent.outcomes) {
            Next::Again { reread: true } => {
                self.start_read(m, after);
                return;
            }
            Next::Again { reread: false } => {
                // A failed refresh is decided on at once on the view it was made from; one the DCS did not answer
                // counts as the DCS being down, as in the runtime.
                let unanswered = !self.dcs_reachable(m);
                let agent = &mut self.agents[m];
                if unanswered {
                    agent.outcomes.retain(|o| *o != Outcome::LeaderRefresh { ok: false });
                }
                agent.snapshot =
                    if unanswered { None } else { agent.last_view.clone().map(|v| (v, agent.config.clone())) };
                agent.phase = Phase::Reading;
                let gen = agent.gen;
                self.schedule(self.now + after, Ev::Read { m, gen, fails: unanswered });
                return;
            }
            Next::Sleep => {}
        }
        // The runtime's slot upkeep follows the HA plan, once per cycle.
        self.slot_upkeep(m);
        let agent = &mut self.agents[m];
        agent.phase = Phase::Sleeping;
        let wake = self.now + after;
        let mut sleep = agent.config.loop_wait as i64;
        if let Some(Time(at)) = agent.plan.wake_at {
            // Never spin: a due wake-up still waits a little.
            sleep = sleep.min((at - wake).max(100));
        }
        let gen = agent.gen;
        self.schedule(wake + sleep, Ev::Wake { m, gen });
    }

    /// Cut a sleeping agent's sleep short (DCS watch, PostgreSQL process watcher).
    pub(super) fn wake(&mut self, m: usize) {
        let agent = &mut self.agents[m];
        if agent.alive && agent.phase == Phase::Sleeping {
            agent.gen += 1;
            let gen = agent.gen;
            let at = self.now + self.rng.ms(1, 10);
            self.schedule(at, Ev::Wake { m, gen });
        }
    }

    /// The leader key changed: everybody watching it (and able to hear about it) wakes up.
    pub(super) fn leader_key_changed(&mut self) {
        for m in 0..self.agents.len() {
            if self.dcs_reachable(m) {
                self.wake(m);
            }
        }
    }

    pub(super) fn settings(&self, m: usize) -> Settings {
        let c = &self.agents[m].config;
        let mut s = Settings {
            name: self.names[m].clone(),
            ttl: Millis(c.ttl),
            loop_wait: Millis(c.loop_wait),
            retry_timeout: Millis(c.retry_timeout),
            maximum_lag_on_failover: c.maximum_lag_on_failover,
            primary_start_timeout: Millis(c.primary_start_timeout),
            sync_mode: c.sync_mode,
            sync_strict: c.sync_strict,
            sync_node_count: c.sync_node_count,
            pause: c.pause,
            failsafe_mode: c.failsafe_mode,
            use_pg_rewind: true,
            standby_cluster: self.opts.standby_cluster,
            tags: self.tags[m].clone(),
            ..Settings::default()
        };
        if let Some(mutation) = self.opts.mutation {
            mutation.settings(&mut s, self.agents[m].ha.holds_lock());
        }
        s
    }

    pub(super) fn role(&self, m: usize) -> PgRole {
        let pg = &self.pgs[m];
        match (&pg.data, pg.proc) {
            (Some(d), Proc::Running) if d.primary => PgRole::Primary,
            (Some(_), Proc::Running) if pg.standby_leader => PgRole::StandbyLeader,
            (Some(_), Proc::Running) => PgRole::Replica,
            _ => PgRole::Unknown,
        }
    }

    pub(super) fn timeline(&self, m: usize) -> Option<u32> {
        self.pgs[m].data.as_ref().map(|d| self.lineage.timeline(d.pos.fork))
    }

    pub(super) fn lsn(&self, m: usize) -> Option<u64> {
        self.pgs[m].data.as_ref().map(|d| d.pos.lsn)
    }

    pub(super) fn pos(&self, m: usize) -> Option<Pos> {
        self.pgs[m].data.as_ref().map(|d| d.pos)
    }

    pub(super) fn publish_member(&mut self, m: usize) {
        let view = MemberView {
            name: self.names[m].clone(),
            role: match self.role(m) {
                PgRole::Unknown => PgRole::Replica,
                r => r,
            },
            running: self.pgs[m].proc == Proc::Running,
            lsn: self.lsn(m),
            timeline: self.timeline(m),
            tags: self.tags[m].clone(),
        };
        let expires = self.now + self.agents[m].config.ttl as i64;
        self.dcs.members.insert(m, (view, expires));
    }

    pub(super) fn local_state(&self, m: usize) -> LocalState {
        let pg = &self.pgs[m];
        let replication = if self.role(m) == PgRole::Primary {
            let (counted, _) = self.sync_standbys(m);
            (0..self.pgs.len())
                .filter(|&r| r != m && self.pgs[r].upstream == Some(m) && self.role(r) == PgRole::Replica)
                .map(|r| ReplicaConn {
                    name: self.names[r].clone(),
                    streaming: self.pgs[r].streaming,
                    synchronous: counted.contains(&r),
                    lsn: self.lsn(r),
                    write_lsn: self.lsn(r),
                    replay_lsn: self.lsn(r),
                })
                .collect()
        } else {
            Vec::new()
        };
        LocalState {
            data_dir: match &pg.data {
                Some(d) => DataDir::Initialized { sysid: d.sysid.clone() },
                None => DataDir::Empty,
            },
            process: match pg.proc {
                Proc::Stopped => Process::Stopped,
                Proc::Starting { since } => Process::Starting { since: Time(since) },
                Proc::Running => Process::Running,
                Proc::Crashed { at } => Process::Crashed { at: Time(at) },
            },
            role: match (&pg.data, pg.proc) {
                (_, Proc::Running) => self.role(m),
                (Some(d), _) if d.primary => PgRole::Primary,
                (Some(_), _) => PgRole::Replica,
                (None, _) => PgRole::Unknown,
            },
            control_state: match (&pg.data, pg.proc) {
                (_, Proc::Running) | (None, _) => None,
                (Some(d), _) if d.primary => Some(ControlState::InProduction),
                (Some(_), _) => Some(ControlState::ShutDownInRecovery),
            },
            recovery_configured: pg.data.as_ref().is_some_and(|d| !d.primary),
            lsn: self.lsn(m),
            timeline: self.timeline(m),
            following: pg.upstream.map(|u| self.names[u].clone()),
            replication,
            sync_standby_names: SyncStandbyNames {
                any: pg.sync_any,
                num: pg.sync_num,
                names: pg.sync_names.iter().filter(|n| *n != "*").cloned().collect(),
                star: pg.sync_names.iter().any(|n| n == "*"),
            },
            busy: pg.job.as_ref().map(|j| j.busy.clone()),
            last_failure: pg.last_failure.clone(),
            watchdog: Default::default(),
        }
    }

    /// The standbys whose acknowledgements count for primary `m`'s commits, and how many of them a commit needs:
    /// PostgreSQL's rule for `synchronous_standby_names`. Candidates are the listed (or, with `*`, any) standbys
    /// streaming from it; `FIRST n` counts the first `n` of them in listed order, `ANY n` all of them.
    pub(super) fn sync_standbys(&self, m: usize) -> (Vec<usize>, usize) {
        let pg = &self.pgs[m];
        let streams = |r: usize| {
            let rp = &self.pgs[r];
            r != m && rp.upstream == Some(m) && rp.streaming && self.role(r) == PgRole::Replica
        };
        let star = pg.sync_names.iter().any(|n| n == "*");
        let candidates: Vec<usize> = if star {
            (0..self.pgs.len()).filter(|&r| streams(r)).collect()
        } else {
            pg.sync_names.iter().filter_map(|n| self.index(n)).filter(|&r| streams(r)).collect()
        };
        let counted = if pg.sync_any { candidates } else { candidates.into_iter().take(pg.sync_num).collect() };
        (counted, pg.sync_num)
    }

    /// What the runtime's history comparison finds: the lineage's answer when the primary `against` is reachable
    /// and runs as a primary, `Unknown` otherwise. The remote primary of a standby cluster is not modelled: its
    /// history always continues ours.
    fn divergence(&self, m: usize, against: Option<&str>) -> Divergence {
        let Some(name) = against else { return Divergence::NotDiverged };
        let Some(l) = self.index(name) else { return Divergence::Unknown };
        if !self.link(m, l) || self.role(l) != PgRole::Primary {
            return Divergence::Unknown;
        }
        match (self.pos(m), self.pos(l)) {
            (Some(ours), Some(theirs)) => match self.lineage.relation(ours, theirs) {
                Relation::Behind | Relation::Ahead => Divergence::NotDiverged,
                Relation::Diverged => Divergence::Diverged { rewind_possible: true },
            },
            _ => Divergence::Unknown,
        }
    }

    pub(super) fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    // ----- actions -----

    /// A DCS write landing now (see `act`): how much longer the request takes, and whether it succeeded.
    pub(super) fn dcs_op(&mut self, m: usize) -> (i64, bool) {
        let (rest, fails) = match self.agents[m].dcs_write.take() {
            Some(pending) => pending,
            None => self.dcs_latency(m),
        };
        (rest, !fails && self.dcs_reachable(m))
    }

    pub(super) fn execute(&mut self, m: usize, action: &Action) -> Exec {
        match action {
            Action::AttemptInitialize => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    let won = self.dcs.initialize.is_none();
                    if won {
                        self.dcs.initialize = Some(String::new());
                    }
                    self.agents[m].outcomes.push(Outcome::InitializeRace { won });
                }
                Exec { ok, took }
            }
            Action::SetInitialize { sysid } => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    self.dcs.initialize = Some(sysid.clone());
                }
                Exec { ok, took }
            }
            Action::CancelInitialize => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    self.dcs.initialize = None;
                }
                Exec { ok, took }
            }
            Action::Bootstrap => self.start_job(m, JobKind::Bootstrap, Busy::Bootstrapping),
            Action::BootstrapStandby => self.start_job(m, JobKind::BootstrapStandby, Busy::Bootstrapping),
            Action::StartStandbyLeader => self.start_job(m, JobKind::StartStandbyLeader, Busy::Starting),
            Action::FollowRemote => {
                let pg = &mut self.pgs[m];
                if pg.proc != Proc::Running || pg.data.as_ref().is_none_or(|d| d.primary) {
                    return Exec { ok: false, took: 0 };
                }
                pg.standby_leader = true;
                pg.upstream = None;
                pg.streaming = false;
                Exec { ok: true, took: self.rng.ms(5, 50) }
            }
            Action::DemoteCluster => {
                // Fast shutdown, then a start in recovery as the standby leader; the key stays ours.
                let pg = &mut self.pgs[m];
                if matches!(pg.proc, Proc::Running | Proc::Starting { .. }) {
                    pg.proc = Proc::Stopped;
                }
                pg.pending.clear();
                pg.job = None;
                self.agents[m].watchdog = None;
                self.start_job(m, JobKind::StartStandbyLeader, Busy::Demoting)
            }
            Action::CreateReplica { from } => {
                let from = from.as_deref().and_then(|f| self.index(f));
                self.start_job(m, JobKind::Clone { from }, Busy::CreatingReplica)
            }
            Action::StartReplica { follow } => {
                let follow = follow.as_deref().and_then(|f| self.index(f));
                self.start_job(m, JobKind::StartReplica { follow }, Busy::Starting)
            }
            Action::StartPrimary => self.start_job(m, JobKind::StartPrimary, Busy::Starting),
            Action::MarkDemoted => Exec { ok: true, took: 0 },
            Action::Follow { leader } => {
                let follow = leader.as_deref().and_then(|f| self.index(f));
                if self.pgs[m].upstream != follow || self.pgs[m].standby_leader {
                    self.pgs[m].upstream = follow;
                    self.pgs[m].streaming = false;
                    self.pgs[m].standby_leader = false;
                }
                Exec { ok: true, took: self.rng.ms(5, 50) }
            }
            Action::CheckDivergence { against } => {
                let result = self.divergence(m, against.as_deref());
                self.agents[m].outcomes.push(Outcome::Divergence { against: against.clone(), result });
                Exec { ok: true, took: self.rng.ms(5, 50) }
            }
            Action::Rewind { from: None } => self.start_job(m, JobKind::Rewind { from: None }, Busy::Rewinding),
            Action::Rewind { from: Some(from) } => match self.index(from) {
                Some(from) => self.start_job(m, JobKind::Rewind { from: Some(from) }, Busy::Rewinding),
                None => Exec { ok: false, took: 0 },
            },
            Action::Reinitialize { from } => {
                let from = from.as_deref().and_then(|f| self.index(f));
                self.start_job(m, JobKind::Reinitialize { from }, Busy::Reinitializing)
            }
            Action::Promote => {
                if self.role(m) != PgRole::Replica || self.pgs[m].job.is_some() {
                    return Exec { ok: false, took: 0 };
                }
                self.check_promotion_allowed(m);
                let manual_failover = self.agents[m].manual_failover;
                self.start_job(m, JobKind::Promote { manual_failover }, Busy::Promoting)
            }
            Action::Demote { mode, follow } => {
                if self.agents[m].config.pause && !self.agents[m].saw_failover_key {
                    let detail = format!("{} demoted ({mode:?}) while paused", self.names[m]);
                    self.violate(Invariant::PauseViolated, detail);
                }
                let follow = follow.as_deref().and_then(|f| self.index(f));
                // Fast shutdown ends every session first: writes stop the moment the demotion starts.
                let pg = &mut self.pgs[m];
                if matches!(pg.proc, Proc::Running | Proc::Starting { .. }) {
                    pg.proc = Proc::Stopped;
                }
                pg.pending.clear();
                pg.job = None;
                self.agents[m].watchdog = None;
                self.start_job(m, JobKind::DemoteStop { mode: *mode, follow }, Busy::Demoting)
            }
            Action::Restart | Action::ScheduledRestart => self.start_job(m, JobKind::Restart, Busy::Restarting),
            Action::ClearScheduledRestart => Exec { ok: true, took: 0 },
            Action::Reload => Exec { ok: true, took: 1 },
            Action::AcquireLeader => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    let won = self.dcs.leader_at(self.now).is_none();
                    if won {
                        let expires = self.now + self.agents[m].config.ttl as i64;
                        self.dcs.leader = Some(Lease { holder: m, expires });
                        let me = self.names[m].as_str();
                        let request = self.dcs.failover.as_ref().filter(|f| f.candidate.as_deref() == Some(me));
                        self.agents[m].named_candidate = request.is_some();
                        // Quorum mode: a switchover's candidate takes the key without the quorum comparison once its
                        // leader is gone, as in Patroni (`manual_failover_process_no_leader`); if that leader vanished
                        // instead of handing over, the candidate may lack what another voter acknowledged. A hazard
                        // shared with Patroni, counted with the operators' manual failovers.
                        let quorum = self.agents[m].config.sync_mode == SyncMode::Quorum;
                        self.agents[m].manual_failover = request.is_some_and(|f| f.leader.is_none() || quorum);
                        self.agents[m].lsn_when_acquired = self.dcs.last_leader_lsn;
                        self.keepalive(m);
                        self.schedule(expires, Ev::LeaseCheck);
                        self.leader_key_changed();
                    }
                    self.agents[m].outcomes.push(Outcome::LeaderRace { won });
                }
                Exec { ok, took }
            }
            Action::UpdateLeader { lsn } => {
                let (took, ok) = self.dcs_op(m);
                let ours = ok && self.dcs.leader_at(self.now) == Some(m);
                if ours {
                    let expires = self.now + self.agents[m].config.ttl as i64;
                    self.dcs.leader = Some(Lease { holder: m, expires });
                    if let Some(lsn) = *lsn {
                        self.dcs.last_leader_lsn = Some(lsn);
                        self.publish_slots(m, lsn);
                    }
                    self.keepalive(m);
                    self.schedule(expires, Ev::LeaseCheck);
                } else {
                    self.agents[m].outcomes.push(Outcome::LeaderRefresh { ok: false });
                }
                Exec { ok: ours, took }
            }
            Action::ReleaseLeader { lsn } => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    self.release_leader(m, *lsn);
                }
                Exec { ok, took }
            }
            Action::FetchPeers { members } => {
                let mut took = 0;
                let mut replies = Vec::new();
                for name in members {
                    let (reply, t) = match self.index(name) {
                        Some(p) => self.rest_call(m, p),
                        None => (None, 1),
                    };
                    took = took.max(t);
                    replies.push(PeerStatus { name: name.clone(), reply });
                }
                self.agents[m].peers = Some(replies);
                Exec { ok: true, took }
            }
            Action::ClearFailover => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    self.dcs.failover = None;
                }
                Exec { ok, took }
            }
            Action::UpdateHistory => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    self.dcs.history_timeline = self.timeline(m);
                }
                Exec { ok, took }
            }
            Action::SetSyncState { leader, standbys, quorum } => {
                // A new leader keeps the former one as a voter (it may hold the newest commits), whatever its tags.
                let added: Vec<String> = standbys
                    .iter()
                    .filter(|n| !self.dcs.sync.standbys.contains(n) && self.dcs.sync.leader.as_ref() != Some(*n))
                    .cloned()
                    .collect();
                self.check_nosync(m, &added);
                let (took, ok) = self.dcs_op(m);
                if ok {
                    self.dcs.sync.leader = Some(leader.clone());
                    self.dcs.sync.standbys = standbys.clone();
                    self.dcs.sync.quorum = *quorum;
                }
                Exec { ok, took }
            }
            Action::DeleteSyncState => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    self.dcs.sync = SyncView::default();
                }
                Exec { ok, took }
            }
            Action::SetSyncStandbys { names, num, any } => {
                // Before promoting, the former voters (the former leader among them) stay listed whatever their
                // tags, as in Patroni: only names a primary adds count.
                if self.role(m) == PgRole::Primary {
                    let added: Vec<String> =
                        names.iter().filter(|n| !self.pgs[m].sync_names.contains(n)).cloned().collect();
                    self.check_nosync(m, &added);
                }
                let star = names.is_empty() && num.is_some_and(|n| n >= 1);
                let pg = &mut self.pgs[m];
                pg.sync_names = if star { vec!["*".into()] } else { names.clone() };
                pg.sync_num = if pg.sync_names.is_empty() { 0 } else { num.unwrap_or(pg.sync_names.len()) };
                pg.sync_any = *any;
                self.settle_sync_acks(m);
                Exec { ok: true, took: self.rng.ms(1, 20) }
            }
            Action::WriteFailsafe { members } => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    self.dcs.failsafe = Some(members.clone());
                }
                Exec { ok, took }
            }
            Action::CheckFailsafe { members } => {
                let mut took = 0;
                let mut confirmed = true;
                for name in members {
                    let (reply, t) = match self.index(name) {
                        Some(p) => self.rest_call(m, p),
                        None => (None, 1),
                    };
                    took = took.max(t);
                    // Patroni's `update_failsafe`: a member running as primary answers "Running as a leader".
                    let accepted = reply.is_some_and(|r| !(r.running && r.role == PgRole::Primary));
                    if let (true, Some(p)) = (accepted, self.index(name)) {
                        // The member remembers whom it confirmed (the agent does the same in `update_failsafe`).
                        self.agents[p].failsafe_heartbeat = Some((self.names[m].clone(), Time(self.now)));
                    }
                    confirmed &= accepted;
                }
                self.agents[m].outcomes.push(Outcome::Failsafe { confirmed });
                if confirmed && self.agents[m].watchdog.is_some() {
                    // Every member confirmed us: the runtime keeps the watchdog alive, as Patroni does.
                    self.keepalive(m);
                }
                Exec { ok: true, took }
            }
            Action::ArmWatchdog { .. } | Action::DisarmWatchdog => Exec { ok: true, took: 0 },
            Action::Fatal { reason } => {
                let reason = reason.clone();
                self.note(Some(m), |_| format!("agent exits: {reason}"));
                self.agents[m].fatal = true;
                self.kill_agent(m);
                Exec { ok: false, took: 0 }
            }
        }
    }

    pub(super) fn release_leader(&mut self, m: usize, lsn: Option<u64>) {
        if self.dcs.leader_at(self.now) == Some(m) {
            self.dcs.leader = None;
            if lsn.is_some() {
                self.dcs.last_leader_lsn = lsn;
            }
            self.leader_key_changed();
        }
    }

    /// `GET /patroni` on `p` from `m`: answered by `p`'s agent, so a dead agent or a cut link means no answer.
    pub(super) fn rest_call(&mut self, m: usize, p: usize) -> (Option<PeerReply>, i64) {
        if !self.link(m, p) {
            return (None, self.rest_timeout(m));
        }
        if !self.agents[p].alive {
            // Connection refused is immediate.
            return (None, 1);
        }
        let reply = PeerReply {
            role: self.role(p),
            running: self.pgs[p].proc == Proc::Running,
            lsn: self.lsn(p),
            timeline: self.timeline(p),
            tags: self.tags[p].clone(),
        };
        (Some(reply), self.rng.ms(1, 20))
    }

    /// A successful refresh while leading: the watchdog is kicked and must be kicked again before the key could
    /// expire (Patroni's `ttl - safety_margin`, here with a margin below `retry_timeout`).
    pub(super) fn keepalive(&mut self, m: usize) {
        if self.agents[m].config.pause || self.opts.mutation.is_some_and(Mutation::disables_watchdog) {
            return;
        }
        let c = &self.agents[m].config;
        let margin = if self.opts.guardian {
            // The guardian's deadline is the core's watchdog timeout, `ttl - safety_margin`.
            let mut s = self.agents[m].settings.clone();
            (s.ttl, s.loop_wait, s.retry_timeout) = (Millis(c.ttl), Millis(c.loop_wait), Millis(c.retry_timeout));
            let margin = c.ttl as i64 - patroni_ha::watchdog::guardian_timeout_ms(&s) as i64;
            if self.opts.mutation.is_some_and(Mutation::zero_guardian_margin) {
                0
            } else {
                margin
            }
        } else {
            (c.retry_timeout / 2).min(5_000) as i64
        };
        let deadline = self.now + c.ttl as i64 - margin;
        self.agents[m].watchdog = Some(deadline);
        self.schedule(deadline, Ev::Watchdog { m, deadline });
    }

    pub(super) fn watchdog_fires(&mut self, m: usize, deadline: i64) {
        if self.agents[m].watchdog != Some(deadline) {
            return;
        }
        self.agents[m].watchdog = None;
        if self.opts.guardian {
            // It polls the lease, then runs `pg_ctl stop -m fast`: the postmaster gets the signal a moment later.
            let guardian = self.agents[m].guardian_gen;
            let at = self.now + self.rng.ms(100, 1_500);
            self.note(Some(m), |_| "guardian: leader key not renewed in time, fencing".to_string());
            self.schedule(at, Ev::Fence { m, guardian });
            return;
        }
        // The device resets the whole node whatever PostgreSQL is doing (a start as primary may be under way).
        self.note(Some(m), |_| "watchdog expired: node reset".to_string());
        self.crash_postgres(m);
        if self.agents[m].alive {
            self.kill_agent(m);
            let gen = self.agents[m].gen;
            let at = self.now + self.rng.ms(2_000, 5_000);
            self.schedule(at, Ev::AgentRestart { m, gen });
        }
    }

    /// The guardian's `pg_ctl stop -m fast`: sessions end at once, the agent (if alive) finds PostgreSQL stopped.
    pub(super) fn guardian_fences(&mut self, m: usize, guardian: u64) {
        if self.agents[m].guardian_gen != guardian {
            return;
        }
        let pg = &mut self.pgs[m];
        if matches!(pg.proc, Proc::Running | Proc::Starting { .. }) {
            pg.proc = Proc::Stopped;
            pg.pending.clear();
            pg.streaming = false;
            if pg.job.as_ref().is_some_and(|j| !matches!(j.kind, JobKind::DemoteStop { .. })) {
                pg.job = None;
            }
            self.note(Some(m), |_| "guardian: PostgreSQL fenced".to_string());
            self.wake(m);
        }
    }

    pub(super) fn lease_check(&mut self) {
        if let Some(l) = self.dcs.leader {
            if l.expires <= self.now {
                self.dcs.leader = None;
                let who = self.names[l.holder].clone();
                self.note(None, |_| format!("leader key of {who} expired"));
                self.leader_key_changed();
            }
        }
    }
}

/// Actions that write to the DCS (each goes through `World::dcs_op`).
fn is_dcs_write(action: &Action) -> bool {
    matches!(
        action,
        Action::AttemptInitialize
            | Action::SetInitialize { .. }
            | Action::CancelInitialize
            | Action::AcquireLeader
            | Action::UpdateLeader { .. }
            | Action::ReleaseLeader { .. }
            | Action::ClearFailover
            | Action::UpdateHistory
            | Action::SetSyncState { .. }
            | Action::WriteFailsafe { .. }
    )
}
