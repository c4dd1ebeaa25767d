//! Failsafe mode (core bug 7). The leader loses the DCS but every member confirms it over REST, so it stays primary
//! while its leader key (and its member key) expire. The others must never promote next to it: a leader race asks
//! the members of the `failsafe` key too, a named failover candidate first checks that no peer still runs as
//! primary, and the former leader of a switchover is ignored by the race only while it does not run as primary.
//! When the DCS answers again, the primary takes its key back and drops the failover request, as in Patroni; before
//! that it deferred to the named candidate, which waited for it: no leader key ever again (72/72 runs).

use patroni_ha::SyncMode;
use patroni_sim::dcs::DynConfig;
use patroni_sim::faults::{Fault, FaultKind};
use patroni_sim::{run, Options, Scenario};

fn failsafe_config() -> DynConfig {
    DynConfig {
        ttl: 12_000,
        loop_wait: 2_000,
        retry_timeout: 3_000,
        maximum_lag_on_failover: 16 << 20,
        primary_start_timeout: 300_000,
        pause: false,
        sync_mode: SyncMode::Off,
        sync_strict: false,
        sync_node_count: 1,
        failsafe_mode: true,
    }
}

/// Runs the scenario made of `faults(delay)` for delays 0..=16 s and 8 seeds each; panics listing every violation.
fn assert_no_violation(faults: impl Fn(i64) -> Vec<Fault>) {
    let mut failures = Vec::new();
    for delay in (0..=16_000).step_by(2_000) {
        let scenario = Scenario { config: failsafe_config(), faults: faults(delay), quiet_at: 80_000 };
        for seed in 0..8 {
            let report = run(seed, &Options { scenario: Some(scenario.clone()), ..Options::default() });
            if let Some(v) = report.violation {
                failures.push(format!("delay {delay} seed {seed}: {v}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// The leader loses the DCS at `at` for 40 s (it can still reach its peers).
fn cut_leader_from_dcs(at: i64) -> Fault {
    Fault { at, kind: FaultKind::CutLeaderFromDcs { lasts: 40_000 } }
}

#[test]
fn a_failsafe_leader_is_never_joined_by_a_second_primary() {
    assert_no_violation(|delay| vec![cut_leader_from_dcs(20_000 + delay)]);
}

#[test]
fn a_failover_candidate_never_promotes_next_to_a_failsafe_leader() {
    assert_no_violation(|delay| {
        vec![
            cut_leader_from_dcs(20_000),
            Fault {
                at: 20_500 + delay / 4,
                kind: FaultKind::FailoverKey { switchover: false, with_candidate: true, scheduled_in: None },
            },
        ]
    });
}

#[test]
fn a_failsafe_leader_losing_one_peer_is_never_joined_by_a_second_primary() {
    assert_no_violation(|delay| {
        vec![
            cut_leader_from_dcs(20_000),
            Fault { at: 20_000 + delay, kind: FaultKind::CutLeaderFromOnePeer { lasts: 40_000 } },
        ]
    });
}

/// A switchover requested against the failsafe leader: the race leaves the former leader out, and used to leave it
/// out even while it still ran as primary.
#[test]
fn a_switchover_away_from_a_failsafe_leader_never_makes_a_second_primary() {
    assert_no_violation(|delay| {
        vec![
            cut_leader_from_dcs(20_000),
            Fault {
                at: 20_500 + delay / 4,
                kind: FaultKind::FailoverKey { switchover: true, with_candidate: false, scheduled_in: None },
            },
        ]
    });
}
