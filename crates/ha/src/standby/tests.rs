//! The standby cluster's decisions: literal inputs, one decision per test.

use crate::action::{Action, DemoteMode, Outcome};
use crate::core::{Ha, Observation};
use crate::time::Time;
use crate::view::{
    Busy, ClusterView, DataDir, FailoverRequest, LocalState, MemberView, PeerReply, PeerStatus, PgRole, Process,
    Settings, SyncMode, Tags,
};

const SYSID: &str = "7301234567890123456";

fn standby(name: &str) -> Settings {
    Settings { name: name.into(), standby_cluster: true, ..Settings::default() }
}

fn member(name: &str, role: PgRole, lsn: u64) -> MemberView {
    MemberView {
        name: name.into(),
        role,
        running: true,
        lsn: Some(lsn),
        timeline: Some(1),
        tags: Tags { failover_priority: 1, ..Tags::default() },
    }
}

fn cluster(leader: Option<&str>) -> ClusterView {
    ClusterView {
        initialize: Some(SYSID.into()),
        leader: leader.map(Into::into),
        members: vec![member("pg1", PgRole::StandbyLeader, 100), member("pg2", PgRole::Replica, 100)],
        last_leader_lsn: Some(100),
        ..ClusterView::default()
    }
}

fn local(process: Process, role: PgRole) -> LocalState {
    LocalState {
        data_dir: DataDir::Initialized { sysid: SYSID.into() },
        process,
        role,
        lsn: Some(100),
        timeline: Some(1),
        ..LocalState::default()
    }
}

fn obs(cluster: Option<ClusterView>, local: LocalState) -> Observation {
    Observation { now: Time(1_000_000), cluster, local, ..Observation::default() }
}

/// The lock holder is "pg1"; `Ha` must have seen it hold the key (the first step of a real run does).
fn step(ha: &mut Ha, s: &Settings, o: &Observation) -> crate::action::Plan {
    ha.step(s, o)
}

fn writable(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Promote | Action::StartPrimary | Action::Bootstrap))
}

#[test]
fn standby_leader_with_the_lock_follows_the_remote_primary() {
    let plan = step(
        &mut Ha::new(),
        &standby("pg1"),
        &obs(Some(cluster(Some("pg1"))), local(Process::Running, PgRole::StandbyLeader)),
    );
    assert_eq!(plan.status, "no action. I am (pg1), the standby leader with the lock");
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }, Action::FollowRemote]);
}

#[test]
fn winner_of_the_race_becomes_standby_leader_instead_of_promoting() {
    let mut o = obs(Some(cluster(Some("pg2"))), local(Process::Running, PgRole::Replica));
    o.outcomes = vec![Outcome::LeaderRace { won: true }];
    let plan = step(&mut Ha::new(), &standby("pg2"), &o);
    assert_eq!(plan.status, "promoted self to a standby leader by acquiring session lock");
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }, Action::FollowRemote]);
}

#[test]
fn replica_holding_the_lock_is_never_promoted_in_a_standby_cluster() {
    let plan = step(
        &mut Ha::new(),
        &standby("pg2"),
        &obs(Some(cluster(Some("pg2"))), local(Process::Running, PgRole::Replica)),
    );
    assert_eq!(plan.status, "promoted self to a standby leader because i had the session lock");
    assert!(!writable(&plan.actions));
    assert!(plan.actions.contains(&Action::FollowRemote));
}

#[test]
fn primary_with_the_lock_is_demoted_to_standby_leader_and_keeps_the_key() {
    let mut ha = Ha::new();
    let plan =
        step(&mut ha, &standby("pg1"), &obs(Some(cluster(Some("pg1"))), local(Process::Running, PgRole::Primary)));
    assert_eq!(plan.status, "cannot be a real primary in standby cluster");
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }, Action::DemoteCluster]);
    // The key is refreshed while the demotion runs.
    let mut busy = local(Process::Running, PgRole::Primary);
    busy.busy = Some(Busy::Demoting);
    let plan = step(&mut ha, &standby("pg1"), &obs(Some(cluster(Some("pg1"))), busy));
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }]);
}

#[test]
fn primary_without_the_lock_is_demoted() {
    let plan = step(
        &mut Ha::new(),
        &standby("pg2"),
        &obs(Some(cluster(Some("pg1"))), local(Process::Running, PgRole::Primary)),
    );
    assert_eq!(plan.status, "cannot be a real primary in a standby cluster");
    assert_eq!(plan.actions, vec![Action::Demote { mode: DemoteMode::ImmediateNoLock, follow: Some("pg1".into()) }]);
}

#[test]
fn replica_follows_the_standby_leader() {
    let mut l = local(Process::Running, PgRole::Replica);
    l.following = Some("pg1".into());
    let plan = step(&mut Ha::new(), &standby("pg2"), &obs(Some(cluster(Some("pg1"))), l));
    assert_eq!(plan.status, "no action. I am (pg2), a secondary, and following a standby leader (pg1)");
    assert!(plan.actions.is_empty());
}

#[test]
fn former_standby_leader_follows_the_new_one() {
    let plan = step(
        &mut Ha::new(),
        &standby("pg1"),
        &obs(Some(cluster(Some("pg2"))), local(Process::Running, PgRole::StandbyLeader)),
    );
    assert_eq!(plan.actions, vec![Action::Follow { leader: Some("pg2".into()) }]);
}

#[test]
fn stopped_standby_leader_starts_in_recovery_never_as_primary() {
    let mut l = local(Process::Crashed { at: Time(0) }, PgRole::Primary);
    l.control_state = Some(crate::view::ControlState::InProduction);
    let plan = step(&mut Ha::new(), &standby("pg1"), &obs(Some(cluster(Some("pg1"))), l));
    assert_eq!(plan.status, "starting as a standby leader because i had the session lock");
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }, Action::StartStandbyLeader]);
}

#[test]
fn bootstrap_of_a_standby_cluster_clones_the_remote_primary() {
    let empty = LocalState::default();
    let mut ha = Ha::new();
    let mut o = obs(Some(ClusterView::default()), empty.clone());
    o.outcomes = vec![Outcome::InitializeRace { won: true }];
    let plan = step(&mut ha, &standby("pg1"), &o);
    assert_eq!(plan.status, "trying to bootstrap a new standby leader");
    assert_eq!(plan.actions, vec![Action::BootstrapStandby]);
    // Once it runs as the standby leader, it takes the key and records the cluster.
    let c = ClusterView { initialize: Some(String::new()), ..ClusterView::default() };
    let plan = step(&mut ha, &standby("pg1"), &obs(Some(c), local(Process::Running, PgRole::StandbyLeader)));
    assert_eq!(plan.status, "initialized a new cluster");
    assert_eq!(plan.actions, vec![Action::AcquireLeader, Action::SetInitialize { sysid: SYSID.into() }]);
}

#[test]
fn member_without_data_waits_for_the_standby_leader() {
    let c = ClusterView { initialize: Some(SYSID.into()), ..ClusterView::default() };
    let plan = step(&mut Ha::new(), &standby("pg2"), &obs(Some(c), LocalState::default()));
    assert_eq!(plan.status, "waiting for standby_leader to bootstrap");
}

#[test]
fn switchover_inside_a_standby_cluster_demotes_the_standby_leader() {
    let mut c = cluster(Some("pg1"));
    c.failover =
        Some(FailoverRequest { leader: Some("pg1".into()), candidate: Some("pg2".into()), scheduled_at: None });
    let mut o = obs(Some(c), local(Process::Running, PgRole::StandbyLeader));
    o.peers = Some(vec![PeerStatus {
        name: "pg2".into(),
        reply: Some(PeerReply {
            role: PgRole::Replica,
            running: true,
            lsn: Some(100),
            timeline: Some(1),
            tags: Tags { failover_priority: 1, ..Tags::default() },
        }),
    }]);
    let plan = step(&mut Ha::new(), &standby("pg1"), &o);
    assert_eq!(plan.status, "manual failover: demoting myself");
    assert_eq!(plan.actions, vec![Action::Demote { mode: DemoteMode::Graceful, follow: None }]);
}

#[test]
fn removing_standby_cluster_promotes_the_standby_leader() {
    let s = Settings { name: "pg1".into(), ..Settings::default() };
    let plan =
        step(&mut Ha::new(), &s, &obs(Some(cluster(Some("pg1"))), local(Process::Running, PgRole::StandbyLeader)));
    assert_eq!(plan.status, "promoted self to leader because I had the session lock");
    assert!(plan.actions.contains(&Action::Promote));
}

#[test]
fn synchronous_mode_is_ignored_in_a_standby_cluster() {
    let s = Settings { sync_mode: SyncMode::On, ..standby("pg1") };
    let plan =
        step(&mut Ha::new(), &s, &obs(Some(cluster(Some("pg1"))), local(Process::Running, PgRole::StandbyLeader)));
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }, Action::FollowRemote]);
}

#[test]
fn the_last_line_drops_any_promotion() {
    let plan = crate::action::Plan::status("x").with(Action::Promote).with(Action::UpdateLeader { lsn: None });
    let plan = super::never_writable(&standby("pg1"), plan);
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: None }]);
    assert_eq!(plan.log.len(), 1);
    assert!(plan.log[0].1.contains("standby_cluster"), "{:?}", plan.log);
}

#[test]
fn standby_leader_that_lost_the_key_does_not_promote() {
    let mut ha = Ha::new();
    let mut o = obs(Some(cluster(Some("pg1"))), local(Process::Running, PgRole::StandbyLeader));
    o.outcomes = vec![Outcome::LeaderRefresh { ok: false }];
    let plan = step(&mut ha, &standby("pg1"), &o);
    assert_eq!(plan.status, "not promoting because failed to update leader lock in DCS");
    assert!(plan.actions.is_empty());
}

#[test]
fn standby_leader_keeps_following_while_the_dcs_is_away() {
    let plan = step(&mut Ha::new(), &standby("pg1"), &obs(None, local(Process::Running, PgRole::StandbyLeader)));
    assert_eq!(plan.status, "DCS is not accessible");
    assert!(plan.actions.is_empty());
}
