//! Truthiness. Patroni uses two rules and the call site decides which: `bool(value)` for the tags it reads
//! from member keys and `/patroni` answers (`nofailover`, `nosync`, `noloadbalance`, `clonefrom`; so
//! `nofailover: "no"` is true), and `patroni.utils.parse_bool` for configuration text and request fields
//! (`nostream`, environment values, `restart_pending`…).

use serde_json::Value;

use crate::text::py_str;

/// Python's `bool()` of a JSON value: false for `null`, `false`, zero, `""`, `[]` and `{}`; true otherwise,
/// whatever a string says (`"false"`, `"no"` and `"0"` are true).
pub fn py_bool(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Patroni's `parse_bool` of text: `on`, `true`, `yes`, `1` and `off`, `false`, `no`, `0`, in any case and
/// nothing else (no trimming, no `y`/`t`); `None` for anything else.
pub fn parse_bool(s: &str) -> Option<bool> {
    let lower = s.to_lowercase();
    match lower.as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Patroni's `parse_bool` of a JSON value, which reads `str(value)`: `true` (`True`) and `1` parse, `2` and
/// `1.0` do not.
pub fn parse_bool_value(v: &Value) -> Option<bool> {
    match v {
        Value::String(s) => parse_bool(s),
        other => parse_bool(&py_str(other)),
    }
}
