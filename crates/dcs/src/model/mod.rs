//! The cluster as stored in the DCS: plain data, no IO.
//!
//! A [`Cluster`] is built from the raw keys under the cluster prefix ([`RawNode`]s) by [`Cluster::from_nodes`],
//! which every backend uses, so the tolerance rules (unknown fields kept, bad values reported per key, never a
//! panic) are the same whatever the store.

mod member;
pub mod tags;
mod values;

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde_json::Value;

pub use member::{Member, MemberData};
pub use values::{
    failsafe_json, parse_failsafe, parse_timestamp, ClusterConfig, Failover, Failsafe, HistoryLine, Status, SyncState,
    TimelineHistory,
};

use crate::keys;

/// Modification version of a key (etcd `mod_revision`). Passed back unchanged for compare-and-set.
pub type Version = i64;

/// The lease or session a key is bound to (etcd lease id in decimal).
pub type Session = String;

/// A value under some key could not be read fully. The rest of the cluster still parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseProblem {
    /// Key relative to the cluster prefix, e.g. `members/node1`.
    pub key: String,
    pub message: String,
}

impl ParseProblem {
    pub fn new(key: &str, message: impl Into<String>) -> Self {
        ParseProblem { key: key.to_string(), message: message.into() }
    }
}

impl std::fmt::Display for ParseProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Reads an LSN stored as an integer, a decimal string, or PostgreSQL's `X/Y` text form.
pub fn parse_lsn(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            // Python may write a float for an integer-valued LSN.
            n.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1.8e19).map(|f| f as u64)
        }),
        Value::String(s) => parse_lsn_str(s),
        _ => None,
    }
}

pub fn parse_lsn_str(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some((hi, lo)) = s.split_once('/') {
        let hi = u64::from_str_radix(hi, 16).ok()?;
        let lo = u64::from_str_radix(lo, 16).ok()?;
        if hi > u64::from(u32::MAX) || lo > u64::from(u32::MAX) {
            return None;
        }
        return Some((hi << 32) | lo);
    }
    s.parse().ok()
}

/// PostgreSQL's `X/Y` text form of an LSN.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// The `leader` key: who holds the leader lock, bound to its owner's lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Leader {
    pub name: String,
    /// Modification version of the leader key; a change means a new lock holder or a refresh.
    pub version: Version,
    pub session: Option<Session>,
    /// The leader's `members/` entry, or a placeholder with empty data when it has none.
    pub member: Member,
}

impl Leader {
    pub fn timeline(&self) -> Option<u32> {
        self.member.timeline()
    }

    pub fn conn_url(&self) -> Option<&str> {
        self.member.conn_url()
    }

    /// Whether the leader finished its post-promote checkpoint. `None` when its Patroni is too old (<= 1.5.6)
    /// to say.
    pub fn checkpoint_after_promote(&self) -> Option<bool> {
        let v = self.member.patroni_version()?;
        if v.as_slice() <= [1, 5, 6].as_slice() {
            return None;
        }
        Some(
            matches!(self.member.role(), Some("master" | "primary"))
                && self.member.data.checkpoint_after_promote.is_none(),
        )
    }
}

/// One raw key as a backend read it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawNode {
    /// Key relative to the cluster prefix (no leading slash), e.g. `leader`, `members/node1`, `1/leader` (Citus).
    pub key: String,
    pub value: String,
    pub version: Version,
    pub session: Option<Session>,
}

/// A consistent snapshot of one cluster (or of a Citus coordinator with its workers).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cluster {
    /// Content of `initialize`: the PostgreSQL system identifier, `""` while bootstrap is in progress,
    /// `None` when the key is absent.
    pub initialize: Option<String>,
    pub config: Option<ClusterConfig>,
    pub leader: Option<Leader>,
    pub status: Status,
    /// All `members/*` keys, sorted by name.
    pub members: Vec<Member>,
    /// `None` when the key is absent or asks for nothing.
    pub failover: Option<Failover>,
    pub sync: SyncState,
    pub history: Option<TimelineHistory>,
    pub failsafe: Option<Failsafe>,
    /// Citus workers by group, only on a coordinator's view.
    pub workers: BTreeMap<u32, Cluster>,
    /// Store revision this snapshot was read at, when the backend has one (etcd header revision).
    pub revision: Option<i64>,
    /// Values that could not be read fully.
    pub problems: Vec<ParseProblem>,
}

impl Cluster {
    /// Builds a cluster from the keys under its prefix. Keys not belonging to the layout are ignored.
    pub fn from_nodes(nodes: impl IntoIterator<Item = RawNode>) -> Cluster {
        let mut by_key: BTreeMap<String, RawNode> = BTreeMap::new();
        for n in nodes {
            by_key.insert(n.key.trim_start_matches('/').to_string(), n);
        }
        let mut problems = Vec::new();
        let mut c = Cluster::default();

        if let Some(n) = by_key.get(keys::INITIALIZE) {
            c.initialize = Some(n.value.clone());
        }
        if let Some(n) = by_key.get(keys::CONFIG) {
            c.config = Some(ClusterConfig::parse(n.version, &n.value, &n.key, &mut problems));
        }
        if let Some(n) = by_key.get(keys::HISTORY) {
            c.history = Some(TimelineHistory::parse(n.version, &n.value, &n.key, &mut problems));
        }
        if let Some(n) = by_key.get(keys::STATUS).or_else(|| by_key.get(keys::LEADER_OPTIME)) {
            c.status = Status::parse(&n.value, &n.key, &mut problems);
        }
        for (k, n) in by_key.range(keys::MEMBERS.to_string()..) {
            let Some(name) = k.strip_prefix(keys::MEMBERS) else {
                break;
            };
            if name.is_empty() || name.contains('/') {
                continue;
            }
            c.members.push(Member::from_value(name, n.version, n.session.clone(), &n.value, &n.key, &mut problems));
        }
        if let Some(n) = by_key.get(keys::LEADER) {
            let name = n.value.trim().to_string();
            if name.is_empty() {
                problems.push(ParseProblem::new(&n.key, "leader key holds an empty name"));
            } else {
                let member = c
                    .members
                    .iter()
                    .find(|m| m.name == name)
                    .cloned()
                    .unwrap_or_else(|| Member::placeholder(name.clone()));
                c.leader = Some(Leader { name, version: n.version, session: n.session.clone(), member });
            }
        }
        if let Some(n) = by_key.get(keys::FAILOVER) {
            let f = Failover::parse(n.version, &n.value, &n.key, &mut problems);
            // An unreadable schedule is kept so the HA core can refuse it rather than act immediately.
            if !f.is_empty() || f.invalid_scheduled_at.is_some() {
                c.failover = Some(f);
            }
        }
        if let Some(n) = by_key.get(keys::SYNC) {
            c.sync = SyncState::parse(n.version, &n.value, &n.key, &mut problems);
        }
        if let Some(n) = by_key.get(keys::FAILSAFE) {
            c.failsafe = parse_failsafe(&n.value, &n.key, &mut problems);
        }
        c.problems = problems;
        c
    }

    /// Builds a Citus coordinator view: keys are `<group>/<key>`; group 0 is the coordinator itself.
    pub fn from_mpp_nodes(nodes: impl IntoIterator<Item = RawNode>, coordinator_group: u32) -> Cluster {
        let mut groups: BTreeMap<u32, Vec<RawNode>> = BTreeMap::new();
        for mut n in nodes {
            let key = n.key.trim_start_matches('/').to_string();
            let Some((group, rest)) = key.split_once('/') else {
                continue;
            };
            let Ok(group) = group.parse::<u32>() else {
                continue;
            };
            n.key = rest.to_string();
            groups.entry(group).or_default().push(n);
        }
        let mut coordinator = groups.remove(&coordinator_group).map(Cluster::from_nodes).unwrap_or_default();
        coordinator.workers = groups.into_iter().map(|(g, ns)| (g, Cluster::from_nodes(ns))).collect();
        coordinator
    }

    /// Every key this cluster would be stored as, relative to the cluster prefix (for tests and migrations).
    pub fn to_nodes(&self) -> Vec<RawNode> {
        let node = |key: &str, value: String, version: Version, session: Option<Session>| RawNode {
            key: key.to_string(),
            value,
            version,
            session,
        };
        let mut out = Vec::new();
        if let Some(i) = &self.initialize {
            out.push(node(keys::INITIALIZE, i.clone(), 0, None));
        }
        if let Some(cfg) = &self.config {
            out.push(node(keys::CONFIG, cfg.to_json(), cfg.version, None));
        }
        if let Some(l) = &self.leader {
            out.push(node(keys::LEADER, l.name.clone(), l.version, l.session.clone()));
        }
        if self.status != Status::default() {
            out.push(node(keys::STATUS, self.status.to_json(), 0, None));
        }
        for m in &self.members {
            out.push(node(&format!("{}{}", keys::MEMBERS, m.name), m.data.to_json(), m.version, m.session.clone()));
        }
        if let Some(f) = &self.failover {
            out.push(node(keys::FAILOVER, f.to_json(), f.version, None));
        }
        if let Some(v) = self.sync.version {
            out.push(node(keys::SYNC, self.sync.to_json(), v, None));
        }
        if let Some(h) = &self.history {
            out.push(node(keys::HISTORY, h.to_json(), h.version, None));
        }
        if let Some(f) = &self.failsafe {
            out.push(node(keys::FAILSAFE, failsafe_json(f), 0, None));
        }
        out
    }

    pub fn leader_name(&self) -> Option<&str> {
        self.leader.as_ref().map(|l| l.name.as_str())
    }

    /// No one holds the leader lock.
    pub fn is_unlocked(&self) -> bool {
        self.leader.is_none()
    }

    pub fn has_member(&self, name: &str) -> bool {
        self.members.iter().any(|m| m.name == name)
    }

    pub fn get_member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The member, or the leader's (possibly placeholder) member when the name is the leader's.
    pub fn get_member_or_leader(&self, name: &str) -> Option<&Member> {
        self.get_member(name).or_else(|| self.leader.as_ref().filter(|l| l.name == name).map(|l| &l.member))
    }

    /// Last known leader WAL position from `status` (0 when unknown).
    pub fn leader_optime(&self) -> u64 {
        self.status.last_lsn
    }

    /// Slot positions published by the leader.
    pub fn slots(&self) -> IndexMap<String, u64> {
        self.status.slots.clone().unwrap_or_default()
    }

    /// The timeline the cluster is on according to the history (last ended timeline + 1), 1 without history.
    pub fn timeline(&self) -> u32 {
        self.history.as_ref().and_then(|h| h.lines.last()).map_or(1, |l| l.timeline.saturating_add(1))
    }

    /// The lowest Patroni version among members, to keep writing legacy keys old members still read.
    pub fn min_patroni_version(&self) -> Option<Vec<u32>> {
        self.members.iter().filter_map(Member::patroni_version).min()
    }

    /// True when nothing at all is stored for this cluster.
    pub fn is_empty(&self) -> bool {
        self.initialize.is_none()
            && self.config.is_none()
            && self.leader.is_none()
            && self.status == Status::default()
            && self.members.is_empty()
            && self.failover.is_none()
            && self.sync.version.is_none()
            && self.history.is_none()
            && self.failsafe.is_none()
            && self.workers.is_empty()
    }
}

#[cfg(test)]
mod tests;
