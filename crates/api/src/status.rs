//! The snapshot the HA loop publishes and every read-only endpoint answers from.
//!
//! The agent builds a fresh [`NodeStatus`] after each HA cycle (and whenever PostgreSQL facts
//! change) and sends it through a `tokio::sync::watch` channel; handlers only ever read the
//! latest value, so a slow DCS or a long restart never delays a health check.

use crate::cluster::ClusterDocument;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::SystemTime;

/// A timestamp with its original UTC offset, as PostgreSQL reports it.
pub type Timestamp = DateTime<FixedOffset>;

/// The state of the local PostgreSQL as Patroni names it (the `state` field of `/patroni`).
///
/// The numeric index is what `patroni_postgres_state` exports; it never changes once assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PostgresState {
    /// `initializing new cluster`
    #[serde(rename = "initializing new cluster")]
    InitDb,
    /// `initdb failed`
    #[serde(rename = "initdb failed")]
    InitDbFailed,
    /// `running custom bootstrap script`
    #[serde(rename = "running custom bootstrap script")]
    CustomBootstrap,
    /// `custom bootstrap failed`
    #[serde(rename = "custom bootstrap failed")]
    CustomBootstrapFailed,
    /// `creating replica`
    #[serde(rename = "creating replica")]
    CreatingReplica,
    /// `running`
    #[serde(rename = "running")]
    Running,
    /// `starting`
    #[serde(rename = "starting")]
    Starting,
    /// `starting after custom bootstrap`
    #[serde(rename = "starting after custom bootstrap")]
    BootstrapStarting,
    /// `start failed`
    #[serde(rename = "start failed")]
    StartFailed,
    /// `restarting`
    #[serde(rename = "restarting")]
    Restarting,
    /// `restart failed`
    #[serde(rename = "restart failed")]
    RestartFailed,
    /// `stopping`
    #[serde(rename = "stopping")]
    Stopping,
    /// `stopped`
    #[serde(rename = "stopped")]
    Stopped,
    /// `stop failed`
    #[serde(rename = "stop failed")]
    StopFailed,
    /// `crashed`
    #[serde(rename = "crashed")]
    Crashed,
    /// PostgreSQL claims to run but could not be queried.
    #[serde(rename = "unknown")]
    Unknown,
}

impl PostgresState {
    /// Every state with an index, in index order (for the metrics legend).
    pub const INDEXED: [PostgresState; 15] = [
        Self::InitDb,
        Self::InitDbFailed,
        Self::CustomBootstrap,
        Self::CustomBootstrapFailed,
        Self::CreatingReplica,
        Self::Running,
        Self::Starting,
        Self::BootstrapStarting,
        Self::StartFailed,
        Self::Restarting,
        Self::RestartFailed,
        Self::Stopping,
        Self::Stopped,
        Self::StopFailed,
        Self::Crashed,
    ];

    /// The text Patroni shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InitDb => "initializing new cluster",
            Self::InitDbFailed => "initdb failed",
            Self::CustomBootstrap => "running custom bootstrap script",
            Self::CustomBootstrapFailed => "custom bootstrap failed",
            Self::CreatingReplica => "creating replica",
            Self::Running => "running",
            Self::Starting => "starting",
            Self::BootstrapStarting => "starting after custom bootstrap",
            Self::StartFailed => "start failed",
            Self::Restarting => "restarting",
            Self::RestartFailed => "restart failed",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::StopFailed => "stop failed",
            Self::Crashed => "crashed",
            Self::Unknown => "unknown",
        }
    }

    /// Identifier used in the metrics legend (`0=initdb, 1=initdb_failed, …`).
    pub fn metric_name(self) -> &'static str {
        match self {
            Self::InitDb => "initdb",
            Self::InitDbFailed => "initdb_failed",
            Self::CustomBootstrap => "custom_bootstrap",
            Self::CustomBootstrapFailed => "custom_bootstrap_failed",
            Self::CreatingReplica => "creating_replica",
            Self::Running => "running",
            Self::Starting => "starting",
            Self::BootstrapStarting => "bootstrap_starting",
            Self::StartFailed => "start_failed",
            Self::Restarting => "restarting",
            Self::RestartFailed => "restart_failed",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::StopFailed => "stop_failed",
            Self::Crashed => "crashed",
            Self::Unknown => "unknown",
        }
    }

    /// Value of `patroni_postgres_state`; `-1` for a state without an index.
    pub fn index(self) -> i32 {
        Self::INDEXED.iter().position(|s| *s == self).map_or(-1, |i| i as i32)
    }
}

/// The role PostgreSQL plays (the `role` field of `/patroni`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostgresRole {
    /// Read-write primary.
    #[serde(alias = "master")]
    Primary,
    /// Leader of a standby cluster.
    StandbyLeader,
    /// Streaming or archive replica.
    Replica,
    /// Primary that was demoted and not yet following anyone.
    Demoted,
    /// No data directory yet.
    Uninitialized,
    /// Promotion requested, not yet finished.
    Promoted,
}

impl PostgresRole {
    /// The text Patroni shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::StandbyLeader => "standby_leader",
            Self::Replica => "replica",
            Self::Demoted => "demoted",
            Self::Uninitialized => "uninitialized",
            Self::Promoted => "promoted",
        }
    }

    /// Parses the text form (`master` is the pre-4.0 spelling of `primary`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "primary" | "master" => Self::Primary,
            "standby_leader" => Self::StandbyLeader,
            "replica" => Self::Replica,
            "demoted" => Self::Demoted,
            "uninitialized" => Self::Uninitialized,
            "promoted" => Self::Promoted,
            _ => return None,
        })
    }
}

/// WAL positions, shaped by role as in `/patroni`'s `xlog` object.
#[derive(Debug, Clone, PartialEq)]
pub enum Xlog {
    /// On a primary: `pg_current_wal_flush_lsn()` in bytes.
    Primary {
        /// `location`
        location: u64,
    },
    /// On a replica.
    Replica {
        /// `received_location` (written/received LSN in bytes).
        received_location: u64,
        /// `replayed_location`
        replayed_location: u64,
        /// `replayed_timestamp` (`pg_last_xact_replay_timestamp()`), `null` when nothing replayed.
        replayed_timestamp: Option<Timestamp>,
        /// `paused` (`pg_is_wal_replay_paused()`).
        paused: bool,
    },
}

/// One row of `pg_stat_replication` as `/patroni` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationRow {
    /// Replication user.
    pub usename: Option<String>,
    /// `application_name` (the member name for Patroni replicas).
    pub application_name: Option<String>,
    /// Client address.
    pub client_addr: Option<String>,
    /// `streaming`, `catchup`, …
    pub state: Option<String>,
    /// `async`, `sync`, `quorum`, `potential`.
    pub sync_state: Option<String>,
    /// `sync_priority`
    pub sync_priority: Option<i64>,
}

/// What the last successful status query of PostgreSQL returned.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresStatus {
    /// `pg_postmaster_start_time()`.
    pub postmaster_start_time: Option<Timestamp>,
    /// Role as seen by PostgreSQL (`replica` is reported as `standby_leader` in a standby cluster).
    pub role: PostgresRole,
    /// `server_version_num`, e.g. 150004.
    pub server_version: u32,
    /// WAL positions.
    pub xlog: Xlog,
    /// Current timeline (cached leader timeline on a replica).
    pub timeline: Option<u64>,
    /// `streaming` or `in archive recovery` on a replica; `None` on a primary.
    pub replication_state: Option<String>,
    /// `pg_stat_get_wal_receiver().latest_end_lsn` in bytes, used as the leader's position
    /// when it is ahead of the one in the DCS.
    pub latest_end_lsn: Option<u64>,
    /// `pg_stat_replication`; empty when nobody replicates.
    pub replication: Vec<ReplicationRow>,
}

/// `patroni` object of `/patroni`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PatroniInfo {
    /// Our version (Patroni-compatible semver).
    pub version: String,
    /// Cluster name (`scope`).
    pub scope: String,
    /// Member name.
    pub name: String,
}

/// A restart scheduled through `POST /restart`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledRestart {
    /// When.
    pub schedule: Timestamp,
    /// The request as given (`schedule`, `role`, `postgres_version`, `restart_pending`,
    /// `timeout`), in its order; `schedule` is shown from the field above.
    pub conditions: Map<String, Value>,
}

/// Everything the REST API needs to know about this node, published by the HA loop.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    /// Version, scope and member name.
    pub patroni: PatroniInfo,
    /// Patroni's view of PostgreSQL's state.
    pub state: PostgresState,
    /// Patroni's idea of the role, reported when PostgreSQL cannot be queried.
    pub role: PostgresRole,
    /// Facts queried from PostgreSQL; `None` when it is not running or not answering.
    pub postgres: Option<PostgresStatus>,
    /// This node holds the leader key.
    pub is_leader: bool,
    /// Listed in `/sync` while synchronous mode is on.
    pub sync_standby: bool,
    /// Listed in `/sync` while quorum commit mode is on.
    pub quorum_standby: bool,
    /// Maintenance mode.
    pub paused: bool,
    /// This cluster replicates from another one (`standby_cluster` is configured).
    pub is_standby_cluster: bool,
    /// DCS failsafe mode is keeping the primary up while the DCS is unreachable.
    pub failsafe_mode_is_active: bool,
    /// `failsafe_mode` is enabled in the dynamic configuration.
    pub failsafe_mode_enabled: bool,
    /// Members known when failsafe mode is on (name → `/patroni` URL), served by `GET /failsafe`.
    pub failsafe_members: Option<Map<String, Value>>,
    /// Epoch seconds of the last successful DCS contact.
    pub dcs_last_seen: i64,
    /// Effective tags of this member.
    pub tags: Map<String, Value>,
    /// `pg_controldata`'s system identifier.
    pub database_system_identifier: Option<String>,
    /// Parameters waiting for a restart: name → `{"old_value": …, "new_value": …}`.
    pub pending_restart_reason: Map<String, Value>,
    /// A restart scheduled with `POST /restart`.
    pub scheduled_restart: Option<ScheduledRestart>,
    /// The watchdog could not be armed although it is required.
    pub watchdog_failed: bool,
    /// `ttl` from the dynamic configuration, seconds.
    pub ttl: u64,
    /// `loop_wait` from the dynamic configuration, seconds.
    pub loop_wait: u64,
    /// `maximum_lag_on_failover` from the dynamic configuration, bytes.
    pub maximum_lag_on_failover: u64,
    /// When the HA loop is due to run next; `/liveness` fails once this is `ttl` (primary)
    /// or `2*ttl` (others) in the past.
    pub next_run: SystemTime,
    /// The last cluster view read from the DCS; `None` when the DCS was never reached or is down.
    pub cluster: Option<Arc<ClusterDocument>>,
}

impl NodeStatus {
    /// A status for a node that has just started: nothing known yet.
    pub fn starting(patroni: PatroniInfo, now: SystemTime) -> Self {
        Self {
            patroni,
            state: PostgresState::Stopped,
            role: PostgresRole::Uninitialized,
            postgres: None,
            is_leader: false,
            sync_standby: false,
            quorum_standby: false,
            paused: false,
            is_standby_cluster: false,
            failsafe_mode_is_active: false,
            failsafe_mode_enabled: false,
            failsafe_members: None,
            dcs_last_seen: 0,
            tags: Map::new(),
            database_system_identifier: None,
            pending_restart_reason: Map::new(),
            scheduled_restart: None,
            watchdog_failed: false,
            ttl: 30,
            loop_wait: 10,
            maximum_lag_on_failover: 1_048_576,
            next_run: now,
            cluster: None,
        }
    }

    /// The role reported: PostgreSQL's own answer when it could be asked, Patroni's otherwise.
    pub fn effective_role(&self) -> PostgresRole {
        self.postgres.as_ref().map_or(self.role, |p| p.role)
    }

    /// Nobody holds the leader key, or no cluster view could be read from the DCS.
    pub fn cluster_unlocked(&self) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.leader.is_none())
    }

    /// `noloadbalance` tag set, read as Patroni reads tags (Python truthiness).
    pub fn noloadbalance(&self) -> bool {
        patroni_dcs::model::tags::noloadbalance(&self.tags)
    }

    /// `nofailover`, read as Patroni reads tags (`failover_priority` included).
    pub fn nofailover(&self) -> bool {
        patroni_dcs::model::tags::nofailover(&self.tags).0
    }

    /// The `/patroni` document (also the body of a health check answered with GET).
    pub fn to_json(&self) -> Value {
        let mut r = Map::new();
        r.insert("state".into(), Value::from(self.state.as_str()));
        match &self.postgres {
            Some(pg) => {
                r.insert(
                    "postmaster_start_time".into(),
                    pg.postmaster_start_time.map_or(Value::Null, |t| Value::from(patroni_pycompat::str_datetime(&t))),
                );
                r.insert("role".into(), Value::from(pg.role.as_str()));
                r.insert("server_version".into(), Value::from(pg.server_version));
                let mut xlog = Map::new();
                match &pg.xlog {
                    Xlog::Primary { location } => {
                        xlog.insert("location".into(), Value::from(*location));
                    }
                    Xlog::Replica { received_location, replayed_location, replayed_timestamp, paused } => {
                        xlog.insert("received_location".into(), Value::from(*received_location));
                        xlog.insert("replayed_location".into(), Value::from(*replayed_location));
                        xlog.insert(
                            "replayed_timestamp".into(),
                            replayed_timestamp.map_or(Value::Null, |t| Value::from(patroni_pycompat::str_datetime(&t))),
                        );
                        xlog.insert("paused".into(), Value::from(*paused));
                    }
                }
                r.insert("xlog".into(), Value::Object(xlog));
                if pg.role == PostgresRole::Replica {
                    if self.quorum_standby {
                        r.insert("quorum_standby".into(), Value::Bool(true));
                    } else if self.sync_standby {
                        r.insert("sync_standby".into(), Value::Bool(true));
                    }
                }
                // Patroni always has the key, `null` while a replica's timeline is unknown.
                r.insert("timeline".into(), pg.timeline.map_or(Value::Null, Value::from));
                // Patroni shows the WAL receiver's last known primary position only when it has one.
                if let Some(lsn) = pg.latest_end_lsn.filter(|l| *l > 0) {
                    r.insert("latest_end_lsn".into(), Value::from(lsn));
                }
                if let Some(rs) = &pg.replication_state {
                    r.insert("replication_state".into(), Value::from(rs.as_str()));
                }
                if !pg.replication.is_empty() {
                    r.insert("replication".into(), serde_json::to_value(&pg.replication).unwrap_or(Value::Null));
                }
            }
            None => {
                r.insert("role".into(), Value::from(self.role.as_str()));
            }
        }
        if self.paused {
            r.insert("pause".into(), Value::Bool(true));
        }
        if self.cluster_unlocked() {
            r.insert("cluster_unlocked".into(), Value::Bool(true));
        }
        if self.failsafe_mode_is_active {
            r.insert("failsafe_mode_is_active".into(), Value::Bool(true));
        }
        r.insert("dcs_last_seen".into(), Value::from(self.dcs_last_seen));
        if !self.tags.is_empty() {
            r.insert("tags".into(), Value::Object(self.tags.clone()));
        }
        if let Some(sysid) = &self.database_system_identifier {
            r.insert("database_system_identifier".into(), Value::from(sysid.as_str()));
        }
        if !self.pending_restart_reason.is_empty() {
            r.insert("pending_restart".into(), Value::Bool(true));
            r.insert("pending_restart_reason".into(), Value::Object(self.pending_restart_reason.clone()));
        }
        r.insert("patroni".into(), serde_json::to_value(&self.patroni).unwrap_or(Value::Null));
        if let Some(sr) = &self.scheduled_restart {
            // Keys stay in the order the request gave them, `schedule` included.
            let mut m = sr.conditions.clone();
            m.shift_remove("postmaster_start_time");
            m.insert("schedule".into(), Value::from(patroni_pycompat::isoformat(&sr.schedule)));
            r.insert("scheduled_restart".into(), Value::Object(m));
        }
        if self.watchdog_failed {
            r.insert("watchdog_failed".into(), Value::Bool(true));
        }
        Value::Object(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_indexes_are_stable() {
        assert_eq!(PostgresState::InitDb.index(), 0);
        assert_eq!(PostgresState::Running.index(), 5);
        assert_eq!(PostgresState::Crashed.index(), 14);
        assert_eq!(PostgresState::Unknown.index(), -1);
    }
}
