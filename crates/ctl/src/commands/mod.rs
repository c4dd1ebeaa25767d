//! The commands. Reads go to the DCS directly; actions go to the members' REST APIs, as Patroni does.

mod cluster_role;
mod config;
mod failover;
mod member_actions;
mod query;
mod read;

use chrono::{DateTime, FixedOffset, Local, TimeZone};
use patroni_api::client::ApiResponse;
use patroni_dcs::{Cluster, Dcs, Member};

use crate::cli::{Command, Role};
use crate::context::{Ctl, CtlError, CtlResult};
use crate::members::render_members;
use crate::output::Format;

/// Runs one command.
pub async fn run(ctl: &Ctl, command: Command) -> CtlResult<()> {
    match command {
        Command::Dsn { cluster_name, group, role, member } => read::dsn(ctl, cluster_name, group, role, member).await,
        Command::Query {
            cluster_name,
            group,
            fmt,
            file,
            password,
            username,
            watch,
            role,
            member,
            delimiter,
            command,
            dbname,
        } => {
            query::query(
                ctl,
                query::QueryArgs {
                    cluster_name,
                    group,
                    fmt: fmt.format(),
                    file,
                    password,
                    username,
                    watch: watch.interval(),
                    role,
                    member,
                    delimiter,
                    command,
                    dbname,
                },
            )
            .await
        }
        Command::Remove { cluster_name, group, fmt } => read::remove(ctl, cluster_name, group, fmt.format()).await,
        Command::Reload { cluster_name, member_names, group, role, force } => {
            member_actions::reload(ctl, cluster_name, member_names, group, role, force).await
        }
        Command::Restart {
            cluster_name,
            member_names,
            group,
            role,
            any,
            scheduled,
            pg_version,
            pending,
            timeout,
            force,
        } => {
            member_actions::restart(
                ctl,
                member_actions::RestartArgs {
                    cluster_name,
                    member_names,
                    group,
                    role,
                    any,
                    scheduled,
                    pg_version,
                    pending,
                    timeout,
                    force,
                },
            )
            .await
        }
        Command::Reinit { cluster_name, member_names, group, force, from_leader, wait } => {
            member_actions::reinit(ctl, cluster_name, member_names, group, force, from_leader, wait).await
        }
        Command::Failover { cluster_name, group, leader, candidate, force } => {
            let action = if leader.is_some() { "switchover" } else { "failover" };
            failover::failover_or_switchover(ctl, action, cluster_name, group, candidate, force, leader, None).await
        }
        Command::Switchover { cluster_name, group, leader, candidate, scheduled, force } => {
            failover::failover_or_switchover(
                ctl,
                "switchover",
                cluster_name,
                group,
                candidate,
                force,
                leader,
                scheduled,
            )
            .await
        }
        Command::List { cluster_names, group, extended, timestamp, fmt, watch } => {
            read::list(ctl, cluster_names, group, extended, timestamp, fmt.format(), watch.interval()).await
        }
        Command::Topology { cluster_names, group, watch } => {
            read::list(ctl, cluster_names, group, false, false, Format::Topology, watch.interval()).await
        }
        Command::Flush { args, group, role, force } => member_actions::flush(ctl, args, group, role, force).await,
        Command::Pause { cluster_name, group, wait } => read::toggle_pause(ctl, cluster_name, group, true, wait).await,
        Command::Resume { cluster_name, group, wait } => {
            read::toggle_pause(ctl, cluster_name, group, false, wait).await
        }
        Command::EditConfig { cluster_name, group, quiet, kvpairs, pgkvpairs, apply, replace, force } => {
            config::edit_config(
                ctl,
                config::EditArgs { cluster_name, group, quiet, kvpairs, pgkvpairs, apply, replace, force },
            )
            .await
        }
        Command::ShowConfig { cluster_name, group } => config::show_config(ctl, cluster_name, group).await,
        Command::Version { cluster_name, member_names, group } => {
            read::version(ctl, cluster_name, member_names, group).await
        }
        Command::DemoteCluster { cluster_name, force, host, port, restore_command, primary_slot_name } => {
            let standby = cluster_role::standby_config(host, port, restore_command, primary_slot_name)?;
            cluster_role::change_cluster_role(ctl, cluster_name, force, Some(standby)).await
        }
        Command::PromoteCluster { cluster_name, force } => {
            cluster_role::change_cluster_role(ctl, cluster_name, force, None).await
        }
        Command::History { cluster_name, group, fmt } => read::history(ctl, cluster_name, group, fmt.format()).await,
    }
}

/// Reads the cluster, turning DCS failures into a clear error.
pub(crate) async fn get_cluster(dcs: &dyn Dcs) -> CtlResult<Cluster> {
    dcs.get_cluster().await.map_err(|e| CtlError::new(e.to_string()))
}

/// Prints the member table (pretty) of one cluster, as every action does before asking.
pub(crate) fn output_members(cluster: &Cluster, name: &str, fmt: Format) {
    print!("{}", render_members(cluster, name, false, fmt));
}

/// Members with `role` (Patroni's `get_all_members`): the leader for leader-ish roles, everyone else for
/// replica roles, everyone for `any`.
pub(crate) fn members_with_role(cluster: &Cluster, role: Role) -> Vec<Member> {
    match role {
        Role::Leader | Role::Primary | Role::StandbyLeader => {
            let Some(leader) = &cluster.leader else { return vec![] };
            let data_role = leader.member.data.role.as_deref();
            let ok = match role {
                Role::Leader => true,
                Role::StandbyLeader => !matches!(data_role, Some("primary" | "master")),
                _ => data_role != Some("standby_leader"),
            };
            if ok && !leader.name.is_empty() {
                vec![leader.member.clone()]
            } else {
                vec![]
            }
        }
        Role::Any => cluster.members.clone(),
        Role::Replica | Role::Standby => {
            let leader = cluster.leader_name();
            cluster.members.iter().filter(|m| Some(m.name.as_str()) != leader).cloned().collect()
        }
    }
}

/// The first member with `role` or named `member` (`--role` and `--member` exclude each other).
pub(crate) fn any_member(cluster: &Cluster, role: Option<Role>, member: Option<&str>) -> CtlResult<Option<Member>> {
    let role = match (member, role) {
        (Some(_), Some(_)) => return Err(CtlError::new("--role and --member are mutually exclusive options")),
        (Some(_), None) => Role::Any,
        (None, r) => r.unwrap_or(Role::Leader),
    };
    Ok(members_with_role(cluster, role).into_iter().find(|m| member.is_none_or(|n| m.name == n)))
}

/// Members with an API URL, leader first.
pub(crate) fn members_leader_first(cluster: &Cluster) -> Vec<Member> {
    let mut out = Vec::new();
    let leader = cluster.leader.as_ref().filter(|l| l.member.api_url().is_some());
    if let Some(l) = leader {
        out.push(l.member.clone());
    }
    for m in &cluster.members {
        if m.api_url().is_some() && Some(m.name.as_str()) != leader.map(|l| l.name.as_str()) {
            out.push(m.clone());
        }
    }
    out
}

/// The REST API URL of a member, or an error naming it.
pub(crate) fn api_url(member: &Member) -> CtlResult<String> {
    member
        .api_url()
        .map(str::to_owned)
        .ok_or_else(|| CtlError::new(format!("Member {} has no REST API URL registered in the DCS", member.name)))
}

/// Prints `Failed: …` for an error answer or `Success: …`; true on success.
pub(crate) fn check_response(r: &ApiResponse, member: &str, action: &str, silent_success: bool) -> bool {
    if r.status >= 400 {
        println!("Failed: {action} for member {member}, status code={}, ({})", r.status, r.body);
        false
    } else {
        if !silent_success {
            println!("Success: {action} for member {member}");
        }
        true
    }
}

/// Local time as patronictl prints it: `timestamp(6)` is `2023-09-12 11:52:27.50978`, `timestamp(0)` has no fraction.
pub(crate) fn timestamp(precision: usize) -> String {
    let now = Local::now();
    let full = now.format("%Y-%m-%d %H:%M:%S.%6f").to_string();
    // Python: strftime('%Y-%m-%d %H:%M:%S.%f')[:precision - 7]
    let cut = full.len() - (7 - precision.min(6));
    full[..cut].to_string()
}

/// `--scheduled`: `None` for now (or nothing), else the timestamp (local time zone when it has none).
pub(crate) fn parse_scheduled(s: Option<&str>) -> CtlResult<Option<DateTime<FixedOffset>>> {
    let Some(s) = s.map(str::trim).filter(|s| !s.is_empty() && *s != "now") else { return Ok(None) };
    let bad = || {
        CtlError::new(format!(
            "Unable to parse scheduled timestamp ({s}). It should be in an unambiguous format (e.g. ISO 8601)"
        ))
    };
    let (naive, offset) = patroni_pycompat::parse_datetime(s).ok_or_else(bad)?;
    match offset {
        Some(o) => naive.and_local_timezone(o).single().map(Some).ok_or_else(bad),
        // Without an offset the time is local, as dateutil reads it for patronictl.
        None => Local.from_local_datetime(&naive).earliest().map(|d| Some(d.fixed_offset())).ok_or_else(bad),
    }
}

pub(crate) use patroni_pycompat::isoformat;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_timestamps() {
        assert_eq!(parse_scheduled(None).unwrap(), None);
        assert_eq!(parse_scheduled(Some("now")).unwrap(), None);
        let t = parse_scheduled(Some("2023-09-13T18:00-03:00")).unwrap().unwrap();
        assert_eq!(isoformat(&t), "2023-09-13T18:00:00-03:00");
        let t = parse_scheduled(Some("2023-09-13 18:00:00+00:00")).unwrap().unwrap();
        assert_eq!(isoformat(&t), "2023-09-13T18:00:00+00:00");
        let t = parse_scheduled(Some("2023-09-13T18:00:00Z")).unwrap().unwrap();
        assert_eq!(isoformat(&t), "2023-09-13T18:00:00+00:00");
        assert!(parse_scheduled(Some("2023-09-13T18:00")).unwrap().is_some());
        assert!(parse_scheduled(Some("tomorrow"))
            .unwrap_err()
            .0
            .contains("Unable to parse scheduled timestamp (tomorrow)"));
    }

    #[test]
    fn timestamps_are_cut_like_python() {
        assert_eq!(timestamp(0).len(), 19);
        assert_eq!(timestamp(6).len(), 25);
    }
}
