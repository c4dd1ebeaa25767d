//! Decisions of synchronous replication outside the leader's upkeep: leader races in quorum mode (the quorum LSN
//! comparison), failover and switchover rules, what a new primary waits for from its first moment.

use patroni_ha::*;

const SYSID: &str = "7301234567890123456";
const NOT_HEALTHIEST: &str = "following a different leader because i am not the healthiest node";

fn settings(name: &str, mode: SyncMode) -> Settings {
    Settings { name: name.into(), sync_mode: mode, ..Settings::default() }
}

fn member(name: &str, lsn: u64) -> MemberView {
    MemberView {
        name: name.into(),
        role: PgRole::Replica,
        running: true,
        lsn: Some(lsn),
        timeline: Some(1),
        tags: Tags { failover_priority: 1, ..Tags::default() },
    }
}

/// pg1 led with voters pg2, pg3, pg4 and quorum 1 (`ANY 2 (pg2,pg3,pg4)`); its key is gone now.
fn leaderless(quorum: usize) -> ClusterView {
    ClusterView {
        initialize: Some(SYSID.into()),
        leader: None,
        members: vec![member("pg2", 100), member("pg3", 100), member("pg4", 100), member("pg5", 100)],
        last_leader_lsn: Some(100),
        sync: SyncView { leader: Some("pg1".into()), standbys: vec!["pg2".into(), "pg3".into(), "pg4".into()], quorum },
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

fn reply(lsn: u64) -> Option<PeerReply> {
    Some(PeerReply {
        role: PgRole::Replica,
        running: true,
        lsn: Some(lsn),
        timeline: Some(1),
        tags: Tags { failover_priority: 1, ..Tags::default() },
    })
}

fn race(s: &Settings, cluster: ClusterView, lsn: u64, peers: Vec<(&str, Option<PeerReply>)>) -> Plan {
    let obs = Observation {
        now: Time(1_000_000),
        cluster: Some(cluster),
        local: running(PgRole::Replica, lsn),
        peers: Some(peers.into_iter().map(|(n, r)| PeerStatus { name: n.into(), reply: r }).collect()),
        ..Observation::default()
    };
    Ha::new().step(s, &obs)
}

fn takes_the_key(plan: &Plan) -> bool {
    plan.actions.contains(&Action::AcquireLeader)
}

/// A voter takes the key only after comparing its position with `quorum` other voters: with quorum 1 it needs one
/// vote; the voters that did not answer give none.
#[test]
fn quorum_voter_needs_quorum_votes() {
    let s = settings("pg2", SyncMode::Quorum);
    let plan = race(&s, leaderless(1), 100, vec![("pg3", reply(90)), ("pg4", None), ("pg5", reply(100))]);
    assert!(takes_the_key(&plan), "{plan:?}");
    // Only a non-voter answers: no vote.
    let plan = race(&s, leaderless(1), 100, vec![("pg3", None), ("pg4", None), ("pg5", reply(100))]);
    assert_eq!(plan.status, NOT_HEALTHIEST);
    assert!(!takes_the_key(&plan));
    // Quorum 2: two voters must answer.
    let plan = race(&s, leaderless(2), 100, vec![("pg3", reply(100)), ("pg4", None), ("pg5", reply(100))]);
    assert!(!takes_the_key(&plan));
    let plan = race(&s, leaderless(2), 100, vec![("pg3", reply(100)), ("pg4", reply(50)), ("pg5", None)]);
    assert!(takes_the_key(&plan), "{plan:?}");
}

/// A member outside the voters may race in quorum mode (not in `on` mode) but needs one vote more.
#[test]
fn quorum_non_voter_needs_one_vote_more() {
    let s = settings("pg5", SyncMode::Quorum);
    let plan = race(&s, leaderless(1), 100, vec![("pg2", reply(100)), ("pg3", None), ("pg4", None)]);
    assert!(!takes_the_key(&plan), "{plan:?}");
    let plan = race(&s, leaderless(1), 100, vec![("pg2", reply(100)), ("pg3", reply(90)), ("pg4", None)]);
    assert!(takes_the_key(&plan), "{plan:?}");
    let on = settings("pg5", SyncMode::On);
    let plan = race(&on, leaderless(0), 100, vec![("pg2", reply(100)), ("pg3", reply(90)), ("pg4", None)]);
    assert_eq!(plan.status, NOT_HEALTHIEST);
}

/// A voter ahead of us wins; beyond Patroni, `nofailover` voters vote (their position says what they hold; Patroni
/// skips them, and a quorum that needs one could then never be reached).
#[test]
fn quorum_voter_ahead_wins_and_nofailover_voters_vote() {
    let s = settings("pg2", SyncMode::Quorum);
    let plan = race(&s, leaderless(1), 100, vec![("pg3", reply(120)), ("pg4", reply(100))]);
    assert!(!takes_the_key(&plan));
    let mut nofailover = reply(100);
    if let Some(r) = nofailover.as_mut() {
        r.tags.nofailover = true;
    }
    let plan = race(&s, leaderless(1), 100, vec![("pg3", nofailover.clone()), ("pg4", None)]);
    assert!(takes_the_key(&plan), "{plan:?}");
    // Ahead, it is no vote (and, unable to promote, it does not win either).
    if let Some(r) = nofailover.as_mut() {
        r.lsn = Some(120);
    }
    let plan = race(&s, leaderless(1), 100, vec![("pg3", nofailover), ("pg4", None)]);
    assert!(!takes_the_key(&plan), "{plan:?}");
}

/// The former leader (the one that wrote the key) takes its key back with nobody ahead, votes or not.
#[test]
fn former_quorum_leader_needs_no_votes() {
    let s = settings("pg1", SyncMode::Quorum);
    let mut c = leaderless(1);
    c.members.push(member("pg1", 100));
    let plan = race(&s, c, 100, vec![("pg2", None), ("pg3", None), ("pg4", None), ("pg5", None)]);
    assert!(takes_the_key(&plan), "{plan:?}");
}

/// Before the key names a leader, quorum mode puts no condition on the race.
#[test]
fn quorum_rules_apply_once_the_key_is_written() {
    let s = settings("pg2", SyncMode::Quorum);
    let mut c = leaderless(1);
    c.sync = SyncView::default();
    let plan = race(&s, c, 100, vec![("pg3", None)]);
    assert!(takes_the_key(&plan), "{plan:?}");
}

/// Switchover from a quorum leader without a candidate: `quorum + 1` voters must be fit to take over, or the
/// request is refused (it would leave the cluster without a member able to win the race).
#[test]
fn quorum_switchover_without_candidate_needs_enough_fit_voters() {
    let s = settings("pg1", SyncMode::Quorum);
    let mut c = leaderless(1);
    c.leader = Some("pg1".into());
    c.members.insert(0, MemberView { role: PgRole::Primary, ..member("pg1", 100) });
    c.failover = Some(FailoverRequest { leader: Some("pg1".into()), candidate: None, scheduled_at: None });
    let step = |peers: Vec<(&str, Option<PeerReply>)>| {
        let obs = Observation {
            now: Time(1_000_000),
            cluster: Some(c.clone()),
            local: running(PgRole::Primary, 100),
            peers: Some(peers.into_iter().map(|(n, r)| PeerStatus { name: n.into(), reply: r }).collect()),
            ..Observation::default()
        };
        Ha::new().step(&s, &obs)
    };
    let plan = step(vec![("pg2", reply(100)), ("pg3", None), ("pg4", None), ("pg5", reply(100))]);
    assert!(plan.actions.contains(&Action::ClearFailover), "{plan:?}");
    let plan = step(vec![("pg2", reply(100)), ("pg3", reply(100)), ("pg4", None), ("pg5", None)]);
    assert!(plan.actions.iter().any(|a| matches!(a, Action::Demote { mode: DemoteMode::Graceful, .. })), "{plan:?}");
}

/// Winning the key: before promoting, PostgreSQL is told to keep waiting for the former voters (quorum mode), or
/// the key is rewritten naming us alone (`on` mode); a failed write stops the plan before `Promote`.
#[test]
fn promotion_is_preceded_by_the_synchronous_state_it_needs() {
    let obs = |c: ClusterView| Observation {
        now: Time(1_000_000),
        cluster: Some(c),
        local: running(PgRole::Replica, 100),
        outcomes: vec![Outcome::LeaderRace { won: true }],
        ..Observation::default()
    };
    let mut c = leaderless(1);
    c.leader = Some("pg2".into());
    let plan = Ha::new().step(&settings("pg2", SyncMode::Quorum), &obs(c.clone()));
    let names: Vec<Name> = vec!["pg1".into(), "pg3".into(), "pg4".into()];
    let ssn = plan
        .actions
        .iter()
        .position(|a| *a == Action::SetSyncStandbys { names: names.clone(), num: Some(2), any: true });
    let promote = plan.actions.iter().position(|a| *a == Action::Promote);
    assert!(ssn.is_some() && ssn < promote, "{plan:?}");

    let plan = Ha::new().step(&settings("pg2", SyncMode::On), &obs(c));
    let key = Action::SetSyncState { leader: "pg2".into(), standbys: vec![], quorum: 0 };
    let key = plan.actions.iter().position(|a| *a == key);
    assert!(key.is_some() && key < plan.actions.iter().position(|a| *a == Action::Promote), "{plan:?}");
}

/// Beyond Patroni: synchronous mode `on` reading a key a quorum-mode leader wrote (`quorum` > 0: the mode was changed
/// live, the leader has not applied it) keeps the quorum rules: a voter alone is not enough.
#[test]
fn on_mode_reading_a_quorum_key_still_counts_votes() {
    let s = settings("pg2", SyncMode::On);
    let plan = race(&s, leaderless(1), 100, vec![("pg3", None), ("pg4", None), ("pg5", None)]);
    assert!(!takes_the_key(&plan), "{plan:?}");
    let plan = race(&s, leaderless(1), 100, vec![("pg3", reply(100)), ("pg4", None), ("pg5", None)]);
    assert!(takes_the_key(&plan), "{plan:?}");
    // A key `on` wrote (quorum 0): a listed standby holds every commit by itself.
    let plan = race(&s, leaderless(0), 100, vec![("pg3", None), ("pg4", None), ("pg5", None)]);
    assert!(takes_the_key(&plan), "{plan:?}");
}

/// Votes by timeline first: a voter on a newer timeline is ahead whatever its raw position, so it is no vote.
#[test]
fn a_voter_on_a_newer_timeline_is_no_vote() {
    let s = settings("pg2", SyncMode::Quorum);
    let mut newer = reply(50);
    if let Some(r) = newer.as_mut() {
        r.timeline = Some(2);
    }
    let plan = race(&s, leaderless(1), 100, vec![("pg3", newer), ("pg4", None), ("pg5", None)]);
    assert!(!takes_the_key(&plan), "{plan:?}");
}

/// Beyond Patroni: a switchover whose leader went away before handing over is a failover; in quorum mode the named
/// candidate takes the key only with the quorum's votes, and a member ahead of it does not wait for it.
#[test]
fn quorum_switchover_candidate_without_its_leader_needs_votes() {
    let mut c = leaderless(1);
    c.failover =
        Some(FailoverRequest { leader: Some("pg1".into()), candidate: Some("pg2".into()), scheduled_at: None });
    let s = settings("pg2", SyncMode::Quorum);
    // pg3 is ahead: no vote, no key for the candidate.
    let plan = race(&s, c.clone(), 100, vec![("pg3", reply(120)), ("pg4", None), ("pg5", None)]);
    assert!(!takes_the_key(&plan), "{plan:?}");
    let plan = race(&s, c.clone(), 100, vec![("pg3", reply(100)), ("pg4", None), ("pg5", None)]);
    assert!(takes_the_key(&plan), "{plan:?}");
    // pg3, ahead of the candidate, races instead of waiting for it (pg4 votes).
    let pg3 = settings("pg3", SyncMode::Quorum);
    let plan = race(&pg3, c, 120, vec![("pg2", reply(100)), ("pg4", reply(110)), ("pg5", None)]);
    assert!(takes_the_key(&plan), "{plan:?}");
}
