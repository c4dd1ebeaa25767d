//! Bounded polling.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result};

/// Polls `predicate` every `interval` until it returns true, for at most `timeout` (a predicate that hangs counts
/// against the timeout too).
///
/// ```no_run
/// # async fn f() -> patroni_testkit::Result<()> {
/// use std::time::Duration;
/// patroni_testkit::wait_until(Duration::from_secs(5), Duration::from_millis(50), || async {
///     std::path::Path::new("/tmp/ready").exists()
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn wait_until<F, Fut>(timeout: Duration, interval: Duration, mut predicate: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for("a condition", timeout, interval, || {
        let fut = predicate();
        async move {
            if fut.await {
                Ok(())
            } else {
                Err("not yet")
            }
        }
    })
    .await
    .map_err(|e| match e {
        Error::Timeout { what, timeout, .. } => Error::Timeout { what, timeout, last_error: None },
        other => other,
    })
}

/// Polls `attempt` every `interval` until it returns Ok, for at most `timeout`; the timeout error names `what` and
/// carries the last attempt's error, which usually says why (connection refused, 503, ...).
pub async fn wait_for<T, E, F, Fut>(what: &str, timeout: Duration, interval: Duration, mut attempt: F) -> Result<T>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
{
    let mut last_error: Option<String> = None;
    let polling = async {
        loop {
            match attempt().await {
                Ok(value) => return value,
                Err(e) => last_error = Some(e.to_string()),
            }
            tokio::time::sleep(interval).await;
        }
    };
    match tokio::time::timeout(timeout, polling).await {
        Ok(value) => Ok(value),
        Err(_) => Err(Error::Timeout { what: what.to_string(), timeout, last_error }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn returns_once_true() {
        let n = AtomicU32::new(0);
        wait_until(Duration::from_secs(5), Duration::from_millis(1), || async {
            n.fetch_add(1, Ordering::SeqCst) >= 3
        })
        .await
        .unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn times_out_with_a_clear_error() {
        let err =
            wait_until(Duration::from_millis(50), Duration::from_millis(5), || async { false }).await.unwrap_err();
        assert!(err.to_string().starts_with("timed out after 50ms"), "{err}");
    }

    #[tokio::test]
    async fn a_hanging_predicate_is_bounded() {
        let err = wait_until(Duration::from_millis(50), Duration::from_millis(5), || async {
            std::future::pending::<()>().await;
            true
        })
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }));
    }

    #[tokio::test]
    async fn wait_for_reports_the_last_error() {
        let err = wait_for("the answer", Duration::from_millis(30), Duration::from_millis(5), || async {
            Err::<(), _>("connection refused")
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("the answer") && err.contains("connection refused"), "{err}");
    }
}
