//! The standby cluster: a cluster whose leader follows a remote primary instead of being one.
//!
//! With `standby_cluster` in the dynamic configuration, the member holding the leader key is the *standby leader*:
//! PostgreSQL in recovery, streaming from (or restoring the archive of) the remote primary, while the other
//! members cascade from it. Failover and switchover move that role inside the cluster; synchronous replication is
//! ignored, as in Patroni. Nothing in this cluster is ever promoted while the setting is there: the decisions below
//! never ask for it, and [`never_writable`] strips any action that would make PostgreSQL writable from every plan,
//! as a second line behind them. Removing the setting is how an operator promotes the cluster on purpose.

use std::borrow::Cow;

use crate::action::{Action, DemoteMode, LogLevel, Outcome, Plan};
use crate::core::{Ha, Observation};
use crate::rewind::{Rejoin, RewindState};
use crate::view::{ClusterView, PgRole, Process, Settings, SyncMode};

/// The settings one step decides with: synchronous replication is meaningless without a primary, so a standby
/// cluster ignores it (the standby leader never waits for anyone).
pub(crate) fn effective(s: &Settings) -> Cow<'_, Settings> {
    if s.standby_cluster && s.sync_mode != SyncMode::Off {
        Cow::Owned(Settings { sync_mode: SyncMode::Off, ..s.clone() })
    } else {
        Cow::Borrowed(s)
    }
}

/// Whether `action` would leave PostgreSQL accepting writes.
fn makes_writable(action: &Action) -> bool {
    matches!(action, Action::Promote | Action::StartPrimary | Action::Bootstrap)
}

/// The last word on every plan of a standby cluster: no promotion, no start as a primary, no initdb. A decision
/// that asked for one is a bug; it is logged and the action dropped rather than obeyed.
pub(crate) fn never_writable(s: &Settings, mut plan: Plan) -> Plan {
    if !s.standby_cluster || !plan.actions.iter().any(makes_writable) {
        return plan;
    }
    let dropped: Vec<String> = plan.actions.iter().filter(|a| makes_writable(a)).map(|a| format!("{a:?}")).collect();
    plan.actions.retain(|a| !makes_writable(a));
    plan.log
        .push((LogLevel::Warning, format!("not running {} because standby_cluster is configured", dropped.join(", "))));
    plan
}

impl Ha {
    /// We hold the leader key of a standby cluster and PostgreSQL runs.
    pub(crate) fn standby_leader(&mut self, s: &Settings, cluster: &ClusterView, obs: &Observation) -> Plan {
        let local = &obs.local;
        let refresh = Action::UpdateLeader { lsn: local.lsn };
        if obs.outcome(|o| *o == Outcome::LeaderRefresh { ok: false }) {
            self.held_lock = false;
            if local.role == PgRole::Primary && !s.pause {
                return Plan::status("demoted self because failed to update leader lock in DCS")
                    .with(Action::Demote { mode: DemoteMode::ImmediateNoLock, follow: None });
            }
            return Plan::status("not promoting because failed to update leader lock in DCS");
        }
        if local.role == PgRole::Primary {
            if s.pause {
                // Paused, PostgreSQL is left as the operator made it.
                return Plan::status("PAUSE: continue to run as primary in a standby cluster").with(refresh);
            }
            // A primary told it now belongs to a standby cluster (`demote-cluster`, or `standby_cluster` added to
            // the configuration): it becomes the standby leader and keeps the key, so no member of this cluster
            // races for it meanwhile.
            self.demoting_cluster = true;
            return Plan::status("cannot be a real primary in standby cluster")
                .with(refresh)
                .with(Action::DemoteCluster);
        }
        // A former primary (demote-cluster) compares its history with the remote primary's before it counts on
        // streaming from it.
        let mut note = None;
        if matches!(self.rewind, RewindState::Check | RewindState::Need { .. }) {
            match self.rejoin(s, obs, None) {
                Rejoin::Act(mut plan) => {
                    plan.actions.insert(0, refresh);
                    return plan;
                }
                Rejoin::Unchecked => {}
                Rejoin::Follow(line) => note = line,
            }
        }
        let mut plan = Plan::status(if local.role == PgRole::StandbyLeader {
            format!("no action. I am ({}), the standby leader with the lock", s.name)
        } else if obs.outcome(|o| *o == Outcome::LeaderRace { won: true }) {
            "promoted self to a standby leader by acquiring session lock".to_string()
        } else {
            "promoted self to a standby leader because i had the session lock".to_string()
        })
        .with(refresh);
        plan.log.extend(note);
        if cluster.failover.is_some() && !s.pause {
            if obs.outcome(|o| *o == Outcome::LeaderRace { won: true }) {
                let mut plan = plan.with(Action::ClearFailover);
                plan.status = "Cleaning up failover key after acquiring leader lock".into();
                return plan.with(Action::FollowRemote);
            }
            let plan = self.switchover_as_leader(s, cluster, obs, plan);
            if plan.actions.iter().any(|a| matches!(a, Action::Demote { .. } | Action::FetchPeers { .. })) {
                return plan;
            }
            return plan.with(Action::FollowRemote);
        }
        plan.with(Action::FollowRemote)
    }

    /// We hold the leader key of a standby cluster and PostgreSQL does not run (or is still starting).
    pub(crate) fn standby_leader_down(&mut self, s: &Settings, obs: &Observation) -> Plan {
        let local = &obs.local;
        let refresh = Action::UpdateLeader { lsn: local.lsn };
        if let Some(expired) = self.primary_start_expired(s, obs) {
            return expired;
        }
        if matches!(local.process, Process::Starting { .. }) {
            return Plan::status("PostgreSQL is starting").with(refresh);
        }
        if !self.rewind.executed() {
            self.rewind.trigger(s);
        }
        let mut plan =
            Plan::status("starting as a standby leader because i had the session lock").with(refresh.clone());
        match self.rejoin(s, obs, None) {
            // The key stays ours while the check or the rewind runs.
            Rejoin::Act(mut act) => {
                act.actions.insert(0, refresh);
                return act;
            }
            // Patroni starts following the remote primary unchecked; streaming a forked history fails harmlessly
            // and the next loop checks again.
            Rejoin::Unchecked => {}
            Rejoin::Follow(line) => plan.log.extend(line),
        }
        // Never as a primary, whatever it was before: in recovery, following the remote primary.
        self.recovering = true;
        plan.with(Action::StartStandbyLeader)
    }
}

#[cfg(test)]
mod tests;
