//! What this member publishes about itself in its `members/<name>` key.

use chrono::{DateTime, Utc};
use patroni_dcs::MemberData;
use patroni_ha::{Busy, LocalState, PgRole, Process};
use serde_json::{Map, Value};

/// Facts about the local PostgreSQL beyond what the HA core reads, gathered in the same observation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LocalDetails {
    pub receive_lsn: Option<u64>,
    pub replay_lsn: Option<u64>,
    /// `streaming` or `in archive recovery` on a replica.
    pub replication_state: Option<String>,
    pub pending_restart: bool,
    pub pending_restart_reason: Map<String, Value>,
    pub server_version: Option<u32>,
    /// `pg_postmaster_start_time()`.
    pub postmaster_start_time: Option<DateTime<Utc>>,
    pub replay_paused: bool,
    /// `pg_last_xact_replay_timestamp()`.
    pub replayed_timestamp: Option<DateTime<Utc>>,
    /// `pg_stat_wal_receiver.latest_end_lsn`: the primary's position as this standby last heard it, so health
    /// checks measure lag against it when the DCS copy is older.
    pub latest_end_lsn: Option<u64>,
    /// `pg_stat_replication` as the REST API shows it on a primary.
    pub replication: Vec<patroni_postgres::query::ReplicationRow>,
}

/// Everything the agent knows about where it and its PostgreSQL can be reached.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Addresses {
    /// `postgres://host:port/postgres` from `postgresql.connect_address`.
    pub conn_url: String,
    /// `http(s)://host:port/patroni` from `restapi.connect_address`.
    pub api_url: String,
    pub proxy_url: Option<String>,
}

/// The member state Patroni shows in `patronictl list` (`running`, `stopped`, `creating replica`...). Paused, a
/// postmaster that died is `stopped`: nothing will restart it.
pub fn state_text(local: &LocalState, paused: bool) -> &'static str {
    if let Some(busy) = &local.busy {
        return busy.state_text();
    }
    match local.process {
        Process::Running => "running",
        Process::Starting { .. } => "starting",
        Process::Crashed { .. } if paused => "stopped",
        Process::Crashed { .. } => "crashed",
        Process::Stopped => match local.last_failure {
            Some(Busy::Starting | Busy::Restarting) => "start failed",
            Some(Busy::Bootstrapping) => "bootstrap failed",
            Some(Busy::CreatingReplica | Busy::Reinitializing) => "creating replica failed",
            _ => "stopped",
        },
    }
}

pub fn role_text(role: PgRole) -> &'static str {
    match role {
        PgRole::Primary => "primary",
        PgRole::Replica => "replica",
        PgRole::StandbyLeader => "standby_leader",
        PgRole::Demoted => "demoted",
        PgRole::Unknown => "uninitialized",
    }
}

/// The member key's value, shaped as Python Patroni writes it so `patronictl` reads it unchanged.
pub fn member_data(
    local: &LocalState,
    details: &LocalDetails,
    addresses: &Addresses,
    tags: Map<String, Value>,
    paused: bool,
) -> MemberData {
    let running = local.process.is_running();
    let mut data = MemberData {
        conn_url: Some(addresses.conn_url.clone()),
        api_url: Some(addresses.api_url.clone()),
        state: Some(state_text(local, paused).to_owned()),
        role: Some(role_text(local.role).to_owned()),
        version: Some(crate::VERSION.to_owned()),
        proxy_url: addresses.proxy_url.clone(),
        tags,
        pause: paused.then_some(true),
        ..MemberData::default()
    };
    if running {
        data.timeline = local.timeline;
        match local.role {
            PgRole::Primary => data.xlog_location = local.lsn,
            _ => {
                data.xlog_location = local.lsn;
                data.receive_lsn = details.receive_lsn;
                data.replay_lsn = details.replay_lsn;
                data.replication_state = details.replication_state.clone();
            }
        }
        if details.pending_restart {
            data.pending_restart = Some(true);
            data.pending_restart_reason = Some(Value::Object(details.pending_restart_reason.clone()));
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use patroni_ha::DataDir;

    #[test]
    fn primary_member_key_matches_patroni_fields() {
        let local = LocalState {
            data_dir: DataDir::Initialized { sysid: "1".into() },
            process: Process::Running,
            role: PgRole::Primary,
            lsn: Some(67_108_960),
            timeline: Some(1),
            ..LocalState::default()
        };
        let addresses = Addresses {
            conn_url: "postgres://127.0.0.1:5432/postgres".into(),
            api_url: "http://127.0.0.1:8008/patroni".into(),
            proxy_url: None,
        };
        let data = member_data(&local, &LocalDetails::default(), &addresses, Map::new(), false);
        let json: Value = serde_json::from_str(&data.to_json()).unwrap();
        assert_eq!(json["conn_url"], "postgres://127.0.0.1:5432/postgres");
        assert_eq!(json["api_url"], "http://127.0.0.1:8008/patroni");
        assert_eq!(json["state"], "running");
        assert_eq!(json["role"], "primary");
        assert_eq!(json["xlog_location"], 67_108_960);
        assert_eq!(json["timeline"], 1);
        assert_eq!(json["version"], crate::VERSION);
    }

    #[test]
    fn busy_member_reports_what_it_does() {
        let local = LocalState { busy: Some(Busy::CreatingReplica), ..LocalState::default() };
        assert_eq!(state_text(&local, false), "creating replica");
    }
}
