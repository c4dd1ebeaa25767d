//! Projections of the DCS model onto what the HA core reads.

use patroni_dcs::{Cluster, Member};
use patroni_ha::{ClusterView, FailoverRequest, MemberView, PgRole, SyncView, Tags, Time};
use serde_json::Value;

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
    let (nofailover, failover_priority) = priority_tags(m.tag("nofailover"), m.tag("failover_priority"));
    let (nosync, _) = priority_tags(m.tag("nosync"), m.tag("sync_priority"));
    Tags {
        nofailover,
        failover_priority,
        nosync,
        replicatefrom: m.replicatefrom().map(str::to_owned),
        clonefrom: m.clonefrom(),
        nostream: m.nostream(),
    }
}

/// A boolean tag and its priority (`nofailover`/`failover_priority`, `nosync`/`sync_priority`) of a member's
/// published tags, by Patroni's rule: an explicit boolean decides (`nofailover: false` beside
/// `failover_priority: 0` may be promoted); without it a priority of 0 or less turns it on. The priority is 0
/// under the boolean, else as given (an integer or its string), else 1.
pub fn priority_tags(flag: Option<&Value>, priority: Option<&Value>) -> (bool, i64) {
    let flag = flag.filter(|v| !v.is_null()).map(crate::peers::truthy);
    let priority = priority.and_then(|v| match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    let on = match flag {
        Some(b) => b,
        None => priority.is_some_and(|p| p <= 0),
    };
    let priority = if flag == Some(true) { 0 } else { priority.unwrap_or(1) };
    (on, priority)
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
    fn member_tags_follow_patroni_rule() {
        // (nofailover, failover_priority) as a member key gives them → (may not be promoted, priority).
        let cases = [
            (None, None, (false, 1)),
            (Some(json!(true)), None, (true, 0)),
            (None, Some(json!(0)), (true, 0)),
            (None, Some(json!("2")), (false, 2)),
            (Some(json!(true)), Some(json!("1")), (true, 0)),
            // An explicit nofailover: false wins over priority 0: the member may be promoted.
            (Some(json!(false)), Some(json!(0)), (false, 0)),
            (Some(Value::Null), Some(json!(0)), (true, 0)),
        ];
        for (flag, priority, want) in cases {
            assert_eq!(priority_tags(flag.as_ref(), priority.as_ref()), want, "{flag:?} {priority:?}");
        }
    }

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
