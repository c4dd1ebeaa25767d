//! The simulator can fail: deliberately broken variants of the core are caught within 1000 seeds, by the
//! invariant that names what they break.

use patroni_sim::{run, Invariant, Mutation, Options};

fn first_caught(mutation: Mutation) -> Option<(u64, Invariant)> {
    first_caught_with(mutation, Options::default())
}

fn first_caught_with(mutation: Mutation, opts: Options) -> Option<(u64, Invariant)> {
    let opts = Options { mutation: Some(mutation), ..opts };
    (0..1000).find_map(|seed| run(seed, &opts).violation.map(|v| (seed, v.invariant)))
}

#[test]
fn forgetting_to_demote_on_lost_dcs_is_caught_as_split_brain() {
    let caught = first_caught(Mutation::ForgetDemoteOnDcsLoss);
    assert!(matches!(caught, Some((_, Invariant::SplitBrain))), "{caught:?}");
}

#[test]
fn skipping_the_lag_check_is_caught_by_the_lag_bound() {
    let caught = first_caught(Mutation::SkipLagCheck);
    assert!(matches!(caught, Some((_, Invariant::LagBound))), "{caught:?}");
}

#[test]
fn running_without_a_watchdog_is_caught_as_split_brain() {
    let caught = first_caught(Mutation::NoWatchdog);
    assert!(matches!(caught, Some((_, Invariant::SplitBrain))), "{caught:?}");
}

#[test]
fn ignoring_nofailover_is_caught() {
    let caught = first_caught(Mutation::IgnoreNofailover);
    assert!(matches!(caught, Some((_, Invariant::NofailoverPromoted))), "{caught:?}");
}

#[test]
fn ignoring_pause_is_caught() {
    // By default nothing that would make a core act automatically (lost DCS, dead agents) happens while paused:
    // those are the pause hazards, allowed here.
    let caught = first_caught_with(Mutation::IgnorePause, Options { pause_hazards: true, ..Options::default() });
    assert!(matches!(caught, Some((_, Invariant::PauseViolated))), "{caught:?}");
}

#[test]
fn replicas_that_never_follow_are_caught_by_convergence() {
    let caught = first_caught(Mutation::NeverFollow);
    assert!(matches!(caught, Some((_, Invariant::Convergence))), "{caught:?}");
}

#[test]
fn ignoring_standby_cluster_is_caught_as_a_writable_standby() {
    let caught =
        first_caught_with(Mutation::IgnoreStandbyCluster, Options { standby_cluster: true, ..Options::default() });
    assert!(matches!(caught, Some((_, Invariant::StandbyWritable))), "{caught:?}");
}
