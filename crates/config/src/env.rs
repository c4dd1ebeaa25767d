//! `PATRONI_*` environment variables turned into a configuration tree.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Environment variables as a map, so callers (and tests) decide where they come from.
pub type EnvMap = BTreeMap<String, String>;

/// The variable holding a whole YAML configuration.
pub const PATRONI_CONFIGURATION: &str = "PATRONI_CONFIGURATION";

/// A snapshot of the process environment (non-UTF-8 variables are skipped).
pub fn process_env() -> EnvMap {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// The configuration the `PATRONI_*` variables of `env` describe.
pub fn environment_tree(env: &EnvMap) -> Value {
    let mut root = Map::new();
    for (k, v) in env {
        if let Some(rest) = k.strip_prefix("PATRONI_") {
            if v.is_empty() {
                continue;
            }
            if let "NAME" | "NAMESPACE" | "SCOPE" = rest {
                root.insert(rest.to_ascii_lowercase(), Value::String(v.clone()));
            }
        }
    }
    Value::Object(root)
}
