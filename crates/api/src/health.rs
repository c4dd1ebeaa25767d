//! Health checks: pure functions of the published snapshot, the path and the query string.
//!
//! Patroni routes every GET path without a dedicated handler to the health check and decides
//! by substrings of the path (`/replica/`, `/primary-check` work too); we keep that, so load
//! balancer configurations written for Patroni behave the same.

use crate::status::{NodeStatus, PostgresRole, PostgresState, Xlog};
use crate::units::{parse_lag, UnitError};
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// Parsed query string, in order, keys possibly repeated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// Parses `a=1&b=2` (percent- and plus-decoding as browsers send it).
    pub fn parse(raw: Option<&str>) -> Self {
        Self(
            raw.map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        )
    }

    /// First value of `key` (Patroni reads the first one).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// First value of every distinct `tag_*` key, with the prefix stripped.
    fn tags(&self) -> Vec<(&str, &str)> {
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for (k, v) in &self.0 {
            if let Some(tag) = k.strip_prefix("tag_") {
                if !seen.iter().any(|(t, _)| *t == tag) {
                    seen.push((tag, v.as_str()));
                }
            }
        }
        seen
    }
}

/// A health-check request that cannot be answered as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    /// `lag=` is not a size.
    #[error(transparent)]
    Lag(#[from] UnitError),
    /// `mode=` of `/readiness` is neither `apply` nor `write`.
    #[error("invalid mode {0:?}: expected apply or write")]
    Mode(String),
}

/// `lag=` as Patroni reads it: a value it cannot parse means "no limit" (an HAProxy check with a typo keeps routing
/// after a migration as it did before); only a negative value is refused.
fn lag_limit(query: &Query) -> Result<Option<u64>, HealthError> {
    match query.get("lag").map(parse_lag) {
        None => Ok(None),
        Some(Ok(v)) => Ok(Some(v)),
        Some(Err(e)) if e.to_string().contains("negative") => Err(HealthError::from(e)),
        Some(Err(_)) => Ok(None),
    }
}

/// The leader's WAL position used for lag: the newest of the DCS and what the WAL receiver saw.
fn leader_optime(status: &NodeStatus) -> u64 {
    let dcs = status.cluster.as_ref().map_or(0, |c| c.last_lsn);
    let receiver = status.postgres.as_ref().and_then(|p| p.latest_end_lsn).unwrap_or(0);
    dcs.max(receiver)
}

fn xlog_positions(status: &NodeStatus) -> (u64, u64) {
    match status.postgres.as_ref().map(|p| &p.xlog) {
        Some(Xlog::Replica { received_location, replayed_location, .. }) => (*received_location, *replayed_location),
        _ => (0, 0),
    }
}

fn replication_state(status: &NodeStatus) -> Option<&str> {
    status.postgres.as_ref().and_then(|p| p.replication_state.as_deref())
}

/// Status code of a health check (`/`, `/primary`, `/replica?lag=10MB`, …): 200 or 503.
///
/// `path` is the URL path without the query string.
pub fn health_check(status: &NodeStatus, path: &str, query: &Query) -> Result<u16, HealthError> {
    let path = if path == "/" { "/primary" } else { path };
    let role = status.effective_role();
    let running = status.state == PostgresState::Running;
    let dcs_known = status.cluster.is_some();

    let max_lag = lag_limit(query)?;
    let optime = leader_optime(status);
    let (_, replayed) = xlog_positions(status);
    let lagging = match max_lag {
        Some(max) => optime > 0 && optime > replayed.saturating_add(max),
        None => false,
    };
    let state_ok = query.get("replication_state").is_none_or(|want| replication_state(status) == Some(want));
    let replica_ok = !status.noloadbalance() && !lagging && state_ok && role == PostgresRole::Replica && running;
    let mut replica = code(replica_ok);

    // Without a cluster view in maintenance mode nobody can vouch for the lock: trust the role.
    let (leader, primary, standby_leader) = if !dcs_known && status.paused {
        (
            code(matches!(role, PostgresRole::Primary | PostgresRole::StandbyLeader)),
            code(role == PostgresRole::Primary),
            code(role == PostgresRole::StandbyLeader),
        )
    } else if status.is_leader {
        if status.is_standby_cluster {
            // The standby leader is not a replica for load balancing purposes.
            replica = 503;
            (200, 503, code(matches!(role, PostgresRole::Replica | PostgresRole::StandbyLeader)))
        } else {
            (200, 200, 503)
        }
    } else {
        (503, 503, 503)
    };
    let any_leader_ok = primary == 200 || standby_leader == 200;

    let mut ignore_tags = false;
    let mut result = 503;
    if path.contains("standby_leader") || path.contains("standby-leader") {
        result = standby_leader;
        ignore_tags = true;
    } else if path.contains("leader") {
        result = leader;
        ignore_tags = true;
    } else if path.contains("master") || path.contains("primary") || path.contains("read-write") {
        result = primary;
        ignore_tags = true;
    } else if path.contains("replica") {
        result = replica;
    } else if path.contains("read-only") && !path.contains("sync") && !path.contains("quorum") {
        result = if any_leader_ok { 200 } else { replica };
    } else if path.contains("health") {
        result = code(running);
    } else if dcs_known {
        let quorum = status.quorum_standby;
        let sync = status.sync_standby;
        match path {
            "/sync" | "/synchronous" if sync => result = replica,
            "/quorum" if quorum => result = replica,
            "/async" | "/asynchronous" if !sync && !quorum => result = replica,
            "/read-only-quorum" => {
                if any_leader_ok {
                    result = 200;
                } else if quorum {
                    result = replica;
                }
            }
            "/read-only-sync" | "/read-only-synchronous" => {
                if any_leader_ok {
                    result = 200;
                } else if sync {
                    result = replica;
                }
            }
            _ => {}
        }
    }

    if !ignore_tags && result == 200 && !tags_match(status, query) {
        result = 503;
    }
    Ok(result)
}

fn code(ok: bool) -> u16 {
    if ok {
        200
    } else {
        503
    }
}

/// `?tag_key=value` filters: every tag must be set on this node with that value
/// (non-string tag values compare as Python prints them lower-cased: `true`, `1`).
fn tags_match(status: &NodeStatus, query: &Query) -> bool {
    query.tags().into_iter().all(|(key, want)| match status.tags.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => s == want,
        Some(Value::Bool(b)) => want == if *b { "true" } else { "false" },
        Some(other) => other.to_string().to_lowercase() == want,
    })
}

/// `/liveness`: 200 while the HA loop keeps running (always in maintenance mode); 503 once its
/// next run is overdue by `ttl` on a running primary or `2*ttl` elsewhere.
pub fn liveness(status: &NodeStatus, now: SystemTime) -> u16 {
    if status.paused {
        return 200;
    }
    let primary = status.role == PostgresRole::Primary && status.state == PostgresState::Running;
    let threshold = Duration::from_secs(status.ttl.saturating_mul(if primary { 1 } else { 2 }));
    code(status.next_run + threshold > now)
}

/// `/readiness`: `Ok(None)` when ready, `Ok(Some(reason))` when not (answered with 503).
pub fn readiness(status: &NodeStatus, query: &Query) -> Result<Option<String>, HealthError> {
    let max_lag = lag_limit(query)?;
    let write_mode = match query.get("mode") {
        None | Some("apply") => false,
        Some("write") => true,
        Some(other) => return Err(HealthError::Mode(other.to_owned())),
    };
    if status.is_leader {
        return Ok(None);
    }
    if status.state != PostgresState::Running {
        return Ok(Some("PostgreSQL is not running".into()));
    }
    if replication_state(status) != Some("streaming") {
        return Ok(Some("PostgreSQL replication state is not streaming".into()));
    }
    let receiver = status.postgres.as_ref().and_then(|p| p.latest_end_lsn).unwrap_or(0);
    if status.cluster.is_none() && receiver == 0 {
        if status.failsafe_mode_is_active {
            return Ok(None);
        }
        return Ok(Some("DCS is not accessible".into()));
    }
    let optime = leader_optime(status);
    let (received, replayed) = xlog_positions(status);
    let (mode, position) = if write_mode { ("write", received) } else { ("apply", replayed) };
    let lag = optime.saturating_sub(position);
    let max = max_lag.unwrap_or(status.maximum_lag_on_failover);
    if lag > max {
        return Ok(Some(format!("Replication {mode} lag {lag} exceeds maximum allowable {max}")));
    }
    Ok(None)
}
