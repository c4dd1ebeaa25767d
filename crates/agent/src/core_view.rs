//! Projections of the DCS model onto what the HA core reads.

use patroni_dcs::{Cluster, Member};
use patroni_ha::{ClusterView, FailoverRequest, MemberView, PgRole, SyncView, Tags, Time};

/// The HA core's view of one DCS snapshot.
pub fn cluster_view(c: &Cluster) -> ClusterView {
    ClusterView {
        initialize: c.initialize.clone(),
        leader: c.leader.as_ref().map(|l| l.name.clone()),
        members: c.members.iter().map(member_view).collect(),
        last_leader_lsn: (c.status.last_lsn > 0).then_some(c.status.last_lsn),
        timeline: c.history.as_ref().and_then(|h| h.lines.last()).map(|l| l.timeline + 1),
        failover: c.failover.as_ref().filter(|f| !f.is_empty()).map(|f| FailoverRequest {
            leader: f.leader.clone().filter(|l| !l.is_empty()),
            candidate: f.candidate.clone().filter(|c| !c.is_empty()),
            scheduled_at: match (&f.scheduled_at, &f.invalid_scheduled_at) {
                (Some(at), _) => Some(Time(at.timestamp_millis())),
                // An unreadable date must never mean "now": park the request until an operator flushes it.
                (None, Some(_)) => Some(Time(i64::MAX)),
                (None, None) => None,
            },
        }),
        sync: SyncView { leader: c.sync.leader.clone(), standbys: c.sync.sync_standby.clone() },
        failsafe: c.failsafe.as_ref().map(|f| f.keys().cloned().collect()),
    }
}

pub fn member_view(m: &Member) -> MemberView {
    MemberView {
        name: m.name.clone(),
        role: role_from_str(m.role()),
        running: m.is_running(),
        lsn: m.lsn(),
        timeline: m.timeline(),
        tags: member_tags(m),
    }
}

fn member_tags(m: &Member) -> Tags {
    Tags {
        nofailover: m.nofailover(),
        failover_priority: m.failover_priority(),
        nosync: m.nosync(),
        replicatefrom: m.replicatefrom().map(str::to_owned),
        clonefrom: m.clonefrom(),
        nostream: m.nostream(),
    }
}

/// Roles as Patroni publishes them; "master" is what versions before 3.0 wrote.
pub fn role_from_str(role: Option<&str>) -> PgRole {
    match role {
        Some("primary" | "master") => PgRole::Primary,
        Some("replica" | "standby") => PgRole::Replica,
        Some("standby_leader") => PgRole::StandbyLeader,
        _ => PgRole::Unknown,
    }
}

/// The HA core's tags from the local configuration, derived as Patroni derives them.
pub fn local_tags(t: &patroni_config::Tags) -> Tags {
    Tags {
        nofailover: t.effective_nofailover(),
        failover_priority: t.effective_failover_priority(),
        nosync: t.effective_nosync(),
        replicatefrom: t.replicatefrom.clone(),
        clonefrom: t.clonefrom.unwrap_or(false),
        nostream: t.nostream.unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn local_tags_let_explicit_nofailover_win() {
        let mut cx = patroni_config::Cx::new("tags");
        let t: patroni_config::Tags = patroni_config::convert::FromTree::from_tree(
            &json!({"nofailover": false, "failover_priority": 0}),
            &mut cx,
        )
        .unwrap_or_default();
        assert!(local_tags(&t).can_fail_over());
        let t: patroni_config::Tags =
            patroni_config::convert::FromTree::from_tree(&json!({"failover_priority": 0}), &mut cx).unwrap_or_default();
        assert!(!local_tags(&t).can_fail_over());
    }
}
