//! Control endpoints: request types, their validation (pure functions of the request and the
//! published snapshot) and the [`Control`] trait through which the agent carries them out.

use crate::cluster::ClusterDocument;
use crate::schedule::{parse_schedule, ScheduleError};
use crate::status::{NodeStatus, PostgresRole, Timestamp, Xlog};
use crate::units::parse_seconds;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// A refusal: the status code and the text body Patroni answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Body (plain text).
    pub message: String,
}

impl Refusal {
    /// Builds a refusal.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
}

/// Switchover (demote a named leader) or failover (promote a named candidate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverAction {
    /// `POST /switchover`, or `POST /failover` naming a leader.
    Switchover,
    /// `POST /failover`.
    Failover,
}

impl FailoverAction {
    /// `switchover` / `failover`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Switchover => "switchover",
            Self::Failover => "failover",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Switchover => "Switchover",
            Self::Failover => "Failover",
        }
    }

    fn past(self) -> &'static str {
        match self {
            Self::Switchover => "switched",
            Self::Failover => "failed",
        }
    }
}

/// A validated switchover or failover, ready to be written to the DCS.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverPlan {
    /// What is done (a failover naming a leader becomes a switchover).
    pub action: FailoverAction,
    /// Current leader named by the caller.
    pub leader: Option<String>,
    /// Member to promote, if named.
    pub candidate: Option<String>,
    /// When (switchover only); `None` means now.
    pub scheduled_at: Option<Timestamp>,
    /// Members at least one of which must answer as healthy before an immediate
    /// action is written (empty for a scheduled switchover).
    pub candidates_to_check: Vec<String>,
}

/// How an accepted switchover/failover ended, as seen by the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailoverOutcome {
    /// The failover key could not be written.
    WriteFailed,
    /// A scheduled switchover was registered.
    Scheduled,
    /// A new leader took the key.
    Completed {
        /// Name of the new leader.
        new_leader: String,
    },
    /// The failover key disappeared without a new leader.
    Failed,
    /// Nothing conclusive before the wait ended.
    Unknown,
}

/// Text and status for an outcome, worded as Patroni words it.
pub fn failover_outcome_response(plan: &FailoverPlan, outcome: &FailoverOutcome) -> (u16, String) {
    let a = plan.action;
    match outcome {
        FailoverOutcome::WriteFailed => (503, "failed to write failover key into DCS".into()),
        FailoverOutcome::Scheduled => (202, format!("{} scheduled", a.title())),
        FailoverOutcome::Completed { new_leader } => match &plan.candidate {
            Some(c) if c != new_leader => (
                200,
                format!(
                    "{}{} over to \"{new_leader}\" instead of \"{c}\"",
                    a.past()[..1].to_uppercase(),
                    &a.past()[1..]
                ),
            ),
            _ => (200, format!("Successfully {} over to \"{new_leader}\"", a.past())),
        },
        FailoverOutcome::Failed => (503, format!("{} failed", a.title())),
        FailoverOutcome::Unknown => (503, format!("{} status unknown", a.title())),
    }
}

fn string_field(body: &Map<String, Value>, key: &str) -> Result<Option<String>, Refusal> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Refusal::new(400, format!("\"{key}\" must be a string, got {other}"))),
    }
}

/// Validates a `POST /switchover` or `POST /failover` body against the snapshot.
///
/// `cluster` is the last cluster view and `paused` the maintenance mode as this node knows it;
/// errors carry the status codes and texts Patroni answers with (400, 412, 422, 503).
pub fn validate_failover(
    requested: FailoverAction,
    body: &Map<String, Value>,
    cluster: Option<&ClusterDocument>,
    paused: bool,
    now: DateTime<Utc>,
) -> Result<FailoverPlan, Refusal> {
    let leader = string_field(body, "leader")?;
    let candidate = match string_field(body, "candidate")? {
        Some(c) => Some(c),
        None => string_field(body, "member")?,
    };
    let scheduled_raw = string_field(body, "scheduled_at")?;

    if requested == FailoverAction::Failover && candidate.is_none() {
        return Err(Refusal::new(400, "Failover could be performed only to a specific candidate"));
    }
    if requested == FailoverAction::Switchover && leader.is_none() {
        return Err(Refusal::new(400, "Switchover could be performed only from a specific leader"));
    }
    let mut scheduled_at = None;
    if let Some(raw) = &scheduled_raw {
        if requested == FailoverAction::Failover {
            return Err(Refusal::new(400, "Failover can't be scheduled"));
        }
        if paused {
            return Err(Refusal::new(400, "Can't schedule switchover in the paused state"));
        }
        scheduled_at = Some(
            parse_schedule(raw, now).map_err(|e: ScheduleError| Refusal::new(e.status(), e.message("switchover")))?,
        );
    }
    if paused && candidate.is_none() {
        return Err(Refusal::new(400, "Switchover is possible only to a specific candidate in a paused state"));
    }
    let action =
        if requested == FailoverAction::Failover && leader.is_some() { FailoverAction::Switchover } else { requested };
    if leader.is_some() && leader == candidate {
        return Err(Refusal::new(400, "Switchover target and source are the same"));
    }
    let mut plan = FailoverPlan { action, leader, candidate, scheduled_at, candidates_to_check: Vec::new() };
    if plan.scheduled_at.is_none() {
        let Some(cluster) = cluster else {
            return Err(Refusal::new(503, "DCS is not accessible"));
        };
        plan.candidates_to_check = failover_candidates(&plan, cluster).map_err(|m| Refusal::new(412, m))?;
    }
    Ok(plan)
}

/// Members that could take over, or why none can (answered with 412).
fn failover_candidates(plan: &FailoverPlan, cluster: &ClusterDocument) -> Result<Vec<String>, String> {
    let a = plan.action.as_str();
    if let Some(leader) = &plan.leader {
        if cluster.leader.as_deref() != Some(leader.as_str()) {
            return Err("leader name does not match".into());
        }
    }
    let strict_sync = cluster.synchronous_mode && !cluster.quorum_commit_mode;
    let members: Vec<String> = if let Some(candidate) = &plan.candidate {
        if plan.action == FailoverAction::Switchover && strict_sync && !cluster.sync_matches(candidate) {
            return Err("candidate name does not match with sync_standby".into());
        }
        if cluster.member(candidate).is_none() {
            return Err("candidate does not exists".into());
        }
        vec![candidate.clone()]
    } else if strict_sync {
        let m: Vec<String> =
            cluster.members.iter().filter(|m| cluster.sync_matches(&m.name)).map(|m| m.name.clone()).collect();
        if m.is_empty() {
            return Err(format!("{a} is not possible: can not find sync_standby"));
        }
        m
    } else {
        let m: Vec<String> = cluster
            .members
            .iter()
            .filter(|m| cluster.leader.as_deref() != Some(m.name.as_str()) && m.api_url.is_some())
            .map(|m| m.name.clone())
            .collect();
        if m.is_empty() {
            return Err(format!("{a} is not possible: cluster does not have members except leader"));
        }
        m
    };
    Ok(members)
}

/// The 412 text when none of [`FailoverPlan::candidates_to_check`] answered as healthy.
pub fn no_good_candidates(plan: &FailoverPlan) -> String {
    format!("{} is not possible: no good candidates have been found", plan.action.as_str())
}

/// A validated `POST /restart`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RestartRequest {
    /// Restart later, at this time.
    pub schedule: Option<Timestamp>,
    /// Only when the node has this role.
    pub role: Option<PostgresRole>,
    /// Only when PostgreSQL is older than this (`server_version_num` form, e.g. 150004).
    pub postgres_version: Option<u32>,
    /// Seconds to wait for PostgreSQL to accept connections (overrides `primary_start_timeout`).
    pub timeout: Option<u64>,
    /// Only when a restart is pending.
    pub restart_pending: bool,
    /// The body as received (kept for `scheduled_restart` in `/patroni`).
    pub raw: Map<String, Value>,
}

impl RestartRequest {
    /// Whether the conditions of this request hold for `status` (Patroni's
    /// "restart conditions are not satisfied" check).
    pub fn conditions_met(&self, status: &NodeStatus) -> bool {
        if self.restart_pending && status.pending_restart_reason.is_empty() {
            return false;
        }
        if let Some(role) = self.role {
            if status.effective_role() != role {
                return false;
            }
        }
        if let Some(v) = self.postgres_version {
            let current = status.postgres.as_ref().map_or(0, |p| p.server_version);
            if current >= v {
                return false;
            }
        }
        true
    }
}

/// `9.6.3` → 90603, `15.2` → 150002 (only `X.Y` for 10+, or `X.Y.Z`).
pub fn postgres_version_to_int(v: &str) -> Result<u32, String> {
    let parts: Result<Vec<u32>, _> = v.split('.').map(str::parse::<u32>).collect();
    let Ok(mut parts) = parts else {
        return Err(format!("Invalid PostgreSQL version: {v}"));
    };
    if parts.len() < 2
        || (parts.len() == 2 && parts[0] < 10)
        || parts.len() > 3
        || parts.iter().skip(1).any(|p| *p > 99)
    {
        return Err(format!("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {v}"));
    }
    if parts.len() == 2 {
        parts.insert(1, 0);
    }
    Ok(parts[0].saturating_mul(10000) + parts[1] * 100 + parts[2])
}

fn bool_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => Some(true),
            "off" | "false" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Validates a `POST /restart` body (may be empty) in key order, as Patroni does.
pub fn validate_restart(
    body: &Map<String, Value>,
    paused: bool,
    now: DateTime<Utc>,
) -> Result<RestartRequest, Refusal> {
    if paused && body.contains_key("schedule") {
        return Err(Refusal::new(500, "Can't schedule restart in the paused state"));
    }
    let mut req = RestartRequest { raw: body.clone(), ..Default::default() };
    for (k, v) in body {
        match k.as_str() {
            "schedule" => {
                let Value::String(s) = v else {
                    return Err(Refusal::new(422, ScheduleError::Unparsable.message("restart")));
                };
                req.schedule =
                    Some(parse_schedule(s, now).map_err(|e| Refusal::new(e.status(), e.message("restart")))?);
            }
            "role" => {
                let role = v.as_str().and_then(PostgresRole::parse).filter(|r| {
                    matches!(r, PostgresRole::Primary | PostgresRole::StandbyLeader | PostgresRole::Replica)
                });
                match role {
                    Some(r) => req.role = Some(r),
                    None => {
                        return Err(Refusal::new(
                            400,
                            "PostgreSQL role should be either primary, standby_leader, or replica",
                        ))
                    }
                }
            }
            "postgres_version" => {
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                req.postgres_version = Some(postgres_version_to_int(&s).map_err(|m| Refusal::new(400, m))?);
            }
            "timeout" => {
                let secs = match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => parse_seconds(s, "timeout").ok(),
                    _ => None,
                };
                match secs.map(f64::round) {
                    Some(s) if s > 0.0 && s < 1e12 => req.timeout = Some(s as u64),
                    _ => return Err(Refusal::new(400, "Timeout should be a positive number of seconds")),
                }
            }
            "restart_pending" => {
                req.restart_pending =
                    bool_value(v).ok_or_else(|| Refusal::new(400, "restart_pending should be a boolean"))?;
            }
            other => return Err(Refusal::new(400, format!("Unknown filter for the scheduled restart: {other}"))),
        }
    }
    Ok(req)
}

/// A `POST /reinitialize` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReinitializeRequest {
    /// Cancel a running task (e.g. a restart loop) first.
    pub force: bool,
    /// Take the base backup from the leader rather than any member.
    pub from_leader: bool,
}

/// Reads a `POST /reinitialize` body; unknown or unreadable values count as `false`, as in Patroni.
pub fn parse_reinitialize(body: &Map<String, Value>) -> ReinitializeRequest {
    ReinitializeRequest {
        force: body.get("force").and_then(bool_value).unwrap_or(false),
        from_leader: body.get("from_leader").and_then(bool_value).unwrap_or(false),
    }
}

/// The dynamic configuration with the version of its DCS key.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedConfig {
    /// The `/config` value.
    pub data: Value,
    /// Its modification version, for compare-and-set.
    pub version: String,
}

/// Answer to `DELETE /switchover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelSwitchover {
    /// The scheduled switchover was removed (200).
    Deleted,
    /// Nothing was scheduled (404).
    NotScheduled,
    /// The failover key changed meanwhile (409).
    Conflict,
}

/// Answer to `POST /failsafe` from the node's HA logic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailsafeReply {
    /// The primary may keep running; `lsn` is our received/replayed position.
    Accepted {
        /// Absolute WAL position in bytes, sent in the `lsn` header.
        lsn: Option<u64>,
    },
    /// Refused with a reason (500).
    Refused(String),
}

/// A failure of the agent while carrying out a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ControlError(pub String);

/// What the agent does on behalf of the REST API.
///
/// Every method may take as long as the action needs; the server runs each request on its own
/// task, so read-only endpoints keep answering meanwhile.
#[async_trait]
pub trait Control: Send + Sync + 'static {
    /// Wakes the HA loop (after a config change or a failover request).
    async fn wakeup(&self);

    /// The local WAL positions read right now, for `GET /patroni`. Members racing for a free leader key compare
    /// these, and the loop's snapshot can predate the last WAL the departing primary sent (Patroni queries
    /// PostgreSQL on every `/patroni` request). `None` serves the snapshot; the server waits only briefly.
    async fn fresh_xlog(&self) -> Option<Xlog> {
        None
    }

    /// Re-reads the configuration file (`POST /reload`, like SIGHUP).
    async fn reload(&self);

    /// Restarts PostgreSQL now if `req`'s conditions hold: `Ok((true, text))` on success (200),
    /// `Ok((false, text))` when refused or failed (503), `Err` on an unexpected error (400).
    async fn restart(&self, req: RestartRequest) -> Result<(bool, String), ControlError>;

    /// Schedules a restart at `req.schedule`; `false` when one is already scheduled (409).
    async fn schedule_restart(&self, req: RestartRequest) -> bool;

    /// Removes the scheduled restart; `false` when none was scheduled (404).
    async fn delete_scheduled_restart(&self) -> bool;

    /// Starts reinitializing this replica; `Err(text)` when it cannot (503).
    async fn reinitialize(&self, req: ReinitializeRequest) -> Result<(), String>;

    /// Asks the named members for their status: whether at least one could be promoted
    /// (reachable, no `nofailover`, watchdog fine).
    async fn any_healthy_candidate(&self, members: &[String]) -> bool;

    /// Writes the failover key (with `plan.scheduled_at` when set), wakes the HA loop and, for an
    /// immediate action, waits for its outcome ([`crate::wait::await_failover`] does the waiting
    /// on the published snapshots).
    async fn manual_failover(&self, plan: &FailoverPlan) -> FailoverOutcome;

    /// Removes a scheduled switchover.
    async fn cancel_scheduled_switchover(&self) -> CancelSwitchover;

    /// Reads the `/config` key fresh from the DCS; `Ok(None)` when it does not exist.
    async fn read_config(&self) -> Result<Option<VersionedConfig>, ControlError>;

    /// Writes the `/config` key, compare-and-set against `version` when given;
    /// `Ok(false)` when the version no longer matches.
    async fn write_config(&self, data: &Value, version: Option<&str>) -> Result<bool, ControlError>;

    /// Handles a failsafe heartbeat from the primary (`POST /failsafe`).
    async fn update_failsafe(&self, body: &Map<String, Value>) -> FailsafeReply;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterMember;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn member(name: &str) -> ClusterMember {
        ClusterMember { name: name.into(), api_url: Some(format!("http://{name}:8008/patroni")), ..Default::default() }
    }

    fn cluster() -> ClusterDocument {
        ClusterDocument {
            leader: Some("pg1".into()),
            members: vec![member("pg1"), member("pg2"), member("pg3")],
            ..Default::default()
        }
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn check(
        action: FailoverAction,
        b: Value,
        c: Option<&ClusterDocument>,
        paused: bool,
    ) -> Result<FailoverPlan, Refusal> {
        validate_failover(action, &body(b), c, paused, now())
    }

    type FailoverCase<'a> = (FailoverAction, Value, Option<&'a ClusterDocument>, bool, u16, &'a str);

    #[test]
    fn failover_validation_table() {
        use FailoverAction::*;
        let c = cluster();
        let mut sync = cluster();
        sync.synchronous_mode = true;
        sync.sync_members = vec!["pg3".into()];
        let lonely = ClusterDocument { leader: Some("pg1".into()), members: vec![member("pg1")], ..Default::default() };
        let cases: Vec<FailoverCase> = vec![
            (
                Failover,
                json!({"leader": "pg1"}),
                Some(&c),
                false,
                400,
                "Failover could be performed only to a specific candidate",
            ),
            (
                Switchover,
                json!({"candidate": "pg2"}),
                Some(&c),
                false,
                400,
                "Switchover could be performed only from a specific leader",
            ),
            (
                Failover,
                json!({"candidate": "pg2", "scheduled_at": "2030-01-01T00:00+00"}),
                Some(&c),
                false,
                400,
                "Failover can't be scheduled",
            ),
            (
                Switchover,
                json!({"leader": "pg1", "scheduled_at": "2030-01-01T00:00+00"}),
                Some(&c),
                true,
                400,
                "Can't schedule switchover in the paused state",
            ),
            (
                Switchover,
                json!({"leader": "pg1", "scheduled_at": "2030-01-01T00:00"}),
                Some(&c),
                false,
                400,
                "Timezone information is mandatory for the scheduled switchover",
            ),
            (
                Switchover,
                json!({"leader": "pg1", "scheduled_at": "2020-01-01T00:00+00"}),
                Some(&c),
                false,
                422,
                "Cannot schedule switchover in the past",
            ),
            (
                Switchover,
                json!({"leader": "pg1", "scheduled_at": "soon"}),
                Some(&c),
                false,
                422,
                "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601",
            ),
            (
                Switchover,
                json!({"leader": "pg1"}),
                Some(&c),
                true,
                400,
                "Switchover is possible only to a specific candidate in a paused state",
            ),
            (
                Switchover,
                json!({"leader": "pg1", "candidate": "pg1"}),
                Some(&c),
                false,
                400,
                "Switchover target and source are the same",
            ),
            (Switchover, json!({"leader": "pg2"}), Some(&c), false, 412, "leader name does not match"),
            (
                Switchover,
                json!({"leader": "pg1", "candidate": "pg9"}),
                Some(&c),
                false,
                412,
                "candidate does not exists",
            ),
            (
                Switchover,
                json!({"leader": "pg1", "candidate": "pg2"}),
                Some(&sync),
                false,
                412,
                "candidate name does not match with sync_standby",
            ),
            (
                Switchover,
                json!({"leader": "pg1"}),
                Some(&lonely),
                false,
                412,
                "switchover is not possible: cluster does not have members except leader",
            ),
            (Switchover, json!({"leader": "pg1"}), None, false, 503, "DCS is not accessible"),
            (Switchover, json!({"leader": 5}), Some(&c), false, 400, "\"leader\" must be a string, got 5"),
        ];
        for (action, b, cl, paused, status, msg) in cases {
            let text = b.to_string();
            let err = check(action, b, cl, paused).expect_err(&text);
            assert_eq!((err.status, err.message.as_str()), (status, msg), "{text}");
        }
        let mut nosync = sync.clone();
        nosync.sync_members.clear();
        let e = check(Switchover, json!({"leader": "pg1"}), Some(&nosync), false).unwrap_err();
        assert_eq!(e.message, "switchover is not possible: can not find sync_standby");
    }

    #[test]
    fn accepted_plans() {
        use FailoverAction::*;
        let c = cluster();
        let p = check(Switchover, json!({"leader": "pg1"}), Some(&c), false).unwrap();
        assert_eq!(p.candidates_to_check, vec!["pg2".to_string(), "pg3".to_string()]);
        let p = check(Failover, json!({"leader": "pg1", "candidate": "pg3"}), Some(&c), false).unwrap();
        assert_eq!(p.action, Switchover);
        assert_eq!(p.candidates_to_check, vec!["pg3".to_string()]);
        let p = check(Failover, json!({"member": "pg2"}), Some(&c), true).unwrap();
        assert_eq!((p.action, p.candidate.as_deref()), (Failover, Some("pg2")));
        let p =
            check(Switchover, json!({"leader": "pg1", "scheduled_at": "2030-01-01T00:00+00"}), None, false).unwrap();
        assert!(p.scheduled_at.is_some() && p.candidates_to_check.is_empty());
    }

    #[test]
    fn outcome_texts() {
        let mut plan = FailoverPlan {
            action: FailoverAction::Switchover,
            leader: Some("pg1".into()),
            candidate: None,
            scheduled_at: None,
            candidates_to_check: vec![],
        };
        let done = FailoverOutcome::Completed { new_leader: "pg2".into() };
        assert_eq!(failover_outcome_response(&plan, &done), (200, "Successfully switched over to \"pg2\"".into()));
        plan.candidate = Some("pg3".into());
        assert_eq!(
            failover_outcome_response(&plan, &done),
            (200, "Switched over to \"pg2\" instead of \"pg3\"".into())
        );
        plan.action = FailoverAction::Failover;
        plan.candidate = Some("pg2".into());
        assert_eq!(failover_outcome_response(&plan, &done), (200, "Successfully failed over to \"pg2\"".into()));
        assert_eq!(failover_outcome_response(&plan, &FailoverOutcome::Failed), (503, "Failover failed".into()));
        assert_eq!(
            failover_outcome_response(&plan, &FailoverOutcome::Unknown),
            (503, "Failover status unknown".into())
        );
        assert_eq!(failover_outcome_response(&plan, &FailoverOutcome::Scheduled), (202, "Failover scheduled".into()));
        assert_eq!(no_good_candidates(&plan), "failover is not possible: no good candidates have been found");
    }

    #[test]
    fn restart_validation_table() {
        let cases: Vec<(Value, bool, u16, &str)> = vec![
            (json!({"schedule": "2030-01-01T00:00+00"}), true, 500, "Can't schedule restart in the paused state"),
            (json!({"schedule": "2010-01-01T00:00+00"}), false, 422, "Cannot schedule restart in the past"),
            (
                json!({"schedule": "2030-01-01T00:00"}),
                false,
                400,
                "Timezone information is mandatory for the scheduled restart",
            ),
            (
                json!({"role": "leader"}),
                false,
                400,
                "PostgreSQL role should be either primary, standby_leader, or replica",
            ),
            (
                json!({"postgres_version": "9.6"}),
                false,
                400,
                "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6",
            ),
            (json!({"postgres_version": "a.b"}), false, 400, "Invalid PostgreSQL version: a.b"),
            (json!({"timeout": -1}), false, 400, "Timeout should be a positive number of seconds"),
            (json!({"timeout": "soon"}), false, 400, "Timeout should be a positive number of seconds"),
            (json!({"force": true}), false, 400, "Unknown filter for the scheduled restart: force"),
        ];
        for (b, paused, status, msg) in cases {
            let text = b.to_string();
            let err = validate_restart(&body(b), paused, now()).expect_err(&text);
            assert_eq!((err.status, err.message.as_str()), (status, msg), "{text}");
        }
        let r = validate_restart(
            &body(json!({"role": "master", "postgres_version": "15.2", "timeout": "2min", "restart_pending": true})),
            false,
            now(),
        )
        .unwrap();
        assert_eq!(r.role, Some(PostgresRole::Primary));
        assert_eq!(r.postgres_version, Some(150_002));
        assert_eq!(r.timeout, Some(120));
        assert!(r.restart_pending);
    }

    #[test]
    fn versions() {
        assert_eq!(postgres_version_to_int("9.5.3"), Ok(90503));
        assert_eq!(postgres_version_to_int("10.1"), Ok(100_001));
        assert!(postgres_version_to_int("10").is_err());
    }

    #[test]
    fn reinitialize_body() {
        assert_eq!(
            parse_reinitialize(&body(json!({"force": "yes", "from_leader": true}))),
            ReinitializeRequest { force: true, from_leader: true }
        );
        assert_eq!(parse_reinitialize(&Map::new()), ReinitializeRequest::default());
    }
}
