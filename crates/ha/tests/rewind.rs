//! Rejoining a forked history: when the core asks for a divergence check, and what it does with the answer
//! (Patroni's `_handle_rewind_or_reinitialize`).

use patroni_ha::*;

const SYSID: &str = "7301234567890123456";

fn settings(name: &str) -> Settings {
    Settings { name: name.into(), use_pg_rewind: true, ..Settings::default() }
}

fn member(name: &str, role: PgRole) -> MemberView {
    MemberView {
        name: name.into(),
        role,
        running: true,
        lsn: Some(100),
        timeline: Some(2),
        tags: Tags { failover_priority: 1, ..Tags::default() },
    }
}

/// pg2 leads (promoted); pg1 was the primary.
fn cluster() -> ClusterView {
    ClusterView {
        initialize: Some(SYSID.into()),
        leader: Some("pg2".into()),
        members: vec![member("pg1", PgRole::Replica), member("pg2", PgRole::Primary)],
        last_leader_lsn: Some(100),
        ..ClusterView::default()
    }
}

fn local(process: Process, role: PgRole) -> LocalState {
    LocalState {
        data_dir: DataDir::Initialized { sysid: SYSID.into() },
        process,
        role,
        lsn: Some(120),
        timeline: Some(1),
        ..LocalState::default()
    }
}

/// Streaming from pg2, on its timeline.
fn following_pg2() -> LocalState {
    LocalState { following: Some("pg2".into()), timeline: Some(2), ..local(Process::Running, PgRole::Replica) }
}

fn obs(local: LocalState) -> Observation {
    Observation { now: Time(1_000_000), cluster: Some(cluster()), local, ..Observation::default() }
}

fn checked(local: LocalState, result: Divergence) -> Observation {
    let mut o = obs(local);
    o.outcomes = vec![Outcome::Divergence { against: Some("pg2".into()), result }];
    o
}

const CHECK: Action = Action::CheckDivergence { against: None };

fn check_pg2() -> Action {
    Action::CheckDivergence { against: Some("pg2".into()) }
}

/// A former primary demoted because pg2 holds the key comes back following nobody, then checks before it streams.
#[test]
fn demoted_primary_checks_before_following() {
    let mut ha = Ha::new();
    let s = settings("pg1");
    let plan = ha.step(&s, &obs(local(Process::Running, PgRole::Primary)));
    assert_eq!(plan.actions, vec![Action::Demote { mode: DemoteMode::ImmediateNoLock, follow: None }]);

    // Back read-only: the check comes first, in a round of its own.
    let plan = ha.step(&s, &obs(local(Process::Running, PgRole::Replica)));
    assert_eq!(plan.actions, vec![check_pg2()]);
    assert!(plan.again);

    let plan = ha.step(&s, &checked(local(Process::Running, PgRole::Replica), Divergence::NotDiverged));
    assert_eq!(plan.actions, vec![Action::Follow { leader: Some("pg2".into()) }]);
    assert_eq!(plan.status, "following new leader (pg2)");

    // Checked once: following on, nothing asked again.
    let plan = ha.step(&s, &obs(following_pg2()));
    assert!(plan.actions.is_empty(), "{plan:?}");
}

#[test]
fn diverged_history_is_rewound_then_the_member_follows() {
    let mut ha = Ha::new();
    let s = settings("pg1");
    ha.step(&s, &obs(local(Process::Running, PgRole::Primary)));
    ha.step(&s, &obs(local(Process::Running, PgRole::Replica)));
    let plan =
        ha.step(&s, &checked(local(Process::Running, PgRole::Replica), Divergence::Diverged { rewind_possible: true }));
    assert_eq!(plan.status, "running pg_rewind from pg2");
    assert_eq!(plan.actions, vec![Action::Rewind { from: Some("pg2".into()) }]);

    let mut busy = local(Process::Stopped, PgRole::Replica);
    busy.busy = Some(Busy::Rewinding);
    assert_eq!(ha.step(&s, &obs(busy)).status, "running pg_rewind in progress");

    // The rewind started it following pg2: nothing left to check.
    let plan = ha.step(&s, &obs(following_pg2()));
    assert!(plan.actions.is_empty(), "{plan:?}");
}

#[test]
fn without_rewind_a_diverged_member_is_reinitialized_where_allowed() {
    let mut ha = Ha::new();
    let s = Settings { use_pg_rewind: false, remove_data_directory_on_diverged_timelines: true, ..settings("pg1") };
    ha.step(&s, &obs(local(Process::Running, PgRole::Primary)));
    ha.step(&s, &obs(local(Process::Running, PgRole::Replica)));
    let plan =
        ha.step(&s, &checked(local(Process::Running, PgRole::Replica), Divergence::Diverged { rewind_possible: true }));
    assert_eq!(plan.status, "reinitializing due to diverged timelines");
    assert_eq!(plan.actions, vec![Action::Reinitialize { from: Some("pg2".into()) }]);
}

/// pg_control without wal_log_hints or checksums: reinitialize if allowed, else follow and say why.
#[test]
fn rewind_impossible_falls_back_or_explains() {
    let mut ha = Ha::new();
    let s = settings("pg1");
    ha.step(&s, &obs(local(Process::Running, PgRole::Primary)));
    ha.step(&s, &obs(local(Process::Running, PgRole::Replica)));
    let plan = ha
        .step(&s, &checked(local(Process::Running, PgRole::Replica), Divergence::Diverged { rewind_possible: false }));
    assert_eq!(plan.actions, vec![Action::Follow { leader: Some("pg2".into()) }]);
    assert!(plan.log.iter().any(|(_, l)| l.contains("wal_log_hints nor data checksums")), "{plan:?}");

    let mut ha = Ha::new();
    let s = Settings { remove_data_directory_on_diverged_timelines: true, ..settings("pg1") };
    ha.step(&s, &obs(local(Process::Running, PgRole::Primary)));
    ha.step(&s, &obs(local(Process::Running, PgRole::Replica)));
    let plan = ha
        .step(&s, &checked(local(Process::Running, PgRole::Replica), Divergence::Diverged { rewind_possible: false }));
    assert_eq!(plan.actions, vec![Action::Reinitialize { from: Some("pg2".into()) }]);
}

/// Neither use_pg_rewind nor remove_data_directory_on_diverged_timelines: nothing is checked (Patroni).
#[test]
fn nothing_is_checked_when_nothing_could_be_done() {
    let mut ha = Ha::new();
    let s = Settings { use_pg_rewind: false, ..settings("pg1") };
    let plan = ha.step(&s, &obs(local(Process::Running, PgRole::Primary)));
    assert_eq!(plan.actions, vec![Action::Demote { mode: DemoteMode::ImmediateNoLock, follow: Some("pg2".into()) }]);
    let plan = ha.step(&s, &obs(local(Process::Stopped, PgRole::Primary)));
    assert_eq!(plan.actions, vec![Action::StartReplica { follow: Some("pg2".into()) }]);
}

/// The check cannot be made (pg2 unreachable): read-only, following nobody, and asked again next loop.
#[test]
fn unchecked_member_does_not_stream() {
    let mut ha = Ha::new();
    let s = settings("pg1");
    let plan = ha.step(&s, &obs(local(Process::Stopped, PgRole::Primary)));
    assert_eq!(plan.actions, vec![check_pg2()]);
    let plan = ha.step(&s, &checked(local(Process::Stopped, PgRole::Primary), Divergence::Unknown));
    assert_eq!(plan.actions, vec![Action::StartReplica { follow: None }]);
    assert!(plan.log.iter().any(|(_, l)| l.starts_with("not following pg2 yet")), "{plan:?}");

    // Running read-only now; the next loop asks again.
    let plan = ha.step(&s, &obs(local(Process::Running, PgRole::Replica)));
    assert_eq!(plan.actions, vec![check_pg2()]);
    let plan = ha.step(&s, &checked(local(Process::Running, PgRole::Replica), Divergence::Unknown));
    assert!(plan.actions.is_empty(), "{plan:?}");
    assert!(plan.status.contains("not following pg2 until our history is checked"), "{}", plan.status);
}

/// A leader whose member key does not say `primary` yet is asked all the same: the check itself finds out whether
/// its PostgreSQL still runs in recovery (Patroni waits for the key).
#[test]
fn a_leader_not_yet_published_as_primary_is_asked() {
    let mut ha = Ha::new();
    let s = settings("pg1");
    let mut o = obs(local(Process::Stopped, PgRole::Primary));
    if let Some(c) = o.cluster.as_mut() {
        c.members[1].role = PgRole::Replica;
    }
    assert_eq!(ha.step(&s, &o).actions, vec![check_pg2()]);
}

/// A replica found stopped is checked too before it starts streaming (Patroni's `recover`), and a failed rewind is
/// not retried by itself.
#[test]
fn stopped_member_is_checked_and_a_failed_rewind_not_retried() {
    let mut ha = Ha::new();
    let s = settings("pg1");
    let plan = ha.step(&s, &obs(local(Process::Stopped, PgRole::Replica)));
    assert_eq!(plan.actions, vec![check_pg2()]);
    let plan =
        ha.step(&s, &checked(local(Process::Stopped, PgRole::Replica), Divergence::Diverged { rewind_possible: true }));
    assert_eq!(plan.actions, vec![Action::Rewind { from: Some("pg2".into()) }]);

    let mut failed = local(Process::Stopped, PgRole::Replica);
    failed.last_failure = Some(Busy::Rewinding);
    let plan = ha.step(&s, &obs(failed));
    assert_eq!(plan.actions, vec![Action::StartReplica { follow: Some("pg2".into()) }]);
}

/// People may do anything by hand during a pause: a resume forgets the pending check, as in Patroni.
#[test]
fn a_resume_forgets_the_check() {
    let mut ha = Ha::new();
    let s = settings("pg1");
    ha.step(&s, &obs(local(Process::Running, PgRole::Primary)));
    let paused = Settings { pause: true, ..s.clone() };
    ha.step(&paused, &obs(local(Process::Running, PgRole::Replica)));
    let plan = ha.step(&s, &obs(following_pg2()));
    assert!(plan.actions.is_empty(), "{plan:?}");
}

/// Standby cluster: a primary demoted into the standby leader checks against the remote primary, keeping its key.
#[test]
fn standby_leader_checks_against_the_remote_primary() {
    let mut ha = Ha::new();
    let s = Settings { standby_cluster: true, ..settings("pg2") };
    let mut standby = local(Process::Running, PgRole::Primary);
    standby.lsn = Some(100);
    let plan = ha.step(&s, &obs(standby.clone()));
    assert!(plan.actions.contains(&Action::DemoteCluster), "{plan:?}");

    standby.role = PgRole::StandbyLeader;
    let plan = ha.step(&s, &obs(standby.clone()));
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }, CHECK]);
    let mut o = obs(standby);
    o.outcomes = vec![Outcome::Divergence { against: None, result: Divergence::Diverged { rewind_possible: true } }];
    let plan = ha.step(&s, &o);
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }, Action::Rewind { from: None }]);
}

/// Patroni's `follow`: a replica pointed at a new leader, or on an older timeline than its leader, checks whether
/// it forked; while the check cannot be made it keeps streaming.
#[test]
fn replicas_check_after_a_new_leader_and_behind_its_timeline() {
    let mut ha = Ha::new();
    let s = settings("pg1");
    let mut old = local(Process::Running, PgRole::Replica);
    old.following = Some("pg3".into());
    old.timeline = Some(2);
    let plan = ha.step(&s, &obs(old));
    assert_eq!(plan.actions, vec![Action::Follow { leader: Some("pg2".into()) }]);
    let plan = ha.step(&s, &obs(following_pg2()));
    assert_eq!(plan.actions, vec![check_pg2()]);
    let plan = ha.step(&s, &checked(following_pg2(), Divergence::Unknown));
    assert!(plan.actions.is_empty(), "{plan:?}");
    assert!(plan.status.starts_with("no action. I am (pg1), a secondary, and following a leader"), "{}", plan.status);

    // Streaming on timeline 1 while pg2 is on 2.
    let mut ha = Ha::new();
    let behind = LocalState { timeline: Some(1), ..following_pg2() };
    let plan = ha.step(&s, &obs(behind.clone()));
    assert_eq!(plan.actions, vec![check_pg2()]);
    let plan = ha.step(&s, &checked(behind, Divergence::Diverged { rewind_possible: true }));
    assert_eq!(plan.actions, vec![Action::Rewind { from: Some("pg2".into()) }]);
}

/// Beyond Patroni (simulator, bug 10): a former primary not yet checked, on an older timeline than the cluster's,
/// lets a member on the cluster's timeline take the free key, whatever its raw WAL position says; that member does
/// not count the older timeline's position as ahead.
#[test]
fn an_unchecked_former_primary_on_an_old_timeline_does_not_win_the_race() {
    let mut c = cluster();
    c.leader = None;
    c.timeline = Some(2);
    let newer = PeerReply {
        role: PgRole::Replica,
        running: true,
        lsn: Some(100),
        timeline: Some(2),
        tags: Tags { failover_priority: 1, ..Tags::default() },
    };
    let s = settings("pg1");
    let mut ha = Ha::new();
    // pg1 comes back after losing its key offline: a check is pending when the key expires.
    let mut o = obs(local(Process::Running, PgRole::Primary));
    o.cluster = None;
    ha.step(&s, &o);
    let mut o = obs(local(Process::Running, PgRole::Replica));
    o.cluster = Some(c.clone());
    o.peers = Some(vec![PeerStatus { name: "pg2".into(), reply: Some(newer.clone()) }]);
    let plan = ha.step(&s, &o);
    assert!(!plan.actions.contains(&Action::AcquireLeader), "{plan:?}");
    assert!(plan.log.iter().any(|(_, l)| l.contains("cluster's timeline 2")), "{plan:?}");

    // pg2, on timeline 2 at 100, does not defer to pg1's 120 on timeline 1.
    let old = PeerReply { lsn: Some(120), timeline: Some(1), ..newer };
    let mut o = obs(LocalState { timeline: Some(2), lsn: Some(100), ..local(Process::Running, PgRole::Replica) });
    o.cluster = Some(c);
    o.peers = Some(vec![PeerStatus { name: "pg1".into(), reply: Some(old) }]);
    let plan = Ha::new().step(&settings("pg2"), &o);
    assert!(plan.actions.contains(&Action::AcquireLeader), "{plan:?}");
}

/// Beyond Patroni: a new leader is a moment the history may have forked even when nothing else shows it (the same
/// timeline number, a cascading replica whose upstream did not change): the replica checks.
#[test]
fn a_new_leader_is_checked_against_even_on_the_same_timeline() {
    let mut ha = Ha::new();
    let s = Settings { tags: Tags { replicatefrom: Some("pg3".into()), ..Tags::default() }, ..settings("pg1") };
    let mut c = cluster();
    c.members.push(member("pg3", PgRole::Replica));
    c.leader = Some("pg3".into());
    let cascading =
        LocalState { following: Some("pg3".into()), timeline: Some(2), ..local(Process::Running, PgRole::Replica) };
    // The first leader the agent sees is checked against too: PostgreSQL ran on while the agent was down.
    let mut o = obs(cascading.clone());
    o.cluster = Some(c.clone());
    assert_eq!(ha.step(&s, &o).actions, vec![Action::CheckDivergence { against: Some("pg3".into()) }]);
    o.outcomes = vec![Outcome::Divergence { against: Some("pg3".into()), result: Divergence::NotDiverged }];
    ha.step(&s, &o);
    o.outcomes.clear();
    assert!(ha.step(&s, &o).actions.is_empty());

    // pg3 gives way to pg2; pg1 keeps cascading from pg3, on the same timeline number.
    c.leader = Some("pg2".into());
    let mut o = obs(cascading);
    o.cluster = Some(c);
    assert_eq!(ha.step(&s, &o).actions, vec![check_pg2()]);
}
