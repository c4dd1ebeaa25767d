//! The state machine openraft drives: applies committed commands to the [`KvState`] shared with the DCS front
//! end, tells watchers about changes, and keeps its snapshot in `data_dir` so a restarted node starts from it and
//! replays only the log after it.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::kv::{KvState, Outcome};
use super::log_store::{read_json, write_atomic};
use super::TypeConfig;

const SNAPSHOT_FILE: &str = "snapshot.json";

type NodeId = u64;

/// What the DCS front end reads: the applied state and a revision that changes whenever a key does.
pub struct Shared {
    pub state: RwLock<KvState>,
    pub revision: watch::Sender<i64>,
}

impl Shared {
    /// Runs `f` on the applied state; `None` only if a panic poisoned the lock.
    pub fn read<T>(&self, f: impl FnOnce(&KvState) -> T) -> Option<T> {
        self.state.read().ok().map(|s| f(&s))
    }
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<NodeId, BasicNode>,
    state: KvState,
}

struct Inner {
    dir: PathBuf,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    current: Option<(SnapshotMeta<NodeId, BasicNode>, Vec<u8>)>,
}

/// Cheap to clone: the snapshot builder is a clone.
#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
    inner: Arc<Mutex<Inner>>,
}

fn sm_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&io::Error::other(e.to_string())).into()
}

impl StateMachine {
    pub fn open(dir: &Path) -> io::Result<(Self, Arc<Shared>)> {
        std::fs::create_dir_all(dir)?;
        let file: Option<SnapshotFile> = read_json(&dir.join(SNAPSHOT_FILE))?;
        let (state, inner) = match file {
            Some(f) => {
                let bytes = serde_json::to_vec(&f.state).map_err(io::Error::other)?;
                let inner = Inner {
                    dir: dir.to_path_buf(),
                    last_applied: f.meta.last_log_id,
                    membership: f.meta.last_membership.clone(),
                    current: Some((f.meta, bytes)),
                };
                (f.state, inner)
            }
            None => (
                KvState::default(),
                Inner {
                    dir: dir.to_path_buf(),
                    last_applied: None,
                    membership: StoredMembership::default(),
                    current: None,
                },
            ),
        };
        let (revision, _) = watch::channel(state.revision);
        let shared = Arc::new(Shared { state: RwLock::new(state), revision });
        Ok((StateMachine { shared: shared.clone(), inner: Arc::new(Mutex::new(inner)) }, shared))
    }

    // openraft's storage traits return its (large) `StorageError`; boxing here would only be unboxed again.
    #[allow(clippy::result_large_err)]
    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StorageError<NodeId>> {
        self.inner.lock().map_err(|_| sm_err("state machine lock poisoned"))
    }

    fn write_snapshot(dir: &Path, meta: &SnapshotMeta<NodeId, BasicNode>, state: &KvState) -> io::Result<()> {
        let file = serde_json::json!({"meta": meta, "state": state});
        write_atomic(&dir.join(SNAPSHOT_FILE), &serde_json::to_vec(&file).map_err(io::Error::other)?)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let mut inner = self.lock()?;
        let state = self.shared.read(Clone::clone).ok_or_else(|| sm_err("state lock poisoned"))?;
        let bytes = serde_json::to_vec(&state).map_err(sm_err)?;
        let id = inner.last_applied.map(|l| format!("{}-{}", l.leader_id.term, l.index)).unwrap_or_default();
        let meta = SnapshotMeta {
            last_log_id: inner.last_applied,
            last_membership: inner.membership.clone(),
            snapshot_id: format!("{id}-{}", state.revision),
        };
        Self::write_snapshot(&inner.dir, &meta, &state)
            .map_err(|e| StorageError::from(StorageIOError::write_snapshot(None, &e)))?;
        inner.current = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>> {
        let inner = self.lock()?;
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.lock()?;
        let mut out = Vec::new();
        let mut changed = false;
        {
            let mut state = self.shared.state.write().map_err(|_| sm_err("state lock poisoned"))?;
            for entry in entries {
                inner.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => out.push(Outcome { revision: state.revision, failed: None }),
                    EntryPayload::Normal(cmd) => {
                        let (outcome, c) = state.apply(&cmd);
                        changed |= c;
                        out.push(outcome);
                    }
                    EntryPayload::Membership(m) => {
                        inner.membership = StoredMembership::new(Some(entry.log_id), m);
                        out.push(Outcome { revision: state.revision, failed: None });
                    }
                }
            }
            if changed {
                self.shared.revision.send_replace(state.revision);
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = snapshot.into_inner();
        let new_state: KvState = serde_json::from_slice(&bytes)
            .map_err(|e| StorageError::from(StorageIOError::read_snapshot(Some(meta.signature()), &e)))?;
        let mut inner = self.lock()?;
        Self::write_snapshot(&inner.dir, meta, &new_state)
            .map_err(|e| StorageError::from(StorageIOError::write_snapshot(Some(meta.signature()), &e)))?;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.current = Some((meta.clone(), bytes));
        let revision = new_state.revision;
        {
            let mut state = self.shared.state.write().map_err(|_| sm_err("state lock poisoned"))?;
            *state = new_state;
        }
        self.shared.revision.send_replace(revision);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.lock()?;
        Ok(inner
            .current
            .as_ref()
            .map(|(meta, bytes)| Snapshot { meta: meta.clone(), snapshot: Box::new(Cursor::new(bytes.clone())) }))
    }
}
