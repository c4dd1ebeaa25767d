//! The replication slot plan: which slots must exist on this member, which to drop, which to advance and which
//! logical slots to copy from the primary, as a pure function of the cluster view, the slot settings, the local
//! role, the slots PostgreSQL has and its version. The agent runs the plan with bounded SQL; the leader also
//! publishes slot positions in `status` ([`published_slots`]) and keeps the slots of vanished members for
//! `member_slots_ttl` ([`RetainedSlots`]).
//!
//! Behaviour follows Patroni's: member slots for every other streaming member (PostgreSQL 11+, so that a failover
//! keeps them; only the members that stream from us otherwise), permanent slots from the dynamic `slots`, logical
//! ones created on the primary and copied to replicas, everything else dropped unless `ignore_slots` matches it.

use std::collections::{BTreeMap, BTreeSet};

use crate::action::LogLevel;
use crate::time::Time;
use crate::view::{ClusterView, Lsn, Name, PgRole, Tags};

/// PostgreSQL's `pg_replication_slot_advance` (and so member slot retention and logical failover) exists from 11.
pub const ADVANCE_MIN_MAJOR: u32 = 11;
/// `wal_status` exists from 13.
const WAL_STATUS_MIN_MAJOR: u32 = 13;

/// The slot name Patroni derives from a member name: lower case, `-` and `.` as `_`, any other character outside
/// `[a-z0-9_]` as `u` and its code point in (at least) four decimal digits, at most 63 characters.
pub fn slot_name(member: &str) -> String {
    let mut out = String::new();
    for c in member.to_lowercase().chars() {
        match c {
            'a'..='z' | '0'..='9' | '_' => out.push(c),
            '-' | '.' => out.push('_'),
            other => out.push_str(&format!("u{:04}", other as u32)),
        }
    }
    out.chars().take(63).collect()
}

/// Whether `name` is a name PostgreSQL accepts for a slot (what Patroni checks permanent slot names against).
pub fn valid_slot_name(name: &str) -> bool {
    (1..=63).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// What kind of slot, with what a logical slot decodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotKind {
    Physical,
    Logical { database: String, plugin: String },
}

impl SlotKind {
    pub fn is_logical(&self) -> bool {
        matches!(self, SlotKind::Logical { .. })
    }
}

/// A permanent slot of the dynamic `slots` section, already classified as Patroni does (a null / 0 / "" / {}
/// value or `type: physical` is physical; a value with database and plugin is logical).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermanentSlot {
    pub name: Name,
    pub kind: SlotKind,
}

/// An `ignore_slots` entry: a slot matching every given property is never dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IgnoreRule {
    pub name: Option<String>,
    pub slot_type: Option<String>,
    pub database: Option<String>,
    pub plugin: Option<String>,
}

/// A slot PostgreSQL has here (temporary slots, and failover slots on PostgreSQL 17+, are PostgreSQL's own
/// business and never listed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalSlot {
    pub name: Name,
    pub kind: SlotKind,
    pub restart_lsn: Option<Lsn>,
    pub confirmed_flush_lsn: Option<Lsn>,
    /// A physical slot with an `xmin` (hot standby feedback was received through it).
    pub has_xmin: bool,
    /// `wal_status = 'lost'`: the WAL it needs is gone, the slot is useless.
    pub wal_lost: bool,
}

impl LocalSlot {
    /// The position Patroni publishes for it: where a physical slot restarts, what a logical one confirmed.
    pub fn position(&self) -> Option<Lsn> {
        match self.kind {
            SlotKind::Physical => self.restart_lsn,
            SlotKind::Logical { .. } => self.confirmed_flush_lsn,
        }
    }
}

/// The slot settings of the dynamic configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotSettings {
    pub use_slots: bool,
    /// `member_slots_ttl`, seconds.
    pub member_slots_ttl: u64,
    pub permanent: Vec<PermanentSlot>,
    pub ignore: Vec<IgnoreRule>,
    pub paused: bool,
    pub standby_cluster: bool,
}

impl Default for SlotSettings {
    fn default() -> Self {
        SlotSettings {
            use_slots: true,
            member_slots_ttl: 1800,
            permanent: Vec::new(),
            ignore: Vec::new(),
            paused: false,
            standby_cluster: false,
        }
    }
}

impl SlotSettings {
    fn retain_member_slots(&self, major: u32) -> bool {
        major >= ADVANCE_MIN_MAJOR && self.member_slots_ttl > 0
    }
}

/// What the plan is computed from.
#[derive(Clone, Debug)]
pub struct SlotInput<'a> {
    /// Our member name.
    pub me: &'a str,
    pub tags: &'a Tags,
    /// The role PostgreSQL runs in here (`Primary` also while a promotion finishes).
    pub role: PgRole,
    pub cluster: &'a ClusterView,
    /// Slot positions the leader published (`status.slots`, or its failsafe heartbeat while the DCS is down).
    pub leader_slots: &'a [(Name, Lsn)],
    /// `status.retain_slots`.
    pub retain_slots: &'a [Name],
    pub local: &'a [LocalSlot],
    /// PostgreSQL's major version (e.g. 15).
    pub major: u32,
    /// How far this replica replayed: a logical slot cannot be advanced past it.
    pub replay_lsn: Option<Lsn>,
}

/// A slot that must exist here, with the position to advance it to when nothing streams through it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Wanted {
    kind: SlotKind,
    lsn: Option<Lsn>,
    /// `Some(true)`: something should stream through it (its xmin moves); `Some(false)`: nothing does, an xmin
    /// would hold back vacuum forever; `None`: unknown (retained slots).
    expected_active: Option<bool>,
}

/// Advance `slot` to `lsn`; `database` for a logical slot (advanced on a connection to its database).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advance {
    pub name: Name,
    pub database: Option<String>,
    pub lsn: Lsn,
}

/// What to do with the slots here, in order: drop, create, advance; `copy` names the logical slots a replica
/// must copy from the primary (a restart of PostgreSQL).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotPlan {
    pub drop: Vec<Name>,
    pub create_physical: Vec<Name>,
    /// `(name, database, plugin)`.
    pub create_logical: Vec<(Name, String, String)>,
    pub advance: Vec<Advance>,
    pub copy: Vec<Name>,
    /// The slots that must exist here with their kind: what `copy` checks the primary's slots against.
    pub wanted: Vec<(Name, SlotKind)>,
    pub log: Vec<(LogLevel, String)>,
}

impl SlotPlan {
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty()
            && self.create_physical.is_empty()
            && self.create_logical.is_empty()
            && self.advance.is_empty()
            && self.copy.is_empty()
    }
}

fn is_leader_role(role: PgRole) -> bool {
    matches!(role, PgRole::Primary | PgRole::StandbyLeader)
}

/// The slot this member uses on the primary: its own, or, for a cascading replica, that of the member at the top of
/// its `replicatefrom` chain; `None` when something in the chain does not stream (`nostream`) or loops.
fn slot_on_primary(cluster: &ClusterView, me: &str, tags: &Tags) -> Option<String> {
    let mut seen = BTreeSet::new();
    let (mut name, mut tags) = (me.to_string(), tags.clone());
    loop {
        seen.insert(name.clone());
        if tags.nostream {
            return None;
        }
        let up = tags.replicatefrom.as_deref().filter(|r| *r != name).and_then(|r| cluster.member(r));
        let Some(up) = up else { return Some(slot_name(&name)) };
        if seen.contains(&up.name) {
            return None;
        }
        (name, tags) = (up.name.clone(), up.tags.clone());
    }
}

fn leader_lsn(input: &SlotInput<'_>, slot: &str) -> Option<Lsn> {
    input.leader_slots.iter().find(|(n, _)| n == slot).map(|(_, l)| *l)
}

/// Member slots that must exist here (Patroni's `_get_members_slots`).
fn member_slots(input: &SlotInput<'_>, s: &SlotSettings, log: &mut Vec<(LogLevel, String)>) -> BTreeMap<Name, Wanted> {
    let mut out = BTreeMap::new();
    if !s.use_slots {
        return out;
    }
    let me = input.me;
    let c = input.cluster;
    let leader_like = is_leader_role(input.role);
    let expected_active = |m: &crate::view::MemberView| -> bool {
        if leader_like {
            match m.tags.replicatefrom.as_deref() {
                None => true,
                Some(r) => r == me || c.member(r).is_none(),
            }
        } else {
            m.tags.replicatefrom.as_deref() == Some(me) && c.leader.as_deref() != Some(m.name.as_str())
        }
    };
    let candidates: Vec<_> = c.members.iter().filter(|m| m.name != me && !m.tags.nostream).collect();
    let members: Vec<_> = if s.retain_member_slots(input.major) {
        candidates
            .into_iter()
            .filter(|m| !input.tags.nofailover || m.tags.replicatefrom.as_deref() == Some(me))
            .collect()
    } else {
        candidates.into_iter().filter(|m| expected_active(m)).collect()
    };
    let mut by_slot: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for m in &members {
        let slot = slot_name(&m.name);
        by_slot.entry(slot.clone()).or_default().push(&m.name);
        let mut lsn = leader_lsn(input, &slot).unwrap_or(0);
        if m.tags.replicatefrom.is_some() {
            // The leader's copy of a cascading member's slot does not move: the member's own position does.
            lsn = lsn.max(m.lsn.unwrap_or(0));
        }
        out.insert(
            slot,
            Wanted { kind: SlotKind::Physical, lsn: Some(lsn), expected_active: Some(expected_active(m)) },
        );
    }
    let mine = slot_name(me);
    if !input.tags.nofailover {
        for r in input.retain_slots {
            if !out.contains_key(r) && *r != mine {
                out.insert(r.clone(), Wanted { kind: SlotKind::Physical, lsn: None, expected_active: None });
            }
        }
    }
    let shared: Vec<String> =
        by_slot.iter().filter(|(_, v)| v.len() > 1).map(|(k, v)| format!("{} map to {k}", v.join(", "))).collect();
    if !shared.is_empty() {
        log.push((
            LogLevel::Warning,
            format!("Following cluster members share a replication slot name: {}", shared.join("; ")),
        ));
    }
    out
}

/// Permanent slots this member keeps, with their known positions (Patroni's `_get_permanent_slots`).
fn permanent_slots(input: &SlotInput<'_>, s: &SlotSettings) -> Vec<(PermanentSlot, Option<Lsn>)> {
    if !s.use_slots || input.tags.nofailover {
        return Vec::new();
    }
    let can_advance = input.major >= ADVANCE_MIN_MAJOR;
    let physical_only = s.standby_cluster || slot_on_primary(input.cluster, input.me, input.tags).is_none();
    let keep = |p: &PermanentSlot| -> bool {
        if physical_only {
            !p.kind.is_logical() && (can_advance || input.role == PgRole::StandbyLeader)
        } else {
            can_advance || input.role == PgRole::Primary || p.kind.is_logical()
        }
    };
    s.permanent
        .iter()
        .filter(|p| keep(p))
        .map(|p| {
            let mut lsn = leader_lsn(input, &p.name).unwrap_or(0);
            if !p.kind.is_logical() {
                // A cascading member's own position moves its permanent slot on the primary.
                let cascading = input
                    .cluster
                    .members
                    .iter()
                    .filter(|m| m.tags.replicatefrom.is_some() && slot_name(&m.name) == p.name)
                    .filter_map(|m| m.lsn)
                    .max();
                lsn = lsn.max(cascading.unwrap_or(0));
            }
            (p.clone(), Some(lsn).filter(|l| *l > 0))
        })
        .collect()
}

/// Every slot that must exist here (Patroni's `get_replication_slots`).
fn wanted_slots(input: &SlotInput<'_>, s: &SlotSettings, log: &mut Vec<(LogLevel, String)>) -> BTreeMap<Name, Wanted> {
    let mut slots = member_slots(input, s, log);
    let mine = slot_name(input.me);
    let can_advance = input.major >= ADVANCE_MIN_MAJOR;
    let mut disabled = Vec::new();
    for (p, lsn) in permanent_slots(input, s) {
        if !valid_slot_name(&p.name) {
            log.push((LogLevel::Warning, format!("Invalid permanent replication slot name '{}'", p.name)));
            continue;
        }
        match &p.kind {
            SlotKind::Physical => {
                if !slots.contains_key(&p.name) && p.name != mine {
                    // A permanent slot named after a cascading member is not used on the leader: that member
                    // streams from another one.
                    let cascading = input
                        .cluster
                        .members
                        .iter()
                        .any(|m| slot_name(&m.name) == p.name && m.tags.replicatefrom.is_some());
                    let expected_active = !cascading && is_leader_role(input.role);
                    slots.insert(
                        p.name.clone(),
                        Wanted { kind: SlotKind::Physical, lsn, expected_active: Some(expected_active) },
                    );
                }
            }
            SlotKind::Logical { .. } => {
                if !can_advance {
                    disabled.push(p.name.clone());
                } else if slots.contains_key(&p.name) {
                    log.push((
                        LogLevel::Warning,
                        format!("Permanent logical replication slot '{}' is conflicting with physical replication slot for cluster member", p.name),
                    ));
                } else {
                    slots.insert(p.name.clone(), Wanted { kind: p.kind.clone(), lsn, expected_active: None });
                }
            }
        }
    }
    if !disabled.is_empty() {
        log.push((
            LogLevel::Warning,
            format!(
                "Permanent logical replication slots supported by Patroni only starting from PostgreSQL 11. Following slots will not be created: {}.",
                disabled.join(", ")
            ),
        ));
    }
    slots
}

fn ignored(rules: &[IgnoreRule], slot: &LocalSlot) -> bool {
    let (ty, database, plugin) = match &slot.kind {
        SlotKind::Physical => ("physical", None, None),
        SlotKind::Logical { database, plugin } => ("logical", Some(database.as_str()), Some(plugin.as_str())),
    };
    let attr = |rule: &Option<String>, have: Option<&str>| match rule.as_deref() {
        None | Some("") => true,
        Some(want) => have == Some(want),
    };
    rules.iter().any(|r| {
        r.name.as_deref().is_none_or(|n| n == slot.name)
            && attr(&r.slot_type, Some(ty))
            && attr(&r.database, database)
            && attr(&r.plugin, plugin)
    })
}

/// The slot plan for this member this loop.
pub fn plan(input: &SlotInput<'_>, s: &SlotSettings) -> SlotPlan {
    let mut out = SlotPlan::default();
    if !matches!(input.role, PgRole::Primary | PgRole::StandbyLeader | PgRole::Replica) {
        return out;
    }
    let wanted = wanted_slots(input, s, &mut out.log);
    out.wanted = wanted.iter().map(|(n, w)| (n.clone(), w.kind.clone())).collect();
    let mut present: BTreeMap<&str, &LocalSlot> = input.local.iter().map(|l| (l.name.as_str(), l)).collect();

    // Unknown slots, lost ones and ones whose kind changed go.
    for l in input.local {
        let lost = input.major >= WAL_STATUS_MIN_MAJOR && l.wal_lost;
        match wanted.get(&l.name) {
            Some(w) if !lost && w.kind == l.kind => continue,
            Some(w) if !lost => {
                out.log.push((
                    LogLevel::Info,
                    format!(
                        "Trying to drop replication slot '{}' because value is changing from {:?} to {:?}",
                        l.name, l.kind, w.kind
                    ),
                ));
            }
            _ => {
                if s.paused || ignored(&s.ignore, l) {
                    continue;
                }
                let why = if lost { "with wal_status=lost" } else { "" };
                out.log.push((
                    LogLevel::Info,
                    if lost {
                        format!("Trying to drop replication slot '{}' {why}", l.name)
                    } else {
                        format!("Trying to drop unknown replication slot '{}'", l.name)
                    },
                ));
            }
        }
        out.drop.push(l.name.clone());
        present.remove(l.name.as_str());
    }

    let can_advance = input.major >= ADVANCE_MIN_MAJOR;
    let unlocked = input.cluster.leader.is_none();
    let clean_inactive =
        !unlocked && (input.cluster.leader.as_deref() != Some(input.me) || input.role == PgRole::Primary);
    for (name, w) in &wanted {
        if w.kind != SlotKind::Physical {
            continue;
        }
        if let Some(l) = present.get(name.as_str()).copied() {
            if can_advance && clean_inactive && w.expected_active == Some(false) && l.has_xmin {
                out.log.push((
                    LogLevel::Warning,
                    format!("Dropping physical replication slot {name} because of its xmin value"),
                ));
                out.drop.push(name.clone());
                out.create_physical.push(name.clone());
                continue;
            }
            if can_advance && w.expected_active != Some(true) && !l.has_xmin {
                match l.restart_lsn {
                    None => {
                        out.log.push((
                            LogLevel::Warning,
                            format!("Dropping physical replication slot {name} because it has no restart_lsn. This slot was probably not created by Patroni, but by an external agent."),
                        ));
                        out.drop.push(name.clone());
                    }
                    Some(restart) => {
                        if let Some(lsn) = w.lsn.filter(|l| *l > restart) {
                            out.advance.push(Advance { name: name.clone(), database: None, lsn });
                        }
                    }
                }
            }
        } else {
            out.create_physical.push(name.clone());
        }
    }

    for (name, w) in &wanted {
        let SlotKind::Logical { database, plugin } = &w.kind else { continue };
        let here = present.get(name.as_str()).copied();
        if input.role == PgRole::Primary {
            if here.is_none() {
                out.create_logical.push((name.clone(), database.clone(), plugin.clone()));
            }
            continue;
        }
        match (here, w.lsn) {
            (Some(l), Some(lsn)) => {
                // A replica cannot decode past what it replayed.
                let target = input.replay_lsn.map_or(lsn, |r| lsn.min(r));
                if l.confirmed_flush_lsn.is_some_and(|c| c < target) {
                    out.advance.push(Advance { name: name.clone(), database: Some(database.clone()), lsn: target });
                }
            }
            // Only slots the leader publishes a position for are copied: they exist there.
            (None, Some(_)) => out.copy.push(name.clone()),
            _ => {}
        }
    }
    out
}

/// What the leader publishes in `status.slots`: the position of each wanted slot it has, and its own position
/// under its own slot name (replicas keep a permanent slot for it). With `member_slots_ttl: 0`, only permanent
/// slots (Patroni's `maybe_filter_permanent_slots`). Empty before PostgreSQL 11.
pub fn published_slots(input: &SlotInput<'_>, s: &SlotSettings, own_lsn: Lsn) -> Vec<(Name, Lsn)> {
    if input.major < ADVANCE_MIN_MAJOR {
        return Vec::new();
    }
    let mut log = Vec::new();
    let wanted = wanted_slots(input, s, &mut log);
    let mut out: Vec<(Name, Lsn)> = input
        .local
        .iter()
        .filter(|l| wanted.get(&l.name).is_some_and(|w| w.kind == l.kind))
        .filter_map(|l| l.position().map(|p| (l.name.clone(), p)))
        .collect();
    let mine = slot_name(input.me);
    out.retain(|(n, _)| *n != mine);
    out.push((mine, own_lsn));
    if s.member_slots_ttl == 0 {
        let members: BTreeSet<String> = input.cluster.members.iter().map(|m| slot_name(&m.name)).collect();
        out.retain(|(n, _)| {
            s.permanent.iter().any(|p| {
                p.name == *n
                    && (p.kind == SlotKind::Physical || !members.contains(n))
                    && (!p.kind.is_logical() || input.major >= ADVANCE_MIN_MAJOR)
            })
        });
    }
    out
}

/// Whether this replica must run with `hot_standby_feedback` on: it keeps permanent logical slots (their
/// catalog_xmin must hold on the primary), or a member cascading from it does.
pub fn needs_hot_standby_feedback(cluster: &ClusterView, me: &str, tags: &Tags, s: &SlotSettings, major: u32) -> bool {
    let mut seen = BTreeSet::new();
    feedback_for(cluster, me, tags, s, major, &mut seen)
}

fn feedback_for(
    cluster: &ClusterView,
    me: &str,
    tags: &Tags,
    s: &SlotSettings,
    major: u32,
    seen: &mut BTreeSet<String>,
) -> bool {
    if !seen.insert(me.to_string()) || !s.use_slots || major < ADVANCE_MIN_MAJOR || tags.nofailover {
        return false;
    }
    if slot_on_primary(cluster, me, tags).is_none() {
        return false;
    }
    if !s.standby_cluster && s.permanent.iter().any(|p| p.kind.is_logical() && valid_slot_name(&p.name)) {
        return true;
    }
    cluster
        .members
        .iter()
        .filter(|m| m.tags.replicatefrom.as_deref() == Some(me) && cluster.leader.as_deref() != Some(m.name.as_str()))
        .any(|m| feedback_for(cluster, &m.name, &m.tags, s, major, seen))
}

/// The leader's memory of member slots, for `retain_slots`: when each member slot was last seen belonging to a
/// member, so that a vanished member's slot is kept `member_slots_ttl` and then let go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetainedSlots {
    seen: BTreeMap<Name, Time>,
}

impl RetainedSlots {
    /// On taking the leader key: the slots the previous leader retained start their time again now.
    pub fn restart(&mut self, retain_slots: &[Name], now: Time) {
        self.seen = retain_slots.iter().map(|n| (n.clone(), now)).collect();
    }

    /// Notes the member slots among `published` (the leader's slots), forgets those unseen for longer than
    /// `member_slots_ttl`, and returns the sorted `retain_slots` to publish, with the lines to log.
    pub fn update(
        &mut self,
        now: Time,
        me: &str,
        cluster: &ClusterView,
        published: &[(Name, Lsn)],
        s: &SlotSettings,
    ) -> (Vec<Name>, Vec<(LogLevel, String)>) {
        if !published.is_empty() {
            let mut members: BTreeSet<String> =
                cluster.members.iter().filter(|m| !m.tags.nostream).map(|m| slot_name(&m.name)).collect();
            members.insert(slot_name(me));
            let permanent: BTreeSet<&str> =
                s.permanent.iter().filter(|p| p.kind == SlotKind::Physical).map(|p| p.name.as_str()).collect();
            for (name, _) in published {
                if members.contains(name) && !permanent.contains(name.as_str()) {
                    self.seen.insert(name.clone(), now);
                }
            }
        }
        let ttl_ms = (s.member_slots_ttl as i64).saturating_mul(1000);
        let mut log = Vec::new();
        self.seen.retain(|name, at| {
            let keep = at.0.saturating_add(ttl_ms) > now.0;
            if !keep {
                log.push((
                    LogLevel::Info,
                    format!(
                        "Replication slot '{name}' for absent cluster member is expired after {} sec.",
                        s.member_slots_ttl
                    ),
                ));
            }
            keep
        });
        (self.seen.keys().cloned().collect(), log)
    }
}

#[cfg(test)]
mod tests;
