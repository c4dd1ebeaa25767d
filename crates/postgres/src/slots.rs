//! Replication slot SQL: listing the slots Patroni manages, creating, dropping and advancing them, and copying a
//! logical slot's state from the primary to a replica (its `pg_replslot/<name>/state` file, installed while the
//! replica is stopped, as Patroni does: a standby cannot create a logical slot that continues the primary's).
//!
//! What to do with which slot is decided by `patroni_ha::slots`; this module only runs it, each statement bounded
//! by the connection's timeout.

use std::path::Path;

use crate::conninfo::ConnParams;
use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::query::{quote_literal, Db};
use crate::version::PgVersion;

/// A slot as Patroni looks at it (temporary slots, and PostgreSQL 17's failover slots, are left out: PostgreSQL
/// manages those).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotState {
    pub name: String,
    /// `physical` or `logical`.
    pub slot_type: String,
    pub database: Option<String>,
    pub plugin: Option<String>,
    pub has_xmin: bool,
    pub restart_lsn: Option<Lsn>,
    pub confirmed_flush_lsn: Option<Lsn>,
    /// `wal_status = 'lost'` (PostgreSQL 13+).
    pub wal_lost: bool,
}

/// A logical slot as the primary has it, with its on-disk state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotCopy {
    pub name: String,
    pub database: String,
    pub plugin: String,
    pub state: Vec<u8>,
}

fn version_filter(server_version: u32) -> &'static str {
    if PgVersion(server_version).features().failover_slots() {
        " WHERE NOT temporary AND NOT failover"
    } else {
        " WHERE NOT temporary"
    }
}

impl Db {
    /// The slots Patroni manages here.
    pub async fn managed_slots(&self, server_version: u32) -> Result<Vec<SlotState>> {
        let wal_status =
            if PgVersion(server_version).features().slot_wal_status() { "wal_status = 'lost'" } else { "false" };
        let sql = format!(
            "SELECT slot_name::text, slot_type, database::text, plugin::text, xmin IS NOT NULL, restart_lsn, \
             confirmed_flush_lsn, {wal_status} FROM pg_catalog.pg_replication_slots{} ORDER BY slot_name",
            version_filter(server_version)
        );
        let rows = self.query(&sql, &[]).await?;
        rows.iter()
            .map(|r| {
                Ok(SlotState {
                    name: r.try_get(0)?,
                    slot_type: r.try_get(1)?,
                    database: r.try_get(2)?,
                    plugin: r.try_get(3)?,
                    has_xmin: r.try_get(4)?,
                    restart_lsn: r.try_get::<_, Option<postgres_types::PgLsn>>(5)?.map(Lsn::from),
                    confirmed_flush_lsn: r.try_get::<_, Option<postgres_types::PgLsn>>(6)?.map(Lsn::from),
                    wal_lost: r.try_get::<_, Option<bool>>(7)?.unwrap_or(false),
                })
            })
            .collect()
    }

    /// How far this standby replayed (`None` on a primary).
    pub async fn replay_lsn(&self) -> Result<Option<Lsn>> {
        let row = self.query_one("SELECT pg_catalog.pg_last_wal_replay_lsn()", &[]).await?;
        Ok(row.try_get::<_, Option<postgres_types::PgLsn>>(0)?.map(Lsn::from))
    }

    /// Creates a logical slot on this connection's database (a no-op when one of that name exists).
    pub async fn create_logical_slot(&self, name: &str, plugin: &str) -> Result<()> {
        self.query(
            "SELECT pg_catalog.pg_create_logical_replication_slot($1, $2) FROM (SELECT 1) x \
             WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1)",
            &[&name, &plugin],
        )
        .await?;
        Ok(())
    }

    /// Moves a slot forward to `lsn` (a logical one on a connection to its database).
    pub async fn advance_slot(&self, name: &str, lsn: Lsn) -> Result<()> {
        let sql =
            format!("SELECT pg_catalog.pg_replication_slot_advance($1, {}::pg_lsn)", quote_literal(&lsn.to_string()));
        self.query(&sql, &[&name]).await?;
        Ok(())
    }

    /// On the primary: the logical slots among `names` with their `state` file (the rewind or superuser
    /// credentials can read it). Nothing when the server is in recovery.
    pub async fn logical_slot_copies(&self, names: &[String], server_version: u32) -> Result<Vec<SlotCopy>> {
        let failover = if PgVersion(server_version).features().failover_slots() { " NOT failover AND" } else { "" };
        let sql = format!(
            "SELECT slot_name::text, datname::text, plugin::text, \
             pg_catalog.pg_read_binary_file('pg_replslot/' || slot_name || '/state') \
             FROM pg_catalog.pg_get_replication_slots() JOIN pg_catalog.pg_database ON datoid = oid \
             WHERE{failover} slot_type = 'logical' AND NOT pg_catalog.pg_is_in_recovery() AND slot_name = ANY($1)"
        );
        let rows = self.query(&sql, &[&names]).await?;
        rows.iter()
            .map(|r| {
                Ok(SlotCopy {
                    name: r.try_get(0)?,
                    database: r.try_get(1)?,
                    plugin: r.try_get(2)?,
                    state: r.try_get(3)?,
                })
            })
            .collect()
    }
}

/// Connection parameters of `base` on another database (logical slots live in one).
pub fn on_database(base: &ConnParams, database: &str) -> ConnParams {
    let mut p = base.clone();
    p.set("dbname", database);
    p
}

/// Installs copied slot state files into the stopped data directory `data_dir`, each through a temporary
/// directory renamed into place, with the data directory's permissions.
pub fn install_slot_copies(data_dir: &Path, copies: &[SlotCopy]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let io = |what: String| move |e: std::io::Error| Error::State(format!("{what}: {e}"));
    let replslot = data_dir.join("pg_replslot");
    // Group access on the data directory (initdb -g) is kept for what we write.
    let dir_mode = std::fs::metadata(data_dir).map(|m| m.permissions().mode() & 0o750).unwrap_or(0o700) | 0o700;
    let file_mode = dir_mode & 0o640 | 0o600;
    for c in copies {
        if c.name.is_empty() || c.name.contains('/') || c.name.starts_with('.') {
            return Err(Error::State(format!("refusing to install a slot named {:?}", c.name)));
        }
        let dir = replslot.join(&c.name);
        let tmp = replslot.join(format!("{}.tmp", c.name));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(format!("removing {}", tmp.display())))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(dir_mode))
            .map_err(io(format!("chmod {}", tmp.display())))?;
        let file = tmp.join("state");
        std::fs::write(&file, &c.state).map_err(io(format!("writing {}", file.display())))?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(file_mode))
            .map_err(io(format!("chmod {}", file.display())))?;
        std::fs::File::open(&file).and_then(|f| f.sync_all()).map_err(io(format!("fsync {}", file.display())))?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(format!("removing {}", dir.display())))?;
        }
        std::fs::rename(&tmp, &dir).map_err(io(format!("renaming {}", tmp.display())))?;
        let _ = std::fs::File::open(&dir).and_then(|f| f.sync_all());
    }
    let _ = std::fs::File::open(&replslot).and_then(|f| f.sync_all());
    Ok(())
}

impl crate::instance::Postgres {
    /// Superuser connection parameters to the local instance on `database`.
    pub fn local_params_on(&self, database: &str) -> ConnParams {
        on_database(&self.local_conn_params(), database)
    }

    /// Reads the logical slots `names` from the primary at `leader` (as the rewind user, who may read its data
    /// files), bounded by the query timeout.
    pub async fn read_leader_slot_copies(&self, leader: &ConnParams, names: &[String]) -> Result<Vec<SlotCopy>> {
        let params = self.leader_params_as(leader, self.settings().rewind_credentials());
        let db = Db::connect(&params, self.settings().query_timeout).await?;
        db.logical_slot_copies(names, self.version().0).await
    }

    /// Stops this replica, installs `copies` into `pg_replslot`, and starts it again as it was configured.
    pub async fn install_logical_slots(&mut self, copies: &[SlotCopy]) -> Result<()> {
        self.stop_inner(crate::postmaster::StopMode::Fast, None).await?;
        let installed = install_slot_copies(self.data_dir(), copies);
        let recovery = self.recovery_for_rewrite();
        self.start_inner(recovery, false, None).await?;
        installed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_slot_state_through_a_temporary_directory() {
        let dir = std::env::temp_dir().join(format!("patroni-slots-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("pg_replslot/old.tmp")).unwrap();
        let copy = SlotCopy {
            name: "old".into(),
            database: "postgres".into(),
            plugin: "test_decoding".into(),
            state: vec![1, 2, 3],
        };
        install_slot_copies(&dir, std::slice::from_ref(&copy)).unwrap();
        assert_eq!(std::fs::read(dir.join("pg_replslot/old/state")).unwrap(), vec![1, 2, 3]);
        assert!(!dir.join("pg_replslot/old.tmp").exists());
        let bad = SlotCopy { name: "../x".into(), ..copy };
        assert!(install_slot_copies(&dir, &[bad]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
