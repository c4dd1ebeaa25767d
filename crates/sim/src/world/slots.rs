//! Replication slots (`Options::slots`, `--slots`). After each loop an agent brings its PostgreSQL's slots in line
//! with `patroni_ha::slots::plan`, as the runtime's `sync_slots` does (crates/agent/src/slots.rs); the leader
//! publishes the positions and `retain_slots` of `status`; a logical consumer reads the permanent logical slot on the
//! primary. Checked: a promoted member's copy of that slot is never ahead of what the consumer confirmed (a gap: the
//! documented promise is at-least-once across a failover), and once converged the primary has every permanent slot
//! and every member streaming has its slot on its upstream.
//!
//! Simplifications: a slot operation is instant; copying logical slots from the primary (a restart of the replica
//! in the runtime) is instant too; PostgreSQL's major is 15.

use patroni_ha::slots::{self as plan, LocalSlot, PermanentSlot, RetainedSlots, SlotInput, SlotKind, SlotSettings};

use super::*;

/// The permanent logical slot the consumer reads.
pub(super) const LOGICAL: &str = "cdc";

/// A slot in the simulated PostgreSQL: its kind and position (restart, or confirmed flush for a logical one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SimSlot {
    pub(super) logical: bool,
    pub(super) lsn: u64,
}

/// The slot side of the world.
pub(super) struct SlotWorld {
    settings: SlotSettings,
    /// `status.slots` and `status.retain_slots` as the leader last wrote them.
    published: Vec<(String, u64)>,
    retain: Vec<String>,
    /// Per member: its memory of member slots while it leads, and whether it led at its last loop.
    retained: Vec<RetainedSlots>,
    led: Vec<bool>,
    /// Where the consumer would start reading again: the position it last confirmed on a primary.
    consumed: Option<Pos>,
    /// Client writes since the consumer last read (it reads every few dozen, so it lags a little).
    writes: u64,
}

fn logical_kind() -> SlotKind {
    SlotKind::Logical { database: "postgres".into(), plugin: "test_decoding".into() }
}

/// The slot configuration of a seed, from a random stream of its own (runs without `--slots` replay as before).
pub(super) fn draw(seed: u64, members: usize, standby_cluster: bool) -> SlotWorld {
    let mut rng = Rng::new(seed ^ 0x5107_0017_5107_0017);
    let mut permanent = Vec::new();
    if rng.chance(80) {
        permanent.push(PermanentSlot { name: LOGICAL.into(), kind: logical_kind() });
    }
    if rng.chance(50) {
        permanent.push(PermanentSlot { name: "perm".into(), kind: SlotKind::Physical });
    }
    let member_slots_ttl = rng.pick(&[0, 5, 30, 1800]).unwrap_or(1800);
    SlotWorld {
        settings: SlotSettings { member_slots_ttl, permanent, standby_cluster, ..SlotSettings::default() },
        published: Vec::new(),
        retain: Vec::new(),
        retained: vec![RetainedSlots::default(); members],
        led: vec![false; members],
        consumed: None,
        writes: 0,
    }
}

impl World {
    /// After member `m`'s loop: the slot plan for what it saw this cycle, run at once; as the leader, `status`.
    pub(super) fn slot_upkeep(&mut self, m: usize) {
        let Some(mut sw) = self.slots.take() else { return };
        self.slot_upkeep_with(m, &mut sw);
        self.slots = Some(sw);
    }

    fn slot_upkeep_with(&mut self, m: usize, sw: &mut SlotWorld) {
        let Some(view) = self.agents[m].last_view.clone() else { return };
        if self.pgs[m].job.is_some() || !self.dcs_reachable(m) {
            return;
        }
        let role = self.role(m);
        if !matches!(role, PgRole::Primary | PgRole::Replica | PgRole::StandbyLeader) {
            return;
        }
        let Some(pos) = self.pos(m) else { return };
        let local = self.local_slots(m);
        let mut settings = sw.settings.clone();
        settings.paused = self.agents[m].config.pause;
        let tags = self.tags[m].clone();
        let me = self.names[m].clone();
        let input = SlotInput {
            me: &me,
            tags: &tags,
            role,
            cluster: &view,
            leader_slots: &sw.published,
            retain_slots: &sw.retain,
            local: &local,
            major: 15,
            replay_lsn: Some(pos.lsn),
        };
        let mut p = plan::plan(&input, &settings);
        if self.opts.mutation == Some(Mutation::SkipMemberSlots) {
            let members: Vec<String> = view.members.iter().map(|m| plan::slot_name(&m.name)).collect();
            p.create_physical.retain(|n| !members.contains(n));
        }
        let slots = &mut self.pgs[m].slots;
        for name in &p.drop {
            slots.remove(name);
        }
        for name in &p.create_physical {
            slots.insert(name.clone(), SimSlot { logical: false, lsn: pos.lsn });
        }
        if role == PgRole::Primary {
            for (name, _, _) in &p.create_logical {
                slots.insert(name.clone(), SimSlot { logical: true, lsn: pos.lsn });
            }
        }
        let mut advanced = Vec::new();
        for a in &p.advance {
            // `pg_replication_slot_advance`: never backwards, never past what was replayed.
            if let Some(s) = slots.get_mut(&a.name) {
                s.lsn = s.lsn.max(a.lsn.min(pos.lsn));
                if s.logical {
                    advanced.push((a.name.clone(), s.lsn));
                }
            }
        }
        if !advanced.is_empty() {
            self.note(Some(m), |_| format!("advanced logical slots {advanced:?}"));
        }
        if role == PgRole::Replica && !p.copy.is_empty() {
            self.copy_logical_slots(m, &view, &p.copy);
        }
        let leads = role == PgRole::Primary && view.leader.as_deref() == Some(me.as_str());
        if leads {
            self.publish_with(m, sw, &view, pos.lsn);
        }
        sw.led[m] = leads;
    }

    /// The leader's `status` with its key refresh (the runtime writes it with every `UpdateLeader` that has a
    /// position, from its last observation of the slots), so a new leader replaces its predecessor's positions.
    pub(super) fn publish_slots(&mut self, m: usize, lsn: u64) {
        let Some(mut sw) = self.slots.take() else { return };
        if let Some(view) = self.agents[m].last_view.clone() {
            self.publish_with(m, &mut sw, &view, lsn);
        }
        self.slots = Some(sw);
    }

    fn publish_with(&mut self, m: usize, sw: &mut SlotWorld, view: &ClusterView, lsn: u64) {
        if !sw.led[m] {
            sw.retained[m].restart(&sw.retain, Time(self.now));
            sw.led[m] = true;
        }
        let local = self.local_slots(m);
        let settings = sw.settings.clone();
        let (me, tags) = (self.names[m].clone(), self.tags[m].clone());
        let input = SlotInput {
            me: &me,
            tags: &tags,
            role: PgRole::Primary,
            cluster: view,
            leader_slots: &[],
            retain_slots: &sw.retain,
            local: &local,
            major: 15,
            replay_lsn: None,
        };
        let mut published = plan::published_slots(&input, &settings, lsn);
        if self.opts.mutation == Some(Mutation::SlotPositionIsLeaderLsn) {
            published.iter_mut().filter(|(n, _)| n == LOGICAL).for_each(|(_, at)| *at = lsn);
        }
        let (retain, _) = sw.retained[m].update(Time(self.now), &me, view, &published, &settings);
        sw.published = published;
        sw.retain = retain;
    }

    fn local_slots(&self, m: usize) -> Vec<LocalSlot> {
        self.pgs[m]
            .slots
            .iter()
            .map(|(name, s)| LocalSlot {
                name: name.clone(),
                kind: if s.logical { logical_kind() } else { SlotKind::Physical },
                restart_lsn: Some(s.lsn),
                confirmed_flush_lsn: s.logical.then_some(s.lsn),
                has_xmin: false,
                wal_lost: false,
            })
            .collect()
    }

    /// A replica copies logical slots from the leader's PostgreSQL (the runtime restarts it to do so).
    fn copy_logical_slots(&mut self, m: usize, view: &ClusterView, names: &[String]) {
        let Some(l) = view.leader.as_deref().and_then(|l| self.index(l)) else { return };
        if !self.link(m, l) || self.pgs[l].proc != Proc::Running {
            return;
        }
        for name in names {
            if let Some(s) = self.pgs[l].slots.get(name).filter(|s| s.logical).cloned() {
                self.note(Some(m), |w| format!("copied logical slot {name} at {} from {}", s.lsn, w.names[l]));
                self.pgs[m].slots.insert(name.clone(), s);
            }
        }
    }

    /// The consumer reads the logical slot on the writable primary up to its position and confirms it.
    pub(super) fn consume(&mut self) {
        let Some(sw) = self.slots.as_mut() else { return };
        sw.writes += 1;
        if sw.writes % 25 != 0 {
            return;
        }
        let Some(p) = (0..self.pgs.len()).find(|&p| self.pgs[p].writable()) else { return };
        let Some(pos) = self.pgs[p].data.as_ref().map(|d| d.pos) else { return };
        if let Some(s) = self.pgs[p].slots.get_mut(LOGICAL).filter(|s| s.logical) {
            s.lsn = s.lsn.max(pos.lsn);
            sw.consumed = Some(pos);
        }
    }

    /// At a promotion of `m` (its position `pos`): its copy of the logical slot is not ahead of what the consumer
    /// confirmed on its history. The consumer then goes on from whatever this member has.
    pub(super) fn check_slot_gap(&mut self, m: usize, pos: Pos) {
        let Some(sw) = self.slots.as_mut() else { return };
        let consumed = sw.consumed.take();
        let slot = self.pgs[m].slots.get(LOGICAL).filter(|s| s.logical).map(|s| s.lsn);
        let (Some(c), Some(at)) = (consumed, slot) else { return };
        if self.lineage.contains(pos, c) && at > c.lsn {
            let detail = format!(
                "{} promoted with logical slot {LOGICAL} at {at}, past {} where the consumer confirmed: changes skipped",
                self.names[m], c.lsn
            );
            self.violate(Invariant::SlotGap, detail);
        }
    }

    /// Once converged: the primary has every permanent slot, and every member streaming has its slot upstream.
    pub(super) fn slots_problem(&self, primary: usize) -> Option<String> {
        let sw = self.slots.as_ref()?;
        // A standby cluster keeps no logical slots (its leader is in recovery): only the physical ones.
        let expected = sw.settings.permanent.iter().filter(|p| !(sw.settings.standby_cluster && p.kind.is_logical()));
        for p in expected {
            if !self.pgs[primary].slots.contains_key(&p.name) {
                return Some(format!("permanent slot {} missing on the primary {}", p.name, self.names[primary]));
            }
        }
        for m in 0..self.pgs.len() {
            let pg = &self.pgs[m];
            let Some(u) = pg.upstream.filter(|_| pg.streaming && !self.tags[m].nostream) else { continue };
            let name = plan::slot_name(&self.names[m]);
            if !self.pgs[u].slots.contains_key(&name) {
                return Some(format!("{} streams from {} without its slot there", self.names[m], self.names[u]));
            }
        }
        None
    }
}
