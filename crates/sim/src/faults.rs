//! The fault schedule: what goes wrong, when, and for how long. Generated up front from the seed so that the
//! schedule is part of the reproducible input, then applied by the world at the given times.

use patroni_ha::SyncMode;

use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGKILL the agent; PostgreSQL keeps running. The agent is restarted after `down` ms.
    KillAgent {
        member: usize,
        down: i64,
    },
    /// SIGKILL the agent and its guardian (scripted scenarios only); restarted after `down` ms.
    KillAgentAndGuardian {
        member: usize,
        down: i64,
    },
    /// PostgreSQL exits without being asked to; the agent must notice and restart it.
    CrashPostgres {
        member: usize,
    },
    /// The member cannot reach the DCS (reads and writes time out after `retry_timeout`).
    DcsPartition {
        member: usize,
        lasts: i64,
    },
    /// The member cannot reach the other members (REST and replication), the DCS still answers.
    PeerPartition {
        member: usize,
        lasts: i64,
    },
    /// A single link between two members is cut.
    LinkCut {
        a: usize,
        b: usize,
        lasts: i64,
    },
    /// Network isolation: neither the DCS nor the peers.
    Isolate {
        member: usize,
        lasts: i64,
    },
    /// The current leader's network degrades: first its peers lose it (replicas stop receiving WAL while it keeps
    /// publishing its position), `dcs_after` ms later the DCS does too. Both heal `lasts` ms after that.
    DegradeLeader {
        dcs_after: i64,
        lasts: i64,
    },
    /// Whoever leads now loses the DCS (not its peers: failsafe mode may keep it primary).
    CutLeaderFromDcs {
        lasts: i64,
    },
    /// Whoever leads now loses its link to one other member (the first, by name, that is not the leader).
    CutLeaderFromOnePeer {
        lasts: i64,
    },
    /// Whoever leads now is isolated (neither DCS nor peers).
    IsolateLeader {
        lasts: i64,
    },
    /// The link between the current leader and the candidate named in the failover key is cut: the candidate
    /// stops receiving WAL and drops out of the `sync` key while the request stands.
    CutCandidateFromLeader {
        lasts: i64,
    },
    /// Nobody can reach the DCS.
    DcsOutage {
        lasts: i64,
    },
    /// DCS answers take up to 1.5 × `retry_timeout` (the slower ones count as failures).
    SlowDcs {
        lasts: i64,
    },
    /// Long actions (promote, stop, start, clone) take 5–20 times longer.
    SlowDisk {
        member: usize,
        lasts: i64,
    },
    /// The replica stops receiving WAL (a stuck walreceiver, a saturated link).
    StallReplication {
        member: usize,
        lasts: i64,
    },
    /// An operator writes the failover key: a switchover names the current leader, a failover does not.
    FailoverKey {
        switchover: bool,
        with_candidate: bool,
        scheduled_in: Option<i64>,
    },
    Pause {
        lasts: i64,
    },
    /// An operator changes synchronous replication live (PATCH /config): the mode, strict, the node count.
    SyncModeChange {
        mode: SyncMode,
        strict: bool,
        node_count: usize,
    },
    /// New timeouts (always within Patroni's rule) and a new `maximum_lag_on_failover`.
    ConfigChange {
        ttl: u64,
        loop_wait: u64,
        retry_timeout: u64,
        maximum_lag_on_failover: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub at: i64,
    pub kind: FaultKind,
}

/// Random timeouts obeying `loop_wait + 2 * retry_timeout <= ttl`, in ms. Sometimes Patroni's defaults.
pub fn timeouts(rng: &mut Rng) -> (u64, u64, u64) {
    if rng.chance(25) {
        return (30_000, 10_000, 10_000);
    }
    let loop_wait = rng.range(1, 10) * 1000;
    let retry = rng.range(1, 10) * 1000;
    let ttl = loop_wait + 2 * retry + rng.range(0, 10) * 1000;
    (ttl, loop_wait, retry)
}

pub fn max_lag(rng: &mut Rng) -> u64 {
    rng.pick(&[0, 16 << 10, 128 << 10, 1 << 20, 1 << 20, 16 << 20]).unwrap_or(1 << 20)
}

/// For runs in a synchronous mode: no, one or two live changes of synchronous replication at random times in
/// `start..end` (off, on or quorum; strict; a node count as the initial draw makes them).
pub fn sync_changes(rng: &mut Rng, members: usize, start: i64, end: i64) -> Vec<Fault> {
    let count = if rng.chance(40) { rng.range(1, 2) as usize } else { 0 };
    (0..count)
        .map(|_| {
            let at = rng.ms(start, end);
            let mode = rng.pick(&[SyncMode::Off, SyncMode::On, SyncMode::Quorum]).unwrap_or(SyncMode::On);
            let strict = rng.chance(30);
            let n = members as u64;
            let node_count = if n >= 3 && rng.chance(35) { rng.range(2, n - 1) as usize } else { 1 };
            Fault { at, kind: FaultKind::SyncModeChange { mode, strict, node_count } }
        })
        .collect()
}

/// `count` faults at random times in `start..end`, over `members` members.
pub fn generate(rng: &mut Rng, members: usize, start: i64, end: i64, count: usize) -> Vec<Fault> {
    let n = members as u64;
    let mut faults: Vec<Fault> = (0..count)
        .map(|_| {
            let at = rng.ms(start, end);
            let member = rng.below(n) as usize;
            let lasts = rng.ms(1_000, 40_000);
            let kind = match rng.below(21) {
                0 | 1 => FaultKind::KillAgent { member, down: rng.ms(500, 60_000) },
                2 => FaultKind::CrashPostgres { member },
                3 | 4 => FaultKind::DcsPartition { member, lasts },
                5 => FaultKind::PeerPartition { member, lasts },
                6 => {
                    let b = (member + 1 + rng.below(n.saturating_sub(1)) as usize) % members;
                    FaultKind::LinkCut { a: member, b, lasts }
                }
                7 => FaultKind::Isolate { member, lasts },
                8 => FaultKind::DcsOutage { lasts: lasts / 2 },
                9 => FaultKind::SlowDcs { lasts },
                10 => FaultKind::SlowDisk { member, lasts },
                11 => FaultKind::StallReplication { member, lasts },
                12 => FaultKind::FailoverKey {
                    switchover: rng.chance(70),
                    with_candidate: rng.chance(60),
                    scheduled_in: rng.chance(25).then(|| rng.ms(1_000, 10_000)),
                },
                13 => FaultKind::Pause { lasts },
                16 => FaultKind::IsolateLeader { lasts },
                19 => FaultKind::CutLeaderFromDcs { lasts },
                20 => FaultKind::CutLeaderFromOnePeer { lasts },
                17 => FaultKind::CutCandidateFromLeader { lasts },
                14 | 15 => FaultKind::DegradeLeader { dcs_after: rng.ms(2_000, 20_000), lasts },
                _ => {
                    // 18: a configuration change.
                    let (ttl, loop_wait, retry_timeout) = timeouts(rng);
                    FaultKind::ConfigChange { ttl, loop_wait, retry_timeout, maximum_lag_on_failover: max_lag(rng) }
                }
            };
            Fault { at, kind }
        })
        .collect();
    // Stable sort: equal times keep generation order, so the schedule is a pure function of the seed.
    faults.sort_by_key(|f| f.at);
    faults
}
