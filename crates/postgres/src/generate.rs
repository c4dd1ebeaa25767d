//! `patroni --generate-config --dsn DSN`: what a running standalone PostgreSQL tells us about the configuration
//! Patroni needs to adopt it. The agent merges the returned sections into its configuration template and writes
//! the YAML.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::conninfo::ConnParams;
use crate::error::{Error, Result};
use crate::parameters::CONTROLLED_NAMES;
use crate::query::Db;
use crate::version::PgVersion;

/// Placeholder Patroni writes where only the operator knows the value.
pub const NO_VALUE: &str = "#FIXME";

/// PgSettings that stay in the local configuration: commands (security) and file locations (they must not be
/// dropped later); everything else goes to `bootstrap.dcs.postgresql.parameters`.
const LOCAL_PARAMS: &[&str] = &[
    "archive_command",
    "restore_command",
    "archive_cleanup_command",
    "recovery_end_command",
    "ssl_passphrase_command",
    "hba_file",
    "ident_file",
    "config_file",
];

const HBA_TYPES: &[&str] = &["local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc"];
const HBA_INCLUDES: &[&str] = &["include", "include_if_exists", "include_dir"];

/// libpq environment variables consulted for what the DSN leaves out, as libpq itself would.
const ENV_FALLBACKS: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("port", "PGPORT"),
    ("user", "PGUSER"),
    ("password", "PGPASSWORD"),
    ("dbname", "PGDATABASE"),
    ("sslmode", "PGSSLMODE"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcrl", "PGSSLCRL"),
    ("sslcrldir", "PGSSLCRLDIR"),
    ("gssencmode", "PGGSSENCMODE"),
    ("channel_binding", "PGCHANNELBINDING"),
];

const SUPERUSER_KEYS: &[&str] = &[
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
    "sslnegotiation",
];

/// Builds the configuration sections (`scope`, `bootstrap.dcs.postgresql.parameters`, `postgresql.*`) from the
/// PostgreSQL that `dsn` connects to as a superuser. `connect_host` is this host's address for
/// `postgresql.connect_address`.
pub async fn generate_config(dsn: &str, connect_host: &str) -> Result<Value> {
    Ok(generate_config_and_version(dsn, connect_host).await?.0)
}

/// [`generate_config`], with the server's version (what the rest of the generated sample depends on). A server
/// older than the oldest supported major is refused.
pub async fn generate_config_and_version(dsn: &str, connect_host: &str) -> Result<(Value, PgVersion)> {
    let mut params = if dsn.trim().is_empty() {
        ConnParams::new()
    } else {
        ConnParams::parse(dsn).ok_or_else(|| Error::Config("Failed to parse DSN string".into()))?
    };
    for (key, var) in ENV_FALLBACKS {
        if params.get(key).is_none() {
            if let Ok(v) = std::env::var(var) {
                params.set(key, v);
            }
        }
    }
    if params.get("user").is_none() {
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| "postgres".into());
        params.set("user", user);
    }
    let db = Db::connect(&params, Duration::from_secs(10))
        .await
        .map_err(|e| Error::State(format!("Failed to establish PostgreSQL connection: {e}")))?;
    let is_super: bool =
        db.query_one("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user", &[]).await?.try_get(0)?;
    if !is_super {
        return Err(Error::State("The provided user does not have superuser privilege".into()));
    }
    let version = PgVersion(db.server_version().await?).require_supported()?;
    let features = version.features();
    let required: Vec<String> = ["hba_file", "ident_file", "config_file", "data_directory"]
        .iter()
        .map(|s| s.to_string())
        .chain(CONTROLLED_NAMES.iter().map(|s| s.to_string()))
        .collect();
    let rows = db
        .query(
            "SELECT name, pg_catalog.current_setting(name) FROM pg_catalog.pg_settings \
             WHERE context <> 'internal' \
             AND source IN ('configuration file', 'command line', 'environment variable') \
             AND category <> 'Write-Ahead Log / Recovery Target' \
             AND setting <> '(disabled)' \
             OR name = ANY($1) ORDER BY name",
            &[&required],
        )
        .await?;

    let mut scope: Option<String> = None;
    let mut data_dir = String::new();
    let mut local = Map::new();
    let mut dynamic = Map::new();
    let (mut port, mut listen_addresses) = (String::new(), String::new());
    for row in &rows {
        let name: String = row.try_get(0)?;
        let value: String = row.try_get(1)?;
        match name.as_str() {
            "data_directory" => data_dir = value,
            "cluster_name" => {
                if !value.is_empty() {
                    scope = Some(value);
                }
            }
            "port" => port = value,
            "listen_addresses" => listen_addresses = value,
            n if LOCAL_PARAMS.contains(&n) => {
                local.insert(name, Value::String(value));
            }
            _ => {
                dynamic.insert(name, Value::String(value));
            }
        }
    }
    let connect_port = params.get("port").map(str::to_string).unwrap_or_else(|| port.clone());

    let mut superuser = Map::new();
    superuser.insert("username".into(), Value::String(params.get("user").unwrap_or("postgres").to_string()));
    for key in SUPERUSER_KEYS {
        if let Some(v) = params.get(key) {
            superuser.insert((*key).to_string(), Value::String(v.to_string()));
        }
    }

    let mut postgresql = Map::new();
    postgresql.insert("connect_address".into(), Value::String(format!("{connect_host}:{connect_port}")));
    postgresql.insert("listen".into(), Value::String(format!("{listen_addresses}:{port}")));
    postgresql.insert("data_dir".into(), Value::String(data_dir.clone()));
    postgresql.insert(
        "authentication".into(),
        json!({"superuser": superuser, "replication": {"username": NO_VALUE, "password": NO_VALUE}}),
    );
    let data = Path::new(&data_dir);
    let hba_default = data.join("pg_hba.conf").display().to_string();
    if local.get("hba_file").and_then(Value::as_str) == Some(hba_default.as_str()) {
        let lines = read_conf_lines(Path::new(&hba_default))?;
        let types: Vec<&str> = HBA_TYPES
            .iter()
            .chain(if features.hba_include_directives() { HBA_INCLUDES } else { &[] })
            .copied()
            .collect();
        let hba: Vec<Value> = lines
            .into_iter()
            .filter(|l| l.split_whitespace().next().is_some_and(|t| types.contains(&t)))
            .map(Value::String)
            .collect();
        postgresql.insert("pg_hba".into(), Value::Array(hba));
    }
    let ident_default = data.join("pg_ident.conf").display().to_string();
    if local.get("ident_file").and_then(Value::as_str) == Some(ident_default.as_str()) {
        let ident: Vec<Value> = read_conf_lines(Path::new(&ident_default))?
            .into_iter()
            .filter(|l| !l.starts_with('#'))
            .map(Value::String)
            .collect();
        if !ident.is_empty() {
            postgresql.insert("pg_ident".into(), Value::Array(ident));
        }
    }
    postgresql.insert("parameters".into(), Value::Object(local));
    if let Some(bin_dir) = running_bin_dir(data) {
        postgresql.insert("bin_dir".into(), Value::String(bin_dir));
    }

    let mut out = Map::new();
    if let Some(s) = scope {
        out.insert("scope".into(), Value::String(s));
    }
    out.insert("bootstrap".into(), json!({"dcs": {"postgresql": {"parameters": dynamic}}}));
    out.insert("postgresql".into(), Value::Object(postgresql));
    Ok((Value::Object(out), version))
}

fn read_conf_lines(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
}

/// Directory of the running postmaster's executable.
fn running_bin_dir(data_dir: &Path) -> Option<String> {
    let pf = crate::postmaster::PidFile::read(data_dir).ok()??;
    let exe = std::fs::read_link(format!("/proc/{}/exe", pf.pid)).ok()?;
    Some(exe.parent()?.display().to_string())
}
