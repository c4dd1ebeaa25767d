//! What the HA core asks the runtime to do.

use crate::time::Time;
use crate::view::{Lsn, Name};

/// How to step down from being the primary. The four ways Patroni knows, named after what operators see.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DemoteMode {
    /// The DCS cannot be reached: stop PostgreSQL (fast) and start it again read-only, following nobody, until the
    /// DCS answers again. The leader key cannot be released; it expires.
    Offline,
    /// Switchover: checkpoint, stop (fast), release the leader key with the final LSN so the candidate sees exactly
    /// how far we got, then start again as a replica.
    Graceful,
    /// Stop at once, release the key, start as a replica.
    Immediate,
    /// Someone else holds the key (or ours is gone): stop at once and start as a replica. The key is not ours.
    ImmediateNoLock,
}

impl Action {
    /// Runs in the background (the member is `busy` meanwhile).
    pub fn is_long(&self) -> bool {
        matches!(
            self,
            Action::Bootstrap
                | Action::BootstrapStandby
                | Action::StartStandbyLeader
                | Action::DemoteCluster
                | Action::CreateReplica { .. }
                | Action::StartPrimary
                | Action::StartReplica { .. }
                | Action::Rewind { .. }
                | Action::Reinitialize { .. }
                | Action::Promote
                | Action::Demote { .. }
                | Action::Restart
                | Action::ScheduledRestart
        )
    }
}

impl DemoteMode {
    pub fn releases_key(self) -> bool {
        matches!(self, DemoteMode::Graceful | DemoteMode::Immediate)
    }
}

/// One step for the runtime. Actions of one plan run in order; the runtime stops at the first that fails and
/// reports it in the next [`Observation`](crate::Observation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create the `initialize` key if absent (empty value: "bootstrap in progress"). Outcome: `InitializeRace`.
    AttemptInitialize,
    /// Write our system identifier into the `initialize` key once the bootstrap succeeded.
    SetInitialize {
        sysid: String,
    },
    /// Delete the `initialize` key after a failed bootstrap so another member can try.
    CancelInitialize,
    /// Long: initdb (or the custom method), start PostgreSQL as primary, create roles, run post_bootstrap.
    Bootstrap,
    /// Long, standby cluster only: make the empty data directory a copy of the remote primary named in
    /// `standby_cluster` (with its `create_replica_methods`, e.g. a restore from backup), then start it as the
    /// standby leader following that primary.
    BootstrapStandby,
    /// Long, standby cluster only: start PostgreSQL in recovery as the standby leader, following the remote primary
    /// (`standby_cluster.host:port`, `primary_slot_name`, `restore_command`...).
    StartStandbyLeader,
    /// Standby cluster only: point the running PostgreSQL's recovery at the remote primary and take the role
    /// `standby_leader` (`on_role_change` fires when the role changes). Nothing happens when all is in effect.
    FollowRemote,
    /// Long: a primary in a cluster that became a standby cluster: stop it (fast), archive the WAL file with the
    /// shutdown checkpoint when archiving is on, and start it as the standby leader following the remote primary.
    /// The leader key is kept.
    DemoteCluster,
    /// Long: make this an empty data directory a copy of `from` (leader or `clonefrom` member).
    CreateReplica {
        from: Option<Name>,
    },
    /// Long: start PostgreSQL as the primary it was before it crashed (no promotion, no new timeline).
    StartPrimary,
    /// PostgreSQL, a primary a moment ago, failed to start again: publish the role `demoted` and fire
    /// `on_role_change` with it.
    MarkDemoted,
    /// Long: start PostgreSQL as a replica streaming from `follow` (or not streaming at all when `None`).
    StartReplica {
        follow: Option<Name>,
    },
    /// Point `primary_conninfo` at another member (reload or restart as PostgreSQL needs).
    Follow {
        leader: Option<Name>,
    },
    /// Compare the local WAL history with that of the primary `against` (`None`: the remote primary of a standby
    /// cluster), PostgreSQL running or not. Outcome: `Divergence` (also when the check could not be made).
    CheckDivergence {
        against: Option<Name>,
    },
    /// Long: `pg_rewind` from `from` (`None`: the remote primary of a standby cluster), then start as its replica
    /// (as the standby leader when `from` is the remote primary). A failure removes the data directory where
    /// `remove_data_directory_on_rewind_failure` (or `_on_diverged_timelines`) says so.
    Rewind {
        from: Option<Name>,
    },
    /// Long: remove the data directory and clone again from `from`.
    Reinitialize {
        from: Option<Name>,
    },
    Promote,
    /// Stop being the primary; afterwards (except `Offline`) start as a replica of `follow`.
    Demote {
        mode: DemoteMode,
        follow: Option<Name>,
    },
    /// Long: restart PostgreSQL in its current role.
    Restart,
    /// Long: the restart scheduled through the REST API is due: restart if its conditions (role, version, pending
    /// restart) still hold. The schedule is cleared either way.
    ScheduledRestart,
    /// The scheduled restart is stale (due more than 1.5 loops ago, e.g. the agent was down): forget it.
    ClearScheduledRestart,
    Reload,
    /// Create the leader key bound to our session. Outcome: `LeaderRace`.
    AcquireLeader,
    /// Refresh the leader key (only while it is ours) and publish our WAL position. Outcome: `LeaderRefresh`.
    UpdateLeader {
        lsn: Option<Lsn>,
    },
    /// Delete the leader key if it is ours, recording our last WAL position.
    ReleaseLeader {
        lsn: Option<Lsn>,
    },
    /// Ask these members' REST APIs for their state (in parallel, each with a timeout).
    FetchPeers {
        members: Vec<Name>,
    },
    /// Delete the `failover` key: the request was carried out or cannot be.
    ClearFailover,
    /// Bring the `history` key up to date with the local timeline history (after a promotion); the runtime reads
    /// the switch points from PostgreSQL's timeline history files.
    UpdateHistory,
    /// Write the `sync` key (compare-and-set on the version last read, or last written in this plan).
    SetSyncState {
        leader: Name,
        standbys: Vec<Name>,
        quorum: usize,
    },
    /// Delete the `sync` key (compare-and-set): synchronous mode was turned off.
    DeleteSyncState,
    /// Set `synchronous_standby_names` on the local PostgreSQL: `names` (`*` for any standby), `num` of them
    /// (`None`: all listed), as `ANY num (...)` when `any`. No names and no `num` unsets it (the configured value
    /// applies again).
    SetSyncStandbys {
        names: Vec<Name>,
        num: Option<usize>,
        any: bool,
    },
    /// Write the `failsafe` key: every member that may take part in a DCS-less leader decision.
    WriteFailsafe {
        members: Vec<Name>,
    },
    /// DCS unreachable in failsafe mode: ask every member listed in `failsafe` to confirm us. Outcome: `Failsafe`.
    CheckFailsafe {
        members: Vec<Name>,
    },
    /// Activate the watchdog with this timeout (seconds), or change the timeout of the active one; without a
    /// watchdog device, arm the guardian. From now on the runtime keeps it alive after each successful refresh of
    /// the leader key. Outcome: `WatchdogArmed` (failure only counts in `required` mode).
    ArmWatchdog {
        timeout: i64,
    },
    /// Close the watchdog with the magic character and disarm the guardian: we are no longer the leading primary.
    DisarmWatchdog,
    /// Stop the agent: continuing would harm the cluster (wrong system identifier...).
    Fatal {
        reason: String,
    },
}

/// What happened to the actions of the previous plan that the next decision depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    InitializeRace {
        won: bool,
    },
    LeaderRace {
        won: bool,
    },
    LeaderRefresh {
        ok: bool,
    },
    Failsafe {
        confirmed: bool,
    },
    WatchdogArmed {
        ok: bool,
    },
    /// What a `CheckDivergence` against this primary found.
    Divergence {
        against: Option<Name>,
        result: Divergence,
    },
}

/// Whether the local WAL history is one the primary's continues (Patroni's `_check_timeline_and_lsn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// Streaming from it can simply go on.
    NotDiverged,
    /// We hold WAL the primary never had. `rewind_possible`: `pg_control` says `wal_log_hints` or data checksums
    /// are on, so `pg_rewind` can run.
    Diverged { rewind_possible: bool },
    /// Not checked: the primary is unreachable, still in recovery, or the local position is unknown.
    Unknown,
}

/// How loud a [`Plan::log`] line is, in Patroni's levels.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Warning,
}

/// The core's answer to one step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// The line Patroni logs at INFO for this loop ("no action. I am (pg1), the leader with the lock").
    pub status: String,
    /// The reasons Patroni logs on their own lines before the status (who is ahead in a race, why a member may not
    /// promote): operators grep for them.
    pub log: Vec<(LogLevel, String)>,
    /// Run the actions, then step again at once with fresh observations (a race or a fetch is in flight).
    pub again: bool,
    /// Earliest time something scheduled is due (a scheduled switchover, a start timeout), for the runtime's sleep.
    pub wake_at: Option<Time>,
}

impl Plan {
    pub(crate) fn status(status: impl Into<String>) -> Plan {
        Plan { status: status.into(), ..Plan::default() }
    }

    pub(crate) fn with(mut self, action: Action) -> Plan {
        self.actions.push(action);
        self
    }

    pub(crate) fn log(mut self, level: LogLevel, line: impl Into<String>) -> Plan {
        self.log.push((level, line.into()));
        self
    }

    pub(crate) fn again(mut self) -> Plan {
        self.again = true;
        self
    }

    pub(crate) fn wake(mut self, at: Time) -> Plan {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
        self
    }
}
