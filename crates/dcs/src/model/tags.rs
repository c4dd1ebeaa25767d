//! How Patroni reads the predefined tags of a member (its member key, or its `/patroni` answer): one rule for
//! every reader, so the HA core's view, a peer's answer and the REST status agree about the same member.
//!
//! Patroni's `Tags` class reads `nofailover`, `nosync`, `noloadbalance` and `clonefrom` with Python's `bool()`
//! (a tag `nofailover: "no"` is set) and `nostream` with `parse_bool` (only `true`/`yes`/`on`/`1` set it).

use patroni_pycompat::{parse_bool_value, py_bool};
use serde_json::{Map, Value};

/// A boolean tag and its priority (`nofailover`/`failover_priority`, `nosync`/`sync_priority`), by Patroni's
/// `_bool_tag` and `_priority_tag`: a boolean given (not `null`) decides, so `nofailover: false` beside
/// `failover_priority: 0` may be promoted; without it a priority of 0 or less turns it on. The priority is 0
/// under the boolean, else as given (an integer or its string), else 1.
pub fn priority_tag(flag: Option<&Value>, priority: Option<&Value>) -> (bool, i64) {
    let flag = flag.filter(|v| !v.is_null()).map(py_bool);
    let priority = priority.and_then(|v| match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    let on = match flag {
        Some(b) => b,
        None => priority.is_some_and(|p| p <= 0),
    };
    let priority = if flag == Some(true) { 0 } else { priority.unwrap_or(1) };
    (on, priority)
}

/// `nofailover` and the failover priority.
pub fn nofailover(tags: &Map<String, Value>) -> (bool, i64) {
    priority_tag(tags.get("nofailover"), tags.get("failover_priority"))
}

/// `nosync` and the synchronous standby priority.
pub fn nosync(tags: &Map<String, Value>) -> (bool, i64) {
    priority_tag(tags.get("nosync"), tags.get("sync_priority"))
}

/// `noloadbalance`: Python truthiness.
pub fn noloadbalance(tags: &Map<String, Value>) -> bool {
    tags.get("noloadbalance").is_some_and(py_bool)
}

/// `clonefrom`: Python truthiness (a member also needs a `conn_url` to be cloned from).
pub fn clonefrom(tags: &Map<String, Value>) -> bool {
    tags.get("clonefrom").is_some_and(py_bool)
}

/// `nostream`: Patroni's `parse_bool`, so `"no"` leaves it off.
pub fn nostream(tags: &Map<String, Value>) -> bool {
    tags.get("nostream").and_then(parse_bool_value).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn priority_tags_follow_patroni_rule() {
        // (nofailover, failover_priority) as a member key gives them → (may not be promoted, priority).
        let cases = [
            (None, None, (false, 1)),
            (Some(json!(true)), None, (true, 0)),
            (None, Some(json!(0)), (true, 0)),
            (None, Some(json!("2")), (false, 2)),
            (Some(json!(true)), Some(json!("1")), (true, 0)),
            // An explicit nofailover: false wins over priority 0: the member may be promoted.
            (Some(json!(false)), Some(json!(0)), (false, 0)),
            (Some(Value::Null), Some(json!(0)), (true, 0)),
            // Python's bool(): any non-empty string is true.
            (Some(json!("y")), None, (true, 0)),
            (Some(json!("false")), Some(json!(3)), (true, 0)),
            (Some(json!("")), Some(json!(3)), (false, 3)),
        ];
        for (flag, priority, want) in cases {
            assert_eq!(priority_tag(flag.as_ref(), priority.as_ref()), want, "{flag:?} {priority:?}");
        }
    }

    #[test]
    fn nostream_is_parse_bool_the_others_bool() {
        let tags = |v: Value| json!({"nostream": v, "noloadbalance": v, "clonefrom": v}).as_object().cloned();
        let t = tags(json!("no")).unwrap_or_default();
        assert!(!nostream(&t) && noloadbalance(&t) && clonefrom(&t));
        let t = tags(json!("ON")).unwrap_or_default();
        assert!(nostream(&t) && noloadbalance(&t) && clonefrom(&t));
        let t = tags(json!(0)).unwrap_or_default();
        assert!(!nostream(&t) && !noloadbalance(&t) && !clonefrom(&t));
    }
}
