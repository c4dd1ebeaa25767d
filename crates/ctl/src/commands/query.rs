//! `query`: runs SQL on a member chosen by role or name and prints the rows like patronictl.

use std::net::IpAddr;

use serde_json::Value;
use tokio_postgres::Client;

use super::{any_member, get_cluster, timestamp};
use crate::cli::Role;
use crate::commands::read::{conn_host_port, watching};
use crate::context::{Ctl, CtlError, CtlResult};
use crate::output::{render, Format, Table};
use crate::prompt;

pub struct QueryArgs {
    pub cluster_name: Option<String>,
    pub group: Option<u32>,
    pub fmt: Format,
    pub file: Option<String>,
    pub password: bool,
    pub username: Option<String>,
    pub watch: Option<f64>,
    pub role: Option<Role>,
    pub member: Option<String>,
    pub delimiter: String,
    pub command: Option<String>,
    pub dbname: Option<String>,
}

struct Params {
    user: Option<String>,
    password: Option<String>,
    dbname: Option<String>,
}

/// Connects to the member with `role` / named `member`; for replica and primary roles checks what the server
/// itself says (`pg_is_in_recovery()`), as the DCS may lag behind.
async fn connect(
    cluster: &patroni_dcs::Cluster,
    role: Option<Role>,
    member: Option<&str>,
    p: &Params,
) -> Result<Option<Client>, String> {
    let Some(m) = any_member(cluster, role, member).map_err(|e| e.0)? else { return Ok(None) };
    let (host, port) = conn_host_port(m.conn_url().unwrap_or(""));
    let host = host.unwrap_or_else(|| "localhost".into());
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    // libpq's defaults, which psycopg2 leaves alone: PGUSER, else the name of the effective OS user (not $USER).
    let user = p.user.clone().or_else(|| env("PGUSER")).or_else(os_user_name).unwrap_or_else(|| "postgres".into());
    let dbname = p.dbname.clone().or_else(|| env("PGDATABASE")).unwrap_or(user.clone());
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&host);
    cfg.port(port);
    cfg.application_name("Patroni ctl");
    cfg.connect_timeout(std::time::Duration::from_secs(5));
    cfg.user(&user);
    if let Some(pw) =
        p.password.clone().or_else(|| env("PGPASSWORD")).or_else(|| pgpass_lookup(&host, port, &dbname, &user))
    {
        cfg.password(pw);
    }
    cfg.dbname(&dbname);
    let client = connect_like_libpq(&cfg, &host, port).await?;
    if matches!(role, None | Some(Role::Any) | Some(Role::Leader)) {
        return Ok(Some(client));
    }
    let in_recovery = patroni_postgres::adhoc::is_in_recovery(&client).await.map_err(db_message)?;
    let ok = if in_recovery {
        matches!(role, Some(Role::Replica | Role::Standby | Role::StandbyLeader))
    } else {
        role == Some(Role::Primary)
    };
    Ok(ok.then_some(client))
}

/// Tries each address `host` resolves to in turn, as libpq does, and on failure answers what libpq (and so
/// psycopg2, whose connection errors carry no SQLSTATE) says: one `connection to server at … failed: …` line per
/// address tried, so a DBA sees the same reason with either patronictl.
async fn connect_like_libpq(cfg: &tokio_postgres::Config, host: &str, port: u16) -> Result<Client, String> {
    let literal: Option<IpAddr> = host.parse().ok();
    let addrs: Vec<IpAddr> = match literal {
        Some(ip) => vec![ip],
        None => match tokio::net::lookup_host((host, port)).await {
            Ok(found) => {
                let mut ips: Vec<IpAddr> = Vec::new();
                for a in found {
                    if !ips.contains(&a.ip()) {
                        ips.push(a.ip());
                    }
                }
                ips
            }
            Err(e) => return Err(format!("could not translate host name \"{host}\" to address: {}\n", io_text(&e))),
        },
    };
    // psycopg2 leaves TLS to libpq: sslmode `prefer` (TLS when the server offers it) unless PGSSLMODE and friends
    // say otherwise.
    let mut ssl = patroni_postgres::ConnParams::new().with("host", host);
    for (var, key) in
        [("PGSSLMODE", "sslmode"), ("PGSSLROOTCERT", "sslrootcert"), ("PGSSLCERT", "sslcert"), ("PGSSLKEY", "sslkey")]
    {
        if let Some(v) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
            ssl = ssl.with(key, &v);
        }
    }
    let mut message = String::new();
    for ip in addrs {
        let mut cfg = cfg.clone();
        cfg.hostaddr(ip);
        match patroni_postgres::connect_with_sslmode(&cfg, &ssl).await.map_err(|e| e.to_string())? {
            Ok(client) => return Ok(client),
            Err(e) => {
                let at = if literal.is_some() { String::new() } else { format!(" ({ip})") };
                message.push_str(&format!(
                    "connection to server at \"{host}\"{at}, port {port} failed: {}",
                    connect_failure(&e)
                ));
            }
        }
    }
    Err(message)
}

/// libpq's words for why one connection attempt failed, with its trailing line break.
fn connect_failure(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{}:  {}\n", db.severity(), db.message());
        if let Some(d) = db.detail() {
            text.push_str(&format!("DETAIL:  {d}\n"));
        }
        if let Some(h) = db.hint() {
            text.push_str(&format!("HINT:  {h}\n"));
        }
        return text;
    }
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    match io.map(std::io::Error::kind) {
        Some(std::io::ErrorKind::ConnectionRefused) => {
            "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?\n".into()
        }
        Some(std::io::ErrorKind::TimedOut) => "timeout expired\n".into(),
        Some(_) => format!("{}\n", io.map(io_text).unwrap_or_default()),
        // tokio-postgres refuses before asking the server for a password it was not given.
        None if tokio_postgres_error_text(e).ends_with("password missing") => {
            "fe_sendauth: no password supplied\n".into()
        }
        None => format!("{}\n", tokio_postgres_error_text(e)),
    }
}

/// An OS error as C's `strerror` prints it (Rust appends ` (os error N)`).
fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_owned(),
        _ => text,
    }
}

fn tokio_postgres_error_text(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// The effective user's login name, which libpq takes for the user when none is given.
fn os_user_name() -> Option<String> {
    // SAFETY: getpwuid_r writes only into `pwd` and `buf`, whose sizes we pass; `result` points into them or is
    // null, and the name is copied out before they go out of scope.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(libc::geteuid(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(pwd.pw_name).to_str().ok().map(str::to_owned)
    }
}

/// A query error as psycopg2 reports it: its `diag.sqlstate`, or its text when the server sent none.
fn db_message(e: tokio_postgres::Error) -> String {
    match e.code() {
        Some(c) => c.code().to_string(),
        None => tokio_postgres_error_text(&e),
    }
}

fn error_rows(message: String) -> (Option<Vec<String>>, Vec<Vec<Value>>) {
    (None, vec![vec![Value::from(timestamp(0)), Value::from(message)]])
}

pub async fn query(ctl: &Ctl, a: QueryArgs) -> CtlResult<()> {
    let sql = match (&a.file, &a.command) {
        (Some(_), Some(_)) => return Err(CtlError::new("--file and --command are mutually exclusive options")),
        (Some(f), None) => {
            if f == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .map_err(|e| CtlError::new(e.to_string()))?;
                s
            } else {
                std::fs::read_to_string(f)
                    .map_err(|e| CtlError::new(format!("Invalid value for '--file' / '-f': {f}: {e}")))?
            }
        }
        (None, Some(c)) => c.clone(),
        (None, None) => return Err(CtlError::new("You need to specify either --command or --file")),
    };
    if a.role.is_some() && a.member.is_some() {
        return Err(CtlError::new("--role and --member are mutually exclusive options"));
    }
    let password = if a.password { Some(prompt::prompt_hidden("Password")?) } else { None };
    let params = Params { user: a.username.clone(), password, dbname: a.dbname.clone() };
    let name = ctl.cluster_name(a.cluster_name.clone())?;
    let dcs = ctl.dcs(&name, a.group).await?;
    let cluster = get_cluster(&*dcs).await?;
    let client: tokio::sync::Mutex<Option<Client>> = tokio::sync::Mutex::new(None);
    watching(a.watch, false, || async {
        let mut guard = client.lock().await;
        if guard.is_none() {
            match connect(&cluster, a.role, a.member.as_deref(), &params).await {
                Ok(c) => *guard = c,
                Err(m) => {
                    // psycopg2's message is libpq's, line breaks and all; patronictl puts it on one line.
                    let (h, r) = error_rows(format!("ERROR, SQLSTATE: {}", m.replace('\n', " ")));
                    print_rows(h, r, a.fmt, &a.delimiter);
                    return Ok(());
                }
            }
        }
        let (header, rows) = match guard.as_ref() {
            None => {
                let message = if let Some(m) = &a.member {
                    format!("No connection to member {m} is available")
                } else if let Some(r) = a.role {
                    // Patroni formats the role with `!r`, which quotes it.
                    format!("No connection to role '{}' is available", r.as_str())
                } else {
                    "No connection is available".to_string()
                };
                error_rows(message)
            }
            Some(c) => match patroni_postgres::adhoc::simple_query_text(c, &sql).await {
                Ok(result) => {
                    let rows = result
                        .rows
                        .into_iter()
                        .map(|r| {
                            r.iter()
                                .enumerate()
                                .map(|(i, v)| v.as_deref().map_or(Value::Null, |t| typed(t, result.types.get(i))))
                                .collect()
                        })
                        .collect();
                    (result.columns, rows)
                }
                Err(e) => {
                    *guard = None;
                    error_rows(format!("ERROR, SQLSTATE: {}", db_message(e).replace('\n', " ")))
                }
            },
        };
        print_rows(header, rows, a.fmt, &a.delimiter);
        Ok(())
    })
    .await
}

/// A text value as the Python value psycopg would have returned would print: numbers and booleans typed,
/// time zones as `+00:00`.
fn typed(text: &str, ty: Option<&tokio_postgres::types::Type>) -> Value {
    use tokio_postgres::types::Type;
    let Some(ty) = ty else { return Value::from(text) };
    match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
            text.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(text))
        }
        Type::FLOAT4 | Type::FLOAT8 => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::from(text)),
        Type::BOOL => Value::Bool(text == "t"),
        Type::TIMESTAMPTZ | Type::TIMETZ => {
            let b = text.as_bytes();
            let n = b.len();
            // PostgreSQL prints `+00`, Python `+00:00`.
            if n > 3 && (b[n - 3] == b'+' || b[n - 3] == b'-') && b[n - 2].is_ascii_digit() && b[n - 1].is_ascii_digit()
            {
                Value::from(format!("{text}:00"))
            } else {
                Value::from(text)
            }
        }
        _ => Value::from(text),
    }
}

/// The password for `host:port:db:user` from `$PGPASSFILE` or `~/.pgpass`, as libpq looks it up.
fn pgpass_lookup(host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let path = std::env::var("PGPASSFILE")
        .ok()
        .filter(|p| !p.is_empty())
        .or_else(|| std::env::var("HOME").ok().map(|h| format!("{h}/.pgpass")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let port = port.to_string();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(ch) = chars.next() {
            match ch {
                '\\' => cur.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        let ok = |f: &str, v: &str| f == "*" || f == v;
        if ok(&fields[0], host) && ok(&fields[1], &port) && ok(&fields[2], db) && ok(&fields[3], user) {
            return Some(fields[4].clone());
        }
    }
    None
}

fn print_rows(header: Option<Vec<String>>, rows: Vec<Vec<Value>>, fmt: Format, delimiter: &str) {
    let table = Table { columns: header.unwrap_or_default(), rows, right: vec![], title: String::new() };
    print!("{}", render(&table, fmt, delimiter));
}
