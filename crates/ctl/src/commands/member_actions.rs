//! Actions on selected members through their REST APIs: `reload`, `restart`, `reinit`, `flush`.

use std::time::Duration;

use patroni_dcs::{Cluster, Member};
use rand::seq::SliceRandom;
use serde_json::{Map, Value};

use super::{
    check_response, get_cluster, isoformat, members_leader_first, members_with_role, output_members, parse_scheduled,
    timestamp,
};
use crate::cli::Role;
use crate::context::{Ctl, CtlError, CtlResult};
use crate::members::dynamic_config;
use crate::output::Format;
use crate::prompt;

/// Patroni's `get_members`: shows the cluster, narrows the members by role and names, asks which member when
/// none is given (unless forced), and asks for confirmation when `ask`.
fn get_members(
    cluster: &Cluster,
    name: &str,
    member_names: &[String],
    role: Role,
    force: bool,
    action: &str,
    ask: bool,
) -> CtlResult<Vec<Member>> {
    let members = members_with_role(cluster, role);
    let candidates: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    if member_names.is_empty() && candidates.is_empty() {
        return Err(CtlError::new(format!("{name} cluster doesn't have any members")));
    }
    output_members(cluster, name, Format::Pretty);
    let mut chosen: Vec<String> = if !member_names.is_empty() {
        let c: Vec<String> = member_names.iter().filter(|n| candidates.contains(n)).cloned().collect();
        if c.is_empty() {
            return Err(CtlError::new(format!("No {} among provided members", role.as_str())));
        }
        c
    } else if action != "reinitialize" {
        candidates.clone()
    } else {
        vec![]
    };
    if chosen.is_empty() && !force {
        chosen = vec![prompt::prompt(
            &format!("Which member do you want to {action} [{}]?", candidates.join(", ")),
            Some(""),
        )?];
    }
    for n in &chosen {
        if !candidates.contains(n) {
            return Err(CtlError::new(format!("{n} is not a member of cluster")));
        }
    }
    let selected: Vec<Member> = members.into_iter().filter(|m| chosen.contains(&m.name)).collect();
    if ask {
        confirm_members_action(&selected, force, action, None, false)?;
    }
    Ok(selected)
}

fn confirm_members_action(
    members: &[Member],
    force: bool,
    action: &str,
    scheduled_at: Option<&str>,
    pending: bool,
) -> CtlResult<()> {
    if force {
        return Ok(());
    }
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    match scheduled_at {
        Some(at) => {
            let ok = if pending {
                prompt::confirm(
                    "The nodes needing a restart will be identified at the scheduled time, and might be different \
                     from the ones showing pending restart right now. Is this fine?",
                )?
            } else {
                prompt::confirm(&format!(
                    "Are you sure you want to schedule {action} of members {} at {at}?",
                    names.join(", ")
                ))?
            };
            if !ok {
                return Err(CtlError::new(format!("Aborted scheduled {action}")));
            }
        }
        None => {
            if !prompt::confirm(&format!("Are you sure you want to {action} members {}?", names.join(", ")))? {
                return Err(CtlError::new(format!("Aborted {action}")));
            }
        }
    }
    Ok(())
}

fn api_err(e: impl std::fmt::Display) -> CtlError {
    CtlError::new(e.to_string())
}

fn url_of(m: &Member) -> CtlResult<String> {
    super::api_url(m)
}

pub async fn reload(
    ctl: &Ctl,
    name: String,
    member_names: Vec<String>,
    group: Option<u32>,
    role: Role,
    force: bool,
) -> CtlResult<()> {
    let cluster = get_cluster(&*ctl.dcs(&name, group).await?).await?;
    let members = get_members(&cluster, &name, &member_names, role, force, "reload", true)?;
    let api = ctl.api()?;
    let loop_wait = dynamic_config(&cluster).loop_wait();
    for m in members {
        let r = api.reload(&url_of(&m)?).await.map_err(api_err)?;
        match r.status {
            200 => println!("No changes to apply on member {}", m.name),
            202 => println!(
                "Reload request received for member {} and will be processed within {loop_wait} seconds",
                m.name
            ),
            s => println!("Failed: reload for member {}, status code={s}, ({})", m.name, r.body),
        }
    }
    // A refusal is reported on its line and the command still succeeds, as Patroni's does: scripts read the
    // lines, not the exit status.
    Ok(())
}

/// Checks `--pg-version` as Patroni does: `X.Y` (from 10) or `X.Y.Z`.
pub(crate) fn check_pg_version(v: &str) -> CtlResult<()> {
    let parts: Result<Vec<u64>, _> = v.split('.').map(str::parse::<u64>).collect();
    let Ok(parts) = parts else { return Err(CtlError::new(format!("Invalid PostgreSQL version: {v}"))) };
    if parts.len() < 2 || (parts.len() == 2 && parts[0] < 10) || parts.len() > 3 {
        return Err(CtlError::new(format!("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {v}")));
    }
    Ok(())
}

pub struct RestartArgs {
    pub cluster_name: String,
    pub member_names: Vec<String>,
    pub group: Option<u32>,
    pub role: Role,
    pub any: bool,
    pub scheduled: Option<String>,
    pub pg_version: Option<String>,
    pub pending: bool,
    pub timeout: Option<String>,
    pub force: bool,
}

pub async fn restart(ctl: &Ctl, a: RestartArgs) -> CtlResult<()> {
    let name = a.cluster_name;
    let cluster = get_cluster(&*ctl.dcs(&name, a.group).await?).await?;
    let mut members = get_members(&cluster, &name, &a.member_names, a.role, a.force, "restart", false)?;
    let scheduled = match a.scheduled {
        Some(s) => Some(s),
        None if a.force => None,
        None => {
            let next_hour = (chrono::Local::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M");
            Some(prompt::prompt(&format!("When should the restart take place (e.g. {next_hour}) "), Some("now"))?)
        }
    };
    let scheduled_at = parse_scheduled(scheduled.as_deref())?;
    let mut content = Map::new();
    if a.pending {
        content.insert("restart_pending".into(), Value::Bool(true));
        // A scheduled restart decides at its time which members still need it.
        if scheduled_at.is_none() {
            members.retain(|m| m.data.pending_restart.unwrap_or(false));
        }
    }
    if a.any {
        members.shuffle(&mut rand::thread_rng());
        members.truncate(1);
    }
    let scheduled_str = scheduled_at.as_ref().map(isoformat);
    confirm_members_action(&members, a.force, "restart", scheduled_str.as_deref(), a.pending)?;
    let version = match a.pg_version {
        Some(v) => Some(v),
        None if a.force => None,
        None => {
            Some(prompt::prompt("Restart if the PostgreSQL version is less than provided (e.g. 9.5.2) ", Some(""))?)
        }
    }
    .filter(|v| !v.is_empty());
    if let Some(v) = &version {
        check_pg_version(v)?;
        content.insert("postgres_version".into(), Value::from(v.as_str()));
    }
    if let Some(at) = &scheduled_str {
        if dynamic_config(&cluster).is_paused() {
            return Err(CtlError::new("Can't schedule restart in the paused state"));
        }
        content.insert("schedule".into(), Value::from(at.as_str()));
    }
    if let Some(t) = &a.timeout {
        content.insert("timeout".into(), Value::from(t.as_str()));
    }
    let api = ctl.api()?;
    for m in members {
        let url = url_of(&m)?;
        if content.contains_key("schedule") && a.force && m.data.scheduled_restart.is_some() {
            let r = api.cancel_restart(&url).await.map_err(api_err)?;
            check_response(&r, &m.name, "flush scheduled restart", true);
        }
        let r = api.restart(&url, &content).await.map_err(api_err)?;
        match r.status {
            200 => println!("Success: restart on member {}", m.name),
            202 => println!("Success: restart scheduled on member {}", m.name),
            409 => println!("Failed: another restart is already scheduled on member {}", m.name),
            s => println!("Failed: restart for member {}, status code={s}, ({})", m.name, r.body),
        }
    }
    // Refusals are reported per member and, as in Patroni, do not change the exit status.
    Ok(())
}

pub async fn reinit(
    ctl: &Ctl,
    name: String,
    member_names: Vec<String>,
    group: Option<u32>,
    force: bool,
    from_leader: bool,
    wait: bool,
) -> CtlResult<()> {
    let cluster = get_cluster(&*ctl.dcs(&name, group).await?).await?;
    let members = get_members(&cluster, &name, &member_names, Role::Replica, force, "reinitialize", true)?;
    let api = ctl.api()?;
    let mut waiting = Vec::new();
    for m in members {
        let url = url_of(&m)?;
        let mut forced = force;
        loop {
            let r = api.reinitialize(&url, forced, from_leader).await.map_err(api_err)?;
            let started = check_response(&r, &m.name, "reinitialize", false);
            if !started
                && r.body.ends_with(" already in progress")
                && !forced
                && prompt::confirm("Do you want to cancel it and reinitialize anyway?")?
            {
                forced = true;
                continue;
            }
            if started && wait {
                waiting.push((m.name.clone(), url.clone()));
            }
            break;
        }
    }
    let mut last: Vec<String> = vec![];
    while !waiting.is_empty() {
        let names: Vec<String> = waiting.iter().map(|(n, _)| n.clone()).collect();
        if names != last {
            println!("Waiting for reinitialize to complete on: {}", names.join(", "));
            last = names;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut still = Vec::new();
        for (n, url) in waiting {
            let state = match api.get(&url, "patroni").await {
                Ok((_, v)) => v.get("state").and_then(Value::as_str).map(str::to_owned),
                Err(_) => Some("creating replica".into()),
            };
            if state.as_deref() != Some("creating replica") {
                println!("Reinitialize is completed on: {n}");
            } else {
                still.push((n, url));
            }
        }
        waiting = still;
    }
    // A member that refused was reported on its `Failed:` line; Patroni exits 0 all the same.
    Ok(())
}

pub async fn flush(ctl: &Ctl, args: Vec<String>, group: Option<u32>, role: Role, force: bool) -> CtlResult<()> {
    let (Some(name), Some(target)) = (args.first(), args.last()) else {
        return Err(CtlError::new("Missing argument 'CLUSTER_NAME'"));
    };
    if target != "restart" && target != "switchover" {
        return Err(CtlError::usage(
            "Usage: patronictl flush [OPTIONS] CLUSTER_NAME [MEMBER_NAMES]...\n                        \
             {restart|switchover}\nTry 'patronictl flush --help' for help.",
            format!("Invalid value for '{{restart|switchover}}': '{target}' is not one of 'restart', 'switchover'."),
        ));
    }
    let member_names: Vec<String> = args[1..args.len() - 1].to_vec();
    let dcs = ctl.dcs(name, group).await?;
    let cluster = get_cluster(&*dcs).await?;
    let api = ctl.api()?;
    if target == "restart" {
        for m in get_members(&cluster, name, &member_names, role, force, "flush", true)? {
            if m.data.scheduled_restart.as_ref().is_some_and(|v| !v.is_null()) {
                let r = api.cancel_restart(&url_of(&m)?).await.map_err(api_err)?;
                check_response(&r, &m.name, "flush scheduled restart", false);
            } else {
                println!("No scheduled restart for member {}", m.name);
            }
        }
        return Ok(());
    }
    let Some(failover) = cluster.failover.as_ref().filter(|f| f.scheduled_at.is_some()) else {
        println!("No pending scheduled switchover");
        return Ok(());
    };
    for m in members_leader_first(&cluster) {
        let Some(url) = m.api_url() else { continue };
        match api.cancel_switchover(url).await {
            Ok(r) if r.status == 200 => {
                println!("Success: {}", r.body);
                return Ok(());
            }
            // No switchover to cancel any more: said on the line, not in the exit status (as Patroni).
            Ok(r) if r.status == 404 => {
                println!("Failed: {}", r.body);
                return Ok(());
            }
            Ok(r) => println!("Failed: member={}, status_code={}, ({})", m.name, r.status, r.body),
            Err(e) => {
                eprintln!("{e}");
                eprintln!("Member {} is not accessible", m.name);
            }
        }
    }
    println!("{} Could not find any accessible member of cluster {name}", timestamp(6));
    dcs.manual_failover(Some(""), Some(""), None, Some(failover.version)).await.map_err(api_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_version_checks() {
        assert!(check_pg_version("9.5.3").is_ok());
        assert!(check_pg_version("10.1").is_ok());
        assert!(check_pg_version("10").unwrap_err().0.contains("X.Y or X.Y.Z is accepted: 10"));
        assert!(check_pg_version("9.6").is_err());
        assert_eq!(check_pg_version("a.b.c").unwrap_err().0, "Invalid PostgreSQL version: a.b.c");
    }
}
