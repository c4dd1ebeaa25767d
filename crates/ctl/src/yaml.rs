//! YAML as patronictl prints it. Every dump goes through `format_config_for_editing`:
//! `yaml.safe_dump(data, default_flow_style=..., encoding=None, allow_unicode=True, width=200)` (sorted keys):
//! block style for `show-config`, `edit-config` and `-f yaml`, flow style for member tags in `tsv` and
//! `topology` cells.

use patroni_config::DumpOptions;
use serde_json::Value;

/// The `width` patronictl passes to `yaml.safe_dump`.
pub const PATRONICTL_WIDTH: usize = 200;

/// `format_config_for_editing(data, default_flow_style)`: the whole document, with its final newline.
pub fn format_config_for_editing(data: &Value, default_flow_style: bool) -> String {
    patroni_config::to_yaml_with(data, DumpOptions { sort_keys: true, width: PATRONICTL_WIDTH, default_flow_style })
}

/// `format_config_for_editing(data).strip()`, how member tags show in `pretty` tables.
pub fn block(v: &Value) -> String {
    py_strip(&format_config_for_editing(v, false))
}

/// `format_config_for_editing(data, True).strip()`: `{nofailover: true, replicatefrom: pg1}`.
pub fn flow(v: &Value) -> String {
    py_strip(&format_config_for_editing(v, true))
}

/// Python's `str.strip()` without arguments.
fn py_strip(s: &str) -> String {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flow_style_like_pyyaml() {
        assert_eq!(
            flow(&json!({"replicatefrom": "pg1", "nofailover": true})),
            "{nofailover: true, replicatefrom: pg1}"
        );
        assert_eq!(flow(&json!({"a": [1, "yes"], "b": null})), "{a: [1, 'yes'], b: null}");
    }

    #[test]
    fn block_style_sorted() {
        assert_eq!(block(&json!({"ttl": 30, "loop_wait": 10})), "loop_wait: 10\nttl: 30");
        assert_eq!(block(&json!({"nofailover": true})), "nofailover: true");
    }

    #[test]
    fn wraps_at_200_like_patronictl() {
        // Folded at the first space past column 200, not 80 (line lengths as PyYAML: 205 and 101).
        let note = ["word"; 60].join(" ");
        let out = block(&json!({ "note": note }));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(lines[0].chars().count(), 205);
        assert_eq!(lines[1].chars().count(), 101);
        assert!(flow(&json!({ "note": note })).contains('\n'));
        // A timestamp is quoted; in flow style so is any `:` (a flow indicator).
        assert_eq!(
            flow(&json!({"a": ["2026-11-22 03:00:00+00:00", "2030-01-01T10:00:00+00:00 if version < 16.0"]})),
            "{a: ['2026-11-22 03:00:00+00:00', '2030-01-01T10:00:00+00:00 if version < 16.0']}"
        );
    }
}
