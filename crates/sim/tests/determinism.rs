//! One seed, one run: a failing seed must replay identically.

use patroni_sim::{run, Options};

fn traced() -> Options {
    Options { trace: true, ..Options::default() }
}

#[test]
fn a_seed_replays_identically() {
    for seed in [0, 7, 4242, u64::MAX] {
        let a = run(seed, &traced());
        let b = run(seed, &traced());
        assert!(a.trace.len() > 10, "seed {seed}: trace too short to mean anything");
        assert_eq!(a.trace, b.trace, "seed {seed} diverged between two runs");
        assert_eq!((a.steps, a.events, a.violation), (b.steps, b.events, b.violation));
    }
}

#[test]
fn tracing_does_not_change_the_run() {
    for seed in 0..20 {
        let quiet = run(seed, &Options::default());
        let loud = run(seed, &traced());
        assert_eq!((quiet.steps, quiet.events, quiet.simulated_ms), (loud.steps, loud.events, loud.simulated_ms));
    }
}

#[test]
fn different_seeds_differ() {
    assert_ne!(run(1, &traced()).trace, run(2, &traced()).trace);
}

#[test]
fn a_failing_seed_explains_itself() {
    let opts = Options { mutation: Some(patroni_sim::Mutation::NoWatchdog), trace: true, ..Options::default() };
    let report = (0..1000).map(|seed| run(seed, &opts)).find(|r| r.failed()).expect("no-watchdog is caught");
    let text = report.explain();
    assert!(text.starts_with(&format!("seed {} FAILED:", report.seed)), "{text}");
    assert!(text.contains("VIOLATION split brain"), "{text}");
    assert!(text.contains("FAULT "), "the trace shows the faults: {text}");
}
