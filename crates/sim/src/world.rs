//! The simulated world: members (HA core + agent loop + PostgreSQL), the DCS, the network, a client, the fault
//! schedule and the invariant checks, all driven by one event queue on a simulated clock.
//!
//! Everything random comes from one [`Rng`] seeded by the caller; events at the same instant run in the order they
//! were scheduled; all collections iterate in index order. Hence one seed, one run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use patroni_ha::{
    Action, Busy, DataDir, DemoteMode, FailoverRequest, Ha, LocalState, MemberView, Millis, Observation, Outcome,
    PeerReply, PeerStatus, PgRole, Plan, Process, ReplicaConn, Settings, SyncMode, Tags, Time,
};

use crate::check::{Invariant, Violation};
use crate::dcs::{Dcs, DynConfig, Lease};
use crate::faults::{self, Fault, FaultKind};
use crate::lineage::{Lineage, Pos, Relation};
use crate::mutation::Mutation;
use crate::rng::Rng;

/// The core's status when it demotes after a failed leader-key refresh (matched by the core bug 2 workaround).
const REFRESH_FAILED_DEMOTE: &str = "demoted self because failed to update leader lock in DCS";
/// Re-steps per loop when the core asks to look again at once (races, peer fetches).
const MAX_RESTEPS: u32 = 5;
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
    /// never asks for `Rewind`/`Reinitialize` yet, so this is off by default (see README, "Known gaps").
    pub require_rewind: bool,
    /// Run the core without the simulator's workarounds for the core bugs it found (README, "Core bugs found"):
    /// (3) at the start of the quiet
    /// period the operator does not delete a switchover key left behind by a leader that lost its key (by default
    /// they do, else a sync-mode cluster can stay leaderless forever); (2) a paused leader whose refresh failed is
    /// allowed to demote (by default the demotion is dropped, as Patroni does); (5) in synchronous mode a named
    /// failover candidate outside the `sync` key may take the key (by default every member is shown the request
    /// without that candidate, as Patroni treats it).
    pub faithful: bool,
    /// Allow DCS trouble and agent deaths around pause. A paused leader that cannot read the DCS keeps its cached
    /// `pause`, so it neither demotes nor learns of the resume, while its key expires and the others race: a split
    /// brain Patroni shares. Off by default: the operator then pauses and resumes only when every member has been
    /// reachable for a whole loop, and no DCS fault or agent kill happens while paused or just after resuming.
    /// See README, "Hazards".
    pub pause_hazards: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            members: 3,
            mutation: None,
            trace: false,
            require_rewind: false,
            faithful: false,
            pause_hazards: false,
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
    resteps: u32,
    outcomes: Vec<Outcome>,
    peers: Option<Vec<PeerStatus>>,
    /// The last successful read showed a failover key: a demotion then is an operator's, not automatic.
    saw_failover_key: bool,
    /// The leader key was taken while the failover key named us: a manual failover.
    named_candidate: bool,
    /// The previous leader's last published LSN when we took the key: our own refresh overwrites it at once.
    lsn_when_acquired: Option<u64>,
    watchdog: Option<i64>,
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
    Clone {
        from: Option<usize>,
    },
    StartReplica {
        follow: Option<usize>,
    },
    StartPrimary,
    Promote,
    /// The stop half of a demotion; the start half is `StartReplica` with busy `Demoting`.
    DemoteStop {
        mode: DemoteMode,
        follow: Option<usize>,
    },
    Rewind {
        from: usize,
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
    sync_names: Vec<String>,
    /// LSNs of commits waiting for a synchronous standby.
    pending: Vec<u64>,
    slow_disk_until: i64,
    stalled_until: i64,
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
    /// The newest write acknowledged by a synchronous standby.
    last_sync_ack: Option<Pos>,
    /// `maximum_lag_on_failover` before the last change, and until when members may still act on it.
    previous_max_lag: (u64, i64),
    next_job: u64,
    steps: u64,
    events: u64,
    promotions: u32,
    trace: Vec<String>,
    violation: Option<Violation>,
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
            pause: false,
            sync_mode,
            failsafe_mode: rng.chance(25),
        };
        let window = rng.ms(10_000, 45_000);
        // Some seeds get a single fault: a scenario then plays out without other faults masking it.
        let count = if rng.chance(30) { 1 } else { rng.range(2, 8) as usize };
        let faults = faults::generate(&mut rng, n, EPOCH + FAULTS_FROM, EPOCH + FAULTS_FROM + window, count);
        // Room for the last faults to play out before everything heals.
        let quiet_at = EPOCH + FAULTS_FROM + window + 25_000;
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
                resteps: 0,
                outcomes: Vec::new(),
                peers: None,
                saw_failover_key: false,
                named_candidate: false,
                lsn_when_acquired: None,
                watchdog: None,
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
                pending: Vec::new(),
                slow_disk_until: 0,
                stalled_until: 0,
            })
            .collect();
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
            faults,
            dcs_down: 0,
            dcs_cut: vec![0; n],
            links: vec![vec![0; n]; n],
            slow_dcs_until: 0,
            resume_settles_until: 0,
            last_disturbance: 0,
            quiet_at,
            end_at: quiet_at,
            last_sync_ack: None,
            previous_max_lag: (0, 0),
            next_job: 0,
            steps: 0,
            events: 0,
            promotions: 0,
            trace: Vec::new(),
            violation: None,
        };
        w.note(None, |w| {
            let c = &w.dcs.config;
            format!(
                "ttl={} loop_wait={} retry_timeout={} maximum_lag_on_failover={} sync={:?} failsafe={} tags={:?}",
                c.ttl, c.loop_wait, c.retry_timeout, c.maximum_lag_on_failover, c.sync_mode, c.failsafe_mode, w.tags
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

    // ----- the agent loop -----

    fn start_read(&mut self, m: usize, after: i64) {
        let (took, fails) = self.dcs_latency(m);
        let gen = self.agents[m].gen;
        self.agents[m].phase = Phase::Reading;
        self.schedule(self.now + after + took, Ev::Read { m, gen, fails });
    }

    fn observe_and_step(&mut self, m: usize, fails: bool) {
        let cluster = if !fails && self.dcs_reachable(m) {
            self.publish_member(m);
            self.agents[m].config = self.dcs.config.clone();
            Some(self.dcs.view(self.now, &self.names))
        } else {
            None
        };
        let mut cluster = cluster;
        if let Some(c) = cluster.as_mut().filter(|_| !self.opts.faithful) {
            if self.agents[m].config.sync_mode != SyncMode::Off {
                // Core bug 5 workaround, emulating the fix: in synchronous mode a candidate outside the `sync` key
                // does not hold every acknowledged commit, so every member treats it as no candidate at all
                // (Patroni: only synchronous nodes may race in a synchronous-mode failover).
                let sync = c.sync.clone();
                if let Some(f) = c.failover.as_mut() {
                    let allowed = |n: &str| sync.leader.as_deref() == Some(n) || sync.is_sync_standby(n);
                    if f.candidate.as_deref().is_some_and(|n| !allowed(n)) {
                        f.candidate = None;
                    }
                }
            }
        }
        let settings = self.settings(m);
        let local = self.local_state(m);
        let agent = &mut self.agents[m];
        agent.settings = settings.clone();
        let obs = Observation {
            now: Time(self.now),
            cluster,
            local,
            peers: agent.peers.take(),
            outcomes: std::mem::take(&mut agent.outcomes),
        };
        let mut plan = agent.ha.step(&settings, &obs);
        self.steps += 1;
        if !self.opts.faithful && self.agents[m].config.pause && plan.status == REFRESH_FAILED_DEMOTE {
            // Core bug 2 workaround, emulating the fix: paused, a failed refresh must not demote (Patroni: "continue
            // to run as primary after failing to update leader lock in DCS").
            plan.actions.retain(|a| !matches!(a, Action::Demote { .. }));
            plan.status = "PAUSE: continue to run as primary after failing to update leader lock in DCS".into();
        }
        if let Some(mutation) = self.opts.mutation {
            mutation.plan(&obs, &mut plan);
        }
        let agent = &mut self.agents[m];
        if let Some(c) = &obs.cluster {
            agent.saw_failover_key = c.failover.is_some();
        }
        if agent.config.pause || !agent.ha.holds_lock() {
            agent.watchdog = None;
        }
        agent.plan = plan;
        agent.next = 0;
        agent.phase = Phase::Acting;
        let gen = agent.gen;
        self.note(Some(m), |w| {
            let p = &w.agents[m].plan;
            let dcs = if obs.cluster.is_some() { "" } else { "[no DCS] " };
            let again = if p.again { " (again)" } else { "" };
            format!("{dcs}{} | {:?}{again}", p.status, p.actions)
        });
        self.schedule(self.now, Ev::Act { m, gen });
    }

    fn act(&mut self, m: usize) {
        let next = self.agents[m].next;
        let Some(action) = self.agents[m].plan.actions.get(next).cloned() else {
            self.finish_loop(m, 0);
            return;
        };
        let r = self.execute(m, &action);
        if !r.ok {
            self.note(Some(m), |_| format!("action failed: {action:?}"));
        }
        let agent = &mut self.agents[m];
        if r.ok && next + 1 < agent.plan.actions.len() {
            agent.next = next + 1;
            let gen = agent.gen;
            self.schedule(self.now + r.took, Ev::Act { m, gen });
        } else {
            self.finish_loop(m, r.took);
        }
    }

    /// The plan is done (or stopped at a failure): look again at once, or sleep.
    fn finish_loop(&mut self, m: usize, after: i64) {
        let agent = &mut self.agents[m];
        // A failed refresh must be acted on now, not a loop later: that is when the key may be lost.
        let refresh_failed = agent.outcomes.contains(&Outcome::LeaderRefresh { ok: false });
        if (agent.plan.again || refresh_failed) && agent.resteps < MAX_RESTEPS {
            agent.resteps += 1;
            self.start_read(m, after);
            return;
        }
        agent.resteps = 0;
        agent.phase = Phase::Sleeping;
        let wake = self.now + after;
        let mut sleep = agent.config.loop_wait as i64;
        if let Some(Time(at)) = agent.plan.wake_at {
            // Never spin: a due wake-up still waits a little.
            sleep = sleep.min((at - wake).max(100));
        }
        let gen = agent.gen;
        self.schedule(wake + sleep, Ev::Wake { m, gen });
    }

    /// Cut a sleeping agent's sleep short (DCS watch, PostgreSQL process watcher).
    fn wake(&mut self, m: usize) {
        let agent = &mut self.agents[m];
        if agent.alive && agent.phase == Phase::Sleeping {
            agent.gen += 1;
            let gen = agent.gen;
            let at = self.now + self.rng.ms(1, 10);
            self.schedule(at, Ev::Wake { m, gen });
        }
    }

    /// The leader key changed: everybody watching it (and able to hear about it) wakes up.
    fn leader_key_changed(&mut self) {
        for m in 0..self.agents.len() {
            if self.dcs_reachable(m) {
                self.wake(m);
            }
        }
    }

    fn settings(&self, m: usize) -> Settings {
        let c = &self.agents[m].config;
        let mut s = Settings {
            name: self.names[m].clone(),
            ttl: Millis(c.ttl),
            loop_wait: Millis(c.loop_wait),
            retry_timeout: Millis(c.retry_timeout),
            maximum_lag_on_failover: c.maximum_lag_on_failover,
            primary_start_timeout: Millis::from_secs(300),
            sync_mode: c.sync_mode,
            pause: c.pause,
            failsafe_mode: c.failsafe_mode,
            use_pg_rewind: true,
            tags: self.tags[m].clone(),
            ..Settings::default()
        };
        if let Some(mutation) = self.opts.mutation {
            mutation.settings(&mut s);
        }
        s
    }

    fn role(&self, m: usize) -> PgRole {
        let pg = &self.pgs[m];
        match (&pg.data, pg.proc) {
            (Some(d), Proc::Running) if d.primary => PgRole::Primary,
            (Some(_), Proc::Running) => PgRole::Replica,
            _ => PgRole::Unknown,
        }
    }

    fn timeline(&self, m: usize) -> Option<u32> {
        self.pgs[m].data.as_ref().map(|d| self.lineage.timeline(d.pos.fork))
    }

    fn lsn(&self, m: usize) -> Option<u64> {
        self.pgs[m].data.as_ref().map(|d| d.pos.lsn)
    }

    fn pos(&self, m: usize) -> Option<Pos> {
        self.pgs[m].data.as_ref().map(|d| d.pos)
    }

    fn publish_member(&mut self, m: usize) {
        let view = MemberView {
            name: self.names[m].clone(),
            role: match self.role(m) {
                PgRole::Unknown => PgRole::Replica,
                r => r,
            },
            running: self.pgs[m].proc == Proc::Running,
            lsn: self.lsn(m),
            timeline: self.timeline(m),
            tags: self.tags[m].clone(),
        };
        let expires = self.now + self.agents[m].config.ttl as i64;
        self.dcs.members.insert(m, (view, expires));
    }

    fn local_state(&self, m: usize) -> LocalState {
        let pg = &self.pgs[m];
        let replication = if self.role(m) == PgRole::Primary {
            let first_sync = self.first_sync_standby(m);
            (0..self.pgs.len())
                .filter(|&r| r != m && self.pgs[r].upstream == Some(m) && self.role(r) == PgRole::Replica)
                .map(|r| ReplicaConn {
                    name: self.names[r].clone(),
                    streaming: self.pgs[r].streaming,
                    synchronous: first_sync == Some(r),
                    lsn: self.lsn(r),
                })
                .collect()
        } else {
            Vec::new()
        };
        LocalState {
            data_dir: match &pg.data {
                Some(d) => DataDir::Initialized { sysid: d.sysid.clone() },
                None => DataDir::Empty,
            },
            process: match pg.proc {
                Proc::Stopped => Process::Stopped,
                Proc::Starting { since } => Process::Starting { since: Time(since) },
                Proc::Running => Process::Running,
                Proc::Crashed { at } => Process::Crashed { at: Time(at) },
            },
            role: self.role(m),
            lsn: self.lsn(m),
            timeline: self.timeline(m),
            following: pg.upstream.map(|u| self.names[u].clone()),
            replication,
            busy: pg.job.as_ref().map(|j| j.busy.clone()),
            last_failure: pg.last_failure.clone(),
        }
    }

    /// The standby a primary's commits wait for: the first listed in `synchronous_standby_names` that streams
    /// from it (`FIRST 1 (...)` semantics).
    fn first_sync_standby(&self, m: usize) -> Option<usize> {
        self.pgs[m].sync_names.iter().find_map(|name| {
            let r = self.index(name)?;
            let pg = &self.pgs[r];
            (pg.upstream == Some(m) && pg.streaming && self.role(r) == PgRole::Replica).then_some(r)
        })
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    // ----- actions -----

    fn dcs_op(&mut self, m: usize) -> (i64, bool) {
        let (took, fails) = self.dcs_latency(m);
        (took, !fails)
    }

    fn execute(&mut self, m: usize, action: &Action) -> Exec {
        match action {
            Action::AttemptInitialize => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    let won = self.dcs.initialize.is_none();
                    if won {
                        self.dcs.initialize = Some(String::new());
                    }
                    self.agents[m].outcomes.push(Outcome::InitializeRace { won });
                }
                Exec { ok, took }
            }
            Action::SetInitialize { sysid } => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    self.dcs.initialize = Some(sysid.clone());
                }
                Exec { ok, took }
            }
            Action::CancelInitialize => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    self.dcs.initialize = None;
                }
                Exec { ok, took }
            }
            Action::Bootstrap => self.start_job(m, JobKind::Bootstrap, Busy::Bootstrapping),
            Action::CreateReplica { from } => {
                let from = from.as_deref().and_then(|f| self.index(f));
                self.start_job(m, JobKind::Clone { from }, Busy::CreatingReplica)
            }
            Action::StartReplica { follow } => {
                let follow = follow.as_deref().and_then(|f| self.index(f));
                self.start_job(m, JobKind::StartReplica { follow }, Busy::Starting)
            }
            Action::StartPrimary => self.start_job(m, JobKind::StartPrimary, Busy::Starting),
            Action::Follow { leader } => {
                let follow = leader.as_deref().and_then(|f| self.index(f));
                if self.pgs[m].upstream != follow {
                    self.pgs[m].upstream = follow;
                    self.pgs[m].streaming = false;
                }
                Exec { ok: true, took: self.rng.ms(5, 50) }
            }
            Action::Rewind { from } => match self.index(from) {
                Some(from) => self.start_job(m, JobKind::Rewind { from }, Busy::Rewinding),
                None => Exec { ok: false, took: 0 },
            },
            Action::Reinitialize { from } => {
                let from = from.as_deref().and_then(|f| self.index(f));
                self.start_job(m, JobKind::Reinitialize { from }, Busy::Reinitializing)
            }
            Action::Promote => {
                if self.role(m) != PgRole::Replica || self.pgs[m].job.is_some() {
                    return Exec { ok: false, took: 0 };
                }
                self.check_promotion_allowed(m);
                self.start_job(m, JobKind::Promote, Busy::Promoting)
            }
            Action::Demote { mode, follow } => {
                if self.agents[m].config.pause && !self.agents[m].saw_failover_key {
                    let detail = format!("{} demoted ({mode:?}) while paused", self.names[m]);
                    self.violate(Invariant::PauseViolated, detail);
                }
                let follow = follow.as_deref().and_then(|f| self.index(f));
                // Fast shutdown ends every session first: writes stop the moment the demotion starts.
                let pg = &mut self.pgs[m];
                if matches!(pg.proc, Proc::Running | Proc::Starting { .. }) {
                    pg.proc = Proc::Stopped;
                }
                pg.pending.clear();
                pg.job = None;
                self.agents[m].watchdog = None;
                self.start_job(m, JobKind::DemoteStop { mode: *mode, follow }, Busy::Demoting)
            }
            Action::Restart => self.start_job(m, JobKind::Restart, Busy::Restarting),
            Action::Reload => Exec { ok: true, took: 1 },
            Action::AcquireLeader => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    let won = self.dcs.leader_at(self.now).is_none();
                    if won {
                        let expires = self.now + self.agents[m].config.ttl as i64;
                        self.dcs.leader = Some(Lease { holder: m, expires });
                        let me = self.names[m].as_str();
                        let sync_ok = !self.dcs.sync_enabled()
                            || self.opts.faithful
                            || self.dcs.sync.leader.as_deref() == Some(me)
                            || self.dcs.sync.is_sync_standby(me);
                        let named =
                            self.dcs.failover.as_ref().and_then(|f| f.candidate.as_deref()) == Some(me) && sync_ok;
                        self.agents[m].named_candidate = named;
                        self.agents[m].lsn_when_acquired = self.dcs.last_leader_lsn;
                        self.keepalive(m);
                        self.schedule(expires, Ev::LeaseCheck);
                        self.leader_key_changed();
                    }
                    self.agents[m].outcomes.push(Outcome::LeaderRace { won });
                }
                Exec { ok, took }
            }
            Action::UpdateLeader { lsn } => {
                let (took, ok) = self.dcs_op(m);
                let ours = ok && self.dcs.leader_at(self.now) == Some(m);
                if ours {
                    let expires = self.now + self.agents[m].config.ttl as i64;
                    self.dcs.leader = Some(Lease { holder: m, expires });
                    if lsn.is_some() {
                        self.dcs.last_leader_lsn = *lsn;
                    }
                    self.keepalive(m);
                    self.schedule(expires, Ev::LeaseCheck);
                } else {
                    self.agents[m].outcomes.push(Outcome::LeaderRefresh { ok: false });
                }
                Exec { ok: ours, took }
            }
            Action::ReleaseLeader { lsn } => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    self.release_leader(m, *lsn);
                }
                Exec { ok, took }
            }
            Action::FetchPeers { members } => {
                let mut took = 0;
                let mut replies = Vec::new();
                for name in members {
                    let (reply, t) = match self.index(name) {
                        Some(p) => self.rest_call(m, p),
                        None => (None, 1),
                    };
                    took = took.max(t);
                    replies.push(PeerStatus { name: name.clone(), reply });
                }
                self.agents[m].peers = Some(replies);
                Exec { ok: true, took }
            }
            Action::ClearFailover => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    self.dcs.failover = None;
                }
                Exec { ok, took }
            }
            Action::UpdateHistory => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    self.dcs.history_timeline = self.timeline(m);
                }
                Exec { ok, took }
            }
            Action::SetSyncState { standbys } => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    self.dcs.sync.leader = Some(self.names[m].clone());
                    self.dcs.sync.standbys = standbys.clone();
                }
                Exec { ok, took }
            }
            Action::SetSyncStandbys { standbys, .. } => {
                self.pgs[m].sync_names = standbys.clone();
                self.settle_sync_acks(m);
                Exec { ok: true, took: self.rng.ms(1, 20) }
            }
            Action::WriteFailsafe { members } => {
                let (took, ok) = self.dcs_op(m);
                if ok {
                    self.dcs.failsafe = Some(members.clone());
                }
                Exec { ok, took }
            }
            Action::CheckFailsafe { members } => {
                let mut took = 0;
                let mut confirmed = true;
                for name in members {
                    let (reply, t) = match self.index(name) {
                        Some(p) => self.rest_call(m, p),
                        None => (None, 1),
                    };
                    took = took.max(t);
                    confirmed &= reply.is_some();
                }
                self.agents[m].outcomes.push(Outcome::Failsafe { confirmed });
                Exec { ok: true, took }
            }
            Action::Fatal { reason } => {
                let reason = reason.clone();
                self.note(Some(m), |_| format!("agent exits: {reason}"));
                self.agents[m].fatal = true;
                self.kill_agent(m);
                Exec { ok: false, took: 0 }
            }
        }
    }

    fn release_leader(&mut self, m: usize, lsn: Option<u64>) {
        if self.dcs.leader_at(self.now) == Some(m) {
            self.dcs.leader = None;
            if lsn.is_some() {
                self.dcs.last_leader_lsn = lsn;
            }
            self.leader_key_changed();
        }
    }

    /// `GET /patroni` on `p` from `m`: answered by `p`'s agent, so a dead agent or a cut link means no answer.
    fn rest_call(&mut self, m: usize, p: usize) -> (Option<PeerReply>, i64) {
        if !self.link(m, p) {
            return (None, self.rest_timeout(m));
        }
        if !self.agents[p].alive {
            // Connection refused is immediate.
            return (None, 1);
        }
        let reply = PeerReply {
            role: self.role(p),
            running: self.pgs[p].proc == Proc::Running,
            lsn: self.lsn(p),
            timeline: self.timeline(p),
            tags: self.tags[p].clone(),
        };
        (Some(reply), self.rng.ms(1, 20))
    }

    /// A successful refresh while leading: the watchdog is kicked and must be kicked again before the key could
    /// expire (Patroni's `ttl - safety_margin`, here with a margin below `retry_timeout`).
    fn keepalive(&mut self, m: usize) {
        if self.agents[m].config.pause || self.opts.mutation.is_some_and(Mutation::disables_watchdog) {
            return;
        }
        let c = &self.agents[m].config;
        let margin = (c.retry_timeout / 2).min(5_000) as i64;
        let deadline = self.now + c.ttl as i64 - margin;
        self.agents[m].watchdog = Some(deadline);
        self.schedule(deadline, Ev::Watchdog { m, deadline });
    }

    fn watchdog_fires(&mut self, m: usize, deadline: i64) {
        if self.agents[m].watchdog != Some(deadline) {
            return;
        }
        self.agents[m].watchdog = None;
        // The device resets the whole node whatever PostgreSQL is doing (a start as primary may be under way).
        self.note(Some(m), |_| "watchdog expired: node reset".to_string());
        self.crash_postgres(m);
        if self.agents[m].alive {
            self.kill_agent(m);
            let gen = self.agents[m].gen;
            let at = self.now + self.rng.ms(2_000, 5_000);
            self.schedule(at, Ev::AgentRestart { m, gen });
        }
    }

    fn lease_check(&mut self) {
        if let Some(l) = self.dcs.leader {
            if l.expires <= self.now {
                self.dcs.leader = None;
                let who = self.names[l.holder].clone();
                self.note(None, |_| format!("leader key of {who} expired"));
                self.leader_key_changed();
            }
        }
    }

    // ----- long actions -----

    fn job_duration(&mut self, m: usize, kind: &JobKind) -> i64 {
        let base = match kind {
            JobKind::Bootstrap => self.rng.ms(1_000, 3_000),
            JobKind::Clone { .. } | JobKind::Reinitialize { .. } => self.rng.ms(1_000, 4_000),
            JobKind::Rewind { .. } => self.rng.ms(500, 2_000),
            JobKind::StartReplica { .. } | JobKind::StartPrimary | JobKind::Restart => self.rng.ms(200, 1_500),
            JobKind::Promote => self.rng.ms(100, 1_000),
            JobKind::DemoteStop { .. } => self.rng.ms(100, 800),
        };
        if self.now < self.pgs[m].slow_disk_until {
            base * self.rng.ms(5, 20)
        } else {
            base
        }
    }

    fn start_job(&mut self, m: usize, kind: JobKind, busy: Busy) -> Exec {
        let needs_data = matches!(
            kind,
            JobKind::StartReplica { .. } | JobKind::StartPrimary | JobKind::Restart | JobKind::Rewind { .. }
        );
        if (needs_data && self.pgs[m].data.is_none()) || self.pgs[m].job.is_some() {
            return Exec { ok: false, took: 0 };
        }
        if matches!(kind, JobKind::StartReplica { .. } | JobKind::StartPrimary | JobKind::Restart) {
            self.pgs[m].proc = Proc::Starting { since: self.now };
            self.pgs[m].pending.clear();
        }
        if matches!(kind, JobKind::Promote) {
            // pg_ctl promote: the walreceiver stops at once.
            self.pgs[m].upstream = None;
            self.pgs[m].streaming = false;
            if matches!(kind, JobKind::StartPrimary) {
                self.check_promotion_allowed(m);
            }
        }
        if matches!(kind, JobKind::StartPrimary) && self.pgs[m].data.as_ref().is_some_and(|d| !d.primary) {
            // Starting a replica's data directory as primary is a promotion in all but name.
            self.check_promotion_allowed(m);
        }
        self.pgs[m].last_failure = None;
        let took = self.job_duration(m, &kind);
        self.next_job += 1;
        let id = self.next_job;
        self.pgs[m].job = Some(Job { id, kind, busy });
        self.schedule(self.now + took, Ev::JobDone { m, id });
        Exec { ok: true, took: self.rng.ms(1, 10) }
    }

    fn job_done(&mut self, m: usize, id: u64) {
        let Some(job) = self.pgs[m].job.clone().filter(|j| j.id == id) else { return };
        self.pgs[m].job = None;
        let ok = match job.kind {
            JobKind::Bootstrap => {
                let sysid = format!("7{:018}", self.seed % 1_000_000_000_000_000_000);
                let fork = self.lineage.root();
                self.pgs[m].data = Some(Data { sysid, pos: Pos { fork, lsn: 0x0100_0000 }, primary: true });
                self.pgs[m].proc = Proc::Running;
                true
            }
            JobKind::Clone { from } | JobKind::Reinitialize { from } => match self.copy_source(m, from) {
                Some(data) => {
                    self.pgs[m].data = Some(Data { primary: false, ..data });
                    self.pgs[m].proc = Proc::Stopped;
                    self.pgs[m].diverged = false;
                    true
                }
                None => false,
            },
            JobKind::Rewind { from } => match self.copy_source(m, Some(from)) {
                Some(data) => {
                    self.pgs[m].data = Some(Data { primary: false, ..data });
                    self.start_as(m, false, Some(from));
                    self.pgs[m].diverged = false;
                    true
                }
                None => false,
            },
            JobKind::StartReplica { follow } => self.start_as(m, false, follow),
            JobKind::StartPrimary => {
                if self.pgs[m].data.as_ref().is_some_and(|d| !d.primary) {
                    self.complete_promotion(m);
                }
                self.start_as(m, true, None)
            }
            JobKind::Restart => {
                let primary = self.pgs[m].data.as_ref().is_some_and(|d| d.primary);
                let upstream = self.pgs[m].upstream;
                self.start_as(m, primary, upstream)
            }
            JobKind::Promote => {
                if self.role(m) == PgRole::Replica {
                    self.complete_promotion(m);
                    true
                } else {
                    false
                }
            }
            JobKind::DemoteStop { mode, follow } => {
                self.demote_stopped(m, mode, follow);
                true
            }
        };
        if !ok {
            self.pgs[m].last_failure = Some(job.busy.clone());
        }
        self.note(Some(m), |_| format!("{:?} {}", job.kind, if ok { "done" } else { "FAILED" }));
        self.wake(m);
    }

    /// A base backup from `from` (must run and be reachable now).
    fn copy_source(&self, m: usize, from: Option<usize>) -> Option<Data> {
        let from = from?;
        if !self.link(m, from) || self.pgs[from].proc != Proc::Running {
            return None;
        }
        self.pgs[from].data.clone()
    }

    fn start_as(&mut self, m: usize, primary: bool, follow: Option<usize>) -> bool {
        let pg = &mut self.pgs[m];
        let Some(data) = pg.data.as_mut() else {
            pg.proc = Proc::Stopped;
            return false;
        };
        data.primary = primary;
        pg.proc = Proc::Running;
        pg.upstream = if primary { None } else { follow };
        pg.streaming = false;
        true
    }

    /// After the stop: flush (graceful), release the key with the final LSN, start as a replica.
    fn demote_stopped(&mut self, m: usize, mode: DemoteMode, follow: Option<usize>) {
        let Some(ours) = self.pos(m) else { return };
        if mode == DemoteMode::Graceful {
            // A clean shutdown waits for the walsenders: connected replicas get everything.
            for r in 0..self.pgs.len() {
                let pg = &self.pgs[r];
                let connected = r != m && pg.upstream == Some(m) && pg.proc == Proc::Running && self.link(r, m);
                if let (true, Some(theirs)) = (connected, self.pos(r)) {
                    if self.lineage.contains(ours, theirs) {
                        if let Some(d) = self.pgs[r].data.as_mut() {
                            d.pos = ours;
                        }
                    }
                }
            }
        }
        if mode.releases_key() && self.agents[m].alive && self.dcs_reachable(m) {
            self.release_leader(m, Some(ours.lsn));
        }
        if mode == DemoteMode::Offline || !self.agents[m].alive {
            return;
        }
        if let Some(d) = self.pgs[m].data.as_mut() {
            d.primary = false;
        }
        let kind = JobKind::StartReplica { follow };
        self.start_job(m, kind, Busy::Demoting);
    }

    // ----- promotion checks -----

    /// Invariants 2b and 4, checked when a promotion starts.
    fn check_promotion_allowed(&mut self, m: usize) {
        let named = self.agents[m].named_candidate;
        let paused = self.agents[m].config.pause;
        let name = self.names[m].clone();
        if !named && !self.tags[m].can_fail_over() {
            self.violate(Invariant::NofailoverPromoted, format!("{name} has nofailover/failover_priority 0"));
        }
        if !named && paused {
            self.violate(Invariant::PauseViolated, format!("{name} promoted itself while paused"));
        }
        if named {
            return;
        }
        let (previous, until) = self.previous_max_lag;
        let mut bound = self.dcs.config.maximum_lag_on_failover;
        if self.now < until {
            bound = bound.max(previous);
        }
        let reference = self.agents[m].lsn_when_acquired.or(self.dcs.last_leader_lsn);
        if let (Some(leader), Some(mine)) = (reference, self.lsn(m)) {
            let lag = leader.saturating_sub(mine);
            if lag > bound {
                let detail =
                    format!("{name} promoted at lsn {mine}, {lag} bytes behind the leader's {leader} > {bound}");
                self.violate(Invariant::LagBound, detail);
            }
        }
    }

    /// Invariant 2a at the moment the new primary starts accepting writes, then a new timeline.
    fn complete_promotion(&mut self, m: usize) {
        let Some(pos) = self.pos(m) else { return };
        if self.dcs.sync_enabled() {
            if let Some(acked) = self.last_sync_ack {
                if !self.lineage.contains(pos, acked) {
                    let detail =
                        format!("{} promoted at {pos:?} without the write acknowledged at {acked:?}", self.names[m]);
                    self.violate(Invariant::LostAcknowledgedWrite, detail);
                }
            }
        }
        let fork = self.lineage.branch(pos);
        if let Some(d) = self.pgs[m].data.as_mut() {
            d.pos = Pos { fork, lsn: pos.lsn };
            d.primary = true;
        }
        self.pgs[m].upstream = None;
        self.pgs[m].streaming = false;
        self.pgs[m].diverged = false;
        self.promotions += 1;
    }

    // ----- client and replication -----

    fn client_write(&mut self) {
        if let Some(p) = (0..self.pgs.len()).find(|&p| self.pgs[p].writable()) {
            let size = self.rng.range(100, 8_000);
            let sync = !self.pgs[p].sync_names.is_empty();
            if let Some(d) = self.pgs[p].data.as_mut() {
                d.pos.lsn += size;
                if sync {
                    let lsn = d.pos.lsn;
                    self.pgs[p].pending.push(lsn);
                }
            }
        }
        let next = self.now + self.rng.ms(10, 60);
        self.schedule(next, Ev::Write);
    }

    /// Core bug 3 workaround: once faults stop, an operator deletes a switchover key whose leader no longer holds
    /// the leader key (the core would let it block the race forever).
    fn operator_clears_stale_switchover(&mut self) {
        let stale = self
            .dcs
            .failover
            .as_ref()
            .and_then(|f| f.leader.as_deref())
            .is_some_and(|l| self.dcs.leader_at(self.now).is_none_or(|holder| self.names[holder] != l));
        if stale {
            self.dcs.failover = None;
            self.note(None, |_| "operator deletes the stale switchover key (core bug 3 workaround)".to_string());
        }
    }

    fn replicate(&mut self) {
        if self.now >= self.quiet_at && !self.opts.faithful {
            self.operator_clears_stale_switchover();
        }
        for r in 0..self.pgs.len() {
            self.receive_wal(r);
        }
        for p in 0..self.pgs.len() {
            self.settle_sync_acks(p);
        }
        self.schedule(self.now + REPLICATION_TICK, Ev::Replicate);
    }

    fn receive_wal(&mut self, r: usize) {
        let streaming_possible = self.role(r) == PgRole::Replica && self.now >= self.pgs[r].stalled_until;
        let upstream = self.pgs[r]
            .upstream
            .filter(|&u| streaming_possible && u != r && self.link(r, u) && self.pgs[u].proc == Proc::Running);
        let (Some(u), Some(ours)) = (upstream, self.pos(r)) else {
            self.pgs[r].streaming = false;
            return;
        };
        let Some(theirs) = self.pos(u) else { return };
        match self.lineage.relation(ours, theirs) {
            Relation::Behind => {
                self.pgs[r].streaming = true;
                self.pgs[r].diverged = false;
                if ours != theirs && self.rng.chance(70) {
                    // Random delay: sometimes all of it arrives, sometimes only part.
                    let lsn = if self.rng.chance(50) { theirs.lsn } else { self.rng.range(ours.lsn, theirs.lsn) };
                    if let Some(d) = self.pgs[r].data.as_mut() {
                        d.pos = Pos { fork: theirs.fork, lsn };
                    }
                }
            }
            Relation::Ahead => self.pgs[r].streaming = true,
            Relation::Diverged => {
                self.pgs[r].streaming = false;
                self.pgs[r].diverged = true;
            }
        }
    }

    /// Commits waiting on primary `p` that its synchronous standby now has are acknowledged to the client.
    fn settle_sync_acks(&mut self, p: usize) {
        if self.pgs[p].pending.is_empty() {
            return;
        }
        let Some(primary) = self.pos(p) else { return };
        if !self.pgs[p].writable() {
            self.pgs[p].pending.clear();
            return;
        }
        if self.pgs[p].sync_names.is_empty() {
            // Nobody to wait for any more: PostgreSQL releases the waiters (not protected by a standby).
            self.pgs[p].pending.clear();
            return;
        }
        let Some(standby) = self.first_sync_standby(p).and_then(|s| self.pos(s)) else { return };
        let mut newest = None;
        let lineage = &self.lineage;
        self.pgs[p].pending.retain(|&lsn| {
            let write = Pos { fork: primary.fork, lsn };
            let acked = lineage.contains(standby, write);
            if acked {
                newest = Some(newest.map_or(write, |n: Pos| n.max(write)));
            }
            !acked
        });
        if let Some(w) = newest {
            self.last_sync_ack = Some(w);
        }
    }

    // ----- faults -----

    fn kill_agent(&mut self, m: usize) {
        let agent = &mut self.agents[m];
        agent.alive = false;
        agent.gen += 1;
        agent.phase = Phase::Sleeping;
        // Children of the agent die with it; what PostgreSQL already does on its own (start, promote) goes on.
        let pg = &mut self.pgs[m];
        if let Some(job) = &pg.job {
            if !matches!(job.kind, JobKind::StartReplica { .. } | JobKind::StartPrimary | JobKind::Promote) {
                pg.job = None;
            }
        }
    }

    fn restart_agent(&mut self, m: usize) {
        let config = self.dcs.config.clone();
        self.last_disturbance = self.now;
        let agent = &mut self.agents[m];
        agent.alive = true;
        agent.ha = Ha::new();
        agent.outcomes.clear();
        agent.peers = None;
        agent.resteps = 0;
        agent.named_candidate = false;
        agent.lsn_when_acquired = None;
        agent.config = config;
        agent.phase = Phase::Sleeping;
        agent.gen += 1;
        self.pgs[m].last_failure = None;
        let gen = self.agents[m].gen;
        self.note(Some(m), |_| "agent started".to_string());
        self.schedule(self.now, Ev::Wake { m, gen });
    }

    fn crash_postgres(&mut self, m: usize) {
        let pg = &mut self.pgs[m];
        if matches!(pg.proc, Proc::Running | Proc::Starting { .. }) {
            pg.proc = Proc::Crashed { at: self.now };
            pg.pending.clear();
            pg.streaming = false;
            if pg.job.as_ref().is_some_and(|j| !matches!(j.kind, JobKind::DemoteStop { .. })) {
                pg.job = None;
            }
            self.wake(m);
        }
    }

    fn cut_links(&mut self, member: usize, delta: i32) {
        for o in 0..self.links.len() {
            if o != member {
                self.adjust_link(member, o, delta);
            }
        }
    }

    fn adjust_link(&mut self, a: usize, b: usize, delta: i32) {
        for (x, y) in [(a, b), (b, a)] {
            let c = &mut self.links[x][y];
            *c = c.saturating_add_signed(delta);
        }
    }

    fn apply_fault(&mut self, i: usize) {
        let Some(fault) = self.faults.get(i).cloned() else { return };
        let kind = fault.kind;
        self.note(None, |_| format!("FAULT {kind:?}"));
        let heal_after = match kind {
            FaultKind::KillAgent { .. }
            | FaultKind::DcsPartition { .. }
            | FaultKind::Isolate { .. }
            | FaultKind::DcsOutage { .. }
            | FaultKind::SlowDcs { .. }
            | FaultKind::DegradeLeader { .. }
                if !self.opts.pause_hazards && (self.dcs.config.pause || self.now < self.resume_settles_until) =>
            {
                self.note(None, |_| "skipped: paused or just resumed (pause_hazards off)".to_string());
                None
            }
            FaultKind::Pause { .. } if !self.opts.pause_hazards && self.dcs_disturbed() => {
                self.note(None, |_| "pause skipped: a member is not settled (pause_hazards off)".to_string());
                None
            }
            FaultKind::KillAgent { member, down } => {
                if self.agents[member].alive {
                    self.kill_agent(member);
                    let gen = self.agents[member].gen;
                    self.schedule(self.now + down, Ev::AgentRestart { m: member, gen });
                }
                None
            }
            FaultKind::CrashPostgres { member } => {
                self.crash_postgres(member);
                None
            }
            FaultKind::DcsPartition { member, lasts } => {
                self.dcs_cut[member] += 1;
                Some(lasts)
            }
            FaultKind::PeerPartition { member, lasts } => {
                self.cut_links(member, 1);
                Some(lasts)
            }
            FaultKind::LinkCut { a, b, lasts } => {
                self.adjust_link(a, b, 1);
                Some(lasts)
            }
            FaultKind::Isolate { member, lasts } => {
                self.dcs_cut[member] += 1;
                self.cut_links(member, 1);
                Some(lasts)
            }
            FaultKind::DcsOutage { lasts } => {
                self.dcs_down += 1;
                Some(lasts)
            }
            FaultKind::DegradeLeader { dcs_after, lasts } => match self.dcs.leader_at(self.now) {
                Some(leader) => {
                    self.fault_target[i] = Some(leader);
                    self.cut_links(leader, 1);
                    self.schedule(self.now + dcs_after, Ev::CutFromDcs(i));
                    Some(dcs_after + lasts)
                }
                None => None,
            },
            FaultKind::SlowDcs { lasts } => {
                self.slow_dcs_until = self.slow_dcs_until.max(self.now + lasts);
                None
            }
            FaultKind::SlowDisk { member, lasts } => {
                self.pgs[member].slow_disk_until = self.now + lasts;
                None
            }
            FaultKind::StallReplication { member, lasts } => {
                self.pgs[member].stalled_until = self.now + lasts;
                None
            }
            FaultKind::FailoverKey { switchover, with_candidate, scheduled_in } => {
                self.request_failover(switchover, with_candidate, scheduled_in);
                None
            }
            FaultKind::Pause { lasts } => {
                self.dcs.config.pause = true;
                Some(lasts)
            }
            FaultKind::ConfigChange { ttl, loop_wait, retry_timeout, maximum_lag_on_failover } => {
                let c = &mut self.dcs.config;
                let until = self.now + (c.loop_wait + c.retry_timeout) as i64 * 2;
                if c.maximum_lag_on_failover != maximum_lag_on_failover {
                    self.previous_max_lag = (c.maximum_lag_on_failover, until);
                }
                c.ttl = ttl;
                c.loop_wait = loop_wait;
                c.retry_timeout = retry_timeout;
                c.maximum_lag_on_failover = maximum_lag_on_failover;
                None
            }
        };
        if let Some(lasts) = heal_after {
            self.schedule(self.now + lasts, Ev::Heal(i));
        }
    }

    /// What `patronictl switchover/failover` would write, after the checks the REST API makes.
    fn request_failover(&mut self, switchover: bool, with_candidate: bool, scheduled_in: Option<i64>) {
        let leader = self.dcs.leader_at(self.now);
        let mut eligible: Vec<usize> =
            (0..self.names.len()).filter(|&c| Some(c) != leader && self.tags[c].can_fail_over()).collect();
        if self.dcs.sync_enabled() {
            eligible.retain(|&c| self.dcs.sync.is_sync_standby(&self.names[c]));
        }
        let candidate = if with_candidate || !switchover { self.rng.pick(&eligible) } else { None };
        if (switchover && leader.is_none()) || (!switchover && candidate.is_none()) {
            self.note(None, |_| "failover request rejected by the API".to_string());
            return;
        }
        if self.dcs.config.pause && (scheduled_in.is_some() || candidate.is_none()) {
            self.note(None, |_| "failover request rejected by the API (paused)".to_string());
            return;
        }
        self.dcs.failover = Some(FailoverRequest {
            leader: if switchover { leader.map(|l| self.names[l].clone()) } else { None },
            candidate: candidate.map(|c| self.names[c].clone()),
            scheduled_at: scheduled_in.map(|d| Time(self.now + d)),
        });
        let request = self.dcs.failover.clone();
        self.note(None, |_| format!("failover key written: {request:?}"));
        self.leader_key_changed();
    }

    fn heal(&mut self, i: usize) {
        if i == usize::MAX {
            self.dcs.config.pause = false;
            self.note(None, |_| "resumed (quiet period)".to_string());
            return;
        }
        let Some(fault) = self.faults.get(i).cloned() else { return };
        if self.now >= self.quiet_at {
            return;
        }
        if matches!(
            fault.kind,
            FaultKind::DcsPartition { .. }
                | FaultKind::Isolate { .. }
                | FaultKind::DcsOutage { .. }
                | FaultKind::DegradeLeader { .. }
        ) {
            self.last_disturbance = self.now;
        }
        match fault.kind {
            FaultKind::DcsPartition { member, .. } => self.dcs_cut[member] = self.dcs_cut[member].saturating_sub(1),
            FaultKind::PeerPartition { member, .. } => self.cut_links(member, -1),
            FaultKind::LinkCut { a, b, .. } => self.adjust_link(a, b, -1),
            FaultKind::Isolate { member, .. } => {
                self.dcs_cut[member] = self.dcs_cut[member].saturating_sub(1);
                self.cut_links(member, -1);
            }
            FaultKind::DcsOutage { .. } => self.dcs_down = self.dcs_down.saturating_sub(1),
            FaultKind::DegradeLeader { .. } => {
                if let Some(m) = self.fault_target.get(i).copied().flatten() {
                    self.cut_links(m, -1);
                    self.dcs_cut[m] = self.dcs_cut[m].saturating_sub(1);
                }
            }
            FaultKind::Pause { .. } => {
                self.resume(i);
                return;
            }
            _ => {}
        }
        self.note(None, |_| format!("healed {:?}", fault.kind));
    }

    /// How long every member needs to have read the DCS at least once: the longest loop plus a slow read.
    fn settle_time(&self) -> i64 {
        let c = std::iter::once(&self.dcs.config).chain(self.agents.iter().map(|a| &a.config));
        c.map(|c| c.loop_wait + 2 * c.retry_timeout).max().unwrap_or(0) as i64 + 1_000
    }

    /// Whether some member may hold a stale view of the DCS (cut off, slow answers, dead agent, recently so).
    fn dcs_disturbed(&self) -> bool {
        self.dcs_down > 0
            || self.dcs_cut.iter().any(|c| *c > 0)
            || self.now < self.slow_dcs_until
            || self.agents.iter().any(|a| !a.alive && !a.fatal)
            || self.now < self.last_disturbance + self.settle_time()
    }

    /// The operator resumes (`patronictl resume`), after checking every member is there unless told to be reckless.
    fn resume(&mut self, i: usize) {
        if !self.opts.pause_hazards && self.dcs_disturbed() {
            self.schedule(self.now + 1_000, Ev::Heal(i));
            return;
        }
        self.dcs.config.pause = false;
        self.resume_settles_until = self.now + self.settle_time() + self.dcs.config.ttl as i64;
        self.note(None, |_| "resumed".to_string());
    }

    /// Faults stop: the network heals, dead agents come back, pause ends. The cluster must converge by `end_at`.
    fn quiet(&mut self) {
        self.dcs_down = 0;
        self.dcs_cut.iter_mut().for_each(|c| *c = 0);
        self.links.iter_mut().for_each(|row| row.iter_mut().for_each(|c| *c = 0));
        self.slow_dcs_until = 0;
        for pg in &mut self.pgs {
            pg.slow_disk_until = 0;
            pg.stalled_until = 0;
        }
        for m in 0..self.agents.len() {
            if !self.agents[m].alive && !self.agents[m].fatal {
                self.restart_agent(m);
            }
        }
        self.last_disturbance = self.now;
        let settle = self.settle_time();
        if self.dcs.config.pause {
            // Resume once everyone has read the DCS again (see `resume`); the bound below starts from there.
            let resume_at = if self.opts.pause_hazards { self.now } else { self.now + settle };
            self.schedule(resume_at, Ev::Heal(usize::MAX));
        }
        let resume_delay = if self.dcs.config.pause && !self.opts.pause_hazards { settle } else { 0 };
        let c = &self.dcs.config;
        // Old leases expire, agents notice within a loop, a race, a promotion, replicas restart and catch up.
        let bound = 3 * c.ttl + 4 * c.loop_wait + 2 * c.retry_timeout + 15_000;
        self.end_at = self.now + resume_delay + bound as i64;
        self.note(None, |_| format!("QUIET: faults stop; must converge within {}ms", bound));
    }

    // ----- invariants -----

    fn check_single_primary(&mut self) {
        let mut writable = (0..self.pgs.len()).filter(|&p| self.pgs[p].writable());
        if let (Some(a), Some(b)) = (writable.next(), writable.next()) {
            let detail = format!("{} and {} both accept writes", self.names[a], self.names[b]);
            self.violate(Invariant::SplitBrain, detail);
        }
    }

    fn check_convergence(&mut self) {
        let writable: Vec<usize> = (0..self.pgs.len()).filter(|&p| self.pgs[p].writable()).collect();
        let [primary] = writable[..] else {
            let detail = format!("{} writable primaries at the end", writable.len());
            self.violate(Invariant::Convergence, detail);
            return;
        };
        if self.dcs.leader_at(self.now) != Some(primary) {
            let detail = format!("{} is primary without holding the leader key", self.names[primary]);
            self.violate(Invariant::Convergence, detail);
            return;
        }
        for m in 0..self.pgs.len() {
            if m == primary || self.agents[m].fatal {
                continue;
            }
            let pg = &self.pgs[m];
            if pg.diverged && !self.opts.require_rewind {
                continue;
            }
            let expected = match &self.tags[m].replicatefrom {
                Some(up) => match self.index(up) {
                    Some(u) if u != m && self.pgs[u].proc == Proc::Running => u,
                    _ => primary,
                },
                None => primary,
            };
            let ok = pg.proc == Proc::Running && pg.upstream == Some(expected) && pg.streaming;
            if !ok {
                let detail = format!(
                    "{} is not streaming from {} (process {:?}, upstream {:?}, streaming {}, diverged {}, busy {:?})",
                    self.names[m],
                    self.names[expected],
                    pg.proc,
                    pg.upstream.map(|u| self.names[u].clone()),
                    pg.streaming,
                    pg.diverged,
                    pg.job.as_ref().map(|j| j.busy.clone()),
                );
                self.violate(Invariant::Convergence, detail);
                return;
            }
        }
    }
}
