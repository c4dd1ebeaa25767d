//! WAL positions read from the local PostgreSQL on demand, for `GET /patroni`.
//!
//! Peers racing for a free leader key decide who is healthiest from each other's `/patroni`. The HA loop's
//! snapshot of a replica can be a moment older than the last WAL the departing primary sent (its shutdown
//! checkpoint), and a racer reading that snapshot could wrongly think it is ahead. Python Patroni queries
//! PostgreSQL on every `/patroni` request; we do too, through a connection of our own (never the loop's, which a
//! long action may hold), and keep the answer for a few milliseconds so a scraper hammering `/patroni` costs one
//! query per interval, not one per request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use patroni_api::status::Xlog;
use patroni_postgres::query::Db;
use patroni_postgres::ConnParams;

/// How long one reading serves later requests.
const REUSE_FOR: Duration = Duration::from_millis(50);
/// Connecting and querying together; the REST server waits less than this anyway.
const QUERY_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct WalProbe {
    /// Where the local PostgreSQL listens, as the loop last saw it (None until it first ran).
    params: Mutex<Option<ConnParams>>,
    /// The last reading (None: it failed) and when it was taken; checked without waiting on `db`.
    last: Mutex<Option<(Instant, Option<Xlog>)>>,
    /// Our own connection; its lock also makes concurrent requests share one reading.
    db: tokio::sync::Mutex<Option<Db>>,
}

impl WalProbe {
    /// Called by the loop on every observation of a running PostgreSQL.
    pub fn set_params(&self, params: ConnParams) {
        if let Ok(mut p) = self.params.lock() {
            if p.as_ref() != Some(&params) {
                *p = Some(params);
            }
        }
    }

    /// A reading young enough to reuse: `Some(None)` means the last attempt failed just now.
    fn recent(&self) -> Option<Option<Xlog>> {
        let last = self.last.lock().ok()?;
        let (at, xlog) = last.as_ref()?;
        (at.elapsed() < REUSE_FOR).then(|| xlog.clone())
    }

    /// The positions now, or None when PostgreSQL does not answer within the timeout (a failure is remembered as
    /// briefly as a success, so a stopped PostgreSQL is not asked once per request).
    pub async fn xlog(&self) -> Option<Xlog> {
        if let Some(recent) = self.recent() {
            return recent;
        }
        let params = self.params.lock().ok()?.clone()?;
        let mut db = self.db.lock().await;
        // Whoever held the lock before us may have just read it.
        if let Some(recent) = self.recent() {
            return recent;
        }
        let read = tokio::time::timeout(QUERY_TIMEOUT, read(&mut db, &params)).await.ok().flatten();
        if read.is_none() {
            // A broken or slow connection is not reused.
            *db = None;
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), read.clone()));
        }
        read
    }
}

async fn read(db: &mut Option<Db>, params: &ConnParams) -> Option<Xlog> {
    if db.as_ref().is_none_or(Db::is_closed) {
        *db = Some(Db::connect(params, QUERY_TIMEOUT).await.ok()?);
    }
    let now = db.as_ref()?.wal_positions().await.ok()?;
    if !now.in_recovery {
        return Some(Xlog::Primary { location: now.flushed.unwrap_or(0) });
    }
    Some(Xlog::Replica {
        received_location: now.received.unwrap_or(0),
        replayed_location: now.replayed.unwrap_or(0),
        replayed_timestamp: now.replay_timestamp.map(|t| t.fixed_offset()),
        paused: now.replay_paused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nothing_listening_is_none_and_remembered_briefly() {
        let probe = WalProbe::default();
        assert_eq!(probe.xlog().await, None, "no parameters yet: not asked");
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
        let port = port.expect("a free port");
        let params = ConnParams::parse(&format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"));
        probe.set_params(params.expect("valid conninfo"));
        assert_eq!(probe.xlog().await, None);
        assert_eq!(probe.recent(), Some(None), "the failure is remembered");
        tokio::time::sleep(REUSE_FOR).await;
        assert_eq!(probe.recent(), None, "and forgotten after {REUSE_FOR:?}");
    }
}
