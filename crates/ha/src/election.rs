//! Who may take the leader key when it is free: the "healthiest node" rules.

use crate::action::LogLevel;
use crate::view::{ClusterView, LocalState, Lsn, PeerReply, PeerStatus, PgRole, Settings, SyncMode};

/// Why this member may not take part in an automatic leader race: the status Patroni ends the loop with, and the
/// line it logs on the way (if any).
pub(crate) fn ineligibility(
    s: &Settings,
    cluster: &ClusterView,
    local: &LocalState,
) -> Option<(String, Option<String>)> {
    const NOT_HEALTHIEST: &str = "following a different leader because i am not the healthiest node";
    if !s.tags.can_fail_over() {
        return Some(("following a different leader because I am not allowed to promote".into(), None));
    }
    if s.watchdog_unusable(local.watchdog.usable) {
        return Some((NOT_HEALTHIEST.into(), Some("Watchdog device is not usable".into())));
    }
    if let Some(reason) = lag_problem(s, cluster.last_leader_lsn, local.lsn) {
        return Some((NOT_HEALTHIEST.into(), Some(reason)));
    }
    if s.check_timeline {
        if let (Some(cluster_tl), Some(mine)) = (cluster.timeline, local.timeline) {
            if mine < cluster_tl {
                let why = format!("My timeline {mine} is behind last known cluster timeline {cluster_tl}");
                return Some((NOT_HEALTHIEST.into(), Some(why)));
            }
        }
    }
    // In quorum mode a member outside the voters may race too: it needs the voters' votes to win.
    if s.sync_mode == SyncMode::On && !sync_allows(s, cluster, &s.name) {
        return Some((NOT_HEALTHIEST.into(), None));
    }
    if unlisted_in_failsafe(s, cluster, &s.name) {
        return Some((NOT_HEALTHIEST.into(), None));
    }
    None
}

/// In failsafe mode, a member the leader never listed in the `failsafe` key may lack what the others confirmed to
/// it while the DCS was away (a replica restored from a backup, say): it sits out the race.
pub(crate) fn unlisted_in_failsafe(s: &Settings, cluster: &ClusterView, name: &str) -> bool {
    s.failsafe_mode && cluster.failsafe.as_ref().is_some_and(|l| !l.is_empty() && !l.iter().any(|n| n == name))
}

/// Synchronous replication is asked for and the leader wrote the `sync` key: its rules apply.
pub(crate) fn sync_active(s: &Settings, cluster: &ClusterView) -> bool {
    s.sync_mode != SyncMode::Off && !cluster.sync.is_empty()
}

/// The quorum rules apply: quorum commit is asked for and the leader wrote the `sync` key — or, beyond Patroni,
/// synchronous mode `on` reads a key that a leader in quorum mode wrote (`quorum` > 0: the mode was changed live and
/// that leader has not applied the change yet). Its voters do not each hold every acknowledged commit, so `quorum`
/// of them must be heard whatever mode this member reads (simulator, live mode changes).
pub(crate) fn quorum_active(s: &Settings, cluster: &ClusterView) -> bool {
    !cluster.sync.is_empty()
        && match s.sync_mode {
            SyncMode::Quorum => true,
            SyncMode::On => cluster.sync.quorum > 0,
            SyncMode::Off => false,
        }
}

/// In synchronous mode only the members in the `sync` key (and the leader that wrote it) hold every acknowledged
/// commit; anyone else promoting could lose them. Before the key is written, nobody is excluded.
pub(crate) fn sync_allows(s: &Settings, cluster: &ClusterView, name: &str) -> bool {
    !sync_active(s, cluster) || cluster.sync.matches(name, true)
}

/// Quorum mode: whether we heard from enough voters, none of them ahead of us, to be sure we hold every
/// acknowledged commit. Any `quorum` voters besides us (the leader counted) overlap every set of standbys that
/// acknowledged a commit. The former leader that wrote the key needs no votes when nobody is ahead of it.
pub(crate) fn quorum_reached(s: &Settings, cluster: &ClusterView, local: &LocalState, peers: &[PeerStatus]) -> bool {
    if !quorum_active(s, cluster) {
        return true;
    }
    let voting = cluster.sync.members();
    let mut votes: i64 = if voting.contains(&s.name) { 0 } else { -1 };
    let mut ahead = 0;
    for p in peers.iter().filter(|p| p.name != s.name && voting.contains(&p.name)) {
        // Beyond Patroni, a `nofailover` voter votes too (Patroni fetches its status, then skips it): its position
        // says whether it holds commits we lack, whoever may promote. Without it a quorum with such a voter could
        // never be reached (simulator, quorum mode: a switchover left the cluster without a leader for good).
        let Some(r) = p.reply.as_ref().filter(|r| r.running) else { continue };
        if further(r.timeline, r.lsn, local.timeline, local.lsn) {
            ahead += 1;
        } else if r.lsn.is_some_and(|theirs| theirs > 0) {
            votes += 1;
        }
    }
    votes >= cluster.sync.quorum as i64 || (ahead == 0 && cluster.sync.leader.as_deref() == Some(s.name.as_str()))
}

/// Whether a member at (`timeline`, `lsn`) holds WAL past (`other_timeline`, `other_lsn`). Beyond Patroni, timelines
/// first: a member on a newer timeline is further, one on an older timeline never is, whatever the raw positions (the
/// older one either ends before the newer timeline's switch point or forked there, and then what it holds past it is
/// not the cluster's history). Simulator, quorum mode: a former primary counted a vote from a member on the newer
/// timeline whose raw position was lower, and promoted without that timeline's acknowledged commits.
pub(crate) fn further(
    timeline: Option<u32>,
    lsn: Option<Lsn>,
    other_timeline: Option<u32>,
    other_lsn: Option<Lsn>,
) -> bool {
    match (timeline, other_timeline) {
        (Some(t), Some(o)) if t < o => false,
        (Some(t), Some(o)) if t > o => true,
        _ => matches!((lsn, other_lsn), (Some(l), Some(o)) if l > o),
    }
}

/// Whether enough of these peers could take over (Patroni's `is_failover_possible`): at least one, and in quorum
/// mode `quorum + 1` of the voters, unless an operator named the candidate.
pub(crate) fn failover_possible<'a>(
    s: &Settings,
    cluster: &ClusterView,
    peers: impl IntoIterator<Item = (&'a str, Option<&'a PeerReply>)>,
    named_candidate: bool,
) -> bool {
    let able = peers
        .into_iter()
        .filter(|(name, r)| *name != s.name && r.is_some_and(|r| could_take_over(s, cluster, name, r)))
        .count();
    if quorum_active(s, cluster) && !named_candidate && able < cluster.sync.quorum + 1 {
        return false;
    }
    able >= 1
}

/// Whether a member at `lsn` is too far behind `reference` (the leader's last known position) to be promoted.
fn lag_problem(s: &Settings, reference: Option<Lsn>, lsn: Option<Lsn>) -> Option<String> {
    let Some(lsn) = lsn else {
        return Some("Can not figure out my wal position".into());
    };
    let last = reference?;
    let lag = last.saturating_sub(lsn);
    (lag > s.maximum_lag_on_failover).then(|| "My wal position exceeds maximum replication lag".to_string())
}

/// Why `peer` is a better choice than us, judged from its answer, in the words Patroni logs; `None` when it is not.
/// Only eligible peers count.
fn peer_is_better(
    s: &Settings,
    cluster: &ClusterView,
    local: &LocalState,
    name: &str,
    peer: &PeerReply,
) -> Option<(LogLevel, String)> {
    if !peer.running {
        return None;
    }
    if peer.role == PgRole::Primary {
        // Someone still runs as primary: racing against it would make two.
        return Some((LogLevel::Warning, format!("Primary ({name}) is still alive")));
    }
    if !peer.tags.can_fail_over() || lag_problem(s, cluster.last_leader_lsn, peer.lsn).is_some() {
        return None;
    }
    if !sync_allows(s, cluster, name) {
        return None;
    }
    // The former leader may still answer, even ahead of us (its last WAL never acknowledged to anyone): in
    // synchronous mode it does not keep us from taking over.
    let former_leader = sync_active(s, cluster) && cluster.sync.leader.as_deref() == Some(name);
    if s.check_timeline {
        if let (Some(theirs), Some(mine)) = (peer.timeline, local.timeline) {
            if theirs > mine {
                return Some((LogLevel::Info, format!("Timeline {theirs} of {name} is ahead of my timeline {mine}")));
            }
        }
    }
    // Beyond Patroni: a peer on an older timeline than ours is never ahead. Unless it forked, its WAL ends at or
    // before our timeline's switch point, which we passed; if it forked, what it holds past that point is not the
    // cluster's history (a former primary racing by raw LSN lost acknowledged writes: simulator, bug 10).
    if matches!((peer.timeline, local.timeline), (Some(theirs), Some(mine)) if theirs < mine) {
        return None;
    }
    match (peer.lsn, local.lsn) {
        (Some(theirs), Some(mine)) if theirs > mine && !former_leader => {
            Some((LogLevel::Info, format!("Wal position of {name} is ahead of my wal position")))
        }
        (Some(theirs), Some(mine))
            if theirs == mine && peer.tags.failover_priority > s.tags.failover_priority && !former_leader =>
        {
            Some((
                LogLevel::Info,
                format!(
                    "{name} has equally tolerable WAL position and priority {}, while this node has priority {}",
                    peer.tags.failover_priority, s.tags.failover_priority
                ),
            ))
        }
        _ => None,
    }
}

/// Whether a peer, judged from its answer, may take the leader key in an automatic race.
pub(crate) fn could_take_over(s: &Settings, cluster: &ClusterView, name: &str, peer: &PeerReply) -> bool {
    peer.running
        && peer.tags.can_fail_over()
        && lag_problem(s, cluster.last_leader_lsn, peer.lsn).is_none()
        && sync_allows(s, cluster, name)
}

/// The first peer that beats us, if any, and why: then we let it take the key.
pub(crate) fn better_peer(
    s: &Settings,
    cluster: &ClusterView,
    local: &LocalState,
    peers: &[PeerStatus],
) -> Option<(LogLevel, String)> {
    peers
        .iter()
        .filter(|p| p.name != s.name)
        .find_map(|p| p.reply.as_ref().and_then(|r| peer_is_better(s, cluster, local, &p.name, r)))
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
    if lag_problem(s, leader_lsn, r.lsn).is_some() {
        return Err(format!("Member {name} exceeds maximum replication lag"));
    }
    if !sync_allows(s, cluster, name) {
        return Err(format!("{name} is not a synchronous standby"));
    }
    Ok(())
}
