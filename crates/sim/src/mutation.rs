//! Deliberately broken variants of the core, applied as filters around `Ha::step`, to prove the simulator fails
//! when the core is wrong. The checker always uses the real configuration.

use patroni_ha::{Action, DemoteMode, Observation, Plan, Settings, SyncMode};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// "Forgets to demote on lost lease": a primary that cannot read the DCS keeps running as primary (and no
    /// watchdog fences it).
    ForgetDemoteOnDcsLoss,
    /// "Skips the lag check": the core runs with `maximum_lag_on_failover = u64::MAX`.
    SkipLagCheck,
    /// A primary that sees another member holding the key does not step down.
    IgnoreOtherLeader,
    /// The runtime runs without a watchdog: a killed agent leaves its primary writable after the lease expires.
    NoWatchdog,
    /// The core is not told about the `nofailover` tag.
    IgnoreNofailover,
    /// The core is not told the cluster is paused.
    IgnorePause,
    /// Replicas never repoint `primary_conninfo` at a new leader.
    NeverFollow,
    /// Members not leading are not told about synchronous mode: any replica may win a race, the `sync` key unread.
    IgnoreSyncKey,
    /// The guardian fences at the leader key's expiry (`safety_margin` 0) instead of before it.
    GuardianMarginZero,
    /// Quorum mode: members racing for the key read `quorum: 0`, so they promote without comparing their position
    /// with enough voters.
    SkipQuorumVotes,
    /// The leader writes the `sync` key and changes `synchronous_standby_names` only a loop later: for that loop the
    /// key promises more than PostgreSQL waits for (a lower quorum, voters it does not wait for).
    SyncKeyFirst,
    /// The leader is not told about `nosync` tags.
    IgnoreNosync,
    /// The core is not told `standby_cluster` is configured (the bug of #18: its leader promotes).
    IgnoreStandbyCluster,
    /// Slots: the leader publishes its own WAL position for the logical slot instead of the slot's, so replicas
    /// advance their copies past what the consumer confirmed.
    SlotPositionIsLeaderLsn,
    /// Slots: member slots are never created.
    SkipMemberSlots,
}

impl Mutation {
    pub const ALL: [Mutation; 15] = [
        Mutation::ForgetDemoteOnDcsLoss,
        Mutation::SkipLagCheck,
        Mutation::IgnoreOtherLeader,
        Mutation::NoWatchdog,
        Mutation::IgnoreNofailover,
        Mutation::IgnorePause,
        Mutation::NeverFollow,
        Mutation::IgnoreSyncKey,
        Mutation::GuardianMarginZero,
        Mutation::SkipQuorumVotes,
        Mutation::SyncKeyFirst,
        Mutation::IgnoreNosync,
        Mutation::IgnoreStandbyCluster,
        Mutation::SlotPositionIsLeaderLsn,
        Mutation::SkipMemberSlots,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mutation::ForgetDemoteOnDcsLoss => "forget-demote-on-dcs-loss",
            Mutation::SkipLagCheck => "skip-lag-check",
            Mutation::IgnoreOtherLeader => "ignore-other-leader",
            Mutation::NoWatchdog => "no-watchdog",
            Mutation::IgnoreNofailover => "ignore-nofailover",
            Mutation::IgnorePause => "ignore-pause",
            Mutation::NeverFollow => "never-follow",
            Mutation::IgnoreSyncKey => "ignore-sync-key",
            Mutation::GuardianMarginZero => "guardian-margin-0",
            Mutation::SkipQuorumVotes => "skip-quorum-votes",
            Mutation::SyncKeyFirst => "sync-key-first",
            Mutation::IgnoreNosync => "ignore-nosync",
            Mutation::IgnoreStandbyCluster => "ignore-standby-cluster",
            Mutation::SlotPositionIsLeaderLsn => "slot-position-is-leader-lsn",
            Mutation::SkipMemberSlots => "skip-member-slots",
        }
    }

    pub fn parse(s: &str) -> Option<Mutation> {
        Mutation::ALL.into_iter().find(|m| m.name() == s)
    }

    /// What the broken core is configured with, before it steps (`leading`: it held the key at its last step).
    pub fn settings(self, s: &mut Settings, leading: bool) {
        match self {
            Mutation::SkipLagCheck => s.maximum_lag_on_failover = u64::MAX,
            Mutation::IgnoreNofailover => s.tags.nofailover = false,
            Mutation::IgnorePause => s.pause = false,
            Mutation::IgnoreStandbyCluster => s.standby_cluster = false,
            // The leader still maintains the `sync` key and PostgreSQL's list, so writes are still acknowledged.
            Mutation::IgnoreSyncKey if !leading => s.sync_mode = SyncMode::Off,
            _ => {}
        }
    }

    /// What the broken core is shown, before it steps (`leading`: it held the key at its last step).
    pub fn observation(self, obs: &mut Observation, leading: bool) {
        let Some(c) = obs.cluster.as_mut() else { return };
        match self {
            Mutation::SkipQuorumVotes if !leading => c.sync.quorum = 0,
            Mutation::IgnoreNosync if leading => c.members.iter_mut().for_each(|m| m.tags.nosync = false),
            _ => {}
        }
    }

    /// What the broken core would have answered, given the real one's plan.
    pub fn plan(self, obs: &Observation, plan: &mut Plan) {
        match self {
            Mutation::ForgetDemoteOnDcsLoss if obs.cluster.is_none() => {
                plan.actions.retain(|a| !matches!(a, Action::Demote { .. }));
            }
            Mutation::NeverFollow => plan.actions.retain(|a| !matches!(a, Action::Follow { .. })),
            Mutation::SyncKeyFirst if plan.actions.iter().any(|a| matches!(a, Action::SetSyncState { .. })) => {
                plan.actions.retain(|a| !matches!(a, Action::SetSyncStandbys { .. }));
            }
            Mutation::IgnoreOtherLeader => {
                plan.actions.retain(|a| !matches!(a, Action::Demote { mode: DemoteMode::ImmediateNoLock, .. }));
            }
            _ => {}
        }
    }

    /// The runtime runs without a watchdog. Also for a core that forgets to demote when the DCS is lost: the
    /// watchdog, armed while PostgreSQL runs as primary, would fence that primary anyway, and the mutation is
    /// about whether the checker sees the core's own mistake.
    pub fn disables_watchdog(self) -> bool {
        matches!(self, Mutation::NoWatchdog | Mutation::ForgetDemoteOnDcsLoss)
    }

    pub fn zero_guardian_margin(self) -> bool {
        self == Mutation::GuardianMarginZero
    }
}
