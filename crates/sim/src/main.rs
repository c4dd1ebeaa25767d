//! `sim`: run many seeds of the HA simulator and report failures and speed.
//!
//! ```text
//! cargo run -p patroni-sim --release -- --seeds 100000
//! cargo run -p patroni-sim -- --seed 1234 --trace        # replay one seed with its trace
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use patroni_sim::{run, Mutation, Options};

#[derive(Parser, Debug)]
#[command(name = "sim", about = "Deterministic simulation of the patroni-rs HA core")]
struct Args {
    /// How many seeds to run, starting at --start.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Run exactly this seed (implies --seeds 1).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the event trace of every run (use with --seed).
    #[arg(long)]
    trace: bool,
    /// Members per cluster.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Run a deliberately broken core: forget-demote-on-dcs-loss, skip-lag-check, ignore-other-leader, no-watchdog,
    /// ignore-nofailover, ignore-pause, never-follow, ignore-sync-key.
    #[arg(long)]
    mutation: Option<String>,
    /// Treat a member left diverged (never rewound) as a convergence failure.
    #[arg(long)]
    require_rewind: bool,
    /// Allow DCS faults and agent kills around pause (a known split-brain hazard, shared with Patroni).
    #[arg(long)]
    pause_hazards: bool,
    /// Let a quarter of the seeds run in failsafe mode (core bug 7: split brain, fixed but for one window).
    #[arg(long)]
    failsafe: bool,
    /// Fence with the guardian (a process that stops PostgreSQL) instead of a watchdog device.
    #[arg(long)]
    guardian: bool,
    /// Run standby clusters: the leader follows a remote primary; no member may ever be writable.
    #[arg(long)]
    standby_cluster: bool,
    /// Model replication slots: permanent and member slots, a logical consumer, no gap after a failover.
    #[arg(long)]
    slots: bool,
    /// Stop at the first failing seed.
    #[arg(long)]
    fail_fast: bool,
    /// Run every seed in this synchronous mode: off, on or quorum (default: drawn per seed).
    #[arg(long)]
    sync_mode: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mutation = match args.mutation.as_deref().map(|m| (m, Mutation::parse(m))) {
        None => None,
        Some((_, Some(m))) => Some(m),
        Some((name, None)) => {
            eprintln!("unknown mutation {name:?}; known: {:?}", Mutation::ALL.map(Mutation::name));
            return ExitCode::from(2);
        }
    };
    let sync_mode = match args.sync_mode.as_deref() {
        None => None,
        Some("off") => Some(patroni_ha::SyncMode::Off),
        Some("on") => Some(patroni_ha::SyncMode::On),
        Some("quorum") => Some(patroni_ha::SyncMode::Quorum),
        Some(other) => {
            eprintln!("unknown --sync-mode {other:?}; known: off, on, quorum");
            return ExitCode::from(2);
        }
    };
    let opts = Options {
        members: args.members,
        mutation,
        trace: args.trace,
        require_rewind: args.require_rewind,
        pause_hazards: args.pause_hazards,
        failsafe: args.failsafe,
        scenario: None,
        guardian: args.guardian,
        sync_mode,
        standby_cluster: args.standby_cluster,
        slots: args.slots,
    };
    let (start, count) = match args.seed {
        Some(s) => (s, 1),
        None => (args.start, args.seeds),
    };
    // Written through a lock and checked: a closed pipe (`sim ... | head`) ends the run instead of panicking.
    let mut out = std::io::stdout().lock();
    let began = Instant::now();
    let (mut steps, mut events, mut simulated, mut failures, mut diverged) = (0u64, 0u64, 0i64, 0u64, 0u64);
    let mut manual_losses = 0u64;
    let mut ran = 0u64;
    let mut recoveries: Vec<i64> = Vec::new();
    for seed in start..start.saturating_add(count) {
        let report = run(seed, &opts);
        ran += 1;
        recoveries.extend(report.recovered_after_ms);
        steps += report.steps;
        events += report.events;
        simulated += report.simulated_ms;
        diverged += report.diverged_at_end as u64;
        manual_losses += u64::from(report.manual_failover_losses);
        let mut written = Ok(());
        if args.trace {
            written = write!(out, "{}", report.explain());
        }
        if let Some(v) = &report.violation {
            failures += 1;
            if !args.trace {
                written = writeln!(
                    out,
                    "seed {seed} FAILED: {v}  (replay: cargo run -p patroni-sim -- --seed {seed} --trace)"
                );
            }
            if args.fail_fast {
                break;
            }
        }
        if written.is_err() {
            return ExitCode::FAILURE;
        }
    }
    let secs = began.elapsed().as_secs_f64().max(1e-9);
    let _ = writeln!(
        out,
        "{ran} seeds, {failures} failed, {steps} core steps, {events} events, {:.0} simulated hours, \
         {diverged} members left diverged, {manual_losses} manual failovers lost acknowledged writes (allowed); \
         {:.2}s wall, {:.0} steps/s, {:.0} events/s",
        simulated as f64 / 3_600_000.0,
        secs,
        steps as f64 / secs,
        events as f64 / secs,
    );
    recoveries.sort_unstable();
    let pct =
        |p: usize| recoveries.get((recoveries.len().saturating_sub(1)) * p / 100).map_or(0.0, |ms| *ms as f64 / 1000.0);
    let _ = writeln!(
        out,
        "recovery after faults stop: p50 {:.1}s, p99 {:.1}s, max {:.1}s ({} runs converged)",
        pct(50),
        pct(99),
        pct(100),
        recoveries.len()
    );
    if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
