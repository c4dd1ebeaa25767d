//! One test per decision of the HA core: literal inputs, no process, no network, no clock.

use patroni_ha::*;

const SYSID: &str = "7301234567890123456";

fn settings(name: &str) -> Settings {
    Settings { name: name.into(), ..Settings::default() }
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
        members: vec![
            member("pg1", PgRole::Primary, 100),
            member("pg2", PgRole::Replica, 100),
            member("pg3", PgRole::Replica, 90),
        ],
        last_leader_lsn: Some(100),
        ..ClusterView::default()
    }
}

fn running(role: PgRole, lsn: u64) -> LocalState {
    LocalState {
        data_dir: DataDir::Initialized { sysid: SYSID.into() },
        process: Process::Running,
        role,
        lsn: Some(lsn),
        timeline: Some(1),
        ..LocalState::default()
    }
}

fn obs(cluster: Option<ClusterView>, local: LocalState) -> Observation {
    Observation { now: Time(1_000_000), cluster, local, ..Observation::default() }
}

/// A core whose agent has run for longer than any ttl: its first step (the DCS unreachable, nothing to do) was
/// long before the steps a test makes at `obs`'s time.
fn long_running(s: &Settings) -> Ha {
    let mut ha = Ha::new();
    let mut o = obs(None, running(PgRole::Replica, 100));
    o.now = Time(0);
    ha.step(s, &o);
    ha
}

fn reply(role: PgRole, lsn: u64) -> Option<PeerReply> {
    Some(PeerReply {
        role,
        running: true,
        lsn: Some(lsn),
        timeline: Some(1),
        tags: Tags { failover_priority: 1, ..Tags::default() },
    })
}

fn peer(name: &str, reply: Option<PeerReply>) -> PeerStatus {
    PeerStatus { name: name.into(), reply }
}

const NOT_HEALTHIEST: &str = "following a different leader because i am not the healthiest node";

#[test]
fn leader_with_lock_refreshes_its_key() {
    let plan = Ha::new().step(&settings("pg1"), &obs(Some(cluster(Some("pg1"))), running(PgRole::Primary, 120)));
    assert_eq!(plan.status, "no action. I am (pg1), the leader with the lock");
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(120) }]);
}

#[test]
fn replica_follows_the_leader() {
    let mut local = running(PgRole::Replica, 100);
    local.following = Some("pg1".into());
    let plan = Ha::new().step(&settings("pg2"), &obs(Some(cluster(Some("pg1"))), local));
    assert_eq!(plan.status, "no action. I am (pg2), a secondary, and following a leader (pg1)");
    assert!(plan.actions.is_empty());
}

#[test]
fn replica_switches_to_a_new_leader() {
    let mut local = running(PgRole::Replica, 100);
    local.following = Some("pg1".into());
    let plan = Ha::new().step(&settings("pg2"), &obs(Some(cluster(Some("pg3"))), local));
    assert_eq!(plan.actions, vec![Action::Follow { leader: Some("pg3".into()) }]);
}

#[test]
fn replicatefrom_cascades_from_a_running_member() {
    let mut s = settings("pg3");
    s.tags.replicatefrom = Some("pg2".into());
    let plan = Ha::new().step(&s, &obs(Some(cluster(Some("pg1"))), running(PgRole::Replica, 90)));
    assert_eq!(plan.actions, vec![Action::Follow { leader: Some("pg2".into()) }]);
}

#[test]
fn empty_cluster_races_for_initialize_then_bootstraps() {
    let mut ha = Ha::new();
    let s = settings("pg1");
    let empty = ClusterView::default();
    let local = LocalState::default();
    let plan = ha.step(&s, &obs(Some(empty.clone()), local.clone()));
    assert_eq!(plan.actions, vec![Action::AttemptInitialize]);
    assert!(plan.again);

    // The runtime re-reads the cluster after the race: the key now exists, empty, and we won it.
    let mut won = obs(Some(ClusterView { initialize: Some(String::new()), ..empty.clone() }), local.clone());
    won.outcomes = vec![Outcome::InitializeRace { won: true }];
    let plan = ha.step(&s, &won);
    assert_eq!(plan.status, "trying to bootstrap a new cluster");
    assert_eq!(plan.actions, vec![Action::Bootstrap]);

    // Bootstrap finished: PostgreSQL runs as primary; take the key and publish the system identifier.
    let done = obs(Some(ClusterView { initialize: Some(String::new()), ..empty }), running(PgRole::Primary, 50));
    let plan = ha.step(&s, &done);
    assert_eq!(plan.actions, vec![Action::AcquireLeader, Action::SetInitialize { sysid: SYSID.into() }]);
}

#[test]
fn loser_of_the_initialize_race_waits_then_clones() {
    let mut ha = Ha::new();
    let s = settings("pg2");
    let bootstrapping = ClusterView { initialize: Some(String::new()), ..ClusterView::default() };
    let plan = ha.step(&s, &obs(Some(bootstrapping), LocalState::default()));
    assert_eq!(plan.status, "waiting for leader to bootstrap");
    assert!(plan.actions.is_empty());

    let plan = ha.step(&s, &obs(Some(cluster(Some("pg1"))), LocalState::default()));
    assert_eq!(plan.status, "trying to bootstrap from leader 'pg1'");
    assert_eq!(plan.actions, vec![Action::CreateReplica { from: Some("pg1".into()) }]);
}

#[test]
fn clonefrom_member_is_preferred_as_replica_source() {
    let mut c = cluster(Some("pg1"));
    c.members[2].tags.clonefrom = true;
    let plan = Ha::new().step(&settings("pg4"), &obs(Some(c), LocalState::default()));
    assert_eq!(plan.actions, vec![Action::CreateReplica { from: Some("pg3".into()) }]);
}

#[test]
fn failed_bootstrap_cancels_initialize_and_stops() {
    let mut ha = Ha::new();
    let s = settings("pg1");
    let mut won = obs(Some(ClusterView::default()), LocalState::default());
    won.outcomes = vec![Outcome::InitializeRace { won: true }];
    ha.step(&s, &won);
    let failed = LocalState { last_failure: Some(Busy::Bootstrapping), ..LocalState::default() };
    let plan =
        ha.step(&s, &obs(Some(ClusterView { initialize: Some(String::new()), ..ClusterView::default() }), failed));
    assert_eq!(plan.actions[0], Action::CancelInitialize);
    assert!(matches!(plan.actions[1], Action::Fatal { .. }));
}

#[test]
fn system_identifier_mismatch_is_fatal() {
    let mut local = running(PgRole::Replica, 1);
    local.data_dir = DataDir::Initialized { sysid: "42".into() };
    let plan = Ha::new().step(&settings("pg2"), &obs(Some(cluster(Some("pg1"))), local));
    assert_eq!(plan.status, format!("system ID mismatch, node pg2 belongs to a different cluster: 42 != {SYSID}"));
    assert!(matches!(plan.actions[..], [Action::Fatal { .. }]));
}

#[test]
fn primary_that_cannot_reach_the_dcs_demotes() {
    let plan = Ha::new().step(&settings("pg1"), &obs(None, running(PgRole::Primary, 100)));
    assert_eq!(plan.status, "demoted self because DCS is not accessible and I was a leader");
    assert_eq!(plan.actions, vec![Action::Demote { mode: DemoteMode::Offline, follow: None }]);
}

#[test]
fn paused_primary_stays_up_without_the_dcs() {
    let mut s = settings("pg1");
    s.pause = true;
    let plan = Ha::new().step(&s, &obs(None, running(PgRole::Primary, 100)));
    assert_eq!(plan.status, "DCS is not accessible");
    assert!(plan.actions.is_empty());
}

#[test]
fn failsafe_primary_keeps_running_when_every_member_confirms() {
    let mut s = settings("pg1");
    s.failsafe_mode = true;
    let mut ha = Ha::new();
    let mut c = cluster(Some("pg1"));
    c.failsafe = Some(vec!["pg1".into(), "pg2".into(), "pg3".into()]);
    ha.step(&s, &obs(Some(c), running(PgRole::Primary, 100)));

    let plan = ha.step(&s, &obs(None, running(PgRole::Primary, 100)));
    assert_eq!(plan.actions, vec![Action::CheckFailsafe { members: vec!["pg2".into(), "pg3".into()] }]);
    let mut confirmed = obs(None, running(PgRole::Primary, 100));
    confirmed.outcomes = vec![Outcome::Failsafe { confirmed: true }];
    assert!(ha.step(&s, &confirmed).actions.is_empty());
    let mut refused = obs(None, running(PgRole::Primary, 100));
    refused.outcomes = vec![Outcome::Failsafe { confirmed: false }];
    assert_eq!(ha.step(&s, &refused).actions, vec![Action::Demote { mode: DemoteMode::Offline, follow: None }]);
}

#[test]
fn failed_leader_refresh_demotes_at_once() {
    let mut o = obs(Some(cluster(Some("pg1"))), running(PgRole::Primary, 100));
    o.outcomes = vec![Outcome::LeaderRefresh { ok: false }];
    let plan = Ha::new().step(&settings("pg1"), &o);
    assert_eq!(plan.status, "demoted self because failed to update leader lock in DCS");
    assert_eq!(plan.actions, vec![Action::Demote { mode: DemoteMode::ImmediateNoLock, follow: None }]);
}

#[test]
fn primary_seeing_another_leader_demotes_and_follows() {
    let plan = Ha::new().step(&settings("pg1"), &obs(Some(cluster(Some("pg2"))), running(PgRole::Primary, 100)));
    assert_eq!(plan.status, "demoting self because I do not have the lock and I was a leader");
    assert_eq!(plan.actions, vec![Action::Demote { mode: DemoteMode::ImmediateNoLock, follow: Some("pg2".into()) }]);
}

#[test]
fn healthiest_replica_takes_the_free_key_and_promotes() {
    let s = settings("pg2");
    let mut ha = Ha::new();
    let plan = ha.step(&s, &obs(Some(cluster(None)), running(PgRole::Replica, 100)));
    assert_eq!(plan.actions, vec![Action::FetchPeers { members: vec!["pg1".into(), "pg3".into()] }]);

    let mut o = obs(Some(cluster(None)), running(PgRole::Replica, 100));
    o.peers = Some(vec![peer("pg1", None), peer("pg3", reply(PgRole::Replica, 90))]);
    let plan = ha.step(&s, &o);
    assert_eq!(plan.actions, vec![Action::AcquireLeader]);

    let mut won = obs(Some(cluster(Some("pg2"))), running(PgRole::Replica, 100));
    won.outcomes = vec![Outcome::LeaderRace { won: true }];
    let plan = ha.step(&s, &won);
    assert_eq!(plan.status, "promoted self to leader by acquiring session lock");
    assert_eq!(plan.actions.last(), Some(&Action::Promote));
}

#[test]
fn less_advanced_replica_lets_the_better_one_win() {
    let mut o = obs(Some(cluster(None)), running(PgRole::Replica, 90));
    o.peers = Some(vec![peer("pg1", None), peer("pg2", reply(PgRole::Replica, 100))]);
    let plan = Ha::new().step(&settings("pg3"), &o);
    assert!(plan.actions.is_empty());
    assert_eq!(plan.status, NOT_HEALTHIEST);
    assert_eq!(plan.log, vec![(LogLevel::Info, "Wal position of pg2 is ahead of my wal position".to_string())]);
}

#[test]
fn a_race_won_by_a_better_peer_meanwhile_still_says_why() {
    // We fetched the peers for a free key; by the next round pg2 (ahead of us) holds it.
    let mut o = obs(Some(cluster(Some("pg2"))), running(PgRole::Replica, 90));
    o.local.following = Some("pg1".into());
    o.peers = Some(vec![peer("pg1", None), peer("pg2", reply(PgRole::Replica, 100))]);
    let plan = Ha::new().step(&settings("pg3"), &o);
    assert_eq!(plan.status, "following new leader (pg2)");
    assert_eq!(plan.log, vec![(LogLevel::Info, "Wal position of pg2 is ahead of my wal position".to_string())]);
}

#[test]
fn failover_priority_breaks_a_tie() {
    let mut o = obs(Some(cluster(None)), running(PgRole::Replica, 100));
    let mut better = reply(PgRole::Replica, 100);
    if let Some(r) = better.as_mut() {
        r.tags.failover_priority = 5;
    }
    o.peers = Some(vec![peer("pg3", better)]);
    let plan = Ha::new().step(&settings("pg2"), &o);
    assert!(plan.actions.is_empty());
    let line = "pg3 has equally tolerable WAL position and priority 5, while this node has priority 1";
    assert_eq!(plan.log, vec![(LogLevel::Info, line.to_string())]);
}

#[test]
fn nofailover_member_never_races() {
    let mut s = settings("pg2");
    s.tags.nofailover = true;
    let plan = Ha::new().step(&s, &obs(Some(cluster(None)), running(PgRole::Replica, 100)));
    assert!(plan.actions.is_empty());
    assert_eq!(plan.status, "following a different leader because I am not allowed to promote");
}

#[test]
fn replica_lagging_past_maximum_lag_is_not_promoted() {
    let mut c = cluster(None);
    c.last_leader_lsn = Some(10_000_000);
    let plan = Ha::new().step(&settings("pg2"), &obs(Some(c), running(PgRole::Replica, 100)));
    assert!(plan.actions.is_empty());
    assert_eq!(plan.status, NOT_HEALTHIEST);
    assert_eq!(plan.log, vec![(LogLevel::Info, "My wal position exceeds maximum replication lag".to_string())]);
}

#[test]
fn check_timeline_rejects_a_replica_on_an_old_timeline() {
    let mut s = settings("pg2");
    s.check_timeline = true;
    let mut c = cluster(None);
    c.timeline = Some(3);
    let plan = Ha::new().step(&s, &obs(Some(c), running(PgRole::Replica, 100)));
    assert!(plan.actions.is_empty());
}

#[test]
fn sync_mode_only_promotes_the_sync_standby() {
    let mut s = settings("pg3");
    s.sync_mode = SyncMode::On;
    let mut c = cluster(None);
    c.sync = SyncView { leader: Some("pg1".into()), standbys: vec!["pg2".into()], quorum: 0 };
    let plan = Ha::new().step(&s, &obs(Some(c.clone()), running(PgRole::Replica, 100)));
    assert_eq!(plan.status, NOT_HEALTHIEST);
    s.name = "pg2".into();
    let plan = Ha::new().step(&s, &obs(Some(c), running(PgRole::Replica, 100)));
    assert!(matches!(plan.actions[..], [Action::FetchPeers { .. }]));
}

/// PostgreSQL of the primary holding the key, as found after a crash (`pg_control` still says "in production").
fn crashed_primary() -> LocalState {
    let mut local = running(PgRole::Primary, 100);
    local.process = Process::Crashed { at: Time(999_000) };
    local.control_state = Some(ControlState::InProduction);
    local
}

#[test]
fn crashed_primary_starts_again_as_primary_while_holding_the_key() {
    let plan = Ha::new().step(&settings("pg1"), &obs(Some(cluster(Some("pg1"))), crashed_primary()));
    assert_eq!(plan.status, "starting primary after failure");
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }, Action::StartPrimary]);
}

/// A standby signal file, or a replica that crashed while holding the key (it won a race moments ago): read-only
/// first, promoted once the key is confirmed.
#[test]
fn crashed_member_that_was_not_a_primary_starts_read_only_while_holding_the_key() {
    let mut local = crashed_primary();
    local.recovery_configured = true;
    let plan = Ha::new().step(&settings("pg1"), &obs(Some(cluster(Some("pg1"))), local));
    assert_eq!(plan.status, "starting as readonly because i had the session lock");
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }, Action::StartReplica { follow: None }]);
    let mut local = crashed_primary();
    local.role = PgRole::Replica;
    local.control_state = Some(ControlState::ShutDownInRecovery);
    let plan = Ha::new().step(&settings("pg1"), &obs(Some(cluster(Some("pg1"))), local));
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }, Action::StartReplica { follow: None }]);
}

#[test]
fn crashed_primary_that_fails_to_start_gives_the_key_away_as_demoted() {
    let mut ha = Ha::new();
    let s = settings("pg1");
    let c = cluster(Some("pg1"));
    assert!(ha.step(&s, &obs(Some(c.clone()), crashed_primary())).actions.contains(&Action::StartPrimary));
    let mut starting = crashed_primary();
    starting.busy = Some(Busy::Starting);
    assert_eq!(ha.step(&s, &obs(Some(c.clone()), starting)).actions, vec![Action::UpdateLeader { lsn: Some(100) }]);
    let mut failed = crashed_primary();
    failed.process = Process::Stopped;
    failed.last_failure = Some(Busy::Starting);
    let plan = ha.step(&s, &obs(Some(c), failed));
    assert_eq!(plan.status, "removed leader key after trying and failing to start postgres");
    assert_eq!(plan.actions, vec![Action::MarkDemoted, Action::ReleaseLeader { lsn: None }]);
}

#[test]
fn crashed_primary_fails_over_at_once_with_primary_start_timeout_zero() {
    let mut s = settings("pg1");
    s.primary_start_timeout = Millis(0);
    let c = cluster(Some("pg1"));
    let mut ha = Ha::new();
    let plan = ha.step(&s, &obs(Some(c.clone()), crashed_primary()));
    assert!(plan.again);
    assert!(plan.actions.contains(&Action::FetchPeers { members: vec!["pg2".into(), "pg3".into()] }));
    let mut o = obs(Some(c.clone()), crashed_primary());
    o.peers = Some(vec![peer("pg2", reply(PgRole::Replica, 100)), peer("pg3", None)]);
    let plan = ha.step(&s, &o);
    assert_eq!(plan.status, "stopped PostgreSQL to fail over after a crash");
    assert_eq!(plan.actions, vec![Action::Demote { mode: DemoteMode::Immediate, follow: None }]);
    // Nobody to fail over to: start it again rather than leave the cluster without a primary.
    let mut o = obs(Some(c), crashed_primary());
    o.peers = Some(vec![peer("pg2", None), peer("pg3", None)]);
    let plan = Ha::new().step(&s, &o);
    assert!(plan.actions.contains(&Action::StartReplica { follow: None }), "{plan:?}");
}

#[test]
fn primary_that_does_not_come_back_releases_the_key_after_primary_start_timeout() {
    let mut s = settings("pg1");
    s.primary_start_timeout = Millis::from_secs(30);
    let mut ha = Ha::new();
    let mut o = obs(Some(cluster(Some("pg1"))), crashed_primary());
    assert!(ha.step(&s, &o).actions.contains(&Action::StartPrimary));
    o.local.busy = Some(Busy::Starting);
    o.now = Time(1_000_000 + 29_000);
    assert_eq!(ha.step(&s, &o).actions, vec![Action::UpdateLeader { lsn: Some(100) }]);
    o.now = Time(1_000_000 + 31_000);
    // The start would end writable after the key is gone (simulator finding 8): stop it, then release the key.
    let plan = ha.step(&s, &o);
    assert_eq!(plan.status, "stopped PostgreSQL because of startup timeout");
    assert_eq!(plan.actions, vec![Action::Demote { mode: DemoteMode::Immediate, follow: None }]);
    assert!(DemoteMode::Immediate.releases_key());
}

#[test]
fn read_only_start_that_does_not_come_back_releases_the_key_after_primary_start_timeout() {
    let mut s = settings("pg1");
    s.primary_start_timeout = Millis::from_secs(30);
    let mut ha = Ha::new();
    let mut local = crashed_primary();
    local.recovery_configured = true;
    let mut o = obs(Some(cluster(Some("pg1"))), local);
    assert!(ha.step(&s, &o).actions.contains(&Action::StartReplica { follow: None }));
    o.local.busy = Some(Busy::Starting);
    o.now = Time(1_000_000 + 31_000);
    // It starts read-only and is promoted only with the key: the key can go while it starts.
    assert_eq!(ha.step(&s, &o).actions, vec![Action::ReleaseLeader { lsn: Some(100) }]);
}

#[test]
fn primary_start_stops_when_the_key_is_lost_meanwhile() {
    let s = settings("pg1");
    let mut ha = Ha::new();
    let mut o = obs(Some(cluster(Some("pg1"))), crashed_primary());
    assert!(ha.step(&s, &o).actions.contains(&Action::StartPrimary));
    o.local.busy = Some(Busy::Starting);
    o.cluster = Some(cluster(Some("pg2")));
    let plan = ha.step(&s, &o);
    assert_eq!(plan.status, "stopped PostgreSQL while starting up because leader key was lost");
    assert_eq!(plan.actions, vec![Action::Demote { mode: DemoteMode::ImmediateNoLock, follow: None }]);
    // Paused, PostgreSQL is left alone.
    let mut paused = settings("pg1");
    paused.pause = true;
    let mut ha = Ha::new();
    o.local.busy = None;
    o.cluster = Some(cluster(Some("pg1")));
    assert!(ha.step(&s, &o).actions.contains(&Action::StartPrimary));
    o.local.busy = Some(Busy::Starting);
    o.cluster = Some(cluster(None));
    assert!(ha.step(&paused, &o).actions.is_empty());
}

#[test]
fn stopped_replica_starts_following_the_leader() {
    let mut local = running(PgRole::Replica, 100);
    local.process = Process::Stopped;
    let plan = Ha::new().step(&settings("pg2"), &obs(Some(cluster(Some("pg1"))), local));
    assert_eq!(plan.status, "starting as a secondary");
    assert_eq!(plan.actions, vec![Action::StartReplica { follow: Some("pg1".into()) }]);
}

#[test]
fn pause_leaves_a_stopped_postgres_alone() {
    let mut s = settings("pg2");
    s.pause = true;
    let mut local = running(PgRole::Replica, 100);
    local.process = Process::Stopped;
    let plan = Ha::new().step(&s, &obs(Some(cluster(Some("pg1"))), local));
    assert!(plan.actions.is_empty());
}

#[test]
fn pause_means_no_leader_race() {
    let mut s = settings("pg2");
    s.pause = true;
    let plan = Ha::new().step(&s, &obs(Some(cluster(None)), running(PgRole::Replica, 100)));
    assert!(plan.actions.is_empty());
}

/// Paused, nothing restarts a PostgreSQL that died: the key would only hide that the cluster has no primary.
#[test]
fn pause_releases_the_key_of_a_primary_whose_postgres_died() {
    let mut s = settings("pg1");
    s.pause = true;
    let plan = Ha::new().step(&s, &obs(Some(cluster(Some("pg1"))), crashed_primary()));
    assert_eq!(plan.status, "removed leader lock because postgres is not running");
    assert_eq!(plan.actions, vec![Action::ReleaseLeader { lsn: None }]);
}

#[test]
fn switchover_to_a_healthy_candidate_demotes_the_leader_gracefully() {
    let s = settings("pg1");
    let mut c = cluster(Some("pg1"));
    c.failover =
        Some(FailoverRequest { leader: Some("pg1".into()), candidate: Some("pg2".into()), scheduled_at: None });
    let mut ha = Ha::new();
    let plan = ha.step(&s, &obs(Some(c.clone()), running(PgRole::Primary, 100)));
    assert!(plan.actions.contains(&Action::FetchPeers { members: vec!["pg2".into()] }));
    let mut o = obs(Some(c), running(PgRole::Primary, 100));
    o.peers = Some(vec![peer("pg2", reply(PgRole::Replica, 100))]);
    let plan = ha.step(&s, &o);
    assert_eq!(plan.status, "manual failover: demoting myself");
    assert_eq!(plan.actions, vec![Action::Demote { mode: DemoteMode::Graceful, follow: None }]);
}

#[test]
fn switchover_to_a_lagging_candidate_is_refused_and_cleared() {
    let mut c = cluster(Some("pg1"));
    c.failover =
        Some(FailoverRequest { leader: Some("pg1".into()), candidate: Some("pg3".into()), scheduled_at: None });
    let mut o = obs(Some(c), running(PgRole::Primary, 50_000_000));
    o.peers = Some(vec![peer("pg3", reply(PgRole::Replica, 90))]);
    let plan = Ha::new().step(&settings("pg1"), &o);
    assert!(plan.actions.contains(&Action::ClearFailover));
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::Demote { .. })));
    assert!(plan.status.contains("maximum replication lag"), "{}", plan.status);
}

#[test]
fn scheduled_switchover_waits_for_its_time() {
    let mut c = cluster(Some("pg1"));
    let at = Time(1_000_000 + 60_000);
    c.failover = Some(FailoverRequest { leader: Some("pg1".into()), candidate: None, scheduled_at: Some(at) });
    let plan = Ha::new().step(&settings("pg1"), &obs(Some(c), running(PgRole::Primary, 100)));
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }]);
    assert_eq!(plan.wake_at, Some(at));
}

#[test]
fn named_candidate_takes_the_key_after_the_leader_steps_down() {
    let mut c = cluster(None);
    c.failover =
        Some(FailoverRequest { leader: Some("pg1".into()), candidate: Some("pg3".into()), scheduled_at: None });
    // Even lagging: the operator named it.
    c.last_leader_lsn = Some(50_000_000);
    let mut o = obs(Some(c.clone()), running(PgRole::Replica, 90));
    o.peers = Some(vec![peer("pg1", reply(PgRole::Replica, 100)), peer("pg2", None)]);
    let plan = Ha::new().step(&settings("pg3"), &o);
    assert_eq!(plan.actions, vec![Action::AcquireLeader]);

    c.leader = Some("pg3".into());
    let mut won = obs(Some(c), running(PgRole::Replica, 90));
    won.outcomes = vec![Outcome::LeaderRace { won: true }];
    let plan = Ha::new().step(&settings("pg3"), &won);
    assert!(plan.actions.contains(&Action::ClearFailover));
    assert_eq!(plan.actions.last(), Some(&Action::Promote));
}

#[test]
fn named_candidate_does_not_promote_next_to_a_running_primary() {
    let mut c = cluster(None);
    c.members.retain(|m| m.name != "pg1");
    c.failsafe = Some(vec!["pg1".into(), "pg2".into(), "pg3".into()]);
    c.failover = Some(FailoverRequest { leader: None, candidate: Some("pg3".into()), scheduled_at: None });
    let plan = Ha::new().step(&settings("pg3"), &obs(Some(c.clone()), running(PgRole::Replica, 90)));
    assert_eq!(plan.actions, vec![Action::FetchPeers { members: vec!["pg2".into(), "pg1".into()] }]);
    let mut o = obs(Some(c), running(PgRole::Replica, 90));
    o.peers = Some(vec![peer("pg2", reply(PgRole::Replica, 90)), peer("pg1", reply(PgRole::Primary, 100))]);
    let plan = Ha::new().step(&settings("pg3"), &o);
    assert!(plan.actions.is_empty());
    assert_eq!(plan.status, "manual failover: pg1 is still running as primary");
}

/// The failsafe leader's key expired while every member confirmed it; a failover names pg2, which will not promote
/// next to it. Once the DCS answers again the running primary must take the key back (and drop the request), or
/// neither moves and the cluster stays without a leader key forever.
#[test]
fn failsafe_primary_without_its_key_takes_it_back_before_a_named_candidate() {
    let mut s = settings("pg1");
    s.failsafe_mode = true;
    let mut c = cluster(None);
    c.members.retain(|m| m.name != "pg1");
    c.failsafe = Some(vec!["pg1".into(), "pg2".into(), "pg3".into()]);
    c.failover = Some(FailoverRequest { leader: None, candidate: Some("pg2".into()), scheduled_at: None });
    let mut ha = Ha::new();
    let plan = ha.step(&s, &obs(Some(c.clone()), running(PgRole::Primary, 120)));
    assert_eq!(plan.status, "acquired session lock as a leader");
    assert_eq!(plan.actions, vec![Action::AcquireLeader]);

    c.leader = Some("pg1".into());
    let mut won = obs(Some(c), running(PgRole::Primary, 120));
    won.outcomes = vec![Outcome::LeaderRace { won: true }];
    let plan = ha.step(&s, &won);
    assert!(plan.actions.contains(&Action::ClearFailover), "{:?}", plan.actions);
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::Demote { .. } | Action::FetchPeers { .. })));
}

/// A replica that accepted pg1's failsafe heartbeat less than a ttl ago does not race for the free key, even when it
/// cannot reach pg1 to see it still running as primary: pg1 goes on until one of its checks fails. After a ttl
/// without heartbeats it races as usual; with failsafe_mode off the heartbeat means nothing.
#[test]
fn a_recent_failsafe_heartbeat_holds_the_race_back_for_a_ttl() {
    let mut s = settings("pg2");
    s.failsafe_mode = true;
    let mut c = cluster(None);
    c.failsafe = Some(vec!["pg1".into(), "pg2".into(), "pg3".into()]);
    let mut o = obs(Some(c), running(PgRole::Replica, 100));
    o.failsafe_heartbeat = Some(("pg1".into(), Time(o.now.0 - 5_000)));
    let plan = Ha::new().step(&s, &o);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.status, "no action. I am (pg2), a secondary, and following a leader (pg1)");

    o.failsafe_heartbeat = Some(("pg1".into(), Time(o.now.0 - i64::try_from(s.ttl.0).unwrap() - 1)));
    let plan = long_running(&s).step(&s, &o);
    assert!(plan.actions.iter().any(|a| matches!(a, Action::FetchPeers { .. })), "{:?}", plan.actions);

    s.failsafe_mode = false;
    o.failsafe_heartbeat = Some(("pg1".into(), Time(o.now.0 - 5_000)));
    let plan = long_running(&s).step(&s, &o);
    assert!(plan.actions.iter().any(|a| matches!(a, Action::FetchPeers { .. })), "{:?}", plan.actions);
}

/// A primary on an older timeline than the `history` key does not take the key back: someone promoted since.
#[test]
fn primary_behind_the_cluster_timeline_does_not_take_the_free_key_back() {
    let mut c = cluster(None);
    c.timeline = Some(3);
    let plan = Ha::new().step(&settings("pg1"), &obs(Some(c), running(PgRole::Primary, 120)));
    assert_ne!(plan.actions, vec![Action::AcquireLeader]);
}

/// A switchover away from pg1 excludes it from the comparison, but not while it still runs as primary.
#[test]
fn former_leader_still_running_as_primary_is_not_ignored_by_the_race() {
    let mut c = cluster(None);
    c.failover = Some(FailoverRequest { leader: Some("pg1".into()), candidate: None, scheduled_at: None });
    let mut o = obs(Some(c), running(PgRole::Replica, 100));
    o.peers = Some(vec![peer("pg1", reply(PgRole::Primary, 100)), peer("pg3", reply(PgRole::Replica, 90))]);
    let plan = Ha::new().step(&settings("pg2"), &o);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.log, vec![(LogLevel::Warning, "Primary (pg1) is still alive".to_string())]);
}

#[test]
fn others_wait_for_a_healthy_named_candidate() {
    let mut c = cluster(None);
    c.failover =
        Some(FailoverRequest { leader: Some("pg1".into()), candidate: Some("pg3".into()), scheduled_at: None });
    let mut o = obs(Some(c), running(PgRole::Replica, 100));
    o.peers = Some(vec![peer("pg3", reply(PgRole::Replica, 90))]);
    let plan = Ha::new().step(&settings("pg2"), &o);
    assert!(plan.actions.is_empty());
    assert_eq!(plan.status, "manual failover: waiting for pg3 to take over");
}

#[test]
fn former_leader_sits_out_a_switchover_to_any() {
    let mut c = cluster(None);
    c.failover = Some(FailoverRequest { leader: Some("pg1".into()), candidate: None, scheduled_at: None });
    let mut o = obs(Some(c), running(PgRole::Replica, 100));
    o.peers = Some(vec![peer("pg2", reply(PgRole::Replica, 100)), peer("pg3", None)]);
    let plan = Ha::new().step(&settings("pg1"), &o);
    assert!(plan.actions.is_empty());
    assert_eq!(plan.status, "manual failover: not taking part in the race as the former leader");
}

#[test]
fn former_leader_races_when_nobody_else_can_take_over() {
    let mut c = cluster(None);
    c.failover = Some(FailoverRequest { leader: Some("pg1".into()), candidate: None, scheduled_at: None });
    let mut o = obs(Some(c), running(PgRole::Replica, 100));
    o.peers = Some(vec![peer("pg2", None), peer("pg3", None)]);
    let plan = Ha::new().step(&settings("pg1"), &o);
    assert_eq!(plan.actions, vec![Action::AcquireLeader]);
}

#[test]
fn paused_leader_keeps_running_when_its_refresh_fails() {
    let mut s = settings("pg1");
    s.pause = true;
    let mut o = obs(Some(cluster(Some("pg1"))), running(PgRole::Primary, 100));
    o.outcomes = vec![Outcome::LeaderRefresh { ok: false }];
    let plan = Ha::new().step(&s, &o);
    assert!(plan.actions.is_empty());
    assert_eq!(plan.status, "continue to run as primary after failing to update leader lock in DCS");
}

#[test]
fn sync_switchover_to_a_non_sync_candidate_falls_back_to_the_race() {
    let mut s = settings("pg3");
    s.sync_mode = SyncMode::On;
    let mut c = cluster(None);
    c.sync = SyncView { leader: Some("pg1".into()), standbys: vec!["pg2".into()], quorum: 0 };
    c.failover =
        Some(FailoverRequest { leader: Some("pg1".into()), candidate: Some("pg3".into()), scheduled_at: None });
    let plan = Ha::new().step(&s, &obs(Some(c), running(PgRole::Replica, 100)));
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.status, NOT_HEALTHIEST);
}

#[test]
fn manually_demoted_primary_releases_the_key_in_pause() {
    let mut s = settings("pg1");
    s.pause = true;
    let plan = Ha::new().step(&s, &obs(Some(cluster(Some("pg1"))), running(PgRole::Replica, 100)));
    assert_eq!(plan.actions, vec![Action::ReleaseLeader { lsn: Some(100) }]);
}

#[test]
fn busy_leader_keeps_refreshing_its_key() {
    let mut local = running(PgRole::Primary, 100);
    local.busy = Some(Busy::Restarting);
    local.process = Process::Starting { since: Time(999_000) };
    let plan = Ha::new().step(&settings("pg1"), &obs(Some(cluster(Some("pg1"))), local));
    assert_eq!(plan.status, "updated leader lock during restart");
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }]);
}

#[test]
fn leader_records_history_after_promotion() {
    let mut local = running(PgRole::Primary, 100);
    local.timeline = Some(2);
    let mut c = cluster(Some("pg1"));
    c.timeline = Some(1);
    let plan = Ha::new().step(&settings("pg1"), &obs(Some(c), local));
    assert!(plan.actions.contains(&Action::UpdateHistory));
}

#[test]
fn sync_leader_adds_a_standby_to_the_key_only_once_postgres_waits_for_it() {
    let mut s = settings("pg1");
    s.sync_mode = SyncMode::On;
    let mut local = running(PgRole::Primary, 100);
    local.replication = vec![ReplicaConn {
        name: "pg2".into(),
        streaming: true,
        synchronous: false,
        lsn: Some(100),
        write_lsn: Some(100),
        replay_lsn: Some(100),
    }];
    let mut c = cluster(Some("pg1"));
    c.sync = SyncView { leader: Some("pg1".into()), standbys: vec![], quorum: 0 };
    let plan = Ha::new().step(&s, &obs(Some(c.clone()), local.clone()));
    assert!(plan.actions.contains(&Action::SetSyncStandbys { names: vec!["pg2".into()], num: None, any: false }));
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::SetSyncState { .. })));

    local.replication[0].synchronous = true;
    local.sync_standby_names = ssn(&["pg2"]);
    let plan = Ha::new().step(&s, &obs(Some(c), local));
    assert!(plan.actions.contains(&key("pg1", &["pg2"])), "{:?}", plan.actions);
}

#[test]
fn sync_leader_drops_a_gone_standby_from_the_key_before_postgres() {
    let mut s = settings("pg1");
    s.sync_mode = SyncMode::On;
    let local = running(PgRole::Primary, 100);
    let mut c = cluster(Some("pg1"));
    c.sync = SyncView { leader: Some("pg1".into()), standbys: vec!["pg2".into()], quorum: 0 };
    let plan = Ha::new().step(&s, &obs(Some(c), local));
    let key = plan.actions.iter().position(|a| *a == key("pg1", &[]));
    let pg = plan.actions.iter().position(|a| matches!(a, Action::SetSyncStandbys { .. }));
    assert!(key.is_some() && pg.is_some() && key < pg, "{:?}", plan.actions);
}

/// No leader, an empty data directory, and a replica method that needs none (a restore from backup).
#[test]
fn replica_method_without_leader_creates_a_replica_when_there_is_no_leader() {
    let mut s = settings("pg4");
    let empty = LocalState::default();
    let plan = Ha::new().step(&s, &obs(Some(cluster(None)), empty.clone()));
    assert_eq!(plan.status, "waiting for leader to bootstrap");
    s.replica_without_leader = true;
    let plan = Ha::new().step(&s, &obs(Some(cluster(None)), empty));
    assert_eq!(plan.status, "trying to bootstrap (without leader)");
    assert_eq!(plan.actions, vec![Action::CreateReplica { from: None }]);
}

/// In failsafe mode, a member the leader never listed in `failsafe` does not race for the key.
#[test]
fn failsafe_member_not_listed_by_the_leader_sits_out_the_race() {
    let mut s = settings("pg4");
    s.failsafe_mode = true;
    let mut c = cluster(None);
    c.failsafe = Some(vec!["pg1".into()]);
    let plan = Ha::new().step(&s, &obs(Some(c.clone()), running(PgRole::Replica, 100)));
    assert_eq!(plan.status, NOT_HEALTHIEST);
    assert!(plan.actions.is_empty());
    c.failsafe = Some(vec!["pg1".into(), "pg4".into()]);
    let plan = long_running(&s).step(&s, &obs(Some(c), running(PgRole::Replica, 100)));
    assert!(matches!(plan.actions[..], [Action::FetchPeers { .. }]), "{plan:?}");
}

/// Beyond Patroni: in failsafe mode a peer the `failsafe` key does not list sits out the race, so it is no
/// contender either — not even ahead of us — or nobody would ever take the key (simulator, `--failsafe`). A peer
/// running as primary still holds us back, listed or not.
#[test]
fn a_peer_the_failsafe_key_does_not_list_is_no_contender() {
    let mut s = settings("pg3");
    s.failsafe_mode = true;
    let mut c = cluster(None);
    c.failsafe = Some(vec!["pg1".into(), "pg3".into()]);
    let mut o = obs(Some(c.clone()), running(PgRole::Replica, 100));
    o.peers = Some(vec![peer("pg1", None), peer("pg2", reply(PgRole::Replica, 120))]);
    let plan = long_running(&s).step(&s, &o);
    assert_eq!(plan.status, "acquiring the leader key as the healthiest node");
    assert_eq!(plan.actions, vec![Action::AcquireLeader]);

    o.peers = Some(vec![peer("pg1", None), peer("pg2", reply(PgRole::Primary, 120))]);
    let plan = long_running(&s).step(&s, &o);
    assert_eq!(plan.status, NOT_HEALTHIEST);

    // Listed, the same peer ahead of us wins the comparison as before.
    c.failsafe = Some(vec!["pg1".into(), "pg2".into(), "pg3".into()]);
    let mut o = obs(Some(c), running(PgRole::Replica, 100));
    o.peers = Some(vec![peer("pg1", None), peer("pg2", reply(PgRole::Replica, 120))]);
    let plan = long_running(&s).step(&s, &o);
    assert_eq!(plan.status, NOT_HEALTHIEST);
}

/// The failsafe primary asks the members it last wrote to the key, including one that joined after its last read.
#[test]
fn failsafe_primary_asks_the_members_it_last_wrote() {
    let mut s = settings("pg1");
    s.failsafe_mode = true;
    let mut ha = Ha::new();
    let mut c = cluster(Some("pg1"));
    c.failsafe = Some(vec!["pg1".into(), "pg2".into()]);
    let plan = ha.step(&s, &obs(Some(c), running(PgRole::Primary, 100)));
    let all: Vec<Name> = vec!["pg1".into(), "pg2".into(), "pg3".into()];
    assert!(plan.actions.contains(&Action::WriteFailsafe { members: all }));
    let plan = ha.step(&s, &obs(None, running(PgRole::Primary, 100)));
    assert_eq!(plan.actions, vec![Action::CheckFailsafe { members: vec!["pg2".into(), "pg3".into()] }]);
}

/// `maximum_lag_on_syncnode`: a synchronous standby whose replay stalls (remote_apply) is swapped for one that keeps
/// up, paused or not; the key drops it before `synchronous_standby_names` changes.
#[test]
fn sync_standby_lagging_past_maximum_lag_on_syncnode_is_swapped() {
    let mut s = settings("pg1");
    s.sync_mode = SyncMode::On;
    s.pause = true;
    s.sync_commit = SyncCommit::Apply;
    s.maximum_lag_on_syncnode = Some(1_000);
    let conn = |name: &str, replay: u64, synchronous: bool| ReplicaConn {
        name: name.into(),
        streaming: true,
        synchronous,
        lsn: Some(50_000),
        write_lsn: Some(50_000),
        replay_lsn: Some(replay),
    };
    let mut local = running(PgRole::Primary, 50_000);
    local.replication = vec![conn("pg2", 50_000, false), conn("pg3", 10_000, true)];
    local.sync_standby_names = ssn(&["pg3"]);
    let mut c = cluster(Some("pg1"));
    c.sync = SyncView { leader: Some("pg1".into()), standbys: vec!["pg3".into()], quorum: 0 };
    let plan = Ha::new().step(&s, &obs(Some(c.clone()), local.clone()));
    let dropped = plan.actions.iter().position(|a| *a == key("pg1", &[]));
    let names = Action::SetSyncStandbys { names: vec!["pg2".into()], num: None, any: false };
    assert!(dropped.is_some() && dropped < plan.actions.iter().position(|a| *a == names), "{:?}", plan.actions);
    // Without the limit the current synchronous standby is kept: nothing to change.
    s.maximum_lag_on_syncnode = None;
    let plan = Ha::new().step(&s, &obs(Some(c), local));
    assert!(
        !plan.actions.iter().any(|a| matches!(a, Action::SetSyncStandbys { .. } | Action::SetSyncState { .. })),
        "{:?}",
        plan.actions
    );
}

/// `synchronous_standby_names` listing `names` by priority, one of them.
fn ssn(names: &[&str]) -> SyncStandbyNames {
    SyncStandbyNames { any: false, num: 1, names: names.iter().map(|n| n.to_string()).collect(), star: false }
}

/// The `sync` key write naming `leader` and `standbys` with quorum 0.
fn key(leader: &str, standbys: &[&str]) -> Action {
    Action::SetSyncState {
        leader: leader.into(),
        standbys: standbys.iter().map(|n| n.to_string()).collect(),
        quorum: 0,
    }
}

/// Patroni's `evaluate_scheduled_restart`: a healthy member waits for the scheduled time (woken for it), restarts
/// when it is due, and forgets a schedule more than 1.5 loops stale.
#[test]
fn scheduled_restart_waits_runs_and_expires() {
    let s = settings("pg2");
    let mut local = running(PgRole::Replica, 100);
    local.following = Some("pg1".into());
    let mut o = obs(Some(cluster(Some("pg1"))), local);
    o.scheduled_restart = Some(Time(1_030_000));
    let plan = Ha::new().step(&s, &o);
    assert!(plan.actions.is_empty(), "{plan:?}");
    assert_eq!(plan.wake_at, Some(Time(1_030_000)));

    o.scheduled_restart = Some(Time(995_000));
    assert_eq!(Ha::new().step(&s, &o).actions, vec![Action::ScheduledRestart]);

    o.scheduled_restart = Some(Time(1_000_000 - 16_000));
    let plan = Ha::new().step(&s, &o);
    assert_eq!(plan.actions, vec![Action::ClearScheduledRestart]);

    // Paused: nothing is restarted.
    o.scheduled_restart = Some(Time(995_000));
    let paused = Settings { pause: true, ..s };
    assert!(Ha::new().step(&paused, &o).actions.is_empty());
}
