//! The [`Dcs`] trait on [`Etcd`]: each operation as the v2 request Python Patroni sends for it.

use async_trait::async_trait;
use reqwest::Method;

use super::*;
use crate::dcs::Dcs;
use crate::model::{Leader, MemberData};

#[async_trait]
impl Dcs for Etcd {
    fn name(&self) -> &str {
        &self.name
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs())
    }

    fn set_ttl(&self, ttl: Duration) {
        let secs = ttl.as_secs().max(1);
        if self.ttl_secs.swap(secs, Ordering::Relaxed) != secs {
            debug!("etcd TTL set to {secs} s");
            // The keys still carry the old TTL: the next loop rewrites them at once rather than after a watch.
            self.wake.notify_one();
        }
    }

    fn retry_timeout(&self) -> Duration {
        Duration::from_millis(self.retry_timeout_ms.load(Ordering::Relaxed))
    }

    fn set_retry_timeout(&self, retry_timeout: Duration) {
        self.retry_timeout_ms.store(millis(retry_timeout), Ordering::Relaxed);
    }

    async fn get_cluster(&self) -> DcsResult<Cluster> {
        let deadline = self.deadline();
        let dir = self.read_dir();
        let mut params = vec![("recursive", "true".to_string())];
        if self.ctl {
            // patronictl must not show a partitioned member's old view (Patroni reads with quorum=True there).
            params.push(("quorum", "true".into()));
        }
        let cluster = match self.call(Request { method: Method::GET, key: &dir, params }, deadline).await {
            Ok(a) => self.snapshot_from(&a),
            Err(V2Error::Etcd(code::KEY_NOT_FOUND, _)) => {
                let empty = V2Answer { body: Value::Null, etcd_index: 0 };
                self.snapshot_from(&empty)
            }
            Err(e) => return Err(e.into_dcs(&dir)),
        };
        self.maybe_discover(deadline).await;
        Ok(cluster)
    }

    async fn attempt_to_acquire_leader(&self) -> DcsResult<()> {
        self.acquire(self.deadline()).await
    }

    async fn take_leader(&self) -> DcsResult<()> {
        let key = self.path.key(keys::LEADER);
        let ttl = vec![("ttl", self.ttl_secs().to_string())];
        self.put(&key, &self.name, ttl, self.deadline()).await.map_err(|e| e.into_dcs(&key))?;
        self.note_leader(Some(self.name.clone()));
        Ok(())
    }

    async fn update_leader(
        &self,
        _cluster: &Cluster,
        status: Option<&Status>,
        failsafe: Option<&Failsafe>,
    ) -> DcsResult<()> {
        let deadline = self.deadline();
        let key = self.path.key(keys::LEADER);
        let cond = vec![("prevValue", self.name.clone()), ("ttl", self.ttl_secs().to_string())];
        match self.put(&key, &self.name, cond, deadline).await {
            Ok(_) => {}
            // Expired and nobody took it: take it again at once, as Patroni does.
            Err(V2Error::Etcd(code::KEY_NOT_FOUND, _)) => self.acquire(deadline).await?,
            Err(e) => return Err(e.into_dcs(&key)),
        }
        // The lock is what matters; a failed status write is repaired by the next loop.
        if let Some(st) = status {
            if let Err(e) = self.write_status_inner(st, deadline).await {
                warn!("could not write the leader status: {e}");
            }
        }
        if let Some(f) = failsafe {
            if let Err(e) = self.write_failsafe_inner(f, deadline).await {
                warn!("could not write the failsafe topology: {e}");
            }
        }
        Ok(())
    }

    async fn delete_leader(&self, leader: &Leader, last_lsn: Option<u64>) -> DcsResult<()> {
        let key = self.path.key(keys::LEADER);
        if leader.name != self.name {
            return Err(DcsError::CompareFailed { key });
        }
        let deadline = self.deadline();
        if let Some(lsn) = last_lsn {
            let st = self.last_status_with_lsn(lsn);
            if let Err(e) = self.write_status_inner(&st, deadline).await {
                warn!("could not write the last leader position: {e}");
            }
        }
        self.delete(&key, vec![("prevValue", self.name.clone())], deadline).await.map_err(|e| e.into_dcs(&key))?;
        self.note_leader(None);
        debug!("released the leader lock");
        Ok(())
    }

    async fn touch_member(&self, data: &MemberData) -> DcsResult<()> {
        let key = self.path.member(&self.name);
        let ttl = vec![("ttl", self.ttl_secs().to_string())];
        self.put(&key, &data.to_json(), ttl, self.deadline()).await.map_err(|e| e.into_dcs(&key))?;
        Ok(())
    }

    async fn initialize(&self, create_new: bool, sysid: &str) -> DcsResult<()> {
        let key = self.path.key(keys::INITIALIZE);
        // Like Patroni: create only if absent for the bootstrap race, else only update a key that still exists
        // (a cluster removed meanwhile is not brought back by a late writer).
        let cond = vec![("prevExist", (!create_new).to_string())];
        self.put(&key, sysid, cond, self.deadline()).await.map_err(|e| e.into_dcs(&key))?;
        Ok(())
    }

    async fn cancel_initialization(&self) -> DcsResult<()> {
        self.delete_maybe_cas(keys::INITIALIZE, None).await
    }

    async fn set_config_value(&self, value: &str, version: Option<Version>) -> DcsResult<()> {
        self.put_maybe_cas(keys::CONFIG, value, version).await.map(drop)
    }

    async fn set_failover_value(&self, value: &str, version: Option<Version>) -> DcsResult<()> {
        self.put_maybe_cas(keys::FAILOVER, value, version).await.map(drop)
    }

    async fn delete_failover(&self, version: Option<Version>) -> DcsResult<()> {
        self.delete_maybe_cas(keys::FAILOVER, version).await
    }

    async fn set_sync_state_value(&self, value: &str, version: Option<Version>) -> DcsResult<Version> {
        self.put_maybe_cas(keys::SYNC, value, version).await
    }

    async fn delete_sync_state(&self, version: Option<Version>) -> DcsResult<()> {
        self.delete_maybe_cas(keys::SYNC, version).await
    }

    async fn set_history_value(&self, value: &str) -> DcsResult<()> {
        self.put_maybe_cas(keys::HISTORY, value, None).await.map(drop)
    }

    async fn write_status(&self, status: &Status) -> DcsResult<()> {
        self.write_status_inner(status, self.deadline()).await
    }

    async fn write_failsafe(&self, failsafe: &Failsafe) -> DcsResult<()> {
        self.write_failsafe_inner(failsafe, self.deadline()).await
    }

    async fn delete_cluster(&self) -> DcsResult<()> {
        let dir = self.path.prefix().trim_end_matches('/').to_string();
        let params = vec![("recursive", "true".to_string())];
        match self.delete(&dir, params, self.deadline()).await {
            Ok(()) | Err(V2Error::Etcd(code::KEY_NOT_FOUND, _)) => {}
            Err(e) => return Err(e.into_dcs(&dir)),
        }
        if let Ok(mut o) = self.observed.lock() {
            *o = Observed::default();
        }
        Ok(())
    }

    async fn watch(&self, leader_version: Option<Version>, timeout: Duration) -> DcsResult<bool> {
        let notified = self.wake.notified();
        tokio::pin!(notified);
        // Take a wake-up that arrived while we were not waiting.
        notified.as_mut().enable();
        let we_lead =
            self.observed.lock().map(|o| o.leader_name.as_deref() == Some(self.name.as_str())).unwrap_or(false);
        let end = Instant::now() + timeout;
        // The leader does not watch its own key (its refresh would wake it); without a leader there is nothing to
        // wait on but a wake-up.
        let index = leader_version.filter(|_| !we_lead);
        if let Some(index) = index {
            let key = self.path.key(keys::LEADER);
            loop {
                let remaining = end.saturating_duration_since(Instant::now());
                // The agent often waits one second or less (a replica not streaming yet): still poll, the connection
                // is pooled; only a sliver too short for any answer is slept out.
                if remaining < Duration::from_millis(100) {
                    break;
                }
                let params = vec![("wait", "true".to_string()), ("waitIndex", index.to_string())];
                let req = Request { method: Method::GET, key: &key, params };
                tokio::select! {
                    _ = &mut notified => return Ok(true),
                    r = self.client.wait(&req, remaining) => match r {
                        Ok(Some(_)) => return Ok(true),
                        Ok(None) => return Ok(false),
                        // The index fell out of etcd's event history: a new snapshot is needed anyway.
                        Err(V2Error::Etcd(code::EVENT_INDEX_CLEARED | code::WATCHER_CLEARED, _)) => return Ok(true),
                        Err(e) => {
                            debug!("etcd watch failed: {e:?}");
                            let pause = Duration::from_secs(1).min(end.saturating_duration_since(Instant::now()));
                            tokio::select! {
                                _ = &mut notified => return Ok(true),
                                _ = tokio::time::sleep(pause) => {}
                            }
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = &mut notified => Ok(true),
            _ = tokio::time::sleep_until(end) => Ok(false),
        }
    }

    fn wakeup(&self) {
        self.wake.notify_one();
    }

    async fn write_leader_optime(&self, last_lsn: u64) -> DcsResult<()> {
        let st = self.last_status_with_lsn(last_lsn);
        self.write_status_inner(&st, self.deadline()).await
    }
}
