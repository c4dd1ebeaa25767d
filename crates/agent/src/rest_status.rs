//! What the loop publishes, shaped for the REST API.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use patroni_api::{NodeStatus, PatroniInfo, PostgresRole, PostgresState, PostgresStatus, ReplicationRow, Xlog};
use patroni_config::SynchronousMode;
use patroni_ha::{DataDir, PgRole};
use serde_json::{Map, Value};

use crate::member::state_text;
use crate::runtime::Published;

fn api_role(role: PgRole) -> PostgresRole {
    match role {
        PgRole::Primary => PostgresRole::Primary,
        PgRole::Replica => PostgresRole::Replica,
        PgRole::StandbyLeader => PostgresRole::StandbyLeader,
        PgRole::Demoted => PostgresRole::Demoted,
        PgRole::Unknown => PostgresRole::Uninitialized,
    }
}

fn api_state(text: &str) -> PostgresState {
    PostgresState::INDEXED.into_iter().find(|s| s.as_str() == text).unwrap_or(PostgresState::Unknown)
}

/// The `/patroni` snapshot for one published cycle.
pub fn node_status(p: &Published, info: &PatroniInfo, tags: &Map<String, Value>) -> NodeStatus {
    let mut s = NodeStatus::starting(info.clone(), SystemTime::now());
    s.state = api_state(state_text(&p.local, p.dynamic.is_paused()));
    s.role = api_role(p.local.role);
    s.is_leader = p.is_leader;
    s.paused = p.dynamic.is_paused();
    s.is_standby_cluster = p.dynamic.is_standby_cluster();
    s.failsafe_mode_enabled = p.dynamic.failsafe_mode();
    s.failsafe_mode_is_active = p.failsafe_active;
    s.dcs_last_seen = p.dcs_last_seen;
    s.tags = tags.clone();
    s.database_system_identifier = match &p.local.data_dir {
        DataDir::Initialized { sysid } if !sysid.is_empty() => Some(sysid.clone()),
        _ => None,
    };
    s.pending_restart_reason = p.details.pending_restart_reason.clone();
    let t = p.dynamic.timeouts();
    s.ttl = u64::try_from(t.ttl).unwrap_or(30);
    s.loop_wait = u64::try_from(t.loop_wait).unwrap_or(10);
    s.maximum_lag_on_failover = p.dynamic.maximum_lag_on_failover();
    s.next_run = p.heartbeat.unwrap_or_else(SystemTime::now) + Duration::from_secs(s.loop_wait);
    if let Some(c) = &p.cluster {
        let mode = p.dynamic.synchronous_mode();
        let listed = c.sync.sync_standby.contains(&info.name);
        s.sync_standby = listed && mode == SynchronousMode::On;
        s.quorum_standby = listed && mode == SynchronousMode::Quorum;
        s.cluster = Some(Arc::new(patroni_api::model::cluster_document(c, &p.dynamic)));
        if p.dynamic.failsafe_mode() {
            s.failsafe_members =
                c.failsafe.as_ref().map(|f| f.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect());
        }
    }
    if p.local.process.is_running() {
        let role = api_role(p.local.role);
        let xlog = match p.local.role {
            PgRole::Primary => Xlog::Primary { location: p.local.lsn.unwrap_or(0) },
            _ => Xlog::Replica {
                received_location: p.details.receive_lsn.unwrap_or(0),
                replayed_location: p.details.replay_lsn.unwrap_or(0),
                replayed_timestamp: p.details.replayed_timestamp.map(|t| t.fixed_offset()),
                paused: p.details.replay_paused,
            },
        };
        s.postgres = Some(PostgresStatus {
            postmaster_start_time: p.details.postmaster_start_time.map(|t| t.fixed_offset()),
            role,
            server_version: p.details.server_version.unwrap_or(0),
            xlog,
            timeline: p.local.timeline.map(u64::from),
            replication_state: p.details.replication_state.clone(),
            latest_end_lsn: p.details.latest_end_lsn,
            replication: p
                .details
                .replication
                .iter()
                .map(|r| ReplicationRow {
                    usename: r.usename.clone(),
                    application_name: Some(r.application_name.clone()),
                    client_addr: r.client_addr.clone(),
                    state: r.state.clone(),
                    sync_state: r.sync_state.clone(),
                    sync_priority: r.sync_priority.map(i64::from),
                })
                .collect(),
        });
    }
    s
}
