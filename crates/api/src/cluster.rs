//! The cluster as last read from the DCS, reduced to what the REST API shows and validates
//! against (`/cluster`, `/history`, `/config`, switchover checks).
//!
//! The agent fills this from the DCS model; keeping it a plain struct here lets the API be
//! tested without any DCS and keeps key names and JSON layouts of the DCS out of this crate.

use crate::status::Timestamp;
use serde_json::{Map, Value};

/// A pending manual failover or switchover (the `/failover` key).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FailoverView {
    /// Member to demote.
    pub leader: Option<String>,
    /// Member to promote.
    pub candidate: Option<String>,
    /// When a scheduled switchover is due.
    pub scheduled_at: Option<Timestamp>,
}

/// One member as registered in the DCS.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterMember {
    /// Member name.
    pub name: String,
    /// `http(s)://host:port/patroni` of its REST API.
    pub api_url: Option<String>,
    /// PostgreSQL host from its `conn_url`.
    pub host: Option<String>,
    /// PostgreSQL port from its `conn_url`.
    pub port: Option<u16>,
    /// `state` it reported.
    pub state: Option<String>,
    /// `replication_state` it reported (`streaming`, `in archive recovery`).
    pub replication_state: Option<String>,
    /// `timeline` it reported.
    pub timeline: Option<u64>,
    /// `pending_restart` it reported.
    pub pending_restart: Option<bool>,
    /// `pending_restart_reason` it reported.
    pub pending_restart_reason: Option<Value>,
    /// `scheduled_restart` it reported.
    pub scheduled_restart: Option<Value>,
    /// Its tags.
    pub tags: Option<Map<String, Value>>,
    /// WAL position it reported (`xlog_location`).
    pub lsn: Option<u64>,
    /// Received WAL position.
    pub receive_lsn: Option<u64>,
    /// Replayed WAL position.
    pub replay_lsn: Option<u64>,
}

impl ClusterMember {
    /// `nofailover` as Patroni reads a member's tags (`failover_priority` included).
    pub fn nofailover(&self) -> bool {
        self.tags.as_ref().is_some_and(|t| patroni_dcs::model::tags::nofailover(t).0)
    }
}

/// What the REST API knows about the cluster: the `GET /cluster` document and what control requests are checked against
/// (not the HA core's `patroni_ha::ClusterView`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterDocument {
    /// Holder of the leader key.
    pub leader: Option<String>,
    /// Registered members.
    pub members: Vec<ClusterMember>,
    /// Maintenance mode.
    pub paused: bool,
    /// The cluster is a standby cluster.
    pub standby_cluster: bool,
    /// `synchronous_mode` is on (including quorum).
    pub synchronous_mode: bool,
    /// `synchronous_mode: quorum`.
    pub quorum_commit_mode: bool,
    /// Members listed in the `/sync` key (excluding the leader).
    pub sync_members: Vec<String>,
    /// The leader's last WAL position from `/status` (or `optime/leader`).
    pub last_lsn: u64,
    /// Pending manual failover or switchover.
    pub failover: Option<FailoverView>,
    /// `/history` lines as stored: `[timeline, lsn, reason, timestamp, new leader?]`.
    pub history: Vec<Value>,
    /// Dynamic configuration, when the `/config` key exists.
    pub config: Option<Value>,
    /// Version of the `/config` key (for compare-and-set).
    pub config_version: Option<String>,
}

impl ClusterDocument {
    /// A member is in `/sync` (PostgreSQL compares standby names case-insensitively, so do we).
    pub fn sync_matches(&self, name: &str) -> bool {
        self.sync_members.iter().any(|m| m.eq_ignore_ascii_case(name))
    }

    /// Looks a member up by name.
    pub fn member(&self, name: &str) -> Option<&ClusterMember> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The `/cluster` document.
    pub fn to_json(&self, scope: &str) -> Value {
        let mut members: Vec<&ClusterMember> = self.members.iter().collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        let sync_role = if self.quorum_commit_mode { "quorum_standby" } else { "sync_standby" };
        let list: Vec<Value> = members
            .into_iter()
            .map(|m| {
                let is_leader = self.leader.as_deref() == Some(m.name.as_str());
                let role = if is_leader {
                    if self.standby_cluster {
                        "standby_leader"
                    } else {
                        "leader"
                    }
                } else if self.synchronous_mode && self.sync_matches(&m.name) {
                    sync_role
                } else {
                    "replica"
                };
                let state = if role != "leader" { m.replication_state.clone().filter(|s| !s.is_empty()) } else { None }
                    .or_else(|| m.state.clone())
                    .unwrap_or_default();
                let mut o = Map::new();
                o.insert("name".into(), Value::from(m.name.as_str()));
                o.insert("role".into(), Value::from(role));
                o.insert("state".into(), Value::from(state));
                o.insert("api_url".into(), m.api_url.clone().map_or(Value::Null, Value::from));
                if let Some(host) = m.host.as_deref().filter(|h| !h.is_empty()) {
                    o.insert("host".into(), Value::from(host));
                    if let Some(port) = m.port {
                        o.insert("port".into(), Value::from(port));
                    }
                }
                if let Some(tl) = m.timeline {
                    o.insert("timeline".into(), Value::from(tl));
                }
                if let Some(p) = m.pending_restart {
                    o.insert("pending_restart".into(), Value::from(p));
                }
                if let Some(r) = &m.pending_restart_reason {
                    o.insert("pending_restart_reason".into(), r.clone());
                }
                if let Some(s) = &m.scheduled_restart {
                    o.insert("scheduled_restart".into(), s.clone());
                }
                if let Some(t) = &m.tags {
                    o.insert("tags".into(), Value::Object(t.clone()));
                }
                if !is_leader {
                    for (lsn, lsn_key, lag_key) in [
                        (m.receive_lsn, "receive_lsn", "receive_lag"),
                        (m.replay_lsn, "replay_lsn", "replay_lag"),
                        (m.lsn, "lsn", "lag"),
                    ] {
                        match lsn.filter(|l| *l > 0) {
                            None => {
                                o.insert(lsn_key.into(), Value::from("unknown"));
                                o.insert(lag_key.into(), Value::from("unknown"));
                            }
                            Some(l) => {
                                o.insert(lag_key.into(), Value::from(self.last_lsn.saturating_sub(l)));
                                o.insert(lsn_key.into(), Value::from(format_lsn(l)));
                            }
                        }
                    }
                }
                Value::Object(o)
            })
            .collect();
        let mut r = Map::new();
        r.insert("members".into(), Value::Array(list));
        if self.paused {
            r.insert("pause".into(), Value::Bool(true));
        }
        if let Some(f) = &self.failover {
            if let Some(at) = &f.scheduled_at {
                let mut s = Map::new();
                s.insert("at".into(), Value::from(patroni_pycompat::isoformat(at)));
                if let Some(l) = f.leader.as_deref().filter(|s| !s.is_empty()) {
                    s.insert("from".into(), Value::from(l));
                }
                if let Some(c) = f.candidate.as_deref().filter(|s| !s.is_empty()) {
                    s.insert("to".into(), Value::from(c));
                }
                r.insert("scheduled_switchover".into(), Value::Object(s));
            }
        }
        r.insert("scope".into(), Value::from(scope));
        Value::Object(r)
    }
}

/// PostgreSQL's `X/Y` notation of a WAL position.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view() -> ClusterDocument {
        ClusterDocument {
            leader: Some("patroni1".into()),
            members: vec![
                ClusterMember {
                    name: "patroni2".into(),
                    api_url: Some("http://10.89.0.6:8008/patroni".into()),
                    host: Some("10.89.0.6".into()),
                    port: Some(5433),
                    state: Some("running".into()),
                    replication_state: Some("streaming".into()),
                    timeline: Some(5),
                    tags: Some(json!({"clonefrom": true}).as_object().cloned().unwrap()),
                    lsn: Some(100),
                    receive_lsn: Some(100),
                    replay_lsn: None,
                    ..Default::default()
                },
                ClusterMember {
                    name: "patroni1".into(),
                    api_url: Some("http://10.89.0.4:8008/patroni".into()),
                    host: Some("10.89.0.4".into()),
                    port: Some(5432),
                    state: Some("running".into()),
                    timeline: Some(5),
                    tags: Some(json!({"clonefrom": true}).as_object().cloned().unwrap()),
                    ..Default::default()
                },
            ],
            last_lsn: 100,
            ..Default::default()
        }
    }

    #[test]
    fn cluster_json_matches_documented_shape() {
        let j = view().to_json("demo");
        assert_eq!(
            j,
            json!({
                "members": [
                    {"name": "patroni1", "role": "leader", "state": "running",
                     "api_url": "http://10.89.0.4:8008/patroni", "host": "10.89.0.4", "port": 5432,
                     "timeline": 5, "tags": {"clonefrom": true}},
                    {"name": "patroni2", "role": "replica", "state": "streaming",
                     "api_url": "http://10.89.0.6:8008/patroni", "host": "10.89.0.6", "port": 5433,
                     "timeline": 5, "tags": {"clonefrom": true},
                     "receive_lag": 0, "receive_lsn": "0/64",
                     "replay_lsn": "unknown", "replay_lag": "unknown",
                     "lag": 0, "lsn": "0/64"}
                ],
                "scope": "demo"
            })
        );
    }

    #[test]
    fn sync_role_and_scheduled_switchover() {
        let mut v = view();
        v.synchronous_mode = true;
        v.sync_members = vec!["PATRONI2".into()];
        v.paused = true;
        v.failover = Some(FailoverView {
            leader: Some("patroni1".into()),
            candidate: Some("patroni3".into()),
            scheduled_at: chrono::DateTime::parse_from_rfc3339("2023-09-24T10:36:00+02:00").ok(),
        });
        let j = v.to_json("demo");
        assert_eq!(j["members"][1]["role"], "sync_standby");
        assert_eq!(j["pause"], true);
        assert_eq!(
            j["scheduled_switchover"],
            json!({"at": "2023-09-24T10:36:00+02:00", "from": "patroni1", "to": "patroni3"})
        );
        v.quorum_commit_mode = true;
        assert_eq!(v.to_json("demo")["members"][1]["role"], "quorum_standby");
    }

    #[test]
    fn lsn_format() {
        assert_eq!(format_lsn(0x1_0000_00A0), "1/A0");
        assert_eq!(format_lsn(67_395_656), "0/4046048");
    }
}
