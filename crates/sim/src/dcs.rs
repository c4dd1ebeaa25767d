//! The simulated DCS: the keys the HA core reads, a leader lease that expires on the simulated clock, and the
//! dynamic configuration. Reachability (partitions, outages, slowness) is the world's business, not the store's.

use std::collections::BTreeMap;

use patroni_ha::{ClusterView, FailoverRequest, MemberView, SyncMode, SyncView};

/// The dynamic configuration (`config` key) the simulator varies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynConfig {
    pub ttl: u64,
    pub loop_wait: u64,
    pub retry_timeout: u64,
    pub maximum_lag_on_failover: u64,
    /// How long a leader whose PostgreSQL is down may keep the key while trying to start it.
    pub primary_start_timeout: u64,
    pub pause: bool,
    pub sync_mode: SyncMode,
    /// `synchronous_mode_strict`.
    pub sync_strict: bool,
    /// `synchronous_node_count`.
    pub sync_node_count: usize,
    pub failsafe_mode: bool,
}

impl DynConfig {
    /// Patroni's rule: a leader that cannot refresh must notice and demote before its key expires.
    pub fn timeouts_valid(&self) -> bool {
        self.loop_wait + 2 * self.retry_timeout <= self.ttl
    }
}

/// The leader key: who holds it and when its lease runs out unless refreshed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub holder: usize,
    pub expires: i64,
}

#[derive(Clone, Debug)]
pub struct Dcs {
    pub initialize: Option<String>,
    pub leader: Option<Lease>,
    pub last_leader_lsn: Option<u64>,
    pub history_timeline: Option<u32>,
    pub failover: Option<FailoverRequest>,
    pub sync: SyncView,
    pub failsafe: Option<Vec<String>>,
    /// `members/<name>` keys with the time they expire (they are written with the member's TTL).
    pub members: BTreeMap<usize, (MemberView, i64)>,
    pub config: DynConfig,
}

impl Dcs {
    pub fn new(config: DynConfig) -> Dcs {
        Dcs {
            initialize: None,
            leader: None,
            last_leader_lsn: None,
            history_timeline: None,
            failover: None,
            sync: SyncView::default(),
            failsafe: None,
            members: BTreeMap::new(),
            config,
        }
    }

    /// The holder of a lease that has not run out at `now`.
    pub fn leader_at(&self, now: i64) -> Option<usize> {
        self.leader.filter(|l| l.expires > now).map(|l| l.holder)
    }

    pub fn view(&self, now: i64, names: &[String]) -> ClusterView {
        ClusterView {
            initialize: self.initialize.clone(),
            leader: self.leader_at(now).and_then(|m| names.get(m).cloned()),
            members: self.members.values().filter(|(_, exp)| *exp > now).map(|(v, _)| v.clone()).collect(),
            last_leader_lsn: self.last_leader_lsn,
            timeline: self.history_timeline,
            failover: self.failover.clone(),
            sync: self.sync.clone(),
            failsafe: self.failsafe.clone(),
        }
    }

    pub fn sync_enabled(&self) -> bool {
        self.config.sync_mode != SyncMode::Off
    }
}
