//! Reading YAML into the generic value tree and merging trees.

use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// A YAML document that could not be parsed, with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}:{column}: {message}")]
pub struct YamlError {
    /// File name, or the environment variable the text came from.
    pub source_name: String,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// What the parser said.
    pub message: String,
}

/// Parses YAML text into a value tree with PyYAML's `safe_load` semantics. An empty document is `null`.
pub fn parse_yaml(text: &str, source_name: &str) -> Result<Value, YamlError> {
    crate::pyyaml::parse(text, source_name)
}

/// Merges `overlay` into `base` the way Patroni patches configurations (files of a directory, the
/// environment, `PATCH /config` bodies): mappings merge key by key, anything else replaces, and a `null` in
/// the overlay removes the key. Returns whether `base` changed; as in Patroni, a value whose text is the
/// same as the old one's (`1` and `"1"`) counts as unchanged and keeps the old value.
pub fn deep_merge(base: &mut Value, overlay: Value) -> bool {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => merge_maps(b, o),
        (_, Value::Null) => false,
        (b, o) => {
            let changed = *b != o;
            *b = o;
            changed
        }
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Null => "None".to_owned(),
        other => other.to_string(),
    }
}

fn merge_maps(base: &mut Map<String, Value>, overlay: Map<String, Value>) -> bool {
    let mut changed = false;
    for (k, v) in overlay {
        if v.is_null() {
            changed |= base.remove(&k).is_some_and(|old| !old.is_null());
            continue;
        }
        match base.get_mut(&k) {
            Some(Value::Object(existing)) if v.is_object() => {
                if let Value::Object(o) = v {
                    changed |= merge_maps(existing, o);
                }
            }
            Some(existing) if !v.is_object() && !existing.is_object() && text_of(existing) == text_of(&v) => {}
            Some(existing) => {
                *existing = v;
                changed = true;
            }
            None => {
                base.insert(k, v);
                changed = true;
            }
        }
    }
    changed
}

/// The `*.yml` / `*.yaml` files of a directory in sorted order, as Patroni reads a configuration directory.
pub fn yaml_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().and_then(|e| e.to_str()).is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_is_deep_and_lists_replace() {
        let mut a = json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        assert!(deep_merge(&mut a, json!({"a": {"c": [3], "e": 2}, "d": {"x": 1}})));
        assert_eq!(a, json!({"a": {"b": 1, "c": [3], "e": 2}, "d": {"x": 1}}));
    }

    #[test]
    fn null_removes_and_equal_text_is_no_change() {
        let mut a = json!({"a": {"b": 1, "c": 2}, "d": 1, "t": true});
        assert!(deep_merge(&mut a, json!({"a": {"b": null}, "d": null, "x": null})));
        assert_eq!(a, json!({"a": {"c": 2}, "t": true}));
        assert!(!deep_merge(&mut a, json!({"a": {"c": "2"}, "t": "True"})));
        assert_eq!(a, json!({"a": {"c": 2}, "t": true}));
    }

    #[test]
    fn yaml_booleans_and_octal_like_pyyaml() {
        let v = parse_yaml("a: on\nb: off\nc: yes\nd: 0640\ne: 1_000\n", "t").unwrap();
        assert_eq!(v, json!({"a": true, "b": false, "c": true, "d": 416, "e": 1000}));
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse_yaml("a: 1\nb: [1, 2\n", "x.yml").unwrap_err();
        assert_eq!(e.source_name, "x.yml");
        assert!(e.line >= 2, "{e:?}");
    }
}
