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
    state: tokio::sync::Mutex<ProbeState>,
}

#[derive(Default)]
struct ProbeState {
    db: Option<Db>,
    last: Option<(Instant, Xlog)>,
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

    /// The positions now, or None when PostgreSQL does not answer within the timeout.
    pub async fn xlog(&self) -> Option<Xlog> {
        let params = self.params.lock().ok()?.clone()?;
        // Concurrent requests wait for one reading instead of each opening a query.
        let mut state = self.state.lock().await;
        if let Some((at, xlog)) = &state.last {
            if at.elapsed() < REUSE_FOR {
                return Some(xlog.clone());
            }
        }
        let read = tokio::time::timeout(QUERY_TIMEOUT, read(&mut state.db, &params)).await.ok().flatten();
        match read {
            Some(xlog) => {
                state.last = Some((Instant::now(), xlog.clone()));
                Some(xlog)
            }
            None => {
                // A broken or slow connection is not reused; the next request connects again.
                state.db = None;
                state.last = None;
                None
            }
        }
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
