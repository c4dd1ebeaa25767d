//! PostgreSQL parameters Patroni controls, and how local and dynamic `parameters` combine.
//!
//! Values of the controlled parameters must match across members, so they come only from the dynamic
//! configuration (local values are dropped), are checked against a minimum, and fall back to Patroni's
//! default when invalid. `listen_addresses`, `port` and `cluster_name` come from `postgresql.listen` and
//! `scope`, never from `parameters`. All of them are passed on the `postgres` command line.

use crate::convert::parse_bool;
use crate::units::parse_size;
use serde_json::{Map, Value};

/// How a controlled parameter's value is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamRule {
    /// Never settable through `parameters` (derived from other settings).
    Derived,
    /// Must be one of these words.
    OneOf(&'static [&'static str]),
    /// Must be a boolean that is on.
    AlwaysOn,
    /// Any PostgreSQL boolean.
    Bool,
    /// An integer at least this large; `unit` is the base unit for values written with a suffix.
    MinInt {
        /// Minimum accepted value.
        min: i64,
        /// Base unit: `None` for plain counts, `Some("MB")` for `wal_keep_size`.
        unit: Option<&'static str>,
    },
}

/// A PostgreSQL parameter whose value Patroni controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlledParameter {
    /// GUC name.
    pub name: &'static str,
    /// Patroni's default (`None`: derived from other settings).
    pub default: Option<&'static str>,
    /// Validation rule.
    pub rule: ParamRule,
}

/// Which of them a given PostgreSQL major has is the `postgres` crate's business (`Features::has_parameter`).
const fn p(name: &'static str, default: Option<&'static str>, rule: ParamRule) -> ControlledParameter {
    ControlledParameter { name, default, rule }
}

const fn min(m: i64) -> ParamRule {
    ParamRule::MinInt { min: m, unit: None }
}

/// The parameters Patroni sets on the command line. Defaults are those of Patroni 4 (the documentation's
/// "Important rules" still lists the older 5 for `max_wal_senders`/`max_replication_slots`).
pub const CONTROLLED_PARAMETERS: &[ControlledParameter] = &[
    p("listen_addresses", None, ParamRule::Derived),
    p("port", None, ParamRule::Derived),
    p("cluster_name", None, ParamRule::Derived),
    p("wal_level", Some("hot_standby"), ParamRule::OneOf(&["hot_standby", "replica", "logical"])),
    p("hot_standby", Some("on"), ParamRule::AlwaysOn),
    p("max_connections", Some("100"), min(25)),
    p("max_wal_senders", Some("10"), min(3)),
    p("wal_keep_segments", Some("8"), min(1)),
    p("wal_keep_size", Some("128MB"), ParamRule::MinInt { min: 16, unit: Some("MB") }),
    p("max_prepared_transactions", Some("0"), min(0)),
    p("max_locks_per_transaction", Some("64"), min(32)),
    p("track_commit_timestamp", Some("off"), ParamRule::Bool),
    p("max_replication_slots", Some("10"), min(4)),
    p("max_worker_processes", Some("8"), min(2)),
    p("wal_log_hints", Some("on"), ParamRule::Bool),
];

/// The controlled parameter called `name` (case-insensitive, as GUC names are).
pub fn controlled(name: &str) -> Option<&'static ControlledParameter> {
    CONTROLLED_PARAMETERS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

fn int_in_unit(v: &Value, unit: Option<&str>) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(i) = s.parse::<i64>() {
                return Some(i);
            }
            let bytes = parse_size(s).ok()?;
            let per = parse_size(&format!("1{}", unit?)).ok()?;
            i64::try_from(bytes / per).ok()
        }
        _ => None,
    }
}

fn pg_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => parse_bool(s),
        _ => None,
    }
}

impl ControlledParameter {
    /// The value to use when `v` passes the rule (integers normalized to numbers), or `None`.
    pub fn check(&self, v: &Value) -> Option<Value> {
        match self.rule {
            ParamRule::Derived => None,
            ParamRule::OneOf(words) => {
                v.as_str().filter(|s| words.iter().any(|w| w.eq_ignore_ascii_case(s))).map(|_| v.clone())
            }
            ParamRule::AlwaysOn => pg_bool(v).filter(|b| *b).map(|_| v.clone()),
            ParamRule::Bool => pg_bool(v).map(|_| v.clone()),
            ParamRule::MinInt { min, unit } => {
                let i = int_in_unit(v, unit).filter(|i| *i >= min)?;
                // A value with a unit is kept as written; plain numbers become integers.
                Some(match v {
                    Value::String(s) if s.trim().parse::<i64>().is_err() => v.clone(),
                    _ => Value::from(i),
                })
            }
        }
    }

    /// Patroni's default as a value (integers as numbers).
    pub fn default_value(&self) -> Option<Value> {
        let d = self.default?;
        Some(d.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(d.to_owned())))
    }
}

/// Combines dynamic and local `postgresql.parameters` the way Patroni does: start from the defaults of
/// the controlled parameters (except `wal_keep_segments`/`wal_keep_size`), apply the dynamic values
/// (controlled ones only when valid), then the local values except controlled ones. Returns the
/// parameters and a warning for every value that was dropped.
pub fn effective_parameters(
    dynamic: Option<&Map<String, Value>>,
    local: Option<&Map<String, Value>>,
) -> (Map<String, Value>, Vec<String>) {
    let mut out = Map::new();
    let mut warnings = Vec::new();
    for p in CONTROLLED_PARAMETERS {
        if p.name == "wal_keep_segments" || p.name == "wal_keep_size" {
            continue;
        }
        if let Some(d) = p.default_value() {
            out.insert(p.name.to_owned(), d);
        }
    }
    let put = |out: &mut Map<String, Value>, name: &str, v: Value| {
        // GUC names are case-insensitive: replace whatever spelling is already there.
        if let Some(existing) = out.keys().find(|k| k.eq_ignore_ascii_case(name) && k.as_str() != name).cloned() {
            out.remove(&existing);
        }
        out.insert(name.to_owned(), v);
    };
    for (name, v) in dynamic.into_iter().flatten() {
        match controlled(name) {
            None => put(&mut out, name, v.clone()),
            Some(p) => match p.check(v) {
                Some(ok) => put(&mut out, p.name, ok),
                None => warnings.push(format!(
                    "postgresql parameter {name}={} failed validation, defaulting to {}",
                    display(v),
                    p.default.unwrap_or("None")
                )),
            },
        }
    }
    for (name, v) in local.into_iter().flatten() {
        match controlled(name) {
            None => put(&mut out, name, v.clone()),
            Some(_) => warnings.push(format!(
                "postgresql parameter {name} is controlled by Patroni and can only be set in the dynamic \
                 configuration; the local value {} is ignored",
                display(v)
            )),
        }
    }
    (out, warnings)
}

fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn local_cannot_override_controlled_and_dynamic_is_validated() {
        let dynamic =
            json!({"max_connections": "200", "max_wal_senders": 1, "work_mem": "4MB", "wal_keep_size": "1GB"});
        let local = json!({"max_connections": 500, "work_mem": "8MB", "shared_buffers": "1GB"});
        let (p, w) = effective_parameters(dynamic.as_object(), local.as_object());
        assert_eq!(p["max_connections"], json!(200));
        assert_eq!(p["max_wal_senders"], json!(10));
        assert_eq!(p["work_mem"], json!("8MB"));
        assert_eq!(p["shared_buffers"], json!("1GB"));
        assert_eq!(p["wal_keep_size"], json!("1GB"));
        assert_eq!(p["wal_level"], json!("hot_standby"));
        assert!(!p.contains_key("wal_keep_segments"));
        assert_eq!(w.len(), 2);
        assert_eq!(w[0], "postgresql parameter max_wal_senders=1 failed validation, defaulting to 10");
    }

    #[test]
    fn derived_parameters_are_never_taken() {
        let dynamic = json!({"port": 5433, "Max_Connections": 300});
        let (p, w) = effective_parameters(dynamic.as_object(), None);
        assert!(!p.contains_key("port"));
        assert_eq!(p["max_connections"], json!(300));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn wal_keep_size_units() {
        let c = controlled("wal_keep_size").unwrap();
        assert!(c.check(&json!("16MB")).is_some());
        assert!(c.check(&json!(16)).is_some());
        assert!(c.check(&json!("8MB")).is_none());
        assert!(c.check(&json!("1GB")).is_some());
    }
}
