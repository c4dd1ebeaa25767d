//! `list`/`topology`, `history`, `dsn`, `version`, `pause`/`resume` and `remove`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use patroni_dcs::Dcs;
use serde_json::Value;

use super::{any_member, get_cluster, members_leader_first, output_members, timestamp};
use crate::cli::Role;
use crate::context::{Ctl, CtlError, CtlResult};
use crate::members::{dynamic_config, render_members};
use crate::output::{render, Format};
use crate::prompt;

/// `click.clear()`: only on a terminal.
fn clear_screen() {
    let mut out = std::io::stdout();
    if out.is_terminal() {
        let _ = out.write_all(b"\x1b[2J\x1b[1;1H");
        let _ = out.flush();
    }
}

/// Runs `body` once, or every `interval` seconds (clearing the screen first when `clear`) until interrupted.
pub(crate) async fn watching<F, Fut>(interval: Option<f64>, clear: bool, mut body: F) -> CtlResult<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = CtlResult<()>>,
{
    let Some(secs) = interval.filter(|s| s.is_finite() && *s > 0.0) else { return body().await };
    loop {
        let started = Instant::now();
        if clear {
            clear_screen();
        }
        body().await?;
        let _ = std::io::stdout().flush();
        let period = Duration::from_secs_f64(secs);
        tokio::time::sleep(period.saturating_sub(started.elapsed())).await;
    }
}

pub async fn list(
    ctl: &Ctl,
    mut names: Vec<String>,
    group: Option<u32>,
    extended: bool,
    ts: bool,
    fmt: Format,
    interval: Option<f64>,
) -> CtlResult<()> {
    if names.is_empty() {
        match &ctl.config.scope {
            Some(s) => names.push(s.clone()),
            None => {
                eprintln!(
                    "{} - WARNING - Listing members: No cluster names were provided",
                    chrono::Local::now().format("%Y-%m-%d %H:%M:%S,%3f")
                );
                return Ok(());
            }
        }
    }
    let mut stores = Vec::new();
    for n in &names {
        stores.push((n.clone(), ctl.dcs(n, group).await?));
    }
    watching(interval, true, || async {
        let mut out = String::new();
        if ts {
            out.push_str(&timestamp(0));
            out.push('\n');
        }
        for (name, dcs) in &stores {
            let cluster = get_cluster(&**dcs).await?;
            out.push_str(&render_members(&cluster, name, extended, fmt));
        }
        print!("{out}");
        Ok(())
    })
    .await
}

pub async fn history(ctl: &Ctl, name: Option<String>, group: Option<u32>, fmt: Format) -> CtlResult<()> {
    let name = ctl.cluster_name(name)?;
    let cluster = get_cluster(&*ctl.dcs(&name, group).await?).await?;
    let table = crate::members::history_table(&cluster);
    print!("{}", render(&table, fmt, "\t"));
    Ok(())
}

pub async fn dsn(
    ctl: &Ctl,
    name: Option<String>,
    group: Option<u32>,
    role: Option<Role>,
    member: Option<String>,
) -> CtlResult<()> {
    let name = ctl.cluster_name(name)?;
    let cluster = get_cluster(&*ctl.dcs(&name, group).await?).await?;
    let m = any_member(&cluster, role, member.as_deref())?
        .ok_or_else(|| CtlError::new("Can not find a suitable member"))?;
    let (host, port) = conn_host_port(m.conn_url().unwrap_or(""));
    println!("host={} port={}", host.unwrap_or_else(|| "None".into()), port);
    Ok(())
}

/// Host and port of a member's `conn_url` (port 5432 when absent), as libpq keywords.
pub(crate) fn conn_host_port(conn_url: &str) -> (Option<String>, u16) {
    match url::Url::parse(conn_url) {
        Ok(u) => (
            u.host_str().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_lowercase()),
            u.port().unwrap_or(5432),
        ),
        Err(_) => (None, 5432),
    }
}

/// `140008` → `14.8`, `90624` → `9.6.24`.
pub(crate) fn format_pg_version(v: u64) -> String {
    patroni_postgres::PgVersion(u32::try_from(v).unwrap_or(u32::MAX)).to_string()
}

pub async fn version(ctl: &Ctl, name: Option<String>, member_names: Vec<String>, group: Option<u32>) -> CtlResult<()> {
    println!("patronictl version {}", crate::VERSION);
    let Some(name) = name else { return Ok(()) };
    println!();
    let cluster = get_cluster(&*ctl.dcs(&name, group).await?).await?;
    let api = ctl.api()?;
    for m in &cluster.members {
        let Some(url) = m.api_url() else { continue };
        if !member_names.is_empty() && !member_names.contains(&m.name) {
            continue;
        }
        match api.get(url, "patroni").await {
            Ok((_, v)) => {
                let version =
                    v.get("patroni").and_then(|p| p.get("version")).map_or("None".into(), crate::output::py_str);
                let pg = v.get("server_version").and_then(Value::as_u64).filter(|v| *v > 0);
                let pg = pg.map(|p| format!(" PostgreSQL {}", format_pg_version(p))).unwrap_or_default();
                println!("{}: Patroni {version}{pg}", m.name);
            }
            Err(e) => println!("{}: failed to get version: {e}", m.name),
        }
    }
    Ok(())
}

pub async fn toggle_pause(
    ctl: &Ctl,
    name: Option<String>,
    group: Option<u32>,
    paused: bool,
    wait: bool,
) -> CtlResult<()> {
    let name = ctl.cluster_name(name)?;
    let dcs = ctl.dcs(&name, group).await?;
    let cluster = get_cluster(&*dcs).await?;
    if dynamic_config(&cluster).is_paused() == paused {
        return Err(CtlError::new(format!("Cluster is {} paused", if paused { "already" } else { "not" })));
    }
    let api = ctl.api()?;
    let (verb, done) = if paused { ("pause", "paused") } else { ("resume", "resumed") };
    let body = serde_json::json!({ "pause": if paused { Value::Bool(true) } else { Value::Null } });
    for m in members_leader_first(&cluster) {
        let Some(url) = m.api_url() else { continue };
        let r = match api.patch_config(url, &body).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                eprintln!("Member {} is not accessible", m.name);
                continue;
            }
        };
        if r.status == 200 {
            if wait {
                return wait_until_pause_is_applied(&*dcs, paused, &cluster).await;
            }
            println!("Success: cluster management is {done}");
            return Ok(());
        }
        // Patroni asks the first reachable member only, reports its refusal and exits 0.
        println!("Failed: {verb} cluster management status code={}, ({})", r.status, r.body);
        return Ok(());
    }
    Err(CtlError::new("Can not find accessible cluster member"))
}

async fn wait_until_pause_is_applied(dcs: &dyn Dcs, paused: bool, old: &patroni_dcs::Cluster) -> CtlResult<()> {
    let verb = if paused { "pause" } else { "resume" };
    println!("'{verb}' request sent, waiting until it is recognized by all nodes");
    let _ = std::io::stdout().flush();
    let watched: Vec<(String, i64)> =
        old.members.iter().filter(|m| m.api_url().is_some()).map(|m| (m.name.clone(), m.version)).collect();
    let loop_wait = dynamic_config(old).loop_wait().max(1);
    let deadline = Instant::now() + Duration::from_secs((loop_wait + 1) as u64);
    let cluster = loop {
        let cluster = get_cluster(dcs).await?;
        let done = cluster
            .members
            .iter()
            .filter(|m| watched.iter().any(|(n, _)| *n == m.name))
            .all(|m| m.data.pause.unwrap_or(false) == paused);
        if done {
            println!("Success: cluster management is {}", if paused { "paused" } else { "resumed" });
            return Ok(());
        }
        if Instant::now() >= deadline {
            break cluster;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let remaining: Vec<&str> = cluster
        .members
        .iter()
        .filter(|m| {
            m.data.pause.unwrap_or(false) != paused && watched.iter().any(|(n, v)| *n == m.name && *v != m.version)
        })
        .map(|m| m.name.as_str())
        .collect();
    if remaining.is_empty() {
        println!("Success: cluster management is {}", if paused { "paused" } else { "resumed" });
        Ok(())
    } else {
        // The request was accepted; stragglers are named and, as in Patroni, the exit status stays 0.
        println!("{} members didn't recognized pause state after {loop_wait} seconds", remaining.join(", "));
        Ok(())
    }
}

pub async fn remove(ctl: &Ctl, name: String, group: Option<u32>, fmt: Format) -> CtlResult<()> {
    let dcs = ctl.dcs(&name, group).await?;
    let cluster = get_cluster(&*dcs).await?;
    output_members(&cluster, &name, fmt);
    let confirm = prompt::prompt("Please confirm the cluster name to remove", None)?;
    if confirm != name {
        return Err(CtlError::new("Cluster names specified do not match"));
    }
    let message = "Yes I am aware";
    let confirm = prompt::prompt(
        &format!("You are about to remove all information in DCS for {name}, please type: \"{message}\""),
        None,
    )?;
    if confirm != message {
        return Err(CtlError::new(format!("You did not exactly type \"{message}\"")));
    }
    if let Some(leader) = cluster.leader.as_ref().filter(|l| !l.name.is_empty()) {
        let confirm =
            prompt::prompt("This cluster currently is healthy. Please specify the leader name to continue", None)?;
        if confirm != leader.name {
            return Err(CtlError::new("You did not specify the current leader of the cluster"));
        }
    }
    dcs.delete_cluster().await.map_err(|e| CtlError::new(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_versions() {
        assert_eq!(format_pg_version(90624), "9.6.24");
        assert_eq!(format_pg_version(100000), "10.0");
        assert_eq!(format_pg_version(140008), "14.8");
    }

    #[test]
    fn conn_urls() {
        assert_eq!(conn_host_port("postgres://127.0.0.1:5433/postgres"), (Some("127.0.0.1".into()), 5433));
        assert_eq!(conn_host_port("postgres://db1/postgres"), (Some("db1".into()), 5432));
        assert_eq!(conn_host_port("postgres://[::1]:5434/postgres"), (Some("::1".into()), 5434));
    }
}
