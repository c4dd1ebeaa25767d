//! A cluster member as published under `members/<name>`.

use serde_json::{Map, Value};

use super::{parse_lsn, ParseProblem, Session, Version};

/// What a member publishes about itself. Typed fields are the ones Patroni writes; anything else another writer
/// put there survives in `extra` so that re-serialising never loses information.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberData {
    pub conn_url: Option<String>,
    pub api_url: Option<String>,
    /// PostgreSQL state as Patroni names it (`running`, `starting`, `stopped`, `crashed`, ...).
    pub state: Option<String>,
    /// `primary`, `replica`, `standby_leader` (`master` from old writers).
    pub role: Option<String>,
    /// Patroni version of the writer, e.g. `4.1.5`.
    pub version: Option<String>,
    pub proxy_url: Option<String>,
    /// Current WAL position (write LSN on a primary, max(receive, replay) on a replica), in bytes.
    pub xlog_location: Option<u64>,
    pub receive_lsn: Option<u64>,
    pub replay_lsn: Option<u64>,
    /// `streaming` / `in archive recovery` as reported by `pg_stat_wal_receiver`.
    pub replication_state: Option<String>,
    pub timeline: Option<u32>,
    pub tags: Map<String, Value>,
    pub pending_restart: Option<bool>,
    pub pending_restart_reason: Option<Value>,
    /// `{"schedule": "<ISO 8601>", "postmaster_start_time": ...}`; kept as JSON because only the API reads it.
    pub scheduled_restart: Option<Value>,
    /// Only ever written as `false`, by a primary whose post-promote checkpoint has not completed yet.
    pub checkpoint_after_promote: Option<bool>,
    /// Set while the cluster is in maintenance mode.
    pub pause: Option<bool>,
    /// Fields this crate does not model, in the order they were read.
    pub extra: Map<String, Value>,
}

/// One `members/<name>` key.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    /// Modification version of the key (etcd `mod_revision`); `-1` for a placeholder with no key behind it.
    pub version: Version,
    /// The lease (etcd) or session the key is bound to.
    pub session: Option<Session>,
    pub data: MemberData,
}

impl Member {
    /// A member known only by name, e.g. the leader key names a member that has no `members/` key.
    pub fn placeholder(name: impl Into<String>) -> Self {
        Member { name: name.into(), version: -1, session: None, data: MemberData::default() }
    }

    /// Parses a stored member value. Never fails: what cannot be read is left empty and reported in `problems`
    /// (one entry per bad field, naming the key), so a broken member still shows up in the member list.
    pub fn from_value(
        name: impl Into<String>,
        version: Version,
        session: Option<Session>,
        value: &str,
        key: &str,
        problems: &mut Vec<ParseProblem>,
    ) -> Self {
        let data = MemberData::parse(value, key, problems);
        Member { name: name.into(), version, session, data }
    }

    pub fn conn_url(&self) -> Option<&str> {
        self.data.conn_url.as_deref().filter(|s| !s.is_empty())
    }

    pub fn api_url(&self) -> Option<&str> {
        self.data.api_url.as_deref().filter(|s| !s.is_empty())
    }

    /// Patroni treats a member without a state as `unknown`.
    pub fn state(&self) -> &str {
        self.data.state.as_deref().unwrap_or("unknown")
    }

    pub fn role(&self) -> Option<&str> {
        self.data.role.as_deref()
    }

    pub fn is_running(&self) -> bool {
        self.state() == "running"
    }

    /// The member's last reported WAL position.
    pub fn lsn(&self) -> Option<u64> {
        self.data.xlog_location
    }

    pub fn timeline(&self) -> Option<u32> {
        self.data.timeline
    }

    /// The writer's Patroni version as numbers, `None` when absent or not dotted integers.
    pub fn patroni_version(&self) -> Option<Vec<u32>> {
        let v = self.data.version.as_deref()?;
        v.split('.').map(|p| p.parse::<u32>().ok()).collect()
    }

    pub fn tag(&self, name: &str) -> Option<&Value> {
        self.data.tags.get(name)
    }

    pub fn tag_str(&self, name: &str) -> Option<&str> {
        self.tag(name).and_then(Value::as_str)
    }

    /// `nofailover`, by Patroni's rule for tags ([`super::tags`]), `failover_priority` included.
    pub fn nofailover(&self) -> bool {
        super::tags::nofailover(&self.data.tags).0
    }

    /// The failover priority Patroni derives: 0 under `nofailover`, else the tag, else 1.
    pub fn failover_priority(&self) -> i64 {
        super::tags::nofailover(&self.data.tags).1
    }

    /// `nosync`, `sync_priority` included.
    pub fn nosync(&self) -> bool {
        super::tags::nosync(&self.data.tags).0
    }

    /// The synchronous standby priority Patroni derives: 0 under `nosync`, else the tag, else 1.
    pub fn sync_priority(&self) -> i64 {
        super::tags::nosync(&self.data.tags).1
    }

    pub fn nostream(&self) -> bool {
        super::tags::nostream(&self.data.tags)
    }

    pub fn noloadbalance(&self) -> bool {
        super::tags::noloadbalance(&self.data.tags)
    }

    /// `clonefrom` set, and a `conn_url` to clone from.
    pub fn clonefrom(&self) -> bool {
        super::tags::clonefrom(&self.data.tags) && self.conn_url().is_some()
    }

    pub fn replicatefrom(&self) -> Option<&str> {
        self.tag_str("replicatefrom")
    }
}

impl MemberData {
    /// Parses the stored JSON. A value starting with `postgres` is the legacy Governor format
    /// `postgres://user:pass@host:port/db?application_name=<api_url>`.
    pub fn parse(value: &str, key: &str, problems: &mut Vec<ParseProblem>) -> Self {
        if value.starts_with("postgres") {
            return Self::from_legacy_url(value);
        }
        let map = match serde_json::from_str::<Value>(value) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                problems.push(ParseProblem::new(key, format!("expected a JSON object, found {}", json_kind(&other))));
                return MemberData::default();
            }
            Err(e) => {
                problems.push(ParseProblem::new(key, format!("invalid JSON: {e}")));
                return MemberData::default();
            }
        };
        Self::from_map(map, key, problems)
    }

    pub fn from_map(map: Map<String, Value>, key: &str, problems: &mut Vec<ParseProblem>) -> Self {
        let mut data = MemberData::default();
        for (field, v) in map {
            let mut bad = |what: &str, v: &Value| {
                problems.push(ParseProblem::new(key, format!("field {field:?}: expected {what}, found {v}")));
            };
            match field.as_str() {
                "conn_url" => data.conn_url = str_field(&v, &mut bad),
                "api_url" => data.api_url = str_field(&v, &mut bad),
                "state" => data.state = str_field(&v, &mut bad),
                "role" => data.role = str_field(&v, &mut bad),
                "version" => data.version = str_field(&v, &mut bad),
                "proxy_url" => data.proxy_url = str_field(&v, &mut bad),
                "replication_state" => data.replication_state = str_field(&v, &mut bad),
                "xlog_location" => data.xlog_location = lsn_field(&v, &mut bad),
                "receive_lsn" => data.receive_lsn = lsn_field(&v, &mut bad),
                "replay_lsn" => data.replay_lsn = lsn_field(&v, &mut bad),
                "timeline" => {
                    data.timeline = match &v {
                        Value::Null => None,
                        other => {
                            let t = parse_u32(other);
                            if t.is_none() {
                                bad("a timeline number", other);
                            }
                            t
                        }
                    }
                }
                "tags" => match v {
                    Value::Object(m) => data.tags = m,
                    Value::Null => {}
                    other => bad("an object", &other),
                },
                "pending_restart" => data.pending_restart = bool_field(&v, &mut bad),
                "checkpoint_after_promote" => data.checkpoint_after_promote = bool_field(&v, &mut bad),
                "pause" => data.pause = bool_field(&v, &mut bad),
                "pending_restart_reason" => data.pending_restart_reason = Some(v),
                "scheduled_restart" => data.scheduled_restart = Some(v),
                _ => {
                    data.extra.insert(field, v);
                }
            }
        }
        data
    }

    fn from_legacy_url(value: &str) -> Self {
        let (base, query) = match value.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (value, None),
        };
        let api_url = query.and_then(|q| {
            q.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k == "application_name").then(|| percent_decode(v))
            })
        });
        MemberData { conn_url: Some(base.to_string()), api_url, ..MemberData::default() }
    }

    /// The JSON object Patroni writes (field order as Python Patroni's `touch_member`), extras last.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let put_str = |m: &mut Map<String, Value>, k: &str, v: &Option<String>| {
            if let Some(v) = v {
                m.insert(k.to_string(), Value::String(v.clone()));
            }
        };
        put_str(&mut m, "conn_url", &self.conn_url);
        put_str(&mut m, "api_url", &self.api_url);
        put_str(&mut m, "state", &self.state);
        put_str(&mut m, "role", &self.role);
        put_str(&mut m, "version", &self.version);
        put_str(&mut m, "proxy_url", &self.proxy_url);
        if let Some(b) = self.checkpoint_after_promote {
            m.insert("checkpoint_after_promote".into(), Value::Bool(b));
        }
        if !self.tags.is_empty() {
            m.insert("tags".into(), Value::Object(self.tags.clone()));
        }
        if let Some(b) = self.pending_restart {
            m.insert("pending_restart".into(), Value::Bool(b));
        }
        if let Some(v) = &self.pending_restart_reason {
            m.insert("pending_restart_reason".into(), v.clone());
        }
        if let Some(v) = self.xlog_location {
            m.insert("xlog_location".into(), Value::from(v));
        }
        if let Some(v) = self.replay_lsn {
            m.insert("replay_lsn".into(), Value::from(v));
        }
        if let Some(v) = self.receive_lsn {
            m.insert("receive_lsn".into(), Value::from(v));
        }
        put_str(&mut m, "replication_state", &self.replication_state);
        if let Some(v) = self.timeline {
            m.insert("timeline".into(), Value::from(v));
        }
        if let Some(v) = &self.scheduled_restart {
            m.insert("scheduled_restart".into(), v.clone());
        }
        if let Some(b) = self.pause {
            m.insert("pause".into(), Value::Bool(b));
        }
        for (k, v) in &self.extra {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
        m
    }

    /// Compact JSON, as Python Patroni's `json.dumps(separators=(',', ':'))`.
    pub fn to_json(&self) -> String {
        patroni_pycompat::json_dumps_compact(&self.to_map())
    }
}

fn str_field(v: &Value, bad: &mut impl FnMut(&str, &Value)) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => {
            bad("a string", other);
            None
        }
    }
}

fn lsn_field(v: &Value, bad: &mut impl FnMut(&str, &Value)) -> Option<u64> {
    if v.is_null() {
        return None;
    }
    let parsed = parse_lsn(v);
    if parsed.is_none() {
        bad("an LSN (integer or X/Y)", v);
    }
    parsed
}

fn bool_field(v: &Value, bad: &mut impl FnMut(&str, &Value)) -> Option<bool> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        other => {
            bad("a boolean", other);
            None
        }
    }
}

pub(crate) fn parse_u32(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_patroni_member_value_parses_and_round_trips() {
        // Written by Python Patroni 4.1 on a streaming replica.
        let raw = r#"{"conn_url":"postgres://127.0.0.1:5433/postgres","api_url":"http://127.0.0.1:8009/patroni","state":"running","role":"replica","version":"4.1.5","tags":{"nofailover":false,"clonefrom":true},"xlog_location":67109024,"replay_lsn":67109024,"receive_lsn":67109024,"replication_state":"streaming","timeline":1}"#;
        let mut problems = vec![];
        let d = MemberData::parse(raw, "members/b", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(d.role.as_deref(), Some("replica"));
        assert_eq!(d.xlog_location, Some(67109024));
        assert_eq!(d.timeline, Some(1));
        assert_eq!(d.replication_state.as_deref(), Some("streaming"));
        assert_eq!(d.to_json(), raw);
    }

    #[test]
    fn unknown_fields_kept_and_bad_fields_reported() {
        let raw = r#"{"conn_url":"postgres://h:5432/postgres","state":"running","timeline":"abc","xlog_location":"0/3000060","future_field":{"x":1}}"#;
        let mut problems = vec![];
        let d = MemberData::parse(raw, "members/a", &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].message.contains("timeline"));
        assert_eq!(d.timeline, None);
        assert_eq!(d.xlog_location, Some(0x3000060));
        assert_eq!(d.extra.get("future_field"), Some(&serde_json::json!({"x": 1})));
        assert!(d.to_json().contains(r#""future_field":{"x":1}"#));
    }

    #[test]
    fn garbage_is_a_problem_not_a_panic() {
        for raw in ["{", "[]", "42", "null", "\"x\"", ""] {
            let mut problems = vec![];
            let d = MemberData::parse(raw, "members/x", &mut problems);
            assert_eq!(d, MemberData::default());
            assert_eq!(problems.len(), 1, "{raw}");
        }
    }

    #[test]
    fn legacy_connection_string() {
        let mut problems = vec![];
        let d = MemberData::parse(
            "postgres://u:p@10.0.0.1:5432/postgres?application_name=http%3A%2F%2F10.0.0.1%3A8008%2Fpatroni",
            "members/a",
            &mut problems,
        );
        assert!(problems.is_empty());
        assert_eq!(d.conn_url.as_deref(), Some("postgres://u:p@10.0.0.1:5432/postgres"));
        assert_eq!(d.api_url.as_deref(), Some("http://10.0.0.1:8008/patroni"));
    }

    #[test]
    fn tags_read_like_python_truthiness() {
        let mut problems = vec![];
        let data = MemberData::parse(
            r#"{"conn_url":"postgres://h/p","tags":{"nofailover":"false","clonefrom":1,"nosync":true,"replicatefrom":"a"}}"#,
            "members/m",
            &mut problems,
        );
        let m = Member { name: "m".into(), version: 1, session: None, data };
        // Python's bool(): any non-empty string is true, "false" included (Patroni's tags.py).
        assert!(m.nofailover());
        assert!(m.clonefrom());
        assert!(m.nosync());
        assert!(!m.nostream());
        assert_eq!(m.replicatefrom(), Some("a"));
        assert_eq!(m.state(), "unknown");
    }
}
