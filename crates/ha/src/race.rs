//! The leader race: nobody holds the leader key, and this member decides whether to take it (Patroni's
//! `is_healthiest_node` and the manual failover rules that come before it).

use crate::action::{Action, LogLevel, Outcome, Plan};
use crate::core::{race_members, timeline_behind, Ha, Observation};
use crate::election;
use crate::rewind::RewindState;
use crate::view::{ClusterView, FailoverRequest, LocalState, PeerReply, PeerStatus, PgRole, Settings};

impl Ha {
    /// Nobody holds the leader key and we run as a replica (or a primary without the key).
    pub(crate) fn leader_race(&mut self, s: &Settings, cluster: &ClusterView, obs: &Observation) -> Plan {
        let local = &obs.local;
        if obs.outcome(|o| *o == Outcome::LeaderRace { won: false }) {
            return Plan::status("following new leader after trying and failing to obtain lock");
        }
        if s.pause {
            if local.role == PgRole::Primary {
                return Plan::status("acquired session lock as a leader").with(Action::AcquireLeader).again();
            }
            let named = cluster.failover.as_ref().and_then(|f| f.candidate.as_deref()) == Some(s.name.as_str());
            if !named {
                return Plan::status(format!(
                    "PAUSE: no action. I am ({}), a secondary, and there is no leader",
                    s.name
                ));
            }
        }
        if let Some(leader) = failsafe_leader(s, obs, self.ttl_high) {
            // A failsafe leader asked us to confirm it less than a ttl ago: it still runs as primary and will go on
            // until one of its checks fails, which can be a loop and a retry_timeout away. Racing now could make
            // two primaries; Patroni treats that member as holding the key for a ttl after its last heartbeat.
            return Plan::status(format!(
                "no action. I am ({}), a secondary, and following a leader ({leader})",
                s.name
            ));
        }
        if local.role == PgRole::Primary && !timeline_behind(local, cluster) {
            // Still running as primary (a failsafe leader whose key expired while every member confirmed it): the
            // healthiest node whatever a failover request says, as in Patroni's `is_healthiest_node`. Deferring to
            // a named candidate would wait forever, since the candidate never promotes next to a running primary.
            return Plan::status("acquired session lock as a leader").with(Action::AcquireLeader).again();
        }
        let mut excluded: Option<&str> = None;
        if let Some(f) = &cluster.failover {
            // A switchover (the request names a leader) in synchronous mode may only go to a synchronous
            // standby: anyone else could lack acknowledged commits. A failover (no leader named) is the operator
            // accepting that risk, as documented.
            let candidate =
                f.candidate.as_deref().filter(|c| f.leader.is_none() || election::sync_allows(s, cluster, c));
            match candidate {
                Some(c) if c == s.name => {
                    // Named by an operator: promote even if lagging; that is what failover means. But never next
                    // to a primary that still runs (a failsafe leader cut off from the DCS keeps running).
                    let others = race_members(s, cluster);
                    let mut seen: &[PeerStatus] = &[];
                    if !others.is_empty() {
                        let Some(peers) = &obs.peers else {
                            return Plan::status("manual failover: checking that no primary is still running")
                                .with(Action::FetchPeers { members: others })
                                .again();
                        };
                        if let Some(p) = peers.iter().find(|p| p.reply.as_ref().is_some_and(runs_as_primary)) {
                            return Plan::status(format!("manual failover: {} is still running as primary", p.name));
                        }
                        seen = peers;
                    }
                    if !switchover_needs_votes(s, cluster, f) || election::quorum_reached(s, cluster, local, seen) {
                        return Plan::status("manual failover: taking the leader key as the candidate")
                            .with(Action::AcquireLeader)
                            .again();
                    }
                    // Without the votes, the race below decides (a voter ahead of us takes over).
                    excluded = f.leader.as_deref();
                }
                Some(c) => {
                    let Some(peers) = &obs.peers else {
                        return Plan::status(format!("manual failover: checking candidate {c}"))
                            .with(Action::FetchPeers { members: vec![c.to_string()] })
                            .again();
                    };
                    let healthy = peers.iter().any(|p| p.name == c && p.reply.as_ref().is_some_and(|r| r.running));
                    // A candidate behind us cannot gather the quorum's votes: waiting for it would wait forever.
                    let behind_us = switchover_needs_votes(s, cluster, f)
                        && peers.iter().any(|p| {
                            p.name == c
                                && p.reply
                                    .as_ref()
                                    .is_some_and(|r| election::further(local.timeline, local.lsn, r.timeline, r.lsn))
                        });
                    if healthy && !behind_us {
                        return Plan::status(format!("manual failover: waiting for {c} to take over"));
                    }
                    excluded = f.leader.as_deref();
                }
                None => excluded = f.leader.as_deref(),
            }
        }
        let others = race_members(s, cluster);
        if excluded == Some(s.name.as_str()) {
            // The former leader steps aside only if someone else can take over; otherwise the cluster would stay
            // without a primary (e.g. in synchronous mode it may be the only member allowed to promote).
            let Some(peers) = &obs.peers else {
                return Plan::status("manual failover: checking whether another member can take over")
                    .with(Action::FetchPeers { members: others })
                    .again();
            };
            // A candidate named but unfit is left out; then in quorum mode enough voters must be able to take over.
            let named = cluster.failover.as_ref().and_then(|f| f.candidate.as_deref());
            let someone = election::failover_possible(
                s,
                cluster,
                peers.iter().filter(|p| Some(p.name.as_str()) != named).map(|p| (p.name.as_str(), p.reply.as_ref())),
                false,
            );
            if someone {
                return Plan::status("manual failover: not taking part in the race as the former leader");
            }
        }
        if let Some((status, why)) = election::ineligibility(s, cluster, local) {
            let plan = Plan::status(status);
            return match why {
                Some(line) => plan.log(LogLevel::Info, line),
                None => plan,
            };
        }
        if !others.is_empty() {
            let Some(peers) = &obs.peers else {
                return Plan::status("checking whether I am the healthiest node")
                    .with(Action::FetchPeers { members: others })
                    .again();
            };
            // The former leader sits out the comparison, unless it still runs as primary: racing then makes two.
            // Beyond Patroni, so does a member the `failsafe` key does not list: it may not race itself
            // (`ineligibility`), so deferring to it left the cluster without a leader for good (simulator,
            // `--failsafe`: the healthiest member had been cut off when the failsafe leader wrote the key).
            let peers: Vec<PeerStatus> = peers
                .iter()
                .filter(|p| {
                    p.reply.as_ref().is_some_and(runs_as_primary)
                        || (Some(p.name.as_str()) != excluded && !election::unlisted_in_failsafe(s, cluster, &p.name))
                })
                .cloned()
                .collect();
            if let Some(why) = self.defer_to_newer_timeline(s, cluster, local, &peers) {
                return Plan::status("following a different leader because i am not the healthiest node")
                    .log(LogLevel::Info, why);
            }
            if let Some((level, why)) = election::better_peer(s, cluster, local, &peers) {
                return Plan::status("following a different leader because i am not the healthiest node")
                    .log(level, why);
            }
            // Votes come from every voter that answered, the former leader too: a vote says what it holds, not
            // that it may take over.
            let everyone = obs.peers.as_deref().unwrap_or_default();
            if !election::quorum_reached(s, cluster, local, everyone) {
                return Plan::status("following a different leader because i am not the healthiest node");
            }
        } else if !election::quorum_reached(s, cluster, local, &[]) {
            return Plan::status("following a different leader because i am not the healthiest node");
        }
        Plan::status("acquiring the leader key as the healthiest node").with(Action::AcquireLeader).again()
    }
    /// Beyond Patroni: a former primary not yet proven on the cluster's history holds WAL of an older timeline that
    /// may not contain what was committed since; its raw position says nothing about that (racing by it lost
    /// acknowledged writes in quorum mode: simulator, bug 10). It lets a member on the cluster's timeline that can
    /// take over go first; when none can, it races as Patroni would.
    fn defer_to_newer_timeline(
        &self,
        s: &Settings,
        cluster: &ClusterView,
        local: &LocalState,
        peers: &[PeerStatus],
    ) -> Option<String> {
        // A failed rewind leaves the history as diverged as before: the same holds.
        let unproven = matches!(self.rewind, RewindState::Check | RewindState::Need { .. } | RewindState::Failed);
        if !unproven || !timeline_behind(local, cluster) {
            return None;
        }
        let newest = cluster.timeline?;
        // With synchronous or quorum commit the acknowledged writes are on the newer timeline whatever its lag says;
        // without, a lagging member could never take over, so it does not hold us back.
        let acknowledging = election::sync_active(s, cluster) || election::quorum_active(s, cluster);
        let peer = peers.iter().find(|p| {
            p.reply.as_ref().is_some_and(|r| {
                let able = if acknowledging {
                    r.running && r.tags.can_fail_over() && election::sync_allows(s, cluster, &p.name)
                } else {
                    election::could_take_over(s, cluster, &p.name, r)
                };
                r.timeline.is_some_and(|t| t >= newest) && able
            })
        })?;
        Some(format!(
            "{} is on the cluster's timeline {newest}; our history (timeline {}) may have diverged from it",
            peer.name,
            local.timeline.unwrap_or(0)
        ))
    }
}

/// The member whose failsafe heartbeat we accepted less than a ttl ago, if it is not us and failsafe mode is on.
///
/// A ttl at least as long as any seen: a leader cut off from the DCS fences itself a ttl (less its watchdog margin)
/// after its last confirmed check by the ttl *it* last read, and cannot see the configuration lower it since. Holding
/// back by the current, lower ttl let a replica promote next to it (3 of 20,000 simulator seeds with `--failsafe`).
fn failsafe_leader<'a>(s: &Settings, obs: &'a Observation, ttl_high: crate::time::Millis) -> Option<&'a str> {
    let (leader, at) = obs.failsafe_heartbeat.as_ref()?;
    let hold = s.ttl.max(ttl_high);
    (s.failsafe_mode && *leader != s.name && obs.now - *at < hold).then_some(leader.as_str())
}

fn runs_as_primary(r: &PeerReply) -> bool {
    r.running && r.role == PgRole::Primary
}

/// Beyond Patroni: a switchover whose leader went away before handing over has become a failover. With the quorum
/// rules active the named candidate is one voter among several and may lack commits another voter acknowledged (the
/// leader would have waited for it to catch up); it takes the key only with the votes any racer needs (simulator,
/// quorum mode). A failover without a leader named is the operator accepting that risk, as documented.
fn switchover_needs_votes(s: &Settings, cluster: &ClusterView, f: &FailoverRequest) -> bool {
    f.leader.is_some() && election::quorum_active(s, cluster)
}
