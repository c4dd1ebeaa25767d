//! Issue #5 on real 3-member clusters: bootstrap and replication.

mod common;

use common::{name, Cluster, Options, WAIT};

/// Three members racing on an empty etcd: one bootstraps and is the only primary, the other two clone and stream
/// from it, and a row written on the primary is read on both replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_one_primary_two_streaming_replicas() {
    let c = Cluster::start(Options::default()).await;
    let primaries = c.primaries().await;
    assert_eq!(primaries.len(), 1, "exactly one primary, got {primaries:?}");
    let p = primaries[0];
    assert_eq!(c.leader().await.as_deref(), Some(name(p).as_str()));
    for r in (0..3).filter(|r| *r != p) {
        assert_eq!(c.status(r, "/replica").await, Some(200), "{} is a replica", name(r));
        assert_ne!(c.status(r, "/primary").await, Some(200), "{} is not a primary", name(r));
    }
    c.insert(p, "hello").await;
    for r in (0..3).filter(|r| *r != p) {
        c.wait_row(r, "hello", WAIT).await;
    }
    // The replicas refuse writes: they are read-only standbys.
    for r in (0..3).filter(|r| *r != p) {
        assert!(!c.writable(r).await, "{} must not accept writes", name(r));
    }
}
