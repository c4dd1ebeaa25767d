//! Replication slots, the runtime's side: each loop, observe the local slots, ask `patroni_ha::slots` for the
//! plan and run it (bounded SQL through the node; copying logical slots from the primary is a restart, so it runs
//! as a long action); as the leader, publish slot positions and `retain_slots` in `status`.

use patroni_config::DynamicConfig;
use patroni_dcs::{Cluster, Status};
use patroni_ha::slots::{
    self as plan, IgnoreRule, LocalSlot, PermanentSlot, RetainedSlots, SlotInput, SlotKind, SlotSettings,
};
use patroni_ha::{Busy, LocalState, LogLevel, PgRole, Time};
use tracing::{info, warn};

use crate::node::Node;
use crate::runtime::Runtime;

/// What the node reports about its slots.
#[derive(Clone, Debug, Default)]
pub struct SlotObservation {
    pub local: Vec<LocalSlot>,
    /// PostgreSQL's major version (15, 16...).
    pub major: u32,
    pub replay_lsn: Option<u64>,
}

/// The runtime's slot state between loops.
#[derive(Debug, Default)]
pub struct SlotKeeper {
    retained: RetainedSlots,
    /// The last observation, for the leader's `status`.
    last: Option<SlotObservation>,
    /// Our WAL position when the slots were last observed.
    own_lsn: Option<u64>,
    /// The last cluster read, used while the DCS is down (failsafe mode keeps slots moving).
    last_cluster: Option<Cluster>,
    /// Slot positions from the leader's last failsafe heartbeat (written by the REST API).
    pub failsafe_slots: crate::rest_control::SharedLeaderSlots,
    /// As the primary in failsafe mode: the WAL positions members answered our heartbeat with.
    pub failsafe_member_lsns: Vec<(String, u64)>,
}

/// The slot settings of the dynamic configuration, as the core reads them.
pub fn slot_settings(d: &DynamicConfig) -> SlotSettings {
    let permanent = d
        .slots
        .iter()
        .flatten()
        .filter_map(|(name, v)| {
            let db = v.database.clone().filter(|s| !s.is_empty());
            let plugin = v.plugin.clone().filter(|s| !s.is_empty());
            let kind = match (v.r#type.as_deref(), db, plugin) {
                (None | Some("logical"), Some(database), Some(plugin)) => SlotKind::Logical { database, plugin },
                (None | Some("physical"), _, _) => SlotKind::Physical,
                // A logical slot without database or plugin, or an unknown type: the configuration check warns.
                _ => return None,
            };
            Some(PermanentSlot { name: name.clone(), kind })
        })
        .collect();
    let ignore = d
        .ignore_slots
        .iter()
        .flatten()
        .map(|i| IgnoreRule {
            name: i.name.clone(),
            slot_type: i.r#type.clone(),
            database: i.database.clone(),
            plugin: i.plugin.clone(),
        })
        .collect();
    SlotSettings {
        use_slots: d.use_slots(),
        member_slots_ttl: d.member_slots_ttl().as_secs(),
        permanent,
        ignore,
        paused: d.is_paused(),
        standby_cluster: d.is_standby_cluster(),
    }
}

fn log_lines(lines: &[(LogLevel, String)]) {
    for (level, line) in lines {
        match level {
            LogLevel::Info => info!("{line}"),
            LogLevel::Warning => warn!("{line}"),
        }
    }
}

impl<N: Node> Runtime<N> {
    /// After the HA plan ran: bring the local slots in line with the slot plan.
    pub(crate) async fn sync_slots(&mut self, cluster: Option<&Cluster>, local: &LocalState) {
        // While the DCS is down, only failsafe mode keeps managing slots, on the last cluster read, with the
        // positions the leader sent in its heartbeat (Patroni's Failsafe.update_cluster).
        let dcs_down = cluster.is_none();
        let failsafe_positions = if self.dynamic.failsafe_mode() {
            self.slots.failsafe_slots.lock().ok().and_then(|s| s.clone()).filter(|_| self.last_heartbeat().is_some())
        } else {
            None
        };
        let c = match cluster {
            Some(c) => {
                self.slots.last_cluster = Some(c.clone());
                c.clone()
            }
            None if self.dynamic.failsafe_mode() => match &self.slots.last_cluster {
                Some(c) => c.clone(),
                None => return,
            },
            None => return,
        };
        let c = &c;
        if self.long.is_some() || !local.process.is_running() {
            return;
        }
        let role = local.role;
        if !matches!(role, PgRole::Primary | PgRole::Replica | PgRole::StandbyLeader) {
            return;
        }
        let obs = match self.node.observe_slots().await {
            Ok(Some(o)) => o,
            Ok(None) => return,
            Err(e) => {
                warn!("failed to read replication slots: {e}");
                return;
            }
        };
        let settings = slot_settings(&self.dynamic);
        let mut view = crate::core_view::cluster_view(c);
        if dcs_down && role == PgRole::Primary {
            // Cascading members' slots here move with the positions they answered our failsafe heartbeat with.
            for m in view.members.iter_mut().filter(|m| m.tags.replicatefrom.is_some()) {
                if let Some((_, l)) = self.slots.failsafe_member_lsns.iter().find(|(n, _)| *n == m.name) {
                    m.lsn = Some(*l);
                }
            }
        }
        let tags = crate::core_view::local_tags(&self.config.tags);
        let leader_slots: Vec<(String, u64)> = match (&failsafe_positions, local.role) {
            (Some(p), PgRole::Replica) if dcs_down => p.clone(),
            _ => c.slots().into_iter().collect(),
        };
        let input = SlotInput {
            me: &self.name,
            tags: &tags,
            role,
            cluster: &view,
            leader_slots: &leader_slots,
            retain_slots: &c.status.retain_slots,
            local: &obs.local,
            major: obs.major,
            replay_lsn: obs.replay_lsn,
        };
        let p = plan::plan(&input, &settings);
        log_lines(&p.log);
        let mut obs = obs;
        if !p.is_empty() {
            self.node.run_slot_plan(&p).await;
            // What the leader publishes next reflects what the plan just did, not the state before it.
            if let Ok(Some(after)) = self.node.observe_slots().await {
                obs = after;
            }
        }
        let leader = c.leader.as_ref().map(|l| l.name.clone()).filter(|l| *l != self.name);
        // No copies (a restart) while the DCS is down.
        if role == PgRole::Replica && !p.copy.is_empty() && !dcs_down {
            if let Some(up) = self.upstream(Some(c), leader.as_deref()) {
                info!("Copying logical slots {:?} from the primary", p.copy);
                let node = self.node.clone();
                let (names, wanted) = (p.copy.clone(), p.wanted.clone());
                self.spawn_long(Busy::Restarting, async move { node.copy_logical_slots(&up, &names, &wanted).await });
            }
        }
        self.slots.last = Some(obs);
        self.slots.own_lsn = local.lsn;
        // New or dropped slots on the leader show in `status` now rather than a loop_wait later: members and
        // tools waiting for a slot's position need not wait for the next key refresh.
        let leads = role == PgRole::Primary && c.leader.as_ref().is_some_and(|l| l.name == self.name);
        let changes = !p.create_physical.is_empty() || !p.create_logical.is_empty() || !p.drop.is_empty();
        if leads && !dcs_down && !self.dcs_unanswered && changes {
            if let Some(lsn) = local.lsn {
                let status = self.leader_status(lsn, c, Time(crate::runtime::now_millis()));
                if let Err(e) = self.dcs.write_status(&status).await {
                    self.dcs_unanswered |= e.is_unreachable();
                    warn!("failed to write the leader status: {e}");
                }
            }
        }
    }

    /// What the leader sends with its failsafe heartbeat: every slot it manages at its position, itself at its
    /// own WAL position (PostgreSQL 11+).
    pub(crate) fn failsafe_slot_positions(&self) -> Option<Vec<(String, u64)>> {
        let obs = self.slots.last.as_ref().filter(|o| o.major >= plan::ADVANCE_MIN_MAJOR)?;
        let mine = plan::slot_name(&self.name);
        let mut out: Vec<(String, u64)> = obs
            .local
            .iter()
            .filter(|l| l.name != mine)
            .filter_map(|l| l.position().map(|p| (l.name.clone(), p)))
            .collect();
        out.push((mine, self.slots.own_lsn.unwrap_or(0)));
        Some(out)
    }

    /// The `status` value the leader writes with its key: its position, the positions of its slots and the
    /// member slots it retains.
    pub(crate) fn leader_status(&mut self, lsn: u64, c: &Cluster, now: Time) -> Status {
        let Some(obs) = self.slots.last.clone() else { return Status { last_lsn: lsn, ..Status::default() } };
        let settings = slot_settings(&self.dynamic);
        let view = crate::core_view::cluster_view(c);
        let tags = crate::core_view::local_tags(&self.config.tags);
        let input = SlotInput {
            me: &self.name,
            tags: &tags,
            role: PgRole::Primary,
            cluster: &view,
            leader_slots: &[],
            retain_slots: &c.status.retain_slots,
            local: &obs.local,
            major: obs.major,
            replay_lsn: None,
        };
        let published = plan::published_slots(&input, &settings, lsn);
        let (retain, log) = self.slots.retained.update(now, &self.name, &view, &published, &settings);
        log_lines(&log);
        Status {
            last_lsn: lsn,
            slots: (!published.is_empty()).then(|| published.into_iter().collect()),
            retain_slots: retain,
        }
    }

    /// We just took the leader key: the member slots the previous leader retained start their time again.
    pub(crate) fn slots_on_leader_acquired(&mut self, c: Option<&Cluster>, now: Time) {
        let retain = c.map(|c| c.status.retain_slots.clone()).unwrap_or_default();
        self.slots.retained.restart(&retain, now);
    }
}
