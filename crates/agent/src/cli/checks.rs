//! Checks `--validate-config` makes against this machine, as Patroni's validator does: the PostgreSQL
//! binaries are there and of a supported major version, the data directory is empty or a data directory of the same major version, and the
//! listen ports are free. Ports are tested by binding, never by connecting, so nothing is sent anywhere.

use patroni_config::{split_host_port, split_listen, Config, Diagnostic};
use patroni_postgres::binaries::{Binaries, Tool};
use patroni_postgres::PgVersion;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// The programs Patroni requires (pg_rewind is optional).
const REQUIRED: [Tool; 6] =
    [Tool::PgCtl, Tool::Initdb, Tool::PgControldata, Tool::PgBasebackup, Tool::Postgres, Tool::PgIsready];

fn diag(path: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic { path: path.to_owned(), message: message.into(), origin: None }
}

fn binaries(config: &Config) -> Option<Binaries> {
    let pg = &config.postgresql;
    let mut names = BTreeMap::new();
    if let Some(b) = &pg.bin_name {
        let pairs = [
            ("pg_ctl", &b.pg_ctl),
            ("initdb", &b.initdb),
            ("pg_controldata", &b.pg_controldata),
            ("pg_controldata", &b.pgcontroldata),
            ("pg_basebackup", &b.pg_basebackup),
            ("postgres", &b.postgres),
            ("pg_isready", &b.pg_isready),
            ("pg_rewind", &b.pg_rewind),
        ];
        for (k, v) in pairs {
            if let Some(v) = v {
                names.entry(k.to_owned()).or_insert_with(|| v.clone());
            }
        }
    }
    Binaries::new(pg.bin_dir.as_deref().map(PathBuf::from), &names).ok()
}

fn check_binaries(config: &Config, bins: &Binaries, out: &mut Vec<Diagnostic>) {
    let place = match config.postgresql.bin_dir.as_deref() {
        Some(d) if !d.is_empty() => d.to_owned(),
        _ => "$PATH".to_owned(),
    };
    for tool in REQUIRED {
        if bins.path(tool).is_err() {
            out.push(diag("postgresql.bin_dir", format!("does not contain '{}' in '{place}'", bins.name(tool))));
        }
    }
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p).map(|mut d| d.next().is_none()).unwrap_or(true)
}

fn check_data_dir(config: &Config, bins: Option<&Binaries>, out: &mut Vec<Diagnostic>) {
    let Some(dir) = config.postgresql.data_dir.as_deref().map(Path::new) else { return };
    if !dir.exists() {
        return;
    }
    let path = "postgresql.data_dir";
    if !dir.is_dir() {
        out.push(diag(path, "is not a directory"));
        return;
    }
    if is_empty_dir(dir) {
        return;
    }
    let Ok(version) = std::fs::read_to_string(dir.join("PG_VERSION")) else {
        out.push(diag(path, "doesn't look like a valid data directory"));
        return;
    };
    let version = version.trim().to_owned();
    let wal = PgVersion::parse(&version).map(PgVersion::wal_dir_name).unwrap_or("pg_wal");
    if !dir.join(wal).is_dir() {
        out.push(diag(path, format!("data dir for the cluster is not empty, but doesn't contain \"{wal}\" directory")));
        return;
    }
    if let Some(v) = installed_version(bins) {
        if v.major_string() != version {
            out.push(diag(
                path,
                format!(
                    "data_dir directory postgresql version ({version}) doesn't match with 'postgres --version' output ({})",
                    v.major_string()
                ),
            ));
        }
    }
}

/// `postgres --version` of the configured binaries, when they run.
fn installed_version(bins: Option<&Binaries>) -> Option<PgVersion> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    rt.block_on(bins?.version()).ok()
}

/// The binaries must be a supported major: `patroni` refuses to start on older ones.
fn check_version(config: &Config, bins: Option<&Binaries>, out: &mut Vec<Diagnostic>) {
    let Some(version) = installed_version(bins) else { return };
    if let Err(e) = version.require_supported() {
        let path = match config.postgresql.bin_dir.as_deref() {
            Some(d) if !d.is_empty() => "postgresql.bin_dir",
            _ => "postgresql.bin_name.postgres",
        };
        out.push(diag(path, e.to_string()));
    }
}

/// Binds `host:port` to see whether it is free; addresses not on this machine cannot be checked and pass.
fn port_in_use(host: &str, port: u16) -> bool {
    let host = match host {
        "" | "*" => "0.0.0.0",
        h => h,
    };
    matches!(TcpListener::bind((host, port)), Err(e) if e.kind() == std::io::ErrorKind::AddrInUse)
}

fn check_ports(config: &Config, out: &mut Vec<Diagnostic>) {
    if let Some((host, port)) = config.restapi.listen.as_deref().and_then(split_host_port) {
        if port_in_use(host, port) {
            out.push(diag("restapi.listen", format!("Port {port} is already in use.")));
        }
    }
    if let Some((hosts, port)) = config.postgresql.listen.as_deref().and_then(split_listen) {
        if hosts.iter().any(|h| port_in_use(h, port)) {
            out.push(diag("postgresql.listen", format!("Port {port} is already in use.")));
        }
    }
}

/// Every problem found on this machine for `config`.
pub fn machine_checks(config: &Config, check_ports_in_use: bool) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let bins = binaries(config);
    match &bins {
        Some(b) => check_binaries(config, b, &mut out),
        None => out.push(diag("postgresql.bin_name", "names an unknown program")),
    }
    check_version(config, bins.as_ref(), &mut out);
    check_data_dir(config, bins.as_ref(), &mut out);
    if check_ports_in_use {
        check_ports(config, &mut out);
    }
    out
}
