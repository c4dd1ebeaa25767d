//! Synchronous replication, as the leader maintains it.
//!
//! The `sync` key names who may promote; PostgreSQL's `synchronous_standby_names` names whose acknowledgement a
//! commit waits for. Safety needs the key never to name a member PostgreSQL does not wait for, so a member is
//! removed from the key before PostgreSQL stops waiting for it, and added to the key only after
//! `pg_stat_replication` shows PostgreSQL already waits for it.

use crate::action::Action;
use crate::view::{ClusterView, LocalState, Name, PgRole, Settings, SyncMode};

pub(crate) fn leader_actions(s: &Settings, cluster: &ClusterView, local: &LocalState) -> Vec<Action> {
    let ours = cluster.sync.leader.as_deref() == Some(s.name.as_str());
    if s.sync_mode == SyncMode::Off {
        if ours && !cluster.sync.standbys.is_empty() {
            return vec![
                Action::SetSyncState { standbys: Vec::new() },
                Action::SetSyncStandbys { standbys: Vec::new(), strict: false },
            ];
        }
        return Vec::new();
    }

    let streaming = |name: &str| local.replication.iter().find(|r| r.name == name && r.streaming);
    let mut eligible: Vec<(&Name, u64)> = cluster
        .members
        .iter()
        .filter(|m| m.name != s.name && !m.tags.nosync && m.running && m.role == PgRole::Replica)
        .filter_map(|m| streaming(&m.name).map(|r| (&m.name, r.acknowledged(s.sync_commit).unwrap_or(0))))
        .collect();
    if let Some(max_lag) = s.maximum_lag_on_syncnode {
        // A standby that stopped keeping up (replay paused, a slow disk) would hold every commit back: measured
        // against the most advanced standby, or against our own position when there is only one.
        let reference = match eligible.len() {
            0 | 1 => local.lsn.unwrap_or(0),
            _ => eligible.iter().map(|(_, lsn)| *lsn).max().unwrap_or(0),
        };
        eligible.retain(|(_, lsn)| reference.saturating_sub(*lsn) <= max_lag);
    }
    // Furthest ahead first; names break ties so every run picks the same members.
    eligible.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));

    let current: Vec<&Name> = if ours { cluster.sync.standbys.iter().collect() } else { Vec::new() };
    let count = s.sync_node_count.max(1);
    // Members already synchronous stay picked while they stream: no churn when a new one is slightly ahead.
    let mut desired: Vec<Name> =
        current.iter().filter(|c| eligible.iter().any(|(n, _)| n == *c)).take(count).map(|c| (*c).clone()).collect();
    for (name, _) in &eligible {
        if desired.len() >= count {
            break;
        }
        if !desired.contains(name) {
            desired.push((*name).clone());
        }
    }

    let confirmed: Vec<Name> =
        desired.iter().filter(|d| local.replication.iter().any(|r| r.name == **d && r.synchronous)).cloned().collect();
    let mut actions = Vec::new();
    let published: Vec<Name> = current.iter().map(|c| (*c).clone()).collect();
    if !ours || published != confirmed {
        actions.push(Action::SetSyncState { standbys: confirmed });
    }
    actions.push(Action::SetSyncStandbys { standbys: desired, strict: s.sync_strict });
    actions
}
