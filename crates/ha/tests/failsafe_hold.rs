//! How long a failsafe heartbeat keeps a replica out of the leader race.

use patroni_ha::*;

const SYSID: &str = "7301234567890123456";

fn replica_obs(now: i64, heartbeat_at: i64) -> Observation {
    let member = |name: &str, role| MemberView {
        name: String::from(name),
        role,
        running: true,
        lsn: Some(100),
        timeline: Some(1),
        tags: Tags { failover_priority: 1, ..Tags::default() },
    };
    Observation {
        now: Time(now),
        cluster: Some(ClusterView {
            initialize: Some(SYSID.into()),
            members: vec![member("pg2", PgRole::Replica), member("pg3", PgRole::Replica)],
            last_leader_lsn: Some(100),
            ..ClusterView::default()
        }),
        local: LocalState {
            data_dir: DataDir::Initialized { sysid: SYSID.into() },
            process: Process::Running,
            role: PgRole::Replica,
            lsn: Some(100),
            timeline: Some(1),
            ..LocalState::default()
        },
        failsafe_heartbeat: Some(("pg1".into(), Time(heartbeat_at))),
        ..Observation::default()
    }
}

#[test]
fn a_lowered_ttl_does_not_shorten_the_hold_after_a_heartbeat() {
    let mut s = Settings { name: "pg2".into(), failsafe_mode: true, ttl: Millis::from_secs(30), ..Settings::default() };
    let mut ha = Ha::new();
    let plan = ha.step(&s, &replica_obs(1_000, 0));
    assert!(plan.status.contains("following a leader (pg1)"), "{}", plan.status);
    // The configuration lowers ttl to 10 s; the failsafe leader, cut off from the DCS, still fences by 30 s.
    s.ttl = Millis::from_secs(10);
    let plan = ha.step(&s, &replica_obs(15_000, 0));
    assert!(plan.status.contains("following a leader (pg1)"), "{}", plan.status);
    // A ttl of the longest seen after the heartbeat, the race is open again.
    let plan = ha.step(&s, &replica_obs(31_000, 0));
    assert!(!plan.status.contains("following a leader (pg1)"), "{}", plan.status);
}
