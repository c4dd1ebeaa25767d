//! The invariants, named as the issue states them.

use std::fmt;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    /// 1. Never two members writable as primary at the same simulated instant.
    SplitBrain,
    /// 2a. Synchronous mode: a promotion never loses an acknowledged write, unless an operator's manual failover
    ///     named that member (documented by Patroni as accepting the loss).
    LostAcknowledgedWrite,
    /// 2b. Asynchronous: an automatic promotion lags the last published leader LSN by at most
    ///     `maximum_lag_on_failover`.
    LagBound,
    /// 3. After the faults stop, within a bound: exactly one primary holding the key, and every healthy member
    ///    streaming from it (or from its `replicatefrom`).
    Convergence,
    /// 4a. A `nofailover` member (or `failover_priority: 0`) is never promoted unless an operator names it.
    NofailoverPromoted,
    /// 4b. Paused: no automatic promotion or demotion.
    PauseViolated,
    /// 4c. A `nosync` member is never made a synchronous standby (key or `synchronous_standby_names`).
    NosyncChosen,
    /// 5. Standby cluster: no member is ever writable while `standby_cluster` is configured.
    StandbyWritable,
    /// 6. Slots: a promoted member's copy of the permanent logical slot is never ahead of what its consumer
    ///    confirmed (changes would be skipped; Patroni promises at-least-once).
    SlotGap,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Invariant::SplitBrain => "split brain: two writable primaries",
            Invariant::LostAcknowledgedWrite => "acknowledged write lost by a failover",
            Invariant::LagBound => "promoted beyond maximum_lag_on_failover",
            Invariant::Convergence => "no convergence after faults stopped",
            Invariant::NofailoverPromoted => "nofailover member promoted automatically",
            Invariant::PauseViolated => "automatic action while paused",
            Invariant::NosyncChosen => "nosync member made synchronous",
            Invariant::StandbyWritable => "a member of a standby cluster accepts writes",
            Invariant::SlotGap => "logical slot ahead of its consumer after a failover",
        };
        f.write_str(text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Simulated milliseconds.
    pub at: i64,
    pub invariant: Invariant,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>10} VIOLATION {}: {}", crate::world::clock(self.at), self.invariant, self.detail)
    }
}
