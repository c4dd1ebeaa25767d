//! The local PostgreSQL as the runtime drives it: observation and the operations behind the HA core's actions.

use async_trait::async_trait;
use patroni_dcs::HistoryLine;
use patroni_ha::LocalState;
use std::sync::Arc;
use tokio::sync::Notify;

use crate::member::LocalDetails;
pub use patroni_postgres::standby::RemotePrimary;

/// Another member to stream or copy from: its name and the `conn_url` it publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub name: String,
    pub conn_url: String,
}

/// The primary whose history ours is compared with, and rewound from.
#[derive(Clone, Debug)]
pub enum HistorySource {
    /// The leader of this cluster.
    Member(Upstream),
    /// The remote primary a standby cluster follows.
    Remote(RemotePrimary),
}

/// How to stop PostgreSQL.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// `pg_ctl stop -m fast` after a checkpoint: the switchover path, so the candidate has every WAL record.
    FastWithCheckpoint,
    Fast,
    Immediate,
}

/// A failed operation on the local PostgreSQL, already worded for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NodeError(pub String);

impl NodeError {
    pub fn new(msg: impl Into<String>) -> NodeError {
        NodeError(msg.into())
    }
}

pub type NodeResult<T> = Result<T, NodeError>;

/// The operations the runtime needs from the local PostgreSQL. One implementation drives a real server
/// ([`crate::pg::PgNode`]); the seam keeps the loop readable and lets its plumbing be tested without one.
#[async_trait]
pub trait Node: Send + Sync + 'static {
    /// The HA core's view of the local server plus what the member key and the REST API publish.
    async fn observe(&self) -> (LocalState, LocalDetails);
    /// Fires when the postmaster exits without being asked to, so a crash is handled at once.
    fn crash_notify(&self) -> Arc<Notify>;

    /// initdb (or the custom bootstrap method), start as primary, create the configured roles and run
    /// `post_bootstrap`.
    async fn bootstrap(&self) -> NodeResult<()>;
    /// The local (`patroni.yml`, after a reload) or dynamic configuration changed: rewrite `postgresql.conf` and
    /// reload (a restart stays pending).
    async fn configure(
        &self,
        config: &patroni_config::Config,
        dynamic: &patroni_config::DynamicConfig,
    ) -> NodeResult<()>;
    /// Clone from `from`, or with a replica method that needs no running source when `None` (`no_leader`), then
    /// start as a replica.
    async fn create_replica(&self, from: Option<&Upstream>) -> NodeResult<()>;
    /// Start again as the primary it was before it crashed (no promotion).
    async fn start_primary(&self) -> NodeResult<()>;
    /// A primary that failed to start: its role becomes `demoted` (`on_role_change` fires with it).
    async fn mark_demoted(&self);
    async fn start_replica(&self, upstream: Option<&Upstream>) -> NodeResult<()>;
    /// Point a running replica at another upstream (reload, or restart when PostgreSQL needs it).
    async fn follow(&self, upstream: Option<&Upstream>) -> NodeResult<()>;
    async fn promote(&self) -> NodeResult<()>;
    /// Stops and returns the last WAL position (the checkpoint location from `pg_controldata`).
    async fn stop(&self, how: Stop) -> NodeResult<Option<u64>>;
    async fn restart(&self) -> NodeResult<()>;
    async fn reload(&self) -> NodeResult<()>;
    /// Compare our WAL history with `against`'s (PostgreSQL running read-only or stopped); anything that prevents
    /// the comparison is logged and answered `Unknown`.
    async fn check_divergence(&self, against: &HistorySource) -> patroni_ha::Divergence;
    /// Stop, `pg_rewind` from `from`, then start as its replica (as the standby leader when it is the remote primary).
    async fn rewind(&self, from: &HistorySource) -> NodeResult<()>;
    /// Remove the data directory (moved aside) and clone again.
    async fn reinitialize(&self, from: &Upstream) -> NodeResult<()>;
    /// `synchronous_standby_names` for `names` (`num` of them, `ANY` when `any`), as the HA core decided.
    async fn set_sync_standbys(&self, names: &[String], num: Option<usize>, any: bool) -> NodeResult<()>;
    /// As the primary: a physical replication slot for each of these members (`use_slots`). Skipped while a long
    /// action holds PostgreSQL (the next cycle does it), so the loop never waits on it.
    async fn ensure_slots(&self, members: &[String]) -> NodeResult<()>;
    /// About to take the leader key: slots for these members that reserve no WAL yet, so replicas that follow us
    /// the moment the key changes find them (same skip rule).
    async fn prepare_slots(&self, members: &[String]) -> NodeResult<()>;
    /// The timeline switches recorded in PostgreSQL's history files, for the `history` key.
    async fn timeline_history(&self) -> NodeResult<Vec<HistoryLine>>;
    /// The replication slots the slot plan manages, with the version and replay position (`None` while a long
    /// action holds PostgreSQL or it is not running).
    async fn observe_slots(&self) -> NodeResult<Option<crate::slots::SlotObservation>> {
        Ok(None)
    }
    /// Runs a slot plan's drops, creations and advances, each bounded; failures are logged and the rest goes on.
    async fn run_slot_plan(&self, _plan: &patroni_ha::slots::SlotPlan) {}
    /// Long: copies the logical slots `names` from the primary `from` (a restart of this replica).
    async fn copy_logical_slots(
        &self,
        _from: &Upstream,
        _names: &[String],
        _wanted: &[(String, patroni_ha::slots::SlotKind)],
    ) -> NodeResult<()> {
        Ok(())
    }

    /// Standby cluster: clone the empty data directory from the remote primary (with `create_replica_methods`),
    /// then start it as the standby leader.
    async fn bootstrap_standby(&self, remote: &RemotePrimary) -> NodeResult<()>;
    /// Standby cluster: run PostgreSQL in recovery following the remote primary, as the standby leader (started
    /// when down, reloaded or restarted when its recovery settings changed, left alone otherwise).
    async fn follow_remote(&self, remote: &RemotePrimary) -> NodeResult<()>;
    /// A primary whose cluster became a standby cluster: stop it (fast), archive the WAL file with the shutdown
    /// checkpoint, and start it as the standby leader. Returns the shutdown checkpoint's position.
    async fn demote_cluster(&self, remote: &RemotePrimary) -> NodeResult<Option<u64>>;
}
