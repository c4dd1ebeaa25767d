//! This node's lease: one per node, granted with the current TTL, kept alive by the calls that need it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::client::{int, RpcError};
use super::Etcd3;
use crate::error::{DcsError, DcsResult};

#[derive(Default)]
pub(super) struct LeaseState {
    pub id: Option<i64>,
    pub ttl: u64,
    pub refreshed: Option<Instant>,
}

/// A keep-alive this recent (a cached `get_cluster` does one every loop) makes the next one in the same loop
/// (`update_leader`, `touch_member`) unnecessary. Short against the TTL, so the key still lives about `ttl` after
/// the last call, as the HA loop's timing assumes.
pub(super) fn fresh_window(ttl_secs: u64) -> Duration {
    Duration::from_millis(ttl_secs.saturating_mul(100)).min(Duration::from_secs(1))
}

impl Etcd3 {
    /// The liveness proof of a cached read: keeps our lease alive and returns the revision etcd reported with it.
    /// `Ok(None)` when there is no lease to keep alive (none yet, the TTL changed, it expired): the caller reads
    /// through a Range, and the next write takes a new lease as usual.
    pub(super) async fn probe_lease(&self, deadline: Instant) -> DcsResult<Option<i64>> {
        let mut st = tokio::time::timeout_at(deadline, self.lease.lock())
            .await
            .map_err(|_| DcsError::Unreachable("timed out waiting for the lease refresh of another call".into()))?;
        let ttl = self.ttl_secs.load(Ordering::Relaxed);
        let Some(id) = st.id.filter(|_| st.ttl == ttl) else {
            return Ok(None);
        };
        match self.call("/lease/keepalive", json!({"ID": id.to_string()}), deadline).await {
            Ok(v) => {
                let result = v.get("result");
                if int(result.and_then(|r| r.get("TTL"))) <= 0 {
                    warn!("our etcd lease {id} expired; taking a new one at the next write");
                    st.id = None;
                    return Ok(None);
                }
                st.refreshed = Some(Instant::now());
                let revision = int(result.and_then(|r| r.get("header")).and_then(|h| h.get("revision")));
                Ok((revision > 0).then_some(revision))
            }
            Err(RpcError::LeaseNotFound) => {
                warn!("our etcd lease {id} is gone; taking a new one at the next write");
                st.id = None;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Returns our lease, granting one when there is none or the TTL changed, and keeping it alive when
    /// `keepalive` is set.
    pub(super) async fn lease(&self, keepalive: bool, deadline: Instant) -> DcsResult<i64> {
        // Another call may be refreshing the lease right now; waiting for it must not outlast our own deadline.
        let mut st = tokio::time::timeout_at(deadline, self.lease.lock())
            .await
            .map_err(|_| DcsError::Unreachable("timed out waiting for the lease refresh of another call".into()))?;
        let ttl = self.ttl_secs.load(Ordering::Relaxed);
        if let Some(id) = st.id {
            if st.ttl != ttl {
                info!("TTL changed from {} to {ttl} s: taking a new lease", st.ttl);
                st.id = None;
            } else if keepalive && st.refreshed.is_some_and(|t| t.elapsed() < fresh_window(ttl)) {
                return Ok(id);
            } else if keepalive {
                let answer = self.call("/lease/keepalive", json!({"ID": id.to_string()}), deadline).await;
                match answer {
                    Ok(v) => {
                        let left = int(v.get("result").and_then(|r| r.get("TTL")));
                        if left > 0 {
                            st.refreshed = Some(Instant::now());
                            return Ok(id);
                        }
                        warn!("our etcd lease {id} expired; taking a new one");
                        st.id = None;
                    }
                    Err(RpcError::LeaseNotFound) => {
                        warn!("our etcd lease {id} is gone; taking a new one");
                        st.id = None;
                    }
                    Err(e) => return Err(e.into()),
                }
            } else {
                return Ok(id);
            }
        }
        let v = self.call("/lease/grant", json!({"TTL": ttl.to_string()}), deadline).await?;
        let id = int(v.get("ID"));
        if id == 0 {
            let err = v.get("error").and_then(Value::as_str).unwrap_or("no lease id in the answer");
            return Err(DcsError::Protocol(format!("etcd lease grant failed: {err}")));
        }
        debug!("granted etcd lease {id} with TTL {ttl} s");
        st.id = Some(id);
        st.ttl = ttl;
        st.refreshed = Some(Instant::now());
        Ok(id)
    }

    pub(super) async fn forget_lease(&self, id: i64) {
        let mut st = self.lease.lock().await;
        if st.id == Some(id) {
            st.id = None;
        }
    }

    /// Runs `op` with our lease; when etcd says the lease is gone, takes a new one and runs it once more.
    pub(super) async fn with_lease<F, Fut, T>(&self, keepalive: bool, deadline: Instant, op: F) -> DcsResult<T>
    where
        F: Fn(i64) -> Fut,
        Fut: std::future::Future<Output = Result<T, RpcError>>,
    {
        let id = self.lease(keepalive, deadline).await?;
        match op(id).await {
            Err(RpcError::LeaseNotFound) => {
                warn!("etcd lease {id} disappeared; taking a new one and retrying");
                self.forget_lease(id).await;
                let id = self.lease(false, deadline).await?;
                Ok(op(id).await?)
            }
            other => Ok(other?),
        }
    }
}
