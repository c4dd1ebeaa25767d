//! Replication slots (`Options::slots`): members run the core's slot plan after each loop, the leader publishes
//! `status`, a logical consumer reads the permanent logical slot. "A promoted member's copy of the logical slot is
//! never ahead of what the consumer confirmed" and "once converged, the primary has every permanent slot and every
//! streaming member its slot upstream" hold, and the broken variants are caught. CI runs a sample;
//! `sim --seeds 20000 --slots` (release) is the full run.

use patroni_sim::{run, Invariant, Mutation, Options};

#[test]
fn slot_seeds_hold_every_invariant() {
    let opts = Options { slots: true, require_rewind: true, ..Options::default() };
    let failed: Vec<u64> = (0..300).filter(|&seed| run(seed, &opts).failed()).collect();
    assert!(failed.is_empty(), "seeds failed with slots: {failed:?}");
}

fn first_caught(mutation: Mutation) -> Option<(u64, Invariant)> {
    let opts = Options { slots: true, mutation: Some(mutation), ..Options::default() };
    (0..2000).find_map(|seed| run(seed, &opts).violation.map(|v| (seed, v.invariant)))
}

#[test]
fn advancing_replicas_past_the_consumer_is_caught() {
    let caught = first_caught(Mutation::SlotPositionIsLeaderLsn);
    assert!(matches!(caught, Some((_, Invariant::SlotGap))), "{caught:?}");
}

#[test]
fn missing_member_slots_are_caught() {
    let caught = first_caught(Mutation::SkipMemberSlots);
    assert!(matches!(caught, Some((_, Invariant::Convergence))), "{caught:?}");
}
