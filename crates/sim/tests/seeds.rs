//! Thousands of seeds against the real core: every invariant must hold. A failure prints the first failing seed's
//! trace; replay it with `cargo run -p patroni-sim -- --seed N --trace`.

use std::ops::Range;

use patroni_sim::{run, Options};

fn all_pass(seeds: Range<u64>) {
    let opts = Options::default();
    let failed: Vec<u64> = seeds.filter(|&seed| run(seed, &opts).failed()).collect();
    if let Some(&first) = failed.first() {
        let report = run(first, &Options { trace: true, ..Options::default() });
        panic!("{} seed(s) failed: {failed:?}\n{}", failed.len(), report.explain());
    }
}

// Three ranges so the test harness spreads them over the cores.
#[test]
fn seeds_0_to_1000_hold_every_invariant() {
    all_pass(0..1000);
}

#[test]
fn seeds_1000_to_2000_hold_every_invariant() {
    all_pass(1000..2000);
}

#[test]
fn seeds_2000_to_3000_hold_every_invariant() {
    all_pass(2000..3000);
}

#[test]
fn five_member_clusters_hold_every_invariant() {
    let opts = Options { members: 5, ..Options::default() };
    let failed: Vec<u64> = (0..200).filter(|&seed| run(seed, &opts).failed()).collect();
    assert!(failed.is_empty(), "5-member seeds failed: {failed:?}");
}

#[test]
fn seeds_exercise_failovers() {
    // Guard against a simulator that passes because nothing ever happens.
    let promotions: u32 = (0..200).map(|seed| run(seed, &Options::default()).promotions).sum();
    assert!(promotions > 50, "only {promotions} promotions in 200 seeds");
}

/// Standby clusters: the leader follows a remote primary, failovers and switchovers move that role, and no member
/// is ever writable (checked after every event).
#[test]
fn standby_clusters_are_never_writable() {
    let opts = Options { standby_cluster: true, ..Options::default() };
    let failed: Vec<u64> = (0..500).filter(|&seed| run(seed, &opts).failed()).collect();
    if let Some(&first) = failed.first() {
        let report = run(first, &Options { trace: true, ..opts });
        panic!("{} standby-cluster seed(s) failed: {failed:?}\n{}", failed.len(), report.explain());
    }
}
