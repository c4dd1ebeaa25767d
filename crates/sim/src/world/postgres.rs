//! Simulated PostgreSQL: long actions (bootstrap, clone, start, promote, demote), WAL shipping with random delay,
//! synchronous acknowledgements, and the checks made at promotion time.

use super::*;

impl World {
    pub(super) fn job_duration(&mut self, m: usize, kind: &JobKind) -> i64 {
        let base = match kind {
            JobKind::Bootstrap | JobKind::BootstrapStandby => self.rng.ms(1_000, 3_000),
            JobKind::Clone { .. } | JobKind::Reinitialize { .. } => self.rng.ms(1_000, 4_000),
            JobKind::Rewind { .. } => self.rng.ms(500, 2_000),
            JobKind::StartReplica { .. } | JobKind::StartStandbyLeader | JobKind::StartPrimary | JobKind::Restart => {
                self.rng.ms(200, 1_500)
            }
            JobKind::Promote { .. } => self.rng.ms(100, 1_000),
            JobKind::DemoteStop { .. } => self.rng.ms(100, 800),
        };
        if self.now < self.pgs[m].slow_disk_until {
            base * self.rng.ms(5, 20)
        } else {
            base
        }
    }

    pub(super) fn start_job(&mut self, m: usize, kind: JobKind, busy: Busy) -> Exec {
        let starts = matches!(
            kind,
            JobKind::StartReplica { .. } | JobKind::StartStandbyLeader | JobKind::StartPrimary | JobKind::Restart
        );
        let needs_data = starts || matches!(kind, JobKind::Rewind { .. });
        if (needs_data && self.pgs[m].data.is_none()) || self.pgs[m].job.is_some() {
            return Exec { ok: false, took: 0 };
        }
        if starts {
            self.pgs[m].proc = Proc::Starting { since: self.now };
            self.pgs[m].pending.clear();
        }
        if matches!(kind, JobKind::Promote { .. }) {
            // pg_ctl promote: the walreceiver stops at once.
            self.pgs[m].upstream = None;
            self.pgs[m].streaming = false;
        }
        self.pgs[m].last_failure = None;
        let took = self.job_duration(m, &kind);
        self.next_job += 1;
        let id = self.next_job;
        self.pgs[m].job = Some(Job { id, kind, busy });
        self.schedule(self.now + took, Ev::JobDone { m, id });
        Exec { ok: true, took: self.rng.ms(1, 10) }
    }

    pub(super) fn job_done(&mut self, m: usize, id: u64) {
        let Some(job) = self.pgs[m].job.clone().filter(|j| j.id == id) else { return };
        self.pgs[m].job = None;
        let ok = match job.kind {
            JobKind::Bootstrap => {
                let sysid = format!("7{:018}", self.seed % 1_000_000_000_000_000_000);
                let fork = self.lineage.root();
                self.pgs[m].data = Some(Data { sysid, pos: Pos { fork, lsn: 0x0100_0000 }, primary: true });
                self.pgs[m].proc = Proc::Running;
                true
            }
            JobKind::Clone { from } | JobKind::Reinitialize { from } => match self.copy_source(m, from) {
                Some(data) => {
                    // pg_basebackup copies no slots.
                    self.pgs[m].slots.clear();
                    self.pgs[m].data = Some(Data { primary: false, ..data });
                    self.pgs[m].proc = Proc::Stopped;
                    self.pgs[m].diverged = false;
                    true
                }
                None => false,
            },
            JobKind::Rewind { from: Some(from) } => match self.copy_source(m, Some(from)) {
                Some(data) => {
                    // pg_rewind leaves pg_replslot out: the slots are gone.
                    self.pgs[m].slots.clear();
                    self.pgs[m].data = Some(Data { primary: false, ..data });
                    self.start_as(m, false, Some(from));
                    self.pgs[m].diverged = false;
                    true
                }
                None => false,
            },
            JobKind::Rewind { from: None } => {
                if let Some(d) = self.pgs[m].data.as_mut() {
                    d.primary = false;
                }
                let ok = self.start_as(m, false, None);
                self.pgs[m].standby_leader = ok;
                ok
            }
            JobKind::BootstrapStandby => {
                // A copy of the remote primary: the cluster's history starts there, in recovery.
                let sysid = format!("7{:018}", self.seed % 1_000_000_000_000_000_000);
                let fork = self.lineage.root();
                self.pgs[m].data = Some(Data { sysid, pos: Pos { fork, lsn: 0x0100_0000 }, primary: false });
                self.start_as(m, false, None);
                self.pgs[m].standby_leader = true;
                true
            }
            JobKind::StartStandbyLeader => {
                let ok = self.start_as(m, false, None);
                self.pgs[m].standby_leader = ok;
                ok
            }
            JobKind::StartReplica { follow } => self.start_as(m, false, follow),
            JobKind::StartPrimary => self.start_as(m, true, None),
            JobKind::Restart => {
                let primary = self.pgs[m].data.as_ref().is_some_and(|d| d.primary);
                let upstream = self.pgs[m].upstream;
                self.start_as(m, primary, upstream)
            }
            JobKind::Promote { manual_failover } => {
                if self.role(m) == PgRole::Replica {
                    self.complete_promotion(m, manual_failover);
                    true
                } else {
                    false
                }
            }
            JobKind::DemoteStop { mode, follow } => {
                self.demote_stopped(m, mode, follow);
                true
            }
        };
        if !ok {
            self.pgs[m].last_failure = Some(job.busy.clone());
        }
        self.note(Some(m), |_| format!("{:?} {}", job.kind, if ok { "done" } else { "FAILED" }));
        self.wake(m);
    }

    /// A base backup from `from` (must run and be reachable now).
    pub(super) fn copy_source(&self, m: usize, from: Option<usize>) -> Option<Data> {
        let from = from?;
        if !self.link(m, from) || self.pgs[from].proc != Proc::Running {
            return None;
        }
        self.pgs[from].data.clone()
    }

    pub(super) fn start_as(&mut self, m: usize, primary: bool, follow: Option<usize>) -> bool {
        let pg = &mut self.pgs[m];
        let Some(data) = pg.data.as_mut() else {
            pg.proc = Proc::Stopped;
            return false;
        };
        data.primary = primary;
        pg.proc = Proc::Running;
        pg.standby_leader = false;
        pg.upstream = if primary { None } else { follow };
        pg.streaming = false;
        true
    }

    /// After the stop: flush (graceful), release the key with the final LSN, start as a replica.
    pub(super) fn demote_stopped(&mut self, m: usize, mode: DemoteMode, follow: Option<usize>) {
        let Some(ours) = self.pos(m) else { return };
        if mode == DemoteMode::Graceful {
            // A clean shutdown waits for the walsenders: connected replicas get everything.
            for r in 0..self.pgs.len() {
                let pg = &self.pgs[r];
                let connected = r != m && pg.upstream == Some(m) && pg.proc == Proc::Running && self.link(r, m);
                if let (true, Some(theirs)) = (connected, self.pos(r)) {
                    if self.lineage.contains(ours, theirs) {
                        if let Some(d) = self.pgs[r].data.as_mut() {
                            d.pos = ours;
                        }
                    }
                }
            }
        }
        if mode.releases_key() && self.agents[m].alive && self.dcs_reachable(m) {
            self.release_leader(m, Some(ours.lsn));
        }
        // Offline (no DCS) it comes back read-only too, following nobody, as Patroni does.
        if !self.agents[m].alive {
            return;
        }
        if let Some(d) = self.pgs[m].data.as_mut() {
            d.primary = false;
        }
        let kind = JobKind::StartReplica { follow };
        self.start_job(m, kind, Busy::Demoting);
    }

    // ----- promotion checks -----

    /// Invariants 2b and 4, checked when a promotion starts.
    pub(super) fn check_promotion_allowed(&mut self, m: usize) {
        let named = self.agents[m].named_candidate;
        let paused = self.agents[m].config.pause;
        let name = self.names[m].clone();
        if !named && !self.tags[m].can_fail_over() {
            self.violate(Invariant::NofailoverPromoted, format!("{name} has nofailover/failover_priority 0"));
        }
        if !named && paused {
            self.violate(Invariant::PauseViolated, format!("{name} promoted itself while paused"));
        }
        if named {
            return;
        }
        let (previous, until) = self.previous_max_lag;
        let mut bound = self.dcs.config.maximum_lag_on_failover;
        if self.now < until {
            bound = bound.max(previous);
        }
        let reference = self.agents[m].lsn_when_acquired.or(self.dcs.last_leader_lsn);
        if let (Some(leader), Some(mine)) = (reference, self.lsn(m)) {
            let lag = leader.saturating_sub(mine);
            if lag > bound {
                let detail =
                    format!("{name} promoted at lsn {mine}, {lag} bytes behind the leader's {leader} > {bound}");
                self.violate(Invariant::LagBound, detail);
            }
        }
    }

    /// Invariant 2a at the moment the new primary starts accepting writes, then a new timeline.
    ///
    /// A manual failover (a request naming a candidate and no leader) is exempt, as automatic promotions are from
    /// nothing but the lag bound: the operator chose that member, accepting the loss. Patroni's replication modes
    /// documentation: "System administrators can still use manual failover commands to promote a standby even if it
    /// results in transaction loss"; its REST API documentation gives the example of a failover "to an asynchronous
    /// standby if all synchronous standbys are not healthy enough to promote". A switchover is not exempt: the
    /// core only hands over to a synchronous standby, after the leader flushed it.
    pub(super) fn complete_promotion(&mut self, m: usize, manual_failover: bool) {
        let Some(pos) = self.pos(m) else { return };
        self.check_slot_gap(m, pos);
        if self.dcs.sync_enabled() {
            if let Some(acked) = self.last_sync_ack {
                if !self.lineage.contains(pos, acked) {
                    let detail =
                        format!("{} promoted at {pos:?} without the write acknowledged at {acked:?}", self.names[m]);
                    if manual_failover {
                        self.manual_failover_losses += 1;
                        self.note(Some(m), |_| format!("allowed (manual failover): {detail}"));
                        // That write is gone with the operator's consent: later promotions are judged by the writes
                        // acknowledged from now on, not blamed for it again.
                        self.last_sync_ack = None;
                    } else {
                        self.violate(Invariant::LostAcknowledgedWrite, detail);
                    }
                }
            }
        } else {
            // Promoted while synchronous replication is off (a live mode change): from here on only writes
            // acknowledged on this history count.
            self.last_sync_ack = None;
        }
        let fork = self.lineage.branch(pos);
        if let Some(d) = self.pgs[m].data.as_mut() {
            d.pos = Pos { fork, lsn: pos.lsn };
            d.primary = true;
        }
        self.pgs[m].upstream = None;
        self.pgs[m].streaming = false;
        self.pgs[m].diverged = false;
        self.promotions += 1;
    }

    // ----- client and replication -----

    pub(super) fn client_write(&mut self) {
        if let Some(p) = (0..self.pgs.len()).find(|&p| self.pgs[p].writable()) {
            let size = self.rng.range(100, 8_000);
            let sync = !self.pgs[p].sync_names.is_empty();
            if let Some(d) = self.pgs[p].data.as_mut() {
                d.pos.lsn += size;
                if sync {
                    let lsn = d.pos.lsn;
                    self.pgs[p].pending.push(lsn);
                }
            }
        }
        self.consume();
        let next = self.now + self.rng.ms(10, 60);
        self.schedule(next, Ev::Write);
    }

    pub(super) fn replicate(&mut self) {
        for r in 0..self.pgs.len() {
            self.receive_wal(r);
        }
        for p in 0..self.pgs.len() {
            self.settle_sync_acks(p);
        }
        self.note_recovery();
        self.schedule(self.now + REPLICATION_TICK, Ev::Replicate);
    }

    pub(super) fn receive_wal(&mut self, r: usize) {
        if self.role(r) == PgRole::StandbyLeader {
            // The remote primary keeps writing; its standby leader receives some of it every tick.
            if self.now >= self.pgs[r].stalled_until {
                let size = self.rng.ms(0, 16_384) as u64;
                if let Some(d) = self.pgs[r].data.as_mut() {
                    d.pos.lsn += size;
                }
            }
            self.pgs[r].streaming = false;
            return;
        }
        let streaming_possible = self.role(r) == PgRole::Replica && self.now >= self.pgs[r].stalled_until;
        let upstream = self.pgs[r]
            .upstream
            .filter(|&u| streaming_possible && u != r && self.link(r, u) && self.pgs[u].proc == Proc::Running);
        let (Some(u), Some(ours)) = (upstream, self.pos(r)) else {
            self.pgs[r].streaming = false;
            return;
        };
        let Some(theirs) = self.pos(u) else { return };
        match self.lineage.relation(ours, theirs) {
            Relation::Behind => {
                self.pgs[r].streaming = true;
                self.pgs[r].diverged = false;
                if ours != theirs && self.rng.chance(70) {
                    // Random delay: sometimes all of it arrives, sometimes only part.
                    let lsn = if self.rng.chance(50) { theirs.lsn } else { self.rng.range(ours.lsn, theirs.lsn) };
                    if let Some(d) = self.pgs[r].data.as_mut() {
                        d.pos = Pos { fork: theirs.fork, lsn };
                    }
                }
            }
            Relation::Ahead => self.pgs[r].streaming = true,
            Relation::Diverged => {
                self.pgs[r].streaming = false;
                self.pgs[r].diverged = true;
            }
        }
    }

    /// Commits waiting on primary `p` that enough of its synchronous standbys now have are acknowledged to the client.
    pub(super) fn settle_sync_acks(&mut self, p: usize) {
        if self.pgs[p].pending.is_empty() {
            return;
        }
        let Some(primary) = self.pos(p) else { return };
        if !self.pgs[p].writable() {
            self.pgs[p].pending.clear();
            return;
        }
        if self.pgs[p].sync_names.is_empty() {
            // Nobody to wait for any more: PostgreSQL releases the waiters (not protected by a standby).
            self.pgs[p].pending.clear();
            return;
        }
        let (counted, needed) = self.sync_standbys(p);
        let positions: Vec<Pos> = counted.iter().filter_map(|&s| self.pos(s)).collect();
        if positions.len() < needed {
            return;
        }
        let mut newest = None;
        let lineage = &self.lineage;
        self.pgs[p].pending.retain(|&lsn| {
            let write = Pos { fork: primary.fork, lsn };
            let acked = positions.iter().filter(|&&standby| lineage.contains(standby, write)).count() >= needed;
            if acked {
                newest = Some(newest.map_or(write, |n: Pos| n.max(write)));
            }
            !acked
        });
        // Acknowledged while the configuration says synchronous replication is off (a live change the leader has not
        // applied yet): PostgreSQL still waited, but nothing promises the write survives a failover any more.
        if let Some(w) = newest.filter(|_| self.dcs.sync_enabled()) {
            self.last_sync_ack = Some(w);
        }
    }

    /// A `nosync` member must never be a synchronous standby: not in the `sync` key, not in the names PostgreSQL
    /// waits for.
    pub(super) fn check_nosync(&mut self, m: usize, names: &[String]) {
        for n in names {
            if let Some(r) = self.index(n) {
                if self.tags[r].nosync {
                    let detail = format!("{} made {n} (nosync) a synchronous standby", self.names[m]);
                    self.violate(Invariant::NosyncChosen, detail);
                }
            }
        }
    }
}
