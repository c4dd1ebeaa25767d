//! The [`Dcs`] trait on [`Etcd3`]: each trait operation in terms of the client's requests and cache (`mod.rs`).

use super::*;

#[async_trait]
impl Dcs for Etcd3 {
    fn name(&self) -> &str {
        &self.name
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs.load(Ordering::Relaxed))
    }

    fn set_ttl(&self, ttl: Duration) {
        let secs = ttl.as_secs().max(1);
        if self.ttl_secs.swap(secs, Ordering::Relaxed) != secs {
            debug!("etcd TTL set to {secs} s");
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
        let prefix = self.read_prefix();
        if !self.ctl {
            self.start_cache();
            if let Some((kvs, revision)) = self.verified_cache(deadline).await? {
                return self.snapshot_from(kvs, revision, deadline).await;
            }
        }
        let body = json!({
            "key": b64(&prefix),
            "range_end": b64_bytes(&prefix_end(&prefix)),
            // A partitioned member must not serve an old view of the leader key.
            "serializable": false,
        });
        let v = self.call("/kv/range", body, deadline).await?;
        let kvs = read_kvs(&v)?;
        self.snapshot_from(kvs, header_revision(&v), deadline).await
    }

    async fn attempt_to_acquire_leader(&self) -> DcsResult<()> {
        let deadline = self.deadline();
        let key = self.path.key(keys::LEADER);
        let result = self
            .with_lease(true, deadline, |lease| {
                let body = json!({
                    "compare": [{"key": b64(&key), "target": "CREATE", "create_revision": "0"}],
                    "success": [{"request_put": put_request(&key, &self.name, Some(lease))}],
                    "failure": [{"request_range": {"key": b64(&key)}}],
                });
                async move { self.txn(body, deadline).await.map(|v| (v, lease)) }
            })
            .await?;
        let (v, lease) = result;
        if succeeded(&v) {
            debug!("acquired the leader lock");
            self.note_written(&key, &self.name, lease);
            return Ok(());
        }
        // A retried request whose first try succeeded but whose answer was lost finds our own key.
        let holder =
            v.pointer("/responses/0/response_range").map(read_kvs).transpose()?.and_then(|kvs| kvs.into_iter().next());
        if let Some((_, value, owner_lease, _)) = holder {
            if value == self.name && owner_lease == lease {
                return Ok(());
            }
            debug!("leader lock is held by {value}");
        }
        info!("Could not take out TTL lock");
        Err(DcsError::CompareFailed { key })
    }

    async fn take_leader(&self) -> DcsResult<()> {
        let deadline = self.deadline();
        let key = self.path.key(keys::LEADER);
        let lease = self
            .with_lease(true, deadline, |lease| {
                let key = key.clone();
                async move { self.put(&key, &self.name, Some(lease), deadline).await.map(|_| lease) }
            })
            .await?;
        self.note_written(&key, &self.name, lease);
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
        let lease = self.lease(true, deadline).await?;
        if !self.leader_key_bound_to(&key, lease) {
            self.rebind_leader_key(&key, deadline).await?;
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
        let body = json!({
            "compare": [{"key": b64(&key), "target": "VALUE", "value": b64(&self.name)}],
            "success": [{"request_delete_range": {"key": b64(&key)}}],
        });
        if succeeded(&self.txn(body, deadline).await?) {
            debug!("released the leader lock");
            Ok(())
        } else {
            Err(DcsError::CompareFailed { key })
        }
    }

    async fn touch_member(&self, data: &MemberData) -> DcsResult<()> {
        let deadline = self.deadline();
        let key = self.path.member(&self.name);
        let value = data.to_json();
        let observed = self.observed_value(&key);
        let lease = self
            .with_lease(true, deadline, |lease| {
                let (key, value) = (key.clone(), value.clone());
                let unchanged = observed.as_ref() == Some(&(value.clone(), lease));
                async move {
                    if !unchanged {
                        self.put(&key, &value, Some(lease), deadline).await?;
                    }
                    Ok(lease)
                }
            })
            .await?;
        self.note_written(&key, &value, lease);
        Ok(())
    }

    async fn initialize(&self, create_new: bool, sysid: &str) -> DcsResult<()> {
        let deadline = self.deadline();
        let key = self.path.key(keys::INITIALIZE);
        if !create_new {
            self.put(&key, sysid, None, deadline).await?;
            return Ok(());
        }
        let body = json!({
            "compare": [{"key": b64(&key), "target": "CREATE", "create_revision": "0"}],
            "success": [{"request_put": put_request(&key, sysid, None)}],
        });
        if succeeded(&self.txn(body, deadline).await?) {
            Ok(())
        } else {
            Err(DcsError::CompareFailed { key })
        }
    }

    async fn cancel_initialization(&self) -> DcsResult<()> {
        self.delete_maybe_cas(&self.path.key(keys::INITIALIZE), None, self.deadline()).await
    }

    async fn set_config_value(&self, value: &str, version: Option<Version>) -> DcsResult<()> {
        self.put_maybe_cas(&self.path.key(keys::CONFIG), value, version, self.deadline()).await.map(drop)
    }

    async fn set_failover_value(&self, value: &str, version: Option<Version>) -> DcsResult<()> {
        self.put_maybe_cas(&self.path.key(keys::FAILOVER), value, version, self.deadline()).await.map(drop)
    }

    async fn delete_failover(&self, version: Option<Version>) -> DcsResult<()> {
        self.delete_maybe_cas(&self.path.key(keys::FAILOVER), version, self.deadline()).await
    }

    async fn set_sync_state_value(&self, value: &str, version: Option<Version>) -> DcsResult<Version> {
        self.put_maybe_cas(&self.path.key(keys::SYNC), value, version, self.deadline()).await
    }

    async fn delete_sync_state(&self, version: Option<Version>) -> DcsResult<()> {
        self.delete_maybe_cas(&self.path.key(keys::SYNC), version, self.deadline()).await
    }

    async fn set_history_value(&self, value: &str) -> DcsResult<()> {
        self.put(&self.path.key(keys::HISTORY), value, None, self.deadline()).await?;
        Ok(())
    }

    async fn write_status(&self, status: &Status) -> DcsResult<()> {
        self.write_status_inner(status, self.deadline()).await
    }

    async fn write_leader_optime(&self, last_lsn: u64) -> DcsResult<()> {
        let st = self.last_status_with_lsn(last_lsn);
        self.write_status_inner(&st, self.deadline()).await
    }

    async fn write_failsafe(&self, failsafe: &Failsafe) -> DcsResult<()> {
        self.write_failsafe_inner(failsafe, self.deadline()).await
    }

    async fn delete_cluster(&self) -> DcsResult<()> {
        let prefix = self.path.prefix();
        let body = json!({"key": b64(&prefix), "range_end": b64_bytes(&prefix_end(&prefix))});
        self.call("/kv/deleterange", body, self.deadline()).await?;
        if let Ok(mut o) = self.observed.lock() {
            *o = Observed::default();
        }
        Ok(())
    }

    async fn watch(&self, leader_version: Option<Version>, timeout: Duration) -> DcsResult<bool> {
        let _mark = WatchMark::enter(&self.loop_gate);
        let notified = self.wake.notified();
        tokio::pin!(notified);
        // Take a wake-up that arrived while we were not waiting.
        notified.as_mut().enable();
        if let (Some(v), Ok(o)) = (leader_version, self.observed.lock()) {
            if o.leader_version.is_some_and(|known| known != v) {
                return Ok(true);
            }
        }
        if !self.ctl && self.cache.is_ready() {
            return Ok(self.watch_cache(notified, timeout).await);
        }
        // No cache yet (or it is rebuilding): a watch of our own from the snapshot's revision, as before the cache.
        tokio::select! {
            _ = &mut notified => Ok(true),
            changed = self.wait_for_change(timeout) => Ok(changed),
            _ = tokio::time::sleep(timeout) => Ok(false),
        }
    }

    fn wakeup(&self) {
        self.wake.notify_one();
    }
}
