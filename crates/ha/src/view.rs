//! What the HA core is told: the cluster as the DCS shows it, the local PostgreSQL, peers' answers and settings.
//!
//! These are projections made by the runtime (or a simulator): only the facts a decision needs, already parsed
//! and validated. The core never sees JSON, key names or connection strings.

use crate::time::{Millis, Time};

/// A member's name, as it appears in the DCS and in `patronictl list`.
pub type Name = String;

/// A WAL position in bytes (what PostgreSQL prints as `X/Y`).
pub type Lsn = u64;

/// The cluster as one consistent DCS read shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    /// The `initialize` key: `None` when absent (nobody has started bootstrapping), `Some("")` while the winner of
    /// the initialize race is bootstrapping, `Some(sysid)` once the cluster exists.
    pub initialize: Option<String>,
    /// The holder of the leader key, if any.
    pub leader: Option<Name>,
    pub members: Vec<MemberView>,
    /// The leader's last published WAL position (the `status` / `optime/leader` key).
    pub last_leader_lsn: Option<Lsn>,
    /// The timeline the cluster is on, from the `history` key (its last entry + 1), when known.
    pub timeline: Option<u32>,
    pub failover: Option<FailoverRequest>,
    pub sync: SyncView,
    /// Members listed in the `failsafe` key, when it exists.
    pub failsafe: Option<Vec<Name>>,
}

impl ClusterView {
    pub fn member(&self, name: &str) -> Option<&MemberView> {
        self.members.iter().find(|m| m.name == name)
    }

    pub fn is_unlocked(&self) -> bool {
        self.leader.is_none()
    }
}

/// One `members/<name>` key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemberView {
    pub name: Name,
    /// `role` as published: "primary", "replica", "standby_leader"...
    pub role: PgRole,
    /// Whether PostgreSQL is running there, as the member last published (`state: running`).
    pub running: bool,
    pub lsn: Option<Lsn>,
    pub timeline: Option<u32>,
    pub tags: Tags,
}

/// A switchover or failover request: the `failover` key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailoverRequest {
    /// The leader the request was made against; a switchover names it, a failover may not.
    pub leader: Option<Name>,
    /// The member to promote; `None` means "the healthiest".
    pub candidate: Option<Name>,
    /// When to act; `None` means now.
    pub scheduled_at: Option<Time>,
}

/// The `sync` key: who is allowed to promote in synchronous mode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncView {
    /// The leader the sync state was written by.
    pub leader: Option<Name>,
    /// `sync_standby`: the synchronous standbys (`on`) or the voters (`quorum`).
    pub standbys: Vec<Name>,
    /// `quorum`: how many of the voters and the leader besides itself a member racing for the key must hear from.
    pub quorum: usize,
}

impl SyncView {
    pub fn is_sync_standby(&self, name: &str) -> bool {
        self.leader.is_some() && self.standbys.iter().any(|s| s == name)
    }

    /// No leader written: synchronous replication is not active (yet), whatever the configuration asks.
    pub fn is_empty(&self) -> bool {
        self.leader.is_none()
    }

    /// The leader and the standbys it wrote: the voting set in quorum mode.
    pub fn members(&self) -> Vec<Name> {
        match &self.leader {
            Some(l) => std::iter::once(l.clone()).chain(self.standbys.iter().cloned()).collect(),
            None => Vec::new(),
        }
    }

    /// Listed as a standby, or (with `or_leader`) as the leader that wrote the key.
    pub fn matches(&self, name: &str, or_leader: bool) -> bool {
        self.is_sync_standby(name) || (or_leader && self.leader.as_deref() == Some(name))
    }
}

/// `synchronous_standby_names` as PostgreSQL runs with it, parsed (by the runtime) into what decisions read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStandbyNames {
    /// `ANY n (...)`: quorum commit; otherwise priority (`FIRST n (...)`, `n (...)`, a plain list).
    pub any: bool,
    /// How many standbys a commit waits for (0 when the value is empty).
    pub num: usize,
    /// The names listed, `*` excluded.
    pub names: Vec<Name>,
    /// `*` is listed: any standby counts, so no name in particular is synchronous.
    pub star: bool,
}

/// The tags the HA decisions read; user tags stay outside the core.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tags {
    /// Never promote automatically. Derived as Patroni does: an explicit `nofailover` tag decides, even beside a
    /// `failover_priority` that says otherwise; without it, a `failover_priority` of 0 or less sets it.
    pub nofailover: bool,
    /// Higher wins a tie on WAL position (0 under `nofailover`).
    pub failover_priority: i64,
    pub nosync: bool,
    /// `sync_priority`: higher is chosen as a synchronous standby first (0 under `nosync`).
    pub sync_priority: i64,
    /// Stream from this member instead of the leader (cascading replication).
    pub replicatefrom: Option<Name>,
    /// Prefer this member as the source of a new replica.
    pub clonefrom: bool,
    pub nostream: bool,
}

impl Tags {
    /// Whether the member may ever be promoted without an operator naming it.
    /// Patroni asks only `nofailover`: `nofailover: false` with `failover_priority: 0` may be promoted.
    pub fn can_fail_over(&self) -> bool {
        !self.nofailover
    }
}

/// What PostgreSQL is doing as a role.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum PgRole {
    Primary,
    Replica,
    StandbyLeader,
    /// A former primary that was stopped to step down (or failed to start again) and has not yet started as a
    /// replica: what Patroni publishes and passes to `on_role_change` in between.
    Demoted,
    #[default]
    Unknown,
}

/// `Database cluster state` of `pg_control`, as far as decisions about a stopped PostgreSQL need it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum ControlState {
    InProduction,
    InCrashRecovery,
    ShuttingDown,
    ShutDown,
    ShutDownInRecovery,
    InArchiveRecovery,
    #[default]
    Other,
}

impl ControlState {
    /// The control file of a server that ran as a primary until it stopped or crashed: it may start as a primary
    /// again without a promotion (and so without a new timeline).
    pub fn was_primary(self) -> bool {
        matches!(
            self,
            ControlState::InProduction
                | ControlState::InCrashRecovery
                | ControlState::ShuttingDown
                | ControlState::ShutDown
        )
    }
}

/// The local PostgreSQL, as the runtime found it just before this step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LocalState {
    pub data_dir: DataDir,
    pub process: Process,
    /// While running: `pg_is_in_recovery()`. Otherwise the role PostgreSQL last had under this agent (`Unknown`
    /// when it never ran here), so a crash of a primary can be told from a crash of a replica.
    pub role: PgRole,
    /// `pg_control`'s state, read after a crash (`None` otherwise, or when unreadable).
    pub control_state: Option<ControlState>,
    /// `standby.signal` or `recovery.signal` (or `recovery.conf`) is present: a start would be a standby.
    pub recovery_configured: bool,
    /// Write LSN on a primary, the furthest of received/replayed on a replica.
    pub lsn: Option<Lsn>,
    pub timeline: Option<u32>,
    /// The member our `primary_conninfo` points at, when we are configured as a replica.
    pub following: Option<Name>,
    /// Replication connections to us (`pg_stat_replication`), when we are the primary.
    pub replication: Vec<ReplicaConn>,
    /// `synchronous_standby_names` as the running PostgreSQL has it (empty when unset, unparsable or stopped).
    pub sync_standby_names: SyncStandbyNames,
    /// A long-running action the runtime is executing for us (bootstrap, clone, rewind, restart...).
    pub busy: Option<Busy>,
    /// The last long action ended in failure (so the core does not retry it blindly every loop).
    pub last_failure: Option<Busy>,
    /// The watchdog (or guardian) as the runtime last left it.
    pub watchdog: crate::watchdog::WatchdogState,
}

/// One row of `pg_stat_replication`, by `application_name` (the member name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaConn {
    pub name: Name,
    pub streaming: bool,
    /// `sync_state` is `sync` or `quorum`: commits wait for this standby.
    pub synchronous: bool,
    /// `flush_lsn` (or `write_lsn` when flush is unknown).
    pub lsn: Option<Lsn>,
    pub write_lsn: Option<Lsn>,
    pub replay_lsn: Option<Lsn>,
}

impl ReplicaConn {
    /// The position a commit waits for under `synchronous_commit`.
    pub fn acknowledged(&self, commit: SyncCommit) -> Option<Lsn> {
        match commit {
            SyncCommit::Flush => self.lsn,
            SyncCommit::Write => self.write_lsn.or(self.lsn),
            SyncCommit::Apply => self.replay_lsn,
        }
    }
}

/// What `synchronous_commit` makes a commit wait for on a synchronous standby.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum SyncCommit {
    /// `on` (and anything else that waits): flushed to disk.
    #[default]
    Flush,
    /// `remote_write`.
    Write,
    /// `remote_apply`: replayed.
    Apply,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DataDir {
    /// Absent or empty: this member must bootstrap or clone before it can run PostgreSQL.
    #[default]
    Empty,
    /// A PostgreSQL data directory with this system identifier.
    Initialized { sysid: String },
}

/// The postmaster, as the process watcher sees it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Process {
    #[default]
    Stopped,
    /// Started and not yet accepting connections.
    Starting {
        since: Time,
    },
    Running,
    /// Exited without being asked to.
    Crashed {
        at: Time,
    },
}

impl Process {
    pub fn is_running(self) -> bool {
        matches!(self, Process::Running)
    }
}

/// Long actions the runtime runs in the background while the loop goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Busy {
    Bootstrapping,
    CreatingReplica,
    Rewinding,
    Reinitializing,
    Starting,
    Stopping,
    Restarting,
    Promoting,
    Demoting,
}

impl Busy {
    /// The member `state` Patroni publishes while this runs (`/patroni`, the member key, `patronictl list`): the
    /// one table of these words, for the agent and the REST API alike.
    pub fn state_text(&self) -> &'static str {
        match self {
            Busy::Bootstrapping => "running custom bootstrap script",
            Busy::CreatingReplica | Busy::Reinitializing => "creating replica",
            Busy::Rewinding => "running pg_rewind",
            Busy::Starting => "starting",
            Busy::Restarting => "restarting",
            Busy::Stopping | Busy::Demoting => "stopping",
            // PostgreSQL stays `running` while it is promoted; the role tells the rest.
            Busy::Promoting => "running",
        }
    }

    /// The action as Patroni names it in its "<action> in progress" and "updated leader lock during <action>" lines.
    pub fn action_text(&self) -> &'static str {
        match self {
            Busy::Bootstrapping => "bootstrap",
            Busy::CreatingReplica => "creating replica",
            Busy::Reinitializing => "reinitialize",
            Busy::Rewinding => "running pg_rewind",
            Busy::Starting => "starting",
            Busy::Restarting => "restart",
            Busy::Stopping => "stopping",
            Busy::Demoting => "demote",
            Busy::Promoting => "promote",
        }
    }
}

/// A peer's answer to `GET /patroni` during a leader race.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerStatus {
    pub name: Name,
    /// `None` when the peer did not answer in time.
    pub reply: Option<PeerReply>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PeerReply {
    pub role: PgRole,
    pub running: bool,
    pub lsn: Option<Lsn>,
    pub timeline: Option<u32>,
    pub tags: Tags,
}

/// Synchronous replication as the dynamic configuration asks for it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    #[default]
    Off,
    On,
    Quorum,
}

/// The settings a decision reads: local and dynamic configuration already merged.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub name: Name,
    pub ttl: Millis,
    pub loop_wait: Millis,
    pub retry_timeout: Millis,
    pub maximum_lag_on_failover: u64,
    pub check_timeline: bool,
    pub primary_start_timeout: Millis,
    pub sync_mode: SyncMode,
    pub sync_strict: bool,
    pub sync_node_count: usize,
    /// `maximum_lag_on_syncnode`: a standby further behind than this (bytes, at the position `synchronous_commit`
    /// waits for) is not chosen as synchronous; `None` when unset or `-1`.
    pub maximum_lag_on_syncnode: Option<u64>,
    pub sync_commit: SyncCommit,
    pub pause: bool,
    pub failsafe_mode: bool,
    /// `watchdog.mode`: whether a watchdog device is used, and whether leadership requires one.
    pub watchdog_mode: crate::watchdog::WatchdogMode,
    /// `watchdog.safety_margin`: seconds between the watchdog firing and the leader key expiring (-1: ttl/2).
    pub watchdog_safety_margin: i64,
    /// The guardian (a separate process that stops PostgreSQL when the leader key is not renewed in time) is armed
    /// while leading when no watchdog device is.
    pub guardian: bool,
    pub use_pg_rewind: bool,
    pub remove_data_directory_on_diverged_timelines: bool,
    /// A `create_replica_methods` entry works without a running leader (`no_leader`), e.g. a restore from backup.
    pub replica_without_leader: bool,
    /// `standby_cluster` is in the effective dynamic configuration (with a host, port or restore_command): the
    /// leader follows a remote primary as the standby leader, and no member of this cluster is ever promoted.
    pub standby_cluster: bool,
    pub tags: Tags,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            name: String::new(),
            ttl: Millis::from_secs(30),
            loop_wait: Millis::from_secs(10),
            retry_timeout: Millis::from_secs(10),
            maximum_lag_on_failover: 1_048_576,
            check_timeline: false,
            primary_start_timeout: Millis::from_secs(300),
            sync_mode: SyncMode::Off,
            sync_strict: false,
            sync_node_count: 1,
            maximum_lag_on_syncnode: None,
            sync_commit: SyncCommit::Flush,
            pause: false,
            failsafe_mode: false,
            watchdog_mode: crate::watchdog::WatchdogMode::Off,
            watchdog_safety_margin: 5,
            guardian: false,
            use_pg_rewind: false,
            remove_data_directory_on_diverged_timelines: false,
            replica_without_leader: false,
            standby_cluster: false,
            tags: Tags { failover_priority: 1, ..Tags::default() },
        }
    }
}
