//! `PATCH /config` merge semantics and a type check of the dynamic configuration before it is
//! written to the DCS (a value every member would fail to apply must never get there).

use serde_json::{Map, Value};

/// Merges `patch` into `config` as Patroni does: objects merge recursively, `null` removes a
/// key, anything else replaces. Returns whether anything changed.
pub fn merge_patch(config: &mut Map<String, Value>, patch: &Map<String, Value>) -> bool {
    let mut changed = false;
    for (name, value) in patch {
        match value {
            Value::Null => {
                // Patroni's `pop(name) is not None`: the key goes, but removing a stored null is no change.
                changed |= config.remove(name).is_some_and(|old| !old.is_null());
            }
            Value::Object(sub) => match config.get_mut(name) {
                Some(Value::Object(existing)) => changed |= merge_patch(existing, sub),
                _ => {
                    // A fresh sub-object goes in verbatim, nulls included, as Patroni's patch_config does: under
                    // `slots`, `{"name": null}` is a permanent physical slot.
                    config.insert(name.clone(), Value::Object(sub.clone()));
                    changed = true;
                }
            },
            other => {
                if config.get(name) != Some(other) {
                    config.insert(name.clone(), other.clone());
                    changed = true;
                }
            }
        }
    }
    changed
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_bool(v: &Value) -> bool {
    match v {
        Value::Bool(_) => true,
        Value::String(s) => {
            matches!(s.to_ascii_lowercase().as_str(), "on" | "off" | "true" | "false" | "yes" | "no" | "1" | "0")
        }
        Value::Number(n) => matches!(n.as_i64(), Some(0 | 1)),
        _ => false,
    }
}

/// Checks the types of the well-known dynamic settings; returns every problem with its key path.
pub fn validate_dynamic_config(config: &Value) -> Result<(), Vec<String>> {
    let Value::Object(c) = config else {
        return Err(vec!["configuration must be a JSON object".into()]);
    };
    let mut errors = Vec::new();
    let positive = ["ttl", "loop_wait", "retry_timeout"];
    let non_negative = [
        "maximum_lag_on_failover",
        "maximum_lag_on_syncnode",
        "primary_start_timeout",
        "primary_stop_timeout",
        "master_start_timeout",
        "master_stop_timeout",
        "synchronous_node_count",
        "member_slots_ttl",
    ];
    let booleans = ["check_timeline", "synchronous_mode_strict", "failsafe_mode", "pause"];
    for (k, v) in c {
        let key = k.as_str();
        if positive.contains(&key) {
            if as_int(v).is_none_or(|i| i <= 0) {
                errors.push(format!("{key}: must be a positive integer, got {v}"));
            }
        } else if non_negative.contains(&key) {
            // maximum_lag_on_syncnode uses -1 for "disabled".
            let min = if key == "maximum_lag_on_syncnode" { -1 } else { 0 };
            if as_int(v).is_none_or(|i| i < min) {
                errors.push(format!("{key}: must be an integer >= {min}, got {v}"));
            }
        } else if booleans.contains(&key) {
            if !as_bool(v) {
                errors.push(format!("{key}: must be a boolean, got {v}"));
            }
        } else if key == "synchronous_mode" {
            if !(as_bool(v) || v.as_str() == Some("quorum")) {
                errors.push(format!("synchronous_mode: must be a boolean or \"quorum\", got {v}"));
            }
        } else if key == "postgresql" {
            match v {
                Value::Object(pg) => {
                    for sub in ["parameters", "recovery_conf", "pg_hba_conf"] {
                        if let Some(x) = pg.get(sub) {
                            if !(x.is_object() || (sub == "pg_hba_conf" && x.is_array())) {
                                errors.push(format!("postgresql.{sub}: must be an object, got {x}"));
                            }
                        }
                    }
                    if let Some(x) = pg.get("pg_hba") {
                        if !x.is_array() {
                            errors.push(format!("postgresql.pg_hba: must be a list, got {x}"));
                        }
                    }
                    for sub in [
                        "use_slots",
                        "use_pg_rewind",
                        "remove_data_directory_on_rewind_failure",
                        "remove_data_directory_on_diverged_timelines",
                    ] {
                        if let Some(x) = pg.get(sub) {
                            if !as_bool(x) {
                                errors.push(format!("postgresql.{sub}: must be a boolean, got {x}"));
                            }
                        }
                    }
                }
                other => errors.push(format!("postgresql: must be an object, got {other}")),
            }
        } else if key == "standby_cluster" || key == "slots" {
            if !(v.is_object() || v.is_null()) {
                errors.push(format!("{key}: must be an object, got {v}"));
            }
        } else if key == "ignore_slots" && !v.is_array() {
            errors.push(format!("ignore_slots: must be a list, got {v}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn documented_patch_examples() {
        let mut c = obj(json!({"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "maximum_lag_on_failover": 1048576,
            "postgresql": {"use_slots": true, "use_pg_rewind": true,
                "parameters": {"hot_standby": "on", "wal_level": "hot_standby", "max_wal_senders": 5,
                               "max_replication_slots": 5, "max_connections": "100"}}}));
        assert!(merge_patch(
            &mut c,
            &obj(json!({"loop_wait": 5, "ttl": 20, "postgresql": {"parameters": {"max_connections": "101"}}}))
        ));
        assert_eq!(c["ttl"], 20);
        assert_eq!(c["loop_wait"], 5);
        assert_eq!(c["postgresql"]["parameters"]["max_connections"], "101");
        assert_eq!(c["postgresql"]["parameters"]["max_wal_senders"], 5);
        assert!(merge_patch(&mut c, &obj(json!({"postgresql": {"parameters": {"max_connections": null}}}))));
        assert!(c["postgresql"]["parameters"].get("max_connections").is_none());
        assert!(!merge_patch(&mut c, &obj(json!({"ttl": 20, "nothing": null}))));
    }

    #[test]
    fn patch_replaces_scalars_with_objects_verbatim() {
        // As Patroni's patch_config: a new object goes in as sent, so `{"b": null}` under `slots` stays (a
        // permanent physical slot); nulls remove keys only where they meet an existing object.
        let mut c = obj(json!({"standby_cluster": null, "slots": 1}));
        assert!(merge_patch(&mut c, &obj(json!({"slots": {"a": {"type": "physical"}, "b": null}}))));
        assert_eq!(Value::Object(c.clone())["slots"], json!({"a": {"type": "physical"}, "b": null}));
        // Removing a stored null takes the key out but is no change (Patroni's `pop(...) is not None`): Patroni
        // then writes nothing to the DCS.
        assert!(!merge_patch(&mut c, &obj(json!({"slots": {"b": null}}))));
        assert_eq!(Value::Object(c.clone())["slots"], json!({"a": {"type": "physical"}}));
        assert!(merge_patch(&mut c, &obj(json!({"slots": {"a": null}}))));
    }

    #[test]
    fn validation_reports_every_problem() {
        assert!(validate_dynamic_config(&json!({"ttl": 30, "loop_wait": "10", "synchronous_mode": "quorum",
            "postgresql": {"parameters": {}, "use_slots": "on"}, "standby_cluster": null}))
        .is_ok());
        let errs = validate_dynamic_config(&json!({"ttl": "thirty", "loop_wait": 0, "maximum_lag_on_failover": -3,
            "synchronous_mode": "sometimes", "postgresql": {"parameters": []}, "check_timeline": "maybe"}))
        .unwrap_err();
        assert_eq!(errs.len(), 6, "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("ttl: ")));
        assert!(errs.iter().any(|e| e.starts_with("postgresql.parameters: ")));
        assert!(validate_dynamic_config(&json!([1])).is_err());
    }
}
