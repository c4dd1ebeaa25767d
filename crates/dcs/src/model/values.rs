//! The single-key values of a cluster: `config`, `failover`, `sync`, `history`, `status`, `failsafe`.
//!
//! Each parser takes the raw stored string and never fails: a value it cannot read yields the empty form plus a
//! [`ParseProblem`], because one bad key written by someone else must not hide the rest of the cluster.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::member::{json_kind, parse_u32};
use super::{parse_lsn, ParseProblem, Version};

/// The dynamic configuration (`config` key), kept as raw JSON: the config crate owns its meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// Version to pass back for compare-and-set (`set_config_value`).
    pub version: Version,
    pub data: Map<String, Value>,
}

impl ClusterConfig {
    pub fn parse(version: Version, value: &str, key: &str, problems: &mut Vec<ParseProblem>) -> Self {
        let data = match serde_json::from_str::<Value>(value) {
            Ok(Value::Object(m)) => m,
            Ok(other) => {
                problems.push(ParseProblem::new(key, format!("expected a JSON object, found {}", json_kind(&other))));
                Map::new()
            }
            Err(e) => {
                problems.push(ParseProblem::new(key, format!("invalid JSON: {e}")));
                Map::new()
            }
        };
        ClusterConfig { version, data }
    }

    pub fn to_json(&self) -> String {
        Value::Object(self.data.clone()).to_string()
    }
}

/// A requested switchover (`leader` set) or failover (only `member` set), optionally scheduled.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Failover {
    pub version: Version,
    /// The current leader the request was made against; `None` for a failover.
    pub leader: Option<String>,
    /// The desired new leader (JSON field `member`).
    pub candidate: Option<String>,
    pub scheduled_at: Option<DateTime<FixedOffset>>,
    /// A `scheduled_at` that could not be read. The HA core must not treat such a request as immediate.
    pub invalid_scheduled_at: Option<String>,
    pub extra: Map<String, Value>,
}

impl Failover {
    pub fn parse(version: Version, value: &str, key: &str, problems: &mut Vec<ParseProblem>) -> Self {
        let mut f = Failover { version, ..Failover::default() };
        if value.trim().is_empty() {
            return f;
        }
        let map = match serde_json::from_str::<Value>(value) {
            Ok(Value::Object(m)) => m,
            Ok(Value::Null) => return f,
            Ok(other) => {
                problems.push(ParseProblem::new(key, format!("expected a JSON object, found {}", json_kind(&other))));
                return f;
            }
            Err(_) => {
                // Very old writers stored `leader:candidate` as plain text.
                let mut parts = value.split(':').map(str::trim);
                f.leader = parts.next().filter(|s| !s.is_empty()).map(String::from);
                f.candidate = parts.next().filter(|s| !s.is_empty()).map(String::from);
                return f;
            }
        };
        for (field, v) in map {
            match (field.as_str(), v) {
                ("leader", Value::String(s)) => f.leader = Some(s).filter(|s| !s.is_empty()),
                ("member", Value::String(s)) => f.candidate = Some(s).filter(|s| !s.is_empty()),
                ("leader" | "member" | "scheduled_at", Value::Null) => {}
                ("scheduled_at", Value::String(s)) if s.is_empty() => {}
                ("scheduled_at", Value::String(s)) => match parse_timestamp(&s) {
                    Some(t) => f.scheduled_at = Some(t),
                    None => {
                        problems.push(ParseProblem::new(
                            key,
                            format!("field \"scheduled_at\": not an ISO 8601 timestamp: {s:?}"),
                        ));
                        f.invalid_scheduled_at = Some(s);
                    }
                },
                (name @ ("leader" | "member" | "scheduled_at"), other) => {
                    problems.push(ParseProblem::new(key, format!("field {name:?}: expected a string, found {other}")));
                    if name == "scheduled_at" {
                        f.invalid_scheduled_at = Some(other.to_string());
                    }
                }
                (_, other) => {
                    f.extra.insert(field, other);
                }
            }
        }
        f
    }

    /// True when the key asks for nothing (Patroni treats such a failover key as absent).
    pub fn is_empty(&self) -> bool {
        self.leader.is_none() && self.candidate.is_none()
    }

    /// The value Patroni writes: `{"leader":..,"member":..,"scheduled_at":..}` with absent fields omitted.
    pub fn value_json(
        leader: Option<&str>,
        candidate: Option<&str>,
        scheduled_at: Option<&DateTime<FixedOffset>>,
    ) -> String {
        let mut m = Map::new();
        if let Some(l) = leader.filter(|s| !s.is_empty()) {
            m.insert("leader".into(), Value::String(l.into()));
        }
        if let Some(c) = candidate.filter(|s| !s.is_empty()) {
            m.insert("member".into(), Value::String(c.into()));
        }
        if let Some(t) = scheduled_at {
            m.insert("scheduled_at".into(), Value::String(patroni_pycompat::isoformat(t)));
        }
        Value::Object(m).to_string()
    }

    pub fn to_json(&self) -> String {
        let mut m: Map<String, Value> = serde_json::from_str(&Self::value_json(
            self.leader.as_deref(),
            self.candidate.as_deref(),
            self.scheduled_at.as_ref(),
        ))
        .unwrap_or_default();
        for (k, v) in &self.extra {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Value::Object(m).to_string()
    }
}

/// Reads ISO 8601 timestamps as written by Python (`isoformat()`), by humans (`Z`, a space instead of `T`) or
/// without an offset, which is taken as UTC.
pub fn parse_timestamp(s: &str) -> Option<DateTime<FixedOffset>> {
    let (naive, offset) = patroni_pycompat::parse_datetime(s)?;
    match offset {
        Some(o) => naive.and_local_timezone(o).single(),
        None => Some(Utc.from_utc_datetime(&naive).fixed_offset()),
    }
}

/// The last synchronous replication state the leader published (`sync` key).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncState {
    /// `None` when the key does not exist; pass it back for compare-and-set.
    pub version: Option<Version>,
    pub leader: Option<String>,
    /// Stored as a comma separated string.
    pub sync_standby: Vec<String>,
    pub quorum: u32,
}

impl SyncState {
    pub fn parse(version: Version, value: &str, key: &str, problems: &mut Vec<ParseProblem>) -> Self {
        let mut s = SyncState { version: Some(version), ..SyncState::default() };
        let map = match serde_json::from_str::<Value>(value) {
            Ok(Value::Object(m)) => m,
            Ok(Value::Null) => return s,
            Ok(other) => {
                problems.push(ParseProblem::new(key, format!("expected a JSON object, found {}", json_kind(&other))));
                return s;
            }
            Err(e) => {
                problems.push(ParseProblem::new(key, format!("invalid JSON: {e}")));
                return s;
            }
        };
        match map.get("leader") {
            Some(Value::String(l)) if !l.is_empty() => s.leader = Some(l.clone()),
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(other) => {
                problems.push(ParseProblem::new(key, format!("field \"leader\": expected a string, found {other}")))
            }
        }
        match map.get("sync_standby") {
            Some(Value::String(l)) => s.sync_standby = split_names(l),
            None | Some(Value::Null) => {}
            Some(other) => problems.push(ParseProblem::new(
                key,
                format!("field \"sync_standby\": expected a comma separated string, found {other}"),
            )),
        }
        match map.get("quorum") {
            None | Some(Value::Null) => {}
            Some(v) => match parse_u32(v) {
                Some(q) => s.quorum = q,
                None => problems.push(ParseProblem::new(
                    key,
                    format!("field \"quorum\": expected a non-negative integer, found {v}"),
                )),
            },
        }
        // Without a leader the state means nothing; Patroni reads quorum as 0 then.
        if s.leader.is_none() {
            s.sync_standby.clear();
            s.quorum = 0;
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        self.leader.is_none()
    }

    /// Case-insensitive, as PostgreSQL compares `synchronous_standby_names`.
    pub fn matches(&self, name: &str, check_leader: bool) -> bool {
        if self.is_empty() || name.is_empty() {
            return false;
        }
        self.sync_standby.iter().any(|s| s.eq_ignore_ascii_case(name)) || (check_leader && self.leader_matches(name))
    }

    pub fn leader_matches(&self, name: &str) -> bool {
        self.leader.as_deref().is_some_and(|l| l.eq_ignore_ascii_case(name))
    }

    /// Leader followed by the synchronous standbys; empty when there is no leader.
    pub fn members(&self) -> Vec<String> {
        match &self.leader {
            None => vec![],
            Some(l) => std::iter::once(l.clone()).chain(self.sync_standby.iter().cloned()).collect(),
        }
    }

    /// The value Patroni writes: `{"leader":..,"quorum":N,"sync_standby":"a,b"}`, standbys sorted, `null` when none.
    pub fn value_json(leader: Option<&str>, sync_standby: &[String], quorum: u32) -> String {
        let mut names: Vec<&str> = sync_standby.iter().map(String::as_str).collect();
        names.sort_unstable();
        let mut m = Map::new();
        m.insert("leader".into(), leader.map_or(Value::Null, |l| Value::String(l.into())));
        m.insert("quorum".into(), Value::from(quorum));
        m.insert("sync_standby".into(), if names.is_empty() { Value::Null } else { Value::String(names.join(",")) });
        Value::Object(m).to_string()
    }

    pub fn to_json(&self) -> String {
        Self::value_json(self.leader.as_deref(), &self.sync_standby, self.quorum)
    }
}

fn split_names(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// One promotion: `[timeline, lsn, reason, timestamp, new_leader]`; the last two are absent in old entries.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryLine {
    /// The timeline that ended (the new one is `timeline + 1`).
    pub timeline: u32,
    /// Where it ended.
    pub lsn: u64,
    pub reason: String,
    /// As Patroni writes it (`2024-01-01T12:00:00.123456+00:00`); kept as text so it round-trips exactly.
    pub timestamp: Option<String>,
    pub new_leader: Option<String>,
}

/// The `history` key: the cluster's timeline history.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimelineHistory {
    pub version: Version,
    pub lines: Vec<HistoryLine>,
}

impl TimelineHistory {
    pub fn parse(version: Version, value: &str, key: &str, problems: &mut Vec<ParseProblem>) -> Self {
        let mut h = TimelineHistory { version, lines: vec![] };
        let items = match serde_json::from_str::<Value>(value) {
            Ok(Value::Array(a)) => a,
            Ok(other) => {
                problems.push(ParseProblem::new(key, format!("expected a JSON list, found {}", json_kind(&other))));
                return h;
            }
            Err(e) => {
                problems.push(ParseProblem::new(key, format!("invalid JSON: {e}")));
                return h;
            }
        };
        for (i, item) in items.into_iter().enumerate() {
            match HistoryLine::from_value(&item) {
                Some(line) => h.lines.push(line),
                None => problems.push(ParseProblem::new(
                    key,
                    format!("entry {i}: expected [timeline, lsn, reason, timestamp, new_leader], found {item}"),
                )),
            }
        }
        h
    }

    pub fn to_json(&self) -> String {
        Value::Array(self.lines.iter().map(HistoryLine::to_value).collect()).to_string()
    }
}

impl HistoryLine {
    fn from_value(v: &Value) -> Option<Self> {
        let a = v.as_array()?;
        if a.len() < 3 {
            return None;
        }
        let text = |v: Option<&Value>| match v {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => None,
        };
        Some(HistoryLine {
            timeline: parse_u32(&a[0])?,
            lsn: parse_lsn(&a[1])?,
            reason: match &a[2] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            },
            timestamp: text(a.get(3))?,
            new_leader: text(a.get(4))?,
        })
    }

    fn to_value(&self) -> Value {
        let mut v = vec![Value::from(self.timeline), Value::from(self.lsn), Value::String(self.reason.clone())];
        if self.timestamp.is_some() || self.new_leader.is_some() {
            v.push(self.timestamp.clone().map_or(Value::Null, Value::String));
        }
        if let Some(l) = &self.new_leader {
            v.push(Value::String(l.clone()));
        }
        Value::Array(v)
    }
}

/// The `status` key (or legacy `optime/leader`): the leader's last known WAL position and slot positions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    /// JSON field `optime`; 0 when unknown.
    pub last_lsn: u64,
    /// Confirmed positions of permanent (and member, with `member_slots_ttl`) slots on the leader.
    pub slots: Option<IndexMap<String, u64>>,
    /// Physical slots of members that went away and are retained for `member_slots_ttl`.
    pub retain_slots: Vec<String>,
}

impl Status {
    pub fn parse(value: &str, key: &str, problems: &mut Vec<ParseProblem>) -> Self {
        let mut st = Status::default();
        let map = match serde_json::from_str::<Value>(value) {
            Ok(Value::Object(m)) => m,
            // `optime/leader` holds just the number.
            Ok(v @ (Value::Number(_) | Value::String(_))) => {
                match parse_lsn(&v) {
                    Some(l) => st.last_lsn = l,
                    None => problems.push(ParseProblem::new(key, format!("not an LSN: {v}"))),
                }
                return st;
            }
            Ok(other) => {
                problems.push(ParseProblem::new(key, format!("expected a JSON object, found {}", json_kind(&other))));
                return st;
            }
            Err(e) => {
                problems.push(ParseProblem::new(key, format!("invalid JSON: {e}")));
                return st;
            }
        };
        match map.get("optime") {
            None | Some(Value::Null) => {}
            Some(v) => match parse_lsn(v) {
                Some(l) => st.last_lsn = l,
                None => problems.push(ParseProblem::new(key, format!("field \"optime\": not an LSN: {v}"))),
            },
        }
        // Old writers stored nested values as JSON encoded strings.
        let nested = |v: &Value| match v {
            Value::String(s) => serde_json::from_str::<Value>(s).ok(),
            other => Some(other.clone()),
        };
        match map.get("slots").map(nested) {
            None | Some(Some(Value::Null)) => {}
            Some(Some(Value::Object(m))) => {
                let mut slots = IndexMap::new();
                for (name, v) in m {
                    match parse_lsn(&v) {
                        Some(l) => {
                            slots.insert(name, l);
                        }
                        None => problems.push(ParseProblem::new(key, format!("slot {name:?}: not an LSN: {v}"))),
                    }
                }
                st.slots = Some(slots);
            }
            Some(_) => problems.push(ParseProblem::new(key, "field \"slots\": expected an object")),
        }
        match map.get("retain_slots").map(nested) {
            None | Some(Some(Value::Null)) => {}
            Some(Some(Value::Array(a))) => {
                st.retain_slots = a.iter().filter_map(|v| v.as_str().map(String::from)).collect();
            }
            Some(_) => problems.push(ParseProblem::new(key, "field \"retain_slots\": expected a list")),
        }
        st
    }

    /// The value Patroni writes: `optime` always, `slots` and `retain_slots` only when non-empty.
    pub fn to_json(&self) -> String {
        let mut m = Map::new();
        m.insert("optime".into(), Value::from(self.last_lsn));
        if let Some(slots) = self.slots.as_ref().filter(|s| !s.is_empty()) {
            let obj: Map<String, Value> = slots.iter().map(|(k, v)| (k.clone(), Value::from(*v))).collect();
            m.insert("slots".into(), Value::Object(obj));
        }
        if !self.retain_slots.is_empty() {
            m.insert(
                "retain_slots".into(),
                Value::Array(self.retain_slots.iter().cloned().map(Value::String).collect()),
            );
        }
        Value::Object(m).to_string()
    }
}

/// The `failsafe` key: member name to REST API URL of every member the leader last saw.
pub type Failsafe = IndexMap<String, String>;

pub fn parse_failsafe(value: &str, key: &str, problems: &mut Vec<ParseProblem>) -> Option<Failsafe> {
    match serde_json::from_str::<Value>(value) {
        Ok(Value::Object(m)) => Some(
            m.into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => (k, s),
                    other => (k, other.to_string()),
                })
                .collect(),
        ),
        Ok(other) => {
            problems.push(ParseProblem::new(key, format!("expected a JSON object, found {}", json_kind(&other))));
            None
        }
        Err(e) => {
            problems.push(ParseProblem::new(key, format!("invalid JSON: {e}")));
            None
        }
    }
}

pub fn failsafe_json(f: &Failsafe) -> String {
    Value::Object(f.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()).to_string()
}
