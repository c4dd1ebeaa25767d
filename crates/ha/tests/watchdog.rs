//! When the watchdog (or guardian) is armed, re-armed and disarmed: literal inputs, no device.

use patroni_ha::*;

const SYSID: &str = "7301234567890123456";

fn settings(mode: WatchdogMode) -> Settings {
    Settings {
        name: "pg1".into(),
        ttl: Millis::from_secs(30),
        loop_wait: Millis::from_secs(10),
        watchdog_mode: mode,
        watchdog_safety_margin: 5,
        ..Settings::default()
    }
}

fn member(name: &str, role: PgRole) -> MemberView {
    MemberView {
        name: name.into(),
        role,
        running: true,
        lsn: Some(100),
        timeline: Some(1),
        tags: Tags { failover_priority: 1, ..Tags::default() },
    }
}

fn cluster(leader: Option<&str>) -> ClusterView {
    ClusterView {
        initialize: Some(SYSID.into()),
        leader: leader.map(Into::into),
        members: vec![member("pg1", PgRole::Primary), member("pg2", PgRole::Replica)],
        last_leader_lsn: Some(100),
        ..ClusterView::default()
    }
}

fn local(role: PgRole, watchdog: WatchdogState) -> LocalState {
    LocalState {
        data_dir: DataDir::Initialized { sysid: SYSID.into() },
        process: Process::Running,
        role,
        lsn: Some(100),
        timeline: Some(1),
        watchdog,
        ..LocalState::default()
    }
}

fn armed(timeout: i64) -> WatchdogState {
    WatchdogState { active: true, timeout: Some(timeout), usable: true }
}

fn idle() -> WatchdogState {
    WatchdogState { active: false, timeout: None, usable: true }
}

fn step(s: &Settings, cluster: Option<ClusterView>, local: LocalState, outcomes: Vec<Outcome>) -> Plan {
    let obs = Observation { now: Time(1_000_000), cluster, local, outcomes, ..Observation::default() };
    Ha::new().step(s, &obs)
}

#[test]
fn leader_arms_with_ttl_minus_safety_margin_right_after_the_refresh() {
    let plan =
        step(&settings(WatchdogMode::Required), Some(cluster(Some("pg1"))), local(PgRole::Primary, idle()), vec![]);
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }, Action::ArmWatchdog { timeout: 25 }]);
}

#[test]
fn armed_leader_only_refreshes_and_the_runtime_keeps_it_alive() {
    let plan =
        step(&settings(WatchdogMode::Automatic), Some(cluster(Some("pg1"))), local(PgRole::Primary, armed(25)), vec![]);
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }]);
}

#[test]
fn ttl_change_rearms_with_the_new_timeout() {
    let mut s = settings(WatchdogMode::Automatic);
    s.ttl = Millis::from_secs(20);
    let plan = step(&s, Some(cluster(Some("pg1"))), local(PgRole::Primary, armed(25)), vec![]);
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }, Action::ArmWatchdog { timeout: 15 }]);
    s.watchdog_safety_margin = -1;
    let plan = step(&s, Some(cluster(Some("pg1"))), local(PgRole::Primary, armed(15)), vec![]);
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }, Action::ArmWatchdog { timeout: 10 }]);
}

#[test]
fn armed_before_promoting() {
    let plan = step(
        &settings(WatchdogMode::Required),
        Some(cluster(Some("pg1"))),
        local(PgRole::Replica, idle()),
        vec![Outcome::LeaderRace { won: true }],
    );
    let arm = plan.actions.iter().position(|a| *a == Action::ArmWatchdog { timeout: 25 });
    let promote = plan.actions.iter().position(|a| *a == Action::Promote);
    assert!(arm.is_some() && promote.is_some() && arm < promote, "{:?}", plan.actions);
}

#[test]
fn pause_disarms_and_does_not_arm() {
    let mut s = settings(WatchdogMode::Automatic);
    s.pause = true;
    let plan = step(&s, Some(cluster(Some("pg1"))), local(PgRole::Primary, armed(25)), vec![]);
    assert_eq!(plan.actions.first(), Some(&Action::DisarmWatchdog));
    let plan = step(&s, Some(cluster(Some("pg1"))), local(PgRole::Primary, idle()), vec![]);
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::ArmWatchdog { .. })));
}

#[test]
fn demotion_disarms() {
    // Someone else holds the key: demote, and the watchdog goes first.
    let plan =
        step(&settings(WatchdogMode::Automatic), Some(cluster(Some("pg2"))), local(PgRole::Primary, armed(25)), vec![]);
    assert_eq!(plan.actions.first(), Some(&Action::DisarmWatchdog));
    assert!(plan.actions.iter().any(|a| matches!(a, Action::Demote { .. })));
    // A failed refresh demotes too.
    let plan = step(
        &settings(WatchdogMode::Automatic),
        Some(cluster(Some("pg1"))),
        local(PgRole::Primary, armed(25)),
        vec![Outcome::LeaderRefresh { ok: false }],
    );
    assert_eq!(plan.status, "demoted self because failed to update leader lock in DCS");
    assert_eq!(plan.actions.first(), Some(&Action::DisarmWatchdog));
}

#[test]
fn dcs_loss_disarms_with_the_offline_demotion() {
    let plan = step(&settings(WatchdogMode::Automatic), None, local(PgRole::Primary, armed(25)), vec![]);
    assert_eq!(plan.actions.first(), Some(&Action::DisarmWatchdog));
}

#[test]
fn replica_never_arms() {
    let plan =
        step(&settings(WatchdogMode::Required), Some(cluster(Some("pg2"))), local(PgRole::Replica, idle()), vec![]);
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::ArmWatchdog { .. } | Action::DisarmWatchdog)));
}

#[test]
fn off_arms_nothing_unless_the_guardian_is_on() {
    let mut s = settings(WatchdogMode::Off);
    let plan = step(&s, Some(cluster(Some("pg1"))), local(PgRole::Primary, idle()), vec![]);
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }]);
    s.guardian = true;
    let plan = step(&s, Some(cluster(Some("pg1"))), local(PgRole::Primary, idle()), vec![]);
    assert_eq!(plan.actions, vec![Action::UpdateLeader { lsn: Some(100) }, Action::ArmWatchdog { timeout: 25 }]);
}

#[test]
fn required_activation_failure_gives_the_key_back_instead_of_promoting() {
    let failed = vec![Outcome::WatchdogArmed { ok: false }];
    let plan =
        step(&settings(WatchdogMode::Required), Some(cluster(Some("pg1"))), local(PgRole::Replica, idle()), failed);
    assert_eq!(plan.status, "Not promoting self because watchdog could not be activated");
    assert_eq!(plan.actions, vec![Action::ReleaseLeader { lsn: Some(100) }]);
}

#[test]
fn required_activation_failure_demotes_a_running_primary() {
    let failed = vec![Outcome::WatchdogArmed { ok: false }];
    let plan =
        step(&settings(WatchdogMode::Required), Some(cluster(Some("pg1"))), local(PgRole::Primary, idle()), failed);
    assert_eq!(plan.status, "Demoting self because watchdog could not be activated");
    assert_eq!(plan.actions, vec![Action::Demote { mode: DemoteMode::Immediate, follow: None }]);
}

#[test]
fn automatic_activation_failure_changes_nothing() {
    let failed = vec![Outcome::WatchdogArmed { ok: false }];
    let plan =
        step(&settings(WatchdogMode::Automatic), Some(cluster(Some("pg1"))), local(PgRole::Primary, armed(25)), failed);
    assert_eq!(plan.status, "no action. I am (pg1), the leader with the lock");
}

#[test]
fn unusable_required_watchdog_keeps_out_of_the_race() {
    let s = settings(WatchdogMode::Required);
    let unusable = WatchdogState { usable: false, ..idle() };
    let plan = step(&s, Some(cluster(None)), local(PgRole::Replica, unusable), vec![]);
    assert_eq!(plan.status, "following a different leader because i am not the healthiest node");
    assert_eq!(plan.log, vec![(LogLevel::Info, "Watchdog device is not usable".to_string())]);
    // Usable: it races.
    let plan = step(&s, Some(cluster(None)), local(PgRole::Replica, idle()), vec![]);
    assert!(plan.actions.iter().any(|a| matches!(a, Action::FetchPeers { .. })), "{plan:?}");
}

#[test]
fn timeout_is_ttl_minus_margin_or_half_ttl() {
    let mut s = settings(WatchdogMode::Automatic);
    assert_eq!(watchdog::timeout(&s), 25);
    s.watchdog_safety_margin = -1;
    assert_eq!(watchdog::timeout(&s), 15);
    s.ttl = Millis::from_secs(20);
    s.watchdog_safety_margin = 0;
    assert_eq!(watchdog::timeout(&s), 20);
}

#[test]
fn required_watchdog_needs_a_timeout_of_at_least_loop_wait() {
    // ttl 20 - margin 11 = 9 s < loop_wait 10: Patroni's negative timing slack makes the device unusable.
    let mut s = settings(WatchdogMode::Required);
    s.ttl = Millis::from_secs(20);
    s.watchdog_safety_margin = 11;
    let plan = step(&s, Some(cluster(None)), local(PgRole::Replica, idle()), vec![]);
    assert_eq!(plan.log, vec![(LogLevel::Info, "Watchdog device is not usable".to_string())]);
}

#[test]
fn guardian_fences_safety_margin_early_but_never_inside_loop_wait_plus_retry_timeout() {
    let mut s = settings(WatchdogMode::Off);
    s.retry_timeout = Millis::from_secs(10);
    // ttl 30, loop_wait 10, retry 10: margin 5 s fits (30 - 10 - 10 = 10).
    assert_eq!(watchdog::guardian_timeout_ms(&s), 25_000);
    // ttl 8, loop_wait 3, retry 2: a 5 s margin would fence a leader refreshing every 3 s; capped at 3 s.
    s.ttl = Millis::from_secs(8);
    s.loop_wait = Millis::from_secs(3);
    s.retry_timeout = Millis::from_secs(2);
    assert_eq!(watchdog::guardian_timeout_ms(&s), 5_000);
    s.watchdog_safety_margin = -1;
    assert_eq!(watchdog::guardian_timeout_ms(&s), 5_000);
    s.ttl = Millis::from_secs(30);
    s.loop_wait = Millis::from_secs(2);
    assert_eq!(watchdog::guardian_timeout_ms(&s), 15_000);
}

/// Beyond Patroni: a running primary that finds its key gone but free (a failsafe leader whose key expired while
/// every member confirmed it) takes it back with the watchdog left armed — not kept alive, not disarmed — so that
/// if its agent dies before it has the key again, the node is still fenced before the confirming members promote.
/// Once it has the key the refresh keeps the watchdog alive as usual; a replica without the key disarms.
#[test]
fn a_primary_retaking_its_free_key_stays_armed() {
    let s = settings(WatchdogMode::Automatic);
    let plan = step(&s, Some(cluster(None)), local(PgRole::Primary, armed(25)), vec![]);
    assert_eq!(plan.status, "acquired session lock as a leader");
    assert_eq!(plan.actions, vec![Action::AcquireLeader]);

    let plan = step(&s, Some(cluster(Some("pg2"))), local(PgRole::Replica, armed(25)), vec![]);
    assert_eq!(plan.actions.first(), Some(&Action::DisarmWatchdog), "{:?}", plan.actions);
}
