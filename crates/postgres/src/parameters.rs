//! PostgreSQL parameters (GUCs): which ones Patroni controls, how local and dynamic configuration combine, and
//! which must go on the postmaster command line.

use std::collections::BTreeMap;
use std::path::Path;

use crate::binaries::PgVersion;
use crate::version::WalKeep;

/// GUC name (lower case) → value as written to `postgresql.conf`.
pub type Parameters = BTreeMap<String, String>;

#[derive(Clone, Copy)]
enum Check {
    /// Only Patroni sets it (from `listen`/`scope`); users cannot.
    Never,
    Bool,
    AlwaysOn,
    WalLevel,
    IntMin(i64),
    /// Size with a unit; minimum in MB.
    SizeMinMb(i64),
}

/// Parameters that must be equal cluster-wide or that Patroni needs; they are passed on the postmaster command line
/// so that neither `postgresql.auto.conf` nor an included file can override them. Users change them only through
/// the dynamic configuration; invalid values fall back to the default.
/// (Which of them a given major has is [`crate::version::Features::has_parameter`]'s business.)
const CONTROLLED: &[(&str, Option<&str>, Check)] = &[
    ("listen_addresses", None, Check::Never),
    ("port", None, Check::Never),
    ("cluster_name", None, Check::Never),
    ("wal_level", Some("hot_standby"), Check::WalLevel),
    ("hot_standby", Some("on"), Check::AlwaysOn),
    ("max_connections", Some("100"), Check::IntMin(25)),
    ("max_wal_senders", Some("10"), Check::IntMin(3)),
    ("wal_keep_segments", Some("8"), Check::IntMin(1)),
    ("wal_keep_size", Some("128MB"), Check::SizeMinMb(16)),
    ("max_prepared_transactions", Some("0"), Check::IntMin(0)),
    ("max_locks_per_transaction", Some("64"), Check::IntMin(32)),
    ("track_commit_timestamp", Some("off"), Check::Bool),
    ("max_replication_slots", Some("10"), Check::IntMin(4)),
    ("max_worker_processes", Some("8"), Check::IntMin(2)),
    ("wal_log_hints", Some("on"), Check::Bool),
];

/// PgSettings that belong to recovery (`recovery.conf` before v12); Patroni manages them separately.
pub const RECOVERY_PARAMETERS: &[&str] = &[
    "archive_cleanup_command",
    "pause_at_recovery_target",
    "primary_conninfo",
    "primary_slot_name",
    "promote_trigger_file",
    "recovery_end_command",
    "recovery_min_apply_delay",
    "recovery_target",
    "recovery_target_action",
    "recovery_target_inclusive",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_timeline",
    "recovery_target_xid",
    "restore_command",
    "standby_mode",
    "trigger_file",
];

/// Names of the Patroni-controlled parameters.
pub const CONTROLLED_NAMES: &[&str] = &[
    "listen_addresses",
    "port",
    "cluster_name",
    "wal_level",
    "hot_standby",
    "max_connections",
    "max_wal_senders",
    "wal_keep_segments",
    "wal_keep_size",
    "max_prepared_transactions",
    "max_locks_per_transaction",
    "track_commit_timestamp",
    "max_replication_slots",
    "max_worker_processes",
    "wal_log_hints",
];

pub fn is_controlled(name: &str) -> bool {
    controlled(name).is_some()
}

pub fn is_recovery_parameter(name: &str) -> bool {
    RECOVERY_PARAMETERS.contains(&name.to_ascii_lowercase().as_str())
}

fn controlled(name: &str) -> Option<&'static (&'static str, Option<&'static str>, Check)> {
    CONTROLLED.iter().find(|(n, ..)| n.eq_ignore_ascii_case(name))
}

/// Turns a YAML/JSON scalar into the text PostgreSQL expects (`true` → `on`, `5` → `5`).
pub fn value_to_string(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::Bool(b) => Some(if *b { "on" } else { "off" }.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" | "t" | "y" => Some(true),
        "off" | "false" | "no" | "0" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// Parses `128MB`, `1GB`, `64` (MB) into megabytes.
fn parse_size_mb(v: &str) -> Option<i64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: i64 = num.parse().ok()?;
    let factor_kb: i64 = match unit.trim() {
        "" | "MB" => 1024,
        "kB" => 1,
        "GB" => 1024 * 1024,
        "TB" => 1024 * 1024 * 1024,
        _ => return None,
    };
    Some(n * factor_kb / 1024)
}

fn valid(check: Check, value: &str) -> bool {
    match check {
        Check::Never => false,
        Check::Bool => parse_bool(value).is_some(),
        Check::AlwaysOn => parse_bool(value) == Some(true),
        Check::WalLevel => matches!(value.trim().to_ascii_lowercase().as_str(), "hot_standby" | "replica" | "logical"),
        Check::IntMin(min) => value.trim().parse::<i64>().is_ok_and(|v| v >= min),
        Check::SizeMinMb(min) => parse_size_mb(value).is_some_and(|v| v >= min),
    }
}

/// Lower-cases names: GUC names are case-insensitive and one spelling avoids writing a setting twice.
fn normalized(params: &Parameters) -> Parameters {
    params.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect()
}

/// Effective parameters: Patroni's defaults ← dynamic configuration (controlled ones validated) ← local
/// configuration (controlled ones ignored, since they must be equal on every member).
pub fn effective_parameters(dynamic: &Parameters, local: &Parameters) -> Parameters {
    let mut out: Parameters = CONTROLLED
        .iter()
        .filter(|(n, ..)| !matches!(*n, "wal_keep_segments" | "wal_keep_size"))
        .filter_map(|(n, d, ..)| d.map(|d| (n.to_string(), d.to_string())))
        .collect();
    for (name, value) in normalized(dynamic) {
        match controlled(&name) {
            None => {
                out.insert(name, value);
            }
            Some((_, default, check)) => {
                if valid(*check, &value) {
                    out.insert(name, value.trim().to_string());
                } else if !matches!(check, Check::Never) {
                    tracing::warn!(
                        "postgresql parameter {}={} failed validation, defaulting to {}",
                        name,
                        value,
                        default.unwrap_or("")
                    );
                }
            }
        }
    }
    for (name, value) in normalized(local) {
        if is_controlled(&name) {
            tracing::warn!(
                "postgresql parameter {} can only be set in the dynamic configuration; local value ignored",
                name
            );
        } else {
            out.insert(name, value);
        }
    }
    out
}

/// What the server runs with: effective parameters plus `listen_addresses`/`port` from `postgresql.listen`,
/// `cluster_name` from `scope`, version-specific renames, and recovery settings split off.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerParameters {
    pub parameters: Parameters,
    /// Recovery settings found among the parameters; they join `recovery_conf`.
    pub recovery: Parameters,
}

/// Splits `listen` (`127.0.0.1,127.0.0.2:5432`) into listen_addresses and port.
pub fn split_listen(listen: &str) -> (String, u16) {
    let listen = listen.trim();
    match listen.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => {
            (host.to_string(), port.parse().unwrap_or(5432))
        }
        _ => (listen.to_string(), 5432),
    }
}

pub fn server_parameters(
    effective: &Parameters,
    listen: &str,
    scope: &str,
    version: PgVersion,
    config_dir: &Path,
) -> ServerParameters {
    let mut params = normalized(effective);
    for (name, default, ..) in CONTROLLED {
        if let Some(d) = default {
            if !matches!(*name, "wal_keep_segments" | "wal_keep_size") {
                params.entry(name.to_string()).or_insert_with(|| d.to_string());
            }
        }
    }
    let (addresses, port) = split_listen(listen);
    params.insert("listen_addresses".into(), addresses);
    params.insert("port".into(), port.to_string());
    params.insert("cluster_name".into(), scope.to_string());

    if let Some(level) = params.get_mut("wal_level") {
        // `hot_standby` is the pre-9.6 name of `replica`, still Patroni's default value.
        if level.eq_ignore_ascii_case("hot_standby") {
            *level = "replica".into();
        }
    }
    // wal_keep_segments became wal_keep_size in v13; a typical 16MB segment makes the conversion good enough for
    // configurations shared across versions.
    let features = version.features();
    match features.wal_keep() {
        WalKeep::Size => {
            let segments = params.remove("wal_keep_segments").and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or(8);
            params.entry("wal_keep_size".into()).or_insert_with(|| format!("{}MB", segments * 16));
        }
        WalKeep::Segments => {
            let size = params.remove("wal_keep_size").and_then(|s| parse_size_mb(&s)).unwrap_or(128);
            params.entry("wal_keep_segments".into()).or_insert_with(|| ((size + 8) / 16).to_string());
        }
    }
    params.retain(|name, _| features.has_parameter(name));
    for key in ["hba_file", "ident_file"] {
        if let Some(v) = params.get_mut(key) {
            *v = config_dir.join(&*v).display().to_string();
        }
    }
    let recovery: Parameters =
        params.iter().filter(|(k, _)| is_recovery_parameter(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    params.retain(|k, _| !is_recovery_parameter(k));
    ServerParameters { parameters: params, recovery }
}

/// `--name=value` arguments for the postmaster: the controlled parameters get the highest precedence there,
/// even above `ALTER SYSTEM`.
pub fn command_line_options(server: &Parameters) -> Vec<String> {
    CONTROLLED
        .iter()
        .map(|(n, ..)| *n)
        .filter(|n| !matches!(*n, "wal_keep_segments" | "wal_keep_size"))
        .filter_map(|n| server.get(n).map(|v| format!("--{n}={v}")))
        .collect()
}

/// The `synchronous_standby_names` value naming `standbys`, in Patroni's forms: `"pg2"` for one standby,
/// `2 ("pg2","pg3")` for several, `*` when `strict` and none (so commits wait rather than run unprotected), and
/// `None` (the parameter unset) when not strict and none.
pub fn synchronous_standby_names(standbys: &[String], strict: bool) -> Option<String> {
    let quoted: Vec<String> = standbys.iter().map(|s| format!("\"{s}\"")).collect();
    match (quoted.len(), strict) {
        (0, true) => Some("*".to_owned()),
        (0, false) => None,
        (1, _) => Some(quoted[0].clone()),
        (n, _) => Some(format!("{n} ({})", quoted.join(","))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Parameters {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn local_cannot_override_controlled_but_dynamic_can() {
        let dynamic = p(&[("max_connections", "200"), ("work_mem", "4MB"), ("max_wal_senders", "1")]);
        let local = p(&[("max_connections", "50"), ("work_mem", "8MB"), ("Shared_Buffers", "1GB")]);
        let eff = effective_parameters(&dynamic, &local);
        assert_eq!(eff["max_connections"], "200");
        assert_eq!(eff["max_wal_senders"], "10", "below minimum falls back to default");
        assert_eq!(eff["work_mem"], "8MB");
        assert_eq!(eff["shared_buffers"], "1GB");
        assert_eq!(eff["wal_level"], "hot_standby");
        assert!(!eff.contains_key("wal_keep_size"));
    }

    #[test]
    fn server_parameters_for_pg15() {
        let eff = effective_parameters(
            &p(&[("wal_keep_segments", "10"), ("hba_file", "my_hba.conf")]),
            &p(&[("restore_command", "cp /a/%f %p")]),
        );
        let s = server_parameters(&eff, "127.0.0.1,10.0.0.1:5433", "demo", PgVersion(150018), Path::new("/etc/pg"));
        let sp = &s.parameters;
        assert_eq!(sp["listen_addresses"], "127.0.0.1,10.0.0.1");
        assert_eq!(sp["port"], "5433");
        assert_eq!(sp["cluster_name"], "demo");
        assert_eq!(sp["wal_level"], "replica");
        assert_eq!(sp["wal_keep_size"], "160MB");
        assert!(!sp.contains_key("wal_keep_segments"));
        assert_eq!(sp["hba_file"], "/etc/pg/my_hba.conf");
        assert_eq!(s.recovery["restore_command"], "cp /a/%f %p");
        assert!(!sp.contains_key("restore_command"));
        let opts = command_line_options(sp);
        assert_eq!(opts[0], "--listen_addresses=127.0.0.1,10.0.0.1");
        assert!(opts.contains(&"--hot_standby=on".to_string()));
        assert!(!opts.iter().any(|o| o.starts_with("--wal_keep")));
        assert!(!opts.iter().any(|o| o.starts_with("--hba_file")));
    }

    #[test]
    fn controlled_names_match_the_table() {
        let names: Vec<&str> = CONTROLLED.iter().map(|(n, ..)| *n).collect();
        assert_eq!(names, CONTROLLED_NAMES);
    }

    #[test]
    fn listen_forms() {
        assert_eq!(split_listen("*:5432"), ("*".into(), 5432));
        assert_eq!(split_listen("localhost"), ("localhost".into(), 5432));
        assert_eq!(split_listen("0.0.0.0:6000"), ("0.0.0.0".into(), 6000));
    }

    #[test]
    fn values() {
        assert_eq!(value_to_string(&serde_json::json!(true)).unwrap(), "on");
        assert_eq!(value_to_string(&serde_json::json!(100)).unwrap(), "100");
        assert_eq!(value_to_string(&serde_json::json!("x")).unwrap(), "x");
        assert_eq!(parse_size_mb("1GB"), Some(1024));
    }

    #[test]
    fn synchronous_standby_names_forms() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(synchronous_standby_names(&[], false), None);
        assert_eq!(synchronous_standby_names(&[], true).as_deref(), Some("*"));
        assert_eq!(synchronous_standby_names(&names(&["pg2"]), false).as_deref(), Some("\"pg2\""));
        assert_eq!(synchronous_standby_names(&names(&["pg2"]), true).as_deref(), Some("\"pg2\""));
        assert_eq!(synchronous_standby_names(&names(&["pg2", "pg3"]), false).as_deref(), Some("2 (\"pg2\",\"pg3\")"));
    }
}
