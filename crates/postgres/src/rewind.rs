//! Rejoining a former primary: detect whether its history diverged from the new leader's (timeline history), running
//! or stopped; make a crashed one consistent (single-user crash recovery) and `pg_rewind` it, removing the data
//! directory after a failed rewind only where `remove_data_directory_on_rewind_failure` / `_on_diverged_timelines`
//! say so. Whether to check, rewind or clone again is the HA core's decision (`patroni_ha`'s rewind module).

use std::time::Duration;

use crate::binaries::Tool;
use crate::command::Cmd;
use crate::conninfo::{ConnParams, Credentials};
use crate::controldata::ClusterState;
use crate::error::{Error, Result};
use crate::instance::Postgres;
use crate::lsn::Lsn;
use crate::parameters::command_line_options;
use crate::query::Db;
use crate::version::RewindRestore;

/// Bound for pg_rewind and single-user recovery: they scale with the amount of changed data, not with a timeout
/// an operator tunes, so this is a generous safety net.
const LONG_STEP: Duration = Duration::from_secs(3600);
/// How long to wait for the new leader's post-promotion checkpoint (pg_rewind reads its timeline from pg_control).
const LEADER_CHECKPOINT_WAIT: Duration = Duration::from_secs(60);

/// One line of a timeline history file: `parent_tli  switchpoint  reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub parent_timeline: u32,
    pub switchpoint: Lsn,
    pub reason: String,
}

pub fn parse_history(text: &str) -> Vec<HistoryEntry> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let mut parts = l.splitn(3, char::is_whitespace);
            let tli = parts.next()?.trim().parse().ok()?;
            let lsn = parts.next()?.trim().parse().ok()?;
            Some(HistoryEntry {
                parent_timeline: tli,
                switchpoint: lsn,
                reason: parts.next().unwrap_or("").trim().to_string(),
            })
        })
        .collect()
}

/// Where the local (stopped) instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalPosition {
    pub in_recovery: bool,
    pub timeline: u32,
    pub lsn: Lsn,
}

/// Result of comparing the local history with the leader's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Divergence {
    /// The local WAL is a prefix of the leader's history: streaming can simply continue.
    NotDiverged,
    /// The local instance wrote WAL the leader does not have.
    Diverged { local: LocalPosition, leader_timeline: u32, switchpoint: Option<Lsn> },
}

/// Expands `%p`, `%f`, `%r` and `%%` in an archive/restore command the way PostgreSQL does (`%p` relative to
/// the data directory, as the archiver runs there).
pub fn archiver_command(template: &str, wal_file: &str) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some('p') => out.push_str(&format!("pg_wal/{wal_file}")),
            Some('f') => out.push_str(wal_file),
            Some('r') => out.push_str("000000010000000000000001"),
            Some('%') => out.push('%'),
            _ => {
                out.push('%');
                continue;
            }
        }
        chars.next();
    }
    out
}

fn is_ready_wal(name: &str) -> Option<&str> {
    let base = name.strip_suffix(".ready")?;
    let seg = base.strip_suffix(".partial").unwrap_or(base);
    (seg.len() == 24 && seg.chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))).then_some(base)
}

impl Postgres {
    /// A setting as the stopped server would see it (all configuration files), via `postgres -C`.
    pub(crate) async fn guc_value(&self, name: &str) -> Option<String> {
        let out = self
            .settings
            .binaries
            .cmd(Tool::Postgres)
            .ok()?
            .arg("-D")
            .arg(&self.settings.data_dir)
            .arg(format!("--config-file={}", self.files.postgresql_conf().display()))
            .args(["-C", name])
            .timeout(Duration::from_secs(30))
            .run()
            .await
            .ok()?;
        Some(out.stdout.trim().to_string())
    }

    /// Archives WAL segments still marked `.ready` with the configured `archive_command`: after pg_rewind or a
    /// rebuild they would be gone, and with them a stretch of the archive's history.
    pub async fn archive_ready_wals(&self) -> Result<()> {
        let mode = self.guc_value("archive_mode").await.unwrap_or_default();
        let command = self.guc_value("archive_command").await.unwrap_or_default();
        if !matches!(mode.as_str(), "on" | "always") || command.is_empty() || command == "(disabled)" {
            return Ok(());
        }
        let status_dir = self.settings.data_dir.join("pg_wal/archive_status");
        let entries = match std::fs::read_dir(&status_dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("Unable to list {}: {e}", status_dir.display());
                return Ok(());
            }
        };
        let mut ready: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(is_ready_wal).map(str::to_string))
            .collect();
        ready.sort();
        for wal in ready {
            if !self.settings.data_dir.join("pg_wal").join(&wal).is_file() {
                continue;
            }
            let cmd = archiver_command(&command, &wal);
            tracing::info!("Trying to archive {wal}: {cmd}");
            let result = Cmd::new("/bin/sh")
                .args(["-c", &cmd])
                .current_dir(&self.settings.data_dir)
                .timeout(LONG_STEP)
                .run()
                .await;
            match result {
                Ok(_) => {
                    let from = status_dir.join(format!("{wal}.ready"));
                    let to = status_dir.join(format!("{wal}.done"));
                    if let Err(e) = std::fs::rename(&from, &to) {
                        tracing::error!("Unable to rename {} to {}: {e}", from.display(), to.display());
                    }
                }
                Err(e) => tracing::info!("Failed to archive WAL segment {wal}: {e}"),
            }
        }
        Ok(())
    }

    /// Position of the stopped instance from pg_controldata. A crashed primary must go through
    /// [`Postgres::ensure_clean_shutdown`] first.
    pub async fn local_position(&self) -> Result<LocalPosition> {
        if self.is_running() {
            return self.running_position().await;
        }
        let c = self.controldata().await?;
        let recovery = matches!(c.cluster_state, ClusterState::ShutDownInRecovery | ClusterState::InArchiveRecovery)
            && c.min_recovery_end != Lsn::ZERO
            && c.min_recovery_timeline != 0;
        if recovery {
            return Ok(LocalPosition { in_recovery: true, timeline: c.min_recovery_timeline, lsn: c.min_recovery_end });
        }
        match c.cluster_state {
            ClusterState::ShutDown | ClusterState::ShutDownInRecovery | ClusterState::InArchiveRecovery => {
                Ok(LocalPosition { in_recovery: false, timeline: c.timeline, lsn: c.checkpoint_location })
            }
            other => Err(Error::State(format!(
                "cannot tell the local timeline: cluster state is {other:?} (not shut down cleanly)"
            ))),
        }
    }

    /// A running standby's position: the timeline it receives (or last checkpointed) and what it replayed. Patroni
    /// reads the same from a running replica; a primary's history is never compared while it runs.
    async fn running_position(&self) -> Result<LocalPosition> {
        let db = self.db().await?;
        let row = db
            .query_one(
                "SELECT pg_catalog.pg_is_in_recovery(), COALESCE((SELECT received_tli FROM \
                 pg_catalog.pg_stat_get_wal_receiver()), (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint())), \
                 pg_catalog.pg_last_wal_replay_lsn()::text",
                &[],
            )
            .await?;
        if !row.try_get::<_, bool>(0)? {
            return Err(Error::State("PostgreSQL runs as a primary: its history is not compared".into()));
        }
        let timeline = row.try_get::<_, Option<i32>>(1)?.unwrap_or(0) as u32;
        let lsn = row
            .try_get::<_, Option<String>>(2)?
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| Error::State("no WAL replayed yet".into()))?;
        Ok(LocalPosition { in_recovery: true, timeline, lsn })
    }

    /// Whether `pg_rewind` can run on this data directory (`wal_log_hints` or data checksums, per `pg_control`).
    pub async fn rewind_possible(&self) -> Result<bool> {
        Ok(self.controldata().await?.rewind_possible())
    }

    fn leader_params(&self, leader: &ConnParams) -> ConnParams {
        self.leader_params_as(leader, self.settings.rewind_credentials())
    }

    /// `leader`'s address as `credentials`, asking for the read-write server: rewinding from (or flushing) the real
    /// primary is the safe choice.
    pub(crate) fn leader_params_as(&self, leader: &ConnParams, credentials: &Credentials) -> ConnParams {
        let mut p = ConnParams::for_role(
            leader.get("host").unwrap_or(""),
            leader.get("port").and_then(|p| p.parse().ok()).unwrap_or(5432),
            leader.get("dbname").unwrap_or(&self.settings.database),
            credentials,
        );
        p.set("target_session_attrs", "read-write");
        p
    }

    /// Compares the local instance (a stopped one, or a running standby) with the leader's timeline history.
    pub async fn check_divergence(&self, leader: &ConnParams) -> Result<Divergence> {
        let local = self.local_position().await?;
        let db = Db::connect(&self.leader_params(leader), self.settings.query_timeout).await?;
        let row = db
            .query_one(
                "SELECT pg_catalog.pg_is_in_recovery(), CASE WHEN pg_catalog.pg_is_in_recovery() THEN 0 ELSE \
                 ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))\
                 ::bit(32)::int END",
                &[],
            )
            .await?;
        let in_recovery: bool = row.try_get(0)?;
        if in_recovery {
            return Err(Error::State("the leader is still in recovery; cannot compare timelines yet".into()));
        }
        let leader_tl = row.try_get::<_, i32>(1)? as u32;
        tracing::info!("Local timeline={} lsn={}; primary_timeline={}", local.timeline, local.lsn, leader_tl);
        if local.timeline == leader_tl {
            return Ok(Divergence::NotDiverged);
        }
        if local.timeline > leader_tl {
            return Ok(Divergence::Diverged { local, leader_timeline: leader_tl, switchpoint: None });
        }
        let history = db.read_data_file(&format!("pg_wal/{leader_tl:08X}.history")).await?;
        let history = parse_history(&String::from_utf8_lossy(&history));
        for entry in &history {
            if entry.parent_timeline == local.timeline {
                let diverged = if local.in_recovery {
                    local.lsn > entry.switchpoint
                } else if local.lsn >= entry.switchpoint {
                    true
                } else {
                    // A cleanly stopped former primary's last record is its shutdown checkpoint; if that record
                    // ends exactly at the switchpoint the new leader has everything we wrote.
                    match self.checkpoint_end(local.timeline, local.lsn).await {
                        Some(end) => end != entry.switchpoint,
                        None => true,
                    }
                };
                tracing::info!(
                    "primary switched from timeline {} at {}: local history {}",
                    entry.parent_timeline,
                    entry.switchpoint,
                    if diverged { "diverged" } else { "is a prefix" }
                );
                return Ok(if diverged {
                    Divergence::Diverged { local, leader_timeline: leader_tl, switchpoint: Some(entry.switchpoint) }
                } else {
                    Divergence::NotDiverged
                });
            }
            if entry.parent_timeline > local.timeline {
                break;
            }
        }
        Ok(Divergence::Diverged { local, leader_timeline: leader_tl, switchpoint: None })
    }

    /// End of the WAL record at `lsn`, from `pg_waldump` (next to the other binaries).
    async fn checkpoint_end(&self, timeline: u32, lsn: Lsn) -> Option<Lsn> {
        let postgres = self.settings.binaries.path(Tool::Postgres).ok()?;
        let waldump = postgres.parent()?.join("pg_waldump");
        let out = Cmd::new(waldump)
            .arg("-p")
            .arg(self.settings.data_dir.join("pg_wal"))
            .args(["-t", &timeline.to_string(), "-s", &lsn.to_string(), "-n", "1"])
            .timeout(Duration::from_secs(30))
            .output()
            .await
            .ok()?;
        // "rmgr: XLOG len (rec/tot): 114/ 114, tx: 0, lsn: 0/03000028, ..."
        let line = out.stdout.lines().find(|l| l.contains("lsn:"))?;
        let tot: u64 = line.split("(rec/tot):").nth(1)?.split(',').next()?.split('/').nth(1)?.trim().parse().ok()?;
        let mut end = lsn.as_u64() + tot;
        // A record crossing a page boundary has that page's header in between.
        const PAGE: u64 = 8192;
        if lsn.as_u64() / PAGE != (end - 1) / PAGE {
            end += 24;
        }
        Some(Lsn((end + 7) & !7))
    }

    /// Brings a cluster that was not shut down cleanly to a clean shutdown with a single-user start (crash
    /// recovery, no archiving), which pg_rewind requires.
    pub async fn ensure_clean_shutdown(&self) -> Result<()> {
        let state = self.controldata().await?.cluster_state;
        // Only a former primary needs it: a standby that stopped or crashed in archive recovery has a usable
        // minimum recovery point, and recovering it as a primary here would throw its standby state away.
        if state.is_clean_shutdown() || state == ClusterState::InArchiveRecovery {
            return Ok(());
        }
        if self.is_running() {
            return Err(Error::State("PostgreSQL is running".into()));
        }
        tracing::info!("cluster state is {state:?}; running crash recovery in single-user mode");
        self.write_config(None, false)?;
        self.archive_ready_wals().await?;
        let mut cmd = self
            .settings
            .binaries
            .cmd(Tool::Postgres)?
            .arg("--single")
            .arg("-D")
            .arg(&self.settings.data_dir)
            .arg(format!("--config-file={}", self.files.postgresql_conf().display()))
            .timeout(LONG_STEP);
        for opt in command_line_options(&self.server.parameters) {
            cmd = cmd.arg(opt);
        }
        cmd = cmd.args(["-c", "archive_mode=on", "-c", "archive_command=false", "template1"]);
        cmd.run().await.map(|_| ())
    }

    /// Runs `pg_rewind` against the leader as the rewind role.
    pub async fn pg_rewind(&self, leader: &ConnParams) -> Result<()> {
        let mut p = self.leader_params(leader);
        let pgpass = self.files.write_pgpass(&p)?;
        p.remove("password");
        self.wait_leader_checkpoint(leader).await?;
        let mut cmd = self
            .settings
            .binaries
            .cmd(Tool::PgRewind)?
            .arg(format!("--target-pgdata={}", self.settings.data_dir.display()))
            .arg(format!("--source-server={}", p.to_dsn()))
            .timeout(LONG_STEP);
        // pg_rewind reads restore_command from the configuration files as they are now (a former primary's have
        // none even when recovery_conf sets one), and refuses --restore-target-wal without it.
        let restore_command = self.guc_value("restore_command").await.is_some_and(|v| !v.is_empty());
        let config_in_data_dir = self.files.postgresql_conf().parent() == Some(self.settings.data_dir.as_path());
        match self.features().rewind_restore(restore_command, config_in_data_dir) {
            RewindRestore::No => {}
            RewindRestore::RestoreTargetWal => cmd = cmd.arg("--restore-target-wal"),
            RewindRestore::RestoreTargetWalWithConfigFile => {
                cmd = cmd
                    .arg("--restore-target-wal")
                    .arg(format!("--config-file={}", self.files.postgresql_conf().display()));
            }
        }
        if pgpass {
            cmd = cmd.env("PGPASSFILE", &self.files.pgpass);
        }
        cmd.run().await.map(|_| ())
    }

    /// pg_rewind makes the leader's WAL *insert* position our minimum recovery point, but the leader streams only
    /// what it has flushed, and an idle leader can leave its last records (a running-xacts snapshot) unflushed for
    /// seconds: the rewound standby then refuses connections until the leader happens to write again (18 s seen).
    /// A checkpoint flushes them. Best effort, as the superuser; without it the standby just gets there later.
    async fn flush_leader_wal(&self, leader: &ConnParams) {
        let p = self.leader_params_as(leader, &self.settings.superuser);
        let flushed = match Db::connect(&p, self.settings.query_timeout).await {
            Ok(db) => db.checkpoint().await,
            Err(e) => Err(e),
        };
        if let Err(e) = flushed {
            tracing::warn!("could not run a checkpoint on the leader after pg_rewind: {e}");
        }
    }

    /// pg_rewind reads the source's timeline from its pg_control, which a promoted leader updates only at its
    /// first checkpoint.
    async fn wait_leader_checkpoint(&self, leader: &ConnParams) -> Result<()> {
        let db = Db::connect(&self.leader_params(leader), self.settings.query_timeout).await?;
        let deadline = tokio::time::Instant::now() + LEADER_CHECKPOINT_WAIT;
        loop {
            let row = db
                .query_one(
                    "SELECT ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), \
                     1, 8))::bit(32)::int, (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint())",
                    &[],
                )
                .await?;
            let (current, checkpoint): (i32, i32) = (row.try_get(0)?, row.try_get(1)?);
            if current == checkpoint {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::State(format!(
                    "the leader is on timeline {current} but has not checkpointed since its promotion \
                     (pg_control says {checkpoint}); pg_rewind would see the wrong timeline"
                )));
            }
            tracing::info!("waiting for checkpoint on the leader");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// `pg_rewind` from `leader` (stop PostgreSQL first): crash recovery in single-user mode when it was not shut down
    /// cleanly, the WAL waiting for the archiver archived, then the rewind. A failed rewind removes the data directory
    /// where `remove_data_directory_on_rewind_failure` or `_on_diverged_timelines` say so (Patroni's rule), and says so
    /// in the error.
    pub async fn rewind(&mut self, leader: &ConnParams) -> Result<()> {
        if self.is_running() {
            return Err(Error::State("stop PostgreSQL before rewinding".into()));
        }
        self.ensure_clean_shutdown().await?;
        self.archive_ready_wals().await?;
        match self.pg_rewind(leader).await {
            Ok(()) => {
                self.files.restore_backups()?;
                self.flush_leader_wal(leader).await;
                Ok(())
            }
            Err(e) => {
                tracing::error!("pg_rewind failed: {e}");
                let setting = if self.settings.remove_data_directory_on_rewind_failure {
                    Some("remove_data_directory_on_rewind_failure")
                } else if self.settings.remove_data_directory_on_diverged_timelines {
                    Some("remove_data_directory_on_diverged_timelines")
                } else {
                    None
                };
                let Some(setting) = setting else { return Err(e) };
                tracing::warn!("{setting} is set. removing...");
                self.remove_data_directory()?;
                Err(Error::State(format!("{e} (data directory removed: {setting} is set)")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_files() {
        let h = parse_history("1\t0/3000060\tno recovery target specified\n\n2\t0/5000000\tat restore point\n");
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].parent_timeline, 1);
        assert_eq!(h[0].switchpoint.to_string(), "0/3000060");
        assert_eq!(h[1].reason, "at restore point");
    }

    #[test]
    fn archiver_placeholders() {
        assert_eq!(
            archiver_command("cp %p /archive/%f && echo 100%% %r %x", "000000010000000000000003"),
            "cp pg_wal/000000010000000000000003 /archive/000000010000000000000003 && echo 100% \
             000000010000000000000001 %x"
        );
        assert_eq!(archiver_command("trailing %", "f"), "trailing %");
        assert_eq!(is_ready_wal("000000010000000000000003.ready"), Some("000000010000000000000003"));
        assert_eq!(is_ready_wal("000000010000000000000003.partial.ready"), Some("000000010000000000000003.partial"));
        assert_eq!(is_ready_wal("00000002.history.ready"), None);
    }
}
