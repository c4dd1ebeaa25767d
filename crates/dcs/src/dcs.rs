//! The interface between the HA loop and a distributed configuration store.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset};
use indexmap::IndexMap;

use crate::error::DcsResult;
use crate::model::{Cluster, Failover, Failsafe, Leader, MemberData, Status, SyncState, Version};

/// One node's view of the DCS, bound to its member name and (for etcd) its lease.
///
/// Every call returns within `retry_timeout` (a `watch` within its own `timeout`): `Err(Unreachable)` when no
/// endpoint answered in time. Conditional writes report a condition that did not hold as
/// `Err(DcsError::CompareFailed)`, never as `Unreachable`.
///
/// Implementations use interior mutability so that one instance can be shared by the HA loop and the REST API.
#[async_trait]
pub trait Dcs: Send + Sync {
    /// This node's member name.
    fn name(&self) -> &str;

    fn ttl(&self) -> Duration;
    /// New TTL for the leader and member keys; takes effect at the next write (a new lease is granted).
    fn set_ttl(&self, ttl: Duration);
    fn retry_timeout(&self) -> Duration;
    fn set_retry_timeout(&self, retry_timeout: Duration);

    /// One consistent snapshot of the cluster.
    async fn get_cluster(&self) -> DcsResult<Cluster>;

    /// Creates the leader key with our name, bound to our lease, only if it does not exist.
    /// `CompareFailed` when someone else holds it.
    async fn attempt_to_acquire_leader(&self) -> DcsResult<()>;

    /// Writes the leader key unconditionally (initial bootstrap only).
    async fn take_leader(&self) -> DcsResult<()>;

    /// Refreshes our leader key (and its lease) only while it still holds our name; then writes `status` (when
    /// given) and `failsafe` (when given). `CompareFailed` when the key is gone or held by someone else.
    async fn update_leader(
        &self,
        cluster: &Cluster,
        status: Option<&Status>,
        failsafe: Option<&Failsafe>,
    ) -> DcsResult<()>;

    /// Writes the last WAL position to `status` (when given), then deletes the leader key only if it is ours.
    async fn delete_leader(&self, leader: &Leader, last_lsn: Option<u64>) -> DcsResult<()>;

    /// Publishes our member key, bound to our lease so that it vanishes `ttl` after we stop.
    async fn touch_member(&self, data: &MemberData) -> DcsResult<()>;

    /// Writes `initialize` with the system identifier. With `create_new` only if absent (the bootstrap race);
    /// otherwise overwrites (setting the sysid after bootstrap).
    async fn initialize(&self, create_new: bool, sysid: &str) -> DcsResult<()>;
    async fn cancel_initialization(&self) -> DcsResult<()>;

    /// Writes `config`; with `version` only if the key still has it (`CompareFailed` otherwise).
    async fn set_config_value(&self, value: &str, version: Option<Version>) -> DcsResult<()>;

    /// Writes `failover`; with `version` only if the key still has it.
    async fn set_failover_value(&self, value: &str, version: Option<Version>) -> DcsResult<()>;

    /// Deletes `failover`; with `version` only if the key still has it.
    async fn delete_failover(&self, version: Option<Version>) -> DcsResult<()>;

    /// Writes `sync`; with `version` only if the key still has it, without unconditionally.
    /// Returns the new version of the key.
    async fn set_sync_state_value(&self, value: &str, version: Option<Version>) -> DcsResult<Version>;

    async fn delete_sync_state(&self, version: Option<Version>) -> DcsResult<()>;

    async fn set_history_value(&self, value: &str) -> DcsResult<()>;

    /// Writes `status` (and the legacy `optime/leader` while members older than Patroni 2.1 are present).
    async fn write_status(&self, status: &Status) -> DcsResult<()>;

    async fn write_failsafe(&self, failsafe: &Failsafe) -> DcsResult<()>;

    /// Removes every key of this cluster.
    async fn delete_cluster(&self) -> DcsResult<()>;

    /// Blocks until the leader key differs from `leader_version` (or, whatever the version, the leader key, the
    /// config, the failover request or — when we are not the leader — the leader's status changes), until
    /// [`Dcs::wakeup`] is called, or until `timeout` passes. Returns whether it was woken before the timeout.
    /// A DCS that cannot be reached makes it sleep out the timeout: the next `get_cluster` reports that.
    async fn watch(&self, leader_version: Option<Version>, timeout: Duration) -> DcsResult<bool>;

    /// Ends a running `watch` early (e.g. the REST API received a switchover request).
    fn wakeup(&self);

    /// Builds the `failover` value as Patroni does and writes it.
    async fn manual_failover(
        &self,
        leader: Option<&str>,
        candidate: Option<&str>,
        scheduled_at: Option<&DateTime<FixedOffset>>,
        version: Option<Version>,
    ) -> DcsResult<()> {
        self.set_failover_value(&Failover::value_json(leader, candidate, scheduled_at), version).await
    }

    /// Builds the `sync` value as Patroni does (standbys sorted, comma separated) and writes it.
    async fn write_sync_state(
        &self,
        leader: Option<&str>,
        sync_standby: &[String],
        quorum: u32,
        version: Option<Version>,
    ) -> DcsResult<SyncState> {
        let value = SyncState::value_json(leader, sync_standby, quorum);
        let new_version = self.set_sync_state_value(&value, version).await?;
        let mut sorted = sync_standby.to_vec();
        sorted.sort();
        Ok(SyncState { version: Some(new_version), leader: leader.map(String::from), sync_standby: sorted, quorum })
    }

    /// Writes only the last leader WAL position, keeping the slots last published.
    async fn write_leader_optime(&self, last_lsn: u64) -> DcsResult<()>;
}

/// Slot positions as the leader publishes them in `status`.
pub type SlotPositions = IndexMap<String, u64>;
