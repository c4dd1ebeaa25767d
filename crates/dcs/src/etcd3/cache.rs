//! A watch-fed copy of the cluster's keys, so that an idle HA loop does not read (`KV.Range`) nor open a watch
//! (`Watch`) every loop.
//!
//! One background task per backend: Range the read prefix, then follow a `/watch` from the Range's revision + 1,
//! applying PUT/DELETE events. It is ready once etcd confirmed the watch, and not ready again as soon as the stream
//! ends, breaks, is canceled (compaction of the start revision, lost permission) or answers something unreadable;
//! then it rebuilds (a new Range and a new watch) with backoff. The task ends when the backend is dropped.
//!
//! The cache alone never proves etcd is alive (a hung etcd keeps the stream open and silent) nor that it is fresh
//! (a change may still be on its way). `Etcd3::get_cluster` therefore answers from it only after a round trip in
//! the same call (the lease keep-alive every loop needs anyway) and only once the cache has applied every event up
//! to that answer's revision and up to our own last write (see `mod.rs`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{debug, info};

use super::client::{b64, b64_bytes, prefix_end, Transport};
use super::watch::{MessageBuffer, WatchEvent, WatchMessage};
use super::{header_revision, read_kvs, Kv};

/// First and longest pause between two rebuilds that failed; a rebuild after a healthy stream starts at the first.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The watch is created with `progress_notify`, so an idle but healthy stream still receives a message every
/// ~10 minutes (etcd's default); silence well past that means a dead connection the kernel has not noticed.
const IDLE_LIMIT: Duration = Duration::from_secs(11 * 60);

/// One key as the cache holds it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub value: String,
    pub lease: i64,
    pub mod_revision: i64,
}

#[derive(Default)]
struct State {
    kvs: BTreeMap<String, Entry>,
    /// Every change of the prefix up to this revision has been applied.
    revision: i64,
    /// Built, the watch confirmed by etcd, and no error since.
    ready: bool,
    /// The endpoint the watch stream is connected to.
    endpoint: Option<String>,
}

impl State {
    /// Applies events in etcd's order; an event not newer than what the key already has (a replay after a rebuild)
    /// changes nothing.
    fn apply(&mut self, events: &[WatchEvent]) {
        for e in events {
            let newer = self.kvs.get(&e.key).is_none_or(|old| old.mod_revision < e.mod_revision);
            if newer {
                match &e.value {
                    Some(v) => {
                        let entry = Entry { value: v.clone(), lease: e.lease, mod_revision: e.mod_revision };
                        self.kvs.insert(e.key.clone(), entry);
                    }
                    None => {
                        self.kvs.remove(&e.key);
                    }
                }
            }
            self.revision = self.revision.max(e.mod_revision);
        }
    }
}

/// The cache shared between the backend and its task.
pub(super) struct KvCache {
    state: Mutex<State>,
    /// Bumped whenever the content or readiness changes; `watch()` and readers waiting for a revision listen.
    changes: watch::Sender<u64>,
    /// Asks the task to drop its stream and rebuild (e.g. the transport moved to another endpoint).
    restart: Notify,
}

impl KvCache {
    pub fn new() -> Self {
        KvCache { state: Mutex::new(State::default()), changes: watch::channel(0).0, restart: Notify::new() }
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn is_ready(&self) -> bool {
        self.state.lock().map(|s| s.ready).unwrap_or(false)
    }

    /// The applied revision, when ready.
    pub fn revision(&self) -> Option<i64> {
        self.state.lock().ok().filter(|s| s.ready).map(|s| s.revision)
    }

    pub fn endpoint(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.endpoint.clone())
    }

    /// All keys with `(key, value, lease, mod_revision)` and the applied revision, when ready.
    pub fn snapshot(&self) -> Option<(Vec<Kv>, i64)> {
        let s = self.state.lock().ok().filter(|s| s.ready)?;
        let kvs = s.kvs.iter().map(|(k, e)| (k.clone(), e.value.clone(), e.lease, e.mod_revision)).collect();
        Some((kvs, s.revision))
    }

    /// The value of `key` (`Some(None)` when absent), when ready.
    pub fn value(&self, key: &str) -> Option<Option<String>> {
        let s = self.state.lock().ok().filter(|s| s.ready)?;
        Some(s.kvs.get(key).map(|e| e.value.clone()))
    }

    /// Waits until the cache is ready and has applied `revision`, at most until `until`.
    pub async fn wait_for_revision(&self, revision: i64, until: Instant) -> bool {
        let mut rx = self.subscribe();
        loop {
            if self.revision().is_some_and(|r| r >= revision) {
                return true;
            }
            match tokio::time::timeout_at(until, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return self.revision().is_some_and(|r| r >= revision),
            }
        }
    }

    pub fn request_restart(&self) {
        self.restart.notify_one();
    }

    fn reset(&self, kvs: BTreeMap<String, Entry>, revision: i64, endpoint: String) {
        if let Ok(mut s) = self.state.lock() {
            *s = State { kvs, revision, ready: false, endpoint: Some(endpoint) };
        }
        self.changed();
    }

    fn set_ready(&self, ready: bool) {
        let was = match self.state.lock() {
            Ok(mut s) => std::mem::replace(&mut s.ready, ready),
            Err(_) => return,
        };
        if was != ready {
            self.changed();
        }
    }

    /// Applies one stream message; `Err` when the stream can no longer be trusted and must be rebuilt.
    fn handle(&self, message: WatchMessage) -> Result<(), String> {
        match message {
            WatchMessage::Created => self.set_ready(true),
            WatchMessage::Events(events) => {
                if let Ok(mut s) = self.state.lock() {
                    s.apply(&events);
                }
                self.changed();
            }
            WatchMessage::Progress(revision) => {
                // Only a caught-up watch receives progress; before `created` an empty message proves nothing.
                if let Ok(mut s) = self.state.lock() {
                    if s.ready {
                        s.revision = s.revision.max(revision);
                    }
                }
                self.changed();
            }
            WatchMessage::Canceled(why) => {
                self.set_ready(false);
                return Err(format!("watch canceled: {why}"));
            }
        }
        Ok(())
    }
}

/// What the task needs from the backend; the backend keeps its own copies.
pub(super) struct Follow {
    pub cache: Arc<KvCache>,
    pub transport: Arc<Transport>,
    pub prefix: String,
    pub retry_timeout_ms: Arc<AtomicU64>,
}

impl Follow {
    fn retry_timeout(&self) -> Duration {
        Duration::from_millis(self.retry_timeout_ms.load(Ordering::Relaxed).max(1))
    }

    /// Builds and follows the cache until the task is aborted (the backend's `Drop`).
    pub async fn run(self) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let healthy = match self.build_and_follow().await {
                Ok(healthy) => healthy,
                Err((healthy, why)) => {
                    debug!("etcd cluster cache: {why}");
                    healthy
                }
            };
            self.cache.set_ready(false);
            if healthy {
                backoff = MIN_BACKOFF;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                // A restart request during the pause is already being served by the rebuild below.
                _ = self.cache.restart.notified() => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One Range, one watch, followed until it ends. The flag says whether the watch was confirmed (then the next
    /// rebuild need not back off long).
    async fn build_and_follow(&self) -> Result<bool, (bool, String)> {
        let timeout = self.retry_timeout();
        let range_end = b64_bytes(&prefix_end(&self.prefix));
        let body = json!({"key": b64(&self.prefix), "range_end": range_end, "serializable": false});
        let v = self
            .transport
            .call("/kv/range", &body, Instant::now() + timeout)
            .await
            .map_err(|e| (false, format!("range failed: {e:?}")))?;
        let revision = header_revision(&v);
        let kvs = read_kvs(&v).map_err(|e| (false, format!("unreadable range: {e:?}")))?;
        let kvs =
            kvs.into_iter().map(|(k, value, lease, mod_revision)| (k, Entry { value, lease, mod_revision })).collect();
        let create = json!({"create_request": {
            "key": b64(&self.prefix),
            "range_end": range_end,
            "start_revision": (revision + 1).to_string(),
            "progress_notify": true,
        }});
        let (mut resp, endpoint) =
            self.transport.open_stream(&create, timeout).await.map_err(|e| (false, format!("watch failed: {e}")))?;
        self.cache.reset(kvs, revision, endpoint);
        let mut buffer = MessageBuffer::default();
        let mut created = false;
        // Take a restart asked for while building: it was about the stream this replaces.
        let restart = self.cache.restart.notified();
        tokio::pin!(restart);
        restart.as_mut().enable();
        loop {
            let chunk = tokio::select! {
                c = tokio::time::timeout(IDLE_LIMIT, resp.chunk()) => c,
                _ = &mut restart => return Err((created, "restart requested".into())),
                failed = self.transport.next_trouble() => {
                    if failed.as_deref() == self.cache.endpoint().as_deref() {
                        return Err((created, format!("a call to {failed:?} failed")));
                    }
                    continue;
                }
            };
            let chunk = match chunk {
                Ok(Ok(Some(c))) => c,
                Ok(Ok(None)) => return Err((created, "etcd closed the watch stream".into())),
                Ok(Err(e)) => return Err((created, format!("watch stream broke: {e}"))),
                Err(_) => return Err((created, format!("no watch message for {IDLE_LIMIT:?}"))),
            };
            buffer.push(&chunk);
            let messages = buffer.drain().map_err(|e| (created, format!("unreadable watch stream: {e:?}")))?;
            for m in messages {
                if let WatchMessage::Canceled(why) = &m {
                    if why.contains("auth") || why.contains("token") {
                        self.transport.invalidate_token();
                    }
                }
                if m == WatchMessage::Created && !created {
                    created = true;
                    info!("etcd cluster cache ready at revision {revision}");
                }
                self.cache.handle(m).map_err(|why| (created, why))?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, rev: i64) -> WatchEvent {
        WatchEvent { key: key.into(), value: Some(value.into()), mod_revision: rev, lease: 0 }
    }

    fn del(key: &str, rev: i64) -> WatchEvent {
        WatchEvent { key: key.into(), value: None, mod_revision: rev, lease: 0 }
    }

    #[test]
    fn events_apply_in_order_and_replays_change_nothing() {
        let c = KvCache::new();
        let mut kvs = BTreeMap::new();
        kvs.insert("/s/c/leader".to_string(), Entry { value: "a".into(), lease: 7, mod_revision: 5 });
        c.reset(kvs, 5, "http://e".into());
        assert!(c.snapshot().is_none(), "not ready before the watch is confirmed");
        c.handle(WatchMessage::Created).unwrap();
        assert_eq!(c.revision(), Some(5));
        c.handle(WatchMessage::Events(vec![put("/s/c/leader", "b", 6), put("/s/c/config", "{}", 7)])).unwrap();
        assert_eq!(c.value("/s/c/leader"), Some(Some("b".into())));
        // an old event (e.g. replayed) does not undo a newer value
        c.handle(WatchMessage::Events(vec![put("/s/c/leader", "a", 5)])).unwrap();
        assert_eq!(c.value("/s/c/leader"), Some(Some("b".into())));
        c.handle(WatchMessage::Events(vec![del("/s/c/leader", 8)])).unwrap();
        assert_eq!(c.value("/s/c/leader"), Some(None));
        assert_eq!(c.revision(), Some(8));
        c.handle(WatchMessage::Progress(20)).unwrap();
        assert_eq!(c.revision(), Some(20));
        let (kvs, rev) = c.snapshot().unwrap();
        assert_eq!((kvs.len(), rev), (1, 20));
    }

    #[test]
    fn compaction_or_error_makes_the_cache_not_ready() {
        let c = KvCache::new();
        c.reset(BTreeMap::new(), 3, "http://e".into());
        // progress before `created` proves nothing
        c.handle(WatchMessage::Progress(50)).unwrap();
        c.handle(WatchMessage::Created).unwrap();
        assert_eq!(c.revision(), Some(3));
        let mut b = MessageBuffer::default();
        b.push(br#"{"result":{"canceled":true,"compact_revision":"9"}}"#);
        let m = b.drain().unwrap().remove(0);
        let err = c.handle(m).unwrap_err();
        assert!(err.contains("compacted"), "{err}");
        assert!(!c.is_ready());
        assert!(c.snapshot().is_none() && c.value("/x").is_none());
    }

    #[tokio::test]
    async fn waiting_for_a_revision_is_bounded() {
        let c = Arc::new(KvCache::new());
        c.reset(BTreeMap::new(), 3, "http://e".into());
        c.handle(WatchMessage::Created).unwrap();
        assert!(c.wait_for_revision(3, Instant::now()).await);
        let start = Instant::now();
        assert!(!c.wait_for_revision(4, Instant::now() + Duration::from_millis(50)).await);
        assert!(start.elapsed() >= Duration::from_millis(50));
        let c2 = c.clone();
        let applier = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            c2.handle(WatchMessage::Events(vec![put("/k", "v", 4)])).unwrap();
        });
        assert!(c.wait_for_revision(4, Instant::now() + Duration::from_secs(5)).await);
        applier.await.unwrap();
    }
}
