//! Talking SQL to the local (or a remote) PostgreSQL: connection, the one query the HA loop runs each cycle,
//! replication views, slots, settings.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, NoTls, Row};

use crate::conninfo::ConnParams;
use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::version::Features;

/// One open connection; the driver task ends when the `Db` is dropped.
pub struct Db {
    client: Client,
    driver: tokio::task::JoinHandle<()>,
    timeout: Duration,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("timeout", &self.timeout).finish()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A row of `pg_stat_replication`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationRow {
    pub pid: i32,
    pub usename: Option<String>,
    pub application_name: String,
    pub client_addr: Option<String>,
    pub state: Option<String>,
    pub sync_state: Option<String>,
    pub sync_priority: Option<i32>,
    pub sent_lsn: Option<Lsn>,
    pub write_lsn: Option<Lsn>,
    pub flush_lsn: Option<Lsn>,
    pub replay_lsn: Option<Lsn>,
}

/// A row of `pg_replication_slots`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotRow {
    pub slot_name: String,
    pub slot_type: String,
    pub plugin: Option<String>,
    pub database: Option<String>,
    pub temporary: bool,
    pub active: bool,
    pub restart_lsn: Option<Lsn>,
    pub confirmed_flush_lsn: Option<Lsn>,
}

/// The WAL receiver of a standby (`pg_stat_wal_receiver`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalReceiver {
    pub status: String,
    pub received_tli: Option<u32>,
    pub written_lsn: Option<Lsn>,
    pub flushed_lsn: Option<Lsn>,
    /// The last WAL position the sender reported: the primary's position as this standby last heard it.
    pub latest_end_lsn: Option<Lsn>,
    pub slot_name: Option<String>,
    pub sender_host: Option<String>,
    pub sender_port: Option<i32>,
    pub conninfo: Option<String>,
}

/// Everything the HA loop needs from a running PostgreSQL, from a single round trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub in_recovery: bool,
    pub postmaster_start_time: DateTime<Utc>,
    /// Current timeline: from the WAL position on a primary; on a standby the one being received, else the one
    /// of the last checkpoint/restartpoint.
    pub timeline: u32,
    /// `pg_current_wal_lsn()` (primary only).
    pub current_lsn: Option<Lsn>,
    /// `pg_current_wal_flush_lsn()` (primary only): what Patroni publishes as the leader's position.
    pub flush_lsn: Option<Lsn>,
    /// `pg_last_wal_receive_lsn()` (standby).
    pub received_lsn: Option<Lsn>,
    /// `pg_last_wal_replay_lsn()` (standby).
    pub replayed_lsn: Option<Lsn>,
    pub replay_timestamp: Option<DateTime<Utc>>,
    pub replay_paused: bool,
    pub wal_receiver: Option<WalReceiver>,
    pub replication: Vec<ReplicationRow>,
    pub pending_restart: bool,
    pub server_version: u32,
    pub synchronous_standby_names: String,
}

impl ClusterInfo {
    /// The position Patroni reports for this member: the flush position on a primary, the higher of received
    /// and replayed on a standby.
    pub fn wal_position(&self) -> Lsn {
        if self.in_recovery {
            self.received_lsn.unwrap_or_default().max(self.replayed_lsn.unwrap_or_default())
        } else {
            self.flush_lsn.or(self.current_lsn).unwrap_or_default()
        }
    }
}

/// Where WAL stands right now, in bytes from 0/0: what `/patroni` reports and members racing for the leader key
/// compare. One cheap query, for callers that need it fresher than the last [`ClusterInfo`].
#[derive(Debug, Clone, PartialEq)]
pub struct WalPositions {
    pub in_recovery: bool,
    /// `pg_current_wal_flush_lsn()` on a primary.
    pub flushed: Option<u64>,
    pub received: Option<u64>,
    pub replayed: Option<u64>,
    pub replay_timestamp: Option<DateTime<Utc>>,
    pub replay_paused: bool,
}

const WAL_POSITIONS_SQL: &str = "SELECT pg_catalog.pg_is_in_recovery(),
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
            ELSE pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_flush_lsn(), '0/0')::bigint END,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_receive_lsn(), '0/0')::bigint,
       pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_replay_lsn(), '0/0')::bigint,
       pg_catalog.pg_last_xact_replay_timestamp(),
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END";

/// A setting that only takes effect after a restart, with the running and the configured value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRestart {
    pub name: String,
    pub old_value: String,
    pub new_value: String,
}

/// The per-cycle state query for a server with `features`: everything in one round trip.
fn cluster_info_sql(features: Features) -> String {
    format!(
        "
SELECT pg_catalog.pg_is_in_recovery() AS in_recovery,
       pg_catalog.pg_postmaster_start_time() AS postmaster_start_time,
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL
            ELSE ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END AS primary_timeline,
       (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()) AS checkpoint_timeline,
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_current_wal_lsn() END AS current_lsn,
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_current_wal_flush_lsn() END AS flush_lsn,
       pg_catalog.pg_last_wal_receive_lsn() AS received_lsn,
       pg_catalog.pg_last_wal_replay_lsn() AS replayed_lsn,
       pg_catalog.pg_last_xact_replay_timestamp() AS replay_timestamp,
       CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END AS paused,
       (SELECT pg_catalog.row_to_json(r)::text
          FROM (SELECT {wal_receiver} FROM pg_catalog.pg_stat_wal_receiver) r) AS wal_receiver,
       (SELECT pg_catalog.json_agg(pg_catalog.json_build_object('pid', pid, 'usename', usename,
               'application_name', application_name, 'client_addr', pg_catalog.host(client_addr), 'state', state,
               'sync_state', sync_state, 'sync_priority', sync_priority, 'sent_lsn', sent_lsn::text,
               'write_lsn', write_lsn::text, 'flush_lsn', flush_lsn::text, 'replay_lsn', replay_lsn::text))::text
          FROM pg_catalog.pg_stat_replication) AS replication,
       EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE pending_restart) AS pending_restart,
       pg_catalog.current_setting('server_version_num')::int AS server_version,
       pg_catalog.current_setting('synchronous_standby_names') AS synchronous_standby_names",
        wal_receiver = features.wal_receiver_columns()
    )
}

/// LSNs travel as text inside JSON (json has no pg_lsn); parse them back.
#[derive(Deserialize)]
struct RawReceiver {
    status: String,
    received_tli: Option<u32>,
    written_lsn: Option<String>,
    flushed_lsn: Option<String>,
    latest_end_lsn: Option<String>,
    slot_name: Option<String>,
    sender_host: Option<String>,
    sender_port: Option<i32>,
    conninfo: Option<String>,
}

#[derive(Deserialize)]
struct RawReplication {
    pid: i32,
    usename: Option<String>,
    application_name: Option<String>,
    client_addr: Option<String>,
    state: Option<String>,
    sync_state: Option<String>,
    sync_priority: Option<i32>,
    sent_lsn: Option<String>,
    write_lsn: Option<String>,
    flush_lsn: Option<String>,
    replay_lsn: Option<String>,
}

fn opt_lsn(s: Option<String>) -> Result<Option<Lsn>> {
    s.map(|s| s.parse()).transpose()
}

fn lsn_col(row: &Row, name: &str) -> Result<Option<Lsn>> {
    Ok(row.try_get::<_, Option<postgres_types::PgLsn>>(name)?.map(Lsn::from))
}

impl Db {
    /// Connects with `params` (a unix socket when `host` is a directory), bounded by `timeout`, which also
    /// bounds every later query.
    pub async fn connect(params: &ConnParams, timeout: Duration) -> Result<Db> {
        let mut config = params.to_config(timeout);
        let (ssl_mode, tls) = crate::tls::client_config(params)?;
        config.ssl_mode(ssl_mode);
        let (client, driver) = match tls {
            Some(tls) => {
                let (client, connection) = tokio::time::timeout(timeout, config.connect(crate::tls::MakeRustls(tls)))
                    .await
                    .map_err(|_| Error::DbTimeout(timeout))??;
                (client, tokio::spawn(drive(connection)))
            }
            None => {
                let (client, connection) = tokio::time::timeout(timeout, config.connect(NoTls))
                    .await
                    .map_err(|_| Error::DbTimeout(timeout))??;
                (client, tokio::spawn(drive(connection)))
            }
        };
        Ok(Db { client, driver, timeout })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    async fn bounded<T>(&self, fut: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>) -> Result<T> {
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| Error::DbTimeout(self.timeout))?.map_err(Error::from)
    }

    pub async fn execute(&self, sql: &str) -> Result<()> {
        self.bounded(self.client.batch_execute(sql)).await
    }

    pub async fn query(&self, sql: &str, params: &[&(dyn postgres_types::ToSql + Sync)]) -> Result<Vec<Row>> {
        self.bounded(self.client.query(sql, params)).await
    }

    pub async fn query_one(&self, sql: &str, params: &[&(dyn postgres_types::ToSql + Sync)]) -> Result<Row> {
        self.bounded(self.client.query_one(sql, params)).await
    }

    /// [`WalPositions`] now.
    pub async fn wal_positions(&self) -> Result<WalPositions> {
        let row = self.query_one(WAL_POSITIONS_SQL, &[]).await?;
        let bytes = |i: usize| -> Result<Option<u64>> {
            Ok(row.try_get::<_, Option<i64>>(i)?.and_then(|v| u64::try_from(v).ok()))
        };
        Ok(WalPositions {
            in_recovery: row.try_get(0)?,
            flushed: bytes(1)?,
            received: bytes(2)?,
            replayed: bytes(3)?,
            replay_timestamp: row.try_get(4)?,
            replay_paused: row.try_get(5)?,
        })
    }

    pub async fn in_recovery(&self) -> Result<bool> {
        Ok(self.query_one("SELECT pg_catalog.pg_is_in_recovery()", &[]).await?.try_get(0)?)
    }

    pub async fn server_version(&self) -> Result<u32> {
        let v: String =
            self.query_one("SELECT pg_catalog.current_setting('server_version_num')", &[]).await?.try_get(0)?;
        v.parse().map_err(|_| Error::parse("server_version_num", v.clone()))
    }

    pub async fn system_identifier(&self) -> Result<u64> {
        let v: i64 =
            self.query_one("SELECT system_identifier FROM pg_catalog.pg_control_system()", &[]).await?.try_get(0)?;
        Ok(v as u64)
    }

    /// The per-cycle state query, in the form the server's version (`features`) understands.
    pub async fn cluster_info(&self, features: Features) -> Result<ClusterInfo> {
        let row = self.query_one(&cluster_info_sql(features), &[]).await?;
        let in_recovery: bool = row.try_get("in_recovery")?;
        let wal_receiver = match row.try_get::<_, Option<String>>("wal_receiver")? {
            Some(text) => {
                let r: RawReceiver =
                    serde_json::from_str(&text).map_err(|e| Error::parse("pg_stat_wal_receiver", e.to_string()))?;
                Some(WalReceiver {
                    status: r.status,
                    received_tli: r.received_tli,
                    written_lsn: opt_lsn(r.written_lsn)?,
                    flushed_lsn: opt_lsn(r.flushed_lsn)?,
                    latest_end_lsn: opt_lsn(r.latest_end_lsn)?,
                    slot_name: r.slot_name,
                    sender_host: r.sender_host,
                    sender_port: r.sender_port,
                    conninfo: r.conninfo,
                })
            }
            None => None,
        };
        let replication = match row.try_get::<_, Option<String>>("replication")? {
            Some(text) => {
                let raw: Vec<RawReplication> =
                    serde_json::from_str(&text).map_err(|e| Error::parse("pg_stat_replication", e.to_string()))?;
                raw.into_iter()
                    .map(|r| {
                        Ok(ReplicationRow {
                            pid: r.pid,
                            usename: r.usename,
                            application_name: r.application_name.unwrap_or_default(),
                            client_addr: r.client_addr,
                            state: r.state,
                            sync_state: r.sync_state,
                            sync_priority: r.sync_priority,
                            sent_lsn: opt_lsn(r.sent_lsn)?,
                            write_lsn: opt_lsn(r.write_lsn)?,
                            flush_lsn: opt_lsn(r.flush_lsn)?,
                            replay_lsn: opt_lsn(r.replay_lsn)?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            None => Vec::new(),
        };
        let primary_tl: Option<i32> = row.try_get("primary_timeline")?;
        let checkpoint_tl: i32 = row.try_get("checkpoint_timeline")?;
        let receiving_tl = wal_receiver.as_ref().and_then(|w| w.received_tli);
        let timeline = primary_tl.map(|t| t as u32).or(receiving_tl).unwrap_or(checkpoint_tl as u32);
        let server_version: i32 = row.try_get("server_version")?;
        Ok(ClusterInfo {
            in_recovery,
            postmaster_start_time: row.try_get("postmaster_start_time")?,
            timeline,
            current_lsn: lsn_col(&row, "current_lsn")?,
            flush_lsn: lsn_col(&row, "flush_lsn")?,
            received_lsn: lsn_col(&row, "received_lsn")?,
            replayed_lsn: lsn_col(&row, "replayed_lsn")?,
            replay_timestamp: row.try_get("replay_timestamp")?,
            replay_paused: row.try_get("paused")?,
            wal_receiver,
            replication,
            pending_restart: row.try_get("pending_restart")?,
            server_version: server_version as u32,
            synchronous_standby_names: row.try_get("synchronous_standby_names")?,
        })
    }

    pub async fn replication_slots(&self) -> Result<Vec<SlotRow>> {
        let rows = self
            .query(
                "SELECT slot_name::text, slot_type, plugin::text, database::text, temporary, active, restart_lsn, \
                 confirmed_flush_lsn FROM pg_catalog.pg_replication_slots ORDER BY slot_name",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SlotRow {
                    slot_name: r.try_get(0)?,
                    slot_type: r.try_get(1)?,
                    plugin: r.try_get(2)?,
                    database: r.try_get(3)?,
                    temporary: r.try_get(4)?,
                    active: r.try_get(5)?,
                    restart_lsn: lsn_col(r, "restart_lsn")?,
                    confirmed_flush_lsn: lsn_col(r, "confirmed_flush_lsn")?,
                })
            })
            .collect()
    }

    /// Creates a physical slot that reserves WAL at once (so a replica being built cannot miss segments).
    /// Returns `false` when it already existed.
    pub async fn create_physical_slot(&self, name: &str) -> Result<bool> {
        self.create_slot(name, true).await
    }

    /// A physical slot that reserves no WAL until a standby first streams through it: safe to create on a standby
    /// that may never become primary (it holds nothing back), ready for replicas that follow it the moment it does.
    pub async fn create_physical_slot_unreserved(&self, name: &str) -> Result<bool> {
        self.create_slot(name, false).await
    }

    async fn create_slot(&self, name: &str, reserve: bool) -> Result<bool> {
        let row = self
            .query_one(
                "SELECT pg_catalog.pg_create_physical_replication_slot($1, $2) FROM (SELECT 1) x \
                 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1)",
                &[&name, &reserve],
            )
            .await;
        match row {
            Ok(_) => Ok(true),
            Err(Error::Db(e)) if e.to_string().contains("unexpected number of rows") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Drops a slot unless it is in use; returns whether it is gone.
    pub async fn drop_slot(&self, name: &str) -> Result<bool> {
        let rows = self
            .query(
                "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots \
                 WHERE slot_name = $1 AND NOT active",
                &[&name],
            )
            .await?;
        if rows.is_empty() {
            let still =
                self.query("SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", &[&name]).await?;
            return Ok(still.is_empty());
        }
        Ok(true)
    }

    /// PgSettings the configuration files change but that need a restart (PostgreSQL flags them itself after a
    /// reload), with the running and the configured value.
    pub async fn pending_restart(&self) -> Result<Vec<PendingRestart>> {
        let rows = self
            .query(
                "SELECT s.name, s.setting || COALESCE(s.unit, ''), \
                        COALESCE((SELECT f.setting FROM pg_catalog.pg_file_settings f \
                                   WHERE f.name = s.name ORDER BY f.seqno DESC LIMIT 1), '') \
                   FROM pg_catalog.pg_settings s WHERE s.pending_restart ORDER BY s.name",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok(PendingRestart { name: r.try_get(0)?, old_value: r.try_get(1)?, new_value: r.try_get(2)? }))
            .collect()
    }

    /// When the configuration was last loaded; changes once a SIGHUP has been processed.
    pub async fn conf_load_time(&self) -> Result<DateTime<Utc>> {
        Ok(self.query_one("SELECT pg_catalog.pg_conf_load_time()", &[]).await?.try_get(0)?)
    }

    /// `pg_settings.context` of each named setting (`postmaster` ones need a restart).
    pub async fn setting_contexts(&self, names: &[String]) -> Result<Vec<(String, String)>> {
        let rows =
            self.query("SELECT name, context FROM pg_catalog.pg_settings WHERE name = ANY($1)", &[&names]).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// `pg_promote()` (v12+), waiting up to `wait_seconds` for the promotion to finish.
    pub async fn promote(&self, wait_seconds: i32) -> Result<bool> {
        let wait = wait_seconds > 0;
        Ok(self.query_one("SELECT pg_catalog.pg_promote($1, $2)", &[&wait, &wait_seconds.max(1)]).await?.try_get(0)?)
    }

    /// Forces a checkpoint (before a switchover/rewind, so the new timeline is on disk).
    pub async fn checkpoint(&self) -> Result<()> {
        self.execute("CHECKPOINT").await
    }

    /// The content of a file in the data directory (superuser or the rewind role's grants), e.g. a timeline
    /// history file `pg_wal/00000002.history`.
    pub async fn read_data_file(&self, relative: &str) -> Result<Vec<u8>> {
        Ok(self.query_one("SELECT pg_catalog.pg_read_binary_file($1)", &[&relative]).await?.try_get(0)?)
    }
}

async fn drive<F>(connection: F)
where
    F: std::future::Future<Output = std::result::Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = connection.await {
        tracing::debug!("PostgreSQL connection closed: {e}");
    }
}

/// Quotes an identifier for SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for SQL (standard_conforming_strings on).
pub fn quote_literal(value: &str) -> String {
    if value.contains('\\') {
        format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b'"), "E'a\\\\b'''");
    }
}
