//! The one place that knows what differs between PostgreSQL major versions.
//!
//! The version comes from the binaries (`postgres --version`, [`crate::Binaries::version`]); [`PgVersion::features`]
//! turns it into a [`Features`] value that the rest of the code asks ("which `wal_keep_*` parameter?", "does a
//! reload apply a new `primary_conninfo`?", "can pg_rewind fetch missing WAL with `restore_command`?"). Nothing
//! outside this module compares version numbers.
//!
//! Supported: PostgreSQL 12 to 18. Older servers are refused at start ([`PgVersion::require_supported`]): 12
//! moved recovery settings into `postgresql.conf` with `standby.signal`/`recovery.signal` and added `pg_promote()`,
//! `gssencmode` and `max_wal_senders` in `pg_control`, which the rest of the crate takes for granted.
//!
//! What changes inside the supported range, by major:
//! - 13: `pg_stat_wal_receiver` gained `written_lsn` (and renamed `received_lsn` to `flushed_lsn`);
//!   `wal_keep_segments` became `wal_keep_size`; a reload applies `primary_conninfo`/`primary_slot_name`;
//!   `pg_rewind --restore-target-wal`; `channel_binding` and `sslpassword` connection keywords;
//!   `pg_replication_slots.wal_status`.
//! - 14: a reload applies `restore_command`; `sslcrldir`.
//! - 15: `pg_rewind --config-file` (before, pg_rewind read `postgresql.conf` only inside the data directory);
//!   `pg_backup_start`/`pg_backup_stop` replace the exclusive-backup functions.
//! - 16: `pg_hba.conf` and `pg_ident.conf` accept `include`, `include_if_exists` and `include_dir` lines;
//!   `promote_trigger_file` is gone.
//! - 17: failover slots — `pg_create_logical_replication_slot(..., failover)`, `pg_replication_slots.failover`
//!   and `.synced`, `sync_replication_slots`, `synchronized_standby_slots` —; `sslnegotiation`; a standby
//!   compares `dbname` of `primary_conninfo` (slot synchronisation connects to it).
//! - 18: nothing the agent queries or writes changed (the catalogs, `pg_stat_*` views, recovery settings and
//!   pg_rewind options used here are those of 17). initdb enables data checksums by default, which pg_rewind
//!   accepts as well as `wal_log_hints`.

use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};

/// The oldest major patroni-rs runs.
pub const OLDEST_SUPPORTED_MAJOR: u32 = 12;
/// The newest major tested; newer ones run with 18's features.
pub const NEWEST_TESTED_MAJOR: u32 = 18;

/// A PostgreSQL version as Patroni compares them: `15.18` is 150018, `9.6.24` is 90624.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PgVersion(pub u32);

impl PgVersion {
    /// Major version as shown to people: 15, 9.6 → 906.
    pub fn major(self) -> u32 {
        if self.0 >= 100000 {
            self.0 / 10000
        } else {
            self.0 / 100
        }
    }

    /// Major version in the `PG_VERSION` file format (`15`, `9.6`).
    pub fn major_string(self) -> String {
        if self.0 >= 100000 {
            (self.0 / 10000).to_string()
        } else {
            format!("{}.{}", self.0 / 10000, (self.0 / 100) % 100)
        }
    }

    /// The version number for the first release of this major (`150000`).
    pub fn major_num(self) -> u32 {
        if self.0 >= 100000 {
            self.0 / 10000 * 10000
        } else {
            self.0 / 100 * 100
        }
    }

    /// Parses `15.18`, `16beta1`, `9.6.24`, `17devel`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || Error::parse("PostgreSQL version", format!("`{text}`"));
        let digits_end = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let mut parts = Vec::new();
        let mut rest = text.trim();
        loop {
            let end = digits_end(rest);
            if end == 0 {
                break;
            }
            parts.push(rest[..end].parse::<u32>().map_err(|_| bad())?);
            rest = &rest[end..];
            match rest.strip_prefix('.') {
                Some(r) => rest = r,
                None => break,
            }
        }
        let num = match parts.as_slice() {
            [major, ..] if *major >= 10 => major * 10000 + parts.get(1).copied().unwrap_or(0),
            [major, minor] => major * 10000 + minor * 100,
            [major, minor, patch, ..] => major * 10000 + minor * 100 + patch,
            _ => return Err(bad()),
        };
        Ok(PgVersion(num))
    }

    /// Output of `postgres --version`: `postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`.
    pub fn parse_version_output(out: &str) -> Result<Self> {
        let after = out
            .split_once(')')
            .map(|(_, rest)| rest)
            .ok_or_else(|| Error::parse("postgres --version output", out.trim().to_string()))?;
        let word = after
            .split_whitespace()
            .next()
            .ok_or_else(|| Error::parse("postgres --version output", out.trim().to_string()))?;
        Self::parse(word)
    }

    /// Reads `PG_VERSION` of a data directory: the major version it was created with.
    pub fn from_data_dir(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join("PG_VERSION");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let v = Self::parse(text.trim())?;
        Ok(PgVersion(v.major_num()))
    }

    pub fn is_supported(self) -> bool {
        self.major() >= OLDEST_SUPPORTED_MAJOR && self.0 >= 100000
    }

    /// `self`, or [`Error::UnsupportedVersion`] naming it and the oldest supported major.
    pub fn require_supported(self) -> Result<Self> {
        if self.is_supported() {
            Ok(self)
        } else {
            Err(Error::UnsupportedVersion { found: self.to_string(), oldest: OLDEST_SUPPORTED_MAJOR })
        }
    }

    /// What this version can do.
    pub fn features(self) -> Features {
        Features(self)
    }

    /// The WAL directory of a data directory of this major: `pg_wal` from 10, `pg_xlog` before.
    pub fn wal_dir_name(self) -> &'static str {
        if self.0 >= 100000 {
            "pg_wal"
        } else {
            "pg_xlog"
        }
    }
}

impl fmt::Display for PgVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 100000 {
            write!(f, "{}.{}", self.0 / 10000, self.0 % 10000)
        } else {
            write!(f, "{}.{}.{}", self.0 / 10000, (self.0 / 100) % 100, self.0 % 100)
        }
    }
}

/// Which `wal_keep_*` parameter the server has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalKeep {
    /// `wal_keep_segments` (a count of segments), before 13.
    Segments,
    /// `wal_keep_size` (a size, MB by default), 13 and later.
    Size,
}

/// How pg_rewind may be told to fetch WAL the target lacks from the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewindRestore {
    /// No `--restore-target-wal`.
    No,
    /// `--restore-target-wal` alone: pg_rewind finds `restore_command` in the data directory's postgresql.conf.
    RestoreTargetWal,
    /// `--restore-target-wal --config-file=<postgresql.conf>`, for a configuration outside the data directory.
    RestoreTargetWalWithConfigFile,
}

/// The capabilities of one PostgreSQL version. Cheap to copy; ask it instead of comparing version numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features(PgVersion);

/// Columns of `pg_stat_wal_receiver` as the state query reads them, 13 and later.
const WAL_RECEIVER_13: &str = "status, received_tli, written_lsn::text AS written_lsn, \
     flushed_lsn::text AS flushed_lsn, latest_end_lsn::text AS latest_end_lsn, slot_name, sender_host, sender_port, \
     conninfo";
/// The same for 12: no `written_lsn`, and what 13 calls `flushed_lsn` is `received_lsn`.
const WAL_RECEIVER_12: &str = "status, received_tli, NULL::text AS written_lsn, \
     received_lsn::text AS flushed_lsn, latest_end_lsn::text AS latest_end_lsn, slot_name, sender_host, \
     sender_port, conninfo";

/// Settings a standby must run with at least the primary's value, and their `pg_controldata` line (12+).
const CONTROLDATA_SETTINGS: &[(&str, &str)] = &[
    ("max_connections", "max_connections setting"),
    ("max_prepared_transactions", "max_prepared_xacts setting"),
    ("max_locks_per_transaction", "max_locks_per_xact setting"),
    ("max_worker_processes", "max_worker_processes setting"),
    ("max_wal_senders", "max_wal_senders setting"),
];

impl Features {
    pub fn version(self) -> PgVersion {
        self.0
    }

    fn at_least(self, major: u32) -> bool {
        self.0 .0 >= major * 10000
    }

    /// The select list of `pg_stat_wal_receiver` giving `status, received_tli, written_lsn, flushed_lsn,
    /// latest_end_lsn, slot_name, sender_host, sender_port, conninfo` (LSNs as text, `written_lsn` NULL on 12).
    pub fn wal_receiver_columns(self) -> &'static str {
        if self.at_least(13) {
            WAL_RECEIVER_13
        } else {
            WAL_RECEIVER_12
        }
    }

    pub fn wal_keep(self) -> WalKeep {
        if self.at_least(13) {
            WalKeep::Size
        } else {
            WalKeep::Segments
        }
    }

    /// Whether the server knows the GUC `name` at all, for the parameters Patroni passes or that came and went
    /// within the supported range (others are the user's business: PostgreSQL names an unknown one itself).
    pub fn has_parameter(self, name: &str) -> bool {
        match name.to_ascii_lowercase().as_str() {
            "wal_keep_segments" => !self.at_least(13),
            "wal_keep_size" => self.at_least(13),
            "promote_trigger_file" => !self.at_least(16),
            "sync_replication_slots" | "synchronized_standby_slots" => self.failover_slots(),
            _ => true,
        }
    }

    /// Whether a reload applies a change of the recovery setting `name` on a running standby; otherwise it
    /// takes a restart (`primary_conninfo` and `primary_slot_name` before 13, `restore_command` before 14).
    pub fn recovery_parameter_reloadable(self, name: &str) -> bool {
        match name.to_ascii_lowercase().as_str() {
            "primary_conninfo" | "primary_slot_name" => self.at_least(13),
            "restore_command" => self.at_least(14),
            _ => true,
        }
    }

    /// Connection keywords the server's libpq (its WAL receiver reads `primary_conninfo`) understands; a keyword
    /// it does not know makes replication fail, so newer ones are left out of the conninfo written for it.
    pub fn conninfo_keyword_supported(self, keyword: &str) -> bool {
        match keyword {
            "channel_binding" | "sslpassword" => self.at_least(13),
            "sslcrldir" => self.at_least(14),
            "sslnegotiation" => self.at_least(17),
            _ => true,
        }
    }

    /// Defaults Patroni puts into `primary_conninfo` unless the replication credentials set them.
    pub fn primary_conninfo_defaults(self) -> Vec<(&'static str, &'static str)> {
        [("sslmode", "prefer"), ("gssencmode", "prefer"), ("channel_binding", "prefer"), ("sslnegotiation", "postgres")]
            .into_iter()
            .filter(|(k, _)| self.conninfo_keyword_supported(k))
            .collect()
    }

    /// Whether a standby compares `dbname` when checking that its `primary_conninfo` is the wanted one (17+: slot
    /// synchronisation connects to that database).
    pub fn primary_conninfo_dbname_matters(self) -> bool {
        self.at_least(17)
    }

    /// The settings `pg_control` records that a standby must run with at least the primary's value, with the
    /// `pg_controldata` line of each.
    pub fn controldata_settings(self) -> &'static [(&'static str, &'static str)] {
        CONTROLDATA_SETTINGS
    }

    /// How pg_rewind may restore missing target WAL with the configured `restore_command`, given whether the
    /// configuration files live in the data directory.
    pub fn rewind_restore(self, restore_command_set: bool, config_in_data_dir: bool) -> RewindRestore {
        if !restore_command_set || !self.at_least(13) {
            RewindRestore::No
        } else if config_in_data_dir {
            RewindRestore::RestoreTargetWal
        } else if self.at_least(15) {
            RewindRestore::RestoreTargetWalWithConfigFile
        } else {
            // 13 and 14 read postgresql.conf only from the data directory and would find no restore_command.
            RewindRestore::No
        }
    }

    /// `pg_hba.conf`/`pg_ident.conf` line types besides the connection types: `include`, `include_if_exists`,
    /// `include_dir` from 16.
    pub fn hba_include_directives(self) -> bool {
        self.at_least(16)
    }

    /// PG17+ failover slots: logical slots created with `failover`, `pg_replication_slots.failover`/`.synced`,
    /// `sync_replication_slots` and `synchronized_standby_slots`.
    pub fn failover_slots(self) -> bool {
        self.at_least(17)
    }

    /// `pg_replication_slots.wal_status` (13+).
    pub fn slot_wal_status(self) -> bool {
        self.at_least(13)
    }

    /// Non-exclusive backup functions: `(start, stop)`, `pg_backup_start`/`pg_backup_stop` from 15.
    pub fn backup_functions(self) -> (&'static str, &'static str) {
        if self.at_least(15) {
            ("pg_backup_start", "pg_backup_stop")
        } else {
            ("pg_start_backup", "pg_stop_backup")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32) -> Features {
        PgVersion(major * 10000 + 3).features()
    }

    #[test]
    fn versions() {
        let v = PgVersion::parse_version_output("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n").unwrap();
        assert_eq!(v, PgVersion(150018));
        assert_eq!(v.major(), 15);
        assert_eq!(v.major_string(), "15");
        assert_eq!(v.to_string(), "15.18");
        assert_eq!(PgVersion::parse("16beta1").unwrap(), PgVersion(160000));
        assert_eq!(PgVersion::parse("17devel").unwrap(), PgVersion(170000));
        let old = PgVersion::parse("9.6.24").unwrap();
        assert_eq!(old, PgVersion(90624));
        assert_eq!(old.major_string(), "9.6");
        assert_eq!(old.to_string(), "9.6.24");
        assert_eq!(old.wal_dir_name(), "pg_xlog");
        assert_eq!(v.wal_dir_name(), "pg_wal");
        assert!(PgVersion::parse("abc").is_err());
        assert!(PgVersion::parse_version_output("garbage").is_err());
    }

    #[test]
    fn supported_range() {
        for text in ["12.0", "12.22", "15.18", "18.6", "19devel"] {
            let version = PgVersion::parse(text).unwrap();
            assert_eq!(version.require_supported().unwrap(), version);
        }
        for text in ["11.22", "10.23", "9.6.24"] {
            let err = PgVersion::parse(text).unwrap().require_supported().unwrap_err().to_string();
            assert!(err.contains(text) && err.contains("PostgreSQL 12 and newer"), "{err}");
        }
    }

    #[test]
    fn what_changes_by_major() {
        assert!(v(12).wal_receiver_columns().contains("NULL::text AS written_lsn"));
        assert!(v(12).wal_receiver_columns().contains("received_lsn::text AS flushed_lsn"));
        assert!(v(13).wal_receiver_columns().contains("written_lsn::text AS written_lsn"));
        assert_eq!(v(12).wal_keep(), WalKeep::Segments);
        assert_eq!(v(13).wal_keep(), WalKeep::Size);
        assert!(v(12).has_parameter("wal_keep_segments") && !v(12).has_parameter("wal_keep_size"));
        assert!(!v(18).has_parameter("WAL_KEEP_SEGMENTS") && v(18).has_parameter("wal_keep_size"));
        assert!(v(15).has_parameter("promote_trigger_file") && !v(16).has_parameter("promote_trigger_file"));
        assert!(!v(16).has_parameter("sync_replication_slots") && v(17).has_parameter("sync_replication_slots"));

        assert!(!v(12).recovery_parameter_reloadable("primary_conninfo"));
        assert!(v(13).recovery_parameter_reloadable("primary_slot_name"));
        assert!(!v(13).recovery_parameter_reloadable("restore_command"));
        assert!(v(14).recovery_parameter_reloadable("restore_command"));
        assert!(v(12).recovery_parameter_reloadable("recovery_min_apply_delay"));

        let keys = |f: Features| f.primary_conninfo_defaults().into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(v(12)), ["sslmode", "gssencmode"]);
        assert_eq!(keys(v(13)), ["sslmode", "gssencmode", "channel_binding"]);
        assert_eq!(keys(v(17)), ["sslmode", "gssencmode", "channel_binding", "sslnegotiation"]);
        assert!(!v(13).conninfo_keyword_supported("sslcrldir") && v(14).conninfo_keyword_supported("sslcrldir"));
        assert!(!v(16).primary_conninfo_dbname_matters() && v(17).primary_conninfo_dbname_matters());

        assert_eq!(v(12).rewind_restore(true, true), RewindRestore::No);
        assert_eq!(v(13).rewind_restore(false, true), RewindRestore::No);
        assert_eq!(v(13).rewind_restore(true, true), RewindRestore::RestoreTargetWal);
        assert_eq!(v(14).rewind_restore(true, false), RewindRestore::No);
        assert_eq!(v(15).rewind_restore(true, false), RewindRestore::RestoreTargetWalWithConfigFile);
        assert_eq!(v(18).rewind_restore(true, true), RewindRestore::RestoreTargetWal);

        assert!(!v(15).hba_include_directives() && v(16).hba_include_directives());
        assert!(!v(16).failover_slots() && v(17).failover_slots() && v(18).failover_slots());
        assert!(!v(12).slot_wal_status() && v(13).slot_wal_status());
        assert_eq!(v(14).backup_functions().0, "pg_start_backup");
        assert_eq!(v(15).backup_functions().1, "pg_backup_stop");
        assert_eq!(v(12).controldata_settings().len(), 5);
    }
}
