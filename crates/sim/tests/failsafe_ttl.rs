//! A failsafe leader cut off from the DCS cannot see the configuration lower `ttl`: it keeps fencing itself by the
//! ttl it last read. Replicas that held back only by the new, lower ttl after its last heartbeat promoted next to it
//! (the open finding "failsafe window, 3 in 20,000 seeds": seeds 2192, 6142 and 9019 of `--failsafe`). They now
//! hold back by the longest ttl they have seen.

use patroni_sim::{run, Invariant, Options};

#[test]
fn a_lowered_ttl_does_not_shorten_the_failsafe_hold() {
    let opts = Options { failsafe: true, ..Options::default() };
    for seed in [2192, 6142, 9019] {
        let report = run(seed, &opts);
        if let Some(v) = &report.violation {
            assert!(v.invariant != Invariant::SplitBrain, "seed {seed}: {v}");
        }
    }
}
