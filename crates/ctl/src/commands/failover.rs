//! `switchover` and `failover`: checks and prompts as patronictl, then `POST /switchover|/failover` on the
//! leader (or the candidate when there is none), falling back to writing the `failover` key.

use super::{api_url, get_cluster, isoformat, output_members, parse_scheduled, timestamp};
use crate::context::{Ctl, CtlError, CtlResult};
use crate::members::dynamic_config;
use crate::output::Format;
use crate::prompt;

fn title(action: &str) -> String {
    let mut c = action.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
pub async fn failover_or_switchover(
    ctl: &Ctl,
    action: &str,
    name: Option<String>,
    group: Option<u32>,
    candidate: Option<String>,
    force: bool,
    switchover_leader: Option<String>,
    scheduled: Option<String>,
) -> CtlResult<()> {
    let name = ctl.cluster_name(name)?;
    let dcs = ctl.dcs(&name, group).await?;
    let cluster = get_cluster(&*dcs).await?;
    println!("Current cluster topology");
    output_members(&cluster, &name, Format::Pretty);

    let config = dynamic_config(&cluster);
    let cluster_leader = cluster.leader_name().map(str::to_owned);
    let mut switchover_leader = switchover_leader;
    if action == "switchover" {
        let Some(leader) = &cluster_leader else { return Err(CtlError::new("This cluster has no leader")) };
        let chosen = match switchover_leader.take() {
            Some(l) => l,
            None if force => leader.clone(),
            None => {
                let p = if config.is_standby_cluster() { "Standby Leader" } else { "Primary" };
                prompt::prompt(p, Some(leader))?
            }
        };
        if &chosen != leader {
            return Err(CtlError::new(format!("Member {chosen} is not the leader of cluster {name}")));
        }
        switchover_leader = Some(chosen);
    }

    let mut candidates: Vec<String> = cluster
        .members
        .iter()
        .filter(|m| Some(&m.name) != cluster_leader.as_ref() && !m.nofailover())
        .map(|m| m.name.clone())
        .collect();
    candidates.sort();
    if candidates.is_empty() {
        return Err(CtlError::new(format!("No candidates found to {action} to")));
    }
    let candidate = match candidate {
        Some(c) => Some(c),
        None if force => None,
        None => {
            let list: Vec<String> = candidates.iter().map(|c| format!("'{c}'")).collect();
            Some(prompt::prompt(&format!("Candidate [{}]", list.join(", ")), Some(""))?)
        }
    }
    .filter(|c| !c.is_empty());
    if action == "failover" && candidate.is_none() {
        return Err(CtlError::new("Failover could be performed only to a specific candidate"));
    }
    if let Some(c) = &candidate {
        if !candidates.contains(c) {
            if Some(c) == cluster_leader.as_ref() {
                return Err(CtlError::new(format!("Member {c} is already the leader of cluster {name}")));
            }
            return Err(CtlError::new(format!(
                "Member {c} does not exist in cluster {name} or is tagged as nofailover"
            )));
        }
        if !force
            && action == "failover"
            && config.synchronous_mode().is_enabled()
            && !cluster.sync.is_empty()
            && !cluster.sync.matches(c, true)
            && !prompt::confirm(&format!("Are you sure you want to failover to the asynchronous node {c}?"))?
        {
            return Err(CtlError::new(format!("Aborting {action}")));
        }
    }

    let mut scheduled_at = None;
    if action == "switchover" {
        let scheduled = match scheduled {
            Some(s) => Some(s),
            None if force => None,
            None => {
                let next_hour = (chrono::Local::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M");
                Some(prompt::prompt(
                    &format!("When should the switchover take place (e.g. {next_hour} ) "),
                    Some("now"),
                )?)
            }
        };
        scheduled_at = parse_scheduled(scheduled.as_deref())?;
        if scheduled_at.is_some() && config.is_paused() {
            return Err(CtlError::new("Can't schedule switchover in the paused state"));
        }
    }
    let scheduled_str = scheduled_at.as_ref().map(isoformat);

    if !force {
        let demote = cluster_leader.as_ref().map(|l| format!(", demoting current leader {l}")).unwrap_or_default();
        if let Some(at) = &scheduled_str {
            if !prompt::confirm(&format!(
                "Are you sure you want to schedule switchover of cluster {name} at {at}{demote}?"
            ))? {
                return Err(CtlError::new(format!("Aborting scheduled {action}")));
            }
        } else if !prompt::confirm(&format!("Are you sure you want to {action} cluster {name}{demote}?"))? {
            return Err(CtlError::new(format!("Aborting {action}")));
        }
    }

    let target = match &cluster.leader {
        Some(l) => Some(l.member.clone()),
        None => candidate.as_ref().and_then(|c| cluster.get_member(c)).cloned(),
    };
    let api = ctl.api()?;
    let answer = match target.as_ref().map(api_url) {
        Some(Ok(url)) => {
            let r = if action == "switchover" {
                api.switchover(
                    &url,
                    switchover_leader.as_deref().unwrap_or(""),
                    candidate.as_deref(),
                    scheduled_str.as_deref(),
                )
                .await
            } else {
                api.failover(&url, candidate.as_deref().unwrap_or(""), switchover_leader.as_deref()).await
            };
            r.map_err(|e| e.to_string())
        }
        Some(Err(e)) => Err(e.0),
        None => Err("no member to send the request to".into()),
    };
    let mut shown = cluster;
    match answer {
        Ok(r) if r.status == 200 || r.status == 202 => {
            shown = get_cluster(&*dcs).await?;
            println!("{} {}", timestamp(6), r.body);
        }
        Ok(r) => {
            // Patroni reports the refusal and exits 0 without showing the topology again.
            println!("{} failed, details: {}, {}", title(action), r.status, r.body);
            return Ok(());
        }
        Err(e) => {
            eprintln!("{e}");
            println!("{} Could not {action} using Patroni api, falling back to DCS", timestamp(6));
            dcs.manual_failover(switchover_leader.as_deref(), candidate.as_deref(), scheduled_at.as_ref(), None)
                .await
                .map_err(|e| CtlError::new(e.to_string()))?;
        }
    }
    output_members(&shown, &name, Format::Pretty);
    Ok(())
}
