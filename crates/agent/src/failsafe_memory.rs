//! The last failsafe heartbeat this member accepted, kept on disk as well as in memory.
//!
//! A failsafe leader cut off from the DCS stays primary while every member confirms it (`POST /failsafe`), and a
//! member that confirmed it stays out of leader races for a ttl (the HA core's rule). Patroni keeps that memory in
//! the agent's process only: an agent restarted in between has forgotten it, and once the leader key expires it can
//! promote next to a leader still running — whose own agent may have died with its watchdog kept alive by that very
//! confirmation (simulator, `--failsafe`, seed 8313). So the heartbeat is written to the data directory before it is
//! acknowledged, and read back when the agent starts.
//!
//! `patroni.failsafe.json`: `{"leader": NAME, "at": UNIX_MILLIS}`. A copy that reaches another member (a base
//! backup, pg_rewind) is harmless: it only holds that member back until a ttl after the heartbeat, which a fresh
//! replica would wait for the leader key anyway.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tracing::warn;

pub const FILE_NAME: &str = "patroni.failsafe.json";

/// The heartbeat file of one data directory.
#[derive(Clone, Debug)]
pub struct HeartbeatFile {
    dir: PathBuf,
}

impl HeartbeatFile {
    pub fn in_data_dir(dir: &Path) -> HeartbeatFile {
        HeartbeatFile { dir: dir.to_path_buf() }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The heartbeat recorded last: (leader, unix millis). None when there is none or it cannot be read (then
    /// said once: a damaged file must not stop the agent).
    pub fn load(&self) -> Option<(String, i64)> {
        let path = self.path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                warn!("cannot read {}: {e}", path.display());
                return None;
            }
        };
        let parsed = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
            let leader = v.get("leader")?.as_str()?.to_owned();
            Some((leader, v.get("at")?.as_i64()?))
        });
        if parsed.is_none() {
            warn!("ignoring {}: not {{\"leader\": NAME, \"at\": UNIX_MILLIS}}", path.display());
        }
        parsed
    }

    /// Records a heartbeat (atomically: a reader never sees half a file).
    pub fn save(&self, leader: &str, at: i64) -> std::io::Result<()> {
        if !self.dir.join("PG_VERSION").is_file() {
            // No initialized data directory (a member still being created, or an empty mount point that initdb or
            // a base backup must find empty): nothing it could promote with either.
            return Ok(());
        }
        let text = json!({"leader": leader, "at": at}).to_string();
        crate::dynamic_cache::write_atomically(&self.dir, &self.path(), &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_heartbeat_is_read_back_and_bad_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let f = HeartbeatFile::in_data_dir(dir.path());
        // An empty directory stays empty (initdb and pg_basebackup refuse anything else).
        f.save("pg1", 1).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        std::fs::write(dir.path().join("PG_VERSION"), "15\n").unwrap();
        assert_eq!(f.load(), None);
        f.save("pg1", 1_700_000_000_000).unwrap();
        assert_eq!(f.load(), Some(("pg1".to_string(), 1_700_000_000_000)));
        f.save("pg3", 1_700_000_005_000).unwrap();
        assert_eq!(f.load(), Some(("pg3".to_string(), 1_700_000_005_000)));
        std::fs::write(dir.path().join(FILE_NAME), "{not json").unwrap();
        assert_eq!(f.load(), None);
        let missing = HeartbeatFile::in_data_dir(&dir.path().join("absent"));
        missing.save("pg1", 1).unwrap();
        assert_eq!(missing.load(), None);
    }
}
