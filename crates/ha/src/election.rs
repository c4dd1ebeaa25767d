//! Who may take the leader key when it is free: the "healthiest node" rules.

use crate::view::{ClusterView, LocalState, Lsn, PeerReply, PeerStatus, PgRole, Settings, SyncMode};

/// Why this member may not take part in an automatic leader race. The texts are what Patroni logs.
pub(crate) fn ineligibility(s: &Settings, cluster: &ClusterView, local: &LocalState) -> Option<String> {
    if !s.tags.can_fail_over() {
        return Some("I am not allowed to promote (nofailover or failover_priority 0)".into());
    }
    if s.watchdog_unavailable() {
        return Some("watchdog is required but not available".into());
    }
    if let Some(reason) = lag_problem(s, cluster.last_leader_lsn, local.lsn) {
        return Some(reason);
    }
    if s.check_timeline {
        if let (Some(cluster_tl), Some(mine)) = (cluster.timeline, local.timeline) {
            if mine < cluster_tl {
                return Some(format!("My timeline {mine} is behind last known cluster timeline {cluster_tl}"));
            }
        }
    }
    if s.sync_mode != SyncMode::Off && !sync_allows(cluster, &s.name) {
        return Some(format!("{} is not a synchronous standby", s.name));
    }
    None
}

/// In synchronous mode only the members in the `sync` key (and the leader that wrote it) hold every acknowledged
/// commit; anyone else promoting could lose them.
pub(crate) fn sync_allows(cluster: &ClusterView, name: &str) -> bool {
    cluster.sync.leader.as_deref() == Some(name) || cluster.sync.is_sync_standby(name)
}

/// Whether a member at `lsn` is too far behind `reference` (the leader's last known position) to be promoted.
fn lag_problem(s: &Settings, reference: Option<Lsn>, lsn: Option<Lsn>) -> Option<String> {
    let Some(lsn) = lsn else {
        return Some("my WAL position is unknown".into());
    };
    let last = reference?;
    let lag = last.saturating_sub(lsn);
    (lag > s.maximum_lag_on_failover)
        .then(|| format!("My wal position exceeds maximum replication lag ({lag} > {})", s.maximum_lag_on_failover))
}

/// Whether `peer` is a better choice than us, judged from its answer. Only eligible peers count.
fn peer_is_better(s: &Settings, cluster: &ClusterView, local: &LocalState, name: &str, peer: &PeerReply) -> bool {
    if !peer.running {
        return false;
    }
    if peer.role == PgRole::Primary {
        // Someone still runs as primary: racing against it would make two.
        return true;
    }
    if !peer.tags.can_fail_over() || lag_problem(s, cluster.last_leader_lsn, peer.lsn).is_some() {
        return false;
    }
    if s.sync_mode != SyncMode::Off && !sync_allows(cluster, name) {
        return false;
    }
    if s.check_timeline {
        if let (Some(theirs), Some(mine)) = (peer.timeline, local.timeline) {
            if theirs > mine {
                return true;
            }
        }
    }
    match (peer.lsn, local.lsn) {
        (Some(theirs), Some(mine)) if theirs > mine => true,
        (Some(theirs), Some(mine)) if theirs == mine => peer.tags.failover_priority > s.tags.failover_priority,
        _ => false,
    }
}

/// Whether a peer, judged from its answer, may take the leader key in an automatic race.
pub(crate) fn could_take_over(s: &Settings, cluster: &ClusterView, name: &str, peer: &PeerReply) -> bool {
    peer.running
        && peer.tags.can_fail_over()
        && lag_problem(s, cluster.last_leader_lsn, peer.lsn).is_none()
        && (s.sync_mode == SyncMode::Off || sync_allows(cluster, name))
}

/// The first peer that beats us, if any: then we let it take the key.
pub(crate) fn better_peer<'a>(
    s: &Settings,
    cluster: &ClusterView,
    local: &LocalState,
    peers: &'a [PeerStatus],
) -> Option<&'a str> {
    peers
        .iter()
        .filter(|p| p.name != s.name)
        .find(|p| p.reply.as_ref().is_some_and(|r| peer_is_better(s, cluster, local, &p.name, r)))
        .map(|p| p.name.as_str())
}

/// Whether a switchover candidate answered as fit to take over from a running leader whose position is `leader_lsn`.
pub(crate) fn candidate_fit(
    s: &Settings,
    cluster: &ClusterView,
    leader_lsn: Option<Lsn>,
    name: &str,
    reply: Option<&PeerReply>,
) -> Result<(), String> {
    let Some(r) = reply else {
        return Err(format!("{name} is not reachable"));
    };
    if !r.running {
        return Err(format!("{name} is not running"));
    }
    if r.tags.nofailover {
        return Err(format!("{name} has tag nofailover"));
    }
    if let Some(problem) = lag_problem(s, leader_lsn, r.lsn) {
        return Err(format!("{name}: {problem}"));
    }
    if s.sync_mode != SyncMode::Off && !sync_allows(cluster, name) {
        return Err(format!("{name} is not a synchronous standby"));
    }
    Ok(())
}

impl Settings {
    /// Watchdog support comes with its own issue; until then a `required` watchdog can never be satisfied.
    fn watchdog_unavailable(&self) -> bool {
        self.watchdog_required
    }
}
