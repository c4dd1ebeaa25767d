//! Bridges from the project's configuration and DCS models to this crate's types, so the agent
//! and `patronictl` wire the API with one call each.

use crate::access::Credentials;
use crate::client::ClientSettings;
use crate::cluster::{ClusterDocument, ClusterMember, FailoverView};
use crate::server::{ApiError, ServerSettings, DEFAULT_BODY_LIMIT};
use crate::tls::{TlsSettings, VerifyClient};
use patroni_config::{BasicAuth, CtlConfig, DynamicConfig, RestApiConfig, SynchronousMode};
use patroni_dcs::{Cluster, HistoryLine, Member};
use serde_json::{Map, Value};
use std::path::PathBuf;

fn host_port(conn_url: &str) -> (Option<String>, Option<u16>) {
    match url::Url::parse(conn_url) {
        Ok(u) => (u.host_str().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned()), u.port()),
        Err(_) => (None, None),
    }
}

fn member_view(m: &Member) -> ClusterMember {
    let (host, port) = m.conn_url().map(host_port).unwrap_or((None, None));
    let d = &m.data;
    ClusterMember {
        name: m.name.clone(),
        api_url: d.api_url.clone(),
        host,
        port,
        state: d.state.clone(),
        replication_state: d.replication_state.clone(),
        timeline: d.timeline.map(u64::from),
        pending_restart: d.pending_restart,
        pending_restart_reason: d.pending_restart_reason.clone(),
        scheduled_restart: d.scheduled_restart.clone(),
        tags: (!d.tags.is_empty()).then(|| d.tags.clone()),
        lsn: d.xlog_location,
        receive_lsn: d.receive_lsn,
        replay_lsn: d.replay_lsn,
    }
}

/// A history line as `/history` shows it: `[timeline, lsn, reason, timestamp, new_leader]`.
pub fn history_json(line: &HistoryLine) -> Value {
    let mut v = vec![Value::from(line.timeline), Value::from(line.lsn), Value::from(line.reason.as_str())];
    if let Some(ts) = &line.timestamp {
        v.push(Value::from(ts.as_str()));
        if let Some(l) = &line.new_leader {
            v.push(Value::from(l.as_str()));
        }
    }
    Value::Array(v)
}

/// The REST API's view of a cluster read from the DCS, with the effective dynamic configuration.
pub fn cluster_document(cluster: &Cluster, dynamic: &DynamicConfig) -> ClusterDocument {
    let mode = dynamic.synchronous_mode();
    ClusterDocument {
        leader: cluster.leader_name().map(str::to_owned),
        members: cluster.members.iter().map(member_view).collect(),
        paused: dynamic.is_paused(),
        standby_cluster: dynamic.is_standby_cluster(),
        // As in Patroni, a standby cluster never runs in synchronous mode whatever the key says.
        synchronous_mode: mode.is_enabled() && !dynamic.is_standby_cluster(),
        quorum_commit_mode: mode == SynchronousMode::Quorum,
        sync_members: cluster.sync.sync_standby.clone(),
        last_lsn: cluster.leader_optime(),
        failover: cluster.failover.as_ref().map(|f| FailoverView {
            leader: f.leader.clone(),
            candidate: f.candidate.clone(),
            scheduled_at: f.scheduled_at,
        }),
        history: cluster.history.as_ref().map(|h| h.lines.iter().map(history_json).collect()).unwrap_or_default(),
        config: cluster.config.as_ref().filter(|c| c.version != 0).map(|c| Value::Object(c.data.clone())),
        config_version: cluster.config.as_ref().map(|c| c.version.to_string()),
    }
}

/// Checks a dynamic configuration the way every member will read it; each problem has its key path.
pub fn check_dynamic_config(config: &Value) -> Result<(), Vec<String>> {
    crate::config_patch::validate_dynamic_config(config)?;
    DynamicConfig::from_value(config).map(|_| ()).map_err(|e| match e {
        patroni_config::DynamicConfigError::Invalid(d) => d.iter().map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    })
}

fn credentials(auth: Option<&BasicAuth>) -> Option<Credentials> {
    let a = auth?;
    Some(Credentials { username: a.username.clone()?, password: a.password.clone().unwrap_or_default() })
}

fn header_list(m: Option<&Map<String, Value>>) -> Vec<(String, String)> {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect()
    })
    .unwrap_or_default()
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl ServerSettings {
    /// Settings from the `restapi` section; `listen` is required.
    pub fn from_restapi(r: &RestApiConfig) -> Result<Self, ApiError> {
        let listen = nonempty(&r.listen).ok_or(ApiError::MissingListen)?.to_owned();
        let tls = nonempty(&r.certfile).map(|cert| TlsSettings {
            certfile: PathBuf::from(cert),
            keyfile: nonempty(&r.keyfile).map(PathBuf::from),
            keyfile_password: r.keyfile_password.clone(),
            cafile: nonempty(&r.cafile).map(PathBuf::from),
            ciphers: nonempty(&r.ciphers).map(str::to_owned),
            verify_client: match r.verify_client {
                Some(patroni_config::VerifyClient::Optional) => VerifyClient::Optional,
                Some(patroni_config::VerifyClient::Required) => VerifyClient::Required,
                _ => VerifyClient::None,
            },
        });
        Ok(Self {
            listen,
            credentials: credentials(r.authentication.as_ref()),
            tls,
            allowlist: r.allowlist.clone().unwrap_or_default(),
            allowlist_include_members: r.allowlist_include_members.unwrap_or(false),
            http_extra_headers: header_list(r.http_extra_headers.as_ref()),
            https_extra_headers: header_list(r.https_extra_headers.as_ref()),
            server_tokens: r.server_tokens.clone(),
            body_limit: DEFAULT_BODY_LIMIT,
            request_queue_size: r.request_queue_size,
        })
    }
}

impl ClientSettings {
    /// What `patronictl` and the agent use to call REST APIs: `ctl` first, then `restapi`
    /// (authentication and CA), as Patroni does.
    pub fn from_config(ctl: Option<&CtlConfig>, restapi: Option<&RestApiConfig>) -> Self {
        let ctl_auth = ctl.and_then(|c| credentials(c.authentication.as_ref()));
        let rest_auth = restapi.and_then(|r| credentials(r.authentication.as_ref()));
        Self {
            credentials: ctl_auth.or(rest_auth),
            cacert: ctl
                .and_then(|c| nonempty(&c.cacert))
                .or_else(|| restapi.and_then(|r| nonempty(&r.cafile)))
                .map(PathBuf::from),
            certfile: ctl.and_then(|c| nonempty(&c.certfile)).map(PathBuf::from),
            keyfile: ctl.and_then(|c| nonempty(&c.keyfile)).map(PathBuf::from),
            keyfile_password: ctl.and_then(|c| c.keyfile_password.clone()),
            insecure: ctl.and_then(|c| c.insecure).unwrap_or(false),
            timeout: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patroni_dcs::RawNode;
    use serde_json::json;

    fn node(key: &str, value: Value, version: i64) -> RawNode {
        RawNode { key: key.into(), value: value.to_string(), version, session: None }
    }

    #[test]
    fn cluster_from_dcs_keys() {
        let c = Cluster::from_nodes(vec![
            node("config", json!({"ttl": 30, "synchronous_mode": true}), 5),
            RawNode { key: "leader".into(), value: "pg1".into(), version: 6, session: None },
            node(
                "members/pg1",
                json!({"conn_url": "postgres://10.0.0.1:5432/postgres", "api_url": "http://10.0.0.1:8008/patroni",
                       "state": "running", "role": "primary", "timeline": 3, "xlog_location": 100}),
                7,
            ),
            node(
                "members/pg2",
                json!({"conn_url": "postgres://[fd00::2]:5433/postgres", "api_url": "http://10.0.0.2:8008/patroni",
                       "state": "running", "role": "replica", "replication_state": "streaming",
                       "xlog_location": 90, "tags": {"nofailover": true}}),
                8,
            ),
            node("sync", json!({"leader": "pg1", "sync_standby": "pg2"}), 9),
            node("status", json!({"optime": 100}), 10),
            node("history", json!([[1, 50, "no recovery target specified", "2024-01-01T00:00:00+00:00", "pg1"]]), 11),
            node(
                "failover",
                json!({"leader": "pg1", "member": "pg2", "scheduled_at": "2030-01-01T00:00:00+00:00"}),
                12,
            ),
        ]);
        let dynamic = DynamicConfig::from_value(&json!({"synchronous_mode": true})).unwrap();
        let v = cluster_document(&c, &dynamic);
        assert_eq!(v.leader.as_deref(), Some("pg1"));
        assert!(v.synchronous_mode && !v.quorum_commit_mode);
        assert!(v.sync_matches("pg2"));
        assert_eq!(v.last_lsn, 100);
        assert_eq!(v.config_version.as_deref(), Some("5"));
        let pg2 = v.member("pg2").unwrap();
        assert_eq!((pg2.host.as_deref(), pg2.port), (Some("fd00::2"), Some(5433)));
        assert!(pg2.nofailover());
        let j = v.to_json("demo");
        assert_eq!(j["members"][1]["role"], "sync_standby");
        assert_eq!(j["members"][1]["lag"], 10);
        assert_eq!(j["scheduled_switchover"]["to"], "pg2");
        assert_eq!(v.history, vec![json!([1, 50, "no recovery target specified", "2024-01-01T00:00:00+00:00", "pg1"])]);
    }

    #[test]
    fn dynamic_config_checks_use_the_config_model() {
        assert!(
            check_dynamic_config(&json!({"ttl": 30, "postgresql": {"parameters": {"max_connections": 100}}})).is_ok()
        );
        let errs = check_dynamic_config(&json!({"ttl": "soon"})).unwrap_err();
        assert!(errs.iter().any(|e| e.contains("ttl")), "{errs:?}");
        let errs = check_dynamic_config(&json!({"synchronous_mode": "sometimes"})).unwrap_err();
        assert!(!errs.is_empty());
    }

    #[test]
    fn settings_from_restapi_and_ctl_sections() {
        let r = RestApiConfig {
            listen: Some("0.0.0.0:8008".into()),
            authentication: Some(BasicAuth {
                username: Some("admin".into()),
                password: Some("pw".into()),
                ..Default::default()
            }),
            certfile: Some("/etc/ssl/c.pem".into()),
            cafile: Some("/etc/ssl/ca.pem".into()),
            verify_client: Some(patroni_config::VerifyClient::Required),
            allowlist: Some(vec!["10.0.0.0/8".into()]),
            http_extra_headers: json!({"X-Frame-Options": "SAMEORIGIN", "X-Num": 1}).as_object().cloned(),
            server_tokens: Some("Minimal".into()),
            ..Default::default()
        };
        let s = ServerSettings::from_restapi(&r).unwrap();
        assert_eq!(s.listen, "0.0.0.0:8008");
        assert_eq!(s.credentials.as_ref().unwrap().username, "admin");
        let tls = s.tls.unwrap();
        assert_eq!(tls.verify_client, VerifyClient::Required);
        assert_eq!(tls.cafile, Some(PathBuf::from("/etc/ssl/ca.pem")));
        assert_eq!(s.http_extra_headers[1], ("X-Num".to_string(), "1".to_string()));
        assert!(matches!(ServerSettings::from_restapi(&RestApiConfig::default()), Err(ApiError::MissingListen)));

        let c = ClientSettings::from_config(None, Some(&r));
        assert_eq!(c.credentials.unwrap().password, "pw");
        assert_eq!(c.cacert, Some(PathBuf::from("/etc/ssl/ca.pem")));
        let ctl = CtlConfig {
            insecure: Some(true),
            cacert: Some("/ctl/ca.pem".into()),
            authentication: Some(BasicAuth {
                username: Some("ctl".into()),
                password: Some("x".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = ClientSettings::from_config(Some(&ctl), Some(&r));
        assert_eq!(c.credentials.unwrap().username, "ctl");
        assert_eq!(c.cacert, Some(PathBuf::from("/ctl/ca.pem")));
        assert!(c.insecure);
    }
}
