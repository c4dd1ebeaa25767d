//! The standby leader's recovery: following the primary of another cluster (`standby_cluster`).
//!
//! A standby leader streams from `standby_cluster.host:port` (through `primary_slot_name` when set) and/or restores
//! with `standby_cluster.restore_command`; `archive_cleanup_command` and `recovery_min_apply_delay` come from the
//! same section and override `recovery_conf`. Its role is `standby_leader`, which callbacks report.

use crate::conf::RecoverySettings;
use crate::conninfo::ConnParams;
use crate::error::Result;
use crate::instance::{slot_name_from_member_name, Postgres, Role};
use crate::postmaster::StartOutcome;
use crate::CallbackAction;

/// The remote primary a standby cluster follows: the `standby_cluster` section of the dynamic configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemotePrimary {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub primary_slot_name: Option<String>,
    /// How to create the standby leader (and, in this cluster, its replicas); empty means `basebackup`.
    pub create_replica_methods: Vec<String>,
    pub restore_command: Option<String>,
    pub archive_cleanup_command: Option<String>,
    /// As PostgreSQL reads it (`"1h"`, or milliseconds).
    pub recovery_min_apply_delay: Option<String>,
}

impl RemotePrimary {
    /// The remote of a `standby_cluster` section; `None` when the cluster is not a standby cluster.
    pub fn from_config(dynamic: &patroni_config::DynamicConfig) -> Option<RemotePrimary> {
        if !dynamic.is_standby_cluster() {
            return None;
        }
        let sc = dynamic.standby_cluster.as_ref()?;
        let delay = sc.recovery_min_apply_delay.as_ref().and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        Some(RemotePrimary {
            host: sc.host.clone(),
            port: sc.port,
            primary_slot_name: sc.primary_slot_name.clone(),
            create_replica_methods: sc.create_replica_methods.clone().unwrap_or_default(),
            restore_command: sc.restore_command.clone(),
            archive_cleanup_command: sc.archive_cleanup_command.clone(),
            recovery_min_apply_delay: delay,
        })
    }

    /// Where to connect (host and port), when the remote is reachable by streaming at all.
    pub fn conn_params(&self) -> Option<ConnParams> {
        if self.host.as_deref().is_none_or(str::is_empty) && self.port.is_none() {
            return None;
        }
        let mut p = ConnParams::new();
        if let Some(h) = self.host.as_deref().filter(|h| !h.is_empty()) {
            p.set("host", h);
        }
        if let Some(port) = self.port {
            p.set("port", port.to_string());
        }
        Some(p)
    }
}

/// Whether a change of role from `before` to `after` is reported as `on_role_change` rather than a start or
/// restart: a former primary (or a demoted one) coming back in recovery, or a standby leader becoming a replica of
/// its cluster and the other way round, as Patroni does.
pub(crate) fn role_changed(before: Role, after: Role) -> bool {
    matches!(
        (before, after),
        (Role::Primary | Role::Demoted, Role::Replica | Role::StandbyLeader)
            | (Role::StandbyLeader, Role::Replica)
            | (Role::Replica, Role::StandbyLeader)
    )
}

impl Postgres {
    /// Recovery settings of the standby leader following `remote`.
    pub fn standby_leader_settings(&self, remote: &RemotePrimary) -> RecoverySettings {
        let primary = remote.conn_params().map(|p| {
            let mut c = crate::conf::primary_conninfo(
                p.get("host").unwrap_or(""),
                p.get("port").and_then(|v| v.parse().ok()).unwrap_or(5432),
                &self.settings.replication,
                &self.settings.name,
                self.version,
            );
            if p.get("host").is_none() {
                // Only a port: libpq's default host (the local socket), as the remote's conn_kwargs say.
                c.remove("host");
            }
            c.set("dbname", self.settings.database.as_str());
            c
        });
        let mut recovery_conf = self.server.recovery.clone();
        recovery_conf.extend(self.settings.recovery_conf.clone());
        let slot = remote
            .primary_slot_name
            .as_deref()
            .filter(|s| self.settings.use_slots && !s.is_empty())
            .map(slot_name_from_member_name);
        let mut r = RecoverySettings::follow(primary, slot, &recovery_conf, self.version);
        for (k, v) in [
            ("restore_command", &remote.restore_command),
            ("archive_cleanup_command", &remote.archive_cleanup_command),
            ("recovery_min_apply_delay", &remote.recovery_min_apply_delay),
        ] {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                r.parameters.insert(k.into(), v.clone());
            }
        }
        r
    }

    /// Recovery settings of a replica inside a standby cluster: following `primary` (its standby leader or a
    /// cascade source), with the standby cluster's `restore_command` and `archive_cleanup_command`.
    pub fn standby_replica_settings(&self, primary: Option<&ConnParams>, remote: &RemotePrimary) -> RecoverySettings {
        let mut r = self.follow_settings(primary);
        for (k, v) in
            [("restore_command", &remote.restore_command), ("archive_cleanup_command", &remote.archive_cleanup_command)]
        {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                r.parameters.insert(k.into(), v.clone());
            }
        }
        r
    }

    /// Runs PostgreSQL in recovery with `recovery` as `role` (a standby leader or a replica): starts it when it
    /// is down, reloads (or restarts before PostgreSQL 13, or when it runs as a primary) when the settings changed.
    /// Callbacks as Patroni fires them: `on_role_change` when the role changes, else `on_start` / `on_restart`.
    pub async fn run_in_recovery_as(&mut self, recovery: RecoverySettings, role: Role) -> Result<StartOutcome> {
        let before = self.role;
        let changed = role_changed(before, role);
        if !self.is_running() {
            let outcome = self.start_inner(Some(recovery), false, None).await?;
            self.role = role;
            self.fire(if changed { CallbackAction::OnRoleChange } else { CallbackAction::OnStart });
            return Ok(outcome);
        }
        let same = self.recovery.as_ref() == Some(&recovery);
        if before != Role::Primary && same {
            if before != role {
                self.role = role;
                if changed {
                    self.fire(CallbackAction::OnRoleChange);
                }
            }
            return Ok(StartOutcome::Ready);
        }
        if before == Role::Primary || self.recovery_change_needs_restart(&recovery) {
            self.stop_inner(crate::StopMode::Fast, None).await?;
            let outcome = self.start_inner(Some(recovery), false, None).await?;
            self.role = role;
            self.fire(if changed { CallbackAction::OnRoleChange } else { CallbackAction::OnRestart });
            return Ok(outcome);
        }
        self.write_config(Some(&recovery), false)?;
        self.recovery = Some(recovery);
        self.reload().await?;
        self.role = role;
        if changed {
            self.fire(CallbackAction::OnRoleChange);
        }
        Ok(StartOutcome::Ready)
    }

    /// After a clean stop of a primary that becomes a standby leader: hands the WAL file holding the shutdown
    /// checkpoint to `archive_command` (when archiving is on), so a cluster restoring from that archive replays up
    /// to it, and this member can later follow that cluster's promotion without a rewind.
    pub async fn archive_shutdown_checkpoint_wal(&self) -> Result<()> {
        let mode = self.guc_value("archive_mode").await.unwrap_or_default();
        let command = self.guc_value("archive_command").await.unwrap_or_default();
        if !matches!(mode.as_str(), "on" | "always") || command.is_empty() || command == "(disabled)" {
            tracing::info!("Not archiving latest checkpoint WAL file. Archiving is not configured.");
            return Ok(());
        }
        let control = self.controldata().await?;
        let Some(wal) = control.raw.get("Latest checkpoint's REDO WAL file").map(|w| w.trim().to_string()) else {
            tracing::error!("Cannot extract latest checkpoint's WAL file name");
            return Ok(());
        };
        let cmd = crate::rewind::archiver_command(&command, &wal);
        let result = crate::command::Cmd::new("/bin/sh")
            .args(["-c", &cmd])
            .current_dir(&self.settings.data_dir)
            .timeout(std::time::Duration::from_secs(300))
            .run()
            .await;
        if let Err(e) = result {
            tracing::error!("Failed to archive WAL file with the shutdown checkpoint: {e}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_changes_reported_as_patroni_does() {
        assert!(role_changed(Role::Primary, Role::StandbyLeader));
        assert!(role_changed(Role::StandbyLeader, Role::Replica));
        assert!(role_changed(Role::Replica, Role::StandbyLeader));
        assert!(!role_changed(Role::StandbyLeader, Role::StandbyLeader));
        assert!(!role_changed(Role::Replica, Role::Replica));
        assert!(!role_changed(Role::Uninitialized, Role::StandbyLeader));
    }

    #[test]
    fn remote_without_host_or_port_is_archive_only() {
        let r = RemotePrimary { restore_command: Some("cp /a/%f %p".into()), ..RemotePrimary::default() };
        assert_eq!(r.conn_params(), None);
        let r = RemotePrimary { host: Some("db1".into()), port: Some(5433), ..RemotePrimary::default() };
        let p = r.conn_params().unwrap();
        assert_eq!((p.get("host"), p.get("port")), (Some("db1"), Some("5433")));
    }
}
