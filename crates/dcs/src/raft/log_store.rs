//! The Raft log, vote and commit index on disk in `data_dir`.
//!
//! Entries are appended to one file as length + checksum + JSON records and fsynced before openraft is told they
//! are durable. A torn last record (crash mid-write) is cut off at start. Truncation (a conflicting suffix) and
//! purging (entries folded into a snapshot) rewrite the file through a temporary file and a rename; both are rare
//! and the file is small because snapshots keep it short. The vote and the commit index are small files replaced
//! atomically. Everything is also kept in memory: Patroni's data set and log are tiny.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogId, StorageError, StorageIOError, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::warn;

use super::TypeConfig;

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote.json";
const COMMITTED_FILE: &str = "committed.json";
const PURGED_FILE: &str = "purged.json";

type NodeId = u64;

struct Inner {
    dir: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

/// Cheap to clone: the log reader openraft asks for shares the same state.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

/// FNV-1a: enough to tell a torn or garbled record from a good one; not a security measure.
fn checksum(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

fn encode(entry: &Entry<TypeConfig>, out: &mut Vec<u8>) -> io::Result<()> {
    let json = serde_json::to_vec(entry).map_err(io::Error::other)?;
    let len = u32::try_from(json.len()).map_err(|_| io::Error::other("log entry too large"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(&json).to_le_bytes());
    out.extend_from_slice(&json);
    Ok(())
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new content.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map(Some).map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> io::Result<()> {
    write_atomic(path, &serde_json::to_vec(v).map_err(io::Error::other)?)
}

fn read_log(path: &Path) -> io::Result<(Vec<Entry<TypeConfig>>, u64)> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    while bytes.len() - pos >= 8 {
        let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]) as usize;
        let sum = u32::from_le_bytes([bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]]);
        let Some(data) = bytes.get(pos + 8..pos + 8 + len) else { break };
        if checksum(data) != sum {
            break;
        }
        match serde_json::from_slice(data) {
            Ok(e) => out.push(e),
            Err(_) => break,
        }
        pos += 8 + len;
    }
    if pos < bytes.len() {
        warn!("Raft log {}: cutting {} bytes of a torn or damaged tail", path.display(), bytes.len() - pos);
    }
    Ok((out, pos as u64))
}

impl LogStore {
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let (entries, good_len) = read_log(&path)?;
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if file.metadata()?.len() != good_len {
            file.set_len(good_len)?;
            file.sync_all()?;
        }
        let last_purged: Option<LogId<NodeId>> = read_json(&dir.join(PURGED_FILE))?;
        let purged_index = last_purged.map(|l| l.index);
        let entries = entries
            .into_iter()
            .filter(|e| purged_index.is_none_or(|p| e.log_id.index > p))
            .map(|e| (e.log_id.index, e))
            .collect();
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                file,
                entries,
                last_purged,
                vote: read_json(&dir.join(VOTE_FILE))?,
                committed: read_json(&dir.join(COMMITTED_FILE))?,
            })),
        })
    }

    // openraft's storage traits return its (large) `StorageError`; boxing here would only be unboxed again.
    #[allow(clippy::result_large_err)]
    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StorageError<NodeId>> {
        self.inner.lock().map_err(|_| StorageIOError::read_logs(&io::Error::other("log store lock poisoned")).into())
    }
}

impl Inner {
    /// Replaces the log file with exactly the entries in memory.
    fn rewrite(&mut self) -> io::Result<()> {
        let mut buf = Vec::new();
        for e in self.entries.values() {
            encode(e, &mut buf)?;
        }
        let path = self.dir.join(LOG_FILE);
        write_atomic(&path, &buf)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.lock()?;
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.lock()?;
        let last = inner.entries.values().next_back().map(|e| *e.get_log_id()).or(inner.last_purged);
        Ok(LogState { last_purged_log_id: inner.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.lock()?;
        write_json(&inner.dir.join(VOTE_FILE), vote).map_err(|e| StorageIOError::write_vote(&e))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock()?.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.lock()?;
        // Not needed for safety (openraft re-learns it from the leader); it lets a restarted node apply its
        // committed log at once, before any leader is elected.
        write_json(&inner.dir.join(COMMITTED_FILE), &committed).map_err(|e| StorageIOError::write(&e))?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock()?.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.lock()?;
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let mut buf = Vec::new();
        for e in &entries {
            encode(e, &mut buf).map_err(|err| StorageIOError::write_logs(&err))?;
        }
        let written = inner.file.write_all(&buf).and_then(|()| inner.file.sync_data());
        if let Err(e) = written {
            let err = StorageIOError::write_logs(&e);
            callback.log_io_completed(Err(e));
            return Err(err.into());
        }
        for e in entries {
            inner.entries.insert(e.log_id.index, e);
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.lock()?;
        let _ = inner.entries.split_off(&log_id.index);
        inner.rewrite().map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.lock()?;
        // The purge mark first: a crash before the rewrite leaves extra entries, which are filtered at start.
        write_json(&inner.dir.join(PURGED_FILE), &log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        inner.last_purged = Some(log_id);
        let keep = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = keep;
        inner.rewrite().map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};

    use super::super::state_machine::StateMachine;
    use super::*;

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
            let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
            let log = LogStore::open(dir.path()).map_err(|e| StorageIOError::write(&e))?;
            let (sm, _) = StateMachine::open(dir.path()).map_err(|e| StorageIOError::write(&e))?;
            Ok((dir, log, sm))
        }
    }

    /// openraft's own conformance suite for log stores and state machines.
    #[test]
    fn openraft_storage_suite() {
        Suite::test_all(Builder).unwrap();
    }

    #[test]
    fn torn_tail_is_cut_and_the_rest_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |i: u64| Entry::<TypeConfig> {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 0), i),
            payload: openraft::EntryPayload::Blank,
        };
        let mut buf = Vec::new();
        for i in 1..=3 {
            encode(&entry(i), &mut buf).unwrap();
        }
        let good = buf.len();
        encode(&entry(4), &mut buf).unwrap();
        buf.truncate(buf.len() - 3); // a crash in the middle of the last record
        std::fs::write(dir.path().join(LOG_FILE), &buf).unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        let inner = store.inner.lock().unwrap();
        assert_eq!(inner.entries.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
        drop(inner);
        assert_eq!(std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len(), good as u64);
        // A flipped byte in a record is not taken for data either.
        let mut bytes = std::fs::read(dir.path().join(LOG_FILE)).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x55;
        std::fs::write(dir.path().join(LOG_FILE), &bytes).unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(store.inner.lock().unwrap().entries.len(), 2);
    }
}
