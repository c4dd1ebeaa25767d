//! Waiting for an immediate switchover or failover to finish, by watching the snapshots the HA
//! loop publishes. For [`Control::manual_failover`](crate::control::Control::manual_failover)
//! implementations: write the failover key, wake the loop, then call [`await_failover`].

use crate::control::FailoverOutcome;
use crate::status::NodeStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Patroni polls for `max(10, loop_wait)` seconds, twice over.
pub fn failover_wait(loop_wait: u64) -> Duration {
    Duration::from_secs(2 * loop_wait.max(10))
}

/// Waits until the leader key belongs to someone other than `old_leader` (completed), or the
/// failover key, once seen, disappears with the leader unchanged (failed), or `timeout` passes
/// (unknown). A failover key never seen is not taken for a failure: the snapshot may simply
/// predate the write.
pub async fn await_failover(
    mut rx: watch::Receiver<Arc<NodeStatus>>,
    old_leader: Option<&str>,
    timeout: Duration,
) -> FailoverOutcome {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut key_seen = false;
    loop {
        let verdict = {
            let status = rx.borrow_and_update();
            status.cluster.as_ref().and_then(|c| {
                if let Some(leader) = c.leader.as_deref() {
                    if Some(leader) != old_leader {
                        return Some(FailoverOutcome::Completed { new_leader: leader.to_owned() });
                    }
                }
                if c.failover.is_some() {
                    key_seen = true;
                } else if key_seen {
                    return Some(FailoverOutcome::Failed);
                }
                None
            })
        };
        if let Some(v) = verdict {
            return v;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            // Timed out, or the publisher is gone (shutting down).
            Ok(Err(_)) | Err(_) => return FailoverOutcome::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterDocument, FailoverView};
    use crate::status::PatroniInfo;
    use std::time::SystemTime;

    fn status(leader: Option<&str>, failover: bool) -> Arc<NodeStatus> {
        let mut s = NodeStatus::starting(PatroniInfo::default(), SystemTime::now());
        s.cluster = Some(Arc::new(ClusterDocument {
            leader: leader.map(str::to_owned),
            failover: failover.then(FailoverView::default),
            ..Default::default()
        }));
        Arc::new(s)
    }

    #[tokio::test]
    async fn completed_when_the_leader_changes() {
        let (tx, rx) = watch::channel(status(Some("pg1"), false));
        let wait = tokio::spawn(async move { await_failover(rx, Some("pg1"), Duration::from_secs(30)).await });
        tx.send_replace(status(Some("pg1"), true));
        tx.send_replace(status(None, true));
        tx.send_replace(status(Some("pg2"), false));
        assert_eq!(wait.await.unwrap(), FailoverOutcome::Completed { new_leader: "pg2".into() });
    }

    #[tokio::test]
    async fn failed_only_after_the_key_was_seen() {
        let (tx, rx) = watch::channel(status(Some("pg1"), false));
        let wait = tokio::spawn(async move { await_failover(rx, Some("pg1"), Duration::from_secs(30)).await });
        tokio::task::yield_now().await;
        tx.send_replace(status(Some("pg1"), true));
        tokio::task::yield_now().await;
        tx.send_replace(status(Some("pg1"), false));
        assert_eq!(wait.await.unwrap(), FailoverOutcome::Failed);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_after_the_timeout() {
        let (_tx, rx) = watch::channel(status(Some("pg1"), false));
        assert_eq!(await_failover(rx, Some("pg1"), failover_wait(10)).await, FailoverOutcome::Unknown);
    }
}
