//! `PATRONI_*` environment variables turned into a configuration tree, following the families Patroni
//! documents (and the older spellings it still honours).
//!
//! Values that should be numbers, booleans, lists or mappings are converted here; when a value cannot be
//! converted it is kept as a string so that validation reports it with its key path instead of it
//! vanishing silently.

use crate::convert::parse_bool;
use crate::tree::{deep_merge, parse_yaml};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Environment variables as a map, so callers (and tests) decide where they come from.
pub type EnvMap = BTreeMap<String, String>;

/// The variable holding a whole YAML configuration.
pub const PATRONI_CONFIGURATION: &str = "PATRONI_CONFIGURATION";

const PREFIX: &str = "PATRONI_";

/// libpq parameters accepted for `postgresql.authentication.<user>`.
pub const AUTH_PARAMETERS: &[&str] = &[
    "username",
    "password",
    "sslmode",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "gssencmode",
    "channel_binding",
];

/// Suffixes of `PATRONI_<SECTION>_<SUFFIX>` read for any section (the DCS, citus).
const GENERIC_SUFFIXES: &[&str] = &[
    "HOST",
    "HOSTS",
    "PORT",
    "USE_PROXIES",
    "PROTOCOL",
    "SRV",
    "SRV_SUFFIX",
    "URL",
    "PROXY",
    "CACERT",
    "CERT",
    "KEY",
    "VERIFY",
    "TOKEN",
    "CHECKS",
    "DC",
    "CONSISTENCY",
    "REGISTER_SERVICE",
    "SERVICE_CHECK_INTERVAL",
    "SERVICE_CHECK_TLS_SERVER_NAME",
    "SERVICE_TAGS",
    "NAMESPACE",
    "CONTEXT",
    "USE_ENDPOINTS",
    "SCOPE_LABEL",
    "ROLE_LABEL",
    "POD_IP",
    "PORTS",
    "LABELS",
    "BYPASS_API_SERVICE",
    "RETRIABLE_HTTP_CODES",
    "KEY_PASSWORD",
    "USE_SSL",
    "SET_ACLS",
    "GROUP",
    "DATABASE",
    "LEADER_LABEL_VALUE",
    "FOLLOWER_LABEL_VALUE",
    "STANDBY_LEADER_LABEL_VALUE",
    "TMP_ROLE_LABEL",
    "AUTH_DATA",
    "BOOTSTRAP_LABELS",
    "POLL_INTERVAL",
];

/// How a raw string is turned into a value.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    List,
    Dict,
}

/// A snapshot of the process environment (non-UTF-8 variables are skipped).
pub fn process_env() -> EnvMap {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

fn convert_value(raw: &str, kind: Kind) -> Value {
    let fallback = || Value::String(raw.to_owned());
    match kind {
        Kind::Str => fallback(),
        Kind::Int => strtol(raw).map(Value::from).unwrap_or_else(fallback),
        Kind::Bool => parse_bool(raw).map(Value::Bool).unwrap_or_else(fallback),
        Kind::List => parse_list(raw).unwrap_or_else(fallback),
        Kind::Dict => parse_dict(raw).unwrap_or_else(fallback),
    }
}

/// An integer the way C's `strtol` with base 0 reads it (Patroni's `parse_int`): `0x1F` is hex, `0640`
/// octal (log file modes), anything else decimal.
fn strtol(raw: &str) -> Option<i64> {
    let t = raw.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        i64::from_str_radix(&body[1..], 8).ok()?
    } else {
        body.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// `'a:1','b:2'`, `a,b`, `[a, b]` or a YAML block list.
fn parse_list(raw: &str) -> Option<Value> {
    let t = raw.trim();
    let text = if t.starts_with('-') || t.contains('[') { t.to_owned() } else { format!("[{t}]") };
    parse_yaml(&text, "env").ok().filter(Value::is_array)
}

/// `{a: 1, b: 2}` or `a: 1, b: 2`.
fn parse_dict(raw: &str) -> Option<Value> {
    let t = raw.trim();
    let text = if t.starts_with('{') { t.to_owned() } else { format!("{{{t}}}") };
    parse_yaml(&text, "env").ok().filter(Value::is_object)
}

struct Builder<'e> {
    env: &'e EnvMap,
    used: BTreeSet<String>,
    root: Value,
    /// The variable behind the next `set`.
    last_var: String,
    /// Key path → variable that set it.
    origins: Vec<(String, String)>,
}

impl<'e> Builder<'e> {
    /// The value of `PATRONI_<name>` if set and not empty; marks it consumed either way.
    fn take(&mut self, name: &str) -> Option<&'e str> {
        let key = format!("{PREFIX}{name}");
        let env = self.env;
        let v = env.get(&key)?;
        self.used.insert(key.clone());
        self.last_var = key;
        (!v.is_empty()).then_some(v.as_str())
    }

    fn set(&mut self, path: &[&str], value: Value) {
        self.origins.push((path.join("."), self.last_var.clone()));
        let mut overlay = value;
        for seg in path.iter().rev() {
            let mut m = Map::new();
            m.insert((*seg).to_owned(), overlay);
            overlay = Value::Object(m);
        }
        deep_merge(&mut self.root, overlay);
    }

    fn section(&mut self, section: &str, params: &[(&str, Kind)]) {
        for (param, kind) in params {
            let var = format!("{}_{}", section.to_ascii_uppercase(), param.to_ascii_uppercase());
            if let Some(raw) = self.take(&var) {
                self.set(&[section, param], convert_value(raw, *kind));
            }
        }
    }

    fn auth(&mut self, var_prefix: &str, path: &[&str], params: &[&str]) {
        for param in params {
            if let Some(raw) = self.take(&format!("{var_prefix}_{}", param.to_ascii_uppercase())) {
                let mut p: Vec<&str> = path.to_vec();
                p.push(param);
                self.set(&p, Value::String(raw.to_owned()));
            }
        }
    }
}

/// The configuration the `PATRONI_*` variables of `env` describe (`PATRONI_CONFIGURATION` excluded: it is
/// a whole document, handled by the loader).
pub fn environment_tree(env: &EnvMap) -> Value {
    environment_tree_with_origins(env).0
}

/// [`environment_tree`] plus, for every key path it sets, the variable it came from.
pub fn environment_tree_with_origins(env: &EnvMap) -> (Value, Vec<(String, String)>) {
    use Kind::*;
    let mut b = Builder {
        env,
        used: BTreeSet::new(),
        root: Value::Object(Map::new()),
        last_var: String::new(),
        origins: Vec::new(),
    };
    b.used.insert(PATRONI_CONFIGURATION.to_owned());

    for param in ["name", "namespace", "scope"] {
        if let Some(raw) = b.take(&param.to_ascii_uppercase()) {
            b.set(&[param], Value::String(raw.to_owned()));
        }
    }

    // Older log variable names, used only when the new name is absent.
    for (new, old) in [("LEVEL", "LOGLEVEL"), ("FORMAT", "LOGFORMAT"), ("DATEFORMAT", "LOG_DATEFMT")] {
        if let Some(raw) = b.take(old) {
            if !env.contains_key(&format!("{PREFIX}LOG_{new}")) {
                b.set(&["log", &new.to_ascii_lowercase()], Value::String(raw.to_owned()));
            }
        }
    }

    b.section(
        "restapi",
        &[
            ("listen", Str),
            ("connect_address", Str),
            ("proxy_address", Str),
            ("certfile", Str),
            ("keyfile", Str),
            ("keyfile_password", Str),
            ("cafile", Str),
            ("ciphers", Str),
            ("verify_client", Str),
            ("http_extra_headers", Dict),
            ("https_extra_headers", Dict),
            ("allowlist", List),
            ("allowlist_include_members", Bool),
            ("request_queue_size", Int),
            ("server_tokens", Str),
        ],
    );
    b.section(
        "ctl",
        &[("insecure", Bool), ("cacert", Str), ("certfile", Str), ("keyfile", Str), ("keyfile_password", Str)],
    );
    b.section(
        "postgresql",
        &[
            ("listen", Str),
            ("connect_address", Str),
            ("proxy_address", Str),
            ("config_dir", Str),
            ("data_dir", Str),
            ("pgpass", Str),
            ("bin_dir", Str),
        ],
    );
    b.section(
        "log",
        &[
            ("type", Str),
            ("level", Str),
            ("traceback_level", Str),
            ("format", Str),
            ("dateformat", Str),
            ("static_fields", Dict),
            ("max_queue_size", Int),
            ("dir", Str),
            ("mode", Int),
            ("file_size", Int),
            ("file_num", Int),
            ("loggers", Dict),
            ("deduplicate_heartbeat_logs", Bool),
        ],
    );
    // A JSON log format may be given as a list of field names rather than a %-style string.
    if let Some(Value::String(f)) = b.root.pointer("/log/format").cloned() {
        if !f.contains("%(") {
            if let Some(list) = parse_list(&f) {
                b.last_var = format!("{PREFIX}LOG_FORMAT");
                b.set(&["log", "format"], list);
            }
        }
    }
    b.section(
        "raft",
        &[("data_dir", Str), ("self_addr", Str), ("partner_addrs", List), ("password", Str), ("bind_addr", Str)],
    );

    for (binary, vars) in [
        ("pg_ctl", &["PG_CTL"][..]),
        ("initdb", &["INITDB"]),
        ("pg_controldata", &["PG_CONTROLDATA"]),
        ("pg_basebackup", &["PG_BASEBACKUP"]),
        ("postgres", &["POSTGRES"]),
        // The documentation spells it BIN_IS_READY, Patroni reads BIN_PG_ISREADY: accept both.
        ("pg_isready", &["PG_ISREADY", "IS_READY"]),
        ("pg_rewind", &["PG_REWIND"]),
    ] {
        for var in vars {
            if let Some(raw) = b.take(&format!("POSTGRESQL_BIN_{var}")) {
                b.set(&["postgresql", "bin_name", binary], Value::String(raw.to_owned()));
            }
        }
    }

    b.auth("RESTAPI", &["restapi", "authentication"], &["username", "password"]);
    b.auth("CTL", &["ctl", "authentication"], &["username", "password"]);
    for user in ["replication", "superuser", "rewind"] {
        b.auth(&user.to_ascii_uppercase(), &["postgresql", "authentication", user], AUTH_PARAMETERS);
    }

    // The documentation names PATRONI_RETRIABLE_HTTP_CODES without the KUBERNETES part.
    if let Some(raw) = b.take("RETRIABLE_HTTP_CODES") {
        b.set(&["kubernetes", "retriable_http_codes"], convert_value(raw, List));
    }

    // PATRONI_<SECTION>_<SUFFIX> for every DCS and citus.
    let remaining: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with(PREFIX) && !b.used.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (var, raw) in &remaining {
        let Some((name, suffix)) = var[PREFIX.len()..].split_once('_') else {
            continue;
        };
        if name.is_empty() || !GENERIC_SUFFIXES.contains(&suffix) {
            continue;
        }
        b.used.insert(var.clone());
        if raw.is_empty() {
            continue;
        }
        b.last_var = var.clone();
        let section = name.to_ascii_lowercase();
        let kind = if name == "CITUS" {
            match suffix {
                "GROUP" => Int,
                "DATABASE" => Str,
                _ => continue,
            }
        } else {
            match suffix {
                "PORT" => Int,
                "HOSTS" | "PORTS" | "CHECKS" | "SERVICE_TAGS" | "RETRIABLE_HTTP_CODES" => List,
                "LABELS" | "SET_ACLS" | "AUTH_DATA" | "BOOTSTRAP_LABELS" => Dict,
                "USE_PROXIES" | "REGISTER_SERVICE" | "USE_ENDPOINTS" | "BYPASS_API_SERVICE" | "VERIFY" | "USE_SSL" => {
                    Bool
                }
                _ => Str,
            }
        };
        b.set(&[&section, &suffix.to_ascii_lowercase()], convert_value(raw, kind));
    }
    for dcs in ["etcd", "etcd3"] {
        if b.root.get(dcs).is_some() {
            b.auth(&dcs.to_ascii_uppercase(), &[dcs], &["username", "password"]);
        }
    }

    // PATRONI_<user>_PASSWORD and PATRONI_<user>_OPTIONS: users created at bootstrap.
    let remaining: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with(PREFIX) && !b.used.contains(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (var, raw) in &remaining {
        let Some(user) = var[PREFIX.len()..].strip_suffix("_PASSWORD") else {
            continue;
        };
        if user.is_empty() {
            continue;
        }
        let user_lc = user.to_ascii_lowercase();
        b.last_var = var.clone();
        b.set(&["bootstrap", "users", &user_lc, "password"], Value::String(raw.clone()));
        if let Some(opts) = env.get(&format!("{PREFIX}{user}_OPTIONS")) {
            if !opts.is_empty() {
                b.last_var = format!("{PREFIX}{user}_OPTIONS");
                b.set(&["bootstrap", "users", &user_lc, "options"], convert_value(opts, List));
            }
        }
    }

    (b.root, b.origins)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> EnvMap {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn global_restapi_postgresql_and_auth() {
        let t = environment_tree(&env(&[
            ("PATRONI_NAME", "n1"),
            ("PATRONI_SCOPE", "c1"),
            ("PATRONI_NAMESPACE", "/ns/"),
            ("PATRONI_RESTAPI_LISTEN", "0.0.0.0:8008"),
            ("PATRONI_RESTAPI_USERNAME", "admin"),
            ("PATRONI_RESTAPI_PASSWORD", "pw"),
            ("PATRONI_RESTAPI_ALLOWLIST", "10.0.0.0/8, 127.0.0.1"),
            ("PATRONI_RESTAPI_ALLOWLIST_INCLUDE_MEMBERS", "on"),
            ("PATRONI_RESTAPI_REQUEST_QUEUE_SIZE", "7"),
            ("PATRONI_RESTAPI_HTTP_EXTRA_HEADERS", "X-A: b"),
            ("PATRONI_POSTGRESQL_DATA_DIR", "/data"),
            ("PATRONI_POSTGRESQL_BIN_PG_CTL", "pg_ctl15"),
            ("PATRONI_REPLICATION_USERNAME", "rep"),
            ("PATRONI_REPLICATION_SSLMODE", "require"),
            ("PATRONI_SUPERUSER_PASSWORD", "su"),
            ("PATRONI_CTL_INSECURE", "true"),
            ("UNRELATED", "x"),
        ]));
        assert_eq!(
            t,
            json!({
                "name": "n1", "namespace": "/ns/", "scope": "c1",
                "restapi": {"listen": "0.0.0.0:8008", "allowlist": ["10.0.0.0/8", "127.0.0.1"],
                            "allowlist_include_members": true, "request_queue_size": 7,
                            "http_extra_headers": {"X-A": "b"},
                            "authentication": {"username": "admin", "password": "pw"}},
                "ctl": {"insecure": true},
                "postgresql": {"data_dir": "/data", "bin_name": {"pg_ctl": "pg_ctl15"},
                               "authentication": {"replication": {"username": "rep", "sslmode": "require"},
                                                  "superuser": {"password": "su"}}}
            })
        );
    }

    #[test]
    fn dcs_families_and_users() {
        let t = environment_tree(&env(&[
            ("PATRONI_ETCD3_HOSTS", "'h1:2379','h2:2379'"),
            ("PATRONI_ETCD3_PROTOCOL", "https"),
            ("PATRONI_ETCD3_USERNAME", "u"),
            ("PATRONI_ETCD3_PASSWORD", "p"),
            ("PATRONI_CONSUL_PORT", "8500"),
            ("PATRONI_CONSUL_REGISTER_SERVICE", "yes"),
            ("PATRONI_KUBERNETES_LABELS", "{app: pg, team: db}"),
            ("PATRONI_KUBERNETES_PORTS", "[{\"name\": \"postgresql\", \"port\": 5432}]"),
            ("PATRONI_ZOOKEEPER_KEY_PASSWORD", "kp"),
            ("PATRONI_CITUS_GROUP", "1"),
            ("PATRONI_CITUS_DATABASE", "citus"),
            ("PATRONI_ADMIN_PASSWORD", "apw"),
            ("PATRONI_ADMIN_OPTIONS", "createrole,createdb"),
            ("PATRONI_LOG_LOGGERS", "{patroni.postmaster: WARNING}"),
            ("PATRONI_LOGLEVEL", "DEBUG"),
            ("PATRONI_RAFT_PARTNER_ADDRS", "'10.0.0.1:1234','10.0.0.2:1234'"),
        ]));
        assert_eq!(
            t["etcd3"],
            json!({"hosts": ["h1:2379", "h2:2379"], "protocol": "https", "username": "u", "password": "p"})
        );
        assert_eq!(t["consul"], json!({"port": 8500, "register_service": true}));
        assert_eq!(t["kubernetes"]["labels"], json!({"app": "pg", "team": "db"}));
        assert_eq!(t["kubernetes"]["ports"], json!([{"name": "postgresql", "port": 5432}]));
        assert_eq!(t["zookeeper"], json!({"key_password": "kp"}));
        assert_eq!(t["citus"], json!({"group": 1, "database": "citus"}));
        assert_eq!(
            t["bootstrap"]["users"],
            json!({"admin": {"password": "apw", "options": ["createrole", "createdb"]}})
        );
        assert_eq!(t["log"], json!({"level": "DEBUG", "loggers": {"patroni.postmaster": "WARNING"}}));
        assert_eq!(t["raft"]["partner_addrs"], json!(["10.0.0.1:1234", "10.0.0.2:1234"]));
    }

    #[test]
    fn integers_read_like_strtol() {
        let t = environment_tree(&env(&[("PATRONI_LOG_MODE", "0640"), ("PATRONI_LOG_FILE_SIZE", "0x10")]));
        assert_eq!(t["log"], json!({"mode": 416, "file_size": 16}));
    }

    #[test]
    fn unconvertible_values_stay_strings() {
        let t = environment_tree(&env(&[("PATRONI_RESTAPI_REQUEST_QUEUE_SIZE", "many")]));
        assert_eq!(t["restapi"]["request_queue_size"], json!("many"));
    }
}
