use super::*;
use crate::view::{MemberView, PgRole, ReplicaConn, SyncView, Tags};

fn settings(mode: SyncMode) -> Settings {
    Settings { name: "pg1".into(), sync_mode: mode, ..Settings::default() }
}

fn member(name: &str, tags: Tags) -> MemberView {
    MemberView { name: name.into(), role: PgRole::Replica, running: true, lsn: Some(100), timeline: Some(1), tags }
}

fn prio(p: i64) -> Tags {
    Tags { sync_priority: p, nosync: p <= 0, ..Tags::default() }
}

fn conn(name: &str, lsn: u64, synchronous: bool) -> ReplicaConn {
    ReplicaConn {
        name: name.into(),
        streaming: true,
        synchronous,
        lsn: Some(lsn),
        write_lsn: Some(lsn),
        replay_lsn: Some(lsn),
    }
}

fn cluster(members: Vec<MemberView>, sync: SyncView) -> ClusterView {
    ClusterView { leader: Some("pg1".into()), members, sync, ..ClusterView::default() }
}

fn key(standbys: &[&str], quorum: usize) -> SyncView {
    SyncView { leader: Some("pg1".into()), standbys: standbys.iter().map(|s| s.to_string()).collect(), quorum }
}

fn ssn(any: bool, num: usize, names: &[&str]) -> SyncStandbyNames {
    SyncStandbyNames { any, num, names: names.iter().map(|s| s.to_string()).collect(), star: false }
}

fn local(replication: Vec<ReplicaConn>, names: SyncStandbyNames) -> LocalState {
    LocalState { lsn: Some(100), replication, sync_standby_names: names, ..LocalState::default() }
}

fn names(v: &[&str]) -> Vec<Name> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn higher_sync_priority_wins_over_position() {
    let s = settings(SyncMode::On);
    let c = cluster(vec![member("pg2", prio(1)), member("pg3", prio(2))], key(&[], 0));
    let l = local(vec![conn("pg2", 100, false), conn("pg3", 90, false)], SyncStandbyNames::default());
    let choice = SyncTracker::default().choose(&s, &c, &l);
    assert_eq!(choice.active, names(&["pg3"]));
}

#[test]
fn nosync_members_are_never_chosen_and_explicit_nosync_false_with_priority_zero_is() {
    let s = settings(SyncMode::On);
    let explicit = Tags { nosync: false, sync_priority: 0, ..Tags::default() };
    let c = cluster(vec![member("pg2", prio(0)), member("pg3", explicit)], key(&[], 0));
    let l = local(vec![conn("pg2", 100, false), conn("pg3", 100, false)], SyncStandbyNames::default());
    assert_eq!(SyncTracker::default().choose(&s, &c, &l).active, names(&["pg3"]));
}

#[test]
fn current_synchronous_standby_is_kept_before_a_faster_one() {
    let s = settings(SyncMode::On);
    let c = cluster(vec![member("pg2", prio(1)), member("pg3", prio(1))], key(&["pg2"], 0));
    let l = local(vec![conn("pg2", 90, true), conn("pg3", 100, false)], ssn(false, 1, &["pg2"]));
    let choice = SyncTracker::default().choose(&s, &c, &l);
    assert_eq!((choice.active, choice.confirmed), (names(&["pg2"]), names(&["pg2"])));
}

#[test]
fn node_count_two_picks_two_and_nofailover_last() {
    let mut s = settings(SyncMode::On);
    s.sync_node_count = 2;
    let nofailover = Tags { nofailover: true, sync_priority: 1, ..Tags::default() };
    let c = cluster(vec![member("pg2", nofailover), member("pg3", prio(1)), member("pg4", prio(1))], key(&[], 0));
    let l = local(vec![conn("pg2", 100, false), conn("pg3", 80, false), conn("pg4", 90, false)], ssn(false, 0, &[]));
    assert_eq!(SyncTracker::default().choose(&s, &c, &l).active, names(&["pg4", "pg3"]));
}

#[test]
fn the_lsn_column_follows_synchronous_commit() {
    let mut s = settings(SyncMode::On);
    s.sync_commit = crate::view::SyncCommit::Apply;
    let c = cluster(vec![member("pg2", prio(1)), member("pg3", prio(1))], key(&[], 0));
    let mut a = conn("pg2", 100, false);
    a.replay_lsn = Some(10);
    let b = conn("pg3", 50, false);
    let l = local(vec![a, b], SyncStandbyNames::default());
    assert_eq!(SyncTracker::default().choose(&s, &c, &l).active, names(&["pg3"]));
}

#[test]
fn a_standby_counts_as_synchronous_in_quorum_mode_only_once_it_caught_up_after_being_listed() {
    let s = settings(SyncMode::Quorum);
    let c = cluster(vec![member("pg2", prio(1))], key(&[], 0));
    let mut t = SyncTracker::default();
    // Listed while we were at 100; the standby reports 90: not yet.
    let l = local(vec![conn("pg2", 90, true)], ssn(true, 1, &["pg2"]));
    assert!(t.choose(&s, &c, &l).confirmed.is_empty());
    let l = local(vec![conn("pg2", 100, true)], ssn(true, 1, &["pg2"]));
    assert_eq!(t.choose(&s, &c, &l).confirmed, names(&["pg2"]));
}

#[test]
fn quorum_mode_lists_every_eligible_standby() {
    let s = settings(SyncMode::Quorum);
    let c = cluster(vec![member("pg2", prio(1)), member("pg3", prio(1))], key(&["pg2"], 0));
    let l = local(vec![conn("pg2", 100, true), conn("pg3", 100, false)], ssn(true, 1, &["pg2"]));
    let plan = SyncTracker::default().leader_round(&s, &c, &l, Time(0));
    // Add pg3: voters first (quorum 1 of pg2, pg3), then PostgreSQL waits for any 1 of both.
    assert_eq!(
        plan.actions,
        vec![
            Action::SetSyncState { leader: "pg1".into(), standbys: names(&["pg2", "pg3"]), quorum: 1 },
            Action::SetSyncStandbys { names: names(&["pg2", "pg3"]), num: Some(1), any: true },
        ]
    );
    assert!(plan.log.iter().any(|(_, l)| l == "Setting leader to pg1, quorum to 1 of 2 (pg2, pg3)"));
}

#[test]
fn quorum_mode_raising_node_count_lists_more_before_lowering_the_quorum() {
    let mut s = settings(SyncMode::Quorum);
    s.sync_node_count = 2;
    let c = cluster(vec![member("pg2", prio(1)), member("pg3", prio(1))], key(&["pg2", "pg3"], 1));
    let l = local(vec![conn("pg2", 100, true), conn("pg3", 100, true)], ssn(true, 1, &["pg2", "pg3"]));
    let mut t = SyncTracker::default();
    let plan = t.leader_round(&s, &c, &l, Time(0));
    assert_eq!(
        plan.actions,
        vec![
            Action::SetSyncStandbys { names: names(&["pg2", "pg3"]), num: Some(2), any: true },
            Action::SetSyncState { leader: "pg1".into(), standbys: names(&["pg2", "pg3"]), quorum: 0 },
        ]
    );
}

#[test]
fn strict_quorum_mode_without_standbys_waits_for_any_one() {
    let mut s = settings(SyncMode::Quorum);
    s.sync_strict = true;
    let c = cluster(vec![], key(&[], 0));
    let l = local(vec![], SyncStandbyNames::default());
    let plan = SyncTracker::default().leader_round(&s, &c, &l, Time(0));
    // Nothing to change in the quorum state (no standby, no voter), but a strict primary never runs with nothing
    // to wait for.
    assert_eq!(plan.actions, vec![Action::SetSyncStandbys { names: names(&["*"]), num: None, any: false }]);
    // Once PostgreSQL has `*`, nothing more.
    let l = LocalState { sync_standby_names: SyncStandbyNames { num: 1, star: true, ..ssn(false, 1, &[]) }, ..l };
    assert!(SyncTracker::default().leader_round(&s, &c, &l, Time(0)).actions.is_empty());
    let promote = before_promote(&s, &ClusterView::default());
    assert_eq!(promote[1], Action::SetSyncStandbys { names: vec![], num: Some(1), any: true });
}

#[test]
fn strict_on_mode_without_standbys_sets_star() {
    let mut s = settings(SyncMode::On);
    s.sync_strict = true;
    // The last standby left: the key drops it first, then PostgreSQL waits for any standby.
    let c = cluster(vec![], key(&["pg2"], 0));
    let plan = SyncTracker::default().leader_round(&s, &c, &local(vec![], ssn(false, 1, &["pg2"])), Time(0));
    assert_eq!(
        plan.actions,
        vec![
            Action::SetSyncState { leader: "pg1".into(), standbys: vec![], quorum: 0 },
            Action::SetSyncStandbys { names: names(&["*"]), num: None, any: false },
        ]
    );
    assert!(plan.log.iter().any(|(_, l)| l == "No standbys available!"));
}

#[test]
fn synchronous_mode_enabled_writes_the_key_before_anything_else() {
    let s = settings(SyncMode::On);
    let c = cluster(vec![], SyncView::default());
    let plan = SyncTracker::default().leader_round(&s, &c, &local(vec![], SyncStandbyNames::default()), Time(0));
    assert_eq!(plan.actions[0], Action::SetSyncState { leader: "pg1".into(), standbys: vec![], quorum: 0 });
}

#[test]
fn turning_synchronous_mode_off_deletes_the_key_then_unsets_the_names() {
    let s = settings(SyncMode::Off);
    let c = cluster(vec![], key(&["pg2"], 0));
    let plan = SyncTracker::default().leader_round(&s, &c, &local(vec![], ssn(false, 1, &["pg2"])), Time(0));
    assert_eq!(
        plan.actions,
        vec![Action::DeleteSyncState, Action::SetSyncStandbys { names: vec![], num: None, any: false }]
    );
}

#[test]
fn a_fresh_quorum_leader_waits_a_loop_before_reshaping_the_voters() {
    let s = settings(SyncMode::Quorum);
    // We won the race: the key still names pg2 (the former leader) and voters pg1, pg3.
    let c = ClusterView {
        leader: Some("pg1".into()),
        members: vec![member("pg2", prio(1)), member("pg3", prio(1))],
        sync: SyncView { leader: Some("pg2".into()), standbys: names(&["pg1", "pg3"]), quorum: 1 },
        ..ClusterView::default()
    };
    let l = local(vec![], ssn(true, 1, &["pg2", "pg3"]));
    let mut t = SyncTracker::default();
    let plan = t.leader_round(&s, &c, &l, Time(0));
    // The key names us now, the former leader as a voter; nobody reconnected yet, so nobody is dropped.
    assert_eq!(
        plan.actions,
        vec![Action::SetSyncState { leader: "pg1".into(), standbys: names(&["pg2", "pg3"]), quorum: 1 }]
    );
    // Within loop_wait of that: nothing.
    let plan = t.leader_round(&s, &c, &l, Time(1000));
    assert!(plan.actions.is_empty());
}

#[test]
fn promoting_in_quorum_mode_keeps_waiting_for_the_former_voters() {
    let s = Settings { name: "pg2".into(), sync_mode: SyncMode::Quorum, ..Settings::default() };
    let c = ClusterView { sync: key(&["pg2", "pg3"], 1), ..ClusterView::default() };
    // Voters pg1 (former leader), pg2 (us), pg3 with quorum 1: commits wait for any 1 of pg1, pg3.
    // The key names us first, the former leader a voter, the quorum unchanged (1 + 1 = 2 voters).
    assert_eq!(
        before_promote(&s, &c),
        vec![
            Action::SetSyncState { leader: "pg2".into(), standbys: names(&["pg1", "pg3"]), quorum: 1 },
            Action::SetSyncStandbys { names: names(&["pg1", "pg3"]), num: Some(1), any: true },
        ]
    );
    // From outside the voters (elected with enough votes): one more to wait for, the quorum still 1 (1 + 2 = 3).
    let outsider = Settings { name: "pg4".into(), ..s };
    assert_eq!(
        before_promote(&outsider, &c),
        vec![
            Action::SetSyncState { leader: "pg4".into(), standbys: names(&["pg1", "pg2", "pg3"]), quorum: 1 },
            Action::SetSyncStandbys { names: names(&["pg1", "pg2", "pg3"]), num: Some(2), any: true },
        ]
    );
}

#[test]
fn promoting_in_on_mode_writes_the_key_first() {
    let s = Settings { name: "pg2".into(), sync_mode: SyncMode::On, ..Settings::default() };
    let c = ClusterView { sync: key(&["pg2"], 0), ..ClusterView::default() };
    assert_eq!(
        before_promote(&s, &c),
        vec![
            Action::SetSyncState { leader: "pg2".into(), standbys: vec![], quorum: 0 },
            Action::SetSyncStandbys { names: vec![], num: None, any: false },
        ]
    );
}

#[test]
fn cascading_members_are_not_chosen() {
    let s = settings(SyncMode::On);
    let cascading = Tags { replicatefrom: Some("pg2".into()), sync_priority: 5, ..Tags::default() };
    let c = cluster(vec![member("pg2", prio(1)), member("pg3", cascading)], key(&[], 0));
    let l = local(vec![conn("pg2", 100, false), conn("pg3", 100, false)], SyncStandbyNames::default());
    assert_eq!(SyncTracker::default().choose(&s, &c, &l).active, names(&["pg2"]));
}

#[test]
fn a_voter_leaves_the_key_only_once_the_voters_that_stay_have_every_acknowledged_commit() {
    let s = settings(SyncMode::Quorum);
    // Voters pg2, pg3 with quorum 1; commits waited for any one of them. pg3 is gone; pg2 lags at 60 while we are
    // at 100: a commit at 80 may have been acknowledged by pg3 alone.
    let c = cluster(vec![member("pg2", prio(1)), member("pg3", prio(1))], key(&["pg2", "pg3"], 1));
    let names_now = ssn(true, 1, &["pg2", "pg3"]);
    let mut t = SyncTracker { first_run: Some(Time(0)), ..SyncTracker::default() };
    // pg2 was listed and caught up long ago.
    let mut l = local(vec![conn("pg2", 100, true)], names_now.clone());
    t.choose(&s, &c, &l);
    l.replication = vec![conn("pg2", 60, true)];
    let plan = t.leader_round(&s, &c, &l, Time(60_000));
    // PostgreSQL stops waiting for pg3, but the key keeps it: pg2 alone must not be able to promote yet.
    assert_eq!(plan.actions, vec![Action::SetSyncStandbys { names: names(&["pg2"]), num: Some(1), any: true }]);
    assert!(plan.soon);
    // Once pg2 has everything up to where the list changed, the key follows.
    let after = local(vec![conn("pg2", 100, true)], ssn(true, 1, &["pg2"]));
    let plan = t.leader_round(&s, &c, &after, Time(61_000));
    assert_eq!(plan.actions, vec![Action::SetSyncState { leader: "pg1".into(), standbys: names(&["pg2"]), quorum: 0 }]);
}
