//! Issue #5 on real 3-member clusters: the actions behind the REST endpoints (restart, reinitialize) carried out
//! by the HA loop while the cluster keeps running.

mod common;

use common::{name, Cluster, Options, POLL, START_TIMEOUT, WAIT};
use reqwest::Method;
use serde_json::json;

/// POST /restart on the primary restarts PostgreSQL in place (new postmaster) and the leader key stays; POST
/// /reinitialize on a replica clones it again from the leader and it streams again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_primary_and_reinitialize_replica() {
    let c = Cluster::start(Options::default()).await;
    let p = c.wait_primary(WAIT, &[]).await;
    let r = (0..3).find(|i| *i != p).unwrap();

    let old = c.postmaster_pid(p);
    let (code, text) = c.node(p).request(Method::POST, "/restart", Some(&json!({}))).await.unwrap();
    assert_eq!(code, 200, "POST /restart answered {code}: {text}");
    assert_ne!(c.postmaster_pid(p), old, "a new postmaster");
    assert_eq!(c.wait_primary(WAIT, &[]).await, p, "still the primary after a restart");
    c.insert(p, "after-restart").await;

    c.sql(r, "SELECT 1").await.unwrap();
    let marker = c.data_dir(r).join("reinit-marker");
    // A file only the old data directory has: a fresh clone does not.
    std::fs::write(&marker, "x").unwrap();
    let (code, text) = c.node(r).request(Method::POST, "/reinitialize", Some(&json!({}))).await.unwrap();
    assert_eq!(code, 200, "POST /reinitialize answered {code}: {text}");
    let done = patroni_testkit::wait_until(START_TIMEOUT, POLL, || async { !marker.exists() }).await;
    if done.is_err() {
        c.dump("reinitialize did not replace the data directory");
        panic!("{} was not reinitialized", name(r));
    }
    c.wait_streaming(&[r], p, START_TIMEOUT).await;
    c.wait_row(r, "after-restart", WAIT).await;
    assert_eq!(c.leader().await.as_deref(), Some(name(p).as_str()));
}
