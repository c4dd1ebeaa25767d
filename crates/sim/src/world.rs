//! The simulated world: members (HA core + agent loop + PostgreSQL), the DCS, the network, a client, the fault
//! schedule and the invariant checks, all driven by one event queue on a simulated clock.
//!
//! Everything random comes from one [`Rng`] seeded by the caller; events at the same instant run in the order they
//! were scheduled; all collections iterate in index order. Hence one seed, one run.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use patroni_ha::rounds::{Next, Rounds};
use patroni_ha::{
    Action, Busy, ClusterView, ControlState, DataDir, DemoteMode, Divergence, FailoverRequest, Ha, LocalState,
    MemberView, Millis, Observation, Outcome, PeerReply, PeerStatus, PgRole, Plan, Process, ReplicaConn, Settings,
    SyncMode, SyncStandbyNames, SyncView, Tags, Time,
};

use crate::check::{Invariant, Violation};
use crate::dcs::{Dcs, DynConfig, Lease};
use crate::faults::{self, Fault, FaultKind};
use crate::lineage::{Lineage, Pos, Relation};
use crate::mutation::Mutation;
use crate::rng::Rng;

mod agent;
mod chaos;
mod invariants;
mod postgres;
mod slots;

/// Re-steps per loop when the core asks to look again at once (races, peer fetches).
/// When faults may start: the cluster has bootstrapped by then.
const FAULTS_FROM: i64 = 20_000;
const REPLICATION_TICK: i64 = 100;
/// The simulated clock starts at a plausible epoch so scheduled switchovers look like dates.
const EPOCH: i64 = 1_700_000_000_000;

/// Formats simulated milliseconds since the start of the run.
pub fn clock(at: i64) -> String {
    let t = at - EPOCH;
    format!("{}.{:03}s", t / 1000, t.rem_euclid(1000))
}

#[derive(Clone, Debug)]
pub struct Options {
    pub members: usize,
    pub mutation: Option<Mutation>,
    /// Keep a readable trace (slower; for determinism checks and failing seeds).
    pub trace: bool,
    /// Count a member left with a diverged timeline after the quiet period as a convergence failure. The core
    /// never asks for `Rewind`/`Reinitialize` yet, so this is off by default (README, "Core bugs found", 6).
    pub require_rewind: bool,
    /// Allow DCS trouble and agent deaths around pause. A paused leader that cannot read the DCS keeps its cached
    /// `pause`, so it neither demotes nor learns of the resume, while its key expires and the others race: a split
    /// brain Patroni shares. Off by default: the operator then pauses and resumes only when every member has been
    /// reachable for a whole loop, and no DCS fault or agent kill happens while paused or just after resuming.
    /// See README, "Hazards shared with Patroni".
    pub pause_hazards: bool,
    /// Let seeds enable failsafe mode (a quarter of them). Off by default: the core can split the brain in failsafe
    /// mode (README, "Core bugs found", 7).
    pub failsafe: bool,
    /// A scripted run instead of random configuration, tags and faults (latencies still come from the seed).
    pub scenario: Option<Scenario>,
    /// Fence with the guardian instead of a watchdog device: when a leader's refresh is overdue by `ttl -
    /// safety_margin`, a separate process stops PostgreSQL (after a fencing latency) and the agent lives on. It
    /// survives `KillAgent`; `KillAgentAndGuardian` kills both.
    pub guardian: bool,
    /// Run every seed in this synchronous mode (the other draws unchanged); `None`: drawn per seed.
    pub sync_mode: Option<SyncMode>,
    /// Run every member as part of a standby cluster (`standby_cluster` configured): the leader follows a remote
    /// primary as the standby leader, and no member may ever be writable.
    pub standby_cluster: bool,
    /// Model replication slots (world/slots.rs): permanent and member slots, a logical consumer, their invariants.
    pub slots: bool,
}

/// A scripted run, for reproducing one situation whatever the random schedule generator becomes.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub config: DynConfig,
    /// Fault times are simulated milliseconds since the start; the cluster bootstraps in the first few seconds.
    pub faults: Vec<Fault>,
    /// When faults stop (milliseconds since the start).
    pub quiet_at: i64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            members: 3,
            mutation: None,
            trace: false,
            require_rewind: false,
            pause_hazards: false,
            failsafe: false,
            scenario: None,
            guardian: false,
            sync_mode: None,
            standby_cluster: false,
            slots: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    pub violation: Option<Violation>,
    pub steps: u64,
    pub events: u64,
    pub simulated_ms: i64,
    /// Members that ended diverged from the primary and were never rewound.
    pub diverged_at_end: usize,
    pub promotions: u32,
    /// Manual failovers that promoted a candidate without an acknowledged write: allowed, see `complete_promotion`.
    pub manual_failover_losses: u32,
    /// How long after the faults stopped the cluster first converged (`None`: it did not).
    pub recovered_after_ms: Option<i64>,
    pub trace: Vec<String>,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.violation.is_some()
    }

    /// The seed, the violation and the trace, for a failing run.
    pub fn explain(&self) -> String {
        let mut out = format!("seed {} ", self.seed);
        match &self.violation {
            Some(v) => out.push_str(&format!("FAILED: {v}\n")),
            None => out.push_str("passed\n"),
        }
        for line in &self.trace {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// Run one seed to completion.
pub fn run(seed: u64, opts: &Options) -> Report {
    World::new(seed, opts.clone()).run()
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Wake {
        m: usize,
        gen: u64,
    },
    /// The instant a pending DCS read reflects.
    Snapshot {
        m: usize,
        gen: u64,
    },
    Read {
        m: usize,
        gen: u64,
        fails: bool,
    },
    Act {
        m: usize,
        gen: u64,
    },
    JobDone {
        m: usize,
        id: u64,
    },
    LeaseCheck,
    Watchdog {
        m: usize,
        deadline: i64,
    },
    /// The guardian, having found the deadline passed, stops PostgreSQL (`guardian` generation at that time).
    Fence {
        m: usize,
        guardian: u64,
    },
    AgentRestart {
        m: usize,
        gen: u64,
    },
    Write,
    Replicate,
    Fault(usize),
    Heal(usize),
    /// The second stage of a `DegradeLeader` fault.
    CutFromDcs(usize),
    Quiet,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    Sleeping,
    Reading,
    Acting,
}

struct Agent {
    ha: Ha,
    alive: bool,
    fatal: bool,
    /// Bumped whenever pending loop events become stale (kill, early wake).
    gen: u64,
    phase: Phase,
    /// The dynamic configuration as of the last successful DCS read.
    config: DynConfig,
    settings: Settings,
    plan: Plan,
    next: usize,
    /// The rounds of the current cycle (`patroni_ha::rounds`, the runtime's protocol).
    rounds: Rounds,
    /// The cluster view the current cycle last decided on: a failed refresh is decided on it again.
    last_view: Option<ClusterView>,
    outcomes: Vec<Outcome>,
    peers: Option<Vec<PeerStatus>>,
    /// A DCS write in flight: the rest of its latency after it lands, and whether it fails.
    dcs_write: Option<(i64, bool)>,
    /// What the DCS read in flight returned, with the dynamic configuration it carried.
    snapshot: Option<(ClusterView, DynConfig)>,
    /// The last successful read showed a failover key: a demotion then is an operator's, not automatic.
    saw_failover_key: bool,
    /// The leader key was taken while the failover key named us: a manual failover or switchover.
    named_candidate: bool,
    /// ... and the request named no leader: a failover, whose candidate may lack acknowledged commits.
    manual_failover: bool,
    /// The previous leader's last published LSN when we took the key: our own refresh overwrites it at once.
    lsn_when_acquired: Option<u64>,
    watchdog: Option<i64>,
    /// Bumped when the guardian process dies with the agent (`KillAgentAndGuardian`): its pending fence is void.
    guardian_gen: u64,
    /// The last `POST /failsafe` this agent accepted: from whom and when (lost when the agent restarts).
    failsafe_heartbeat: Option<(String, Time)>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Proc {
    Stopped,
    Starting { since: i64 },
    Running,
    Crashed { at: i64 },
}

#[derive(Clone, Debug)]
struct Data {
    sysid: String,
    pos: Pos,
    /// Runs (or last ran) without `standby.signal`.
    primary: bool,
}

#[derive(Clone, Debug)]
enum JobKind {
    Bootstrap,
    /// Standby cluster: a copy of the remote primary, started as the standby leader.
    BootstrapStandby,
    /// Standby cluster: start in recovery following the remote primary (after a stop, or to end a demotion).
    StartStandbyLeader,
    Clone {
        from: Option<usize>,
    },
    StartReplica {
        follow: Option<usize>,
    },
    /// A crashed primary started again as a primary, holding the key.
    StartPrimary,
    /// `manual_failover`: see `Agent::manual_failover`, as of the `Promote` action.
    Promote {
        manual_failover: bool,
    },
    /// The stop half of a demotion; the start half is `StartReplica` with busy `Demoting`.
    DemoteStop {
        mode: DemoteMode,
        follow: Option<usize>,
    },
    /// `None`: from the remote primary of a standby cluster (not modelled: the copy keeps its own history).
    Rewind {
        from: Option<usize>,
    },
    Reinitialize {
        from: Option<usize>,
    },
    Restart,
}

#[derive(Clone, Debug)]
struct Job {
    id: u64,
    kind: JobKind,
    busy: Busy,
}

struct Pg {
    data: Option<Data>,
    proc: Proc,
    upstream: Option<usize>,
    /// Connected to the upstream and receiving (`pg_stat_replication.state = streaming`).
    streaming: bool,
    diverged: bool,
    job: Option<Job>,
    last_failure: Option<Busy>,
    /// `synchronous_standby_names`: the names listed (`*` for any standby), how many of them a commit waits for,
    /// and whether any of them will do (`ANY n`) or the first connected by listed order (`FIRST n`).
    sync_names: Vec<String>,
    sync_num: usize,
    sync_any: bool,
    /// LSNs of commits waiting for a synchronous standby.
    pending: Vec<u64>,
    slow_disk_until: i64,
    stalled_until: i64,
    /// Runs in recovery following the remote primary of the standby cluster (role `standby_leader`).
    standby_leader: bool,
    /// Replication slots (`Options::slots`).
    slots: BTreeMap<String, slots::SimSlot>,
}

impl Pg {
    fn writable(&self) -> bool {
        self.proc == Proc::Running && self.data.as_ref().is_some_and(|d| d.primary)
    }
}

struct Exec {
    ok: bool,
    took: i64,
}

pub struct World {
    seed: u64,
    opts: Options,
    rng: Rng,
    now: i64,
    seq: u64,
    queue: BinaryHeap<Reverse<(i64, u64, Ev)>>,
    names: Vec<String>,
    tags: Vec<Tags>,
    agents: Vec<Agent>,
    pgs: Vec<Pg>,
    dcs: Dcs,
    lineage: Lineage,
    faults: Vec<Fault>,
    /// The member a fault picked when it was applied (the leader at the time), for its later stages and healing.
    fault_target: Vec<Option<usize>>,
    /// The link a fault cut when it was applied, for healing.
    fault_link: Vec<Option<(usize, usize)>>,
    dcs_down: u32,
    dcs_cut: Vec<u32>,
    links: Vec<Vec<u32>>,
    slow_dcs_until: i64,
    /// Until when a paused-era leader may not yet have seen the resume (see `Options::pause_hazards`).
    resume_settles_until: i64,
    /// The last time a member's view of the DCS was disturbed (a DCS fault healed, an agent restarted).
    last_disturbance: i64,
    quiet_at: i64,
    end_at: i64,
    recovered_at: Option<i64>,
    /// The newest write acknowledged by a synchronous standby.
    last_sync_ack: Option<Pos>,
    /// `maximum_lag_on_failover` before the last change, and until when members may still act on it.
    previous_max_lag: (u64, i64),
    next_job: u64,
    steps: u64,
    events: u64,
    promotions: u32,
    manual_failover_losses: u32,
    trace: Vec<String>,
    violation: Option<Violation>,
    /// Replication slots, when modelled.
    slots: Option<slots::SlotWorld>,
}

impl World {
    pub fn new(seed: u64, opts: Options) -> World {
        let mut rng = Rng::new(seed);
        let n = opts.members.max(1);
        let names: Vec<String> = (1..=n).map(|i| format!("pg{i}")).collect();
        let mut tags: Vec<Tags> = (0..n).map(|_| Tags { failover_priority: 1, ..Tags::default() }).collect();
        if n >= 3 && rng.chance(20) {
            let m = rng.range(1, n as u64 - 1) as usize;
            tags[m].nofailover = true;
        }
        if n >= 3 && rng.chance(15) {
            tags[n - 1].replicatefrom = Some(names[n - 2].clone());
        }
        if rng.chance(20) {
            let m = rng.below(n as u64) as usize;
            tags[m].failover_priority = 2;
        }
        let (ttl, loop_wait, retry_timeout) = faults::timeouts(&mut rng);
        let sync_mode = if rng.chance(35) { SyncMode::On } else { SyncMode::Off };
        let config = DynConfig {
            ttl,
            loop_wait,
            retry_timeout,
            maximum_lag_on_failover: faults::max_lag(&mut rng),
            primary_start_timeout: 300_000,
            pause: false,
            sync_mode,
            sync_strict: false,
            sync_node_count: 1,
            // Drawn even when off, so the option does not shift the rest of the seed.
            failsafe_mode: rng.chance(25) && opts.failsafe,
        };
        let window = rng.ms(10_000, 45_000);
        // Some seeds get a single fault: a scenario then plays out without other faults masking it.
        let count = if rng.chance(30) { 1 } else { rng.range(2, 8) as usize };
        let mut faults = faults::generate(&mut rng, n, EPOCH + FAULTS_FROM, EPOCH + FAULTS_FROM + window, count);
        // Room for the last faults to play out before everything heals.
        let quiet_at = EPOCH + FAULTS_FROM + window + 25_000;
        // Drawn last so that adding it did not shift the earlier draws of every seed.
        let mut config = config;
        config.primary_start_timeout = rng.pick(&[0, 5_000, 30_000, 300_000]).unwrap_or(300_000);
        // Synchronous replication variants (quorum, strict, node count, a nosync member) only for runs that ask for a
        // synchronous mode, from a stream of their own: default runs replay exactly as before these were added.
        if let Some(mode) = opts.sync_mode {
            let mut rng = Rng::new(seed ^ 0x5EED_0016_5EED_0016);
            config.sync_mode = mode;
            config.sync_strict = rng.chance(30);
            config.sync_node_count = if n >= 3 && rng.chance(35) { rng.range(2, n as u64 - 1) as usize } else { 1 };
            if n >= 3 && rng.chance(20) {
                let m = rng.range(1, n as u64 - 1) as usize;
                tags[m].nosync = true;
            }
            // Drawn after the variants above, so those stay what they were for every seed.
            faults.extend(faults::sync_changes(&mut rng, n, EPOCH + FAULTS_FROM, EPOCH + FAULTS_FROM + window));
            faults.sort_by_key(|f| f.at);
        }
        // Everything random is drawn above even for a scenario, so adding one never shifts other seeds.
        let (tags, config, faults, quiet_at) = match &opts.scenario {
            Some(sc) => {
                let faults = sc.faults.iter().map(|f| Fault { at: EPOCH + f.at, kind: f.kind.clone() }).collect();
                let plain = (0..n).map(|_| Tags { failover_priority: 1, ..Tags::default() }).collect();
                (plain, sc.config.clone(), faults, EPOCH + sc.quiet_at)
            }
            None => (tags, config, faults, quiet_at),
        };
        let agents = (0..n)
            .map(|m| Agent {
                ha: Ha::new(),
                alive: true,
                fatal: false,
                gen: 0,
                phase: Phase::Sleeping,
                config: config.clone(),
                settings: Settings { name: names[m].clone(), ..Settings::default() },
                plan: Plan::default(),
                next: 0,
                rounds: Rounds::new(),
                last_view: None,
                outcomes: Vec::new(),
                peers: None,
                dcs_write: None,
                snapshot: None,
                saw_failover_key: false,
                named_candidate: false,
                manual_failover: false,
                lsn_when_acquired: None,
                watchdog: None,
                guardian_gen: 0,
                failsafe_heartbeat: None,
            })
            .collect();
        let pgs = (0..n)
            .map(|_| Pg {
                data: None,
                proc: Proc::Stopped,
                upstream: None,
                streaming: false,
                diverged: false,
                job: None,
                last_failure: None,
                sync_names: Vec::new(),
                sync_num: 0,
                sync_any: false,
                pending: Vec::new(),
                slow_disk_until: 0,
                stalled_until: 0,
                standby_leader: false,
                slots: BTreeMap::new(),
            })
            .collect();
        let slot_world = opts.slots.then(|| slots::draw(seed, n, opts.standby_cluster));
        let mut w = World {
            seed,
            opts,
            rng,
            now: EPOCH,
            seq: 0,
            queue: BinaryHeap::new(),
            names,
            tags,
            agents,
            pgs,
            dcs: Dcs::new(config),
            lineage: Lineage::default(),
            fault_target: vec![None; faults.len()],
            fault_link: vec![None; faults.len()],
            faults,
            dcs_down: 0,
            dcs_cut: vec![0; n],
            links: vec![vec![0; n]; n],
            slow_dcs_until: 0,
            resume_settles_until: 0,
            last_disturbance: 0,
            quiet_at,
            end_at: quiet_at,
            recovered_at: None,
            last_sync_ack: None,
            previous_max_lag: (0, 0),
            next_job: 0,
            steps: 0,
            events: 0,
            promotions: 0,
            manual_failover_losses: 0,
            trace: Vec::new(),
            violation: None,
            slots: slot_world,
        };
        w.note(None, |w| {
            let c = &w.dcs.config;
            format!(
                "ttl={} loop_wait={} retry_timeout={} maximum_lag_on_failover={} sync={:?} strict={} node_count={} \
                 failsafe={} tags={:?}",
                c.ttl,
                c.loop_wait,
                c.retry_timeout,
                c.maximum_lag_on_failover,
                c.sync_mode,
                c.sync_strict,
                c.sync_node_count,
                c.failsafe_mode,
                w.tags
            )
        });
        for m in 0..n {
            let at = EPOCH + w.rng.ms(0, 500);
            w.schedule(at, Ev::Wake { m, gen: 0 });
        }
        for i in 0..w.faults.len() {
            let at = w.faults[i].at;
            w.schedule(at, Ev::Fault(i));
        }
        w.schedule(quiet_at, Ev::Quiet);
        w.schedule(EPOCH + 1, Ev::Write);
        w.schedule(EPOCH + 1, Ev::Replicate);
        w
    }

    pub fn run(mut self) -> Report {
        while let Some(Reverse((at, _, ev))) = self.queue.pop() {
            if at > self.end_at {
                break;
            }
            self.now = at;
            self.events += 1;
            self.handle(ev);
            if self.violation.is_none() {
                self.check_single_primary();
            }
            if self.violation.is_none() && self.opts.standby_cluster {
                self.check_standby_never_writable();
            }
            if self.violation.is_some() {
                break;
            }
        }
        if self.violation.is_none() {
            self.now = self.end_at;
            self.check_convergence();
        }
        let diverged_at_end = self.pgs.iter().filter(|p| p.diverged).count();
        Report {
            seed: self.seed,
            violation: self.violation,
            steps: self.steps,
            events: self.events,
            simulated_ms: self.now - EPOCH,
            diverged_at_end,
            promotions: self.promotions,
            manual_failover_losses: self.manual_failover_losses,
            recovered_after_ms: self.recovered_at.map(|t| t - self.quiet_at),
            trace: self.trace,
        }
    }

    fn schedule(&mut self, at: i64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    /// Adds a trace line; the closure keeps formatting off the fast path when tracing is off.
    fn note(&mut self, m: Option<usize>, line: impl FnOnce(&World) -> String) {
        if self.opts.trace {
            let who = m.and_then(|m| self.names.get(m)).map_or("--", String::as_str);
            let text = format!("{:>10} {who:<4} {}", clock(self.now), line(self));
            self.trace.push(text);
        }
    }

    fn violate(&mut self, invariant: Invariant, detail: String) {
        if self.violation.is_none() {
            let v = Violation { at: self.now, invariant, detail };
            if self.opts.trace {
                self.trace.push(v.to_string());
            }
            self.violation = Some(v);
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Wake { m, gen } => {
                if self.agents[m].alive && self.agents[m].gen == gen && self.agents[m].phase == Phase::Sleeping {
                    self.start_read(m, 0);
                }
            }
            Ev::Snapshot { m, gen } => {
                if self.agents[m].alive && self.agents[m].gen == gen {
                    self.take_snapshot(m);
                }
            }
            Ev::Read { m, gen, fails } => {
                if self.agents[m].alive && self.agents[m].gen == gen {
                    self.observe_and_step(m, fails);
                }
            }
            Ev::Act { m, gen } => {
                if self.agents[m].alive && self.agents[m].gen == gen {
                    self.act(m);
                }
            }
            Ev::JobDone { m, id } => self.job_done(m, id),
            Ev::LeaseCheck => self.lease_check(),
            Ev::Watchdog { m, deadline } => self.watchdog_fires(m, deadline),
            Ev::Fence { m, guardian } => self.guardian_fences(m, guardian),
            Ev::AgentRestart { m, gen } => {
                if !self.agents[m].alive && !self.agents[m].fatal && self.agents[m].gen == gen {
                    self.restart_agent(m);
                }
            }
            Ev::Write => self.client_write(),
            Ev::Replicate => self.replicate(),
            Ev::Fault(i) => self.apply_fault(i),
            Ev::Heal(i) => self.heal(i),
            Ev::CutFromDcs(i) => {
                if let Some(m) = self.fault_target.get(i).copied().flatten() {
                    if !self.opts.pause_hazards && (self.dcs.config.pause || self.now < self.resume_settles_until) {
                        // Same rule as for the other DCS faults: not while paused (see `Options::pause_hazards`).
                        self.cut_links(m, -1);
                        self.fault_target[i] = None;
                        self.note(Some(m), |_| "DCS cut skipped: paused (pause_hazards off)".to_string());
                    } else if self.now < self.quiet_at {
                        self.dcs_cut[m] += 1;
                        self.note(Some(m), |_| "cut from the DCS".to_string());
                    }
                }
            }
            Ev::Quiet => self.quiet(),
        }
    }

    // ----- reachability -----

    fn dcs_reachable(&self, m: usize) -> bool {
        self.dcs_down == 0 && self.dcs_cut[m] == 0
    }

    fn link(&self, a: usize, b: usize) -> bool {
        a == b || self.links[a][b] == 0
    }

    /// How long a DCS request takes and whether it fails (unreachable, or slower than `retry_timeout`).
    fn dcs_latency(&mut self, m: usize) -> (i64, bool) {
        let retry = self.agents[m].config.retry_timeout as i64;
        if !self.dcs_reachable(m) {
            return (retry, true);
        }
        if self.now < self.slow_dcs_until {
            let t = self.rng.ms(1, retry * 3 / 2);
            return if t > retry { (retry, true) } else { (t, false) };
        }
        (self.rng.ms(1, 5), false)
    }

    fn rest_timeout(&self, m: usize) -> i64 {
        (self.agents[m].config.retry_timeout as i64).min(2_000)
    }
}
