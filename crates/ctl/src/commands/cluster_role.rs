//! `demote-cluster` and `promote-cluster`: turn the cluster into a standby cluster (or back) by patching
//! `standby_cluster` through the leader's REST API, then follow the leader until it runs in the new role.

use std::time::Duration;

use serde_json::{Map, Value};

use super::{api_url, get_cluster, output_members};
use crate::context::{Ctl, CtlError, CtlResult};
use crate::output::Format;
use crate::prompt;

fn now() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `standby_config` `Some` demotes (to a standby cluster following it), `None` promotes.
pub async fn change_cluster_role(
    ctl: &Ctl,
    name: Option<String>,
    force: bool,
    standby_config: Option<Map<String, Value>>,
) -> CtlResult<()> {
    let name = ctl.cluster_name(name)?;
    let demote = standby_config.is_some();
    let action = if demote { "demot" } else { "promot" };
    let target_role = if demote { "standby_leader" } else { "primary" };
    let dcs = ctl.dcs(&name, None).await?;
    let cluster = get_cluster(&*dcs).await?;
    let Some(leader) = cluster.leader.clone() else {
        return Err(CtlError::new(format!("Cluster has no leader, {action}ion is not possible")));
    };
    if leader.member.data.role.as_deref() == Some(target_role) {
        return Err(CtlError::new("Cluster is already in the required state"));
    }
    println!("Current cluster topology");
    output_members(&cluster, &name, Format::Pretty);
    if !force && !prompt::confirm(&format!("Are you sure you want to {action}e {name} cluster?"))? {
        return Err(CtlError::new(format!("Aborted cluster {action}ion")));
    }
    let body = serde_json::json!({ "standby_cluster": standby_config.map_or(Value::Null, Value::Object) });
    let url = api_url(&leader.member)?;
    let r = ctl
        .api()?
        .patch_config(&url, &body)
        .await
        .map_err(|e| CtlError::new(format!("Failed to {action}e {name} cluster: {e}")))?;
    if r.status != 200 {
        return Err(CtlError::new(format!(
            "Failed to {action}e {name} cluster: /config PATCH status code={}, ({})",
            r.status, r.body
        )));
    }
    let cluster = loop {
        let cluster = get_cluster(&*dcs).await?;
        let unlocked = cluster.is_unlocked();
        let role = cluster.leader.as_ref().and_then(|l| l.member.data.role.clone());
        let state = cluster.leader.as_ref().and_then(|l| l.member.data.state.clone());
        let old_state = cluster.get_member(&leader.name).and_then(|m| m.data.state.clone());
        if !unlocked
            && role.as_deref() == Some(target_role)
            && state.as_deref() == Some("running")
            && (!demote || old_state.as_deref() == Some("running"))
        {
            println!("{} cluster is successfully {action}ed", now());
            break cluster;
        }
        let py = |v: &Option<String>| v.clone().unwrap_or_else(|| "None".into());
        let mut parts = vec![
            format!("{} cluster is unlocked: {}", now(), if unlocked { "True" } else { "False" }),
            format!("leader role: {}", py(&role)),
            format!("leader state: {}", py(&state)),
        ];
        if demote && cluster.leader_name().is_some_and(|l| l != leader.name) {
            if let Some(s) = &old_state {
                parts.push(format!("previous leader state: '{s}'"));
            }
        }
        println!("{}", parts.join(", "));
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    output_members(&cluster, &name, Format::Pretty);
    Ok(())
}

/// The `standby_cluster` section `demote-cluster` writes.
pub fn standby_config(
    host: Option<String>,
    port: Option<u16>,
    restore_command: Option<String>,
    primary_slot_name: Option<String>,
) -> CtlResult<Map<String, Value>> {
    if host.is_none() && port.is_none() && restore_command.is_none() {
        return Err(CtlError::new("At least --host, --port or --restore-command should be specified"));
    }
    let mut m = Map::new();
    if let Some(h) = host.filter(|h| !h.is_empty()) {
        m.insert("host".into(), Value::from(h));
    }
    if let Some(p) = port.filter(|p| *p != 0) {
        m.insert("port".into(), Value::from(p));
    }
    if let Some(s) = primary_slot_name.filter(|s| !s.is_empty()) {
        m.insert("primary_slot_name".into(), Value::from(s));
    }
    if let Some(r) = restore_command.filter(|r| !r.is_empty()) {
        m.insert("restore_command".into(), Value::from(r));
    }
    Ok(m)
}
